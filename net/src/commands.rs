//! The messages between a peer's handles and its event loop, and the one way to send
//! them: a leaf module, so that the client, jobs, primitives and pings depend on it and not
//! on the loop.
//!
//! Commands go through a bounded queue (back-pressure on a submitter far ahead of the
//! swarm). Stopping does not: it is a flag and a wake-up that a full queue cannot lose, and
//! the loop's own client holds only a [`WeakCommands`], so the queue closes when the last
//! handle outside the loop goes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use libp2p::PeerId;
use peer_core::ext::FutureArg;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::node::{Bytes, NewTask};
use crate::status::{PeerAnswer, Status};
use crate::sync::CallSlot;
use crate::wire::{Failure, JobSpec, Kind, Op, TaskKey};

/// Commands waiting for the loop, at most: a submitter this far ahead waits.
const QUEUE: usize = 1024;

/// A published value as peers hold it: the encoding, or the failure of its job; `None`
/// when unknown.
pub(crate) type Lookup = Option<Result<Vec<u8>, Failure>>;

/// Completes the submitter's future from an encoded result.
pub(crate) type Resolver = Box<dyn FnOnce(Result<Bytes, Failure>) + Send>;

/// What a [`Peer`](crate::Peer) asks of its event loop.
pub(crate) enum Command {
    /// Take in a task this peer owns.
    Submit {
        task: NewTask,
        /// Futures of the arguments, by index: encoded when the node asks (`Local`
        /// arguments at once, `Owned` ones only if the node no longer tracks them).
        futures: Vec<(usize, FutureArg)>,
        resolve: Resolver,
    },
    /// A worker of this peer's pool starts (`true`) or ends (`false`) a wait on a future.
    Waiting(bool),
    /// A batch of calls opened: hand it on within [`crate::batch::FLUSH_AFTER`].
    BatchOpened,
    /// Take in a detached job this peer submits.
    Detach(JobSpec, oneshot::Sender<Result<(), String>>),
    /// Publish a value under a name.
    Publish(String, Vec<u8>),
    /// Find the value published under a name, here or at the peers that are up.
    Lookup(String, oneshot::Sender<Lookup>),
    /// Report what this peer knows.
    Status(oneshot::Sender<Status>),
    /// An operation on a named primitive, numbered by the caller; answered in `slot`.
    Prim {
        seq: u64,
        key: String,
        kind: Kind,
        op: Op,
        slot: Arc<CallSlot>,
    },
    /// The caller withdrew operation `seq`.
    PrimCancel(u64),
    /// Publish a value on a topic to the other peers.
    TopicPublish { key: String, value: Vec<u8> },
    /// The peers in the order they would be home of a key, the home first.
    Homes(String, oneshot::Sender<Vec<PeerId>>),
    /// Start leaving the swarm: take no more work, hand queued tasks back.
    Drain,
    /// About to stop: hand what this peer hosts to its backups, and say when they have it.
    Leave(std::sync::mpsc::SyncSender<()>),
    /// Every connected peer's report, and this peer's.
    Reports(oneshot::Sender<Vec<PeerAnswer>>),
    /// The libp2p ids of the peers known by these numbers (those this peer still knows).
    PeerIds(Vec<u64>, oneshot::Sender<HashMap<u64, PeerId>>),
    /// Holds the loop's thread this long (tests of a full queue).
    #[cfg(test)]
    Stall(std::time::Duration),
}

/// Messages from worker threads and spawned futures back to the loop.
pub(crate) enum Internal {
    /// A named task ran on this peer's pool.
    Ran {
        task: TaskKey,
        result: Result<Vec<u8>, Failure>,
        took: Duration,
        /// The calls it ran: more than one for a batch.
        calls: usize,
    },
    /// A watched peer answered a ping.
    Alive(u64),
    Arg {
        task: TaskKey,
        index: usize,
        /// The id of the future it came from.
        source: u64,
        result: Result<Vec<u8>, Failure>,
    },
}

/// The event loop has stopped: nothing sent to it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped;

