//! The peer-level stealing policy as a sans-IO state machine: whom an idle peer asks for
//! work, how much, and when it stops asking.
//!
//! Inputs are what the network and the local pool observe (peers coming and going, gossiped
//! load reports, our own ready-task count, steal replies, the time); outputs are what the
//! event loop should do (send a steal request, publish our load) and, once per request, how
//! it ended. No sockets and no clock: the swarm's event loop and the simulator drive the same
//! code.
//!
//! - **Victim choice** ([`Strategy`]): uniformly random; load-informed, the busier of two
//!   random peers among those whose last gossiped load was above zero ("power of two
//!   choices"; any peer when none reported work); or cluster-aware (Satin's CRS): the same
//!   within our own cluster, plus at most one request to another cluster kept in flight.
//! - **Steal-half**: a request asks for up to half of the victim's ready tasks; the victim,
//!   which knows its own count, applies it.
//! - **Backoff**: after a steal that brought nothing, the next waits `backoff`, doubling up to
//!   a cap; any success resets it.
//! - **Quiescence** (X10's lifelines): when every peer we know last reported no ready work and
//!   our last steal failed, we stop asking. A load report above zero from anyone (their
//!   gossip is the lifeline) wakes us.
//! - Every request ends in exactly one [`Outcome`]: a reply, its peer going down, or its
//!   time-out; a reply that comes after that is ignored.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::rng::Rng;

/// A peer, as the policy knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// One steal request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// How victims are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Uniformly among live peers.
    Random,
    /// The busier of two random live peers, by their last load report.
    TwoChoices,
    /// Two choices within our cluster, plus one wide-area request kept in flight.
    ClusterAware,
}

/// Tuning of a [`Policy`].
#[derive(Debug, Clone)]
pub struct Config {
    /// How victims are chosen.
    pub strategy: Strategy,
    /// A request unanswered this long ends as [`Outcome::TimedOut`].
    pub steal_timeout: Duration,
    /// First wait after a steal that brought nothing.
    pub backoff_min: Duration,
    /// Longest wait between steals.
    pub backoff_max: Duration,
    /// Publish our load at most this often (and whenever it crosses zero).
    pub load_interval: Duration,
    /// Seeds victim choice, so runs are reproducible.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            strategy: Strategy::TwoChoices,
            steal_timeout: Duration::from_millis(100),
            backoff_min: Duration::from_micros(100),
            backoff_max: Duration::from_millis(50),
            load_interval: Duration::from_millis(100),
            seed: 0x5EED,
        }
    }
}

/// What the policy is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A peer joined, in `cluster` (peers of one LAN or rack share a cluster number).
    PeerUp {
        /// The peer.
        peer: PeerId,
        /// Its cluster.
        cluster: u32,
    },
    /// A peer left or was declared dead.
    PeerDown {
        /// The peer.
        peer: PeerId,
    },
    /// A peer's gossiped count of ready, stealable tasks.
    Load {
        /// The peer.
        peer: PeerId,
        /// Its ready tasks.
        ready: usize,
    },
    /// Our own count of ready tasks changed.
    LocalLoad {
        /// Our ready tasks.
        ready: usize,
    },
    /// A steal request was answered with `stolen` tasks (0: the victim had none to give).
    Reply {
        /// The request.
        request: RequestId,
        /// Tasks received.
        stolen: usize,
    },
}

/// What the event loop should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a steal request to `peer` for up to half of its ready tasks.
    Steal {
        /// The victim.
        peer: PeerId,
        /// The request's id, to match the reply.
        request: RequestId,
    },
    /// Tell the swarm our ready-task count.
    PublishLoad {
        /// Our ready tasks.
        ready: usize,
    },
    /// A request ended (exactly once per request).
    Finished {
        /// The request.
        request: RequestId,
        /// How.
        outcome: Outcome,
    },
}

/// How a steal request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The victim sent this many tasks (at least one).
    Stole(usize),
    /// The victim had nothing to give.
    Empty,
    /// The victim went down first.
    PeerDown,
    /// No reply within the time-out.
    TimedOut,
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    cluster: u32,
    ready: usize,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    peer: PeerId,
    deadline: Instant,
    wide_area: bool,
}

/// The stealing policy of one peer.
#[derive(Debug)]
pub struct Policy {
    me: PeerId,
    cluster: u32,
    config: Config,
    peers: BTreeMap<PeerId, Peer>,
    in_flight: BTreeMap<RequestId, InFlight>,
    next_request: u64,
    local_ready: usize,
    backoff: Duration,
    not_before: Option<Instant>,
    quiescent: bool,
    published: Option<(usize, Instant)>,
    rng: Rng,
    outputs: VecDeque<Output>,
}

