//! The swarm's backend for named primitives: each handle turns the typed API's calls
//! (`lock`, `put`, `get`, ...) into operations the event loop sends to the key's home peer,
//! and waits for the answers. Topics are delivered on this peer at once and to the others
//! by gossip.
//!
//! Waiting calls (`poll_*`) start an operation on their first poll and keep its number in
//! the [`Ticket`]; dropping the future withdraws it, and whatever it was granted meanwhile
//! is given back. The other calls block their thread for one round trip to the home.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peer_core::sync::{
    Backend, Closed, Codec, EventBackend, Expired, FencingToken, Grant, LocalBackend, Payload,
    QueueBackend, SemaphoreBackend, Ticket, TopicBackend, VariableBackend,
};

use crate::commands::{Command, WeakCommands};
use crate::node::undo;
use crate::wire::{Kind, Op, Reply};

/// How long a blocking call waits for its answer before giving up.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

type Shared = Arc<dyn Any + Send + Sync>;

/// The answer slot of one operation, filled by the event loop.
pub(crate) struct CallSlot {
    /// The operation, to undo what it was granted if its caller withdrew.
    pub(crate) key: String,
    pub(crate) kind: Kind,
    pub(crate) op: Op,
    state: Mutex<SlotState>,
    ready: Condvar,
}

#[derive(Default)]
struct SlotState {
    /// The answer, and when the request it answers was sent.
    reply: Option<(Reply, Instant)>,
    waker: Option<Waker>,
    /// The caller stopped waiting: an answer that comes now is handed back to be undone.
    withdrawn: bool,
}

