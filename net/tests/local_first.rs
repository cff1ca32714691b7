//! Named tasks measured cheaper to run than to hand on stay on their submitter's pool
//! (`Config::keep_below`); the rest still go to the swarm, and a value kept here that a
//! task elsewhere reads is fetched from this peer, not carried in the task.

use std::time::Duration;

use peer_core::TaskFuture;
use peer_net::Peer;

mod common;
use common::{config, swarm};

/// A few microseconds of work at most.
#[peer_core::task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// About 10 µs of work: kept here, and batched when the pool falls behind. 13 panics.
#[peer_core::task]
fn spin_add(a: u64, b: u64) -> u64 {
    assert!(a != 13, "unlucky");
    let until = std::time::Instant::now() + Duration::from_micros(10);
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
    a + b
}

/// Long enough that handing it on pays.
#[peer_core::task]
fn slow_add(a: u64, b: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    a + b
}

/// A large result (over the 64 KiB inline limit), made quickly.
#[peer_core::task]
fn bytes(n: u64) -> Vec<u8> {
    vec![7; n as usize]
}

/// Reads a large input.
#[peer_core::task]
fn total(data: &Vec<u8>) -> u64 {
    data.iter().map(|b| u64::from(*b)).sum()
}

/// Two peers, the first having measured `spin_add` (its first call), so that its calls are
/// kept, and batched once it is behind.
fn measured_swarm() -> Vec<Peer> {
    let peers = swarm(2);
    let sum = peers[0].submit_named(SpinAddTask, (1u64, 1u64));
    assert_eq!(sum.wait(), Ok(&2));
    peers
}

/// Of `calls` submitted, those not kept went through the node in batches: fewer tasks than
/// calls. (How many calls a batch holds depends on the pace of the submitter, which a
/// loaded machine stops for longer than a batch waits for its next call: 4 calls a task,
/// and 1.6 for a chain, under CI load.)
fn assert_batched(status: &peer_net::Status, calls: u64) {
    let handed_on = calls - status.kept_here;
    assert!(
        status.stats.submitted < handed_on.max(1),
        "{} tasks through the node for {handed_on} calls not kept: not batched",
        status.stats.submitted
    );
}

fn ran_elsewhere(peers: &[Peer]) -> u64 {
    peers[1..]
        .iter()
        .map(|p| p.status().unwrap().stats.ran)
        .sum()
}

#[test]
fn tiny_tasks_stay_on_the_submitters_pool_and_slow_ones_are_spread() {
    let peers = swarm(3);
    let client = &peers[0];
    // A graph of tiny tasks: each sum reads the one before it.
    let mut last: TaskFuture<u64> = client.submit_named(AddTask, (0u64, 0u64));
    let mut all = Vec::new();
    for i in 1..=3_000u64 {
        last = client.submit_named(AddTask, (i, &last));
        all.push(last.clone());
    }
    let sums = client.gather(all).unwrap();
    assert_eq!(sums.last(), Some(&(1..=3_000u64).sum()));
    let status = client.status().unwrap();
    // Kept here, or (those the pool could not keep up with) handed on in batches: not
    // one by one through the node.
    assert_batched(&status, 3_001);
    assert_eq!(
        status.stats.ran + ran_elsewhere(&peers),
        3_001,
        "each call ran once, kept ones counted where they ran"
    );

    // Calls of 2 ms go to the swarm: the idle peers run some.
    let slow = client.map_named(SlowAddTask, (0..200u64).map(|i| (i, 1u64)));
    let slow = client.gather(slow).unwrap();
    assert_eq!(slow, (1..=200u64).collect::<Vec<_>>());
    assert!(
        ran_elsewhere(&peers) > 0,
        "the other peers ran none of the slow calls"
    );
    let kept_after = client.status().unwrap().kept_here;
    assert!(
        kept_after <= status.kept_here + 1,
        "at most the first slow call is kept, to be measured: {} then {kept_after}",
        status.kept_here
    );
}

#[test]
fn keep_below_zero_sends_every_call_to_the_swarm() {
    let first = Peer::join(config().keep_below(Duration::ZERO)).unwrap();
    let sums = first.map_named(AddTask, (0..500u64).map(|i| (i, 1u64)));
    assert_eq!(first.gather(sums).unwrap().len(), 500);
    let status = first.status().unwrap();
    assert_eq!(status.kept_here, 0);
    assert_eq!(status.stats.submitted, 500, "every call went to the node");
}

