//! The swarm's handles of each kind of primitive: each turns the typed API's poll-style
//! calls into operations on its [`Handle`] and reads the answers.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use peer_core::ext::{
    Codec, EventBackend, Grant, Next, Payload, QueueBackend, SemaphoreBackend, Shared, Ticket,
    TopicBackend, VariableBackend,
};
use peer_core::sync::{Closed, Expired, FencingToken, GetError, PutError, Versioned};

use super::call::*;
use super::retry;
use crate::commands::Command;
use crate::wire::{Op, Reply};

pub(super) fn lease_ms(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

pub(super) struct SwarmSemaphore(pub(super) Handle);

impl SwarmSemaphore {
    /// The grant an answer carries, if any; other answers than "not granted" are logged.
    pub(super) fn grant(&self, reply: Reply, asked: Instant) -> Option<Grant> {
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
            Poll::Ready(Answer::Stopped) => stopped_while_waiting(&self.0.key),
            Poll::Ready(Answer::Reply(reply, asked)) => match self.grant(reply, asked) {
                Some(grant) => Poll::Ready(grant),
                // Logged; the waiter waits on, and asks again, rather than receive a permit
                // it has not.
                None => {
                    retry::wake_later(cx.waker());
                    Poll::Pending
                }
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

pub(super) struct SwarmQueue {
    pub(super) h: Handle,
    pub(super) capacity: usize,
    pub(super) codec: Codec,
}

impl SwarmQueue {
    /// Decodes an item; one that does not decode is logged and dropped (two programs
    /// disagree on the type under one name).
    pub(super) fn decode(&self, bytes: &[u8]) -> Option<Payload> {
        (self.codec.decode)(bytes)
            .map_err(|e| tracing::error!(key = %self.h.key, error = %e, "dropped an undecodable queue item"))
            .ok()
    }

    /// The operation putting `item`, encoded (values of the queue's type always encode).
    pub(super) fn put_op(&self, item: &Option<Payload>, wait: bool) -> Op {
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
            Poll::Ready(Answer::Reply(Reply::Done, _)) => {
                item.take();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Answer::Reply(Reply::Closed, _) | Answer::Stopped) => {
                Poll::Ready(Err(Closed))
            }
            Poll::Ready(Answer::Reply(other, _)) => {
                unexpected(&self.h.key, &other);
                retry::wake_later(cx.waker());
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
                Poll::Ready(Answer::Reply(Reply::Item(bytes), _)) => {
                    if let Some(item) = self.decode(&bytes) {
                        return Poll::Ready(Ok(item));
                    }
                    // Dropped: get the next one.
                }
                Poll::Ready(Answer::Reply(Reply::Closed, _) | Answer::Stopped) => {
                    return Poll::Ready(Err(Closed));
                }
                Poll::Ready(Answer::Reply(other, _)) => {
                    unexpected(&self.h.key, &other);
                    retry::wake_later(cx.waker());
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

pub(super) struct SwarmVariable {
    pub(super) h: Handle,
    pub(super) codec: Codec,
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

pub(super) struct SwarmEvent(pub(super) Handle);

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

pub(super) struct SwarmTopic {
    pub(super) key: String,
    pub(super) codec: Codec,
    pub(super) local: Arc<dyn TopicBackend>,
    pub(super) caller: Arc<Caller>,
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
