//! `peer submit` and `peer map`: shell commands as tasks across the swarm, like GNU
//! parallel or HyperQueue's `hq submit`, for people who do not write Rust.
//!
//! Each command is one [`shell::RunTask`], a named task every `peer` binary registers, run
//! by this process or by a peer started with `peer join --allow-shell` (`--remote-only`:
//! only by such a peer; see `shell_peers`): the program runs from its argument vector (no
//! shell unless the user writes `sh -c ...`) in the submitter's working directory (or
//! `--workdir`), with the environment variables `--env` names.
//! `peer map` prints results in input order as they become printable and keeps a JSON-lines
//! job log, outputs included, from which `--resume` prints what was not printed and runs
//! what has not succeeded. The first SIGINT or SIGTERM starts no more commands and waits
//! for the running ones; the second kills them and exits; the third exits at once.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use peer_core::{TaskError, TaskFuture, TaskId};
use peer_net::Peer;
use peer_workloads::shell::{self, Outcome, RunTask, Spec};
use serde_json::{Value, json};

use super::Exit;
use super::shell_peers::{self, Watch};
use super::swarm_args::SwarmArgs;

/// Exit code of a usage error that clap cannot see (no inputs, a log of other inputs).
const USAGE: u8 = 2;

/// How many failed indices the summary line names.
const NAMED_FAILURES: usize = 10;

/// How often the wait for results looks at the signals and the progress display.
const POLL: Duration = Duration::from_millis(100);

/// After the second signal killed the commands, how long `peer map` still collects their
/// outcomes (for the log) before it exits.
const KILL_GRACE: Duration = Duration::from_secs(2);

// The variants in `mod.rs` set `about` and `long_about` from their doc comments, after and
// over anything set here, so the longer text and the exit codes go after the options.

// Each exit-code table is written once, as a macro, so both help texts can `concat!` it.
macro_rules! submit_exit_codes {
    () => {
        "\
Exit codes:
  0      the command exited with code 0
  1-255  the command's own exit code; 128+N if it was killed by signal N (as a shell
         says); 1 if it did not end on its own: it could not be started, its working
         directory does not exist, or the peer killed it (--shell-timeout, a cancelled
         job, a stopping peer; the message says which)
  2      usage error (also: --env NAME with NAME not set here)
  3      the swarm could not be joined (see --join-timeout), or with --remote-only no peer
         of it runs shell commands (none was started with --allow-shell)
  130    interrupted by SIGINT or SIGTERM
A command's own codes 2, 3 and 130 read the same as peer's: the message on stderr says
which it was."
    };
}

macro_rules! map_exit_codes {
    () => {
        "\
Exit codes:
  0    every task exited with code 0
  1    some tasks failed (a summary on stderr names how many and the first indices)
  2    usage error (also: no inputs, --resume without --log, a log of other inputs,
       --env NAME with NAME not set here)
  3    the swarm could not be joined (see --join-timeout), or with --remote-only no peer
       of it runs shell commands (none was started with --allow-shell)
  130  interrupted by SIGINT or SIGTERM"
    };
}

/// Where a command runs, the same for `peer submit` and `peer map`.
macro_rules! where_it_runs {
    () => {
        "\
Where it runs: in this directory (the submitter's working directory; --workdir DIR for
another, relative to this one), on whichever peer takes it. A directory that does not
exist on that peer fails the command there (\"working directory D does not exist on host
H\"); it never runs elsewhere. The peer's environment, plus --env NAME (this process's
value of NAME; NAME not set here is a usage error) and --env NAME=VALUE, both repeatable.
Stdin is /dev/null; the command runs in its own process group, which is killed when the
peer that runs it dies."
    };
}

const SUBMIT_EXIT_CODES: &str = submit_exit_codes!();

const SUBMIT_HELP: &str = concat!(
    "\
The command runs from its argument vector, without a shell: write `sh -c '...'` for pipes
or variables. Its stdout and stderr are each kept up to 8 MiB (a note says when they were
cut) and copied to ours when it ends.

",
    where_it_runs!(),
    "

It runs in this process or on a peer started with `peer join --allow-shell`; other peers
never run shell commands. With --remote-only only on such a peer, and the command fails
(exit 3) when no peer takes it while the others sit idle.

SIGINT or SIGTERM kills the command (where this process can reach it: today only when it
runs here) and exits 130; a second signal exits at once.

",
    submit_exit_codes!()
);

const MAP_EXIT_CODES: &str = map_exit_codes!();

