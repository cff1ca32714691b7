//! The home's side: serving operations in order with their lines of waiters, replicating
//! each change to the backup before answering, claiming a key's newest state when this
//! peer becomes its home, handing it on when it stops being one, and answering the other
//! peers' claims and replications.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Answer, Effect, Hosted, INTERNAL_SEQ, MOVED_FOR, Prims, RETRY, Replication, Waiter};
use crate::membership::Membership;
use crate::node::placement::ranked;
use crate::node::state::Pending;
use crate::wire::{Body, Delta, Kind, Op, OpId, PrimRequest, PrimState, Reply, Request, Response};

impl Prims {
    /// An operation arrived from another peer.
    pub(crate) fn request(
        &mut self,
        members: &Membership,
        from: u64,
        channel: u64,
        request: PrimRequest,
        now: Instant,
    ) {
        if request.id.peer != from {
            let refused = Reply::Refused("an operation must carry its sender's id".into());
            self.respond(Answer::Remote(channel), refused);
            return;
        }
        self.serve(members, request, Answer::Remote(channel), now);
    }

    /// Serves an operation as the home, or says who the home is.
    pub(super) fn serve(
        &mut self,
        members: &Membership,
        request: PrimRequest,
        answer: Answer,
        now: Instant,
    ) {
        let PrimRequest { key, kind, id, op } = request;
        let mut home = self.ranked_homes(members, &key)[0];
        if home == self.me
            && let Some((to, _)) =
                (self.moved.get(&key)).filter(|(to, until)| *until > now && members.is_up(*to))
        {
            // We gave it to a peer that took itself for the home: it is, until views agree.
            home = *to;
        }
        if home != self.me {
            if self.hosted.contains_key(&key) {
                self.demote(&key, home);
            }
            self.respond(answer, Reply::NotHome { home });
            return;
        }
        if let Some(claim) = self.claims.get_mut(&key) {
            claim
                .queued
                .push((PrimRequest { key, kind, id, op }, answer));
            return;
        }
        let Some(hosted) = self.hosted.get_mut(&key) else {
            let most = self.limits.prim_keys;
            if !self.room_for(&key, most) {
                let why = format!("this peer keeps its limit of {most} named primitives");
                self.respond(answer, Reply::Refused(why));
                return;
            }
            self.claim(members, PrimRequest { key, kind, id, op }, answer, now);
            return;
        };
        if !hosted.state.is(kind) {
            let found = hosted.state.kind();
            let refused = Reply::Refused(format!(
                "{key} is a {found:?}, not a {kind:?}: it was created with other parameters"
            ));
            self.respond(answer, refused);
            return;
        }
        if let Op::Put { item, .. } = &op
            && id.peer != self.me
        {
            let queued = self.queued_by(id.peer);
            let most = self.limits.queued_bytes_per_peer;
            if queued.saturating_add(item.len()) > most {
                let why =
                    format!("the peer has {queued} bytes queued here, at its bound of {most}");
                self.respond(answer, Reply::Refused(why));
                return;
            }
        }
        let Some(hosted) = self.hosted.get_mut(&key) else {
            return;
        };
        if let Op::Release { token } | Op::Renew { token, .. } = op
            && let Body::Semaphore { holders, .. } = &hosted.state.body
            && holders
                .iter()
                .any(|h| h.token == token && h.op.peer != id.peer)
        {
            let refused = Reply::Refused(format!(
                "permit {token} of {key} is held by another peer: only its holder releases or \
                 renews it"
            ));
            self.respond(answer, refused);
            return;
        }
        if let Op::Cancel { seq } = op {
            let withdrawn = OpId { peer: id.peer, seq };
            if let Some(at) = hosted.waiters.iter().position(|w| w.id == withdrawn) {
                let waiter = hosted.waiters.remove(at).expect("found above");
                self.respond(waiter.answer, Reply::Cancelled);
            }
            self.respond(answer, Reply::Done);
            return;
        }
        // A retry of a waiting operation replaces its earlier place in line.
        if let Some(at) = hosted.waiters.iter().position(|w| w.id == id) {
            let earlier = hosted.waiters.remove(at).expect("found above");
            hosted.waiters.insert(
                at,
                Waiter {
                    id,
                    op,
                    answer,
                    until: now + self.long_poll,
                },
            );
            self.respond(earlier.answer, Reply::Again);
            return;
        }
        let line_busy = op
            .line()
            .is_some_and(|line| hosted.waiters.iter().any(|w| w.op.line() == Some(line)));
        let mut deltas = Vec::new();
        let reply = if line_busy {
            None
        } else {
            hosted.state.operate(id, &op, now, &mut deltas)
        };
        match reply {
            Some(reply) => self.answer_after(&key, answer, reply, deltas),
            None => {
                let until = now + self.long_poll;
                hosted.waiters.push_back(Waiter {
                    id,
                    op,
                    answer,
                    until,
                });
            }
        }
        self.serve_waiters(&key, now);
    }

