//! Loom models of the parking protocol: run with
//! `RUSTFLAGS="--cfg peer_loom" cargo test -p peer-steal --lib --release loom`.
//! A lost wake-up shows up as loom's "deadlock" failure: every thread blocked.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

use super::Sleep;

/// Stands in for a deque: a count of published jobs that a worker can take.
struct Queue(AtomicUsize);

impl Queue {
    fn push(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }
    fn try_take(&self) -> bool {
        let mut n = self.0.load(Ordering::Acquire);
        while n > 0 {
            match self
                .0
                .compare_exchange(n, n - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
        false
    }
    fn is_empty(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }
}

/// A worker loop: take jobs until `want` are taken in all, or shutdown.
fn worker(index: usize, sleep: &Sleep, queue: &Queue, taken: &AtomicUsize, shutdown: &AtomicBool) {
    loop {
        if queue.try_take() {
            taken.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if shutdown.load(Ordering::Acquire) {
            return;
        }
        let _ = sleep.sleep(
            index,
            &|| !queue.is_empty() || shutdown.load(Ordering::Acquire),
            None,
        );
    }
}

#[test]
fn loom_producer_never_loses_a_wake_up() {
    loom::model(|| {
        let sleep = Arc::new(Sleep::new(1));
        let queue = Arc::new(Queue(AtomicUsize::new(0)));
        let taken = Arc::new(AtomicUsize::new(0));
        let shutdown = Arc::new(AtomicBool::new(false));
        let w = {
            let (sleep, queue, taken, shutdown) = (
                sleep.clone(),
                queue.clone(),
                taken.clone(),
                shutdown.clone(),
            );
            thread::spawn(move || {
                // Exit once the one job is taken, so only a lost wake-up can block forever.
                loop {
                    if queue.try_take() {
                        taken.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    let _ = sleep.sleep(0, &|| !queue.is_empty(), None);
                }
            })
        };
        queue.push();
        sleep.notify_one();
        w.join().unwrap();
        assert_eq!(taken.load(Ordering::Relaxed), 1);
        let _ = shutdown;
    });
}

#[test]
fn loom_shutdown_wakes_every_sleeper() {
    loom::model(|| {
        let sleep = Arc::new(Sleep::new(2));
        let queue = Arc::new(Queue(AtomicUsize::new(0)));
        let taken = Arc::new(AtomicUsize::new(0));
        let shutdown = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let (sleep, queue, taken, shutdown) = (
                    sleep.clone(),
                    queue.clone(),
                    taken.clone(),
                    shutdown.clone(),
                );
                thread::spawn(move || worker(i, &sleep, &queue, &taken, &shutdown))
            })
            .collect();
        shutdown.store(true, Ordering::SeqCst);
        sleep.notify_all();
        for w in workers {
            w.join().unwrap();
        }
    });
}

#[test]
fn loom_two_sleepers_one_job_then_shutdown() {
    loom::model(|| {
        let sleep = Arc::new(Sleep::new(2));
        let queue = Arc::new(Queue(AtomicUsize::new(0)));
        let taken = Arc::new(AtomicUsize::new(0));
        let shutdown = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let (sleep, queue, taken, shutdown) = (
                    sleep.clone(),
                    queue.clone(),
                    taken.clone(),
                    shutdown.clone(),
                );
                thread::spawn(move || worker(i, &sleep, &queue, &taken, &shutdown))
            })
            .collect();
        queue.push();
        sleep.notify_one();
        // Wait until someone took it: only possible if the wake-up was not lost.
        while taken.load(Ordering::Relaxed) == 0 {
            thread::yield_now();
        }
        shutdown.store(true, Ordering::SeqCst);
        sleep.notify_all();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(taken.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn loom_completion_unparks_a_registered_waiter() {
    loom::model(|| {
        // A worker waits for a flag (a task's completion) with nothing else to do; the
        // completer sets the flag, then unparks whoever registered, as core's tasks do.
        let sleep = Arc::new(Sleep::new(1));
        let done = Arc::new(AtomicBool::new(false));
        let unparker = sleep.unparker(0);
        let completer = {
            let done = done.clone();
            thread::spawn(move || {
                done.store(true, Ordering::Release);
                unparker.unpark();
            })
        };
        while !done.load(Ordering::Acquire) {
            let _ = sleep.sleep(0, &|| done.load(Ordering::Acquire), None);
        }
        completer.join().unwrap();
    });
}
