//! The swarm behind the same `peer_core::Client`: code written for the local client runs on a
//! peer's client unchanged, and tasks that submit tasks reach the swarm from any peer.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use peer_core::{Client, TaskError, TaskFuture, gather};
use peer_net::{Config, Peer};

mod common;
use common::{config, swarm};

#[peer_core::task]
fn slow_double(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(3));
    x * 2
}

/// A leaf of [`fan_out`]: slow enough that a third peer steals some.
#[peer_core::task]
fn leaf(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(20));
    x + 1
}

/// Submits `n` leaves from inside a task, through whichever client runs it, and sums them.
#[peer_core::task]
fn fan_out(n: u64) -> u64 {
    let leaves: Vec<TaskFuture<u64>> = Client::with_current(|client| {
        assert!(client.is_remote(), "a task on a peer submits to the swarm");
        client.map_named(LeafTask, 0..n)
    })
    .expect("runs on a worker");
    gather(leaves).unwrap().into_iter().sum()
}

static FLAKY_RUNS: AtomicU32 = AtomicU32::new(0);

#[peer_core::task]
fn flaky(x: u64) -> u64 {
    if FLAKY_RUNS.fetch_add(1, Ordering::SeqCst) < 2 {
        panic!("not yet");
    }
    x
}

/// Written once for the local client, as a user would: nothing in it names the swarm.
fn doubled_sum(client: &Client, n: u64) -> u64 {
    let doubled = client.map_named(SlowDoubleTask, 0..n);
    let clone = client.clone();
    clone.gather(doubled).unwrap().into_iter().sum()
}

/// A peer that serves every task but those named. These tests count who owns and runs
/// each call, so every call goes through the swarm: none is kept on its submitter's pool
/// to be measured (`Config::keep_below`).
fn peer(bootstrap: Option<&Peer>, withheld: &[&str]) -> Peer {
    let mut config: Config = config().keep_below(Duration::ZERO);
    if let Some(first) = bootstrap {
        config = config.bootstrap(first.addresses()[0].clone());
    }
    for name in withheld {
        config = config.withhold_task(*name);
    }
    Peer::join(config).unwrap()
}

/// Waits until each of `peers` sees at least the others (it may see more).
fn connected(peers: &[&Peer]) {
    for peer in peers {
        let seen = peer.wait_for_peers(peers.len() - 1, Duration::from_secs(20));
        assert!(
            seen >= peers.len() - 1,
            "{} sees {seen} peers",
            peer.peer_id()
        );
    }
}

#[test]
fn a_function_written_for_the_local_client_runs_across_the_swarm() {
    let peers = swarm(3);
    let first = &peers[0];

    let local = Client::builder().workers(1).build().unwrap();
    let expected: u64 = (0..200).map(|x| x * 2).sum();
    assert_eq!(doubled_sum(&local, 200), expected);
    // The same function, handed the client of a peer (no `Peer` in sight).
    let client: Client = first.client().clone();
    assert!(client.is_remote());
    assert_eq!(doubled_sum(&client, 200), expected);

    let ran: Vec<u64> = peers
        .iter()
        .map(|p| p.status().unwrap().stats.ran)
        .collect();
    assert_eq!(ran.iter().sum::<u64>(), 200, "each task ran once: {ran:?}");
    assert!(
        ran[1] > 0 && ran[2] > 0,
        "the other peers ran nothing: {ran:?}"
    );
    assert_eq!(first.status().unwrap().local_only, 0);
}

#[test]
fn tasks_submitted_inside_a_task_on_a_joined_peer_are_stolen_by_a_third() {
    // The submitter runs nothing; only `second` runs `fan_out`, so its leaves are owned by
    // `second`, and `third` can run only those leaves.
    let fan = "one_client::fan_out";
    let first = peer(None, &[fan, "one_client::leaf"]);
    let second = peer(Some(&first), &[]);
    let third = peer(Some(&first), &[fan]);
    connected(&[&first, &second, &third]);

    let client = first.client();
    let sums = client.map_named(FanOutTask, [30u64, 30]);
    let sums = client.gather(sums).unwrap();
    assert_eq!(sums, vec![(1..=30).sum::<u64>(); 2]);

    let first_ran = first.status().unwrap().stats;
    let second_ran = second.status().unwrap().stats;
    let third_ran = third.status().unwrap().stats;
    assert_eq!(first_ran.ran, 0, "the submitter serves neither task");
    assert_eq!(
        first_ran.submitted, 2,
        "the submitter owns only its two calls"
    );
    assert_eq!(
        second_ran.submitted, 60,
        "the leaves are owned by the peer running fan_out"
    );
    assert!(
        third_ran.ran > 0,
        "the third peer stole none of the nested leaves"
    );
    assert_eq!(
        second_ran.ran + third_ran.ran,
        62,
        "each of the 2 + 60 tasks ran once"
    );
}

