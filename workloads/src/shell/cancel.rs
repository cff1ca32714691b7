//! Stopping a job's commands in this process: which are running, by job, and which jobs
//! were cancelled lately (refused from now on) or killed (their running commands too).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use super::{CANCELLED_JOBS, killpg};

/// Refuses, from now on, the commands of `job` that this process has not started yet: their
/// outcome is the error [`CANCELLED`](super::CANCELLED). Running ones run on. Job 0 (none) cannot be
/// cancelled. The last [`CANCELLED_JOBS`] cancelled jobs are remembered.
pub fn cancel_job(job: u64) {
    jobs().cancel(job, JobState::Cancelled);
}

/// [`cancel_job`], and kills the process groups of the commands of `job` running in this
/// process: their outcome is the error [`KILLED`](super::KILLED).
pub fn kill_job(job: u64) {
    let mut jobs = jobs();
    jobs.cancel(job, JobState::Killed);
    // Before the signals: a poller that sees its command end must also see that a kill
    // happened, or it takes the end for the command's own (a race seen on a loaded
    // machine). It also wakes the pollers at once, not at their next look.
    KILLS.fetch_add(1, Ordering::SeqCst);
    for &group in jobs.running.get(&job).into_iter().flatten() {
        // The group's leader is registered until it has exited (it is not reaped before it
        // is unregistered), so the id is still the group's.
        killpg(group);
    }
}

/// The process groups of the commands of `job` running in this process now (a command's
/// group id is its pid), for tests and status reports.
pub fn running_groups(job: u64) -> Vec<u32> {
    jobs().running.get(&job).cloned().unwrap_or_default()
}

/// Bumped by each [`kill_job`]: a running command looks up its job's state only when this
/// moved since its last look. `SeqCst`, as `STOPPING`.
pub(super) static KILLS: AtomicU64 = AtomicU64::new(0);

/// Where a job stands in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JobState {
    /// Not cancelled (or long forgotten): its commands run.
    Running,
    /// Its commands not started are refused.
    Cancelled,
    /// Refused, and the running ones killed.
    Killed,
}

/// The commands running in this process by job, and the jobs cancelled lately.
#[derive(Default)]
pub(super) struct Jobs {
    /// The process-group ids of the running commands of each job (job 0 included).
    pub(super) running: HashMap<u64, Vec<u32>>,
    /// The last [`CANCELLED_JOBS`] jobs cancelled, oldest first.
    pub(super) cancelled: VecDeque<(u64, JobState)>,
}

impl Jobs {
    pub(super) fn state(&self, job: u64) -> JobState {
        if job == 0 {
            return JobState::Running;
        }
        self.cancelled
            .iter()
            .rev()
            .find(|(j, _)| *j == job)
            .map_or(JobState::Running, |&(_, state)| state)
    }

    pub(super) fn cancel(&mut self, job: u64, state: JobState) {
        if job == 0 {
            return;
        }
        match self.cancelled.iter_mut().find(|(j, _)| *j == job) {
            // Killed stays killed.
            Some((_, old)) => {
                if *old != JobState::Killed {
                    *old = state;
                }
            }
            None => {
                if self.cancelled.len() == CANCELLED_JOBS {
                    self.cancelled.pop_front();
                }
                self.cancelled.push_back((job, state));
            }
        }
    }

    pub(super) fn register(&mut self, job: u64, group: u32) {
        self.running.entry(job).or_default().push(group);
    }

    pub(super) fn unregister(&mut self, job: u64, group: u32) {
        if let Some(groups) = self.running.get_mut(&job) {
            groups.retain(|&g| g != group);
            if groups.is_empty() {
                self.running.remove(&job);
            }
        }
    }
}

pub(super) fn jobs() -> MutexGuard<'static, Jobs> {
    static JOBS: OnceLock<Mutex<Jobs>> = OnceLock::new();
    JOBS.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}