const MAP_HELP: &str = concat!(
    "\
Like GNU parallel --keep-order (-k/--keep-order is accepted and changes nothing: the
output is always in input order). Inputs are the arguments before `--`, or the lines of
--each-line FILE (`-` for stdin). In every argument of the command these are replaced:
  {}    the input                          {/}   its basename (after the last /)
  {.}   the input without its extension    {//}  its dirname (`.` if it has no /)
  {/.}  the basename without extension     {#}   the input's number, from 1
When no argument has any of them, the input is appended as the last argument (as GNU
parallel does): `peer map a b -- gzip` runs `gzip a` and `gzip b`. The environment
variables PEER_TASK_ID (the input's index, from 0) and PEER_INPUT (the input) are set too.
The command runs without a shell: write `sh -c '...'`.

",
    where_it_runs!(),
    "

Commands run in this process and on the peers started with `peer join --allow-shell`;
other peers never run shell commands (a note says when no other peer ran any). With
--remote-only only on such peers, and the job fails (exit 3) when no peer takes a command
while the others sit idle.

Each task's stdout is printed in input order, its stderr to stderr; with --json, one JSON
object per task and line instead (index, input, exit_code, signal, stdout, stderr,
stdout_truncated, stderr_truncated, host, pid, seconds, error) and nothing else on stdout.
Progress goes to stderr: a bar on a terminal, otherwise a line about every second.

--log FILE writes one JSON line per finished task (index, input, exit_code, signal, error,
host, pid, seconds, stdout, stderr, stdout_truncated, stderr_truncated, printed),
replacing the file. stdout and stderr are JSON strings when the bytes are UTF-8, otherwise
arrays of byte values (0-255), so nothing is lost. `printed` says whether the output was
printed when the line was written; a line {\"printed\": [indices]} records outputs printed
later (held back until those before them were printed).

--resume (with the same --log and the same inputs) appends to the log and prints every
output once, in input order: the outputs of tasks the log records as succeeded (exit code
0) and not yet printed are printed from the log at their turn, those already printed are
not printed again, and the other inputs run again.

The first SIGINT or SIGTERM starts no more commands (the swarm's peers are told the job is
cancelled) and waits for the running ones, printing and logging them; the second kills the
running ones (where this process can reach them), records what finished in the log and
exits 130; a third exits at once. The message says how many tasks finished and were
printed: --resume prints and runs the rest.

",
    map_exit_codes!()
);

/// Options of `peer submit`.
#[derive(Debug, clap::Args)]
#[command(after_help = SUBMIT_EXIT_CODES, after_long_help = SUBMIT_HELP)]
pub(crate) struct SubmitArgs {
    /// Print one JSON object (exit_code, signal, stdout, stderr, host, pid, seconds,
    /// error, ...) instead of the command's output.
    #[arg(long)]
    json: bool,
    /// Run it on a peer started with `peer join --allow-shell`, never in this process.
    #[arg(long)]
    remote_only: bool,
    #[command(flatten)]
    place: PlaceArgs,
    #[command(flatten)]
    swarm: SwarmArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Options of `peer map`.
#[derive(Debug, clap::Args)]
#[command(after_help = MAP_EXIT_CODES, after_long_help = MAP_HELP)]
pub(crate) struct MapArgs {
    /// The inputs, one task each.
    #[arg(value_name = "INPUT", conflicts_with = "each_line")]
    inputs: Vec<String>,
    /// Take the inputs from the lines of FILE (`-`: stdin) instead.
    #[arg(long, value_name = "FILE")]
    each_line: Option<PathBuf>,
    /// Print one JSON object per task and line instead of the tasks' output.
    #[arg(long)]
    json: bool,
    /// Write a job log to FILE: one JSON line per finished task, its output included.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Print from the --log what it holds and was not printed, and run only the inputs it
    /// does not record as succeeded, appending to it.
    #[arg(long, requires = "log")]
    resume: bool,
    /// Accepted for GNU parallel users: the output is always in input order.
    #[arg(short = 'k', long)]
    keep_order: bool,
    /// Run the commands on peers started with `peer join --allow-shell` only, never in this
    /// process.
    #[arg(long)]
    remote_only: bool,
    #[command(flatten)]
    place: PlaceArgs,
    #[command(flatten)]
    swarm: SwarmArgs,
    /// The command, after `--`; `{}`, `{.}`, `{/}`, `{//}`, `{/.}`, `{#}` are replaced (see
    /// --help); without any, the input is its last argument.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Where the commands run: `--env` and `--workdir`, shared by `peer submit` and `peer map`.
#[derive(Debug, clap::Args)]
struct PlaceArgs {
    /// Set NAME for the command: to its value here, or to VALUE. Repeatable.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    env: Vec<String>,
    /// The directory the command runs in, on the peer that runs it (relative: to this
    /// directory) [default: this directory].
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
}

/// What `PlaceArgs` resolve to here, before the commands leave.
#[derive(Debug, PartialEq)]
struct Place {
    env: Vec<(String, String)>,
    workdir: PathBuf,
}

impl PlaceArgs {
    /// The environment and the absolute working directory; a usage error for `--env NAME`
    /// with NAME not set (or not UTF-8) here.
    fn resolve(&self) -> anyhow::Result<Place> {
        let here =
            std::env::current_dir().context("cannot read this process's working directory")?;
        let env = self
            .env
            .iter()
            .map(|arg| resolve_env(arg, |name| std::env::var(name)))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| usage(&e))?;
        let workdir = match &self.workdir {
            Some(dir) => here.join(dir),
            None => here,
        };
        Ok(Place { env, workdir })
    }
}

/// One `--env` argument: `NAME=VALUE`, or `NAME` with its value from `lookup`.
fn resolve_env(
    arg: &str,
    lookup: impl Fn(&str) -> Result<String, std::env::VarError>,
) -> Result<(String, String), String> {
    let (name, value) = match arg.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (arg, None),
    };
    if name.is_empty() || name.contains('\0') {
        return Err(format!("--env {arg:?}: not a variable name"));
    }
    let value = match value {
        Some(value) => value,
        None => lookup(name).map_err(|e| match e {
            std::env::VarError::NotPresent => {
                format!("--env {name}: {name} is not set here; give --env {name}=VALUE to set it")
            }
            std::env::VarError::NotUnicode(_) => {
                format!("--env {name}: the value of {name} here is not UTF-8")
            }
        })?,
    };
    Ok((name.to_string(), value))
}

/// A new job id: random, never 0 (no job).
fn new_job() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.finish().max(1)
}

// ---------------------------------------------------------------------------------------
// The cancel hook: how a job's cancellation reaches the processes that run its commands.
// ---------------------------------------------------------------------------------------

/// Stops job `job` wherever its commands run: refuses its commands not started yet, and
/// with `kill` kills its running ones too.
///
/// Today this reaches this process only ([`shell::cancel_job`], [`shell::kill_job`] and,
/// with `kill`, [`shell::stop_all`]). The broadcast to the swarm's other peers, which would
/// call the same `shell` functions there, goes here, through `client`.
fn cancel_everywhere(client: &Peer, job: u64, kill: bool) {
    let _ = client; // For the broadcast to come.
    if kill {
        shell::kill_job(job);
        shell::stop_all();
    } else {
        shell::cancel_job(job);
    }
}

/// SIGINT and SIGTERM received since [`count_signals`]. `SeqCst`: a counter read a few
/// times a second.
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// Counts SIGINT and SIGTERM in [`SIGNALS`]; the third ends the process at once with
/// [`Exit::INTERRUPTED`]. Called once per process.
fn count_signals() -> anyhow::Result<()> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let handler = || {
            if SIGNALS.fetch_add(1, Ordering::SeqCst) + 1 >= 3 {
                signal_hook::low_level::exit(i32::from(Exit::INTERRUPTED));
            }
        };
        // SAFETY: the handler only adds to an atomic and may call `_exit` (what
        // `low_level::exit` is): both are async-signal-safe.
        unsafe { signal_hook::low_level::register(signal, handler) }
            .context("cannot handle SIGINT and SIGTERM")?;
    }
    Ok(())
}

