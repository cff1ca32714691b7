//! `peer`: the command line.
//!
//! Exit codes: 0 success; 1 the job ran and failed (some tasks failed); 2 usage error;
//! 3 the swarm could not be joined; 130 interrupted (SIGINT or SIGTERM).

mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`peer ... | head`) instead of failing to print.
    // SAFETY: restoring a signal's default disposition at start-up, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cmd::Cli::parse();
    // Logs go to stderr, filtered by RUST_LOG (e.g. `RUST_LOG=peer_net=debug`); warnings
    // by default.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
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