impl CallSlot {
    fn new(key: &str, kind: Kind, op: Op) -> CallSlot {
        CallSlot {
            key: key.to_string(),
            kind,
            op,
            state: Mutex::default(),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fills the slot and wakes whoever waits on it; hands the answer back if the caller
    /// withdrew (so the event loop can give back what it grants).
    pub(crate) fn complete(&self, reply: Reply, asked: Instant) -> Option<Reply> {
        let waker = {
            let mut s = self.lock();
            if s.withdrawn {
                return Some(reply);
            }
            s.reply = Some((reply, asked));
            s.waker.take()
        };
        self.ready.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
        None
    }

    fn poll(&self, cx: &Context<'_>) -> Poll<(Reply, Instant)> {
        let mut s = self.lock();
        match s.reply.take() {
            Some(reply) => Poll::Ready(reply),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Marks the call withdrawn; the answer if it came already.
    fn withdraw(&self) -> Option<Reply> {
        let mut s = self.lock();
        s.withdrawn = true;
        s.reply.take().map(|(reply, _)| reply)
    }

    fn wait(&self, timeout: Duration) -> Option<Reply> {
        let mut s = self.lock();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((reply, _)) = s.reply.take() {
                return Some(reply);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            s = self
                .ready
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Sends operations to the event loop.
struct Caller {
    commands: WeakCommands,
    next_seq: AtomicU64,
}

impl Caller {
    /// Starts an operation; its answer comes in the slot.
    fn start(&self, key: &str, kind: Kind, op: Op) -> (u64, Arc<CallSlot>) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(CallSlot::new(key, kind, op.clone()));
        let command = Command::Prim {
            seq,
            key: key.to_string(),
            kind,
            op,
            slot: slot.clone(),
        };
        if !self.send(command) {
            let stopped = Reply::Refused("the swarm client has stopped".into());
            slot.complete(stopped, Instant::now());
        }
        (seq, slot)
    }

    /// Runs an operation and waits for its answer.
    fn call(&self, key: &str, kind: Kind, op: Op) -> Reply {
        let (seq, slot) = self.start(key, kind, op);
        slot.wait(CALL_TIMEOUT).unwrap_or_else(|| {
            self.send(Command::PrimCancel(seq));
            Reply::Refused(format!(
                "no answer from the home of {key} in {CALL_TIMEOUT:?}"
            ))
        })
    }

    /// Sends a command, waiting while the loop's queue is full; false if the loop is gone.
    fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }

    /// Withdraws call `seq` (its future was dropped, or its wait timed out). What it was
    /// granted is given back: here if the answer came already, by the event loop if it
    /// comes later, by the node if the node still has the call.
    fn withdraw(&self, seq: u64, slot: &CallSlot) {
        match slot.withdraw() {
            Some(reply) => {
                if let Some(op) = undo(&slot.op, &reply) {
                    self.start(&slot.key, slot.kind, op);
                }
            }
            None => {
                self.send(Command::PrimCancel(seq));
            }
        }
    }
}

/// One primitive's handle on the swarm: its key and kind, and its waiting calls.
struct Handle {
    key: String,
    kind: Kind,
    caller: Arc<Caller>,
    /// Its waiting calls, by ticket.
    waits: Mutex<HashMap<u64, Arc<CallSlot>>>,
}

impl Handle {
    fn new(key: &str, kind: Kind, caller: &Arc<Caller>) -> Handle {
        Handle {
            key: key.to_string(),
            kind,
            caller: caller.clone(),
            waits: Mutex::default(),
        }
    }

    /// Runs `op` and waits for its answer.
    fn call(&self, op: Op) -> Reply {
        self.caller.call(&self.key, self.kind, op)
    }

    /// Starts `op`; nobody waits for its answer.
    fn start(&self, op: Op) {
        self.caller.start(&self.key, self.kind, op);
    }

    /// Polls the call of `ticket`, starting it with `op()` on the first poll; the answer
    /// comes with when the request it answers was sent.
    fn poll(
        &self,
        ticket: &mut Ticket,
        op: impl FnOnce() -> Op,
        cx: &Context<'_>,
    ) -> Poll<(Reply, Instant)> {
        let slots = &self.waits;
        let known = ticket.0.and_then(|seq| {
            let slots = slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots.get(&seq).cloned().map(|slot| (seq, slot))
        });
        let (seq, slot) = match known {
            Some(known) => known,
            None => {
                // Started outside the lock: sending may wait for room in the loop's queue.
                let (seq, slot) = self.caller.start(&self.key, self.kind, op());
                let mut slots = slots.lock().unwrap_or_else(PoisonError::into_inner);
                slots.insert(seq, slot.clone());
                ticket.0 = Some(seq);
                (seq, slot)
            }
        };
        match slot.poll(cx) {
            Poll::Ready(reply) => {
                slots
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&seq);
                ticket.0 = None;
                Poll::Ready(reply)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Like [`poll`](Handle::poll), with the answer turned into the caller's value by
    /// `expected`; an answer it does not take is logged, and the waiter waits on.
    fn poll_for<T>(
        &self,
        ticket: &mut Ticket,
        op: impl FnOnce() -> Op,
        cx: &Context<'_>,
        expected: impl FnOnce(Reply, Instant) -> Result<T, Reply>,
    ) -> Poll<T> {
        match self.poll(ticket, op, cx) {
            Poll::Ready((reply, asked)) => match expected(reply, asked) {
                Ok(value) => Poll::Ready(value),
                Err(other) => {
                    unexpected(&self.key, &other);
                    Poll::Pending
                }
            },
            Poll::Pending => Poll::Pending,
        }
    }

    /// Withdraws the call of `ticket` (its future was dropped).
    fn cancel(&self, ticket: &mut Ticket) {
        let Some(seq) = ticket.0.take() else {
            return;
        };
        let slot = self
            .waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&seq);
        if let Some(slot) = slot {
            self.caller.withdraw(seq, &slot);
        }
    }
}

/// An answer that fits no call: logged, and the call waits on (or gives a neutral value).
fn unexpected(key: &str, reply: &Reply) {
    tracing::error!(%key, ?reply, "unexpected answer from a primitive's home");
}

fn lease_ms(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)
}

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
        self.topics
            .codecs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), codec);
        Arc::new(SwarmTopic {
            key: name.to_string(),
            codec,
            local,
            caller: self.caller.clone(),
        })
    }
}

struct SwarmSemaphore(Handle);

impl SwarmSemaphore {
    fn call(&self, op: Op) -> Reply {
        self.0.call(op)
    }

    fn grant(&self, reply: Reply, asked: Instant) -> Option<Grant> {
        match reply {
            Reply::Granted { token, lease_ms } => Some(Grant {
                token: FencingToken(token),
                // Counted from when we asked: never later than the home's deadline.
                expires: lease_ms.and_then(|ms| asked.checked_add(Duration::from_millis(ms))),
            }),
            Reply::NotGranted | Reply::Expired => None,
            other => {
                unexpected(&self.0.key, &other);
                None
            }
        }
    }
}

impl SemaphoreBackend for SwarmSemaphore {
    fn try_acquire(&self, lease: Option<Duration>) -> Option<Grant> {
        let started = Instant::now();
        let op = Op::Acquire {
            lease_ms: lease.map(lease_ms),
            wait: false,
        };
        self.grant(self.call(op), started)
    }

