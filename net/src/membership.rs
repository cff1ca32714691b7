//! Who is in the swarm as this peer sees it: the members met (peers that speak the task
//! protocol), which of them are up, which are suspected and since when, which may not be
//! homes of named primitives, whom to watch for failure and how closely, and whether this
//! peer's own loop was held up. The one membership of a peer: the [`Node`](crate::node)
//! owns it and reads it; the event loop only reports what it observed (identify, a message
//! or ping answer, a connection opened or closed, the watch clock) and starts or retunes the
//! pingers the [`Change::Watch`]es ask for. Sans-IO.

use std::collections::{HashMap, HashSet, VecDeque};
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

/// What changed in membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A member is up: it identified itself, or a suspect spoke again (`back`).
    Up {
        /// The peer.
        peer: u64,
        /// Whether it was suspected until now.
        back: bool,
    },
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
    /// Members suspected and not back. A forgotten suspect that owns a detached job stays
    /// here, so that its job can still be adopted.
    down: HashSet<u64>,
    /// When each suspect still remembered was suspected.
    down_since: HashMap<u64, Instant>,
    /// Members that are no homes of named primitives ([`Config::home`](crate::Config::home)).
    no_home: HashSet<u64>,
    /// Peers with a connection open now (a suspect that has one is watched loosely, to see
    /// it come back).
    connected: HashSet<u64>,
    /// Whom this peer watches, how closely, and when each was last heard.
    liveness: Liveness,
    /// When silences were last checked, and whom to watch decided (`None` before the
    /// first check: the watch clock starts with the event loop).
    last_check: Option<Instant>,
    last_plan: Option<Instant>,
    /// When silences are next checked.
    next_check: Option<Instant>,
    changes: VecDeque<Change>,
}

impl Membership {
    /// The view of peer `me`.
    pub(crate) fn new(me: u64) -> Membership {
        Membership {
            members: HashSet::new(),
            up: HashSet::new(),
            down: HashSet::new(),
            down_since: HashMap::new(),
            no_home: HashSet::new(),
            connected: HashSet::new(),
            liveness: Liveness::new(me),
            last_check: None,
            last_plan: None,
            next_check: None,
            changes: VecDeque::new(),
        }
    }

    /// Members up now.
    pub(crate) fn up(&self) -> &HashSet<u64> {
        &self.up
    }

    /// Whether `peer` is up.
    pub(crate) fn is_up(&self, peer: u64) -> bool {
        self.up.contains(&peer)
    }

    /// Whether `peer` is suspected and not back.
    pub(crate) fn is_down(&self, peer: u64) -> bool {
        self.down.contains(&peer)
    }

