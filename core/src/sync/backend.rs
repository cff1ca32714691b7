//! The backend behind named primitives: the in-process one here, the swarm's in `peer-net`.
//! Reached through [`crate::ext`]; not for programs.
//!
//! Each primitive is reached by name through a [`Backend`], which hands out one shared state
//! per name. Every call that reads or changes that state is poll-style with a [`Ticket`], so
//! the same typed API (`Lock`, `Queue`, ...) can sit on an in-process mutex or on requests to
//! a remote home peer:
//! - the first poll starts the call and, if it is not answered at once, keeps its number in
//!   the ticket; later polls find it by that number and register the waker;
//! - the in-process backend answers calls that do not wait (`poll_try_*`, `poll_len`, ...)
//!   on the first poll; a remote one when the home answers;
//! - `cancel` withdraws a call whose future was dropped before it was answered: what it was
//!   granted meanwhile (a permit, an item taken) is handed on; what it wrote (a put, a set)
//!   may or may not have happened, except a release, which still happens.
//!
//! No call here may block its thread: `poll_*` is called from `Future::poll`. The
//! fire-and-forget [`SemaphoreBackend::release_soon`] and [`TopicBackend::publish`] are
//! called from `Drop` and from plain calls, so they must not block either.

use std::any::{Any, type_name};
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{Closed, Expired, FencingToken, GetError, PutError, Versioned};

/// A value carried by a queue, variable or topic. In-process it is the value itself; a swarm
/// backend encodes it.
pub type Payload = Box<dyn Any + Send + Sync>;

/// A value shared by readers: a variable's value, a topic's message.
pub type Shared = Arc<dyn Any + Send + Sync>;

/// A call's place: created empty, filled by the backend on the first poll that does not
/// answer (with a number of the backend's choosing), emptied when answered or cancelled.
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

/// A lock or semaphore permit that was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Its fencing token.
    pub token: FencingToken,
    /// When its lease runs out, if it has one.
    pub expires: Option<Instant>,
}

/// Permits of a named semaphore (a lock is a semaphore of one).
pub trait SemaphoreBackend: Send + Sync {
    /// Takes a permit if one is free and nobody waits ahead; `Ready(None)` if not.
    fn poll_try_acquire(
        &self,
        ticket: &mut Ticket,
        lease: Option<Duration>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Grant>>;
    /// Takes a permit, waiting in line for one.
    fn poll_acquire(
        &self,
        ticket: &mut Ticket,
        lease: Option<Duration>,
        cx: &mut Context<'_>,
    ) -> Poll<Grant>;
    /// Gives a permit back; `Err` if it was no longer held.
    fn poll_release(
        &self,
        ticket: &mut Ticket,
        token: FencingToken,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Expired>>;
    /// Gives a permit back without waiting to hear whether it was still held (a permit
    /// dropped, perhaps in async code). Never blocks.
    fn release_soon(&self, token: FencingToken);
    /// Extends a lease to `lease` from now.
    fn poll_renew(
        &self,
        ticket: &mut Ticket,
        token: FencingToken,
        lease: Duration,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Grant, Expired>>;
    /// Whether `token` is still held.
    fn poll_is_held(
        &self,
        ticket: &mut Ticket,
        token: FencingToken,
        cx: &mut Context<'_>,
    ) -> Poll<bool>;
    /// Permits free now.
    fn poll_available(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<usize>;
    /// Withdraws a call; a permit granted to it meanwhile goes to the next in line.
    fn cancel(&self, ticket: &mut Ticket);
}

/// A named bounded FIFO queue of payloads. A put's payload stays with the caller, in
/// `item`, until it is accepted (then it is taken out).
pub trait QueueBackend: Send + Sync {
    /// Appends if there is room now; `Full` or `Closed` (with `()`: the payload stays in
    /// `item`) if not.
    fn poll_try_put(
        &self,
        ticket: &mut Ticket,
        item: &mut Option<Payload>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), PutError<()>>>;
    /// Appends, waiting in line for room.
    fn poll_put(
        &self,
        ticket: &mut Ticket,
        item: &mut Option<Payload>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Closed>>;
    /// Takes the oldest item if there is one now.
    fn poll_try_get(
        &self,
        ticket: &mut Ticket,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Payload, GetError>>;
    /// Takes the oldest item, waiting in line for one; `Err(Closed)` once closed and empty.
    fn poll_get(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<Result<Payload, Closed>>;
    /// Refuses new items and wakes every waiter; items already in stay gettable.
    fn poll_close(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<()>;
    /// Items in the queue now.
    fn poll_len(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<usize>;
    /// Its capacity, known without asking.
    fn capacity(&self) -> usize;
    /// Withdraws a call; an item taken for it meanwhile goes back.
    fn cancel(&self, ticket: &mut Ticket);
}

/// A named cell holding the latest value, with a version that grows on every set.
pub trait VariableBackend: Send + Sync {
    /// Replaces the value, unless `fence` is given and a write with a higher fencing token
    /// was accepted before; the new version, or the highest token accepted so far.
    fn poll_set(
        &self,
        ticket: &mut Ticket,
        value: &Shared,
        fence: Option<FencingToken>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<u64, FencingToken>>;
    /// The value and its version, if set.
    fn poll_get(
        &self,
        ticket: &mut Ticket,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Versioned<Shared>>>;
    /// Ready once the version is above `seen`.
    fn poll_changed(&self, ticket: &mut Ticket, seen: u64, cx: &mut Context<'_>) -> Poll<u64>;
    /// Withdraws a call.
    fn cancel(&self, ticket: &mut Ticket);
}

/// A named flag that tasks can wait on.
pub trait EventBackend: Send + Sync {
    /// Sets (`true`, waking every waiter) or clears the flag.
    fn poll_set(&self, ticket: &mut Ticket, set: bool, cx: &mut Context<'_>) -> Poll<()>;
    /// Whether the flag is set.
    fn poll_is_set(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<bool>;
    /// Ready once the flag is set.
    fn poll_wait(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<()>;
    /// Withdraws a call.
    fn cancel(&self, ticket: &mut Ticket);
}

/// A named publish/subscribe topic. Subscribers are always in this process; only a
/// publication may travel.
pub trait TopicBackend: Send + Sync {
    /// Delivers to every current subscriber here (and sends it on to other peers); returns
    /// how many subscribers here got it. Never blocks.
    fn publish(&self, value: Shared) -> usize;
    /// A new subscription that sees what is published from now on, buffering up to
    /// `buffer` values (older ones are dropped and counted when a subscriber lags).
    fn subscribe(&self, buffer: usize) -> u64;
    /// The next value for subscription `id`, with how many were dropped before it.
    fn poll_next(&self, id: u64, cx: &mut Context<'_>) -> Poll<Next>;
    /// Ends subscription `id`.
    fn unsubscribe(&self, id: u64);
}

/// What [`TopicBackend::poll_next`] hands a subscriber.
#[derive(Clone)]
pub struct Next {
    /// The value.
    pub value: Shared,
    /// Values dropped before it because the subscriber lagged.
    pub dropped: u64,
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
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
