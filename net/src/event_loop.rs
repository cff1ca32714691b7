//! The one task that owns the libp2p `Swarm` and the [`Node`]: it translates swarm events and
//! client commands into node inputs, and node outputs into network and pool actions. No
//! decisions are made here.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, kad, mdns};
use peer_core::ext::{ArgFailure, FutureArg};
use peer_core::named::registry;
use tokio::sync::{mpsc, oneshot};

use crate::batch;
use crate::behaviour::{Behaviour, BehaviourEvent, GRAPH_TOPIC, RELAY_BYTES, peer_number};
use crate::codec::PROTOCOL;
use crate::commands::{Command, Inbox, Internal, Lookup, Resolver};
use crate::links::{self, LinkEnd, LinkEvent, LinkSettings, Links, Reply, Reports};
use crate::local_first::LocalFirst;
use crate::node::{Bytes, Input, Node, Output, SubmitArg};
use crate::pings::{self, Pinger};
use crate::remote::SwarmTasks;
use crate::status::{PeerAnswer, Status, Suspicion};
use crate::sync::{CallSlot, Topics};
use crate::wire::{Batch, Failure, Request, Response, TaskKey, TaskSpec};

/// Addresses of one peer taken from its identify message.
const MAX_ADDRESSES: usize = 16;

/// How long a peer that stops keeps its loop turning after it flushed its gossip, for the
/// batch to leave its connections (a detached job's description travels only by gossip).
const LAST_GOSSIP: Duration = Duration::from_millis(10);

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    node: Node,
    local: peer_core::Client,
    commands: Inbox,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    topic: gossipsub::IdentTopic,
    peers: HashMap<u64, PeerId>,
    /// Members met, up and suspected, and whom to watch for failure.
    /// The tasks pinging watched peers.
    pingers: HashMap<u64, Pinger>,
    /// Opens ping streams.
    control: libp2p_stream::Control,
    /// Peers up, for [`Peer::peers`](crate::Peer::peers).
    peer_count: Arc<AtomicUsize>,
    /// Where the answers to requests go, by the node's channel number.
    channels: HashMap<u64, AnswerTo>,
    /// Request channels by libp2p's id, to report whether their answers went out.
    inbound: HashMap<InboundRequestId, u64>,
    /// Lookups of published values waiting for the node's answer.
    lookups: HashMap<u64, oneshot::Sender<Lookup>>,
    next_lookup: u64,
    next_channel: u64,
    outbound: HashMap<OutboundRequestId, u64>,
    resolvers: HashMap<TaskKey, Resolver>,
    /// Futures of `Owned` arguments, by task, in case the node asks for their values.
    futures: HashMap<TaskKey, Vec<(usize, FutureArg)>>,
    ready_tx: Option<oneshot::Sender<Vec<Multiaddr>>>,
    /// Operations on primitives waiting for their answers, by number.
    calls: HashMap<u64, Arc<CallSlot>>,
    /// This peer's topics, for values other peers publish.
    topics: Arc<Topics>,
    /// Why the last dial failed, for `peer join` to say why it cannot join.
    last_dial_error: Option<String>,
    /// Bootstrap peers not reached yet: the first failure to reach each is a warning.
    unreached_bootstrap: HashSet<PeerId>,
    /// Reports being gathered, by waiter.
    reports: HashMap<u64, oneshot::Sender<Vec<PeerAnswer>>>,
    /// Where the run time of this peer's own named tasks run here goes, if anywhere.
    local_first: Option<Arc<LocalFirst>>,
    /// Whose open batches of calls to hand on when they are due ([`crate::batch`]).
    batches: Weak<SwarmTasks>,
    /// When the next open batch is due, if one is open.
    batch_due: Option<Instant>,
    /// Our requests on long-lived streams, and the requests other peers send on theirs.
    links: Links,
    link_rx: mpsc::Receiver<LinkEvent>,
    link_end_rx: mpsc::UnboundedReceiver<LinkEnd>,
    link_settings: LinkSettings,
    /// Told once this leaving peer's backups hold what it hosts ([`Command::Leave`]), and
    /// not before the instant with it: its last gossip gets that long to go out.
    leaving: Option<(std::sync::mpsc::SyncSender<()>, Instant)>,
}

