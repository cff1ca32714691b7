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
//! jobs.blocking_close();
//! assert_eq!(worker.wait(), Ok(&55));
//! ```
//!
//! # Calls and their cost
//!
//! On a local client a primitive is a mutex in this process; on a swarm client (`peer-net`)
//! its state lives on a *home* peer, and every call that reads or changes it is a round trip
//! there. So every such call is an `async fn` (or returns a future) with a `blocking_*` twin,
//! as in tokio: `lock.try_lock().await` or `lock.blocking_try_lock()`, `queue.len().await`
//! or `queue.blocking_len()`, `variable.get().await` or `variable.blocking_get()`. On a local
//! client these answer at once. What needs no answer is a plain call: names, a queue's
//! [`capacity`](Queue::capacity), a permit's [`token`](Permit::token) and
//! [`expires`](Permit::expires), [`Topic::publish`] (delivered here at once, sent on to other
//! peers), [`Topic::subscribe`], and dropping a [`Permit`] (released without waiting for the
//! answer).
//!
//! A blocking call inside a task parks its worker and lets a compensating thread run the
//! pool's other tasks until it resumes (like Dask's `secede`), so a task blocked on a queue
//! never stops the task that would fill it — not even when every worker is blocked.
//!
//! # Time-outs: one convention
//!
//! Some calls wait for something to happen: a permit ([`Semaphore::acquire`],
//! [`Lock::lock`]), an item or room ([`Queue::get`], [`Queue::put`]), a change
//! ([`Variable::changed`]), the flag ([`Event::wait`]), the next value of a
//! [`Subscription`]. Each waits as long as it takes, and each has one bounded blocking
//! form, named `blocking_*_timeout`, whose last argument is a [`Duration`]:
//!
//! | waits forever | gives up after `timeout` | when time runs out |
//! |---|---|---|
//! | `blocking_lock()`, `blocking_acquire()` | `blocking_lock_timeout(d)`, `blocking_acquire_timeout(d)` | `None` |
//! | `blocking_lock_with_lease(l)`, `blocking_acquire_with_lease(l)` | `blocking_lock_with_lease_timeout(l, d)`, `blocking_acquire_with_lease_timeout(l, d)` | `None` |
//! | `blocking_put(v)` | `blocking_put_timeout(v, d)` | `Err(PutError::Full(v))` |
//! | `blocking_get()` | `blocking_get_timeout(d)` | `Err(GetError::Empty)` |
//! | `blocking_changed(seen)` | `blocking_changed_timeout(seen, d)` | `None` |
//! | `blocking_wait()` | `blocking_wait_timeout(d)` | `false` |
//! | `blocking_next()` | `blocking_next_timeout(d)` | `None` |
//!
//! In async code, bound a wait with your runtime's time-out (`tokio::time::timeout`): every
//! future here is cancel safe. Calls that only ask (`try_*`, `len`, `get`, `is_held`, ...)
//! have no time-out form: they never wait in a line, and on a swarm they take one round
//! trip, answered as soon as the home (or, when it died, its successor) is reached.
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
//! `lock()`/`acquire()`/`try_lock()` leaves the line holding nothing (a permit granted
//! meanwhile is handed on); a dropped `get()`/`try_get()` takes no item; a dropped `put()`
//! does not enqueue its value (the value is dropped with the future; on a swarm, a put whose
//! request was already sent may have gone in, and stays queued); a dropped `release()`
//! still releases; dropped `changed()`, `wait()`, reads and stream reads leave no trace; a
//! dropped `set()`, `clear()`, `close()` or `renew()` may or may not have taken effect. The
//! `blocking_*_timeout` methods are built on this.
//!
//! # When a swarm peer stops
//!
//! A local client's primitives live as long as its handles. On a swarm client a handle
//! reaches its primitive through its peer, which stops when the last clone of its client is
//! dropped; a handle can outlive that (kept by a thread, say). From then on nothing can answer
//! it, and a call that waits ends at once instead of waiting for ever:
//!
//! - a queue's `get` and `put` (and their `blocking_*` forms) as if the queue were closed:
//!   `Err(Closed)`, `Err(ClosedError(value))`, `Err(GetError::Closed)`,
//!   `Err(PutError::Closed(value))`;
//! - the waits that have no error to give, timed or not: a permit ([`Lock::lock`],
//!   [`Semaphore::acquire`] and their lease and `blocking_*` forms), [`Variable::changed`],
//!   [`Event::wait`]. They **panic**, with a message that names the primitive and says that
//!   its peer stopped (inside a task, the task fails with [`TaskError::Panicked`]), rather
//!   than hand out a permit, a version or a flag that nobody granted;
//! - calls that only ask get the answer of a refusal: `try_lock` and `try_acquire` give
//!   `None`, `try_put` `Full`, `try_get` `Empty`, `len` and `available` 0, `is_set` and
//!   `is_held` `false`, `get` `None`.
//!
//! A [`Subscription`] still receives what this process publishes.
//!
//! [`TaskError::Panicked`]: crate::TaskError::Panicked
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

