//! `seed`: the three programs of the seed (`general-python.txt`), written once against
//! `peer_core::Client`, each run alone or on a swarm by one flag:
//!
//! ```sh
//! seed nested-loop --data /tmp/seed-data                 # alone, on this machine's cores
//! seed join                                              # a peer serving seed's tasks
//! seed nested-loop --data /tmp/seed-data --bootstrap /ip4/127.0.0.1/tcp/PORT/p2p/ID
//! ```
//!
//! The binary is a full peer of its own tasks: `seed join`, `seed status` and the rest of
//! `peer`'s command line come from `peer_cli::main_with`.

mod credit_risk;
mod data;
mod for_loop;
mod nested_loop;
mod progress;

use std::path::PathBuf;

/// seed: the seed's three programs, each run alone or on a swarm (--bootstrap ADDR); `seed
/// join` serves their tasks.
#[derive(Debug, clap::Subcommand)]
enum Seed {
    /// The nested loop: load each file once, score every parameter against it (futures as
    /// arguments), keep the best.
    NestedLoop(nested_loop::Args),
    /// The parallel for loop: one function over every file, results gathered in order.
    ForLoop(for_loop::Args),
    /// The credit-risk model: a graph of ~1,000 tasks with fan-in, nested tasks, a locked
    /// ledger and an audit queue.
    CreditRisk(credit_risk::Args),
    /// Write the input files the loops read (deterministic contents).
    MakeData {
        /// The directory to write them into.
        dir: PathBuf,
        /// How many files.
        #[arg(long, default_value_t = 8)]
        files: u64,
        /// Rows of each file.
        #[arg(long, default_value_t = 2_000)]
        rows: u64,
    },
}

fn main() -> std::process::ExitCode {
    peer_cli::main_with(|command: Seed| match command {
        Seed::NestedLoop(args) => nested_loop::run(args),
        Seed::ForLoop(args) => for_loop::run(args),
        Seed::CreditRisk(args) => credit_risk::run(args),
        Seed::MakeData { dir, files, rows } => {
            data::make(&dir, files, rows)?;
            println!("wrote {files} files of {rows} rows into {}", dir.display());
            Ok(())
        }
    })
}
