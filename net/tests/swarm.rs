//! In-process swarms: several peers in one test process, talking real libp2p over loopback.

use std::time::Duration;

use peer_core::TaskError;
use peer_net::Peer;

mod common;
use common::{config, swarm};

#[peer_core::task]
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    x * x
}

#[peer_core::task]
fn make_data(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[peer_core::task]
fn weighted_sum(weight: u64, data: &Vec<u64>) -> u64 {
    std::thread::sleep(Duration::from_millis(1));
    data.iter().map(|x| x * weight).sum()
}

#[peer_core::task]
fn explode(x: u64) -> u64 {
    if x == 3 {
        panic!("three is not allowed");
    }
    x
}

#[test]
fn three_peers_share_the_work_of_one_submitter() {
    let peers = swarm(3);
    let futures = peers[0].map_named(SlowSquareTask, (0..300u64).map(|x| (x,)));
    let squares = peers[0].gather(futures).unwrap();
    assert_eq!(squares, (0..300u64).map(|x| x * x).collect::<Vec<_>>());
    let ran: Vec<u64> = peers
        .iter()
        .map(|p| p.status().unwrap().stats.ran)
        .collect();
    assert_eq!(
        ran.iter().sum::<u64>(),
        300,
        "every task ran exactly once: {ran:?}"
    );
    assert!(
        ran[1] > 0 && ran[2] > 0,
        "the other peers stole nothing: {ran:?}"
    );
}

#[test]
fn dependents_use_inputs_held_by_other_peers() {
    let peers = swarm(3);
    let client = &peers[2];
    // Results over the inline limit stay with whoever computed them and are fetched.
    let mut expected = Vec::new();
    let mut futures = Vec::new();
    for file in 0..6u64 {
        let n = 100_000 + file;
        let data = client.submit_named(MakeDataTask, (n,));
        let total: u64 = (0..n).sum();
        for weight in 1..=20u64 {
            futures.push(client.submit_named(WeightedSumTask, (weight, &data)));
            expected.push(total * weight);
        }
    }
    assert_eq!(client.gather(futures).unwrap(), expected);
    let fetches: u64 = peers
        .iter()
        .map(|p| p.status().unwrap().stats.fetches)
        .sum();
    assert!(fetches > 0, "no input crossed between peers");
}

#[test]
fn closures_and_named_tasks_mix_in_one_graph() {
    let peers = swarm(2);
    let client = &peers[0];
    let base = client.submit_local(|| 7u64); // a closure on the local pool
    let squared = client.submit_named(SlowSquareTask, (&base,));
    let plus_one = client.submit_local_with(&squared, |s: &u64| s + 1);
    assert_eq!(plus_one.wait(), Ok(&50));
}

#[test]
fn a_panic_on_any_peer_fails_the_task_and_its_dependents() {
    let peers = swarm(2);
    let client = &peers[1];
    let futures = client.map_named(ExplodeTask, (0..8u64).map(|x| (x,)));
    let dependent = client.submit_named(SlowSquareTask, (&futures[3],));
    for (x, future) in futures.iter().enumerate() {
        match future.wait() {
            Ok(v) => assert_eq!(*v, x as u64),
            Err(TaskError::Panicked { message, .. }) => {
                assert_eq!(x, 3);
                assert!(message.contains("three is not allowed"), "{message}");
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    match dependent.wait() {
        Err(TaskError::InputFailed { cause, .. }) => {
            assert!(matches!(*cause, TaskError::Panicked { .. }), "{cause}")
        }
        other => panic!("the dependent should fail with its input: {other:?}"),
    }
}

#[test]
fn results_are_released_everywhere_once_read() {
    let peers = swarm(3);
    let client = &peers[0];
    for round in 0..3u64 {
        let data = client.submit_named(MakeDataTask, (30_000 + round,));
        let sums = client.map_named(WeightedSumTask, (1..=10u64).map(|w| (w, &data)));
        client.gather(sums).unwrap();
    }
    // Release notices are asynchronous: give them a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held: Vec<(u64, u64)> = peers
            .iter()
            .map(|p| {
                let s = p.status().unwrap().stats;
                (s.held, s.owned)
            })
            .collect();
        if held.iter().all(|&(h, o)| h == 0 && o == 0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still held: {held:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_swarm_key_keeps_strangers_out() {
    let key = peer_net::SwarmKey::generate().unwrap();
    let round_trip: peer_net::SwarmKey = key.to_string().parse().unwrap();
    assert_eq!(round_trip, key, "the key file format reads back");
    let private = Peer::join(config().swarm_key(key)).unwrap();
    let addr = private.addresses()[0].clone();
    let member = Peer::join(config().swarm_key(key).bootstrap(addr.clone())).unwrap();
    let stranger = Peer::join(config().bootstrap(addr.clone())).unwrap();
    let other_key = peer_net::SwarmKey::generate().unwrap();
    let wrong_key = Peer::join(config().swarm_key(other_key).bootstrap(addr)).unwrap();
    assert_eq!(member.wait_for_peers(1, Duration::from_secs(20)), 1);
    let doubled = member.submit_named(SlowSquareTask, (6u64,));
    assert_eq!(doubled.wait(), Ok(&36));
    // Give the outsiders time to try.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(stranger.status().unwrap().peers, 0);
    assert_eq!(wrong_key.status().unwrap().peers, 0);
    assert_eq!(private.status().unwrap().peers, 1);
}

#[test]
fn a_bootstrap_address_without_a_peer_id_is_refused() {
    let error =
        Peer::join(config().bootstrap("/ip4/127.0.0.1/tcp/9".parse().unwrap())).unwrap_err();
    assert!(error.to_string().contains("/p2p/<peer id>"), "{error}");
}
