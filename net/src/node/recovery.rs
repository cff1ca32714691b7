//! What the [`Tasks`] machine does when a peer is suspected and when it is back.
//!
//! A suspected peer is treated as dead for the work on it: every request to it fails at
//! once, and the tasks this peer owns that were queued or running there, or whose only
//! result was there and is still needed, run again from their specs (lineage). An input
//! whose result is gone runs again first, recursively; that is why the owner keeps the spec
//! of a task while a tracked dependent fetched its result. Whatever the suspect finishes
//! after all reaches the owner when it is back, and a result computed twice is kept once.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::Recovery;
use super::dispatch::FORGET_AFTER;
use super::state::{Pending, PendingArg, State};
use super::tasks::Tasks;
use crate::membership::Membership;
use crate::wire::{ArgSpec, Failure, TaskKey};

/// How long an owned task may sit at another peer with no news before the owner asks
/// whether that peer still holds it.
const AUDIT_AGE: std::time::Duration = std::time::Duration::from_secs(2);
/// Most tasks asked about in one audit request.
const AUDIT_MAX: usize = 4096;

/// Suspicions remembered for `peer status`, the newest.
const MAX_RECOVERIES: usize = 1024;

/// Most times one task runs again after losses before it fails with `InputLost`: a task
/// that keeps losing its inputs points at a fault that re-running does not mend.
const MAX_RERUNS: u32 = 8;

impl Tasks {
    /// A peer speaks to us (again, if `back`): notices held for it go now.
    pub(super) fn peer_up(&mut self, peer: u64, back: bool, now: Instant) {
        if back {
            // Back from a suspicion: what it was given meanwhile may not have arrived.
            self.audit_due = Some(now);
        }
        if let Some(notices) = self.notices.get_mut(&peer) {
            notices.retry_at = None;
        }
    }

    /// A peer is suspected: the tasks we own that it had (queued, running, or the only
    /// copy of a result still needed) run again, and the suspicion is remembered.
    pub(super) fn peer_down(
        &mut self,
        members: &Membership,
        peer: u64,
        reason: String,
        now: Instant,
    ) {
        // Most suspects had none: no walk then.
        let lost: Vec<TaskKey> = if self.owned.at(peer) == 0 {
            Vec::new()
        } else {
            (self.owned.iter())
                .filter(|(_, o)| o.lost_with(peer))
                .map(|(key, _)| *key)
                .collect()
        };
        let requeued = lost.len();
        self.stats.suspicions += 1;
        tracing::info!(peer = %format_args!("{peer:016x}"), %reason, "peer suspected");
        self.requeue_lost(members, lost, peer, now);
        if self.recoveries.len() >= MAX_RECOVERIES {
            self.recoveries.remove(0);
        }
        self.recoveries.push(Recovery {
            peer,
            at: now,
            reason,
            requeued,
        });
    }

    /// The peers holding tasks of ours queued or running, or the only copy of a result of
    /// ours.
    pub(super) fn business(&self) -> HashSet<u64> {
        self.owned.peers().collect()
    }

