//! Shell commands as a named task, for `peer submit` and `peer map`: any peer of the swarm
//! runs a program, as its [`Spec`] says, and hands back its exit status and what it printed.
//!
//! The program is run directly from its argument vector (no shell unless the caller writes
//! `sh -c ...`), with stdin from `/dev/null`, in its own process group, in the working
//! directory the spec names (a directory that does not exist on the peer fails the command,
//! it never runs elsewhere) or else the peer's own. A program that cannot be started is an
//! [`Outcome`] with [`Outcome::error`] set, never a panic; one that runs past the peer's
//! [time limit](set_time_limit) is killed with its process group, and on Linux every command
//! is killed when the peer that started it dies (`PR_SET_PDEATHSIG`).
//!
//! Commands carry the id of the job they belong to (one `peer map` or `peer submit`), so
//! that a job can be stopped where they run: [`cancel_job`] refuses its commands not yet
//! started, [`kill_job`] kills its running ones too.
//!
//! ```
//! use peer_workloads::shell::{self, Spec};
//!
//! let mut spec = Spec::new(["sh", "-c", "echo $X in $(pwd); exit 3"]);
//! spec.env = vec![("X".to_string(), "hi".to_string())];
//! spec.workdir = Some("/".into());
//! let outcome = shell::run(&spec);
//! assert_eq!(outcome.code, Some(3));
//! assert_eq!(outcome.stdout, b"hi in /\n");
//! assert!(!outcome.success());
//! ```

mod cancel;
mod capture;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use cancel::{JobState, KILLS, jobs};
pub use cancel::{cancel_job, kill_job, running_groups};
use capture::Capture;

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

/// How many cancelled jobs [`cancel_job`] and [`kill_job`] remember; the oldest is
/// forgotten first (its commands, if any still came, would run).
pub const CANCELLED_JOBS: usize = 1024;

/// The [`Outcome::error`] of a command refused because its job was cancelled before it
/// started ([`cancel_job`]).
pub const CANCELLED: &str = "cancelled: its job was cancelled before it started";

/// The [`Outcome::error`] of a command killed because its job was killed ([`kill_job`]).
pub const KILLED: &str = "killed: job cancelled";

/// One command to run: what [`RunTask`] carries from the submitter to the peer that runs it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Environment variables set for it, over the running peer's own.
    pub env: Vec<(String, String)>,
    /// The directory it runs in (absolute); `None`: the running peer's working directory.
    /// One that does not exist on the running peer fails the command.
    pub workdir: Option<PathBuf>,
    /// The job it belongs to, for [`cancel_job`] and [`kill_job`]; 0 for none.
    pub job: u64,
}

impl Spec {
    /// A command of no job, with no extra environment, in the peer's working directory.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Spec {
        Spec {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Spec::default()
        }
    }
}

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
    /// The peer id of the peer that ran it, if that process [said](set_peer) which it is.
    #[serde(default)]
    pub peer: String,
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
            peer: peer().to_string(),
            error: Some(error),
            ..Outcome::default()
        }
    }
}