/// The replacement strings of `peer map`, as GNU parallel has them.
const REPLACEMENTS: [&str; 6] = ["{}", "{.}", "{/}", "{//}", "{/.}", "{#}"];

/// The command for one input: each replacement string in each argument replaced (`seq` is
/// `{#}`, from 1), or, when no argument has one, the input appended as the last argument.
fn expand(command: &[String], input: &str, seq: usize) -> Vec<String> {
    let any = command
        .iter()
        .any(|arg| REPLACEMENTS.iter().any(|r| arg.contains(r)));
    if !any {
        let mut argv = command.to_vec();
        argv.push(input.to_string());
        return argv;
    }
    command
        .iter()
        .map(|arg| {
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg.as_str();
            while let Some(at) = rest.find('{') {
                out.push_str(&rest[..at]);
                rest = &rest[at..];
                let Some(r) = REPLACEMENTS.iter().find(|r| rest.starts_with(**r)) else {
                    out.push('{');
                    rest = &rest[1..];
                    continue;
                };
                match *r {
                    "{}" => out.push_str(input),
                    "{.}" => out.push_str(without_extension(input)),
                    "{/}" => out.push_str(basename(input)),
                    "{//}" => out.push_str(dirname(input)),
                    "{/.}" => out.push_str(without_extension(basename(input))),
                    _ => out.push_str(&seq.to_string()),
                }
                rest = &rest[r.len()..];
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// GNU parallel's `{.}`: the last `.` and what follows removed, if that is not empty and
/// has no `/` (`s:\.[^/.]+$::`).
fn without_extension(path: &str) -> &str {
    match path.rfind('.') {
        Some(dot) if dot + 1 < path.len() && !path[dot + 1..].contains('/') => &path[..dot],
        _ => path,
    }
}

/// GNU parallel's `{/}`: what follows the last `/`.
fn basename(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, base)| base)
}

/// GNU parallel's `{//}` (Perl's `dirname`): what precedes the last `/` (trailing ones
/// ignored), `.` without one, `/` for the root.
fn dirname(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() { "." } else { "/" };
    }
    match trimmed.rfind('/') {
        None => ".",
        Some(slash) => match trimmed[..slash].trim_end_matches('/') {
            "" => "/",
            dir => dir,
        },
    }
}

pub(crate) fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let place = args.place.resolve()?;
    let client = shell_peers::join(&args.swarm, args.remote_only)?;
    count_signals()?;
    let job = new_job();
    let spec = Spec {
        argv: args.command.clone(),
        env: place.env,
        workdir: Some(place.workdir),
        job,
    };
    let future = client.submit_named(RunTask, (spec,));
    let mut watch = Watch::new(args.remote_only);
    let outcome = loop {
        if let Some(result) = future.wait_timeout(POLL) {
            break to_outcome(result);
        }
        watch.check(&client)?;
        if SIGNALS.load(Ordering::SeqCst) > 0 {
            future.cancel();
            cancel_everywhere(&client, job, true);
            return Err(Exit {
                code: Exit::INTERRUPTED,
                message: "interrupted".into(),
            }
            .into());
        }
    };
    if args.json {
        let mut line = outcome_json(&outcome);
        line["command"] = json!(args.command);
        println!("{line}");
    } else {
        std::io::stdout().write_all(&outcome.stdout)?;
        std::io::stdout().flush()?;
        std::io::stderr().write_all(&outcome.stderr)?;
        for note in notes(&outcome) {
            eprintln!("peer submit: {note}");
        }
    }
    if outcome.success() {
        Ok(())
    } else {
        Err(Exit {
            code: submit_exit_code(&outcome),
            message: format!(
                "the command failed on {}: {}",
                where_ran(&outcome),
                outcome.describe()
            ),
        }
        .into())
    }
}

