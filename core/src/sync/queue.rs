//! Named bounded FIFO queues.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::backend::{Payload, QueueBackend, Ticket};
use super::block::block_on;
use super::{blocking, blocking_timeout, deadline, request};

/// A named bounded FIFO queue: `client.queue::<Job>("jobs", 1000)`.
pub struct Queue<T> {
    name: Arc<str>,
    backend: Arc<dyn QueueBackend>,
    _values: PhantomData<fn(T) -> T>,
}

/// The queue is closed (and, for a get, empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// The queue is closed; the value that was not enqueued is handed back.
#[derive(PartialEq, Eq)]
pub struct ClosedError<T>(pub T);

/// Why [`Queue::try_put`] or [`Queue::blocking_put_timeout`] did not enqueue; the value is
/// handed back.
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum PutError<T> {
    /// No room (now, or before the time-out).
    Full(T),
    /// The queue is closed.
    Closed(T),
}

/// Why [`Queue::try_get`] or [`Queue::blocking_get_timeout`] returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GetError {
    /// Nothing to take (now, or before the time-out).
    Empty,
    /// The queue is closed and empty.
    Closed,
}

/// Waits to enqueue a value; see [`Queue::put`]. Cancel safe.
#[must_use = "futures do nothing unless polled"]
pub struct Put<T> {
    backend: Arc<dyn QueueBackend>,
    ticket: Ticket,
    item: Option<Payload>,
    _value: PhantomData<fn(T) -> T>,
}

/// Waits for an item; see [`Queue::get`]. Cancel safe.
#[must_use = "futures do nothing unless polled"]
pub struct Get<T> {
    backend: Arc<dyn QueueBackend>,
    ticket: Ticket,
    _value: PhantomData<fn(T) -> T>,
}

fn unpack<T: 'static>(payload: Payload) -> T {
    match payload.downcast::<T>() {
        Ok(value) => *value,
        Err(_) => unreachable!("queues are keyed by value type, so items have the queue's type"),
    }
}

