//! `peer`: the command line.
//!
//! Exit codes: 0 success (for `peer join`: it drained and left after SIGINT or SIGTERM);
//! 1 the job ran and failed (some tasks failed), or another error; 2 usage error (bad
//! flags, a bad `--config` file, a peer that would be open to other machines without a
//! swarm key or `--insecure-open`); 3 the swarm could not be joined (for `peer join
//! --bootstrap`: no peer connected within `--join-timeout`; for `peer map` and `peer submit`
//! with `--remote-only`: no peer runs shell commands); 130 interrupted (SIGINT or
//! SIGTERM; for `peer join`: a second signal during the drain, or tasks still running when
//! `--drain-timeout` passed).

mod cmd;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`peer ... | head`) instead of failing to print.
    // SAFETY: restoring a signal's default disposition at start-up, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cmd::Cli::parse();
    // Logs go to stderr. RUST_LOG (e.g. `RUST_LOG=peer_net=debug`) wins when set, not
    // empty and valid; otherwise -q, -v, -vv, -vvv pick the level (warnings by default).
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        // `peer` is a prefix of every crate of ours: peer, peer_net, peer_core, ...
        (false, 1) => "warn,peer=debug",
        (false, 2) => "warn,peer=trace",
        (false, _) => "debug,peer=trace",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            std::env::var("RUST_LOG")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .and_then(|v| EnvFilter::try_new(v).ok())
                .unwrap_or_else(|| EnvFilter::new(default)),
        )
        .init();
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<cmd::Exit>() {
            Some(exit) => {
                if !exit.message.is_empty() {
                    eprintln!("peer: {}", exit.message);
                }
                ExitCode::from(exit.code)
            }
            None => {
                eprintln!("peer: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}
