//! Real `peer` processes on 127.0.0.1: three `peer join` peers, and a fourth process that
//! joins them and submits work.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn peer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peer"))
}

/// A `peer join` process, killed when dropped.
struct Joined {
    child: Child,
    /// The address it prints for others to bootstrap from.
    addr: String,
}

impl Drop for Joined {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn join(bootstrap: Option<&str>) -> Joined {
    let mut cmd = peer();
    cmd.args([
        "join",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--workers",
        "1",
    ]);
    if let Some(addr) = bootstrap {
        cmd.args(["--bootstrap", addr]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the peer binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.trim().strip_prefix("peer join --bootstrap ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let mut joined = Joined {
        child,
        addr: String::new(),
    };
    joined.addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("peer join prints the command that joins it");
    joined
}

/// Three peers: the first, and two that bootstrap from it.
fn three_peers() -> Vec<Joined> {
    let first = join(None);
    let addr = first.addr.clone();
    vec![first, join(Some(&addr)), join(Some(&addr))]
}

fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out, stdout)
}

fn best_score(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.starts_with("best score: "))
        .unwrap_or_else(|| panic!("no best score in {stdout}"))
}

#[test]
fn a_fourth_process_joins_and_its_graph_matches_the_local_run() {
    let peers = three_peers();
    // 20,000 values make each data set too large to inline, so scoring tasks fetch their
    // input from whichever peer loaded it.
    let job = ["--files", "4", "--params", "60", "--values", "20000"];
    let (_, swarm) = run(peer().arg("demo").args(job).args([
        "--bootstrap",
        &peers[0].addr,
        "--wait-peers",
        "3",
        "--workers",
        "1",
    ]));
    let (_, local) = run(peer().arg("demo").args(job).arg("--local"));
    assert_eq!(
        best_score(&swarm),
        best_score(&local),
        "swarm:\n{swarm}\nlocal:\n{local}"
    );
    assert!(swarm.contains("244 tasks on the swarm of"), "{swarm}");
}

#[test]
fn uts_t1_is_exact_across_three_processes() {
    let peers = three_peers();
    let (_, out) = run(peer().args([
        "uts",
        "T1",
        "--bootstrap",
        &peers[0].addr,
        "--wait-peers",
        "3",
        "--workers",
        "1",
    ]));
    assert!(
        out.contains("T1: 4130071 nodes, 3305118 leaves, depth 10"),
        "{out}"
    );
    assert!(out.contains("counts exact"), "{out}");
    let line = out.lines().find(|l| l.starts_with("tasks: ")).unwrap();
    let elsewhere: u64 = line
        .split(", ")
        .find_map(|part| part.strip_suffix(" ran elsewhere"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(elsewhere > 0, "the joined peers ran nothing: {line}");
}
