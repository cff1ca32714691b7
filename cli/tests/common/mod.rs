//! Real `peer` processes on 127.0.0.1, shared by the multi-process tests: what is particular
//! to the `peer` binary. The harness itself (`Running`, `Joined`, `TempDir`, ...) is
//! `peer-testkit`'s, shared with the tests of the user's binary in examples/seed.

#![allow(dead_code)] // each test binary uses its own share

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// Sends `signal` to the process `pid`.
pub(crate) fn signal(pid: u32, signal: i32) {
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: kill(2) on a child of this test that has not been waited for.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Waits (10 s at most) for `child` to exit.
pub(crate) fn exit_within(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("it did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether any process of the group `group` is left (`kill(-group, 0)`).
pub(crate) fn group_alive(group: i32) -> bool {
    // SAFETY: signal 0 only checks that the group exists.
    let r = unsafe { libc::kill(-group, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}
