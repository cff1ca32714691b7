//! `peer-harness uts` across real processes on 127.0.0.1: three joined peers count a UTS tree
//! with the one that submits it. (That `peer join` serves the same tasks: `peer-cli`'s
//! `tests/swarm.rs`.)

mod common;

use common::{harness, three_peers};
use peer_testkit::stdout_of;

#[test]
fn uts_t1_is_exact_across_three_processes() {
    let peers = three_peers();
    let out = stdout_of(harness().args([
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
