//! `peer-harness`: `peer`'s benchmark and test harnesses (`bench`, `uts`, `sweep`,
//! `published`, `prims`) beside the whole `peer` command line, so that `peer-harness join`
//! serves the same named tasks as `peer join`. Built from the repository
//! (`cargo run --release -p peer-harness -- ...`), not installed with `peer`. Exit codes
//! are `peer`'s (see the `peer_cli` library).

mod cmd;

fn main() -> std::process::ExitCode {
    peer_cli::main_with(cmd::run)
}
