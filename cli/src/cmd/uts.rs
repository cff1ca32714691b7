//! `peer uts`: count a UTS tree as named tasks on a swarm, checking the exact counts.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peer_net::{Client, Config, Multiaddr};
use peer_workloads::{swarm_uts, uts};

/// Options of `peer uts`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The tree: T1, T3, T1L or T3L.
    #[arg(default_value = "T1")]
    tree: String,
    /// Join the swarm of this peer instead of running alone.
    #[arg(long)]
    bootstrap: Option<Multiaddr>,
    /// Other peers to wait for before starting (with `--bootstrap` or `--mdns`).
    #[arg(long, default_value_t = 1)]
    wait_peers: usize,
    /// Find peers on the LAN by mDNS (off by default: this command is mostly run on one
    /// machine).
    #[arg(long)]
    mdns: bool,
    /// Listen on this address (default `/ip4/127.0.0.1/tcp/0`, or all interfaces with
    /// `--mdns`).
    #[arg(long)]
    listen: Option<Multiaddr>,
    /// Worker threads of this peer (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Nodes a task visits before handing on the rest of its stack (about 6 ms of hashing
    /// on one core here: long enough that a task's trip through the swarm is a small part).
    #[arg(long, default_value_t = 200_000)]
    chunk: u64,
    /// Parts a task's leftover stack is split into.
    #[arg(long, default_value_t = 4)]
    split: u32,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let known = uts::known(&args.tree)
        .with_context(|| format!("unknown tree {:?}: use T1, T3, T1L or T3L", args.tree))?;
    let listen = match (&args.listen, args.mdns) {
        (Some(addr), _) => addr.clone(),
        (None, true) => "/ip4/0.0.0.0/tcp/0".parse()?,
        (None, false) => "/ip4/127.0.0.1/tcp/0".parse()?,
    };
    let mut config = Config::new().listen(listen).mdns(args.mdns);
    if let Some(n) = args.workers {
        config = config.workers(n);
    }
    if let Some(addr) = &args.bootstrap {
        config = config.bootstrap(addr.clone());
    }
    let client = Client::join(config).context("joining the swarm")?;
    if args.bootstrap.is_some() || args.mdns {
        let seen = client.wait_for_peers(args.wait_peers, Duration::from_secs(30));
        if seen < args.wait_peers {
            bail!(
                "only {seen} of {} peers connected within 30 s",
                args.wait_peers
            );
        }
    }
    let start = Instant::now();
    let counts = swarm_uts::on_swarm(&client, known.name, args.chunk, args.split)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}: {} nodes, {} leaves, depth {} in {secs:.3} s ({:.2} M nodes/s)",
        known.name,
        counts.nodes,
        counts.leaves,
        counts.max_depth,
        counts.nodes as f64 / secs / 1e6
    );
    let stats = client.status()?.stats;
    println!(
        "tasks: {} submitted, {} ran on this peer, {} ran elsewhere",
        stats.submitted,
        stats.ran,
        stats.submitted.saturating_sub(stats.ran)
    );
    if counts != known.counts {
        bail!("wrong counts: expected {:?}", known.counts);
    }
    println!("counts exact");
    Ok(())
}
