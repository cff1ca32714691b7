//! Named primitives across the swarm: each key lives on a *home* peer, the first of the live
//! peers ranked by rendezvous hashing of the key, which keeps its state and a line of
//! waiters; the second-ranked peer keeps a copy (the *backup*).
//!
//! - A client peer sends each operation to the home it computes; a peer that is not the
//!   home answers `NotHome` and the client asks again. A waiting operation (a lock, a get
//!   from an empty queue) is held at the home and answered when it completes, or with
//!   `Again` after the long-poll time, and then asked again.
//! - Every change is a [`Delta`] sent to the backup in order, one batch in flight; the
//!   answers of the operations that made them are held until the backup has them, so an
//!   answered operation survives the home's death.
//! - A peer that becomes the home of a key it holds no state for first *claims* it: it asks
//!   every live peer and takes the newest copy (most changes) — the old home's state, a
//!   backup's copy, or its own. A peer answers a claim only if the claimer is the home in
//!   its own view too; otherwise the claimer tries again once views agree. A home that sees
//!   a better-ranked peer come up keeps its state as a copy for that peer's claim, and sends
//!   operations there. Operations carry ids, so one retried after a home died is applied
//!   once.

mod state;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::Settings;
use super::placement::ranked;
use super::state::Pending;
use crate::config::Limits;
use crate::membership::Membership;
use crate::wire::{Body, Delta, Kind, Op, OpId, PrimRequest, PrimState, Reply, Request, Response};

/// A client that could not reach a home tries again after this long (membership may not
/// have caught up with a peer's death yet).
const RETRY: Duration = Duration::from_millis(50);

/// How long a peer that gave a key to a claimer sends callers there even if it takes
/// itself for the home: the time for views of a membership change to agree.
const MOVED_FOR: Duration = Duration::from_secs(1);

/// Operation numbers the node gives its own calls (undoing a withdrawn one): above those
/// of the backend, which count up from the wall clock's nanoseconds.
const INTERNAL_SEQ: u64 = 1 << 63;

/// What the primitives protocol asks its node to do ([`Prims::poll_output`]).
#[derive(Debug)]
pub(crate) enum Effect {
    /// Send `request` to `to`; its answer comes back to the method `pending` names.
    Send {
        to: u64,
        pending: Pending,
        request: Request,
    },
    /// Answer the request that came on `channel`.
    Respond { channel: u64, response: Response },
    /// The answer to this peer's call `seq`, asked at `asked`.
    Reply {
        seq: u64,
        reply: Reply,
        asked: Instant,
    },
}

/// The primitives protocol of one peer, sans-IO: the node feeds it operations, requests,
/// answers, membership changes and the clock, each with the [`Membership`] it reads homes
/// from, and carries out its [`Effect`]s.
#[derive(Debug)]
pub(crate) struct Prims {
    me: u64,
    /// Whether this peer may be a home.
    home: bool,
    pub(super) limits: Limits,
    long_poll: Duration,
    seq_seed: u64,
    /// Keys this peer is the home of.
    pub(super) hosted: HashMap<String, Hosted>,
    /// Copies kept as the backup of other homes.
    pub(super) replicas: HashMap<String, PrimState>,
    /// Keys being claimed, with the operations waiting for the claim.
    claims: HashMap<String, Claim>,
    /// Operations of this peer's clients, by number.
    calls: HashMap<u64, Call>,
    /// Calls to send again, when.
    retries: Vec<(Instant, u64)>,
    /// Local calls answered by this peer as their home, to finish.
    answered: Vec<(u64, Reply)>,
    /// Keys this peer gave to a claimer lately, and until when: asked here meanwhile, this
    /// peer sends callers there rather than claim the key back while views disagree.
    moved: HashMap<String, (u64, Instant)>,
    /// Keys this peer hosted until it was held up: its copy may be older than the one a
    /// peer that took over meanwhile holds.
    held_up: std::collections::HashSet<String>,
    next_internal: u64,
    effects: VecDeque<Effect>,
}

impl Prims {
    /// The primitives of peer `me`, tuned by `settings`.
    pub(crate) fn new(me: u64, settings: &Settings) -> Prims {
        Prims {
            me,
            home: settings.home,
            limits: settings.limits,
            long_poll: settings.long_poll,
            seq_seed: settings.seq_seed,
            hosted: HashMap::new(),
            replicas: HashMap::new(),
            claims: HashMap::new(),
            calls: HashMap::new(),
            retries: Vec::new(),
            answered: Vec::new(),
            moved: HashMap::new(),
            held_up: Default::default(),
            next_internal: 0,
            effects: VecDeque::new(),
        }
    }

