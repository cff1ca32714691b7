//! A program's peer of the swarm: the [`peer_core::Client`] it submits through, and what only a
//! swarm has (addresses, status, drain, detached jobs, published values).

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, SwarmBuilder, identity};
use peer_core::named::registry;
use tokio::sync::oneshot;

use crate::behaviour::{self, Behaviour, peer_number};
use crate::commands::{self, Command, Commands, Inbox};
use crate::config::Config;
use crate::error::Error;
use crate::event_loop::EventLoop;
use crate::links::LinkSettings;
use crate::local_first::LocalFirst;
use crate::node::{Node, Settings};
use crate::remote::SwarmTasks;
use crate::status::{PeerAnswer, Status, Suspicion};
use crate::sync::{SwarmBackend, Topics};

/// A peer of a swarm, started by [`Peer::join`]: it serves the swarm's tasks on its workers
/// until the last client of it is dropped.
///
/// Its [`client`](Peer::client) is a plain [`peer_core::Client`], so a program written for
/// the local client runs on the swarm unchanged: named tasks (`submit_named`, `map_named`,
/// and those that tasks submit on any peer) go to the swarm, where any peer may run them;
/// closures run on this peer's own pool, and are counted in [`Status::local_only`].
/// `Peer` dereferences to that client.
///
/// ```
/// use peer_net::{Config, Peer};
///
/// #[peer_core::task]
/// fn square(x: u64) -> u64 { x * x }
///
/// let loopback = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
/// let peer = Peer::join(Config::new().listen(loopback).mdns(false).workers(2)).unwrap();
/// let client: peer_core::Client = peer.client().clone();
/// let squares = client.gather(client.map_named(SquareTask, 0..10u64)).unwrap();
/// assert_eq!(squares[3], 9);
/// ```
pub struct Peer {
    client: peer_core::Client,
    tasks: Arc<SwarmTasks>,
    commands: Commands,
    peer_id: PeerId,
    /// Peers up, as the event loop counts them: read without waking it.
    peers: Arc<AtomicUsize>,
}

