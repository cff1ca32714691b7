//! The ready deque: tasks ready to run here or to give away, oldest at the front. This peer
//! runs from the back (newest first) and thieves take from the front (oldest first); each
//! end costs O(1). It also counts the tasks of each kind, so that the share a thief may take
//! (those it can run) is counted from the kinds, not by walking a deque of thousands on
//! every steal.
//!
//! The deque is shared: the node holds it, and so do the tasks that serve other peers'
//! links, which answer a steal from it at once instead of waiting for the event loop; they
//! tell the node afterwards what they gave ([`Input::Gave`](super::Input::Gave)), which
//! records the moves. Until then the tasks are still held here as far as audits and
//! draining are concerned ([`unrecorded`](Ready::unrecorded)). Every method takes the lock
//! for itself alone.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::wire::{TaskKey, TaskSpec};

/// See the [module docs](self); clones share one deque.
#[derive(Debug, Default, Clone)]
pub(crate) struct Ready(Arc<Mutex<Deque>>);

#[derive(Debug, Default)]
struct Deque {
    specs: VecDeque<TaskSpec>,
    /// Tasks of each fingerprint in `specs`; no zero entries.
    kinds: HashMap<u64, usize>,
    /// Given by a link's task, their moves not recorded by the node yet.
    unrecorded: HashSet<TaskKey>,
}

impl Ready {
    fn lock(&self) -> MutexGuard<'_, Deque> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().specs.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lock().specs.is_empty()
    }

    /// The keys of the tasks, oldest first.
    #[cfg(test)]
    pub(super) fn keys(&self) -> Vec<TaskKey> {
        self.lock().specs.iter().map(|s| s.key).collect()
    }

    /// Adds to `held` the tasks held here: those queued, and those a link's task gave whose
    /// moves the node has not recorded yet.
    pub(super) fn held(&self, held: &mut HashSet<TaskKey>) {
        let deque = self.lock();
        held.extend(deque.specs.iter().map(|s| s.key));
        held.extend(deque.unrecorded.iter().copied());
    }

    /// Whether `check` holds for every task.
    pub(super) fn all(&self, check: impl FnMut(&TaskSpec) -> bool) -> bool {
        self.lock().specs.iter().all(check)
    }

    /// How many of the tasks a peer that runs the kinds `can_run` (sorted) could run.
    #[cfg(test)]
    fn runnable_by(&self, can_run: &[u64]) -> usize {
        self.lock().runnable_by(can_run)
    }

    /// What a thief that runs the kinds `can_run` (sorted) and asks for at most `max` takes:
    /// half of what it could run, rounded up, the oldest first, each counted as one more hop.
    /// The cost is what is given and passed over, not the whole deque.
    pub(crate) fn give(&self, max: u32, can_run: &[u64]) -> Vec<TaskSpec> {
        self.lock().give(max, can_run)
    }

    /// As [`give`](Ready::give), for a link's task: the tasks count as held here until the
    /// node has [`recorded`](Ready::recorded) where they went.
    pub(crate) fn give_unrecorded(&self, max: u32, can_run: &[u64]) -> Vec<TaskSpec> {
        let mut deque = self.lock();
        let given = deque.give(max, can_run);
        deque.unrecorded.extend(given.iter().map(|s| s.key));
        given
    }

    /// The node recorded the moves of `given` (or took them back).
    pub(super) fn recorded(&self, given: &[TaskSpec]) {
        let mut deque = self.lock();
        for spec in given {
            deque.unrecorded.remove(&spec.key);
        }
    }

    /// Whether a link's task gave tasks whose moves the node has not recorded yet.
    pub(super) fn has_unrecorded(&self) -> bool {
        !self.lock().unrecorded.is_empty()
    }

    /// The `take` oldest tasks that a peer running the kinds `can_run` (sorted) can run,
    /// each counted as one more hop.
    pub(super) fn take_oldest(&self, take: usize, can_run: &[u64]) -> Vec<TaskSpec> {
        self.lock().take_oldest(take, can_run)
    }

    /// Queues a task as the newest.
    pub(super) fn push_back(&mut self, spec: TaskSpec) {
        self.lock().push_back(spec);
    }

    /// Queues tasks as the newest, in order.
    pub(super) fn extend(&mut self, specs: impl IntoIterator<Item = TaskSpec>) {
        let mut deque = self.lock();
        for spec in specs {
            deque.push_back(spec);
        }
    }

    /// The newest task.
    pub(super) fn pop_back(&mut self) -> Option<TaskSpec> {
        self.lock().pop_back()
    }

    /// Keeps only the tasks for which `keep` holds.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&TaskSpec) -> bool) {
        let deque = &mut *self.lock();
        let kinds = &mut deque.kinds;
        deque.specs.retain(|spec| {
            let kept = keep(spec);
            if !kept {
                uncount(kinds, spec);
            }
            kept
        });
    }

    /// Takes every task out, oldest first.
    pub(super) fn take_all(&mut self) -> VecDeque<TaskSpec> {
        let mut deque = self.lock();
        deque.kinds.clear();
        std::mem::take(&mut deque.specs)
    }
}

impl Deque {
    fn give(&mut self, max: u32, can_run: &[u64]) -> Vec<TaskSpec> {
        let take = self.runnable_by(can_run).div_ceil(2).min(max as usize);
        self.take_oldest(take, can_run)
    }

