//! `peer-harness sweep` and `peer-harness published`: a sweep of sleeping tasks with a known
//! sum, run as ordinary tasks or as a detached job whose result is published under a name.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peer_workloads::sweep;

use peer_cli::SwarmArgs;
use peer_cli::harness::print_recoveries;

/// Options of `peer-harness sweep`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Tasks in the sweep.
    #[arg(long, default_value_t = 1000)]
    tasks: u64,
    /// Milliseconds each task sleeps.
    #[arg(long, default_value_t = 1)]
    ms: u64,
    /// Run it as a detached job publishing its sum under this name: it finishes even if
    /// this peer dies, and `peer-harness published NAME` reads the sum from any peer.
    #[arg(long, value_name = "NAME")]
    detach: Option<String>,
    /// How long to wait for a detached job's result, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    #[command(flatten)]
    swarm: SwarmArgs,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    if args.tasks == 0 {
        bail!("--tasks must be at least 1");
    }
    let client = args.swarm.join()?;
    let start = Instant::now();
    let expected = sweep::expected(args.tasks);
    let total = match &args.detach {
        Some(name) => {
            client.detach(sweep::job(name, args.tasks, args.ms)?)?;
            println!(
                "detached job {name:?}: {} tasks of {} ms",
                args.tasks, args.ms
            );
            let total: u64 = client.wait_published(name, Duration::from_secs(args.timeout))?;
            println!("{name} = {total}");
            total
        }
        None => {
            let items = (0..args.tasks).map(|i| (i, args.ms));
            let futures = client.map_named(sweep::SquareAfterTask, items);
            let parts = client
                .gather(futures)
                .context("a task of the sweep failed")?;
            parts.into_iter().fold(0u64, u64::wrapping_add)
        }
    };
    println!(
        "sweep: {} tasks of {} ms, total {total} in {:.3} s",
        args.tasks,
        args.ms,
        start.elapsed().as_secs_f64()
    );
    print_recoveries(&client)?;
    if total != expected {
        bail!("wrong total: expected {expected}");
    }
    println!("total exact");
    Ok(())
}

/// Options of `peer-harness published`.
#[derive(Debug, clap::Args)]
pub(crate) struct PublishedArgs {
    /// The name the value was published under (by `peer-harness sweep --detach NAME`).
    name: String,
    /// How long to wait for it to be published, in seconds.
    #[arg(long, default_value_t = 0)]
    timeout: u64,
    #[command(flatten)]
    swarm: SwarmArgs,
}

/// Prints the `u64` published under a name (what `peer-harness sweep --detach` publishes).
pub(crate) fn published(args: PublishedArgs) -> anyhow::Result<()> {
    let client = args.swarm.join_to_look()?;
    let value: u64 = client.wait_published(&args.name, Duration::from_secs(args.timeout))?;
    println!("{} = {value}", args.name);
    Ok(())
}
