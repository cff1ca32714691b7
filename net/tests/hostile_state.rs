//! Forged changes to shared state on a live swarm of two real peers, A and B, and a raw
//! member M: a primitive's replication, a lock's release and renewal by another peer's
//! token, a primitive opened with other parameters, a detached job's published value and
//! its name. Each is refused or ignored and the real state wins.
//!
//! Every primitive here is named so that its home and backup are A and B (M ranks third).

#[path = "common/peers.rs"]
mod peers;
#[path = "common/raw.rs"]
mod raw;

use std::time::Duration;

use peer_core::NamedTask;
use peer_core::ext::keys;
use peer_net::wire::{
    Body, Delta, GraphEvent, JobArg, JobSpec, JobTask, Kind, Op, OpId, PrimRequest, PrimState,
    Reply, Request, Response,
};
use peer_net::{Job, Peer, PeerId};
use peers::{DoubleTask, GatedTask, OpenOnDrop, homed_away_from, loopback, open, trio, wait_until};
use raw::RawPeer;

const WAIT: Duration = Duration::from_secs(20);

fn prim(m: &RawPeer, key: &str, kind: Kind, seq: u64, op: Op) -> Request {
    Request::Prim(PrimRequest {
        key: key.into(),
        kind,
        id: OpId {
            peer: m.number,
            seq,
        },
        op,
    })
}

