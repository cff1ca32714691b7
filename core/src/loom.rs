//! Sync types of the primitives, swapped for loom's under `--cfg peer_loom` so their fast
//! paths can be model-checked.

#[cfg(peer_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(peer_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
