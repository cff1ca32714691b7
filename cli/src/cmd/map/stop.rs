//! Stopping a job: the signals `peer map` and `peer submit` count, and how a cancel reaches
//! every peer that runs the job's commands (the job's control variable, which those peers
//! watch, see [`peer_workloads::job_control`]), this process included.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use peer_workloads::job_control::{self, Control};
use peer_workloads::shell;

use super::Exit;

/// Stops `job` wherever its commands run: in this process at once, and on every other peer
/// through the job's control variable, which a peer running one of its commands reads
/// within a tenth of a second. Without `kill` its commands not started yet are refused;
/// with it the running ones are killed with their process groups too.
pub(super) fn cancel_everywhere(client: &peer_core::Client, job: u64, kill: bool) {
    if kill {
        shell::kill_job(job);
        shell::stop_all();
    } else {
        shell::cancel_job(job);
    }
    let control = if kill { Control::Kill } else { Control::Cancel };
    job_control::request(client, job, control);
}

/// SIGINT and SIGTERM received since [`count_signals`]. `SeqCst`: a counter read a few
/// times a second.
pub(super) static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// Counts SIGINT and SIGTERM in [`SIGNALS`]; the third ends the process at once with
/// [`Exit::INTERRUPTED`]. Called once per process.
pub(super) fn count_signals() -> anyhow::Result<()> {
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
