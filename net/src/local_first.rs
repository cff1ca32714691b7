//! Which named tasks a peer keeps on its own pool instead of handing them to the swarm.
//!
//! A task handed to the node costs the submitting peer some 15–40 µs of its event loop
//! (numbering, the owned record, dispatch, the run's report, resolving the future) before a
//! thief can save it anything; a task that runs in less than that is cheaper to run here, as
//! a local client would (typed, nothing encoded, well under a microsecond of scheduling),
//! than to spread. So a peer measures each kind of named task (the time of a call, the size
//! of its encoded result), and a kind whose calls average under [`Config::keep_below`] and
//! whose results travel inline is kept here: its calls become local tasks that no thief
//! sees ([`Place::Here`]).
//!
//! - The first call of a kind not measured yet runs here, measured ([`Place::HereMeasured`]):
//!   the node would have run it here too, its own workers coming first. A second call
//!   submitted before that measure is back (not from a worker of the pool) waits for it,
//!   at most [`PROBE_WAIT`] and once per kind (a submitter far ahead of its workers would
//!   otherwise hand the swarm a queue's worth of calls, a thousand, before a worker could
//!   run the first); from then until the measure comes, calls of the kind go to the swarm,
//!   so a kind of long tasks is never kept by mistake.
//! - Every [`RESAMPLE`]th call of a kept kind is measured again, so the measure follows a kind
//!   whose calls grow heavier or whose results grow large; runs of this peer's own tasks of
//!   the kind that the node hands its workers are measured too (other peers' tasks are not:
//!   they must not decide what this one keeps). A probe that panics still reports its time,
//!   with no result; a run through the node that fails is not measured.
//! - Only kinds this peer runs for itself are kept: a task it withholds
//!   ([`Config::withhold_task`]) always goes to the swarm.
//! - Kept calls the pool cannot keep up with go to the swarm in batches: once the kept
//!   work not yet run (estimated from the kinds' means, drained by the pool's workers)
//!   reaches [`BACKLOG`] per worker, and some peer is up, further calls of a kept kind
//!   are handed on, gathered by [`crate::batch`] into node tasks of about [`BATCH_WORK`]
//!   each. A batch costs the node what one call would, so thieves can share a loop of
//!   calls that one at a time would cost more to move than to run. The estimate takes no
//!   word from the workers: a kept call costs no more than before.
//! - A kind with large results is not kept: a kept value that tasks elsewhere read is
//!   encoded once per reader and served from this peer (`Tasks::keep_local_value`), while
//!   through the node it is encoded once and fetched from whoever made it.
//!
//! [`Config::keep_below`]: crate::Config::keep_below
//! [`Config::withhold_task`]: crate::Config::withhold_task

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use peer_core::ext::Place;

/// Every this many calls of a kept kind, one is measured again.
pub(crate) const RESAMPLE: u32 = 64;

/// How long a call waits, once per kind, for the measure of the kind's first call.
pub(crate) const PROBE_WAIT: Duration = Duration::from_millis(2);

/// Kept work not yet run, per worker of the pool, beyond which calls of kept kinds are
/// handed on in batches: a few batches' worth, so the pool never waits for the swarm.
pub(crate) const BACKLOG: Duration = Duration::from_millis(4);

/// The work a batch of kept calls aims at: enough that the node's cost per task (some
/// 15–40 µs) is a few percent of it, little enough that a steal of half the batches
/// still balances. (W2 on 2 processes: 1.56–1.79 × ideal at 2 ms, 1.87–1.99 at 1 ms,
/// 1.66–1.86 at 4 ms.)
pub(crate) const BATCH_WORK: Duration = Duration::from_millis(2);

/// Calls faster than this stay on the pool however far behind it is: a call handed on in
/// a batch costs its submitter about a microsecond more (its future, its arguments and
/// result encoded), which a call this short never wins back (W9: 10,000 calls of 0.6 µs
/// took 2.3–2.5 × the local client's time when they were batched too).
pub(crate) const BATCH_MIN: Duration = Duration::from_micros(5);

/// Calls longer than this go one by one: the node's cost per task is a few percent of
/// them at most, and a batch of fewer calls would balance worse for little gain.
pub(crate) const BATCH_MOST: Duration = Duration::from_micros(250);

/// Bounds on the calls of a batch.
const BATCH_CALLS: std::ops::RangeInclusive<usize> = 8..=1024;

