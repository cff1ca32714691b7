//! What a peer says about itself when asked (`peer status`): its load, capacity and
//! version, gathered from every connected peer at once.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::Node;
use super::state::Pending;
use crate::wire::bounded::SUSPICIONS;
use crate::wire::{PeerReport, Request, Response, Suspected};

/// A peer's report, or why it gave none.
pub(crate) type Report = (u64, Result<PeerReport, String>);

/// Reports being gathered: the answers so far, and how many peers have not answered.
#[derive(Debug)]
struct Gathering {
    reports: Vec<Report>,
    left: usize,
}

/// Gathering reports for `peer status`, sans-IO: started with this peer's own report and
/// the peers to ask, fed their answers; each finished gathering comes out of
/// [`poll_output`](Reports::poll_output), sorted by peer.
#[derive(Debug, Default)]
pub(crate) struct Reports {
    gathering: HashMap<u64, Gathering>,
    done: VecDeque<(u64, Vec<Report>)>,
}

impl Reports {
    /// Starts gathering for `waiter` with this peer's report `own`; the caller asks each
    /// of `peers` and feeds [`reported`](Reports::reported).
    pub(crate) fn gather(&mut self, waiter: u64, own: Report, peers: &[u64]) {
        let gathering = Gathering {
            reports: vec![own],
            left: peers.len(),
        };
        if peers.is_empty() {
            self.done.push_back((waiter, gathering.reports));
        } else {
            self.gathering.insert(waiter, gathering);
        }
    }

    /// `peer` answered `waiter`'s gathering (or did not).
    pub(crate) fn reported(&mut self, waiter: u64, peer: u64, response: Result<Response, String>) {
        let Some(gathering) = self.gathering.get_mut(&waiter) else {
            return;
        };
        let report = match response {
            Ok(Response::Report(report)) => Ok(report),
            Ok(other) => Err(format!("answered {other:?}")),
            Err(error) => Err(error),
        };
        gathering.reports.push((peer, report));
        gathering.left -= 1;
        if gathering.left == 0
            && let Some(done) = self.gathering.remove(&waiter)
        {
            let mut reports = done.reports;
            reports.sort_by_key(|(peer, _)| *peer);
            self.done.push_back((waiter, reports));
        }
    }

    /// A finished gathering: its waiter and the reports.
    pub(crate) fn poll_output(&mut self) -> Option<(u64, Vec<Report>)> {
        self.done.pop_front()
    }
}

impl Node {
    /// Closures this peer's clients have run here.
    pub(crate) fn local_only(&self) -> u64 {
        (self.settings.local_only).load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Calls of named tasks this peer's clients kept on its pool.
    pub(crate) fn kept_here(&self) -> u64 {
        (self.settings.kept_here).load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This peer's report.
    pub(crate) fn report(&self, now: Instant) -> PeerReport {
        let newest = self.tasks.recoveries.len().saturating_sub(SUSPICIONS);
        PeerReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            workers: self.settings.workers as u32,
            ready: self.tasks.ready.len() as u64,
            running: self.tasks.running as u64,
            owned: self.tasks.owned.len() as u64,
            ran: self.tasks.stats.ran + self.kept_here(),
            peers: self.membership.up().len() as u32,
            hosted: self.prims.hosted_keys() as u32,
            draining: self.tasks.draining,
            serves: self.tasks.can_run.clone(),
            local: self.local_only(),
            suspected: (self.tasks.recoveries[newest..].iter())
                .map(|r| Suspected {
                    peer: r.peer,
                    ago_us: now.saturating_duration_since(r.at).as_micros() as u64,
                    reason: r.reason.clone(),
                    requeued: r.requeued as u64,
                })
                .collect(),
        }
    }

    /// Asks every connected peer for its report; answered with
    /// [`Output::Reports`](super::Output::Reports).
    pub(crate) fn gather_reports(&mut self, waiter: u64, now: Instant) {
        let mut peers: Vec<u64> = self.membership.up().iter().copied().collect();
        peers.sort_unstable();
        let own = (self.me, Ok(self.report(now)));
        self.reports.gather(waiter, own, &peers);
        for peer in peers {
            self.send(peer, Pending::Report(waiter, peer), Request::Report);
        }
        self.after(now);
    }
}
