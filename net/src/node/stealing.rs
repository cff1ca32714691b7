//! Stealing, as a machine of its own around the [`peer_steal::policy`]: the policy
//! decides when to ask whom for work and when to push work to a lifeline buddy; this module
//! keeps the state around it (lifelines registered here, buddies registered with, steal
//! answers not yet sent, round trips) and turns the policy's outputs into [`Effect`]s. The
//! node moves the tasks themselves (which ready tasks a thief can run is the task graph's
//! business) and reports here what happened.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use hdrhistogram::Histogram;
use peer_steal::policy::{self, Policy};

use super::Latency;
use super::state::Pending;
use crate::wire::{GraphEvent, Request, TaskSpec};

/// What stealing asks its node to do ([`Stealing::poll_output`]).
#[derive(Debug)]
pub(super) enum Effect {
    /// Send `request` (a steal or a lifeline registration) to `to`.
    Send {
        to: u64,
        pending: Pending,
        request: Request,
    },
    /// Gossip this peer's load.
    Gossip(GraphEvent),
    /// Push up to `tasks` of the oldest ready tasks `can_run` allows to lifeline `peer`,
    /// and say how it went ([`Stealing::pushed`]).
    Push {
        peer: u64,
        tasks: usize,
        can_run: Vec<u64>,
    },
}

/// The stealing protocol's state.
#[derive(Debug)]
pub(super) struct Stealing {
    policy: Policy,
    /// What this peer registers, sent with its steals and lifelines.
    can_run: Vec<u64>,
    /// Most tasks asked for in one steal.
    steal_max: u32,
    /// Peers waiting on us as their lifeline buddy, with the fingerprints they can run.
    lifelines: HashMap<u64, Vec<u64>>,
    /// Peers we registered a lifeline with: the only ones whose pushes of their tasks we
    /// take.
    pub(super) buddies: HashSet<u64>,
    /// Lifeline registrations of peers that can run none of our ready tasks, and how many
    /// were ready then: handed back to the policy when more are.
    stalled_lifelines: Vec<u64>,
    stalled_at: usize,
    /// Round trips of answered steal requests, in nanoseconds.
    steal_rtt: Histogram<u64>,
    /// Tasks given in steal answers not yet sent, by request channel.
    giving: HashMap<u64, Vec<TaskSpec>>,
    /// Steal requests sent, and those that brought nothing.
    pub(super) requests: u64,
    pub(super) failed: u64,
}

impl Stealing {
    /// The stealing of peer `me`, which registers `can_run` and asks for at most
    /// `steal_max` tasks at once.
    pub(super) fn new(
        me: u64,
        config: policy::Config,
        can_run: Vec<u64>,
        steal_max: u32,
    ) -> Stealing {
        Stealing {
            policy: Policy::new(policy::PeerId(me), 0, config),
            can_run,
            steal_max,
            lifelines: HashMap::new(),
            buddies: HashSet::new(),
            stalled_lifelines: Vec::new(),
            stalled_at: 0,
            steal_rtt: Histogram::new(3).expect("3 significant digits is a valid precision"),
            giving: HashMap::new(),
            requests: 0,
            failed: 0,
        }
    }

    /// Round trips of answered steal requests.
    pub(super) fn round_trips(&self) -> Latency {
        Latency::of(&self.steal_rtt)
    }

    /// A peer is up.
    pub(super) fn peer_up(&mut self, peer: u64, now: Instant) {
        let input = policy::Input::PeerUp {
            peer: policy::PeerId(peer),
            cluster: 0,
        };
        self.policy.handle(input, now);
    }

    /// A peer is suspected: its lifeline and buddy registrations go.
    pub(super) fn peer_down(&mut self, peer: u64, now: Instant) {
        self.lifelines.remove(&peer);
        self.buddies.remove(&peer);
        self.stalled_lifelines.retain(|p| *p != peer);
        let input = policy::Input::PeerDown {
            peer: policy::PeerId(peer),
        };
        self.policy.handle(input, now);
    }

    /// `peer` has `ready` tasks ready (its gossip, or a steal answer).
    pub(super) fn load(&mut self, peer: u64, ready: usize, now: Instant) {
        let input = policy::Input::Load {
            peer: policy::PeerId(peer),
            ready,
        };
        self.policy.handle(input, now);
    }

    /// This peer has `ready` tasks ready.
    pub(super) fn local_load(&mut self, ready: usize, now: Instant) {
        self.policy.handle(policy::Input::LocalLoad { ready }, now);
    }

    /// The node gave `tasks` to a thief in the answer on `channel`: kept until the answer
    /// is on its way.
    pub(super) fn giving(&mut self, channel: u64, tasks: Vec<TaskSpec>) {
        self.giving.insert(channel, tasks);
    }

    /// The answer on `channel` went out (`sent`) or could not: the tasks it gave, to queue
    /// again, if it could not.
    pub(super) fn answer_sent(&mut self, channel: u64, sent: bool) -> Option<Vec<TaskSpec>> {
        let tasks = self.giving.remove(&channel)?;
        (!sent).then_some(tasks)
    }

