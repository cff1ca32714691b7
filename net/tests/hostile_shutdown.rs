//! Hostile peers against the paths issue 20's refactor changed: shutdown (a stop flag and a
//! wake-up in `net/src/commands.rs`; `Drop for EventLoop` answers the calls it holds),
//! primitive calls through a full command queue (the overflow of `net/src/sync/call.rs`),
//! the answers a primitive's home gives (`net/src/sync/handles.rs`), and gossip admission
//! (the sender check in `EventLoop`, `Gossip::admit` in `net/src/node/gossip.rs`).
//!
//! A raw member M floods a real peer V with requests and gossip while V's application makes
//! calls and then drops its `Peer`: the drop returns within seconds, every call returns
//! with a value or an error, honest peers keep working, and no thread of the process
//! panics (`common/flood.rs` records every panic: a panic of the loop's thread would be
//! swallowed by the join at shutdown).

#[path = "common/flood.rs"]
mod flood;
#[path = "common/peers.rs"]
mod peers;
#[path = "common/raw.rs"]
mod raw;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flood::{Flood, HEAVY, LIGHT, assert_no_panics, threads_named, watch_panics};
use peer_core::ext::keys;
use peer_core::sync::ClosedError;
use peer_net::wire::{Batch, GraphEvent, Op, Reply, Request, Response};
use peer_net::{Config, Peer, PeerId};
use peers::{join, loopback, raw_member, still_works, trio, wait_until};
use raw::{Heard, RawPeer, number};

const WAIT: Duration = Duration::from_secs(20);
/// How long a drop or a call may take once its peer stops: a hang check, not a speed target.
const HANG: Duration = Duration::from_secs(5);

/// The overflow's sending thread (`Overflow::send` in `net/src/sync/call.rs`) starts the
/// first time a command does not fit the loop's queue of 1,024: proof that it was full.
const OVERFLOW_THREAD: &str = "peer-prims-send";

/// Drops `peer` on another thread; panics unless the drop returns within [`HANG`].
fn drop_within_hang(peer: Peer, what: &str) -> Duration {
    let started = Instant::now();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(peer);
        let _ = done_tx.send(());
    });
    let dropped = done_rx.recv_timeout(HANG);
    let took = started.elapsed();
    assert!(dropped.is_ok(), "dropping {what} took more than {HANG:?}");
    took
}

/// Publishes on `topic` in bursts of `burst` as fast as the handle takes them, `pause`
/// apart, until stopped: each is a command for the loop that nobody waits for, so a burst
/// over 1,024 fills the loop's queue and the overflow takes the rest (up to its backlog
/// of 1,024 publications; later ones are not sent to other peers).
fn keep_queue_full(
    peer: &Peer,
    topic: &str,
    burst: u64,
    pause: Duration,
    stop: &Arc<AtomicBool>,
) -> JoinHandle<u64> {
    let noise = peer.topic::<u64>(topic);
    let stop = stop.clone();
    std::thread::spawn(move || {
        let mut published = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..burst {
                noise.publish(published);
                published += 1;
            }
            std::thread::sleep(pause);
        }
        published
    })
}

/// Threads that each set their variable of `variables` to 1, 2, ... `per` with the
/// blocking twins and read it back after each set; each sends how many it set, or what
/// went wrong.
fn setters(peer: &Peer, variables: &[String], per: u64) -> Receiver<Result<u64, String>> {
    let (tx, rx) = mpsc::channel();
    for variable in variables {
        let (var, tx) = (peer.variable::<u64>(variable), tx.clone());
        std::thread::spawn(move || {
            let mut outcome = Ok(per);
            for value in 1..=per {
                let version = var.blocking_set(value);
                let read = var.blocking_get();
                if read != Some(value) {
                    outcome = Err(format!("set {value} (version {version}), read {read:?}"));
                    break;
                }
            }
            let _ = tx.send(outcome);
        });
    }
    rx
}

