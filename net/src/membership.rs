//! Who is in the swarm as this peer sees it: the members met (peers that speak the task
//! protocol), which of them are up, whom to watch for failure and how closely, and whether
//! this peer's own loop was held up. Sans-IO: the event loop reports what it observed
//! (identify, a message or ping answer, a closed connection, the clock) and carries out
//! the [`Change`]s (tell the node, start or retune a pinger).

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::liveness::{CLOSE_SILENCE, Liveness, Watch};

/// How often silences are checked while some peer is watched closely; idle, every
/// [`IDLE_CHECK`], since loose watches allow seconds. A gap between two checks much longer
/// than planned means this loop itself was held up.
const CLOSE_CHECK: Duration = Duration::from_millis(100);
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// How often whom to watch is decided again (see [`crate::liveness`]), at most: a peer this
/// one starts having business with is watched closely within this long, or within
/// [`IDLE_CHECK`] when nothing was watched closely.
const WATCH_PLAN: Duration = Duration::from_millis(250);

/// What the event loop should do about membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A member is up: it identified itself, or a suspect spoke again.
    Up(u64),
    /// A member is suspected: its connection closed or it stayed silent.
    Down {
        /// The peer.
        peer: u64,
        /// Why, for the logs and `peer status`.
        reason: String,
    },
    /// This peer's own loop was held up long enough for others to suspect it.
    HeldUp,
    /// Ping a peer this often from now on (`None`: stop pinging it).
    Watch(u64, Option<Duration>),
}

/// This peer's view of the swarm's members; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Membership {
    /// Peers that identified as speaking the task protocol, up or suspected.
    members: HashSet<u64>,
    /// Members that speak to us now.
    up: HashSet<u64>,
    /// Whom this peer watches, how closely, and when each was last heard.
    liveness: Liveness,
    /// When silences were last checked, and whom to watch decided.
    last_check: Instant,
    last_plan: Instant,
    /// When silences are next checked.
    next_check: Instant,
    changes: VecDeque<Change>,
}

impl Membership {
    /// The view of peer `me`, starting at `now`.
    pub(crate) fn new(me: u64, now: Instant) -> Membership {
        Membership {
            members: HashSet::new(),
            up: HashSet::new(),
            liveness: Liveness::new(me),
            last_check: now,
            last_plan: now,
            next_check: now + CLOSE_CHECK,
            changes: VecDeque::new(),
        }
    }

    /// Members up now.
    pub(crate) fn up(&self) -> &HashSet<u64> {
        &self.up
    }

    /// Whether `peer` identified as a member (up or suspected).
    pub(crate) fn is_member(&self, peer: u64) -> bool {
        self.members.contains(&peer)
    }

    /// `peer` identified itself as a member. True if that makes it up (it was not).
    pub(crate) fn identified(&mut self, peer: u64) -> bool {
        self.members.insert(peer);
        let new = self.up.insert(peer);
        if new {
            self.changes.push_back(Change::Up(peer));
        }
        new
    }

    /// `peer` showed it is alive (a message, a ping answered): a suspect is back.
    pub(crate) fn heard(&mut self, peer: u64, now: Instant) {
        if self.members.contains(&peer) && self.up.insert(peer) {
            self.changes.push_back(Change::Up(peer));
        }
        self.liveness.heard(peer, now);
    }

    /// Suspects `peer`, once until it is up again.
    pub(crate) fn suspect(&mut self, peer: u64, reason: String) {
        if self.up.remove(&peer) {
            self.changes.push_back(Change::Down { peer, reason });
        }
    }

    /// Forgets a member the node has forgotten (suspected long ago).
    pub(crate) fn forget(&mut self, peer: u64) {
        self.members.remove(&peer);
    }

