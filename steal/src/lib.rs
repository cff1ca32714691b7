//! Work stealing for `peer`.
//!
//! This crate holds the local half of stealing: a fixed pool of worker threads, each with a
//! LIFO [Chase-Lev deque](crossbeam_deque), a shared injector for work submitted from outside
//! the pool, random-victim batch stealing, and a parking protocol that cannot lose a wake-up
//! (see `src/sleep/README.md`). A worker that waits for something ([`Pool::wait_until`]) runs
//! other jobs meanwhile, so jobs that wait on jobs cannot deadlock a fixed pool.
//!
//! A job is any `Arc<dyn Job>`; `peer-core` makes its task cells jobs, so a task is one
//! allocation from submission to result.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use peer_steal::{Job, Pool};
//!
//! struct Count(AtomicUsize);
//! impl Job for Count {
//!     fn run(self: Arc<Self>) { self.0.fetch_add(1, Ordering::Relaxed); }
//!     fn abandon(self: Arc<Self>) {}
//! }
//!
//! let pool = Pool::builder().workers(2).build().unwrap();
//! let count = Arc::new(Count(AtomicUsize::new(0)));
//! for _ in 0..100 {
//!     pool.spawn(count.clone()).unwrap();
//! }
//! // Help until every job has run (this thread is not a worker, so it just waits).
//! pool.wait_until(&|| count.0.load(Ordering::Relaxed) == 100, &mut |_| {}, None);
//! assert_eq!(count.0.load(Ordering::Relaxed), 100);
//! ```

mod job;
mod loom;
mod parker;
mod pool;
mod sleep;
mod worker;

pub use job::{Job, JobRef};
pub use parker::{Parker, Unparker};
pub use pool::{BuildError, Builder, Pool, PoolHandle, SpawnError, block_until};
pub use worker::current_worker_index;
