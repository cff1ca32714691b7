//! Benchmarks for `peer`, measured against tokio, rayon and (outside this crate) Dask, as
//! specified in the workspace's `BENCHMARKS.md`. The criterion benches live in `benches/`
//! (`cargo bench -p peer-benches`, e.g. `--bench w1_local_overhead` for W1's local task
//! overhead), and stand-alone drivers that need a fresh process, such as the W8 memory
//! measurements (`cargo run --release -p peer-benches --bin w8_memory`), live in `src/bin/`.
//! This library itself exports nothing.
