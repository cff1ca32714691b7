//! Shell commands as a named task, for `peer submit` and `peer map`: any peer of the swarm
//! runs a program with extra environment variables and hands back its exit status and what
//! it printed.
//!
//! The program is run directly from its argument vector (no shell unless the caller writes
//! `sh -c ...`), with stdin from `/dev/null`, in its own process group, in the working
//! directory of the peer that runs it. A program that cannot be started is an [`Outcome`]
//! with [`Outcome::error`] set, never a panic; one that runs past the peer's
//! [time limit](set_time_limit) is killed with its process group.
//!
//! ```
//! let argv = vec!["sh".to_string(), "-c".to_string(), "echo $X; exit 3".to_string()];
//! let env = vec![("X".to_string(), "hi".to_string())];
//! let outcome = peer_workloads::shell::run(&argv, &env);
//! assert_eq!(outcome.code, Some(3));
//! assert_eq!(outcome.stdout, b"hi\n");
//! assert!(!outcome.success());
//! ```

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Bytes of stdout, and separately of stderr, kept of one command; the rest is read and
/// dropped (so the command never blocks on a full pipe) and the outcome says it was cut.
pub const CAPTURE_MAX: usize = 8 << 20;

/// How long a killed command's output pipes are still read after it died: a grandchild
/// that left the process group may hold them open.
const KILLED_DRAIN: Duration = Duration::from_secs(1);

/// Set by [`stop_all`]: running commands of this process are killed, new ones refused.
/// A command that starts just as it is set is killed at its first poll. `SeqCst`: a plain
/// flag read a few times per command, where the strongest order costs nothing.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// The time limit of each command this process runs, in milliseconds; 0 for none. Set once
/// at start-up by [`set_time_limit`] and read when a command starts: `Relaxed`, nothing
/// else is published with it.
static TIME_LIMIT_MS: AtomicU64 = AtomicU64::new(0);

/// What running one command gave: how it ended, what it printed, where and how long it ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Its exit code; `None` if it was killed by a signal or never started.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// Its standard output, at most [`CAPTURE_MAX`] bytes.
    pub stdout: Vec<u8>,
    /// Its standard error, at most [`CAPTURE_MAX`] bytes.
    pub stderr: Vec<u8>,
    /// Whether `stdout` was cut at [`CAPTURE_MAX`] bytes.
    pub stdout_truncated: bool,
    /// Whether `stderr` was cut at [`CAPTURE_MAX`] bytes.
    pub stderr_truncated: bool,
    /// Seconds from start to exit.
    pub seconds: f64,
    /// The host name of the machine that ran it.
    pub host: String,
    /// The process id of the peer that ran it (not of the command).
    pub pid: u32,
    /// Why it did not start or did not finish on its own (`None` if it ran to its end).
    pub error: Option<String>,
}

impl Outcome {
    /// Whether the command ran and exited with code 0.
    pub fn success(&self) -> bool {
        self.error.is_none() && self.code == Some(0)
    }

    /// A short description of how it ended: `exit code 3`, `killed by signal 9`, or the error.
    pub fn describe(&self) -> String {
        match (&self.error, self.code, self.signal) {
            (Some(error), _, _) => error.clone(),
            (None, Some(code), _) => format!("exit code {code}"),
            (None, None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None, None) => "ended without an exit code".to_string(),
        }
    }

    fn failed(error: String, started: Instant) -> Outcome {
        Outcome {
            seconds: started.elapsed().as_secs_f64(),
            host: hostname().to_string(),
            pid: std::process::id(),
            error: Some(error),
            ..Outcome::default()
        }
    }
}

/// Runs `argv[0]` with the arguments `argv[1..]` and the extra environment variables `env`,
/// and returns how it ended and what it printed; kills it (and its process group) if it
/// runs past this process's [time limit](set_time_limit).
#[peer_core::task(name = "peer_workloads::shell::run")]
pub fn run(argv: &Vec<String>, env: &Vec<(String, String)>) -> Outcome {
    run_limited(argv, env, time_limit())
}

/// Kills each command this process runs from now on once it has run for `limit` (`None` or
/// zero: no limit, the default); its outcome then says so. For `peer join --shell-timeout`.
pub fn set_time_limit(limit: Option<Duration>) {
    // Rounded up to a whole millisecond, so that only a zero limit is none.
    let ms = limit.map_or(0, |d| {
        u64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
    });
    TIME_LIMIT_MS.store(ms, Ordering::Relaxed);
}

/// The limit [`set_time_limit`] set.
pub fn time_limit() -> Option<Duration> {
    match TIME_LIMIT_MS.load(Ordering::Relaxed) {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    }
}

