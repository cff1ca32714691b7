//! What can go wrong when joining or running a swarm.

use libp2p::Multiaddr;

/// Why a swarm could not be joined or a request to it failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listen address could not be bound (in use, wrong interface, not TCP).
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// A bootstrap address lacks its `/p2p/<peer id>` suffix or is not dialable.
    #[error("bad bootstrap address {addr}: {reason}")]
    Bootstrap {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// A swarm key did not parse: it must be a pre-shared key file
    /// (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits).
    #[error("bad swarm key: {0}")]
    SwarmKey(String),
    /// The transport or a protocol could not be set up.
    #[error("cannot start the network: {0}")]
    Transport(String),
    /// The local pool of workers could not start.
    #[error("cannot start the local workers: {0}")]
    Pool(String),
    /// The event loop has stopped (the client was shut down or its thread panicked).
    #[error("the swarm's event loop has stopped")]
    Stopped,
}
