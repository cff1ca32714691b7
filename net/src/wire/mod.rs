//! What peers say to each other: the messages of the request-response protocol and of the
//! task-graph gossip, all encoded with `postcard`.
//!
//! Private to the crate but for [`PeerReport`] and [`Suspected`]; the `internals` feature
//! makes the module public for the fuzz targets and the tests that craft frames.

// Without `internals`, the `pub` items here are the crate's own.
#![cfg_attr(not(feature = "internals"), allow(unreachable_pub))]

pub(crate) mod bounded;
mod prims;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub(crate) use bounded::{ARGS, DELTAS, JOB_TASKS, NOTICES, PRIM_ENTRIES, TASKS};
pub use prims::{Body, Delta, Holder, Item, Kind, Op, OpId, PrimRequest, PrimState, Reply, Taken};

/// A task across the swarm: the peer that owns it (its submitter) and a number the owner
/// gave it. Shown as `owner/seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskKey {
    /// The owner, as the policy numbers peers.
    pub owner: u64,
    /// The owner's sequence number.
    pub seq: u64,
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}/{}", self.owner, self.seq)
    }
}

/// A named task ready to run anywhere: what a steal moves. Its name and arguments are
/// shared: the owner keeps it to run it again, its ready deque and a steal's answer hold it
/// too, and a copy costs two counts, not an allocation per argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The task.
    pub key: TaskKey,
    /// Its registered name.
    pub name: Arc<str>,
    /// Hash of its name and signature; runners must have the same.
    pub fingerprint: u64,
    /// One per parameter.
    #[serde(deserialize_with = "bounded::most_shared::<{ bounded::ARGS }, _, _>")]
    pub args: Arc<[ArgSpec]>,
    /// Empty for one call of the task with `args`. Else a batch of calls of the same task
    /// (see `crate::batch`), each naming its arguments by their index in `args`; its
    /// result is a [`CallResults`].
    #[serde(deserialize_with = "bounded::most_shared::<{ bounded::CALLS }, _, _>")]
    pub calls: Arc<[CallArgs]>,
    /// How many times it was handed from one peer to another (or queued again): the owner
    /// keeps the location with the highest count, since notices of moves can cross.
    pub hops: u32,
}

/// The arguments of one call of a batch, one per parameter: below [`CALL_RESULT`], an index
/// into its task's `args`; from it, the result of the earlier call of the batch at
/// `index - CALL_RESULT` (a call that reads one submitted just before it, as in a chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallArgs(
    #[serde(deserialize_with = "bounded::most::<{ bounded::ARGS }, _, _>")] pub Vec<u16>,
);

/// Where [`CallArgs`] indices stop naming the task's arguments and name earlier calls.
pub const CALL_RESULT: u16 = 1 << 15;

/// What a batch of calls produced, one outcome per call, in order: a batch task's result.
pub type CallResults = Vec<Result<Vec<u8>, Failure>>;

/// One argument of a task on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArgSpec {
    /// The encoded value itself (plain values and small results).
    Inline(Vec<u8>),
    /// The result of `task`, to fetch from `holder`.
    Fetch {
        /// The earlier task.
        task: TaskKey,
        /// The peer that keeps its result.
        holder: u64,
    },
}

/// Why a task produced no value, as the runner reports it to the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// The function panicked.
    Panicked(String),
    /// The runner has no task of this name.
    UnknownTask,
    /// The runner registers the name with another signature (its signature).
    SignatureMismatch(String),
    /// The arguments did not decode.
    BadArguments(String),
    /// The result could not be encoded.
    BadResult(String),
    /// An input was lost (a late argument, a result that could not be run again).
    InputLost(String),
    /// The runner could not fetch input `input` from `holder`: the owner runs the input again
    /// if it still records it there, then the task.
    Unfetched {
        /// The input.
        input: TaskKey,
        /// The peer it was asked of.
        holder: u64,
        /// Why it failed.
        why: String,
    },
    /// The runner does not serve this task (it withholds it, as a peer without
    /// `--allow-shell` withholds shell commands), though it was handed it.
    NotServed(String),
    /// Input `task` failed, so this task never ran; `cause` is the first failure, never
    /// itself an input's: the wire type has no recursion for a hostile peer to nest.
    Input {
        /// The input that failed first.
        task: TaskKey,
        /// Why it failed.
        #[serde(deserialize_with = "first_cause")]
        cause: Box<Failure>,
    },
}

