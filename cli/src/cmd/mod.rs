//! Subcommands, one file each.

mod bench;
mod demo;
mod join;
mod prims;
mod swarm_args;
mod sweep;
mod uts;

use clap::{Parser, Subcommand};

/// Dask-style futures for Rust, with no central scheduler.
#[derive(Debug, Parser)]
#[command(name = "peer", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the seed's nested loop (load each file, score every parameter, keep the best) on
    /// an embedded swarm of in-process peers over loopback, and print the best score, the
    /// throughput and the steals.
    Demo(demo::Args),
    /// Start a peer and serve tasks until killed; prints the command that joins it.
    Join(join::Args),
    /// Swarm benchmarks (W3 steal round trip, W5 sleep sweep, W8 soak), printing JSON.
    Bench(bench::Args),
    /// Count a UTS tree as tasks across a swarm and check the exact counts.
    Uts(uts::Args),
    /// Run a sweep of sleeping tasks with a known sum, optionally as a detached job whose
    /// sum is published under a name.
    Sweep(sweep::Args),
    /// Print the number published under a name (by `peer sweep --detach NAME`).
    Published(sweep::PublishedArgs),
    /// Named primitives across the swarm: checks (a counter under a lock, a semaphore's
    /// bound, a queue's producers and consumers, a stale lock holder) and a benchmark.
    Prims(prims::Args),
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Join(args) => join::run(args),
        Command::Uts(args) => uts::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Published(args) => sweep::published(args),
        Command::Prims(args) => prims::run(args),
    }
}
