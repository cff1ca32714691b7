//! The peer-level stealing policy as a sans-IO state machine: whom an idle peer asks for
//! work, how much, when it stops asking, and who wakes it again.
//!
//! Inputs are what the network and the local pool observe (peers coming and going, load
//! reports, our own ready-task count, steal replies, lifeline messages, the time); outputs
//! are what the event loop should do (send a steal request, publish our load, register with
//! a lifeline buddy, push tasks to a waiting peer) and, once per request, how it ended. No
//! sockets and no clock: the swarm's event loop and a discrete-event driver (`policy::sim`,
//! hidden, which this crate's swarm tests and `peer-workloads`' simulator share, and whose
//! figures `docs/stealing.md` reports) drive the same code.
//!
//! - **Victim choice** ([`Strategy`]): uniformly random; load-informed, the busier of two
//!   random peers among those whose last known load was above zero ("power of two
//!   choices"; any peer when none is known to have work); or cluster-aware (Satin's CRS):
//!   the same within our own cluster, plus at most one request to another cluster in flight.
//! - **Steal-half**: a request asks for up to half of the victim's ready tasks, rounded up;
//!   the victim, which knows its own count, applies it.
//! - **When to ask**: when we have no ready task, or already when we are down to
//!   [`Config::steal_below`], so that the round trip overlaps our last tasks.
//! - **Backoff**: after a steal that brought nothing, the next waits `backoff`, doubling up to
//!   a cap; any success, and the start of every idle spell, resets it.
//! - **Lifelines and quiescence** (X10's lifeline-based global load balancing, Saraswat et
//!   al., PPoPP 2011): every peer has a few *lifeline buddies*, fixed by the membership: rank
//!   the known peers and ourselves by id, and our buddies are the ranks `r + 2^k (mod N)` for
//!   `k < ⌈log2 N⌉` (at most [`Config::max_lifelines`]), a graph in which every peer reaches
//!   every other in at most `⌈log2 N⌉` hops. After [`Config::steal_attempts`] failed steals in
//!   a row with nothing ready, a peer registers with each buddy ([`Output::Lifeline`]) and
//!   goes *quiescent*: it sends no steal and, past one last due load report, nothing at all,
//!   and wants no timer. A buddy
//!   that holds registrations and has at least two ready tasks pushes the oldest waiters a
//!   share each, at most half of its tasks in all ([`Output::Push`]), which consumes those
//!   registrations; a woken peer that holds registrations itself pushes on in turn, so new
//!   work reaches every quiescent peer within a logarithmic number of hops, and an idle swarm
//!   is silent. A registration lasts until a push consumes it or one side goes down, so no
//!   wake-up is lost. A load report above zero also wakes a quiescent peer for another round
//!   of steals, unless [`Config::wake_on_load`] is off.
//! - **Load reports**: our count is published when it changed and the last publication is
//!   at least [`Config::load_interval`] old, crossing zero included. The lifelines do the
//!   waking, so a report is only a hint for victim choice, and a cheap one.
//! - Every request ends in exactly one [`Outcome`]: a reply, its peer going down, or its
//!   time-out; a reply that comes after that is ignored.
//!
//! # What the event loop does
//!
//! Drain [`Policy::poll_output`] after every call to [`Policy::handle`] or
//! [`Policy::handle_timeout`], and call `handle_timeout` at [`Policy::poll_timeout`]: it is
//! always in the future after a call, and `None` once a quiescent peer has nothing in flight
//! and no report left to publish. Feed [`Input::PeerUp`]/[`Input::PeerDown`] as the
//! membership changes (a peer that reconnects is up again: our registration with it may be
//! lost, so it is sent anew), and [`Input::LocalLoad`] whenever our count of ready portable
//! tasks changes; changes above [`Config::steal_below`] may be batched, but reaching it, and
//! reaching zero, must be fed at once: that is when we start stealing. Then carry out each
//! output:
//!
//! | output | the event loop |
//! |---|---|
//! | [`Output::Steal`] `{ peer, request }` | send a steal request to `peer`. Its event loop answers with up to half of its ready portable tasks, rounded up (0 if it has none, quiescent or not), and, recommended since it is free gossip, its ready count after giving them; it may feed [`Input::Load`] `{ peer: thief, ready: 0 }`. On the answer: enqueue the tasks, feed [`Input::LocalLoad`] with our new count, then [`Input::Reply`] `{ request, stolen }` (in that order, or the policy sends a needless request), then [`Input::Load`] for `peer` if the answer carried a count. |
//! | [`Output::PublishLoad`] `{ ready }` | gossip `ready` to the swarm; every receiver feeds [`Input::Load`]. |
//! | [`Output::Finished`] `{ request, outcome }` | nothing to send: `request` ended (bookkeeping, metrics). |
//! | [`Output::Lifeline`] `{ peer }` | **new**: send a lifeline registration to `peer`, one-way, no answer. Its event loop feeds [`Input::LifelineRequest`] `{ from }` to its policy. |
//! | [`Output::Push`] `{ peer, tasks }` | **new**: take up to `tasks` of our ready portable tasks (the oldest, as a steal would), send them unsolicited to `peer`, then feed [`Input::LocalLoad`] with our new count. If none can be taken at that moment, send nothing, feed [`Input::LocalLoad`], then feed [`Input::LifelineRequest`] `{ from: peer }` to our own policy, which keeps the registration. If sending fails (`peer` is gone), put the tasks back in our queue and feed [`Input::LocalLoad`]. The receiver, busy or not, enqueues the tasks, feeds [`Input::LocalLoad`], then [`Input::Pushed`] `{ from, tasks }`. |
//!
//! On the wire that is five messages: steal request (request id), steal answer (request id,
//! tasks, our count), load report (count), lifeline registration (nothing else), push
//! (tasks).
//!
//! ```
//! use std::time::Instant;
//! use peer_steal::policy::{Config, Input, Output, PeerId, Policy};
//!
//! let now = Instant::now();
//! let config = Config { steal_attempts: 1, ..Config::default() };
//! let mut policy = Policy::new(PeerId(0), 0, config);
//! policy.handle(Input::PeerUp { peer: PeerId(1), cluster: 0 }, now);
//! policy.handle(Input::LocalLoad { ready: 0 }, now);
//! // Idle with a peer up: ask it for work, and publish our (empty) load.
//! let mut request = None;
//! while let Some(out) = policy.poll_output() {
//!     match out {
//!         Output::Steal { peer, request: r } if peer == PeerId(1) => request = Some(r),
//!         Output::PublishLoad { ready: 0 } => {}
//!         other => unreachable!("{other:?}"),
//!     }
//! }
//! // Nothing there: we register with our lifeline buddy (peer 1) and go quiet, with no timer.
//! policy.handle(Input::Reply { request: request.unwrap(), stolen: 0 }, now);
//! let outputs: Vec<Output> = std::iter::from_fn(|| policy.poll_output()).collect();
//! assert!(outputs.contains(&Output::Lifeline { peer: PeerId(1) }));
//! assert!(policy.is_quiescent());
//! assert_eq!(policy.poll_timeout(), None);
//! // Peer 1 found work and pushed us three tasks: we enqueue them, say so, and are awake.
//! policy.handle(Input::LocalLoad { ready: 3 }, now);
//! policy.handle(Input::Pushed { from: PeerId(1), tasks: 3 }, now);
//! assert!(!policy.is_quiescent());
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::rng::Rng;