    /// Answers once the backup has `deltas` (at once if there are none, or no backup).
    pub(super) fn answer_after(
        &mut self,
        key: &str,
        answer: Answer,
        reply: Reply,
        deltas: Vec<Delta>,
    ) {
        let Some(hosted) = self.hosted.get_mut(key) else {
            self.respond(answer, reply);
            return;
        };
        if deltas.is_empty() && hosted.held.is_empty() && !hosted.in_flight {
            self.respond(answer, reply);
            return;
        }
        hosted.unsent.extend(deltas);
        hosted.held.push((answer, reply));
        self.flush_replication(key);
    }

    /// Serves the waiters of `key` that can complete now, in order.
    pub(super) fn serve_waiters(&mut self, key: &str, now: Instant) {
        let mut done = Vec::new();
        if let Some(hosted) = self.hosted.get_mut(key) {
            let mut waiting = VecDeque::with_capacity(hosted.waiters.len());
            while let Some(w) = hosted.waiters.pop_front() {
                let mut deltas = Vec::new();
                match hosted.state.operate(w.id, &w.op, now, &mut deltas) {
                    Some(reply) => done.push((w.answer, reply, deltas)),
                    None => waiting.push_back(w),
                }
            }
            hosted.waiters = waiting;
        }
        for (answer, reply, deltas) in done {
            self.answer_after(key, answer, reply, deltas);
        }
        self.flush_replication(key);
    }

    /// Sends the backup the changes not yet sent, unless a batch is in flight; with no
    /// backup, answers what waited.
    pub(super) fn flush_replication(&mut self, key: &str) {
        let Some(hosted) = self.hosted.get_mut(key) else {
            return;
        };
        if hosted.in_flight || hosted.resend_at.is_some() {
            return;
        }
        let Some(backup) = hosted.backup else {
            hosted.unsent.clear();
            let held = std::mem::take(&mut hosted.held);
            for (answer, reply) in held {
                self.respond(answer, reply);
            }
            return;
        };
        if hosted.unsent.is_empty() && hosted.held.is_empty() {
            return;
        }
        let mut deltas = std::mem::take(&mut hosted.unsent);
        if deltas.len() > crate::wire::DELTAS {
            // More changes than a backup decodes at once: the state itself says as much.
            deltas = vec![Delta::Snapshot(hosted.state.snapshot(Instant::now()))];
        }
        let held = std::mem::take(&mut hosted.held);
        let request = Request::Replicate {
            key: key.to_string(),
            base: hosted.backup_seq,
            deltas,
        };
        hosted.backup_seq = hosted.state.seq;
        hosted.in_flight = true;
        hosted.batch += 1;
        let pending = Pending::Replicate(Replication {
            backup,
            key: key.to_string(),
            batch: hosted.batch,
            held,
        });
        self.send(backup, pending, request);
    }

