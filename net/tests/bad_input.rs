//! Bad input from the network: a raw libp2p peer sends oversized frames, garbage, deeply
//! nested messages, and tasks the receiver cannot run. Each is refused or answered with a
//! clear error, and the peer keeps serving real work.

#[path = "common/peers.rs"]
mod peers;
#[path = "common/raw.rs"]
mod raw;

use std::time::Duration;

use peer_core::NamedTask;
use peer_net::Peer;
use peer_net::wire::{
    ArgSpec, Delta, Done, Failure, GraphEvent, Kind, Op, OpId, PrimRequest, Reply, Request,
    Response, TaskKey, TaskSpec,
};
use peers::{BigTask, DoubleTask, TouchTask, loopback, still_works};
use raw::{Heard, RawPeer, frame, nested_failure, varint};

fn spec(name: &str, fingerprint: u64, owner: u64, seq: u64) -> TaskSpec {
    TaskSpec {
        key: TaskKey { owner, seq },
        name: name.into(),
        fingerprint,
        args: vec![ArgSpec::Inline(postcard::to_allocvec(&21u64).unwrap())].into(),
        hops: 0,
        calls: Default::default(),
    }
}

/// Frames over the limit (`codec::check_len`), garbage (`codec::decode_body`), an
/// unsolicited push (`Node::may_push`), notices of tasks the target does not own and audits
/// of another owner's tasks (`messages.rs`, `Request::Notify` and `Request::Holding`),
/// operations on primitives with another peer's id, of the wrong kind or that do not fit
/// (`prims::prim_request`, `serve`), and changes to a copy from a peer that is not the key's
/// home (`prim_peer_request`, `Request::Replicate`).
#[test]
fn bad_frames_and_requests_are_refused_and_the_peer_keeps_working() {
    let target = Peer::join(loopback().max_frame(64 * 1024)).unwrap();
    let raw = RawPeer::plain();
    let target_id = raw.connect(&target.addresses()[0]);
    let me = raw.number;

    // A frame announcing 4 GiB: refused from its length, before anything is allocated.
    let mut huge = u32::MAX.to_be_bytes().to_vec();
    huge.extend_from_slice(&[0; 16]);
    let refused = raw.ask_bytes(target_id, huge);
    assert!(
        refused.is_err(),
        "an oversized frame got an answer: {refused:?}"
    );

    // A frame just over the configured limit (64 KiB), fully sent.
    let over = frame(&vec![0u8; 64 * 1024 + 1]);
    assert!(raw.ask_bytes(target_id, over).is_err());

    // Garbage of a plausible length.
    let garbage = frame(&[0xff, 0x13, 0x37, 0x00, 0x99, 0x42, 0x17]);
    assert!(raw.ask_bytes(target_id, garbage).is_err());

    // A push nobody asked for (`hostile_tasks.rs` shows that nothing of it runs).
    let push = Request::Push {
        tasks: vec![spec("hostile::double", DoubleTask::FINGERPRINT, me, 1)],
    };
    match raw.ask(target_id, &push).unwrap() {
        Response::Refused(why) => assert!(why.contains("no lifeline"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // A finish notice for a task the target does not own.
    let stray = Request::Notify {
        done: vec![(
            TaskKey { owner: 1, seq: 1 },
            Done::Failed(Failure::UnknownTask),
        )],
        release: vec![],
        moved: vec![],
    };
    match raw.ask(target_id, &stray).unwrap() {
        Response::Refused(why) => assert!(why.contains("not owned by this peer"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // An audit of tasks it never had, some not even the asker's: only the asker's are
    // answered, all as not held.
    let ours = TaskKey { owner: me, seq: 5 };
    let theirs = TaskKey { owner: 3, seq: 5 };
    let audit = Request::Holding {
        tasks: vec![ours, theirs],
    };
    assert_eq!(
        raw.ask(target_id, &audit).unwrap(),
        Response::NotHeld(vec![ours])
    );

    // A lookup of a name nobody published.
    let lookup = Request::Published {
        name: "nothing".into(),
    };
    assert_eq!(
        raw.ask(target_id, &lookup).unwrap(),
        Response::Published(None)
    );

    // Operations on named primitives: another peer's id, the wrong kind, an operation
    // that does not fit, changes to a copy from a peer that is not the key's home.
    let prim = |id: u64, kind: Kind, op: Op| {
        Request::Prim(PrimRequest {
            key: "lock/bad".into(),
            kind,
            id: OpId { peer: id, seq: 1 },
            op,
        })
    };
    let lock = Kind::Semaphore { permits: 1 };
    let acquire = Op::Acquire {
        lease_ms: Some(u64::MAX),
        wait: false,
    };
    let refused = |answer: Response, what: &str| match answer {
        Response::Prim(Reply::Refused(why)) => assert!(why.contains(what), "{why}"),
        other => panic!("expected a refusal ({what}), got {other:?}"),
    };
    let answer = raw.ask(target_id, &prim(me + 1, lock, acquire.clone()));
    refused(answer.unwrap(), "its sender's id");
    let answer = raw.ask(target_id, &prim(me, lock, acquire)).unwrap();
    assert!(
        matches!(answer, Response::Prim(Reply::Granted { .. })),
        "{answer:?}"
    );
    let queue = Kind::Queue { capacity: 1 };
    let put = Op::Put {
        item: vec![1],
        wait: true,
    };
    let answer = raw.ask(target_id, &prim(me, queue, put));
    refused(answer.unwrap(), "not a Queue");
    let answer = raw.ask(target_id, &prim(me, lock, Op::Len));
    refused(answer.unwrap(), "does not apply");
    let stray = Request::Replicate {
        key: "queue/none".into(),
        base: 3,
        deltas: vec![Delta::Close],
    };
    match raw.ask(target_id, &stray).unwrap() {
        Response::Refused(why) => assert!(why.contains("is not the home"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    still_works(&target);
}

/// Tasks handed to a peer that cannot run them (here as a steal answer, the one way a task
/// reaches a peer without its lifeline): a name it does not register (`run_task`), a name
/// it registers with another signature, a task it withholds (`Node::dispatch`, `NotServed`).
/// Each fails with a clear error reported to the task's owner, the raw peer.
#[test]
fn tasks_the_runner_cannot_run_fail_with_a_clear_error() {
    let target = Peer::join(loopback().withhold_task("hostile::touch")).unwrap();
    let raw = RawPeer::member();
    let me = raw.number;
    let specs = vec![
        // A fingerprint it serves, under a name it does not register.
        spec("no::such::task", DoubleTask::FINGERPRINT, me, 1),
        // A name it registers, with another task's fingerprint.
        spec("hostile::double", BigTask::FINGERPRINT, me, 2),
        // A task it withholds.
        spec("hostile::touch", TouchTask::FINGERPRINT, me, 3),
    ];
    raw.answer_first_steal(specs);
    raw.connect(&target.addresses()[0]);
    let mut failures = std::collections::HashMap::new();
    raw.wait_for("the target's three notices", Duration::from_secs(20), |h| {
        if let Heard::Request {
            request: Request::Notify { done, .. },
            ..
        } = h
        {
            for (task, done) in done {
                failures.insert(task.seq, done.clone());
            }
        }
        (failures.len() >= 3).then_some(())
    });
    assert_eq!(failures[&1], Done::Failed(Failure::UnknownTask));
    match &failures[&2] {
        Done::Failed(Failure::SignatureMismatch(found)) => {
            assert!(found.contains("u64"), "{found}")
        }
        other => panic!("expected a signature mismatch, got {other:?}"),
    }
    match &failures[&3] {
        Done::Failed(Failure::NotServed(why)) => assert!(why.contains("hostile::touch"), "{why}"),
        other => panic!("expected NotServed, got {other:?}"),
    }
    still_works(&target);
}

/// A request whose failure is `Failure::Input` nested 100,000 deep (about 300 kB): the
/// wire type's `first_cause` (`net/src/wire/mod.rs`) makes it one decoding error instead of
/// a stack overflow that aborts the process. The stream is dropped; the connection and the
/// peer keep serving.
#[test]
fn a_deeply_nested_frame_is_refused_and_the_peer_keeps_serving() {
    let target = Peer::join(loopback()).unwrap();
    let raw = RawPeer::plain();
    let target_id = raw.connect(&target.addresses()[0]);
    // Notify { done: [(1/1, Failed(nested))], release: [], moved: [] }, by hand.
    let notify = |depth: usize| {
        let mut body = vec![2, 1];
        body.extend(varint(1));
        body.extend(varint(1));
        body.push(1);
        body.extend(nested_failure(depth));
        body.extend([0, 0]);
        body
    };
    // The encoding is right: one level decodes.
    let one = postcard::from_bytes::<Request>(&notify(1)).unwrap();
    let Request::Notify { done, .. } = one else {
        panic!("not a notice: {one:?}")
    };
    assert!(matches!(done[0].1, Done::Failed(Failure::Input { .. })));
    let deep = frame(&notify(100_000));
    assert!(deep.len() > 300_000);
    let answer = raw.ask_bytes(target_id, deep);
    assert!(answer.is_err(), "a nested frame got an answer: {answer:?}");
    // The same connection still carries requests, and the peer still runs tasks.
    let report = raw.ask(target_id, &Request::Report).unwrap();
    assert!(matches!(report, Response::Report(_)), "{report:?}");
    still_works(&target);
}

/// A gossip batch publishing a failure nested 100,000 deep, signed and sent on the graph
/// topic by a member: `first_cause` makes it a decoding error in the event loop (dropped as
/// malformed gossip), the batch the member gossips next is taken, and the peer keeps
/// working.
#[test]
fn a_deeply_nested_gossip_message_is_dropped_and_the_peer_keeps_working() {
    let target = Peer::join(loopback()).unwrap();
    let after = target.topic::<u64>("after");
    let mut heard = after.subscribe();
    let mut raw = RawPeer::member();
    raw.connect(&target.addresses()[0]);
    raw.wait_subscribed(target.peer_id());
    let name = "nested";
    // Batch { from, number, events: [Published { name, value: Err(nested) }] }, by hand.
    let from = raw.number;
    let batch = |number: u64, depth: usize| {
        let mut body = varint(from);
        body.extend(varint(number));
        body.push(1);
        body.push(7);
        body.extend(varint(name.len() as u64));
        body.extend(name.as_bytes());
        body.push(1);
        body.extend(nested_failure(depth));
        body
    };
    let one = postcard::from_bytes::<peer_net::wire::Batch>(&batch(1, 1)).unwrap();
    assert!(matches!(
        &one.events[..],
        [GraphEvent::Published {
            value: Err(Failure::Input { .. }),
            ..
        }]
    ));
    let number = raw.next_batch();
    let deep = batch(number, 100_000);
    assert!(deep.len() > 300_000);
    raw.publish_bytes(deep).unwrap();
    // Gossip from one peer arrives in order: once the next batch is taken, so was this one.
    let key = peer_core::ext::keys::topic::<u64>("after");
    raw.gossip(vec![GraphEvent::Topic {
        key,
        value: postcard::to_allocvec(&7u64).unwrap(),
    }]);
    assert_eq!(
        heard.blocking_next_timeout(Duration::from_secs(20)),
        Some(7)
    );
    assert_eq!(target.published::<u64>(name).unwrap(), None);
    still_works(&target);
}
