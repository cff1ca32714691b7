//! Real `peer` processes on 127.0.0.1, shared by the multi-process tests.

#![allow(dead_code)] // each test binary uses its own share

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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

pub(crate) fn join(bootstrap: Option<&str>) -> Joined {
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
pub(crate) fn three_peers() -> Vec<Joined> {
    let first = join(None);
    let addr = first.addr.clone();
    vec![first, join(Some(&addr)), join(Some(&addr))]
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
