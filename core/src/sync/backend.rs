//! The backend behind named primitives: the in-process one here, the swarm's in `peer-net`.
//!
//! Each primitive is reached by name through a [`Backend`], which hands out one shared state
//! per name. The methods are poll-style with a [`Ticket`] that keeps a waiter's place in line,
//! so the same typed API (`Lock`, `Queue`, ...) can sit on an in-process mutex or on requests
//! to a remote home peer: `poll_*` may be answered later, and `cancel` withdraws a waiter
//! whose future was dropped, handing on anything granted to it meanwhile.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A value carried by a queue, variable or topic. In-process it is the value itself; a swarm
/// backend encodes it.
pub type Payload = Box<dyn Any + Send + Sync>;

/// A waiter's place in line; created empty, filled by the backend on the first poll.
#[derive(Debug, Default)]
pub struct Ticket(pub(crate) Option<u64>);

/// Grows with every grant of one primitive: a resource guarded by a lock remembers the highest
/// token it accepted and refuses lower ones, so a holder whose lease ran out cannot act on it
/// after a newer holder did (the stale-holder problem of leases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(pub u64);

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fence#{}", self.0)
    }
}

/// A lock or semaphore permit that was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Its fencing token.
    pub token: FencingToken,
    /// When its lease runs out, if it has one.
    pub expires: Option<Instant>,
}

/// The grant is no longer held: its lease ran out and it was given to someone else, or it was
/// released already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired(pub FencingToken);

/// The queue was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// Permits of a named semaphore (a lock is a semaphore of one).
pub trait SemaphoreBackend: Send + Sync {
    /// Takes a permit if one is free and nobody waits ahead.
    fn try_acquire(&self, lease: Option<Duration>) -> Option<Grant>;
    /// Takes a permit, or registers `ticket` in line and wakes `cx` when one is granted.
    fn poll_acquire(
        &self,
        ticket: &mut Ticket,
        lease: Option<Duration>,
        cx: &mut Context<'_>,
    ) -> Poll<Grant>;
    /// Withdraws a waiter; a permit granted to it meanwhile goes to the next in line.
    fn cancel(&self, ticket: &mut Ticket);
    /// Gives a permit back.
    fn release(&self, token: FencingToken) -> Result<(), Expired>;
    /// Extends a lease from now.
    fn renew(&self, token: FencingToken, lease: Duration) -> Result<Grant, Expired>;
    /// Whether `token` is still held.
    fn is_held(&self, token: FencingToken) -> bool;
    /// Permits free now.
    fn available(&self) -> usize;
}

/// A named bounded FIFO queue of payloads.
pub trait QueueBackend: Send + Sync {
    /// Appends if there is room; hands the payload back if full or closed.
    fn try_put(&self, item: Payload) -> Result<(), (Payload, Option<Closed>)>;
    /// Appends, or waits in line for room. The payload stays with the caller until accepted.
    fn poll_put(
        &self,
        ticket: &mut Ticket,
        item: &mut Option<Payload>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Closed>>;
    /// Takes the oldest item if any; `Err(Closed)` once closed and empty.
    fn try_get(&self) -> Result<Option<Payload>, Closed>;
    /// Takes the oldest item, or waits in line for one.
    fn poll_get(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<Result<Payload, Closed>>;
    /// Withdraws a waiting `put` or `get`.
    fn cancel(&self, ticket: &mut Ticket);
    /// Refuses new items and wakes every waiter; items already in stay gettable.
    fn close(&self);
    /// Items in the queue now.
    fn len(&self) -> usize;
    /// Whether the queue holds no item now.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Its capacity.
    fn capacity(&self) -> usize;
}

/// A named cell holding the latest value, with a version that grows on every set.
pub trait VariableBackend: Send + Sync {
    /// Replaces the value; returns the new version.
    fn set(&self, value: Arc<dyn Any + Send + Sync>) -> u64;
    /// The value and its version, if set.
    fn get(&self) -> Option<(Arc<dyn Any + Send + Sync>, u64)>;
    /// Ready once the version is above `seen`.
    fn poll_changed(&self, ticket: &mut Ticket, seen: u64, cx: &mut Context<'_>) -> Poll<u64>;
    /// Withdraws a waiter.
    fn cancel(&self, ticket: &mut Ticket);
}

/// A named flag that tasks can wait on.
pub trait EventBackend: Send + Sync {
    /// Sets the flag and wakes every waiter.
    fn set(&self);
    /// Clears the flag.
    fn clear(&self);
    /// Whether the flag is set.
    fn is_set(&self) -> bool;
    /// Ready once the flag is set.
    fn poll_wait(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<()>;
    /// Withdraws a waiter.
    fn cancel(&self, ticket: &mut Ticket);
}

/// A named publish/subscribe topic.
pub trait TopicBackend: Send + Sync {
    /// Delivers to every current subscriber; returns how many.
    fn publish(&self, value: Arc<dyn Any + Send + Sync>) -> usize;
    /// A new subscription that sees what is published from now on, buffering up to
    /// `buffer` values (older ones are dropped and counted when a subscriber lags).
    fn subscribe(&self, buffer: usize) -> u64;
    /// The next value for subscription `id`, with how many were dropped before it.
    fn poll_next(&self, id: u64, cx: &mut Context<'_>) -> Poll<(Arc<dyn Any + Send + Sync>, u64)>;
    /// Ends subscription `id`.
    fn unsubscribe(&self, id: u64);
}

/// Hands out the shared state of each named primitive.
pub trait Backend: Send + Sync {
    /// The semaphore `name`, created with `permits` if new.
    fn semaphore(&self, name: &str, permits: usize) -> Arc<dyn SemaphoreBackend>;
    /// The queue `name`, created with `capacity` if new.
    fn queue(&self, name: &str, capacity: usize) -> Arc<dyn QueueBackend>;
    /// The variable `name`.
    fn variable(&self, name: &str) -> Arc<dyn VariableBackend>;
    /// The event `name`.
    fn event(&self, name: &str) -> Arc<dyn EventBackend>;
    /// The topic `name`.
    fn topic(&self, name: &str) -> Arc<dyn TopicBackend>;
}
