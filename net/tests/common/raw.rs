//! A raw libp2p peer for hostile-peer tests: TCP, noise, yamux and the task protocol
//! (`/peer/tasks/3`) with a codec that sends requests byte for byte. A *member* also speaks
//! identify (`/peer/1`, `peer/<version>`), so that `peer_net` nodes take it for a member,
//! signed gossipsub on `peer/graph/1`, and answers the pings of `/peer/alive/1`.
//!
//! It runs on a thread of its own; the test drives it with blocking calls and reads what it
//! heard (requests, gossip, connections) from a log it can wait on.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, gossipsub, identify, identity, noise, tcp, yamux,
};
use peer_net::wire::{Batch, GraphEvent, Request, Response, TaskSpec};
use tokio::sync::mpsc;

#[path = "raw_bytes.rs"]
mod bytes;
pub use bytes::*;

const ALIVE: StreamProtocol = StreamProtocol::new("/peer/alive/1");
/// The gossip topic of task-graph events.
pub const GRAPH_TOPIC: &str = "peer/graph/1";

/// What the raw peer heard.
#[derive(Debug, Clone)]
pub enum Heard {
    /// A request that decoded.
    Request { from: PeerId, request: Request },
    /// A request that did not decode.
    Garbage { from: PeerId },
    /// A gossip batch, signed by `from`.
    Gossip { from: PeerId, batch: Batch },
    /// `peer` subscribed to a gossip topic.
    Subscribed(PeerId),
    /// Identify told us about `peer`.
    Identified(PeerId),
    /// A connection with `peer` is established.
    Connected(PeerId),
    /// A connection with `peer` closed; `left` remain.
    Closed { peer: PeerId, left: u32 },
    /// A dial failed.
    DialFailed(String),
}

type Responder = Box<dyn FnMut(PeerId, &Request) -> Option<Response> + Send>;

enum Command {
    Dial(DialOpts),
    Ask(PeerId, Vec<u8>, std_mpsc::Sender<Result<Vec<u8>, String>>),
    Publish(Vec<u8>, std_mpsc::Sender<Result<(), String>>),
    Disconnect(PeerId),
}

#[derive(NetworkBehaviour)]
struct RawBehaviour {
    tasks: request_response::Behaviour<RawCodec>,
    identify: Toggle<identify::Behaviour>,
    gossipsub: Toggle<gossipsub::Behaviour>,
    /// Streams of their own: a member answers pings on them; any raw peer can open links.
    streams: libp2p_stream::Behaviour,
}

type Log = Arc<(Mutex<Vec<Heard>>, Condvar)>;

/// A raw peer on a thread of its own; stopped when dropped.
pub struct RawPeer {
    /// Its libp2p id.
    pub id: PeerId,
    /// Its number, as `peer_net` nodes know it.
    pub number: u64,
    commands: Option<mpsc::UnboundedSender<Command>>,
    log: Log,
    responder: Arc<Mutex<Responder>>,
    batches: u64,
    thread: Option<JoinHandle<()>>,
    streams: libp2p_stream::Control,
}

impl RawPeer {
    /// A peer that speaks only the task protocol: no node takes it for a member.
    pub fn plain() -> RawPeer {
        RawPeer::start(false)
    }

    /// A peer that identifies as a member, gossips, and answers pings.
    pub fn member() -> RawPeer {
        RawPeer::start(true)
    }

