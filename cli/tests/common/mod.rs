//! Real `peer` processes on 127.0.0.1, shared by the multi-process tests: what is particular
//! to the `peer` binary. The harness itself (`Running`, `Joined`, `TempDir`, ...) is
//! `peer-testkit`'s, shared with the tests of the user's binary in examples/seed.

#![allow(dead_code)] // each test binary uses its own share

use std::path::PathBuf;
use std::process::{Command, Stdio};

use peer_testkit::{Joined, TempDir};

/// The `peer` binary of this package; only its own tests can name it.
const PEER: &str = env!("CARGO_BIN_EXE_peer");

pub(crate) fn peer() -> Command {
    Command::new(PEER)
}

/// `peer join` on 127.0.0.1 with one worker, no mDNS and a fresh identity, bootstrapped
/// from `bootstrap` if given ([`peer_testkit::join_command`]).
pub(crate) fn join_command(bootstrap: Option<&str>) -> Command {
    peer_testkit::join_command(PEER, bootstrap)
}

pub(crate) fn join(bootstrap: Option<&str>) -> Joined {
    join_with(bootstrap, &[])
}

/// [`join`] with more flags (`--allow-shell`, `--swarm-key FILE`, ...); its stderr is the
/// test's.
pub(crate) fn join_with(bootstrap: Option<&str>, flags: &[&str]) -> Joined {
    Joined::spawn(join_command(bootstrap).args(flags).stderr(Stdio::inherit()))
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

/// [`three_peers_with`], each started in the working directory `dir` (`/`: not the
/// directory of the test's files, so that a command finds them only where it is told).
pub(crate) fn three_peers_in(dir: &std::path::Path, flags: &[&str]) -> Vec<Joined> {
    let start = |bootstrap: Option<&str>| {
        Joined::spawn(
            join_command(bootstrap)
                .current_dir(dir)
                .args(flags)
                .stderr(Stdio::inherit()),
        )
    };
    let first = start(None);
    let addr = first.addr.clone();
    vec![first, start(Some(&addr)), start(Some(&addr))]
}
