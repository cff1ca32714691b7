//! Subcommands, one file each.

mod demo;
mod dial;
mod job_board;
mod jobs;
pub(crate) mod join;
mod keygen;
mod map;
mod open;
mod shell_peers;
mod status;
pub(crate) mod swarm_args;
mod swarm_file;

use clap::{Parser, Subcommand};

/// Dask-style futures for Rust, with no central scheduler. Start with `peer demo`, or `peer
/// join` on each machine then `peer map`.
#[derive(Debug, Parser)]
#[command(name = "peer", version)]
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

// In `peer --help` order: a peer, the swarm's state, the work, a key, the demo. The
// benchmark and test harnesses are `peer-harness`'s (harness/), not installed with `peer`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Start a peer and serve tasks until killed; prints the command that joins it.
    Join(join::Args),
    /// The peers of a swarm: their load and capacity, tasks queued and running, versions.
    Status(status::Args),
    /// Run a shell command once per input (`{}` replaced by it) across the swarm.
    Map(map::MapArgs),
    /// Run one shell command as a task on the swarm.
    Submit(map::SubmitArgs),
    /// The swarm's running and recent jobs of `map` and `submit`, with their counts.
    Jobs(jobs::JobsArgs),
    /// Each task of a job: its state, where it ran, how long, how it ended.
    Tasks(jobs::TasksArgs),
    /// Stop a job on every peer: start none of its tasks and kill its running commands.
    Cancel(jobs::CancelArgs),
    /// Write a new swarm key file (mode 0600) for `--swarm-key`: only peers with it join.
    Keygen(keygen::Args),
    /// Run the seed's nested loop (load each file, score every parameter, keep the best) on
    /// an embedded swarm of in-process peers over loopback, and print the best score, the
    /// throughput and the steals.
    Demo(demo::Args),
}

/// Prints `message` on stderr under this binary's name (`peer: ...`, or a user's binary's,
/// built on `peer_cli`), as its errors are.
pub(crate) fn say(message: std::fmt::Arguments<'_>) {
    eprintln!("{}: {message}", join::program());
}

/// The subcommands that run `peer`'s own workloads, hidden from a user's binary's `--help`.
pub(crate) const WORKLOADS: [&str; 6] = ["demo", "submit", "map", "jobs", "tasks", "cancel"];

/// Ends `peer` with this exit code (see `main.rs`) after printing the message, if any.
/// `pub` for `peer-harness` only (through [`crate::harness`]).
#[derive(Debug)]
pub struct Exit {
    /// The exit code.
    pub code: u8,
    /// What to print on stderr (nothing if empty).
    pub message: String,
}

impl Exit {
    /// Some tasks failed (after printing what happened).
    pub const FAILED: u8 = 1;
    /// The swarm could not be joined.
    pub const CANNOT_JOIN: u8 = 3;
    /// Stopped by SIGINT or SIGTERM.
    pub const INTERRUPTED: u8 = 130;
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// A flag set by the first SIGINT or SIGTERM, for a command that stops cleanly (stops its
/// children, says what it did); the second signal ends the process with
/// [`Exit::INTERRUPTED`] at once. `pub` for `peer-harness` only (through [`crate::harness`]).
pub fn interrupt_flag() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
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
        Command::Keygen(args) => keygen::run(args),
        Command::Status(args) => status::run(args),
        Command::Submit(args) => map::submit(args),
        Command::Map(args) => map::run(args),
        Command::Jobs(args) => jobs::jobs(args),
        Command::Tasks(args) => jobs::tasks(args),
        Command::Cancel(args) => jobs::cancel(args),
    }
}
