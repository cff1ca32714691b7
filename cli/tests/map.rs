//! `peer map` and `peer submit` as real processes on 127.0.0.1: output in input order on a
//! private (keyed) swarm of three `peer join --allow-shell` peers, the submitter's working
//! directory and `--env` on peers started elsewhere, replacement strings, JSON lines, the
//! job log and `--resume` (after failures and after an interrupt), the signals (the first
//! lets running commands finish, the second kills them), and the exit codes (1 failed
//! tasks, 2 usage, 3 cannot join, 130 interrupted, `submit`: the command's own). Who may run
//! the commands: `allow_shell.rs`.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{exit_within, group_alive, peer, signal, swarm_key, three_peers_in, three_peers_with};
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

/// The task records of a job log (not its `{"printed": [...]}` lines).
fn records_of(path: &Path) -> Vec<Value> {
    lines_of(path)
        .iter()
        // A line being written as the test reads does not parse yet: not a record so far.
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("index").is_some())
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
            .args(["map", "--alone", "--workers", "2"])
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
        "--alone",
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
    let out = output(peer().args([
        "map",
        "--alone",
        "--json",
        "/nonexistent/peer-map-test",
        "--",
        "{}",
    ]));
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
        cmd.args(["map", "--alone", "--workers", "2", "--each-line"])
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
    let logged = records_of(&log);
    assert_eq!(logged.len(), 200);
    for entry in &logged {
        let index = entry["index"].as_u64().unwrap();
        assert_eq!(entry["input"], index.to_string());
        let ok = entry["exit_code"] == 0;
        assert_eq!(ok, index < 190, "{entry}");
    }

    std::fs::write(&marker, "").unwrap();
    let second = output(map().arg("--resume").args(["--", "sh", "-c", &script]));
    assert_eq!(code(&second), Some(0), "{}", text(&second.stderr));
    let all_runs = lines_of(&runs);
    assert_eq!(all_runs.len(), 210, "only the 10 failed inputs ran again");
    let again: BTreeSet<u32> = all_runs[200..].iter().map(|l| l.parse().unwrap()).collect();
    assert_eq!(again, (190..200).collect());
    assert_eq!(records_of(&log).len(), 210, "the log is appended to");

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
        &[
            "map",
            "--env",
            "PEER_TEST_SURELY_NOT_SET",
            "a",
            "--",
            "true",
        ],
        &["submit", "--env", "PEER_TEST_SURELY_NOT_SET", "--", "true"],
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
    let out = output(peer().args([
        "submit",
        "--alone",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]));
    assert_eq!(code(&out), Some(3));
    assert_eq!(text(&out.stdout), "out\n");
    assert!(text(&out.stderr).contains("err\n"), "{}", text(&out.stderr));

    let out = output(peer().args(["submit", "--alone", "--json", "--", "echo", "hi"]));
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));
    let value: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(value["exit_code"], 0);
    assert_eq!(value["stdout"], "hi\n");
}

