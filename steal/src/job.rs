//! What a pool runs.

use std::sync::Arc;

/// A unit of work a [`Pool`](crate::Pool) can run.
///
/// Jobs are reference counted so the same allocation can be both queued and observed (a task
/// cell in `peer-core` is queued as a job and read through its futures).
pub trait Job: Send + Sync + 'static {
    /// Runs the job. Called once for each time the job was spawned.
    fn run(self: Arc<Self>);

    /// The pool shut down before the job could run; release what it holds and tell whoever
    /// waits on it. Called instead of [`run`](Job::run), never as well.
    fn abandon(self: Arc<Self>);
}

/// A queued job: a shared pointer to something that can run.
pub type JobRef = Arc<dyn Job>;
