//! One deterministic discrete-event driver of [`Policy`]: N peers on a virtual clock, each
//! running its real policy, exchanging the five messages of the policy's table over a fake
//! network, and running the work it holds one task at a time.
//!
//! **Why it exists.** Two things need an event loop that follows the table of
//! [`policy`](super) exactly without a network: this crate's swarm proptests (counted tasks,
//! every message to every peer) and `peer-workloads`' simulator, whose figures
//! `docs/stealing.md` reports (UTS nodes, 1,024 peers). One driver serves both, so what the
//! tests check is what the simulator measures. It is plumbing, not API: compiled for this
//! crate's tests and behind the `sim` feature, which `peer-workloads` turns on; hidden from
//! the docs and free to change.
//!
//! What each peer holds is generic ([`Work`]): a queue of tasks, of which the newest runs
//! next and the oldest are stolen or pushed; a task that ends may spawn more onto the queue.
//! Every task runs for [`Network::task_cost`]; every message arrives after
//! [`Network::latency`] plus [`Network::msg_cost`]. Load reports reach every other peer or a
//! few random ones ([`Gossip`]). Ties in time go by scheduling order, and every random choice
//! comes from a seed, so one configuration gives one trace ([`Swarm::trace`]).
//!
//! ```
//! use std::collections::VecDeque;
//! use std::time::Duration;
//! use peer_steal::policy::Config;
//! use peer_steal::policy::sim::{Gossip, Network, Swarm, Work};
//!
//! /// Tasks that spawn nothing.
//! struct Counted;
//! impl Work for Counted {
//!     type Task = ();
//!     fn run(&self, _task: (), _queue: &mut VecDeque<()>) {}
//! }
//!
//! let net = Network {
//!     latency: Duration::from_micros(100),
//!     msg_cost: Duration::ZERO,
//!     task_cost: Duration::from_millis(2),
//!     gossip: Gossip::All,
//!     clusters: 1,
//!     seed: 1,
//! };
//! let mut swarm = Swarm::new(Counted, 4, &Config::default(), net);
//! swarm.add(0, std::iter::repeat_n((), 100));
//! assert!(swarm.run(1_000_000).is_some(), "the swarm fell silent");
//! assert_eq!(swarm.tally().tasks, 100);
//! assert!((0..4).all(|p| swarm.ran(p) > 0), "the work reached every peer");
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use super::{Config, Input, PeerId, Policy, RequestId};
use crate::rng::Rng;

mod peer;

/// What the peers hold and run.
pub trait Work {
    /// One unit of work: a counted task, a UTS node.
    type Task;

    /// Runs `task` to its end; the tasks it spawns go onto `queue`, the peer's, newest last.
    fn run(&self, task: Self::Task, queue: &mut VecDeque<Self::Task>);
}

/// Whom a load report reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gossip {
    /// Every other peer, one message each.
    All,
    /// This many random peers (drawn with replacement, never the publisher), a stand-in for
    /// a gossip mesh.
    Random(usize),
}

/// The fake network and the cost of work.
#[derive(Debug, Clone)]
pub struct Network {
    /// One-way latency of a message.
    pub latency: Duration,
    /// Added to every message (sending and handling it).
    pub msg_cost: Duration,
    /// Time to run one task.
    pub task_cost: Duration,
    /// Whom load reports reach.
    pub gossip: Gossip,
    /// Peers are split into this many clusters, peer `i` in cluster `i mod clusters`.
    pub clusters: usize,
    /// Seeds the random gossip targets.
    pub seed: u64,
}

/// What happened so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Tasks run to their end.
    pub tasks: u64,
    /// Messages sent, of every kind.
    pub messages: u64,
    /// Of those, load reports (one per receiver of a publication).
    pub load: u64,
    /// Of those, lifeline registrations and pushes.
    pub lifeline: u64,
    /// Steal requests sent.
    pub steals: u64,
    /// Requests ended ([`Output::Finished`](super::Output::Finished)).
    pub finished: u64,
    /// Of those, the ones that brought nothing (empty, timed out, or peer gone).
    pub failed: u64,
    /// Lifeline pushes that carried work.
    pub pushes: u64,
    /// Breaches of the policy's promise that every request ends exactly once: a request id
    /// used twice, or an end of a request not in flight. Always 0 for a sound policy.
    pub request_errors: u64,
}

enum Msg<T> {
    Steal {
        from: usize,
        request: RequestId,
    },
    /// Carries the victim's ready count after the steal: free gossip.
    Reply {
        from: usize,
        request: RequestId,
        tasks: Vec<T>,
        ready: usize,
    },
    Load {
        from: usize,
        ready: usize,
    },
    Lifeline {
        from: usize,
    },
    Push {
        from: usize,
        tasks: Vec<T>,
    },
}

enum Event<T> {
    Done(usize),
    Deliver(usize, Msg<T>),
    Timer(usize),
}

struct Peer<T> {
    policy: Policy,
    queue: VecDeque<T>,
    running: Option<T>,
    ran: u64,
    timer_at: Option<u64>,
    /// Requests in flight (the policy keeps at most two), and the last one sent.
    open: Vec<RequestId>,
    last_request: Option<RequestId>,
}

