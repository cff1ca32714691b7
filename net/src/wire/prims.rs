//! What peers say to each other about named primitives (locks, semaphores, queues,
//! variables, events): operations sent to a name's home peer, and the state the home
//! replicates to its backup or hands to a new home.

use std::collections::VecDeque;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// An operation by a client peer on the primitive stored under `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimRequest {
    /// The primitive's key (`lock/db`, `queue/jobs/u32`, ...).
    pub key: String,
    /// What it is, with the size it is created with if new.
    pub kind: Kind,
    /// The operation's identity: a retry (after a home died) carries the same, so that the
    /// home applies it once.
    pub id: OpId,
    /// What to do.
    pub op: Op,
}

/// Who asked, and their number for the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OpId {
    /// The client peer.
    pub peer: u64,
    /// Its number for the operation.
    pub seq: u64,
}

/// The kind of a primitive, with how it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A semaphore (a lock has one permit).
    Semaphore {
        /// Its permits.
        permits: u32,
    },
    /// A bounded FIFO queue.
    Queue {
        /// Most items held.
        capacity: u32,
    },
    /// A cell with a version.
    Variable,
    /// A flag.
    Event,
}

/// An operation on a primitive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Take a permit, with a lease if given; `wait`: wait in line for one.
    Acquire {
        /// Lease in milliseconds.
        lease_ms: Option<u64>,
        /// Wait if none is free.
        wait: bool,
    },
    /// Give a permit back.
    Release {
        /// Its fencing token.
        token: u64,
    },
    /// Extend a permit's lease from now.
    Renew {
        /// Its fencing token.
        token: u64,
        /// The new lease in milliseconds.
        lease_ms: u64,
    },
    /// Whether a permit is still held.
    IsHeld {
        /// Its fencing token.
        token: u64,
    },
    /// Permits free now.
    Available,
    /// Append an item; `wait`: wait in line for room.
    Put {
        /// The encoded item.
        item: Vec<u8>,
        /// Wait if full.
        wait: bool,
    },
    /// Take the oldest item; `wait`: wait in line for one.
    Get {
        /// Wait if empty.
        wait: bool,
    },
    /// Put back, at the front, an item whose get was withdrawn after it was taken.
    Unget {
        /// The encoded item.
        item: Vec<u8>,
    },
    /// Refuse new items.
    Close,
    /// Items queued now.
    Len,
    /// Replace the variable's value; with a fencing token, only if no higher one was seen.
    Set {
        /// The encoded value.
        value: Vec<u8>,
        /// The writer's fencing token.
        fence: Option<u64>,
    },
    /// The variable's value and version.
    Read,
    /// Wait until the version is above `seen`.
    Changed {
        /// The version the client has seen.
        seen: u64,
    },
    /// Set (`true`) or clear the event.
    Flag(bool),
    /// Whether the event is set.
    IsSet,
    /// Wait until the event is set.
    Wait,
    /// Withdraw the sender's waiting operation `seq`.
    Cancel {
        /// Its number.
        seq: u64,
    },
}

impl Op {
    /// Which line an operation that cannot complete now waits in: a new operation does not
    /// overtake waiters of its own line. `None`: it never waits.
    pub(crate) fn line(&self) -> Option<u8> {
        match self {
            Op::Acquire { wait: true, .. } => Some(0),
            Op::Put { wait: true, .. } => Some(1),
            Op::Get { wait: true } => Some(2),
            Op::Changed { .. } | Op::Wait => Some(3),
            _ => None,
        }
    }

    /// What gives back what this operation was granted, once its caller withdrew: a
    /// permit, or an item taken. Used by the caller's backend when the answer reaches it
    /// and by the node when the answer comes after the withdrawal.
    pub(crate) fn undo(&self, reply: &Reply) -> Option<Op> {
        match (self, reply) {
            (Op::Acquire { .. }, Reply::Granted { token, .. }) => {
                Some(Op::Release { token: *token })
            }
            (Op::Get { .. }, Reply::Item(item)) => Some(Op::Unget { item: item.clone() }),
            _ => None,
        }
    }
}