#[test]
fn retries_clones_and_closures_on_a_peer_client() {
    let first = peer(None, &[]);
    let client = first.client().clone();
    // Retried on the swarm as on a local client: two panics, then the value.
    let value = client.task().retries(2).submit_named(FlakyTask, 7);
    assert_eq!(value.wait(), Ok(&7));
    assert_eq!(FLAKY_RUNS.load(Ordering::SeqCst), 3);
    // Without retries a panic is the task's error.
    FLAKY_RUNS.store(0, Ordering::SeqCst);
    let error = client
        .submit_named(FlakyTask, 1)
        .wait()
        .unwrap_err()
        .clone();
    assert!(matches!(error, TaskError::Panicked { .. }), "{error}");

    // Closures run here, and are counted as such.
    let here = client.submit_local(|| 5u64);
    let twice = client.submit_local_with(&here, |x| x * 2);
    assert_eq!(twice.wait(), Ok(&10));
    assert_eq!(first.status().unwrap().local_only, 2);
    let reports = first.swarm_status().unwrap();
    let own = reports
        .iter()
        .find(|answer| answer.peer == first.peer_id())
        .unwrap();
    assert_eq!(
        own.report.as_ref().unwrap().local,
        2,
        "the report others see counts them too"
    );

    // A clone keeps the peer running after the `Peer` handle goes.
    drop(first);
    assert_eq!(client.submit_named(SlowDoubleTask, 21).wait(), Ok(&42));
    drop(client);
}

#[test]
fn a_submitter_says_which_of_its_tasks_no_connected_peer_registers() {
    let first = peer(None, &[]);
    let second = peer(Some(&first), &["one_client::slow_double"]);
    connected(&[&first, &second]);
    let client = first.client();
    assert_eq!(client.submit_named(SlowDoubleTask, 2).wait(), Ok(&4));
    assert_eq!(client.submit_named(LeafTask, 2).wait(), Ok(&3));
    assert_eq!(client.submit_named(SlowDoubleTask, 3).wait(), Ok(&6));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let unserved = loop {
        let unserved = first.status().unwrap().unserved;
        if !unserved.is_empty() || std::time::Instant::now() > deadline {
            break unserved;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(unserved, vec!["one_client::slow_double".to_string()]);
    // Said once, and never of a task that a connected peer serves.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(first.status().unwrap().unserved, unserved);
}

#[test]
fn a_peer_lost_while_owning_nested_tasks_costs_its_parent_a_rerun_not_a_result() {
    // `second` alone serves at first: it runs `fan_out` and owns its leaves.
    let first = peer(None, &["one_client::fan_out", "one_client::leaf"]);
    let second = peer(Some(&first), &[]);
    connected(&[&first, &second]);
    let sum = first.client().submit_named(FanOutTask, 40u64);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while second.status().unwrap().stats.submitted < 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "fan_out never ran at second"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let third = peer(Some(&first), &[]);
    connected(&[&first, &second, &third]);
    // The owner of the nested leaves goes, with the parent that waits for them.
    let gone = second.peer_id();
    drop(second);
    assert_eq!(sum.wait(), Ok(&(1..=40).sum::<u64>()));
    let status = first.status().unwrap();
    assert_eq!(status.recoveries.len(), 1, "{:?}", status.recoveries);
    assert!(status.stats.reruns >= 1, "the parent was not run again");
    // Who noticed is told to any peer that asks: here `first`, the parent's owner.
    let told = third.suspicions().unwrap();
    assert!(
        told.iter()
            .any(|s| s.by == first.peer_id() && s.peer == gone),
        "{told:?}"
    );
    let third_stats = third.status().unwrap().stats;
    assert_eq!(
        third_stats.submitted, 40,
        "the parent ran again at third, with its leaves"
    );
    assert!(third_stats.ran > 40, "{third_stats:?}");
}
