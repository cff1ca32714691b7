//! How a one-shot command (`map`, `submit`, `status`, a user's binary's own, ...) finds and
//! joins a swarm: `--bootstrap` (or `PEER_BOOTSTRAP`), else `--mdns`, else the peers of
//! this machine's swarm file; none of these is an error (exit 3) unless `--alone`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Exit;
use super::dial;
use super::swarm_file;
use peer_core::NamedTask;
use peer_net::{Config, Multiaddr, Peer};
use peer_workloads::shell::RunTask;

/// The most worker threads a peer runs (`--workers`): far more than a machine has cores, and
/// few enough that a typo cannot start a machine-stopping number of threads.
pub(crate) const MAX_WORKERS: usize = 1024;

/// Exit code of a usage error.
const USAGE: u8 = 2;

/// Options for joining a swarm, shared by the commands that run work on one, and for a
/// binary's own commands (`#[command(flatten)]`): the command joins the swarm of
/// `--bootstrap`, of mDNS, or of the swarm file that `peer join` writes on this machine, or
/// runs alone on a local client with `--alone`.
#[derive(Debug, Clone, clap::Args)]
pub struct SwarmArgs {
    /// Join the swarm of this peer, `/ip4/.../tcp/.../p2p/<id>` as `peer join` prints it
    /// (repeatable, or comma-separated in PEER_BOOTSTRAP) [default: the peers in the swarm
    /// file].
    #[arg(
        long,
        env = "PEER_BOOTSTRAP",
        value_name = "ADDR",
        value_delimiter = ',',
        value_parser = parse_bootstrap
    )]
    bootstrap: Vec<Multiaddr>,
    /// Run alone on this machine, without a swarm.
    #[arg(long, conflicts_with_all = ["bootstrap", "mdns"])]
    alone: bool,
    /// The swarm file `peer join` keeps the addresses of this machine's peers in, read when
    /// no --bootstrap is given [default: $XDG_DATA_HOME/peer/swarm.json].
    #[arg(long, env = "PEER_SWARM_FILE", value_name = "FILE")]
    swarm_file: Option<PathBuf>,
    /// Other peers to wait for before starting.
    #[arg(long, default_value_t = 1)]
    wait_peers: usize,
    /// Find peers on the LAN by mDNS (off by default: these commands are mostly run on one
    /// machine). Needs --swarm-key (or --insecure-open).
    #[arg(long)]
    mdns: bool,
    /// Listen on this address (default `/ip4/127.0.0.1/tcp/0`, or all interfaces with
    /// `--mdns`). An address other than loopback needs --swarm-key (or --insecure-open).
    #[arg(long)]
    listen: Option<Multiaddr>,
    /// Tasks this command runs itself at once (GNU parallel's -j), at most 1024 (default:
    /// one per core; for `map` and `submit`: none unless --alone); 0: none, it only submits.
    #[arg(short = 'j', long, value_name = "N", value_parser = parse_workers)]
    workers: Option<usize>,
    /// Seconds to wait for the peers asked for before giving up (exit code 3).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    join_timeout: u64,
    /// The swarm key file of a private swarm (`peer keygen`) [default: the one the swarm
    /// file names].
    #[arg(long, value_name = "FILE", env = "PEER_SWARM_KEY")]
    swarm_key: Option<PathBuf>,
    /// Without a swarm key, listen on an address other than loopback (or use --mdns)
    /// anyway: anyone who reaches it may join and run tasks here while this command runs.
    #[arg(
        long,
        env = "PEER_INSECURE_OPEN",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    insecure_open: bool,
}

/// A `--workers` count: 0 to [`MAX_WORKERS`].
pub(crate) fn parse_workers(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of workers"))?;
    if n > MAX_WORKERS {
        return Err(format!(
            "{n} workers is more than the limit of {MAX_WORKERS} (one per core is the \
             default; a peer rarely wants more than a few per core)"
        ));
    }
    Ok(n)
}

