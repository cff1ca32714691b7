//! A deterministic discrete-event simulator of N peers stealing UTS-shaped work, running the
//! real [`peer_steal::policy::Policy`] of each peer.
//!
//! Each simulated peer keeps a deque of UTS nodes and runs them one at a time, each for
//! `node_cost`; a node's children go onto its deque. Messages arrive after `latency` plus
//! `msg_cost`: steal requests, replies with up to half of the victim's deque (its oldest,
//! shallowest nodes) and the victim's remaining count, lifeline registrations, lifeline
//! pushes (nodes taken like a steal's), and load gossip, which reaches `gossip_fanout`
//! random peers per publication, a stand-in for a gossip mesh. The event loop follows the
//! policy's module doc to the letter, as the network layer must. Time is virtual and every
//! random choice comes from the seed, so the same configuration gives the same trace
//! ([`Report::trace`]).
//!
//! After the last node ends, the simulation goes on for `settle` and then `idle_window`:
//! messages sent in the window give the idle rate, and the last message sent gives the time
//! the swarm took to fall silent.
//!
//! `cargo run --release -p peer-workloads --bin sim` prints the tables of `docs/stealing.md`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use peer_steal::Rng;
use peer_steal::policy::{Config, Input, PeerId, Policy, RequestId};

use crate::uts::{self, Node, Params};

mod peer;

/// One simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of peers.
    pub peers: usize,
    /// The tree; its root starts on peer 0.
    pub tree: Params,
    /// Time to run one node.
    pub node_cost: Duration,
    /// One-way network latency.
    pub latency: Duration,
    /// Added to every message (sending and handling it).
    pub msg_cost: Duration,
    /// Peers each load publication reaches.
    pub gossip_fanout: usize,
    /// Peers are split into this many clusters (for the cluster-aware strategy).
    pub clusters: usize,
    /// The stealing policy of every peer (its seed is mixed with the peer's id).
    pub policy: Config,
    /// After the last node, let this long pass (peers settle into quiescence)...
    pub settle: Duration,
    /// ...then count messages over this long: the idle rate.
    pub idle_window: Duration,
    /// Seeds gossip targets.
    pub seed: u64,
}

/// What a simulation measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Peers simulated.
    pub peers: usize,
    /// Nodes run (must equal the tree's count).
    pub nodes: u64,
    /// Time of the last node's completion.
    pub makespan: Duration,
    /// Total work divided by the number of peers.
    pub ideal: Duration,
    /// `ideal / makespan`.
    pub efficiency: f64,
    /// Steal requests sent until the makespan.
    pub steals: u64,
    /// Those that brought nothing (empty, timed out, or peer gone).
    pub failed_steals: u64,
    /// Lifeline pushes (unsolicited transfers of work to a waiting buddy) until the makespan.
    pub pushes: u64,
    /// Messages of every kind until the makespan.
    pub messages: u64,
    /// Of those, load gossip (one per receiver of a publication).
    pub load_messages: u64,
    /// Of those, lifeline registrations and pushes.
    pub lifeline_messages: u64,
    /// `messages / peers / makespan`.
    pub messages_per_peer_per_s: f64,
    /// Messages per peer per second in the idle window (after the work ended and `settle`).
    pub idle_messages_per_peer_per_s: f64,
    /// From the makespan to the last message sent before the end of the idle window: how
    /// long the swarm took to fall silent (the whole horizon if it never did).
    pub quiet_after: Duration,
    /// A hash of every event in order: equal for equal traces.
    pub trace: u64,
}

enum Msg {
    Steal {
        from: usize,
        request: RequestId,
    },
    /// Carries the victim's ready count after the steal: free gossip.
    Reply {
        from: usize,
        request: RequestId,
        nodes: Vec<Node>,
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
        nodes: Vec<Node>,
    },
}

enum Event {
    Done(usize),
    Deliver(usize, Msg),
    Timer(usize),
}

struct SimPeer {
    deque: VecDeque<Node>,
    running: Option<Node>,
    policy: Policy,
    timer_at: Option<u64>,
}

/// Counters, split at the makespan.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    messages: u64,
    load: u64,
    lifeline: u64,
    steals: u64,
    failed: u64,
    pushes: u64,
}

