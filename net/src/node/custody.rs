//! Who may speak for a task this peer owns.
//!
//! An owner takes news of its task (finished, failed, handed on) only from a peer it knows
//! has had the task: one the owner gave it to, or one that such a peer said it handed the
//! task on to. Those peers are the task's *custody*. A move notice and the notices of the
//! peer the task went to travel on different connections and can cross, so a notice from
//! a peer not (yet) in custody is kept, a bounded number of them, oldest dropped first,
//! until a move names that peer. A forged notice is never named and ages out. Dropping a
//! real one costs at most a run again: the owner's audit finds the task missing.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::state::State;
use super::tasks::Tasks;
use crate::membership::Membership;
use crate::wire::{Done, TaskKey};

/// Peers kept in one task's custody: a task handed on more often than this forgets its
/// earliest holders, whose late notices then wait like a stranger's.
const MAX_CUSTODY: usize = 16;
/// Notices kept from peers not yet known to hold their task, all tasks together.
const MAX_EARLY: usize = 4096;

/// A notice about an owned task, kept until its sender is known to hold the task.
#[derive(Debug)]
pub(super) enum Notice {
    /// The task finished there.
    Done(Done),
    /// The task was handed on to `to` on hop `hops`.
    Moved {
        /// The peer that has it now.
        to: u64,
        /// Its hop count there.
        hops: u32,
    },
}

/// Notices waiting for their sender to be named in a task's custody.
#[derive(Debug, Default)]
pub(super) struct Early {
    by_task: HashMap<TaskKey, Vec<(u64, Notice)>>,
    /// One entry per notice kept, oldest first (some may have been taken already).
    order: VecDeque<TaskKey>,
    count: usize,
}

impl Early {
    fn park(&mut self, task: TaskKey, from: u64, notice: Notice) {
        self.by_task.entry(task).or_default().push((from, notice));
        self.order.push_back(task);
        self.count += 1;
        while self.count > MAX_EARLY {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(waiting) = self.by_task.get_mut(&oldest) {
                waiting.remove(0);
                self.count -= 1;
                if waiting.is_empty() {
                    self.by_task.remove(&oldest);
                }
            }
        }
    }

    /// The notices about `task` from `from`, oldest first.
    fn take(&mut self, task: TaskKey, from: u64) -> Vec<Notice> {
        let Some(waiting) = self.by_task.get_mut(&task) else {
            return Vec::new();
        };
        let (taken, kept): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|(f, _)| *f == from);
        self.count -= taken.len();
        if kept.is_empty() {
            self.by_task.remove(&task);
        } else {
            *waiting = kept;
        }
        if self.order.len() > 2 * self.count + 16 {
            let by_task = &self.by_task;
            self.order.retain(|t| by_task.contains_key(t));
        }
        taken.into_iter().map(|(_, n)| n).collect()
    }

    /// How many notices wait.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.count
    }
}

impl Tasks {
    /// Whether `peer` is this peer or has had owned `task`.
    pub(super) fn in_custody(&self, task: TaskKey, peer: u64) -> bool {
        peer == self.me
            || self
                .owned
                .get(&task)
                .is_some_and(|o| o.custody.contains(&peer))
    }

    /// Records that owned `task` went to `peer`, and takes the notices it sent early.
    pub(super) fn add_custody(
        &mut self,
        members: &Membership,
        task: TaskKey,
        peer: u64,
        now: Instant,
    ) {
        if peer == self.me {
            return;
        }
        let Some(owned) = self.owned.get_mut(&task) else {
            return;
        };
        if !owned.custody.contains(&peer) {
            if owned.custody.len() == MAX_CUSTODY {
                owned.custody.remove(0);
            }
            owned.custody.push(peer);
        }
        for notice in self.early.take(task, peer) {
            self.owned_notice(members, task, peer, notice, now);
        }
    }

    /// A notice from `from` about a task this peer owns: taken from a peer in its custody,
    /// kept for later from another while the task is unfinished, dropped otherwise.
    pub(super) fn owned_notice(
        &mut self,
        members: &Membership,
        task: TaskKey,
        from: u64,
        notice: Notice,
        now: Instant,
    ) {
        if self.in_custody(task, from) {
            match notice {
                Notice::Done(done) => self.done(members, task, from, done, now),
                Notice::Moved { to, hops } => self.moved(members, task, to, hops, now),
            }
            return;
        }
        let unfinished = self
            .owned
            .get(&task)
            .is_some_and(|o| matches!(o.state(), State::Waiting | State::Ready { .. }));
        if unfinished {
            self.early.park(task, from, notice);
        } else {
            tracing::debug!(%task, from = %format_args!("{from:016x}"), "a notice from a peer that never had the task dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seq: u64) -> TaskKey {
        TaskKey { owner: 1, seq }
    }

    fn moved(to: u64) -> Notice {
        Notice::Moved { to, hops: 1 }
    }

    #[test]
    fn notices_wait_per_task_and_sender_and_the_oldest_go_first() {
        let mut early = Early::default();
        early.park(key(1), 7, moved(8));
        early.park(key(1), 9, moved(10));
        early.park(key(2), 7, moved(11));
        assert_eq!(early.len(), 3);
        let taken = early.take(key(1), 7);
        assert!(matches!(taken[..], [Notice::Moved { to: 8, .. }]));
        assert_eq!(early.len(), 2);
        assert!(early.take(key(1), 7).is_empty(), "taken once");
        for seq in 0..MAX_EARLY as u64 {
            early.park(key(100 + seq), 3, moved(4));
        }
        assert_eq!(early.len(), MAX_EARLY, "bounded");
        assert!(early.take(key(1), 9).is_empty(), "the oldest went first");
        assert_eq!(early.take(key(100 + MAX_EARLY as u64 - 1), 3).len(), 1);
    }
}