/// `n` names whose keys (`key_of(name)`) rank peers alike at `a` and `b`, with a home for
/// which `home` holds.
fn names_homed(
    key_of: impl Fn(&str) -> String,
    a: &Peer,
    b: &Peer,
    home: impl Fn(&PeerId) -> bool,
    n: usize,
) -> Vec<String> {
    let names: Vec<String> = (0..10_000)
        .map(|i| format!("hostile-{i}"))
        .filter(|name| {
            let key = key_of(name);
            let (ha, hb) = (a.homes(&key), b.homes(&key));
            ha.len() == 3 && ha == hb && home(&ha[0])
        })
        .take(n)
        .collect();
    assert_eq!(names.len(), n, "too few names with such a home");
    names
}

/// `loopback()` with gossip messages of at most 64 KiB.
fn small_gossip() -> Config {
    let config = loopback();
    let mut limits = config.current_limits();
    limits.gossip_bytes = 64 << 10;
    config.limits(limits)
}

// ---- the tests ----

/// Shutdown under a flood (`Stop` in `net/src/commands.rs`, `EventLoop::run`): M floods V
/// with requests (some held at V as waiting gets) and gossip at V's budget, and members
/// join and leave V meanwhile. V still runs a task mid-flood; its application then drops
/// its `Peer`, which returns within 5 s. B, connected to V and M all along, keeps working,
/// no thread panicked, and V is gone for M.
#[test]
fn dropping_a_flooded_peer_returns_within_seconds() {
    watch_panics();
    let v = Peer::join(loopback()).unwrap();
    let b = join(&v, loopback());
    let _subscribed = v.topic::<u64>("flood").subscribe();
    let m = Arc::new(raw_member(&[&v, &b]));
    let v_id = v.peer_id();
    let flood = Flood::start(&m, v_id, "flood", HEAVY);
    let churn_stop = Arc::new(AtomicBool::new(false));
    let churn = std::thread::spawn({
        let (stop, addr) = (churn_stop.clone(), v.addresses()[0].clone());
        move || {
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) {
                // Dialed, not waited for: V may be gone by now.
                let c = RawPeer::member();
                c.dial(&addr);
                std::thread::sleep(Duration::from_millis(50));
                drop(c);
                rounds += 1;
            }
            rounds
        }
    });
    wait_until("V takes 1,000 of the flood's requests", WAIT, || {
        v.status().unwrap().stats.requests_received >= 1_000
    });
    still_works(&v);
    let (requests, batches) = flood.sent();
    assert!(batches >= 100, "only {batches} batches flooded");
    let took = drop_within_hang(v, "a flooded peer");
    eprintln!("V dropped in {took:?} after {requests} requests and {batches} batches");
    drop(flood);
    churn_stop.store(true, Ordering::Relaxed);
    let rounds = churn.join().unwrap();
    assert!(rounds >= 1, "no member churned");
    m.wait_for("V's connection closed", WAIT, |h| {
        matches!(h, Heard::Closed { peer, left: 0 } if *peer == v_id).then_some(())
    });
    assert!(m.ask(v_id, &Request::Report).is_err(), "V still answers");
    still_works(&b);
    assert_no_panics();
}

/// Starts `n` puts of `0..n` into `queue` at once (futures polled on one thread), then
/// `n` gets at once; panics unless each batch returns within 30 s of `started`; returns
/// the values got, sorted.
fn put_and_get_at_once(queue: &peer_core::sync::Queue<u64>, n: u64, started: Instant) -> Vec<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let limit = || Duration::from_secs(30).saturating_sub(started.elapsed());
    let puts = futures_util::future::join_all((0..n).map(|i| queue.put(i)));
    let put = (runtime.block_on(async { tokio::time::timeout(limit(), puts).await }))
        .expect("puts hang: not all returned within 30 s");
    assert!(
        threads_named(OVERFLOW_THREAD) >= 1,
        "{n} calls at once did not fill the loop's queue"
    );
    let refused = put.iter().filter(|p| p.is_err()).count();
    assert_eq!(refused, 0, "puts refused");
    let gets = futures_util::future::join_all((0..n).map(|_| queue.get()));
    let mut got: Vec<u64> = (runtime.block_on(async { tokio::time::timeout(limit(), gets).await }))
        .expect("gets hang: not all returned within 30 s")
        .into_iter()
        .map(|g| g.expect("a get of an item put"))
        .collect();
    got.sort_unstable();
    got
}