    fn poll_acquire(
        &self,
        ticket: &mut Ticket,
        lease: Option<Duration>,
        cx: &mut Context<'_>,
    ) -> Poll<Grant> {
        let op = || Op::Acquire {
            lease_ms: lease.map(lease_ms),
            wait: true,
        };
        match self.0.poll(ticket, op, cx) {
            Poll::Ready((reply, asked)) => match self.grant(reply, asked) {
                Some(grant) => Poll::Ready(grant),
                // Logged; the waiter waits on rather than receive a permit it has not.
                None => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    }

    fn cancel(&self, ticket: &mut Ticket) {
        self.0.cancel(ticket);
    }

    fn release(&self, token: FencingToken) -> Result<(), Expired> {
        match self.call(Op::Release { token: token.0 }) {
            Reply::Done => Ok(()),
            _ => Err(Expired(token)),
        }
    }

    fn release_soon(&self, token: FencingToken) {
        // The node sends it (again, until a home answers); nobody waits for the answer.
        self.0.start(Op::Release { token: token.0 });
    }

    fn renew(&self, token: FencingToken, lease: Duration) -> Result<Grant, Expired> {
        let started = Instant::now();
        let op = Op::Renew {
            token: token.0,
            lease_ms: lease_ms(lease),
        };
        self.grant(self.call(op), started).ok_or(Expired(token))
    }

    fn is_held(&self, token: FencingToken) -> bool {
        matches!(self.call(Op::IsHeld { token: token.0 }), Reply::Bool(true))
    }

    fn available(&self) -> usize {
        match self.call(Op::Available) {
            Reply::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            _ => 0,
        }
    }
}

struct SwarmQueue {
    h: Handle,
    capacity: usize,
    codec: Codec,
}

impl SwarmQueue {
    fn call(&self, op: Op) -> Reply {
        self.h.call(op)
    }

    /// Decodes an item; one that does not decode is logged and dropped (two programs
    /// disagree on the type under one name).
    fn decode(&self, bytes: &[u8]) -> Option<Payload> {
        (self.codec.decode)(bytes)
            .map_err(|e| tracing::error!(key = %self.h.key, error = %e, "dropped an undecodable queue item"))
            .ok()
    }
}

impl QueueBackend for SwarmQueue {
    fn try_put(&self, item: Payload) -> Result<(), (Payload, Option<Closed>)> {
        let Ok(bytes) = (self.codec.encode)(&*item) else {
            return Err((item, None));
        };
        match self.call(Op::Put {
            item: bytes,
            wait: false,
        }) {
            Reply::Done => Ok(()),
            Reply::Closed => Err((item, Some(Closed))),
            _ => Err((item, None)),
        }
    }

    fn poll_put(
        &self,
        ticket: &mut Ticket,
        item: &mut Option<Payload>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Closed>> {
        let Some(value) = item.as_deref() else {
            // Nothing left to put.
            return Poll::Ready(Err(Closed));
        };
        // Encoded on the first poll only; values of the queue's type always encode.
        let op = || Op::Put {
            item: (self.codec.encode)(value).unwrap_or_default(),
            wait: true,
        };
        match self.h.poll(ticket, op, cx) {
            Poll::Ready((Reply::Done, _)) => {
                item.take();
                Poll::Ready(Ok(()))
            }
            Poll::Ready((Reply::Closed, _)) => Poll::Ready(Err(Closed)),
            Poll::Ready((other, _)) => {
                unexpected(&self.h.key, &other);
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn try_get(&self) -> Result<Option<Payload>, Closed> {
        match self.call(Op::Get { wait: false }) {
            Reply::Item(bytes) => Ok(self.decode(&bytes)),
            Reply::Closed => Err(Closed),
            _ => Ok(None),
        }
    }

    fn poll_get(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<Result<Payload, Closed>> {
        loop {
            let op = || Op::Get { wait: true };
            match self.h.poll(ticket, op, cx) {
                Poll::Ready((Reply::Item(bytes), _)) => {
                    if let Some(item) = self.decode(&bytes) {
                        return Poll::Ready(Ok(item));
                    }
                    // Dropped: get the next one.
                }
                Poll::Ready((Reply::Closed, _)) => return Poll::Ready(Err(Closed)),
                Poll::Ready((other, _)) => {
                    unexpected(&self.h.key, &other);
                    return Poll::Pending;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn cancel(&self, ticket: &mut Ticket) {
        self.h.cancel(ticket);
    }

    fn close(&self) {
        self.call(Op::Close);
    }

    fn len(&self) -> usize {
        match self.call(Op::Len) {
            Reply::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            _ => 0,
        }
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

struct SwarmVariable {
    h: Handle,
    codec: Codec,
}

impl SwarmVariable {
    fn write(&self, value: &Shared, fence: Option<FencingToken>) -> Reply {
        match (self.codec.encode)(&**value) {
            Ok(bytes) => self.h.call(Op::Set {
                value: bytes,
                fence: fence.map(|t| t.0),
            }),
            Err(e) => Reply::Refused(e),
        }
    }
}

impl VariableBackend for SwarmVariable {
    fn set(&self, value: Shared) -> u64 {
        match self.write(&value, None) {
            Reply::Version(v) => v,
            other => {
                unexpected(&self.h.key, &other);
                0
            }
        }
    }

    fn set_fenced(&self, value: Shared, token: FencingToken) -> Result<u64, FencingToken> {
        match self.write(&value, Some(token)) {
            Reply::Version(v) => Ok(v),
            Reply::Fenced { highest } => Err(FencingToken(highest)),
            other => {
                unexpected(&self.h.key, &other);
                Err(token)
            }
        }
    }

    fn get(&self) -> Option<(Shared, u64)> {
        match self.h.call(Op::Read) {
            Reply::Value(Some((bytes, version))) => match (self.codec.decode)(&bytes) {
                Ok(value) => Some((Arc::from(value), version)),
                Err(e) => {
                    tracing::error!(key = %self.h.key, error = %e, "undecodable variable");
                    None
                }
            },
            _ => None,
        }
    }

    fn poll_changed(&self, ticket: &mut Ticket, seen: u64, cx: &mut Context<'_>) -> Poll<u64> {
        let op = || Op::Changed { seen };
        self.h.poll_for(ticket, op, cx, |reply, _| match reply {
            Reply::Version(v) => Ok(v),
            other => Err(other),
        })
    }

    fn cancel(&self, ticket: &mut Ticket) {
        self.h.cancel(ticket);
    }
}

struct SwarmEvent(Handle);

impl EventBackend for SwarmEvent {
    fn set(&self) {
        self.0.call(Op::Flag(true));
    }

    fn clear(&self) {
        self.0.call(Op::Flag(false));
    }

    fn is_set(&self) -> bool {
        matches!(self.0.call(Op::IsSet), Reply::Bool(true))
    }

    fn poll_wait(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll_for(
            ticket,
            || Op::Wait,
            cx,
            |reply, _| match reply {
                Reply::Done => Ok(()),
                other => Err(other),
            },
        )
    }

    fn cancel(&self, ticket: &mut Ticket) {
        self.0.cancel(ticket);
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
        let codec = self
            .codecs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied();
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

struct SwarmTopic {
    key: String,
    codec: Codec,
    local: Arc<dyn TopicBackend>,
    caller: Arc<Caller>,
}

impl TopicBackend for SwarmTopic {
    fn publish(&self, value: Shared) -> usize {
        match (self.codec.encode)(&*value) {
            Ok(bytes) => {
                self.caller.send(Command::TopicPublish {
                    key: self.key.clone(),
                    value: bytes,
                });
            }
            Err(e) => tracing::error!(key = %self.key, error = %e, "topic value not encoded"),
        }
        self.local.publish(value)
    }

    fn subscribe(&self, buffer: usize) -> u64 {
        self.local.subscribe(buffer)
    }

    fn poll_next(&self, id: u64, cx: &mut Context<'_>) -> Poll<(Shared, u64)> {
        self.local.poll_next(id, cx)
    }

    fn unsubscribe(&self, id: u64) {
        self.local.unsubscribe(id);
    }
}
