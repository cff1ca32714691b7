//! The real `peer` binary.

use std::process::Command;

fn peer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peer"))
}

#[test]
fn demo_prints_the_best_score() {
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
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("best score: -"), "{stdout}");
    assert!(stdout.contains("123 tasks on 2 workers"), "{stdout}");
}

#[test]
fn bad_usage_exits_2_with_a_message() {
    let out = peer().args(["demo", "--files", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--files"), "{stderr}");
    let out = peer().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
