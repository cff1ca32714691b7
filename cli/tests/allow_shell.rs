//! Who runs the shell commands of `peer map` and `peer submit`, as real processes on
//! 127.0.0.1: a `peer join` without `--allow-shell` runs none (the submitting process runs
//! its own only with `--workers N`; without, the job fails and says why), one with it runs
//! them, and `--shell-timeout` kills a command that runs too long.

mod common;

use std::collections::HashSet;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{join_with, peer};
use peer_testkit::{Joined, stdout_of};
use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

/// `peer map --json` of `n` short commands against `joined`, each printing its input, with
/// `flags`; its pid and output.
fn map(joined: &Joined, n: usize, flags: &[&str]) -> (u32, Output) {
    let inputs: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let child = peer()
        .args(["map", "--json", "--join-timeout", "10"])
        .args(["--bootstrap", &joined.addr])
        .args(flags)
        .args(&inputs)
        .args(["--", "sh", "-c", "sleep 0.01; echo {}"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (pid, child.wait_with_output().unwrap())
}

/// The pids that ran the commands of `peer map --json` output, each checked to have
/// succeeded.
fn pids(out: &Output) -> HashSet<u64> {
    text(&out.stdout)
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            assert_eq!(record["exit_code"], 0, "{line}");
            record["pid"].as_u64().unwrap()
        })
        .collect()
}

/// How many tasks `joined` has run, by `peer status`.
fn ran(joined: &Joined) -> u64 {
    let out = stdout_of(peer().args(["status", "--json", "--bootstrap", &joined.addr]));
    let status: Value = serde_json::from_str(out.trim()).unwrap();
    let entry = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == joined.id())
        .unwrap_or_else(|| panic!("{} not listed: {status}", joined.id()))
        .clone();
    entry["ran"].as_u64().unwrap()
}

#[test]
fn a_peer_without_allow_shell_runs_no_command() {
    let plain = join_with(None, &[]);

    // The submitting process runs its own commands when asked, and says nobody else did.
    let (map_pid, out) = map(&plain, 20, &["--workers", "1"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(pids(&out), HashSet::from([u64::from(map_pid)]), "{stderr}");
    assert!(
        stderr.contains("no other peer took one") && stderr.contains("--allow-shell"),
        "{stderr}"
    );

    // Without --workers (as with --remote-only) nobody runs them: a clear failure, not a
    // hang.
    let start = Instant::now();
    let (_, out) = map(&plain, 5, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("no peer runs shell commands") && stderr.contains("--allow-shell"),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    assert!(start.elapsed() < Duration::from_secs(30), "{stderr}");
    let out = output(peer().args([
        "submit",
        "--remote-only",
        "--join-timeout",
        "10",
        "--bootstrap",
        &plain.addr,
        "--",
        "true",
    ]));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("--allow-shell"), "{stderr}");

    assert_eq!(
        ran(&plain),
        0,
        "the peer without --allow-shell ran a command"
    );

    // --remote-only alone (no other peer to run them) is a usage error.
    let out = output(peer().args(["submit", "--remote-only", "--alone", "--", "true"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn a_peer_with_allow_shell_runs_them() {
    let shell = join_with(None, &["--allow-shell"]);
    let (_, out) = map(&shell, 20, &["--remote-only"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(pids(&out), HashSet::from([u64::from(shell.child.id())]));
    assert_eq!(ran(&shell), 20);
}

#[test]
fn shell_timeout_kills_a_command_that_runs_too_long() {
    let shell = join_with(None, &["--allow-shell", "--shell-timeout", "1"]);
    let start = Instant::now();
    let out = output(peer().args([
        "submit",
        "--json",
        "--remote-only",
        "--bootstrap",
        &shell.addr,
        "--",
        "sh",
        "-c",
        "sleep 60; true",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(start.elapsed() < Duration::from_secs(30));
    let record: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(record["pid"], shell.child.id());
    let error = record["error"].as_str().unwrap_or_default();
    assert!(error.contains("time limit of 1 s"), "{record}");
    assert_eq!(record["signal"], 9, "{record}");
}

/// A `--remote-only` map that joins through a peer without `--allow-shell` finds the peer of
/// the same swarm that has it (Kademlia finds it after the bootstrap), rather than giving
/// up on the first peer it sees.
#[test]
fn remote_only_finds_a_serving_peer_behind_one_that_does_not_serve() {
    let serving = join_with(None, &["--allow-shell"]);
    let plain = join_with(Some(&serving.addr), &[]);
    let (map_pid, out) = map(&plain, 10, &["--remote-only"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let ran = pids(&out);
    assert!(
        !ran.contains(&u64::from(map_pid)),
        "the map ran none itself: {stderr}"
    );
    assert_eq!(ran.len(), 1, "the serving peer ran them all: {stderr}");
}
