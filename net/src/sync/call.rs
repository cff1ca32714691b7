//! One operation on a primitive, from its caller to the event loop and back: the answer
//! slot the loop fills ([`CallSlot`]), the overflow that keeps a full queue from blocking a
//! caller ([`Overflow`]), the numbering and sending of operations ([`Caller`]) and one
//! primitive's handle with its waiting calls ([`Handle`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use peer_core::ext::Ticket;

use crate::commands::{Command, TrySend, WeakCommands};
use crate::wire::{Kind, Op, Reply};

/// Topic publications waiting in the [`Overflow`] at most: past this a publication is not
/// sent to other peers (delivery is best-effort; this peer's subscribers still get it).
pub(super) const PUBLISH_BACKLOG: usize = 1024;

/// Why a call is refused when this peer's loop is gone, as the calls that do not wait in a
/// line read it (the neutral value of a refusal).
pub(super) const STOPPED: &str = "the swarm client has stopped";

/// What a call got.
pub(super) enum Answer {
    /// Its home's reply, and when the request it answers was sent.
    Reply(Reply, Instant),
    /// Nothing will come: this peer's loop is gone. Only this peer says so
    /// ([`CallSlot::stopped`]), never a reply from the wire, so a home cannot fake it: a
    /// queue's waiting call ends as if the queue were closed, a wait with no error to give
    /// in [`stopped_while_waiting`].
    Stopped,
}

/// Ends a wait that this peer's stop leaves without an answer and whose caller expects no
/// error: a permit, a variable's change, an event's flag. Nothing can grant them any more,
/// and a permit, a version or a set flag that nobody granted would be a lie, so the wait
/// panics (inside a task, the task fails with this message) rather than wait for ever. The
/// invariant it breaks: a primitive's handle waits only while its peer runs.
pub(super) fn stopped_while_waiting(key: &str) -> ! {
    panic!("waited on `{key}`, but its peer has stopped: {STOPPED}, and nothing can answer")
}

/// The answer slot of one operation, filled by the event loop.
pub(crate) struct CallSlot {
    /// The operation, to undo what it was granted if its caller withdrew.
    pub(crate) key: String,
    pub(crate) kind: Kind,
    pub(crate) op: Op,
    pub(super) state: Mutex<SlotState>,
}

