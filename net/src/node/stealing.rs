//! Stealing, as the node drives it: the [policy](peer_steal::policy) decides when to ask
//! whom for work and when to push work to a lifeline buddy; this module keeps the state
//! around it (lifelines registered here, buddies registered with, steal answers not yet
//! sent, round trips) and turns the policy's outputs into requests. Steal, lifeline and
//! push requests from other peers are answered in `messages.rs`.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use hdrhistogram::Histogram;
use peer_steal::policy::{self, Policy};

use super::Node;
use super::state::Pending;
use crate::wire::{GraphEvent, Request, TaskSpec};

/// The stealing protocol's state.
#[derive(Debug)]
pub(super) struct Stealing {
    pub(super) policy: Policy,
    /// Peers waiting on us as their lifeline buddy, with the fingerprints they can run.
    pub(super) lifelines: HashMap<u64, Vec<u64>>,
    /// Peers we registered a lifeline with: the only ones whose pushes of their tasks we
    /// take.
    pub(super) buddies: HashSet<u64>,
    /// Lifeline registrations of peers that can run none of our ready tasks, and how many
    /// were ready then: handed back to the policy when more are.
    pub(super) stalled_lifelines: Vec<u64>,
    pub(super) stalled_at: usize,
    /// Round trips of answered steal requests, in nanoseconds.
    pub(super) steal_rtt: Histogram<u64>,
    /// Tasks given in steal answers not yet sent, by request channel.
    pub(super) giving: HashMap<u64, Vec<TaskSpec>>,
}

impl Stealing {
    /// The stealing state of peer `me`.
    pub(super) fn new(me: u64, config: policy::Config) -> Stealing {
        Stealing {
            policy: Policy::new(policy::PeerId(me), 0, config),
            lifelines: HashMap::new(),
            buddies: HashSet::new(),
            stalled_lifelines: Vec::new(),
            stalled_at: 0,
            steal_rtt: Histogram::new(3).expect("3 significant digits is a valid precision"),
            giving: HashMap::new(),
        }
    }
}

impl Node {
    /// Tells the policy our load, hands it back stalled lifelines when more tasks are
    /// ready, and carries out what it decided.
    pub(super) fn steal_step(&mut self, now: Instant) {
        self.stealing.policy.handle(
            policy::Input::LocalLoad {
                ready: self.ready.len() + self.not_here.min(self.ready.len()),
            },
            now,
        );
        if self.ready.len() > self.stealing.stalled_at {
            for peer in std::mem::take(&mut self.stealing.stalled_lifelines) {
                let from = policy::PeerId(peer);
                self.stealing
                    .policy
                    .handle(policy::Input::LifelineRequest { from }, now);
            }
        }
        while let Some(output) = self.stealing.policy.poll_output() {
            match output {
                // A draining peer asks for no work (the policy's request times out unseen).
                policy::Output::Steal { .. } | policy::Output::Lifeline { .. } if self.draining => {
                }
                policy::Output::Steal { peer, request } => {
                    self.stats.steal_requests += 1;
                    let ask = Request::Steal {
                        max: self.settings.steal_max,
                        can_run: self.can_run.clone(),
                    };
                    self.send(peer.0, Pending::Steal(request, peer.0, now), ask);
                }
                policy::Output::PublishLoad { ready } => {
                    self.gossip.push(GraphEvent::Load(ready as u32), now);
                }
                policy::Output::Finished { outcome, .. } => {
                    if !matches!(outcome, policy::Outcome::Stole(_)) {
                        self.stats.failed_steals += 1;
                    }
                }
                policy::Output::Lifeline { peer } => {
                    self.stealing.buddies.insert(peer.0);
                    let ask = Request::Lifeline {
                        can_run: self.can_run.clone(),
                    };
                    self.send(peer.0, Pending::OneWay(peer.0), ask);
                }
                policy::Output::Push { peer, tasks } => {
                    let can_run = self
                        .stealing
                        .lifelines
                        .get(&peer.0)
                        .cloned()
                        .unwrap_or_default();
                    let given = self.take_oldest(peer.0, tasks, &can_run, now);
                    let ready = self.ready.len();
                    self.stealing
                        .policy
                        .handle(policy::Input::LocalLoad { ready }, now);
                    if given.is_empty() {
                        // Nothing it can run: keep the registration, but hand it back to the
                        // policy only when more tasks are ready (else it asks again at once).
                        self.stealing.stalled_lifelines.push(peer.0);
                        self.stealing.stalled_at = self.ready.len();
                    } else {
                        self.stealing.lifelines.remove(&peer.0);
                        // Kept until the push is taken, to be queued again if it is not.
                        let push = Request::Push {
                            tasks: given.clone(),
                        };
                        self.send(peer.0, Pending::Push(peer.0, given), push);
                    }
                }
            }
        }
    }
}
