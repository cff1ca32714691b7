//! Floods cut at their bound while honest peers keep working: more connections from one
//! peer, from many peers and still in their handshake than `Limits` allows, more streams
//! on one connection, and gossip faster than a peer's rate. The bounds are set small
//! (`Config::limits`); after each flood, real peers still run named tasks.

#[path = "common/peers.rs"]
mod peers;
#[path = "common/raw.rs"]
mod raw;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use peer_core::ext::keys;
use peer_net::wire::{GraphEvent, Kind, Op, OpId, PrimRequest, Reply, Request, Response};
use peer_net::{Multiaddr, Peer};
use peers::{join, loopback, raw_member, still_works, wait_until};
use raw::{Heard, RawPeer};

const WAIT: Duration = Duration::from_secs(20);

/// `loopback()` with one bound set. `Limits` is not re-exported by `peer_net`, so its value
/// comes from a config.
macro_rules! bounded {
    ($field:ident = $value:expr) => {{
        let config = loopback();
        let mut limits = config.current_limits();
        limits.$field = $value;
        config.limits(limits)
    }};
}

/// The TCP address of a peer's first listen address.
fn socket_addr(addr: &Multiaddr) -> SocketAddr {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(a),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    SocketAddr::from((ip.unwrap(), port.unwrap()))
}

/// Tries a new honest peer: it joins `target`'s swarm and runs a task.
fn a_newcomer_joins(target: &Peer) {
    let newcomer = join(target, loopback());
    still_works(&newcomer);
}

/// `Limits::connections_per_peer` (`connection_limits` in `net/src/behaviour.rs`): one raw
/// peer dials the target six times; at most two connections stay, the first still serves.
#[test]
fn connections_from_one_peer_are_cut_at_their_bound() {
    let target = Peer::join(bounded!(connections_per_peer = 2)).unwrap();
    let raw = RawPeer::plain();
    let addr = target.addresses()[0].clone();
    let target_id = raw.connect(&addr);
    for _ in 0..5 {
        raw.dial_again(&addr);
    }
    let open = |heard: &[Heard]| {
        let count = |f: fn(&Heard) -> bool| heard.iter().filter(|h| f(h)).count();
        let connected = count(|h| matches!(h, Heard::Connected(_)));
        let closed = count(|h| matches!(h, Heard::Closed { .. }));
        let failed = count(|h| matches!(h, Heard::DialFailed(_)));
        (connected + failed, connected - closed)
    };
    wait_until(
        "every dial ends and at most two connections stay",
        WAIT,
        || {
            let (ended, open) = open(&raw.heard());
            ended >= 6 && open <= 2
        },
    );
    let report = raw.ask(target_id, &Request::Report).unwrap();
    assert!(matches!(report, Response::Report(_)), "{report:?}");
    still_works(&target);
}

/// `Limits::connections_in` (`connection_limits`): with a member connected and room for 4
/// incoming connections, 8 raw peers connect; at most 3 are served, the member keeps
/// working, and once the flood leaves a newcomer joins.
#[test]
fn incoming_connections_are_cut_at_their_bound() {
    let target = Peer::join(bounded!(connections_in = 4)).unwrap();
    let member = join(&target, loopback());
    let addr = target.addresses()[0].clone();
    let raws: Vec<RawPeer> = (0..8).map(|_| RawPeer::plain()).collect();
    for raw in &raws {
        raw.dial(&addr);
    }
    let served = (raws.iter())
        .filter(|raw| raw.ask(target.peer_id(), &Request::Report).is_ok())
        .count();
    assert!(
        (1..=3).contains(&served),
        "{served} of 8 raw peers were served with room for 4 connections, one the member's"
    );
    still_works(&target);
    still_works(&member);
    drop(raws);
    a_newcomer_joins(&target);
}

/// `Limits::pending_in` (`connection_limits`): 12 TCP connections that never start their
/// handshake, with room for 4 pending; the target closes at least 8 of them at once, well
/// before its 10 s handshake time-out. A member connected before keeps working, and once
/// the sockets close a newcomer joins.
#[test]
fn connections_in_their_handshake_are_cut_at_their_bound() {
    let target = Peer::join(bounded!(pending_in = 4)).unwrap();
    let member = join(&target, loopback());
    let at = socket_addr(&target.addresses()[0]);
    let started = Instant::now();
    let sockets: Vec<TcpStream> = (0..12).map(|_| TcpStream::connect(at).unwrap()).collect();
    let readers: Vec<_> = (sockets.iter())
        .map(|s| {
            let mut s = s.try_clone().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            std::thread::spawn(move || matches!(s.read(&mut [0u8; 64]), Ok(0)))
        })
        .collect();
    let closed = (readers.into_iter())
        .map(|r| r.join().unwrap())
        .filter(|closed| *closed)
        .count();
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the handshake time-out closed them, not the bound"
    );
    assert!(
        closed >= 8,
        "{closed} of 12 idle connections closed, with room for 4 pending"
    );
    still_works(&target);
    still_works(&member);
    drop(sockets);
    a_newcomer_joins(&target);
}

