//! What peers say to each other: the messages of the request-response protocol and of the
//! task-graph gossip, all encoded with `postcard`.

use std::fmt;

use serde::{Deserialize, Serialize};

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

/// A named task ready to run anywhere: what a steal moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The task.
    pub key: TaskKey,
    /// Its registered name.
    pub name: String,
    /// Hash of its name and signature; runners must have the same.
    pub fingerprint: u64,
    /// One per parameter.
    pub args: Vec<ArgSpec>,
}

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
    /// An input could not be fetched from its holder.
    InputLost(String),
    /// Input `task` failed, so this task never ran; `cause` is the first failure.
    Input {
        /// The input that failed first.
        task: TaskKey,
        /// Why it failed.
        cause: Box<Failure>,
    },
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
        done: Vec<(TaskKey, Done)>,
        /// Results the receiver holds, to free.
        release: Vec<TaskKey>,
    },
    /// I am idle and stop asking: push me work when you have some (a lifeline
    /// registration); I can run these fingerprints, sorted.
    Lifeline {
        /// Fingerprints of the named tasks the sender registers, sorted.
        can_run: Vec<u64>,
    },
    /// Tasks for you, unsolicited: you registered a lifeline with me.
    Push {
        /// The tasks.
        tasks: Vec<TaskSpec>,
    },
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Stolen tasks (possibly none), and the victim's ready count after giving them.
    Stolen {
        /// The tasks.
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
}

/// What one gossip message carries: a batch of events from one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The sender, as the policy numbers peers.
    pub from: u64,
    /// Its batch number, increasing: a repeated or older batch is dropped.
    pub number: u64,
    /// The events, oldest first.
    pub events: Vec<GraphEvent>,
}