/// Runs `spec.argv[0]` with the arguments `spec.argv[1..]`, the extra environment variables
/// `spec.env`, in `spec.workdir`, and returns how it ended and what it printed; kills it (and
/// its process group) if it runs past this process's [time limit](set_time_limit) or its job
/// is [killed](kill_job), and refuses it if its job was [cancelled](cancel_job).
#[peer_core::task(name = "peer_workloads::shell::run")]
pub fn run(spec: &Spec) -> Outcome {
    // While it runs, this process heeds a cancel of its job asked anywhere in the swarm.
    let _watch = crate::job_control::watching(spec.job);
    run_limited(spec, time_limit())
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
fn run_limited(spec: &Spec, limit: Option<Duration>) -> Outcome {
    let started = Instant::now();
    let Some((program, args)) = spec.argv.split_first() else {
        return Outcome::failed("empty command".to_string(), started);
    };
    if STOPPING.load(Ordering::SeqCst) {
        return Outcome::failed("not started: this peer is stopping".to_string(), started);
    }
    if jobs().state(spec.job) != JobState::Running {
        return Outcome::failed(CANCELLED.to_string(), started);
    }
    if let Some(dir) = &spec.workdir
        && !dir.is_dir()
    {
        let what = if dir.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        return Outcome::failed(
            format!(
                "working directory {} {what} on host {}",
                dir.display(),
                hostname()
            ),
            started,
        );
    }
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = &spec.workdir {
        command.current_dir(dir);
    }
    #[cfg(unix)]
    {
        // Its own process group, so that stopping it stops what it started too.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    #[cfg(target_os = "linux")]
    die_with_parent(&mut command);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::failed(format!("cannot run {program:?}: {e}"), started),
    };
    let stdout = Capture::start(child.stdout.take());
    let stderr = Capture::start(child.stderr.take());
    let (status, error) = wait_or_stop(&mut child, spec.job, limit);
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
        peer: peer().to_string(),
        error,
    }
}

/// Has the command killed (`SIGKILL`) when this process dies, in `pre_exec`.
///
/// Linux sends the signal when the *thread* that spawned the child exits, not the process:
/// commands are spawned by the worker threads of a peer, which live as long as it does.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    let hook = move || {
        // SAFETY: prctl, getppid and raise are async-signal-safe, as a `pre_exec` hook must
        // be (it runs in the forked child); they touch no memory of ours.
        unsafe {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the prctl: nobody would send the signal.
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe calls and allocates nothing.
    unsafe {
        command.pre_exec(hook);
    }
}

/// Kills every command this process is running (and their process groups) and refuses new
/// ones from now on: for a client that stops on SIGINT or SIGTERM and must not wait for them.
/// Their outcomes say they were killed.
pub fn stop_all() {
    STOPPING.store(true, Ordering::SeqCst);
}

/// Waits for the child, just started, to exit, polling so that [`stop_all`], [`kill_job`]
/// or its time `limit` can kill it. Returns its status (`None` if waiting failed) and an
/// error if it did not end on its own. The child is registered under `job` while it runs.
fn wait_or_stop(
    child: &mut Child,
    job: u64,
    limit: Option<Duration>,
) -> (Option<ExitStatus>, Option<String>) {
    let group = child.id();
    jobs().register(job, group);
    let result = poll_child(child, job, limit);
    jobs().unregister(job, group);
    // Reaped only now: while registered, its id could not be taken by another process.
    let status = child.wait().ok();
    match result {
        Ok(()) => (status, None),
        Err(error) => (status, Some(error)),
    }
}

