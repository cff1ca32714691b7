//! Victim choice: whom an idle peer asks, by [`Strategy`].

use std::time::Instant;

use super::{PeerId, Policy, Strategy};

impl Policy {
    /// Sends the requests the strategy wants in flight: one, or for the cluster-aware
    /// strategy one within our cluster and one wide-area.
    pub(super) fn steal(&mut self, now: Instant) {
        match self.config.strategy {
            Strategy::Random | Strategy::TwoChoices => {
                if self.in_flight.is_empty() {
                    let all: Vec<PeerId> = self.peers.keys().copied().collect();
                    if let Some(victim) = self.choose(&all) {
                        self.send(victim, false, now);
                    }
                }
            }
            Strategy::ClusterAware => {
                let wide_in_flight = self.in_flight.values().any(|f| f.wide_area);
                let local_in_flight = self.in_flight.values().any(|f| !f.wide_area);
                if wide_in_flight && local_in_flight {
                    // Both kept in flight already: spare the scan of every peer.
                    return;
                }
                let (near, far): (Vec<PeerId>, Vec<PeerId>) = self
                    .peers
                    .keys()
                    .partition(|id| self.peers[id].cluster == self.cluster);
                if !local_in_flight && let Some(victim) = self.choose(&near) {
                    self.send(victim, false, now);
                }
                if !wide_in_flight && let Some(victim) = self.choose(&far) {
                    self.send(victim, true, now);
                }
            }
        }
    }

    fn choose(&mut self, candidates: &[PeerId]) -> Option<PeerId> {
        if candidates.is_empty() {
            return None;
        }
        if self.config.strategy == Strategy::Random {
            return Some(candidates[self.rng.below(candidates.len())]);
        }
        // Load-informed: two random choices among the peers last known to have work, the
        // busier wins; only when nobody is known to have any, a random peer.
        let load = |policy: &Policy, p: PeerId| policy.peers.get(&p).map_or(0, |p| p.ready);
        let loaded: Vec<PeerId> = candidates
            .iter()
            .copied()
            .filter(|p| load(self, *p) > 0)
            .collect();
        let pool = if loaded.is_empty() {
            candidates
        } else {
            &loaded[..]
        };
        let a = pool[self.rng.below(pool.len())];
        let b = pool[self.rng.below(pool.len())];
        Some(if load(self, b) > load(self, a) { b } else { a })
    }
}
