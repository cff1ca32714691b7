//! `peer map` and `peer submit` as real processes on 127.0.0.1: output in input order on a
//! private (keyed) swarm of three `peer join --allow-shell` peers, JSON lines, the job log
//! and `--resume`, and the exit codes (1 failed tasks, 2 usage, 3 cannot join, 130
//! interrupted). Who may run the commands: `allow_shell.rs`.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{peer, swarm_key, three_peers_with};
use peer_testkit::TempDir;
use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs it and returns its output, whatever its exit code.
fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn numbers(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

/// Every JSON line of `--json` output, checked to have the fields of a task's record.
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
            for field in [
                "index",
                "input",
                "exit_code",
                "signal",
                "stdout",
                "stderr",
                "stdout_truncated",
                "stderr_truncated",
                "host",
                "pid",
                "seconds",
                "error",
            ] {
                assert!(value.get(field).is_some(), "no {field} in {line}");
            }
            assert!(value["index"].is_u64(), "{line}");
            assert!(value["input"].is_string(), "{line}");
            assert!(
                value["stdout"].is_string() && value["stderr"].is_string(),
                "{line}"
            );
            assert!(value["host"].is_string() && value["pid"].is_u64(), "{line}");
            assert!(value["seconds"].is_f64(), "{line}");
            value
        })
        .collect()
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Squares with the task id: each task sleeps a little, so that idle peers steal.
const SQUARES: [&str; 3] = [
    "sh",
    "-c",
    "sleep 0.01; echo $(( {} * {} )) $PEER_TASK_ID $PEER_INPUT",
];

#[test]
fn map_on_three_peers_prints_what_the_local_run_prints() {
    let inputs = numbers(200);
    let local = output(
        peer()
            .args(["map", "--workers", "2"])
            .args(&inputs)
            .arg("--")
            .args(SQUARES),
    );
    assert_eq!(code(&local), Some(0), "{}", text(&local.stderr));
    let expected: String = (0..200).map(|i| format!("{} {i} {i}\n", i * i)).collect();
    assert_eq!(text(&local.stdout), expected);

    // A keyed swarm of three `peer join` that serve shell commands.
    let dir = TempDir::new("map-keyed");
    let key = swarm_key(&dir);
    let key = key.to_str().unwrap();
    let peers = three_peers_with(&["--allow-shell", "--swarm-key", key]);
    let swarm = |json: bool| {
        let mut cmd = peer();
        cmd.args(["map", "--bootstrap", &peers[0].addr]).args([
            "--wait-peers",
            "3",
            "--workers",
            "1",
            "--swarm-key",
            key,
        ]);
        if json {
            cmd.arg("--json");
        }
        let child = cmd
            .args(&inputs)
            .arg("--")
            .args(SQUARES)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        (pid, child.wait_with_output().unwrap())
    };

    let (_, plain) = swarm(false);
    assert_eq!(code(&plain), Some(0), "{}", text(&plain.stderr));
    assert_eq!(text(&plain.stdout), expected, "{}", text(&plain.stderr));

    let (map_pid, json) = swarm(true);
    assert_eq!(code(&json), Some(0), "{}", text(&json.stderr));
    let records = json_lines(&text(&json.stdout));
    assert_eq!(records.len(), 200);
    let mut joined: String = String::new();
    let mut pids = HashSet::new();
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["index"], i, "in input order");
        assert_eq!(record["input"], i.to_string());
        assert_eq!(record["exit_code"], 0);
        joined.push_str(record["stdout"].as_str().unwrap());
        pids.insert(record["pid"].as_u64().unwrap() as u32);
    }
    assert_eq!(joined, expected);
    let processes: HashSet<u32> = peers
        .iter()
        .map(|p| p.child.id())
        .chain([map_pid])
        .collect();
    assert!(
        pids.is_subset(&processes),
        "pids {pids:?} not among the peers {processes:?}"
    );
    assert!(pids.len() > 1, "only {pids:?} ran tasks");
}

#[test]
fn json_lines_parse_and_name_how_each_task_ended() {
    let out = output(peer().args([
        "map",
        "--json",
        "0",
        "3",
        "/nonexistent/peer-map-test",
        "--",
        "sh",
        "-c",
        "echo out {}; echo err {} >&2; exit {}",
    ]));
    assert_eq!(code(&out), Some(1), "{}", text(&out.stderr));
    let records = json_lines(&text(&out.stdout));
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["exit_code"], 0);
    assert_eq!(records[0]["stdout"], "out 0\n");
    assert_eq!(records[0]["stderr"], "err 0\n");
    assert!(records[0]["error"].is_null());
    assert_eq!(records[1]["exit_code"], 3);
    // `exit /nonexistent/...` is a shell error: it fails with some code.
    assert_ne!(records[2]["exit_code"], 0);
    // Nothing but the records on stdout; the tasks' stderr is in them, not on ours.
    assert!(
        !text(&out.stderr).contains("err 0"),
        "{}",
        text(&out.stderr)
    );

    // A program that cannot start is a record with an error, not a crash.
    let out = output(peer().args(["map", "--json", "/nonexistent/peer-map-test", "--", "{}"]));
    assert_eq!(code(&out), Some(1), "{}", text(&out.stderr));
    let records = json_lines(&text(&out.stdout));
    assert_eq!(records.len(), 1);
    assert!(records[0]["exit_code"].is_null());
    let error = records[0]["error"].as_str().unwrap();
    assert!(error.contains("cannot run"), "{error}");
}

