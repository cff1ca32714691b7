//! Stopping a job's shell commands on every peer: its submitter (at Ctrl-C) or `peer cancel`
//! sets the job's control variable, a named primitive of the swarm; each peer running a
//! command of the job watches that variable while it does, and refuses the job's next
//! commands or kills its running ones ([`shell::cancel_job`], [`shell::kill_job`]).
//!
//! A variable rather than a broadcast: it is kept by its home peers, so a peer that starts
//! one of the job's commands later still reads the request, and a request made by a
//! short-lived command (`peer cancel`) is not lost when that command leaves at once.
//!
//! Bounded: a job id's low byte is its *slot*, and the control variables are the 256 slots'
//! (`peer.job.slot.N.control`), each holding the id of the job it speaks for; a job whose
//! id is not the one its slot holds reads `Run`. The swarm keeps 256 such variables however
//! many jobs run, and a new job never inherits an old one's cancel.

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

/// Job slots: a job id's low byte.
pub const SLOTS: u64 = 256;

/// How long a request holds its slot's lock at most, should its holder die with it.
const REQUEST_LEASE: Duration = Duration::from_secs(5);

/// The slot of `job`: the low byte of its id.
pub fn slot(job: u64) -> u64 {
    job % SLOTS
}

/// The name of the control variable of `job`'s slot (also its lock's).
fn name(job: u64) -> String {
    format!("peer.job.slot.{}.control", slot(job))
}

/// The control variable of `job`'s slot: the job it speaks for, and what was asked.
fn variable(client: &Client, job: u64) -> peer_core::sync::Variable<(u64, Control)> {
    client.variable(&name(job))
}

/// Asks every peer to stop `job` as `control` says. A later request only strengthens an
/// earlier one (a `Kill` is never turned back into a `Cancel`): the slot's lock keeps two
/// requests from crossing. Without the lock in time, it asks anyway.
pub fn request(client: &Client, job: u64, control: Control) {
    if job == 0 {
        return;
    }
    let lock = client.lock(&name(job));
    let _held = lock.blocking_lock_with_lease_timeout(REQUEST_LEASE, REQUEST_LEASE * 2);
    if read(client, job) < control {
        variable(client, job).blocking_set((job, control));
    }
}

/// What was asked of `job`: `Run` unless its slot speaks for it.
pub fn read(client: &Client, job: u64) -> Control {
    match variable(client, job).blocking_get() {
        Some((held, control)) if held == job => control,
        _ => Control::Run,
    }
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
    let first = {
        let mut w = watched().lock().unwrap_or_else(PoisonError::into_inner);
        let entry = w.jobs.entry(job).or_insert_with(|| (0, client.clone()));
        entry.0 += 1;
        entry.0 == 1
    };
    if first {
        // The first command of a job here: a cancel asked before it came must not wait for
        // the next round of the watch to be heeded. Read on a thread of its own: a worker
        // blocked on a primitive counts as waiting, and its node would hand the pool one
        // more command meanwhile (a peer of N workers running N + 1).
        std::thread::scope(|scope| {
            let read = std::thread::Builder::new()
                .name("peer-job-control-first".into())
                .spawn_scoped(scope, || heed(&client, job));
            if read.is_err() {
                heed(&client, job);
            }
        });
    }
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
            heed(&client, job);
        }
    }
}

/// Does here what was asked of `job`.
fn heed(client: &Client, job: u64) {
    match read(client, job) {
        Control::Run => {}
        Control::Cancel => shell::cancel_job(job),
        Control::Kill => shell::kill_job(job),
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
        // Job 7 + 256 shares 7's slot: it inherits nothing, and asking for it takes the
        // slot over.
        assert_eq!(read(&client, 7 + SLOTS), Control::Run);
        request(&client, 7 + SLOTS, Control::Cancel);
        assert_eq!(read(&client, 7 + SLOTS), Control::Cancel);
        assert_eq!(
            read(&client, 7),
            Control::Run,
            "the slot speaks for the newer job"
        );
    }
}
