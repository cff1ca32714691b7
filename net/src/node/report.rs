//! What a peer says about itself when asked (`peer status`): its load, capacity and
//! version, gathered from every connected peer at once.

use std::collections::HashMap;
use std::time::Instant;

use super::state::Pending;
use super::{Node, Output};
use crate::wire::bounded::SUSPICIONS;
use crate::wire::{PeerReport, Request, Response, Suspected};

/// A peer's report, or why it gave none.
pub(crate) type Report = (u64, Result<PeerReport, String>);

/// Reports being gathered: the answers so far, and how many peers have not answered.
#[derive(Debug, Default)]
pub(crate) struct Gathering {
    reports: Vec<Report>,
    left: usize,
}

impl Node {
    /// Closures this peer's clients have run here.
    pub(crate) fn local_only(&self) -> u64 {
        (self.settings.local_only).load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This peer's report.
    pub(crate) fn report(&self, now: Instant) -> PeerReport {
        let newest = self.recoveries.len().saturating_sub(SUSPICIONS);
        PeerReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            workers: self.settings.workers as u32,
            ready: self.ready.len() as u64,
            running: self.running as u64,
            owned: self.owned.len() as u64,
            ran: self.stats.ran,
            peers: self.membership.up().len() as u32,
            hosted: self.prims.hosted_keys() as u32,
            draining: self.draining,
            serves: self.can_run.clone(),
            local: self.local_only(),
            suspected: (self.recoveries[newest..].iter())
                .map(|r| Suspected {
                    peer: r.peer,
                    ago_us: now.saturating_duration_since(r.at).as_micros() as u64,
                    reason: r.reason.clone(),
                    requeued: r.requeued as u64,
                })
                .collect(),
        }
    }

    /// Asks every connected peer for its report; answered with [`Output::Reports`].
    pub(crate) fn gather_reports(&mut self, waiter: u64, now: Instant) {
        let mut peers: Vec<u64> = self.membership.up().iter().copied().collect();
        peers.sort_unstable();
        let mut gathering = Gathering {
            reports: vec![(self.me, Ok(self.report(now)))],
            left: peers.len(),
        };
        if peers.is_empty() {
            let reports = std::mem::take(&mut gathering.reports);
            self.outputs.push_back(Output::Reports { waiter, reports });
            return;
        }
        self.reports.insert(waiter, gathering);
        for peer in peers {
            self.send(peer, Pending::Report(waiter, peer), Request::Report);
        }
        self.after(now);
    }

    /// A peer answered (or did not).
    pub(super) fn reported(&mut self, waiter: u64, peer: u64, response: Result<Response, String>) {
        let Some(gathering) = self.reports.get_mut(&waiter) else {
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
            && let Some(done) = self.reports.remove(&waiter)
        {
            let mut reports = done.reports;
            reports.sort_by_key(|(peer, _)| *peer);
            self.outputs.push_back(Output::Reports { waiter, reports });
        }
    }
}

/// Gatherings by waiter.
pub(crate) type Reports = HashMap<u64, Gathering>;
