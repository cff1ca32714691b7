//! The internals of `peer` that `peer-harness` (harness/: the benchmark and test harnesses,
//! built from the repository and not installed) is built on.
//!
//! For `peer-harness` only: not a stable API, hidden from the docs, and free to change with
//! any commit. A binary of your own needs only [`main_with`](crate::main_with) and
//! [`SwarmArgs`](crate::SwarmArgs).

pub use crate::cmd::join::read_bootstrap_line;
pub use crate::cmd::swarm_args::print_recoveries;
pub use crate::cmd::{Exit, interrupt_flag};
