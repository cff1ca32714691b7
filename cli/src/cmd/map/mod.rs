//! `peer submit` and `peer map`: shell commands as tasks across the swarm, like GNU
//! parallel or HyperQueue's `hq submit`, for people who do not write Rust.
//!
//! Each command is one [`shell::RunTask`], a named task every `peer` binary registers, run
//! by a peer started with `peer join --allow-shell`, or by this process with `--workers N`
//! or `--alone` (see `shell_peers`): the program runs from its argument vector (no
//! shell unless the user writes `sh -c ...`) in the submitter's working directory (or
//! `--workdir`), with the environment variables `--env` names.
//! `peer map` prints results in input order as they become printable and keeps a JSON-lines
//! job log, outputs included, from which `--resume` prints what was not printed and runs
//! what has not succeeded. The first SIGINT or SIGTERM starts no more commands and waits
//! for the running ones; the second kills them and exits; the third exits at once.

mod log;
mod ordered;
mod place;
mod progress;
mod replace;
mod stop;
mod submit;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use anyhow::Context;
use peer_core::{TaskError, TaskFuture};
use peer_workloads::shell::{self, Outcome, RunTask, Spec};
use serde_json::{Value, json};

use super::Exit;
use super::shell_peers::{self, Watch};
use super::swarm_args::SwarmArgs;
use log::{Logged, open_log, read_log};
use ordered::{Run, Slot, completions};
use place::PlaceArgs;
use progress::Progress;
use replace::expand;
use stop::{SIGNALS, cancel_everywhere, count_signals};
pub(crate) use submit::submit;

use super::job_board::{Board, JobState};
use peer_workloads::job_control::{self, Control};

/// Says which job this is, on stderr, for `peer jobs`, `peer tasks` and `peer cancel`.
fn announce(kind: &str, job: u64) {
    eprintln!(
        "peer {kind}: job {job} (`peer tasks {job}` lists its tasks, `peer cancel {job}` stops it)"
    );
}
/// Exit code of a usage error that clap cannot see (no inputs, a log of other inputs).
const USAGE: u8 = 2;

/// How many failed indices the summary line names.
const NAMED_FAILURES: usize = 10;

/// How often the wait for results looks at the signals and the progress display.
const POLL: Duration = Duration::from_millis(100);

/// After the second signal killed the commands, how long `peer map` still collects their
/// outcomes (for the log) before it exits.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// How long a job waits for no new peer to appear before it writes its record (see
/// [`settle`](super::swarm_args::settle)).
const SETTLE: Duration = Duration::from_millis(300);

/// How often a running job reads its control variable, for `peer cancel` from elsewhere.
const CONTROL_EVERY: Duration = Duration::from_millis(500);

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
  3      the swarm could not be joined (none found, or see --join-timeout), or no peer
         runs shell commands (none was started with --allow-shell) and this process
         runs none (no --workers N)
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
  3    the swarm could not be joined (none found, or see --join-timeout), or no peer
       runs shell commands (none was started with --allow-shell) and this process runs
       none (no --workers N)
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

It runs on a peer started with `peer join --allow-shell` (other peers never run shell
commands), or in this process with --workers N (N ≥ 1) or --alone. When this process runs
none and no peer takes it while the others sit idle, it fails (exit 3) and says why.
`peer jobs` lists it, `peer tasks ID` shows where it ran, `peer cancel ID` stops it.

SIGINT or SIGTERM kills the command on the peer that runs it (with its process group) and
exits 130; `peer cancel ID` from elsewhere does the same; a third signal exits at once.

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

