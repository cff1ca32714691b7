//! Real processes of a binary built on `peer-cli` (`peer` itself, or a user's binary such as
//! `seed`) for integration tests: `<binary> join` peers and the address each prints, any
//! command's output lines waited for with a time-out, signals, exit.
//!
//! One harness for every such binary, so that their tests start and read peers the same way.
//! A test crate passes its own binary's path (`env!("CARGO_BIN_EXE_<name>")`, which only the
//! tests of the binary's own package can see) and keeps what is particular to that binary.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long [`Running::wait_for`], [`Running::wait_exit`] and [`Joined::spawn`] wait: ample
/// for a debug build on a loaded machine, and a failing test still ends.
const WAIT: Duration = Duration::from_secs(30);

/// `<binary> join` on 127.0.0.1 with one worker, no mDNS and a fresh identity, bootstrapped
/// from `bootstrap` if given, written to no swarm file. No swarm key: open to the processes of this machine only, and
/// without mDNS it meets only the peers it is told of, so tests running at once stay apart.
pub fn join_command(binary: impl AsRef<OsStr>, bootstrap: Option<&str>) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args([
        "join",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--workers",
        "1",
        "--ephemeral",
    ]);
    // Not in the user's swarm file: the commands of a test name their peers (a test of the
    // swarm file gives `--swarm-file FILE`, which wins).
    cmd.env("PEER_SWARM_FILE", "none");
    if let Some(addr) = bootstrap {
        cmd.args(["--bootstrap", addr]);
    }
    cmd
}

/// A `<binary> join` peer and the address it printed; killed when dropped, so that a failing
/// test leaves no peer behind.
pub struct Joined {
    /// The process: a test may kill it to see the others carry on.
    pub child: Child,
    /// The address it prints for others to bootstrap from.
    pub addr: String,
}

impl Joined {
    /// Starts `cmd` (a [`join_command`], perhaps with more flags) and returns once it printed
    /// the address to join it by. Its stdout is read to the end, so that the peer never blocks
    /// on a full pipe; its stderr goes where `cmd` says (the test's own by default).
    pub fn spawn(cmd: &mut Command) -> Joined {
        let binary = binary_name(cmd);
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{binary} starts: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let name = binary.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = join_addr(&name, &line) {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        // Owned before the wait, so that a peer that never prints is killed too.
        let mut joined = Joined {
            child,
            addr: String::new(),
        };
        joined.addr = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("{binary} join prints the command that joins it"));
        joined
    }

    /// Its peer id: the end of its address.
    pub fn id(&self) -> &str {
        self.addr.rsplit("/p2p/").next().unwrap_or_default()
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The name a binary started by `cmd` prints itself by: the file name it was started as.
fn binary_name(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    program
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// The address in the line a join prints for others to join it by,
/// `<binary> join --bootstrap ADDR [flags]`, if `line` is that line.
fn join_addr<'a>(binary: &str, line: &'a str) -> Option<&'a str> {
    let rest = line.trim().strip_prefix(binary)?;
    rest.strip_prefix(" join --bootstrap ")?
        .split_whitespace()
        .next()
}

/// Runs `cmd` to the end and returns its stdout; fails the test, showing both streams, unless
/// it succeeds.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} starts: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A running process whose output lines a test waits for; killed when dropped.
///
/// The lines are read on threads of their own, so that the process never blocks on a full
/// pipe while the test waits for something else.
pub struct Running {
    /// The process.
    pub child: Child,
    /// The name it prints itself by, in its join line.
    binary: String,
    /// The lines to wait for: stdout's and stderr's, or stderr's alone.
    lines: mpsc::Receiver<String>,
    /// All of stdout, when it is kept whole instead.
    stdout: Option<mpsc::Receiver<String>>,
    /// The lines received so far, shown when a wait fails.
    seen: Vec<String>,
}

impl Running {
    /// Starts `cmd` with the lines of both its stdout and its stderr to wait for.
    pub fn spawn(cmd: &mut Command) -> Running {
        let (mut child, binary) = spawn_piped(cmd);
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        send_lines(out, tx.clone());
        send_lines(err, tx);
        Running {
            child,
            binary,
            lines,
            stdout: None,
            seen: Vec::new(),
        }
    }