/// The results a batch is expected to return, at most (by its kind's mean result size):
/// a batch's results travel as one value, fetched like any task's, so 1,024 calls of
/// 64 KiB must not make one 64 MiB value (the frame limit).
pub(crate) const BATCH_RESULTS: usize = 1 << 20;

/// Weight of a new run in a kind's running mean, as a divisor (a new run counts for 1/4).
const WEIGHT: u32 = 4;

/// What is known of one kind of named task.
#[derive(Debug, Clone, Copy, Default)]
struct Kind {
    /// The running mean of its run time, once a run was measured.
    mean: Option<Duration>,
    /// Its last measured result was over the inline limit.
    large: bool,
    /// The running mean of its results' encoded size.
    size: usize,
    /// A first call runs here to be measured, its measure not back yet.
    probing: bool,
    /// A call waited for that measure already.
    waited: bool,
    /// Calls kept since the last one measured.
    kept: u32,
}

/// The measures behind the decision, with no clock and no locks: runs in, places out.
#[derive(Debug, Default)]
pub(crate) struct Estimates {
    /// Kinds whose calls average less than this are kept here; zero keeps nothing.
    below: Duration,
    /// Results larger than this travel as a holder's address, not inline.
    inline_max: usize,
    /// The kinds this peer runs for itself, sorted: no other is kept.
    runs: Vec<u64>,
    kinds: HashMap<u64, Kind>,
    /// The pool's workers, which drain the kept work.
    workers: u32,
    /// The kept work not yet run, as of `backlog_at`: each kept call adds its kind's mean,
    /// and time takes away `workers` times itself.
    backlog: Duration,
    backlog_at: Option<Instant>,
}

impl Estimates {
    /// Keeps kinds of `runs` (fingerprints) that run faster than `below`, on a pool of
    /// `workers`.
    pub(crate) fn new(
        below: Duration,
        inline_max: usize,
        mut runs: Vec<u64>,
        workers: usize,
    ) -> Estimates {
        runs.sort_unstable();
        Estimates {
            below,
            inline_max,
            runs,
            kinds: HashMap::new(),
            workers: u32::try_from(workers.max(1)).unwrap_or(u32::MAX),
            backlog: Duration::ZERO,
            backlog_at: None,
        }
    }

    /// Whether a call of kind `fingerprint` that would run here at `now` should be handed
    /// on instead (if it `may` be), the pool being [`BACKLOG`] behind; if not, its work
    /// counts in the backlog.
    pub(crate) fn behind(&mut self, fingerprint: u64, now: Instant, may: bool) -> bool {
        let drained = self
            .backlog_at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        self.backlog = self.backlog.saturating_sub(drained * self.workers);
        self.backlog_at = Some(now);
        if may && self.backlog >= BACKLOG * self.workers && self.batch_size(fingerprint).is_some() {
            return true;
        }
        let mean = self.kinds.get(&fingerprint).and_then(|kind| kind.mean);
        self.backlog += mean.unwrap_or_default();
        false
    }

    /// A call of kind `fingerprint` ran on this peer's workers in `took`, with a result of
    /// `size` bytes encoded (zero for a failure).
    pub(crate) fn ran(&mut self, fingerprint: u64, took: Duration, size: usize) {
        if self.below.is_zero() {
            return;
        }
        let kind = self.kinds.entry(fingerprint).or_default();
        kind.mean = Some(match kind.mean {
            Some(mean) => (mean * (WEIGHT - 1) + took) / WEIGHT,
            None => took,
        });
        kind.large = size > self.inline_max;
        kind.size = match kind.size {
            0 => size,
            mean => (mean * (WEIGHT as usize - 1) + size) / WEIGHT as usize,
        };
        kind.probing = false;
    }

    /// Whether a call of kind `fingerprint` should wait for the measure of its first call:
    /// it is not back, and no call waited for it yet (this one will).
    pub(crate) fn wait_for_probe(&mut self, fingerprint: u64) -> bool {
        match self.kinds.get_mut(&fingerprint) {
            Some(kind) if kind.probing && !kind.waited => {
                kind.waited = true;
                true
            }
            _ => false,
        }
    }

    /// Whether the first call of kind `fingerprint` is still being measured.
    fn probing(&self, fingerprint: u64) -> bool {
        self.kinds
            .get(&fingerprint)
            .is_some_and(|kind| kind.probing)
    }

