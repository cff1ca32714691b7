//! The task-graph gossip of one node, as its own machine: events batched for publication,
//! and the admission of other peers' batches (rate, order).
//!
//! Same shape as the node: fed events ([`Gossip::push`]) and batches from others
//! ([`Gossip::admit`]), it says what to publish ([`Gossip::poll_output`]) and when to be
//! woken ([`Gossip::poll_timeout`], [`Gossip::handle_timeout`]). What an admitted batch
//! means (loads for the policy, job events, topics) is for the node to decide.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::config::Limits;
use crate::wire::{Batch, GraphEvent};

/// Most events in one gossip batch: a batch is published when it is this full or
/// `interval` after its first event, whichever comes first.
const MAX_BATCH: usize = 1024;

/// How far a batch from another peer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admitted {
    /// Over its sender's rate, or our own: dropped.
    Dropped,
    /// Not newer than the last batch from its sender: its events count (they may be
    /// applied twice or late), its load does not.
    Stale,
    /// The newest batch from its sender.
    Fresh,
}

/// One node's gossip; see the [module docs](self).
#[derive(Debug)]
pub(super) struct Gossip {
    me: u64,
    interval: Duration,
    /// Events of the batch being filled.
    pending: Vec<GraphEvent>,
    /// When that batch goes out at the latest.
    due: Option<Instant>,
    /// Number of the last batch published.
    number: u64,
    /// Batches ready to publish.
    outputs: VecDeque<Batch>,
    /// Number of the newest batch from each peer.
    last_batch: HashMap<u64, u64>,
    /// Batches each peer may still send before its batches are dropped.
    budget: HashMap<u64, (f64, Instant)>,
}

impl Gossip {
    /// The gossip of peer `me`, batching for `interval`.
    pub(super) fn new(me: u64, interval: Duration) -> Gossip {
        Gossip {
            me,
            interval,
            pending: Vec::new(),
            due: None,
            number: 0,
            outputs: VecDeque::new(),
            last_batch: HashMap::new(),
            budget: HashMap::new(),
        }
    }

    /// Adds an event to the next batch.
    pub(super) fn push(&mut self, event: GraphEvent, now: Instant) {
        self.pending.push(event);
        if self.pending.len() >= MAX_BATCH {
            self.flush();
            return;
        }
        if self.due.is_none() {
            self.due = Some(now + self.interval);
        }
    }