/// Decodes the cause of [`Failure::Input`] as any failure but another `Input`, so that a
/// frame nested 100,000 deep is one error, not 100,000 stack frames. The variants mirror
/// [`Failure`]'s, in order: postcard numbers variants by position.
fn first_cause<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Box<Failure>, D::Error> {
    #[derive(Deserialize)]
    enum Cause {
        Panicked(String),
        UnknownTask,
        SignatureMismatch(String),
        BadArguments(String),
        BadResult(String),
        InputLost(String),
        Unfetched {
            input: TaskKey,
            holder: u64,
            why: String,
        },
        NotServed(String),
    }
    Ok(Box::new(match Cause::deserialize(d)? {
        Cause::Panicked(m) => Failure::Panicked(m),
        Cause::UnknownTask => Failure::UnknownTask,
        Cause::SignatureMismatch(m) => Failure::SignatureMismatch(m),
        Cause::BadArguments(m) => Failure::BadArguments(m),
        Cause::BadResult(m) => Failure::BadResult(m),
        Cause::InputLost(m) => Failure::InputLost(m),
        Cause::Unfetched { input, holder, why } => Failure::Unfetched { input, holder, why },
        Cause::NotServed(m) => Failure::NotServed(m),
    }))
}

/// How a task ended, as the runner tells its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Done {
    /// It produced `size` bytes, kept at the runner; small results come along inline.
    Value {
        /// Encoded size of the result.
        size: u64,
        /// The result itself, when at most the inline limit.
        inline: Option<Vec<u8>>,
    },
    /// It failed.
    Failed(Failure),
}

/// A request from one peer to another; each gets one [`Response`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Give me up to half of your ready tasks, at most `max`, among those I can run
    /// (fingerprints, sorted).
    Steal {
        /// Most tasks wanted.
        max: u32,
        /// Fingerprints of the named tasks the thief registers, sorted.
        #[serde(deserialize_with = "bounded::most::<{ bounded::FINGERPRINTS }, _, _>")]
        can_run: Vec<u64>,
    },
    /// Send me the result of a task you hold.
    Fetch {
        /// The task.
        task: TaskKey,
    },
    /// Notices, batched per peer: tasks of yours that finished here (runner → owner), and
    /// results nobody needs any more, to free (owner → holder).
    Notify {
        /// Finished tasks the receiver owns.
        #[serde(deserialize_with = "bounded::most::<{ bounded::NOTICES }, _, _>")]
        done: Vec<(TaskKey, Done)>,
        /// Results the receiver holds, to free.
        #[serde(deserialize_with = "bounded::most::<{ bounded::NOTICES }, _, _>")]
        release: Vec<TaskKey>,
        /// Tasks the receiver owns that the sender handed on: to this peer, as hop number.
        #[serde(deserialize_with = "bounded::most::<{ bounded::NOTICES }, _, _>")]
        moved: Vec<Moved>,
    },
    /// I am idle and stop asking: push me work when you have some (a lifeline
    /// registration); I can run these fingerprints, sorted.
    Lifeline {
        /// Fingerprints of the named tasks the sender registers, sorted.
        #[serde(deserialize_with = "bounded::most::<{ bounded::FINGERPRINTS }, _, _>")]
        can_run: Vec<u64>,
    },
    /// Tasks for you, unsolicited: you registered a lifeline with me.
    Push {
        /// The tasks.
        #[serde(deserialize_with = "bounded::most::<{ bounded::TASKS }, _, _>")]
        tasks: Vec<TaskSpec>,
    },
    /// Which of these tasks of mine are you not holding (queued, running, or finished
    /// with the notice not yet taken)? The owner's check on work it has not heard of.
    Holding {
        /// Tasks the sender owns and believes the receiver has.
        #[serde(deserialize_with = "bounded::most::<{ bounded::AUDIT }, _, _>")]
        tasks: Vec<TaskKey>,
    },
    /// The value published under `name`, if you know it.
    Published {
        /// The name.
        name: String,
    },
    /// An operation on a named primitive, sent to the peer taken for its home.
    Prim(PrimRequest),
    /// Changes to a primitive you keep a copy of as its home's backup, in order.
    Replicate {
        /// The primitive.
        key: String,
        /// The copy's `seq` the changes apply to (refused if yours differs; a batch that
        /// starts with a snapshot applies to any).
        base: u64,
        /// The changes; the first of a new backup's is a snapshot.
        #[serde(deserialize_with = "bounded::most::<{ bounded::DELTAS }, _, _>")]
        deltas: Vec<Delta>,
    },
    /// I am the home of `key` now: hand me its state if you hold it (or a copy).
    Claim {
        /// The primitive.
        key: String,
    },
    /// Tell me your load, capacity and version (`peer status`).
    Report,
}

