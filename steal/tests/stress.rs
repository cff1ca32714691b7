//! Seeded stress tests of the pool: many producers, stealing, shutdown with queued work, and
//! every job's destructor running exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use peer_steal::{Pool, Runnable};

/// Counts runs, abandons and drops of jobs; each job may spawn children from its worker.
#[derive(Default)]
struct Counters {
    ran: AtomicUsize,
    abandoned: AtomicUsize,
    dropped: AtomicUsize,
}

struct Node {
    counters: Arc<Counters>,
    pool: peer_steal::PoolHandle,
    /// Children to spawn when run (a binary fan-out).
    depth: u32,
}

impl Runnable for Node {
    fn run(self: Arc<Self>) {
        self.counters.ran.fetch_add(1, Ordering::SeqCst);
        if self.depth > 0 {
            for _ in 0..2 {
                let child = Arc::new(Node {
                    counters: self.counters.clone(),
                    pool: self.pool.clone(),
                    depth: self.depth - 1,
                });
                if let Err(e) = self.pool.spawn(child) {
                    e.0.abandon();
                }
            }
        }
    }
    fn abandon(self: Arc<Self>) {
        self.counters.abandoned.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.counters.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

fn wait_for(what: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !what() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn many_producers_every_job_runs_once() {
    for seed in 0..4u32 {
        let pool = Pool::builder().workers(2).build().unwrap();
        let counters = Arc::new(Counters::default());
        let producers = 4 + seed as usize;
        let per_producer = 5_000;
        std::thread::scope(|s| {
            for _ in 0..producers {
                let handle = pool.handle().clone();
                let counters = counters.clone();
                s.spawn(move || {
                    for _ in 0..per_producer {
                        let job = Arc::new(Node {
                            counters: counters.clone(),
                            pool: handle.clone(),
                            depth: 0,
                        });
                        handle.spawn(job).unwrap();
                    }
                });
            }
        });
        let total = producers * per_producer;
        wait_for(|| counters.ran.load(Ordering::SeqCst) == total);
        drop(pool);
        assert_eq!(counters.ran.load(Ordering::SeqCst), total);
        assert_eq!(counters.abandoned.load(Ordering::SeqCst), 0);
        assert_eq!(counters.dropped.load(Ordering::SeqCst), total);
    }
}

#[test]
fn jobs_spawned_from_workers_are_stolen_and_run_once() {
    for workers in [1, 2, 3] {
        let pool = Pool::builder().workers(workers).build().unwrap();
        let counters = Arc::new(Counters::default());
        let depth = 14; // 2^15 - 1 jobs
        pool.spawn(Arc::new(Node {
            counters: counters.clone(),
            pool: pool.handle().clone(),
            depth,
        }))
        .unwrap();
        let total = (1usize << (depth + 1)) - 1;
        wait_for(|| counters.ran.load(Ordering::SeqCst) == total);
        drop(pool);
        assert_eq!(counters.ran.load(Ordering::SeqCst), total);
        assert_eq!(counters.dropped.load(Ordering::SeqCst), total);
    }
}

#[test]
fn shutdown_with_queued_jobs_abandons_each_exactly_once() {
    for round in 0..20u32 {
        let pool = Pool::builder().workers(2).build().unwrap();
        let counters = Arc::new(Counters::default());
        let n = 2_000 + 100 * round as usize;
        for _ in 0..n {
            pool.spawn(Arc::new(Node {
                counters: counters.clone(),
                pool: pool.handle().clone(),
                depth: 3,
            }))
            .unwrap();
        }
        drop(pool);
        let ran = counters.ran.load(Ordering::SeqCst);
        let abandoned = counters.abandoned.load(Ordering::SeqCst);
        let dropped = counters.dropped.load(Ordering::SeqCst);
        // Every job that existed was either run or abandoned, never both, and dropped
        // exactly once; a lost job would be dropped without either, a duplicate counted twice.
        assert_eq!(ran + abandoned, dropped, "a job was lost or handled twice");
        assert!(dropped >= n);
    }
}

#[test]
fn spawn_after_shutdown_hands_the_job_back() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let handle = pool.handle().clone();
    drop(pool);
    let counters = Arc::new(Counters::default());
    let job = Arc::new(Node {
        counters: counters.clone(),
        pool: handle.clone(),
        depth: 0,
    });
    let err = handle.spawn(job).unwrap_err();
    err.0.abandon();
    assert_eq!(counters.abandoned.load(Ordering::SeqCst), 1);
    assert_eq!(counters.dropped.load(Ordering::SeqCst), 1);
    assert!(handle.is_shutdown());
}

#[test]
fn idle_workers_wake_for_work_after_sleeping() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let counters = Arc::new(Counters::default());
    for i in 1..=20 {
        // Long enough that both workers park between bursts.
        std::thread::sleep(Duration::from_millis(5));
        pool.spawn(Arc::new(Node {
            counters: counters.clone(),
            pool: pool.handle().clone(),
            depth: 4,
        }))
        .unwrap();
        wait_for(|| counters.ran.load(Ordering::SeqCst) == i * 31);
    }
}

#[test]
fn wait_until_helps_on_a_worker_and_times_out_elsewhere() {
    let pool = Arc::new(Pool::builder().workers(1).build().unwrap());
    // Outside the pool: a condition that never holds times out.
    let start = Instant::now();
    assert!(!pool.wait_until(
        &|| false,
        &mut |_| {},
        Some(start + Duration::from_millis(20))
    ));
    assert!(start.elapsed() >= Duration::from_millis(20));

    // On the single worker: a job waits for a second job, which can only run if the wait helps.
    struct Flag(AtomicUsize);
    impl Runnable for Flag {
        fn run(self: Arc<Self>) {
            self.0.store(1, Ordering::SeqCst);
        }
        fn abandon(self: Arc<Self>) {}
    }
    struct Waiter {
        pool: peer_steal::PoolHandle,
        flag: Arc<Flag>,
        done: Arc<AtomicUsize>,
    }
    impl Runnable for Waiter {
        fn run(self: Arc<Self>) {
            self.pool.spawn(self.flag.clone()).unwrap();
            let flag = self.flag.clone();
            let ok =
                self.pool
                    .wait_until(&|| flag.0.load(Ordering::SeqCst) == 1, &mut |_| {}, None);
            assert!(ok);
            self.done.store(1, Ordering::SeqCst);
        }
        fn abandon(self: Arc<Self>) {}
    }
    let done = Arc::new(AtomicUsize::new(0));
    pool.spawn(Arc::new(Waiter {
        pool: pool.handle().clone(),
        flag: Arc::new(Flag(AtomicUsize::new(0))),
        done: done.clone(),
    }))
    .unwrap();
    wait_for(|| done.load(Ordering::SeqCst) == 1);
}
