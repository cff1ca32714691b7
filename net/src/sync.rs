//! The swarm's backend for named primitives: each handle turns the typed API's calls
//! (`lock`, `put`, `get`, `len`, ...) into operations the event loop sends to the key's home
//! peer, and hands the answers back. Topics are delivered on this peer at once and to the
//! others by gossip.
//!
//! Every call that needs the home is poll-style (see `peer_core::ext`'s backend traits): its
//! first poll starts an operation and keeps its number in the [`Ticket`]; the answer wakes
//! the caller. Dropping the future withdraws it, and whatever it was granted meanwhile is
//! given back. Nothing here blocks its thread, not even when the loop's command queue is
//! full: a command that does not fit waits in this backend's [`Overflow`], in order, and a
//! thread of its own hands it to the loop when there is room. So a poll, a drop of a permit
//! and a topic's publish return at once; the `blocking_*` twins of `peer-core` wait for the
//! answer, not for room.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peer_core::ext::{
    Backend, Codec, EventBackend, Grant, LocalBackend, Next, Payload, QueueBackend,
    SemaphoreBackend, Shared, Ticket, TopicBackend, VariableBackend,
};
use peer_core::sync::{Closed, Expired, FencingToken, GetError, PutError, Versioned};

use crate::commands::{Command, TrySend, WeakCommands};
use crate::wire::{Kind, Op, Reply};

/// Topic publications waiting in the [`Overflow`] at most: past this a publication is not
/// sent to other peers (delivery is best-effort; this peer's subscribers still get it).
const PUBLISH_BACKLOG: usize = 1024;

/// The refusal a call gets when this peer's loop is gone.
const STOPPED: &str = "the swarm client has stopped";

/// Whether `reply` says this peer's loop is gone: a queue's waiting calls end as if the
/// queue were closed, rather than waiting for ever.
fn is_stopped(reply: &Reply) -> bool {
    matches!(reply, Reply::Refused(why) if why == STOPPED)
}

