//! `peer`: the command line (see the `peer_cli` library for the exit codes).

fn main() -> std::process::ExitCode {
    peer_cli::main()
}
