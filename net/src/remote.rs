//! The swarm behind `peer_core::Client`: named tasks of every client of this peer, and of
//! every task running on its workers, become tasks this peer owns and any peer may run.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use peer_core::TaskError;
use peer_core::TaskId;
use peer_core::ext::{ArgSlot, Call, Done, Place, Remote};
use tokio::sync::oneshot;

use crate::batch::{self, Added, BATCH_BYTES, Batches, Fit, Joining};
use crate::commands::{Command, Commands, Resolver, TrySend};
use crate::local_first::LocalFirst;
use crate::node::{NewTask, SubmitArg};
use crate::wire::{CALL_RESULT, CallArgs, Failure, TaskKey, bounded};

/// How long a peer that stops waits for its backups to take what it hosts: a snapshot's
/// round trip or two, unless a backup hangs.
const HAND_OFF: Duration = Duration::from_secs(2);

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
    /// Calls of kept kinds the pool could not keep up with, gathered to go as batches.
    batches: Batches<Call>,
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
            batches: Batches::default(),
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

    /// Before the loop stops: waits (at most [`HAND_OFF`]) until the backups of the named
    /// primitives this peer hosts hold all of their state, so that the peer that takes over
    /// has it even if the backup itself left unnoticed meanwhile.
    fn hand_off(&self) {
        let (done, handed) = std::sync::mpsc::sync_channel(1);
        // Not sent when the loop's queue is full (it stops without the hand-off, as it
        // did before there was one) or the loop is gone; an error while waiting is the
        // loop ending.
        if self.commands.try_send(Command::Leave(done)).is_ok() {
            let _ = handed.recv_timeout(HAND_OFF);
        }
    }

    /// Whether this is the first call of kind `fingerprint` while peers are connected: its
    /// servers are then looked for ([`SwarmTasks::check_served`]).
    fn first_with_peers(&self, keys: &mut Keys, fingerprint: u64) -> bool {
        self.peers.load(Ordering::Relaxed) > 0 && keys.checked.insert(fingerprint)
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

    /// Hands one call to the node as a task of its own.
    fn submit_one(&self, call: Call) {
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
            self.first_with_peers(&mut keys, fingerprint)
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
            complete(done, outcome);
        });
        let task = NewTask {
            retries,
            ..NewTask::one(key, name.to_string(), fingerprint, args)
        };
        self.send(Command::Submit {
            task,
            futures,
            resolve,
        });
    }

    /// The open batches due at `now`, as the commands that submit them, with when the next
    /// open one will be due (see [`crate::batch`]).
    pub(crate) fn due_batches(&self, now: Instant) -> (Vec<Command>, Option<Instant>) {
        let (due, next) = self.batches.due(now);
        let due = due.into_iter().map(|calls| self.batch_command(calls));
        (due.collect(), next)
    }

    /// One task for `calls`, all of one kind: their arguments in one list, a future read
    /// by several calls in it once; its result split among their futures.
    fn batch_command(&self, calls: Vec<Call>) -> Command {
        let key = TaskKey {
            owner: self.me,
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
        };
        let (name, signature, fingerprint) = match calls.first() {
            Some(call) => (call.name, call.signature, call.fingerprint),
            None => ("", "", 0),
        };
        let mut args = Vec::new();
        let mut futures = Vec::new();
        let mut layout = Vec::with_capacity(calls.len());
        let mut dones = Vec::with_capacity(calls.len());
        // A future read by several calls is one argument; one made by an earlier call of
        // the batch is that call's result.
        let mut shared: HashMap<TaskId, u16> = HashMap::new();
        let first_with_peers = {
            let mut keys = lock(&self.keys);
            for (position, call) in calls.into_iter().enumerate() {
                let mut mine = Vec::with_capacity(call.args.len());
                for slot in call.args {
                    // Within `bounded::ARGS`, which a batch's size keeps to.
                    let next = u16::try_from(args.len()).unwrap_or(u16::MAX);
                    let index = match slot {
                        ArgSlot::Encoded(bytes) => {
                            args.push(SubmitArg::Inline(bytes));
                            next
                        }
                        ArgSlot::Future(future) => match shared.entry(future.task) {
                            Entry::Occupied(seen) => *seen.get(),
                            Entry::Vacant(first) => {
                                args.push(match keys.by_id.get(&future.task) {
                                    Some(dep) => SubmitArg::Owned(*dep),
                                    None => SubmitArg::Local,
                                });
                                futures.push((usize::from(next), future));
                                *first.insert(next)
                            }
                        },
                    };
                    mine.push(index);
                }
                layout.push(CallArgs(mine));
                // Within `bounded::CALLS`, which a batch's size keeps to.
                let result = u16::try_from(position).map_or(u16::MAX, |p| CALL_RESULT + p);
                shared.insert(call.task, result);
                dones.push((call.task, call.done));
            }
            self.first_with_peers(&mut keys, fingerprint)
        };
        if first_with_peers {
            self.check_served(name, fingerprint);
        }
        let layout: Arc<[CallArgs]> = layout.into();
        let reads = Arc::clone(&layout);
        let keys = Arc::clone(&self.keys);
        let resolve: Resolver = Box::new(move |result| {
            let results = result.and_then(|bytes| batch::results(&bytes, dones.len()));
            // Errors are named under the lock; futures complete after it, since their
            // dependents may submit.
            let outcomes: Vec<Result<Vec<u8>, TaskError>> = {
                let keys = lock(&keys);
                let error = |failure, id| task_error(failure, id, name, signature, &keys);
                match results {
                    Ok(results) => {
                        let ids: Vec<TaskId> = dones.iter().map(|(id, _)| *id).collect();
                        // A call that failed because an earlier call of the batch did names
                        // that call as its input, as a call of its own would.
                        let named: Vec<Option<TaskError>> = (0..ids.len())
                            .map(|i| {
                                let p = batch::failed_input(i, key, &results, &reads)?;
                                let cause = results[p].as_ref().err()?.clone();
                                Some(TaskError::InputFailed {
                                    task: ids[i],
                                    input: ids[p],
                                    cause: Arc::new(error(cause, ids[p])),
                                })
                            })
                            .collect();
                        (results.into_iter().zip(named).zip(&ids))
                            .map(|((result, named), id)| match (result, named) {
                                (Err(_), Some(named)) => Err(named),
                                (result, _) => result.map_err(|failure| error(failure, *id)),
                            })
                            .collect()
                    }
                    Err(failure) => (dones.iter())
                        .map(|(id, _)| Err(error(failure.clone(), *id)))
                        .collect(),
                }
            };
            for ((_, done), outcome) in dones.into_iter().zip(outcomes) {
                complete(done, outcome);
            }
        });
        let task = NewTask {
            calls: layout,
            ..NewTask::one(key, name.to_string(), fingerprint, args)
        };
        Command::Submit {
            task,
            futures,
            resolve,
        }
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
        // Calls of short kinds go in batches while this peer is behind (`local_first`).
        let size = match self.local_first.batch_size(call.fingerprint) {
            Some(size) if call.retries == 0 => size,
            _ => return self.submit_one(call),
        };
        let size = size.min(bounded::ARGS / call.args.len().max(1));
        let mut bytes = 0;
        let mut waits_on = Vec::new();
        for slot in &call.args {
            match slot {
                ArgSlot::Encoded(value) => bytes += value.len(),
                ArgSlot::Future(future) if !future.done => waits_on.push(future.task.as_u64()),
                ArgSlot::Future(_) => {}
            }
        }
        if bytes >= BATCH_BYTES {
            return self.submit_one(call);
        }
        let joining = Joining {
            fingerprint: call.fingerprint,
            id: call.task.as_u64(),
            waits_on: &waits_on,
            bytes,
            call,
        };
        let (full, opened) = match self.batches.add(joining, size, Instant::now()) {
            Added::Joined(full) => (full, false),
            Added::Opened(before) => (before, true),
            Added::Refused(call) => return self.submit_one(call),
        };
        if let Some(calls) = full {
            let command = self.batch_command(calls);
            self.send(command);
        }
        if opened && self.commands.send(Command::BatchOpened).is_err() {
            // No loop to hand it on: its calls fail (`Shutdown`) instead of waiting.
            drop(self.batches.take_all());
        }
    }

    fn place(&self, fingerprint: u64, waits_on: &[TaskId]) -> Place {
        // A worker must not wait for a probe that may be queued behind it.
        let on_worker = peer_core::Client::with_current(|_| ()).is_some();
        let mut hand_on = self.peers.load(Ordering::Relaxed) > 0;
        if hand_on && self.batches.any_open() {
            let waits_on: Vec<u64> = waits_on.iter().map(|id| id.as_u64()).collect();
            match self.batches.fit(fingerprint, &waits_on) {
                // While a batch of the kind is open, the calls that fit it join it: one kept
                // between two of them would make the next open a batch of its own.
                Fit::Join => return Place::Remote,
                // One that does not fit stays here, as it would have (`batch::Batches`).
                Fit::Refuse => hand_on = false,
                Fit::Open | Fit::Replace => {}
            }
        }
        self.local_first.place(fingerprint, !on_worker, hand_on)
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
        let on_loop = *lock(&self.loop_thread) == Some(std::thread::current().id());
        if !on_loop {
            self.hand_off();
        }
        // A signal, not a queued command: a full queue cannot hold it up.
        self.commands.stop();
        // Calls still gathering fail (`Shutdown`) rather than wait for a loop that is gone.
        drop(self.batches.take_all());
        if on_loop {
            return;
        }
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

/// Completes a future with its task's encoded result, or its error.
fn complete<B>(done: Done, outcome: Result<B, TaskError>)
where
    B: std::ops::Deref,
    B::Target: AsRef<[u8]>,
{
    match outcome {
        Ok(bytes) => done.complete(Ok((*bytes).as_ref())),
        Err(error) => done.complete(Err(error)),
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