/// Primitive calls through a full command queue (`Overflow` in `net/src/sync/call.rs`):
/// while M floods V, V's application starts 3,000 puts of distinct values at once into a
/// queue homed at V itself, three times the loop's queue of 1,024, so the overflow's thread
/// starts; then 3,000 gets at once; meanwhile 2 threads set and read back their own
/// variable, homed at real peers, with the blocking twins. Every call returns, every value
/// comes out exactly once, and every read sees the value just set.
#[test]
fn calls_through_a_full_command_queue_all_complete_with_the_right_values() {
    watch_panics();
    let (v, b, m) = trio(loopback(), loopback());
    let v_id = v.peer_id();
    let name = names_homed(keys::queue::<u64>, &v, &b, |home| *home == v_id, 1).remove(0);
    let variables = names_homed(keys::variable::<u64>, &v, &b, |home| *home != m.id, 2);
    let m = Arc::new(m);
    let _flood = Flood::start(&m, v_id, "flood", LIGHT);
    let n = 3_000u64;
    let started = Instant::now();
    let set = setters(&v, &variables, 20);
    let got = put_and_get_at_once(&v.queue::<u64>(&name, n as usize), n, started);
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "values lost or duplicated");
    for _ in &variables {
        let outcome = set.recv_timeout(Duration::from_secs(30).saturating_sub(started.elapsed()));
        assert_eq!(outcome, Ok(Ok(20)), "a setter");
    }
    eprintln!("{} calls in {:?}", 2 * n + 80, started.elapsed());
    still_works(&v);
    still_works(&b);
    assert_no_panics();
}

/// The same 3,000 puts and gets at once, into a queue homed at B, with no flood and no raw
/// peer: V sends each operation to B at once (`Node::send` lets `Request::Prim` past the
/// per-peer cap of requests in flight). Every call returns with the right values, and V
/// never suspects B: the requests in flight on V's connection to B stay under what yamux
/// allows (512 streams), past which it resets the connection.
#[test]
fn many_calls_at_once_to_one_remote_home_keep_the_connection() {
    watch_panics();
    let v = Peer::join(loopback()).unwrap();
    let b = join(&v, loopback());
    let b_id = b.peer_id();
    let homed_at_b = |name: &String| v.homes(&keys::queue::<u64>(name)).first() == Some(&b_id);
    let name = (0..1000)
        .map(|i| format!("hostile-{i}"))
        .find(homed_at_b)
        .expect("a name homed at B");
    let n = 3_000u64;
    let started = Instant::now();
    let got = put_and_get_at_once(&v.queue::<u64>(&name, n as usize), n, started);
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "values lost or duplicated");
    let suspected = v.status().unwrap().recoveries;
    assert!(suspected.is_empty(), "V suspected B: {suspected:?}");
    eprintln!("{} calls in {:?}", 2 * n, started.elapsed());
    still_works(&v);
    assert_no_panics();
}

/// Calls queued when the peer stops (`EventLoop::run` returns on the stop; `Drop for
/// EventLoop` answers its table of calls; `refuse` in `call.rs` those in the overflow): 16
/// threads read variables homed at V itself, each answered within one step of V's loop, so
/// a read waits mostly in V's command queue, which a publisher keeps full, while M floods
/// V. V's application drops its `Peer` while they read: the drop returns within 5 s, and
/// then every read returns within 5 s (with `None`): none waits for ever.
#[test]
fn calls_queued_when_a_flooded_peer_stops_all_return() {
    watch_panics();
    let (v, b, m) = trio(loopback(), loopback());
    let v_id = v.peer_id();
    let names = names_homed(keys::variable::<u64>, &v, &b, |home| *home == v_id, 4);
    for name in &names {
        v.variable::<u64>(name).blocking_set(1);
    }
    let m = Arc::new(m);
    let flood = Flood::start(&m, v_id, "flood", LIGHT);
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = keep_queue_full(&v, "noise", 20_000, Duration::from_millis(5), &stop);
    wait_until("V's command queue overflows", WAIT, || {
        threads_named(OVERFLOW_THREAD) >= 1
    });
    let calls = Arc::new(AtomicU64::new(0));
    let (tx, ended) = mpsc::channel();
    let threads = 16;
    for t in 0..threads {
        let variable = v.variable::<u64>(&names[t % names.len()]);
        let (stop, calls, tx) = (stop.clone(), calls.clone(), tx.clone());
        std::thread::spawn(move || {
            let mut read = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let value = variable.blocking_get();
                calls.fetch_add(1, Ordering::Relaxed);
                read += u64::from(value.is_some());
            }
            let _ = tx.send((t, read));
        });
    }
    std::thread::sleep(Duration::from_millis(1_500));
    let before = calls.load(Ordering::Relaxed);
    // Reads still return while the queue is full (however loaded the machine is).
    wait_until("a read returns while V's queue is full", WAIT, || {
        calls.load(Ordering::Relaxed) > before
    });
    let made = calls.load(Ordering::Relaxed);
    assert!(ended.try_recv().is_err(), "a reader ended before the stop");
    let took = drop_within_hang(v, "a peer with a full command queue");
    let dropped = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let mut done = Vec::new();
    for _ in 0..threads {
        match ended.recv_timeout(HANG.saturating_sub(dropped.elapsed())) {
            Ok((t, _)) => done.push(t),
            Err(_) => panic!(
                "{} of {threads} readers still wait {HANG:?} after V stopped (dropped in \
                 {took:?}; {made} reads before); ended: {done:?}",
                threads - done.len()
            ),
        }
    }
    eprintln!("{made} reads before the stop; V dropped in {took:?}");
    let _ = publisher.join();
    drop(flood);
    still_works(&b);
    assert_no_panics();
}