    /// Starts `cmd` with the lines of its stderr to wait for, and its stdout kept whole, to
    /// compare exactly ([`Running::kept_stdout`]).
    pub fn spawn_keeping_stdout(cmd: &mut Command) -> Running {
        let (mut child, binary) = spawn_piped(cmd);
        let (out_tx, stdout) = mpsc::channel();
        let mut out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            let _ = out_tx.send(text);
        });
        let (tx, lines) = mpsc::channel();
        send_lines(child.stderr.take().unwrap(), tx);
        Running {
            child,
            binary,
            lines,
            stdout: Some(stdout),
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) that `matches`; fails the test after 30 s, or once the
    /// process has closed its output.
    pub fn wait_for(&mut self, matches: impl Fn(&str) -> bool) -> String {
        self.wait_for_within(WAIT, matches)
    }

    /// [`Running::wait_for`], failing the test after `limit` instead.
    pub fn wait_for_within(&mut self, limit: Duration, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no such line; the lines so far:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Every line received so far.
    pub fn seen_lines(&self) -> Vec<String> {
        self.seen.clone()
    }

    /// The address a join prints for others to bootstrap from (`<binary> join --bootstrap
    /// ADDR`).
    pub fn addr(&mut self) -> String {
        let binary = self.binary.clone();
        let line = self.wait_for(|l| join_addr(&binary, l).is_some());
        join_addr(&binary, &line).unwrap().to_string()
    }

    /// A join's peer id, from its `peer <id> with <n> workers` line.
    pub fn peer_id(&mut self) -> String {
        let line = self.wait_for(|l| l.starts_with("peer ") && l.ends_with(" workers"));
        line.split_whitespace().nth(1).unwrap().to_string()
    }

    /// Sends it `signal` (`libc::SIGTERM`, `libc::SIGSTOP`, ...).
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid; it has not been waited for yet, so the pid
        // is still its own.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits (30 s at most) for it to exit: its status and all the lines it wrote.
    pub fn wait_exit(&mut self) -> (ExitStatus, String) {
        self.wait_exit_within(WAIT)
    }

    /// [`Running::wait_exit`], failing the test after `limit` instead.
    pub fn wait_exit_within(&mut self, limit: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            // Read as they come, so that a process that does not exit shows what it said.
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            assert!(
                Instant::now() < deadline,
                "it did not exit; the lines so far:\n{}",
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

    /// All of its stdout, once it has closed it (5 s at most; empty if it has not): for a
    /// process started with [`Running::spawn_keeping_stdout`], after [`Running::wait_exit`].
    pub fn kept_stdout(&mut self) -> String {
        let stdout = self.stdout.as_ref().expect("started keeping stdout");
        stdout
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` with stdout and stderr piped; the name it prints itself by.
fn spawn_piped(cmd: &mut Command) -> (Child, String) {
    let binary = binary_name(cmd);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{binary} starts: {e}"));
    (child, binary)
}

/// Sends each line of `stream` to `tx` on a thread of its own, to the end of the stream.
fn send_lines(stream: impl Read + Send + 'static, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

/// A directory of its own for one test, removed when dropped: tests running at once, and
/// earlier runs, never see each other's files.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory in the system's temp dir, named after `name`, this process and
    /// the time.
    pub fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "peer-testkit-{name}-{}-{nanos}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.0
    }

    /// `name` in it (not created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the multi-host harness script `tests/netns/<script>` with `args` (the binary's path
/// among them, where the script takes it) and `NETNS_TAG=tag` (unique among the tests that
/// run at once: it names their namespaces and interfaces, at most 15 bytes with the
/// script's own); fails the test, showing both streams, unless it succeeded.
///
/// No root needed: the script runs itself in an unprivileged user namespace with network
/// and mount namespaces of its own (`tests/netns/harness.sh`), as root or not. Where the
/// kernel forbids that, the test fails and says so (it is not skipped).
pub fn netns_script(script: &str, args: &[&str], tag: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/netns/");
    let out = Command::new("bash")
        .arg(format!("{path}{script}"))
        .args(args)
        .env("NETNS_TAG", tag)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The harness's own refusal (no user namespaces, no `ip`), alone: it is the whole story.
    if let Some(why) = stderr.lines().find(|l| l.starts_with("netns harness: ")) {
        panic!(
            "{script} could not set up its hosts ({}): {why}",
            out.status
        );
    }
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}); stdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_join_line_names_the_binary() {
        let line = "  seed join --bootstrap /ip4/127.0.0.1/tcp/5/p2p/12D3 --swarm-key k";
        assert_eq!(
            join_addr("seed", line),
            Some("/ip4/127.0.0.1/tcp/5/p2p/12D3")
        );
        assert_eq!(join_addr("peer", line), None);
        assert_eq!(join_addr("seed", "seed join --bootstrap"), None);
        assert_eq!(binary_name(&Command::new("/x/target/debug/peer")), "peer");
    }
}
