//! Whom a peer watches for failure, and how closely (sans-IO; the event loop pings).
//!
//! Pinging every peer would cost each peer messages in proportion to the swarm's size, idle
//! or not. A peer only needs to notice quickly the failure of peers it has business with:
//! tasks of its own queued or running there, results of its own kept only there, requests
//! in flight, permits held there on keys it hosts. Those it watches *closely*: a ping every
//! [`Watch::Close`] interval, suspected after [`CLOSE_SILENCE`] without an answer or a
//! message. Beyond them it watches its [`RING`] successors among the peers that are up
//! (ordered by peer number) *loosely*, so that a hung idle peer is still found in time; and
//! it keeps pinging suspects that are still connected, loosely, to notice they are back.
//! An idle peer thus sends a fixed number of pings whatever the swarm's size.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Successors on the ring of peer numbers that each peer watches loosely.
pub(crate) const RING: usize = 2;
/// A closely watched peer silent this long is suspected.
pub(crate) const CLOSE_SILENCE: Duration = Duration::from_millis(1500);
/// A loosely watched peer silent this long is suspected.
pub(crate) const LOOSE_SILENCE: Duration = Duration::from_secs(15);

/// How closely a peer is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// Business with it: a hung peer is found within [`CLOSE_SILENCE`]. Chosen for a LAN,
    /// where a round trip takes well under a millisecond: three missed pings in a row, so
    /// that a peer whose cores are all busy is not suspected by mistake.
    Close,
    /// A ring neighbour, or a suspect still connected.
    Loose,
}

impl Watch {
    /// How often it is pinged.
    pub(crate) fn interval(self) -> Duration {
        match self {
            Watch::Close => Duration::from_millis(500),
            Watch::Loose => Duration::from_secs(5),
        }
    }

    /// How long it may be silent before it is suspected.
    pub(crate) fn silence(self) -> Duration {
        match self {
            Watch::Close => CLOSE_SILENCE,
            Watch::Loose => LOOSE_SILENCE,
        }
    }
}

/// Who is watched, how closely, and when each was last heard from.
#[derive(Debug)]
pub(crate) struct Liveness {
    me: u64,
    watching: HashMap<u64, Watch>,
    /// When each watched peer last answered a ping or sent a message, or when its watch
    /// began or tightened (silence counts only while we ask).
    heard: HashMap<u64, Instant>,
}

impl Liveness {
    pub(crate) fn new(me: u64) -> Liveness {
        Liveness {
            me,
            watching: HashMap::new(),
            heard: HashMap::new(),
        }
    }

    /// Decides whom to watch now, given the peers that are `up`, the `suspects` still
    /// connected, and the peers this one has `business` with. Returns what changed, for the
    /// pingers: a peer and its new watch, or `None` to stop pinging it.
    pub(crate) fn plan(
        &mut self,
        up: &HashSet<u64>,
        suspects: &HashSet<u64>,
        business: &HashSet<u64>,
        now: Instant,
    ) -> Vec<(u64, Option<Watch>)> {
        let mut wanted: HashMap<u64, Watch> = HashMap::new();
        for peer in ring_successors(self.me, up, RING) {
            wanted.insert(peer, Watch::Loose);
        }
        for peer in suspects.iter().filter(|p| !up.contains(p)) {
            wanted.insert(*peer, Watch::Loose);
        }
        for peer in business.iter().filter(|p| up.contains(p)) {
            wanted.insert(*peer, Watch::Close);
        }
        wanted.remove(&self.me);
        let mut changes = Vec::new();
        for (peer, watch) in &wanted {
            let before = self.watching.insert(*peer, *watch);
            if before == Some(*watch) {
                continue;
            }
            // Silence counts from the moment we start asking more often: a peer we did not
            // ask has not failed to answer.
            if before != Some(Watch::Close) {
                self.heard.insert(*peer, now);
            }
            changes.push((*peer, Some(*watch)));
        }
        let dropped: Vec<u64> = self
            .watching
            .keys()
            .filter(|p| !wanted.contains_key(p))
            .copied()
            .collect();
        for peer in dropped {
            self.watching.remove(&peer);
            self.heard.remove(&peer);
            changes.push((peer, None));
        }
        changes.sort_unstable_by_key(|(peer, _)| *peer);
        changes
    }

    /// `peer` answered a ping or sent a message.
    pub(crate) fn heard(&mut self, peer: u64, now: Instant) {
        if self.watching.contains_key(&peer) {
            self.heard.insert(peer, now);
        }
    }

    /// The watched peers among `up` silent for longer than their watch allows.
    pub(crate) fn silent(&self, up: &HashSet<u64>, now: Instant) -> Vec<u64> {
        let mut silent: Vec<u64> = self
            .watching
            .iter()
            .filter(|(peer, watch)| {
                up.contains(peer)
                    && self
                        .heard
                        .get(peer)
                        .is_some_and(|t| now.saturating_duration_since(*t) > watch.silence())
            })
            .map(|(peer, _)| *peer)
            .collect();
        silent.sort_unstable();
        silent
    }