Commands run on the peers started with `peer join --allow-shell` (other peers never run
shell commands), and in this process too with --workers N (N ≥ 1, like GNU parallel's -j)
or --alone (on every core). When this process runs none and no peer takes a command while
the others sit idle, the job fails (exit 3) and says why. The swarm is the one of
--bootstrap (PEER_BOOTSTRAP), else the peers of this machine's swarm file (written by
`peer join`). `peer jobs` lists the job, `peer tasks ID` shows each task's state and
where it ran, `peer cancel ID` stops it on every peer.

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
cancelled; a command queued on a peer may still start within a tenth of a second) and waits for the running ones, printing and logging them; the second kills the
running ones with their process groups on every peer, records what finished in the log and
exits 130; a third exits at once. `peer cancel ID` from elsewhere does what the second
does. The message says how many tasks finished and were printed: --resume prints and runs
the rest.

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
    /// Never run it in this process: the default; kept for scripts of before (not with
    /// --workers N).
    #[arg(long, hide = true)]
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
    /// Never run commands in this process: the default; kept for scripts of before (not
    /// with --workers N).
    #[arg(long, hide = true)]
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
        json: args.json,
        log,
        progress: Progress::new(todo.len()),
        board: None,
    };
    // What the log holds and is first in order.
    let printed = run.print_ready()?;
    run.log_printed(&printed)?;
    if todo.is_empty() {
        return run.summary();
    }
    let client = shell_peers::join(&args.swarm, args.remote_only)?;
    count_signals()?;
    let tasks = todo.iter().map(|&i| (i, inputs[i].as_str()));
    // The job record is the swarm's named primitives: know the swarm before writing it.
    if !args.swarm.alone() {
        super::swarm_args::settle(&client, SETTLE)?;
    }
    let board = Board::open(
        &client,
        "map",
        &args.command,
        tasks,
        client.peer_id().to_string(),
    );
    // The id the tasks and the control variable carry; `number` is the user's.
    let (job, number) = (board.key(), board.id());
    if !args.swarm.alone() {
        // Alone, the record is this process's own: no other command can read it.
        run.progress.suspend(|| announce("map", number));
    }
    run.board = Some(board);
    let mut watch = Watch::new(shell_peers::local_workers(&args.swarm, args.remote_only)? == 0);

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
    // `peer cancel JOB` from elsewhere: read every CONTROL_EVERY.
    let mut control = Control::Run;
    let mut control_read = Instant::now();
    while run.waiting > 0 {
        match completions.recv_timeout(POLL) {
            Ok(position) => run.finish(todo[position])?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                anyhow::bail!("the wait for results ended early (a broken invariant)")
            }
        }
        // Only while nothing here stopped the job: once this process cancels it, the
        // variable holds its own request.
        let own_signals = SIGNALS.load(Ordering::SeqCst);
        if stage == 0 && own_signals == 0 && control_read.elapsed() >= CONTROL_EVERY {
            control = job_control::read(&client, job);
            control_read = Instant::now();
        }
        // A cancel from elsewhere counts as the signals that do the same here.
        let signals = match control {
            Control::Run => SIGNALS.load(Ordering::SeqCst),
            Control::Cancel => SIGNALS.load(Ordering::SeqCst).max(1),
            Control::Kill => 2,
        };
        if signals >= 1 && stage == 0 {
            stage = 1;
            run.stop();
            cancel_everywhere(&client, job, false);
            if run.waiting > 0 && signals == 1 {
                // Not a count: a task not cancelled here may yet be refused where it runs.
                let what = match control {
                    Control::Run => "interrupted",
                    _ => "cancelled by `peer cancel`",
                };
                run.progress.suspend(|| {
                    eprintln!(
                        "peer map: {what}: no more commands start; waiting for the running \
                         ones (interrupt to kill them)"
                    );
                });
            }
        }
        if signals >= 2 && stage == 1 {
            stage = 2;
            if control != Control::Kill {
                cancel_everywhere(&client, job, true);
            }
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
        if let Some(board) = &mut run.board {
            board.tick();
        }
    }
    run.progress.clear();
    if stage == 0 && control == Control::Run && SIGNALS.load(Ordering::SeqCst) == 0 {
        // A `peer cancel` the peers heeded before this loop read it; or, should that read
        // fail, tasks refused as cancelled all the same: never an exit 0 with tasks that
        // did not run.
        control = job_control::read(&client, job);
        if control == Control::Run && run.dropped() > 0 {
            control = Control::Cancel;
        }
        if control != Control::Run {
            stage = 1;
        }
    }
    if stage > 0 {
        let (state, why) = match control {
            Control::Run => (JobState::Interrupted, "interrupted".to_string()),
            _ => (
                JobState::Cancelled,
                format!("cancelled (`peer cancel {number}`)"),
            ),
        };
        if let Some(board) = &mut run.board {
            board.finish(state);
        }
        return Err(run.interrupted(&why));
    }
    if let Some(board) = &mut run.board {
        let state = if run.failed.is_empty() {
            JobState::Succeeded
        } else {
            JobState::Failed
        };
        board.finish(state);
    }
    if args.swarm.joins_others() && run.finished > 1 && run.elsewhere == 0 {
        eprintln!("peer map: {}", shell_peers::NONE_ELSEWHERE);
    }
    run.summary()
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
