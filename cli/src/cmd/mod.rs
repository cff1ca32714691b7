//! Subcommands, one file each.

mod demo;

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
    /// an in-process pool and print the best score and throughput.
    Demo(demo::Args),
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
    }
}