/// `peer submit`'s exit code for a command that did not succeed: its own exit code, 128 +
/// the signal that killed it, or 1 if it did not end on its own (it could not start, or the
/// peer killed it: its `error` says why).
fn submit_exit_code(o: &Outcome) -> u8 {
    let own = match (o.code, o.signal, &o.error) {
        (_, _, Some(_)) => None,
        (Some(code), _, None) => u8::try_from(code).ok(),
        (None, Some(signal), None) => u8::try_from(128 + signal).ok(),
        (None, None, None) => None,
    };
    own.filter(|&code| code != 0).unwrap_or(Exit::FAILED)
}

pub(crate) fn run(args: MapArgs) -> anyhow::Result<()> {
    let _ = args.keep_order; // Always: the output is in input order.
    let inputs = read_inputs(&args)?;
    if inputs.is_empty() {
        return Err(usage(
            "no inputs: give them before `--` or with --each-line FILE",
        ));
    }
    let place = args.place.resolve()?;
    // What an earlier run recorded, when resuming.
    let earlier = match (&args.log, args.resume) {
        (Some(log), true) => read_log(log, &inputs)?,
        _ => vec![None; inputs.len()],
    };
    let mut slots = Vec::with_capacity(inputs.len());
    let (mut succeeded, mut to_print) = (0, 0);
    for entry in earlier {
        slots.push(match entry {
            None => Slot::ToRun,
            Some(Logged {
                outcome: Some(outcome),
                printed: false,
            }) => {
                succeeded += 1;
                to_print += 1;
                Slot::Ready(outcome)
            }
            Some(_) => {
                succeeded += 1;
                Slot::Printed
            }
        });
    }
    let todo: Vec<usize> = (0..inputs.len())
        .filter(|&i| matches!(slots[i], Slot::ToRun))
        .collect();
    if let (Some(log), true) = (&args.log, args.resume) {
        eprintln!(
            "peer map: resuming from {}: {succeeded} of {} inputs already succeeded ({to_print} \
             of them not printed yet: printed from the log), {} to run",
            log.display(),
            inputs.len(),
            todo.len()
        );
    }
    let log = match &args.log {
        Some(path) => Some(open_log(path, args.resume)?),
        None => None,
    };
    let mut run = Run {
        inputs: &inputs,
        slots,
        next_print: 0,
        to_run: todo.len(),
        waiting: 0,
        finished: 0,
        earlier: succeeded,
        elsewhere: 0,
        failed: Vec::new(),
        stopping: false,
        json: args.json,
        log,
        progress: Progress::new(todo.len()),
    };
    // What the log holds and is first in order.
    let printed = run.print_ready()?;
    run.log_printed(&printed)?;
    if todo.is_empty() {
        return run.summary();
    }
    let client = shell_peers::join(&args.swarm, args.remote_only)?;
    count_signals()?;
    let job = new_job();
    let mut watch = Watch::new(args.remote_only);

    let futures: Vec<TaskFuture<Outcome>> = client.map_named(
        RunTask,
        todo.iter().map(|&i| {
            let input = &inputs[i];
            let mut env = place.env.clone();
            env.push(("PEER_TASK_ID".to_string(), i.to_string()));
            env.push(("PEER_INPUT".to_string(), input.clone()));
            let spec = Spec {
                argv: expand(&args.command, input, i + 1),
                env,
                workdir: Some(place.workdir.clone()),
                job,
            };
            (spec,)
        }),
    );
    let completions = completions(&futures)?;
    for (&index, future) in todo.iter().zip(futures) {
        run.slots[index] = Slot::Running(future);
        run.waiting += 1;
    }
    // 0 until the first signal, 1 after it (no new commands), 2 after the second (killed).
    let mut stage = 0;
    let mut give_up = None;
    while run.waiting > 0 {
        match completions.recv_timeout(POLL) {
            Ok(position) => run.finish(todo[position])?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                anyhow::bail!("the wait for results ended early (a broken invariant)")
            }
        }
        let signals = SIGNALS.load(Ordering::SeqCst);
        if signals >= 1 && stage == 0 {
            stage = 1;
            run.stop();
            cancel_everywhere(&client, job, false);
            if run.waiting > 0 && signals == 1 {
                // Not a count: a task not cancelled here may yet be refused where it runs.
                run.progress.suspend(|| {
                    eprintln!(
                        "peer map: interrupted: no more commands start; waiting for the \
                         running ones (interrupt again to kill them)"
                    );
                });
            }
        }
        if signals >= 2 && stage == 1 {
            stage = 2;
            cancel_everywhere(&client, job, true);
            give_up = Some(Instant::now() + KILL_GRACE);
        }
        if give_up.is_some_and(|at| Instant::now() >= at) {
            break;
        }
        if let Err(e) = watch.check(&client) {
            run.progress.clear();
            return Err(e);
        }
        run.progress.show(run.finished, run.failed.len());
    }
    run.progress.clear();
    if stage > 0 {
        return Err(run.interrupted());
    }
    if args.swarm.joins_others() && run.finished > 1 && run.elsewhere == 0 {
        eprintln!("peer map: {}", shell_peers::NONE_ELSEWHERE);
    }
    run.summary()
}

