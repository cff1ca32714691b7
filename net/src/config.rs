//! How to join a swarm.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::identity::Keypair;
use libp2p::pnet::PreSharedKey;

use crate::error::Error;

/// How a peer joins a swarm: where it listens, whom it knows, how many tasks it runs.
///
/// ```
/// let config = peer_net::Config::new()
///     .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
///     .mdns(false)
///     .workers(2);
/// assert_eq!(config.worker_count(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) listen: Vec<Multiaddr>,
    pub(crate) bootstrap: Vec<Multiaddr>,
    pub(crate) mdns: bool,
    pub(crate) swarm_key: Option<SwarmKey>,
    pub(crate) workers: usize,
    pub(crate) max_frame: usize,
    pub(crate) inline_max: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) identity: Option<Identity>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Vec::new(),
            bootstrap: Vec::new(),
            mdns: true,
            swarm_key: None,
            workers: 0,
            max_frame: 64 << 20,
            inline_max: 64 << 10,
            request_timeout: Duration::from_secs(30),
            identity: None,
        }
    }
}

impl Config {
    /// Listens on all interfaces on a free TCP port, mDNS on, one worker per core.
    pub fn new() -> Config {
        Config::default()
    }

    /// Listens on `addr` (repeatable); with none, `/ip4/0.0.0.0/tcp/0`.
    pub fn listen(mut self, addr: Multiaddr) -> Config {
        self.listen.push(addr);
        self
    }

    /// Dials `addr`, which ends in `/p2p/<peer id>`, to join its swarm (repeatable).
    pub fn bootstrap(mut self, addr: Multiaddr) -> Config {
        self.bootstrap.push(addr);
        self
    }

    /// Finds peers on the LAN by mDNS (on by default). Turn it off in tests on loopback:
    /// mDNS advertises the machine's real interfaces.
    pub fn mdns(mut self, on: bool) -> Config {
        self.mdns = on;
        self
    }

    /// Talks only to peers with the same pre-shared key (libp2p's private networks).
    pub fn swarm_key(mut self, key: SwarmKey) -> Config {
        self.swarm_key = Some(key);
        self
    }

    /// Runs this many tasks at once; 0 (the default) means one per core.
    pub fn workers(mut self, n: usize) -> Config {
        self.workers = n;
        self
    }

    /// Refuses frames (requests, responses, results) longer than this; 64 MiB by default.
    pub fn max_frame(mut self, bytes: usize) -> Config {
        self.max_frame = bytes;
        self
    }

    /// Results up to this size travel with the finish notice instead of being fetched;
    /// 64 KiB by default.
    pub fn inline_max(mut self, bytes: usize) -> Config {
        self.inline_max = bytes;
        self
    }

    /// Joins as this identity (its peer id survives restarts); a new one each time by
    /// default.
    pub fn identity(mut self, identity: Identity) -> Config {
        self.identity = Some(identity);
        self
    }

    /// The number of workers this config asks for, resolving 0 to the core count.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// A peer's identity: the key pair its peer id is derived from. Kept in a file, it lets a
/// peer keep its id across restarts.
#[derive(Clone)]
pub struct Identity(pub(crate) Keypair);

impl Identity {
    /// A new random (ed25519) identity.
    pub fn generate() -> Identity {
        Identity(Keypair::generate_ed25519())
    }

    /// An identity from [`to_bytes`](Identity::to_bytes)'s encoding (libp2p's protobuf).
    pub fn from_bytes(bytes: &[u8]) -> Result<Identity, Error> {
        Keypair::from_protobuf_encoding(bytes)
            .map(Identity)
            .map_err(|e| Error::Identity(e.to_string()))
    }

    /// Its encoding, secret key included: keep it private.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        self.0
            .to_protobuf_encoding()
            .map_err(|e| Error::Identity(e.to_string()))
    }

    /// The peer id it gives.
    pub fn peer_id(&self) -> libp2p::PeerId {
        self.0.public().to_peer_id()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.peer_id())
    }
}

/// A pre-shared key that makes a private swarm: peers without it cannot connect.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SwarmKey(pub(crate) PreSharedKey);

impl SwarmKey {
    /// A new random key.
    pub fn generate() -> Result<SwarmKey, Error> {
        let mut bytes = [0u8; 32];
        let mut urandom =
            std::fs::File::open("/dev/urandom").map_err(|e| Error::SwarmKey(e.to_string()))?;
        std::io::Read::read_exact(&mut urandom, &mut bytes)
            .map_err(|e| Error::SwarmKey(e.to_string()))?;
        Ok(SwarmKey(PreSharedKey::new(bytes)))
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> SwarmKey {
        SwarmKey(PreSharedKey::new(bytes))
    }
}

impl FromStr for SwarmKey {
    type Err = Error;

    /// Parses a key file (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits).
    fn from_str(s: &str) -> Result<SwarmKey, Error> {
        PreSharedKey::from_str(s.trim())
            .map(SwarmKey)
            .map_err(|e| Error::SwarmKey(e.to_string()))
    }
}

impl fmt::Display for SwarmKey {
    /// The key file format that [`FromStr`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for SwarmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SwarmKey({})", self.0.fingerprint())
    }
}
