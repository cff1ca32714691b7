//! Where each input of `peer map` stands, and printing the outcomes in input order as they
//! become printable, each logged and counted once.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::sync::mpsc;

use anyhow::Context;
use peer_core::{TaskFuture, TaskId};
use peer_workloads::shell::{self, Outcome};
use serde_json::json;

use super::super::job_board::Board;
use super::log::log_record;
use super::progress::Progress;
use super::{Exit, NAMED_FAILURES, notes, outcome_json, to_outcome};

/// Where one input stands in `peer map`.
pub(super) enum Slot {
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
pub(super) struct Run<'a> {
    pub(super) inputs: &'a [String],
    /// One per input.
    pub(super) slots: Vec<Slot>,
    /// The next input to print (all before it are printed, or never ran).
    pub(super) next_print: usize,
    /// How many inputs this run runs.
    pub(super) to_run: usize,
    /// Slots [`Slot::Running`].
    pub(super) waiting: usize,
    /// Tasks of this run finished.
    pub(super) finished: usize,
    /// Inputs an earlier run succeeded at.
    pub(super) earlier: usize,
    /// Finished tasks that another process ran.
    pub(super) elsewhere: usize,
    /// Input indices of the failed tasks, in the order they finished.
    pub(super) failed: Vec<usize>,
    pub(super) json: bool,
    pub(super) log: Option<File>,
    pub(super) progress: Progress,
    /// The job's record in the swarm (`peer jobs`, `peer tasks`), once the job started.
    pub(super) board: Option<Board>,
}

impl Run<'_> {
    /// The task of input `index` finished: print what is now in order, log it, count it.
    pub(super) fn finish(&mut self, index: usize) -> anyhow::Result<()> {
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
        // Refused where it was to run, its job cancelled (here, or by `peer cancel`): it
        // never ran, so it neither failed nor prints; --resume runs it.
        if cancelled {
            self.slots[index] = Slot::Dropped;
            self.waiting -= 1;
            if let Some(board) = &mut self.board {
                board.cancelled(index);
            }
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
        if let Some(board) = &mut self.board {
            board.record(index, &outcome);
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
    pub(super) fn log_printed(&mut self, indices: &[usize]) -> anyhow::Result<()> {
        if let (Some(log), false) = (&mut self.log, indices.is_empty()) {
            writeln!(log, "{}", json!({ "printed": indices }))
                .context("cannot write to the --log file")?;
        }
        Ok(())
    }

    /// Prints the outcomes that are next in input order; returns their indices.
    pub(super) fn print_ready(&mut self) -> anyhow::Result<Vec<usize>> {
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

    pub(super) fn print(&self, index: usize, outcome: &Outcome) -> anyhow::Result<()> {
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
    pub(super) fn stop(&mut self) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if let Slot::Running(future) = slot
                && future.cancel()
            {
                *slot = Slot::Dropped;
                self.waiting -= 1;
                if let Some(board) = &mut self.board {
                    board.cancelled(index);
                }
            }
        }
    }

    /// The exit after an interrupt, saying truthfully what finished and was printed.
    /// `why` is how it stopped: `interrupted`, or cancelled from elsewhere.
    pub(super) fn interrupted(&self, why: &str) -> anyhow::Error {
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
                "{why}: {finished} of {total} tasks finished ({printed} printed), {} \
                 failed{rest}",
                self.failed.len()
            ),
        }
        .into()
    }

    /// Inputs that will not run: cancelled before they started.
    pub(super) fn dropped(&self) -> usize {
        (self.slots.iter())
            .filter(|s| matches!(s, Slot::Dropped))
            .count()
    }

    /// Exit 0 if every task succeeded, else 1 with a line naming the failures.
    pub(super) fn summary(&self) -> anyhow::Result<()> {
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

/// Positions of `futures` as they complete, from a thread that waits on them all.
pub(super) fn completions(
    futures: &[TaskFuture<Outcome>],
) -> anyhow::Result<mpsc::Receiver<usize>> {
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