mod lifeline;
mod victim;

use lifeline::Lifelines;

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
    /// Publish our load when it changed, at most this often; crossing zero too (it used to
    /// be published at once, with every steal that emptied or refilled a queue).
    pub load_interval: Duration,
    /// Seeds victim choice, so runs are reproducible.
    pub seed: u64,
    /// Failed steals in a row after which an idle peer registers with its lifeline buddies
    /// and goes quiescent (at least 1). Few: early and late in a run, random steals among
    /// 1,000 peers rarely find the few busy ones, and the lifelines bring the work instead.
    pub steal_attempts: u32,
    /// Most lifeline buddies per peer; the graph has `⌈log2 N⌉` of them up to this cap.
    /// 0 turns lifelines off: a quiescent peer is then woken only by gossip
    /// ([`Config::wake_on_load`]) or local work.
    pub max_lifelines: usize,
    /// Whether a load report above zero wakes a quiescent peer for another
    /// [`Config::steal_attempts`] steals. It brings work sooner than a lifeline push when
    /// reports are fresh, and costs failed steals when they are stale.
    pub wake_on_load: bool,
    /// Start stealing when our ready count drops to this (0: only when we have none), so a
    /// steal's round trip overlaps our last tasks. About a round trip's worth of tasks is
    /// right: the simulator uses 8, for a 210 µs round trip and 25 µs nodes. The policy
    /// cannot know how long a task takes, hence 0 by default. A peer that still has tasks
    /// gives up after [`Config::steal_attempts`] failures without going quiescent, until
    /// its count rises above this or drops to zero.
    pub steal_below: usize,
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
            steal_attempts: 2,
            max_lifelines: 16,
            wake_on_load: true,
            steal_below: 0,
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
    /// A peer's count of ready, stealable tasks: gossiped, or carried by a steal message.
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
    /// `from` registered with us as one of its lifeline buddies: it is quiescent and waits
    /// for us to push it work ([`Output::Push`]) once we have some.
    LifelineRequest {
        /// The quiescent peer.
        from: PeerId,
    },
    /// A lifeline buddy pushed us `tasks` tasks, unsolicited, consuming our registration
    /// with it.
    Pushed {
        /// The buddy.
        from: PeerId,
        /// Tasks received (0 is allowed: the registration is gone and is sent anew if we
        /// are still quiescent).
        tasks: usize,
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
    /// Register with lifeline buddy `peer` (one-way): we are going quiescent, push us work
    /// when you have some. The receiver feeds [`Input::LifelineRequest`].
    Lifeline {
        /// The buddy.
        peer: PeerId,
    },
    /// Send up to `tasks` of our ready tasks, unsolicited, to `peer`, which registered with
    /// us; the receiver feeds [`Input::Pushed`]. With none to give, send nothing and feed
    /// [`Input::LifelineRequest`] `{ from: peer }` back.
    Push {
        /// The waiting peer.
        peer: PeerId,
        /// Tasks to send, at most (at least 1).
        tasks: usize,
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
    /// Failed steals in a row in this idle spell.
    failures: u32,
    quiescent: bool,
    lifelines: Lifelines,
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
            failures: 0,
            quiescent: false,
            lifelines: Lifelines::default(),
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
                self.lifelines.peer_up(peer);
            }
            Input::PeerUp { .. } => {}
            Input::PeerDown { peer } => {
                self.peers.remove(&peer);
                self.lifelines.peer_down(peer);
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
                    if ready > 0 && self.quiescent && self.config.wake_on_load {
                        // Work appeared somewhere: start asking again.
                        self.wake();
                    }
                }
            }
            Input::LocalLoad { ready } => {
                let below = self.config.steal_below;
                let was = self.local_ready;
                if (was == 0) != (ready == 0) || (was <= below) != (ready <= below) {
                    // Busy again, or running low: the next idle spell starts afresh.
                    self.wake();
                }
                self.local_ready = ready;
                self.publish(now);
            }
            Input::Reply { request, stolen } => {
                let outcome = if stolen > 0 {
                    Outcome::Stole(stolen)
                } else {
                    Outcome::Empty
                };
                self.finish(request, outcome, now);
            }
            Input::LifelineRequest { from } => {
                if from != self.me {
                    self.lifelines.wait(from);
                }
            }
            Input::Pushed { from, tasks } => {
                self.lifelines.pushed(from);
                if tasks > 0 {
                    self.wake();
                }
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
        self.publish(now);
        self.decide(now);
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Policy::handle_timeout) should next be called; `None` while
    /// quiescent with nothing in flight and nothing to publish.
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

    /// Whether we stopped asking: our last [`Config::steal_attempts`] steals failed, and we
    /// wait for a lifeline buddy to push us work (or for gossip to wake us).
    pub fn is_quiescent(&self) -> bool {
        self.quiescent
    }

    /// Requests sent and not yet ended.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Our lifeline buddies under the current membership (derived again on first use after
    /// it changed, hence `&mut`).
    pub fn lifeline_buddies(&mut self) -> Vec<PeerId> {
        self.lifelines
            .buddies(self.me, &self.peers, self.config.max_lifelines)
            .to_vec()
    }

    /// Peers registered with us and waiting for a push.
    pub fn waiting(&self) -> usize {
        self.lifelines.waiting()
    }

    fn wants_work(&self) -> bool {
        let low = self.local_ready == 0
            || (self.local_ready <= self.config.steal_below
                && self.failures < self.config.steal_attempts.max(1));
        low && !self.quiescent && !self.peers.is_empty()
    }

    /// Leaves quiescence and starts a fresh idle spell: full patience, shortest backoff.
    fn wake(&mut self) {
        self.quiescent = false;
        self.failures = 0;
        self.backoff = self.config.backoff_min;
        self.not_before = None;
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
                self.failures = 0;
                self.backoff = self.config.backoff_min;
                self.not_before = None;
            }
            Outcome::Empty | Outcome::PeerDown | Outcome::TimedOut => {
                self.not_before = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(self.config.backoff_max);
                self.failures = self.failures.saturating_add(1);
                if self.local_ready == 0 && self.failures >= self.config.steal_attempts.max(1) {
                    self.quiescent = true;
                }
            }
        }
        self.outputs
            .push_back(Output::Finished { request, outcome });
    }

    /// Publishes our load if it changed and the last publication is `load_interval` old.
    /// Crossing zero waits for the interval too: with lifelines doing the waking, a load
    /// report is only a hint for victim choice, and a peer whose queue empties and refills
    /// with every steal would otherwise publish with every steal.
    fn publish(&mut self, now: Instant) {
        let due = match self.published {
            None => true,
            Some((ready, at)) => ready != self.local_ready && now >= at + self.config.load_interval,
        };
        if due {
            self.published = Some((self.local_ready, now));
            self.outputs.push_back(Output::PublishLoad {
                ready: self.local_ready,
            });
        }
    }

    fn decide(&mut self, now: Instant) {
        self.push_to_waiters();
        if self.quiescent {
            self.register();
        }
        if !self.wants_work() || self.not_before.is_some_and(|t| now < t) {
            return;
        }
        self.steal(now);
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
}

// The event loop of the swarm tests and of `peer-workloads`' simulator: plumbing, hidden.
#[cfg(any(test, feature = "sim"))]
#[doc(hidden)]
pub mod sim;
#[cfg(all(test, not(peer_loom)))]
mod swarm_tests;
#[cfg(all(test, not(peer_loom)))]
mod tests;