    /// When [`handle_timeout`](Gossip::handle_timeout) should next be called.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.due
    }

    /// Publishes the batch whose time has come.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        if self.due.is_some_and(|due| due <= now) {
            self.flush();
        }
    }

    /// The next batch to publish, if any.
    pub(super) fn poll_output(&mut self) -> Option<Batch> {
        self.outputs.pop_front()
    }

    /// Publishes the events waiting for their batch now.
    pub(super) fn flush(&mut self) {
        self.due = None;
        if self.pending.is_empty() {
            return;
        }
        self.number += 1;
        self.outputs.push_back(Batch {
            from: self.me,
            number: self.number,
            events: std::mem::take(&mut self.pending),
        });
    }

    /// Whether, and how far, a batch from another peer counts, within `limits`. `up` are
    /// the peers that speak to us now: when too many peers are remembered, the others are
    /// forgotten.
    pub(super) fn admit(
        &mut self,
        batch: &Batch,
        limits: &Limits,
        up: &HashSet<u64>,
        now: Instant,
    ) -> Admitted {
        if batch.from == self.me || !self.within_budget(batch.from, limits, up, now) {
            return Admitted::Dropped;
        }
        let last = self.last_batch.entry(batch.from).or_default();
        if batch.number <= *last {
            return Admitted::Stale;
        }
        *last = batch.number;
        Admitted::Fresh
    }

    /// Forgets what it knew of a peer gone for good.
    pub(super) fn forget(&mut self, peer: u64) {
        self.last_batch.remove(&peer);
        self.budget.remove(&peer);
    }

    /// The number of the newest batch admitted from `peer`.
    #[cfg(test)]
    pub(super) fn last_batch(&self, peer: u64) -> Option<u64> {
        self.last_batch.get(&peer).copied()
    }

    /// How many peers' budgets and batch numbers are remembered.
    #[cfg(test)]
    pub(super) fn remembered(&self) -> (usize, usize) {
        (self.budget.len(), self.last_batch.len())
    }

    /// Whether a gossip batch from `from` fits its budget: [`Limits::gossip_per_sec`] on
    /// average, and a second's worth at once. Budgets of peers not up are forgotten past
    /// [`Limits::remembered_peers`].
    fn within_budget(
        &mut self,
        from: u64,
        limits: &Limits,
        up: &HashSet<u64>,
        now: Instant,
    ) -> bool {
        let rate = f64::from(limits.gossip_per_sec.max(1));
        if self.budget.len() >= limits.remembered_peers && !self.budget.contains_key(&from) {
            self.budget.retain(|peer, _| up.contains(peer));
            self.last_batch.retain(|peer, _| up.contains(peer));
        }
        let (tokens, at) = self.budget.entry(from).or_insert((rate, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * rate;
        *tokens = (*tokens + refill).min(rate);
        *at = now;
        if *tokens < 1.0 {
            tracing::debug!(from = %format_args!("{from:016x}"), "gossip over its rate dropped");
            return false;
        }
        *tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gossip() -> Gossip {
        Gossip::new(1, Duration::from_millis(5))
    }

    impl Gossip {
        fn admit_default(&mut self, batch: &Batch, up: &HashSet<u64>, now: Instant) -> Admitted {
            self.admit(batch, &Limits::default(), up, now)
        }
    }

    fn batch(from: u64, number: u64) -> Batch {
        Batch {
            from,
            number,
            events: vec![GraphEvent::Load(1)],
        }
    }

    #[test]
    fn events_go_out_in_one_batch_when_the_interval_ends() {
        let mut g = gossip();
        let t0 = Instant::now();
        g.push(GraphEvent::Load(3), t0);
        g.push(GraphEvent::Load(4), t0);
        assert_eq!(g.poll_timeout(), Some(t0 + Duration::from_millis(5)));
        g.handle_timeout(t0 + Duration::from_millis(4));
        assert!(g.poll_output().is_none(), "published before its time");
        g.handle_timeout(t0 + Duration::from_millis(5));
        let out = g.poll_output().expect("a batch");
        assert_eq!((out.from, out.number, out.events.len()), (1, 1, 2));
        assert_eq!(g.poll_timeout(), None);
    }

    #[test]
    fn a_full_batch_goes_out_at_once() {
        let mut g = gossip();
        let t0 = Instant::now();
        for _ in 0..MAX_BATCH {
            g.push(GraphEvent::Load(0), t0);
        }
        assert_eq!(g.poll_output().map(|b| b.events.len()), Some(MAX_BATCH));
    }

    #[test]
    fn old_batches_count_as_stale_and_own_ones_are_dropped() {
        let mut g = gossip();
        let (up, now) = (HashSet::from([2]), Instant::now());
        assert_eq!(g.admit_default(&batch(2, 5), &up, now), Admitted::Fresh);
        assert_eq!(g.admit_default(&batch(2, 4), &up, now), Admitted::Stale);
        assert_eq!(g.admit_default(&batch(1, 9), &up, now), Admitted::Dropped);
    }

    #[test]
    fn a_peer_over_its_rate_is_dropped_until_its_budget_refills() {
        let mut g = gossip();
        let (up, now) = (HashSet::from([2]), Instant::now());
        let rate = u64::from(Limits::default().gossip_per_sec.max(1));
        for n in 1..=rate {
            assert_ne!(g.admit_default(&batch(2, n), &up, now), Admitted::Dropped);
        }
        assert_eq!(
            g.admit_default(&batch(2, rate + 1), &up, now),
            Admitted::Dropped
        );
        let later = now + Duration::from_secs(1);
        assert_eq!(
            g.admit_default(&batch(2, rate + 2), &up, later),
            Admitted::Fresh
        );
    }
}
