//! Real `peer` processes on 127.0.0.1: three `peer join` peers, and a fourth process that
//! joins them and submits work.

mod common;

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

#[test]
fn uts_t1_is_exact_across_three_processes() {
    let peers = three_peers();
    let out = stdout_of(peer().args([
        "uts",
        "T1",
        "--bootstrap",
        &peers[0].addr,
        "--wait-peers",
        "3",
        "--workers",
        "1",
    ]));
    assert!(
        out.contains("T1: 4130071 nodes, 3305118 leaves, depth 10"),
        "{out}"
    );
    assert!(out.contains("counts exact"), "{out}");
    let line = out.lines().find(|l| l.starts_with("tasks: ")).unwrap();
    let elsewhere: u64 = line
        .split(", ")
        .find_map(|part| part.strip_suffix(" ran elsewhere"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(elsewhere > 0, "the joined peers ran nothing: {line}");
}
