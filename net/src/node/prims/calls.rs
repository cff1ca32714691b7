//! This peer's own operations: each sent to the home it computes, sent again when a peer
//! says it is not the home or cannot be reached, finished with the home's answer (or undone,
//! when its caller withdrew it).

use std::time::Instant;

use super::{Answer, Effect, INTERNAL_SEQ, Prims, RETRY};
use crate::membership::Membership;
use crate::node::state::Pending;
use crate::wire::{Kind, Op, OpId, PrimRequest, Reply, Request, Response};

/// An operation of this peer's client.
#[derive(Debug)]
pub(super) struct Call {
    key: String,
    kind: Kind,
    op: Op,
    /// Withdrawn: whatever it gets is undone.
    cancelled: bool,
    /// Times a peer said it was not the home.
    redirects: u32,
    /// When it was last sent: a lease granted counts from then at the latest.
    asked: Instant,
}

impl Call {
    pub(super) fn new(key: String, kind: Kind, op: Op, cancelled: bool, now: Instant) -> Call {
        Call {
            key,
            kind,
            op,
            cancelled,
            redirects: 0,
            asked: now,
        }
    }

    /// Whether a withdrawn call can be dropped when its request fails: it could not have
    /// taken anything (a put's item, if it went in, stays; see `docs/swarm.md`).
    pub(super) fn abandoned(&self) -> bool {
        self.cancelled && matches!(self.op, Op::Put { .. } | Op::Changed { .. } | Op::Wait)
    }

    /// What to send: a withdrawn waiting operation goes once more without waiting (with
    /// the same id, it gets what the first attempt may have taken, to undo it).
    pub(super) fn request_op(&self) -> Op {
        match (&self.op, self.cancelled) {
            (Op::Acquire { lease_ms, .. }, true) => Op::Acquire {
                lease_ms: *lease_ms,
                wait: false,
            },
            (Op::Get { .. }, true) => Op::Get { wait: false },
            (op, _) => op.clone(),
        }
    }
}

impl Prims {
    /// An operation of this peer's client, numbered `seq` by it; answered with
    /// [`Effect::Reply`].
    pub(crate) fn call(
        &mut self,
        members: &Membership,
        seq: u64,
        key: String,
        kind: Kind,
        op: Op,
        now: Instant,
    ) {
        self.start_call(members, seq, Call::new(key, kind, op, false, now), now);
    }

    /// Records call `seq` and sends it to its home; a `cancelled` one is undone when
    /// answered (the node's own calls).
    pub(super) fn start_call(&mut self, members: &Membership, seq: u64, call: Call, now: Instant) {
        self.calls.insert(seq, call);
        self.route(members, seq, None, now);
    }

    /// Gives back what a withdrawn call was granted after its client stopped waiting (the
    /// answer reached the client's slot too late).
    pub(crate) fn undo(
        &mut self,
        members: &Membership,
        key: String,
        kind: Kind,
        op: &Op,
        reply: &Reply,
        now: Instant,
    ) {
        if let Some(op) = op.undo(reply) {
            self.internal_call(members, key, kind, op, now);
        }
    }

    /// The client withdrew call `seq`: a waiting one leaves the line; anything it was
    /// granted meanwhile is given back.
    pub(crate) fn cancel(&mut self, members: &Membership, seq: u64, now: Instant) {
        let Some(call) = self.calls.get_mut(&seq) else {
            return;
        };
        call.cancelled = true;
        if call.op.line().is_some() {
            let (key, kind) = (call.key.clone(), call.kind);
            self.internal_call(members, key, kind, Op::Cancel { seq }, now);
        }
    }

    pub(super) fn internal_call(
        &mut self,
        members: &Membership,
        key: String,
        kind: Kind,
        op: Op,
        now: Instant,
    ) {
        self.next_internal += 1;
        // Numbers start from the clock the client gave, so they are new after a restart.
        let seq = INTERNAL_SEQ | self.seq_seed.wrapping_add(self.next_internal);
        self.start_call(members, seq, Call::new(key, kind, op, true, now), now);
    }

    /// Sends call `seq` to its home (`to` if a peer named it, else the one computed).
    pub(super) fn route(&mut self, members: &Membership, seq: u64, to: Option<u64>, now: Instant) {
        let Some(call) = self.calls.get_mut(&seq) else {
            return;
        };
        call.asked = now;
        let (key, kind, op) = (call.key.clone(), call.kind, call.request_op());
        let home = to
            .filter(|p| members.is_up(*p))
            .unwrap_or_else(|| self.ranked_homes(members, &key)[0]);
        let id = OpId { peer: self.me, seq };
        if home == self.me {
            let request = PrimRequest { key, kind, id, op };
            self.serve(members, request, Answer::Local(seq), now);
        } else {
            let request = Request::Prim(PrimRequest { key, kind, id, op });
            self.send(home, Pending::Prim(home, seq), request);
        }
    }

    /// The answer to call `seq` from a peer (or why there was none).
    pub(crate) fn response(
        &mut self,
        members: &Membership,
        seq: u64,
        response: Result<Response, String>,
        now: Instant,
    ) {
        let Some(call) = self.calls.get(&seq) else {
            return;
        };
        match response {
            // Withdrawn while it waited: it took nothing.
            Ok(Response::Prim(Reply::Again)) if call.cancelled => {
                self.calls.remove(&seq);
            }
            Ok(Response::Prim(Reply::Again)) => self.route(members, seq, None, now),
            Ok(Response::Prim(Reply::NotHome { home })) => {
                let Some(call) = self.calls.get_mut(&seq) else {
                    return;
                };
                call.redirects += 1;
                if call.redirects <= 2 {
                    self.route(members, seq, Some(home), now);
                } else {
                    // Views of the membership differ: wait for them to agree.
                    call.redirects = 0;
                    self.retries.push((now + RETRY, seq));
                }
            }
            Ok(Response::Prim(reply)) => self.finish(members, seq, reply, now),
            Ok(other) => self.finish(
                members,
                seq,
                Reply::Refused(format!("the home answered {other:?}")),
                now,
            ),
            Err(_) if call.abandoned() => {
                self.calls.remove(&seq);
            }
            Err(_) => self.retries.push((now + RETRY, seq)),
        }
    }

    /// Call `seq` is answered: to its client, or undone if it was withdrawn.
    pub(super) fn finish(&mut self, members: &Membership, seq: u64, reply: Reply, now: Instant) {
        let Some(call) = self.calls.remove(&seq) else {
            return;
        };
        if !call.cancelled {
            let asked = call.asked;
            (self.effects).push_back(Effect::Reply { seq, reply, asked });
            return;
        }
        if let Some(op) = call.op.undo(&reply) {
            self.internal_call(members, call.key, call.kind, op, now);
        }
    }

    /// Each step: finishes answered local calls and sends again the calls that are due.
    pub(crate) fn step(&mut self, members: &Membership, now: Instant) {
        // Every step of the node comes here: nothing to do is the common case.
        if self.answered.is_empty() && !self.retries.iter().any(|(at, _)| *at <= now) {
            return;
        }
        for _ in 0..16 {
            let answered = std::mem::take(&mut self.answered);
            let (due, later) = std::mem::take(&mut self.retries)
                .into_iter()
                .partition(|(at, _)| *at <= now);
            self.retries = later;
            if answered.is_empty() && due.is_empty() {
                return;
            }
            for (seq, reply) in answered {
                self.response(members, seq, Ok(Response::Prim(reply)), now);
            }
            for (_, seq) in due {
                self.route(members, seq, None, now);
            }
        }
    }
}