/// `Limits::streams_per_connection` (request-response's `max_concurrent_streams`): a raw
/// peer holds a lock at the target and opens 40 more waits for it at once on its one
/// connection; with room for 8 streams the others are dropped at once. A second
/// connection and the target's own work are served meanwhile.
#[test]
fn streams_on_one_connection_are_cut_at_their_bound() {
    let target = Peer::join(bounded!(streams_per_connection = 8)).unwrap();
    let raw = RawPeer::plain();
    let target_id = raw.connect(&target.addresses()[0]);
    let acquire = |seq: u64, wait: bool| {
        Request::Prim(PrimRequest {
            key: keys::lock("flood"),
            kind: Kind::Semaphore { permits: 1 },
            id: OpId {
                peer: raw.number,
                seq,
            },
            op: Op::Acquire {
                lease_ms: None,
                wait,
            },
        })
    };
    let held = raw.ask(target_id, &acquire(0, false)).unwrap();
    assert!(
        matches!(held, Response::Prim(Reply::Granted { .. })),
        "{held:?}"
    );
    let waits: Vec<_> = (1..=40)
        .map(|seq| raw.send_bytes(target_id, raw::encoded(&acquire(seq, true))))
        .collect();
    // The waits held at the target are answered only after its 10 s long poll.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut dropped = 0;
    let mut pending: Vec<_> = waits;
    while dropped < 32 && Instant::now() < deadline {
        pending.retain(|w| match w.try_recv() {
            Ok(Err(_)) => {
                dropped += 1;
                false
            }
            Ok(Ok(answer)) => panic!("a wait was answered early: {answer:?}"),
            Err(_) => true,
        });
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        dropped >= 32,
        "{dropped} of 40 streams dropped with room for 8"
    );
    let other = RawPeer::plain();
    let other_target = other.connect(&target.addresses()[0]);
    let report = other.ask(other_target, &Request::Report).unwrap();
    assert!(matches!(report, Response::Report(_)), "{report:?}");
    still_works(&target);
}

/// `Limits::gossip_per_sec` (`Node::gossip_allowed`): with a rate of 5 batches a second, a
/// member gossips 200 batches as fast as it can, each a value on a topic the target
/// subscribes to. The target takes about 5 a second of them; a real member's gossip is
/// still taken.
#[test]
fn gossip_over_a_peers_rate_is_dropped() {
    let target = Peer::join(bounded!(gossip_per_sec = 5)).unwrap();
    let member = join(&target, loopback());
    let flood = target.topic::<u64>("flood");
    let mut heard = flood.subscribe();
    let mut raw = raw_member(&[&target, &member]);
    let key = keys::topic::<u64>("flood");
    let value = |v: u64| GraphEvent::Topic {
        key: key.clone(),
        value: postcard::to_allocvec(&v).unwrap(),
    };
    let started = Instant::now();
    for i in 0..200 {
        raw.gossip(vec![value(i)]);
    }
    // A last value once the budget has refilled, again until it is taken: every batch
    // before it has been seen by then.
    let mut taken = 0u64;
    let mut last = None;
    let deadline = Instant::now() + WAIT;
    while last.is_none() {
        assert!(Instant::now() < deadline, "the last value was never taken");
        std::thread::sleep(Duration::from_millis(400));
        raw.gossip(vec![value(1_000_000)]);
        while let Some(v) = heard.blocking_next_timeout(Duration::from_millis(200)) {
            if v == 1_000_000 {
                last = Some(started.elapsed());
                break;
            }
            taken += 1;
        }
    }
    let elapsed = last.unwrap().as_secs_f64();
    let most = 5.0 + 5.0 * elapsed + 2.0;
    assert!(
        (taken as f64) <= most && taken < 200,
        "{taken} of 200 batches taken in {elapsed:.1} s at 5 a second"
    );
    assert!(taken >= 1, "the burst allowance was taken");
    member.topic::<u64>("flood").publish(42);
    // Past the raw peer's last values (it may have sent more than one), which came after
    // all of its flood.
    let next = std::iter::from_fn(|| heard.blocking_next_timeout(WAIT)).find(|v| *v != 1_000_000);
    assert_eq!(next, Some(42), "a real member's gossip");
    still_works(&target);
    still_works(&member);
}
