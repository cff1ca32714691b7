//! The `peer` swarm over libp2p.
//!
//! Not built yet: this crate will hold discovery, task-graph gossip, the steal and fetch
//! protocols, membership and recovery (see `ARCHITECTURE.md` and the swarm issue). Until then
//! a program runs on one machine with [`peer_core::Client`], and the same code will take a
//! swarm client later.

/// The local client, re-exported so code written against `peer-net` today already compiles.
pub use peer_core::Client;