/// Answers from a primitive's home (`poll_put` and `poll_get` in `net/src/sync/handles.rs`):
/// M is the home of a queue, as V and B rank it, and answers V's waiting put with a
/// refusal and V's waiting get with a count. Once M leaves, a real peer is the home, and
/// each call must end within 15 s: the put in the queue (the get or B then takes its
/// value) or handed back, the get with the value or an error.
#[test]
fn a_wrong_answer_from_a_hostile_home_leaves_no_call_waiting_after_it_leaves() {
    watch_panics();
    let (v, b, m) = trio(loopback(), loopback());
    let name = names_homed(keys::queue::<u64>, &v, &b, |home| *home == m.id, 1).remove(0);
    let key = keys::queue::<u64>(&name);
    m.respond_with({
        let key = key.clone();
        move |_, request| match request {
            Request::Prim(p) if p.key == key => Some(Response::Prim(match p.op {
                Op::Put { .. } => Reply::Refused("a hostile home refuses".into()),
                _ => Reply::Count(7),
            })),
            _ => None,
        }
    });
    let (tx, rx) = mpsc::channel();
    let put = {
        let (q, tx) = (v.queue::<u64>(&name, 4), tx.clone());
        std::thread::spawn(move || {
            let put = q.blocking_put(5).map(|()| 5).map_err(|ClosedError(v)| v);
            let _ = tx.send(("put", put));
        })
    };
    let get = {
        let (q, tx) = (v.queue::<u64>(&name, 4), tx.clone());
        std::thread::spawn(move || {
            let _ = tx.send(("get", q.blocking_get().map_err(|_| 0)));
        })
    };
    let (mut asked_put, mut asked_get) = (false, false);
    m.wait_for("V's put and get at M", WAIT, |h| {
        if let Heard::Request {
            request: Request::Prim(p),
            ..
        } = h
            && p.key == key
        {
            asked_put |= matches!(p.op, Op::Put { .. });
            asked_get |= matches!(p.op, Op::Get { .. });
        }
        (asked_put && asked_get).then_some(())
    });
    // M's answers reach V (M dropped at once could lose them: V would then ask again, at
    // the new home).
    std::thread::sleep(Duration::from_secs(1));
    let m_id = m.id;
    drop(m);
    wait_until("V and B take a real peer for the home", WAIT, || {
        let (hv, hb) = (v.homes(&key), b.homes(&key));
        hv.first().is_some_and(|h| *h != m_id) && hb.first().is_some_and(|h| *h != m_id)
    });
    let left = Instant::now();
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let waited = Duration::from_secs(15).saturating_sub(left.elapsed());
        match rx.recv_timeout(waited) {
            Ok(outcome) => outcomes.push(outcome),
            Err(_) => {
                panic!("a call still waits 15 s after the hostile home left; ended: {outcomes:?}")
            }
        }
    }
    let _ = (put.join(), get.join());
    let put = outcomes.iter().find(|(what, _)| *what == "put").unwrap().1;
    let got = outcomes.iter().find(|(what, _)| *what == "get").unwrap().1;
    match (put, got) {
        (Ok(_), Ok(value)) => assert_eq!(value, 5),
        (Ok(_), Err(_)) => {
            let q = b.queue::<u64>(&name, 4);
            assert_eq!(
                q.blocking_get_timeout(WAIT),
                Ok(5),
                "the put's value is lost"
            );
        }
        (Err(value), _) => assert_eq!(value, 5, "the put did not hand its value back"),
    }
    still_works(&v);
    assert_no_panics();
}

