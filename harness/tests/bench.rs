//! `peer-harness bench w7` against real `peer-harness join` processes: the JSON it prints,
//! the aligned lines it prints by default, and nothing (children, network namespace) left
//! behind. As root with `ip` the peers run in a network namespace of the command's own;
//! otherwise on the host's loopback. Either passes.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::harness;

/// Whether `pid` is still one of the `join` children (a reused pid is someone else).
fn is_a_peer_join(pid: u64) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        args.contains(&b"join".as_slice()) && args.contains(&b"--ephemeral".as_slice())
    })
}

/// Runs `peer-harness bench <args>` to its successful end: its pid and its standard output.
fn bench(args: &[&str]) -> (u32, String) {
    let child = harness()
        .arg("bench")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the peer-harness binary starts");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (pid, stdout)
}

#[test]
fn w7_json_has_every_figure_and_leaves_no_peer_or_namespace_behind() {
    let (pid, stdout) = bench(&["w7", "--peers", "3", "--secs", "2", "--json"]);
    let w7: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(w7["workload"], "W7", "{w7}");
    assert_eq!(w7["peers"], 3, "{w7}");
    assert_eq!(w7["fully_connected_peers"], 3, "{w7}");
    for figure in [
        "cpu_percent_of_one_core_all_peers",
        "tcp_segments_per_peer_per_s",
        "secs",
    ] {
        let value = w7[figure].as_f64();
        assert!(value.is_some_and(|v| v >= 0.0), "{figure}: {w7}");
    }
    assert!(w7["secs"].as_f64().unwrap() >= 2.0, "{w7}");
    assert_eq!(w7["target"]["cpu_percent_of_one_core_all_peers"], 1.0);
    assert_eq!(w7["target"]["messages_per_peer_per_s"], 20.0);
    assert!(w7["met"]["cpu"].is_boolean() && w7["met"]["messages"].is_boolean());
    let scope = w7["segments_scope"].as_str().unwrap();
    assert!(["namespace", "host"].contains(&scope), "{w7}");
    assert_eq!(
        w7.get("segments_note").is_some(),
        scope == "host",
        "a note says the host's counters count other traffic too: {w7}"
    );
    let pids = w7["pids"].as_array().unwrap();
    assert_eq!(pids.len(), 3, "{w7}");
    for child in pids {
        let child = child.as_u64().unwrap();
        assert!(!is_a_peer_join(child), "peer {child} is still running");
    }
    let netns = format!("/run/netns/peer-w7-{pid}");
    assert!(!Path::new(&netns).exists(), "{netns} was left behind");
}

#[test]
fn w7_prints_aligned_lines_by_default() {
    let (pid, stdout) = bench(&["w7", "--peers", "2", "--secs", "1"]);
    assert!(
        stdout
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_err()),
        "no JSON without --json: {stdout}"
    );
    assert!(
        stdout.starts_with("W7 idle cost: 2 peers"),
        "a title first: {stdout}"
    );
    assert!(stdout.contains("2 of them connected"), "{stdout}");
    for figure in [
        "CPU of all the peers, % of one core",
        "TCP segments sent per peer per s",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(figure))
            .unwrap_or_else(|| panic!("no {figure:?} line: {stdout}"));
        assert!(
            line.contains(": met") || line.contains(": MISSED"),
            "{line}"
        );
    }
    assert!(
        stdout.contains("≤ 1 %") && stdout.contains("≤ 20 messages"),
        "{stdout}"
    );
    assert!(stdout.contains("TCP segments counted"), "{stdout}");
    assert!(!Path::new(&format!("/run/netns/peer-w7-{pid}")).exists());
}
