//! Set-up shared by the in-process swarm tests.

use std::time::Duration;

use peer_net::{Config, Peer};

/// One worker, loopback only, mDNS off (it would advertise the machine's real interface).
pub(crate) fn config() -> Config {
    Config::new()
        .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .mdns(false)
        .workers(1)
}

/// A first peer and `n - 1` more that bootstrap from it, all connected to each other.
pub(crate) fn swarm(n: usize) -> Vec<Peer> {
    let first = Peer::join(config()).unwrap();
    let addr = first.addresses()[0].clone();
    let mut peers = vec![first];
    for _ in 1..n {
        peers.push(Peer::join(config().bootstrap(addr.clone())).unwrap());
    }
    for peer in &peers {
        let seen = peer.wait_for_peers(n - 1, Duration::from_secs(20));
        assert_eq!(
            seen,
            n - 1,
            "peer {} sees {seen} of {} others",
            peer.peer_id(),
            n - 1
        );
    }
    peers
}
