//! Coordination primitives by name: locks, semaphores, queues, variables, events, topics.
//!
//! Like Dask's `Lock("db")`, each is obtained from a client by name, and every handle with
//! the same name (and, for typed ones, the same value type) shares one state:
//!
//! ```
//! use peer_core::Client;
//!
//! let client = Client::builder().workers(2).build().unwrap();
//! let jobs = client.queue::<u32>("jobs", 100);
//! let worker = client.submit_local({
//!     let jobs = client.queue::<u32>("jobs", 100);
//!     move || {
//!         let mut sum = 0;
//!         while let Ok(job) = jobs.blocking_get() {   // another thread runs tasks meanwhile
//!             sum += job;
//!         }
//!         sum
//!     }
//! });
//! for job in 1..=10 {
//!     jobs.blocking_put(job).unwrap();
//! }
//! jobs.close();
//! assert_eq!(worker.wait(), Ok(&55));
//! ```
//!
//! Every waiting method comes as an `async fn` and a `blocking_*` twin. A blocking one called
//! inside a task parks its worker and lets a compensating thread run the pool's other tasks
//! until it resumes (like Dask's `secede`), so a task blocked on a queue never stops the task
//! that would fill it — not even when every worker is blocked.
//!
//! # Fairness
//!
//! Waiters are not served in strict arrival order: when a permit, an item or room frees up,
//! every waiter is woken and the first to poll takes it, so nothing is ever handed to a waiter
//! that is slow to collect it (an executor that polls late, a thread that is descheduled).
//!
//! # Cancel safety
//!
//! Every future here can be dropped before it completes without losing anything: a dropped
//! `lock()`/`acquire()` leaves the line holding nothing (a permit is only taken by the poll
//! that returns it); a dropped `get()` takes no item; a dropped `put()` does not enqueue its value (the
//! value is dropped with the future); dropped `changed()`, `wait()` and stream reads leave no
//! trace. The `blocking_*_timeout` methods are built on this.
//!
//! # Leases and fencing tokens
//!
//! A lock or permit can be taken with a lease. When the lease runs out without a
//! [`renew`](Permit::renew), the permit is taken back and given to the next waiter, even if
//! its holder is still running (hung, or on a swarm, partitioned away). Each grant carries a
//! [`FencingToken`] that grows with every grant of that primitive. A resource that the lock
//! protects should remember the highest token it has accepted and reject writes carrying a
//! lower one: that is what tells a stale holder, whose lease expired, from the current one.
//! [`Permit::is_held`] tells a holder whether it still holds the permit.
//!
//! # Backends
//!
//! The typed handles sit on a [`Backend`]: the in-process one by default; the swarm client
//! of `peer-net` supplies one that keeps each name's state on a home peer.

mod backend;
mod block;
mod local;
#[cfg(all(test, peer_loom))]
mod loom_tests;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub use backend::{
    Backend, Closed, Codec, EventBackend, Expired, FencingToken, Grant, Payload, QueueBackend,
    SemaphoreBackend, Ticket, TopicBackend, VariableBackend,
};
pub use local::LocalBackend;

use block::block_on;

use crate::client::Client;

/// Named primitives. Typed ones (queues, variables, topics) are keyed by name and value type.
impl Client {
    /// The lock `name`, shared by every handle of that name.
    pub fn lock(&self, name: &str) -> Lock {
        Lock::new(Semaphore::new(
            name,
            self.backend().semaphore(&keys::lock(name), 1),
        ))
    }

    /// The semaphore `name` with `permits` permits (the count of its first creation wins).
    pub fn semaphore(&self, name: &str, permits: usize) -> Semaphore {
        Semaphore::new(
            name,
            self.backend().semaphore(&keys::semaphore(name), permits),
        )
    }

