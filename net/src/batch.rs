//! Calls of a cheap named task handed to the swarm in batches: one node task for many calls.
//!
//! A task through the node costs its owner some 15–40 µs of the event loop, whatever it
//! runs; a call of a kind kept here ([`crate::local_first`]) runs in less than 20 µs. So
//! when this peer's pool cannot keep up with such calls, they are not handed on one by one:
//! [`Batches`] gathers them per kind, and a full batch (or one left open for
//! [`FLUSH_AFTER`]) becomes one task whose [`TaskSpec::calls`](crate::wire::TaskSpec::calls)
//! names each call's arguments, with an argument shared by several calls (a future's value)
//! sent once. It is stolen, run again after a loss and fetched like any task; its runner
//! calls the task once per call ([`run_calls`]) and its result is a
//! [`CallResults`](crate::wire::CallResults), which the owner splits among the futures.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use peer_core::named::Registration;

use crate::node::Bytes;
use crate::wire::{CALL_RESULT, CallArgs, CallResults, Failure, TaskKey};

/// How long a batch that is not full waits for another call before it is handed on (a
/// submitter that stops to wait does not wait for its batch longer)...
pub(crate) const FLUSH_AFTER: Duration = Duration::from_micros(200);

/// ...and how long it is kept open at most, for a submitter that adds calls slowly.
pub(crate) const FLUSH_AT_MOST: Duration = Duration::from_millis(2);

/// The open batches of calls `C`, one per kind of task (by fingerprint) at most.
///
/// A batch runs as one task once every future it reads has its value, so grouping calls
/// must not make one wait for what it does not read: a call kept on the pool (or a task
/// running there) that reads a call of the batch, while the batch waits for it, would wait
/// for good. So a batch opened by a call that waits on nothing takes only calls whose
/// futures are its own calls (it waits on nothing outside); a batch opened by a call that
/// waits on futures F takes only calls that wait on all of F or on its own calls, and on
/// nothing else (all its calls wait on F anyway). A call that does not fit goes alone, or,
/// if the open batch has [`REPLACE_AT`] calls, sends it on and opens the next ([`Fit`]).
pub(crate) struct Batches<C> {
    open: Mutex<HashMap<u64, Open<C>>>,
    /// How many are open: read without the lock while none is.
    count: AtomicUsize,
}

struct Open<C> {
    calls: Vec<C>,
    /// The ids of their futures.
    ids: HashSet<u64>,
    /// The futures without values that its first call waits on.
    before: Vec<u64>,
    /// The bytes of their arguments.
    bytes: usize,
    opened: Instant,
    /// When the last call joined.
    joined: Instant,
}

impl<C> Open<C> {
    /// When it goes if no call joins it.
    fn due(&self) -> Instant {
        (self.joined + FLUSH_AFTER).min(self.opened + FLUSH_AT_MOST)
    }

    /// Whether a call that waits on `waits_on` may join (see [`Batches`]).
    fn takes(&self, waits_on: &[u64]) -> bool {
        let own = |dep: &u64| self.ids.contains(dep);
        if self.before.is_empty() {
            return waits_on.iter().all(own);
        }
        let known = waits_on
            .iter()
            .all(|dep| own(dep) || self.before.contains(dep));
        let through_own = waits_on.iter().any(own);
        let all_before = self.before.iter().all(|dep| waits_on.contains(dep));
        known && (through_own || all_before)
    }
}

/// A batch whose arguments reach this many bytes goes, however few its calls: a batch
/// crosses the wire in one frame.
pub(crate) const BATCH_BYTES: usize = 256 * 1024;

/// An open batch of at least this many calls goes ahead of a call that cannot join it, and
/// that call opens the next; a smaller one stays open, and the call goes alone.
pub(crate) const REPLACE_AT: usize = 8;

/// Where a call stands with the open batch of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    /// None is open: the call may open one.
    Open,
    /// It may join the open one.
    Join,
    /// It cannot join, and the open one goes first: the call opens the next.
    Replace,
    /// It cannot join, and the open one stays: the call goes alone.
    Refuse,
}

/// One call for [`Batches::add`].
pub(crate) struct Joining<'a, C> {
    /// Its kind of task.
    pub(crate) fingerprint: u64,
    /// The id of its future.
    pub(crate) id: u64,
    /// The ids of the futures it reads that have no values yet.
    pub(crate) waits_on: &'a [u64],
    /// The bytes of its encoded arguments.
    pub(crate) bytes: usize,
    pub(crate) call: C,
}