/// Where one input stands in `peer map`.
enum Slot {
    /// To run (before the futures exist).
    ToRun,
    /// Submitted, not finished.
    Running(TaskFuture<Outcome>),
    /// Finished (now, or in an earlier run and logged), not printed yet.
    Ready(Outcome),
    /// Printed, now or by an earlier run.
    Printed,
    /// Cancelled by an interrupt before it started: it never ran.
    Dropped,
}

/// Where `peer map` stands: which tasks finished, what is printed, what failed.
struct Run<'a> {
    inputs: &'a [String],
    /// One per input.
    slots: Vec<Slot>,
    /// The next input to print (all before it are printed, or never ran).
    next_print: usize,
    /// How many inputs this run runs.
    to_run: usize,
    /// Slots [`Slot::Running`].
    waiting: usize,
    /// Tasks of this run finished.
    finished: usize,
    /// Inputs an earlier run succeeded at.
    earlier: usize,
    /// Finished tasks that another process ran.
    elsewhere: usize,
    /// Input indices of the failed tasks, in the order they finished.
    failed: Vec<usize>,
    /// After the first signal: a task cancelled now never ran, it did not fail.
    stopping: bool,
    json: bool,
    log: Option<File>,
    progress: Progress,
}

impl Run<'_> {
    /// The task of input `index` finished: print what is now in order, log it, count it.
    fn finish(&mut self, index: usize) -> anyhow::Result<()> {
        let Slot::Running(future) = &self.slots[index] else {
            return Ok(()); // Dropped by an interrupt.
        };
        let Some(result) = future.try_get() else {
            unreachable!("as_completed yielded a task that is not done")
        };
        let cancelled = match &result {
            Err(e) => e.is_cancelled(),
            Ok(o) => o.error.as_deref() == Some(shell::CANCELLED),
        };
        if self.stopping && cancelled {
            self.slots[index] = Slot::Dropped;
            self.waiting -= 1;
            return Ok(());
        }
        let outcome = to_outcome(result);
        let mut record = log_record(index, &self.inputs[index], &outcome);
        self.waiting -= 1;
        self.finished += 1;
        if outcome.pid != 0 && outcome.pid != std::process::id() {
            self.elsewhere += 1;
        }
        if !outcome.success() {
            self.failed.push(index);
        }
        self.slots[index] = Slot::Ready(outcome);
        // Printed before it is logged: a crash in between prints it again on --resume,
        // never loses it.
        let mut printed = self.print_ready()?;
        let now = printed.iter().position(|&i| i == index);
        if let Some(at) = now {
            printed.swap_remove(at);
        }
        if let Some(log) = &mut self.log {
            record["printed"] = json!(now.is_some());
            writeln!(log, "{record}").context("cannot write to the --log file")?;
        }
        self.log_printed(&printed)
    }

    /// Records in the log that the outputs of `indices`, logged before, are printed now.
    fn log_printed(&mut self, indices: &[usize]) -> anyhow::Result<()> {
        if let (Some(log), false) = (&mut self.log, indices.is_empty()) {
            writeln!(log, "{}", json!({ "printed": indices }))
                .context("cannot write to the --log file")?;
        }
        Ok(())
    }

    /// Prints the outcomes that are next in input order; returns their indices.
    fn print_ready(&mut self) -> anyhow::Result<Vec<usize>> {
        let mut printed = Vec::new();
        while let Some(slot) = self.slots.get_mut(self.next_print) {
            match slot {
                Slot::Printed => {}
                Slot::Ready(_) => {
                    let Slot::Ready(outcome) = std::mem::replace(slot, Slot::Printed) else {
                        unreachable!("the slot was just matched as ready")
                    };
                    self.print(self.next_print, &outcome)?;
                    printed.push(self.next_print);
                }
                Slot::ToRun | Slot::Running(_) | Slot::Dropped => break,
            }
            self.next_print += 1;
        }
        Ok(printed)
    }

    fn print(&self, index: usize, outcome: &Outcome) -> anyhow::Result<()> {
        let input = &self.inputs[index];
        self.progress.suspend(|| -> anyhow::Result<()> {
            let mut stdout = std::io::stdout().lock();
            if self.json {
                let mut line = outcome_json(outcome);
                line["index"] = json!(index);
                line["input"] = json!(input);
                writeln!(stdout, "{line}")?;
            } else {
                stdout.write_all(&outcome.stdout)?;
                stdout.flush()?;
                let mut stderr = std::io::stderr().lock();
                stderr.write_all(&outcome.stderr)?;
                for note in notes(outcome) {
                    writeln!(stderr, "peer map: task {index} ({input:?}): {note}")?;
                }
            }
            stdout.flush()?;
            Ok(())
        })
    }

    /// At the first signal: cancels every task not started. The running ones run on.
    fn stop(&mut self) {
        self.stopping = true;
        for slot in &mut self.slots {
            if let Slot::Running(future) = slot {
                if future.cancel() {
                    *slot = Slot::Dropped;
                    self.waiting -= 1;
                }
            }
        }
    }

    /// The exit after an interrupt, saying truthfully what finished and was printed.
    fn interrupted(&self) -> anyhow::Error {
        let total = self.inputs.len();
        let finished = self.earlier + self.finished;
        let printed = (self.slots.iter())
            .filter(|s| matches!(s, Slot::Printed))
            .count();
        let rest = match &self.log {
            Some(_) => format!(
                "; run it again with --resume to print the rest and run the {} that did not \
                 succeed",
                total - finished + self.failed.len()
            ),
            None => String::new(),
        };
        Exit {
            code: Exit::INTERRUPTED,
            message: format!(
                "interrupted: {finished} of {total} tasks finished ({printed} printed), {} \
                 failed{rest}",
                self.failed.len()
            ),
        }
        .into()
    }

    /// Exit 0 if every task succeeded, else 1 with a line naming the failures.
    fn summary(&self) -> anyhow::Result<()> {
        if self.failed.is_empty() {
            return Ok(());
        }
        let mut first = self.failed.clone();
        first.sort_unstable();
        let more = first.len() > NAMED_FAILURES;
        first.truncate(NAMED_FAILURES);
        let named: Vec<String> = first.iter().map(usize::to_string).collect();
        Err(Exit {
            code: Exit::FAILED,
            message: format!(
                "{} of {} tasks failed: indices {}{}",
                self.failed.len(),
                self.to_run,
                named.join(", "),
                if more { ", ..." } else { "" }
            ),
        }
        .into())
    }
}

