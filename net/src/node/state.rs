//! The records a [`Node`](super::Node) keeps per task and per request.

use std::sync::Arc;

use peer_steal::policy::RequestId;

use super::Bytes;
use crate::wire::{ArgSpec, Failure, TaskKey, TaskSpec};

/// Where a task this peer owns stands.
#[derive(Debug)]
pub(super) enum State {
    /// Some inputs are not done yet (or it is about to run again).
    Waiting,
    /// Queued or running at `at`: this peer, or the last peer it was handed to.
    Ready {
        /// Where it is, as far as the owner knows.
        at: u64,
    },
    /// Finished; its result is at `holder` (and here too when small).
    Done {
        /// The peer that ran it and keeps the result.
        holder: u64,
        /// The result, when small enough to travel inline.
        inline: Option<Bytes>,
    },
    /// Finished and its result freed; kept while dependents might have to run again, since
    /// this task would then have to run again first.
    Released,
    /// Failed, for this reason.
    Failed(Failure),
}

/// One argument of an owned task that is not ready yet.
#[derive(Debug)]
pub(super) enum PendingArg {
    /// Known.
    Ready(ArgSpec),
    /// The result of another owned task, not done yet.
    Dep(TaskKey),
    /// Comes from the submitter ([`Input::LocalArg`](super::Input::LocalArg)).
    Local,
}

/// A request of ours waiting for its answer.
#[derive(Debug)]
pub(super) enum Pending {
    /// A steal, as the policy numbered it; to the peer; sent then.
    Steal(RequestId, u64, std::time::Instant),
    /// Fetching input `dep` of tasks about to run here.
    Input {
        /// The input.
        dep: TaskKey,
        /// The holder asked.
        peer: u64,
    },
    /// Fetching the result of an owned task to resolve its future; from the peer.
    Resolve(TaskKey, u64),
    /// A batch of notices, kept to send again if it is not taken; to the peer.
    Notify(u64, NoticeBatch),
    /// A lifeline registration; to the peer.
    OneWay(u64),
    /// Tasks pushed to a peer that registered a lifeline with us, kept until it takes them.
    Push(u64, Vec<TaskSpec>),
    /// Asking a peer for a published value, for lookup `waiter`.
    Lookup(u64, u64),
    /// Asking a peer which of these tasks of ours it does not hold; sent then.
    Audit(u64, Vec<TaskKey>, std::time::Instant),
    /// An operation on a named primitive, call number `.1`, sent to the peer taken for home.
    Prim(u64, u64),
    /// Changes of a hosted key sent to its backup.
    Replicate(super::prims::Replication),
    /// Asking a peer for the state of a key we became the home of.
    Claim(u64, String),
    /// Asking a peer for its report, for gathering `.0`.
    Report(u64, u64),
}

impl Pending {
    /// The peer the request went to.
    pub(super) fn peer(&self) -> u64 {
        match self {
            Pending::Steal(_, peer, _)
            | Pending::Resolve(_, peer)
            | Pending::Notify(peer, _)
            | Pending::OneWay(peer)
            | Pending::Lookup(_, peer)
            | Pending::Audit(peer, ..)
            | Pending::Push(peer, _)
            | Pending::Prim(peer, _)
            | Pending::Claim(peer, _) => *peer,
            Pending::Replicate(sent) => sent.backup,
            Pending::Report(_, peer) => *peer,
            Pending::Input { peer, .. } => *peer,
        }
    }
}

/// A task about to run here, waiting for inputs fetched from their holders.
#[derive(Debug)]
pub(super) struct Preparing {
    pub(super) spec: Option<TaskSpec>,
    pub(super) args: Vec<Option<Bytes>>,
    pub(super) missing: usize,
    pub(super) lost: Option<Failure>,
}

impl Preparing {
    pub(super) fn new(args: usize) -> Preparing {
        Preparing {
            spec: None,
            args: vec![None; args],
            missing: 0,
            lost: None,
        }
    }

