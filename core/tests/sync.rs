//! Named coordination primitives on the local runtime.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use peer_core::Client;
use peer_core::sync::{GetError, PutError, Versioned};

fn client() -> Client {
    Client::builder().workers(2).build().unwrap()
}

/// Polls a future once with a no-op waker.
fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(f).poll(&mut cx)
}

#[test]
fn a_lock_keeps_a_read_modify_write_exact_across_workers() {
    let c = client();
    let counter = Arc::new(AtomicU64::new(0));
    let inside = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..2_000)
        .map(|_| {
            let (lock, counter, inside) = (c.lock("counter"), counter.clone(), inside.clone());
            c.submit_local(move || {
                let _guard = lock.blocking_lock();
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two holders at once"
                );
                let v = counter.load(Ordering::Relaxed);
                std::hint::spin_loop();
                counter.store(v + 1, Ordering::Relaxed);
                inside.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    c.gather(tasks).unwrap();
    assert_eq!(counter.load(Ordering::SeqCst), 2_000);
    assert!(!c.lock("counter").blocking_is_locked());
}

#[test]
fn a_semaphore_is_never_over_its_bound() {
    let c = client();
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (sem, now, peak) = (c.semaphore("slots", 3), now.clone(), peak.clone());
            c.submit_local(move || {
                let _permit = sem.blocking_acquire();
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(50));
                now.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    // External threads compete too.
    std::thread::scope(|s| {
        for _ in 0..3 {
            let (sem, now, peak) = (c.semaphore("slots", 3), now.clone(), peak.clone());
            s.spawn(move || {
                for _ in 0..50 {
                    let _permit = sem.blocking_acquire();
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    now.fetch_sub(1, Ordering::SeqCst);
                }
            });
        }
    });
    c.gather(tasks).unwrap();
    assert!(
        peak.load(Ordering::SeqCst) <= 3,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(c.semaphore("slots", 3).blocking_available(), 3);
}

#[test]
fn a_queue_is_fifo() {
    let c = client();
    let q = c.queue::<u32>("fifo", 10_000);
    for i in 0..5_000 {
        q.blocking_try_put(i).unwrap();
    }
    let got: Vec<u32> = (0..5_000).map(|_| q.blocking_try_get().unwrap()).collect();
    assert_eq!(got, (0..5_000).collect::<Vec<_>>());
    assert_eq!(q.blocking_try_get(), Err(GetError::Empty));
}

#[test]
fn many_producers_and_consumers_lose_and_duplicate_nothing_through_a_close() {
    let c = client();
    let q = c.queue::<u64>("mpmc", 64);
    let producers = 6u64;
    let per = 3_000u64;
    // Consumers: tasks on the pool and plain threads.
    let task_consumers: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            c.submit_local(move || {
                let mut got = Vec::new();
                while let Ok(v) = q.blocking_get() {
                    got.push(v);
                }
                got
            })
        })
        .collect();
    let mut all: Vec<u64> = std::thread::scope(|s| {
        let thread_consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                s.spawn(move || {
                    let mut got = Vec::new();
                    while let Ok(v) = q.blocking_get() {
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        let producer_threads: Vec<_> = (0..producers)
            .map(|p| {
                let q = q.clone();
                s.spawn(move || {
                    for i in 0..per {
                        q.blocking_put(p * per + i).unwrap();
                    }
                })
            })
            .collect();
        for t in producer_threads {
            t.join().unwrap();
        }
        q.blocking_close();
        assert!(matches!(q.blocking_try_put(0), Err(PutError::Closed(0))));
        thread_consumers
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    for f in task_consumers {
        all.extend(f.into_result().unwrap());
    }
    let n = (producers * per) as usize;
    assert_eq!(all.len(), n, "lost or duplicated items");
    let distinct: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), n, "an item was delivered twice");
    assert_eq!(q.blocking_get(), Err(peer_core::sync::Closed));
}

#[test]
fn workers_blocked_on_a_queue_help_the_task_that_fills_it() {
    // Both workers block in get() before the producer task has run; waiting must run it.
    let c = client();
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let q = c.queue::<u32>("help", 8);
            c.submit_local(move || q.blocking_get().unwrap())
        })
        .collect();
    let q = c.queue::<u32>("help", 8);
    let producer = c.submit_local(move || {
        for i in 0..4 {
            q.blocking_put(i).unwrap();
        }
    });
    producer.wait().unwrap();
    let mut got = c.gather(consumers).unwrap();
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2, 3]);
}

#[test]
fn timeouts_give_up_and_hand_values_back() {
    let c = client();
    let q = c.queue::<String>("timeouts", 1);
    let start = Instant::now();
    assert_eq!(
        q.blocking_get_timeout(Duration::from_millis(30)),
        Err(GetError::Empty)
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
    q.blocking_put("a".into()).unwrap();
    match q.blocking_put_timeout("b".into(), Duration::from_millis(20)) {
        Err(PutError::Full(v)) => assert_eq!(v, "b"),
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(q.blocking_len(), 1);

    let lock = c.lock("timeouts");
    let held = lock.blocking_lock();
    assert!(
        lock.blocking_lock_timeout(Duration::from_millis(20))
            .is_none()
    );
    drop(held);
    assert!(
        lock.blocking_lock_timeout(Duration::from_millis(20))
            .is_some()
    );

    let event = c.event("timeouts");
    assert!(!event.blocking_wait_timeout(Duration::from_millis(20)));
    let v = c.variable::<u8>("timeouts");
    assert_eq!(
        v.blocking_changed_timeout(0, Duration::from_millis(20)),
        None
    );
}

#[test]
fn a_cancelled_lock_wait_leaks_nothing() {
    let c = client();
    let lock = c.lock("cancel");
    let held = lock.blocking_try_lock().unwrap();

    // Waiting, then dropped: the line forgets it.
    let mut waiting = lock.lock();
    assert!(poll_once(&mut waiting).is_pending());
    drop(waiting);

    // Waiting, granted on release, then dropped without collecting: the permit comes back.
    let mut granted = lock.lock();
    assert!(poll_once(&mut granted).is_pending());
    drop(held);
    drop(granted);
    assert!(
        !lock.blocking_is_locked(),
        "a cancelled waiter kept the lock"
    );

    // And the next waiter in line still gets it.
    let first = lock.blocking_try_lock().unwrap();
    let mut a = lock.lock();
    let mut b = lock.lock();
    assert!(poll_once(&mut a).is_pending());
    assert!(poll_once(&mut b).is_pending());
    drop(first);
    drop(a);
    match poll_once(&mut b) {
        Poll::Ready(guard) => assert!(guard.blocking_is_held()),
        Poll::Pending => panic!("the grant of a cancelled waiter was not passed on"),
    }
}

#[test]
fn cancelled_queue_and_wait_futures_take_nothing() {
    let c = client();
    let q = c.queue::<u32>("cancel", 1);
    let mut get = q.get();
    assert!(poll_once(&mut get).is_pending());
    drop(get);
    q.blocking_try_put(7).unwrap();
    assert_eq!(q.blocking_try_get(), Ok(7), "a dropped get took the item");

    q.blocking_try_put(1).unwrap();
    let mut put = q.put(2);
    assert!(poll_once(&mut put).is_pending());
    drop(put);
    assert_eq!(q.blocking_try_get(), Ok(1));
    assert_eq!(
        q.blocking_try_get(),
        Err(GetError::Empty),
        "a dropped put enqueued its value"
    );
    // The line is clear: a new put goes straight in.
    assert!(q.blocking_try_put(3).is_ok());

    let e = c.event("cancel");
    let mut w = e.wait();
    assert!(poll_once(&mut w).is_pending());
    drop(w);
    e.blocking_set();
    assert!(e.blocking_wait_timeout(Duration::from_secs(5)));

    let v = c.variable::<u32>("cancel");
    let mut ch = v.changed(0);
    assert!(poll_once(&mut ch).is_pending());
    drop(ch);
    assert_eq!(v.blocking_set(5), 1);
}

#[test]
fn async_methods_work_under_an_executor() {
    let c = client();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let q = c.queue::<u32>("async", 4);
    let lock = c.lock("async");
    let total = rt.block_on(async {
        let consumer = {
            let q = q.clone();
            tokio::spawn(async move {
                let mut sum = 0;
                while let Ok(v) = q.get().await {
                    sum += v;
                }
                sum
            })
        };
        for i in 1..=100 {
            let _g = lock.lock().await;
            q.put(i).await.unwrap();
        }
        assert_eq!(q.capacity(), 4);
        assert!(lock.try_lock().await.is_some());
        q.close().await;
        consumer.await.unwrap()
    });
    assert_eq!(total, 5050);
}

#[test]
fn leases_expire_and_fencing_tokens_tell_stale_holders_apart() {
    let c = client();
    let lock = c.lock("leased");
    // A resource that refuses writes with a token lower than one it has seen.
    let highest = AtomicU64::new(0);
    let write = |token: peer_core::sync::FencingToken| {
        let seen = highest.fetch_max(token.0, Ordering::SeqCst);
        token.0 >= seen
    };

    let mut stale = lock.blocking_lock_with_lease(Duration::from_millis(50));
    assert!(write(stale.token()));
    assert!(stale.blocking_renew(Duration::from_millis(50)).is_ok());
    // The holder "hangs": another waiter gets the lock when the lease runs out, woken by it.
    let start = Instant::now();
    let fresh = lock.blocking_lock();
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert!(fresh.token() > stale.token());
    assert!(write(fresh.token()));
    assert!(!stale.blocking_is_held());
    assert!(
        !write(stale.token()),
        "the stale holder's write was accepted"
    );
    assert!(stale.blocking_renew(Duration::from_secs(1)).is_err());
    assert!(stale.blocking_release().is_err());
    assert!(fresh.blocking_is_held());
    drop(fresh);
    assert!(!lock.blocking_is_locked());
}

#[test]
fn variables_events_and_topics() {
    let c = client();
    let v = c.variable::<String>("params");
    assert_eq!(v.blocking_get(), None);
    assert_eq!(v.blocking_version(), 0);
    let waiter = {
        let v = v.clone();
        c.submit_local(move || v.blocking_changed(0))
    };
    v.blocking_set("a".into());
    assert_eq!(waiter.wait(), Ok(&1));
    assert_eq!(
        v.blocking_get_versioned(),
        Some(Versioned {
            value: "a".to_string(),
            version: 1
        })
    );

    let e = c.event("go");
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let e = e.clone();
            c.submit_local(move || e.blocking_wait())
        })
        .collect();
    assert!(!e.blocking_is_set());
    e.blocking_set();
    c.gather(waiters).unwrap();
    e.blocking_clear();
    assert!(!e.blocking_is_set());

    let t = c.topic::<u32>("ticks");
    let mut early = t.subscribe();
    assert_eq!(t.publish(1), 1);
    let mut late = t.subscribe();
    assert_eq!(t.publish(2), 2);
    assert_eq!(early.blocking_next(), 1);
    assert_eq!(early.blocking_next(), 2);
    assert_eq!(late.blocking_next(), 2);
    assert_eq!(late.blocking_next_timeout(Duration::from_millis(10)), None);
    for i in 0..2_000 {
        t.publish(i);
    }
    let first = late.blocking_next();
    assert_eq!(
        first,
        2_000 - 1_024,
        "a lagging subscriber keeps the newest values"
    );
    assert_eq!(late.missed(), 2_000 - 1_024);
    drop(early);
    assert_eq!(t.publish(0), 1);
}

#[test]
fn names_are_shared_and_typed() {
    let c = client();
    let a = c.queue::<u32>("shared", 4);
    let b = c.queue::<u32>("shared", 4);
    let other_type = c.queue::<String>("shared", 4);
    a.blocking_try_put(1).unwrap();
    assert_eq!(b.blocking_try_get(), Ok(1));
    a.blocking_try_put(2).unwrap();
    assert_eq!(other_type.blocking_try_get(), Err(GetError::Empty));
    // A lock and a semaphore of the same name are different things.
    let _l = c.lock("name").blocking_try_lock().unwrap();
    assert!(c.semaphore("name", 1).blocking_try_acquire().is_some());
    // Another client has its own primitives.
    let c2 = client();
    assert!(c2.lock("name").blocking_try_lock().is_some());
}

#[test]
fn a_blocked_consumer_is_never_buried_under_producers_waiting_for_it() {
    // One consumer task and many producer tasks on a tiny queue, all on 2 workers: producers
    // block on the full queue, and only the consumer can drain it. Helping on the blocked
    // thread's own stack would run producers on top of the consumer and hang; compensation
    // keeps the consumer free to resume.
    for capacity in [1, 2, 8] {
        let c = client();
        let q = c.queue::<u64>("tiny", capacity);
        let consumer = {
            let q = q.clone();
            c.submit_local(move || {
                let mut sum = 0;
                while let Ok(v) = q.blocking_get() {
                    sum += v;
                }
                sum
            })
        };
        let producers: Vec<_> = (0..50u64)
            .map(|p| {
                let q = q.clone();
                c.submit_local(move || {
                    for i in 0..20 {
                        q.blocking_put(p * 20 + i).unwrap();
                    }
                })
            })
            .collect();
        c.gather(producers).unwrap();
        q.blocking_close();
        assert_eq!(consumer.wait(), Ok(&(0..1000u64).sum::<u64>()));
    }
}

#[test]
fn every_worker_blocked_on_an_event_still_lets_the_setter_run() {
    let c = client();
    let e = c.event("all-blocked");
    let waiters: Vec<_> = (0..6)
        .map(|_| {
            let e = e.clone();
            c.submit_local(move || e.blocking_wait())
        })
        .collect();
    let setter = {
        let e = e.clone();
        c.submit_local(move || e.blocking_set())
    };
    setter.wait().unwrap();
    c.gather(waiters).unwrap();
}

#[test]
fn cancelled_semaphore_and_stream_reads_leave_no_trace() {
    use futures_util::StreamExt;
    let c = client();
    let sem = c.semaphore("cancel-sem", 2);
    let (a, b) = (
        sem.blocking_try_acquire().unwrap(),
        sem.blocking_try_acquire().unwrap(),
    );
    let mut waiting = sem.acquire();
    assert!(poll_once(&mut waiting).is_pending());
    drop(a);
    drop(waiting); // woken by the release, dropped before collecting
    assert_eq!(
        sem.blocking_available(),
        1,
        "a cancelled acquire kept a permit"
    );
    drop(b);
    assert_eq!(sem.blocking_available(), 2);

    let topic = c.topic::<u32>("cancel-topic");
    let mut sub = topic.subscribe();
    {
        let mut next = sub.next();
        assert!(poll_once(&mut next).is_pending());
    }
    topic.publish(9);
    assert_eq!(
        sub.blocking_next_timeout(Duration::from_secs(5)),
        Some(9),
        "a dropped read consumed a value"
    );
}

#[test]
fn a_task_run_by_a_compensating_thread_can_wait_on_a_queued_task() {
    // One worker, parked on a queue: the task its compensating thread runs waits on a task
    // that is still queued. That wait must hand over again, not block the only runner.
    let c = Client::builder().workers(1).build().unwrap();
    let q = c.queue::<u32>("handover", 1);
    let consumer = {
        let q = q.clone();
        c.submit_local(move || q.blocking_get().unwrap())
    };
    let producer = {
        let q = q.clone();
        c.submit_local(move || {
            let inner = Client::with_current(|c| c.submit_local(|| 41)).unwrap();
            let v = *inner.wait().unwrap();
            q.blocking_put(v + 1).unwrap();
        })
    };
    producer.wait().unwrap();
    assert_eq!(consumer.wait(), Ok(&42));
}