/// The stop signal: set once, seen by the loop whether or not its queue has room.
#[derive(Debug, Default)]
pub(crate) struct Stop {
    stopped: AtomicBool,
    wake: Notify,
}

impl Stop {
    /// Asks the loop to stop; idempotent.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        // A permit is stored if the loop is not waiting now: the signal cannot be lost.
        self.wake.notify_one();
    }

    /// Whether [`stop`](Stop::stop) was called.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Completes once the loop is asked to stop.
    pub(crate) async fn stopped(&self) {
        while !self.is_stopped() {
            self.wake.notified().await;
        }
    }
}

/// A handle that sends commands to the loop and keeps its queue open.
#[derive(Debug, Clone)]
pub(crate) struct Commands {
    tx: mpsc::Sender<Command>,
    stop: Arc<Stop>,
}

/// The loop's end of the queue, and its stop signal.
pub(crate) struct Inbox {
    pub(crate) rx: mpsc::Receiver<Command>,
    pub(crate) stop: Arc<Stop>,
}

/// A new queue to an event loop.
pub(crate) fn queue() -> (Commands, Inbox) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let stop = Arc::new(Stop::default());
    let inbox = Inbox {
        rx,
        stop: Arc::clone(&stop),
    };
    (Commands { tx, stop }, inbox)
}

impl Commands {
    /// Sends a command, waiting while the queue is full. Outside an async runtime the
    /// thread blocks until there is room; on a runtime's thread (where blocking on a tokio
    /// channel would panic) it yields and tries again. Fails once the loop has stopped.
    pub(crate) fn send(&self, command: Command) -> Result<(), Stopped> {
        if self.stop.is_stopped() {
            return Err(Stopped);
        }
        let command = match self.tx.try_send(command) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(Stopped),
            Err(mpsc::error::TrySendError::Full(back)) => back,
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return self.tx.blocking_send(command).map_err(|_| Stopped);
        }
        let mut command = command;
        loop {
            std::thread::sleep(Duration::from_micros(50));
            if self.stop.is_stopped() {
                return Err(Stopped);
            }
            match self.tx.try_send(command) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(Stopped),
                Err(mpsc::error::TrySendError::Full(back)) => command = back,
            }
        }
    }

    /// Sends a command if the queue has room now; never waits. For calls from `poll`.
    pub(crate) fn try_send(&self, command: Command) -> Result<(), TrySend> {
        if self.stop.is_stopped() {
            return Err(TrySend::Stopped(Box::new(command)));
        }
        self.tx.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(back) => TrySend::Full(Box::new(back)),
            mpsc::error::TrySendError::Closed(back) => TrySend::Stopped(Box::new(back)),
        })
    }

    /// Asks the loop to stop; it does so even if its queue is full.
    pub(crate) fn stop(&self) {
        self.stop.stop();
    }

    /// A handle that does not keep the queue open, for the loop's own client.
    pub(crate) fn downgrade(&self) -> WeakCommands {
        WeakCommands {
            tx: self.tx.downgrade(),
            stop: Arc::clone(&self.stop),
        }
    }
}

/// Why [`Commands::try_send`] did not send: the command comes back (boxed: the rare case
/// pays for its size, not every `Result`).
pub(crate) enum TrySend {
    /// The queue is full.
    Full(Box<Command>),
    /// The loop has stopped.
    Stopped(Box<Command>),
}

/// A [`Commands`] that does not keep the loop's queue open.
#[derive(Debug, Clone)]
pub(crate) struct WeakCommands {
    tx: mpsc::WeakSender<Command>,
    stop: Arc<Stop>,
}

impl WeakCommands {
    /// The strong handle, while some other handle keeps the queue open.
    pub(crate) fn upgrade(&self) -> Option<Commands> {
        Some(Commands {
            tx: self.tx.upgrade()?,
            stop: Arc::clone(&self.stop),
        })
    }

    /// Sends a command as [`Commands::send`] does.
    pub(crate) fn send(&self, command: Command) -> Result<(), Stopped> {
        self.upgrade().ok_or(Stopped)?.send(command)
    }
}