/// N peers, their policies and their work, on one virtual clock.
pub struct Swarm<W: Work> {
    work: W,
    net: Network,
    base: Instant,
    /// Virtual time, in nanoseconds since `base`.
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    /// Scheduled events by slot; freed slots are reused, so memory follows the queue's size.
    events: Vec<Option<Event<W::Task>>>,
    free: Vec<usize>,
    peers: Vec<Peer<W::Task>>,
    /// Tasks not yet run: queued, running, or travelling in a reply or push.
    outstanding: u64,
    rng: Rng,
    last_done: u64,
    last_sent: u64,
    tally: Tally,
    trace: u64,
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

impl<W: Work> Swarm<W> {
    /// `peers` peers holding no work, each with a policy from `config` (its seed mixed with
    /// the peer's index) that knows every other peer, and told its empty queue.
    pub fn new(work: W, peers: usize, config: &Config, net: Network) -> Swarm<W> {
        let base = Instant::now();
        let clusters = net.clusters.max(1);
        let members = (0..peers)
            .map(|i| {
                let mut config = config.clone();
                config.seed ^= (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut policy = Policy::new(PeerId(i as u64), (i % clusters) as u32, config);
                for j in (0..peers).filter(|j| *j != i) {
                    let input = Input::PeerUp {
                        peer: PeerId(j as u64),
                        cluster: (j % clusters) as u32,
                    };
                    policy.handle(input, base);
                }
                Peer {
                    policy,
                    queue: VecDeque::new(),
                    running: None,
                    ran: 0,
                    timer_at: None,
                    open: Vec::new(),
                    last_request: None,
                }
            })
            .collect();
        let mut swarm = Swarm {
            work,
            rng: Rng::new(net.seed),
            net,
            base,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            free: Vec::new(),
            peers: members,
            outstanding: 0,
            last_done: 0,
            last_sent: 0,
            tally: Tally::default(),
            trace: 0xcbf2_9ce4_8422_2325,
        };
        for p in 0..peers {
            swarm.local_load(p);
        }
        swarm
    }

    /// Gives peer `p` more tasks, as the event loop does with a reply or a push: they go
    /// onto its queue, it starts one if idle, and its policy is told its new count.
    pub fn add(&mut self, p: usize, tasks: impl IntoIterator<Item = W::Task>) {
        let before = self.peers[p].queue.len();
        self.peers[p].queue.extend(tasks);
        self.outstanding += (self.peers[p].queue.len() - before) as u64;
        self.start(p);
        self.local_load(p);
    }

    /// When the next event happens, if any is left.
    pub fn next_at(&self) -> Option<Duration> {
        self.queue
            .peek()
            .map(|Reverse((at, _, _))| Duration::from_nanos(*at))
    }

    /// Moves the clock to the next event and handles it; `false` if none was left.
    pub fn step(&mut self) -> bool {
        let Some(Reverse((at, _, slot))) = self.queue.pop() else {
            return false;
        };
        self.now = at;
        let event = self.events[slot].take();
        self.free.push(slot);
        if let Some(event) = event {
            self.handle(event);
        }
        true
    }

    /// Runs until nothing is left to happen: the number of events handled, or `None` once
    /// past `limit` of them.
    pub fn run(&mut self, limit: u64) -> Option<u64> {
        let mut events = 0;
        while self.step() {
            events += 1;
            if events > limit {
                return None;
            }
        }
        Some(events)
    }

    /// The virtual time.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    /// Whether nothing is left to happen: no message travels, no task runs, no timer waits.
    pub fn is_silent(&self) -> bool {
        self.queue.is_empty()
    }

    /// Tasks not yet run: queued, running, or travelling.
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }

    /// The counters so far.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// When the last task ended.
    pub fn last_done(&self) -> Duration {
        Duration::from_nanos(self.last_done)
    }

    /// When the last message was sent.
    pub fn last_sent(&self) -> Duration {
        Duration::from_nanos(self.last_sent)
    }

    /// A hash of every task's end and every steal, reply, registration and push delivered,
    /// with its time and peer, in order: equal for equal traces.
    pub fn trace(&self) -> u64 {
        self.trace
    }

    /// Number of peers.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    /// Tasks peer `p` has run.
    pub fn ran(&self, p: usize) -> u64 {
        self.peers[p].ran
    }

    /// Peer `p`'s policy.
    pub fn policy(&self, p: usize) -> &Policy {
        &self.peers[p].policy
    }

    /// When peer `p`'s timer is armed for, if it is.
    pub fn timer(&self, p: usize) -> Option<Duration> {
        self.peers[p].timer_at.map(Duration::from_nanos)
    }

    /// Requests in flight, over all peers.
    pub fn open_requests(&self) -> usize {
        self.peers.iter().map(|p| p.open.len()).sum()
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_nanos(self.now)
    }

    fn schedule(&mut self, at: u64, event: Event<W::Task>) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.events[slot] = Some(event);
                slot
            }
            None => {
                self.events.push(Some(event));
                self.events.len() - 1
            }
        };
        // Ties in time go by scheduling order, so the trace is deterministic.
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, slot)));
    }

    fn record(&mut self, kind: u64, peer: usize) {
        for x in [self.now, kind, peer as u64] {
            self.trace ^= x;
            self.trace = self.trace.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn send(&mut self, to: usize, msg: Msg<W::Task>) {
        self.tally.messages += 1;
        match msg {
            Msg::Load { .. } => self.tally.load += 1,
            Msg::Lifeline { .. } | Msg::Push { .. } => self.tally.lifeline += 1,
            Msg::Steal { .. } | Msg::Reply { .. } => {}
        }
        self.last_sent = self.now;
        let at = self.now + nanos(self.net.latency) + nanos(self.net.msg_cost);
        self.schedule(at, Event::Deliver(to, msg));
    }
}
