//! `peer`'s command line as a library: any binary that links it is a full peer of its own
//! tasks.
//!
//! [`main`] is the whole `peer` command line. [`main_with`] adds a binary's own subcommands
//! to it, so that the binary's `join` serves the `#[task]` functions linked into it, with
//! everything `peer join` has (config file, `PEER_*` variables, a kept identity, the swarm
//! key, drain on SIGTERM, the join line), and its own commands run on a swarm or, with
//! `--alone`, locally, through [`SwarmArgs`]:
//!
//! ```no_run
//! use peer_cli::SwarmArgs;
//!
//! #[peer_core::task]
//! fn square(x: u64) -> u64 { x * x }
//!
//! #[derive(clap::Subcommand)]
//! enum Mine {
//!     /// Sum the first squares: on the swarm, or alone with --alone.
//!     Squares {
//!         #[command(flatten)]
//!         swarm: SwarmArgs,
//!     },
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     peer_cli::main_with(|mine: Mine| match mine {
//!         Mine::Squares { swarm } => {
//!             let client = swarm.client()?;
//!             let squares = client.gather(client.map_named(SquareTask, 0..100u64))?;
//!             println!("{}", squares.iter().sum::<u64>());
//!             Ok(())
//!         }
//!     })
//! }
//! ```
//!
//! Exit codes, one table for every command: 0 success (for `join`: it drained and left
//! after SIGINT or SIGTERM); 1 some task failed, or another error (`peer submit`: the
//! command's own exit code, 128+N if signal N killed it); 2 usage error (bad flags or
//! addresses, a missing key file, a bad `--config` file, `--workers` above 1024, a peer that
//! would be open to other machines without a swarm key or `--insecure-open`); 3 the swarm
//! could not be joined (no swarm found, no peer connected within `--join-timeout`, a
//! bootstrap peer with another peer id, or for `map` and `submit` no peer runs shell
//! commands); 130 interrupted (SIGINT or SIGTERM, or the job cancelled by `peer cancel`; for
//! `join`: a second signal during the drain, or tasks still running when `--drain-timeout`
//! passed).

mod cmd;
#[doc(hidden)]
pub mod harness;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

pub use cmd::swarm_args::SwarmArgs;

/// The `peer` command line: parses the process's arguments, runs the command, and returns
/// its exit code.
pub fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    start(cli.quiet, cli.verbose);
    finish(cmd::run(cli))
}

/// The `peer` command line with the binary's own subcommands `C` beside `join`, `status`,
/// `map` and the rest; `run` runs one of them. Named `#[task]` functions linked into the
/// binary are what its `join` serves.
pub fn main_with<C: Subcommand>(run: impl FnOnce(C) -> anyhow::Result<()>) -> ExitCode {
    // Named after the binary (`seed --version`); once per process, so leaking it is free.
    let name: &'static str = Box::leak(cmd::join::program().into_boxed_str());
    // The binary's own description (its enum's doc comment), not `peer`'s.
    let peer = cmd::Cli::command()
        .about(None::<&str>)
        .long_about(None::<&str>);
    let mut command = C::augment_subcommands(peer).name(name);
    // `peer`'s own workloads stay callable, but a user's `--help` lists the user's commands
    // and those of a peer: join, status, keygen.
    for own in cmd::WORKLOADS {
        command = command.mut_subcommand(own, |c| c.hide(true));
    }
    let matches = command.get_matches();
    let own = matches
        .subcommand_name()
        .is_some_and(|name| C::has_subcommand(name));
    start(matches.get_flag("quiet"), matches.get_count("verbose"));
    if own {
        match C::from_arg_matches(&matches) {
            Ok(command) => finish(run(command)),
            Err(e) => e.exit(),
        }
    } else {
        match cmd::Cli::from_arg_matches(&matches) {
            Ok(cli) => finish(cmd::run(cli)),
            Err(e) => e.exit(),
        }
    }
}

/// Process set-up before any command: SIGPIPE and the log.
fn start(quiet: bool, verbose: u8) {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`peer ... | head`) instead of failing to print.
    // SAFETY: restoring a signal's default disposition at start-up, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Logs go to stderr. RUST_LOG (e.g. `RUST_LOG=peer_net=debug`) wins when set, not
    // empty and valid; otherwise -q, -v, -vv, -vvv pick the level (warnings by default).
    let default = match (quiet, verbose) {
        (true, _) => "error",
        // Our own warnings; libp2p's (a lone first peer's "Failed to trigger bootstrap",
        // ...) speak libp2p's words, so only with -v.
        // `peer_net`'s warning of an unreachable bootstrap peer carries libp2p's text; the
        // commands say why they could not join in their own words (`cmd::dial`).
        (false, 0) => "error,peer=warn,peer_net::event_loop=error",
        // `peer` is a prefix of every crate of ours: peer, peer_net, peer_core, ...
        (false, 1) => "warn,peer=debug",
        (false, 2) => "warn,peer=trace",
        (false, _) => "debug,peer=trace",
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            std::env::var("RUST_LOG")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .and_then(|v| EnvFilter::try_new(v).ok())
                .unwrap_or_else(|| EnvFilter::new(default)),
        )
        .try_init();
}

/// The exit code of a command's outcome, after printing its error.
fn finish(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<cmd::Exit>() {
            Some(exit) => {
                if !exit.message.is_empty() {
                    eprintln!("{}: {}", cmd::join::program(), exit.message);
                }
                ExitCode::from(exit.code)
            }
            None => {
                eprintln!("{}: {e:#}", cmd::join::program());
                ExitCode::from(1)
            }
        },
    }
}
