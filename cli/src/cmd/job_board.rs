//! The swarm's record of `peer map` and `peer submit` jobs, for `peer jobs` and `peer tasks`,
//! kept on the swarm's own named primitives: the list of recent jobs in one variable
//! (changed under a lock), each job's task table in a variable of its own. The submitter
//! writes them as its tasks finish, at most once a second and once at the end; any peer
//! reads them.
//!
//! Bounded: the list keeps the last [`JOBS_KEPT`] jobs, a table the first [`TASKS_KEPT`]
//! tasks of its job; inputs, commands, hosts and errors are cut to [`TEXT_MAX`] bytes. A
//! job's id for `peer tasks` and `peer cancel` is its number in the list; the id its tasks
//! and its control variable carry ([`JobSummary::key`]) is random, its low byte the job's
//! slot ([`job_control::slot`]): the tables live in the 256 slots'
//! `peer.job.slot.N.tasks`, each holding the key of the job it is for, so that the swarm
//! keeps 256 tables however many jobs run, and a job never reads an older one's.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peer_core::Client;
use peer_workloads::job_control;
use peer_workloads::shell::Outcome;
use serde::{Deserialize, Serialize};

/// Jobs the list keeps, the newest.
pub(crate) const JOBS_KEPT: usize = 100;
/// Tasks a job's table keeps, the first by index.
pub(crate) const TASKS_KEPT: usize = 10_000;
/// Bytes kept of an input, a command line or an error.
const TEXT_MAX: usize = 200;
/// How often a running job's record is written.
const WRITE_EVERY: Duration = Duration::from_secs(1);
/// How long the list's lock is held at most, should its holder die with it.
const LIST_LEASE: Duration = Duration::from_secs(10);
/// How long a running job's progress write waits for the list's lock before it skips a
/// round (a job's first and last writes wait up to twice [`LIST_LEASE`]).
const TICK_WAIT: Duration = Duration::from_millis(500);

const LIST: &str = "peer.jobs";

/// How a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum JobState {
    Running,
    Succeeded,
    Failed,
    Interrupted,
    Cancelled,
}

impl JobState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Interrupted => "interrupted",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// One job in the list.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct JobSummary {
    pub(crate) id: u64,
    /// The id its tasks and control variable carry: random, its low byte its slot.
    pub(crate) key: u64,
    /// `map` or `submit`.
    pub(crate) kind: String,
    pub(crate) command: String,
    /// The submitting peer, its host and process.
    pub(crate) peer: String,
    pub(crate) host: String,
    pub(crate) pid: u32,
    /// Unix seconds.
    pub(crate) started: u64,
    pub(crate) ended: Option<u64>,
    pub(crate) state: JobState,
    pub(crate) tasks: usize,
    pub(crate) done: usize,
    pub(crate) failed: usize,
}

/// The list of recent jobs, and the next job id.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct JobList {
    next: u64,
    jobs: Vec<JobSummary>,
}

/// How a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TaskState {
    /// Queued or running somewhere.
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
}

/// One task of a job's table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TaskRecord {
    pub(crate) index: usize,
    pub(crate) input: String,
    pub(crate) state: TaskState,
    /// Where it ran: the peer, its host and process.
    pub(crate) peer: String,
    pub(crate) host: String,
    pub(crate) pid: u32,
    pub(crate) seconds: f64,
    pub(crate) exit_code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub(crate) error: Option<String>,
}

/// A random id, never 0, far above the list's numbers (which count from 1).
fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() | (1 << 62)
}

