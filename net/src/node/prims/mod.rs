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
//!
//! [`Prims`] is one sans-IO machine; its caller's side is in `calls.rs`, its home's side
//! (serving, waiters, replication, claims) in `home.rs`, one primitive's state in `state.rs`.

mod calls;
mod home;
mod state;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::Settings;
use super::placement::ranked;
use super::state::Pending;
use crate::config::Limits;
use crate::membership::Membership;
use crate::wire::{Body, Delta, Op, OpId, PrimRequest, PrimState, Reply, Request, Response};
use calls::Call;

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
    /// Batches the backup refused in a row: a refused snapshot means it will not keep a
    /// copy (at its bound of keys, or it sees another home), and the next peer takes over.
    refused: u32,
    /// No batch goes to the backup before this (after a refused snapshot), so that a
    /// refusing peer costs a request every [`RETRY`], not a busy loop.
    resend_at: Option<Instant>,
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
}