/// A bootstrap address: a multiaddr that names its peer (`.../p2p/<id>`), as `peer join`
/// prints it; anything else is a usage error.
pub(crate) fn parse_bootstrap(s: &str) -> Result<Multiaddr, String> {
    let addr: Multiaddr = s.trim().parse().map_err(|_| {
        format!("{s:?} is not an address like /ip4/10.0.0.5/tcp/41234/p2p/12D3KooW...")
    })?;
    if !addr.to_string().contains("/p2p/") {
        return Err(format!(
            "{s} does not say which peer it is: copy the whole address `peer join` prints, \
             ending in /p2p/<peer id>"
        ));
    }
    Ok(addr)
}

/// Where a command's swarm is.
enum Found {
    /// No swarm: `--alone`.
    Alone,
    /// The peers at these addresses (with the swarm key file the swarm file names).
    At {
        addrs: Vec<Multiaddr>,
        key: Option<PathBuf>,
    },
    /// Whoever mDNS finds.
    Mdns,
}

impl SwarmArgs {
    /// The client a command runs on: a local one with `--alone`, else the client of a peer
    /// joined to the swarm (which stays up while any clone of the client lives). The peer
    /// does not run shell commands; with `--workers 0` it runs no task at all.
    pub fn client(&self) -> anyhow::Result<peer_core::Client> {
        if self.alone {
            let mut builder = peer_core::Client::builder();
            match self.workers {
                Some(0) => {
                    return Err(usage(
                        "--alone with --workers 0: nothing would run the tasks; give \
                         --workers N (N ≥ 1) or join a swarm",
                    ));
                }
                Some(n) => builder = builder.workers(n),
                None => {}
            }
            return Ok(builder.build()?);
        }
        let peer = if self.workers == Some(0) {
            self.join_to_look()?
        } else {
            self.join()?
        };
        Ok(peer.into_client())
    }

    /// Joins the peer at `bootstrap` on loopback, waiting for `wait_peers` peers.
    pub fn loopback(bootstrap: Multiaddr, wait_peers: usize) -> SwarmArgs {
        SwarmArgs {
            bootstrap: vec![bootstrap],
            alone: false,
            swarm_file: None,
            wait_peers,
            mdns: false,
            listen: None,
            workers: Some(1),
            join_timeout: 30,
            swarm_key: None,
            insecure_open: false,
        }
    }

    /// Whether `--alone` asks to run without a swarm.
    pub(crate) fn alone(&self) -> bool {
        self.alone
    }

    /// Whether this command joins other peers (it is not `--alone`).
    pub(crate) fn joins_others(&self) -> bool {
        !self.alone
    }

    /// The `--workers` asked for, if any.
    pub(crate) fn workers(&self) -> Option<usize> {
        self.workers
    }

    /// Starts this peer and waits for the peers asked for. It does not run shell commands
    /// (only `peer map` and `peer submit` do, through `join_with`):
    /// a command that joins a swarm to count or to look must not run other members'.
    pub fn join(&self) -> anyhow::Result<Peer> {
        self.join_with(|config| config.withhold_task(RunTask::NAME))
    }

    /// Starts this peer to look only (`status`, `jobs`, `cancel`, ...): it serves no task,
    /// so that a short-lived command takes no part of a running job.
    pub fn join_to_look(&self) -> anyhow::Result<Peer> {
        self.join_with(|config| {
            // Short-lived: the swarm's primitives stay with the peers that stay.
            let config = config.workers(1).home(false);
            (peer_core::named::registry().iter())
                .fold(config, |config, r| config.withhold_task(r.name()))
        })
    }

