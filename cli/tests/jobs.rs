//! `peer jobs`, `peer tasks` and `peer cancel`, and stopping a job on every peer (Ctrl-C
//! twice, or `peer cancel` from another terminal), with three real `peer join --allow-shell`
//! processes and a `peer map` that runs no command itself.

mod common;

use std::collections::HashSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{exit_within, group_alive, peer, signal, three_peers_with};
use peer_testkit::{Joined, TempDir, stdout_of};
use serde_json::Value;

/// The task table `peer tasks ID --json` prints.
fn tasks_of(addr: &str, id: &str) -> Vec<Value> {
    json_lines(&stdout_of(peer().args([
        "tasks",
        id,
        "--json",
        "--bootstrap",
        addr,
    ])))
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The job `peer jobs --json` lists for the map run by the process `pid`.
fn job_of(addr: &str, pid: u32) -> Value {
    let out = stdout_of(peer().args(["jobs", "--json", "--bootstrap", addr]));
    json_lines(&out)
        .into_iter()
        .find(|j| j["pid"] == pid)
        .unwrap_or_else(|| panic!("no job of pid {pid} in {out}"))
}

#[test]
fn jobs_and_tasks_list_what_ran_where() {
    let peers = three_peers_with(&["--allow-shell"]);
    let addr = &peers[0].addr;
    let map = peer()
        .args(["map", "--json", "--wait-peers", "3", "--bootstrap", addr])
        .args(["a", "b", "c", "d", "e", "f", "--", "sh", "-c"])
        .arg("sleep 0.2; [ {} != c ] || exit 3; echo {}")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = map.id();
    let out = map.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "one task failed");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("peer tasks "),
        "the map names its job: {said}"
    );

    let job = job_of(addr, pid);
    assert_eq!(job["kind"], "map", "{job}");
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(
        (job["tasks"].as_u64(), job["done"].as_u64()),
        (Some(6), Some(6))
    );
    assert_eq!(job["failed"], 1, "{job}");
    let id = job["id"].as_u64().unwrap().to_string();

    let tasks = tasks_of(addr, &id);
    assert_eq!(tasks.len(), 6);
    let pids: HashSet<u64> = peers.iter().map(|p| u64::from(p.child.id())).collect();
    let ids: HashSet<&str> = peers.iter().map(Joined::id).collect();
    for task in &tasks {
        let failed = task["input"] == "c";
        assert_eq!(
            task["state"],
            if failed { "failed" } else { "succeeded" },
            "{task}"
        );
        assert_eq!(task["exit_code"], if failed { 3 } else { 0 }, "{task}");
        assert!(
            pids.contains(&task["pid"].as_u64().unwrap()),
            "ran by a joined peer: {task}"
        );
        assert!(
            ids.contains(task["peer"].as_str().unwrap()),
            "names its peer: {task}"
        );
        assert!(!task["host"].as_str().unwrap().is_empty(), "{task}");
        assert!(task["seconds"].as_f64().unwrap() >= 0.2, "{task}");
    }
    // The tables say the same.
    let table = stdout_of(peer().args(["jobs", "--bootstrap", addr]));
    assert!(
        table.contains("failed") && table.contains("sleep 0.2"),
        "{table}"
    );
    let table = stdout_of(peer().args(["tasks", &id, "--bootstrap", addr]));
    assert_eq!(
        table.lines().filter(|l| l.contains("succeeded")).count(),
        5,
        "{table}"
    );
    // An unknown job is an error, not an empty list.
    let out = peer()
        .args(["tasks", "999999", "--bootstrap", addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// A map of `n` commands that each write their process-group id to `dir` and sleep: one on
/// each of the three peers at a time (one worker each).
fn sleeping_map(addr: &str, dir: &TempDir, n: usize) -> Child {
    let script = format!(
        "echo $$ > '{}/pid.{{}}'; sleep 60; true",
        dir.root().display()
    );
    let inputs: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    peer()
        .args(["map", "--wait-peers", "3", "--bootstrap", addr])
        .args(&inputs)
        .args(["--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The process groups the commands wrote, once `at_least` have.
fn groups(dir: &TempDir, n: usize, at_least: usize) -> Vec<i32> {
    let read = || -> Vec<i32> {
        (0..n)
            .filter_map(|i| std::fs::read_to_string(dir.path(&format!("pid.{i}"))).ok())
            .filter_map(|pid| pid.trim().parse().ok())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let groups = read();
        if groups.len() >= at_least {
            return groups;
        }
        assert!(
            Instant::now() < deadline,
            "only {} commands started",
            groups.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fails unless every group is gone within 10 s (the peers read the job's control variable
/// every quarter second).
fn all_gone(groups: &[i32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for &group in groups {
        while group_alive(group) {
            assert!(
                Instant::now() < deadline,
                "process group {group} is still alive"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_second_sigint_kills_the_commands_on_every_peer() {
    let peers = three_peers_with(&["--allow-shell"]);
    let dir = TempDir::new("jobs-sigint");
    let mut map = sleeping_map(&peers[0].addr, &dir, 12);
    groups(&dir, 12, 3);
    // A peer of one worker runs one command at a time, even while the command's first read
    // of its job's control variable waits on the swarm.
    std::thread::sleep(Duration::from_millis(1000));
    let running = groups(&dir, 12, 3);
    assert_eq!(running.len(), 3, "three peers of one worker each");
    signal(map.id(), libc::SIGINT);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(map.try_wait().unwrap().is_none(), "the first SIGINT waits");
    for &group in &running {
        assert!(group_alive(group), "a command died at the first SIGINT");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        groups(&dir, 12, 0).len(),
        running.len(),
        "a command started well after the first SIGINT"
    );
    signal(map.id(), libc::SIGINT);
    let status = exit_within(&mut map, Duration::from_secs(20));
    assert_eq!(status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&map.wait_with_output().unwrap().stderr).into_owned();
    assert!(
        stderr.contains("peer: interrupted: ") && !stderr.contains("peer cancel 1`)"),
        "interrupted here, not cancelled from elsewhere: {stderr}"
    );
    all_gone(&running);
    // Nothing of the job started once the first signal was heard, not even in the slots
    // the killed commands freed.
    assert_eq!(groups(&dir, 12, 0).len(), running.len());
}

#[test]
fn peer_cancel_stops_a_job_on_every_peer() {
    let peers = three_peers_with(&["--allow-shell"]);
    let addr = &peers[0].addr;
    let dir = TempDir::new("jobs-cancel");
    let mut map = sleeping_map(addr, &dir, 12);
    let running = groups(&dir, 12, 3);
    let job = job_of(addr, map.id());
    assert_eq!(job["state"], "running", "{job}");
    let id = job["id"].as_u64().unwrap().to_string();
    let said = stdout_of(peer().args(["cancel", &id, "--bootstrap", addr]));
    assert!(said.contains(&format!("cancelling job {id}")), "{said}");
    let status = exit_within(&mut map, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&map.wait_with_output().unwrap().stderr).into_owned();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(&format!("cancelled (`peer cancel {id}`)")),
        "{stderr}"
    );
    all_gone(&running);
    assert!(
        groups(&dir, 12, 0).len() < 12,
        "the queued commands never ran"
    );
    let job = job_of(addr, job["pid"].as_u64().unwrap() as u32);
    assert_eq!(job["state"], "cancelled", "{job}");
}

#[test]
fn status_jobs_and_tasks_run_no_task_and_map_runs_none_here_by_default() {
    let mut joined = common::join_with(None, &["--allow-shell"]);
    let addr = joined.addr.clone();
    let mut map = peer()
        .args([
            "map",
            "--bootstrap",
            &addr,
            "a",
            "b",
            "c",
            "d",
            "--",
            "sh",
            "-c",
            "sleep 0.5 # {}",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Lookers come and go while the job runs: none takes a part of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while map.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the map did not end");
        stdout_of(peer().args(["status", "--bootstrap", &addr]));
        stdout_of(peer().args(["jobs", "--bootstrap", &addr]));
    }
    assert!(map.wait().unwrap().success());
    // And with --workers 0, said outright.
    let out = peer()
        .args([
            "map",
            "--json",
            "--workers",
            "0",
            "--bootstrap",
            &addr,
            "e",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["pid"], joined.child.id(), "{line}");
    let job = json_lines(&stdout_of(peer().args([
        "jobs",
        "--json",
        "--bootstrap",
        &addr,
    ])))
    .into_iter()
    .find(|j| j["command"].as_str().unwrap().contains("sleep 0.5"))
    .expect("the first job is listed");
    let id = job["id"].as_u64().unwrap().to_string();
    let tasks = tasks_of(&addr, &id);
    assert_eq!(tasks.len(), 4);
    for task in tasks {
        assert_eq!(
            task["pid"],
            joined.child.id(),
            "only the joined peer ran: {task}"
        );
    }
    // The lookers left no task behind either: the peer is idle and drains at once.
    signal(joined.child.id(), libc::SIGINT);
    let status = exit_within(&mut joined.child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn an_idle_peers_drain_after_an_interrupted_client_exits_0_at_once() {
    let dir = TempDir::new("jobs-drain");
    let mut joined = common::join_with(None, &["--allow-shell"]);
    let script = format!(
        "echo $$ > '{}/pid.{{}}'; sleep 60; true",
        dir.root().display()
    );
    let mut map = peer()
        .args([
            "map",
            "--bootstrap",
            &joined.addr,
            "0",
            "1",
            "2",
            "3",
            "4",
            "5",
        ])
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = groups(&dir, 6, 1);
    signal(map.id(), libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    signal(map.id(), libc::SIGINT);
    assert_eq!(
        exit_within(&mut map, Duration::from_secs(20)).code(),
        Some(130)
    );
    all_gone(&running);
    let started = Instant::now();
    signal(joined.child.id(), libc::SIGINT);
    let status = exit_within(&mut joined.child, Duration::from_secs(25));
    assert_eq!(status.code(), Some(0), "drained and left");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "at once, not after the 30 s drain time-out: {:?}",
        started.elapsed()
    );
}