    /// The next thing to do, if any.
    pub(crate) fn poll_output(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    fn send(&mut self, to: u64, pending: Pending, request: Request) {
        (self.effects).push_back(Effect::Send {
            to,
            pending,
            request,
        });
    }

    /// Whether `key` may be kept here: it is already, as a copy, or fewer than `most` keys
    /// are hosted or copied ([`Limits::prim_keys`](crate::config::Limits::prim_keys)).
    fn room_for(&self, key: &str, most: usize) -> bool {
        self.replicas.contains_key(key) || self.hosted.len() + self.replicas.len() < most
    }

    /// Bytes of items `peer` put into the queues homed here that are still queued: a scan
    /// of every hosted queue, done only for puts from other peers.
    fn queued_by(&self, peer: u64) -> usize {
        (self.hosted.values())
            .filter_map(|h| match &h.state.body {
                Body::Queue { items, .. } => Some(items),
                _ => None,
            })
            .flatten()
            .filter(|item| item.id.peer == peer)
            .map(|item| item.bytes.len())
            .sum()
    }
}

/// A key this peer is the home of.
#[derive(Debug)]
pub(super) struct Hosted {
    state: PrimState,
    waiters: VecDeque<Waiter>,
    backup: Option<u64>,
    /// Changes not yet sent to the backup, and the answers waiting for them.
    unsent: Vec<Delta>,
    held: Vec<(Answer, Reply)>,
    /// Whether a batch sent to the backup is not yet answered.
    in_flight: bool,
    /// The number of the last batch sent: an answer to an older one is stale.
    batch: u64,
    /// The backup's `seq` once it has applied every batch sent: the next batch's base.
    backup_seq: u64,
}

/// Changes of a hosted key sent to its backup, with the answers that wait for them.
#[derive(Debug)]
pub(crate) struct Replication {
    /// The backup.
    pub(crate) backup: u64,
    key: String,
    /// Its number: an answer to an older batch is stale.
    batch: u64,
    held: Vec<(Answer, Reply)>,
}

/// An operation that waits at the home.
#[derive(Debug)]
struct Waiter {
    id: OpId,
    op: Op,
    answer: Answer,
    /// When it is answered `Again` (a long-poll must end before the request times out).
    until: Instant,
}

/// Where the answer to an operation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The request that came on this channel.
    Remote(u64),
    /// This peer's call with this number.
    Local(u64),
}

/// A claim under way.
#[derive(Debug, Default)]
struct Claim {
    /// Peers that have not answered.
    waiting: usize,
    /// The newest copy found so far.
    best: Option<PrimState>,
    /// Operations that arrived meanwhile.
    queued: Vec<(PrimRequest, Answer)>,
    /// A peer did not take us for the home yet: claim again later.
    again: bool,
    /// Whether this peer had a copy as the backup (its home is gone): then only a peer
    /// ranked above it, a home that was thought gone, may hold a newer one.
    had_copy: bool,
}

