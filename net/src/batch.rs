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
/// A batch runs as one task, once every future it reads is done, so it must not read a
/// future that waits for one of its own calls (a call kept on the pool that reads one of
/// them, say): both would wait for good. So a call joins an open batch only if each future
/// it waits on is a call of the batch, or one its first call waits on too (made before
/// the batch, so it cannot wait for it); else the open batch goes first and the call opens
/// the next.
pub(crate) struct Batches<C> {
    open: Mutex<HashMap<u64, Open<C>>>,
}

struct Open<C> {
    calls: Vec<C>,
    /// The ids of their futures.
    ids: HashSet<u64>,
    /// The futures not done that its first call waits on.
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
}

/// A batch whose arguments reach this many bytes goes, however few its calls: a batch
/// crosses the wire in one frame.
pub(crate) const BATCH_BYTES: usize = 256 * 1024;

/// One call for [`Batches::add`].
pub(crate) struct Joining<'a, C> {
    /// Its kind of task.
    pub(crate) fingerprint: u64,
    /// The id of its future.
    pub(crate) id: u64,
    /// The ids of the futures it reads that were not done when it was made.
    pub(crate) waits_on: &'a [u64],
    /// The bytes of its encoded arguments.
    pub(crate) bytes: usize,
    pub(crate) call: C,
}

/// What [`Batches::add`] did with a call.
pub(crate) struct Added<C> {
    /// A batch to hand on now: the call's own, filled by it, or the one open before it,
    /// which it could not join.
    pub(crate) full: Option<Vec<C>>,
    /// The call opened a batch: someone must hand it on within [`FLUSH_AFTER`].
    pub(crate) opened: bool,
}

impl<C> Default for Batches<C> {
    fn default() -> Self {
        Batches {
            open: Mutex::default(),
        }
    }
}

impl<C> Batches<C> {
    /// Adds a call to the open batch of its kind, which is full at `size` calls or
    /// [`BATCH_BYTES`].
    pub(crate) fn add(&self, joining: Joining<'_, C>, size: usize, now: Instant) -> Added<C> {
        let Joining {
            fingerprint,
            id,
            waits_on,
            bytes,
            call,
        } = joining;
        let mut open = self.lock();
        let mut full = None;
        if let Some(batch) = open.get_mut(&fingerprint) {
            let joins =
                (waits_on.iter()).all(|dep| batch.ids.contains(dep) || batch.before.contains(dep));
            if joins {
                batch.calls.push(call);
                batch.ids.insert(id);
                batch.bytes += bytes;
                batch.joined = now;
                if batch.calls.len() < size.max(2) && batch.bytes < BATCH_BYTES {
                    return Added {
                        full: None,
                        opened: false,
                    };
                }
                let batch = open.remove(&fingerprint).map(|b| b.calls);
                return Added {
                    full: batch,
                    opened: false,
                };
            }
            full = open.remove(&fingerprint).map(|b| b.calls);
        }
        let batch = Open {
            calls: vec![call],
            ids: HashSet::from([id]),
            before: waits_on.to_vec(),
            bytes,
            opened: now,
            joined: now,
        };
        open.insert(fingerprint, batch);
        Added { full, opened: true }
    }

    /// Whether a batch of kind `fingerprint` is open.
    pub(crate) fn is_open(&self, fingerprint: u64) -> bool {
        self.lock().contains_key(&fingerprint)
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
        (due, next)
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
    let mut results: CallResults = Vec::with_capacity(calls.len());
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
                    Some(Ok(bytes)) => Ok(Bytes::new(bytes.clone())),
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
            None => run_call(registration, &mine),
        });
    }
    results
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

    /// Adds call `id` of kind `fingerprint`, which waits on `waits_on`, to batches of 3.
    fn add(batches: &Batches<u64>, fingerprint: u64, id: u64, waits_on: &[u64]) -> Added<u64> {
        let joining = Joining {
            fingerprint,
            id,
            waits_on,
            bytes: 1,
            call: id,
        };
        batches.add(joining, 3, Instant::now())
    }

    #[test]
    fn a_batch_goes_when_full_and_a_new_one_opens_after_it() {
        let batches = Batches::default();
        assert!(add(&batches, 7, 1, &[]).opened);
        let joined = add(&batches, 7, 2, &[1]);
        assert!(
            !joined.opened && joined.full.is_none(),
            "it reads a call of the batch"
        );
        assert!(add(&batches, 8, 3, &[]).opened, "one batch per kind");
        let filled = add(&batches, 7, 4, &[]);
        assert_eq!(filled.full, Some(vec![1, 2, 4]), "in order");
        assert!(!filled.opened);
        assert!(add(&batches, 7, 5, &[]).opened);
    }

    #[test]
    fn a_call_that_may_wait_for_the_batch_goes_in_the_next() {
        let batches = Batches::default();
        // The first call reads 100 (the data of a loop, say): others may read it too.
        assert!(add(&batches, 7, 1, &[100]).opened);
        assert!(add(&batches, 7, 2, &[100]).full.is_none());
        // 50 was not done, and may wait for call 1 (a kept call that reads it).
        let next = add(&batches, 7, 3, &[50]);
        assert_eq!(next.full, Some(vec![1, 2]), "the open batch goes first");
        assert!(next.opened, "and the call opens the next");
        let (due, _) = batches.due(Instant::now() + FLUSH_AFTER);
        assert_eq!(due, [vec![3]]);
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
