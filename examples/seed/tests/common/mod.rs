//! Real `seed` processes on 127.0.0.1: `seed join` peers (no swarm key, so loopback only and
//! no mDNS), a driver that joins them with `--bootstrap`, and `seed status` to see who ran
//! what. Every process is killed when its handle drops. What is particular to `seed` is here;
//! the harness itself is `peer-testkit`'s, shared with the `peer` binary's tests.

#![allow(dead_code)] // each test binary uses its own share

use std::collections::HashMap;
use std::process::{Command, Stdio};

use peer_testkit::{Joined, TempDir, stdout_of};

/// The `seed` binary of this package; only its own tests can name it.
const SEED: &str = env!("CARGO_BIN_EXE_seed");

pub(crate) fn seed() -> Command {
    Command::new(SEED)
}

/// `seed join` with one worker and a fresh identity, bootstrapped from `bootstrap` if
/// given, its stderr dropped; returns once it printed the address to join it by.
pub(crate) fn start(bootstrap: Option<&str>) -> Joined {
    Joined::spawn(peer_testkit::join_command(SEED, bootstrap).stderr(Stdio::null()))
}

/// Two joined peers: the first, and one that bootstraps from it.
pub(crate) fn two_peers() -> (Joined, Joined) {
    let first = start(None);
    let second = start(Some(&first.addr));
    (first, second)
}

/// The flags that run a program on the swarm of `addr`, after waiting for 2 peers, with
/// one worker of its own.
pub(crate) fn on_swarm(addr: &str) -> [&str; 6] {
    ["--bootstrap", addr, "--wait-peers", "2", "--workers", "1"]
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

/// `dir` as a program's argument (`--data DIR`).
pub(crate) fn dir_arg(dir: &TempDir) -> &str {
    dir.root().to_str().expect("a UTF-8 temp dir")
}