/// The key of list number `id`: `random`'s high bytes, the slot of `id` as its low byte.
fn key(random: u64, id: u64) -> u64 {
    (random & !(job_control::SLOTS - 1)) | job_control::slot(id)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `text` cut to [`TEXT_MAX`] bytes at a character boundary.
fn cut(text: &str) -> String {
    if text.len() <= TEXT_MAX {
        return text.to_string();
    }
    let mut end = TEXT_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The task table of the slot of job `key`: the key of the job it is for, and the table.
fn tasks_variable(client: &Client, key: u64) -> peer_core::sync::Variable<(u64, Vec<TaskRecord>)> {
    client.variable(&format!("peer.job.slot.{}.tasks", job_control::slot(key)))
}

/// Changes the job list under its lock, waiting up to `wait` for it; returns what `change`
/// returned. A list that exists but cannot be read is not written over.
fn change_list<R>(
    client: &Client,
    wait: Duration,
    change: impl FnOnce(&mut JobList) -> R,
) -> anyhow::Result<R> {
    let lock = client.lock(LIST);
    let _held = lock
        .blocking_lock_with_lease_timeout(LIST_LEASE, wait)
        .ok_or_else(|| anyhow::anyhow!("the swarm's job list is locked by another command"))?;
    let variable = client.variable::<JobList>(LIST);
    let mut list = match variable.blocking_get() {
        Some(list) => list,
        None if variable.blocking_version() == 0 => JobList::default(),
        None => anyhow::bail!("the swarm's job list cannot be read now"),
    };
    let out = change(&mut list);
    let drop_first = list.jobs.len().saturating_sub(JOBS_KEPT);
    list.jobs.drain(..drop_first);
    variable.blocking_set(list);
    Ok(out)
}

/// The recent jobs, oldest first.
pub(crate) fn jobs(client: &Client) -> Vec<JobSummary> {
    client
        .variable::<JobList>(LIST)
        .blocking_get()
        .unwrap_or_default()
        .jobs
}

/// The task table of `job`, if its slot still holds it.
pub(crate) fn tasks(client: &Client, job: &JobSummary) -> Option<Vec<TaskRecord>> {
    match tasks_variable(client, job.key).blocking_get() {
        Some((key, table)) if key == job.key => Some(table),
        _ => None,
    }
}

/// A job's record, written by its submitter.
pub(crate) struct Board {
    client: Client,
    summary: JobSummary,
    /// This run's tasks, by input index (ascending).
    tasks: Vec<TaskRecord>,
    /// Whether the job is in the list (it is not if the list could not be changed).
    listed: bool,
    dirty: bool,
    written: Instant,
}

impl Board {
    /// Enters a new job in the list and returns its record; `tasks` are its tasks' input
    /// indices (ascending) and inputs, `peer` the submitting peer's id. A list that cannot
    /// be changed (its lock held past its lease) costs the job its place in `peer jobs`,
    /// with a warning, not its run: it then gets a random id, still good for a cancel.
    pub(crate) fn open<'a>(
        client: &Client,
        kind: &str,
        command: &[String],
        tasks: impl ExactSizeIterator<Item = (usize, &'a str)>,
        peer: String,
    ) -> Board {
        let mut summary = JobSummary {
            id: 0,
            key: 0,
            kind: kind.to_string(),
            command: cut(&command.join(" ")),
            peer: peer.clone(),
            host: peer_workloads::shell::hostname().to_string(),
            pid: std::process::id(),
            started: now_unix(),
            ended: None,
            state: JobState::Running,
            tasks: tasks.len(),
            done: 0,
            failed: 0,
        };
        // The slot is the list number's, so that the listed jobs' slots differ.
        let random = random_id();
        let listed = change_list(client, LIST_LEASE * 2, |list| {
            list.next = list.next.max(1);
            let id = list.next;
            list.next += 1;
            summary.id = id;
            summary.key = key(random, id);
            list.jobs.push(summary.clone());
            id
        });
        let listed = match listed {
            Ok(id) => {
                summary.id = id;
                summary.key = key(random, id);
                true
            }
            Err(e) => {
                super::say(format_args!(
                    "warning: {e:#}: this job is not in `peer jobs`"
                ));
                summary.id = random;
                summary.key = random;
                false
            }
        };
        let tasks = (tasks.take(TASKS_KEPT))
            .map(|(index, input)| TaskRecord {
                index,
                input: cut(input),
                state: TaskState::Waiting,
                peer: String::new(),
                host: String::new(),
                pid: 0,
                seconds: 0.0,
                exit_code: None,
                signal: None,
                error: None,
            })
            .collect();
        let mut board = Board {
            client: client.clone(),
            summary,
            tasks,
            listed,
            dirty: true,
            written: Instant::now(),
        };
        board.write_tasks();
        board
    }

    /// The job's number in the list (for `peer tasks` and `peer cancel`).
    pub(crate) fn id(&self) -> u64 {
        self.summary.id
    }

    /// The id the job's tasks and control variable carry.
    pub(crate) fn key(&self) -> u64 {
        self.summary.key
    }

    /// The task of input `index`, if the table keeps it.
    fn task(&mut self, index: usize) -> Option<&mut TaskRecord> {
        let at = self.tasks.binary_search_by_key(&index, |t| t.index).ok()?;
        self.tasks.get_mut(at)
    }

    /// The task of input `index` was cancelled before it started.
    pub(crate) fn cancelled(&mut self, index: usize) {
        if let Some(task) = self.task(index) {
            task.state = TaskState::Cancelled;
        }
        self.dirty = true;
    }

    /// The task of input `index` finished (or was refused, its job cancelled).
    pub(crate) fn record(&mut self, index: usize, outcome: &Outcome) {
        self.summary.done += 1;
        let state = if outcome.success() {
            TaskState::Succeeded
        } else if outcome.error.as_deref() == Some(peer_workloads::shell::CANCELLED) {
            TaskState::Cancelled
        } else {
            self.summary.failed += 1;
            TaskState::Failed
        };
        if let Some(task) = self.task(index) {
            task.state = state;
            task.peer = cut(&outcome.peer);
            task.host = cut(&outcome.host);
            task.pid = outcome.pid;
            task.seconds = outcome.seconds;
            task.exit_code = outcome.code;
            task.signal = outcome.signal;
            task.error = outcome.error.as_deref().map(cut);
        }
        self.dirty = true;
    }

    /// Writes the record if it changed and a second has passed since the last write.
    pub(crate) fn tick(&mut self) {
        if self.dirty && self.written.elapsed() >= WRITE_EVERY {
            self.write(TICK_WAIT);
        }
    }

    /// Marks the job ended as `state` and writes its record.
    pub(crate) fn finish(&mut self, state: JobState) {
        self.summary.state = state;
        self.summary.ended = Some(now_unix());
        self.write(LIST_LEASE * 2);
    }

    fn write(&mut self, wait: Duration) {
        self.write_tasks();
        if !self.listed {
            self.dirty = false;
            self.written = Instant::now();
            return;
        }
        let summary = self.summary.clone();
        let written = change_list(&self.client, wait, |list| {
            if let Some(entry) = list.jobs.iter_mut().find(|j| j.id == summary.id) {
                *entry = summary;
            }
        });
        if let Err(e) = written {
            tracing::debug!("the job list was not updated: {e:#}");
        }
        self.dirty = false;
        self.written = Instant::now();
    }

    fn write_tasks(&mut self) {
        tasks_variable(&self.client, self.summary.key)
            .blocking_set((self.summary.key, self.tasks.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_get_ids_in_order_and_their_tables_follow_their_tasks() {
        let client = Client::builder().workers(1).build().unwrap();
        let inputs = [(0, "a"), (1, "b")];
        let command = vec!["echo".to_string(), "{}".to_string()];
        let mut first = Board::open(&client, "map", &command, inputs.into_iter(), "p".into());
        let second = Board::open(
            &client,
            "submit",
            &command,
            inputs[..1].iter().copied(),
            "p".into(),
        );
        assert_eq!((first.id(), second.id()), (1, 2));
        assert_eq!(job_control::slot(first.key()), 1);
        assert_ne!(first.key(), 1, "the key is not the number");
        let ok = Outcome {
            code: Some(0),
            host: "h".into(),
            pid: 9,
            peer: "q".into(),
            ..Outcome::default()
        };
        first.record(1, &ok);
        let failed = Outcome {
            code: Some(3),
            ..ok.clone()
        };
        first.record(0, &failed);
        first.finish(JobState::Failed);
        let list = jobs(&client);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].state, JobState::Failed);
        assert_eq!((list[0].done, list[0].failed), (2, 1));
        assert_eq!(list[1].state, JobState::Running);
        let table = tasks(&client, &list[0]).unwrap();
        assert_eq!(table[0].state, TaskState::Failed);
        assert_eq!(table[0].exit_code, Some(3));
        assert_eq!(table[1].state, TaskState::Succeeded);
        assert_eq!((table[1].host.as_str(), table[1].peer.as_str()), ("h", "q"));
        // A later job in job 1's slot (257) takes the slot: job 1's table is gone, not
        // shown as the other's.
        let mut ghost = list[0].clone();
        ghost.key ^= 1 << 40;
        assert!(tasks(&client, &ghost).is_none());
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let long = "é".repeat(TEXT_MAX);
        let short = cut(&long);
        assert!(short.len() <= TEXT_MAX + '…'.len_utf8());
        assert!(short.ends_with('…'));
        assert_eq!(cut("short"), "short");
    }
}
