//! Futures completed from outside the pool: how results computed on another peer reach the
//! same [`TaskFuture`]s, `gather` and `as_completed` as local ones.

use std::fmt;
use std::sync::Arc;

use crate::cell::{Slot, promised};
use crate::error::TaskError;
use crate::future::TaskFuture;
use crate::id::TaskId;

/// The writing end of a [`TaskFuture`] whose value comes from elsewhere.
///
/// ```
/// use peer_core::Promise;
///
/// let (promise, future) = Promise::new();
/// std::thread::spawn(move || promise.complete(Ok(6 * 7)));
/// assert_eq!(future.wait(), Ok(&42));
/// ```
///
/// Dropping a promise without completing it fails its future with
/// [`TaskError::Shutdown`], so no reader waits forever.
pub struct Promise<T: Send + Sync + 'static> {
    slot: Option<Arc<dyn Slot<T>>>,
}

impl<T: Send + Sync + 'static> Promise<T> {
    /// A promise and the future it completes.
    pub fn new() -> (Promise<T>, TaskFuture<T>) {
        let slot = promised();
        (
            Promise {
                slot: Some(slot.clone()),
            },
            TaskFuture::new(slot),
        )
    }

    /// The id of the future's task.
    pub fn id(&self) -> TaskId {
        match &self.slot {
            Some(slot) => slot.header().id(),
            None => unreachable!("a promise holds its slot until completed or dropped"),
        }
    }

    /// Whether every future of this promise was dropped, so nobody can read the value.
    pub fn is_abandoned(&self) -> bool {
        self.slot.as_ref().is_none_or(|s| Arc::strong_count(s) == 1)
    }

    /// Completes the future: wakes its waiters and starts its dependents.
    pub fn complete(mut self, result: Result<T, TaskError>) {
        if let Some(slot) = self.slot.take() {
            slot.header().complete(result);
        }
    }
}

impl<T: Send + Sync + 'static> Drop for Promise<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let task = slot.header().id();
            slot.header().complete(Err(TaskError::Shutdown { task }));
        }
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Promise").field("task", &self.id()).finish()
    }
}

#[cfg(all(test, not(peer_loom)))]
mod tests {
    use super::*;
    use crate::Client;

    #[test]
    fn a_dropped_promise_fails_its_future_instead_of_hanging() {
        let (promise, future) = Promise::<u32>::new();
        let id = promise.id();
        drop(promise);
        assert_eq!(future.wait(), Err(TaskError::Shutdown { task: id }));
    }

    #[test]
    fn dependents_of_a_promised_future_run_when_it_completes() {
        let client = Client::builder().workers(2).build().unwrap();
        let (promise, future) = Promise::new();
        let doubled = client.submit_local_with(&future, |x: &u64| x * 2);
        assert!(!promise.is_abandoned());
        assert!(
            doubled
                .wait_timeout(std::time::Duration::from_millis(20))
                .is_none()
        );
        promise.complete(Ok(21));
        assert_eq!(doubled.wait(), Ok(&42));
    }

    #[test]
    fn a_promise_knows_when_nobody_can_read_it() {
        let (promise, future) = Promise::<u8>::new();
        drop(future);
        assert!(promise.is_abandoned());
    }
}
