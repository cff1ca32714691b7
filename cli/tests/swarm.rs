//! Real `peer` processes on 127.0.0.1: three `peer join` peers, and a fourth process that
//! joins them and submits work (`peer demo`, or this test's own UTS tasks).

mod common;

use std::time::Duration;

use common::{peer, three_peers};
use peer_testkit::stdout_of;

fn best_score(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.starts_with("best score: "))
        .unwrap_or_else(|| panic!("no best score in {stdout}"))
}

#[test]
fn a_fourth_process_joins_and_its_graph_matches_the_local_run() {
    let peers = three_peers();
    // 20,000 values make each data set too large to inline, so scoring tasks fetch their
    // input from whichever peer loaded it.
    let job = ["--files", "4", "--params", "60", "--values", "20000"];
    let swarm = stdout_of(peer().arg("demo").args(job).args([
        "--bootstrap",
        &peers[0].addr,
        "--wait-peers",
        "3",
        "--workers",
        "1",
    ]));
    let local = stdout_of(peer().arg("demo").args(job).arg("--local"));
    assert_eq!(
        best_score(&swarm),
        best_score(&local),
        "swarm:\n{swarm}\nlocal:\n{local}"
    );
    assert!(swarm.contains("244 tasks on the swarm of"), "{swarm}");
}

/// `peer join` serves `peer_workloads`' named tasks (what `peer-harness uts` submits): three
/// such peers count UTS T1 exactly with an in-process peer of this test, and run part of it.
#[test]
fn joined_peers_serve_the_uts_tasks_of_the_harness() {
    use peer_workloads::{swarm_uts, uts};
    let peers = three_peers();
    let client = peer_net::Peer::join(
        peer_net::Config::new()
            .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .mdns(false)
            .workers(1)
            .bootstrap(peers[0].addr.parse().unwrap()),
    )
    .unwrap();
    assert_eq!(client.wait_for_peers(3, Duration::from_secs(30)), 3);
    let counts = swarm_uts::on_client(&client, "T1", swarm_uts::CHUNK, 4).unwrap();
    assert_eq!(counts, uts::known("T1").unwrap().counts);
    let me = client.peer_id();
    let elsewhere: u64 = (client.swarm_status().unwrap().iter())
        .filter(|answer| answer.peer != me)
        .filter_map(|answer| answer.report.as_ref().ok().map(|r| r.ran))
        .sum();
    assert!(elsewhere > 0, "the joined peers ran nothing");
}