pub(crate) mod backend;
mod block;
pub(crate) mod local;
#[cfg(all(test, peer_loom))]
mod loom_tests;
mod queue;
mod semaphore;
mod topic;
mod variable;

use std::future::Future;
use std::ops::Deref;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub use queue::{Closed, ClosedError, Get, GetError, Put, PutError, Queue};
pub use semaphore::{Acquire, Expired, FencingToken, Lock, Permit, Semaphore};
pub use topic::{Subscription, Topic};
pub use variable::{Event, Fenced, Variable, Versioned};

// The old path of `crate::ext::keys`, for a doc link of `peer-net` until it links there
// (issue 20): hidden, and to be removed with its last user.
use backend::keys;

use backend::{Codec, EventBackend, QueueBackend, SemaphoreBackend, Ticket, VariableBackend};

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

/// Withdraws a call of a backend whose future was dropped.
trait Withdraw {
    fn withdraw(&self, ticket: &mut Ticket);
}

macro_rules! withdraw_by_cancel {
    ($($backend:ident),*) => {$(
        impl Withdraw for dyn $backend {
            fn withdraw(&self, ticket: &mut Ticket) {
                self.cancel(ticket);
            }
        }
    )*};
}
withdraw_by_cancel!(
    SemaphoreBackend,
    QueueBackend,
    VariableBackend,
    EventBackend
);

/// One call of a backend: polls it with its ticket until answered, and withdraws it if
/// dropped before. `P` is how the call holds its backend: borrowed (`&dyn QueueBackend`, the
/// `async fn`s) or owned (`Arc<dyn VariableBackend>`, the waits returned as futures, which
/// outlive the handle).
struct Request<P: Deref<Target: Withdraw>, F> {
    backend: P,
    ticket: Ticket,
    poll: F,
}

fn request<P, F, T>(backend: P, poll: F) -> Request<P, F>
where
    P: Deref<Target: Withdraw> + Unpin,
    F: FnMut(&P::Target, &mut Ticket, &mut Context<'_>) -> Poll<T> + Unpin,
{
    Request {
        backend,
        ticket: Ticket::default(),
        poll,
    }
}

impl<P, F, T> Future for Request<P, F>
where
    P: Deref<Target: Withdraw> + Unpin,
    F: FnMut(&P::Target, &mut Ticket, &mut Context<'_>) -> Poll<T> + Unpin,
{
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = &mut *self;
        (this.poll)(&*this.backend, &mut this.ticket, cx)
    }
}

impl<P: Deref<Target: Withdraw>, F> Drop for Request<P, F> {
    fn drop(&mut self) {
        if self.ticket.0.is_some() {
            self.backend.withdraw(&mut self.ticket);
        }
    }
}

/// Runs `future` to completion on this thread: the body of every `blocking_*` twin of an
/// async call, as [`blocking_timeout`] is of every `blocking_*_timeout` but a queue's put
/// (which hands its value back).
fn blocking<F: Future>(future: F) -> F::Output {
    match block::block_on(&mut pin!(future), None) {
        Some(value) => value,
        None => unreachable!("waiting without a deadline returned"),
    }
}

/// Like [`blocking`], giving up after `timeout` (`None`); the future is dropped then, which
/// withdraws it.
fn blocking_timeout<F: Future>(future: F, timeout: Duration) -> Option<F::Output> {
    block::block_on(&mut pin!(future), deadline(timeout))
}

fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

#[cfg(all(test, not(peer_loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::backend::{Backend, TopicBackend};
    use super::local::LocalBackend;
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
        let _ = client.lock("a").blocking_try_lock().unwrap();
        client.queue::<u8>("q", 1).blocking_try_put(1).unwrap();
        client.event("e").blocking_set();
        assert_eq!(backend.asked.load(Ordering::SeqCst), 3);
        // Clones and the view inside tasks share it.
        let inner =
            client.submit_local(|| Client::with_current(|c| c.event("e").blocking_is_set()));
        assert_eq!(inner.wait(), Ok(&Some(true)));
        assert_eq!(backend.asked.load(Ordering::SeqCst), 4);
    }
}