struct Sim<'a> {
    cfg: &'a SimConfig,
    base: Instant,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, u64)>>,
    /// Scheduled events by slot; freed slots are reused so memory follows the queue's size.
    events: Vec<Option<Event>>,
    free: Vec<usize>,
    peers: Vec<SimPeer>,
    /// Nodes not yet run: queued, running or travelling in a reply or push.
    outstanding: u64,
    rng: Rng,
    nodes: u64,
    last_done: u64,
    last_sent: u64,
    tally: Tally,
    trace: u64,
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Runs one simulation.
pub fn simulate(cfg: &SimConfig) -> Report {
    let base = Instant::now();
    let clusters = cfg.clusters.max(1);
    let peers: Vec<SimPeer> = (0..cfg.peers)
        .map(|i| {
            let mut config = cfg.policy.clone();
            config.seed ^= (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut policy = Policy::new(PeerId(i as u64), (i % clusters) as u32, config);
            for j in 0..cfg.peers {
                if j != i {
                    let input = Input::PeerUp {
                        peer: PeerId(j as u64),
                        cluster: (j % clusters) as u32,
                    };
                    policy.handle(input, base);
                }
            }
            SimPeer {
                deque: VecDeque::new(),
                running: None,
                policy,
                timer_at: None,
            }
        })
        .collect();
    let mut sim = Sim {
        cfg,
        base,
        now: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        events: Vec::new(),
        free: Vec::new(),
        peers,
        outstanding: 1,
        rng: Rng::new(cfg.seed),
        nodes: 0,
        last_done: 0,
        last_sent: 0,
        tally: Tally::default(),
        trace: 0xcbf2_9ce4_8422_2325,
    };
    sim.peers[0].deque.push_back(uts::root(&cfg.tree));
    for p in 0..cfg.peers {
        sim.start(p);
        sim.local_load(p);
    }
    let mut at_end: Option<(u64, Tally)> = None;
    let mut messages_at_settled = None;
    while let Some(Reverse((at, _, id))) = sim.queue.pop() {
        if let Some((end, _)) = at_end {
            if messages_at_settled.is_none() && at > end + nanos(cfg.settle) {
                messages_at_settled = Some(sim.tally.messages);
            }
            if at > end + nanos(cfg.settle) + nanos(cfg.idle_window) {
                break;
            }
        }
        sim.now = at;
        let Some(event) = sim.events[id as usize].take() else {
            continue;
        };
        sim.free.push(id as usize);
        sim.handle(event);
        if at_end.is_none() && sim.outstanding == 0 {
            at_end = Some((sim.last_done, sim.tally));
        }
    }
    let (end, tally) = at_end.unwrap_or((sim.last_done, sim.tally));
    let idle_messages = sim.tally.messages - messages_at_settled.unwrap_or(sim.tally.messages);
    let work = cfg.node_cost.as_secs_f64() * sim.nodes as f64;
    let makespan = Duration::from_nanos(end);
    let ideal = Duration::from_secs_f64(work / cfg.peers as f64);
    Report {
        peers: cfg.peers,
        nodes: sim.nodes,
        makespan,
        ideal,
        efficiency: ideal.as_secs_f64() / makespan.as_secs_f64().max(f64::MIN_POSITIVE),
        steals: tally.steals,
        failed_steals: tally.failed,
        pushes: tally.pushes,
        messages: tally.messages,
        load_messages: tally.load,
        lifeline_messages: tally.lifeline,
        messages_per_peer_per_s: tally.messages as f64
            / cfg.peers as f64
            / makespan.as_secs_f64().max(f64::MIN_POSITIVE),
        idle_messages_per_peer_per_s: idle_messages as f64
            / cfg.peers as f64
            / cfg.idle_window.as_secs_f64().max(f64::MIN_POSITIVE),
        quiet_after: Duration::from_nanos(sim.last_sent.saturating_sub(end)),
        trace: sim.trace,
    }
}

impl Sim<'_> {
    fn instant(&self) -> Instant {
        self.base + Duration::from_nanos(self.now)
    }

    fn schedule(&mut self, at: u64, event: Event) {
        let id = match self.free.pop() {
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
        self.queue.push(Reverse((at, self.seq, id as u64)));
    }

    fn record(&mut self, kind: u64, peer: usize) {
        for x in [self.now, kind, peer as u64] {
            self.trace ^= x;
            self.trace = self.trace.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn random(&mut self, n: usize) -> usize {
        self.rng.below(n)
    }

    fn send(&mut self, to: usize, msg: Msg) {
        self.tally.messages += 1;
        match msg {
            Msg::Load { .. } => self.tally.load += 1,
            Msg::Lifeline { .. } | Msg::Push { .. } => self.tally.lifeline += 1,
            Msg::Steal { .. } | Msg::Reply { .. } => {}
        }
        self.last_sent = self.now;
        let at = self.now + nanos(self.cfg.latency) + nanos(self.cfg.msg_cost);
        self.schedule(at, Event::Deliver(to, msg));
    }
}