/// What [`Batches::add`] did with a call.
pub(crate) enum Added<C> {
    /// It joined the open batch; if it filled it, the batch to hand on now.
    Joined(Option<Vec<C>>),
    /// It opened a batch, to hand on within [`FLUSH_AT_MOST`]; with the batch open before
    /// it, to hand on now.
    Opened(Option<Vec<C>>),
    /// It could not join the open batch (see [`Fit::Refuse`]): here it is back.
    Refused(C),
}

impl<C> Default for Batches<C> {
    fn default() -> Self {
        Batches {
            open: Mutex::default(),
            count: AtomicUsize::new(0),
        }
    }
}

impl<C> Batches<C> {
    /// Whether any batch is open; no lock.
    pub(crate) fn any_open(&self) -> bool {
        // Relaxed: a batch opened meanwhile is seen by `add`, which decides under the lock.
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Where a call of kind `fingerprint` that waits on `waits_on` stands.
    pub(crate) fn fit(&self, fingerprint: u64, waits_on: &[u64]) -> Fit {
        if !self.any_open() {
            return Fit::Open;
        }
        Self::fit_in(self.lock().get(&fingerprint), waits_on)
    }

    fn fit_in(open: Option<&Open<C>>, waits_on: &[u64]) -> Fit {
        match open {
            None => Fit::Open,
            Some(batch) if batch.takes(waits_on) => Fit::Join,
            Some(batch) if batch.calls.len() >= REPLACE_AT => Fit::Replace,
            Some(_) => Fit::Refuse,
        }
    }

    /// Adds a call to the open batch of its kind, which is full at `size` calls or
    /// [`BATCH_BYTES`], or opens one (see [`Fit`]).
    pub(crate) fn add(&self, joining: Joining<'_, C>, size: usize, now: Instant) -> Added<C> {
        let Joining {
            fingerprint,
            id,
            waits_on,
            bytes,
            call,
        } = joining;
        let mut open = self.lock();
        let before = match Self::fit_in(open.get(&fingerprint), waits_on) {
            Fit::Refuse => return Added::Refused(call),
            Fit::Join => {
                let Some(batch) = open.get_mut(&fingerprint) else {
                    return Added::Refused(call);
                };
                batch.calls.push(call);
                batch.ids.insert(id);
                batch.bytes += bytes;
                batch.joined = now;
                if batch.calls.len() < size.max(2) && batch.bytes < BATCH_BYTES {
                    return Added::Joined(None);
                }
                let full = open.remove(&fingerprint).map(|b| b.calls);
                self.count.store(open.len(), Ordering::Relaxed);
                return Added::Joined(full);
            }
            Fit::Replace => open.remove(&fingerprint).map(|b| b.calls),
            Fit::Open => None,
        };
        let batch = Open {
            calls: vec![call],
            ids: HashSet::from([id]),
            before: waits_on.to_vec(),
            bytes,
            opened: now,
            joined: now,
        };
        open.insert(fingerprint, batch);
        self.count.store(open.len(), Ordering::Relaxed);
        Added::Opened(before)
    }

    /// Takes the batches due at `now` (no call joined for [`FLUSH_AFTER`], or open for
    /// [`FLUSH_AT_MOST`]), with when the next of those left open will be.
    pub(crate) fn due(&self, now: Instant) -> (Vec<Vec<C>>, Option<Instant>) {
        let mut open = self.lock();
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        open.retain(|_, batch| {
            let at = batch.due();
            if at <= now {
                due.push(std::mem::take(&mut batch.calls));
                false
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
                true
            }
        });
        self.count.store(open.len(), Ordering::Relaxed);
        (due, next)
    }

    /// Takes every open batch: at shutdown, to fail their calls rather than hold them.
    pub(crate) fn take_all(&self) -> Vec<Vec<C>> {
        let mut open = self.lock();
        self.count.store(0, Ordering::Relaxed);
        open.drain().map(|(_, batch)| batch.calls).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Open<C>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs each call of the batch `task` with its arguments out of `args` or earlier calls'
/// results, in order: a call that panics, fails or names an argument that is not there
/// fails alone; a call that reads a failed call fails as its input failed.
pub(crate) fn run_calls(
    registration: &Registration,
    task: TaskKey,
    calls: &[CallArgs],
    args: &[Bytes],
) -> CallResults {
    // Results stay shared while the batch runs: a call that reads an earlier one 4,096
    // times holds 4,096 counts, not 4,096 copies.
    let mut results: Vec<Result<Bytes, Failure>> = Vec::with_capacity(calls.len());
    let mut mine = Vec::new();
    for call in calls {
        mine.clear();
        let mut failed = None;
        for &index in &call.0 {
            let arg = match index.checked_sub(CALL_RESULT) {
                None => args.get(usize::from(index)).cloned().ok_or_else(|| {
                    Failure::BadArguments(format!(
                        "a call of the batch names argument {index} of {}",
                        args.len()
                    ))
                }),
                Some(earlier) => match results.get(usize::from(earlier)) {
                    Some(Ok(bytes)) => Ok(Bytes::clone(bytes)),
                    Some(Err(cause)) => Err(Failure::input(task, cause)),
                    None => Err(Failure::BadArguments(format!(
                        "a call of the batch reads call {earlier}, which is not before it"
                    ))),
                },
            };
            match arg {
                Ok(arg) => mine.push(arg),
                Err(failure) => {
                    failed = Some(failure);
                    break;
                }
            }
        }
        results.push(match failed {
            Some(failure) => Err(failure),
            None => run_call(registration, &mine).map(Bytes::new),
        });
    }
    drop(mine);
    (results.into_iter())
        .map(|result| result.map(|bytes| Bytes::try_unwrap(bytes).unwrap_or_else(|b| (*b).clone())))
        .collect()
}

/// The earlier call of batch `batch` whose failure made call `i` fail as its input (the
/// first of a chain of such calls to fail of itself), if that is why call `i` failed.
pub(crate) fn failed_input(
    mut i: usize,
    batch: TaskKey,
    results: &CallResults,
    calls: &[CallArgs],
) -> Option<usize> {
    let mut found = None;
    // Each step goes to an earlier call, so this ends; results may come from any peer.
    while let Some(Err(Failure::Input { task, .. })) = results.get(i) {
        if *task != batch {
            break;
        }
        let reads = calls.get(i).map_or(&[][..], |call| &call.0[..]);
        let Some(earlier) = (reads.iter())
            .filter_map(|index| index.checked_sub(CALL_RESULT))
            .map(usize::from)
            .find(|p| *p < i && matches!(results.get(*p), Some(Err(_))))
        else {
            break;
        };
        found = Some(earlier);
        i = earlier;
    }
    found
}

/// The results of a batch of `count` calls from its encoded result, as any peer may have
/// sent it: results that do not decode, or not one per call, fail every call.
pub(crate) fn results(bytes: &[u8], count: usize) -> Result<CallResults, Failure> {
    match postcard::from_bytes::<CallResults>(bytes) {
        Ok(results) if results.len() == count => Ok(results),
        Ok(results) => Err(Failure::BadResult(format!(
            "a batch of {count} calls came back with {} results",
            results.len()
        ))),
        Err(error) => Err(Failure::BadResult(format!("a batch's results: {error}"))),
    }
}

/// Runs one call of a registered task: its encoded result, or why there is none (a panic
/// is caught and named).
pub(crate) fn run_call(registration: &Registration, args: &[Bytes]) -> Result<Vec<u8>, Failure> {
    match catch_unwind(AssertUnwindSafe(|| registration.call_shared(args))) {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => Err(call_failure(error)),
        Err(payload) => Err(Failure::Panicked(panic_message(payload.as_ref()))),
    }
}

fn call_failure(error: peer_core::ext::CallError) -> Failure {
    use peer_core::ext::CallError;
    match error {
        CallError::DecodeResult(m) | CallError::EncodeResult(m) => Failure::BadResult(m),
        other => Failure::BadArguments(other.to_string()),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use peer_core::named::registry;

    /// Halves an even number; panics on an odd one.
    #[peer_core::task]
    fn halve(n: u64) -> u64 {
        assert!(n.is_multiple_of(2), "odd: {n}");
        n / 2
    }

    fn arg(n: u64) -> Bytes {
        Bytes::new(postcard::to_allocvec(&n).unwrap())
    }

    fn value(result: &Result<Vec<u8>, Failure>) -> Result<u64, &Failure> {
        result
            .as_ref()
            .map(|bytes| postcard::from_bytes(bytes).unwrap())
    }

    #[test]
    fn results_not_one_per_call_or_not_decoding_fail_the_batch() {
        let two: CallResults = vec![Ok(vec![1]), Err(Failure::UnknownTask)];
        let bytes = postcard::to_allocvec(&two).unwrap();
        assert_eq!(results(&bytes, 2), Ok(two));
        assert!(
            matches!(results(&bytes, 3), Err(Failure::BadResult(m)) if m.contains("2 results"))
        );
        assert!(matches!(results(&[0xff; 9], 2), Err(Failure::BadResult(_))));
        // A count far beyond the bytes that follow it is refused, not allocated.
        let huge = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(results(&huge, 2), Err(Failure::BadResult(_))));
    }

    #[test]
    fn a_failure_passed_along_calls_of_the_batch_is_traced_to_the_first() {
        let key = TaskKey { owner: 1, seq: 9 };
        let other = TaskKey { owner: 2, seq: 3 };
        let panicked = Failure::Panicked("boom".into());
        let results: CallResults = vec![
            Ok(vec![1]),
            Err(panicked.clone()),
            Err(Failure::input(key, &panicked)),   // reads call 1
            Err(Failure::input(key, &panicked)),   // reads calls 0 and 2
            Err(Failure::input(other, &panicked)), // an input from outside the batch
        ];
        let calls = [
            CallArgs(vec![0]),
            CallArgs(vec![1]),
            CallArgs(vec![CALL_RESULT + 1]),
            CallArgs(vec![CALL_RESULT, CALL_RESULT + 2]),
            CallArgs(vec![2]),
        ];
        assert_eq!(failed_input(2, key, &results, &calls), Some(1));
        assert_eq!(
            failed_input(3, key, &results, &calls),
            Some(1),
            "through call 2"
        );
        assert_eq!(
            failed_input(1, key, &results, &calls),
            None,
            "failed of itself"
        );
        assert_eq!(
            failed_input(4, key, &results, &calls),
            None,
            "not the batch's"
        );
        assert_eq!(failed_input(0, key, &results, &calls), None);
        assert_eq!(failed_input(9, key, &results, &calls), None);
    }

    #[test]
    fn each_call_runs_on_its_arguments_and_fails_alone() {
        let halve = registry()
            .get("peer_net::batch::tests::halve")
            .expect("registered");
        let key = TaskKey { owner: 1, seq: 9 };
        let args = [arg(8), arg(3)];
        let calls = [
            CallArgs(vec![0]),               // 8 / 2
            CallArgs(vec![CALL_RESULT]),     // the first call's 4, halved
            CallArgs(vec![1]),               // 3: panics
            CallArgs(vec![CALL_RESULT + 2]), // reads the panicked call
            CallArgs(vec![5]),               // no such argument
            CallArgs(vec![CALL_RESULT + 7]), // no such call before it
            CallArgs(vec![CALL_RESULT + 1]), // 2, halved
        ];
        let results = run_calls(halve, key, &calls, &args);
        assert_eq!(results.len(), calls.len());
        assert_eq!(value(&results[0]), Ok(4));
        assert_eq!(value(&results[1]), Ok(2));
        assert!(matches!(&results[2], Err(Failure::Panicked(m)) if m.contains("odd: 3")));
        assert!(matches!(
            &results[3],
            Err(Failure::Input { task, cause }) if *task == key && matches!(**cause, Failure::Panicked(_))
        ));
        assert!(matches!(&results[4], Err(Failure::BadArguments(_))));
        assert!(matches!(&results[5], Err(Failure::BadArguments(_))));
        assert_eq!(
            value(&results[6]),
            Ok(1),
            "the failures before it change nothing"
        );
    }

    /// Adds call `id` of kind `fingerprint`, which waits on `waits_on`, to batches of
    /// `size`.
    fn add(
        batches: &Batches<u64>,
        size: usize,
        (fingerprint, id): (u64, u64),
        waits_on: &[u64],
    ) -> Added<u64> {
        let joining = Joining {
            fingerprint,
            id,
            waits_on,
            bytes: 1,
            call: id,
        };
        batches.add(joining, size, Instant::now())
    }

    #[test]
    fn a_batch_goes_when_full_and_a_new_one_opens_after_it() {
        let batches = Batches::default();
        assert!(matches!(add(&batches, 3, (7, 1), &[]), Added::Opened(None)));
        assert!(
            matches!(add(&batches, 3, (7, 2), &[1]), Added::Joined(None)),
            "it reads a call of the batch"
        );
        assert!(
            matches!(add(&batches, 3, (8, 3), &[]), Added::Opened(None)),
            "one per kind"
        );
        match add(&batches, 3, (7, 4), &[]) {
            Added::Joined(full) => assert_eq!(full, Some(vec![1, 2, 4]), "in order"),
            _ => panic!("the third call fills the batch"),
        }
        assert!(matches!(add(&batches, 3, (7, 5), &[]), Added::Opened(None)));
    }

    #[test]
    fn a_batch_takes_only_calls_that_wait_on_what_it_waits_on() {
        let batches = Batches::default();
        // The first call reads 100, not done yet (the data of a loop, say).
        assert!(matches!(
            add(&batches, 100, (7, 1), &[100]),
            Added::Opened(None)
        ));
        assert_eq!(batches.fit(7, &[100]), Fit::Join, "reads it too");
        assert_eq!(batches.fit(7, &[1]), Fit::Join, "reads a call of the batch");
        assert_eq!(batches.fit(7, &[1, 100]), Fit::Join);
        // A call that waits on nothing would wait for 100 in it; one that waits on 50 too,
        // and 50 may wait on a call of the batch (a kept call that reads it, say).
        assert_eq!(batches.fit(7, &[]), Fit::Refuse);
        assert_eq!(batches.fit(7, &[50]), Fit::Refuse);
        assert_eq!(batches.fit(7, &[100, 50]), Fit::Refuse);
        assert_eq!(batches.fit(8, &[50]), Fit::Open, "another kind");
        assert!(matches!(
            add(&batches, 100, (7, 2), &[50]),
            Added::Refused(2)
        ));
        for id in 3..=9 {
            assert!(matches!(
                add(&batches, 100, (7, id), &[100]),
                Added::Joined(None)
            ));
        }
        // Eight calls open: the next that cannot join sends them on and opens the next.
        assert_eq!(batches.fit(7, &[50]), Fit::Replace);
        match add(&batches, 100, (7, 10), &[50]) {
            Added::Opened(Some(before)) => assert_eq!(before, [1, 3, 4, 5, 6, 7, 8, 9]),
            _ => panic!("it replaces the open batch"),
        }

        // A batch whose first call waits on nothing takes only calls that wait on nothing
        // outside it: it waits on nothing.
        let free = Batches::default();
        assert!(matches!(add(&free, 100, (7, 1), &[]), Added::Opened(None)));
        assert_eq!(free.fit(7, &[]), Fit::Join);
        assert_eq!(free.fit(7, &[1]), Fit::Join);
        assert_eq!(free.fit(7, &[100]), Fit::Refuse);
        assert_eq!(free.take_all(), [vec![1]]);
        assert_eq!(free.fit(7, &[100]), Fit::Open, "none open after take_all");
    }

    #[test]
    fn open_batches_go_once_they_waited_long_enough() {
        let batches = Batches::default();
        let start = Instant::now();
        let joining = |fingerprint, id| Joining {
            fingerprint,
            id,
            waits_on: &[],
            bytes: 1,
            call: id,
        };
        let _ = batches.add(joining(7, 1), 100, start);
        let _ = batches.add(joining(7, 2), 100, start);
        let later = start + FLUSH_AFTER / 2;
        let _ = batches.add(joining(8, 3), 100, later);
        let (due, next) = batches.due(start);
        assert!(due.is_empty());
        assert_eq!(next, Some(start + FLUSH_AFTER));
        let (due, next) = batches.due(start + FLUSH_AFTER);
        assert_eq!(due, [vec![1, 2]]);
        assert_eq!(next, Some(later + FLUSH_AFTER));
        let (due, next) = batches.due(later + FLUSH_AFTER);
        assert_eq!((due.len(), next), (1, None));

        // A call that joins keeps its batch open, up to a most.
        let mut now = start;
        let _ = batches.add(joining(7, 4), 100, now);
        while now < start + FLUSH_AT_MOST {
            assert!(
                batches.due(now).0.is_empty(),
                "joined {:?} ago",
                now - start
            );
            now += FLUSH_AFTER / 2;
            let _ = batches.add(joining(7, 5), 100, now);
        }
        assert_eq!(batches.due(now).0.len(), 1, "open for its most");
    }
}