/// The answer slot of one operation, filled by the event loop.
pub(crate) struct CallSlot {
    /// The operation, to undo what it was granted if its caller withdrew.
    pub(crate) key: String,
    pub(crate) kind: Kind,
    pub(crate) op: Op,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// The answer, and when the request it answers was sent.
    reply: Option<(Reply, Instant)>,
    waker: Option<Waker>,
    /// The caller stopped waiting: an answer that comes now is handed back to be undone.
    withdrawn: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CallSlot {
    fn new(key: &str, kind: Kind, op: Op) -> CallSlot {
        CallSlot {
            key: key.to_string(),
            kind,
            op,
            state: Mutex::default(),
        }
    }

    /// Fills the slot and wakes whoever waits on it; hands the answer back if the caller
    /// withdrew (so the event loop can give back what it grants).
    pub(crate) fn complete(&self, reply: Reply, asked: Instant) -> Option<Reply> {
        let waker = {
            let mut s = lock(&self.state);
            if s.withdrawn {
                return Some(reply);
            }
            s.reply = Some((reply, asked));
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        None
    }

    fn poll(&self, cx: &Context<'_>) -> Poll<(Reply, Instant)> {
        let mut s = lock(&self.state);
        match s.reply.take() {
            Some(reply) => Poll::Ready(reply),
            None => {
                if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// Marks the call withdrawn; the answer if it came already.
    fn withdraw(&self) -> Option<Reply> {
        let mut s = lock(&self.state);
        s.withdrawn = true;
        s.reply.take().map(|(reply, _)| reply)
    }

    /// The call is answered by this peer: the loop is gone.
    pub(crate) fn stopped(&self) {
        let stopped = Reply::Refused(STOPPED.into());
        self.complete(stopped, Instant::now());
    }
}

/// Commands that did not fit the loop's queue, oldest first, and the thread that hands them
/// on. While any waits here, new commands queue behind them, so the loop sees each handle's
/// commands in the order they were made (a withdrawal never overtakes its operation).
///
/// It holds at most one command per live future or permit of this peer's primitives, plus
/// [`PUBLISH_BACKLOG`] publications: bounded by what the program holds, as the loop's own
/// table of calls is.
#[derive(Default)]
struct Overflow {
    state: Mutex<OverflowState>,
    more: Condvar,
}

#[derive(Default)]
struct OverflowState {
    waiting: VecDeque<Command>,
    /// The thread is handing one on (taken out of `waiting`, not yet in the loop's queue).
    sending: bool,
    /// The thread runs.
    started: bool,
    /// The loop stopped: nothing more is sent.
    stopped: bool,
    /// The backend is gone: the thread ends once `waiting` is empty.
    closed: bool,
}

/// Fails a command the loop will never see: its caller is answered at once.
fn refuse(command: Command) {
    if let Command::Prim { slot, .. } = command {
        slot.stopped();
    }
}

impl Overflow {
    /// Hands `command` to the loop if its queue has room and nothing waits ahead; else
    /// queues it here. Never blocks.
    fn send(self: &Arc<Self>, commands: &WeakCommands, command: Command) {
        let mut s = lock(&self.state);
        if s.stopped {
            drop(s);
            return refuse(command);
        }
        let command = if s.waiting.is_empty() && !s.sending {
            let Some(strong) = commands.upgrade() else {
                s.stopped = true;
                drop(s);
                return refuse(command);
            };
            match strong.try_send(command) {
                Ok(()) => return,
                Err(TrySend::Stopped(command)) => {
                    s.stopped = true;
                    drop(s);
                    return refuse(command);
                }
                Err(TrySend::Full(command)) => command,
            }
        } else {
            command
        };
        if matches!(command, Command::TopicPublish { .. })
            && s.waiting
                .iter()
                .filter(|c| matches!(c, Command::TopicPublish { .. }))
                .count()
                >= PUBLISH_BACKLOG
        {
            tracing::warn!("the event loop is behind: a topic value was not sent to other peers");
            return;
        }
        s.waiting.push_back(command);
        if !s.started {
            s.started = true;
            let (overflow, commands) = (self.clone(), commands.clone());
            let spawned = std::thread::Builder::new()
                .name("peer-prims-send".into())
                .spawn(move || overflow.run(&commands));
            if spawned.is_err() {
                // No thread, no sending: fail what waits rather than leave it waiting.
                s.stopped = true;
                let waiting: Vec<Command> = s.waiting.drain(..).collect();
                drop(s);
                tracing::error!("could not start the thread that sends primitives' commands");
                waiting.into_iter().for_each(refuse);
                return;
            }
        }
        drop(s);
        self.more.notify_one();
    }

    /// The sending thread: waits for room in the loop's queue (blocking here is fine: no
    /// task runs on this thread), one command at a time, in order.
    fn run(&self, commands: &WeakCommands) {
        loop {
            let command = {
                let mut s = lock(&self.state);
                loop {
                    if let Some(command) = s.waiting.pop_front() {
                        s.sending = true;
                        break command;
                    }
                    if s.closed || s.stopped {
                        s.started = false;
                        return;
                    }
                    s = self.more.wait(s).unwrap_or_else(PoisonError::into_inner);
                }
            };
            let slot = match &command {
                Command::Prim { slot, .. } => Some(slot.clone()),
                _ => None,
            };
            let sent = commands.send(command).is_ok();
            let mut s = lock(&self.state);
            s.sending = false;
            if !sent {
                s.stopped = true;
                let waiting: Vec<Command> = s.waiting.drain(..).collect();
                drop(s);
                if let Some(slot) = slot {
                    slot.stopped();
                }
                waiting.into_iter().for_each(refuse);
            }
        }
    }

    /// The backend is gone: the thread hands on what waits, then ends.
    fn close(&self) {
        lock(&self.state).closed = true;
        self.more.notify_one();
    }
}

/// Sends operations to the event loop.
struct Caller {
    commands: WeakCommands,
    overflow: Arc<Overflow>,
    next_seq: AtomicU64,
}

impl Caller {
    /// Starts an operation; its answer comes in the slot. Never blocks.
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
        self.send(command);
        (seq, slot)
    }

    /// Sends a command to the loop, now or as soon as there is room; never blocks.
    fn send(&self, command: Command) {
        self.overflow.send(&self.commands, command);
    }

    /// Withdraws call `seq` (its future was dropped). What it was granted is given back:
    /// here if the answer came already, by the event loop if it comes later, by the node if
    /// the node still has the call. A release goes on all the same (the node does not drop
    /// a withdrawn release).
    fn withdraw(&self, seq: u64, slot: &CallSlot) {
        match slot.withdraw() {
            Some(reply) => {
                if let Some(op) = slot.op.undo(&reply) {
                    self.start(&slot.key, slot.kind, op);
                }
            }
            None => self.send(Command::PrimCancel(seq)),
        }
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        self.overflow.close();
    }
}

/// One primitive's handle on the swarm: its key and kind, and its calls in flight.
struct Handle {
    key: String,
    kind: Kind,
    caller: Arc<Caller>,
    /// Its calls in flight, by ticket.
    calls: Mutex<HashMap<u64, Arc<CallSlot>>>,
}

impl Handle {
    fn new(key: &str, kind: Kind, caller: &Arc<Caller>) -> Handle {
        Handle {
            key: key.to_string(),
            kind,
            caller: caller.clone(),
            calls: Mutex::default(),
        }
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
        let known = ticket
            .0
            .and_then(|seq| lock(&self.calls).get(&seq).cloned().map(|slot| (seq, slot)));
        let (seq, slot) = match known {
            Some(known) => known,
            None => {
                let (seq, slot) = self.caller.start(&self.key, self.kind, op());
                lock(&self.calls).insert(seq, slot.clone());
                ticket.0 = Some(seq);
                (seq, slot)
            }
        };
        match slot.poll(cx) {
            Poll::Ready(reply) => {
                lock(&self.calls).remove(&seq);
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

    /// Polls a call that does not wait in a line: every answer ends it, one it does not
    /// expect (a refusal, the client stopped) as the neutral value `read` gives it.
    fn poll_answer<T>(
        &self,
        ticket: &mut Ticket,
        op: impl FnOnce() -> Op,
        cx: &Context<'_>,
        read: impl FnOnce(Reply, Instant) -> T,
    ) -> Poll<T> {
        self.poll(ticket, op, cx)
            .map(|(reply, asked)| read(reply, asked))
    }

    /// Withdraws the call of `ticket` (its future was dropped).
    fn cancel(&self, ticket: &mut Ticket) {
        let Some(seq) = ticket.0.take() else {
            return;
        };
        let slot = lock(&self.calls).remove(&seq);
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

fn count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
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

struct SwarmSemaphore(Handle);

impl SwarmSemaphore {
    /// The grant an answer carries, if any; other answers than "not granted" are logged.
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
    fn poll_try_acquire(
        &self,
        ticket: &mut Ticket,
        lease: Option<Duration>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Grant>> {
        let op = || Op::Acquire {
            lease_ms: lease.map(lease_ms),
            wait: false,
        };
        self.0
            .poll_answer(ticket, op, cx, |reply, asked| self.grant(reply, asked))
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

    fn poll_release(
        &self,
        ticket: &mut Ticket,
        token: FencingToken,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Expired>> {
        let op = || Op::Release { token: token.0 };
        self.0.poll_answer(ticket, op, cx, |reply, _| match reply {
            Reply::Done => Ok(()),
            _ => Err(Expired(token)),
        })
    }

    fn release_soon(&self, token: FencingToken) {
        // The node sends it (again, until a home answers); nobody waits for the answer.
        self.0.start(Op::Release { token: token.0 });
    }

    fn poll_renew(
        &self,
        ticket: &mut Ticket,
        token: FencingToken,
        lease: Duration,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Grant, Expired>> {
        let op = || Op::Renew {
            token: token.0,
            lease_ms: lease_ms(lease),
        };
        self.0.poll_answer(ticket, op, cx, |reply, asked| {
            self.grant(reply, asked).ok_or(Expired(token))
        })
    }

    fn poll_is_held(
        &self,
        ticket: &mut Ticket,
        token: FencingToken,
        cx: &mut Context<'_>,
    ) -> Poll<bool> {
        let op = || Op::IsHeld { token: token.0 };
        self.0.poll_answer(ticket, op, cx, |reply, _| {
            matches!(reply, Reply::Bool(true))
        })
    }

    fn poll_available(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<usize> {
        self.0.poll_answer(
            ticket,
            || Op::Available,
            cx,
            |reply, _| match reply {
                Reply::Count(n) => count(n),
                _ => 0,
            },
        )
    }

    fn cancel(&self, ticket: &mut Ticket) {
        self.0.cancel(ticket);
    }
}

struct SwarmQueue {
    h: Handle,
    capacity: usize,
    codec: Codec,
}

impl SwarmQueue {
    /// Decodes an item; one that does not decode is logged and dropped (two programs
    /// disagree on the type under one name).
    fn decode(&self, bytes: &[u8]) -> Option<Payload> {
        (self.codec.decode)(bytes)
            .map_err(|e| tracing::error!(key = %self.h.key, error = %e, "dropped an undecodable queue item"))
            .ok()
    }

    /// The operation putting `item`, encoded (values of the queue's type always encode).
    fn put_op(&self, item: &Option<Payload>, wait: bool) -> Op {
        let bytes = item.as_deref().map(|value| (self.codec.encode)(value));
        Op::Put {
            item: bytes.and_then(Result::ok).unwrap_or_default(),
            wait,
        }
    }
}

impl QueueBackend for SwarmQueue {
    fn poll_try_put(
        &self,
        ticket: &mut Ticket,
        item: &mut Option<Payload>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), PutError<()>>> {
        if item.is_none() {
            // Nothing left to put.
            return Poll::Ready(Err(PutError::Closed(())));
        }
        let op = || self.put_op(item, false);
        let answer = self.h.poll_answer(ticket, op, cx, |reply, _| match reply {
            Reply::Done => Ok(()),
            Reply::Closed => Err(PutError::Closed(())),
            _ => Err(PutError::Full(())),
        });
        if let Poll::Ready(Ok(())) = answer {
            item.take();
        }
        answer
    }

    fn poll_put(
        &self,
        ticket: &mut Ticket,
        item: &mut Option<Payload>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Closed>> {
        if item.is_none() {
            // Nothing left to put.
            return Poll::Ready(Err(Closed));
        }
        let op = || self.put_op(item, true);
        match self.h.poll(ticket, op, cx) {
            Poll::Ready((Reply::Done, _)) => {
                item.take();
                Poll::Ready(Ok(()))
            }
            Poll::Ready((Reply::Closed, _)) => Poll::Ready(Err(Closed)),
            Poll::Ready((reply, _)) if is_stopped(&reply) => Poll::Ready(Err(Closed)),
            Poll::Ready((other, _)) => {
                unexpected(&self.h.key, &other);
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_try_get(
        &self,
        ticket: &mut Ticket,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Payload, GetError>> {
        let op = || Op::Get { wait: false };
        self.h.poll_answer(ticket, op, cx, |reply, _| match reply {
            Reply::Item(bytes) => self.decode(&bytes).ok_or(GetError::Empty),
            Reply::Closed => Err(GetError::Closed),
            _ => Err(GetError::Empty),
        })
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
                Poll::Ready((reply, _)) if is_stopped(&reply) => return Poll::Ready(Err(Closed)),
                Poll::Ready((other, _)) => {
                    unexpected(&self.h.key, &other);
                    return Poll::Pending;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_close(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<()> {
        self.h.poll_answer(ticket, || Op::Close, cx, |_, _| ())
    }

    fn poll_len(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<usize> {
        self.h.poll_answer(
            ticket,
            || Op::Len,
            cx,
            |reply, _| match reply {
                Reply::Count(n) => count(n),
                _ => 0,
            },
        )
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn cancel(&self, ticket: &mut Ticket) {
        self.h.cancel(ticket);
    }
}

struct SwarmVariable {
    h: Handle,
    codec: Codec,
}

impl VariableBackend for SwarmVariable {
    fn poll_set(
        &self,
        ticket: &mut Ticket,
        value: &Shared,
        fence: Option<FencingToken>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<u64, FencingToken>> {
        // Encoded on the first poll only.
        let mut bytes = None;
        if ticket.0.is_none() {
            match (self.codec.encode)(&**value) {
                Ok(encoded) => bytes = Some(encoded),
                Err(e) => {
                    // Values of the variable's type always encode; another type is a bug.
                    tracing::error!(key = %self.h.key, error = %e, "variable value not encoded");
                    return Poll::Ready(fence.map_or(Ok(0), Err));
                }
            }
        }
        let op = || Op::Set {
            value: bytes.unwrap_or_default(),
            fence: fence.map(|t| t.0),
        };
        self.h.poll_answer(ticket, op, cx, |reply, _| match reply {
            Reply::Version(v) => Ok(v),
            Reply::Fenced { highest } if fence.is_some() => Err(FencingToken(highest)),
            other => {
                unexpected(&self.h.key, &other);
                // An unfenced set is never refused: its caller reads version 0.
                fence.map_or(Ok(0), Err)
            }
        })
    }

    fn poll_get(
        &self,
        ticket: &mut Ticket,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Versioned<Shared>>> {
        self.h.poll_answer(
            ticket,
            || Op::Read,
            cx,
            |reply, _| match reply {
                Reply::Value(Some((bytes, version))) => match (self.codec.decode)(&bytes) {
                    Ok(value) => Some(Versioned {
                        value: Arc::from(value),
                        version,
                    }),
                    Err(e) => {
                        tracing::error!(key = %self.h.key, error = %e, "undecodable variable");
                        None
                    }
                },
                _ => None,
            },
        )
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
    fn poll_set(&self, ticket: &mut Ticket, set: bool, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll_answer(ticket, || Op::Flag(set), cx, |_, _| ())
    }

    fn poll_is_set(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<bool> {
        self.0.poll_answer(
            ticket,
            || Op::IsSet,
            cx,
            |reply, _| matches!(reply, Reply::Bool(true)),
        )
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

struct SwarmTopic {
    key: String,
    codec: Codec,
    local: Arc<dyn TopicBackend>,
    caller: Arc<Caller>,
}

impl TopicBackend for SwarmTopic {
    fn publish(&self, value: Shared) -> usize {
        match (self.codec.encode)(&*value) {
            Ok(bytes) => self.caller.send(Command::TopicPublish {
                key: self.key.clone(),
                value: bytes,
            }),
            Err(e) => tracing::error!(key = %self.key, error = %e, "topic value not encoded"),
        }
        self.local.publish(value)
    }

    fn subscribe(&self, buffer: usize) -> u64 {
        self.local.subscribe(buffer)
    }

    fn poll_next(&self, id: u64, cx: &mut Context<'_>) -> Poll<Next> {
        self.local.poll_next(id, cx)
    }

    fn unsubscribe(&self, id: u64) {
        self.local.unsubscribe(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{Commands, Inbox, queue};

    /// A queue to a loop that does not run yet, filled to the brim.
    fn full_queue() -> (Commands, Inbox, usize) {
        let (commands, inbox) = queue();
        let mut filled = 0;
        while commands.try_send(Command::PrimCancel(u64::MAX)).is_ok() {
            filled += 1;
        }
        (commands, inbox, filled)
    }

    /// Takes the next command off the loop's queue, as the loop would.
    fn next(inbox: &mut Inbox) -> Command {
        inbox.rx.blocking_recv().expect("a command")
    }

    #[test]
    fn calls_made_while_the_loops_queue_is_full_return_at_once_and_reach_it_in_order() {
        let (commands, mut inbox, filled) = full_queue();
        let backend = SwarmBackend::new(commands.downgrade());
        let sem = backend.semaphore("lock/full", 1);
        let topic = backend.topic("topic/full/u64", Codec::of::<u64>());
        let mut cx = Context::from_waker(Waker::noop());
        let started = Instant::now();
        // A try_acquire polled, a permit dropped, a value published, another call polled
        // and then withdrawn: none of them waits for room.
        let mut ticket = Ticket::default();
        assert!(
            sem.poll_try_acquire(&mut ticket, None, &mut cx)
                .is_pending()
        );
        sem.release_soon(FencingToken(5));
        assert_eq!(topic.publish(Arc::new(3u64)), 0);
        let mut withdrawn = Ticket::default();
        assert!(sem.poll_available(&mut withdrawn, &mut cx).is_pending());
        let withdrawn_seq = withdrawn.0.expect("a call in flight");
        sem.cancel(&mut withdrawn);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "a call waited for room in the loop's queue"
        );

        // The loop takes what filled its queue, then what waited, in the order it was made.
        for _ in 0..filled {
            assert!(matches!(next(&mut inbox), Command::PrimCancel(u64::MAX)));
        }
        let Command::Prim { op, slot, .. } = next(&mut inbox) else {
            panic!("the try_acquire first")
        };
        assert_eq!(
            op,
            Op::Acquire {
                lease_ms: None,
                wait: false
            }
        );
        assert!(matches!(
            next(&mut inbox),
            Command::Prim {
                op: Op::Release { token: 5 },
                ..
            }
        ));
        assert!(matches!(next(&mut inbox), Command::TopicPublish { .. }));
        assert!(matches!(
            next(&mut inbox),
            Command::Prim {
                op: Op::Available,
                ..
            }
        ));
        assert!(matches!(next(&mut inbox), Command::PrimCancel(seq) if seq == withdrawn_seq));

        // The answer reaches the call that was sent late.
        let granted = Reply::Granted {
            token: 9,
            lease_ms: None,
        };
        assert!(slot.complete(granted, Instant::now()).is_none());
        match sem.poll_try_acquire(&mut ticket, None, &mut cx) {
            Poll::Ready(Some(grant)) => assert_eq!(grant.token, FencingToken(9)),
            other => panic!("expected the grant, got {other:?}"),
        }
        drop(commands);
    }

    #[test]
    fn a_call_made_once_the_loop_is_gone_is_answered_at_once() {
        let (commands, inbox) = queue();
        let backend = SwarmBackend::new(commands.downgrade());
        drop((commands, inbox));
        let queue = backend.queue("queue/gone/u64", 4, Codec::of::<u64>());
        let mut cx = Context::from_waker(Waker::noop());
        let mut ticket = Ticket::default();
        assert_eq!(
            queue.poll_len(&mut ticket, &mut cx),
            Poll::Ready(0),
            "a refusal reads as the neutral value"
        );
    }
}
