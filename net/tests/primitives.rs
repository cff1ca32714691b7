//! Named primitives on a real swarm (libp2p over loopback, in one process): the same code
//! as on a local client, tasks on several peers sharing one lock, and topics by gossip.

mod common;

use std::time::Duration;

use peer_core::sync::GetError;

/// Increments the swarm variable `counter` `times` times, each under the swarm lock `lock`:
/// a read-modify-write that loses updates without the lock.
#[peer_core::task(name = "tests::primitives::increment_under_lock")]
fn increment_under_lock(lock: String, counter: String, times: u32) -> u32 {
    let client = peer_core::Client::current().expect("tasks run with a client");
    let lock = client.lock(&lock);
    let counter = client.variable::<u64>(&counter);
    for _ in 0..times {
        let _held = lock.blocking_lock();
        let value = counter.blocking_get().unwrap_or(0);
        std::thread::sleep(Duration::from_micros(200));
        counter.blocking_set(value + 1);
    }
    times
}

/// Uses every kind of primitive through the typed API; returns what it saw. The same code
/// runs against a local client and a swarm client.
fn exercise(client: &peer_core::Client, tag: &str) -> (u64, Vec<u32>, bool, usize) {
    let queue = client.queue::<u32>(&format!("{tag}-jobs"), 4);
    let done = client.event(&format!("{tag}-done"));
    let total = client.variable::<u64>(&format!("{tag}-total"));
    let gpu = client.semaphore(&format!("{tag}-gpu"), 2);
    let consumer = std::thread::spawn({
        let (queue, total) = (queue.clone(), total.clone());
        move || {
            let mut seen = Vec::new();
            while let Ok(v) = queue.blocking_get() {
                seen.push(v);
                total.blocking_set(total.blocking_get().unwrap_or(0) + u64::from(v));
            }
            seen
        }
    });
    for v in 1..=20 {
        queue.blocking_put(v).unwrap();
    }
    queue.blocking_close();
    let seen = consumer.join().unwrap();
    done.blocking_set();
    let a = gpu.blocking_acquire();
    let b = gpu.blocking_acquire();
    let third = gpu.blocking_try_acquire().is_some();
    drop((a, b));
    (
        total.blocking_get().unwrap_or(0),
        seen,
        done.blocking_is_set() && !third,
        gpu.blocking_available(),
    )
}

/// The calls that ask a primitive's home, in async code: each is one round trip on a swarm
/// and answers at once on a local client. Returns what it saw.
async fn ask(client: &peer_core::Client, tag: &str) -> (bool, bool, usize, Option<u32>, bool) {
    let lock = client.lock(&format!("{tag}-lock"));
    let queue = client.queue::<u32>(&format!("{tag}-queue"), 4);
    let variable = client.variable::<u32>(&format!("{tag}-variable"));
    let event = client.event(&format!("{tag}-event"));
    let held = lock.try_lock().await.expect("a free lock");
    let locked = lock.is_locked().await && held.is_held().await;
    let second = lock.try_lock().await.is_none();
    held.release().await.expect("still held");
    queue.try_put(1).await.unwrap();
    queue.try_put(2).await.unwrap();
    let len = queue.len().await;
    assert_eq!(queue.try_get().await, Ok(1));
    variable.set(7).await;
    event.set().await;
    (
        locked && !lock.is_locked().await,
        second,
        len,
        variable.get().await,
        event.is_set().await,
    )
}

#[test]
fn the_same_code_runs_on_a_local_and_a_swarm_client() {
    let local = peer_core::Client::builder().workers(2).build().unwrap();
    let expected = exercise(&local, "same");
    assert_eq!(expected, (210, (1..=20).collect(), true, 2));
    let peers = common::swarm(3);
    // Run where most keys have their home on another peer.
    assert_eq!(exercise(&peers[1], "same"), expected);
}

#[test]
fn the_same_async_code_runs_on_a_local_and_a_swarm_client() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let local = peer_core::Client::builder().workers(2).build().unwrap();
    let expected = rt.block_on(ask(&local, "ask"));
    assert_eq!(expected, (true, true, 2, Some(7), true));
    let peers = common::swarm(3);
    // On a current-thread runtime: a call that blocked its thread would stall the others.
    let on_swarm = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), ask(&peers[1], "ask")).await
    });
    assert_eq!(on_swarm, Ok(expected));
}

#[test]
fn tasks_on_three_peers_keep_a_shared_counter_exact_under_a_swarm_lock() {
    let peers = common::swarm(3);
    let tasks = peers[0].map_named(
        IncrementUnderLockTask,
        (0..24).map(|_| ("count".to_string(), "counter".to_string(), 10u32)),
    );
    let done: u32 = peers[0].gather(tasks).unwrap().into_iter().sum();
    assert_eq!(done, 240);
    assert_eq!(
        peers[2].variable::<u64>("counter").blocking_get(),
        Some(240)
    );
    let ran: Vec<u64> = peers
        .iter()
        .map(|p| p.status().unwrap().stats.ran)
        .collect();
    assert!(
        ran.iter().filter(|r| **r > 0).count() >= 2,
        "the tasks ran on one peer only: {ran:?}"
    );
}

#[test]
fn a_withdrawn_get_takes_nothing_and_a_fenced_write_refuses_a_stale_holder() {
    let peers = common::swarm(2);
    let queue = peers[0].queue::<String>("withdrawn", 8);
    assert_eq!(
        queue.blocking_get_timeout(Duration::from_millis(100)),
        Err(GetError::Empty)
    );
    peers[1]
        .queue::<String>("withdrawn", 8)
        .blocking_put("kept".into())
        .unwrap();
    assert_eq!(
        queue.blocking_get_timeout(Duration::from_secs(10)),
        Ok("kept".into())
    );
    assert_eq!(queue.blocking_len(), 0);

    let (lock, resource) = (peers[0].lock("guard"), peers[0].variable::<u32>("guarded"));
    let stale = lock.blocking_lock_with_lease(Duration::from_millis(200));
    assert!(resource.blocking_set_fenced(1, stale.token()).is_ok());
    // The holder "hangs" past its lease; another peer takes the lock and writes.
    let fresh = peers[1].lock("guard").blocking_lock();
    assert!(fresh.token() > stale.token());
    assert!(!stale.blocking_is_held());
    assert!(
        peers[1]
            .variable::<u32>("guarded")
            .blocking_set_fenced(2, fresh.token())
            .is_ok()
    );
    let refused = resource.blocking_set_fenced(3, stale.token()).unwrap_err();
    assert_eq!(refused.highest, fresh.token());
    assert_eq!(resource.blocking_get(), Some(2));
}

#[test]
fn a_topic_reaches_subscribers_on_other_peers() {
    let peers = common::swarm(2);
    let mut subscription = peers[1].topic::<String>("news").subscribe();
    // Gossip needs the topic mesh: publish until one arrives.
    let topic = peers[0].topic::<String>("news");
    let mut got = None;
    for _ in 0..50 {
        topic.publish("hello".into());
        got = subscription.blocking_next_timeout(Duration::from_millis(200));
        if got.is_some() {
            break;
        }
    }
    assert_eq!(got.as_deref(), Some("hello"));
}
