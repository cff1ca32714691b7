//! How to join a swarm.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::identity::Keypair;
use libp2p::pnet::PreSharedKey;

use crate::error::Error;

/// How a peer joins a swarm: where it listens, whom it knows, how many tasks it runs, and
/// how much a remote peer can make it hold.
///
/// Safe by default: without a [swarm key](Config::swarm_key) a peer listens on loopback
/// only and mDNS is off, so only processes of this machine can reach it; listening on any
/// other address without a key is refused unless [`insecure_open`](Config::insecure_open)
/// asks for it by name. The bounds are documented in `docs/security.md`.
///
/// ```
/// let config = peer_net::Config::new()
///     .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
///     .mdns(false)
///     .workers(2);
/// assert_eq!(config.worker_count(), 2);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    pub(crate) listen: Vec<Multiaddr>,
    pub(crate) bootstrap: Vec<Multiaddr>,
    pub(crate) mdns: Option<bool>,
    pub(crate) swarm_key: Option<SwarmKey>,
    pub(crate) insecure_open: bool,
    pub(crate) workers: usize,
    pub(crate) max_frame: usize,
    pub(crate) inline_max: usize,
    pub(crate) keep_below: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) identity: Option<Identity>,
    pub(crate) withheld: Vec<String>,
    pub(crate) own_only: Vec<String>,
    pub(crate) limits: Limits,
    pub(crate) home: bool,
}

/// Bounds on what remote peers can make this peer hold; every field has a default that
/// `docs/security.md` lists with its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Established incoming connections, from all peers together (256).
    pub connections_in: u32,
    /// Incoming connections still in their handshake (64).
    pub pending_in: u32,
    /// Established connections with one peer, both ways (2).
    pub connections_per_peer: u32,
    /// Request-response streams open at once on one connection, both ways (256).
    pub streams_per_connection: usize,
    /// Largest gossip message, in bytes (1 MiB; libp2p's own limit is 16 MiB).
    pub gossip_bytes: usize,
    /// Gossip batches taken from one peer per second, on average, with a second's worth at
    /// once; more are dropped (1,000: a peer batches its events every 20 ms, or sooner when
    /// 1,024 are waiting).
    pub gossip_per_sec: u32,
    /// Tasks taken in one push or one steal answer (64).
    pub tasks_per_message: usize,
    /// Ready tasks pushed or stolen from other peers queued here at once (16,384).
    pub ready_from_others: usize,
    /// Published values kept, and their bytes together; the oldest go first (4,096 and
    /// 64 MiB).
    pub published: usize,
    /// See [`published`](Limits::published).
    pub published_bytes: usize,
    /// Detached jobs of other peers known, and the bytes of their descriptions (1,024 and
    /// 64 MiB): past them, jobs heard of are not recorded (this peer cannot adopt them), so
    /// that a flood cannot push out the jobs known first. This peer's own always are.
    pub jobs: usize,
    /// See [`jobs`](Limits::jobs).
    pub job_bytes: usize,
    /// Named primitives this peer is the home or backup of (16,384).
    pub prim_keys: usize,
    /// Bytes of queue items one peer may have queued at the primitives homed here (64 MiB).
    pub queued_bytes_per_peer: usize,
    /// Identities remembered by gossip ordering and failure detection after they leave
    /// (4,096).
    pub remembered_peers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_in: 256,
            pending_in: 64,
            connections_per_peer: 2,
            streams_per_connection: 256,
            gossip_bytes: 1 << 20,
            gossip_per_sec: 1_000,
            tasks_per_message: 64,
            ready_from_others: 16_384,
            published: 4_096,
            published_bytes: 64 << 20,
            jobs: 1_024,
            job_bytes: 64 << 20,
            prim_keys: 16_384,
            queued_bytes_per_peer: 64 << 20,
            remembered_peers: 4_096,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Vec::new(),
            bootstrap: Vec::new(),
            mdns: None,
            swarm_key: None,
            insecure_open: false,
            workers: 0,
            max_frame: 64 << 20,
            inline_max: 64 << 10,
            keep_below: Duration::from_micros(20),
            request_timeout: Duration::from_secs(30),
            identity: None,
            withheld: Vec::new(),
            own_only: Vec::new(),
            limits: Limits::default(),
            home: true,
        }
    }
}

