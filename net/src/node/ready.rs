//! The ready deque: tasks ready to run here or to give away, oldest at the front. This peer
//! runs from the back (newest first) and thieves take from the front (oldest first); each
//! end costs O(1). It also counts the tasks of each kind, so that the share a thief may take
//! (those it can run) is counted from the kinds, not by walking a deque of thousands on
//! every steal.

use std::collections::{HashMap, VecDeque};

use crate::wire::TaskSpec;

/// See the [module docs](self).
#[derive(Debug, Default)]
pub(super) struct Ready {
    specs: VecDeque<TaskSpec>,
    /// Tasks of each fingerprint in `specs`; no zero entries.
    kinds: HashMap<u64, usize>,
}

impl Ready {
    pub(super) fn len(&self) -> usize {
        self.specs.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &TaskSpec> {
        self.specs.iter()
    }

    /// How many of the tasks a peer that runs the kinds `can_run` (sorted) could run.
    pub(super) fn runnable_by(&self, can_run: &[u64]) -> usize {
        (self.kinds.iter())
            .filter(|(kind, _)| can_run.binary_search(kind).is_ok())
            .map(|(_, n)| n)
            .sum()
    }

    /// Queues a task as the newest.
    pub(super) fn push_back(&mut self, spec: TaskSpec) {
        self.count(&spec);
        self.specs.push_back(spec);
    }

    /// Queues a task as the oldest.
    pub(super) fn push_front(&mut self, spec: TaskSpec) {
        self.count(&spec);
        self.specs.push_front(spec);
    }

    /// Queues tasks as the newest, in order.
    pub(super) fn extend(&mut self, specs: impl IntoIterator<Item = TaskSpec>) {
        for spec in specs {
            self.push_back(spec);
        }
    }

    /// The newest task.
    pub(super) fn pop_back(&mut self) -> Option<TaskSpec> {
        let spec = self.specs.pop_back()?;
        self.uncount(&spec);
        Some(spec)
    }

    /// The oldest task.
    pub(super) fn pop_front(&mut self) -> Option<TaskSpec> {
        let spec = self.specs.pop_front()?;
        self.uncount(&spec);
        Some(spec)
    }

    /// Keeps only the tasks for which `keep` holds.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&TaskSpec) -> bool) {
        let kinds = &mut self.kinds;
        self.specs.retain(|spec| {
            let kept = keep(spec);
            if !kept {
                uncount(kinds, spec);
            }
            kept
        });
    }

    /// Takes every task out, oldest first.
    pub(super) fn take_all(&mut self) -> VecDeque<TaskSpec> {
        self.kinds.clear();
        std::mem::take(&mut self.specs)
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
        }
    }

    /// The counts always match a walk of the deque.
    fn check(ready: &Ready) {
        for can_run in [&[][..], &[1], &[2], &[1, 2], &[1, 2, 3]] {
            let walked = ready
                .iter()
                .filter(|s| can_run.binary_search(&s.fingerprint).is_ok())
                .count();
            assert_eq!(ready.runnable_by(can_run), walked, "{can_run:?}");
        }
    }

    #[test]
    fn the_counts_follow_every_change() {
        let mut ready = Ready::default();
        ready.extend([spec(1, 1), spec(2, 2), spec(3, 1)]);
        ready.push_front(spec(0, 3));
        check(&ready);
        assert_eq!(ready.pop_front().map(|s| s.key.seq), Some(0));
        assert_eq!(ready.pop_back().map(|s| s.key.seq), Some(3));
        check(&ready);
        ready.push_back(spec(4, 2));
        ready.retain(|s| s.fingerprint != 2);
        check(&ready);
        assert_eq!(ready.iter().map(|s| s.key.seq).collect::<Vec<_>>(), vec![1]);
        assert_eq!(ready.take_all().len(), 1);
        assert!(ready.is_empty());
        check(&ready);
    }
}
