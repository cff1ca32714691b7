//! The swarm behind `peer_core::Client`: named tasks of every client of this peer, and of
//! every task running on its workers, become tasks this peer owns and any peer may run.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use peer_core::TaskError;
use peer_core::TaskId;
use peer_core::ext::{ArgSlot, Call, Place, Remote};
use tokio::sync::oneshot;

use crate::commands::{Command, Commands, Resolver, TrySend};
use crate::local_first::LocalFirst;
use crate::node::SubmitArg;
use crate::wire::{Failure, TaskKey};

/// Which swarm task stands behind which local future, both ways, while it may be used as
/// an argument or named in an error.
#[derive(Default)]
struct Keys {
    by_id: HashMap<TaskId, TaskKey>,
    by_key: HashMap<TaskKey, TaskId>,
    /// Fingerprints of the named tasks whose servers were looked for: kept under the same
    /// lock, so that a submission takes one lock.
    checked: HashSet<u64>,
}

/// This peer's [`Remote`]: numbers each call as a task this peer owns and hands it to the
/// event loop.
pub(crate) struct SwarmTasks {
    commands: Commands,
    me: u64,
    next_seq: AtomicU64,
    keys: Arc<Mutex<Keys>>,
    /// Closures submitted through clients of this peer: they run here only.
    local_only: Arc<AtomicU64>,
    /// Which named tasks are cheaper to run here than to hand to the node.
    local_first: Arc<LocalFirst>,
    /// Peers up, as the event loop counts them.
    peers: Arc<AtomicUsize>,
    /// Named tasks that no connected peer registered when first submitted.
    unserved: Arc<Mutex<Vec<String>>>,
    /// The event loop's thread, joined at shutdown.
    thread: Mutex<Option<JoinHandle<()>>>,
    loop_thread: Mutex<Option<ThreadId>>,
}

impl SwarmTasks {
    pub(crate) fn new(
        commands: Commands,
        me: u64,
        peers: Arc<AtomicUsize>,
        local_only: Arc<AtomicU64>,
        local_first: Arc<LocalFirst>,
    ) -> SwarmTasks {
        SwarmTasks {
            commands,
            me,
            next_seq: AtomicU64::new(1),
            keys: Arc::default(),
            local_only,
            local_first,
            peers,
            unserved: Arc::default(),
            thread: Mutex::new(None),
            loop_thread: Mutex::new(None),
        }
    }

    /// The event loop's thread, to join when the last client goes.
    pub(crate) fn set_thread(&self, thread: JoinHandle<()>) {
        *lock(&self.loop_thread) = Some(thread.thread().id());
        *lock(&self.thread) = Some(thread);
    }

    /// Named tasks submitted here that no connected peer registered, when first submitted.
    pub(crate) fn unserved(&self) -> Vec<String> {
        lock(&self.unserved).clone()
    }

    /// The first time a task is submitted while peers are connected, asks them whether any
    /// registers it, and says so once if none does: its calls would all run here, which a
    /// user pointing a program at peers of another binary does not expect. Called once per
    /// fingerprint ([`Keys::checked`]).
    fn check_served(&self, name: &'static str, fingerprint: u64) {
        let (tx, rx) = oneshot::channel();
        if let Err(TrySend::Full(_) | TrySend::Stopped(_)) =
            self.commands.try_send(Command::Reports(tx))
        {
            return;
        }
        let unserved = Arc::clone(&self.unserved);
        let me = self.me;
        let spawned = std::thread::Builder::new()
            .name("peer-net-check".into())
            .spawn(move || {
                let Ok(reports) = rx.blocking_recv() else {
                    return;
                };
                let others: Vec<_> = reports
                    .iter()
                    .filter(|answer| crate::behaviour::peer_number(&answer.peer) != me)
                    .filter_map(|answer| answer.report.as_ref().ok())
                    .collect();
                if others.is_empty() || others.iter().any(|r| r.serves.contains(&fingerprint)) {
                    return;
                }
                tracing::warn!(
                    "no connected peer runs the named task {name}: every call of it runs on \
                     this peer. Start the other peers with this program's own binary (its \
                     `join`), which registers its tasks"
                );
                lock(&unserved).push(name.to_string());
            });
        drop(spawned);
    }

    /// Sends a command, waiting while the loop's queue is full, which is back-pressure on
    /// a submitter far ahead of the swarm. A command for a stopped loop is dropped: a
    /// dropped resolver fails its future with `Shutdown`.
    fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }
}

