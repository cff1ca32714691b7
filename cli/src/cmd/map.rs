//! `peer submit` and `peer map`: shell commands as tasks across the swarm, like GNU
//! parallel or HyperQueue's `hq submit`, for people who do not write Rust.
//!
//! Each command is one [`shell::RunTask`], a named task every `peer` binary registers, run
//! by this process or by a peer started with `peer join --allow-shell` (`--remote-only`:
//! only by such a peer; see `shell_peers`): the program runs from its argument vector (no
//! shell unless the user writes `sh -c ...`) in the working directory of the peer that runs
//! it.
//! `peer map` prints results in input order as they become printable, keeps a JSON-lines
//! job log that `--resume` reads to run only what has not succeeded, and stops at the
//! first SIGINT or SIGTERM (killing the commands running in this process; a second signal
//! ends it at once).

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use peer_core::{TaskFuture, TaskId};
use peer_workloads::shell::{self, Outcome, RunTask};
use serde_json::{Value, json};

use super::Exit;
use super::shell_peers::{self, Watch};
use super::swarm_args::SwarmArgs;

/// Exit code of a usage error that clap cannot see (no inputs, a log of other inputs).
const USAGE: u8 = 2;

/// How many failed indices the summary line names.
const NAMED_FAILURES: usize = 10;

/// How often the wait for results looks at the signal flag and the progress display.
const POLL: Duration = Duration::from_millis(100);

// The variants in `mod.rs` set `about` and `long_about` from their doc comments, after and
// over anything set here, so the longer text and the exit codes go after the options.

// Each exit-code table is written once, as a macro, so both help texts can `concat!` it.
macro_rules! submit_exit_codes {
    () => {
        "\
Exit codes:
  0    the command exited with code 0
  1    it exited with another code, was killed by a signal, or could not be started
  2    usage error
  3    the swarm could not be joined (see --join-timeout), or with --remote-only no peer
       of it runs shell commands (none was started with --allow-shell)
  130  interrupted by SIGINT or SIGTERM"
    };
}

macro_rules! map_exit_codes {
    () => {
        "\
Exit codes:
  0    every task exited with code 0
  1    some tasks failed (a summary on stderr names how many and the first indices)
  2    usage error (also: no inputs, --resume without --log, a log of other inputs)
  3    the swarm could not be joined (see --join-timeout), or with --remote-only no peer
       of it runs shell commands (none was started with --allow-shell)
  130  interrupted by SIGINT or SIGTERM"
    };
}

const SUBMIT_EXIT_CODES: &str = submit_exit_codes!();

const SUBMIT_HELP: &str = concat!(
    "\
The command runs from its argument vector, without a shell: write `sh -c '...'` for pipes
or variables. It runs in the working directory of the peer that runs it, with stdin from
/dev/null; stdout and stderr are each kept up to 8 MiB (a note says when they were cut) and
copied to ours when it ends.

It runs in this process or on a peer started with `peer join --allow-shell`; other peers
never run shell commands. With --remote-only only on such a peer, and the command fails
(exit 3) when no peer takes it while the others sit idle.

",
    submit_exit_codes!()
);

const MAP_EXIT_CODES: &str = map_exit_codes!();

const MAP_HELP: &str = concat!(
    "\
Like GNU parallel --keep-order. Every `{}` in every argument of the command is replaced by
the input; the environment variables PEER_TASK_ID (the input's index, from 0) and
PEER_INPUT (the input) are set too. Inputs are the arguments before `--`, or the lines of
--each-line FILE (`-` for stdin). The command runs without a shell (write `sh -c '...'`),
in the working directory of the peer that runs it, with stdin from /dev/null.

Commands run in this process and on the peers started with `peer join --allow-shell`;
other peers never run shell commands (a note says when no other peer ran any). With
--remote-only only on such peers, and the job fails (exit 3) when no peer takes a command
while the others sit idle.

Each task's stdout is printed in input order, its stderr to stderr; with --json, one JSON
object per task and line instead (index, input, exit_code, signal, stdout, stderr,
stdout_truncated, stderr_truncated, host, pid, seconds, error) and nothing else on stdout.
Progress goes to stderr: a bar on a terminal, otherwise a line about every second.

--log FILE writes one JSON line per finished task (index, input, exit_code, signal, error,
host, pid, seconds), replacing the file; with --resume it runs only the inputs the log
does not record as succeeded (exit code 0) and appends to it. The inputs must be the same.

The first SIGINT or SIGTERM stops waiting, kills the commands running in this process,
records what finished in the log and exits 130; a second one exits at once.

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
    /// Write a job log to FILE: one JSON line per finished task.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Run only the inputs the --log does not record as succeeded, appending to it.
    #[arg(long, requires = "log")]
    resume: bool,
    /// Run the commands on peers started with `peer join --allow-shell` only, never in this
    /// process.
    #[arg(long)]
    remote_only: bool,
    #[command(flatten)]
    swarm: SwarmArgs,
    /// The command, after `--`; `{}` in any argument is replaced by the input.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub(crate) fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let client = shell_peers::join(&args.swarm, args.remote_only)?;
    let interrupted = crate::cmd::interrupt_flag()?;
    let future = client.submit_named(RunTask, (args.command.clone(), Vec::new()));
    let mut watch = Watch::new(args.remote_only);
    let outcome = loop {
        if let Some(result) = future.wait_timeout(POLL) {
            break to_outcome(result);
        }
        watch.check(&client)?;
        if interrupted.load(Ordering::SeqCst) {
            shell::stop_all();
            future.cancel();
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
            code: Exit::FAILED,
            message: format!(
                "the command failed on {}: {}",
                where_ran(&outcome),
                outcome.describe()
            ),
        }
        .into())
    }
}

