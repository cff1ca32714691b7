//! Real `peer` processes on 127.0.0.1, shared by the multi-process tests.

#![allow(dead_code)] // each test binary uses its own share

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) fn peer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peer"))
}

/// A `peer join` process, killed when dropped.
pub(crate) struct Joined {
    pub(crate) child: Child,
    /// The address it prints for others to bootstrap from.
    pub(crate) addr: String,
}

impl Drop for Joined {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `peer join` on 127.0.0.1 with one worker, no mDNS and a fresh identity, bootstrapped
/// from `bootstrap` if given. No swarm key: open to the processes of this machine only.
pub(crate) fn join_command(bootstrap: Option<&str>) -> Command {
    let mut cmd = peer();
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
    cmd
}

pub(crate) fn join(bootstrap: Option<&str>) -> Joined {
    join_with(bootstrap, &[])
}

/// [`join`] with more flags (`--allow-shell`, `--swarm-key FILE`, ...).
pub(crate) fn join_with(bootstrap: Option<&str>, flags: &[&str]) -> Joined {
    let mut child = join_command(bootstrap)
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the peer binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.trim().strip_prefix("peer join --bootstrap ") {
                let addr = rest.split_whitespace().next().unwrap_or_default();
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
pub(crate) fn three_peers() -> Vec<Joined> {
    three_peers_with(&[])
}

/// [`three_peers`], each started with `flags` too.
pub(crate) fn three_peers_with(flags: &[&str]) -> Vec<Joined> {
    let first = join_with(None, flags);
    let addr = first.addr.clone();
    vec![
        first,
        join_with(Some(&addr), flags),
        join_with(Some(&addr), flags),
    ]
}

/// A new swarm key file in `dir`, written by `peer keygen`.
pub(crate) fn swarm_key(dir: &TempDir) -> PathBuf {
    let path = dir.path("swarm.key");
    let out = peer()
        .args(["keygen", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

pub(crate) fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out, stdout)
}

impl Joined {
    /// Its peer id: the end of its address.
    pub(crate) fn id(&self) -> &str {
        self.addr.rsplit("/p2p/").next().unwrap_or_default()
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
            std::env::temp_dir().join(format!("peer-test-{name}-{}-{nanos}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `peer` whose stdout and stderr lines are collected; killed when dropped.
pub(crate) struct Running {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub(crate) fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the peer binary starts");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) that `matches`; fails the test after 30 s.
    pub(crate) fn wait_for(&mut self, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no such line; the output:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Every line seen so far, stdout's and stderr's.
    pub(crate) fn seen_lines(&self) -> Vec<String> {
        self.seen.clone()
    }

    /// Its peer id, from the `peer <id> with <n> workers` line.
    pub(crate) fn peer_id(&mut self) -> String {
        let line = self.wait_for(|l| l.starts_with("peer ") && l.ends_with(" workers"));
        line.split_whitespace().nth(1).unwrap().to_string()
    }

    /// The address it prints for others to bootstrap from.
    pub(crate) fn addr(&mut self) -> String {
        let line = self.wait_for(|l| l.trim().starts_with("peer join --bootstrap "));
        line.split_whitespace().nth(3).unwrap().to_string()
    }

    pub(crate) fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid; it has not been waited for yet, so the pid
        // is still its own.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits (30 s at most) for it to exit; returns its status and all its output.
    pub(crate) fn wait_exit(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "it did not exit; the output:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader threads end at the end of the pipes.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status, self.seen.join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
