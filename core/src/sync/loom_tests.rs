//! Loom models of the lock and semaphore fast paths: run with
//! `RUSTFLAGS="--cfg peer_loom" cargo test -p peer-core --lib --release loom`.

use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

use super::local::LocalSemaphore;
use crate::sync::backend::{SemaphoreBackend, Ticket};

/// Records a wake in a loom atomic, so a lost wake-up shows as a waiter that never sees it.
struct Flag(Arc<AtomicBool>);
impl Wake for Flag {
    fn wake(self: StdArc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

#[test]
fn loom_try_acquire_is_mutually_exclusive() {
    loom::model(|| {
        let sem = Arc::new(LocalSemaphore::new(1));
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (sem, inside) = (sem.clone(), inside.clone());
                thread::spawn(move || {
                    if let Some(grant) = sem.try_acquire(None) {
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        inside.fetch_sub(1, Ordering::SeqCst);
                        sem.release(grant.token).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(sem.available(), 1);
    });
}

#[test]
fn loom_a_waiter_is_woken_by_release() {
    loom::model(|| {
        let sem = Arc::new(LocalSemaphore::new(1));
        let grant = sem.try_acquire(None).unwrap();
        let holder = {
            let sem = sem.clone();
            thread::spawn(move || sem.release(grant.token).unwrap())
        };
        let woken = Arc::new(AtomicBool::new(false));
        let waker = Waker::from(StdArc::new(Flag(woken.clone())));
        let mut cx = Context::from_waker(&waker);
        let mut ticket = Ticket::default();
        loop {
            match sem.poll_acquire(&mut ticket, None, &mut cx) {
                Poll::Ready(g) => {
                    sem.release(g.token).unwrap();
                    break;
                }
                Poll::Pending => {
                    // Only a wake may send us back; a lost one spins here until loom gives up.
                    while !woken.swap(false, Ordering::Acquire) {
                        thread::yield_now();
                    }
                }
            }
        }
        holder.join().unwrap();
        assert_eq!(sem.available(), 1);
    });
}

#[test]
fn loom_a_cancelled_waiter_leaves_the_permit_free() {
    loom::model(|| {
        let sem = Arc::new(LocalSemaphore::new(1));
        let grant = sem.try_acquire(None).unwrap();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut ticket = Ticket::default();
        assert!(sem.poll_acquire(&mut ticket, None, &mut cx).is_pending());
        let releaser = {
            let sem = sem.clone();
            thread::spawn(move || sem.release(grant.token).unwrap())
        };
        sem.cancel(&mut ticket);
        releaser.join().unwrap();
        assert_eq!(sem.available(), 1);
        assert!(sem.try_acquire(None).is_some());
    });
}