    /// Members suspected and not back.
    pub(crate) fn down(&self) -> impl Iterator<Item = u64> + '_ {
        self.down.iter().copied()
    }

    /// Whether `peer` may be the home of named primitives.
    pub(crate) fn may_host(&self, peer: u64) -> bool {
        !self.no_home.contains(&peer)
    }

    /// Whether `peer` identified as a member (up or suspected).
    pub(crate) fn is_member(&self, peer: u64) -> bool {
        self.members.contains(&peer)
    }

    /// `peer` identified itself as a member, a home of named primitives or not. True if
    /// that makes it up (it was not).
    pub(crate) fn identified(&mut self, peer: u64, home: bool) -> bool {
        self.members.insert(peer);
        if !home {
            // Before it is up: no home is ever computed with it. Bounded as `members` is.
            self.no_home.insert(peer);
        }
        self.make_up(peer)
    }

    /// `peer` showed it is alive (a message, a ping answered): a suspect is back.
    pub(crate) fn heard(&mut self, peer: u64, now: Instant) {
        if self.members.contains(&peer) {
            self.make_up(peer);
        }
        self.liveness.heard(peer, now);
    }

    fn make_up(&mut self, peer: u64) -> bool {
        let new = self.up.insert(peer);
        if new {
            self.down_since.remove(&peer);
            let back = self.down.remove(&peer);
            self.changes.push_back(Change::Up { peer, back });
        }
        new
    }

    /// A connection to `peer` opened (`open`) or its last one closed.
    pub(crate) fn connection(&mut self, peer: u64, open: bool) {
        if open {
            self.connected.insert(peer);
        } else {
            self.connected.remove(&peer);
        }
    }

    /// Suspects `peer`, once until it is up again.
    pub(crate) fn suspect(&mut self, peer: u64, reason: String, now: Instant) {
        if self.up.remove(&peer) {
            self.down.insert(peer);
            self.down_since.insert(peer, now);
            self.changes.push_back(Change::Down { peer, reason });
        }
    }

    /// When the suspects still remembered were suspected.
    pub(crate) fn suspected_since(&self) -> impl Iterator<Item = (u64, Instant)> + '_ {
        self.down_since.iter().map(|(peer, since)| (*peer, *since))
    }

    /// Forgets a suspect suspected long ago; it stays suspected if `keep_suspected` (it owns
    /// a job still to be adopted).
    pub(crate) fn forget(&mut self, peer: u64, keep_suspected: bool) {
        self.down_since.remove(&peer);
        if !keep_suspected {
            self.down.remove(&peer);
        }
        self.members.remove(&peer);
        self.no_home.remove(&peer);
    }

    /// When [`handle_timeout`](Membership::handle_timeout) should next be called: at once
    /// when the watch has not started.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.next_check
    }

    /// Whether whom to watch is decided again at `now` (the caller then works out
    /// `business` for [`handle_timeout`](Membership::handle_timeout)).
    pub(crate) fn plan_due(&self, now: Instant) -> bool {
        self.last_plan
            .is_none_or(|last| now.saturating_duration_since(last) >= WATCH_PLAN)
    }

    /// Checks silences, and decides again whom to watch when that is due: `business` are
    /// the peers the node has business with (asked for only when the plan is due).
    pub(crate) fn handle_timeout(&mut self, now: Instant, business: impl FnOnce() -> HashSet<u64>) {
        let planned = self.check_every();
        self.check_silences(planned, now);
        if self.plan_due(now) {
            self.last_plan = Some(now);
            let suspects: HashSet<u64> = (self.members.iter())
                .filter(|p| !self.up.contains(p) && self.connected.contains(p))
                .copied()
                .collect();
            let plan = self.liveness.plan(&self.up, &suspects, &business(), now);
            for (peer, watch) in plan {
                let change = Change::Watch(peer, watch.map(Watch::interval));
                self.changes.push_back(change);
            }
        }
        self.next_check = Some(now + self.check_every());
    }

    /// The next thing that changed, if any.
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
        let Some(last) = self.last_check.replace(now) else {
            return;
        };
        let gap = now.saturating_duration_since(last);
        if gap > planned + CLOSE_SILENCE / 2 {
            tracing::debug!(?gap, "the event loop was held up; silences start again");
            self.liveness.restart(now);
            // Others may have suspected us meanwhile and taken over what we host.
            self.changes.push_back(Change::HeldUp);
            return;
        }
        for peer in self.liveness.silent(&self.up, now) {
            let silence = (self.liveness.watch(peer)).map_or(CLOSE_SILENCE, Watch::silence);
            self.suspect(
                peer,
                format!("silent for {silence:?}: no ping answered"),
                now,
            );
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
        let mut m = Membership::new(1);
        m.handle_timeout(t0, HashSet::new);
        assert!(m.identified(2, true));
        assert!(!m.identified(2, true));
        m.suspect(2, "closed".into(), t0);
        assert!(m.is_down(2));
        m.suspect(2, "closed again".into(), t0);
        m.heard(2, t0);
        let down = Change::Down {
            peer: 2,
            reason: "closed".into(),
        };
        let up = |back| Change::Up { peer: 2, back };
        assert_eq!(changes(&mut m), [up(false), down, up(true)]);
        assert!(!m.is_down(2));
    }

    #[test]
    fn a_stranger_heard_is_not_a_member() {
        let t0 = Instant::now();
        let mut m = Membership::new(1);
        m.handle_timeout(t0, HashSet::new);
        m.heard(9, t0);
        assert!(changes(&mut m).is_empty());
        assert!(!m.is_member(9) && m.up().is_empty());
    }

    #[test]
    fn a_peer_with_business_is_watched_closely_and_suspected_when_silent() {
        let t0 = Instant::now();
        let mut m = Membership::new(1);
        m.handle_timeout(t0, HashSet::new);
        m.identified(2, true);
        changes(&mut m);
        let business = || HashSet::from([2]);
        let mut now = t0 + WATCH_PLAN;
        m.handle_timeout(now, business);
        let close = Watch::Close.interval();
        assert!(changes(&mut m).contains(&Change::Watch(2, Some(close))));
        // Checked on time, never answering: suspected once the close silence is over.
        while now < t0 + WATCH_PLAN + CLOSE_SILENCE * 2 {
            now = m.poll_timeout().unwrap();
            m.handle_timeout(now, business);
        }
        let down = changes(&mut m)
            .into_iter()
            .any(|c| matches!(c, Change::Down { peer: 2, .. }));
        assert!(down, "a silent peer with business was not suspected");
    }

    #[test]
    fn a_check_long_overdue_means_this_loop_was_held_up() {
        let t0 = Instant::now();
        let mut m = Membership::new(1);
        m.handle_timeout(t0, HashSet::new);
        m.identified(2, true);
        changes(&mut m);
        let late = m.poll_timeout().unwrap() + CLOSE_SILENCE;
        m.handle_timeout(late, HashSet::new);
        let seen = changes(&mut m);
        assert!(seen.contains(&Change::HeldUp), "{seen:?}");
        assert!(
            !seen.iter().any(|c| matches!(c, Change::Down { .. })),
            "our own stall suspected others: {seen:?}"
        );
    }

    #[test]
    fn a_forgotten_suspect_is_no_member_and_stays_suspected_only_if_kept() {
        let t0 = Instant::now();
        let mut m = Membership::new(1);
        m.identified(2, false);
        m.identified(3, true);
        assert!(!m.may_host(2) && m.may_host(3));
        m.suspect(2, "closed".into(), t0);
        m.suspect(3, "closed".into(), t0);
        assert_eq!(m.suspected_since().count(), 2);
        m.forget(2, false);
        m.forget(3, true);
        assert!(!m.is_member(2) && !m.is_down(2) && m.may_host(2));
        assert!(!m.is_member(3) && m.is_down(3), "kept: it owns a job");
        assert_eq!(m.suspected_since().count(), 0, "neither is forgotten twice");
        changes(&mut m);
        m.identified(3, true);
        assert_eq!(
            changes(&mut m),
            [Change::Up {
                peer: 3,
                back: true
            }]
        );
    }

    #[test]
    fn only_a_suspect_still_connected_is_watched_to_see_it_come_back() {
        let t0 = Instant::now();
        let mut m = Membership::new(1);
        m.handle_timeout(t0, HashSet::new);
        for peer in [2, 3] {
            m.identified(peer, true);
            m.connection(peer, true);
            m.suspect(peer, "silent".into(), t0);
        }
        m.connection(3, false);
        changes(&mut m);
        m.handle_timeout(t0 + WATCH_PLAN, HashSet::new);
        let seen = changes(&mut m);
        let loose = Watch::Loose.interval();
        assert!(seen.contains(&Change::Watch(2, Some(loose))), "{seen:?}");
        assert!(
            !seen.iter().any(|c| matches!(c, Change::Watch(3, Some(_)))),
            "{seen:?}"
        );
    }
}
