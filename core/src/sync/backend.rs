//! The backend behind named primitives: the in-process one here, the swarm's in `peer-net`.
//!
//! Each primitive is reached by name through a [`Backend`], which hands out one shared state
//! per name. The methods are poll-style with a [`Ticket`] that keeps a waiter's place in line,
//! so the same typed API (`Lock`, `Queue`, ...) can sit on an in-process mutex or on requests
//! to a remote home peer: `poll_*` may be answered later, and `cancel` withdraws a waiter
//! whose future was dropped, handing on anything granted to it meanwhile.

use std::any::{Any, type_name};
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A value carried by a queue, variable or topic. In-process it is the value itself; a swarm
/// backend encodes it.
pub type Payload = Box<dyn Any + Send + Sync>;

/// A waiter's place in line; created empty, filled by the backend on the first poll (with a
/// number of the backend's choosing).
#[derive(Debug, Default)]
pub struct Ticket(pub Option<u64>);

/// How the values of a typed primitive cross the network. The typed layer knows the value
/// type and hands this to the backend with each name; the in-process backend never uses it,
/// the swarm's encodes what it sends to a home peer.
#[derive(Clone, Copy)]
pub struct Codec {
    /// Encodes a value of the primitive's type (`Err` for any other type).
    pub encode: fn(&(dyn Any + Send + Sync)) -> Result<Vec<u8>, String>,
    /// Decodes bytes into a value of the primitive's type.
    pub decode: fn(&[u8]) -> Result<Payload, String>,
}

impl Codec {
    /// The `postcard` codec of `T`.
    pub fn of<T>() -> Codec
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        Codec {
            encode: encode::<T>,
            decode: decode::<T>,
        }
    }
}

fn encode<T: Serialize + 'static>(value: &(dyn Any + Send + Sync)) -> Result<Vec<u8>, String> {
    match value.downcast_ref::<T>() {
        Some(value) => postcard::to_allocvec(value).map_err(|e| e.to_string()),
        None => Err(format!("the value is not a {}", type_name::<T>())),
    }
}

fn decode<T: DeserializeOwned + Send + Sync + 'static>(bytes: &[u8]) -> Result<Payload, String> {
    postcard::from_bytes::<T>(bytes)
        .map(|value| Box::new(value) as Payload)
        .map_err(|e| format!("not a {}: {e}", type_name::<T>()))
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Codec")
    }
}

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
    /// Gives a permit back without waiting to hear whether it was still held (a permit
    /// dropped, perhaps in async code that should not block on a round trip).
    fn release_soon(&self, token: FencingToken) {
        let _ = self.release(token);
    }
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
    /// Replaces the value unless a write with a higher fencing token was accepted before;
    /// returns the new version, or the highest token accepted so far.
    fn set_fenced(
        &self,
        value: Arc<dyn Any + Send + Sync>,
        token: FencingToken,
    ) -> Result<u64, FencingToken>;
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
    /// The queue `name`, created with `capacity` if new; its items are encoded by `codec`.
    fn queue(&self, name: &str, capacity: usize, codec: Codec) -> Arc<dyn QueueBackend>;
    /// The variable `name`; its values are encoded by `codec`.
    fn variable(&self, name: &str, codec: Codec) -> Arc<dyn VariableBackend>;
    /// The event `name`.
    fn event(&self, name: &str) -> Arc<dyn EventBackend>;
    /// The topic `name`; its values are encoded by `codec`.
    fn topic(&self, name: &str, codec: Codec) -> Arc<dyn TopicBackend>;
}