    /// How many calls of kind `fingerprint` make a batch, if its calls may go in batches
    /// (measured between [`BATCH_MIN`] and [`BATCH_MOST`], small results): about
    /// [`BATCH_WORK`] of them, and [`BATCH_RESULTS`] of results at most.
    pub(crate) fn batch_size(&self, fingerprint: u64) -> Option<usize> {
        let kind = self.kinds.get(&fingerprint)?;
        let mean = kind.mean?;
        if self.below.is_zero() || kind.large || mean < BATCH_MIN || mean > BATCH_MOST {
            return None;
        }
        let calls = BATCH_WORK.as_nanos() / mean.as_nanos().max(1);
        let calls = usize::try_from(calls).unwrap_or(usize::MAX);
        let fit = BATCH_RESULTS / kind.size.max(1);
        if fit < *BATCH_CALLS.start() {
            return None;
        }
        Some(
            calls
                .min(fit)
                .clamp(*BATCH_CALLS.start(), *BATCH_CALLS.end()),
        )
    }

    /// Whether calls of kind `fingerprint` are kept here (once measured).
    fn keeps(&self, fingerprint: u64) -> bool {
        self.runs.binary_search(&fingerprint).is_ok()
            && (self.kinds.get(&fingerprint))
                .is_some_and(|k| !k.large && k.mean.is_some_and(|mean| mean < self.below))
    }

    /// Where this call of kind `fingerprint` runs (see the [module docs](self)).
    pub(crate) fn place(&mut self, fingerprint: u64) -> Place {
        if self.below.is_zero() || self.runs.binary_search(&fingerprint).is_err() {
            return Place::Remote;
        }
        let below = self.below;
        let kind = self.kinds.entry(fingerprint).or_default();
        match kind.mean {
            None if kind.probing => Place::Remote,
            None => {
                kind.probing = true;
                Place::HereMeasured
            }
            Some(mean) if kind.large || mean >= below => Place::Remote,
            Some(_) => {
                kind.kept += 1;
                if kind.kept >= RESAMPLE {
                    kind.kept = 0;
                    Place::HereMeasured
                } else {
                    Place::Here
                }
            }
        }
    }
}

/// [`Estimates`] shared by the peer's submitters (who ask) and its workers (who measure),
/// with the count of calls kept.
#[derive(Debug)]
pub(crate) struct LocalFirst {
    estimates: Mutex<Estimates>,
    /// Signalled at each measure, for a call waiting for its kind's first.
    measured: Condvar,
    /// How long that call waits at most ([`PROBE_WAIT`]).
    probe_wait: Duration,
    /// Shared with the node, which counts them in what this peer ran.
    kept: Arc<AtomicU64>,
}

impl LocalFirst {
    /// See [`Estimates::new`]; counts the calls kept into `kept`.
    pub(crate) fn new(
        below: Duration,
        inline_max: usize,
        runs: Vec<u64>,
        workers: usize,
        kept: Arc<AtomicU64>,
    ) -> LocalFirst {
        LocalFirst {
            estimates: Mutex::new(Estimates::new(below, inline_max, runs, workers)),
            measured: Condvar::new(),
            probe_wait: PROBE_WAIT,
            kept,
        }
    }

    /// See [`Estimates::ran`].
    pub(crate) fn ran(&self, fingerprint: u64, took: Duration, size: usize) {
        self.lock().ran(fingerprint, took, size);
        self.measured.notify_all();
    }