    /// The queue `name` of `T`s holding at most `capacity` items (the capacity of its first
    /// creation wins; at least 1).
    pub fn queue<T>(&self, name: &str, capacity: usize) -> Queue<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        Queue::new(
            name,
            self.backend()
                .queue(&keys::queue::<T>(name), capacity, Codec::of::<T>()),
        )
    }

    /// The variable `name` holding a `T`.
    pub fn variable<T>(&self, name: &str) -> Variable<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        Variable::new(
            self.backend()
                .variable(&keys::variable::<T>(name), Codec::of::<T>()),
        )
    }

    /// The event `name`.
    pub fn event(&self, name: &str) -> Event {
        Event::new(self.backend().event(&keys::event(name)))
    }

    /// The topic `name` carrying `T`s.
    pub fn topic<T>(&self, name: &str) -> Topic<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        Topic::new(
            self.backend()
                .topic(&keys::topic::<T>(name), Codec::of::<T>()),
        )
    }
}

fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

// ---------------------------------------------------------------------------------------
// Locks and semaphores

/// A named mutual-exclusion lock: `client.lock("db")`.
#[derive(Clone)]
pub struct Lock {
    sem: Semaphore,
}

/// A named semaphore with a fixed number of permits: `client.semaphore("gpu", 2)`.
#[derive(Clone)]
pub struct Semaphore {
    name: Arc<str>,
    backend: Arc<dyn SemaphoreBackend>,
}

/// A held lock or semaphore permit; released when dropped.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct Permit {
    backend: Arc<dyn SemaphoreBackend>,
    grant: Grant,
    released: bool,
}

/// A held lock.
pub type LockGuard = Permit;

/// Waits for a permit; see [`Semaphore::acquire`]. Cancel safe.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire {
    backend: Arc<dyn SemaphoreBackend>,
    ticket: Ticket,
    lease: Option<Duration>,
}

impl Semaphore {
    pub(crate) fn new(name: &str, backend: Arc<dyn SemaphoreBackend>) -> Semaphore {
        Semaphore {
            name: name.into(),
            backend,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for a permit. Cancel safe: dropping the future leaves the line.
    pub fn acquire(&self) -> Acquire {
        self.acquire_leased(None)
    }

    /// Waits for a permit that is taken back if not renewed within `lease`.
    pub fn acquire_with_lease(&self, lease: Duration) -> Acquire {
        self.acquire_leased(Some(lease))
    }

    fn acquire_leased(&self, lease: Option<Duration>) -> Acquire {
        Acquire {
            backend: self.backend.clone(),
            ticket: Ticket::default(),
            lease,
        }
    }

    /// Blocks until a permit is free; inside a task, runs other tasks meanwhile.
    pub fn blocking_acquire(&self) -> Permit {
        match block_on(&mut self.acquire(), None) {
            Some(permit) => permit,
            None => unreachable!("waiting without a deadline returned"),
        }
    }

    /// Like [`blocking_acquire`](Semaphore::blocking_acquire), giving up after `timeout`.
    pub fn blocking_acquire_timeout(&self, timeout: Duration) -> Option<Permit> {
        block_on(&mut self.acquire(), deadline(timeout))
    }

    /// Blocks for a leased permit, giving up after `timeout` if given.
    pub fn blocking_acquire_with_lease(
        &self,
        lease: Duration,
        timeout: Option<Duration>,
    ) -> Option<Permit> {
        block_on(
            &mut self.acquire_with_lease(lease),
            timeout.and_then(deadline),
        )
    }

    /// A permit if one is free now and nobody waits ahead.
    pub fn try_acquire(&self) -> Option<Permit> {
        self.backend.try_acquire(None).map(|grant| Permit {
            backend: self.backend.clone(),
            grant,
            released: false,
        })
    }

    /// Permits free now.
    pub fn available(&self) -> usize {
        self.backend.available()
    }
}

impl Future for Acquire {
    type Output = Permit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let this = &mut *self;
        this.backend
            .poll_acquire(&mut this.ticket, this.lease, cx)
            .map(|grant| Permit {
                backend: this.backend.clone(),
                grant,
                released: false,
            })
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if self.ticket.0.is_some() {
            self.backend.cancel(&mut self.ticket);
        }
    }
}

impl Lock {
    pub(crate) fn new(sem: Semaphore) -> Lock {
        Lock { sem }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.sem.name()
    }