/// Polls until the child exits (it is left unreaped) or kills it: `Err` says why.
fn poll_child(child: &mut Child, job: u64, limit: Option<Duration>) -> Result<(), String> {
    let deadline = limit.map(|limit| Instant::now() + limit);
    let mut pause = Duration::from_micros(500);
    let mut kills_seen = None;
    loop {
        match exited(child) {
            // Ended by `kill_job`'s own signal, perhaps, before this poll saw the kill.
            Ok(true) if kills_seen != Some(KILLS.load(Ordering::SeqCst)) => {
                return match jobs().state(job) {
                    JobState::Killed => Err(KILLED.to_string()),
                    _ => Ok(()),
                };
            }
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                kill(child);
                return Err(format!("cannot wait for the command: {e}"));
            }
        }
        if STOPPING.load(Ordering::SeqCst) {
            kill(child);
            return Err("killed: the peer running it is stopping".to_string());
        }
        let kills = KILLS.load(Ordering::SeqCst);
        if kills_seen != Some(kills) {
            kills_seen = Some(kills);
            if jobs().state(job) == JobState::Killed {
                kill(child);
                return Err(KILLED.to_string());
            }
        }
        let late = deadline.is_some_and(|deadline| Instant::now() >= deadline);
        if let (true, Some(limit)) = (late, limit) {
            kill(child);
            return Err(format!(
                "killed: it ran past the time limit of {} s of the peer running it \
                 (peer join --shell-timeout)",
                limit.as_secs_f64()
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Whether the child has exited, without reaping it (`waitid` with `WNOWAIT`), so that its
/// pid stays its own until [`Child::wait`].
#[cfg(unix)]
fn exited(child: &mut Child) -> std::io::Result<bool> {
    let pid = libc::id_t::from(child.id());
    // SAFETY: an all-zero `siginfo_t` is a valid value of this plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waitid writes only into `info`, which lives across the call; WNOWAIT leaves
        // the child to be reaped by `Child::wait`.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r == 0 {
            // SAFETY: waitid filled `info` (or left it zeroed: not exited yet).
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(unix))]
fn exited(child: &mut Child) -> std::io::Result<bool> {
    child.try_wait().map(|status| status.is_some())
}

/// Kills the child's process group, or at least the child (not yet reaped).
fn kill(child: &mut Child) {
    killpg(child.id());
    let _ = child.kill();
}

/// Sends `SIGKILL` to the process group `group`.
fn killpg(group: u32) {
    #[cfg(unix)]
    if let Ok(group) = libc::pid_t::try_from(group) {
        // SAFETY: killpg only sends a signal; the group is a command of ours that has not
        // been reaped (see `wait_or_stop`).
        unsafe {
            libc::killpg(group, libc::SIGKILL);
        }
    }
    #[cfg(not(unix))]
    let _ = group;
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

/// Says which peer this process is (its peer id), for the outcomes of the commands it
/// runs from now on; the first call wins.
pub fn set_peer(id: String) {
    let _ = PEER.set(id);
}

/// The peer id [`set_peer`] gave, or "".
fn peer() -> &'static str {
    PEER.get().map_or("", String::as_str)
}

static PEER: OnceLock<String> = OnceLock::new();

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
    use super::cancel::Jobs;
    use super::*;

    fn spec(words: &[&str]) -> Spec {
        Spec::new(words.iter().copied())
    }

    #[test]
    fn captures_code_output_and_environment() {
        let mut command = spec(&["sh", "-c", "echo out $PEER_TEST_X; echo err >&2; exit 7"]);
        command.env = vec![("PEER_TEST_X".to_string(), "42".to_string())];
        let out = run(&command);
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
        let out = run(&spec(&["/nonexistent/peer-test-program"]));
        assert_eq!(out.code, None);
        let error = out.error.expect("an error");
        assert!(error.contains("cannot run"), "{error}");
        let out = run(&Spec::default());
        assert_eq!(out.error.as_deref(), Some("empty command"));
    }

    #[test]
    fn a_signal_is_reported() {
        let out = run(&spec(&["sh", "-c", "kill -TERM $$"]));
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
        let out = run_limited(&spec(&["sh", "-c", "echo started; sleep 30; true"]), limit);
        assert!(started.elapsed() < Duration::from_secs(5), "{out:?}");
        assert_eq!(out.code, None);
        assert_eq!(out.signal, Some(9));
        assert_eq!(out.stdout, b"started\n");
        let error = out.error.clone().expect("an error");
        assert!(error.contains("time limit"), "{error}");
        assert!(!out.success());
        // Within the limit, nothing changes.
        let out = run_limited(&spec(&["sh", "-c", "exit 0"]), limit);
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
        let out = run(&spec(&["sh", "-c", &script]));
        assert_eq!(out.code, Some(0));
        assert_eq!(out.stdout.len(), CAPTURE_MAX);
        assert!(out.stdout_truncated);
        assert!(!out.stderr_truncated);
    }

    #[test]
    fn the_working_directory_is_the_specs_and_a_missing_one_fails_clearly() {
        let mut command = spec(&["pwd"]);
        command.workdir = Some("/".into());
        let out = run(&command);
        assert!(out.success(), "{out:?}");
        assert_eq!(out.stdout, b"/\n");

        command.workdir = Some("/nonexistent/peer-test-dir".into());
        let out = run(&command);
        assert_eq!(out.code, None);
        let error = out.error.expect("an error");
        assert_eq!(
            error,
            format!(
                "working directory /nonexistent/peer-test-dir does not exist on host {}",
                hostname()
            )
        );
    }

    /// Whether the process group `group` has any process left (`kill(-group, 0)`).
    fn group_alive(group: u32) -> bool {
        let group = libc::pid_t::try_from(group).unwrap();
        // SAFETY: signal 0 only checks that the group exists and may be signalled.
        let r = unsafe { libc::kill(-group, 0) };
        if r == 0 {
            return true;
        }
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ESRCH)
        );
        false
    }

    /// Runs `command` on a thread of its own and waits until it runs, in one group.
    fn start(command: Spec) -> (std::thread::JoinHandle<Outcome>, u32) {
        let job = command.job;
        let handle = std::thread::spawn(move || run(&command));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let [group] = running_groups(job)[..] {
                return (handle, group);
            }
            assert!(Instant::now() < deadline, "the command did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn cancel_job_refuses_new_commands_and_lets_running_ones_finish() {
        // Job ids of their own: the tests of this module share the process.
        let job = 0xC0FF_EE01;
        let mut command = spec(&["sh", "-c", "sleep 0.5; echo done"]);
        command.job = job;
        let (running, group) = start(command.clone());
        cancel_job(job);
        let out = run(&command);
        assert_eq!(out.error.as_deref(), Some(CANCELLED));
        assert_eq!(out.code, None);
        assert!(group_alive(group));
        let out = running.join().unwrap();
        assert!(out.success(), "{out:?}");
        assert_eq!(out.stdout, b"done\n");
        assert!(running_groups(job).is_empty());
        assert!(!group_alive(group));
        // Other jobs, and commands of no job, still run.
        let mut other = spec(&["true"]);
        other.job = 0xC0FF_EF00;
        assert!(run(&other).success());
        assert!(run(&spec(&["true"])).success());
        cancel_job(0);
        assert!(run(&spec(&["true"])).success(), "job 0 cannot be cancelled");
    }

    #[test]
    fn kill_job_kills_the_process_groups_of_its_running_commands() {
        let job = 0xC0FF_EE02;
        // The sleep is a child of `sh` in its group: the group must die whole.
        let mut command = spec(&["sh", "-c", "echo started; sleep 60; true"]);
        command.job = job;
        let (running, group) = start(command.clone());
        assert!(group_alive(group));
        let started = Instant::now();
        kill_job(job);
        let out = running.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "{out:?}");
        assert_eq!(out.error.as_deref(), Some(KILLED));
        assert_eq!(out.signal, Some(9));
        assert!(!out.success());
        // Killed at once; gone once the orphaned `sleep` is reaped by init.
        let deadline = Instant::now() + Duration::from_secs(5);
        while group_alive(group) {
            assert!(Instant::now() < deadline, "the sleep outlived the kill");
            std::thread::sleep(Duration::from_millis(10));
        }
        // And from now on its commands are refused.
        assert_eq!(run(&command).error.as_deref(), Some(CANCELLED));
        // A cancel after the kill does not undo it.
        cancel_job(job);
        assert_eq!(jobs().state(job), JobState::Killed);
    }

    #[test]
    fn the_cancelled_jobs_are_bounded() {
        let mut jobs = Jobs::default();
        for job in 1..=(CANCELLED_JOBS as u64 + 10) {
            jobs.cancel(job, JobState::Cancelled);
        }
        assert_eq!(jobs.cancelled.len(), CANCELLED_JOBS);
        assert_eq!(jobs.state(1), JobState::Running, "the oldest is forgotten");
        assert_eq!(jobs.state(11), JobState::Cancelled);
        jobs.cancel(11, JobState::Killed);
        assert_eq!(jobs.state(11), JobState::Killed);
        assert_eq!(jobs.cancelled.len(), CANCELLED_JOBS);
    }
}
