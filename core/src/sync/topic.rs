//! Named publish/subscribe topics.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::backend::TopicBackend;
use super::{blocking, blocking_timeout};

/// A named publish/subscribe topic: `client.topic::<Tick>("ticks")`.
pub struct Topic<T> {
    backend: Arc<dyn TopicBackend>,
    _value: PhantomData<fn(T) -> T>,
}

/// What a subscriber receives, in publication order; a [`Stream`](futures_core::Stream).
pub struct Subscription<T> {
    backend: Arc<dyn TopicBackend>,
    id: u64,
    missed: u64,
    _value: PhantomData<fn(T) -> T>,
}

/// Values a subscriber buffers before the oldest are dropped (and counted in `missed`).
const SUBSCRIPTION_BUFFER: usize = 1024;

impl<T: Clone + Send + Sync + 'static> Topic<T> {
    pub(crate) fn new(backend: Arc<dyn TopicBackend>) -> Topic<T> {
        Topic {
            backend,
            _value: PhantomData,
        }
    }

    /// Delivers `value` to every current subscriber in this process, and on a swarm sends
    /// it on to the other peers (best-effort, without waiting); returns how many
    /// subscribers here got it.
    pub fn publish(&self, value: T) -> usize {
        self.backend.publish(Arc::new(value))
    }

    /// Subscribes from now on.
    pub fn subscribe(&self) -> Subscription<T> {
        Subscription {
            backend: self.backend.clone(),
            id: self.backend.subscribe(SUBSCRIPTION_BUFFER),
            missed: 0,
            _value: PhantomData,
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Subscription<T> {
    /// The next value, as a future (the blocking calls' view of [`poll_next`]).
    ///
    /// [`poll_next`]: futures_core::Stream::poll_next
    fn next_value(&mut self) -> impl Future<Output = T> + '_ {
        std::future::poll_fn(|cx| self.poll_value(cx))
    }

    fn poll_value(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        let (backend, id) = (self.backend.clone(), self.id);
        backend.poll_next(id, cx).map(|next| {
            self.missed += next.dropped;
            match next.value.downcast_ref::<T>() {
                Some(v) => v.clone(),
                None => unreachable!("topics are keyed by value type"),
            }
        })
    }

    /// The next value, blocking until one is published; inside a task, runs other tasks
    /// meanwhile. (In async code the subscription is a `Stream`.)
    pub fn blocking_next(&mut self) -> T {
        blocking(self.next_value())
    }

    /// Like [`blocking_next`](Subscription::blocking_next), giving up after `timeout`
    /// (`None`).
    pub fn blocking_next_timeout(&mut self, timeout: Duration) -> Option<T> {
        blocking_timeout(self.next_value(), timeout)
    }

    /// Values dropped so far because this subscriber fell more than its buffer behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

/// Cancel safe: a dropped `next()` consumes nothing.
impl<T: Clone + Send + Sync + 'static> futures_core::Stream for Subscription<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.poll_value(cx).map(Some)
    }
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        self.backend.unsubscribe(self.id);
    }
}

impl<T> Clone for Topic<T> {
    fn clone(&self) -> Self {
        Topic {
            backend: self.backend.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Topic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topic").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("missed", &self.missed)
            .finish_non_exhaustive()
    }
}
