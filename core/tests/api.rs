//! The public API of `peer-core`, one behaviour per test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use peer_core::{Client, TaskError, WaitFor, as_completed, wait, wait_timeout};

fn client() -> Client {
    Client::builder().workers(2).build().unwrap()
}

#[test]
fn submit_and_wait() {
    let c = client();
    let f = c.submit_local(|| 6 * 7);
    assert_eq!(f.wait(), Ok(&42));
    assert!(f.is_done());
    assert_eq!(f.try_get(), Some(Ok(&42)));
}

#[test]
fn try_get_is_none_until_done_and_never_blocks() {
    let c = client();
    let (tx, rx) = mpsc::channel::<()>();
    let f = c.submit_local(move || rx.recv().unwrap());
    assert!(f.try_get().is_none());
    assert!(!f.is_done());
    tx.send(()).unwrap();
    assert_eq!(f.wait(), Ok(&()));
}

#[test]
fn futures_as_inputs_one_tuple_and_slice() {
    let c = client();
    let a = c.submit_local(|| 2u64);
    let b = c.submit_local(|| String::from("abc"));
    let one = c.submit_local_with(&a, |x| x * 10);
    let pair = c.submit_local_with((&a, &b), |(x, s)| *x + s.len() as u64);
    let parts: Vec<_> = (1..=4u64).map(|i| c.submit_local(move || i)).collect();
    let sum = c.submit_local_with(&parts, |xs| xs.into_iter().sum::<u64>());
    let sum_slice = c.submit_local_with(parts.as_slice(), |xs| xs.len());
    assert_eq!(one.wait(), Ok(&20));
    assert_eq!(pair.wait(), Ok(&5));
    assert_eq!(sum.wait(), Ok(&10));
    assert_eq!(sum_slice.wait(), Ok(&4));
}

#[test]
fn input_shared_by_many_dependents_is_not_cloned() {
    // The seed's pattern: one loaded file, many scores against it.
    struct NoClone(Vec<u8>);
    let c = client();
    let data = c.submit_local(|| NoClone(vec![1; 1000]));
    let scores: Vec<_> = (0..100)
        .map(|p| c.submit_local_with(&data, move |d: &NoClone| d.0.len() * p))
        .collect();
    let best = c.gather(scores).unwrap().into_iter().max();
    assert_eq!(best, Some(99_000));
}