/// Gossip admission (the sender check in `EventLoop::behaviour_event`, `Gossip::admit`):
/// with every peer's gossip bound at 64 KiB, M gossips, signed by itself, batches claiming
/// to come from B, from V itself and from a peer nobody knows; then one of its own
/// numbered far ahead and one numbered behind it (stale: its events still count, by
/// design); then a batch over the bound. V delivers to its subscriber only M's own two
/// values and B's honest one, and both real peers keep running tasks.
#[test]
fn forged_stale_and_oversized_gossip_is_admitted_or_dropped_as_it_should() {
    watch_panics();
    let (v, b, m) = trio(small_gossip(), small_gossip());
    let mut seen = v.topic::<u64>("marks").subscribe();
    let key = keys::topic::<u64>("marks");
    let value = |x: u64| GraphEvent::Topic {
        key: key.clone(),
        value: postcard::to_allocvec(&x).unwrap(),
    };
    let publish = |from: u64, number: u64, events: Vec<GraphEvent>| {
        let batch = Batch {
            from,
            number,
            events,
        };
        let bytes = postcard::to_allocvec(&batch).unwrap();
        m.publish_bytes(bytes).expect("published");
    };
    let (v_number, b_number) = (number(&v.peer_id()), number(&b.peer_id()));
    publish(
        b_number,
        1_000,
        vec![value(666), GraphEvent::Load(u32::MAX)],
    );
    publish(v_number, 1_000, vec![value(667)]);
    publish(0xdead_beef, 1, vec![value(668)]);
    publish(m.number, u64::MAX, vec![value(1)]);
    publish(m.number, 3, vec![value(2), GraphEvent::Load(u32::MAX)]);
    let big = GraphEvent::Topic {
        key: key.clone(),
        value: vec![7; 100 << 10],
    };
    publish(m.number, u64::MAX - 1, vec![value(777), big]);
    b.topic::<u64>("marks").publish(3);
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !(got.contains(&1) && got.contains(&2) && got.contains(&3)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match seen.blocking_next_timeout(left) {
            Some(x) => got.push(x),
            None => panic!("V did not deliver M's own values and B's; got {got:?}"),
        }
    }
    // Whatever else was coming has come by now.
    while let Some(x) = seen.blocking_next_timeout(Duration::from_millis(500)) {
        got.push(x);
    }
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3], "forged or oversized gossip delivered");
    still_works(&v);
    still_works(&b);
    assert_no_panics();
}

/// An oversized message relayed (`Limits::gossip_bytes`, gossipsub's `max_transmit_size`):
/// V bounds gossip at 64 KiB, B keeps the default 1 MiB. M gossips one batch of 100 kB;
/// B takes it and relays it to V, which cannot read it. B's own gossip must still reach V:
/// of ten values B publishes over five seconds, V delivers at least one.
#[test]
fn an_oversized_message_relayed_by_an_honest_peer_does_not_cut_its_gossip() {
    watch_panics();
    let (v, b, mut m) = trio(small_gossip(), loopback());
    let mut seen = v.topic::<u64>("marks").subscribe();
    let key = keys::topic::<u64>("marks");
    m.gossip(vec![GraphEvent::Topic {
        key: key.clone(),
        value: vec![7; 100 << 10],
    }]);
    let marks = b.topic::<u64>("marks");
    let mut got = Vec::new();
    for x in 0..10 {
        marks.publish(x);
        if let Some(x) = seen.blocking_next_timeout(Duration::from_millis(500)) {
            got.push(x);
            break;
        }
    }
    assert!(
        !got.is_empty(),
        "V heard none of B's gossip after M's oversized batch"
    );
    still_works(&v);
    assert_no_panics();
}
