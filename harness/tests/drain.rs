//! The graceful drain of a joined peer on SIGTERM (`peer join`'s, in `peer-harness join`),
//! under the load of a `peer-harness sweep`: the tasks it hands back, a second signal, the
//! drain time-out. Real processes on 127.0.0.1 with mDNS off.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::harness;
use peer_testkit::{Running, TempDir};

/// `peer-harness join` on loopback without mDNS, with no `PEER_*` variables and any state
/// under `dir`.
fn join_cmd(dir: &TempDir) -> Command {
    let mut cmd = harness();
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("PEER_") || var == "RUST_LOG" {
            cmd.env_remove(var);
        }
    }
    cmd.env("XDG_DATA_HOME", dir.path("data"));
    cmd.args(["join", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"]);
    cmd
}

#[test]
fn sigterm_drains_a_peer_and_the_sweep_stays_exact() {
    let dir = TempDir::new("drain");
    let spawn = |bootstrap: Option<&str>| {
        let mut cmd = join_cmd(&dir);
        cmd.args(["--ephemeral", "--workers", "1"]);
        if let Some(addr) = bootstrap {
            cmd.args(["--bootstrap", addr]);
        }
        let mut running = Running::spawn(&mut cmd);
        let addr = running.addr();
        (running, addr)
    };
    let (_first, addr) = spawn(None);
    let _second = spawn(Some(&addr));
    let (mut third, _) = spawn(Some(&addr));
    let mut sweep = Running::spawn(harness().args([
        "sweep",
        "--tasks",
        "300",
        "--ms",
        "50",
        "--bootstrap",
        &addr,
        "--wait-peers",
        "3",
        "--workers",
        "1",
    ]));
    // The sweep's peer has joined when the third sees three others; let it steal a while.
    third.wait_for(|l| l == "3 peers connected");
    std::thread::sleep(Duration::from_millis(1200));
    third.signal(libc::SIGTERM);
    let (status, out) = third.wait_exit();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("SIGTERM: draining"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("drained: handed back "))
        .unwrap_or_else(|| panic!("{out}"));
    let handed_back: u64 = line["drained: handed back ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(out.contains("left the swarm"), "{out}");
    eprintln!("the drained peer handed back {handed_back} tasks");
    // A thief takes half a victim's queue at once, and 1.2 s into a ~4 s sweep it still
    // holds part of it: it handed some back in every run we made (14 to 176 tasks, also
    // with three copies of this test at once on two cores).
    assert!(handed_back > 0, "{out}");

    let (status, out) = sweep.wait_exit();
    assert!(status.success(), "{out}");
    assert!(out.contains("total exact"), "{out}");
}

#[test]
fn a_second_signal_or_the_drain_timeout_ends_a_drain_early() {
    let dir = TempDir::new("drain-early");
    let spawn = |drain_timeout: &str, bootstrap: Option<&str>| {
        let mut cmd = join_cmd(&dir);
        cmd.args([
            "--ephemeral",
            "--workers",
            "1",
            "--drain-timeout",
            drain_timeout,
        ]);
        if let Some(addr) = bootstrap {
            cmd.args(["--bootstrap", addr]);
        }
        let mut running = Running::spawn(&mut cmd);
        let addr = running.addr();
        (running, addr)
    };
    let (mut patient, addr) = spawn("60", None);
    let (mut hasty, _) = spawn("0.5", Some(&addr));
    // Long tasks, so both peers are running one when they are told to leave; the sweep
    // itself is not waited for.
    let mut sweep = Running::spawn(harness().args([
        "sweep",
        "--tasks",
        "6",
        "--ms",
        "20000",
        "--bootstrap",
        &addr,
        "--wait-peers",
        "2",
        "--workers",
        "1",
    ]));
    patient.wait_for(|l| l == "2 peers connected");
    hasty.wait_for(|l| l == "2 peers connected");
    std::thread::sleep(Duration::from_millis(1500));

    hasty.signal(libc::SIGTERM);
    let start = Instant::now();
    let (status, out) = hasty.wait_exit();
    // 0.5 s of drain and at most 2 s to leave, not the 20 s of the task it runs.
    assert!(start.elapsed() < Duration::from_secs(5), "{out}");
    assert_eq!(status.code(), Some(130), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("drained: "))
        .unwrap_or_else(|| panic!("{out}"));
    let unfinished: u64 = line
        .rsplit(", ")
        .next()
        .and_then(|part| part.strip_suffix(" unfinished"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(unfinished >= 1, "{out}");
    assert!(out.contains("tasks unfinished after 0.5 s"), "{out}");

    patient.signal(libc::SIGINT);
    patient.wait_for(|l| l.starts_with("SIGINT: draining"));
    let start = Instant::now();
    patient.signal(libc::SIGINT);
    let (status, out) = patient.wait_exit();
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(out.contains("SIGINT again: leaving at once"), "{out}");
    assert!(!out.contains("drained:"), "{out}");
    assert!(start.elapsed() < Duration::from_secs(5), "{out}");
    let _ = sweep.child.kill();
}
