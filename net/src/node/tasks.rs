//! Tasks and their ownership, as a machine of its own: the tasks this peer owns (it
//! submitted them) with their lineage and custody, the ready deque, the tasks being
//! prepared and run here, the results held and inputs cached, notices to other owners,
//! audits, recovery from suspected peers and draining. Its methods live in the files named
//! after what they do (`owner.rs`, `runner.rs`, `custody.rs`, `recovery.rs`, `drain.rs`,
//! `notices.rs`); the node routes inputs to it and carries out its [`Effect`]s. It reads
//! who is up from the [`Membership`](crate::membership::Membership) it is handed.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::custody::Early;
use super::fifo::InputCache;
use super::owned::OwnedTasks;
use super::ready::Ready;
use super::state::{Notices, Pending, Preparing};
use super::{Bytes, Output, Recovery, Settings, Stats};
use crate::membership::Membership;
use crate::wire::{GraphEvent, Request, TaskKey, TaskSpec};

/// What the tasks machine asks its node to do ([`Tasks::poll_output`]).
#[derive(Debug)]
pub(super) enum Effect {
    /// Send `request` to `to`; its answer comes back as what `pending` says.
    Send {
        to: u64,
        pending: Pending,
        request: Request,
    },
    /// Hand the event loop this output (a run, a resolved future, a late argument).
    Output(Output),
    /// Gossip an event of the task graph.
    Gossip(GraphEvent),
    /// The ready deque changed outside a step (tasks queued again): stealing is told.
    Load,
}

/// One peer's tasks; see the [module docs](self).
#[derive(Debug)]
pub(super) struct Tasks {
    pub(super) me: u64,
    pub(super) settings: Settings,
    /// Fingerprints of the named tasks this peer runs for any owner, sorted.
    pub(super) can_run: Vec<u64>,
    /// Fingerprints of those it runs only for itself, sorted.
    pub(super) own_only: Vec<u64>,
    pub(super) owned: OwnedTasks,
    pub(super) ready: Ready,
    pub(super) preparing: HashMap<TaskKey, Preparing>,
    pub(super) running: usize,
    /// Workers of the local pool waiting on a future (a task waiting for the tasks it
    /// submitted): each frees a slot, since it only helps with what the pool already has.
    pub(super) waiting: usize,
    /// Own ready tasks this peer does not run (it withholds them), as its last dispatch
    /// found them: counted twice in the load the policy sees, since the policy keeps a last
    /// task for its own worker and none would ever run it.
    pub(super) not_here: usize,
    /// Mean run time of the tasks run here, once one has run.
    pub(super) mean_run: Option<Duration>,
    /// Tasks running here, with how many copies.
    pub(super) running_keys: HashMap<TaskKey, u32>,
    /// When owned tasks at other peers are next checked on ([`Tasks::audit`]).
    pub(super) audit_due: Option<Instant>,
    pub(super) store: HashMap<TaskKey, Bytes>,
    /// Large values of the submitter's own kept in the store so far.
    pub(super) local_values: u64,
    /// The key of each such value still kept, by its future's id.
    pub(super) local_value_of: HashMap<u64, TaskKey>,
    /// Inputs fetched from other peers.
    pub(super) cache: InputCache,
    /// Inputs being fetched, with the tasks waiting for each.
    pub(super) fetching: HashMap<TaskKey, Vec<TaskKey>>,
    /// Notices about our tasks from peers not (yet) known to have them, kept until a move
    /// notice says they do: a move and the notices of the peer it went to can cross.
    pub(super) early: Early,
    /// Notices waiting for each peer.
    pub(super) notices: HashMap<u64, Notices>,
    pub(super) recoveries: Vec<Recovery>,
    /// Leaving the swarm: no more stealing; queued tasks of others go back to them.
    pub(super) draining: bool,
    /// What it did, for [`Stats`].
    pub(super) stats: Stats,
    effects: VecDeque<Effect>,
}

impl Tasks {
    /// The tasks of peer `me`, which runs the named tasks `can_run` (sorted).
    pub(super) fn new(me: u64, can_run: Vec<u64>, settings: Settings) -> Tasks {
        Tasks {
            me,
            settings,
            can_run,
            own_only: Vec::new(),
            owned: OwnedTasks::default(),
            ready: Ready::default(),
            preparing: HashMap::new(),
            running: 0,
            waiting: 0,
            not_here: 0,
            mean_run: None,
            running_keys: HashMap::new(),
            audit_due: None,
            store: HashMap::new(),
            local_values: 0,
            local_value_of: HashMap::new(),
            cache: InputCache::inputs(),
            fetching: HashMap::new(),
            early: Early::default(),
            notices: HashMap::new(),
            recoveries: Vec::new(),
            draining: false,
            stats: Stats::default(),
            effects: VecDeque::new(),
        }
    }

    /// The next thing to do, if any.
    pub(super) fn poll_output(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`handle_timeout`](Tasks::handle_timeout) is next due: the audit, or notices
    /// held for company or to send again (they go in the step that follows).
    pub(super) fn poll_timeout(&self, members: &Membership) -> Option<Instant> {
        [self.notices_due(members), self.audit_due]
            .into_iter()
            .flatten()
            .min()
    }

    /// Ends what timed out: the audit, if due (`in_flight`: the requests out, whose notices
    /// count as held).
    pub(super) fn handle_timeout<'a>(
        &mut self,
        members: &Membership,
        in_flight: impl Iterator<Item = &'a Pending>,
        now: Instant,
    ) {
        if self.audit_due.is_some_and(|due| due <= now) {
            self.audit(members, in_flight, now);
        }
    }

    /// Whether this peer runs `spec` here.
    pub(super) fn runs(&self, spec: &TaskSpec) -> bool {
        self.can_run.binary_search(&spec.fingerprint).is_ok()
            || (spec.key.owner == self.me && self.own_only.binary_search(&spec.fingerprint).is_ok())
    }

    pub(super) fn send(&mut self, to: u64, pending: Pending, request: Request) {
        (self.effects).push_back(Effect::Send {
            to,
            pending,
            request,
        });
    }

    pub(super) fn output(&mut self, output: Output) {
        self.effects.push_back(Effect::Output(output));
    }

    pub(super) fn gossip(&mut self, event: GraphEvent) {
        self.effects.push_back(Effect::Gossip(event));
    }

    pub(super) fn load_changed(&mut self) {
        self.effects.push_back(Effect::Load);
    }
}