impl Config {
    /// Listens on a free TCP port of loopback (all interfaces when a swarm key is set),
    /// mDNS on only with a key, one worker per core.
    pub fn new() -> Config {
        Config::default()
    }

    /// Listens on `addr` (repeatable). With none: `/ip4/0.0.0.0/tcp/0` when a swarm key is
    /// set (or [`insecure_open`](Config::insecure_open)), else `/ip4/127.0.0.1/tcp/0`.
    /// An address other than loopback needs a key or `insecure_open`.
    pub fn listen(mut self, addr: Multiaddr) -> Config {
        self.listen.push(addr);
        self
    }

    /// Whether this peer may be the home (or backup) of named primitives (the default). A
    /// short-lived peer (a command that submits a job or looks at the swarm) says no, so
    /// that the swarm's locks, queues and variables stay with the peers that stay: the
    /// others leave it out when they rank homes. When every peer says no, they are homes
    /// all the same.
    pub fn home(mut self, yes: bool) -> Config {
        self.home = yes;
        self
    }

    /// Lets a peer without a swarm key listen on addresses other than loopback: anyone who
    /// reaches its port can then join, submit tasks and use every primitive. Off by default.
    pub fn insecure_open(mut self, open: bool) -> Config {
        self.insecure_open = open;
        self
    }

    /// Does not serve the named task registered under `name` (repeatable): the peer neither
    /// offers to run it nor runs it when handed it (the shell-command task of `peer`,
    /// unless `--allow-shell`).
    pub fn withhold_task(mut self, name: impl Into<String>) -> Config {
        self.withheld.push(name.into());
        self
    }

    /// Runs the named task registered under `name` only for this peer's own submissions
    /// (repeatable): it is not offered to others, and a task of another owner handed here
    /// fails with `NotServed`. `peer map` runs its user's commands so, without serving
    /// other members' commands.
    pub fn serve_own_only(mut self, name: impl Into<String>) -> Config {
        self.own_only.push(name.into());
        self
    }

    /// Sets the bounds on what remote peers can make this peer hold.
    pub fn limits(mut self, limits: Limits) -> Config {
        self.limits = limits;
        self
    }

    /// The bounds in force.
    pub fn current_limits(&self) -> Limits {
        self.limits
    }

