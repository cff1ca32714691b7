//! Leaving the swarm gracefully: a draining peer stops asking for work, hands the queued
//! tasks of other owners back to them (as a lifeline push, recorded as a move so the owner
//! knows where they are), lets the tasks already running here finish, and waits until its
//! notices are taken. Tasks that arrive meanwhile (a steal answer in flight, a push) go
//! back too. What it leaves behind anyway is recovered like a crash's: from lineage.

use std::collections::BTreeMap;
use std::time::Instant;

use super::state::Pending;
use super::tasks::Tasks;
use crate::membership::Membership;
use crate::wire::{Request, TaskSpec};

impl Tasks {
    /// Whether a draining peer is done: nothing of others queued or running here, nothing
    /// being handed back, every notice taken by a peer that is up (one to a suspect, such as
    /// a client that came and went, would wait for a minute to be forgotten; its owner, if
    /// it comes back, finds the task by its audit).
    /// `pushing`: whether a push of tasks is still out.
    pub(super) fn drained(&self, members: &Membership, pushing: bool) -> bool {
        self.draining
            && self.ready.all(|s| s.key.owner == self.me)
            && !self.ready.has_unrecorded()
            && self.running == 0
            && self.preparing.is_empty()
            && !pushing
            && (self.notices.iter())
                .filter(|(peer, _)| !members.is_down(**peer))
                .all(|(_, n)| !n.in_flight && !n.batch.has_any())
    }

    /// Sends the queued tasks of other owners that are up back to them, and drops those of
    /// owners that are down.
    pub(super) fn give_back(&mut self, members: &Membership, now: Instant) {
        if !self.draining || self.ready.is_empty() {
            return;
        }
        let mut kept = Vec::new();
        let mut back: BTreeMap<u64, Vec<TaskSpec>> = BTreeMap::new();
        let before = self.ready.len();
        for spec in self.ready.take_all() {
            let owner = spec.key.owner;
            if owner != self.me && members.is_down(owner) {
                // Its owner is gone (an interrupted `peer map`): running it would only delay
                // this peer's leaving. Dropped as `forget_gone` drops it a minute later; an
                // owner that comes back runs it again from its lineage.
                continue;
            }
            if owner == self.me || !members.is_up(owner) {
                kept.push(spec);
            } else {
                back.entry(owner).or_default().push(spec);
            }
        }
        let dropped = before - kept.len() - back.values().map(Vec::len).sum::<usize>();
        if dropped > 0 {
            tracing::info!(
                dropped,
                "draining: dropped queued tasks of owners that are gone"
            );
        }
        self.ready.extend(kept);
        for (owner, mut tasks) in back {
            for spec in &mut tasks {
                spec.hops = spec.hops.saturating_add(1);
                self.record_move(members, spec.key, owner, spec.hops, now);
            }
            self.stats.given += tasks.len() as u64;
            self.stats.handed_back += tasks.len() as u64;
            let push = Request::Push {
                tasks: tasks.clone(),
            };
            // Kept until taken: queued here again (and sent again) if not.
            self.send(owner, Pending::Push(owner, tasks), push);
        }
    }
}
