//! How client commands find the swarm (the swarm file, `PEER_BOOTSTRAP`, `--bootstrap`,
//! `--alone`), why they cannot, and the exit codes of each case, with real `peer` processes
//! on 127.0.0.1.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{join_command, join_with, peer};
use peer_testkit::{Joined, TempDir, stdout_of};

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("peer starts")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `peer join` writing its addresses to `file`, bootstrapped from `bootstrap` if given.
fn join_to_file(file: &std::path::Path, bootstrap: Option<&str>, flags: &[&str]) -> Joined {
    Joined::spawn(
        join_command(bootstrap)
            .arg("--swarm-file")
            .arg(file)
            .args(flags)
            .stderr(std::process::Stdio::inherit()),
    )
}

/// Peer ids `peer status --json` lists, besides its own.
fn others_in_status(out: &str) -> Vec<String> {
    let status: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    (status["peers"].as_array().unwrap().iter())
        .filter(|p| p["this_command"] == false)
        .map(|p| p["peer"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn commands_find_the_swarm_in_the_swarm_file_without_bootstrap() {
    let dir = TempDir::new("find-swarm-file");
    let file = dir.path("state/swarm.json");
    let first = join_to_file(&file, None, &["--allow-shell"]);
    let second = join_to_file(&file, Some(&first.addr), &["--allow-shell"]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the swarm file is the user's alone");

    // No --bootstrap, no PEER_BOOTSTRAP: the file names both peers.
    let out = stdout_of(
        peer()
            .args(["status", "--json", "--wait-peers", "2"])
            .env("PEER_SWARM_FILE", &file)
            .env_remove("PEER_BOOTSTRAP"),
    );
    let mut seen = others_in_status(&out);
    seen.sort();
    let mut expected = vec![first.id().to_string(), second.id().to_string()];
    expected.sort();
    assert_eq!(seen, expected, "{out}");

    // `peer map` finds it too, and runs nothing itself (no --workers): every command ran in
    // one of the two joined peers.
    let map = peer()
        .args(["map", "--json", "--swarm-file"])
        .arg(&file)
        .args(["a", "b", "c", "d", "--", "echo", "{}"])
        .output()
        .unwrap();
    assert!(map.status.success(), "{}", stderr(&map));
    let pids = [first.child.id(), second.child.id()];
    for line in String::from_utf8_lossy(&map.stdout).lines() {
        let task: serde_json::Value = serde_json::from_str(line).unwrap();
        let pid = task["pid"].as_u64().unwrap() as u32;
        assert!(pids.contains(&pid), "ran by a joined peer: {task}");
    }

    // A peer that leaves takes its entry with it; the last one removes the file.
    let mut second = second;
    second.child.kill().unwrap();
    second.child.wait().unwrap();
    drop(first); // SIGKILL too: its entry stays, but its process is gone.
    let out = output(
        peer()
            .args(["status", "--join-timeout", "5", "--swarm-file"])
            .arg(&file),
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("its peers have exited"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn peer_bootstrap_works_for_client_commands_and_takes_several_addresses() {
    let first = join_with(None, &[]);
    let second = join_with(Some(&first.addr), &[]);
    let both = format!("{},{}", first.addr, second.addr);
    let out = stdout_of(
        peer()
            .args(["status", "--json", "--wait-peers", "2"])
            .env("PEER_BOOTSTRAP", &both)
            .env("PEER_SWARM_FILE", "/nonexistent/swarm.json"),
    );
    assert_eq!(others_in_status(&out).len(), 2, "{out}");
    // The flag, repeated.
    let out = stdout_of(peer().args([
        "status",
        "--json",
        "--bootstrap",
        &first.addr,
        "--bootstrap",
        &second.addr,
    ]));
    assert_eq!(others_in_status(&out).len(), 2, "{out}");
}

#[test]
fn no_swarm_found_exits_3_naming_what_was_tried_unless_alone() {
    let dir = TempDir::new("find-swarm-none");
    let file = dir.path("swarm.json");
    for command in [&["status"][..], &["jobs"], &["map", "a", "--", "true"]] {
        let out = output(
            peer()
                .arg(command[0])
                .arg("--swarm-file")
                .arg(&file)
                .args(&command[1..])
                .env_remove("PEER_BOOTSTRAP"),
        );
        assert_eq!(out.status.code(), Some(3), "{command:?}: {}", stderr(&out));
        let said = stderr(&out);
        assert!(said.contains("no swarm found"), "{said}");
        assert!(said.contains(&file.display().to_string()), "{said}");
        assert!(said.contains("--alone"), "{said}");
    }
    // --alone runs here, on this process's own workers.
    let out = stdout_of(
        peer()
            .args(["map", "--alone", "--swarm-file"])
            .arg(&file)
            .args(["x", "y", "--", "echo", "{}"]),
    );
    assert_eq!(out, "x\ny\n");
}

#[test]
fn worker_counts_and_addresses_are_checked_as_usage_errors() {
    for args in [
        &["map", "--workers", "100000", "a", "--", "true"][..],
        &["join", "--workers", "100000"],
        &["join", "--workers", "0"],
        &["status", "--bootstrap", "/ip4/127.0.0.1/tcp/4001"],
        &["join", "--bootstrap", "/ip4/127.0.0.1/tcp/4001"],
        &["map", "--alone", "--workers", "0", "a", "--", "true"],
    ] {
        let started = Instant::now();
        let out = output(peer().args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{args:?} at once"
        );
    }
    let out = output(peer().args(["map", "--workers", "100000", "a", "--", "true"]));
    assert!(stderr(&out).contains("limit of 1024"), "{}", stderr(&out));
    let out = output(peer().args(["status", "--bootstrap", "/ip4/127.0.0.1/tcp/4001"]));
    assert!(stderr(&out).contains("/p2p/"), "{}", stderr(&out));
}

#[test]
fn a_wrong_peer_id_fails_at_once_and_each_cause_is_told_apart() {
    let up = join_with(None, &[]);
    let port = up
        .addr
        .split("/tcp/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    // The right address with another peer's id.
    let other_id = "12D3KooWDTDyqabsqMXLi8J6XAc8NgSq1C2mXgNGXdUvh4RWdXes";
    let wrong = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{other_id}");
    let started = Instant::now();
    let out = output(peer().args(["status", "--join-timeout", "120", "--bootstrap", &wrong]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("another peer id"), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "failed at once, not after the 120 s time-out: {:?}",
        started.elapsed()
    );

    // Nobody listens: a dead peer, not a wrong key.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("/ip4/127.0.0.1/tcp/{dead_port}/p2p/{other_id}");
    let out = output(peer().args(["status", "--join-timeout", "120", "--bootstrap", &dead]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("nothing listens") && !said.contains("swarm key"),
        "{said}"
    );

    // A keyed swarm and a client with another key: the key is named.
    let dir = TempDir::new("find-swarm-keys");
    let key = common::swarm_key(&dir);
    let keyed = join_with(None, &["--swarm-key", key.to_str().unwrap()]);
    let other_key = dir.path("other.key");
    stdout_of(peer().args(["keygen", "--out"]).arg(&other_key));
    let out = output(
        peer()
            .args(["status", "--join-timeout", "20", "--bootstrap", &keyed.addr])
            .arg("--swarm-key")
            .arg(&other_key),
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("swarm key"), "{}", stderr(&out));
}

#[test]
fn a_missing_key_file_is_a_usage_error_everywhere() {
    for command in [
        &["join", "--swarm-key", "/nonexistent/swarm.key"][..],
        &[
            "map",
            "--swarm-key",
            "/nonexistent/swarm.key",
            "--bootstrap",
        ],
    ] {
        let mut cmd = peer();
        cmd.args(command);
        if command[0] == "map" {
            cmd.arg(
                "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDTDyqabsqMXLi8J6XAc8NgSq1C2mXgNGXdUvh4RWdXes",
            )
            .args(["a", "--", "true"]);
        }
        let out = output(&mut cmd);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("/nonexistent/swarm.key"),
            "{}",
            stderr(&out)
        );
    }
}