    /// The addresses this peer will listen on (see [`listen`](Config::listen)).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        if !self.listen.is_empty() {
            return self.listen.clone();
        }
        let any = self.swarm_key.is_some() || self.insecure_open;
        let addr = if any {
            "/ip4/0.0.0.0/tcp/0"
        } else {
            "/ip4/127.0.0.1/tcp/0"
        };
        vec![addr.parse().expect("a valid literal address")]
    }

    /// Whether mDNS is on: as set, else only with a swarm key.
    pub fn mdns_on(&self) -> bool {
        self.mdns.unwrap_or(self.swarm_key.is_some())
    }

    /// Whether this peer is open to anyone who reaches it: no swarm key, and listening on
    /// (or finding peers on) more than loopback.
    pub fn is_open(&self) -> bool {
        self.swarm_key.is_none()
            && (self.mdns_on() || self.listen_addrs().iter().any(|a| !is_loopback(a)))
    }

    /// Refuses an open peer that was not asked for by name.
    pub(crate) fn check_open(&self) -> Result<(), Error> {
        if self.is_open() && !self.insecure_open {
            let addrs: Vec<String> = (self.listen_addrs().iter())
                .filter(|a| !is_loopback(a))
                .map(ToString::to_string)
                .collect();
            let what = if addrs.is_empty() {
                "mDNS on".to_string()
            } else {
                format!("listening on {}", addrs.join(", "))
            };
            return Err(Error::Open(what));
        }
        Ok(())
    }

    /// Dials `addr`, which ends in `/p2p/<peer id>`, to join its swarm (repeatable).
    pub fn bootstrap(mut self, addr: Multiaddr) -> Config {
        self.bootstrap.push(addr);
        self
    }

    /// Finds peers on the LAN by mDNS (on by default only with a swarm key; without one,
    /// turning it on needs [`insecure_open`](Config::insecure_open)). Turn it off in tests
    /// on loopback: mDNS advertises the machine's real interfaces.
    pub fn mdns(mut self, on: bool) -> Config {
        self.mdns = Some(on);
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

    /// How long a request to another peer waits for its answer, and a write on a link for
    /// the other side to take it, before the request fails (or the link ends); 30 s by
    /// default.
    pub fn request_timeout(mut self, timeout: Duration) -> Config {
        self.request_timeout = timeout;
        self
    }

    /// Results up to this size travel with the finish notice instead of being fetched;
    /// 64 KiB by default.
    pub fn inline_max(mut self, bytes: usize) -> Config {
        self.inline_max = bytes;
        self
    }

    /// Named tasks whose runs on this peer average less than this, with results that
    /// travel inline, run on this peer's own pool when its clients submit them, as a local
    /// client's would, instead of going through the swarm: handing a task on costs the
    /// submitter more than that (`net/src/local_first.rs`). While the pool is behind (over
    /// 4 ms of such work per worker) and a peer is up, those of 5 µs or more go to the swarm
    /// in batches of about 2 ms of calls each (`net/src/batch.rs`). 20 µs by default; zero
    /// sends every call through the swarm.
    pub fn keep_below(mut self, run_time: Duration) -> Config {
        self.keep_below = run_time;
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
            // libp2p's error names its own variants (`InvalidKeyFile`): say what a key
            // file holds instead.
            .map_err(|_| {
                Error::SwarmKey(
                    "not a swarm key file: it holds three lines, /key/swarm/psk/1.0.0/, \
                     /base16/ and 64 hexadecimal digits (`peer keygen` writes one)"
                        .into(),
                )
            })?;
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
            // libp2p's error names its own variants (`InvalidKeyFile`): say what a key
            // file holds instead.
            .map_err(|_| {
                Error::SwarmKey(
                    "not a swarm key file: it holds three lines, /key/swarm/psk/1.0.0/, \
                     /base16/ and 64 hexadecimal digits (`peer keygen` writes one)"
                        .into(),
                )
            })
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

/// Whether `addr` is on loopback (127.0.0.0/8, ::1, or a `/dns*/localhost`).
fn is_loopback(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        Some(Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h)) => h == "localhost",
        Some(Protocol::Memory(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_a_key_a_peer_stays_on_loopback() {
        let config = Config::new();
        assert_eq!(config.listen_addrs(), vec![addr("/ip4/127.0.0.1/tcp/0")]);
        assert!(!config.mdns_on());
        assert!(!config.is_open());
        assert!(config.check_open().is_ok());
    }

    #[test]
    fn an_open_address_without_a_key_must_be_asked_for() {
        let config = Config::new().listen(addr("/ip4/0.0.0.0/tcp/4001"));
        let error = config.check_open().unwrap_err().to_string();
        assert!(error.contains("/ip4/0.0.0.0/tcp/4001"), "{error}");
        assert!(error.contains("insecure"), "{error}");
        assert!(config.insecure_open(true).check_open().is_ok());
        let mdns = Config::new().mdns(true);
        assert!(mdns.check_open().unwrap_err().to_string().contains("mDNS"));
    }

    #[test]
    fn a_keyed_peer_listens_everywhere_and_finds_peers_by_mdns() {
        let config = Config::new().swarm_key(SwarmKey::from_bytes([7; 32]));
        assert_eq!(config.listen_addrs(), vec![addr("/ip4/0.0.0.0/tcp/0")]);
        assert!(config.mdns_on());
        assert!(!config.is_open());
        assert!(config.check_open().is_ok());
    }
}