    /// See [`Estimates::place`]; counts the calls kept here. A call of a kind whose first
    /// call is being measured waits for it if it `may_wait` (see the [module docs](self)):
    /// not on a worker of the pool, where the probe may be queued behind it. If it may
    /// `hand_on` (a peer is up, and the call could go in a batch), a call beyond the
    /// [`BACKLOG`] goes to the swarm, to be batched.
    pub(crate) fn place(&self, fingerprint: u64, may_wait: bool, hand_on: bool) -> Place {
        let mut estimates = self.lock();
        if may_wait && estimates.wait_for_probe(fingerprint) {
            estimates = self
                .measured
                .wait_timeout_while(estimates, self.probe_wait, |e| e.probing(fingerprint))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let place = estimates.place(fingerprint);
        if place != Place::Remote && estimates.behind(fingerprint, Instant::now(), hand_on) {
            return Place::Remote;
        }
        drop(estimates);
        if place != Place::Remote {
            // Relaxed: a count read on its own, for the status.
            self.kept.fetch_add(1, Ordering::Relaxed);
        }
        place
    }

    /// How many calls of kind `fingerprint` make a batch, if this call, which the swarm
    /// takes, goes in one: a call of a kept kind comes to the swarm only when the pool is
    /// behind ([`LocalFirst::place`]); a call of a kind handed on anyway, when the work
    /// this peer holds is (see [`Estimates::behind`]); else it goes alone, at once.
    pub(crate) fn batch_size(&self, fingerprint: u64) -> Option<usize> {
        let mut estimates = self.lock();
        let size = estimates.batch_size(fingerprint)?;
        if estimates.keeps(fingerprint) || estimates.behind(fingerprint, Instant::now(), true) {
            Some(size)
        } else {
            None
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Estimates> {
        self.estimates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn the_first_call_of_a_kind_is_measured_here_and_the_rest_wait_for_its_measure() {
        let mut e = Estimates::new(20 * US, 1024, vec![1, 2, 7, 8], 1);
        assert_eq!(e.place(7), Place::HereMeasured);
        assert!(e.wait_for_probe(7), "the second call waits");
        assert!(!e.wait_for_probe(7), "once");
        assert_eq!(e.place(7), Place::Remote);
        assert_eq!(e.place(7), Place::Remote);
        assert_eq!(
            e.place(8),
            Place::HereMeasured,
            "another kind is measured apart"
        );
        e.ran(7, 3 * US, 8);
        assert_eq!(e.place(7), Place::Here);
    }

    #[test]
    fn a_cheap_kind_is_kept_and_measured_again_once_in_resample_calls() {
        let mut e = Estimates::new(20 * US, 1024, vec![1, 2, 7, 8], 1);
        e.ran(7, 3 * US, 8);
        let places: Vec<Place> = (0..RESAMPLE * 3).map(|_| e.place(7)).collect();
        let measured = places.iter().filter(|p| **p == Place::HereMeasured).count();
        let kept = places.iter().filter(|p| **p == Place::Here).count();
        assert_eq!((measured, kept as u32), (3, (RESAMPLE - 1) * 3));
    }

    #[test]
    fn a_slow_or_large_kind_goes_to_the_swarm() {
        let mut e = Estimates::new(20 * US, 1024, vec![1, 2, 7, 8], 1);
        e.ran(1, 100 * US, 8);
        e.ran(2, 3 * US, 4096);
        assert_eq!(e.place(1), Place::Remote);
        assert_eq!(e.place(2), Place::Remote);
    }

    #[test]
    fn the_mean_follows_a_kind_that_grows_heavier_or_larger() {
        let mut e = Estimates::new(20 * US, 1024, vec![1, 2, 7, 8], 1);
        e.ran(7, 2 * US, 8);
        assert_eq!(e.place(7), Place::Here);
        for _ in 0..4 {
            e.ran(7, 200 * US, 8);
        }
        assert_eq!(e.place(7), Place::Remote);
        for _ in 0..20 {
            e.ran(7, 2 * US, 8);
        }
        assert_eq!(e.place(7), Place::Here, "and back when it is cheap again");
        e.ran(7, 2 * US, 4096);
        assert_eq!(e.place(7), Place::Remote, "its last result was large");
    }

    #[test]
    fn a_kind_this_peer_does_not_run_goes_to_the_swarm() {
        let mut e = Estimates::new(20 * US, 1024, vec![7], 1);
        e.ran(3, 2 * US, 8);
        assert_eq!(e.place(3), Place::Remote);
        assert_eq!(e.place(7), Place::HereMeasured);
    }

    #[test]
    fn a_call_waits_for_the_first_calls_measure_and_is_kept_if_it_comes() {
        let first = LocalFirst {
            // Long, so that a slow machine cannot make the test pass the wrong way.
            probe_wait: Duration::from_secs(60),
            ..LocalFirst::new(20 * US, 1024, vec![7], 1, Arc::default())
        };
        assert_eq!(first.place(7, true, false), Place::HereMeasured);
        std::thread::scope(|s| {
            s.spawn(|| {
                // Measures once the second call waits.
                while !first.lock().kinds.get(&7).is_some_and(|k| k.waited) {
                    std::thread::yield_now();
                }
                first.ran(7, 3 * US, 8);
            });
            assert_eq!(
                first.place(7, true, false),
                Place::Here,
                "waited for the measure"
            );
        });
    }

    #[test]
    fn zero_keeps_nothing() {
        let mut e = Estimates::new(Duration::ZERO, 1024, vec![7, 9], 1);
        e.ran(7, Duration::ZERO, 0);
        assert_eq!(e.place(7), Place::Remote);
        assert_eq!(e.place(9), Place::Remote);
    }

    #[test]
    fn calls_beyond_the_backlog_are_handed_on_until_the_workers_catch_up() {
        let mut e = Estimates::new(20 * US, 1024, vec![7, 9], 2);
        e.ran(7, 8 * US, 8);
        let start = Instant::now();
        // 2 workers, 4 ms each, of 8 µs calls: 1,000 calls at one instant.
        let kept = (0..2_000).take_while(|_| !e.behind(7, start, true)).count();
        assert_eq!(kept, 1_000);
        assert!(e.behind(7, start, true), "then they go");
        // 1 ms later the workers ran 2 ms of them: room for 250 more.
        let later = start + Duration::from_millis(1);
        let kept = (0..2_000).take_while(|_| !e.behind(7, later, true)).count();
        assert_eq!(kept, 250);
        // A kind too short to hand on is kept however far behind the pool is.
        e.ran(9, BATCH_MIN / 2, 8);
        assert!(!e.behind(9, later, true));
    }

    #[test]
    fn calls_of_a_kind_handed_on_anyway_go_alone_until_this_peer_is_behind() {
        // 100 µs: not kept, but short enough to batch.
        let first = LocalFirst::new(20 * US, 1024, vec![7], 1, Arc::default());
        first.ran(7, 100 * US, 8);
        assert_eq!(first.place(7, false, true), Place::Remote);
        let alone = (0..1_000)
            .take_while(|_| first.batch_size(7).is_none())
            .count();
        // 40 calls fill 4 ms; a few more while the clock runs.
        assert!(
            (40..=60).contains(&alone),
            "4 ms of work go alone first: {alone}"
        );
        assert_eq!(first.batch_size(7), Some(20), "then 2 ms batches");
    }

    #[test]
    fn nothing_is_handed_on_while_no_peer_is_up() {
        // One instant: no clock a loaded machine could slow.
        let mut e = Estimates::new(20 * US, 1024, vec![7], 1);
        e.ran(7, 8 * US, 8);
        let now = Instant::now();
        let alone = (0..2_000).filter(|_| e.behind(7, now, false)).count();
        assert_eq!(alone, 0, "kept with none, however far behind");
        assert!(e.behind(7, now, true), "handed on with a peer up");
    }

    #[test]
    fn a_batch_holds_about_its_work_of_calls_neither_too_short_nor_too_long() {
        let mut e = Estimates::new(20 * US, 1024, vec![7, 8, 9], 1);
        assert_eq!(e.batch_size(7), None, "not measured yet");
        e.ran(7, 8 * US, 8);
        let calls = (BATCH_WORK.as_micros() / 8) as usize;
        assert_eq!(e.batch_size(7), Some(calls));
        e.ran(8, 300 * US, 8);
        assert_eq!(e.batch_size(8), None, "too slow to batch");
        e.ran(9, 8 * US, 4096);
        assert_eq!(e.batch_size(9), None, "its results are large");
        // Results under the inline limit, but 250 of them make a batch's worth.
        let mut wide = Estimates::new(20 * US, 64 << 10, vec![7, 8], 1);
        for _ in 0..20 {
            wide.ran(7, 8 * US, 8 << 10);
            wide.ran(8, 8 * US, 60 << 10);
        }
        let size = wide.kinds[&7].size;
        assert_eq!(
            wide.batch_size(7),
            Some(BATCH_RESULTS / size),
            "results bound it"
        );
        assert!(BATCH_RESULTS / size < calls);
        assert_eq!(
            wide.batch_size(8),
            Some(BATCH_RESULTS / wide.kinds[&8].size)
        );
        assert!(wide.batch_size(8).unwrap() * (60 << 10) <= BATCH_RESULTS + (60 << 10));
        let mut short = Estimates::new(20 * US, 1024, vec![7, 8], 1);
        short.ran(7, BATCH_MIN, 8);
        assert_eq!(short.batch_size(7), Some(400), "2 ms of 5 µs calls");
        short.ran(8, BATCH_MIN / 2, 8);
        assert_eq!(short.batch_size(8), None, "too short to hand on");
    }
}
