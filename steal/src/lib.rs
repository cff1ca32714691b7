//! Work stealing for `peer`.
//!
//! This crate holds the local half of stealing: a fixed pool of worker threads, each with a
//! LIFO [Chase-Lev deque](crossbeam_deque), a shared injector for work submitted from outside
//! the pool, random-victim batch stealing, and a parking protocol that cannot lose a wake-up
//! (see `src/sleep/README.md`). A worker that waits for something ([`Pool::wait_until`]) runs
//! other jobs meanwhile, so jobs that wait on jobs cannot deadlock a fixed pool.
//!
//! A job is any `Arc<dyn Runnable>`; `peer-core` makes its task cells jobs, so a task is one
//! allocation from submission to result.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use peer_steal::{Runnable, Pool, Unparker};
//!
//! /// Counts to 100; the job that reaches it wakes whoever waits.
//! struct Count {
//!     n: AtomicUsize,
//!     waiter: Mutex<Option<Unparker>>,
//! }
//! impl Runnable for Count {
//!     fn run(self: Arc<Self>) {
//!         if self.n.fetch_add(1, Ordering::AcqRel) + 1 == 100 {
//!             if let Some(u) = self.waiter.lock().unwrap().take() {
//!                 u.unpark();
//!             }
//!         }
//!     }
//!     fn abandon(self: Arc<Self>) {}
//! }
//!
//! let pool = Pool::builder().workers(2).build().unwrap();
//! let count = Arc::new(Count { n: AtomicUsize::new(0), waiter: Mutex::new(None) });
//! for _ in 0..100 {
//!     pool.spawn(count.clone()).unwrap();
//! }
//! // This thread is not a worker, so it parks; the condition is re-checked after registering,
//! // so a job that finished before the registration is not missed.
//! pool.wait_until(
//!     &|| count.n.load(Ordering::Acquire) == 100,
//!     &mut |u| *count.waiter.lock().unwrap() = Some(u),
//!     None,
//! );
//! assert_eq!(count.n.load(Ordering::Acquire), 100);
//! ```

mod compensate;
mod loom;
mod parker;
pub mod policy;
mod pool;
mod rng;
mod runnable;
mod sleep;
mod worker;

pub use compensate::block_compensated;
pub use parker::{Parker, Unparker};
pub use pool::{BuildError, Builder, Pool, PoolHandle, SpawnError, block_until};
pub use runnable::{Runnable, RunnableRef};
pub use worker::current_worker_index;
