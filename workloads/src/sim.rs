//! A deterministic discrete-event simulator of N peers stealing UTS-shaped work, running the
//! real [`peer_steal::policy::Policy`] of each peer.
//!
//! Each simulated peer keeps a deque of UTS nodes and runs them one at a time, each for
//! `node_cost`; a node's children go onto its deque. Messages (steal requests, replies with
//! up to half of the victim's deque, load gossip) arrive after `latency` plus `msg_cost`.
//! Load gossip reaches `gossip_fanout` random peers per publication, a stand-in for a
//! gossip mesh. Time is virtual and every random choice comes from the seed, so the same
//! configuration gives the same trace ([`Report::trace`]).
//!
//! `cargo run --release -p peer-workloads --bin sim` prints the table of `docs/stealing.md`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use peer_steal::Rng;
use peer_steal::policy::{Config, Input, Outcome, Output, PeerId, Policy, RequestId};

use crate::uts::{self, Node, Params};

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
    /// Steal requests sent.
    pub steals: u64,
    /// Steal requests that brought nothing (empty, timed out, or peer gone).
    pub failed_steals: u64,
    /// Messages of every kind until the makespan.
    pub messages: u64,
    /// `messages / peers / makespan`.
    pub messages_per_peer_per_s: f64,
    /// Messages per peer per second in the idle window (after the work ended and `settle`).
    pub idle_messages_per_peer_per_s: f64,
    /// A hash of every event in order: equal for equal traces.
    pub trace: u64,
}

enum Msg {
    Steal {
        from: usize,
        request: RequestId,
    },
    Reply {
        request: RequestId,
        nodes: Vec<Node>,
    },
    Load {
        from: usize,
        ready: usize,
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
    /// Nodes not yet run: queued, running or travelling in a reply.
    outstanding: u64,
    rng: Rng,
    nodes: u64,
    last_done: u64,
    steals: u64,
    failed: u64,
    messages: u64,
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
        steals: 0,
        failed: 0,
        messages: 0,
        trace: 0xcbf2_9ce4_8422_2325,
    };
    sim.peers[0].deque.push_back(uts::root(&cfg.tree));
    for p in 0..cfg.peers {
        sim.local_load(p);
        sim.start(p);
    }
    let mut messages_at_end = None;
    let mut messages_at_settled = None;
    while let Some(Reverse((at, _, id))) = sim.queue.pop() {
        if let Some((end, _)) = messages_at_end {
            if messages_at_settled.is_none() && at > end + nanos(cfg.settle) {
                messages_at_settled = Some(sim.messages);
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
        if messages_at_end.is_none() && sim.outstanding == 0 {
            messages_at_end = Some((sim.last_done, sim.messages));
        }
    }
    let (end, messages) = messages_at_end.unwrap_or((sim.last_done, sim.messages));
    let idle_messages = sim.messages - messages_at_settled.unwrap_or(sim.messages);
    let work = cfg.node_cost.as_secs_f64() * sim.nodes as f64;
    let makespan = Duration::from_nanos(end);
    let ideal = Duration::from_secs_f64(work / cfg.peers as f64);
    Report {
        peers: cfg.peers,
        nodes: sim.nodes,
        makespan,
        ideal,
        efficiency: ideal.as_secs_f64() / makespan.as_secs_f64().max(f64::MIN_POSITIVE),
        steals: sim.steals,
        failed_steals: sim.failed,
        messages,
        messages_per_peer_per_s: messages as f64 / cfg.peers as f64 / makespan.as_secs_f64(),
        idle_messages_per_peer_per_s: idle_messages as f64
            / cfg.peers as f64
            / cfg.idle_window.as_secs_f64(),
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
        self.messages += 1;
        let at = self.now + nanos(self.cfg.latency) + nanos(self.cfg.msg_cost);
        self.schedule(at, Event::Deliver(to, msg));
    }

    fn start(&mut self, p: usize) {
        if self.peers[p].running.is_some() {
            return;
        }
        if let Some(node) = self.peers[p].deque.pop_back() {
            self.peers[p].running = Some(node);
            let at = self.now + nanos(self.cfg.node_cost);
            self.schedule(at, Event::Done(p));
        }
    }

    fn local_load(&mut self, p: usize) {
        let ready = self.peers[p].deque.len();
        let now = self.instant();
        self.peers[p].policy.handle(Input::LocalLoad { ready }, now);
        self.pump(p);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Done(p) => {
                self.record(1, p);
                if let Some(node) = self.peers[p].running.take() {
                    self.nodes += 1;
                    self.last_done = self.now;
                    let before = self.peers[p].deque.len();
                    self.peers[p]
                        .deque
                        .extend(uts::children(&self.cfg.tree, &node));
                    self.outstanding += (self.peers[p].deque.len() - before) as u64;
                    self.outstanding -= 1;
                }
                self.start(p);
                self.local_load(p);
            }
            Event::Timer(p) => {
                if self.peers[p].timer_at == Some(self.now) {
                    self.peers[p].timer_at = None;
                    let now = self.instant();
                    self.peers[p].policy.handle_timeout(now);
                    self.pump(p);
                }
            }
            Event::Deliver(p, Msg::Steal { from, request }) => {
                self.record(2, p);
                // Steal-half, rounded up: a victim with one queued node gives it away.
                let take = self.peers[p].deque.len().div_ceil(2);
                let nodes: Vec<Node> = self.peers[p].deque.drain(..take).collect();
                self.send(from, Msg::Reply { request, nodes });
                self.local_load(p);
            }
            Event::Deliver(p, Msg::Reply { request, nodes }) => {
                self.record(3, p);
                let stolen = nodes.len();
                self.peers[p].deque.extend(nodes);
                let now = self.instant();
                self.peers[p]
                    .policy
                    .handle(Input::Reply { request, stolen }, now);
                self.start(p);
                self.local_load(p);
            }
            Event::Deliver(p, Msg::Load { from, ready }) => {
                let now = self.instant();
                let input = Input::Load {
                    peer: PeerId(from as u64),
                    ready,
                };
                self.peers[p].policy.handle(input, now);
                self.pump(p);
            }
        }
    }

    /// Carries out what peer `p`'s policy asks for and arms its timer.
    fn pump(&mut self, p: usize) {
        while let Some(out) = self.peers[p].policy.poll_output() {
            match out {
                Output::Steal { peer, request } => {
                    self.steals += 1;
                    self.send(peer.0 as usize, Msg::Steal { from: p, request });
                }
                Output::PublishLoad { ready } => {
                    let n = self.cfg.peers;
                    for _ in 0..self.cfg.gossip_fanout.min(n.saturating_sub(1)) {
                        let mut q = self.random(n);
                        if q == p {
                            q = (q + 1) % n;
                        }
                        self.send(q, Msg::Load { from: p, ready });
                    }
                }
                Output::Finished { outcome, .. } => {
                    if !matches!(outcome, Outcome::Stole(_)) {
                        self.failed += 1;
                    }
                }
            }
        }
        if let Some(at) = self.peers[p].policy.poll_timeout() {
            let at = nanos(at.saturating_duration_since(self.base)).max(self.now);
            if self.peers[p].timer_at.is_none_or(|t| at < t) {
                self.peers[p].timer_at = Some(at);
                self.schedule(at, Event::Timer(p));
            }
        }
    }
}