impl Peer {
    /// Starts a peer: listens, dials the bootstrap peers, and serves tasks until dropped.
    pub fn join(config: Config) -> Result<Peer, Error> {
        config.check_open()?;
        let workers = config.worker_count();
        let (commands, inbox) = commands::queue();
        // Named primitives of this peer's client and tasks live at their home peers. The
        // loop's own client shares this backend: it must not keep the loop's queue open.
        let backend = SwarmBackend::new(commands.downgrade());
        let topics = backend.topics();
        let key = match &config.identity {
            Some(identity) => identity.0.clone(),
            None => identity::Keypair::generate_ed25519(),
        };
        let peer_id = key.public().to_peer_id();
        let me = peer_number(&peer_id);
        let named = |names: &[String], r: &peer_core::named::Registration| {
            names.iter().any(|name| name == r.name())
        };
        let can_run: Vec<u64> = registry()
            .iter()
            .filter(|r| !named(&config.withheld, r) && !named(&config.own_only, r))
            .map(|r| r.fingerprint())
            .collect();
        let own_only: Vec<u64> = registry()
            .iter()
            .filter(|r| named(&config.own_only, r))
            .map(|r| r.fingerprint())
            .collect();
        // Kinds this peer runs for itself: those it withholds always go to the swarm.
        let runs_here = can_run.iter().chain(&own_only).copied().collect();
        let kept_here = Arc::new(AtomicU64::new(0));
        let local_first = Arc::new(LocalFirst::new(
            config.keep_below,
            config.inline_max,
            runs_here,
            workers,
            Arc::clone(&kept_here),
        ));
        // Named tasks of this peer's clients, and of the tasks on its workers, go to the swarm.
        let peers = Arc::new(AtomicUsize::new(0));
        let local_only = Arc::new(AtomicU64::new(0));
        let tasks = Arc::new(SwarmTasks::new(
            commands.clone(),
            me,
            Arc::clone(&peers),
            Arc::clone(&local_only),
            Arc::clone(&local_first),
        ));
        let client = peer_core::Client::builder()
            .workers(workers)
            .backend(Arc::new(backend))
            .remote(tasks.clone())
            .build()
            .map_err(|e| Error::Pool(e.to_string()))?;
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
        let settings = Settings {
            slots: workers + 1,
            workers,
            inline_max: config.inline_max,
            steal_max: config.limits.tasks_per_message.clamp(1, crate::wire::TASKS) as u32,
            limits: config.limits,
            local_only,
            kept_here,
            home: config.home,
            seq_seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            ..Settings::default()
        };
        let node = Node::new(me, can_run, settings).running_own(own_only);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let pool = client.pool_view();
        let counter = Arc::clone(&peers);
        let batches = Arc::downgrade(&tasks);
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
                    let started = start(key, &config, node, pool, inbox, ready_tx, topics);
                    let mut event_loop = match started {
                        Ok(event_loop) => (event_loop.counting_peers(counter))
                            .measuring(local_first)
                            .batching(batches),
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
        tasks.set_thread(thread);
        let started = started_rx.recv().unwrap_or(Err(Error::Stopped));
        // From here, dropping the peer (its last client) stops the loop and joins it.
        let peer = Peer {
            client,
            tasks,
            commands,
            peer_id,
            peers,
        };
        started?;
        ready_rx.blocking_recv().map_err(|_| Error::Stopped)?;
        Ok(peer)
    }

    /// The client of this peer: a [`peer_core::Client`] whose named tasks run anywhere in the
    /// swarm. Clones of it keep the peer running after the `Peer` is dropped.
    pub fn client(&self) -> &peer_core::Client {
        &self.client
    }

    /// The client, keeping the peer running for as long as any clone of it lives: the one
    /// line that moves a program from `Client::new()` to a swarm,
    /// `let client = Peer::join(config)?.into_client();`.
    pub fn into_client(self) -> peer_core::Client {
        self.client
    }

    /// This peer's libp2p id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// What this peer knows now: counters, connected peers, listen addresses.
    pub fn status(&self) -> Result<Status, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Status(tx))?;
        let mut status = rx.blocking_recv().map_err(|_| Error::Stopped)?;
        status.unserved = self.tasks.unserved();
        Ok(status)
    }

    /// The peers that would keep the primitive stored under `key` (see
    /// [`peer_core::ext::keys`]), best first: its home now, then the backup that keeps a
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
    pub fn swarm_status(&self) -> Result<Vec<PeerAnswer>, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Reports(tx))?;
        rx.blocking_recv().map_err(|_| Error::Stopped)
    }

    /// Every suspicion this peer and the peers up report (each peer's newest 16), by this
    /// peer's wall clock, earliest first: who suspected whom, when and why. A task is
    /// owned by the peer that submitted it, so the first to notice a failure are the owners
    /// of the tasks it held, not necessarily this peer. Suspects this peer never knew are
    /// left out.
    pub fn suspicions(&self) -> Result<Vec<Suspicion>, Error> {
        let wall = std::time::SystemTime::now();
        let reports = self.swarm_status()?;
        let numbers: Vec<u64> = (reports.iter())
            .filter_map(|answer| answer.report.as_ref().ok())
            .flat_map(|r| r.suspected.iter().map(|s| s.peer))
            .collect();
        let (tx, rx) = oneshot::channel();
        self.command(Command::PeerIds(numbers, tx))?;
        let ids = rx.blocking_recv().map_err(|_| Error::Stopped)?;
        let mut all: Vec<Suspicion> = Vec::new();
        for answer in &reports {
            let Ok(report) = &answer.report else { continue };
            for s in &report.suspected {
                let Some(peer) = ids.get(&s.peer) else {
                    continue;
                };
                all.push(Suspicion {
                    by: answer.peer,
                    peer: *peer,
                    at: wall - Duration::from_micros(s.ago_us),
                    reason: s.reason.clone(),
                    requeued: s.requeued as usize,
                });
            }
        }
        all.sort_by_key(|s| s.at);
        Ok(all)
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
        self.commands.send(command).map_err(|_| Error::Stopped)
    }
}

/// What [`Peer::drain`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drained {
    /// Queued tasks handed back to their owners.
    pub handed_back: u64,
    /// Tasks still running when the time-out came.
    pub unfinished: u64,
    /// Whether everything was handed back or finished in time.
    pub complete: bool,
}

fn start(
    key: identity::Keypair,
    config: &Config,
    node: Node,
    local: peer_core::Client,
    commands: Inbox,
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
    let links = LinkSettings {
        max_frame: config.max_frame,
        timeout: config.request_timeout,
        in_flight: config.limits.streams_per_connection,
    };
    Ok(EventLoop::new(
        swarm, node, local, commands, ready_tx, topics, links,
    ))
}

fn boxed(error: std::io::Error) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(error)
}

impl Deref for Peer {
    type Target = peer_core::Client;

