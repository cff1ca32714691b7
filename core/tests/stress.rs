//! Seeded stress of the runtime through the public API: every closure and every result is
//! dropped exactly once whether its task ran, was cancelled, or was abandoned at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use peer_core::{Client, TaskFuture};

struct Tracked(Arc<AtomicUsize>);
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn closures_and_results_drop_exactly_once_through_cancel_and_shutdown() {
    for seed in 0..8u64 {
        let captured = Arc::new(AtomicUsize::new(0));
        let results = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));
        let n = 5_000usize;
        let mut futures: Vec<TaskFuture<Tracked>> = Vec::with_capacity(n);
        {
            let client = Client::builder().workers(2).build().unwrap();
            for i in 0..n {
                let guard = Tracked(captured.clone());
                let (r, ran) = (results.clone(), ran.clone());
                let body = move || {
                    let _keep = &guard;
                    ran.fetch_add(1, Ordering::SeqCst);
                    Tracked(r)
                };
                // Mix ready tasks, dependents and tasks submitted from producers.
                let f = if i % 3 == 1 {
                    let prev = futures[i - 1].clone();
                    client.submit_local_with(&prev, move |_| body())
                } else {
                    client.submit_local(body)
                };
                if (i as u64 ^ seed).is_multiple_of(7) {
                    f.cancel();
                }
                futures.push(f);
            }
            // Drop the client with work still queued: running tasks finish, the rest shut down.
        }
        for f in &futures {
            assert!(f.is_done(), "a future is unresolved after shutdown");
        }
        let ran_count = ran.load(Ordering::SeqCst);
        let ok = futures
            .iter()
            .filter(|f| f.try_get().is_some_and(|r| r.is_ok()))
            .count();
        assert_eq!(
            ok, ran_count,
            "every task that ran has a value, and only those"
        );
        drop(futures);
        assert_eq!(
            captured.load(Ordering::SeqCst),
            n,
            "each closure dropped exactly once"
        );
        assert_eq!(
            results.load(Ordering::SeqCst),
            ran_count,
            "each result dropped exactly once"
        );
    }
}

#[test]
fn many_external_producers_share_one_client() {
    let client = Client::builder().workers(2).build().unwrap();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8u64)
            .map(|p| {
                let client = client.clone();
                s.spawn(move || {
                    let futures: Vec<_> = (0..10_000u64)
                        .map(|i| client.submit_local(move || p * i))
                        .collect();
                    client.gather(futures).unwrap().into_iter().sum::<u64>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let expected: u64 = (0..8u64).map(|p| p * (0..10_000u64).sum::<u64>()).sum();
    assert_eq!(total, expected);
}