impl Remote for SwarmTasks {
    fn submit(&self, call: Call) {
        let Call {
            name,
            signature,
            fingerprint,
            task: id,
            args: slots,
            retries,
            done,
            ..
        } = call;
        let key = TaskKey {
            owner: self.me,
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
        };
        let mut args = Vec::with_capacity(slots.len());
        let mut futures = Vec::new();
        let first_with_peers = {
            let mut keys = lock(&self.keys);
            keys.by_id.insert(id, key);
            keys.by_key.insert(key, id);
            for (index, slot) in slots.into_iter().enumerate() {
                match slot {
                    ArgSlot::Encoded(bytes) => args.push(SubmitArg::Inline(bytes)),
                    ArgSlot::Future(future) => {
                        args.push(match keys.by_id.get(&future.task) {
                            Some(dep) => SubmitArg::Owned(*dep),
                            None => SubmitArg::Local,
                        });
                        futures.push((index, future));
                    }
                }
            }
            self.peers.load(Ordering::Relaxed) > 0 && keys.checked.insert(fingerprint)
        };
        if first_with_peers {
            self.check_served(name, fingerprint);
        }
        let keys = Arc::clone(&self.keys);
        let resolve: Resolver = Box::new(move |result| {
            let mut keys = lock(&keys);
            let outcome = result.map_err(|failure| task_error(failure, id, name, signature, &keys));
            if let Some(key) = keys.by_id.remove(&id) {
                // A failed task stays known by key, so its dependents' errors can name it.
                if outcome.is_ok() {
                    keys.by_key.remove(&key);
                }
            }
            drop(keys);
            match outcome {
                Ok(bytes) => done.complete(Ok(&bytes)),
                Err(error) => done.complete(Err(error)),
            }
        });
        self.send(Command::Submit {
            key,
            name: name.to_string(),
            fingerprint,
            args,
            futures,
            retries,
            resolve,
        });
    }

    fn place(&self, fingerprint: u64) -> Place {
        // A worker must not wait for a probe that may be queued behind it.
        let on_worker = peer_core::Client::with_current(|_| ()).is_some();
        self.local_first.place(fingerprint, !on_worker)
    }

    fn measured(&self, fingerprint: u64, took: Duration, size: usize) {
        self.local_first.ran(fingerprint, took, size);
    }

    fn waiting(&self, waiting: bool) {
        self.send(Command::Waiting(waiting));
    }

    fn ran_here(&self) {
        self.local_only.fetch_add(1, Ordering::Relaxed);
    }

    fn shutdown(&self) {
        // A signal, not a queued command: a full queue cannot hold it up.
        self.commands.stop();
        let on_loop = *lock(&self.loop_thread) == Some(std::thread::current().id());
        if on_loop {
            return;
        }
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn task_error(
    failure: Failure,
    task: TaskId,
    name: &'static str,
    signature: &'static str,
    keys: &Keys,
) -> TaskError {
    let name_arc = || Arc::<str>::from(name);
    match failure {
        Failure::Panicked(message) => TaskError::Panicked {
            task,
            message: message.into(),
        },
        Failure::UnknownTask => TaskError::UnknownTask {
            task,
            name: name_arc(),
        },
        Failure::SignatureMismatch(found) => TaskError::SignatureMismatch {
            task,
            name: name_arc(),
            expected: signature.into(),
            found: found.into(),
        },
        Failure::BadArguments(message) => TaskError::BadArguments {
            task,
            name: name_arc(),
            message: message.into(),
        },
        Failure::BadResult(message) => TaskError::BadResult {
            task,
            name: name_arc(),
            message: message.into(),
        },
        Failure::InputLost(message) | Failure::NotServed(message) => TaskError::Lost {
            task,
            message: message.into(),
        },
        Failure::Unfetched { input, holder, why } => TaskError::Lost {
            task,
            message: format!("input {input} could not be fetched from {holder:016x}: {why}").into(),
        },
        Failure::Input { task: input, cause } => {
            let input_id = keys.by_key.get(&input).copied().unwrap_or(task);
            let cause = task_error(*cause, input_id, name, signature, keys);
            TaskError::InputFailed {
                task,
                input: input_id,
                cause: Arc::new(cause),
            }
        }
    }
}