/// A task handed on by a peer that does not own it, as its owner hears of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    /// The task.
    pub task: TaskKey,
    /// The peer that has it now.
    pub to: u64,
    /// Its hop count there ([`TaskSpec::hops`]).
    pub hops: u32,
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Stolen tasks (possibly none), and the victim's ready count after giving them.
    Stolen {
        /// The tasks.
        #[serde(deserialize_with = "bounded::most::<{ bounded::TASKS }, _, _>")]
        tasks: Vec<TaskSpec>,
        /// Ready tasks left at the victim.
        ready: u32,
    },
    /// A fetched result.
    Value(Vec<u8>),
    /// The fetched result is not held here.
    Missing,
    /// Notify, Lifeline or Push taken.
    Ack,
    /// The request was refused; says why.
    Refused(String),
    /// Of the tasks asked about in `Holding`, those not held here.
    #[serde(deserialize_with = "bounded::most::<{ bounded::AUDIT }, _, _>")]
    NotHeld(Vec<TaskKey>),
    /// A published value (or the failure of the job that was to publish it); `None` when
    /// this peer does not know the name.
    Published(Option<Result<Vec<u8>, Failure>>),
    /// The answer to a [`Request::Prim`].
    Prim(Reply),
    /// The answer to a [`Request::Claim`]: the state this peer held (handed over now), or
    /// its copy, or nothing.
    Claimed(Option<PrimState>),
    /// The answer to a [`Request::Report`].
    Report(PeerReport),
}

/// A peer's account of itself, for `peer status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Open to the tests and fuzz seeds that build reports by hand (`internals`).
#[cfg_attr(not(feature = "internals"), non_exhaustive)]
pub struct PeerReport {
    /// Its `peer-net` version.
    pub version: String,
    /// Its worker threads: tasks it runs at once.
    pub workers: u32,
    /// Tasks queued there, ready to run or be stolen.
    pub ready: u64,
    /// Tasks running there.
    pub running: u64,
    /// Tasks it owns (submitted) that are not finished and released.
    pub owned: u64,
    /// Tasks it has run.
    pub ran: u64,
    /// Peers it is connected to.
    pub peers: u32,
    /// Named primitives it is the home of.
    pub hosted: u32,
    /// Whether it is draining (leaving).
    pub draining: bool,
    /// Fingerprints of the named tasks it runs for other peers, sorted.
    #[serde(deserialize_with = "bounded::most::<{ bounded::FINGERPRINTS }, _, _>")]
    pub serves: Vec<u64>,
    /// Closures its clients have run there: unlike named tasks, they never leave the
    /// process that submits them.
    pub local: u64,
    /// Its newest suspicions of other peers, newest last: with tasks owned by whoever
    /// submitted them, the peers that notice a failure first are those with business there.
    #[serde(deserialize_with = "bounded::most::<{ bounded::SUSPICIONS }, _, _>")]
    pub suspected: Vec<Suspected>,
}

/// A suspicion, as a peer reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "internals"), non_exhaustive)]
pub struct Suspected {
    /// The suspected peer's number.
    pub peer: u64,
    /// How long before the report, in microseconds.
    pub ago_us: u64,
    /// Why: its connection closed, or it stopped answering pings.
    pub reason: String,
    /// Tasks of the reporter's queued again.
    pub requeued: u64,
}

/// One event of the task-graph gossip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GraphEvent {
    /// The sender's count of ready, stealable tasks.
    Load(u32),
    /// A task was submitted at its owner (the sender).
    Submitted(TaskKey),
    /// A task finished at the sender with a result of `size` bytes.
    Finished {
        /// The task.
        task: TaskKey,
        /// Encoded size of its result.
        size: u64,
    },
    /// A task failed at the sender.
    Failed(TaskKey),
    /// The owner (the sender) released a task's result.
    Released(TaskKey),
    /// The sender owns this detached job (it submitted or adopted it).
    Detached(JobSpec),
    /// A value published on a topic (pub/sub), to every peer's subscribers.
    Topic {
        /// The topic's key.
        key: String,
        /// The encoded value.
        value: Vec<u8>,
    },
    /// A value published under a name, or why the job that was to publish it failed.
    Published {
        /// The name.
        name: String,
        /// The encoded value.
        value: Result<Vec<u8>, Failure>,
    },
}

/// A detached job: a graph of named tasks that outlives its submitter, its output
/// published under `name`. Any peer can adopt it, so it carries everything needed to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The name its result is published under; also the job's identity.
    pub name: String,
    /// The tasks, each depending only on earlier ones.
    #[serde(deserialize_with = "bounded::most::<{ bounded::JOB_TASKS }, _, _>")]
    pub tasks: Vec<JobTask>,
    /// Index of the task whose result is published.
    pub output: u32,
}

/// One named task of a [`JobSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTask {
    /// Its registered name.
    pub name: String,
    /// Hash of its name and signature.
    pub fingerprint: u64,
    /// One per parameter.
    #[serde(deserialize_with = "bounded::most::<{ bounded::ARGS }, _, _>")]
    pub args: Vec<JobArg>,
}

/// One argument of a [`JobTask`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobArg {
    /// An encoded value.
    Value(Vec<u8>),
    /// The result of an earlier task of the job, by index.
    Task(u32),
}

/// What one gossip message carries: a batch of events from one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The sender, as the policy numbers peers.
    pub from: u64,
    /// Its batch number, increasing: a repeated or older batch is dropped.
    pub number: u64,
    /// The events, oldest first.
    #[serde(deserialize_with = "bounded::most::<{ bounded::EVENTS }, _, _>")]
    pub events: Vec<GraphEvent>,
}
