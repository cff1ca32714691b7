//! Stopping a job's shell commands on every peer: its submitter (at Ctrl-C) or `peer cancel`
//! sets the job's control variable, a named primitive of the swarm; each peer running a
//! command of the job watches that variable while it does, and refuses the job's next
//! commands or kills its running ones ([`shell::cancel_job`], [`shell::kill_job`]).
//!
//! A variable rather than a broadcast: it is kept by its home peers, so a peer that starts
//! one of the job's commands later still reads the request, and a request made by a
//! short-lived command (`peer cancel`) is not lost when that command leaves at once.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use peer_core::Client;
use serde::{Deserialize, Serialize};

use crate::shell;

/// How often a peer running a job's commands reads the job's control variable: a command
/// queued there may still start this long after a cancel.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// What a job's submitter, or `peer cancel`, asks of the job's commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// Run (the default: nobody asked otherwise).
    #[default]
    Run,
    /// Start none of its commands from now on; running ones finish.
    Cancel,
    /// Start none and kill the running ones with their process groups.
    Kill,
}

/// The control variable of `job`.
fn variable(client: &Client, job: u64) -> peer_core::sync::Variable<Control> {
    client.variable(&format!("peer.job.{job}.control"))
}

/// Asks every peer to stop `job` as `control` says. A later request only strengthens an
/// earlier one (a `Kill` is never turned back into a `Cancel`).
pub fn request(client: &Client, job: u64, control: Control) {
    let variable = variable(client, job);
    if variable.get().unwrap_or_default() < control {
        variable.set(control);
    }
}

/// What was asked of `job`.
pub fn read(client: &Client, job: u64) -> Control {
    variable(client, job).get().unwrap_or_default()
}

impl PartialOrd for Control {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Control {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let rank = |c: &Control| match c {
            Control::Run => 0,
            Control::Cancel => 1,
            Control::Kill => 2,
        };
        rank(self).cmp(&rank(other))
    }
}

/// The jobs with commands running in this process: how many each, and a client to read
/// their control variables with.
struct Watched {
    jobs: HashMap<u64, (usize, Client)>,
}

fn watched() -> &'static Mutex<Watched> {
    static WATCHED: OnceLock<Mutex<Watched>> = OnceLock::new();
    WATCHED.get_or_init(|| {
        // One thread for the process, started with the first watched job.
        let spawned = std::thread::Builder::new()
            .name("peer-job-control".into())
            .spawn(watch_loop);
        if spawned.is_err() {
            tracing::warn!("cannot start the job-control thread: jobs cannot be cancelled here");
        }
        Mutex::new(Watched {
            jobs: HashMap::new(),
        })
    })
}

/// Watches `job`'s control variable while the guard lives (one command of the job running
/// here); `None` for job 0 (no job) or outside a task (no client to read it with).
pub fn watching(job: u64) -> Option<WatchGuard> {
    if job == 0 {
        return None;
    }
    let client = Client::current()?;
    let mut w = watched().lock().unwrap_or_else(PoisonError::into_inner);
    w.jobs.entry(job).or_insert((0, client)).0 += 1;
    Some(WatchGuard { job })
}

/// Ends one command's watch of its job ([`watching`]).
pub struct WatchGuard {
    job: u64,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut w = watched().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = w.jobs.get_mut(&self.job) {
            entry.0 -= 1;
            if entry.0 == 0 {
                w.jobs.remove(&self.job);
            }
        }
    }
}

fn watch_loop() {
    loop {
        std::thread::sleep(WATCH_EVERY);
        let jobs: Vec<(u64, Client)> = {
            let w = watched().lock().unwrap_or_else(PoisonError::into_inner);
            w.jobs
                .iter()
                .map(|(job, (_, c))| (*job, c.clone()))
                .collect()
        };
        for (job, client) in jobs {
            match read(&client, job) {
                Control::Run => {}
                Control::Cancel => shell::cancel_job(job),
                Control::Kill => shell::kill_job(job),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_only_strengthens() {
        let client = Client::builder().workers(1).build().unwrap();
        assert_eq!(read(&client, 7), Control::Run);
        request(&client, 7, Control::Kill);
        request(&client, 7, Control::Cancel);
        assert_eq!(read(&client, 7), Control::Kill);
        assert_eq!(read(&client, 8), Control::Run, "per job");
    }
}
