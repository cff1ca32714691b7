//! Benchmarks for `peer`, measured against tokio, rayon and (outside this crate) Dask, as
//! specified in the workspace's `docs/workloads.md`. The criterion benches live in `benches/`
//! (`cargo bench -p peer-benches`, e.g. `--bench w1_local_overhead` for W1's local task
//! overhead); stand-alone drivers live in `src/bin/`: `w1_interleaved` runs the W1 workloads
//! round-robin so that peer/tokio/rayon ratios survive a noisy machine, and `w8_memory`
//! measures memory per pending task and RSS over many waves (W8) in a fresh process. The
//! `named` bench (and the driver's `named` group) compares named tasks with closures. This
//! library holds the workloads they share. Results: `docs/benchmarks.md`.

pub mod named;
pub mod w1;
