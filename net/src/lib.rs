//! The `peer` swarm over libp2p.

mod codec;
mod node;
mod wire;

pub use node::Stats;
pub use peer_core::Client;
