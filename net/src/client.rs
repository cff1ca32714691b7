//! A program's handle on the swarm: submit named tasks anywhere, closures here.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, SwarmBuilder, identity};
use peer_core::named::{ArgSlot, IntoArgs, registry};
use peer_core::{NamedTask, Promise, TaskError, TaskFuture, TaskId};
use tokio::sync::{mpsc, oneshot};

use crate::behaviour::{self, Behaviour, peer_number};
use crate::config::Config;
use crate::error::Error;
use crate::event_loop::{Answered, Command, EventLoop, Resolver, Status};
use crate::node::{Node, Settings, SubmitArg};
use crate::sync::{SwarmBackend, Topics};
use crate::wire::{Failure, TaskKey};

/// Which swarm task stands behind which local future, both ways, while it may be used as
/// an argument or named in an error.
#[derive(Default)]
struct Keys {
    by_id: HashMap<TaskId, TaskKey>,
    by_key: HashMap<TaskKey, TaskId>,
}

/// A peer of a swarm, and a client of it: the same `submit` / `map` / `gather` /
/// `as_completed` API as [`peer_core::Client`], for named tasks that any peer may run.
///
/// Named tasks go to the swarm ([`submit_named`](Client::submit_named)); closures still run
/// on this peer's own pool through [`Deref`] to the local [`peer_core::Client`], and futures
/// of both kinds mix in one graph.
///
/// ```
/// use peer_net::{Client, Config};
///
/// #[peer_core::task]
/// fn square(x: u64) -> u64 { x * x }
///
/// let loopback = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
/// let client = Client::join(Config::new().listen(loopback).mdns(false).workers(2)).unwrap();
/// let futures = client.map_named(SquareTask, (0..10u64).map(|x| (x,)));
/// let squares = client.gather(futures).unwrap();
/// assert_eq!(squares[3], 9);
/// ```
pub struct Client {
    local: peer_core::Client,
    commands: mpsc::Sender<Command>,
    me: u64,
    peer_id: PeerId,
    next_seq: AtomicU64,
    keys: Arc<Mutex<Keys>>,
    /// Peers up, as the event loop counts them: read without waking it.
    peers: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    /// Starts a peer: listens, dials the bootstrap peers, and serves tasks until dropped.
    pub fn join(config: Config) -> Result<Client, Error> {
        config.check_open()?;
        let workers = config.worker_count();
        let (commands, commands_rx) = mpsc::channel(1024);
        // Named primitives of this peer's client and tasks live at their home peers.
        let backend = SwarmBackend::new(commands.clone());
        let topics = backend.topics();
        let local = peer_core::Client::builder()
            .workers(workers)
            .backend(Arc::new(backend))
            .build()
            .map_err(|e| Error::Pool(e.to_string()))?;
        let key = match &config.identity {
            Some(identity) => identity.0.clone(),
            None => identity::Keypair::generate_ed25519(),
        };
        let peer_id = key.public().to_peer_id();
        let me = peer_number(&peer_id);
        let bootstrap = config
            .bootstrap
            .iter()
            .map(|addr| match addr.iter().last() {
                Some(Protocol::P2p(peer)) => Ok((peer, addr.clone())),
                _ => Err(Error::Bootstrap {
                    addr: addr.clone(),
                    reason: "it must end in /p2p/<peer id>".into(),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let named = |names: &[String], r: &peer_core::named::Registration| {
            names.iter().any(|name| name == r.name())
        };
        let can_run = registry()
            .iter()
            .filter(|r| !named(&config.withheld, r) && !named(&config.own_only, r))
            .map(|r| r.fingerprint())
            .collect();
        let own_only = registry()
            .iter()
            .filter(|r| named(&config.own_only, r))
            .map(|r| r.fingerprint())
            .collect();
        let settings = Settings {
            slots: workers + 1,
            workers,
            inline_max: config.inline_max,
            steal_max: config.limits.tasks_per_message.clamp(1, crate::wire::TASKS) as u32,
            limits: config.limits,
            seq_seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            ..Settings::default()
        };
        let node = Node::new(me, can_run, settings).running_own(own_only);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let pool = local.clone();
        let peers = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&peers);
        let thread = std::thread::Builder::new()
            .name("peer-net".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = started_tx.send(Err(Error::Transport(e.to_string())));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let started = start(key, &config, node, pool, commands_rx, ready_tx, topics);
                    let mut event_loop = match started {
                        Ok(event_loop) => event_loop.counting_peers(counter),
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return;
                        }
                    };
                    event_loop.bootstrap(&bootstrap);
                    let _ = started_tx.send(Ok(()));
                    event_loop.run().await;
                });
            })
            .map_err(|e| Error::Transport(e.to_string()))?;
        let started = started_rx.recv().unwrap_or(Err(Error::Stopped));
        let client = Client {
            local,
            commands,
            me,
            peer_id,
            next_seq: AtomicU64::new(1),
            keys: Arc::default(),
            peers,
            thread: Some(thread),
        };
        started?;
        ready_rx.blocking_recv().map_err(|_| Error::Stopped)?;
        Ok(client)
    }

    /// This peer's libp2p id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The local pool that runs closures (also reachable through `Deref`).
    pub fn local(&self) -> &peer_core::Client {
        &self.local
    }

    /// Submits a named task to the swarm: whichever peer first has a free worker runs it.
    /// Arguments are values or futures of earlier tasks, as with
    /// [`peer_core::Client::submit_named`].
    pub fn submit_named<N, A, F>(&self, _task: N, args: A) -> TaskFuture<N::Output>
    where
        N: NamedTask,
        A: IntoArgs<N::Args, F>,
    {
        let (promise, future) = Promise::new();
        let id = promise.id();
        let slots = match args.into_slots() {
            Ok(slots) => slots,
            Err(error) => {
                promise.complete(Err(TaskError::BadArguments {
                    task: id,
                    name: N::NAME.into(),
                    message: error.to_string().into(),
                }));
                return future;
            }
        };
        let key = TaskKey {
            owner: self.me,
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
        };
        let mut args = Vec::with_capacity(slots.len());
        let mut futures = Vec::new();
        {
            let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
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
        }
        let resolve = resolver::<N>(promise, Arc::clone(&self.keys));
        self.send(Command::Submit {
            key,
            name: N::NAME.to_string(),
            fingerprint: N::FINGERPRINT,
            args,
            futures,
            resolve,
        });
        future
    }

    /// Submits the named task once per item of `items`, each its arguments (a tuple, or
    /// the one argument alone).
    pub fn map_named<N, A, I, F>(&self, task: N, items: I) -> Vec<TaskFuture<N::Output>>
    where
        N: NamedTask + Copy,
        A: IntoArgs<N::Args, F>,
        I: IntoIterator<Item = A>,
    {
        items
            .into_iter()
            .map(|args| self.submit_named(task, args))
            .collect()
    }

    /// What this peer knows now: counters, connected peers, listen addresses.
    pub fn status(&self) -> Result<Status, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .try_send(Command::Status(tx))
            .map_err(|_| Error::Stopped)?;
        rx.blocking_recv().map_err(|_| Error::Stopped)
    }

    /// The peers that would keep the primitive stored under `key` (see
    /// [`peer_core::sync::keys`]), best first: its home now, then the backup that keeps a
    /// copy. Empty if the event loop has stopped.
    pub fn homes(&self, key: &str) -> Vec<PeerId> {
        let (tx, rx) = oneshot::channel();
        if self.command(Command::Homes(key.to_string(), tx)).is_err() {
            return Vec::new();
        }
        rx.blocking_recv().unwrap_or_default()
    }

    /// This peer's report and every connected peer's (load, capacity, version), or why a
    /// peer did not answer.
    pub fn swarm_status(&self) -> Result<Vec<Answered>, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Reports(tx))?;
        rx.blocking_recv().map_err(|_| Error::Stopped)
    }

    /// Leaves the swarm gracefully: takes no more work, hands the queued tasks of other
    /// peers back to their owners, and waits up to `timeout` for the tasks running here
    /// to finish and for the owners to hear of them. Drop the client afterwards to leave;
    /// what is left here then is recovered by its owners as after a crash.
    pub fn drain(&self, timeout: Duration) -> Result<Drained, Error> {
        self.command(Command::Drain)?;
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status()?;
            if status.drained || Instant::now() >= deadline {
                return Ok(Drained {
                    handed_back: status.stats.handed_back,
                    unfinished: status.stats.running,
                    complete: status.drained,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Addresses other peers can bootstrap from: each listen address with `/p2p/<id>`.
    pub fn addresses(&self) -> Vec<Multiaddr> {
        let listen = self.status().map(|s| s.listen_addrs).unwrap_or_default();
        listen
            .into_iter()
            .map(|a| a.with(Protocol::P2p(self.peer_id)))
            .collect()
    }

    /// Waits until at least `n` other peers are connected, or `timeout` passes; returns
    /// how many are.
    pub fn wait_for_peers(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let peers = self.peers();
            if peers >= n || Instant::now() >= deadline {
                return peers;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many peers are up (connected, speaking the task protocol, not suspected), as
    /// [`Status::peers`](crate::Status) counts them; cheap: it does not ask the event loop.
    pub fn peers(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }

    /// Sends a command, or fails when the loop is gone.
    pub(crate) fn command(&self, command: Command) -> Result<(), Error> {
        self.commands.try_send(command).or_else(|e| match e {
            mpsc::error::TrySendError::Full(command) => {
                self.send(command);
                Ok(())
            }
            mpsc::error::TrySendError::Closed(_) => Err(Error::Stopped),
        })
    }

    /// Sends a command without blocking an async caller; waits (sleeping briefly) while the
    /// loop's queue is full, which is back-pressure on a submitter far ahead of the swarm.
    fn send(&self, mut command: Command) {
        loop {
            match self.commands.try_send(command) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    command = back;
                    std::thread::sleep(Duration::from_micros(50));
                }
                // The loop is gone: dropping the command drops its promise, which fails
                // the future with `Shutdown`.
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

/// What [`Client::drain`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Queued tasks handed back to their owners.
    pub handed_back: u64,
    /// Tasks still running when the time-out came.
    pub unfinished: u64,
    /// Whether everything was handed back or finished in time.
    pub complete: bool,
}

/// Decodes the result into the promise's type, or turns the failure into a [`TaskError`].
fn resolver<N: NamedTask>(promise: Promise<N::Output>, keys: Arc<Mutex<Keys>>) -> Resolver {
    Box::new(move |result| {
        let id = promise.id();
        let mut keys = keys.lock().unwrap_or_else(PoisonError::into_inner);
        let outcome = match result {
            Ok(bytes) => postcard::from_bytes(&bytes).map_err(|e| TaskError::BadResult {
                task: id,
                name: N::NAME.into(),
                message: e.to_string().into(),
            }),
            Err(failure) => Err(task_error::<N>(failure, id, &keys)),
        };
        if let Some(key) = keys.by_id.remove(&id) {
            // A failed task stays known by key, so its dependents' errors can name it.
            if outcome.is_ok() {
                keys.by_key.remove(&key);
            }
        }
        drop(keys);
        promise.complete(outcome);
    })
}

fn task_error<N: NamedTask>(failure: Failure, task: TaskId, keys: &Keys) -> TaskError {
    let name = Arc::<str>::from(N::NAME);
    match failure {
        Failure::Panicked(message) => TaskError::Panicked {
            task,
            message: message.into(),
        },
        Failure::UnknownTask => TaskError::UnknownTask { task, name },
        Failure::SignatureMismatch(found) => TaskError::SignatureMismatch {
            task,
            name,
            expected: N::SIGNATURE.into(),
            found: found.into(),
        },
        Failure::BadArguments(message) => TaskError::BadArguments {
            task,
            name,
            message: message.into(),
        },
        Failure::BadResult(message) => TaskError::BadResult {
            task,
            name,
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
            let cause = task_error::<N>(*cause, input_id, keys);
            TaskError::InputFailed {
                task,
                input: input_id,
                cause: Arc::new(cause),
            }
        }
    }
}

fn start(
    key: identity::Keypair,
    config: &Config,
    node: Node,
    local: peer_core::Client,
    commands: mpsc::Receiver<Command>,
    ready_tx: oneshot::Sender<Vec<Multiaddr>>,
    topics: Arc<Topics>,
) -> Result<EventLoop, Error> {
    let swarm_key = config.swarm_key;
    let mut swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| behaviour::transport(key, swarm_key).map_err(boxed))
        .map_err(|e| Error::Transport(e.to_string()))?
        .with_behaviour(|key| Behaviour::new(key, config).map_err(boxed))
        .map_err(|e| Error::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    let topic = libp2p::gossipsub::IdentTopic::new(behaviour::GRAPH_TOPIC);
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|e| Error::Transport(e.to_string()))?;
    for addr in config.listen_addrs() {
        swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
            addr,
            reason: e.to_string(),
        })?;
    }
    Ok(EventLoop::new(
        swarm, node, local, commands, ready_tx, topics,
    ))
}

fn boxed(error: std::io::Error) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(error)
}

impl Deref for Client {
    type Target = peer_core::Client;

    fn deref(&self) -> &peer_core::Client {
        &self.local
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.commands.try_send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer_id", &self.peer_id)
            .finish()
    }
}