    /// Puts a fetched input into every argument that refers to it.
    pub(super) fn fill(&mut self, dep: TaskKey, bytes: Bytes) {
        let Some(spec) = &self.spec else { return };
        for (slot, arg) in self.args.iter_mut().zip(spec.args.iter()) {
            if matches!(arg, ArgSpec::Fetch { task, .. } if *task == dep) {
                *slot = Some(bytes.clone());
            }
        }
    }

    /// The spec and arguments to run, or why an input is lost.
    pub(super) fn into_run(self) -> Result<(TaskSpec, Vec<Bytes>), Failure> {
        if let Some(lost) = self.lost {
            return Err(lost);
        }
        let Some(spec) = self.spec else {
            return Err(Failure::InputLost(
                "a task being prepared has no spec".into(),
            ));
        };
        let args: Option<Vec<Bytes>> = self.args.into_iter().collect();
        match args {
            Some(args) => Ok((spec, args)),
            None => Err(Failure::InputLost(format!(
                "task {} is missing an input",
                spec.key
            ))),
        }
    }
}

impl Failure {
    /// The failure of a task whose input `dep` failed with `cause`; keeps the first cause so
    /// long chains stay shallow.
    pub(crate) fn input(dep: TaskKey, cause: &Failure) -> Failure {
        match cause {
            Failure::Input { .. } => cause.clone(),
            other => Failure::Input {
                task: dep,
                cause: Box::new(other.clone()),
            },
        }
    }
}

/// Shared bytes of an inline result.
pub(super) fn shared(bytes: Vec<u8>) -> Bytes {
    Arc::new(bytes)
}

/// Notices waiting to go to one peer: sent as one request, one request in flight at a time,
/// so a busy peer's notices batch themselves. A batch that is not taken comes back here and
/// goes again later: they are how owners learn of finished work, so none is dropped.
#[derive(Debug, Default)]
pub(super) struct Notices {
    pub(super) batch: NoticeBatch,
    pub(super) in_flight: bool,
    /// Held until then after a failed send (or until the peer is up again).
    pub(super) retry_at: Option<std::time::Instant>,
    /// A batch of releases alone waits until then for more (see `flush_notices`).
    pub(super) hold_until: Option<std::time::Instant>,
}

/// Releases that fill a batch of notices on their own.
const RELEASE_BATCH: usize = 512;

/// The notices of one `Notify` request.
#[derive(Debug, Default)]
pub(super) struct NoticeBatch {
    pub(super) done: Vec<(TaskKey, crate::wire::Done)>,
    pub(super) release: Vec<TaskKey>,
    pub(super) moved: Vec<crate::wire::Moved>,
}

impl NoticeBatch {
    /// Whether only releases wait, fewer than a batch is worth.
    pub(super) fn only_a_few_releases(&self) -> bool {
        self.done.is_empty() && self.moved.is_empty() && self.release.len() < RELEASE_BATCH
    }

    /// Whether any notice waits.
    pub(super) fn has_any(&self) -> bool {
        !(self.done.is_empty() && self.release.is_empty() && self.moved.is_empty())
    }

    /// The oldest notices, up to `most` of each kind, leaving the rest here: one request
    /// never holds more than a receiver decodes.
    pub(super) fn take_first(&mut self, most: usize) -> NoticeBatch {
        let mut first = std::mem::take(self);
        self.done = first.done.split_off(first.done.len().min(most));
        self.release = first.release.split_off(first.release.len().min(most));
        self.moved = first.moved.split_off(first.moved.len().min(most));
        first
    }

    /// Puts an unsent batch back in front of the newer notices.
    pub(super) fn put_back(&mut self, mut older: NoticeBatch) {
        older.done.append(&mut self.done);
        older.release.append(&mut self.release);
        older.moved.append(&mut self.moved);
        *self = older;
    }
}
