//! `TaskFuture`: the handle to a submitted task's result.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::cell::{Slot, Waiter};
use crate::error::TaskError;
use crate::id::TaskId;

/// The result of a submitted task, now or later.
///
/// - Blocking: [`wait`](TaskFuture::wait) returns a reference to the value. Called from inside
///   a task it runs other tasks while it waits, so tasks waiting on tasks cannot deadlock the
///   pool.
/// - Async: `fut.await` gives the value (moved out if this is the last handle, cloned
///   otherwise); `(&fut).await` gives a reference and needs no `Clone`.
/// - Futures are cheap to clone; every clone reads the same result.
///
/// # Dropping
///
/// Dropping a future does **not** cancel its task: the task still runs (its side effects
/// happen), like a detached thread or a dropped `tokio::task::JoinHandle`. Use
/// [`cancel`](TaskFuture::cancel) to stop a task that has not started. The result is freed as
/// soon as nothing can read it any more: when every future of the task is dropped and every
/// task that takes it as input has run.
pub struct TaskFuture<T> {
    pub(crate) slot: Arc<dyn Slot<T>>,
}

impl<T: Send + Sync + 'static> TaskFuture<T> {
    pub(crate) fn new(slot: Arc<dyn Slot<T>>) -> Self {
        TaskFuture { slot }
    }

    /// The task's id, as errors name it.
    pub fn id(&self) -> TaskId {
        self.slot.header().id()
    }

    /// Whether the task finished, failed or was cancelled.
    #[inline]
    pub fn is_done(&self) -> bool {
        self.slot.header().is_complete()
    }

    /// The result if the task is done; never blocks.
    #[inline]
    pub fn try_get(&self) -> Option<Result<&T, TaskError>> {
        self.slot.header().result().map(|r| r.map_err(Clone::clone))
    }

    /// Blocks until the task is done and returns its result.
    ///
    /// On a worker thread (inside a task) this runs other tasks while it waits.
    pub fn wait(&self) -> Result<&T, TaskError> {
        self.block(None);
        match self.try_get() {
            Some(result) => result,
            None => unreachable!("wait returned before the task completed"),
        }
    }

    /// Like [`wait`](TaskFuture::wait), but gives up after `timeout` and returns `None`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<&T, TaskError>> {
        self.block(Some(Instant::now() + timeout));
        self.try_get()
    }

    /// Waits and moves the value out if this is the last handle to it (no other clone of
    /// this future and no pending task reading it), or clones it otherwise.
    pub fn into_result(mut self) -> Result<T, TaskError>
    where
        T: Clone,
    {
        self.block(None);
        self.take_or_clone()
    }

    /// Cancels the task if it has not started: it and every task depending on it resolve to
    /// [`TaskError::Cancelled`]. Returns whether this call cancelled it; a running or finished
    /// task is not affected.
    pub fn cancel(&self) -> bool {
        self.slot.cancel()
    }

    fn block(&self, deadline: Option<Instant>) -> bool {
        let header = self.slot.header();
        if header.is_complete() {
            return true;
        }
        let _waiting = crate::client::Client::waiting_on_worker();
        peer_steal::block_until(
            &|| header.is_complete(),
            &mut |unparker| {
                // Already complete means `done()` sees it on the next check.
                let _ = header.add_waiter(Waiter::Unpark(unparker));
            },
            deadline,
        )
    }

    fn take_or_clone(&mut self) -> Result<T, TaskError>
    where
        T: Clone,
    {
        if let Some(slot) = Arc::get_mut(&mut self.slot)
            && let Some(result) = slot.take_result()
        {
            return result;
        }
        match self.slot.header().result() {
            Some(result) => result.cloned().map_err(Clone::clone),
            None => unreachable!("the result was taken while another handle could read it"),
        }
    }

    fn poll_done(&self, cx: &mut Context<'_>) -> Poll<()> {
        let header = self.slot.header();
        if header.is_complete() {
            return Poll::Ready(());
        }
        match header.add_waiter(Waiter::Waker(cx.waker().clone())) {
            Ok(()) if !header.is_complete() => Poll::Pending,
            _ => Poll::Ready(()),
        }
    }
}

/// Cancel safety: dropping the `.await` before it completes loses nothing; the task runs on and
/// another clone of the future can still read it.
impl<T: Clone + Send + Sync + 'static> Future for TaskFuture<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.poll_done(cx) {
            Poll::Ready(()) => Poll::Ready(self.take_or_clone()),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// `(&fut).await` borrows the value; no `Clone` needed. Cancel safe like the owned form.
impl<'a, T: Send + Sync + 'static> Future for &'a TaskFuture<T> {
    type Output = Result<&'a T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this: &'a TaskFuture<T> = *self;
        match this.poll_done(cx) {
            Poll::Ready(()) => match this.try_get() {
                Some(result) => Poll::Ready(result),
                None => unreachable!("polled ready before the task completed"),
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Clone for TaskFuture<T> {
    fn clone(&self) -> Self {
        TaskFuture {
            slot: self.slot.clone(),
        }
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for TaskFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.slot.header().result() {
            None => "pending",
            Some(Ok(_)) => "finished",
            Some(Err(e)) if e.is_cancelled() => "cancelled",
            Some(Err(_)) => "error",
        };
        f.debug_struct("TaskFuture")
            .field("id", &self.id())
            .field("status", &status)
            .finish()
    }
}