fn refused(answer: Response, what: &[&str]) {
    match answer {
        Response::Prim(Reply::Refused(why)) | Response::Refused(why) => {
            for w in what {
                assert!(why.contains(w), "{why:?} does not say {w:?}");
            }
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A variable's state as a forger would send it: far ahead, with another value.
fn forged_variable(value: u64) -> PrimState {
    PrimState {
        seq: u64::MAX / 2,
        body: Body::Variable {
            value: Some(postcard::to_allocvec(&value).unwrap()),
            version: u64::MAX / 2,
            fence: None,
        },
    }
}

/// Reads the variable at `client` until an answer comes (its home may have just changed).
fn read(client: &Peer, name: &str) -> u64 {
    let variable = client.variable::<u64>(name);
    let mut value = None;
    wait_until("the variable answers", WAIT, || {
        value = variable.blocking_get();
        value.is_some()
    });
    value.unwrap()
}

/// The home of `key` leaves (dropped); the other real peer, its backup, stays.
fn home_leaves(a: Peer, b: Peer, key: &str) -> Peer {
    let home = a.homes(key)[0];
    let (home, survivor) = if home == a.peer_id() { (a, b) } else { (b, a) };
    drop(home);
    survivor
}

/// Replication only from the home (`prim_peer_request`, `Request::Replicate`): M sends the
/// backup of a variable a snapshot far ahead of the real one, with another value. Refused;
/// and when the home leaves, the backup takes over with the real value.
#[test]
fn a_forged_replication_is_refused_and_the_real_value_survives_its_home() {
    let (a, b, m) = trio(loopback(), loopback());
    let name = homed_away_from(keys::variable::<u64>, &a, &b, &m.id);
    let key = keys::variable::<u64>(&name);
    a.variable::<u64>(&name).blocking_set(1); // answered once the backup has it
    let backup = a.homes(&key)[1];
    let forged = Request::Replicate {
        key: key.clone(),
        base: 0,
        deltas: vec![Delta::Snapshot(forged_variable(999))],
    };
    refused(m.ask(backup, &forged).unwrap(), &["is not the home"]);
    let survivor = home_leaves(a, b, &key);
    assert_eq!(read(&survivor, &name), 1);
}

/// Permits released or renewed only by their holder's peer (`serve` in
/// `net/src/node/prims/mod.rs`): A holds a lock; M, with A's fencing token, releases it and
/// renews it to a 1 ms lease. Both refused naming the holder; the lock stays A's until A
/// lets it go.
#[test]
fn a_forged_lock_release_or_renewal_is_refused() {
    let (a, b, m) = trio(loopback(), loopback());
    let name = homed_away_from(keys::lock, &a, &b, &m.id);
    let key = keys::lock(&name);
    let home = a.homes(&key)[0];
    let held = a.lock(&name).blocking_try_lock().expect("a free lock");
    let token = held.token().0;
    let lock = Kind::Semaphore { permits: 1 };
    let release = prim(&m, &key, lock, 1, Op::Release { token });
    refused(m.ask(home, &release).unwrap(), &["held by another peer"]);
    let renew = prim(&m, &key, lock, 2, Op::Renew { token, lease_ms: 1 });
    refused(m.ask(home, &renew).unwrap(), &["held by another peer"]);
    assert!(
        b.lock(&name).blocking_try_lock().is_none(),
        "the lock is still A's"
    );
    drop(held);
    let mut taken = None;
    wait_until("B takes the lock A let go", WAIT, || {
        taken = b.lock(&name).blocking_try_lock();
        taken.is_some()
    });
}

/// A primitive opened with other parameters is refused naming both (`PrimState::is`,
/// `serve`): a semaphore of 1 permit asked for with 2, a queue of 4 with 8, by M and by a
/// real peer, which gets no permit.
#[test]
fn a_primitive_opened_with_other_parameters_is_refused_naming_both() {
    let (a, b, m) = trio(loopback(), loopback());
    let name = homed_away_from(keys::semaphore, &a, &b, &m.id);
    let key = keys::semaphore(&name);
    assert_eq!(a.semaphore(&name, 1).blocking_available(), 1);
    let two = prim(&m, &key, Kind::Semaphore { permits: 2 }, 1, Op::Available);
    let home = a.homes(&key)[0];
    let both = ["Semaphore { permits: 1 }", "Semaphore { permits: 2 }"];
    refused(m.ask(home, &two).unwrap(), &both);
    assert!(b.semaphore(&name, 2).blocking_try_acquire().is_none());
    assert!(a.semaphore(&name, 1).blocking_try_acquire().is_some());

    let name = homed_away_from(keys::queue::<u64>, &a, &b, &m.id);
    let key = keys::queue::<u64>(&name);
    a.queue::<u64>(&name, 4).blocking_try_put(7).unwrap();
    let eight = prim(&m, &key, Kind::Queue { capacity: 8 }, 2, Op::Len);
    let home = a.homes(&key)[0];
    let both = ["Queue { capacity: 4 }", "Queue { capacity: 8 }"];
    refused(m.ask(home, &eight).unwrap(), &both);
}

/// Waits until `peer`'s subscriber has the marker `value`: gossip from one peer arrives in
/// order, so what its sender gossiped before has been taken.
fn marker(seen: &mut peer_core::sync::Subscription<u64>, value: u64) {
    let got = seen.blocking_next_timeout(WAIT);
    assert_eq!(got, Some(value), "the marker");
}

/// Job names bound to their owner (`Node::speaks_for_job` in `net/src/node/jobs.rs`): M
/// gossips a job of its own under the name of A's detached job, and a value published under
/// it. Neither is taken: no peer has a value before A's job ends, nobody adopts the job
/// when M leaves, and A's value is the one every peer reads.
#[test]
fn a_forged_published_value_and_job_takeover_are_ignored() {
    let (a, b, mut m) = trio(loopback(), loopback());
    let _open = OpenOnDrop("job");
    let name = "hostile-job";
    let (marks_a, marks_b) = (a.topic::<u64>("marks"), b.topic::<u64>("marks"));
    let (mut seen_a, mut seen_b) = (marks_a.subscribe(), marks_b.subscribe());
    let mut job = Job::new(name);
    job.add(GatedTask, ("job".to_string(), 3u64)).unwrap();
    a.detach(job).unwrap();
    marks_a.publish(1); // after the job, in A's gossip
    marker(&mut seen_b, 1);
    let _ = seen_a.blocking_next_timeout(WAIT); // A's own
    let takeover = JobSpec {
        name: name.into(),
        tasks: vec![JobTask {
            name: DoubleTask::NAME.into(),
            fingerprint: DoubleTask::FINGERPRINT,
            args: vec![JobArg::Value(postcard::to_allocvec(&333u64).unwrap())],
        }],
        output: 0,
    };
    m.gossip(vec![
        GraphEvent::Detached(takeover),
        GraphEvent::Published {
            name: name.into(),
            value: Ok(postcard::to_allocvec(&666u64).unwrap()),
        },
    ]);
    m.gossip(vec![GraphEvent::Topic {
        key: keys::topic::<u64>("marks"),
        value: postcard::to_allocvec(&2u64).unwrap(),
    }]);
    marker(&mut seen_a, 2);
    marker(&mut seen_b, 2);
    assert_eq!(a.published::<u64>(name).unwrap(), None);
    assert_eq!(b.published::<u64>(name).unwrap(), None);
    // M leaves: a job taken for M's would now be adopted.
    let m_id: PeerId = m.id;
    drop(m);
    for peer in [&a, &b] {
        wait_until("the peers suspect M", WAIT, || {
            (peer.status().unwrap().recoveries.iter()).any(|s| s.peer == m_id)
        });
        assert_eq!(
            peer.status().unwrap().stats.adopted,
            0,
            "{}",
            peer.peer_id()
        );
    }
    open("job");
    assert_eq!(a.wait_published::<u64>(name, WAIT).unwrap(), 18);
    assert_eq!(b.wait_published::<u64>(name, WAIT).unwrap(), 18);
}

/// Published values only from a job's owner, by lookup too (`Node::looked_up`): while A's
/// detached job runs, B looks its name up; M answers with a value of its own.
/// Without the check, B kept M's 666 and the job's 18 was refused as a second value.
#[test]
fn a_forged_answer_to_a_lookup_is_not_taken() {
    let (a, b, m) = trio(loopback(), loopback());
    let _open = OpenOnDrop("lookup");
    // A name whose adopter, were A suspected (a loaded machine misses pings), would be B,
    // not M: the job's successor by rendezvous over B's view, as homes rank a key.
    let name: &'static str = (0..)
        .map(|i| format!("hostile-lookup-{i}"))
        .find(|name| {
            let ranked = b.homes(name);
            let at = |id| ranked.iter().position(|p| *p == id);
            match (at(b.peer_id()), at(m.id)) {
                (Some(b_at), Some(m_at)) => b_at < m_at,
                (_, None) => true,
                (None, Some(_)) => false,
            }
        })
        .map(|name| &*Box::leak(name.into_boxed_str()))
        .unwrap();
    m.respond_with(move |_, request| match request {
        Request::Published { name: asked } if asked == name => Some(Response::Published(Some(Ok(
            postcard::to_allocvec(&666u64).unwrap(),
        )))),
        _ => None,
    });
    let marks_b = b.topic::<u64>("marks");
    let mut seen_b = marks_b.subscribe();
    let mut job = Job::new(name);
    job.add(GatedTask, ("lookup".to_string(), 3u64)).unwrap();
    a.detach(job).unwrap();
    a.topic::<u64>("marks").publish(1);
    marker(&mut seen_b, 1);
    assert_eq!(b.published::<u64>(name).unwrap(), None, "B took M's answer");
    open("lookup");
    assert_eq!(b.wait_published::<u64>(name, WAIT).unwrap(), 18);
}

/// Claimed copies only from peers that may hold one (`Node::claim_answered`): when the home
/// of a variable leaves, its backup claims it from every live peer; M answers with a copy
/// far ahead of the real one.
/// A backup that claims (the home is gone) takes a copy only from a peer ranked above it;
/// with the old rule (any of the three peers ranked first: every peer of three), the backup
/// took M's 999.
#[test]
fn a_forged_copy_in_answer_to_a_claim_is_not_taken() {
    let (a, b, m) = trio(loopback(), loopback());
    let name = homed_away_from(keys::variable::<u64>, &a, &b, &m.id);
    let key = keys::variable::<u64>(&name);
    a.variable::<u64>(&name).blocking_set(1);
    m.respond_with(move |_, request| match request {
        Request::Claim { .. } => Some(Response::Claimed(Some(forged_variable(999)))),
        _ => None,
    });
    let survivor = home_leaves(a, b, &key);
    assert_eq!(read(&survivor, &name), 1);
}
