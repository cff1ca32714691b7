//! Subcommands, one file each.

mod bench;
mod demo;
pub(crate) mod join;
mod keygen;
mod map;
mod open;
mod prims;
mod shell_peers;
mod status;
pub(crate) mod swarm_args;
mod sweep;
mod uts;

use clap::{Parser, Subcommand};

/// Dask-style futures for Rust, with no central scheduler.
#[derive(Debug, Parser)]
#[command(name = "peer", version, about)]
pub(crate) struct Cli {
    /// More log output on stderr: -v debug and -vv trace for peer's own crates, -vvv
    /// also debug for libp2p (RUST_LOG, when set, wins).
    #[arg(
        short,
        long,
        global = true,
        action = clap::ArgAction::Count,
        help_heading = "Global options"
    )]
    pub(crate) verbose: u8,
    /// Log only errors on stderr (RUST_LOG, when set, wins).
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub(crate) quiet: bool,
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
    /// Swarm benchmarks (W2 to W8 of BENCHMARKS.md): figures against their anchors and
    /// targets, or JSON lines with --json.
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
    /// Write a new swarm key file (mode 0600) for `--swarm-key`: only peers with it join.
    Keygen(keygen::Args),
    /// The peers of a swarm: their load and capacity, tasks queued and running, versions.
    Status(status::Args),
    /// Run one shell command as a task on the swarm.
    Submit(map::SubmitArgs),
    /// Run a shell command once per input (`{}` replaced by it) across the swarm.
    Map(map::MapArgs),
}

/// Prints `message` on stderr under this binary's name (`peer: ...`, or a user's binary's,
/// built on `peer_cli`), as its errors are.
pub(crate) fn say(message: std::fmt::Arguments<'_>) {
    eprintln!("{}: {message}", join::program());
}

/// The subcommands that run `peer`'s own workloads, hidden from a user's binary's `--help`.
pub(crate) const WORKLOADS: [&str; 8] = [
    "demo",
    "bench",
    "uts",
    "sweep",
    "published",
    "prims",
    "submit",
    "map",
];

/// Ends `peer` with this exit code (see `main.rs`) after printing the message, if any.
#[derive(Debug)]
pub(crate) struct Exit {
    /// The exit code.
    pub(crate) code: u8,
    /// What to print on stderr (nothing if empty).
    pub(crate) message: String,
}

impl Exit {
    /// Some tasks failed (after printing what happened).
    pub(crate) const FAILED: u8 = 1;
    /// The swarm could not be joined.
    pub(crate) const CANNOT_JOIN: u8 = 3;
    /// Stopped by SIGINT or SIGTERM.
    pub(crate) const INTERRUPTED: u8 = 130;
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// A flag set by the first SIGINT or SIGTERM, for a command that stops cleanly (stops its
/// children, says what it did); the second signal ends the process with
/// [`Exit::INTERRUPTED`] at once.
pub(crate) fn interrupt_flag() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // In this order: a signal that finds the flag set exits, then every signal sets it.
        signal_hook::flag::register_conditional_shutdown(
            signal,
            i32::from(Exit::INTERRUPTED),
            Arc::clone(&flag),
        )?;
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    Ok(flag)
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
        Command::Keygen(args) => keygen::run(args),
        Command::Status(args) => status::run(args),
        Command::Submit(args) => map::submit(args),
        Command::Map(args) => map::run(args),
    }
}
