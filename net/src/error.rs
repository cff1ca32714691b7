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
    /// An identity (key pair) did not decode.
    #[error("bad identity key: {0}")]
    Identity(String),
    /// The transport or a protocol could not be set up.
    #[error("cannot start the network: {0}")]
    Transport(String),
    /// The local pool of workers could not start.
    #[error("cannot start the local workers: {0}")]
    Pool(String),
    /// A detached job is malformed or its name is taken.
    #[error("bad job: {0}")]
    Job(String),
    /// A value to publish could not be encoded.
    #[error("cannot encode the value: {0}")]
    Encode(String),
    /// The published value is not of the type asked for.
    #[error("the value published under {name:?} does not decode: {reason}")]
    Decode {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The detached job that was to publish under this name failed.
    #[error("the job {name:?} failed: {reason}")]
    JobFailed {
        /// The job's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Nothing was published under the name within the time waited.
    #[error("nothing was published under {name:?} within {waited:?}")]
    NotPublished {
        /// The name.
        name: String,
        /// How long was waited.
        waited: std::time::Duration,
    },
    /// The peer would be open to anyone who reaches it (no swarm key, and an address other
    /// than loopback, or mDNS) and [`Config::insecure_open`](crate::Config::insecure_open)
    /// was not set.
    #[error(
        "no swarm key and {0}: anyone who reaches this peer could join the swarm and run tasks \
         on it; give a swarm key (`peer keygen`), or ask for an open swarm with insecure_open"
    )]
    Open(String),
    /// The event loop has stopped (the client was shut down or its thread panicked).
    #[error("the swarm's event loop has stopped")]
    Stopped,
}