    /// Waits for the lock. Cancel safe: a dropped `lock()` leaves the line and leaks nothing.
    pub fn lock(&self) -> Acquire {
        self.sem.acquire()
    }

    /// Waits for the lock, held for at most `lease` unless renewed.
    pub fn lock_with_lease(&self, lease: Duration) -> Acquire {
        self.sem.acquire_with_lease(lease)
    }

    /// Blocks for the lock; inside a task, runs other tasks meanwhile.
    pub fn blocking_lock(&self) -> LockGuard {
        self.sem.blocking_acquire()
    }

    /// Like [`blocking_lock`](Lock::blocking_lock), giving up after `timeout`.
    pub fn blocking_lock_timeout(&self, timeout: Duration) -> Option<LockGuard> {
        self.sem.blocking_acquire_timeout(timeout)
    }

    /// Blocks for the lock with a lease, giving up after `timeout` if given.
    pub fn blocking_lock_with_lease(
        &self,
        lease: Duration,
        timeout: Option<Duration>,
    ) -> Option<LockGuard> {
        self.sem.blocking_acquire_with_lease(lease, timeout)
    }

    /// The lock if it is free now.
    pub fn try_lock(&self) -> Option<LockGuard> {
        self.sem.try_acquire()
    }

    /// Whether someone holds it now.
    pub fn is_locked(&self) -> bool {
        self.sem.available() == 0
    }
}

impl Permit {
    /// Its fencing token: compare it at the protected resource.
    pub fn token(&self) -> FencingToken {
        self.grant.token
    }

    /// When its lease runs out, if it has one.
    pub fn expires(&self) -> Option<Instant> {
        self.grant.expires
    }

    /// Whether it is still held (false once its lease ran out).
    pub fn is_held(&self) -> bool {
        !self.released && self.backend.is_held(self.grant.token)
    }

    /// Extends the lease to `lease` from now; fails if it already ran out.
    pub fn renew(&mut self, lease: Duration) -> Result<(), Expired> {
        self.grant = self.backend.renew(self.grant.token, lease)?;
        Ok(())
    }

    /// Releases now, reporting whether it was still held.
    pub fn release(mut self) -> Result<(), Expired> {
        self.released = true;
        self.backend.release(self.grant.token)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.released {
            // An expired permit was already taken back; nothing else to do.
            self.backend.release_soon(self.grant.token);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Queues

/// A named bounded FIFO queue: `client.queue::<Job>("jobs", 1000)`.
pub struct Queue<T> {
    name: Arc<str>,
    backend: Arc<dyn QueueBackend>,
    _values: PhantomData<fn(T) -> T>,
}

/// The queue is closed; the value that was not enqueued is handed back.
#[derive(PartialEq, Eq)]
pub struct ClosedError<T>(pub T);

/// Why [`Queue::try_put`] or [`Queue::blocking_put_timeout`] did not enqueue; the value is
/// handed back.
#[derive(PartialEq, Eq)]
pub enum PutError<T> {
    /// No room (now, or before the timeout).
    Full(T),
    /// The queue is closed.
    Closed(T),
}

/// Why a non-blocking or timed get returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetError {
    /// Nothing to take (now, or before the timeout).
    Empty,
    /// The queue is closed and empty.
    Closed,
}

/// Waits to enqueue a value; see [`Queue::put`].
#[must_use = "futures do nothing unless polled"]
pub struct Put<T> {
    backend: Arc<dyn QueueBackend>,
    ticket: Ticket,
    item: Option<Payload>,
    _value: PhantomData<fn(T) -> T>,
}

/// Waits for an item; see [`Queue::get`].
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

    /// Enqueues, waiting for room. Cancel safe: if dropped before completing, the value was
    /// not enqueued (it is dropped with the future).
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
        match block_on(&mut self.put(value), None) {
            Some(result) => result,
            None => unreachable!("waiting without a deadline returned"),
        }
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
                let mut cx = Context::from_waker(std::task::Waker::noop());
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

    /// Enqueues if there is room now.
    pub fn try_put(&self, value: T) -> Result<(), PutError<T>> {
        match self.backend.try_put(Box::new(value)) {
            Ok(()) => Ok(()),
            Err((item, Some(Closed))) => Err(PutError::Closed(unpack(item))),
            Err((item, None)) => Err(PutError::Full(unpack(item))),
        }
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
        match block_on(&mut self.get(), None) {
            Some(result) => result,
            None => unreachable!("waiting without a deadline returned"),
        }
    }

    /// Like [`blocking_get`](Queue::blocking_get), giving up after `timeout`.
    pub fn blocking_get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        match block_on(&mut self.get(), deadline(timeout)) {
            Some(Ok(value)) => Ok(value),
            Some(Err(Closed)) => Err(GetError::Closed),
            None => Err(GetError::Empty),
        }
    }