    /// When [`handle_timeout`](Membership::handle_timeout) should next be called.
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.next_check
    }

    /// Checks silences, and decides again whom to watch when that is due: `business` are
    /// the peers the node has business with, `connected` whether a peer still has a
    /// connection (suspects that have one are watched loosely, to see them come back).
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        business: impl FnOnce() -> HashSet<u64>,
        connected: impl Fn(u64) -> bool,
    ) {
        let planned = self.check_every();
        self.check_silences(planned, now);
        if now.saturating_duration_since(self.last_plan) >= WATCH_PLAN {
            self.last_plan = now;
            let suspects: HashSet<u64> = (self.members.iter())
                .filter(|p| !self.up.contains(p) && connected(**p))
                .copied()
                .collect();
            let plan = self.liveness.plan(&self.up, &suspects, &business(), now);
            for (peer, watch) in plan {
                let change = Change::Watch(peer, watch.map(Watch::interval));
                self.changes.push_back(change);
            }
        }
        self.next_check = now + self.check_every();
    }

    /// The next thing to do, if any.
    pub(crate) fn poll_output(&mut self) -> Option<Change> {
        self.changes.pop_front()
    }

    /// How long until silences are checked again.
    fn check_every(&self) -> Duration {
        if self.liveness.any_close() {
            CLOSE_CHECK
        } else {
            IDLE_CHECK
        }
    }

    /// Suspects the watched peers that have been silent too long. If this loop itself was
    /// held up (its process stopped, its machine overloaded) well past the `planned` check,
    /// the silence is ours: the clocks of all peers start again.
    fn check_silences(&mut self, planned: Duration, now: Instant) {
        let gap = now.saturating_duration_since(self.last_check);
        self.last_check = now;
        if gap > planned + CLOSE_SILENCE / 2 {
            tracing::debug!(?gap, "the event loop was held up; silences start again");
            self.liveness.restart(now);
            // Others may have suspected us meanwhile and taken over what we host.
            self.changes.push_back(Change::HeldUp);
            return;
        }
        for peer in self.liveness.silent(&self.up, now) {
            let silence = (self.liveness.watch(peer)).map_or(CLOSE_SILENCE, Watch::silence);
            self.suspect(peer, format!("silent for {silence:?}: no ping answered"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(m: &mut Membership) -> Vec<Change> {
        std::iter::from_fn(|| m.poll_output()).collect()
    }

    #[test]
    fn a_member_goes_up_once_down_once_and_comes_back_when_heard() {
        let t0 = Instant::now();
        let mut m = Membership::new(1, t0);
        assert!(m.identified(2));
        assert!(!m.identified(2));
        m.suspect(2, "closed".into());
        m.suspect(2, "closed again".into());
        m.heard(2, t0);
        let down = Change::Down {
            peer: 2,
            reason: "closed".into(),
        };
        assert_eq!(changes(&mut m), [Change::Up(2), down, Change::Up(2)]);
    }

    #[test]
    fn a_stranger_heard_is_not_a_member() {
        let t0 = Instant::now();
        let mut m = Membership::new(1, t0);
        m.heard(9, t0);
        assert!(changes(&mut m).is_empty());
        assert!(!m.is_member(9) && m.up().is_empty());
    }

    #[test]
    fn a_peer_with_business_is_watched_closely_and_suspected_when_silent() {
        let t0 = Instant::now();
        let mut m = Membership::new(1, t0);
        m.identified(2);
        changes(&mut m);
        let business = || HashSet::from([2]);
        let mut now = t0 + WATCH_PLAN;
        m.handle_timeout(now, business, |_| true);
        let close = Watch::Close.interval();
        assert!(changes(&mut m).contains(&Change::Watch(2, Some(close))));
        // Checked on time, never answering: suspected once the close silence is over.
        while now < t0 + WATCH_PLAN + CLOSE_SILENCE * 2 {
            now = m.poll_timeout();
            m.handle_timeout(now, business, |_| true);
        }
        let down = changes(&mut m)
            .into_iter()
            .any(|c| matches!(c, Change::Down { peer: 2, .. }));
        assert!(down, "a silent peer with business was not suspected");
    }

    #[test]
    fn a_check_long_overdue_means_this_loop_was_held_up() {
        let t0 = Instant::now();
        let mut m = Membership::new(1, t0);
        m.identified(2);
        changes(&mut m);
        let late = m.poll_timeout() + CLOSE_SILENCE;
        m.handle_timeout(late, HashSet::new, |_| true);
        let seen = changes(&mut m);
        assert!(seen.contains(&Change::HeldUp), "{seen:?}");
        assert!(
            !seen.iter().any(|c| matches!(c, Change::Down { .. })),
            "our own stall suspected others: {seen:?}"
        );
    }
}
