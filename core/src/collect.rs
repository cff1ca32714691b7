//! Waiting on many futures: `gather`, `as_completed`, `wait`, `wait_timeout`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use peer_steal::Unparker;

use crate::cell::Waiter;
use crate::error::TaskError;
use crate::future::TaskFuture;

/// Waits for every future and returns the values in order, or the first error in order.
pub fn gather<T, It>(futures: It) -> Result<Vec<T>, TaskError>
where
    It: IntoIterator<Item = TaskFuture<T>>,
    T: Clone + Send + Sync + 'static,
{
    let futures: Vec<TaskFuture<T>> = futures.into_iter().collect();
    // One wake-up when the last one completes, not one per future.
    wait_all(&futures, None);
    futures.into_iter().map(TaskFuture::into_result).collect()
}

/// Completions of a set of futures, in the order they complete. Used by [`as_completed`],
/// [`wait`] and [`wait_timeout`]; registered as a waiter on each future.
pub(crate) struct Group {
    state: Mutex<GroupState>,
}

struct GroupState {
    done: VecDeque<usize>,
    /// Completions seen so far (popping from `done` does not lower it).
    completed: usize,
    /// Wake the waiter once `completed` reaches this: 1 for "any", all for "all", so that
    /// waiting for a thousand futures costs one wake-up, not a thousand.
    wake_at: usize,
    waker: Option<Waker>,
    unparker: Option<Unparker>,
}