#[test]
fn a_second_sigterm_stops_records_what_finished_and_exits_130() {
    let dir = TempDir::new("interrupt");
    let log = dir.path("log");
    // Inputs 0 and 1 finish at once; 2 and 3 sleep in a child of `sh` (not its last
    // command, so not exec'ed), which must die with it.
    let mut child = peer()
        .args(["map", "--alone", "--workers", "4", "--log"])
        .arg(&log)
        .args(["0", "1", "2", "3", "--", "sh", "-c"])
        .arg("test {} -lt 2 || sleep 30; true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while records_of(&log).len() < 2 {
        assert!(Instant::now() < deadline, "tasks 0 and 1 did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let tasks 2 and 3 start their sleeps.
    std::thread::sleep(Duration::from_millis(300));
    // The first SIGTERM starts nothing more and waits for the running commands...
    signal(child.id(), libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "peer map waits for its running commands after one SIGTERM"
    );
    // ... the second kills them.
    signal(child.id(), libc::SIGTERM);
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if stopped.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("peer map did not stop within 10 s of the second SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = child.wait_with_output().unwrap().stderr;
    assert_eq!(status.code(), Some(130), "{}", text(&stderr));
    assert!(text(&stderr).contains("interrupted"), "{}", text(&stderr));
    let logged: BTreeSet<u64> = records_of(&log)
        .iter()
        .map(|entry| entry["index"].as_u64().unwrap())
        .collect();
    assert!(
        logged.contains(&0) && logged.contains(&1),
        "finished tasks are logged: {logged:?}"
    );
    // Whatever the stop killed is not recorded as succeeded, so --resume runs it again.
    for entry in records_of(&log) {
        if entry["index"].as_u64().unwrap() >= 2 {
            assert_ne!(entry["exit_code"], 0, "{entry}");
        }
    }
}

#[test]
fn commands_run_in_the_submitters_directory_with_its_env_on_peers_started_elsewhere() {
    let dir = TempDir::new("map-place");
    std::fs::create_dir(dir.path("data")).unwrap();
    for i in 0..6 {
        std::fs::write(dir.path(&format!("data/{i}")), format!("content {i}\n")).unwrap();
    }
    // Started in `/`: a command that ran in the peer's own directory would find no `data`.
    let peers = three_peers_in(Path::new("/"), &["--allow-shell"]);
    let map = |extra: &[&str]| {
        let mut cmd = peer();
        cmd.current_dir(dir.root())
            .env("MYVAR", "from the submitter")
            .args([
                "map",
                "--remote-only",
                "--json",
                "--bootstrap",
                &peers[0].addr,
            ])
            .args(extra);
        cmd
    };
    let out = output(
        map(&["--env", "MYVAR", "--env", "OTHER=set"])
            .args(numbers(6))
            .args(["--", "sh", "-c", "cat data/{}; echo $MYVAR $OTHER"]),
    );
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));
    let records = json_lines(&text(&out.stdout));
    assert_eq!(records.len(), 6);
    let joins: HashSet<u64> = peers.iter().map(|p| u64::from(p.child.id())).collect();
    for (i, record) in records.iter().enumerate() {
        assert_eq!(
            record["stdout"],
            format!("content {i}\nfrom the submitter set\n"),
            "{record}"
        );
        // --remote-only: every command ran in one of the joins, none in the client.
        let pid = record["pid"].as_u64().unwrap();
        assert!(joins.contains(&pid), "pid {pid} is not a join's {joins:?}");
    }

    // A relative --workdir is taken against the submitter's directory.
    let out = output(map(&["--workdir", "data"]).args(["0", "5", "--", "cat"]));
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));
    let stdout: Vec<Value> = json_lines(&text(&out.stdout));
    assert_eq!(stdout[0]["stdout"], "content 0\n");
    assert_eq!(stdout[1]["stdout"], "content 5\n");

    // A directory the peer does not have fails the task there, clearly; nothing runs.
    let out = output(map(&["--workdir", "/nonexistent/peer-test"]).args(["0", "--", "true"]));
    assert_eq!(code(&out), Some(1), "{}", text(&out.stderr));
    let records = json_lines(&text(&out.stdout));
    let error = records[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("working directory /nonexistent/peer-test does not exist on host "),
        "{error}"
    );
    assert!(joins.contains(&records[0]["pid"].as_u64().unwrap()));
}

#[test]
fn replacement_strings_and_the_appended_input() {
    let out = output(peer().args([
        "map",
        "--alone",
        "-k",
        "dir/sub/a.tar.gz",
        "b",
        "--",
        "echo",
        "{}|{.}|{/}|{//}|{/.}|{#}",
    ]));
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "dir/sub/a.tar.gz|dir/sub/a.tar|a.tar.gz|dir/sub|a.tar|1\nb|b|b|.|b|2\n"
    );
    // No replacement string: the input is the last argument, as in GNU parallel.
    let out = output(peer().args(["map", "--alone", "x y", "z", "--", "echo", "in:"]));
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "in: x y\nin: z\n");
}

