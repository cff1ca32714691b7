//! A deterministic discrete-event simulator of N peers stealing UTS-shaped work, running the
//! real [`peer_steal::policy::Policy`] of each peer.
//!
//! Each simulated peer keeps a deque of UTS nodes and runs them one at a time, each for
//! `node_cost`; a node's children go onto its deque. Messages arrive after `latency` plus
//! `msg_cost`: steal requests, replies with up to half of the victim's deque (its oldest,
//! shallowest nodes) and the victim's remaining count, lifeline registrations, lifeline
//! pushes (nodes taken like a steal's), and load gossip, which reaches `gossip_fanout`
//! random peers per publication, a stand-in for a gossip mesh. The event loop is
//! `peer_steal::policy::sim`, the one the policy's own swarm tests run, and follows the
//! policy's module doc to the letter, as the network layer must; this module gives it UTS
//! nodes for work and measures. Time is virtual and every random choice comes from the seed,
//! so the same configuration gives the same trace ([`Report::trace`]).
//!
//! After the last node ends, the simulation goes on for `settle` and then `idle_window`:
//! messages sent in the window give the idle rate, and the last message sent gives the time
//! the swarm took to fall silent.
//!
//! `cargo run --release -p peer-workloads --bin sim` prints the tables of `docs/stealing.md`.

use std::collections::VecDeque;
use std::time::Duration;

use peer_steal::policy::Config;
use peer_steal::policy::sim::{Gossip, Network, Swarm, Tally, Work};

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

/// UTS nodes, each spawning its children.
struct Uts(Params);

impl Work for Uts {
    type Task = Node;
    fn run(&self, node: Node, queue: &mut VecDeque<Node>) {
        queue.extend(uts::children(&self.0, &node));
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Runs one simulation.
pub fn simulate(cfg: &SimConfig) -> Report {
    let net = Network {
        latency: cfg.latency,
        msg_cost: cfg.msg_cost,
        task_cost: cfg.node_cost,
        gossip: Gossip::Random(cfg.gossip_fanout),
        clusters: cfg.clusters,
        seed: cfg.seed,
    };
    let mut swarm = Swarm::new(Uts(cfg.tree), cfg.peers, &cfg.policy, net);
    swarm.add(0, [uts::root(&cfg.tree)]);
    let settled = nanos(cfg.settle);
    let over = settled + nanos(cfg.idle_window);
    // The time of the last node and the counters then, once every node has run.
    let mut at_end: Option<(u64, Tally)> = None;
    let mut messages_at_settled = None;
    while let Some(at) = swarm.next_at() {
        let at = nanos(at);
        if let Some((end, _)) = at_end {
            if messages_at_settled.is_none() && at > end + settled {
                messages_at_settled = Some(swarm.tally().messages);
            }
            if at > end + over {
                break;
            }
        }
        swarm.step();
        if at_end.is_none() && swarm.outstanding() == 0 {
            at_end = Some((nanos(swarm.last_done()), swarm.tally()));
        }
    }
    let all = swarm.tally();
    let (end, tally) = at_end.unwrap_or((nanos(swarm.last_done()), all));
    let idle_messages = all.messages - messages_at_settled.unwrap_or(all.messages);
    let work = cfg.node_cost.as_secs_f64() * all.tasks as f64;
    let makespan = Duration::from_nanos(end);
    let ideal = Duration::from_secs_f64(work / cfg.peers as f64);
    Report {
        peers: cfg.peers,
        nodes: all.tasks,
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
        quiet_after: swarm.last_sent().saturating_sub(makespan),
        trace: swarm.trace(),
    }
}