    /// Takes the oldest item if there is one now.
    pub fn try_get(&self) -> Result<T, GetError> {
        match self.backend.try_get() {
            Ok(Some(item)) => Ok(unpack(item)),
            Ok(None) => Err(GetError::Empty),
            Err(Closed) => Err(GetError::Closed),
        }
    }

    /// Refuses new items and wakes every waiter; items already queued can still be taken.
    pub fn close(&self) {
        self.backend.close();
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.backend.len()
    }

    /// Whether no item is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its capacity.
    pub fn capacity(&self) -> usize {
        self.backend.capacity()
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

// ---------------------------------------------------------------------------------------
// Variables, events, topics

/// A named cell with the latest value and a version that grows on every set:
/// `client.variable::<Params>("params")`.
pub struct Variable<T> {
    backend: Arc<dyn VariableBackend>,
    _value: PhantomData<fn(T) -> T>,
}

/// A named flag tasks can wait on: `client.event("ready")`.
#[derive(Clone)]
pub struct Event {
    backend: Arc<dyn EventBackend>,
}

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

/// A future that polls a backend with a ticket and withdraws it when dropped.
struct Waiting<F, C>
where
    F: FnMut(&mut Ticket, &mut Context<'_>) -> Poll<u64>,
    C: FnMut(&mut Ticket),
{
    ticket: Ticket,
    poll: F,
    cancel: C,
}

impl<F, C> Future for Waiting<F, C>
where
    F: FnMut(&mut Ticket, &mut Context<'_>) -> Poll<u64> + Unpin,
    C: FnMut(&mut Ticket) + Unpin,
{
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let this = &mut *self;
        (this.poll)(&mut this.ticket, cx)
    }
}

impl<F, C> Drop for Waiting<F, C>
where
    F: FnMut(&mut Ticket, &mut Context<'_>) -> Poll<u64>,
    C: FnMut(&mut Ticket),
{
    fn drop(&mut self) {
        if self.ticket.0.is_some() {
            (self.cancel)(&mut self.ticket);
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Variable<T> {
    pub(crate) fn new(backend: Arc<dyn VariableBackend>) -> Variable<T> {
        Variable {
            backend,
            _value: PhantomData,
        }
    }

    /// Replaces the value and wakes everyone waiting for a change; returns the new version.
    pub fn set(&self, value: T) -> u64 {
        self.backend.set(Arc::new(value))
    }

    /// Replaces the value unless a write with a higher fencing token was accepted before:
    /// the variable is then a resource guarded by a lock, and a holder whose lease ran out
    /// (its token is older than the current holder's) cannot overwrite it.
    pub fn set_fenced(&self, value: T, token: FencingToken) -> Result<u64, Fenced> {
        self.backend
            .set_fenced(Arc::new(value), token)
            .map_err(|highest| Fenced { token, highest })
    }

    /// The value, if ever set.
    pub fn get(&self) -> Option<T> {
        self.get_versioned().map(|(v, _)| v)
    }

    /// The value with its version, if ever set.
    pub fn get_versioned(&self) -> Option<(T, u64)> {
        let (value, version) = self.backend.get()?;
        value.downcast_ref::<T>().map(|v| (v.clone(), version))
    }

    /// The current version (0 before the first set).
    pub fn version(&self) -> u64 {
        self.backend.get().map_or(0, |(_, v)| v)
    }

    /// Waits until the version is above `seen`; returns the new version. Cancel safe.
    pub fn changed(&self, seen: u64) -> impl Future<Output = u64> + Unpin + use<T> {
        let (a, b) = (self.backend.clone(), self.backend.clone());
        Waiting {
            ticket: Ticket::default(),
            poll: move |t: &mut Ticket, cx: &mut Context<'_>| a.poll_changed(t, seen, cx),
            cancel: move |t: &mut Ticket| b.cancel(t),
        }
    }

    /// Blocks until the version is above `seen`, or `timeout` passes (`None`).
    pub fn blocking_changed(&self, seen: u64, timeout: Option<Duration>) -> Option<u64> {
        block_on(&mut self.changed(seen), timeout.and_then(deadline))
    }
}

impl Event {
    pub(crate) fn new(backend: Arc<dyn EventBackend>) -> Event {
        Event { backend }
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.backend.set();
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.backend.clear();
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.backend.is_set()
    }

    /// Waits until the flag is set. Cancel safe.
    pub fn wait(&self) -> impl Future<Output = ()> + Unpin + use<> {
        let (a, b) = (self.backend.clone(), self.backend.clone());
        let waiting = Waiting {
            ticket: Ticket::default(),
            poll: move |t: &mut Ticket, cx: &mut Context<'_>| a.poll_wait(t, cx).map(|()| 0),
            cancel: move |t: &mut Ticket| b.cancel(t),
        };
        UnitFuture(waiting)
    }

    /// Blocks until the flag is set; inside a task, runs other tasks meanwhile.
    pub fn blocking_wait(&self) {
        let _ = block_on(&mut self.wait(), None);
    }

    /// Like [`blocking_wait`](Event::blocking_wait); returns whether the flag was set in time.
    pub fn blocking_wait_timeout(&self, timeout: Duration) -> bool {
        block_on(&mut self.wait(), deadline(timeout)).is_some()
    }
}

/// Maps a `u64` future to `()`.
struct UnitFuture<F>(F);

impl<F: Future<Output = u64> + Unpin> Future for UnitFuture<F> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

impl<T: Clone + Send + Sync + 'static> Topic<T> {
    pub(crate) fn new(backend: Arc<dyn TopicBackend>) -> Topic<T> {
        Topic {
            backend,
            _value: PhantomData,
        }
    }

    /// Delivers `value` to every current subscriber; returns how many.
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
    fn poll_value(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        let (backend, id) = (self.backend.clone(), self.id);
        backend.poll_next(id, cx).map(|(value, dropped)| {
            self.missed += dropped;
            match value.downcast_ref::<T>() {
                Some(v) => v.clone(),
                None => unreachable!("topics are keyed by value type"),
            }
        })
    }

    /// The next value, blocking; `None` if `timeout` passes first.
    pub fn blocking_next(&mut self, timeout: Option<Duration>) -> Option<T> {
        let mut next = std::future::poll_fn(|cx| self.poll_value(cx));
        block_on(&mut next, timeout.and_then(deadline))
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

impl<T> Clone for Variable<T> {
    fn clone(&self) -> Self {
        Variable {
            backend: self.backend.clone(),
            _value: PhantomData,
        }
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

/// The keys a [`Backend`] is asked for: the kind and the name, and for typed primitives the
/// value type, so that two handles of different kinds or types never share (and never
/// mis-read) one state. A swarm places each key on its home peer.
pub mod keys {
    use std::any::type_name;

    /// The key of lock `name`.
    pub fn lock(name: &str) -> String {
        format!("lock/{name}")
    }

    /// The key of semaphore `name`.
    pub fn semaphore(name: &str) -> String {
        format!("semaphore/{name}")
    }

    /// The key of queue `name` of `T`s.
    pub fn queue<T>(name: &str) -> String {
        format!("queue/{name}/{}", type_name::<T>())
    }

    /// The key of variable `name` of `T`.
    pub fn variable<T>(name: &str) -> String {
        format!("variable/{name}/{}", type_name::<T>())
    }

    /// The key of event `name`.
    pub fn event(name: &str) -> String {
        format!("event/{name}")
    }

    /// The key of topic `name` of `T`s.
    pub fn topic<T>(name: &str) -> String {
        format!("topic/{name}/{}", type_name::<T>())
    }
}

macro_rules! debug_by_name {
    ($($t:ty),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t)).finish_non_exhaustive()
            }
        }
    )*};
}
debug_by_name!(Lock, Semaphore, Permit, Acquire, Event);

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("name", &self.name).finish()
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
        f.write_str("closed")
    }
}

impl std::error::Error for Closed {}

impl fmt::Display for Expired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is no longer held: its lease ran out or it was released",
            self.0
        )
    }
}

impl std::error::Error for Expired {}

/// A [`Variable::set_fenced`] refused: a write with a higher token was accepted before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fenced {
    /// The token of the refused write.
    pub token: FencingToken,
    /// The highest token accepted so far.
    pub highest: FencingToken,
}

