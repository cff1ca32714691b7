//! A map that keeps what it is given first and lets the oldest go past a budget of entries
//! and bytes: the inputs fetched from other peers ([`InputCache`]) and the values published
//! under names ([`Published`]), both of which other peers fill.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use super::Bytes;
use crate::wire::{Failure, TaskKey};

/// Inputs fetched from other peers, by task, weighed by their bytes; dropped as soon as
/// their owner gossips that they were released.
pub(super) type InputCache = Fifo<TaskKey, Bytes>;

/// Values published under names, weighed by name and value: the first value under a name
/// is kept; a peer that lost one to the bound asks the others again.
pub(super) type Published = Fifo<String, Result<Vec<u8>, Failure>>;

impl InputCache {
    pub(super) fn inputs() -> InputCache {
        Fifo::new(|_, value| value.len())
    }
}

impl Published {
    pub(super) fn values() -> Published {
        Fifo::new(|name, value| name.len() + value.as_ref().map_or(64, Vec::len))
    }
}

/// See the [module docs](self).
#[derive(Debug)]
pub(super) struct Fifo<K, V> {
    entries: HashMap<K, V>,
    /// Keys, oldest first; some may have been removed already.
    order: VecDeque<K>,
    bytes: usize,
    weigh: fn(&K, &V) -> usize,
}

impl<K: Hash + Eq + Clone, V> Fifo<K, V> {
    fn new(weigh: fn(&K, &V) -> usize) -> Fifo<K, V> {
        Fifo {
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            weigh,
        }
    }

    pub(super) fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.entries.get(key)
    }

    pub(super) fn contains_key<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.entries.contains_key(key)
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keeps `value` under `key` unless a value is kept there already or it alone weighs
    /// more than `max_bytes`; then lets the oldest go until at most `max_entries` weighing
    /// at most `max_bytes` are left. Whether it was kept.
    pub(super) fn insert(
        &mut self,
        key: K,
        value: V,
        max_entries: usize,
        max_bytes: usize,
    ) -> bool {
        let weight = (self.weigh)(&key, &value);
        if weight > max_bytes || self.entries.contains_key(&key) {
            return false;
        }
        self.bytes += weight;
        self.order.push_back(key.clone());
        self.entries.insert(key, value);
        while self.entries.len() > max_entries.max(1) || self.bytes > max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
        true
    }

    pub(super) fn remove(&mut self, key: &K) {
        if let Some(value) = self.entries.remove(key) {
            self.bytes -= (self.weigh)(key, &value);
        }
        if self.order.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_stays_and_the_oldest_go_past_either_bound() {
        let mut fifo: Fifo<u32, Vec<u8>> = Fifo::new(|_, v| v.len());
        assert!(fifo.insert(1, vec![0; 4], 10, 100));
        assert!(
            !fifo.insert(1, vec![1; 4], 10, 100),
            "the first value stays"
        );
        assert!(!fifo.insert(2, vec![0; 101], 10, 100), "too heavy alone");
        assert!(fifo.insert(2, vec![0; 90], 10, 100));
        assert!(fifo.insert(3, vec![0; 8], 10, 100));
        assert!(!fifo.contains_key(&1), "past the bytes, the oldest went");
        assert!(fifo.insert(4, vec![], 2, 100));
        assert_eq!(
            (fifo.len(), fifo.contains_key(&2)),
            (2, false),
            "past the entries"
        );
        fifo.remove(&3);
        assert_eq!(fifo.get(&4), Some(&vec![]));
    }
}
