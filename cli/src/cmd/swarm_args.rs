//! How a one-shot command (`uts`, `sweep`, `map`, `status`, ...) joins a swarm.

use std::time::Duration;

use super::Exit;
use peer_core::NamedTask;
use peer_net::{Config, Multiaddr, Peer, SwarmKey};
use peer_workloads::shell::RunTask;

/// Options for joining a swarm, shared by the commands that run work on one, and for a
/// binary's own commands (`#[command(flatten)]`): without `--bootstrap` or `--mdns` the
/// command runs alone on a local client, with one of them on a swarm.
#[derive(Debug, Clone, clap::Args)]
pub struct SwarmArgs {
    /// Join the swarm of this peer instead of running alone.
    #[arg(long)]
    bootstrap: Option<Multiaddr>,
    /// Other peers to wait for before starting (with `--bootstrap` or `--mdns`).
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
    /// Worker threads of this peer (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Seconds to wait for the peers asked for before giving up (exit code 3).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    join_timeout: u64,
    /// The swarm key file of a private swarm (`peer keygen`).
    #[arg(long, value_name = "FILE", env = "PEER_SWARM_KEY")]
    swarm_key: Option<std::path::PathBuf>,
    /// Without a swarm key, listen on an address other than loopback (or use --mdns)
    /// anyway: anyone who reaches it may join and run tasks here while this command runs.
    #[arg(
        long,
        env = "PEER_INSECURE_OPEN",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    insecure_open: bool,
}

impl SwarmArgs {
    /// The client a command runs on: a local one when it joins no other peers, else the
    /// client of a peer joined to the swarm (which stays up while any clone of the client
    /// lives). The peer does not run shell commands.
    pub fn client(&self) -> anyhow::Result<peer_core::Client> {
        if !self.joins_others() && self.listen.is_none() {
            let mut builder = peer_core::Client::builder();
            if let Some(n) = self.workers {
                builder = builder.workers(n);
            }
            return Ok(builder.build()?);
        }
        Ok(self.join()?.into_client())
    }

    /// Joins the peer at `bootstrap` on loopback, waiting for `wait_peers` peers.
    pub(crate) fn loopback(bootstrap: Multiaddr, wait_peers: usize) -> SwarmArgs {
        SwarmArgs {
            bootstrap: Some(bootstrap),
            wait_peers,
            mdns: false,
            listen: None,
            workers: Some(1),
            join_timeout: 30,
            swarm_key: None,
            insecure_open: false,
        }
    }

    /// Whether this command joins other peers (`--bootstrap` or `--mdns`), rather than
    /// running alone.
    pub(crate) fn joins_others(&self) -> bool {
        self.bootstrap.is_some() || self.mdns
    }

    /// Starts this peer and waits for the peers asked for. It does not run shell commands
    /// (only `peer map` and `peer submit` do, through [`join_with`](SwarmArgs::join_with)):
    /// a command that joins a swarm to count or to look must not run other members'.
    pub(crate) fn join(&self) -> anyhow::Result<Peer> {
        self.join_with(|config| config.withhold_task(RunTask::NAME))
    }

    /// Starts this peer to look only (`status`, `published`): it serves no task, so that a
    /// short-lived command takes no part of a running job.
    pub(crate) fn join_to_look(&self) -> anyhow::Result<Peer> {
        self.join_with(|config| {
            (peer_core::named::registry().iter())
                .fold(config, |config, r| config.withhold_task(r.name()))
        })
    }

    /// Starts this peer, with `adjust` applied to its config last, and waits for the peers
    /// asked for.
    pub(crate) fn join_with(&self, adjust: impl FnOnce(Config) -> Config) -> anyhow::Result<Peer> {
        let listen = match (&self.listen, self.mdns) {
            (Some(addr), _) => addr.clone(),
            (None, true) => "/ip4/0.0.0.0/tcp/0".parse()?,
            (None, false) => "/ip4/127.0.0.1/tcp/0".parse()?,
        };
        let mut config = Config::new()
            .listen(listen)
            .mdns(self.mdns)
            .insecure_open(self.insecure_open);
        if let Some(n) = self.workers {
            config = config.workers(n);
        }
        if let Some(addr) = &self.bootstrap {
            // `/dns4/host/...` works too (resolved here: the transport dials IP addresses).
            let addr = super::join::resolve(addr).map_err(|e| Exit {
                code: Exit::CANNOT_JOIN,
                message: format!("cannot join the swarm: {e:#}"),
            })?;
            config = config.bootstrap(addr);
        }
        if let Some(path) = &self.swarm_key {
            let key = std::fs::read_to_string(path)
                .map_err(anyhow::Error::from)
                .and_then(|text| Ok(text.parse::<SwarmKey>()?))
                .map_err(|e| Exit {
                    code: Exit::CANNOT_JOIN,
                    message: format!("cannot read the swarm key {}: {e}", path.display()),
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
        let client = super::open::join(config, "join the swarm")?;
        if self.joins_others() {
            let seen =
                client.wait_for_peers(self.wait_peers, Duration::from_secs(self.join_timeout));
            if seen < self.wait_peers {
                let why = client
                    .status()
                    .ok()
                    .and_then(|s| s.last_dial_error)
                    .map_or(String::new(), |e| format!("; last dial: {e}"));
                return Err(Exit {
                    code: Exit::CANNOT_JOIN,
                    message: format!(
                        "cannot join the swarm: only {seen} of {} peers connected within {} s \
                         (a wrong --swarm-key, or no route to --bootstrap?){why}",
                        self.wait_peers, self.join_timeout
                    ),
                }
                .into());
            }
        }
        Ok(client)
    }
}

/// Prints one line per suspicion of this peer and of the peers up, earliest first: who was
/// suspected, when (Unix nanoseconds), why, how many of the suspecting peer's tasks ran
/// again, and by whom (tasks are owned by whoever submitted them, so their owners notice
/// first).
pub(crate) fn print_recoveries(client: &Peer) -> anyhow::Result<()> {
    for (by, r) in client.suspicions()? {
        let at =
            r.at.duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
        println!(
            "recovery: peer={} at_unix_ns={at} reason={:?} requeued={} by={by}",
            r.peer, r.reason, r.requeued
        );
    }
    Ok(())
}
