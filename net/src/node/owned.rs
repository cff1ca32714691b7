//! The tasks this peer owns, counted by the peer each one depends on (where it is queued
//! or running, or the only copy of its result): kept as their states change, so who this
//! peer has business with, and whether a suspected peer had any of its tasks, is known
//! without a walk over every task it owns (a million, for a large map).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::Index;
use std::sync::Arc;

use super::state::{PendingArg, State};
use crate::wire::{ArgSpec, CallArgs, TaskKey, TaskSpec};

/// A task this peer owns.
#[derive(Debug)]
pub(super) struct Owned {
    pub(super) name: Arc<str>,
    pub(super) fingerprint: u64,
    /// Private: changed only through [`OwnedTasks::set_state`], which keeps the counts.
    state: State,
    /// Arguments, until the task is ready.
    pub(super) args: Vec<PendingArg>,
    /// Owned tasks waiting for this one.
    pub(super) dependents: Vec<TaskKey>,
    /// Inputs this task fetches from their holders: they are kept until it finishes.
    pub(super) inputs: Vec<TaskKey>,
    /// Unfinished dependents that will fetch this result from its holder.
    pub(super) readers: usize,
    /// Inputs whose `lineage` counts this task (those it fetched when first ready).
    pub(super) lineage_inputs: Vec<TaskKey>,
    /// Whether the future got its result.
    pub(super) resolved: bool,
    /// What was queued when it became ready: kept to run it again if its run or its result
    /// is lost.
    pub(super) spec: Option<TaskSpec>,
    /// The highest hop count heard of ([`TaskSpec::hops`]).
    pub(super) hops: u32,
    /// The calls of a batch ([`TaskSpec::calls`]); empty for one call.
    pub(super) calls: Arc<[CallArgs]>,
    /// Owned tasks that read this result by fetching it and are still tracked: while any
    /// is, this record is kept so that it can run again for them.
    pub(super) lineage: usize,
    /// How many times it was queued again after a loss.
    pub(super) reruns: u32,
    /// How many more times it runs again after a panic.
    pub(super) retries: u32,
    /// When its location last changed (for [`Node::audit`](super::Node)).
    pub(super) since: Option<std::time::Instant>,
    /// The peers known to have had it, whose notices about it count
    /// ([`custody`](super::custody)).
    pub(super) custody: Vec<u64>,
}

impl Owned {
    pub(super) fn new(name: Arc<str>, fingerprint: u64) -> Owned {
        Owned {
            name,
            fingerprint,
            state: State::Waiting,
            args: Vec::new(),
            dependents: Vec::new(),
            inputs: Vec::new(),
            readers: 0,
            lineage_inputs: Vec::new(),
            resolved: false,
            spec: None,
            hops: 0,
            calls: Arc::new([]),
            lineage: 0,
            reruns: 0,
            retries: 0,
            since: None,
            custody: Vec::new(),
        }
    }

    /// Where it stands.
    pub(super) fn state(&self) -> &State {
        &self.state
    }

    /// Whether its run or its result was only at `peer`.
    pub(super) fn lost_with(&self, peer: u64) -> bool {
        self.only_at() == Some(peer)
    }

    /// The peer its run or its only copy of its result is at, if any: losing that peer
    /// loses this task.
    pub(super) fn only_at(&self) -> Option<u64> {
        match self.state {
            State::Ready { at } => Some(at),
            State::Done {
                holder,
                inline: None,
            } => Some(holder),
            _ => None,
        }
    }

    /// The tasks whose results it fetches, by its spec.
    pub(super) fn fetched_inputs(&self) -> impl Iterator<Item = TaskKey> + '_ {
        self.spec
            .iter()
            .flat_map(|s| s.args.iter())
            .filter_map(|a| match a {
                ArgSpec::Fetch { task, .. } => Some(*task),
                ArgSpec::Inline(_) => None,
            })
    }

    /// Whether every argument is known.
    pub(super) fn has_all_args(&self) -> bool {
        self.args.iter().all(|a| matches!(a, PendingArg::Ready(_)))
    }
}

/// Owned tasks by key, and how many depend on each peer ([`Owned::only_at`]).
#[derive(Debug, Default)]
pub(super) struct OwnedTasks {
    tasks: HashMap<TaskKey, Owned>,
    at: HashMap<u64, usize>,
}