/// The way back for one answer: the request's own substream, or the link it came on.
enum AnswerTo {
    Substream(ResponseChannel<Response>),
    Link(Reply),
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        node: Node,
        local: peer_core::Client,
        commands: Inbox,
        ready_tx: oneshot::Sender<Vec<Multiaddr>>,
        topics: Arc<Topics>,
        link_settings: LinkSettings,
    ) -> EventLoop {
        // Each worker sends at most one `Ran` per task it runs, and argument futures one
        // each; the loop drains this channel before anything else blocks.
        let (internal_tx, internal_rx) = mpsc::channel(4096);
        let control = swarm.behaviour().alive.new_control();
        // Requests and answers, with room for a burst; the endings of the links' work, one
        // for each steal answered on a link (held to its peer's places) and each unsent
        // request at most, so never waited on.
        let (events, link_rx) = mpsc::channel(1024);
        let (endings, link_end_rx) = mpsc::unbounded_channel();
        let reports = Reports { events, endings };
        let links = Links::new(control.clone(), reports, link_settings);
        EventLoop {
            swarm,
            node,
            local,
            commands,
            internal_tx,
            internal_rx,
            topic: gossipsub::IdentTopic::new(GRAPH_TOPIC),
            peers: HashMap::new(),
            pingers: HashMap::new(),
            control,
            peer_count: Arc::default(),
            channels: HashMap::new(),
            inbound: HashMap::new(),
            lookups: HashMap::new(),
            next_lookup: 0,
            next_channel: 0,
            outbound: HashMap::new(),
            resolvers: HashMap::new(),
            futures: HashMap::new(),
            ready_tx: Some(ready_tx),
            calls: HashMap::new(),
            topics,
            last_dial_error: None,
            unreached_bootstrap: HashSet::new(),
            reports: HashMap::new(),
            local_first: None,
            batches: Weak::new(),
            batch_due: None,
            leaving: None,
            links,
            link_rx,
            link_end_rx,
            link_settings,
        }
    }

    /// Measures each named task run here into `local_first`.
    pub(crate) fn measuring(mut self, local_first: Arc<LocalFirst>) -> EventLoop {
        self.local_first = Some(local_first);
        self
    }

    /// Hands on the open batches of `tasks` when they are due.
    pub(crate) fn batching(mut self, tasks: Weak<SwarmTasks>) -> EventLoop {
        self.batches = tasks;
        self
    }

    /// Keeps `counter` at the number of peers up.
    pub(crate) fn counting_peers(mut self, counter: Arc<AtomicUsize>) -> EventLoop {
        self.peer_count = counter;
        self
    }

    pub(crate) async fn run(mut self) {
        match self.control.accept(pings::ALIVE) {
            Ok(incoming) => drop(tokio::spawn(pings::answer(incoming))),
            Err(error) => tracing::error!(%error, "pings cannot be answered"),
        }
        match self.control.accept(links::LINK) {
            Ok(incoming) => {
                let reports = self.links.reports();
                drop(tokio::spawn(links::serve(
                    incoming,
                    reports,
                    self.link_settings,
                    self.node.ready(),
                )));
            }
            Err(error) => tracing::error!(%error, "links cannot be served"),
        }
        let watch_tick = tokio::time::sleep_until(self.watch_due().into());
        tokio::pin!(watch_tick);
        loop {
            if self.drain_outputs() {
                // The link tasks share this thread: let them write a steal or its answer
                // before the loop takes in more (one waited up to 150 µs).
                tokio::task::yield_now().await;
            }
            // Checked at every turn too: the timer below wakes at a millisecond's grain.
            if let Some(due) = self.batch_due {
                let now = Instant::now();
                if due <= now {
                    self.hand_on_batches(now);
                }
            }
            let leave_at = self.leaving.as_ref().map(|(_, at)| *at);
            if leave_at.is_some_and(|at| at <= Instant::now()) && self.node.handed_off() {
                let _ = self.leaving.take().map(|(done, _)| done.send(()));
            }
            (self.peer_count).store(self.node.peers_up(), Ordering::Relaxed);
            let node_due = self.node.poll_timeout();
            let timeout = (node_due.into_iter())
                .chain(self.links.next_deadline())
                .chain(self.batch_due)
                .chain(self.leaving.as_ref().map(|(_, at)| *at))
                .min();
            let sleep = async {
                match timeout {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            // A stop is seen however full the queues are.
            if self.commands.stop.is_stopped() {
                return;
            }
            // Unbiased: no source waits behind another that is never empty (a steal behind
            // thousands of submissions, or the other way round).
            tokio::select! {
                () = self.commands.stop.stopped() => return,
                Some(internal) = self.internal_rx.recv() => self.internal(internal),
                command = self.commands.rx.recv() => match command {
                    Some(command) => self.command(command),
                    None => return,
                },
                Some(ending) = self.link_end_rx.recv() => self.link_ended(ending),
                Some(event) = self.link_rx.recv() => self.link_event(event),
                event = self.swarm.select_next_some() => self.swarm_event(event),
                () = sleep => {
                    let now = Instant::now();
                    if node_due.is_some_and(|due| due <= now) {
                        self.node.handle_timeout(now);
                    }
                    for tag in self.links.expired(now) {
                        let error = "no answer on the link in time".to_string();
                        self.node.handle(Input::RequestFailed { tag, error }, now);
                    }
                    if self.batch_due.is_some_and(|due| due <= now) {
                        self.hand_on_batches(now);
                    }
                }
                () = &mut watch_tick => {
                    self.watch_step(Instant::now());
                    watch_tick.as_mut().reset(self.watch_due().into());
                }
            }
        }
    }

    /// Takes in the batches of calls open long enough (see [`crate::batch`]).
    fn hand_on_batches(&mut self, now: Instant) {
        self.batch_due = None;
        let Some(tasks) = self.batches.upgrade() else {
            return;
        };
        let (due, next) = tasks.due_batches(now);
        self.batch_due = next;
        for command in due {
            self.command(command);
        }
    }

    fn internal(&mut self, internal: Internal) {
        let now = Instant::now();
        match internal {
            Internal::Ran {
                task,
                result,
                took,
                calls,
            } => {
                self.node.ran_calls(calls.saturating_sub(1));
                self.node.handle(Input::Ran { task, result, took }, now)
            }
            // A suspect whose connection survived answers again: it is back.
            Internal::Alive(peer) => self.heard(peer, now),
            Internal::Arg {
                task,
                index,
                source,
                result,
            } => self.node.handle(
                Input::LocalArg {
                    task,
                    index,
                    source,
                    result,
                },
                now,
            ),
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Submit {
                task,
                futures,
                resolve,
            } => {
                let key = task.key;
                self.resolvers.insert(key, resolve);
                let mut kept = Vec::new();
                for (index, future) in futures {
                    if matches!(task.args.get(index), Some(SubmitArg::Local)) {
                        self.encode_arg(key, index, future);
                    } else {
                        kept.push((index, future));
                    }
                }
                if !kept.is_empty() {
                    self.futures.insert(key, kept);
                }
                self.node.submit_task(task, Instant::now());
            }
            Command::Waiting(waiting) => self.node.waiting(waiting, Instant::now()),
            Command::BatchOpened => {
                let due = Instant::now() + batch::FLUSH_AFTER;
                self.batch_due = Some(self.batch_due.map_or(due, |d| d.min(due)));
            }
            Command::PeerIds(numbers, reply) => {
                let me = *self.swarm.local_peer_id();
                let known = numbers
                    .into_iter()
                    .filter_map(|n| match self.peers.get(&n) {
                        Some(id) => Some((n, *id)),
                        None => (n == peer_number(&me)).then_some((n, me)),
                    })
                    .collect();
                let _ = reply.send(known);
            }
            Command::Detach(spec, reply) => {
                let _ = reply.send(self.node.detach(spec, Instant::now()));
            }
            Command::Publish(name, value) => {
                self.node.publish(name, Ok(value), Instant::now());
            }
            Command::Lookup(name, reply) => {
                self.next_lookup += 1;
                self.lookups.insert(self.next_lookup, reply);
                self.node.lookup(name, self.next_lookup, Instant::now());
            }
            Command::Status(reply) => {
                let (now, wall) = (Instant::now(), SystemTime::now());
                let me = *self.swarm.local_peer_id();
                let recoveries = self
                    .node
                    .recoveries()
                    .iter()
                    .filter_map(|r| {
                        Some(Suspicion {
                            by: me,
                            peer: *self.peers.get(&r.peer)?,
                            at: wall - now.saturating_duration_since(r.at),
                            reason: r.reason.clone(),
                            requeued: r.requeued,
                        })
                    })
                    .collect();
                let _ = reply.send(Status {
                    stats: self.node.stats(),
                    peers: self.node.peers_up(),
                    listen_addrs: self.swarm.listeners().cloned().collect(),
                    recoveries,
                    drained: self.node.drained(),
                    last_dial_error: self.last_dial_error.clone(),
                    local_only: self.node.local_only(),
                    kept_here: self.node.kept_here(),
                    // Found by the clients; `Peer::status` fills it in.
                    unserved: Vec::new(),
                });
            }
            Command::Prim {
                seq,
                key,
                kind,
                op,
                slot,
            } => {
                self.calls.insert(seq, slot);
                self.node.prim_call(seq, key, kind, op, Instant::now());
            }
            Command::PrimCancel(seq) => {
                self.calls.remove(&seq);
                self.node.prim_cancel(seq, Instant::now());
            }
            Command::TopicPublish { key, value } => {
                self.node.topic_publish(key, value, Instant::now());
            }
            Command::Homes(key, reply) => {
                let me = *self.swarm.local_peer_id();
                let homes = self
                    .node
                    .ranked_homes(&key)
                    .into_iter()
                    .filter_map(|p| {
                        if p == peer_number(&me) {
                            Some(me)
                        } else {
                            self.peers.get(&p).copied()
                        }
                    })
                    .collect();
                let _ = reply.send(homes);
            }
            Command::Drain => self.node.drain(Instant::now()),
            Command::Leave(done) => {
                let now = Instant::now();
                self.node.hand_off(now);
                self.leaving = Some((done, now + LAST_GOSSIP));
            }
            Command::Reports(reply) => {
                self.next_lookup += 1;
                self.reports.insert(self.next_lookup, reply);
                self.node.gather_reports(self.next_lookup, Instant::now());
            }
            #[cfg(test)]
            Command::Stall(time) => std::thread::sleep(time),
        }
    }

    /// Encodes a future argument once its task is done, off the loop.
    fn encode_arg(&self, task: TaskKey, index: usize, future: FutureArg) {
        let tx = self.internal_tx.clone();
        let source = future.task.as_u64();
        tokio::spawn(async move {
            let result = future.encoded.await.map_err(|e| match e {
                ArgFailure::Input(error) => Failure::InputLost(error.to_string()),
                ArgFailure::Encode(error) => Failure::BadArguments(error.to_string()),
            });
            let _ = tx
                .send(Internal::Arg {
                    task,
                    index,
                    source,
                    result,
                })
                .await;
        });
    }

    /// Carries out the node's outputs: whether any was a steal or a steal's answer.
    fn drain_outputs(&mut self) -> bool {
        let mut sent = false;
        while let Some(output) = self.node.poll_output() {
            sent |= matches!(
                output,
                Output::Send {
                    request: Request::Steal { .. },
                    ..
                } | Output::Respond {
                    response: Response::Stolen { .. },
                    ..
                }
            );
            match output {
                Output::Send { to, tag, request } => match self.peers.get(&to) {
                    Some(peer) => {
                        let peer = *peer;
                        tracing::trace!(to = %peer, tag, ?request, "send");
                        self.send_request(peer, tag, request);
                    }
                    None => self.node.handle(
                        Input::RequestFailed {
                            tag,
                            error: format!("peer {to:016x} is not connected"),
                        },
                        Instant::now(),
                    ),
                },
                Output::Respond { channel, response } => {
                    let sent = match self.channels.remove(&channel) {
                        None => false,
                        Some(AnswerTo::Substream(handle)) => {
                            let tasks = &mut self.swarm.behaviour_mut().tasks;
                            tasks.send_response(handle, response).is_ok()
                        }
                        // Steals on links never come here: their tasks answer them.
                        Some(AnswerTo::Link(reply)) => reply.send(response),
                    };
                    if !sent {
                        let input = Input::Responded {
                            channel,
                            sent: false,
                        };
                        self.node.handle(input, Instant::now());
                    }
                }
                Output::Found { waiter, value } => {
                    if let Some(reply) = self.lookups.remove(&waiter) {
                        let _ = reply.send(value);
                    }
                }
                Output::Run { spec, args } => self.run_task(spec, args),
                Output::Watch { peer, interval } => self.watch(peer, interval),
                Output::Forget(peer) => {
                    // Its id stays while `status` still reports its suspicion (the last
                    // 1,024 of them).
                    let connected =
                        (self.peers.get(&peer)).is_some_and(|id| self.swarm.is_connected(id));
                    let reported = self.node.recoveries().iter().any(|r| r.peer == peer);
                    if !connected && !reported {
                        self.peers.remove(&peer);
                    }
                }
                Output::Resolve { task, result } => {
                    self.futures.remove(&task);
                    if let Some(resolve) = self.resolvers.remove(&task) {
                        resolve(result);
                    }
                }
                Output::NeedArg { task, index } => match self.take_future(task, index) {
                    Some(future) => self.encode_arg(task, index, future),
                    None => self.node.handle(
                        Input::LocalArg {
                            task,
                            index,
                            source: 0,
                            result: Err(Failure::InputLost(format!(
                                "argument {index} of {task} is no longer known"
                            ))),
                        },
                        Instant::now(),
                    ),
                },
                Output::PrimReply { seq, reply, asked } => {
                    if let Some(slot) = self.calls.remove(&seq)
                        && let Some(withdrawn) = slot.complete(reply, asked)
                    {
                        // Its caller stopped waiting: give back what it was granted.
                        let (key, kind) = (slot.key.clone(), slot.kind);
                        self.node
                            .prim_undo(key, kind, &slot.op, &withdrawn, Instant::now());
                    }
                }
                Output::TopicMessage { key, value } => self.topics.deliver(&key, &value),
                Output::Reports { waiter, reports } => {
                    let me = *self.swarm.local_peer_id();
                    let reports = reports
                        .into_iter()
                        .filter_map(|(peer, report)| {
                            let id = if peer == peer_number(&me) {
                                me
                            } else {
                                *self.peers.get(&peer)?
                            };
                            Some(PeerAnswer { peer: id, report })
                        })
                        .collect();
                    if let Some(reply) = self.reports.remove(&waiter) {
                        let _ = reply.send(reports);
                    }
                }
                Output::Publish(batch) => {
                    let Ok(bytes) = postcard::to_allocvec(&batch) else {
                        continue;
                    };
                    // Fails with no subscribed peer yet; gossip is advisory, so drop it.
                    if let Err(error) = self
                        .swarm
                        .behaviour_mut()
                        .gossipsub
                        .publish(self.topic.clone(), bytes)
                    {
                        tracing::trace!(%error, "gossip not published");
                    }
                }
            }
        }
        sent
    }

    fn take_future(&mut self, task: TaskKey, index: usize) -> Option<FutureArg> {
        let futures = self.futures.get_mut(&task)?;
        let at = futures.iter().position(|(i, _)| *i == index)?;
        Some(futures.swap_remove(at).1)
    }

    /// Runs a named task on the local pool; its result comes back as `Internal::Ran`.
    fn run_task(&mut self, spec: TaskSpec, args: Vec<Bytes>) {
        let task = spec.key;
        let registration = match registry().get(&spec.name) {
            None => Err(Failure::UnknownTask),
            Some(r) if r.fingerprint() != spec.fingerprint => {
                Err(Failure::SignatureMismatch(r.signature().to_string()))
            }
            Some(r) => Ok(r),
        };
        let registration = match registration {
            Ok(r) => r,
            Err(failure) => {
                self.node.handle(
                    Input::Ran {
                        task,
                        result: Err(failure),
                        took: Duration::ZERO,
                    },
                    Instant::now(),
                );
                return;
            }
        };
        let tx = self.internal_tx.clone();
        // Only this peer's own tasks are measured: others' must not decide what it keeps.
        let local_first = (self.local_first.clone()).filter(|_| task.owner == self.node.me());
        let fingerprint = spec.fingerprint;
        let calls = spec.calls;
        let count = calls.len().max(1);
        let job = move || {
            let started = Instant::now();
            let (result, measure) = if calls.is_empty() {
                let result = batch::run_call(registration, &args);
                let size = result.as_ref().ok().map(Vec::len);
                (result, size.map(|size| (started.elapsed(), size)))
            } else {
                let results = batch::run_calls(registration, task, &calls, &args);
                // Measured as a call of average time and the largest result.
                let largest = results
                    .iter()
                    .filter_map(|r| r.as_ref().ok())
                    .map(Vec::len)
                    .max();
                let mean = started.elapsed() / u32::try_from(calls.len()).unwrap_or(u32::MAX);
                let encoded = postcard::to_allocvec(&results)
                    .map_err(|e| Failure::BadResult(format!("a batch's results: {e}")));
                (encoded, largest.map(|size| (mean, size)))
            };
            let took = started.elapsed();
            if let (Some(local_first), Some((took, size))) = (&local_first, measure) {
                local_first.ran(fingerprint, took, size);
            }
            let calls = count;
            let _ = tx.blocking_send(Internal::Ran {
                task,
                result,
                took,
                calls,
            });
        };
        drop(self.local.submit_local(job));
    }

    fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        let now = Instant::now();
        match event {
            SwarmEvent::NewListenAddr { .. } => {
                if let Some(ready) = self.ready_tx.take() {
                    let _ = ready.send(self.swarm.listeners().cloned().collect());
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                self.unreached_bootstrap.remove(&peer_id);
                let number = peer_number(&peer_id);
                self.peers.insert(number, peer_id);
                self.node.handle(Input::Connected(number), now);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                let number = peer_number(&peer_id);
                self.links.disconnected(&peer_id);
                // Requests of its that the node never answered (a primitive's waiter it
                // forgot) free their places on its links.
                (self.channels)
                    .retain(|_, to| !matches!(to, AnswerTo::Link(r) if r.peer() == peer_id));
                // Identities that never spoke the task protocol are not remembered.
                if !self.node.is_member(number) {
                    self.peers.remove(&number);
                }
                let reason = match cause {
                    Some(error) => format!("connection closed: {error}"),
                    None => "connection closed".to_string(),
                };
                self.node.handle(
                    Input::Disconnected {
                        peer: number,
                        reason,
                    },
                    now,
                );
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                let to = peer_id.map_or_else(|| "a peer".to_string(), |p| p.to_string());
                let why = format!("dialing {to} failed: {error}");
                match peer_id {
                    Some(peer) if self.unreached_bootstrap.remove(&peer) => {
                        tracing::warn!("cannot reach the bootstrap peer: {why}");
                    }
                    _ => tracing::debug!("{why}"),
                }
                self.last_dial_error = Some(why);
            }
            SwarmEvent::Behaviour(event) => self.behaviour_event(event, now),
            _ => {}
        }
    }

    fn behaviour_event(&mut self, event: BehaviourEvent, now: Instant) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                // A peer listens on a few addresses; more are not kept.
                for addr in info.listen_addrs.iter().take(MAX_ADDRESSES) {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, addr.clone());
                }
                let number = peer_number(&peer_id);
                if !info.protocols.contains(&PROTOCOL) {
                    return;
                }
                let home = !info.agent_version.ends_with(crate::behaviour::NO_HOME);
                self.peers.insert(number, peer_id);
                // Opened now, so that the first steal does not wait for it.
                self.links.warm(peer_id);
                let was_up = self.node.is_up(number);
                self.node
                    .handle(Input::Identified { peer: number, home }, now);
                if !was_up && self.node.is_up(number) {
                    // A new member may know others: ask around now rather than at the
                    // next periodic refresh.
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    if !self.swarm.is_connected(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, addresses, ..
            }) if !self.swarm.is_connected(&peer) && peer != *self.swarm.local_peer_id() => {
                let opts = DialOpts::peer_id(peer)
                    .addresses(addresses.into_vec())
                    .build();
                let _ = self.swarm.dial(opts);
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                use gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
                let size = message.data.len();
                let verdict = match postcard::from_bytes::<Batch>(&message.data) {
                    // Messages are signed by their source: a batch must be its own.
                    Ok(batch) if message.source.as_ref().map(peer_number) == Some(batch.from) => {
                        self.node.handle(Input::Gossip(batch), now);
                        if size <= RELAY_BYTES { Accept } else { Ignore }
                    }
                    Ok(_) => {
                        tracing::debug!("gossip claiming another sender dropped");
                        Reject
                    }
                    Err(error) => {
                        tracing::debug!(%error, "malformed gossip dropped");
                        Reject
                    }
                };
                let _ = (self.swarm.behaviour_mut().gossipsub).report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    verdict,
                );
            }
            BehaviourEvent::Tasks(event) => self.tasks_event(event, now),
            _ => {}
        }
    }

    /// A request or response of the task protocol from `peer`.
    fn task_message(
        &mut self,
        peer: PeerId,
        message: request_response::Message<crate::wire::Request, Response>,
        now: Instant,
    ) {
        match message {
            request_response::Message::Request {
                request,
                channel,
                request_id,
            } => {
                let channel = self.take_request(peer, AnswerTo::Substream(channel), request, now);
                self.inbound.insert(request_id, channel);
            }
            request_response::Message::Response {
                request_id,
                response,
            } => {
                if let Some(tag) = self.outbound.remove(&request_id) {
                    tracing::trace!(tag, ?response, "response");
                    self.node.handle(Input::Response { tag, response }, now);
                }
            }
        }
    }

    fn tasks_event(
        &mut self,
        event: request_response::Event<crate::wire::Request, Response>,
        now: Instant,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => {
                self.heard(peer_number(&peer), now);
                self.task_message(peer, message, now);
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(tag) = self.outbound.remove(&request_id) {
                    let error = error.to_string();
                    self.node.handle(Input::RequestFailed { tag, error }, now);
                }
            }
            request_response::Event::InboundFailure {
                peer,
                error,
                request_id,
                ..
            } => {
                tracing::debug!(%peer, %error, "inbound request failed");
                if let Some(channel) = self.inbound.remove(&request_id) {
                    self.channels.remove(&channel);
                    let input = Input::Responded {
                        channel,
                        sent: false,
                    };
                    self.node.handle(input, now);
                }
            }
            request_response::Event::ResponseSent { request_id, .. } => {
                if let Some(channel) = self.inbound.remove(&request_id) {
                    let input = Input::Responded {
                        channel,
                        sent: true,
                    };
                    self.node.handle(input, now);
                }
            }
        }
    }

    /// Sends a request on `peer`'s link, or on a substream of its own when the link hands
    /// it back.
    fn send_request(&mut self, peer: PeerId, tag: u64, request: Request) {
        if let Err(request) = self.links.send(peer, tag, request, Instant::now()) {
            let id = self
                .swarm
                .behaviour_mut()
                .tasks
                .send_request(&peer, request);
            self.outbound.insert(id, tag);
        }
    }

    /// Hands the node a request from `peer`, whose answer goes back by `answer_to`: the
    /// node's channel number for it.
    fn take_request(
        &mut self,
        peer: PeerId,
        answer_to: AnswerTo,
        request: Request,
        now: Instant,
    ) -> u64 {
        self.next_channel += 1;
        let channel = self.next_channel;
        self.channels.insert(channel, answer_to);
        let from = peer_number(&peer);
        tracing::trace!(from = %peer, ?request, "request");
        self.peers.insert(from, peer);
        let input = Input::Request {
            from,
            channel,
            request,
        };
        self.node.handle(input, now);
        channel
    }

    fn link_event(&mut self, event: LinkEvent) {
        let now = Instant::now();
        match event {
            LinkEvent::Request {
                peer,
                request,
                reply,
            } => {
                self.heard_on_link(peer, now);
                self.take_request(peer, AnswerTo::Link(reply), request, now);
            }
            LinkEvent::Response {
                peer,
                link,
                id,
                response,
            } => {
                if let Some(tag) = self.links.answered(peer, link, id) {
                    self.heard_on_link(peer, now);
                    tracing::trace!(tag, ?response, "response on a link");
                    self.node.handle(Input::Response { tag, response }, now);
                }
            }
            LinkEvent::Down {
                peer,
                link,
                unsupported,
                unsent,
                why,
            } => {
                let (again, failed) = self.links.down(peer, link, unsupported, unsent);
                for tag in failed {
                    let error = format!("the link to {peer} ended: {why}");
                    self.node.handle(Input::RequestFailed { tag, error }, now);
                }
                for (tag, request) in again {
                    self.send_request(peer, tag, request);
                }
            }
        }
    }

    fn link_ended(&mut self, ending: LinkEnd) {
        let now = Instant::now();
        match ending {
            // Not news from the thief (only that our write ended): nothing is `heard`. Its
            // place is freed once the node has taken it.
            LinkEnd::Gave {
                peer,
                tasks,
                sent,
                place: _place,
            } => {
                let thief = peer_number(&peer);
                self.node.handle(Input::Gave { thief, tasks, sent }, now);
            }
            LinkEnd::Unsent {
                peer,
                link,
                id,
                error,
            } => {
                if let Some(tag) = self.links.answered(peer, link, id) {
                    self.node.handle(Input::RequestFailed { tag, error }, now);
                }
            }
        }
    }

    /// When silences are next checked: at once if the watch has not begun.
    fn watch_due(&self) -> Instant {
        self.node.watch_timeout().unwrap_or_else(Instant::now)
    }

    /// Checks silences, and decides again whom to watch when that is due.
    fn watch_step(&mut self, now: Instant) {
        self.node.handle_watch_timeout(now);
    }

    /// A peer showed it is alive: a suspect that speaks again is back.
    fn heard(&mut self, number: u64, now: Instant) {
        self.node.heard(number, now);
    }

    /// A message from `peer` read on a link: it counts as hearing from the peer only while
    /// connected, since one read before its connection closed may be taken in after (the
    /// loop takes its sources in turn), and must not bring back a peer just suspected.
    fn heard_on_link(&mut self, peer: PeerId, now: Instant) {
        if self.swarm.is_connected(&peer) {
            self.heard(peer_number(&peer), now);
        }
    }

    /// Starts, retunes or stops the pinger of `number` as membership asks.
    fn watch(&mut self, number: u64, interval: Option<Duration>) {
        match (interval, self.peers.get(&number)) {
            (Some(interval), Some(peer)) => match self.pingers.get(&number) {
                Some(pinger) => pinger.set_interval(interval),
                None => {
                    let pinger = Pinger::start(
                        self.control.clone(),
                        *peer,
                        number,
                        interval,
                        self.internal_tx.clone(),
                    );
                    self.pingers.insert(number, pinger);
                }
            },
            _ => drop(self.pingers.remove(&number)),
        }
    }

    /// Connects to the bootstrap peers and starts Kademlia's search for the rest.
    pub(crate) fn bootstrap(&mut self, peers: &[(PeerId, Multiaddr)]) {
        for (peer, addr) in peers {
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(peer, addr.clone());
            let _ = self.swarm.dial(addr.clone());
            self.unreached_bootstrap.insert(*peer);
        }
        if !peers.is_empty() {
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
        }
    }
}

impl Drop for EventLoop {
    /// Calls on primitives still waiting for an answer get one: the loop is gone, and a
    /// blocking twin would otherwise wait for ever.
    fn drop(&mut self) {
        for (_, slot) in self.calls.drain() {
            slot.stopped();
        }
        // So do the calls still queued for the loop; the other commands' answer channels
        // close as they drop, which their callers take for a stopped peer.
        self.commands.rx.close();
        while let Ok(command) = self.commands.rx.try_recv() {
            if let Command::Prim { slot, .. } = command {
                slot.stopped();
            }
        }
    }
}