    /// The backup answered a batch (or did not).
    pub(crate) fn replicated(
        &mut self,
        members: &Membership,
        sent: Replication,
        response: Result<Response, String>,
        now: Instant,
    ) {
        let Replication {
            backup: peer,
            key,
            batch,
            held,
        } = sent;
        let current = self.hosted.get(&key).is_some_and(|h| h.batch == batch);
        let Some(hosted) = self.hosted.get_mut(&key).filter(|_| current) else {
            // A batch of an earlier hosting: the state that made these answers was kept as
            // a copy here (and replicated anew if hosted again).
            for (answer, reply) in held {
                self.respond(answer, reply);
            }
            return;
        };
        hosted.in_flight = false;
        match response {
            Ok(Response::Ack) if hosted.backup == Some(peer) => {
                hosted.refused = 0;
                for (answer, reply) in held {
                    self.respond(answer, reply);
                }
            }
            other => {
                // Lost, refused (no copy there), or sent to a former backup: send the whole
                // state to the backup, with these answers waiting for it. (The ranking is
                // read only here: an acknowledgement, the common answer, needs none.)
                let ranked = self.ranked_homes(members, &key);
                let Some(hosted) = self.hosted.get_mut(&key) else {
                    return;
                };
                if other.is_err() && hosted.backup == Some(peer) {
                    tracing::debug!(%key, peer = %format_args!("{peer:016x}"), "backup lost");
                    hosted.backup = None;
                }
                if matches!(other, Ok(Response::Refused(_))) && hosted.backup == Some(peer) {
                    // The first refusal is a copy that missed changes: the snapshot below
                    // mends it. A refused snapshot is a peer that keeps no copy: the next
                    // of the ranking backs the key up, after a pause.
                    hosted.refused += 1;
                    if hosted.refused >= 2 {
                        tracing::debug!(%key, peer = %format_args!("{peer:016x}"), "backup refuses copies");
                        let after = ranked.iter().skip_while(|p| **p != peer).skip(1);
                        let next = (after.chain(&ranked)).find(|p| **p != self.me && **p != peer);
                        hosted.backup = Some(next.copied().unwrap_or(peer));
                        hosted.refused = 0;
                        hosted.resend_at = Some(now + RETRY);
                    }
                }
                let mut all = held;
                all.append(&mut hosted.held);
                hosted.held = all;
                hosted.unsent = vec![Delta::Snapshot(hosted.state.snapshot(now))];
                if hosted.backup.is_none() {
                    let backup = ranked.into_iter().find(|p| *p != self.me && *p != peer);
                    if let Some(hosted) = self.hosted.get_mut(&key) {
                        hosted.backup = backup;
                    }
                }
            }
        }
        self.flush_replication(&key);
    }

    /// Starts hosting `key`: first asks every live peer for the newest copy of its state.
    pub(super) fn claim(
        &mut self,
        members: &Membership,
        request: PrimRequest,
        answer: Answer,
        now: Instant,
    ) {
        let key = request.key.clone();
        let peers: Vec<u64> = members.up().iter().copied().collect();
        let claim = self.claims.entry(key.clone()).or_default();
        claim.waiting = peers.len();
        claim.again = false;
        // As a copy to send would be: leases as what is left of them.
        // Kept until a claim succeeds: one that must wait (`again`) claims anew later.
        let was_home = self.held_up.contains(&key);
        if let Some(copy) = self.replicas.remove(&key) {
            claim.had_copy = !was_home;
            newest(&mut claim.best, copy.snapshot(now));
        }
        claim.queued.push((request, answer));
        for peer in peers {
            let request = Request::Claim { key: key.clone() };
            self.send(peer, Pending::Claim(peer, key.clone()), request);
        }
        self.maybe_claimed(members, &key, now);
    }

