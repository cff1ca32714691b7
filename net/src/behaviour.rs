//! The libp2p stack: TCP, an optional pre-shared key, noise, yamux, and the protocols a
//! peer speaks.

use std::io;
use std::time::Duration;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::pnet::PnetConfig;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    PeerId, StreamProtocol, Transport, connection_limits, gossipsub, identify, kad, mdns, noise,
    tcp, yamux,
};

use crate::codec::{FrameCodec, PROTOCOL};
use crate::config::Config;

/// The identify protocol version: peers of another version are not used for tasks.
pub(crate) const AGENT: &str = concat!("peer/", env!("CARGO_PKG_VERSION"));

/// The end of the agent version of a peer that is no home of named primitives
/// ([`Config::home`]), as other peers learn it by identify.
pub(crate) const NO_HOME: &str = " (no home)";
const IDENTIFY: &str = "/peer/1";
const KADEMLIA: StreamProtocol = StreamProtocol::new("/peer/kad/1");
/// The gossip topic of task-graph events.
pub(crate) const GRAPH_TOPIC: &str = "peer/graph/1";
/// Largest gossip message a peer relays: a peer may bound what it reads lower than its
/// neighbours do (`Limits::gossip_bytes`), and a message over its bound cuts the relaying
/// peer's gossip to it, so relays stay under the least bound that makes sense. Larger
/// messages still reach the peers their publisher is connected to.
pub(crate) const RELAY_BYTES: usize = 64 << 10;

/// Every protocol a peer speaks.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// First, so that a connection over the bounds is refused before any protocol sees it.
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) alive: libp2p_stream::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) tasks: request_response::Behaviour<FrameCodec>,
}

impl Behaviour {
    pub(crate) fn new(key: &Keypair, config: &Config) -> io::Result<Behaviour> {
        let me = key.public().to_peer_id();
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY.into(), key.public()).with_agent_version(
                if config.home {
                    AGENT.to_string()
                } else {
                    format!("{AGENT}{NO_HOME}")
                },
            ),
        );
        // Kademlia searches for peers not known yet when this peer starts, when a member
        // comes up (the event loop asks), and every five minutes (libp2p's default): a
        // search costs every peer a request, so a settled swarm stays quiet.
        let mut kad_config = kad::Config::new(KADEMLIA);
        kad_config.set_query_timeout(Duration::from_secs(10));
        let mut kad = kad::Behaviour::with_config(me, kad::store::MemoryStore::new(me), kad_config);
        // Every peer serves the routing table: on a LAN or loopback nobody learns its
        // external reachability, so the default automatic mode would stay a client.
        kad.set_mode(Some(kad::Mode::Server));
        let mdns = if config.mdns_on() {
            Some(mdns::tokio::Behaviour::new(mdns::Config::default(), me)?)
        } else {
            None
        };
        let gossip_config = gossipsub::ConfigBuilder::default()
            // libp2p's default: graph events go out flooded, not waiting for the mesh, so
            // a faster heartbeat only costs an idle peer wake-ups.
            .heartbeat_interval(Duration::from_secs(1))
            .validation_mode(gossipsub::ValidationMode::Strict)
            // Relayed only once the event loop has looked at it (`RELAY_BYTES`, well-formed,
            // signed by the peer it claims to be from).
            .validate_messages()
            .max_transmit_size(config.limits.gossip_bytes)
            .build()
            .map_err(io::Error::other)?;
        let gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_config,
        )
        .map_err(io::Error::other)?;
        let tasks = request_response::Behaviour::with_codec(
            FrameCodec {
                max_frame: config.max_frame,
            },
            [(PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(config.limits.streams_per_connection),
        );
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established_incoming(Some(config.limits.connections_in))
            .with_max_pending_incoming(Some(config.limits.pending_in))
            .with_max_established_per_peer(Some(config.limits.connections_per_peer));
        Ok(Behaviour {
            limits: connection_limits::Behaviour::new(limits),
            identify,
            alive: libp2p_stream::Behaviour::new(),
            kad,
            mdns: mdns.into(),
            gossipsub,
            tasks,
        })
    }
}

/// A connection whose handshake takes longer fails: a hung peer's kernel still accepts
/// TCP connections, and the dial would otherwise wait until it wakes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP (no Nagle delay), the private-network handshake when a swarm key is set, noise,
/// yamux.
pub(crate) fn transport(
    key: &Keypair,
    swarm_key: Option<crate::config::SwarmKey>,
) -> io::Result<Boxed<(PeerId, StreamMuxerBox)>> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let noise = noise::Config::new(key).map_err(io::Error::other)?;
    let yamux = yamux::Config::default();
    Ok(match swarm_key {
        Some(psk) => tcp
            .and_then(move |socket, _| PnetConfig::new(psk.0).handshake(socket))
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux)
            .timeout(HANDSHAKE_TIMEOUT)
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
        None => tcp
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux)
            .timeout(HANDSHAKE_TIMEOUT)
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
    })
}

/// The policy's number for a peer: a hash of its id (FNV-1a), stable across processes.
pub(crate) fn peer_number(peer: &PeerId) -> u64 {
    peer_core::ext::fnv1a(&peer.to_bytes())
}
