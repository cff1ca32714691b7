//! The `peer` swarm over libp2p: peers that find each other, steal ready tasks from one
//! another and move results to whoever needs them, with no central scheduler.
//!
//! A program joins (or starts) a swarm with [`Peer::join`] and gets the API of the local
//! [`peer_core::Client`]: named tasks go to the swarm, closures run on its own pool, and
//! futures of both kinds mix in one graph.
//!
//! ```
//! use peer_net::{Peer, Config};
//!
//! #[peer_core::task]
//! fn load(n: u64) -> Vec<u64> { (0..n).collect() }
//!
//! #[peer_core::task]
//! fn score(weight: u64, data: &Vec<u64>) -> u64 { data.iter().map(|x| x * weight).sum() }
//!
//! // Two peers on loopback; the second finds the first through its address.
//! let local = Config::new().listen("/ip4/127.0.0.1/tcp/0".parse().unwrap()).mdns(false).workers(1);
//! let first = Peer::join(local.clone()).unwrap();
//! let second = Peer::join(local.bootstrap(first.addresses()[0].clone())).unwrap();
//! second.wait_for_peers(1, std::time::Duration::from_secs(10));
//!
//! let data = second.submit_named(LoadTask, 1_000);                   // a future
//! let scores = second.map_named(ScoreTask, (1..=4).map(|w| (w, &data))); // graph edges
//! let best = second.gather(scores).unwrap().into_iter().max();
//! assert_eq!(best, Some(4 * 499_500));
//! ```
//!
//! How it works — discovery, ownership, stealing, gossip and the protocol — is in
//! `docs/swarm.md`; the protocol logic is a sans-IO state machine tested without sockets, and
//! one event loop per peer owns the libp2p `Swarm`.

mod batch;
mod behaviour;
mod codec;
mod commands;
mod config;
mod error;
mod event_loop;
mod job;
mod links;
mod liveness;
mod local_first;
mod membership;
mod node;
mod peer;
mod pings;
mod remote;
mod status;
mod sync;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod wire;
#[cfg(not(feature = "internals"))]
mod wire;

pub use config::{Config, Identity, Limits, SwarmKey};
pub use error::Error;
pub use job::{Job, JobRef};
pub use libp2p::{Multiaddr, PeerId};
pub use node::{Latency, Stats};
pub use peer::{Drained, Peer};
pub use status::{PeerAnswer, Status, Suspicion};
pub use wire::{PeerReport, Suspected};
