//! Real peers for hostile-peer tests, and named tasks whose runs a test can see: each
//! counts its runs under a tag, and a gated one waits until the test opens its gate.

#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use peer_net::{Config, Peer, PeerId};

use super::raw::RawPeer;

static RUNS: LazyLock<Mutex<HashMap<String, u64>>> = LazyLock::new(Mutex::default);
static GATES: LazyLock<(Mutex<HashSet<String>>, Condvar)> = LazyLock::new(Default::default);

/// How many times tasks tagged `tag` started.
pub fn runs(tag: &str) -> u64 {
    let runs = RUNS.lock().unwrap_or_else(PoisonError::into_inner);
    runs.get(tag).copied().unwrap_or(0)
}

fn count(tag: &str) -> u64 {
    let mut runs = RUNS.lock().unwrap_or_else(PoisonError::into_inner);
    let n = runs.entry(tag.to_string()).or_default();
    *n += 1;
    *n
}

/// Lets the tasks waiting at `gate` finish.
pub fn open(gate: &str) {
    let (gates, opened) = &*GATES;
    gates
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(gate.to_string());
    opened.notify_all();
}

/// Opens its gate when dropped, so that a failing test does not leave tasks waiting (a
/// client waits for its running tasks when dropped). Declare it after the clients.
pub struct OpenOnDrop(pub &'static str);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        open(self.0);
    }
}

fn wait_gate(gate: &str) {
    let (gates, opened) = &*GATES;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut open = gates.lock().unwrap_or_else(PoisonError::into_inner);
    while !open.contains(gate) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        open = opened
            .wait_timeout(open, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// Counts a run under `tag`: a side effect a test can check.
#[peer_core::task(name = "hostile::touch")]
pub fn touch(tag: String) -> u64 {
    count(&tag)
}

/// Counts a run under `gate`, waits for the gate, then returns `6 x`.
#[peer_core::task(name = "hostile::gated")]
pub fn gated(gate: String, x: u64) -> u64 {
    count(&gate);
    wait_gate(&gate);
    6 * x
}

/// Counts a run under `tag` and makes `len` bytes (a result over the inline limit stays
/// with its runner).
#[peer_core::task(name = "hostile::big")]
pub fn big(tag: String, len: u64) -> Vec<u8> {
    count(&tag);
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The bytes of [`big`], once `gate` opens.
pub fn big_value(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Waits for `gate`, then sums `data`.
#[peer_core::task(name = "hostile::gated_sum")]
pub fn gated_sum(gate: String, data: &Vec<u8>) -> u64 {
    wait_gate(&gate);
    data.iter().map(|b| u64::from(*b)).sum()
}

/// `2 x`: honest work.
#[peer_core::task(name = "hostile::double")]
pub fn double(x: u64) -> u64 {
    2 * x
}

/// Loopback only, mDNS off, one worker.
pub fn loopback() -> Config {
    Config::new()
        .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .mdns(false)
        .workers(1)
}

/// Polls `done` every 10 ms until it holds; panics after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Checks that `client` still does honest work: a named task submitted there completes.
pub fn still_works(client: &Peer) {
    let doubled = client.submit_named(DoubleTask, (21u64,));
    assert_eq!(
        doubled.wait_timeout(Duration::from_secs(20)),
        Some(Ok(&42)),
        "honest work on {}",
        client.peer_id()
    );
}

/// A real peer that joins `a`'s swarm, once it is connected to it.
pub fn join(a: &Peer, config: Config) -> Peer {
    let b = Peer::join(config.bootstrap(a.addresses()[0].clone())).unwrap();
    // At least A: B may also find the peers A knows.
    assert!(
        b.wait_for_peers(1, Duration::from_secs(30)) >= 1,
        "B sees A"
    );
    b
}

/// A raw member M connected to each of `peers`; returns once each counts all the others
/// and M as members, and M hears their gossip.
pub fn raw_member(peers: &[&Peer]) -> RawPeer {
    let m = RawPeer::member();
    for peer in peers {
        m.connect(&peer.addresses()[0]);
    }
    for peer in peers {
        let seen = peer.wait_for_peers(peers.len(), Duration::from_secs(30));
        assert_eq!(seen, peers.len(), "{} sees {seen} members", peer.peer_id());
    }
    for peer in peers {
        m.wait_subscribed(peer.peer_id());
    }
    m
}

/// Two real peers, A and B (B bootstraps from A), and a raw member M connected to both.
pub fn trio(a: Config, b: Config) -> (Peer, Peer, RawPeer) {
    let a = Peer::join(a).unwrap();
    let b = join(&a, b);
    let m = raw_member(&[&a, &b]);
    (a, b, m)
}

/// A name for a primitive whose key is `key_of(name)` and whose home and backup, as both
/// `a` and `b` rank them, are real peers: the raw member `m` comes only third.
pub fn homed_away_from(key_of: impl Fn(&str) -> String, a: &Peer, b: &Peer, m: &PeerId) -> String {
    for i in 0..1000 {
        let name = format!("hostile-{i}");
        let key = key_of(&name);
        let (ha, hb) = (a.homes(&key), b.homes(&key));
        if ha.len() == 3 && ha == hb && ha[2] == *m {
            return name;
        }
    }
    panic!("no name has the raw peer last");
}