/// The answer to a [`PrimRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A permit was granted (or its lease renewed).
    Granted {
        /// Its fencing token.
        token: u64,
        /// Its lease in milliseconds, counted from when the home granted it.
        lease_ms: Option<u64>,
    },
    /// No permit is free now.
    NotGranted,
    /// Done.
    Done,
    /// The permit is no longer held.
    Expired,
    /// A yes or no.
    Bool(bool),
    /// A count.
    Count(u64),
    /// A queue item.
    Item(Vec<u8>),
    /// The queue is empty.
    Empty,
    /// The queue is full.
    Full,
    /// The queue is closed (and, for a get, empty).
    Closed,
    /// The variable's value and version, if set.
    Value(Option<(Vec<u8>, u64)>),
    /// The variable's version after a set or change.
    Version(u64),
    /// A fenced set was refused: a higher token was seen.
    Fenced {
        /// The highest token seen.
        highest: u64,
    },
    /// Still waiting when the home's long-poll ran out: ask again.
    Again,
    /// The waiting operation was withdrawn.
    Cancelled,
    /// Not the home of this key: ask `home`.
    NotHome {
        /// The peer this one takes for its home.
        home: u64,
    },
    /// The operation does not fit the primitive (or the request was malformed).
    Refused(String),
}

/// The whole state of one primitive, as the home holds it and sends it on: to its backup
/// (replication), or to a new home that claims it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimState {
    /// How many changes it went through: of two copies, the higher is the newer.
    pub seq: u64,
    /// The state itself.
    pub body: Body,
}

/// The state of each kind of primitive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A semaphore.
    Semaphore {
        /// Its permits.
        permits: u32,
        /// The last fencing token granted.
        last_token: u64,
        /// Who holds permits.
        #[serde(
            deserialize_with = "super::bounded::most::<{ super::bounded::PRIM_ENTRIES }, _, _>"
        )]
        holders: Vec<Holder>,
        /// Tokens released lately: a retried release of one succeeds.
        #[serde(
            deserialize_with = "super::bounded::most::<{ super::bounded::PRIM_ENTRIES }, _, _>"
        )]
        released: VecDeque<u64>,
    },
    /// A queue.
    Queue {
        /// Most items held.
        capacity: u32,
        /// The items, oldest first.
        #[serde(
            deserialize_with = "super::bounded::most::<{ super::bounded::PRIM_ENTRIES }, _, _>"
        )]
        items: VecDeque<Item>,
        /// Whether it refuses new items.
        closed: bool,
        /// Items taken lately, with the get that took them: a retried get receives the same.
        #[serde(
            deserialize_with = "super::bounded::most::<{ super::bounded::PRIM_ENTRIES }, _, _>"
        )]
        taken: VecDeque<Taken>,
    },
    /// A variable.
    Variable {
        /// The value, if set.
        value: Option<Vec<u8>>,
        /// Its version.
        version: u64,
        /// The highest fencing token of a set that was accepted.
        fence: Option<u64>,
    },
    /// An event.
    Event {
        /// Whether it is set.
        set: bool,
    },
}

/// A permit granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Its fencing token.
    pub token: u64,
    /// The operation that took it: a retry gets the same grant.
    pub op: OpId,
    /// Its lease in milliseconds, as granted or last renewed.
    pub lease_ms: Option<u64>,
    /// Milliseconds left of the lease when this copy was made.
    pub left_ms: Option<u64>,
    /// When the lease runs out, by this peer's clock.
    #[serde(skip)]
    pub expires: Option<Instant>,
}

/// A queued item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The put that brought it: a retried put is not queued twice.
    pub id: OpId,
    /// The encoded value.
    pub bytes: Vec<u8>,
}

/// An item taken by a get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    /// The get.
    pub by: OpId,
    /// The item.
    pub item: Item,
}

/// One change of a primitive's state, applied alike at the home and at its backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delta {
    /// The whole state (to a new backup).
    Snapshot(PrimState),
    /// A permit granted.
    Grant(Holder),
    /// A permit given back, expired, or taken from a holder that is gone.
    Ungrant {
        /// Its fencing token.
        token: u64,
        /// Released by its holder (a retried release then succeeds).
        released: bool,
    },
    /// A lease extended from now.
    Renew {
        /// The permit's token.
        token: u64,
        /// The new lease.
        lease_ms: u64,
    },
    /// An item appended, or put back at the front.
    Push {
        /// The item.
        item: Item,
        /// At the front.
        front: bool,
    },
    /// The oldest item taken by a get.
    Pop {
        /// The get.
        by: OpId,
    },
    /// The queue closed.
    Close,
    /// The variable set.
    Set {
        /// The value.
        value: Vec<u8>,
        /// The writer's fencing token, if fenced.
        fence: Option<u64>,
    },
    /// The event set or cleared.
    Flag(bool),
}