    fn deref(&self) -> &peer_core::Client {
        &self.client
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("peer_id", &self.peer_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::commands::TrySend;

    /// The stop is a signal, not a command behind a full queue: dropping the last client
    /// while the loop is behind by a whole queue returns as soon as the loop looks up.
    #[test]
    fn dropping_the_client_while_the_queue_is_full_returns_within_a_second() {
        let loopback = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        let peer = Peer::join(Config::new().listen(loopback).mdns(false).workers(1)).unwrap();
        let commands = peer.commands.clone();
        // Holds the loop for a while; the queue fills meanwhile.
        commands
            .send(Command::Stall(Duration::from_millis(300)))
            .unwrap();
        let mut queued = 0;
        while let Ok(()) = commands.try_send(Command::PrimCancel(u64::MAX)) {
            queued += 1;
        }
        assert!(queued >= 1000, "only {queued} commands fit in the queue");
        assert!(matches!(
            commands.try_send(Command::PrimCancel(u64::MAX)),
            Err(TrySend::Full(_))
        ));
        drop(commands);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let started = Instant::now();
        std::thread::spawn(move || {
            drop(peer);
            let _ = done_tx.send(());
        });
        let dropped = done_rx.recv_timeout(Duration::from_secs(1));
        assert!(
            dropped.is_ok(),
            "dropping the client with a full queue took more than a second"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    /// Once stopped, the loop takes no command: senders get an error instead of waiting.
    #[test]
    fn commands_after_the_stop_fail_at_once() {
        let loopback = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        let peer = Peer::join(Config::new().listen(loopback).mdns(false).workers(1)).unwrap();
        let commands = peer.commands.clone();
        drop(peer);
        assert!(commands.send(Command::PrimCancel(u64::MAX)).is_err());
    }
}

#[cfg(test)]
mod stop_tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::mpsc::{Receiver, RecvTimeoutError};
    use std::time::Duration;

    use super::*;

    fn a_peer() -> Peer {
        let loopback = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        Peer::join(Config::new().listen(loopback).mdns(false).workers(1)).unwrap()
    }

    /// Runs `wait` on a thread of its own; the receiver gets its panic message once it ends
    /// (`None` if it returned).
    fn waiting(wait: impl FnOnce() + Send + 'static) -> Receiver<Option<String>> {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ended = catch_unwind(AssertUnwindSafe(wait));
            let message = ended.err().map(|payload| {
                let payload = &*payload;
                (payload.downcast_ref::<String>().cloned())
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            });
            let _ = done_tx.send(message);
        });
        done_rx
    }

    /// Stops `peer` while `waits` wait (each reached its home, this peer, first), and checks
    /// that each ends within three seconds of the stop with a panic that says the peer stopped.
    fn each_ends_with_the_stop(peer: Peer, waits: Vec<(&str, Receiver<Option<String>>)>) {
        std::thread::sleep(Duration::from_millis(300));
        for (what, done) in &waits {
            assert_eq!(
                done.try_recv(),
                Err(std::sync::mpsc::TryRecvError::Empty),
                "{what} ended before the peer stopped"
            );
        }
        drop(peer);
        for (what, done) in waits {
            match done.recv_timeout(Duration::from_secs(3)) {
                Ok(Some(message)) => assert!(
                    message.contains("stopped"),
                    "{what} ended with a panic that does not say the peer stopped: {message}"
                ),
                Ok(None) => panic!("{what} returned as if answered after its peer stopped"),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{what} still waits 3 s after its peer stopped")
                }
                Err(RecvTimeoutError::Disconnected) => unreachable!("the waiting thread reports"),
            }
        }
    }

    /// A lock held by someone else: the waiting `blocking_lock` cannot be granted once the
    /// peer stopped, and has no error to return, so it panics rather than wait for ever.
    #[test]
    fn a_blocking_lock_waiting_when_the_peer_stops_ends() {
        let peer = a_peer();
        let held = peer.lock("held").blocking_lock();
        let lock = peer.lock("held");
        let timed = peer.lock("held");
        let waits = vec![
            ("blocking_lock", waiting(move || drop(lock.blocking_lock()))),
            (
                "blocking_lock_timeout",
                waiting(move || drop(timed.blocking_lock_timeout(Duration::from_secs(60)))),
            ),
        ];
        each_ends_with_the_stop(peer, waits);
        drop(held);
    }

    /// A semaphore without a free permit: the waiting acquire ends as a lock's does.
    #[test]
    fn a_blocking_acquire_waiting_when_the_peer_stops_ends() {
        let peer = a_peer();
        let sem = peer.semaphore("full", 1);
        let held = sem.blocking_acquire();
        let waits = vec![(
            "blocking_acquire",
            waiting(move || drop(sem.blocking_acquire())),
        )];
        each_ends_with_the_stop(peer, waits);
        drop(held);
    }

    /// A variable's change and an event's flag that never come end as a lock's wait does.
    #[test]
    fn a_change_or_event_waited_for_when_the_peer_stops_ends() {
        let peer = a_peer();
        let variable = peer.variable::<u64>("unchanged");
        let event = peer.event("never");
        let waits = vec![
            (
                "blocking_changed",
                waiting(move || {
                    let _ = variable.blocking_changed(0);
                }),
            ),
            ("blocking_wait", waiting(move || event.blocking_wait())),
        ];
        each_ends_with_the_stop(peer, waits);
    }

    /// A blocking call waiting on the swarm when its peer stops is answered, not left
    /// waiting for ever: the loop answers what it still holds as it goes.
    #[test]
    fn a_blocking_get_waiting_when_the_peer_stops_returns() {
        let loopback = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        let peer = Peer::join(Config::new().listen(loopback).mdns(false).workers(1)).unwrap();
        let queue = peer.queue::<u64>("empty", 4);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let got = queue.blocking_get();
            let _ = done_tx.send(got.is_err());
        });
        // The get reaches its home (this peer) and waits there.
        std::thread::sleep(Duration::from_millis(300));
        assert!(done_rx.try_recv().is_err(), "an empty queue gave something");
        drop(peer);
        let failed = done_rx.recv_timeout(Duration::from_secs(5));
        assert_eq!(
            failed,
            Ok(true),
            "the waiting get did not fail when its peer stopped"
        );
    }
}