    /// Where the swarm is: `--bootstrap`/`PEER_BOOTSTRAP`, `--mdns`, or the swarm file.
    fn find(&self) -> anyhow::Result<Found> {
        if self.alone {
            return Ok(Found::Alone);
        }
        if !self.bootstrap.is_empty() {
            return Ok(Found::At {
                addrs: self.bootstrap.clone(),
                key: None,
            });
        }
        if self.mdns {
            return Ok(Found::Mdns);
        }
        let path = match self.swarm_file.clone() {
            // As for `peer join`: no swarm file at all.
            Some(path) if path.as_os_str() == "none" => None,
            Some(path) => Some(path),
            None => swarm_file::default_path(),
        };
        let tried = match &path {
            Some(path) => {
                let live = swarm_file::live_members(path)?;
                let (members, swarms) = swarm_file::one_swarm(&live, self.swarm_key.as_deref());
                if swarms > 1 && !members.is_empty() {
                    let which = match &members[0].swarm_key {
                        Some(key) => format!("the one of the key {}", key.display()),
                        None => "the one without a key".to_string(),
                    };
                    super::say(format_args!(
                        "note: the swarm file {} lists peers of {swarms} swarms; joining {which} \
                         (--swarm-key FILE or --bootstrap ADDR picks another)",
                        path.display()
                    ));
                }
                let addrs: Vec<Multiaddr> = (members.iter())
                    .flat_map(|m| m.addrs.iter().filter_map(|a| a.parse().ok()))
                    .collect();
                if !addrs.is_empty() {
                    return Ok(Found::At {
                        addrs,
                        key: members.first().and_then(|m| m.swarm_key.clone()),
                    });
                }
                if path.exists() {
                    format!("the swarm file {} (its peers have exited)", path.display())
                } else {
                    format!(
                        "the swarm file {} (none: no `peer join` here)",
                        path.display()
                    )
                }
            }
            None => "no swarm file (`none`, or no $HOME or $XDG_DATA_HOME)".to_string(),
        };
        Err(Exit {
            code: Exit::CANNOT_JOIN,
            message: format!(
                "no swarm found: no --bootstrap (nor PEER_BOOTSTRAP) given, and {tried}. \
                 Start a peer with `{} join`, give --bootstrap ADDR, or --alone to run on \
                 this machine alone",
                super::join::program()
            ),
        }
        .into())
    }

    /// Starts this peer, with `adjust` applied to its config last, and waits for the peers
    /// asked for; fails at once when a bootstrap peer is not the one its address names.
    pub(crate) fn join_with(&self, adjust: impl FnOnce(Config) -> Config) -> anyhow::Result<Peer> {
        let (bootstrap, file_key) = match self.find()? {
            // A peer of its own on loopback, joined by nobody it is not told of.
            Found::Alone => (Vec::new(), None),
            Found::At { addrs, key } => (addrs, key),
            Found::Mdns => (Vec::new(), None),
        };
        let listen = match (&self.listen, self.mdns) {
            (Some(addr), _) => addr.clone(),
            (None, true) => "/ip4/0.0.0.0/tcp/0".parse()?,
            (None, false) => "/ip4/127.0.0.1/tcp/0".parse()?,
        };
        let mut config = Config::new()
            .listen(listen)
            .mdns(self.mdns)
            .insecure_open(self.insecure_open);
        if let Some(n) = self.workers.filter(|&n| n > 0) {
            config = config.workers(n);
        }
        let mut resolved = Vec::new();
        for addr in &bootstrap {
            // `/dns4/host/...` works too (resolved here: the transport dials IP addresses).
            let addr = super::join::resolve(addr).map_err(|e| Exit {
                code: Exit::CANNOT_JOIN,
                message: format!("cannot join the swarm: {e:#}"),
            })?;
            config = config.bootstrap(addr.clone());
            resolved.push(addr);
        }
        if let Some(path) = self.swarm_key.as_ref().or(file_key.as_ref()) {
            let key = super::keygen::read_swarm_key(path).map_err(|e| Exit {
                code: USAGE,
                message: format!("{e:#}"),
            })?;
            config = config.swarm_key(key);
        }
        let config = adjust(config);
        super::open::check(
            &config,
            self.insecure_open,
            "--swarm-key FILE (the swarm's key)",
            "any task this command's peer serves",
        )?;
        let peer = super::open::join(config, "join the swarm")?;
        if !self.alone {
            self.wait_for_peers(&peer, &resolved)?;
        }
        Ok(peer)
    }