impl Group {
    fn new(capacity: usize, wake_at: usize) -> Arc<Group> {
        Arc::new(Group {
            state: Mutex::new(GroupState {
                done: VecDeque::with_capacity(capacity),
                completed: 0,
                wake_at,
                waker: None,
                unparker: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, GroupState> {
        // Every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Future `index` completed.
    pub(crate) fn completed(&self, index: usize) {
        let (waker, unparker) = {
            let mut s = self.lock();
            s.done.push_back(index);
            s.completed += 1;
            if s.completed < s.wake_at {
                return;
            }
            (s.waker.take(), s.unparker.clone())
        };
        if let Some(w) = waker {
            w.wake();
        }
        if let Some(u) = unparker {
            u.unpark();
        }
    }

    fn has_completed(&self) -> bool {
        !self.lock().done.is_empty()
    }

    fn reached_target(&self) -> bool {
        let s = self.lock();
        s.completed >= s.wake_at
    }

    fn pop(&self) -> Option<usize> {
        self.lock().done.pop_front()
    }

    fn watch<'f, T: Send + Sync + 'static>(
        self: &Arc<Self>,
        futures: impl IntoIterator<Item = (usize, &'f TaskFuture<T>)>,
    ) {
        for (index, future) in futures {
            if future
                .slot
                .header()
                .add_waiter(Waiter::Group(self.clone(), index))
                .is_err()
            {
                self.completed(index);
            }
        }
    }

    /// Blocks (helping, on a worker) until `done` holds or the deadline passes.
    fn block(self: &Arc<Self>, done: &dyn Fn() -> bool, deadline: Option<Instant>) -> bool {
        if done() {
            return true;
        }
        let _waiting = crate::Client::waiting_on_worker();
        peer_steal::block_until(done, &mut |u| self.lock().unparker = Some(u), deadline)
    }
}

/// Yields futures as they complete (Dask's `as_completed`), as a blocking [`Iterator`] and as
/// a [`Stream`](futures_core::Stream).
///
/// ```
/// let client = peer_core::Client::builder().workers(2).build().unwrap();
/// let futures = client.map_local(0..10u64, |i| i * i);
/// let total: u64 = peer_core::as_completed(futures).map(|f| *f.wait().unwrap()).sum();
/// assert_eq!(total, 285);
/// ```
pub struct AsCompleted<T> {
    futures: Vec<Option<TaskFuture<T>>>,
    group: Arc<Group>,
    left: usize,
}

/// Yields `futures` in the order they complete.
pub fn as_completed<T, It>(futures: It) -> AsCompleted<T>
where
    It: IntoIterator<Item = TaskFuture<T>>,
    T: Send + Sync + 'static,
{
    let futures: Vec<TaskFuture<T>> = futures.into_iter().collect();
    let group = Group::new(futures.len(), 1);
    group.watch(futures.iter().enumerate());
    AsCompleted {
        left: futures.len(),
        futures: futures.into_iter().map(Some).collect(),
        group,
    }
}

impl<T> AsCompleted<T> {
    fn take_done(&mut self, index: usize) -> TaskFuture<T> {
        self.left -= 1;
        match self.futures[index].take() {
            Some(f) => f,
            None => unreachable!("a future completed twice"),
        }
    }
}

impl<T: Send + Sync + 'static> Iterator for AsCompleted<T> {
    type Item = TaskFuture<T>;

    fn next(&mut self) -> Option<TaskFuture<T>> {
        if self.left == 0 {
            return None;
        }
        loop {
            if let Some(index) = self.group.pop() {
                return Some(self.take_done(index));
            }
            self.group.block(&|| self.group.has_completed(), None);
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// Cancel safety: dropping a pending `next()` loses no future; it is yielded by a later call.
impl<T: Send + Sync + 'static> futures_core::Stream for AsCompleted<T> {
    type Item = TaskFuture<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TaskFuture<T>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let index = {
            let mut s = self.group.lock();
            match s.done.pop_front() {
                Some(i) => i,
                None => {
                    s.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        };
        Poll::Ready(Some(self.take_done(index)))
    }
}

/// When [`wait`] and [`wait_timeout`] return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// As soon as any future is done.
    FirstCompleted,
    /// When every future is done.
    AllCompleted,
}

/// Which futures were done when [`wait`] or [`wait_timeout`] returned, by index into its input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Completion {
    /// Indices of futures that are done.
    pub done: Vec<usize>,
    /// Indices of futures that are not done (non-empty only after [`wait_timeout`]'s timeout,
    /// or with [`WaitFor::FirstCompleted`]).
    pub not_done: Vec<usize>,
}

/// Waits until the first or all of `futures` are done (Python's `concurrent.futures.wait`;
/// Dask's `wait`) and says which are. Inside a task it runs other tasks while it waits.
/// [`wait_timeout`] gives up after a time.
///
/// ```
/// use peer_core::{Client, WaitFor};
///
/// let client = Client::builder().workers(2).build().unwrap();
/// let futures = client.map_local(0..4u64, |i| i + 1);
/// let all = peer_core::wait(&futures, WaitFor::AllCompleted);
/// assert_eq!(all.done, vec![0, 1, 2, 3]);
/// assert!(all.not_done.is_empty());
/// ```
pub fn wait<T: Send + Sync + 'static>(futures: &[TaskFuture<T>], until: WaitFor) -> Completion {
    wait_until(futures, until, None)
}

/// [`wait`], giving up once `timeout` passes (the `timeout` argument of Python's
/// `concurrent.futures.wait`). It does not fail on a timeout: the futures still running are in
/// [`Completion::not_done`].
///
/// ```
/// use std::time::Duration;
/// use peer_core::{Client, WaitFor};
///
/// let client = Client::builder().workers(2).build().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel::<()>();
/// let stuck = client.submit_local(move || rx.recv().unwrap());
/// let quick = client.submit_local(|| ());
/// let futures = [stuck, quick];
///
/// let r = peer_core::wait_timeout(&futures, WaitFor::AllCompleted, Duration::from_millis(50));
/// assert_eq!(r.done, vec![1]);
/// assert_eq!(r.not_done, vec![0]);
/// tx.send(()).unwrap(); // let the pool finish the stuck task
/// ```
pub fn wait_timeout<T: Send + Sync + 'static>(
    futures: &[TaskFuture<T>],
    until: WaitFor,
    timeout: Duration,
) -> Completion {
    wait_until(futures, until, Some(Instant::now() + timeout))
}

/// [`wait`] and [`wait_timeout`]: `None` waits as long as it takes.
fn wait_until<T: Send + Sync + 'static>(
    futures: &[TaskFuture<T>],
    until: WaitFor,
    deadline: Option<Instant>,
) -> Completion {
    match until {
        WaitFor::AllCompleted => wait_all(futures, deadline),
        WaitFor::FirstCompleted => {
            if !futures.iter().any(TaskFuture::is_done) && !futures.is_empty() {
                let group = Group::new(futures.len(), 1);
                group.watch(futures.iter().enumerate());
                group.block(&|| group.reached_target(), deadline);
            }
        }
    }
    let (done, not_done) = (0..futures.len()).partition(|&i| futures[i].is_done());
    Completion { done, not_done }
}

/// Blocks until every future is done or the deadline passes, with a single wake-up.
fn wait_all<T: Send + Sync + 'static>(futures: &[TaskFuture<T>], deadline: Option<Instant>) {
    // Decide once which to watch: one that completes meanwhile still counts, because `watch`
    // records a future that is already complete at registration.
    let pending: Vec<(usize, &TaskFuture<T>)> = futures
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.is_done())
        .collect();
    if pending.is_empty() {
        return;
    }
    let group = Group::new(pending.len(), pending.len());
    group.watch(pending);
    group.block(&|| group.reached_target(), deadline);
}