#[test]
fn a_large_value_kept_here_is_fetched_by_the_peer_that_reads_it() {
    // The submitter does not run `total`: the other peer must, fetching its input.
    let first = Peer::join(config().withhold_task("local_first::total")).unwrap();
    let second = Peer::join(config().bootstrap(first.addresses()[0].clone())).unwrap();
    assert_eq!(first.wait_for_peers(1, Duration::from_secs(20)), 1);
    assert_eq!(second.wait_for_peers(1, Duration::from_secs(20)), 1);
    // The first call of `bytes` runs here to be measured: a future of this pool, not a
    // task of the swarm's, and over the inline limit.
    let data = first.submit_named(BytesTask, 300_000u64);
    let sums: Vec<_> = (0..4)
        .map(|_| first.submit_named(TotalTask, &data))
        .collect();
    assert_eq!(first.gather(sums).unwrap(), vec![7 * 300_000; 4]);
    assert_eq!(
        first.status().unwrap().kept_here,
        1,
        "the first call of bytes"
    );
    let fetched = second.status().unwrap().stats.fetches;
    assert!(
        fetched >= 1,
        "the reader fetched the value ({fetched} fetches)"
    );
    // Freed once read: nothing of it stays in the submitter's store.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while first.status().unwrap().stats.held > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the value is still held"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn calls_the_pool_cannot_keep_up_with_go_to_idle_peers_in_batches() {
    let peers = measured_swarm();
    let (client, idle) = (&peers[0], &peers[1]);
    // Far more calls than one worker keeps up with, and a chain in which each call reads
    // the one before it (within a batch, from the call before it in the same batch).
    let calls = client.map_named(SpinAddTask, (0..20_000u64).map(|i| (i, 1u64)));
    let mut last: TaskFuture<u64> = client.submit_named(SpinAddTask, (0u64, 0u64));
    for _ in 0..3_000 {
        last = client.submit_named(SpinAddTask, (1u64, &last));
    }
    for (i, call) in calls.iter().enumerate() {
        match call.wait() {
            Ok(sum) => assert_eq!(*sum, i as u64 + 1),
            Err(error) => {
                assert_eq!(i, 13, "only 13 fails: {error}");
                assert!(error.to_string().contains("unlucky"), "{error}");
            }
        }
    }
    assert_eq!(last.wait(), Ok(&3_000), "the chain adds up");

    let status = client.status().unwrap();
    let ran_there = idle.status().unwrap().stats.ran;
    assert!(ran_there > 0, "the idle peer ran none of the calls");
    assert_eq!(
        status.stats.ran + ran_there,
        23_002,
        "each call ran once (with the measured one), each call of a batch counted"
    );
    assert_batched(&status, 23_002);
    assert!(status.kept_here > 256, "the pool kept its backlog's worth");
}

/// Fails on purpose.
#[peer_core::task]
fn broken(n: u64) -> u64 {
    panic!("broken {n}")
}

#[test]
fn a_task_that_submits_calls_while_a_batch_waits_for_it_does_not_wait_for_good() {
    let peers = measured_swarm();
    let client = &peers[0];
    // A task on the pool that, once its gate opens, calls spin_add and waits for the calls.
    let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
    let opened = std::sync::Arc::clone(&gate);
    let fan: TaskFuture<u64> = client.submit_local(move || {
        opened.wait();
        let inner = peer_core::Client::current().expect("on a worker");
        // From 100: 13 panics.
        let calls = inner.map_named(SpinAddTask, (100..300u64).map(|i| (i, 1u64)));
        inner.gather(calls).unwrap().iter().sum()
    });
    // A burst that puts the pool far behind (its one worker waits in the fan), then far
    // more calls reading the fan's result than it keeps up with: they go in batches that
    // wait for the fan, the last one still open when the fan runs.
    let burst = client.map_named(SpinAddTask, (100..20_100u64).map(|i| (i, 1u64)));
    let readers = client.map_named(SpinAddTask, (100..5_150u64).map(|i| (i, &fan)));
    gate.wait();
    let sum = fan
        .wait_timeout(Duration::from_secs(60))
        .expect("the fan waits for good");
    assert_eq!(sum, Ok(&(101..=300u64).sum()));
    let sum = *sum.unwrap();
    assert_eq!(client.gather(burst).unwrap().len(), 20_000);
    for (i, reader) in readers.iter().enumerate() {
        let got = reader
            .wait_timeout(Duration::from_secs(60))
            .expect("a reader waits for good");
        assert_eq!(got, Ok(&(i as u64 + 100 + sum)));
    }
}

#[test]
fn a_failed_input_fails_only_the_batched_calls_that_read_it() {
    let peers = measured_swarm();
    let client = &peers[0];
    let failed: TaskFuture<u64> = client.submit_named(BrokenTask, 1u64);
    assert!(failed.wait().is_err());
    // Calls that read the failed future, between calls that do not, while the pool is
    // behind: only the readers fail.
    let mut calls = Vec::new();
    // From 100: 13 panics.
    for i in 100..6_100u64 {
        if i % 100 == 7 {
            calls.push((i, client.submit_named(SpinAddTask, (i, &failed))));
        } else {
            calls.push((i, client.submit_named(SpinAddTask, (i, 1u64))));
        }
    }
    for (i, call) in calls {
        match call.wait() {
            Ok(sum) => assert_eq!(*sum, i + 1),
            Err(error) => assert_eq!(i % 100, 7, "call {i} failed: {error}"),
        }
    }
    // With the measured call and the broken one.
    assert_batched(&client.status().unwrap(), 6_002);
}