impl Policy {
    /// The policy of peer `me` in `cluster`.
    pub fn new(me: PeerId, cluster: u32, config: Config) -> Policy {
        let rng = Rng::new(config.seed ^ me.0.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Policy {
            me,
            cluster,
            backoff: config.backoff_min,
            config,
            peers: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            next_request: 0,
            local_ready: 0,
            not_before: None,
            quiescent: false,
            published: None,
            rng,
            outputs: VecDeque::new(),
        }
    }

    /// Feeds one observation.
    pub fn handle(&mut self, input: Input, now: Instant) {
        match input {
            Input::PeerUp { peer, cluster } if peer != self.me => {
                self.peers.insert(peer, Peer { cluster, ready: 0 });
            }
            Input::PeerUp { .. } => {}
            Input::PeerDown { peer } => {
                self.peers.remove(&peer);
                let ended: Vec<RequestId> = self
                    .in_flight
                    .iter()
                    .filter(|(_, f)| f.peer == peer)
                    .map(|(r, _)| *r)
                    .collect();
                for request in ended {
                    self.finish(request, Outcome::PeerDown, now);
                }
            }
            Input::Load { peer, ready } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.ready = ready;
                    if ready > 0 && self.quiescent {
                        // The lifeline: work appeared somewhere, so start asking again.
                        self.quiescent = false;
                        self.backoff = self.config.backoff_min;
                        self.not_before = None;
                    }
                }
            }
            Input::LocalLoad { ready } => {
                self.local_ready = ready;
                self.publish(now, false);
            }
            Input::Reply { request, stolen } => {
                let outcome = if stolen > 0 {
                    Outcome::Stole(stolen)
                } else {
                    Outcome::Empty
                };
                self.finish(request, outcome, now);
            }
        }
        self.decide(now);
    }

    /// Ends requests whose time-out passed and publishes load that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<RequestId> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(r, _)| *r)
            .collect();
        for request in expired {
            self.finish(request, Outcome::TimedOut, now);
        }
        self.publish(now, true);
        self.decide(now);
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Policy::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self.in_flight.values().map(|f| f.deadline).min();
        let retry = if self.wants_work() && self.in_flight.is_empty() {
            self.not_before
        } else {
            None
        };
        let publish = self
            .published
            .filter(|(ready, _)| *ready != self.local_ready)
            .map(|(_, at)| at + self.config.load_interval);
        [deadline, retry, publish].into_iter().flatten().min()
    }

    /// Whether we stopped asking because no known peer has work.
    pub fn is_quiescent(&self) -> bool {
        self.quiescent
    }

    /// Requests sent and not yet ended.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn wants_work(&self) -> bool {
        self.local_ready == 0 && !self.quiescent && !self.peers.is_empty()
    }

    fn finish(&mut self, request: RequestId, outcome: Outcome, now: Instant) {
        let Some(ended) = self.in_flight.remove(&request) else {
            return; // unknown, or already ended: a late reply
        };
        if outcome == Outcome::Empty {
            // An empty reply is news: the victim has nothing, whatever it last gossiped.
            if let Some(p) = self.peers.get_mut(&ended.peer) {
                p.ready = 0;
            }
        }
        match outcome {
            Outcome::Stole(_) => {
                self.backoff = self.config.backoff_min;
                self.not_before = None;
            }
            Outcome::Empty | Outcome::PeerDown | Outcome::TimedOut => {
                self.not_before = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(self.config.backoff_max);
                if self.peers.values().all(|p| p.ready == 0) {
                    self.quiescent = true;
                }
            }
        }
        self.outputs
            .push_back(Output::Finished { request, outcome });
    }

    fn publish(&mut self, now: Instant, only_if_due: bool) {
        let due = match self.published {
            None => true,
            Some((ready, at)) => {
                let crossed_zero = (ready == 0) != (self.local_ready == 0);
                let changed = ready != self.local_ready;
                (crossed_zero && !only_if_due) || (changed && now >= at + self.config.load_interval)
            }
        };
        if due {
            self.published = Some((self.local_ready, now));
            self.outputs.push_back(Output::PublishLoad {
                ready: self.local_ready,
            });
        }
    }

    fn decide(&mut self, now: Instant) {
        if !self.wants_work() || self.not_before.is_some_and(|t| now < t) {
            return;
        }
        let wide_in_flight = self.in_flight.values().any(|f| f.wide_area);
        let local_in_flight = self.in_flight.values().any(|f| !f.wide_area);
        match self.config.strategy {
            Strategy::Random | Strategy::TwoChoices => {
                if self.in_flight.is_empty() {
                    let all: Vec<PeerId> = self.peers.keys().copied().collect();
                    if let Some(victim) = self.choose(&all) {
                        self.send(victim, false, now);
                    }
                }
            }
            Strategy::ClusterAware => {
                let (near, far): (Vec<PeerId>, Vec<PeerId>) = self
                    .peers
                    .keys()
                    .partition(|id| self.peers[id].cluster == self.cluster);
                if !local_in_flight {
                    if let Some(victim) = self.choose(&near) {
                        self.send(victim, false, now);
                    }
                }
                if !wide_in_flight {
                    if let Some(victim) = self.choose(&far) {
                        self.send(victim, true, now);
                    }
                }
            }
        }
    }

    fn choose(&mut self, candidates: &[PeerId]) -> Option<PeerId> {
        if candidates.is_empty() {
            return None;
        }
        if self.config.strategy == Strategy::Random {
            return Some(candidates[self.random(candidates.len())]);
        }
        // Load-informed: two random choices among the peers that last reported work, the
        // busier wins; only when nobody reported any, a random peer.
        let load = |policy: &Policy, p: PeerId| policy.peers.get(&p).map_or(0, |p| p.ready);
        let loaded: Vec<PeerId> = candidates
            .iter()
            .copied()
            .filter(|p| load(self, *p) > 0)
            .collect();
        let pool = if loaded.is_empty() {
            candidates
        } else {
            &loaded[..]
        };
        let a = pool[self.random(pool.len())];
        let b = pool[self.random(pool.len())];
        Some(if load(self, b) > load(self, a) { b } else { a })
    }

    fn send(&mut self, peer: PeerId, wide_area: bool, now: Instant) {
        debug_assert_ne!(peer, self.me, "the policy chose itself as a victim");
        self.next_request += 1;
        let request = RequestId(self.next_request);
        self.in_flight.insert(
            request,
            InFlight {
                peer,
                deadline: now + self.config.steal_timeout,
                wide_area,
            },
        );
        self.outputs.push_back(Output::Steal { peer, request });
    }

    fn random(&mut self, n: usize) -> usize {
        self.rng.below(n)
    }
}

#[cfg(all(test, not(peer_loom)))]
mod tests;