/// An operation of this peer's client.
#[derive(Debug)]
struct Call {
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
    fn new(key: String, kind: Kind, op: Op, cancelled: bool, now: Instant) -> Call {
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
    fn abandoned(&self) -> bool {
        self.cancelled && matches!(self.op, Op::Put { .. } | Op::Changed { .. } | Op::Wait)
    }

    /// What to send: a withdrawn waiting operation goes once more without waiting (with
    /// the same id, it gets what the first attempt may have taken, to undo it).
    fn request_op(&self) -> Op {
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
    /// The peers in the order they would be home of `key`: the home first, then its backup.
    /// Peers that are no home are left out, unless every peer is one.
    pub(crate) fn ranked_homes(&self, members: &Membership, key: &str) -> Vec<u64> {
        let mut candidates: Vec<u64> = (members.up().iter().copied())
            .filter(|p| members.may_host(*p))
            .collect();
        if self.home {
            candidates.push(self.me);
        }
        if candidates.is_empty() {
            candidates = members.up().iter().copied().chain([self.me]).collect();
        }
        ranked(key, &candidates)
    }

    /// The peers holding permits of keys this peer hosts: a hung holder's permits go to
    /// the next in line only once it is suspected.
    pub(crate) fn holder_peers(&self) -> impl Iterator<Item = u64> + '_ {
        self.hosted
            .values()
            .flat_map(|hosted| match &hosted.state.body {
                Body::Semaphore { holders, .. } => holders.iter().map(|h| h.op.peer).collect(),
                _ => Vec::<u64>::new(),
            })
    }

    /// How many keys this peer is the home of.
    pub(crate) fn hosted_keys(&self) -> usize {
        self.hosted.len()
    }

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
    fn start_call(&mut self, members: &Membership, seq: u64, call: Call, now: Instant) {
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

    fn internal_call(
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
    fn route(&mut self, members: &Membership, seq: u64, to: Option<u64>, now: Instant) {
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
    pub(super) fn response(
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
    fn finish(&mut self, members: &Membership, seq: u64, reply: Reply, now: Instant) {
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

    /// An operation arrived from another peer.
    pub(super) fn request(
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
    fn serve(&mut self, members: &Membership, request: PrimRequest, answer: Answer, now: Instant) {
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
    fn answer_after(&mut self, key: &str, answer: Answer, reply: Reply, deltas: Vec<Delta>) {
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
    fn serve_waiters(&mut self, key: &str, now: Instant) {
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
    fn flush_replication(&mut self, key: &str) {
        let Some(hosted) = self.hosted.get_mut(key) else {
            return;
        };
        if hosted.in_flight {
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
    pub(super) fn replicated(
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
                for (answer, reply) in held {
                    self.respond(answer, reply);
                }
            }
            other => {
                // Lost, refused (no copy there), or sent to a former backup: send the whole
                // state to the backup, with these answers waiting for it.
                if other.is_err() && hosted.backup == Some(peer) {
                    tracing::debug!(%key, peer = %format_args!("{peer:016x}"), "backup lost");
                    hosted.backup = None;
                }
                let mut all = held;
                all.append(&mut hosted.held);
                hosted.held = all;
                hosted.unsent = vec![Delta::Snapshot(hosted.state.snapshot(now))];
                if hosted.backup.is_none() {
                    let ranked = self.ranked_homes(members, &key);
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
    fn claim(&mut self, members: &Membership, request: PrimRequest, answer: Answer, now: Instant) {
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
    pub(super) fn claim_answered(
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
    fn maybe_claimed(&mut self, members: &Membership, key: &str, now: Instant) {
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
    fn host(&mut self, members: &Membership, key: String, mut state: PrimState, now: Instant) {
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
        };
        self.hosted.insert(key.clone(), hosted);
        self.flush_replication(&key);
    }

    /// Stops hosting `key`, whose home is now `to`: the state stays here as a copy for
    /// `to`'s claim; waiters are sent there.
    fn demote(&mut self, key: &str, to: u64) {
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
    fn respond(&mut self, answer: Answer, reply: Reply) {
        match answer {
            Answer::Remote(channel) => self.effects.push_back(Effect::Respond {
                channel,
                response: Response::Prim(reply),
            }),
            // Finished in `step`, which has the clock.
            Answer::Local(seq) => self.answered.push((seq, reply)),
        }
    }

    /// Each step: finishes answered local calls and sends again the calls that are due.
    pub(super) fn step(&mut self, members: &Membership, now: Instant) {
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

    /// Ends what timed out: leases that ran out, long-polls to answer `Again`.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        let keys: Vec<String> = self.hosted.keys().cloned().collect();
        for key in keys {
            let Some(hosted) = self.hosted.get_mut(&key) else {
                continue;
            };
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
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let hosted = self.hosted.values().flat_map(|h| {
            let until = h.waiters.iter().map(|w| w.until).min();
            [h.state.next_expiry(), until]
        });
        let retries = self.retries.iter().map(|(at, _)| Some(*at));
        hosted.chain(retries).flatten().min()
    }

    /// Membership changed: keys whose home is now another peer go there, and each hosted
    /// key's backup is the second-ranked peer; permits of a peer that is gone are taken
    /// back and its waiters dropped.
    pub(super) fn membership_changed(
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
            if let Some(peer) = gone {
                let mut deltas = Vec::new();
                hosted.state.drop_holder(peer, now, &mut deltas);
                hosted.unsent.extend(deltas);
                hosted.waiters.retain(|w| w.id.peer != peer);
            }
            if hosted.backup != backup {
                hosted.backup = backup;
                hosted.unsent = vec![Delta::Snapshot(hosted.state.snapshot(now))];
            }
            self.serve_waiters(&key, now);
        }
    }

    /// This peer was held up: if others suspected it, another peer took over its keys and
    /// may have changed them. Each hosted key becomes a copy again, so the next operation
    /// claims it and finds the newest state; waiters ask again.
    pub(super) fn held_up(&mut self) {
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
    pub(super) fn peer_request(
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