/// [`run`] with the time limit given.
fn run_limited(argv: &[String], env: &[(String, String)], limit: Option<Duration>) -> Outcome {
    let started = Instant::now();
    let Some((program, args)) = argv.split_first() else {
        return Outcome::failed("empty command".to_string(), started);
    };
    if STOPPING.load(Ordering::SeqCst) {
        return Outcome::failed("not started: this peer is stopping".to_string(), started);
    }
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        // Its own process group, so that stopping it stops what it started too.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::failed(format!("cannot run {program:?}: {e}"), started),
    };
    let stdout = Capture::start(child.stdout.take());
    let stderr = Capture::start(child.stderr.take());
    let (status, error) = wait_or_stop(&mut child, limit);
    let seconds = started.elapsed().as_secs_f64();
    // After a normal exit, read to the end of its output (as `Command::output` does); after
    // a kill, give the pipes a moment and keep what came.
    let drain = if error.is_some() {
        Some(Instant::now() + KILLED_DRAIN)
    } else {
        None
    };
    let (stdout, stdout_truncated) = stdout.finish(drain);
    let (stderr, stderr_truncated) = stderr.finish(drain);
    let (code, signal) = match status {
        Some(status) => (status.code(), signal_of(status)),
        None => (None, None),
    };
    Outcome {
        code,
        signal,
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        seconds,
        host: hostname().to_string(),
        pid: std::process::id(),
        error,
    }
}

/// Kills every command this process is running (and their process groups) and refuses new
/// ones from now on: for a client that stops on SIGINT or SIGTERM and must not wait for them.
/// Their outcomes say they were killed.
pub fn stop_all() {
    STOPPING.store(true, Ordering::SeqCst);
}