pub(crate) fn run(args: MapArgs) -> anyhow::Result<()> {
    let inputs = read_inputs(&args)?;
    if inputs.is_empty() {
        return Err(usage(
            "no inputs: give them before `--` or with --each-line FILE",
        ));
    }
    // Positions in `inputs` to run now.
    let todo: Vec<usize> = match (&args.log, args.resume) {
        (Some(log), true) => {
            let succeeded = succeeded_in_log(log, &inputs)?;
            let todo: Vec<usize> = (0..inputs.len())
                .filter(|i| !succeeded.contains(i))
                .collect();
            eprintln!(
                "peer map: resuming from {}: {} of {} inputs already succeeded, {} to run",
                log.display(),
                succeeded.len(),
                inputs.len(),
                todo.len()
            );
            todo
        }
        _ => (0..inputs.len()).collect(),
    };
    let mut log = match &args.log {
        Some(path) => Some(open_log(path, args.resume)?),
        None => None,
    };
    if todo.is_empty() {
        return Ok(());
    }
    let client = shell_peers::join(&args.swarm, args.remote_only)?;
    let interrupted = crate::cmd::interrupt_flag()?;
    let mut watch = Watch::new(args.remote_only);

    let futures: Vec<TaskFuture<Outcome>> = client.map_named(
        RunTask,
        todo.iter().map(|&i| {
            let input = &inputs[i];
            let argv: Vec<String> = args
                .command
                .iter()
                .map(|a| a.replace("{}", input))
                .collect();
            let env = vec![
                ("PEER_TASK_ID".to_string(), i.to_string()),
                ("PEER_INPUT".to_string(), input.clone()),
            ];
            (argv, env)
        }),
    );
    let completions = completions(&futures)?;
    let mut run = Run {
        inputs: &inputs,
        todo: &todo,
        futures: futures.into_iter().map(Some).collect(),
        outcomes: vec![None; todo.len()],
        next_print: 0,
        finished: 0,
        elsewhere: 0,
        failed: Vec::new(),
        json: args.json,
        log: log.as_mut(),
        progress: Progress::new(todo.len()),
    };
    while run.finished < todo.len() {
        match completions.recv_timeout(POLL) {
            Ok(position) => run.finish(position)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                anyhow::bail!("the wait for results ended early (a broken invariant)")
            }
        }
        if interrupted.load(Ordering::SeqCst) {
            return Err(run.interrupt()?);
        }
        if let Err(e) = watch.check(&client) {
            run.progress.clear();
            return Err(e);
        }
        run.progress.show(run.finished, run.failed.len());
    }
    run.progress.clear();
    if args.swarm.joins_others() && run.finished > 1 && run.elsewhere == 0 {
        eprintln!("peer map: {}", shell_peers::NONE_ELSEWHERE);
    }
    run.summary()
}

/// Where `peer map` stands: which tasks finished, what is printed, what failed.
struct Run<'a> {
    inputs: &'a [String],
    /// The index in `inputs` of each task, by position.
    todo: &'a [usize],
    /// Each task's future until its outcome is taken.
    futures: Vec<Option<TaskFuture<Outcome>>>,
    /// Outcomes of finished tasks not yet printed.
    outcomes: Vec<Option<Outcome>>,
    /// The position of the next task to print (all before it are printed).
    next_print: usize,
    finished: usize,
    /// Finished tasks that another process ran.
    elsewhere: usize,
    /// Input indices of the failed tasks, in the order they finished.
    failed: Vec<usize>,
    json: bool,
    log: Option<&'a mut File>,
    progress: Progress,
}

