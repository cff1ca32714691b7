//! `peer-harness uts`: count a UTS tree as named tasks on a swarm, checking the exact counts.

use std::time::Instant;

use anyhow::{Context, bail};
use peer_workloads::{swarm_uts, uts};

use peer_cli::SwarmArgs;
use peer_cli::harness::print_recoveries;

/// Options of `peer-harness uts`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The tree: T1, T3, T1L or T3L.
    #[arg(default_value = "T1")]
    tree: String,
    #[command(flatten)]
    swarm: SwarmArgs,
    /// Nodes a task visits before handing on the rest of its stack (see
    /// `peer_workloads::swarm_uts::CHUNK`).
    #[arg(long, default_value_t = peer_workloads::swarm_uts::CHUNK)]
    chunk: u64,
    /// Parts a task's leftover stack is split into.
    #[arg(long, default_value_t = 4)]
    split: u32,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let known = uts::known(&args.tree)
        .with_context(|| format!("unknown tree {:?}: use T1, T3, T1L or T3L", args.tree))?;
    let client = args.swarm.join()?;
    let start = Instant::now();
    let counts = swarm_uts::on_client(&client, known.name, args.chunk, args.split)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}: {} nodes, {} leaves, depth {} in {secs:.3} s ({:.2} M nodes/s)",
        known.name,
        counts.nodes,
        counts.leaves,
        counts.max_depth,
        counts.nodes as f64 / secs / 1e6
    );
    // Tasks submit tasks on whichever peer runs them: count runs where they happened.
    let here = client.status()?.stats.ran;
    let elsewhere = super::bench::ran_elsewhere(&client)?;
    println!("tasks: {here} ran on this peer, {elsewhere} ran elsewhere");
    print_recoveries(&client)?;
    if counts != known.counts {
        bail!("wrong counts: expected {:?}", known.counts);
    }
    println!("counts exact");
    Ok(())
}
