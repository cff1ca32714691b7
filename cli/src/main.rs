//! `peer`: the command line.
//!
//! Exit codes: 0 success; 1 the job ran and failed; 2 usage error.

mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer: {e:#}");
            ExitCode::from(1)
        }
    }
}
