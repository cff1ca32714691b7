//! The real `peer` binary.

use std::process::Command;

fn peer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peer"))
}

fn demo(extra: &[&str]) -> String {
    let out = peer()
        .args([
            "demo",
            "--files",
            "3",
            "--params",
            "40",
            "--values",
            "500",
            "--workers",
            "2",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn best(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.starts_with("best score: -"))
        .unwrap_or_else(|| panic!("{stdout}"))
}

#[test]
fn demo_on_an_embedded_swarm_matches_the_local_pool() {
    let swarm = demo(&[]);
    assert!(
        swarm.contains("123 tasks on 3 in-process peers × 2 workers"),
        "{swarm}"
    );
    assert!(swarm.contains("steals: "), "{swarm}");
    let local = demo(&["--local"]);
    assert!(local.contains("123 tasks on 2 workers"), "{local}");
    assert_eq!(best(&swarm), best(&local));
}

#[test]
fn bad_usage_exits_2_with_a_message() {
    let out = peer().args(["demo", "--files", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--files"), "{stderr}");
    let out = peer()
        .args(["demo", "--local", "--bootstrap", "/ip4/127.0.0.1/tcp/1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--local conflicts with --bootstrap"
    );
    let out = peer().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
