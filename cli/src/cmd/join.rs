//! `peer join`: run a peer until killed, serving the named tasks this binary registers.

use std::time::Duration;

use anyhow::Context;
use peer_net::{Client, Config, Multiaddr, SwarmKey};

/// Options of `peer join`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Listen on this address (repeatable; default `/ip4/0.0.0.0/tcp/0`).
    #[arg(long)]
    listen: Vec<Multiaddr>,
    /// Join the swarm of this peer, `/ip4/.../tcp/.../p2p/<id>` (repeatable).
    #[arg(long)]
    bootstrap: Vec<Multiaddr>,
    /// Tasks run at once (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Do not look for peers on the LAN with mDNS.
    #[arg(long)]
    no_mdns: bool,
    /// A pre-shared swarm key file (`peer keygen` format); only peers with it connect.
    #[arg(long)]
    swarm_key: Option<std::path::PathBuf>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::new().mdns(!args.no_mdns);
    for addr in args.listen {
        config = config.listen(addr);
    }
    for addr in args.bootstrap {
        config = config.bootstrap(addr);
    }
    if let Some(n) = args.workers {
        config = config.workers(n);
    }
    if let Some(path) = &args.swarm_key {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the swarm key {}", path.display()))?;
        config = config.swarm_key(text.parse::<SwarmKey>()?);
    }
    let workers = config.worker_count();
    let client = Client::join(config).context("joining the swarm")?;
    let addrs = client.addresses();
    println!("peer {} with {workers} workers", client.peer_id());
    for addr in &addrs {
        println!("listening on {addr}");
    }
    let best = addrs
        .iter()
        .find(|a| !a.to_string().starts_with("/ip4/127."))
        .or(addrs.first())
        .context("no listen address")?;
    let key = match &args.swarm_key {
        Some(path) => format!(" --swarm-key {}", path.display()),
        None => String::new(),
    };
    println!("join it from another machine with:");
    println!("  peer join --bootstrap {best}{key}");
    let mut last_peers = usize::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let status = client.status()?;
        if status.peers != last_peers {
            last_peers = status.peers;
            println!("{} peers connected", status.peers);
        }
    }
}

/// The address a `peer join` child prints for others to bootstrap from, read from its
/// standard output; the rest of its output is drained in the background.
pub(crate) fn read_bootstrap_line(
    stdout: Option<std::process::ChildStdout>,
) -> anyhow::Result<Multiaddr> {
    use std::io::BufRead;
    let stdout = stdout.context("the peer's output is not piped")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(rest) = line.trim().strip_prefix("peer join --bootstrap ") {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            let addr = addr.parse().context("the printed address")?;
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(addr);
        }
    }
    anyhow::bail!("the peer ended before printing its address")
}
