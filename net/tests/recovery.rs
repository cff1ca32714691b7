//! Peers that leave in the middle of the work, in-process over real libp2p on loopback:
//! the owner runs their share again from lineage, detached jobs outlive their submitter,
//! published values reach peers that join later.

use std::time::{Duration, Instant};

use peer_net::{Error, Job, Peer};

mod common;
use common::{config, swarm};

#[peer_core::task]
fn block(seed: u64, n: u64) -> Vec<u64> {
    std::thread::sleep(Duration::from_millis(10));
    // Large numbers, so that a block (about 80 kB encoded) stays with whoever made it.
    (0..n).map(|i| (i ^ seed) << 32).collect()
}

#[peer_core::task]
fn total(data: &Vec<u64>) -> u64 {
    std::thread::sleep(Duration::from_millis(5));
    data.iter().sum()
}

#[peer_core::task]
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(20));
    x * x
}

#[peer_core::task]
fn plus(a: u64, b: u64) -> u64 {
    a + b
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_peer_that_leaves_mid_graph_costs_time_not_results() {
    let mut peers = swarm(3);
    // Blocks of 12,000 numbers, kept by whoever made them, and one total per block, which
    // fetches it.
    let blocks: Vec<_> = (0..40u64)
        .map(|seed| peers[0].submit_named(BlockTask, (seed, 12_000)))
        .collect();
    let totals = peers[0].map_named(TotalTask, blocks.iter().map(|b| (b,)));
    let leaver = peers.pop().unwrap();
    wait_until("the third peer has run some tasks", || {
        leaver.status().unwrap().stats.ran >= 3
    });
    drop(leaver); // its connections close; what it ran or held is gone
    let got = peers[0].gather(totals).unwrap();
    let want: Vec<u64> = (0..40u64)
        .map(|seed| (0..12_000u64).map(|i| (i ^ seed) << 32).sum())
        .collect();
    assert_eq!(got, want);
    let status = peers[0].status().unwrap();
    assert_eq!(status.stats.suspicions, 1, "{status:?}");
    assert!(
        status.stats.requeued >= 1,
        "it left holding nothing: {status:?}"
    );
    assert_eq!(status.recoveries.len(), 1);
    assert!(
        status.recoveries[0].reason.contains("connection closed"),
        "{:?}",
        status.recoveries[0]
    );
}

#[test]
fn a_detached_job_outlives_its_submitter() {
    let mut peers = swarm(3);
    let mut job = Job::new("squares");
    let squares: Vec<_> = (0..30u64)
        .map(|x| job.add(SlowSquareTask, (x,)).unwrap())
        .collect();
    let mut sum = job.add(PlusTask, (&squares[0], 0)).unwrap();
    for square in &squares[1..] {
        sum = job.add(PlusTask, (&sum, square)).unwrap();
    }
    let submitter = peers.remove(0);
    submitter.detach(job).unwrap();
    // The others hear of the job by gossip within milliseconds; the job takes 300 ms or more.
    std::thread::sleep(Duration::from_millis(100));
    drop(submitter);
    let want: u64 = (0..30u64).map(|x| x * x).sum();
    for peer in &peers {
        let got: u64 = peer
            .wait_published("squares", Duration::from_secs(30))
            .unwrap();
        assert_eq!(got, want);
    }
    let adopted: u64 = peers
        .iter()
        .map(|p| p.status().unwrap().stats.adopted)
        .sum();
    assert!(adopted >= 1, "nobody adopted the job");
}

#[test]
fn published_values_reach_a_peer_that_joins_later_and_keep_their_type() {
    let peers = swarm(2);
    peers[0].publish("answer", &42u64).unwrap();
    assert_eq!(peers[0].published::<u64>("answer").unwrap(), Some(42));
    let late = Peer::join(config().bootstrap(peers[0].addresses()[0].clone())).unwrap();
    late.wait_for_peers(2, Duration::from_secs(20));
    assert_eq!(late.published::<u64>("answer").unwrap(), Some(42));
    assert_eq!(late.published::<u64>("nothing here").unwrap(), None);
    assert!(matches!(
        late.published::<String>("answer"),
        Err(Error::Decode { .. }) | Ok(Some(_))
    ));
    let waited = late.wait_published::<u64>("never", Duration::from_millis(300));
    assert!(
        matches!(waited, Err(Error::NotPublished { .. })),
        "{waited:?}"
    );
}

#[test]
fn a_malformed_job_is_refused_before_anything_runs() {
    let peers = swarm(1);
    let empty = Job::new("empty");
    assert!(matches!(peers[0].detach(empty), Err(Error::Job(_))));
    let outside = peers[0].submit_named(SlowSquareTask, (2,));
    let mut job = Job::new("outside");
    let refused = job.add(PlusTask, (&outside, 1));
    assert!(matches!(refused, Err(Error::Job(_))));
    let mut twice = Job::new("twice");
    twice.add(PlusTask, (1, 2)).unwrap();
    peers[0].detach(twice).unwrap();
    let mut again = Job::new("twice");
    again.add(PlusTask, (1, 2)).unwrap();
    assert!(matches!(peers[0].detach(again), Err(Error::Job(_))));
}