impl OwnedTasks {
    pub(super) fn get(&self, task: &TaskKey) -> Option<&Owned> {
        self.tasks.get(task)
    }

    /// The record of `task`; its state changes only by [`set_state`](Self::set_state).
    pub(super) fn get_mut(&mut self, task: &TaskKey) -> Option<&mut Owned> {
        self.tasks.get_mut(task)
    }

    /// Moves `task` to `state`: the one it had, if the task is known.
    pub(super) fn set_state(&mut self, task: &TaskKey, state: State) -> Option<State> {
        let owned = self.tasks.get_mut(task)?;
        let before = owned.only_at();
        let old = std::mem::replace(&mut owned.state, state);
        let after = owned.only_at();
        if after != before {
            sub(&mut self.at, before);
            add(&mut self.at, after);
        }
        Some(old)
    }

    pub(super) fn insert(&mut self, task: TaskKey, owned: Owned) {
        add(&mut self.at, owned.only_at());
        if let Some(old) = self.tasks.insert(task, owned) {
            sub(&mut self.at, old.only_at());
        }
    }

    pub(super) fn remove(&mut self, task: &TaskKey) -> Option<Owned> {
        let owned = self.tasks.remove(task)?;
        sub(&mut self.at, owned.only_at());
        Some(owned)
    }

    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&TaskKey, &Owned)> {
        self.tasks.iter()
    }

    #[cfg(test)]
    pub(super) fn values(&self) -> impl Iterator<Item = &Owned> {
        self.tasks.values()
    }

    /// The peers some owned task depends on.
    pub(super) fn peers(&self) -> impl Iterator<Item = u64> + '_ {
        self.at.keys().copied()
    }

    /// How many owned tasks depend on `peer`.
    pub(super) fn at(&self, peer: u64) -> usize {
        self.at.get(&peer).copied().unwrap_or(0)
    }
}

impl Index<&TaskKey> for OwnedTasks {
    type Output = Owned;

    fn index(&self, task: &TaskKey) -> &Owned {
        &self.tasks[task]
    }
}

fn add(at: &mut HashMap<u64, usize>, peer: Option<u64>) {
    if let Some(peer) = peer {
        *at.entry(peer).or_default() += 1;
    }
}

fn sub(at: &mut HashMap<u64, usize>, peer: Option<u64>) {
    if let Some(peer) = peer
        && let Entry::Occupied(mut count) = at.entry(peer)
    {
        *count.get_mut() -= 1;
        if *count.get() == 0 {
            count.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(seq: u64) -> TaskKey {
        TaskKey { owner: 1, seq }
    }

    /// The counts a walk over every record gives.
    fn walked(owned: &OwnedTasks) -> HashMap<u64, usize> {
        let mut at = HashMap::new();
        for o in owned.values() {
            add(&mut at, o.only_at());
        }
        at
    }

    fn state(code: u8) -> State {
        match code % 6 {
            0 => State::Waiting,
            1 => State::Ready { at: 10 },
            2 => State::Ready { at: 11 },
            3 => State::Done {
                holder: 11,
                inline: None,
            },
            4 => State::Done {
                holder: 12,
                inline: Some(std::sync::Arc::from(vec![1u8])),
            },
            _ => State::Released,
        }
    }

    proptest! {
        /// Whatever records come, change and go, the counts are those of a walk.
        #[test]
        fn the_counts_are_always_those_of_a_walk(
            steps in prop::collection::vec((0u8..3, 0u64..8, any::<u8>()), 0..200),
        ) {
            let mut owned = OwnedTasks::default();
            for (what, seq, code) in steps {
                match what {
                    0 => {
                        let mut o = Owned::new(Arc::from("t"), 0);
                        o.state = state(code);
                        owned.insert(key(seq), o);
                    }
                    1 => drop(owned.set_state(&key(seq), state(code))),
                    _ => drop(owned.remove(&key(seq))),
                }
                prop_assert_eq!(&owned.at, &walked(&owned));
                for peer in 10..13 {
                    prop_assert_eq!(owned.at(peer), walked(&owned).get(&peer).copied().unwrap_or(0));
                }
            }
        }
    }
}