    /// Waits for `--wait-peers` peers; fails (exit 3) when the time-out passes, at once when
    /// a bootstrap peer answers with another peer id, and two seconds after a dial failed
    /// for good (refused, or a failed handshake) while no peer connected.
    fn wait_for_peers(&self, peer: &Peer, bootstrap: &[Multiaddr]) -> anyhow::Result<()> {
        let timeout = Duration::from_secs(self.join_timeout);
        let start = Instant::now();
        let mut failed_since: Option<Instant> = None;
        loop {
            let seen = peer.peers();
            if seen >= self.wait_peers {
                return Ok(());
            }
            let dial_error = peer.status().ok().and_then(|s| s.last_dial_error);
            let why = dial::Why::of(dial_error.as_deref());
            let give_up = match why {
                dial::Why::WrongPeer if seen == 0 => true,
                dial::Why::Refused | dial::Why::Handshake if seen == 0 => failed_since
                    .get_or_insert_with(Instant::now)
                    .elapsed()
                    .ge(&Duration::from_secs(2)),
                _ => false,
            };
            if give_up || start.elapsed() >= timeout {
                let message = if seen == 0 || give_up {
                    dial::cannot_join(bootstrap, timeout, dial_error.as_deref())
                } else {
                    format!(
                        "cannot join the swarm: only {seen} of {} peers connected within {} s \
                         (--wait-peers)",
                        self.wait_peers, self.join_timeout
                    )
                };
                return Err(Exit {
                    code: Exit::CANNOT_JOIN,
                    message,
                }
                .into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Waits until no new peer has appeared for `quiet` (at most ten times that): a peer that
/// just joined knows its bootstrap peers first and the rest of the swarm a few round trips
/// later, and a named primitive's home is computed over the peers it knows, so a command
/// that reads or writes the swarm's primitives (the job record) settles first.
pub(crate) fn settle(peer: &Peer, quiet: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + quiet * 10;
    let mut seen = peer.status()?.peers;
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < quiet && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let now = peer.status()?.peers;
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        }
    }
    Ok(())
}

fn usage(message: &str) -> anyhow::Error {
    Exit {
        code: USAGE,
        message: message.into(),
    }
    .into()
}

/// Prints one line per suspicion of this peer and of the peers up, earliest first: who was
/// suspected, when (Unix nanoseconds), why, how many of the suspecting peer's tasks ran
/// again, and by whom (tasks are owned by whoever submitted them, so their owners notice
/// first).
pub fn print_recoveries(client: &Peer) -> anyhow::Result<()> {
    for r in client.suspicions()? {
        let at =
            r.at.duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
        println!(
            "recovery: peer={} at_unix_ns={at} reason={:?} requeued={} by={}",
            r.peer, r.reason, r.requeued, r.by
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_counts_are_bounded() {
        assert_eq!(parse_workers("0"), Ok(0));
        assert_eq!(parse_workers("1024"), Ok(1024));
        let error = parse_workers("100000").unwrap_err();
        assert!(error.contains("limit of 1024"), "{error}");
        assert!(parse_workers("-1").is_err());
        assert!(parse_workers("many").is_err());
    }

    #[test]
    fn a_bootstrap_address_must_name_its_peer() {
        let id = "12D3KooWEXgfLK2UbCmJ4e7cfSAovUd4RkSjSYzQcYbDVRFeYJpu";
        let whole = format!("/ip4/127.0.0.1/tcp/4001/p2p/{id}");
        assert_eq!(parse_bootstrap(&whole).unwrap().to_string(), whole);
        let error = parse_bootstrap("/ip4/127.0.0.1/tcp/4001").unwrap_err();
        assert!(error.contains("/p2p/<peer id>"), "{error}");
        let error = parse_bootstrap("10.0.0.5:4001").unwrap_err();
        assert!(error.contains("not an address"), "{error}");
    }
}