    /// A peer answered our claim of `key` (or could not).
    /// A copy is taken only from a peer that may hold one. A claimant that was the backup
    /// (the home is gone) takes one only from a peer ranked above itself: the home, if it
    /// was thought gone wrongly. A new claimant (it joined, or came up the ranking) takes
    /// one from the three it ranks first, itself among them: the former home and backup.
    pub(crate) fn claim_answered(
        &mut self,
        members: &Membership,
        peer: u64,
        key: &str,
        response: Result<Response, String>,
        now: Instant,
    ) {
        let had_copy = self.claims.get(key).is_some_and(|c| c.had_copy);
        let may_hold = if had_copy {
            ranked(key, &[peer, self.me])[0] == peer
        } else {
            self.ranked_homes(members, key)
                .iter()
                .take(3)
                .any(|p| *p == peer)
        };
        let Some(claim) = self.claims.get_mut(key) else {
            return;
        };
        claim.waiting = claim.waiting.saturating_sub(1);
        match response {
            Ok(Response::Claimed(Some(state))) if may_hold => newest(&mut claim.best, state),
            Ok(Response::Claimed(Some(_))) => {
                tracing::debug!(%key, peer = %format_args!("{peer:016x}"), "a copy from a peer that cannot hold one dropped");
            }
            Ok(Response::Claimed(None)) | Err(_) => {}
            // Not the home in that peer's view (yet).
            Ok(_) => claim.again = true,
        }
        self.maybe_claimed(members, key, now);
    }

    /// Once every peer answered the claim: hosts the newest state and serves what waited.
    pub(super) fn maybe_claimed(&mut self, members: &Membership, key: &str, now: Instant) {
        if self.claims.get(key).is_none_or(|c| c.waiting > 0) {
            return;
        }
        let Some(mut claim) = self.claims.remove(key) else {
            return;
        };
        if claim.again {
            // Keep what was found; the operations wait (callers elsewhere ask again soon).
            for (_, answer) in claim.queued.drain(..) {
                match answer {
                    Answer::Local(seq) => self.retries.push((now + RETRY, seq)),
                    Answer::Remote(_) => self.respond(answer, Reply::NotHome { home: self.me }),
                }
            }
            if let Some(best) = claim.best.take() {
                self.replicas.insert(key.to_string(), best);
            }
            return;
        }
        let (kind, first) = (claim.queued[0].0.kind, claim.queued[0].0.id);
        // A new primitive's tokens start above any an earlier, lost copy could have given:
        // the creating call's number counts from the wall clock.
        let mut state = claim
            .best
            .unwrap_or_else(|| PrimState::new(kind, first.seq & !INTERNAL_SEQ));
        state.apply(&Delta::Snapshot(state.clone()), now);
        self.held_up.remove(key);
        self.host(members, key.to_string(), state, now);
        for (request, answer) in claim.queued {
            self.serve(members, request, answer, now);
        }
    }

    /// Hosts `key` with `state` (leases already by this peer's clock); its backup gets a
    /// snapshot. Permits of peers that are gone are taken back.
    pub(super) fn host(
        &mut self,
        members: &Membership,
        key: String,
        mut state: PrimState,
        now: Instant,
    ) {
        let mut deltas = Vec::new();
        for peer in members.down() {
            state.drop_holder(peer, now, &mut deltas);
        }
        let backup = self
            .ranked_homes(members, &key)
            .into_iter()
            .find(|p| *p != self.me);
        let unsent = vec![Delta::Snapshot(state.snapshot(now))];
        let hosted = Hosted {
            state,
            waiters: VecDeque::new(),
            backup,
            unsent,
            held: Vec::new(),
            in_flight: false,
            batch: 0,
            backup_seq: 0,
            refused: 0,
            resend_at: None,
        };
        self.hosted.insert(key.clone(), hosted);
        self.flush_replication(&key);
    }

    /// Stops hosting `key`, whose home is now `to`: the state stays here as a copy for
    /// `to`'s claim; waiters are sent there.
    pub(super) fn demote(&mut self, key: &str, to: u64) {
        let Some(hosted) = self.hosted.remove(key) else {
            return;
        };
        self.replicas.insert(key.to_string(), hosted.state);
        for w in hosted.waiters {
            self.respond(w.answer, Reply::NotHome { home: to });
        }
        // Their changes are in the copy kept here.
        for (answer, reply) in hosted.held {
            self.respond(answer, reply);
        }
    }