#[test]
fn failures_exit_1_and_resume_runs_only_them() {
    let dir = TempDir::new("resume");
    let (inputs, log, runs, marker) = (
        dir.path("inputs"),
        dir.path("log"),
        dir.path("runs"),
        dir.path("marker"),
    );
    std::fs::write(&inputs, numbers(200).join("\n") + "\n").unwrap();
    // Inputs from 190 fail until the marker exists; every run appends its input to `runs`.
    let script = format!(
        "echo {{}} >> '{}'; test {{}} -lt 190 || test -e '{}'",
        runs.display(),
        marker.display()
    );
    let map = || {
        let mut cmd = peer();
        cmd.args(["map", "--workers", "2", "--each-line"])
            .arg(&inputs)
            .arg("--log")
            .arg(&log);
        cmd
    };

    let first = output(map().args(["--", "sh", "-c", &script]));
    assert_eq!(code(&first), Some(1), "{}", text(&first.stderr));
    let stderr = text(&first.stderr);
    assert!(
        stderr.contains("10 of 200 tasks failed: indices 190, 191, 192"),
        "{stderr}"
    );
    assert_eq!(lines_of(&runs).len(), 200);
    let logged = lines_of(&log);
    assert_eq!(logged.len(), 200);
    for line in &logged {
        let entry: Value = serde_json::from_str(line).unwrap();
        let index = entry["index"].as_u64().unwrap();
        assert_eq!(entry["input"], index.to_string());
        let ok = entry["exit_code"] == 0;
        assert_eq!(ok, index < 190, "{line}");
    }

    std::fs::write(&marker, "").unwrap();
    let second = output(map().arg("--resume").args(["--", "sh", "-c", &script]));
    assert_eq!(code(&second), Some(0), "{}", text(&second.stderr));
    let all_runs = lines_of(&runs);
    assert_eq!(all_runs.len(), 210, "only the 10 failed inputs ran again");
    let again: BTreeSet<u32> = all_runs[200..].iter().map(|l| l.parse().unwrap()).collect();
    assert_eq!(again, (190..200).collect());
    assert_eq!(lines_of(&log).len(), 210, "the log is appended to");

    // Everything succeeded: nothing runs.
    let third = output(map().arg("--resume").args(["--", "sh", "-c", &script]));
    assert_eq!(code(&third), Some(0), "{}", text(&third.stderr));
    assert_eq!(lines_of(&runs).len(), 210);

    // A log of other inputs is refused.
    let other = output(
        peer()
            .args(["map", "--resume", "--log"])
            .arg(&log)
            .args(["a", "b", "--", "true"]),
    );
    assert_eq!(code(&other), Some(2), "{}", text(&other.stderr));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["map", "--resume", "a", "--", "echo", "{}"][..], // --resume without --log
        &["map", "--", "echo", "{}"],                      // no inputs
        &["map", "a", "b"],                                // no command
        &["map", "--no-such-option", "a", "--", "true"],
        &["submit"],
    ] {
        let out = output(peer().args(args));
        assert_eq!(code(&out), Some(2), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn no_peer_at_the_bootstrap_address_exits_3() {
    // A port nobody listens on once this listener is gone.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!(
        "/ip4/127.0.0.1/tcp/{port}/p2p/12D3KooWDTDyqabsqMXLi8J6XAc8NgSq1C2mXgNGXdUvh4RWdXes"
    );
    let start = Instant::now();
    let out = output(peer().args([
        "map",
        "--bootstrap",
        &addr,
        "--join-timeout",
        "2",
        "a",
        "--",
        "echo",
        "{}",
    ]));
    assert_eq!(code(&out), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot join"),
        "{}",
        text(&out.stderr)
    );
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn submit_copies_output_and_exit_status() {
    let out = output(peer().args(["submit", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]));
    assert_eq!(code(&out), Some(1));
    assert_eq!(text(&out.stdout), "out\n");
    assert!(text(&out.stderr).contains("err\n"), "{}", text(&out.stderr));

    let out = output(peer().args(["submit", "--json", "--", "echo", "hi"]));
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));
    let value: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(value["exit_code"], 0);
    assert_eq!(value["stdout"], "hi\n");
}

#[test]
fn sigterm_stops_records_what_finished_and_exits_130() {
    let dir = TempDir::new("interrupt");
    let log = dir.path("log");
    // Inputs 0 and 1 finish at once; 2 and 3 sleep in a child of `sh` (not its last
    // command, so not exec'ed), which must die with it.
    let mut child = peer()
        .args(["map", "--workers", "4", "--log"])
        .arg(&log)
        .args(["0", "1", "2", "3", "--", "sh", "-c"])
        .arg("test {} -lt 2 || sleep 30; true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines_of(&log).len() < 2 {
        assert!(Instant::now() < deadline, "tasks 0 and 1 did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let tasks 2 and 3 start their sleeps.
    std::thread::sleep(Duration::from_millis(300));
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if stopped.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("peer map did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = child.wait_with_output().unwrap().stderr;
    assert_eq!(status.code(), Some(130), "{}", text(&stderr));
    assert!(text(&stderr).contains("interrupted"), "{}", text(&stderr));
    let logged: BTreeSet<u64> = lines_of(&log)
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        logged.contains(&0) && logged.contains(&1),
        "finished tasks are logged: {logged:?}"
    );
    // Whatever the stop killed is not recorded as succeeded, so --resume runs it again.
    for line in lines_of(&log) {
        let entry: Value = serde_json::from_str(&line).unwrap();
        if entry["index"].as_u64().unwrap() >= 2 {
            assert_ne!(entry["exit_code"], 0, "{line}");
        }
    }
}