impl fmt::Display for Fenced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "write with {} refused: {} was accepted before (the lock was taken back and given on)",
            self.token, self.highest
        )
    }
}

impl std::error::Error for Fenced {}

#[cfg(all(test, not(peer_loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts the names asked of it and serves them from an in-process backend.
    #[derive(Default)]
    struct Counting {
        inner: LocalBackend,
        asked: AtomicUsize,
    }

    impl Backend for Counting {
        fn semaphore(&self, name: &str, permits: usize) -> Arc<dyn SemaphoreBackend> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            self.inner.semaphore(name, permits)
        }
        fn queue(&self, name: &str, capacity: usize, codec: Codec) -> Arc<dyn QueueBackend> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            self.inner.queue(name, capacity, codec)
        }
        fn variable(&self, name: &str, codec: Codec) -> Arc<dyn VariableBackend> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            self.inner.variable(name, codec)
        }
        fn event(&self, name: &str) -> Arc<dyn EventBackend> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            self.inner.event(name)
        }
        fn topic(&self, name: &str, codec: Codec) -> Arc<dyn TopicBackend> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            self.inner.topic(name, codec)
        }
    }

    #[test]
    fn a_client_uses_the_backend_it_was_built_with() {
        let backend = Arc::new(Counting::default());
        let client = Client::builder()
            .workers(1)
            .backend(backend.clone())
            .build()
            .unwrap();
        let _ = client.lock("a").try_lock().unwrap();
        client.queue::<u8>("q", 1).try_put(1).unwrap();
        client.event("e").set();
        assert_eq!(backend.asked.load(Ordering::SeqCst), 3);
        // Clones and the view inside tasks share it.
        let inner = client.submit_local(|| Client::with_current(|c| c.event("e").is_set()));
        assert_eq!(inner.wait(), Ok(&Some(true)));
        assert_eq!(backend.asked.load(Ordering::SeqCst), 4);
    }
}
