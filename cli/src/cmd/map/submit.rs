//! `peer submit`: one shell command as a task on the swarm.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

use peer_workloads::job_control::{self, Control};
use peer_workloads::shell::{Outcome, RunTask, Spec};
use serde_json::json;

use super::super::job_board::{Board, JobState};
use super::super::shell_peers::{self, Watch};
use super::stop::{SIGNALS, cancel_everywhere, count_signals};
use super::{
    CONTROL_EVERY, Exit, POLL, SETTLE, SubmitArgs, announce, notes, outcome_json, to_outcome,
    where_ran,
};

pub(crate) fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let place = args.place.resolve()?;
    let client = shell_peers::join(&args.swarm, args.remote_only)?;
    count_signals()?;
    let input = args.command.join(" ");
    let tasks = std::iter::once((0, input.as_str()));
    // The job record is the swarm's named primitives: know the swarm before writing it.
    if !args.swarm.alone() {
        super::super::swarm_args::settle(&client, SETTLE)?;
    }
    let mut board = Board::open(
        &client,
        "submit",
        &args.command,
        tasks,
        client.peer_id().to_string(),
    );
    // The id the tasks and the control variable carry; `number` is the user's.
    let (job, number) = (board.key(), board.id());
    if !args.swarm.alone() {
        announce("submit", number);
    }
    let mut control_read = Instant::now();
    // Asked by `peer cancel --let-running-finish`.
    let mut let_run = false;
    let spec = Spec {
        argv: args.command.clone(),
        env: place.env,
        workdir: Some(place.workdir),
        job,
    };
    let future = client.submit_named(RunTask, (spec,));
    let mut watch = Watch::new(shell_peers::local_workers(&args.swarm, args.remote_only)? == 0);
    let outcome = loop {
        if let Some(result) = future.wait_timeout(POLL) {
            break to_outcome(result);
        }
        watch.check(&client)?;
        let asked = if control_read.elapsed() >= CONTROL_EVERY {
            control_read = Instant::now();
            job_control::read(&client, job)
        } else {
            Control::Run
        };
        // `peer cancel --let-running-finish`: not started, it never will; started, it ends
        // on its own (a cancelled future resolves at once, and ends as below).
        if asked == Control::Cancel {
            future.cancel();
            let_run = true;
        }
        let cancelled = asked == Control::Kill
            || (let_run && future.is_done() && future.try_get().is_none_or(|r| r.is_err()));
        if SIGNALS.load(Ordering::SeqCst) > 0 || cancelled {
            future.cancel();
            cancel_everywhere(&client, job, true);
            board.finish(if cancelled {
                JobState::Cancelled
            } else {
                JobState::Interrupted
            });
            let why = if cancelled {
                format!("cancelled (`peer cancel {number}`)")
            } else {
                "interrupted".to_string()
            };
            return Err(Exit {
                code: Exit::INTERRUPTED,
                message: why,
            }
            .into());
        }
    };
    board.record(0, &outcome);
    board.finish(if outcome.success() {
        JobState::Succeeded
    } else {
        JobState::Failed
    });
    if args.json {
        let mut line = outcome_json(&outcome);
        line["command"] = json!(args.command);
        println!("{line}");
    } else {
        std::io::stdout().write_all(&outcome.stdout)?;
        std::io::stdout().flush()?;
        std::io::stderr().write_all(&outcome.stderr)?;
        // The error, if any, ends the failure message below: not said twice.
        let error = outcome.error.as_deref();
        for note in notes(&outcome).iter().filter(|n| Some(n.as_str()) != error) {
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
pub(super) fn submit_exit_code(o: &Outcome) -> u8 {
    let own = match (o.code, o.signal, &o.error) {
        (_, _, Some(_)) => None,
        (Some(code), _, None) => u8::try_from(code).ok(),
        (None, Some(signal), None) => u8::try_from(128 + signal).ok(),
        (None, None, None) => None,
    };
    own.filter(|&code| code != 0).unwrap_or(Exit::FAILED)
}

#[cfg(test)]
mod tests {
    use super::*;

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
