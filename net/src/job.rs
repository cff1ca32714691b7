//! Detached jobs: graphs of named tasks that outlive their submitter, their output published
//! under a name (like Dask's `fire_and_forget` with `publish_dataset`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use peer_core::ext::{Arg, ArgSlot};
use peer_core::named::{IntoArg, IntoArgs};
use peer_core::{NamedTask, Promise, TaskFuture, TaskId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::commands::Command;
use crate::error::Error;
use crate::peer::Peer;
use crate::wire::{Failure, JobArg, JobSpec, JobTask};

/// A graph of named tasks to run detached ([`Peer::detach`]): once submitted, it runs to
/// the end even if its submitter exits or dies (a successor among the live peers adopts
/// it), and its output is published under the job's name for any peer to read
/// ([`Peer::published`]).
///
/// ```
/// use peer_net::{Config, Job, Peer};
///
/// #[peer_core::task]
/// fn square(x: u64) -> u64 { x * x }
/// #[peer_core::task]
/// fn add(a: u64, b: u64) -> u64 { a + b }
///
/// let loopback = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
/// let client = Peer::join(Config::new().listen(loopback).mdns(false).workers(1)).unwrap();
/// let mut job = Job::new("sum-of-squares");
/// let three = job.add(SquareTask, (3,)).unwrap();
/// let four = job.add(SquareTask, (4,)).unwrap();
/// job.add(AddTask, (&three, &four)).unwrap(); // the last task is the output
/// client.detach(job).unwrap();
/// let total: u64 = client
///     .wait_published("sum-of-squares", std::time::Duration::from_secs(10))
///     .unwrap();
/// assert_eq!(total, 25);
/// ```
pub struct Job {
    spec: JobSpec,
    /// Task index of each [`JobRef`]'s placeholder future.
    indices: HashMap<TaskId, u32>,
    output: Option<u32>,
}

/// The result of a task of a [`Job`], to pass to later tasks of the same job.
pub struct JobRef<T> {
    placeholder: TaskFuture<T>,
    index: u32,
}

impl<T: Send + Sync + 'static> IntoArg<T> for &JobRef<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Future(self.placeholder.clone())
    }
}

impl Job {
    /// An empty job whose output will be published under `name`.
    pub fn new(name: impl Into<String>) -> Job {
        Job {
            spec: JobSpec {
                name: name.into(),
                tasks: Vec::new(),
                output: 0,
            },
            indices: HashMap::new(),
            output: None,
        }
    }

    /// The name its output is published under.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// How many tasks it has.
    pub fn len(&self) -> usize {
        self.spec.tasks.len()
    }

    /// Whether it has no task yet.
    pub fn is_empty(&self) -> bool {
        self.spec.tasks.is_empty()
    }

    /// Adds a call of a named task; its arguments are values or [`JobRef`]s of earlier
    /// tasks of this job. The last task added is the output unless
    /// [`output`](Job::output) says otherwise.
    pub fn add<N, A, F>(&mut self, _task: N, args: A) -> Result<JobRef<N::Output>, Error>
    where
        N: NamedTask,
        A: IntoArgs<N::Args, F>,
    {
        let slots = args
            .into_slots()
            .map_err(|e| Error::Job(format!("{}: {e}", N::NAME)))?;
        let mut encoded = Vec::with_capacity(slots.len());
        for (index, slot) in slots.into_iter().enumerate() {
            encoded.push(match slot {
                ArgSlot::Encoded(bytes) => JobArg::Value(bytes),
                ArgSlot::Future(future) => match self.indices.get(&future.task) {
                    Some(task) => JobArg::Task(*task),
                    None => {
                        return Err(Error::Job(format!(
                            "{}: argument {index} is a future from outside the job; a job \
                             takes values and results of its own earlier tasks",
                            N::NAME
                        )));
                    }
                },
            });
        }
        let index = u32::try_from(self.spec.tasks.len())
            .map_err(|_| Error::Job("too many tasks in one job".into()))?;
        self.spec.tasks.push(JobTask {
            name: N::NAME.to_string(),
            fingerprint: N::FINGERPRINT,
            args: encoded,
        });
        let (promise, placeholder) = Promise::new();
        self.indices.insert(promise.id(), index);
        Ok(JobRef { placeholder, index })
    }

    /// Publishes this task's result instead of the last one's.
    pub fn output<T>(&mut self, task: &JobRef<T>) {
        self.output = Some(task.index);
    }

    fn into_spec(mut self) -> Result<JobSpec, Error> {
        if self.spec.tasks.is_empty() {
            return Err(Error::Job(format!("job {:?} has no task", self.spec.name)));
        }
        let last = self.spec.tasks.len() as u32 - 1;
        self.spec.output = self.output.unwrap_or(last);
        Ok(self.spec)
    }
}

impl Peer {
    /// Submits a detached job: this peer owns and runs it like its other tasks, every peer
    /// learns of it by gossip, and if this peer dies or leaves before the output is
    /// published, a successor chosen by rendezvous hashing over the live peers runs it.
    pub fn detach(&self, job: Job) -> Result<(), Error> {
        let spec = job.into_spec()?;
        let (tx, rx) = oneshot::channel();
        self.command(Command::Detach(spec, tx))?;
        rx.blocking_recv()
            .map_err(|_| Error::Stopped)?
            .map_err(Error::Job)
    }

    /// Publishes `value` under `name` for every peer to read; the first value published
    /// under a name is the one kept.
    pub fn publish<T: Serialize>(&self, name: &str, value: &T) -> Result<(), Error> {
        let bytes = postcard::to_allocvec(value).map_err(|e| Error::Encode(e.to_string()))?;
        self.command(Command::Publish(name.to_string(), bytes))
    }

    /// The value published under `name` (by [`publish`](Peer::publish) or a detached
    /// job), from this peer or, if it does not know it, from the peers connected now;
    /// `None` when none of them knows it.
    pub fn published<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Lookup(name.to_string(), tx))?;
        match rx.blocking_recv().map_err(|_| Error::Stopped)? {
            None => Ok(None),
            Some(Err(failure)) => Err(Error::JobFailed {
                name: name.to_string(),
                reason: describe(&failure),
            }),
            Some(Ok(bytes)) => postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| Error::Decode {
                    name: name.to_string(),
                    reason: e.to_string(),
                }),
        }
    }

    /// Waits until a value is published under `name`, asking again every 100 ms, for at
    /// most `timeout`.
    pub fn wait_published<T: DeserializeOwned>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<T, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = self.published(name)? {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                return Err(Error::NotPublished {
                    name: name.to_string(),
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A failure as one line for an error message.
fn describe(failure: &Failure) -> String {
    match failure {
        Failure::Panicked(message) => format!("a task panicked: {message}"),
        Failure::Input { task, cause } => format!("input {task} failed: {}", describe(cause)),
        other => format!("{other:?}"),
    }
}