/// Progress on stderr: a bar on a terminal, otherwise a line about every second.
enum Progress {
    Bar(ProgressBar),
    Lines { total: usize, last: Instant },
}

impl Progress {
    fn new(total: usize) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "peer map: {wide_bar} {pos}/{len} done, {msg} [{elapsed_precise}, eta {eta}]",
            ) {
                bar.set_style(style);
            }
            bar.set_message("0 failed");
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                total,
                last: Instant::now(),
            }
        }
    }

    fn show(&mut self, done: usize, failed: usize) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(done as u64);
                bar.set_message(format!("{failed} failed"));
            }
            Progress::Lines { total, last } => {
                if last.elapsed() >= Duration::from_secs(1) {
                    *last = Instant::now();
                    eprintln!("peer map: {done}/{total} done, {failed} failed");
                }
            }
        }
    }

    /// Runs `f` with the bar hidden, so that printed lines do not tear it.
    fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match self {
            Progress::Bar(bar) => bar.suspend(f),
            Progress::Lines { .. } => f(),
        }
    }

    fn clear(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Positions of `futures` as they complete, from a thread that waits on them all.
fn completions(futures: &[TaskFuture<Outcome>]) -> anyhow::Result<mpsc::Receiver<usize>> {
    let positions: HashMap<TaskId, usize> = futures
        .iter()
        .enumerate()
        .map(|(p, f)| (f.id(), p))
        .collect();
    let watched = futures.to_vec();
    // Room for every completion: the waiter never blocks on a slow printer.
    let (tx, rx) = mpsc::sync_channel(futures.len().max(1));
    std::thread::Builder::new()
        .name("peer-map-wait".into())
        .spawn(move || {
            for future in peer_core::as_completed(watched) {
                let Some(&position) = positions.get(&future.id()) else {
                    unreachable!("as_completed yielded a future it was not given")
                };
                if tx.send(position).is_err() {
                    return;
                }
            }
        })
        .context("cannot start a thread")?;
    Ok(rx)
}

/// A task's outcome, or one that carries the swarm's error if the task did not run.
fn to_outcome(result: Result<&Outcome, TaskError>) -> Outcome {
    match result {
        Ok(outcome) => outcome.clone(),
        Err(e) => Outcome {
            error: Some(format!("the task did not run: {e}")),
            ..Outcome::default()
        },
    }
}

/// The fields every JSON line of `peer submit` and `peer map` has.
fn outcome_json(o: &Outcome) -> Value {
    json!({
        "exit_code": o.code,
        "signal": o.signal,
        "stdout": String::from_utf8_lossy(&o.stdout),
        "stderr": String::from_utf8_lossy(&o.stderr),
        "stdout_truncated": o.stdout_truncated,
        "stderr_truncated": o.stderr_truncated,
        "host": o.host,
        "pid": o.pid,
        "seconds": o.seconds,
        "error": o.error,
    })
}

/// What to say on stderr besides the command's own output.
fn notes(o: &Outcome) -> Vec<String> {
    let cut = shell::CAPTURE_MAX >> 20;
    let mut notes = Vec::new();
    if o.stdout_truncated {
        notes.push(format!("its stdout was cut at {cut} MiB"));
    }
    if o.stderr_truncated {
        notes.push(format!("its stderr was cut at {cut} MiB"));
    }
    if let Some(error) = &o.error {
        notes.push(error.clone());
    }
    notes
}

fn where_ran(o: &Outcome) -> String {
    if o.host.is_empty() {
        "the swarm".into()
    } else {
        format!("{} (pid {})", o.host, o.pid)
    }
}

fn usage(message: &str) -> anyhow::Error {
    Exit {
        code: USAGE,
        message: message.into(),
    }
    .into()
}

/// The inputs: the arguments, or the lines of `--each-line` (without their line ends).
fn read_inputs(args: &MapArgs) -> anyhow::Result<Vec<String>> {
    let Some(path) = &args.each_line else {
        return Ok(args.inputs.clone());
    };
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the inputs from stdin")?;
    } else {
        File::open(path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|e| usage(&format!("cannot read {}: {e}", path.display())))?;
    }
    Ok(text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect())
}