    fn start(member: bool) -> RawPeer {
        let key = identity::Keypair::generate_ed25519();
        let id = key.public().to_peer_id();
        let (tx, rx) = mpsc::unbounded_channel();
        let log: Log = Arc::default();
        let responder: Arc<Mutex<Responder>> = Arc::new(Mutex::new(Box::new(|_, _| None)));
        let (started_tx, started_rx) = std_mpsc::channel();
        let thread = std::thread::spawn({
            let (log, responder) = (log.clone(), responder.clone());
            move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let swarm = build(key, member);
                    let _ = started_tx.send(swarm.behaviour().streams.new_control());
                    run(swarm, member, rx, log, responder).await;
                });
            }
        });
        let streams = started_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the raw peer started");
        RawPeer {
            id,
            number: number(&id),
            commands: Some(tx),
            log,
            responder,
            batches: 0,
            thread: Some(thread),
            streams,
        }
    }

    /// Opens streams of any protocol to connected peers, from any runtime.
    pub fn streams(&self) -> libp2p_stream::Control {
        self.streams.clone()
    }

    fn command(&self, command: Command) {
        let sent = self
            .commands
            .as_ref()
            .is_some_and(|c| c.send(command).is_ok());
        assert!(sent, "the raw peer stopped");
    }

    /// Answers requests with `f` where it returns a response; the default answers the rest.
    pub fn respond_with(
        &self,
        f: impl FnMut(PeerId, &Request) -> Option<Response> + Send + 'static,
    ) {
        *self
            .responder
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Box::new(f);
    }

    /// Answers the first steal it is asked with `tasks`, and nothing after: how a hostile
    /// victim hands a thief what it chose.
    pub fn answer_first_steal(&self, tasks: Vec<TaskSpec>) {
        let mut tasks = Some(tasks);
        self.respond_with(move |_, request| match request {
            Request::Steal { .. } => Some(Response::Stolen {
                tasks: tasks.take()?,
                ready: 0,
            }),
            _ => None,
        });
    }

    /// Dials `addr` (ending in `/p2p/<id>`) and waits until connected.
    pub fn connect(&self, addr: &Multiaddr) -> PeerId {
        let peer = peer_of(addr);
        self.command(Command::Dial(DialOpts::from(addr.clone())));
        self.wait_for("a connection", Duration::from_secs(20), |h| {
            matches!(h, Heard::Connected(p) if *p == peer).then_some(())
        });
        peer
    }

    /// Dials `addr` (ending in `/p2p/<id>`) without waiting.
    pub fn dial(&self, addr: &Multiaddr) {
        self.command(Command::Dial(DialOpts::from(addr.clone())));
    }

    /// Dials `addr` once more, even if connected already.
    pub fn dial_again(&self, addr: &Multiaddr) {
        let peer = peer_of(addr);
        let bare: Multiaddr = (addr.iter())
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect();
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![bare])
            .condition(PeerCondition::Always)
            .build();
        self.command(Command::Dial(opts));
    }

    /// Closes every connection with `peer`.
    pub fn disconnect(&self, peer: PeerId) {
        self.command(Command::Disconnect(peer));
    }

    /// Sends raw bytes (a frame, or not) as a request; the answer comes on the receiver.
    pub fn send_bytes(
        &self,
        to: PeerId,
        bytes: Vec<u8>,
    ) -> std_mpsc::Receiver<Result<Vec<u8>, String>> {
        let (tx, rx) = std_mpsc::channel();
        self.command(Command::Ask(to, bytes, tx));
        rx
    }

    /// Sends raw bytes as a request and waits for the answer's body, or why there is none.
    pub fn ask_bytes(&self, to: PeerId, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
        self.send_bytes(to, bytes)
            .recv_timeout(Duration::from_secs(40))
            .expect("the raw peer answers every request within its time-out")
    }

    /// Sends a request and decodes its answer.
    pub fn ask(&self, to: PeerId, request: &Request) -> Result<Response, String> {
        let body = self.ask_bytes(to, encoded(request))?;
        postcard::from_bytes(&body).map_err(|e| format!("undecodable response: {e}"))
    }

    /// Publishes raw bytes on the graph topic.
    pub fn publish_bytes(&self, bytes: Vec<u8>) -> Result<(), String> {
        let (tx, rx) = std_mpsc::channel();
        self.command(Command::Publish(bytes, tx));
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the raw peer answers every publication")
    }

    /// Gossips `events` as this peer's next batch.
    pub fn gossip(&mut self, events: Vec<GraphEvent>) {
        self.batches += 1;
        let batch = Batch {
            from: self.number,
            number: self.batches,
            events,
        };
        self.publish_bytes(postcard::to_allocvec(&batch).unwrap())
            .expect("gossip published");
    }

    /// The next batch number, for batches built by hand.
    pub fn next_batch(&mut self) -> u64 {
        self.batches += 1;
        self.batches
    }

    /// Everything heard so far.
    pub fn heard(&self) -> Vec<Heard> {
        self.log
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until something heard (so far or later) matches `pick`; panics after `timeout`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&Heard) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.log;
        let mut log = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut checked = 0;
        loop {
            if let Some(found) = log[checked..].iter().find_map(&mut pick) {
                return found;
            }
            checked = log.len();
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}");
            log = changed
                .wait_timeout(log, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Asserts that nothing matching `pick` is heard within `within` (nor was before).
    pub fn never<T: std::fmt::Debug>(
        &self,
        what: &str,
        within: Duration,
        mut pick: impl FnMut(&Heard) -> Option<T>,
    ) {
        let deadline = Instant::now() + within;
        let (lock, changed) = &*self.log;
        let mut log = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(found) = log.iter().find_map(&mut pick) {
                panic!("{what}: {found:?}");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            log = changed
                .wait_timeout(log, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until `peer` is subscribed to the graph topic, so that gossip reaches it.
    pub fn wait_subscribed(&self, peer: PeerId) {
        self.wait_for("a gossip subscription", Duration::from_secs(20), |h| {
            matches!(h, Heard::Subscribed(p) if *p == peer).then_some(())
        });
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn build(key: identity::Keypair, member: bool) -> Swarm<RawBehaviour> {
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| {
            let tasks = request_response::Behaviour::with_codec(
                RawCodec,
                [(PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(20))
                    .with_max_concurrent_streams(1024),
            );
            let identify = member.then(|| {
                identify::Behaviour::new(
                    identify::Config::new("/peer/1".into(), key.public())
                        .with_agent_version(concat!("peer/", env!("CARGO_PKG_VERSION")).into()),
                )
            });
            let gossipsub = member.then(|| {
                // Messages are never validated, so never forwarded: this peer only says what
                // the test makes it say.
                let config = gossipsub::ConfigBuilder::default()
                    .max_transmit_size(4 << 20)
                    .validate_messages()
                    .build()
                    .unwrap();
                let mut gossipsub = gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    config,
                )
                .unwrap();
                gossipsub
                    .subscribe(&gossipsub::IdentTopic::new(GRAPH_TOPIC))
                    .unwrap();
                gossipsub
            });
            RawBehaviour {
                tasks,
                identify: identify.into(),
                gossipsub: gossipsub.into(),
                streams: libp2p_stream::Behaviour::new(),
            }
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build()
}

async fn run(
    mut swarm: Swarm<RawBehaviour>,
    member: bool,
    mut commands: mpsc::UnboundedReceiver<Command>,
    log: Log,
    responder: Arc<Mutex<Responder>>,
) {
    if member {
        let mut incoming = swarm
            .behaviour()
            .streams
            .new_control()
            .accept(ALIVE)
            .unwrap();
        tokio::spawn(async move {
            while let Some((_, mut stream)) = incoming.next().await {
                tokio::spawn(async move {
                    let mut ping = [0u8; 8];
                    while stream.read_exact(&mut ping).await.is_ok() {
                        if stream.write_all(&ping).await.is_err() || stream.flush().await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }
    let topic = gossipsub::IdentTopic::new(GRAPH_TOPIC);
    let mut asks: std::collections::HashMap<OutboundRequestId, std_mpsc::Sender<_>> =
        std::collections::HashMap::new();
    let note = |heard: Heard| {
        let (lock, changed) = &*log;
        lock.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(heard);
        changed.notify_all();
    };
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Dial(opts)) => {
                    if let Err(error) = swarm.dial(opts) {
                        note(Heard::DialFailed(error.to_string()));
                    }
                }
                Some(Command::Ask(to, bytes, reply)) => {
                    let id = swarm.behaviour_mut().tasks.send_request(&to, bytes);
                    asks.insert(id, reply);
                }
                Some(Command::Publish(bytes, reply)) => {
                    let result = match swarm.behaviour_mut().gossipsub.as_mut() {
                        Some(g) => g.publish(topic.clone(), bytes).map(drop).map_err(|e| e.to_string()),
                        None => Err("a plain raw peer does not gossip".into()),
                    };
                    let _ = reply.send(result);
                }
                Some(Command::Disconnect(peer)) => {
                    let _ = swarm.disconnect_peer_id(peer);
                }
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => note(Heard::Connected(peer_id)),
                SwarmEvent::ConnectionClosed { peer_id, num_established, .. } => {
                    note(Heard::Closed { peer: peer_id, left: num_established });
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    note(Heard::DialFailed(error.to_string()));
                }
                SwarmEvent::Behaviour(RawBehaviourEvent::Tasks(event)) => match event {
                    request_response::Event::Message { peer, message, .. } => match message {
                        request_response::Message::Request { request, channel, .. } => {
                            let answer = match postcard::from_bytes::<Request>(&request) {
                                Ok(request) => {
                                    let custom = {
                                        let mut f = responder
                                            .lock()
                                            .unwrap_or_else(PoisonError::into_inner);
                                        (*f)(peer, &request)
                                    };
                                    let answer = custom.unwrap_or_else(|| default_answer(&request));
                                    note(Heard::Request { from: peer, request });
                                    Some(answer)
                                }
                                Err(_) => {
                                    note(Heard::Garbage { from: peer });
                                    None
                                }
                            };
                            if let Some(answer) = answer {
                                let body = postcard::to_allocvec(&answer).unwrap();
                                let _ = swarm.behaviour_mut().tasks.send_response(channel, body);
                            }
                        }
                        request_response::Message::Response { request_id, response } => {
                            if let Some(reply) = asks.remove(&request_id) {
                                let _ = reply.send(Ok(response));
                            }
                        }
                    },
                    request_response::Event::OutboundFailure { request_id, error, .. } => {
                        if let Some(reply) = asks.remove(&request_id) {
                            let _ = reply.send(Err(error.to_string()));
                        }
                    }
                    _ => {}
                },
                SwarmEvent::Behaviour(RawBehaviourEvent::Gossipsub(event)) => match event {
                    gossipsub::Event::Message { message, .. } => {
                        if let (Some(from), Ok(batch)) =
                            (message.source, postcard::from_bytes::<Batch>(&message.data))
                        {
                            note(Heard::Gossip { from, batch });
                        }
                    }
                    gossipsub::Event::Subscribed { peer_id, .. } => {
                        note(Heard::Subscribed(peer_id));
                    }
                    _ => {}
                },
                SwarmEvent::Behaviour(RawBehaviourEvent::Identify(
                    identify::Event::Received { peer_id, .. },
                )) => note(Heard::Identified(peer_id)),
                _ => {}
            },
        }
    }
}
