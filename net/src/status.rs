//! What a peer reports of itself and of the swarm: the public snapshots behind
//! [`Peer::status`](crate::Peer::status), [`Peer::swarm_status`](crate::Peer::swarm_status)
//! and [`Peer::suspicions`](crate::Peer::suspicions).

use std::time::SystemTime;

use libp2p::{Multiaddr, PeerId};

use crate::node::Stats;
use crate::wire::PeerReport;

/// A peer's report for `peer status`, or why it gave none.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PeerAnswer {
    /// The peer asked.
    pub peer: PeerId,
    /// Its report, or why there is none (it did not answer in time, or refused).
    pub report: Result<PeerReport, String>,
}

/// A snapshot of one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The node's counters.
    pub stats: Stats,
    /// Peers connected that speak the task protocol.
    pub peers: usize,
    /// Where this peer listens.
    pub listen_addrs: Vec<Multiaddr>,
    /// Peers suspected so far, oldest first.
    pub recoveries: Vec<Suspicion>,
    /// Draining, and nothing of other peers' is left here: it can leave.
    pub drained: bool,
    /// Why the last dial failed, if one did (a wrong swarm key shows here).
    pub last_dial_error: Option<String>,
    /// Closures submitted through this peer's clients: they run on this peer only, unlike
    /// named tasks.
    pub local_only: u64,
    /// Calls of named tasks that this peer's clients kept on its own pool, as a local
    /// client would, because their kind runs faster than handing it on costs
    /// ([`Config::keep_below`](crate::Config::keep_below)); counted in `stats.ran` too, as
    /// they are kept (before they run).
    pub kept_here: u64,
    /// Named tasks submitted here that no connected peer registered when first submitted:
    /// every call of them runs here.
    pub unserved: Vec<String>,
}

/// A peer suspected, as [`Status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Suspicion {
    /// Who suspected it.
    pub by: PeerId,
    /// The peer suspected.
    pub peer: PeerId,
    /// When, by the wall clock.
    pub at: SystemTime,
    /// Why: its connection closed, or it stopped answering pings.
    pub reason: String,
    /// Tasks owned here that were queued or running there, or whose only result was there,
    /// queued again.
    pub requeued: usize,
}