impl<T: Send + Sync + 'static> Queue<T> {
    pub(crate) fn new(name: &str, backend: Arc<dyn QueueBackend>) -> Queue<T> {
        Queue {
            name: name.into(),
            backend,
            _values: PhantomData,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its capacity.
    pub fn capacity(&self) -> usize {
        self.backend.capacity()
    }

    /// Enqueues, waiting for room. Cancel safe: if dropped before completing, the value was
    /// not enqueued (it is dropped with the future; on a swarm, a put whose request was
    /// already sent may have gone in).
    pub fn put(&self, value: T) -> Put<T> {
        Put {
            backend: self.backend.clone(),
            ticket: Ticket::default(),
            item: Some(Box::new(value)),
            _value: PhantomData,
        }
    }

    /// Enqueues, blocking for room; inside a task, runs other tasks meanwhile.
    pub fn blocking_put(&self, value: T) -> Result<(), ClosedError<T>> {
        blocking(self.put(value))
    }

    /// Like [`blocking_put`](Queue::blocking_put), giving up after `timeout`.
    pub fn blocking_put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        let mut put = self.put(value);
        match block_on(&mut put, deadline(timeout)) {
            Some(Ok(())) => Ok(()),
            Some(Err(ClosedError(v))) => Err(PutError::Closed(v)),
            None => {
                // It may have gone in just as the wait ran out (a remote home's answer
                // arriving): then it was enqueued, and must not be handed back.
                let mut cx = Context::from_waker(Waker::noop());
                if let Poll::Ready(result) = Pin::new(&mut put).poll(&mut cx) {
                    return result.map_err(|ClosedError(v)| PutError::Closed(v));
                }
                put.backend.cancel(&mut put.ticket);
                match put.item.take() {
                    Some(item) => Err(PutError::Full(unpack(item))),
                    None => unreachable!("a put that timed out still holds its value"),
                }
            }
        }
    }

    /// Enqueues if there is room now; never waits in line (on a swarm, one round trip to
    /// the home). Cancel safe: the value is dropped with the future (on a swarm, one whose
    /// request was already sent may have gone in).
    pub async fn try_put(&self, value: T) -> Result<(), PutError<T>> {
        let mut item = Some(Box::new(value) as Payload);
        let answer = request(&*self.backend, |b, t, cx| b.poll_try_put(t, &mut item, cx)).await;
        let back = || match item {
            Some(item) => unpack(item),
            None => unreachable!("a refused put still holds its value"),
        };
        match answer {
            Ok(()) => Ok(()),
            Err(PutError::Closed(())) => Err(PutError::Closed(back())),
            Err(PutError::Full(())) => Err(PutError::Full(back())),
        }
    }

    /// The blocking twin of [`try_put`](Queue::try_put).
    pub fn blocking_try_put(&self, value: T) -> Result<(), PutError<T>> {
        blocking(self.try_put(value))
    }

    /// Takes the oldest item, waiting for one; `Err(Closed)` once closed and drained. Cancel
    /// safe: a dropped `get()` takes nothing.
    pub fn get(&self) -> Get<T> {
        Get {
            backend: self.backend.clone(),
            ticket: Ticket::default(),
            _value: PhantomData,
        }
    }

    /// Takes the oldest item, blocking for one; inside a task, runs other tasks meanwhile.
    pub fn blocking_get(&self) -> Result<T, Closed> {
        blocking(self.get())
    }

    /// Like [`blocking_get`](Queue::blocking_get), giving up after `timeout`.
    pub fn blocking_get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        match blocking_timeout(self.get(), timeout) {
            Some(Ok(value)) => Ok(value),
            Some(Err(Closed)) => Err(GetError::Closed),
            None => Err(GetError::Empty),
        }
    }

    /// Takes the oldest item if there is one now; never waits in line (on a swarm, one
    /// round trip to the home). Cancel safe: a dropped `try_get()` takes nothing.
    pub async fn try_get(&self) -> Result<T, GetError> {
        let answer = request(&*self.backend, |b, t, cx| b.poll_try_get(t, cx)).await;
        answer.map(unpack)
    }

    /// The blocking twin of [`try_get`](Queue::try_get).
    pub fn blocking_try_get(&self) -> Result<T, GetError> {
        blocking(self.try_get())
    }

    /// Refuses new items and wakes every waiter; items already queued can still be taken.
    /// Cancel safe: if dropped, the queue may or may not be closed.
    pub async fn close(&self) {
        request(&*self.backend, |b, t, cx| b.poll_close(t, cx)).await;
    }

    /// The blocking twin of [`close`](Queue::close).
    pub fn blocking_close(&self) {
        blocking(self.close());
    }

    /// Items queued now. Cancel safe.
    pub async fn len(&self) -> usize {
        request(&*self.backend, |b, t, cx| b.poll_len(t, cx)).await
    }

    /// The blocking twin of [`len`](Queue::len).
    pub fn blocking_len(&self) -> usize {
        blocking(self.len())
    }

    /// Whether no item is queued now. Cancel safe.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// The blocking twin of [`is_empty`](Queue::is_empty).
    pub fn blocking_is_empty(&self) -> bool {
        self.blocking_len() == 0
    }
}

impl<T: 'static> Future for Put<T> {
    type Output = Result<(), ClosedError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.backend.poll_put(&mut this.ticket, &mut this.item, cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(Closed)) => match this.item.take() {
                Some(item) => Poll::Ready(Err(ClosedError(unpack(item)))),
                None => unreachable!("a refused put still holds its value"),
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for Put<T> {
    fn drop(&mut self) {
        if self.ticket.0.is_some() {
            self.backend.cancel(&mut self.ticket);
        }
    }
}

impl<T: 'static> Future for Get<T> {
    type Output = Result<T, Closed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.backend
            .poll_get(&mut this.ticket, cx)
            .map(|r| r.map(unpack))
    }
}

impl<T> Drop for Get<T> {
    fn drop(&mut self) {
        if self.ticket.0.is_some() {
            self.backend.cancel(&mut self.ticket);
        }
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            name: self.name.clone(),
            backend: self.backend.clone(),
            _values: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("name", &self.name).finish()
    }
}

impl<T> fmt::Debug for Put<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Put").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Get<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Get").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for ClosedError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClosedError(..)")
    }
}

impl<T> fmt::Display for ClosedError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is closed")
    }
}

impl<T> std::error::Error for ClosedError<T> {}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("the queue is full"),
            PutError::Closed(_) => f.write_str("the queue is closed"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Empty => f.write_str("the queue is empty"),
            GetError::Closed => f.write_str("the queue is closed and empty"),
        }
    }
}

impl std::error::Error for GetError {}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is closed")
    }
}

impl std::error::Error for Closed {}