    /// This peer was held up (stopped, or starved of CPU): the silence was ours, so every
    /// clock starts again.
    pub(crate) fn restart(&mut self, now: Instant) {
        for heard in self.heard.values_mut() {
            *heard = now;
        }
    }

    /// Whether some peer is watched closely.
    pub(crate) fn any_close(&self) -> bool {
        self.watching.values().any(|w| *w == Watch::Close)
    }

    /// How closely `peer` is watched, if at all.
    pub(crate) fn watch(&self, peer: u64) -> Option<Watch> {
        self.watching.get(&peer).copied()
    }
}

/// The `k` peers after `me` among `up`, in the cyclic order of peer numbers.
fn ring_successors(me: u64, up: &HashSet<u64>, k: usize) -> Vec<u64> {
    let mut ring: Vec<u64> = up.iter().copied().filter(|p| *p != me).collect();
    ring.sort_unstable();
    let start = ring.partition_point(|p| *p < me);
    (0..k.min(ring.len()))
        .map(|i| ring[(start + i) % ring.len()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(peers: &[u64]) -> HashSet<u64> {
        peers.iter().copied().collect()
    }

    #[test]
    fn an_idle_peer_watches_only_its_ring_successors_whatever_the_swarm_size() {
        let now = Instant::now();
        for n in [4u64, 8, 16, 1024] {
            let up: HashSet<u64> = (1..=n).map(|i| i * 10).collect();
            let mut liveness = Liveness::new(25);
            let changes = liveness.plan(&up, &set(&[]), &set(&[]), now);
            assert_eq!(
                changes,
                vec![(30, Some(Watch::Loose)), (40, Some(Watch::Loose))],
                "{n} peers"
            );
        }
        // The ring wraps around.
        let mut last = Liveness::new(95);
        let changes = last.plan(&set(&[10, 20, 90]), &set(&[]), &set(&[]), now);
        assert_eq!(
            changes,
            vec![(10, Some(Watch::Loose)), (20, Some(Watch::Loose))]
        );
    }

    #[test]
    fn business_is_watched_closely_and_its_silence_counts_from_when_it_began() {
        let start = Instant::now();
        let up = set(&[1, 2, 3, 4, 5, 6]);
        let mut liveness = Liveness::new(1);
        liveness.plan(&up, &set(&[]), &set(&[]), start);
        // Peer 5 was never pinged: ten seconds of not asking is not silence.
        let later = start + Duration::from_secs(10);
        let changes = liveness.plan(&up, &set(&[]), &set(&[5]), later);
        assert_eq!(changes, vec![(5, Some(Watch::Close))]);
        assert!(liveness.silent(&up, later).is_empty());
        assert_eq!(
            liveness.silent(&up, later + Duration::from_millis(1400)),
            Vec::<u64>::new()
        );
        assert_eq!(
            liveness.silent(&up, later + Duration::from_millis(1600)),
            vec![5]
        );
        // An answer puts it right.
        liveness.heard(5, later + Duration::from_millis(1600));
        assert!(
            liveness
                .silent(&up, later + Duration::from_millis(2000))
                .is_empty()
        );
    }

    #[test]
    fn business_ending_falls_back_to_the_ring_or_to_nothing() {
        let now = Instant::now();
        let up = set(&[1, 2, 3, 4, 5, 6]);
        let mut liveness = Liveness::new(1);
        liveness.plan(&up, &set(&[]), &set(&[2, 5]), now);
        assert_eq!(liveness.watch(2), Some(Watch::Close));
        assert_eq!(liveness.watch(5), Some(Watch::Close));
        let changes = liveness.plan(&up, &set(&[]), &set(&[]), now);
        assert_eq!(changes, vec![(2, Some(Watch::Loose)), (5, None)]);
        assert_eq!(liveness.watch(3), Some(Watch::Loose));
    }

    #[test]
    fn loose_watches_suspect_later_and_suspects_are_not_suspected_again() {
        let now = Instant::now();
        let up = set(&[1, 2, 3]);
        let mut liveness = Liveness::new(1);
        liveness.plan(&up, &set(&[]), &set(&[]), now);
        assert!(
            liveness
                .silent(&up, now + Duration::from_secs(14))
                .is_empty()
        );
        assert_eq!(
            liveness.silent(&up, now + Duration::from_secs(16)),
            vec![2, 3]
        );
        // Peer 2 suspected, still connected: pinged loosely to notice it is back, never
        // reported silent again while down.
        let up = set(&[1, 3]);
        let changes = liveness.plan(&up, &set(&[2]), &set(&[2]), now);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(liveness.silent(&up, now + Duration::from_secs(16)), vec![3]);
        // Once disconnected, it is not pinged at all.
        let changes = liveness.plan(&up, &set(&[]), &set(&[]), now);
        assert_eq!(changes, vec![(2, None)]);
    }

    #[test]
    fn being_held_up_restarts_every_clock() {
        let now = Instant::now();
        let up = set(&[1, 2]);
        let mut liveness = Liveness::new(1);
        liveness.plan(&up, &set(&[]), &set(&[2]), now);
        let late = now + Duration::from_secs(5);
        assert_eq!(liveness.silent(&up, late), vec![2]);
        liveness.restart(late);
        assert!(liveness.silent(&up, late).is_empty());
    }
}
