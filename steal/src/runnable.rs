//! What a pool runs.

use std::sync::Arc;

/// A unit of work a [`Pool`](crate::Pool) can run. (Not `Job`: `peer-net` has detached
/// jobs, a user-facing idea; this is the pool's plumbing.)
///
/// Runnables are reference counted so the same allocation can be both queued and observed (a task
/// cell in `peer-core` is queued as a job and read through its futures).
pub trait Runnable: Send + Sync + 'static {
    /// Runs the job. Called once for each time the job was spawned.
    fn run(self: Arc<Self>);

    /// The pool shut down before the job could run; release what it holds and tell whoever
    /// waits on it. Called instead of [`run`](Runnable::run), never as well.
    fn abandon(self: Arc<Self>);
}

/// A queued job: a shared pointer to something that can run.
pub type RunnableRef = Arc<dyn Runnable>;
