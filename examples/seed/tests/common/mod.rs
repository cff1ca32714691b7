//! Real `seed` processes on 127.0.0.1: `seed join` peers (no swarm key, so loopback only and
//! no mDNS), a driver that joins them with `--bootstrap`, and `seed status` to see who ran
//! what. Every process is killed when its handle drops.

#![allow(dead_code)] // each test binary uses its own share

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) fn seed() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seed"))
}

/// A `seed join` process, killed when dropped.
pub(crate) struct Joined {
    pub(crate) child: Child,
    /// The address it prints for others to bootstrap from.
    pub(crate) addr: String,
}

impl Joined {
    /// `seed join` with one worker and a fresh identity, bootstrapped from `bootstrap` if
    /// given; returns once it printed the address to join it by.
    pub(crate) fn start(bootstrap: Option<&str>) -> Joined {
        let mut cmd = seed();
        cmd.args([
            "join",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--workers",
            "1",
            "--ephemeral",
        ]);
        if let Some(addr) = bootstrap {
            cmd.args(["--bootstrap", addr]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the seed binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // The join line reads `<binary> join --bootstrap ADDR`; keep reading to the end
            // so the peer never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut words = line.split_whitespace();
                if words.any(|w| w == "--bootstrap") {
                    if let Some(addr) = words.next() {
                        let _ = tx.send(addr.to_string());
                    }
                }
            }
        });
        let mut joined = Joined {
            child,
            addr: String::new(),
        };
        joined.addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("seed join prints the command that joins it");
        joined
    }

    /// Its peer id: the end of its address.
    pub(crate) fn id(&self) -> &str {
        self.addr.rsplit("/p2p/").next().unwrap_or_default()
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two joined peers: the first, and one that bootstraps from it.
pub(crate) fn two_peers() -> (Joined, Joined) {
    let first = Joined::start(None);
    let second = Joined::start(Some(&first.addr));
    (first, second)
}

/// The flags that run a program on the swarm of `addr`, after waiting for 2 peers, with
/// one worker of its own.
pub(crate) fn on_swarm(addr: &str) -> [&str; 6] {
    ["--bootstrap", addr, "--wait-peers", "2", "--workers", "1"]
}

/// Runs `cmd` to the end; fails the test unless it succeeds. Its stdout.
pub(crate) fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the seed binary starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Tasks each peer of the swarm of `addr` has run, by peer id, from `seed status --json`.
pub(crate) fn ran_by_peer(addr: &str) -> HashMap<String, u64> {
    let out = stdout_of(seed().args(["status", "--json", "--bootstrap", addr]));
    let status: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status is JSON ({e}): {out}"));
    let peers = status["peers"]
        .as_array()
        .unwrap_or_else(|| panic!("no peers in {out}"));
    peers
        .iter()
        .filter_map(|p| Some((p["peer"].as_str()?.to_string(), p["ran"].as_u64()?)))
        .collect()
}

/// A running process whose stdout is kept whole and whose stderr lines are collected;
/// killed when dropped.
pub(crate) struct Running {
    pub(crate) child: Child,
    stderr: mpsc::Receiver<String>,
    stdout: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub(crate) fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the seed binary starts");
        let (out_tx, stdout) = mpsc::channel();
        let mut out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            let _ = out_tx.send(text);
        });
        let (err_tx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if err_tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            stderr,
            stdout,
            seen: Vec::new(),
        }
    }

    /// The first stderr line (from now on) that `matches`; fails the test after 60 s or
    /// if the process ends first.
    pub(crate) fn wait_for_stderr(&mut self, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no such line on stderr:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Whether it is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits (120 s at most) for it to exit: its status, stdout, and all of stderr.
    pub(crate) fn finish(mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "it did not exit; stderr so far:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let stdout = self
            .stdout
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        (status, stdout, self.seen.join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory of its own for one test, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("seed-test-{name}-{}-{nanos}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp dir")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
