//! Each of the seed's programs prints the same on its own as on a swarm of three `seed`
//! processes (two `seed join` peers and the driver), where the joined peers run some of its
//! tasks — and still the same when one joined peer is killed with SIGKILL half way.

mod common;

use std::time::Duration;

use common::{dir_arg, on_swarm, ran_by_peer, seed, two_peers};
use peer_testkit::{Joined, Running, TempDir, stdout_of};

/// `program` with `args`, run alone (with eight workers: the tasks mostly sleep).
fn local(program: &str, args: &[&str]) -> String {
    let out = stdout_of(
        seed()
            .arg(program)
            .args(args)
            .args(["--alone", "--workers", "8"]),
    );
    assert!(out.lines().count() >= 3, "too little output:\n{out}");
    out
}

/// Fails unless each of `peers` ran at least one task, by `seed status` on `addr`'s swarm.
fn assert_ran_tasks(addr: &str, peers: &[&Joined]) {
    let ran = ran_by_peer(addr);
    for peer in peers {
        let n = ran.get(peer.id()).copied().unwrap_or(0);
        assert!(n > 0, "joined peer {} ran no task: {ran:?}", peer.id());
    }
}

/// The local run and the run on a swarm of three processes print the same, and both
/// joined peers ran tasks of the run.
fn swarm_matches_local(program: &str, args: &[&str]) {
    let expected = local(program, args);
    let (a, b) = two_peers();
    let swarm = stdout_of(seed().arg(program).args(args).args(on_swarm(&a.addr)));
    assert_eq!(
        swarm, expected,
        "the swarm's output differs from the local run's"
    );
    assert_ran_tasks(&a.addr, &[&a, &b]);
}

/// How far a `progress: <what> k/n` line says the run is, if it is one.
fn progress(line: &str) -> Option<f64> {
    let rest = line.strip_prefix("progress: ")?;
    let (done, of) = rest.rsplit(' ').next()?.split_once('/')?;
    let (done, of): (f64, f64) = (done.parse().ok()?, of.parse().ok()?);
    Some(done / of)
}

/// Like [`swarm_matches_local`], with the second joined peer killed (SIGKILL) once the
/// driver reports a third of its tasks done: the peers left run its lost tasks again, and
/// the output is still the local run's.
fn swarm_survives_a_kill(program: &str, args: &[&str]) {
    let expected = local(program, args);
    let (a, mut b) = two_peers();
    // Its stderr lines to wait for; its stdout kept whole, to compare with the local run's.
    let mut driver = Running::spawn_keeping_stdout(
        seed()
            .arg(program)
            .args(args)
            .args(on_swarm(&a.addr))
            // The swarm layer says on stderr when it runs a dead peer's tasks again.
            .env("RUST_LOG", "peer_net=info"),
    );
    driver.wait_for_within(Duration::from_secs(60), |line| {
        progress(line).is_some_and(|p| p >= 0.3)
    });
    assert!(
        driver.is_running(),
        "the run ended before the kill; give its tasks more --task-ms"
    );
    b.child.kill().unwrap(); // SIGKILL
    let _ = b.child.wait();
    // 120 s at most: the rest of the program's run, its lost tasks run again.
    let (status, stderr) = driver.wait_exit_within(Duration::from_secs(120));
    let stdout = driver.kept_stdout();
    // Shown with --nocapture: what the kill cost.
    for line in stderr.lines() {
        if line.contains("peer_net") || line.starts_with("took") || line.starts_with("audit:") {
            eprintln!("{program}: {line}");
        }
    }
    assert!(status.success(), "the driver failed ({status}):\n{stderr}");
    assert_eq!(
        stdout, expected,
        "the output after a kill differs from the local run's; stderr:\n{stderr}"
    );
    // The kill cost the run something: tasks of the driver's that were at the dead peer
    // (running, queued, or their only result) ran again.
    assert!(
        stderr.contains("running them again"),
        "the driver lost no task with the dead peer:\n{stderr}"
    );
    assert_ran_tasks(&a.addr, &[&a]);
}

#[test]
fn nested_loop_on_a_swarm_prints_what_it_prints_alone() {
    let dir = TempDir::new("nested");
    swarm_matches_local(
        "nested-loop",
        &[
            "--data",
            dir_arg(&dir),
            "--files",
            "6",
            "--params",
            "20",
            "--task-ms",
            "5",
        ],
    );
}

#[test]
fn nested_loop_survives_a_killed_peer() {
    let dir = TempDir::new("nested-kill");
    swarm_survives_a_kill(
        "nested-loop",
        &[
            "--data",
            dir_arg(&dir),
            "--files",
            "8",
            "--params",
            "40",
            "--task-ms",
            "20",
        ],
    );
}

#[test]
fn for_loop_on_a_swarm_prints_what_it_prints_alone() {
    let dir = TempDir::new("for");
    swarm_matches_local(
        "for-loop",
        &[
            "--data",
            dir_arg(&dir),
            "--files",
            "12",
            "--rows",
            "500",
            "--task-ms",
            "20",
        ],
    );
}

#[test]
fn for_loop_survives_a_killed_peer() {
    let dir = TempDir::new("for-kill");
    swarm_survives_a_kill(
        "for-loop",
        &[
            "--data",
            dir_arg(&dir),
            "--files",
            "30",
            "--rows",
            "500",
            "--task-ms",
            "150",
        ],
    );
}

#[test]
fn credit_risk_on_a_swarm_prints_what_it_prints_alone() {
    swarm_matches_local("credit-risk", &["--task-ms", "1"]);
}

#[test]
fn credit_risk_survives_a_killed_peer() {
    swarm_survives_a_kill("credit-risk", &["--task-ms", "5"]);
}

#[test]
fn the_files_are_written_once_and_read_by_absolute_path() {
    let dir = TempDir::new("data");
    let made = stdout_of(seed().args(["make-data", dir_arg(&dir), "--files", "3", "--rows", "10"]));
    assert!(made.contains("wrote 3 files of 10 rows"), "{made}");
    let first = std::fs::read_to_string(dir.path("part-000.csv")).unwrap();
    assert_eq!(first.lines().count(), 11, "{first}");
    // A program finds them (and writes no others); a relative --data works from any
    // directory, since the tasks get absolute paths.
    let out = stdout_of(
        seed()
            .current_dir(dir.root())
            .args(["for-loop", "--alone", "--data", ".", "--files", "5"]),
    );
    assert!(out.starts_with("for loop: 3 files\n"), "{out}");
    assert!(out.contains("part-002.csv: 10 rows"), "{out}");
    // Written again, the files are the same bytes.
    stdout_of(seed().args(["make-data", dir_arg(&dir), "--files", "1", "--rows", "10"]));
    assert_eq!(
        std::fs::read_to_string(dir.path("part-000.csv")).unwrap(),
        first
    );
}