/// The log file: replaced, or appended to when resuming.
fn open_log(path: &Path, resume: bool) -> anyhow::Result<File> {
    let mut options = OpenOptions::new();
    if resume {
        options.append(true).create(true);
    } else {
        options.write(true).create(true).truncate(true);
    }
    options
        .open(path)
        .map_err(|e| usage(&format!("cannot open the log {}: {e}", path.display())))
}

/// The log line of a finished task (without `printed`, which the caller adds).
fn log_record(index: usize, input: &str, o: &Outcome) -> Value {
    json!({
        "index": index,
        "input": input,
        "exit_code": o.code,
        "signal": o.signal,
        "error": o.error,
        "host": o.host,
        "pid": o.pid,
        "seconds": o.seconds,
        "stdout": bytes_json(&o.stdout),
        "stderr": bytes_json(&o.stderr),
        "stdout_truncated": o.stdout_truncated,
        "stderr_truncated": o.stderr_truncated,
    })
}

/// Output bytes in the log, losslessly: a string if they are UTF-8, else an array of bytes.
fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!(text),
        Err(_) => json!(bytes),
    }
}

/// The bytes [`bytes_json`] wrote.
fn json_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::String(text) => Some(text.as_bytes().to_vec()),
        Value::Array(items) => items
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect(),
        _ => None,
    }
}

/// The outcome a log line records, if it has the outputs (lines of older logs do not).
fn logged_outcome(entry: &Value) -> Option<Outcome> {
    let int = |field: &str| entry[field].as_i64().and_then(|n| i32::try_from(n).ok());
    Some(Outcome {
        code: int("exit_code"),
        signal: int("signal"),
        stdout: json_bytes(&entry["stdout"])?,
        stderr: json_bytes(&entry["stderr"])?,
        stdout_truncated: entry["stdout_truncated"].as_bool().unwrap_or(false),
        stderr_truncated: entry["stderr_truncated"].as_bool().unwrap_or(false),
        seconds: entry["seconds"].as_f64().unwrap_or(0.0),
        host: entry["host"].as_str().unwrap_or_default().to_string(),
        pid: (entry["pid"].as_u64())
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0),
        error: entry["error"].as_str().map(str::to_string),
        ..Outcome::default()
    })
}

/// What the log says of an input whose last record is a success.
#[derive(Clone, Debug)]
struct Logged {
    /// Its outcome, outputs included (`None`: a log of an older `peer`, without them).
    outcome: Option<Outcome>,
    /// Whether its output was printed.
    printed: bool,
}