#[test]
fn owned_and_borrowed_await() {
    let c = client();
    let f = c.submit_local(|| vec![1, 2, 3]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let borrowed = rt.block_on(async { (&f).await.map(|v| v.len()) });
    assert_eq!(borrowed, Ok(3));
    let owned = rt.block_on(f);
    assert_eq!(owned, Ok(vec![1, 2, 3]));
}

#[test]
fn await_is_woken_by_completion() {
    let c = client();
    let (tx, rx) = mpsc::channel::<()>();
    let f = c.submit_local(move || {
        rx.recv().unwrap();
        5
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let waiting = rt.spawn(f);
    std::thread::sleep(Duration::from_millis(20));
    tx.send(()).unwrap();
    assert_eq!(rt.block_on(waiting).unwrap(), Ok(5));
}

#[test]
fn cancelled_await_leaks_no_waiter_and_loses_nothing() {
    let c = client();
    let (tx, rx) = mpsc::channel::<()>();
    let f = c.submit_local(move || {
        rx.recv().unwrap();
        7
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // Poll once, then drop the await by timing out.
    let timed_out =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(10), f.clone()).await });
    assert!(timed_out.is_err());
    tx.send(()).unwrap();
    assert_eq!(f.wait(), Ok(&7));
}

#[test]
fn into_result_moves_when_last_handle_and_clones_otherwise() {
    let c = client();
    let f = c.submit_local(|| String::from("x"));
    let g = f.clone();
    assert_eq!(f.into_result(), Ok(String::from("x")));
    // `g` still reads it: the first into_result had to clone.
    assert_eq!(g.wait().map(String::as_str), Ok("x"));
    assert_eq!(g.into_result(), Ok(String::from("x")));
}

#[test]
fn a_panic_becomes_an_error_with_its_message() {
    let c = client();
    let f = c.submit_local(|| -> u32 { panic!("bad input 17") });
    match f.wait() {
        Err(TaskError::Panicked { task, message }) => {
            assert_eq!(task, f.id());
            assert_eq!(&*message, "bad input 17");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    // The pool survives a panicking task.
    assert_eq!(c.submit_local(|| 1).wait(), Ok(&1));
}

#[test]
fn dependents_of_a_failed_task_fail_naming_the_input() {
    let c = client();
    let bad = c.submit_local(|| -> u32 { panic!("boom") });
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let child = c.submit_local_with(&bad, move |x| {
        r.fetch_add(1, Ordering::SeqCst);
        x + 1
    });
    let grandchild = c.submit_local_with(&child, |x| x + 1);
    match child.wait() {
        Err(TaskError::InputFailed { task, input, cause }) => {
            assert_eq!(task, child.id());
            assert_eq!(input, bad.id());
            assert!(matches!(&*cause, TaskError::Panicked { message, .. } if &**message == "boom"));
        }
        other => panic!("expected InputFailed, got {other:?}"),
    }
    match grandchild.wait() {
        Err(e @ TaskError::InputFailed { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&child.id().to_string()), "{text}");
            assert!(text.contains("boom"), "{text}");
        }
        other => panic!("expected InputFailed, got {other:?}"),
    }
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "a dependent of a failed task ran"
    );
}

#[test]
fn a_late_dependent_of_a_failed_task_fails_too() {
    let c = client();
    let bad = c.submit_local(|| -> u32 { panic!("early") });
    let _ = bad.wait();
    let late = c.submit_local_with(&bad, |x| x + 1);
    assert!(matches!(late.wait(), Err(TaskError::InputFailed { .. })));
}

#[test]
fn retries_rerun_a_panicking_task() {
    let c = client();
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let f = c.task().retries(3).submit_local(move || {
        if a.fetch_add(1, Ordering::SeqCst) < 2 {
            panic!("flaky");
        }
        "ok"
    });
    assert_eq!(f.wait(), Ok(&"ok"));
    assert_eq!(attempts.load(Ordering::SeqCst), 3);

    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let input = c.submit_local(|| 10);
    let g = c
        .task()
        .retries(2)
        .submit_local_with(&input, move |x| -> u32 {
            a.fetch_add(1, Ordering::SeqCst);
            panic!("always {x}")
        });
    assert!(
        matches!(g.wait(), Err(TaskError::Panicked { message, .. }) if &*message == "always 10")
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 3, "1 try + 2 retries");
}

#[test]
fn cancelling_a_pending_task_cancels_its_dependents() {
    let c = client();
    let (tx, rx) = mpsc::channel::<()>();
    let gate = c.submit_local(move || rx.recv().unwrap());
    let pending = c.submit_local_with(&gate, |_| 1);
    let child = c.submit_local_with(&pending, |x| x + 1);
    let grandchild = c.submit_local_with((&child, &gate), |(x, _)| x + 1);
    assert!(pending.cancel());
    assert!(!pending.cancel(), "cancelling twice reports false");
    // Dependents fail at once, without waiting for the gate.
    assert!(matches!(child.wait(), Err(TaskError::Cancelled { task }) if task == child.id()));
    assert!(matches!(
        grandchild.wait(),
        Err(TaskError::Cancelled { .. })
    ));
    tx.send(()).unwrap();
    assert_eq!(gate.wait(), Ok(&()));
    assert!(pending.wait().unwrap_err().is_cancelled());
}

#[test]
fn cancelling_a_queued_task_stops_it_and_a_finished_one_is_unaffected() {
    let c = Client::builder().workers(1).build().unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let blocker = c.submit_local(move || rx.recv().unwrap());
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let queued = c.submit_local(move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    assert!(queued.cancel());
    tx.send(()).unwrap();
    blocker.wait().unwrap();
    c.submit_local(|| ()).wait().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert!(queued.wait().unwrap_err().is_cancelled());
    assert!(!blocker.cancel());
    assert_eq!(blocker.wait(), Ok(&()));
}

#[test]
fn map_and_gather_keep_order() {
    let c = client();
    let futures = c.map_local(0..1000u64, |i| i * 2);
    let values = c.gather(futures).unwrap();
    assert_eq!(values, (0..1000u64).map(|i| i * 2).collect::<Vec<_>>());
}

#[test]
fn gather_returns_the_first_error_in_order() {
    let c = client();
    let futures = c.map_local(0..10u32, |i| {
        if i == 3 || i == 7 {
            panic!("item {i}");
        }
        i
    });
    let ids: Vec<_> = futures.iter().map(|f| f.id()).collect();
    match c.gather(futures) {
        Err(TaskError::Panicked { task, message }) => {
            assert_eq!(task, ids[3]);
            assert_eq!(&*message, "item 3");
        }
        other => panic!("expected the error of item 3, got {other:?}"),
    }
}

#[test]
fn as_completed_yields_in_completion_order() {
    let c = client();
    let (tx, rx) = mpsc::channel::<()>();
    let slow = c.submit_local(move || {
        rx.recv().unwrap();
        "slow"
    });
    let fast = c.submit_local(|| "fast");
    let mut it = as_completed(vec![slow, fast]);
    assert_eq!(it.next().unwrap().wait(), Ok(&"fast"));
    tx.send(()).unwrap();
    assert_eq!(it.next().unwrap().wait(), Ok(&"slow"));
    assert!(it.next().is_none());
}

#[test]
fn as_completed_is_a_stream() {
    use futures_util::StreamExt;
    let c = client();
    let futures = c.map_local(0..100u64, |i| i);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut seen: Vec<u64> = rt.block_on(async {
        as_completed(futures)
            .then(|f| async move { f.await.unwrap() })
            .collect()
            .await
    });
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
}

#[test]
fn wait_first_all_and_timeout() {
    let c = client();
    let (tx, rx) = mpsc::channel::<()>();
    let blocked = c.submit_local(move || rx.recv().unwrap());
    let quick = c.submit_local(|| ());
    let futures = vec![blocked, quick];

    let first = wait(&futures, WaitFor::FirstCompleted);
    assert_eq!(first.done, vec![1]);
    assert_eq!(first.not_done, vec![0]);

    let start = Instant::now();
    let timed = wait_timeout(&futures, WaitFor::AllCompleted, Duration::from_millis(50));
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert_eq!(timed.not_done, vec![0]);

    tx.send(()).unwrap();
    let all = wait_timeout(&futures, WaitFor::AllCompleted, Duration::from_secs(30));
    assert_eq!(all.done, vec![0, 1]);
    assert!(all.not_done.is_empty());
}

#[test]
fn wait_first_completed_times_out_when_nothing_finishes() {
    let c = client();
    let (tx, rx) = mpsc::channel::<()>();
    let blocked = c.submit_local(move || rx.recv().unwrap());
    let r = wait_timeout(
        std::slice::from_ref(&blocked),
        WaitFor::FirstCompleted,
        Duration::from_millis(30),
    );
    assert!(r.done.is_empty());
    assert_eq!(r.not_done, vec![0]);
    assert!(blocked.wait_timeout(Duration::from_millis(10)).is_none());
    tx.send(()).unwrap();
    assert_eq!(blocked.wait_timeout(Duration::from_secs(30)), Some(Ok(&())));
}

#[test]
fn tasks_submit_tasks_through_the_current_client() {
    let c = client();
    assert!(
        Client::current().is_none(),
        "the test thread is not a worker"
    );
    let f = c.submit_local(|| {
        let inner = Client::current().expect("a task sees its client");
        let parts: Vec<_> = (0..10u64).map(|i| inner.submit_local(move || i)).collect();
        parts.iter().map(|p| *p.wait().unwrap()).sum::<u64>()
    });
    assert_eq!(f.wait(), Ok(&45));
}

#[test]
fn tasks_waiting_on_tasks_help_instead_of_deadlocking_one_worker() {
    // One worker: the outer task can only finish if waiting runs the inner one.
    let c = Client::builder().workers(1).build().unwrap();
    let f = c.submit_local(|| {
        let inner = Client::current().unwrap().submit_local(|| 3);
        *inner.wait().unwrap() + 1
    });
    assert_eq!(f.wait(), Ok(&4));
}

/// Counts drops of values it is attached to.
struct Tracked(Arc<AtomicUsize>);
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn dropping_a_future_does_not_cancel_and_frees_the_result() {
    let c = client();
    let ran = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let (r, d) = (ran.clone(), drops.clone());
    let (tx, rx) = mpsc::channel::<()>();
    let f = c.submit_local(move || {
        rx.recv().unwrap();
        r.fetch_add(1, Ordering::SeqCst);
        Tracked(d)
    });
    drop(f);
    tx.send(()).unwrap();
    // The task still runs, and with no reader its result is dropped right after.
    let deadline = Instant::now() + Duration::from_secs(30);
    while drops.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_result_lives_while_a_future_or_pending_dependent_can_read_it() {
    let c = client();
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let (tx, rx) = mpsc::channel::<()>();
    let gate = c.submit_local(move || rx.recv().unwrap());
    let data = c.submit_local(move || Tracked(d));
    data.wait().unwrap();
    let reader = c.submit_local_with((&data, &gate), |(t, _)| Arc::strong_count(&t.0));
    drop(data);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "freed while a dependent still needs it"
    );
    tx.send(()).unwrap();
    reader.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while drops.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "not freed once nothing can read it"
    );
}

#[test]
fn dropping_the_client_resolves_queued_tasks_to_shutdown() {
    let c = Client::builder().workers(1).build().unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    let running = c.submit_local(move || {
        started_tx.send(()).unwrap();
        rx.recv().unwrap();
        1
    });
    started.recv().unwrap();
    let queued: Vec<_> = (0..100).map(|i| c.submit_local(move || i)).collect();
    let dependent = c.submit_local_with(&queued[0], |x| x + 1);
    // Let the running task finish once the drop has begun.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(()).unwrap();
    });
    drop(c);
    releaser.join().unwrap();
    assert_eq!(running.wait(), Ok(&1));
    for f in &queued {
        assert!(matches!(f.wait(), Err(TaskError::Shutdown { .. })));
    }
    assert!(matches!(dependent.wait(), Err(TaskError::Shutdown { .. })));
}

#[test]
fn errors_display_the_task() {
    let c = client();
    let f = c.submit_local(|| -> () { panic!("why") });
    let e = f.wait().unwrap_err();
    assert_eq!(e.to_string(), format!("{} panicked: why", f.id()));
    assert_eq!(e.task(), f.id());
}