impl Run<'_> {
    /// The task at `position` finished: log it, count it, print what is now in order.
    fn finish(&mut self, position: usize) -> anyhow::Result<()> {
        let Some(future) = self.futures[position].take() else {
            return Ok(()); // Already taken (after an interrupt's sweep).
        };
        let Some(result) = future.try_get() else {
            unreachable!("as_completed yielded a task that is not done")
        };
        let outcome = to_outcome(result);
        let index = self.todo[position];
        if let Some(log) = self.log.as_deref_mut() {
            let line = json!({
                "index": index,
                "input": self.inputs[index],
                "exit_code": outcome.code,
                "signal": outcome.signal,
                "error": outcome.error,
                "host": outcome.host,
                "pid": outcome.pid,
                "seconds": outcome.seconds,
            });
            writeln!(log, "{line}").context("cannot write to the --log file")?;
        }
        self.finished += 1;
        if outcome.pid != 0 && outcome.pid != std::process::id() {
            self.elsewhere += 1;
        }
        if !outcome.success() {
            self.failed.push(index);
        }
        self.outcomes[position] = Some(outcome);
        self.print_ready()
    }

    /// Prints the outcomes that are next in input order.
    fn print_ready(&mut self) -> anyhow::Result<()> {
        while let Some(Some(outcome)) = self.outcomes.get_mut(self.next_print).map(Option::take) {
            let index = self.todo[self.next_print];
            let input = &self.inputs[index];
            let json = self.json;
            self.progress.suspend(|| -> anyhow::Result<()> {
                let mut stdout = std::io::stdout().lock();
                if json {
                    let mut line = outcome_json(&outcome);
                    line["index"] = json!(index);
                    line["input"] = json!(input);
                    writeln!(stdout, "{line}")?;
                } else {
                    stdout.write_all(&outcome.stdout)?;
                    stdout.flush()?;
                    let mut stderr = std::io::stderr().lock();
                    stderr.write_all(&outcome.stderr)?;
                    for note in notes(&outcome) {
                        writeln!(stderr, "peer map: task {index} ({input:?}): {note}")?;
                    }
                }
                stdout.flush()?;
                Ok(())
            })?;
            self.next_print += 1;
        }
        Ok(())
    }

    /// Stops at a signal: kills the commands running here, records every task that is
    /// done, prints what is in order, and returns the exit to end with.
    fn interrupt(&mut self) -> anyhow::Result<anyhow::Error> {
        shell::stop_all();
        for position in 0..self.futures.len() {
            match &self.futures[position] {
                Some(f) if f.is_done() => self.finish(position)?,
                Some(f) => {
                    f.cancel();
                }
                None => {}
            }
        }
        self.progress.clear();
        let resume = match &self.log {
            Some(_) => "; run it again with --resume to finish the rest",
            None => "",
        };
        Ok(Exit {
            code: Exit::INTERRUPTED,
            message: format!(
                "interrupted: {} of {} tasks finished, {} failed{resume}",
                self.finished,
                self.todo.len(),
                self.failed.len()
            ),
        }
        .into())
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
                self.todo.len(),
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
fn to_outcome(result: Result<&Outcome, peer_core::TaskError>) -> Outcome {
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

/// Indices the log records as succeeded, after checking it is a log of these inputs.
/// Lines that do not parse (a line cut by a crash) are skipped with a warning.
fn succeeded_in_log(path: &Path, inputs: &[String]) -> anyhow::Result<HashSet<usize>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => {
            return Err(usage(&format!(
                "cannot read the log {}: {e}",
                path.display()
            )));
        }
    };
    let mut succeeded = HashSet::new();
    let mut skipped = 0;
    for line in BufReader::new(file).lines() {
        let line = line.with_context(|| format!("cannot read the log {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: Value = match serde_json::from_str(&line) {
            Ok(entry) => entry,
            Err(_) => {
                skipped += 1;
                continue;
            }
        };
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
        if entry["exit_code"].as_i64() == Some(0) && entry["error"].is_null() {
            succeeded.insert(index);
        }
    }
    if skipped > 0 {
        eprintln!(
            "peer map: skipped {skipped} lines of {} that are not task records",
            path.display()
        );
    }
    Ok(succeeded)
}
