//! Loom models of the lock and semaphore fast paths: run with
//! `RUSTFLAGS="--cfg peer_loom" cargo test -p peer-core --lib --release loom`.

use std::task::{Context, Waker};

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::local::LocalSemaphore;
use crate::sync::backend::{SemaphoreBackend, Ticket};

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
        // loom's executor parks until the waker fires: a lost wake-up is a loom deadlock.
        let mut ticket = Ticket::default();
        let got = loom::future::block_on(std::future::poll_fn(|cx| {
            sem.poll_acquire(&mut ticket, None, cx)
        }));
        sem.release(got.token).unwrap();
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