    fn take_oldest(&mut self, take: usize, can_run: &[u64]) -> Vec<TaskSpec> {
        let mut given = Vec::with_capacity(take.min(self.specs.len()));
        let mut passed_over = Vec::new();
        while given.len() < take {
            let Some(mut spec) = self.pop_front() else {
                break;
            };
            if can_run.binary_search(&spec.fingerprint).is_ok() {
                spec.hops = spec.hops.saturating_add(1);
                given.push(spec);
            } else {
                passed_over.push(spec);
            }
        }
        // Back in their order.
        for spec in passed_over.into_iter().rev() {
            self.push_front(spec);
        }
        given
    }

    fn runnable_by(&self, can_run: &[u64]) -> usize {
        (self.kinds.iter())
            .filter(|(kind, _)| can_run.binary_search(kind).is_ok())
            .map(|(_, n)| n)
            .sum()
    }

    fn push_back(&mut self, spec: TaskSpec) {
        self.count(&spec);
        self.specs.push_back(spec);
    }

    fn push_front(&mut self, spec: TaskSpec) {
        self.count(&spec);
        self.specs.push_front(spec);
    }

    fn pop_back(&mut self) -> Option<TaskSpec> {
        let spec = self.specs.pop_back()?;
        self.uncount(&spec);
        Some(spec)
    }

    fn pop_front(&mut self) -> Option<TaskSpec> {
        let spec = self.specs.pop_front()?;
        self.uncount(&spec);
        Some(spec)
    }

    fn count(&mut self, spec: &TaskSpec) {
        *self.kinds.entry(spec.fingerprint).or_default() += 1;
    }

    fn uncount(&mut self, spec: &TaskSpec) {
        uncount(&mut self.kinds, spec);
    }
}

fn uncount(kinds: &mut HashMap<u64, usize>, spec: &TaskSpec) {
    if let Some(n) = kinds.get_mut(&spec.fingerprint) {
        *n -= 1;
        if *n == 0 {
            kinds.remove(&spec.fingerprint);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::TaskKey;

    fn spec(seq: u64, fingerprint: u64) -> TaskSpec {
        TaskSpec {
            key: TaskKey { owner: 1, seq },
            name: "".into(),
            fingerprint,
            args: Vec::new().into(),
            hops: 0,
            calls: Default::default(),
        }
    }

    /// The counts always match a walk of the deque.
    fn check(ready: &Ready) {
        for can_run in [&[][..], &[1], &[2], &[1, 2], &[1, 2, 3]] {
            let walked = (ready.lock().specs.iter())
                .filter(|s| can_run.binary_search(&s.fingerprint).is_ok())
                .count();
            assert_eq!(ready.runnable_by(can_run), walked, "{can_run:?}");
        }
    }

    fn seqs(specs: &[TaskSpec]) -> Vec<u64> {
        specs.iter().map(|s| s.key.seq).collect()
    }

    #[test]
    fn the_counts_follow_every_change() {
        let mut ready = Ready::default();
        ready.extend([spec(0, 3), spec(1, 1), spec(2, 2), spec(3, 1)]);
        check(&ready);
        assert_eq!(ready.pop_back().map(|s| s.key.seq), Some(3));
        check(&ready);
        ready.push_back(spec(4, 2));
        ready.retain(|s| s.fingerprint != 2);
        check(&ready);
        assert_eq!(
            ready.keys().iter().map(|k| k.seq).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(ready.take_all().len(), 2);
        assert!(ready.is_empty());
        check(&ready);
    }

    #[test]
    fn a_thief_gets_half_of_what_it_can_run_oldest_first_the_rest_in_order() {
        let mut ready = Ready::default();
        ready.extend((0..7).map(|seq| spec(seq, if seq % 3 == 0 { 9 } else { 1 })));
        // Kind 1: 1, 2, 4, 5 (four); kind 9: 0, 3, 6.
        let given = ready.give(64, &[1]);
        assert_eq!(seqs(&given), vec![1, 2], "half of four, the oldest");
        assert!(given.iter().all(|s| s.hops == 1), "each one more hop");
        let left: Vec<u64> = ready.keys().iter().map(|k| k.seq).collect();
        assert_eq!(left, vec![0, 3, 4, 5, 6], "passed over, in order");
        check(&ready);
        assert_eq!(seqs(&ready.give(1, &[1, 9])), vec![0], "no more than asked");
        assert!(ready.give(64, &[2]).is_empty(), "nothing it can run");
        let shared = ready.clone();
        assert_eq!(shared.give(64, &[1, 9]).len(), 2, "clones share the deque");
        assert_eq!(ready.len(), 2);
        check(&ready);
    }

    #[test]
    fn what_a_link_gave_counts_as_held_until_the_node_records_it() {
        let mut ready = Ready::default();
        ready.extend((0..4).map(|seq| spec(seq, 1)));
        let given = ready.give_unrecorded(64, &[1]);
        assert_eq!(seqs(&given), vec![0, 1]);
        assert!(ready.has_unrecorded());
        let mut held = HashSet::new();
        ready.held(&mut held);
        let mut expected: HashSet<TaskKey> = ready.keys().into_iter().collect();
        expected.extend(given.iter().map(|s| s.key));
        assert_eq!(held, expected, "the queued and the given");
        ready.recorded(&given);
        assert!(!ready.has_unrecorded());
        assert!(
            ready.give(64, &[1]).len() == 1,
            "a node's give is recorded at once"
        );
        assert!(!ready.has_unrecorded());
    }
}