/// Waits for the child, just started, to exit, polling so that [`stop_all`] or its time
/// `limit` can kill it. Returns its status (`None` if waiting failed) and an error if it did
/// not end on its own.
fn wait_or_stop(
    child: &mut Child,
    limit: Option<Duration>,
) -> (Option<ExitStatus>, Option<String>) {
    let deadline = limit.map(|limit| Instant::now() + limit);
    let mut pause = Duration::from_micros(500);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), None),
            Ok(None) => {}
            Err(e) => {
                kill(child);
                let _ = child.wait();
                return (None, Some(format!("cannot wait for the command: {e}")));
            }
        }
        if STOPPING.load(Ordering::SeqCst) {
            kill(child);
            let status = child.wait().ok();
            return (
                status,
                Some("killed: the peer running it is stopping".to_string()),
            );
        }
        let late = deadline.is_some_and(|deadline| Instant::now() >= deadline);
        if let (true, Some(limit)) = (late, limit) {
            kill(child);
            let status = child.wait().ok();
            return (
                status,
                Some(format!(
                    "killed: it ran past the time limit of {} s of the peer running it \
                     (peer join --shell-timeout)",
                    limit.as_secs_f64()
                )),
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Kills the child's process group, or at least the child.
fn kill(child: &mut Child) {
    #[cfg(unix)]
    {
        // The group's id is the child's pid (`process_group(0)`). std has no `killpg`, and
        // this crate takes no `libc`: `kill(1)` does it.
        let group = format!("-{}", child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
}

#[cfg(unix)]
fn signal_of(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

#[cfg(not(unix))]
fn signal_of(_status: ExitStatus) -> Option<i32> {
    None
}

/// One output pipe, read to its end by its own thread into a capped buffer.
struct Capture {
    /// The bytes kept, and whether more came than [`CAPTURE_MAX`].
    shared: Arc<Mutex<(Vec<u8>, bool)>>,
    /// Told when the pipe reached its end.
    done: std::sync::mpsc::Receiver<()>,
}

impl Capture {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Capture {
        let shared = Arc::new(Mutex::new((Vec::new(), false)));
        let (tx, done) = std::sync::mpsc::sync_channel(1);
        match pipe {
            Some(mut pipe) => {
                let buffer = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("peer-shell-output".into())
                    .spawn(move || {
                        let mut chunk = vec![0u8; 64 << 10];
                        loop {
                            let n = match pipe.read(&mut chunk) {
                                Ok(0) => break,
                                Ok(n) => n,
                                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                                Err(_) => break,
                            };
                            let mut b = buffer.lock().unwrap_or_else(PoisonError::into_inner);
                            let room = CAPTURE_MAX.saturating_sub(b.0.len());
                            b.0.extend_from_slice(&chunk[..n.min(room)]);
                            b.1 |= n > room;
                        }
                        let _ = tx.send(());
                    });
                if spawned.is_err() {
                    // No thread to read it: the pipe closes, and the command sees EPIPE.
                    shared.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
                }
            }
            None => drop(tx),
        }
        Capture { shared, done }
    }

    /// What was read: all of it, or what came before `deadline`.
    fn finish(self, deadline: Option<Instant>) -> (Vec<u8>, bool) {
        match deadline {
            None => {
                let _ = self.done.recv();
            }
            Some(deadline) => {
                let _ = self
                    .done
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()));
            }
        }
        let mut b = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        (std::mem::take(&mut b.0), b.1)
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`, `/etc/hostname`, `$HOSTNAME` or
/// `hostname(1)`, whichever answers first), read once.
pub fn hostname() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let from_file = |path: &str| std::fs::read_to_string(path).ok();
        let from_command = || {
            Command::new("hostname")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
        };
        from_file("/proc/sys/kernel/hostname")
            .or_else(|| from_file("/etc/hostname"))
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(from_command)
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "unknown".to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn captures_code_output_and_environment() {
        let env = vec![("PEER_TEST_X".to_string(), "42".to_string())];
        let out = run(
            &argv(&["sh", "-c", "echo out $PEER_TEST_X; echo err >&2; exit 7"]),
            &env,
        );
        assert_eq!(out.code, Some(7));
        assert_eq!(out.signal, None);
        assert_eq!(out.stdout, b"out 42\n");
        assert_eq!(out.stderr, b"err\n");
        assert!(!out.stdout_truncated && !out.stderr_truncated);
        assert_eq!(out.error, None);
        assert_eq!(out.pid, std::process::id());
        assert!(!out.host.is_empty());
        assert!(!out.success());
    }

    #[test]
    fn a_program_that_cannot_start_is_an_error_not_a_panic() {
        let out = run(&argv(&["/nonexistent/peer-test-program"]), &Vec::new());
        assert_eq!(out.code, None);
        let error = out.error.expect("an error");
        assert!(error.contains("cannot run"), "{error}");
        let out = run(&Vec::new(), &Vec::new());
        assert_eq!(out.error.as_deref(), Some("empty command"));
    }

    #[test]
    fn a_signal_is_reported() {
        let out = run(&argv(&["sh", "-c", "kill -TERM $$"]), &Vec::new());
        assert_eq!(out.code, None);
        assert_eq!(out.signal, Some(15));
        assert!(out.error.is_none());
        assert_eq!(out.describe(), "killed by signal 15");
    }

    #[test]
    fn a_command_past_its_time_limit_is_killed_with_what_it_started() {
        // The sleep is a child of `sh` (not its last command, so not exec'ed): killing the
        // process group ends it too, so the pipes close and the run returns at once.
        let limit = Some(Duration::from_millis(300));
        let started = Instant::now();
        let out = run_limited(
            &argv(&["sh", "-c", "echo started; sleep 30; true"]),
            &[],
            limit,
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{out:?}");
        assert_eq!(out.code, None);
        assert_eq!(out.signal, Some(9));
        assert_eq!(out.stdout, b"started\n");
        let error = out.error.clone().expect("an error");
        assert!(error.contains("time limit"), "{error}");
        assert!(!out.success());
        // Within the limit, nothing changes.
        let out = run_limited(&argv(&["sh", "-c", "exit 0"]), &[], limit);
        assert!(out.success(), "{out:?}");
    }

    #[test]
    fn the_time_limit_is_process_wide_and_zero_is_none() {
        // Only this test sets it (under `cargo test` the tests share the process).
        assert_eq!(time_limit(), None);
        set_time_limit(Some(Duration::from_secs(2)));
        assert_eq!(time_limit(), Some(Duration::from_secs(2)));
        set_time_limit(Some(Duration::from_micros(1)));
        assert_eq!(time_limit(), Some(Duration::from_millis(1)));
        set_time_limit(Some(Duration::ZERO));
        assert_eq!(time_limit(), None);
        set_time_limit(None);
        assert_eq!(time_limit(), None);
    }

    #[test]
    fn output_past_the_cap_is_cut_and_said_so() {
        // CAPTURE_MAX + 1000 bytes of zeros.
        let script = format!("head -c {} /dev/zero", CAPTURE_MAX + 1000);
        let out = run(&argv(&["sh", "-c", &script]), &Vec::new());
        assert_eq!(out.code, Some(0));
        assert_eq!(out.stdout.len(), CAPTURE_MAX);
        assert!(out.stdout_truncated);
        assert!(!out.stderr_truncated);
    }
}
