//! `peer demo`: the seed's nested loop (load each file once, score every parameter against
//! it, keep the best) on an embedded swarm of in-process peers over loopback, on a swarm
//! reached through `--bootstrap`, or on one local pool with `--local`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peer_core::TaskFuture;
use peer_net::{Config, Peer};

/// Options of `peer demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Number of data sets (the outer loop).
    #[arg(long, default_value_t = 20, value_parser = positive)]
    files: usize,
    /// Number of parameters scored against each data set (the inner loop).
    #[arg(long, default_value_t = 500, value_parser = positive)]
    params: usize,
    /// Values in each data set (~8 bytes each).
    #[arg(long, default_value_t = 12_500, value_parser = positive)]
    values: usize,
    /// Peers of the embedded swarm, each a libp2p node on 127.0.0.1 in this process.
    #[arg(long, default_value_t = 3, value_parser = positive)]
    peers: usize,
    /// Worker threads per peer (default: the cores shared among the peers, at least 1).
    #[arg(long, value_parser = positive)]
    workers: Option<usize>,
    /// Join the swarm of this peer (`/ip4/.../tcp/.../p2p/...`) and run the job there
    /// instead of embedding one.
    #[arg(long, conflicts_with = "local")]
    bootstrap: Option<peer_net::Multiaddr>,
    /// Other peers to wait for before submitting, with `--bootstrap`.
    #[arg(long, default_value_t = 1, requires = "bootstrap")]
    wait_peers: usize,
    /// The swarm key file of the private swarm of `--bootstrap` (`peer keygen`); the
    /// embedded swarm uses it too.
    #[arg(long, value_name = "FILE", env = "PEER_SWARM_KEY")]
    swarm_key: Option<std::path::PathBuf>,
    /// Run on one in-process pool, no networking.
    #[arg(long)]
    local: bool,
}

fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Loads data set `file`: `values` pseudo-random numbers, the same on every peer.
#[peer_core::task(name = "peer::demo::load")]
pub(crate) fn load(file: u64, values: u64) -> Vec<f64> {
    peer_workloads::w2::data(file, values)
}

/// Scores a parameter as the seed does: how well exponential smoothing with weight
/// `param / 100` forecasts the data one step ahead (minus the root mean square of its
/// errors). Tens of microseconds over 12,500 values: long enough that handing calls to idle
/// peers pays (a call of a few microseconds stays on its submitter's pool, `Config::keep_below`).
#[peer_core::task(name = "peer::demo::score")]
pub(crate) fn score(param: f64, data: &Vec<f64>) -> f64 {
    let alpha = param / 100.0;
    let Some((&first, rest)) = data.split_first() else {
        return f64::NEG_INFINITY;
    };
    let (mut level, mut squares) = (first, 0.0);
    for &x in rest {
        let error = x - level;
        squares += error * error;
        level += alpha * error;
    }
    -(squares / rest.len().max(1) as f64).sqrt()
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    if args.local {
        return run_local(&args);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let peers = if args.bootstrap.is_some() {
        1
    } else {
        args.peers
    };
    let workers = args.workers.unwrap_or((cores / peers).max(1));
    // Its peers run the demo's tasks, never shell commands of other members.
    let mut base = Config::new()
        .listen("/ip4/127.0.0.1/tcp/0".parse()?)
        .mdns(false)
        .workers(workers)
        .withhold_task(<peer_workloads::shell::RunTask as peer_core::NamedTask>::NAME);
    if let Some(path) = &args.swarm_key {
        base = base.swarm_key(super::keygen::read_swarm_key(path)?);
    }
    let mut swarm = Vec::with_capacity(peers);
    let first = match &args.bootstrap {
        Some(addr) => Peer::join(base.clone().bootstrap(addr.clone())),
        None => Peer::join(base.clone()),
    }
    .context("starting the first peer")?;
    let first_addr = first
        .addresses()
        .into_iter()
        .next()
        .context("no listen address")?;
    swarm.push(first);
    for _ in 1..peers {
        let peer =
            Peer::join(base.clone().bootstrap(first_addr.clone())).context("starting a peer")?;
        swarm.push(peer);
    }
    let others = if args.bootstrap.is_some() {
        args.wait_peers
    } else {
        peers - 1
    };
    let seen = swarm[0].wait_for_peers(others, Duration::from_secs(30));
    if seen < others {
        bail!("only {seen} of {others} peers connected within 30 s");
    }
    let client = &swarm[0];
    let (best, tasks, secs) = nested_loop(
        &args,
        |file, values| client.submit_named(LoadTask, (file, values)),
        |param, data| client.submit_named(ScoreTask, (param, data)),
    )?;
    println!("best score: {best:.6}");
    let mut ran = Vec::new();
    let mut stolen = 0;
    let mut kept = 0;
    for (i, peer) in swarm.iter().enumerate() {
        let status = peer.status()?;
        ran.push(status.stats.ran.to_string());
        stolen += status.stats.stolen;
        if i == 0 {
            kept = status.kept_here;
        }
    }
    let place = match &args.bootstrap {
        Some(addr) => format!("the swarm of {addr} ({seen} other peers)"),
        None => format!("{peers} in-process peers × {workers} workers"),
    };
    println!(
        "{tasks} tasks on {place} in {secs:.3} s ({:.0} tasks/s)",
        tasks as f64 / secs
    );
    println!(
        "steals: {stolen} tasks moved; tasks run by each peer: {} (the submitter first; \
         {kept} of its calls ran on its own pool without the swarm: the first of each kind, \
         to measure it, and those of kinds cheaper to run than to hand on)",
        ran.join(" ")
    );
    Ok(())
}

/// The seed's loop: load each data set once, score every parameter against it, keep the
/// best. Returns the best score, the number of tasks and the seconds taken.
fn nested_loop(
    args: &Args,
    load: impl Fn(u64, u64) -> TaskFuture<Vec<f64>>,
    score: impl Fn(f64, &TaskFuture<Vec<f64>>) -> TaskFuture<f64>,
) -> anyhow::Result<(f64, usize, f64)> {
    let start = Instant::now();
    let mut futures = Vec::with_capacity(args.files * args.params);
    for file in 0..args.files {
        let data = load(file as u64, args.values as u64);
        for p in 0..args.params {
            futures.push(score(p as f64 * 100.0 / args.params as f64, &data));
        }
    }
    let tasks = futures.len() + args.files;
    let results = peer_core::gather(futures)?;
    let best = results.into_iter().fold(f64::NEG_INFINITY, f64::max);
    Ok((best, tasks, start.elapsed().as_secs_f64()))
}

fn run_local(args: &Args) -> anyhow::Result<()> {
    let mut builder = peer_core::Client::builder();
    if let Some(n) = args.workers {
        builder = builder.workers(n);
    }
    let client = builder.build().context("starting the worker pool")?;
    let (best, tasks, secs) = nested_loop(
        args,
        |file, values| client.submit_named(LoadTask, (file, values)),
        |param, data| client.submit_named(ScoreTask, (param, data)),
    )?;
    println!("best score: {best:.6}");
    println!(
        "{tasks} tasks on {} workers in {secs:.3} s ({:.0} tasks/s)",
        client.workers(),
        tasks as f64 / secs
    );
    Ok(())
}
