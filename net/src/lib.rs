//! The `peer` swarm over libp2p.

mod behaviour;
mod client;
mod codec;
mod config;
mod error;
mod event_loop;
mod node;
pub mod wire;

pub use client::Client;
pub use config::{Config, SwarmKey};
pub use error::Error;
pub use event_loop::Status;
pub use libp2p::{Multiaddr, PeerId};
pub use node::{Latency, Stats};
