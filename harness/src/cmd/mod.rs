//! The harness's subcommands, one file each.

mod bench;
mod prims;
mod sweep;
mod uts;

/// peer's benchmark and test harnesses, beside the `peer` command line. Built from the
/// repository, not installed: `cargo run --release -p peer-harness -- bench w5`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Harness {
    /// Swarm benchmarks (W2 to W8 of docs/benchmarks.md): figures against their anchors
    /// and targets, or JSON lines with --json.
    Bench(bench::Args),
    /// Count a UTS tree as tasks across a swarm and check the exact counts.
    Uts(uts::Args),
    /// Run a sweep of sleeping tasks with a known sum, optionally as a detached job whose
    /// sum is published under a name.
    Sweep(sweep::Args),
    /// Print the number published under a name (by `peer-harness sweep --detach NAME`).
    Published(sweep::PublishedArgs),
    /// Named primitives across the swarm: checks (a counter under a lock, a semaphore's
    /// bound, a queue's producers and consumers, a stale lock holder) and a benchmark.
    Prims(prims::Args),
}

pub(crate) fn run(command: Harness) -> anyhow::Result<()> {
    match command {
        Harness::Bench(args) => bench::run(args),
        Harness::Uts(args) => uts::run(args),
        Harness::Sweep(args) => sweep::run(args),
        Harness::Published(args) => sweep::published(args),
        Harness::Prims(args) => prims::run(args),
    }
}