#[test]
fn submit_exits_with_the_commands_own_code() {
    let out = output(peer().args(["submit", "--alone", "--", "sh", "-c", "exit 7"]));
    assert_eq!(code(&out), Some(7), "{}", text(&out.stderr));
    // Killed by a signal: 128 + the signal, as a shell says.
    let out = output(peer().args(["submit", "--alone", "--", "sh", "-c", "kill -KILL $$"]));
    assert_eq!(code(&out), Some(137), "{}", text(&out.stderr));
    // Could not start: 1.
    let out = output(peer().args(["submit", "--alone", "--", "/nonexistent/peer-test-program"]));
    assert_eq!(code(&out), Some(1), "{}", text(&out.stderr));
    // --env and --workdir reach it.
    let dir = TempDir::new("submit-place");
    let out = output(peer().current_dir(dir.root()).env("MYVAR", "mine").args([
        "submit",
        "--alone",
        "--env",
        "MYVAR",
        "--",
        "sh",
        "-c",
        "echo $MYVAR; pwd",
    ]));
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));
    let here = dir.root().canonicalize().unwrap();
    assert_eq!(text(&out.stdout), format!("mine\n{}\n", here.display()));
}

#[test]
fn resume_after_sigint_prints_every_output_once_in_order() {
    let dir = TempDir::new("resume-interrupt");
    let (inputs, log) = (dir.path("inputs"), dir.path("log"));
    std::fs::write(&inputs, numbers(200).join("\n") + "\n").unwrap();
    // Sleeps of 0 to 40 ms that depend on the input: completions come out of order, so
    // outputs are held back for ordering when the interrupt comes.
    let script = "sleep 0.0$(( {} * 7 % 5 )); echo {}";
    let map = |resume: bool| {
        let mut cmd = peer();
        cmd.args(["map", "--alone", "--each-line"])
            .arg(&inputs)
            .arg("--log")
            .arg(&log);
        if resume {
            cmd.arg("--resume");
        }
        cmd.args(["--", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    let mut first = map(false).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while records_of(&log).len() < 40 {
        assert!(Instant::now() < deadline, "40 tasks did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(first.id(), libc::SIGINT);
    let status = exit_within(&mut first, Duration::from_secs(20));
    let first = first.wait_with_output().unwrap();
    let stderr = text(&first.stderr);
    assert_eq!(status.code(), Some(130), "{stderr}");
    let records = records_of(&log);
    assert!(records.len() < 200, "interrupted too late to test anything");
    // The message counts truthfully: what finished, and what of it was printed.
    let printed = text(&first.stdout).lines().count();
    let message = format!(
        "interrupted: {} of 200 tasks finished ({printed} printed), 0 failed; run it again \
         with --resume",
        records.len()
    );
    assert!(stderr.contains(&message), "{message:?} not in {stderr}");

    let second = output(&mut map(true));
    assert_eq!(code(&second), Some(0), "{}", text(&second.stderr));
    let both = text(&first.stdout) + &text(&second.stdout);
    let expected: String = (0..200).map(|i| format!("{i}\n")).collect();
    assert_eq!(both, expected, "{}", text(&second.stderr));
    // What the first run finished did not run again.
    assert_eq!(records_of(&log).len(), 200);
}

#[test]
fn the_second_sigint_kills_the_running_commands() {
    let dir = TempDir::new("second-sigint");
    // Each command writes its pid (its process group's id: it leads one) and sleeps in a
    // child, which must die with it.
    let script = format!(
        "echo $$ > '{}/pid.{{}}'; sleep 60; true",
        dir.root().display()
    );
    let mut child = peer()
        .args(["map", "--alone", "0", "1", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pids = || -> Vec<i32> {
        (0..2)
            .filter_map(|i| std::fs::read_to_string(dir.path(&format!("pid.{i}"))).ok())
            .filter_map(|pid| pid.trim().parse().ok())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids().is_empty() {
        assert!(Instant::now() < deadline, "no command started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = pids();
    signal(child.id(), libc::SIGINT);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "one SIGINT kills nothing"
    );
    for &group in &started {
        assert!(
            group_alive(group),
            "command {group} died at the first SIGINT"
        );
    }
    signal(child.id(), libc::SIGINT);
    let status = exit_within(&mut child, Duration::from_secs(10));
    let stderr = text(&child.wait_with_output().unwrap().stderr);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: "), "{stderr}");
    // No command started after the first signal, and none of those started is left (the
    // orphaned sleeps are reaped by init soon after they die).
    assert_eq!(pids(), started, "a command started after the first SIGINT");
    let deadline = Instant::now() + Duration::from_secs(5);
    for group in started {
        while group_alive(group) {
            assert!(
                Instant::now() < deadline,
                "process group {group} outlived peer map"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