    /// `from` registered a lifeline with us, for the tasks `can_run` allows.
    pub(super) fn lifeline_registered(&mut self, from: u64, can_run: Vec<u64>, now: Instant) {
        self.lifelines.insert(from, can_run);
        let from = policy::PeerId(from);
        self.policy
            .handle(policy::Input::LifelineRequest { from }, now);
    }

    /// Buddy `from` pushed us `count` tasks; we have `ready` now.
    pub(super) fn pushed_here(&mut self, from: u64, count: usize, ready: usize, now: Instant) {
        self.buddies.remove(&from);
        self.local_load(ready, now);
        let from = policy::PeerId(from);
        (self.policy).handle(policy::Input::Pushed { from, tasks: count }, now);
    }

    /// Our steal sent at `sent` was answered: its round trip counts.
    pub(super) fn answered(&mut self, sent: Instant, now: Instant) {
        let nanos = now.saturating_duration_since(sent).as_nanos();
        tracing::debug!(round_trip_us = nanos / 1000, "steal answered");
        let _ = (self.steal_rtt).record(u64::try_from(nanos).unwrap_or(u64::MAX));
    }

    /// Our steal `request` to `victim` ended: `stolen` tasks were taken, we have `ready`
    /// now, and the victim said it has `left`.
    pub(super) fn stole(
        &mut self,
        request: policy::RequestId,
        victim: u64,
        stolen: usize,
        left: Option<u32>,
        ready: usize,
        now: Instant,
    ) {
        self.local_load(ready, now);
        self.policy
            .handle(policy::Input::Reply { request, stolen }, now);
        if let Some(left) = left {
            self.load(victim, left as usize, now);
        }
    }

    /// Tells the policy our load (`load` counts twice the ready tasks this peer withholds;
    /// `ready` is the deque's length) and hands it back stalled lifelines when more tasks
    /// are ready.
    pub(super) fn step(&mut self, load: usize, ready: usize, now: Instant) {
        self.local_load(load, now);
        if ready > self.stalled_at {
            for peer in std::mem::take(&mut self.stalled_lifelines) {
                let from = policy::PeerId(peer);
                self.policy
                    .handle(policy::Input::LifelineRequest { from }, now);
            }
        }
    }

    /// The node pushed `given` tasks to `peer` ([`Effect::Push`]) and has `ready` left:
    /// the request to send them with, if any went.
    pub(super) fn pushed(
        &mut self,
        peer: u64,
        given: Vec<TaskSpec>,
        ready: usize,
        now: Instant,
    ) -> Option<(Pending, Request)> {
        self.local_load(ready, now);
        if given.is_empty() {
            // Nothing it can run: keep the registration, but hand it back to the policy
            // only when more tasks are ready (else it asks again at once).
            self.stalled_lifelines.push(peer);
            self.stalled_at = ready;
            return None;
        }
        self.lifelines.remove(&peer);
        // Kept until the push is taken, to be queued again if it is not.
        let push = Request::Push {
            tasks: given.clone(),
        };
        Some((Pending::Push(peer, given), push))
    }

    /// Ends what timed out in the policy.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        self.policy.handle_timeout(now);
    }

    /// When [`handle_timeout`](Stealing::handle_timeout) should next be called.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.policy.poll_timeout()
    }

    /// The next thing to do, if any. A `draining` peer asks for no work (the policy's
    /// request times out unseen).
    pub(super) fn poll_output(&mut self, draining: bool, now: Instant) -> Option<Effect> {
        loop {
            let effect = match self.policy.poll_output()? {
                policy::Output::Steal { .. } | policy::Output::Lifeline { .. } if draining => {
                    continue;
                }
                policy::Output::Steal { peer, request } => {
                    self.requests += 1;
                    let ask = Request::Steal {
                        max: self.steal_max,
                        can_run: self.can_run.clone(),
                    };
                    Effect::Send {
                        to: peer.0,
                        pending: Pending::Steal(request, peer.0, now),
                        request: ask,
                    }
                }
                policy::Output::PublishLoad { ready } => {
                    Effect::Gossip(GraphEvent::Load(ready as u32))
                }
                policy::Output::Finished { outcome, .. } => {
                    if !matches!(outcome, policy::Outcome::Stole(_)) {
                        self.failed += 1;
                    }
                    continue;
                }
                policy::Output::Lifeline { peer } => {
                    self.buddies.insert(peer.0);
                    let ask = Request::Lifeline {
                        can_run: self.can_run.clone(),
                    };
                    Effect::Send {
                        to: peer.0,
                        pending: Pending::OneWay(peer.0),
                        request: ask,
                    }
                }
                policy::Output::Push { peer, tasks } => Effect::Push {
                    peer: peer.0,
                    tasks,
                    can_run: self.lifelines.get(&peer.0).cloned().unwrap_or_default(),
                },
            };
            return Some(effect);
        }
    }
}
