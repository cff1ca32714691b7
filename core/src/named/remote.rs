//! Where a client's named tasks run when they may leave its process: the interface the swarm
//! of `peer-net` plugs into, as named primitives plug in through [`Backend`]. Reached
//! through [`crate::ext`].
//!
//! A [`Client`] built with [`Builder::remote`](crate::Builder::remote) hands every named task
//! (from `submit_named`, `map_named`, retries, and tasks that submit tasks on any of its
//! workers) to its [`Remote`] as a [`Call`], and gets the encoded result back through
//! [`Done`]. Closures still run on the client's own pool: they cannot cross machines.
//!
//! [`Backend`]: crate::ext::Backend
//! [`Client`]: crate::Client

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::given::ArgSlot;
use super::{IntoArgs, NamedTask};
use crate::error::TaskError;
use crate::future::TaskFuture;
use crate::id::TaskId;
use crate::promise::Promise;

/// Runs named tasks somewhere other than (or as well as) the client's own pool.
pub trait Remote: Send + Sync + 'static {
    /// Takes one call; its [`Done`] must be completed (or dropped, which fails the future
    /// with [`TaskError::Shutdown`]).
    fn submit(&self, call: Call);

    /// Where this call of the named task with `fingerprint` runs: handed to the remote
    /// ([`Place::Remote`], the default), or on the client's own pool as a local client would
    /// run it (typed, nothing encoded; the remote never sees it), for a remote that finds
    /// the task cheaper to run than to hand on. `waits_on`: the futures among its arguments
    /// that have no value yet.
    fn place(&self, fingerprint: u64, waits_on: &[TaskId]) -> Place {
        let _ = (fingerprint, waits_on);
        Place::Remote
    }

    /// A call placed with [`Place::HereMeasured`] ran in `took`, with a result of `size`
    /// bytes encoded (zero for an error or a panic).
    fn measured(&self, fingerprint: u64, took: Duration, size: usize) {
        let _ = (fingerprint, took, size);
    }

    /// A worker of this client's pool starts (`true`) or ends (`false`) a wait on a future:
    /// while it waits, it only helps with what is already in the pool, so a remote that
    /// counts running tasks should hand the pool one more.
    fn waiting(&self, waiting: bool) {
        let _ = waiting;
    }

    /// A closure was submitted: it runs on this process's pool only.
    fn ran_here(&self) {}

    /// The last client that keeps the pool running was dropped: stop, before the pool's
    /// threads do.
    fn shutdown(&self) {}
}

/// Where one call of a named task runs ([`Remote::place`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Handed to the remote ([`Remote::submit`]).
    Remote,
    /// On the client's own pool, as a local client's.
    Here,
    /// As `Here`, with its run time and result size told to [`Remote::measured`].
    HereMeasured,
}

/// What measures a call placed [`Place::HereMeasured`]: the remote to tell, if any.
#[derive(Clone, Default)]
pub(crate) struct Probe(pub(crate) Option<Arc<dyn Remote>>);

impl Probe {
    /// Runs `call` of `N`; if this is a probe, tells the remote how long it took and the
    /// encoded size of its result.
    pub(crate) fn call<N: NamedTask>(&self, call: impl FnOnce() -> N::Output) -> N::Output {
        let Ok(value) = self.try_call::<N, std::convert::Infallible>(|| Ok(call()));
        value
    }

    /// As [`Probe::call`], for a call that may fail (its error counts as no result).
    pub(crate) fn try_call<N: NamedTask, E>(
        &self,
        call: impl FnOnce() -> Result<N::Output, E>,
    ) -> Result<N::Output, E> {
        let Some(remote) = &self.0 else {
            return call();
        };
        // Reports on the way out, a panic's too: a probe must always come back.
        let mut report = Report {
            remote: remote.as_ref(),
            fingerprint: N::FINGERPRINT,
            start: std::time::Instant::now(),
            size: 0,
        };
        let outcome = call();
        report.size = outcome.as_ref().map_or(0, |value| {
            postcard::to_allocvec(value).map_or(0, |bytes| bytes.len())
        });
        outcome
    }
}

/// Tells the remote a probe's measure when dropped, whether the call returned or panicked.
struct Report<'a> {
    remote: &'a dyn Remote,
    fingerprint: u64,
    start: std::time::Instant,
    size: usize,
}

impl Drop for Report<'_> {
    fn drop(&mut self) {
        (self.remote).measured(self.fingerprint, self.start.elapsed(), self.size);
    }
}

/// One call of a named task, as the [`Remote`] receives it.
#[non_exhaustive]
pub struct Call {
    /// The task's stable name ([`NamedTask::NAME`]).
    pub name: &'static str,
    /// Its parameter and result types ([`NamedTask::SIGNATURE`]).
    pub signature: &'static str,
    /// The hash of both ([`NamedTask::FINGERPRINT`]).
    pub fingerprint: u64,
    /// The id of the future this call resolves.
    pub task: TaskId,
    /// The arguments: values encoded now, futures encoded when done.
    pub args: Vec<ArgSlot>,
    /// How many times to run it again after a panic.
    pub retries: u32,
    /// Where the result goes.
    pub done: Done,
}

/// What completes the future: decodes the encoded result into its type.
type Complete = Box<dyn FnOnce(Result<&[u8], TaskError>) + Send>;

/// Completes a call's future with the task's encoded result, or its error.
pub struct Done {
    complete: Complete,
}

impl Done {
    /// Decodes `result` into the future's type (a value that does not decode fails it with
    /// [`TaskError::BadResult`]) and completes it.
    pub fn complete(self, result: Result<&[u8], TaskError>) {
        (self.complete)(result);
    }
}

/// Hands `N` with `args` to `remote` and returns the future of its result.
pub(crate) fn submit<N, A, F>(
    remote: &Arc<dyn Remote>,
    args: A,
    retries: u32,
) -> TaskFuture<N::Output>
where
    N: NamedTask,
    A: IntoArgs<N::Args, F>,
{
    let (promise, future) = Promise::<N::Output>::new();
    let task = promise.id();
    let args = match args.into_slots() {
        Ok(args) => args,
        Err(error) => {
            promise.complete(Err(TaskError::BadArguments {
                task,
                name: N::NAME.into(),
                message: error.to_string().into(),
            }));
            return future;
        }
    };
    let done = Done {
        complete: Box::new(move |result| {
            let outcome = result.and_then(|bytes| {
                postcard::from_bytes(bytes).map_err(|e| TaskError::BadResult {
                    task,
                    name: N::NAME.into(),
                    message: e.to_string().into(),
                })
            });
            promise.complete(outcome);
        }),
    };
    remote.submit(Call {
        name: N::NAME,
        signature: N::SIGNATURE,
        fingerprint: N::FINGERPRINT,
        task,
        args,
        retries,
        done,
    });
    future
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("name", &self.name)
            .field("task", &self.task)
            .field("args", &self.args.len())
            .field("retries", &self.retries)
            .finish()
    }
}

impl fmt::Debug for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Done").finish_non_exhaustive()
    }
}