#[derive(Default)]
pub(super) struct SlotState {
    /// The answer.
    pub(super) answer: Option<Answer>,
    pub(super) waker: Option<Waker>,
    /// The caller stopped waiting: an answer that comes now is handed back to be undone.
    pub(super) withdrawn: bool,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CallSlot {
    pub(super) fn new(key: &str, kind: Kind, op: Op) -> CallSlot {
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
        match self.answer(Answer::Reply(reply, asked)) {
            Some(Answer::Reply(reply, _)) => Some(reply),
            _ => None,
        }
    }

    /// Fills the slot and wakes whoever waits on it; hands the answer back if the caller
    /// withdrew.
    fn answer(&self, answer: Answer) -> Option<Answer> {
        let waker = {
            let mut s = lock(&self.state);
            if s.withdrawn {
                return Some(answer);
            }
            s.answer = Some(answer);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        None
    }

    pub(super) fn poll(&self, cx: &Context<'_>) -> Poll<Answer> {
        let mut s = lock(&self.state);
        match s.answer.take() {
            Some(answer) => Poll::Ready(answer),
            None => {
                if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// Marks the call withdrawn; the home's reply if it came already.
    pub(super) fn withdraw(&self) -> Option<Reply> {
        let mut s = lock(&self.state);
        s.withdrawn = true;
        match s.answer.take() {
            Some(Answer::Reply(reply, _)) => Some(reply),
            // Nothing was granted.
            Some(Answer::Stopped) | None => None,
        }
    }

    /// The call is answered by this peer: the loop is gone.
    pub(crate) fn stopped(&self) {
        self.answer(Answer::Stopped);
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
pub(super) struct Overflow {
    pub(super) state: Mutex<OverflowState>,
    pub(super) more: Condvar,
}

#[derive(Default)]
pub(super) struct OverflowState {
    pub(super) waiting: VecDeque<Command>,
    /// The thread is handing one on (taken out of `waiting`, not yet in the loop's queue).
    pub(super) sending: bool,
    /// The thread runs.
    pub(super) started: bool,
    /// The loop stopped: nothing more is sent.
    pub(super) stopped: bool,
    /// The backend is gone: the thread ends once `waiting` is empty.
    pub(super) closed: bool,
}

/// Fails a command the loop will never see: its caller is answered at once.
pub(super) fn refuse(command: Command) {
    if let Command::Prim { slot, .. } = command {
        slot.stopped();
    }
}

impl Overflow {
    /// Hands `command` to the loop if its queue has room and nothing waits ahead; else
    /// queues it here. Never blocks.
    pub(super) fn send(self: &Arc<Self>, commands: &WeakCommands, command: Command) {
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
                    return refuse(*command);
                }
                Err(TrySend::Full(command)) => *command,
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
    pub(super) fn run(&self, commands: &WeakCommands) {
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
    pub(super) fn close(&self) {
        lock(&self.state).closed = true;
        self.more.notify_one();
    }
}

/// Sends operations to the event loop.
pub(super) struct Caller {
    pub(super) commands: WeakCommands,
    pub(super) overflow: Arc<Overflow>,
    pub(super) next_seq: AtomicU64,
}

impl Caller {
    /// Starts an operation; its answer comes in the slot. Never blocks.
    pub(super) fn start(&self, key: &str, kind: Kind, op: Op) -> (u64, Arc<CallSlot>) {
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
    pub(super) fn send(&self, command: Command) {
        self.overflow.send(&self.commands, command);
    }

    /// Withdraws call `seq` (its future was dropped). What it was granted is given back:
    /// here if the answer came already, by the event loop if it comes later, by the node if
    /// the node still has the call. A release goes on all the same (the node does not drop
    /// a withdrawn release).
    pub(super) fn withdraw(&self, seq: u64, slot: &CallSlot) {
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
pub(super) struct Handle {
    pub(super) key: String,
    pub(super) kind: Kind,
    pub(super) caller: Arc<Caller>,
    /// Its calls in flight, by ticket.
    pub(super) calls: Mutex<HashMap<u64, Arc<CallSlot>>>,
}

impl Handle {
    pub(super) fn new(key: &str, kind: Kind, caller: &Arc<Caller>) -> Handle {
        Handle {
            key: key.to_string(),
            kind,
            caller: caller.clone(),
            calls: Mutex::default(),
        }
    }

    /// Starts `op`; nobody waits for its answer.
    pub(super) fn start(&self, op: Op) {
        self.caller.start(&self.key, self.kind, op);
    }

    /// Polls the call of `ticket`, starting it with `op()` on the first poll.
    pub(super) fn poll(
        &self,
        ticket: &mut Ticket,
        op: impl FnOnce() -> Op,
        cx: &Context<'_>,
    ) -> Poll<Answer> {
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

    /// Like [`poll`](Handle::poll), for a wait with no error to give, with the answer turned
    /// into the caller's value by `expected`; an answer it does not take is logged, and the
    /// waiter waits on and asks again ([`retry`](super::retry)), except that this peer
    /// stopped: see [`stopped_while_waiting`].
    pub(super) fn poll_for<T>(
        &self,
        ticket: &mut Ticket,
        op: impl FnOnce() -> Op,
        cx: &Context<'_>,
        expected: impl FnOnce(Reply, Instant) -> Result<T, Reply>,
    ) -> Poll<T> {
        match self.poll(ticket, op, cx) {
            Poll::Ready(Answer::Stopped) => stopped_while_waiting(&self.key),
            Poll::Ready(Answer::Reply(reply, asked)) => match expected(reply, asked) {
                Ok(value) => Poll::Ready(value),
                Err(other) => {
                    unexpected(&self.key, &other);
                    super::retry::wake_later(cx.waker());
                    Poll::Pending
                }
            },
            Poll::Pending => Poll::Pending,
        }
    }

    /// Polls a call that does not wait in a line: every answer ends it, one it does not
    /// expect (a refusal, the client stopped) as the neutral value `read` gives it.
    pub(super) fn poll_answer<T>(
        &self,
        ticket: &mut Ticket,
        op: impl FnOnce() -> Op,
        cx: &Context<'_>,
        read: impl FnOnce(Reply, Instant) -> T,
    ) -> Poll<T> {
        self.poll(ticket, op, cx).map(|answer| match answer {
            Answer::Reply(reply, asked) => read(reply, asked),
            Answer::Stopped => read(Reply::Refused(STOPPED.into()), Instant::now()),
        })
    }

    /// Withdraws the call of `ticket` (its future was dropped).
    pub(super) fn cancel(&self, ticket: &mut Ticket) {
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
pub(super) fn unexpected(key: &str, reply: &Reply) {
    tracing::error!(%key, ?reply, "unexpected answer from a primitive's home");
}