    /// Answers an operation.
    pub(super) fn respond(&mut self, answer: Answer, reply: Reply) {
        match answer {
            Answer::Remote(channel) => self.effects.push_back(Effect::Respond {
                channel,
                response: Response::Prim(reply),
            }),
            // Finished in `step`, which has the clock.
            Answer::Local(seq) => self.answered.push((seq, reply)),
        }
    }

    /// Ends what timed out: leases that ran out, long-polls to answer `Again`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let keys: Vec<String> = self.hosted.keys().cloned().collect();
        for key in keys {
            let Some(hosted) = self.hosted.get_mut(&key) else {
                continue;
            };
            if hosted.resend_at.is_some_and(|at| at <= now) {
                hosted.resend_at = None;
            }
            let mut deltas = Vec::new();
            hosted.state.expire(now, &mut deltas);
            let (ended, waiting) = std::mem::take(&mut hosted.waiters)
                .into_iter()
                .partition(|w| w.until <= now);
            hosted.waiters = waiting;
            hosted.unsent.extend(deltas);
            for w in ended {
                self.respond(w.answer, Reply::Again);
            }
            self.serve_waiters(&key, now);
        }
    }

    /// When [`handle_timeout`](Prims::handle_timeout) or [`step`](Prims::step) is next
    /// due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let hosted = self.hosted.values().flat_map(|h| {
            let until = h.waiters.iter().map(|w| w.until).min();
            [h.state.next_expiry(), until, h.resend_at]
        });
        let retries = self.retries.iter().map(|(at, _)| Some(*at));
        hosted.chain(retries).flatten().min()
    }

    /// Membership changed: keys whose home is now another peer go there, and each hosted
    /// key's backup is the second-ranked peer; permits of a peer that is gone are taken
    /// back and its waiters dropped.
    pub(crate) fn membership_changed(
        &mut self,
        members: &Membership,
        gone: Option<u64>,
        now: Instant,
    ) {
        if let Some(peer) = gone {
            self.moved.retain(|_, (to, _)| *to != peer);
        }
        // Copies are kept by the home's first two successors; others are stale.
        let stale: Vec<String> = (self.replicas.keys())
            .filter(|key| {
                !self.ranked_homes(members, key)[..]
                    .iter()
                    .take(2)
                    .any(|p| *p == self.me)
            })
            .cloned()
            .collect();
        for key in stale {
            self.replicas.remove(&key);
        }
        let keys: Vec<String> = self.hosted.keys().cloned().collect();
        for key in keys {
            let ranked = self.ranked_homes(members, &key);
            if ranked[0] != self.me {
                self.demote(&key, ranked[0]);
                continue;
            }
            let backup = ranked.get(1).copied();
            let Some(hosted) = self.hosted.get_mut(&key) else {
                continue;
            };
            let mut dropped = VecDeque::new();
            if let Some(peer) = gone {
                let mut deltas = Vec::new();
                hosted.state.drop_holder(peer, now, &mut deltas);
                hosted.unsent.extend(deltas);
                let (theirs, others) = (std::mem::take(&mut hosted.waiters).into_iter())
                    .partition(|w| w.id.peer == peer);
                hosted.waiters = others;
                dropped = theirs;
            }
            if hosted.backup != backup {
                hosted.backup = backup;
                hosted.unsent = vec![Delta::Snapshot(hosted.state.snapshot(now))];
            }
            // Answered, not forgotten: the request is still open on its link or substream,
            // which would otherwise hold its place there until the peer disconnects.
            for waiter in dropped {
                self.respond(waiter.answer, Reply::Again);
            }
            self.serve_waiters(&key, now);
        }
    }

    /// This peer is leaving: each hosted key's backup gets the whole state once more, so
    /// the peer that takes over when this one is gone holds every change; a snapshot to a
    /// new backup still in flight (the old one just left) is waited for too. A backup that
    /// cannot be reached fails the snapshot, and the next peer gets it instead
    /// ([`replicated`](Prims::replicated)). A copy this peer keeps of a key whose home is
    /// gone, and which it would host at the next operation, is hosted now, so that it goes
    /// on to the next peer rather than leave with this one.
    pub(crate) fn hand_off(&mut self, members: &Membership, now: Instant) {
        let orphans: Vec<String> = (self.replicas.keys())
            .filter(|key| !self.hosted.contains_key(*key) && !self.claims.contains_key(*key))
            .filter(|key| self.ranked_homes(members, key)[0] == self.me)
            .cloned()
            .collect();
        for key in orphans {
            if let Some(copy) = self.replicas.remove(&key) {
                // As a claim takes a copy: leases as time left, then by this peer's clock.
                let mut state = copy.snapshot(now);
                state.apply(&Delta::Snapshot(state.clone()), now);
                self.host(members, key, state, now);
            }
        }
        let keys: Vec<String> = self.hosted.keys().cloned().collect();
        for key in keys {
            if let Some(hosted) = self.hosted.get_mut(&key) {
                hosted.unsent = vec![Delta::Snapshot(hosted.state.snapshot(now))];
            }
            self.flush_replication(&key);
        }
    }

    /// Whether every hosted key's backup has acknowledged all its changes (or there is no
    /// peer to give them to): a leaving peer may go.
    pub(crate) fn handed_off(&self) -> bool {
        (self.hosted.values()).all(|h| !h.in_flight && h.unsent.is_empty() && h.held.is_empty())
    }

    /// This peer was held up: if others suspected it, another peer took over its keys and
    /// may have changed them. Each hosted key becomes a copy again, so the next operation
    /// claims it and finds the newest state; waiters ask again.
    pub(crate) fn held_up(&mut self) {
        let hosted = std::mem::take(&mut self.hosted);
        for (key, hosted) in hosted {
            for w in hosted.waiters {
                self.respond(w.answer, Reply::Again);
            }
            for (answer, reply) in hosted.held {
                self.respond(answer, reply);
            }
            self.held_up.insert(key.clone());
            self.replicas.insert(key, hosted.state);
        }
    }

    /// A request about primitives from another peer, other than an operation.
    pub(crate) fn peer_request(
        &mut self,
        members: &Membership,
        from: u64,
        request: Request,
        now: Instant,
    ) -> Response {
        match request {
            Request::Replicate { key, base, deltas } => {
                // Only the home keeps a backup, and only its backup takes its changes.
                let ranked = self.ranked_homes(members, &key);
                if ranked[0] != from {
                    return Response::Refused(format!(
                        "{from:016x} is not the home of {key} as this peer sees the swarm"
                    ));
                }
                if !self.room_for(&key, self.limits.prim_keys) {
                    return Response::Refused("this peer keeps its limit of primitives".into());
                }
                let copy = match (self.replicas.get_mut(&key), deltas.first()) {
                    (_, Some(Delta::Snapshot(_))) => self
                        .replicas
                        .entry(key)
                        .or_insert_with(|| PrimState::new(Kind::Event, 0)),
                    (Some(copy), _) if copy.seq == base => copy,
                    // None, or one that missed changes: the home sends a snapshot.
                    _ => return Response::Refused("no current copy of this key here".into()),
                };
                for delta in &deltas {
                    copy.apply(delta, now);
                }
                Response::Ack
            }
            Request::Claim { key } => {
                if self.ranked_homes(members, &key)[0] != from {
                    return Response::Refused(format!(
                        "{from:016x} is not the home of {key} as this peer sees the swarm"
                    ));
                }
                if self.hosted.contains_key(&key) {
                    self.demote(&key, from);
                }
                self.moved.insert(key.clone(), (from, now + MOVED_FOR));
                let copy = match self.claims.get(&key) {
                    Some(claim) => claim.best.clone(),
                    None => self.replicas.get(&key).map(|c| c.snapshot(now)),
                };
                Response::Claimed(copy)
            }
            _ => Response::Refused("not a request about primitives".into()),
        }
    }
}

/// Keeps the newer of two copies.
fn newest(best: &mut Option<PrimState>, state: PrimState) {
    if best.as_ref().is_none_or(|b| state.seq > b.seq) {
        *best = Some(state);
    }
}
