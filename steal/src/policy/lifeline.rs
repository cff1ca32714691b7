//! Lifelines (X10's lifeline-based global load balancing): the buddy graph, our
//! registrations with our buddies, and the peers registered with us.
//!
//! The graph is a function of the membership alone, so every peer derives it from what it
//! already knows and no message builds it: rank the peers by id (ourselves included), and
//! the buddies of rank `r` among `N` are the ranks `r + 2^k (mod N)` for `k < ⌈log2 N⌉`. Its
//! `k = 0` edges form a ring, so it is strongly connected whatever the cap on the degree;
//! with the full degree any peer reaches any other in at most `⌈log2 N⌉` hops (write the
//! distance in binary). Work travels the edges backwards: a quiescent peer registers with
//! its buddies, and whichever of them finds work pushes some back and wakes it. Peers whose
//! views of the membership differ derive slightly different graphs; that costs nothing in
//! correctness, since a registration is an explicit message and is honoured by whoever
//! receives it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Output, Peer, PeerId, Policy};

/// Our side of the lifeline graph.
#[derive(Debug, Default)]
pub(super) struct Lifelines {
    /// Our buddies, derived from the membership; `None` after it changed.
    buddies: Option<Vec<PeerId>>,
    /// Buddies that hold our registration (it lasts until they push or go down).
    registered: BTreeSet<PeerId>,
    /// Peers registered with us, oldest first: they are quiescent and wait for a push.
    waiters: VecDeque<PeerId>,
}

impl Lifelines {
    pub(super) fn peer_up(&mut self, peer: PeerId) {
        self.buddies = None;
        // Up again after a disconnection: it may have lost our registration.
        self.registered.remove(&peer);
    }

    pub(super) fn peer_down(&mut self, peer: PeerId) {
        self.buddies = None;
        self.registered.remove(&peer);
        self.waiters.retain(|w| *w != peer);
    }

    /// `from` registered with us (again: a repeated registration is one).
    pub(super) fn wait(&mut self, from: PeerId) {
        if !self.waiters.contains(&from) {
            self.waiters.push_back(from);
        }
    }

    /// `from` pushed to us, consuming our registration with it.
    pub(super) fn pushed(&mut self, from: PeerId) {
        self.registered.remove(&from);
    }

    pub(super) fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Our buddies under the current membership `peers` (ourselves excluded).
    pub(super) fn buddies(
        &mut self,
        me: PeerId,
        peers: &BTreeMap<PeerId, Peer>,
        max: usize,
    ) -> &[PeerId] {
        self.buddies.get_or_insert_with(|| {
            let rank = peers.range(..me).count();
            let ids: Vec<PeerId> = peers.keys().copied().collect();
            buddies(rank, ids.len() + 1, max)
                .into_iter()
                // Ranks past ours are shifted by one in `ids`, which leaves us out.
                .map(|b| if b < rank { ids[b] } else { ids[b - 1] })
                .collect()
        })
    }
}

/// The buddies of rank `rank` among `n` peers: `rank + 2^k (mod n)` for `k < ⌈log2 n⌉`, at
/// most `max` of them, never `rank` itself.
pub(super) fn buddies(rank: usize, n: usize, max: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut step = 1usize;
    while step < n && out.len() < max {
        let b = (rank + step) % n;
        if b != rank && !out.contains(&b) {
            out.push(b);
        }
        step = step.saturating_mul(2);
    }
    out
}

impl Policy {
    /// While quiescent: registers with every buddy that does not hold our registration.
    pub(super) fn register(&mut self) {
        let buddies = self
            .lifelines
            .buddies(self.me, &self.peers, self.config.max_lifelines)
            .to_vec();
        for buddy in buddies {
            if self.lifelines.registered.insert(buddy) {
                self.outputs.push_back(Output::Lifeline { peer: buddy });
            }
        }
    }

    /// With ready tasks and peers waiting: pushes the oldest waiters an equal share each,
    /// giving away at most half of our ready tasks and none of a last one. Handing out every
    /// task scatters narrow trees (T3) one node per message, each worth far less than its
    /// trip; a waiter left waiting is pushed as soon as we hold two tasks, or by another buddy.
    pub(super) fn push_to_waiters(&mut self) {
        let ready = self.local_ready;
        let n = self.lifelines.waiters.len().min(ready / 2);
        if n == 0 {
            return;
        }
        let share = (ready / (n + 1)).max(1);
        for _ in 0..n {
            if let Some(peer) = self.lifelines.waiters.pop_front() {
                self.outputs.push_back(Output::Push { peer, tasks: share });
            }
        }
    }
}

#[cfg(all(test, not(peer_loom)))]
mod tests {
    use super::buddies;

    #[test]
    fn the_graph_is_a_ring_plus_powers_of_two() {
        assert_eq!(buddies(0, 1, 16), Vec::<usize>::new());
        assert_eq!(buddies(0, 2, 16), vec![1]);
        assert_eq!(buddies(1, 2, 16), vec![0]);
        assert_eq!(buddies(2, 5, 16), vec![3, 4, 1]);
        assert_eq!(buddies(5, 16, 16), vec![6, 7, 9, 13]);
        assert_eq!(buddies(1000, 1024, 16).len(), 10);
        assert_eq!(buddies(1000, 1024, 3), vec![1001, 1002, 1004]);
    }

    #[test]
    fn every_peer_reaches_every_other_within_log2_n_hops() {
        for n in [2usize, 3, 5, 16, 17, 100] {
            let hops_max = usize::BITS - (n - 1).leading_zeros();
            let graph: Vec<Vec<usize>> = (0..n).map(|r| buddies(r, n, 16)).collect();
            for from in 0..n {
                let mut dist = vec![usize::MAX; n];
                dist[from] = 0;
                let mut frontier = vec![from];
                while let Some(r) = frontier.pop() {
                    for &b in &graph[r] {
                        if dist[b] > dist[r] + 1 {
                            dist[b] = dist[r] + 1;
                            frontier.push(b);
                        }
                    }
                }
                let worst = dist.iter().copied().max().unwrap_or(0);
                assert!(worst <= hops_max as usize, "n={n} from={from}: {dist:?}");
            }
        }
    }
}
