//! Real `peer-harness` processes on 127.0.0.1, shared by the multi-process tests. Its `join`
//! is `peer join` (the same code, the same named tasks); the harness itself (`Running`,
//! `Joined`, ...) is `peer-testkit`'s.

#![allow(dead_code)] // each test binary uses its own share

use std::process::{Command, Stdio};

use peer_testkit::Joined;

/// The `peer-harness` binary of this package; only its own tests can name it.
const HARNESS: &str = env!("CARGO_BIN_EXE_peer-harness");

pub(crate) fn harness() -> Command {
    Command::new(HARNESS)
}

/// `peer-harness join` on 127.0.0.1 with one worker, no mDNS and a fresh identity,
/// bootstrapped from `bootstrap` if given; its stderr is the test's.
pub(crate) fn join(bootstrap: Option<&str>) -> Joined {
    Joined::spawn(peer_testkit::join_command(HARNESS, bootstrap).stderr(Stdio::inherit()))
}

/// Three peers: the first, and two that bootstrap from it.
pub(crate) fn three_peers() -> Vec<Joined> {
    let first = join(None);
    let addr = first.addr.clone();
    vec![first, join(Some(&addr)), join(Some(&addr))]
}