/// For each input, what the log records of it if its last record is a success, after
/// checking it is a log of these inputs. Lines that do not parse (a line cut by a crash)
/// are skipped with a warning.
fn read_log(path: &Path, inputs: &[String]) -> anyhow::Result<Vec<Option<Logged>>> {
    let mut logged = vec![None; inputs.len()];
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(logged),
        Err(e) => {
            return Err(usage(&format!(
                "cannot read the log {}: {e}",
                path.display()
            )));
        }
    };
    let mut skipped = 0;
    for line in BufReader::new(file).lines() {
        let line = line.with_context(|| format!("cannot read the log {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            skipped += 1;
            continue;
        };
        if let (Some(printed), None) = (entry["printed"].as_array(), entry.get("index")) {
            // Outputs logged before, printed since.
            for index in printed.iter().filter_map(Value::as_u64) {
                let index = usize::try_from(index).unwrap_or(usize::MAX);
                if let Some(Some(entry)) = logged.get_mut(index) {
                    entry.printed = true;
                }
            }
            continue;
        }
        let (Some(index), Some(input)) = (entry["index"].as_u64(), entry["input"].as_str()) else {
            skipped += 1;
            continue;
        };
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        match inputs.get(index) {
            Some(now) if now == input => {}
            now => {
                return Err(usage(&format!(
                    "the log {} records input {input:?} at index {index}, but the input \
                     there is {now:?}: --resume needs the same inputs",
                    path.display()
                )));
            }
        }
        let succeeded = entry["exit_code"].as_i64() == Some(0) && entry["error"].is_null();
        logged[index] = succeeded.then(|| {
            let outcome = logged_outcome(&entry);
            Logged {
                // An older log's line, without outputs: printed when it was written.
                printed: outcome.is_none() || entry["printed"].as_bool().unwrap_or(false),
                outcome,
            }
        });
    }
    if skipped > 0 {
        eprintln!(
            "peer map: skipped {skipped} lines of {} that are not task records",
            path.display()
        );
    }
    Ok(logged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn replacement_strings_are_gnu_parallels() {
        let command = words(&[
            "x{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{", "{x}", "}{}{",
        ]);
        assert_eq!(
            expand(&command, "dir/sub/file.tar.gz", 7),
            words(&[
                "xdir/sub/file.tar.gz",
                "dir/sub/file.tar",
                "file.tar.gz",
                "dir/sub",
                "file.tar",
                "7",
                "{",
                "{x}",
                "}dir/sub/file.tar.gz{",
            ])
        );
        // No replacement string: the input is the last argument.
        assert_eq!(
            expand(&words(&["gzip", "-9"]), "a b.txt", 1),
            words(&["gzip", "-9", "a b.txt"])
        );
        // One is enough for none to be appended.
        assert_eq!(
            expand(&words(&["echo", "{#}"]), "a", 3),
            words(&["echo", "3"])
        );
        // A replaced input is not scanned again.
        assert_eq!(expand(&words(&["{}"]), "{.}", 1), words(&["{.}"]));
    }

    #[test]
    fn paths_split_as_gnu_parallel_splits_them() {
        for (path, no_ext, base, dir) in [
            ("file.txt", "file", "file.txt", "."),
            ("file", "file", "file", "."),
            ("/file.txt", "/file", "file.txt", "/"),
            ("a.b/c", "a.b/c", "c", "a.b"),
            ("a/b.", "a/b.", "b.", "a"),
            ("a//b", "a//b", "b", "a"),
            ("dir/", "dir/", "", "."),
            (".bashrc", "", ".bashrc", "."),
            ("", "", "", "."),
            ("/", "/", "", "/"),
        ] {
            assert_eq!(without_extension(path), no_ext, "{{.}} of {path:?}");
            assert_eq!(basename(path), base, "{{/}} of {path:?}");
            assert_eq!(dirname(path), dir, "{{//}} of {path:?}");
        }
    }

    #[test]
    fn env_is_passed_on_or_set_and_an_unset_name_is_refused() {
        let lookup = |name: &str| match name {
            "HERE" => Ok("value here".to_string()),
            _ => Err(std::env::VarError::NotPresent),
        };
        let pair = |n: &str, v: &str| Ok((n.to_string(), v.to_string()));
        assert_eq!(resolve_env("HERE", lookup), pair("HERE", "value here"));
        assert_eq!(resolve_env("X=a=b", lookup), pair("X", "a=b"));
        assert_eq!(resolve_env("X=", lookup), pair("X", ""));
        let error = resolve_env("GONE", lookup).unwrap_err();
        assert!(error.contains("GONE is not set here"), "{error}");
        assert!(resolve_env("=v", lookup).is_err());
    }

    #[test]
    fn outputs_round_trip_through_the_log() {
        let outcome = Outcome {
            code: Some(0),
            stdout: b"text\n".to_vec(),
            stderr: vec![0xff, 0, b'a'],
            host: "h".into(),
            pid: 7,
            seconds: 0.5,
            ..Outcome::default()
        };
        let record = log_record(3, "in", &outcome);
        assert!(record["stdout"].is_string());
        assert!(record["stderr"].is_array());
        let line = record.to_string();
        let back = logged_outcome(&serde_json::from_str(&line).unwrap()).unwrap();
        assert_eq!(back, outcome);
    }

    #[test]
    fn submit_exits_with_the_commands_code() {
        let exit = |code, signal, error: Option<&str>| {
            submit_exit_code(&Outcome {
                code,
                signal,
                error: error.map(str::to_string),
                ..Outcome::default()
            })
        };
        assert_eq!(exit(Some(7), None, None), 7);
        assert_eq!(exit(Some(255), None, None), 255);
        assert_eq!(exit(None, Some(9), None), 137);
        // Killed by the peer (time limit, cancelled job): it did not end on its own.
        assert_eq!(exit(None, Some(9), Some("killed: job cancelled")), 1);
        assert_eq!(exit(None, None, Some("cannot run")), 1);
        assert_eq!(exit(Some(0), None, Some("odd")), 1);
    }
}
