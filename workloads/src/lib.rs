//! Shared workloads for peer's benchmarks and tests.
//!
//! - [`uts`]: UTS, the Unbalanced Tree Search benchmark (Olivier et al., LCPC 2006), exactly
//!   as specified in `docs/workloads.md`: sequentially and as tasks that spawn tasks on a
//!   [`peer_core::Client`].
//! - [`bench_tasks`]: tiny named tasks for the swarm benchmarks.
//! - [`swarm_uts`]: the same search as named tasks that submit tasks, on a local client or
//!   across a swarm of peers (`peer-net`).
//! - [`sweep`]: a sleep sweep with a known sum, also as a detached job (a graph of tasks
//!   that outlives its submitter).
//! - [`prims`]: tasks that share a lock, a variable and a semaphore across peers.
//! - [`shell`]: a program run as a named task, for `peer submit` and `peer map`.
//! - [`w2`]: the seed's nested loop (load, then score every parameter) as a benchmark.
//! - [`sim`]: a deterministic simulator of N peers running the real stealing policy on
//!   UTS-shaped work, for policies at scales this machine cannot host.

pub mod bench_tasks;
pub mod job_control;
pub mod prims;
pub mod shell;
pub mod sim;
pub mod swarm_uts;
pub mod sweep;
pub mod uts;
pub mod w2;