    /// Asks each peer holding tasks of ours that we have not heard of for [`AUDIT_AGE`]
    /// whether it still does: a task can be lost without any peer failing to answer (a steal
    /// answer that never arrived, a move heard of after its peer came back), and a task
    /// nobody holds would keep its future waiting forever. Tasks recorded here are checked
    /// here. Runs again while such tasks exist, so an idle swarm stays silent.
    pub(super) fn audit<'a>(
        &mut self,
        members: &Membership,
        in_flight: impl Iterator<Item = &'a Pending>,
        now: Instant,
    ) {
        self.audit_due = None;
        let mut asks: HashMap<u64, Vec<(Instant, TaskKey)>> = HashMap::new();
        let mut pending = false;
        for (key, owned) in self.owned.iter() {
            let State::Ready { at } = *owned.state() else {
                continue;
            };
            let Some(since) = owned.since else { continue };
            pending |= at != self.me;
            if now.saturating_duration_since(since) >= AUDIT_AGE {
                asks.entry(at).or_default().push((since, *key));
            }
        }
        if let Some(mine) = asks.remove(&self.me) {
            let held = self.held_keys(in_flight);
            let lost: Vec<TaskKey> = mine
                .into_iter()
                .map(|(_, key)| key)
                .filter(|key| !held.contains(key))
                .collect();
            self.requeue_lost(members, lost, self.me, now);
        }
        let mut asks: Vec<(u64, Vec<(Instant, TaskKey)>)> = asks.into_iter().collect();
        asks.sort_unstable_by_key(|(peer, _)| *peer);
        for (peer, mut tasks) in asks {
            // The longest silent first, if there are more than one request takes.
            tasks.sort_unstable();
            tasks.truncate(AUDIT_MAX);
            let tasks: Vec<TaskKey> = tasks.into_iter().map(|(_, key)| key).collect();
            let request = crate::wire::Request::Holding {
                tasks: tasks.clone(),
            };
            self.send(peer, Pending::Audit(peer, tasks, now), request);
        }
        if pending {
            self.audit_due = Some(now + AUDIT_AGE);
        }
    }

    /// Owned tasks lost with `peer` (or held nowhere though recorded there): counted and run
    /// again.
    fn requeue_lost(&mut self, members: &Membership, lost: Vec<TaskKey>, peer: u64, now: Instant) {
        if !lost.is_empty() {
            tracing::info!(peer = %format_args!("{peer:016x}"), lost = lost.len(), "tasks lost; running them again");
        }
        self.stats.requeued += lost.len() as u64;
        for task in lost {
            self.rerun(members, task, now);
        }
    }

    /// Arms the audit if it is not armed.
    pub(super) fn arm_audit(&mut self, now: Instant) {
        self.audit_due.get_or_insert(now + AUDIT_AGE);
    }

    /// `peer` answered an audit sent at `asked` about `tasks`: `missing` (all of them when
    /// it did not answer) are not held there. Those still recorded there and not moved
    /// since run again; the others it holds, so they are news.
    pub(super) fn audited(
        &mut self,
        members: &Membership,
        peer: u64,
        tasks: Vec<TaskKey>,
        missing: Option<Vec<TaskKey>>,
        asked: Instant,
        now: Instant,
    ) {
        let missing: HashSet<TaskKey> = match missing {
            Some(missing) => missing.into_iter().collect(),
            None => tasks.iter().copied().collect(),
        };
        let mut lost = Vec::new();
        for task in tasks {
            let Some(owned) = self.owned.get_mut(&task) else {
                continue;
            };
            let still_there = matches!(owned.state(), State::Ready { at } if *at == peer)
                && owned.since.is_some_and(|since| since <= asked);
            if !still_there {
                continue;
            }
            if missing.contains(&task) {
                lost.push(task);
            } else {
                owned.since = Some(now);
            }
        }
        self.requeue_lost(members, lost, peer, now);
    }

    /// The tasks this peer holds: queued, being prepared or run, or finished with the notice
    /// to their owner not yet taken.
    /// `in_flight`: the requests out, whose notices in flight count.
    pub(super) fn held_keys<'a>(
        &self,
        in_flight: impl Iterator<Item = &'a Pending>,
    ) -> HashSet<TaskKey> {
        let mut held = HashSet::new();
        self.ready.held(&mut held);
        held.extend(self.preparing.keys());
        held.extend(self.running_keys.keys());
        for notices in self.notices.values() {
            held.extend(notices.batch.done.iter().map(|(t, _)| *t));
        }
        for pending in in_flight {
            if let Pending::Notify(_, batch) = pending {
                held.extend(batch.done.iter().map(|(t, _)| *t));
            }
        }
        held
    }

    /// The owner hears that one of its tasks went to `to` on hop `hops`.
    /// Whether or not it is the newest move, `to` has had the task: its notices count.
    pub(super) fn moved(
        &mut self,
        members: &Membership,
        task: TaskKey,
        to: u64,
        hops: u32,
        now: Instant,
    ) {
        self.relocate(members, task, to, hops, now);
        self.add_custody(members, task, to, now);
    }

    fn relocate(&mut self, members: &Membership, task: TaskKey, to: u64, hops: u32, now: Instant) {
        let Some(owned) = self.owned.get_mut(&task) else {
            return;
        };
        if !matches!(owned.state(), State::Ready { .. }) {
            return;
        }
        if hops <= owned.hops {
            return; // an older move, heard late
        }
        owned.hops = hops;
        owned.since = Some(now);
        self.owned.set_state(&task, State::Ready { at: to });
        if to != self.me {
            self.arm_audit(now);
        }
        if members.is_down(to) {
            self.requeue_lost(members, vec![task], to, now);
        }
    }

    /// Whether `task` may run again after a loss.
    pub(super) fn may_rerun(&self, task: TaskKey) -> bool {
        self.owned
            .get(&task)
            .is_some_and(|o| o.spec.is_some() && o.reruns < MAX_RERUNS)
    }

    /// Forgets what is kept for `peer`, suspected long ago: notices to it, results of its
    /// tasks, its tasks still queued here.
    pub(super) fn forget(&mut self, peer: u64) {
        self.notices.remove(&peer);
        self.store.retain(|task, _| task.owner != peer);
        let before = self.ready.len();
        self.ready.retain(|spec| spec.key.owner != peer);
        tracing::info!(
            peer = %format_args!("{peer:016x}"),
            dropped = before - self.ready.len(),
            "forgetting a peer suspected for {FORGET_AFTER:?}"
        );
    }

    /// Whether the owner records `task`'s result as held (only) at `holder`.
    pub(super) fn held_at(&self, task: TaskKey, holder: u64) -> bool {
        self.owned.get(&task).is_some_and(
            |o| matches!(o.state(), State::Done { holder: h, inline: None } if *h == holder),
        )
    }

    /// Runs an owned task again from its spec. Inputs done and held by live peers are
    /// fetched as before; inputs whose results are gone run again first.
    pub(super) fn rerun(&mut self, members: &Membership, task: TaskKey, now: Instant) {
        if !self.mark_for_rerun(members, task) {
            return;
        }
        let mut marked = vec![task];
        while let Some(task) = marked.pop() {
            self.queue_again(members, task, &mut marked, now);
        }
    }

    /// Sets a task back to waiting, freeing a result that may still be held somewhere;
    /// false when it cannot or need not run again.
    fn mark_for_rerun(&mut self, members: &Membership, task: TaskKey) -> bool {
        let me = self.me;
        let Some(owned) = self.owned.get_mut(&task) else {
            return false;
        };
        if owned.spec.is_none() || matches!(owned.state(), State::Waiting | State::Failed(_)) {
            return false;
        }
        if owned.reruns >= MAX_RERUNS {
            // Whatever state it is in, it fails now, and every dependent with it.
            let failure = Failure::InputLost(format!("{task} was lost {MAX_RERUNS} times"));
            self.owned.set_state(&task, State::Waiting);
            self.fail_owned(task, failure);
            return false;
        }
        owned.reruns += 1;
        let old = self.owned.set_state(&task, State::Waiting);
        self.stats.reruns += 1;
        if let Some(State::Done {
            holder,
            inline: None,
        }) = old
        {
            if holder == me {
                self.store.remove(&task);
            } else if !members.is_down(holder) {
                // Computed again: the old copy is not needed.
                self.release_at(holder, task);
            }
        }
        true
    }

    /// Gives a marked task its arguments from its spec and queues it when all are known;
    /// marks lost inputs too, onto `marked`.
    fn queue_again(
        &mut self,
        members: &Membership,
        task: TaskKey,
        marked: &mut Vec<TaskKey>,
        now: Instant,
    ) {
        let Some(owned) = self.owned.get_mut(&task) else {
            return;
        };
        let Some(spec) = owned.spec.clone() else {
            return;
        };
        // Inputs it was counted as reading; counted again below where still fetched.
        let old_inputs = std::mem::take(&mut owned.inputs);
        for input in &old_inputs {
            if let Some(o) = self.owned.get_mut(input) {
                o.readers = o.readers.saturating_sub(1);
            }
        }
        let mut args = Vec::with_capacity(spec.args.len());
        let mut inputs = Vec::new();
        let mut failed = None;
        for arg in spec.args.iter().cloned() {
            let ArgSpec::Fetch { task: dep, .. } = arg else {
                args.push(PendingArg::Ready(arg));
                continue;
            };
            let held_here = self.store.contains_key(&dep);
            let Some(input) = self.owned.get_mut(&dep) else {
                failed.get_or_insert(Failure::InputLost(format!("input {dep} is forgotten")));
                args.push(PendingArg::Local);
                continue;
            };
            let arg = match &input.state() {
                State::Failed(cause) => {
                    failed.get_or_insert(Failure::input(dep, cause));
                    PendingArg::Local
                }
                State::Done {
                    inline: Some(bytes),
                    ..
                } => PendingArg::Ready(ArgSpec::Inline(bytes.to_vec())),
                State::Done {
                    holder,
                    inline: None,
                } if !members.is_down(*holder) && (*holder != self.me || held_here) => {
                    let holder = *holder;
                    input.readers += 1;
                    inputs.push(dep);
                    PendingArg::Ready(ArgSpec::Fetch { task: dep, holder })
                }
                State::Waiting | State::Ready { .. } => {
                    input.dependents.push(task);
                    PendingArg::Dep(dep)
                }
                // A value of the submitter's own, freed: nothing can make it again.
                State::Done { .. } | State::Released if input.spec.is_none() => {
                    failed.get_or_insert(Failure::InputLost(format!(
                        "input {dep}, a value of its submitter's own, was freed"
                    )));
                    PendingArg::Local
                }
                State::Done { .. } | State::Released => {
                    input.dependents.push(task);
                    if self.mark_for_rerun(members, dep) {
                        marked.push(dep);
                    }
                    PendingArg::Dep(dep)
                }
            };
            args.push(arg);
        }
        if let Some(owned) = self.owned.get_mut(&task) {
            owned.args = args;
            owned.inputs = inputs;
        }
        for input in old_inputs {
            self.maybe_release(input);
        }
        match failed {
            Some(failure) => self.fail_owned(task, failure),
            None => self.maybe_ready(task, now),
        }
    }
}
