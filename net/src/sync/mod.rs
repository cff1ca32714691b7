//! The swarm's backend for named primitives: each handle turns the typed API's calls
//! (`lock`, `put`, `get`, `len`, ...) into operations the event loop sends to the key's home
//! peer, and hands the answers back. Topics are delivered on this peer at once and to the
//! others by gossip.
//!
//! Every call that needs the home is poll-style (see `peer_core::ext`'s backend traits): its
//! first poll starts an operation and keeps its number in the `Ticket`; the answer wakes
//! the caller. Dropping the future withdraws it, and whatever it was granted meanwhile is
//! given back. Nothing here blocks its thread, not even when the loop's command queue is
//! full: a command that does not fit waits in this backend's [`Overflow`](call::Overflow), in order, and a
//! thread of its own hands it to the loop when there is room. So a poll, a drop of a permit
//! and a topic's publish return at once; the `blocking_*` twins of `peer-core` wait for the
//! answer, not for room.
//!
//! When this peer's loop stops, every call it still holds, and every call made later, is
//! answered [`Stopped`](call::Answer::Stopped): a queue's waiting get or put ends as if the
//! queue were closed; a wait with no error to give (a permit, a variable's change, an
//! event's flag) panics; a call that does not wait reads it as a refusal. Only this peer
//! says `Stopped`; no reply from a home can (`peer_core::sync`'s "When a swarm peer stops").

mod call;
mod handles;
mod retry;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use peer_core::ext::{
    Backend, Codec, EventBackend, LocalBackend, QueueBackend, SemaphoreBackend, TopicBackend,
    VariableBackend,
};

use crate::commands::WeakCommands;
use crate::wire::Kind;

pub(crate) use call::CallSlot;
use call::{Caller, Handle, lock};
use handles::{SwarmEvent, SwarmQueue, SwarmSemaphore, SwarmTopic, SwarmVariable};

/// Handles on primitives kept at their home peers; see the [module docs](self).
pub(crate) struct SwarmBackend {
    caller: Arc<Caller>,
    topics: Arc<Topics>,
}

impl SwarmBackend {
    pub(crate) fn new(commands: WeakCommands) -> SwarmBackend {
        // Numbers never reused across restarts of a peer with the same identity.
        let first = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 & !(1 << 63));
        SwarmBackend {
            caller: Arc::new(Caller {
                commands,
                overflow: Arc::default(),
                next_seq: AtomicU64::new(first),
            }),
            topics: Arc::default(),
        }
    }

    /// The topics of this peer, for the event loop to deliver what other peers publish.
    pub(crate) fn topics(&self) -> Arc<Topics> {
        self.topics.clone()
    }
}

impl Backend for SwarmBackend {
    fn semaphore(&self, name: &str, permits: usize) -> Arc<dyn SemaphoreBackend> {
        let permits = u32::try_from(permits).unwrap_or(u32::MAX);
        Arc::new(SwarmSemaphore(Handle::new(
            name,
            Kind::Semaphore { permits },
            &self.caller,
        )))
    }

    fn queue(&self, name: &str, capacity: usize, codec: Codec) -> Arc<dyn QueueBackend> {
        let capacity = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX);
        Arc::new(SwarmQueue {
            h: Handle::new(name, Kind::Queue { capacity }, &self.caller),
            capacity: capacity as usize,
            codec,
        })
    }

    fn variable(&self, name: &str, codec: Codec) -> Arc<dyn VariableBackend> {
        Arc::new(SwarmVariable {
            h: Handle::new(name, Kind::Variable, &self.caller),
            codec,
        })
    }

    fn event(&self, name: &str) -> Arc<dyn EventBackend> {
        Arc::new(SwarmEvent(Handle::new(name, Kind::Event, &self.caller)))
    }

    fn topic(&self, name: &str, codec: Codec) -> Arc<dyn TopicBackend> {
        let local = self.topics.local.topic(name, codec);
        lock(&self.topics.codecs).insert(name.to_string(), codec);
        Arc::new(SwarmTopic {
            key: name.to_string(),
            codec,
            local,
            caller: self.caller.clone(),
        })
    }
}

/// The topics of this peer: subscribers are local; what other peers publish arrives by
/// gossip and is decoded with the codec its topic was opened with.
#[derive(Default)]
pub(crate) struct Topics {
    local: LocalBackend,
    codecs: Mutex<HashMap<String, Codec>>,
}

impl Topics {
    /// Hands a value another peer published to this peer's subscribers, if any.
    pub(crate) fn deliver(&self, key: &str, bytes: &[u8]) {
        let codec = lock(&self.codecs).get(key).copied();
        let Some(codec) = codec else {
            return;
        };
        match (codec.decode)(bytes) {
            Ok(value) => {
                self.local.topic(key, codec).publish(Arc::from(value));
            }
            Err(e) => tracing::warn!(%key, error = %e, "dropped an undecodable topic value"),
        }
    }
}
