//! Tasks nobody asked for: a raw libp2p peer pushes tasks without a lifeline, pushes more
//! than one message may carry, and answers a steal with more than was asked. Each is refused
//! or cut at its bound, nothing beyond it runs, and the peer keeps doing honest work.

#[path = "common/peers.rs"]
mod peers;
#[path = "common/raw.rs"]
mod raw;

use std::collections::HashSet;
use std::time::Duration;

use peer_core::NamedTask;
use peer_net::Peer;
use peer_net::wire::{
    ArgSpec, CALL_RESULT, CallArgs, CallResults, Done, Failure, Request, Response, TaskKey,
    TaskSpec,
};
use peers::{TouchTask, loopback, runs, still_works};
use raw::{Heard, RawPeer, number};

/// A task that counts its runs under `tag`, owned by `owner`.
fn touch(owner: u64, seq: u64, tag: &str) -> TaskSpec {
    TaskSpec {
        key: TaskKey { owner, seq },
        name: "hostile::touch".into(),
        fingerprint: TouchTask::FINGERPRINT,
        args: vec![ArgSpec::Inline(postcard::to_allocvec(tag).unwrap())].into(),
        hops: 0,
        calls: Default::default(),
    }
}

/// Whether `heard` is a notice from the target that the raw peer's task `seq` finished.
fn finished(heard: &Heard, seqs: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    match heard {
        Heard::Request {
            request: Request::Notify { done, .. },
            ..
        } => (done.iter())
            .filter(|(task, done)| seqs.contains(&task.seq) && matches!(done, Done::Value { .. }))
            .map(|(task, _)| task.seq)
            .collect(),
        _ => Vec::new(),
    }
}

/// `Node::may_push` (`net/src/node/messages.rs`): a push is taken only from a peer this
/// peer registered a lifeline with. A raw peer that never became a member pushes tasks with
/// a side effect, one of its own and one it says a real member owns: refused, naming the
/// lifeline, and neither runs, while the peer keeps working.
#[test]
fn an_unsolicited_push_is_refused_and_nothing_of_it_runs() {
    let target = Peer::join(loopback()).unwrap();
    let member = Peer::join(loopback().bootstrap(target.addresses()[0].clone())).unwrap();
    assert_eq!(target.wait_for_peers(1, Duration::from_secs(30)), 1);
    let raw = RawPeer::plain();
    let target_id = raw.connect(&target.addresses()[0]);
    let owner = number(&member.peer_id());
    let push = Request::Push {
        tasks: vec![
            touch(raw.number, 1, "unsolicited"),
            touch(owner, 1_000_000, "unsolicited"),
        ],
    };
    match raw.ask(target_id, &push).unwrap() {
        Response::Refused(why) => assert!(why.contains("lifeline"), "{why}"),
        other => panic!("an unsolicited push was taken: {other:?}"),
    }
    // Work submitted after the push runs; a pushed task would have run first, and been
    // reported to its owner.
    still_works(&target);
    still_works(&member);
    raw.never("a notice of a pushed task", Duration::from_secs(1), |h| {
        Some(finished(h, 1..=1)).filter(|f| !f.is_empty())
    });
    assert_eq!(runs("unsolicited"), 0, "a task nobody asked for ran");
}

/// `Limits::tasks_per_message` (`Node::may_push`, and the cut of a steal answer in
/// `Node::response`): a member answers the target's first steal with 10 tasks when the
/// target takes 4 at once; then, the target having registered a lifeline with it, pushes 10
/// (refused, naming the bound) and 4 (taken). Exactly 4 of the stolen and the 4 pushed run.
#[test]
fn pushes_and_steal_answers_are_cut_at_the_tasks_per_message() {
    // `Limits` is not re-exported by `peer_net`; its value comes from a config.
    let mut limits = loopback().current_limits();
    limits.tasks_per_message = 4;
    let target = Peer::join(loopback().limits(limits)).unwrap();
    let raw = RawPeer::member();
    let me = raw.number;
    raw.answer_first_steal((201..=210).map(|seq| touch(me, seq, "stolen")).collect());
    let target_id = raw.connect(&target.addresses()[0]);
    let mut stolen = HashSet::new();
    raw.wait_for("four stolen tasks done", Duration::from_secs(20), |h| {
        stolen.extend(finished(h, 201..=210));
        (stolen.len() >= 4).then_some(())
    });
    raw.wait_for("a lifeline registration", Duration::from_secs(20), |h| {
        matches!(
            h,
            Heard::Request {
                request: Request::Lifeline { .. },
                ..
            }
        )
        .then_some(())
    });
    let over = Request::Push {
        tasks: (101..=110).map(|seq| touch(me, seq, "pushed")).collect(),
    };
    match raw.ask(target_id, &over).unwrap() {
        Response::Refused(why) => assert!(why.contains("over the 4"), "{why}"),
        other => panic!("a push over the bound was taken: {other:?}"),
    }
    let within = Request::Push {
        tasks: (111..=114).map(|seq| touch(me, seq, "pushed")).collect(),
    };
    assert_eq!(raw.ask(target_id, &within).unwrap(), Response::Ack);
    let mut pushed = HashSet::new();
    raw.wait_for("the four pushed tasks done", Duration::from_secs(20), |h| {
        pushed.extend(finished(h, 101..=114));
        (pushed.len() >= 4).then_some(())
    });
    still_works(&target);
    raw.never("a fifth stolen task", Duration::from_secs(1), |h| {
        stolen.extend(finished(h, 201..=210));
        (stolen.len() > 4).then_some(stolen.len())
    });
    assert_eq!(
        pushed,
        (111..=114).collect(),
        "only the push within the bound ran"
    );
    assert_eq!(runs("stolen"), 4);
    assert_eq!(runs("pushed"), 4);
}

/// A batch task (`TaskSpec::calls`, `net/src/batch.rs`) crafted by a member: its calls name
/// an argument that is not there, a call after them, and a call that failed. The target
/// runs the one good call once, fails each bad one alone, reports one outcome per call to
/// the owner, and keeps working.
#[test]
fn a_crafted_batch_fails_its_bad_calls_alone() {
    let target = Peer::join(loopback()).unwrap();
    let raw = RawPeer::member();
    let me = raw.number;
    let batch = TaskSpec {
        calls: vec![
            CallArgs(vec![0]),               // runs, once
            CallArgs(vec![7]),               // no such argument
            CallArgs(vec![CALL_RESULT + 3]), // a call after it
            CallArgs(vec![CALL_RESULT + 1]), // reads the failed call 1
        ]
        .into(),
        ..touch(me, 301, "batched")
    };
    raw.answer_first_steal(vec![batch]);
    let _target_id = raw.connect(&target.addresses()[0]);
    let results = raw.wait_for(
        "the batch's results",
        Duration::from_secs(20),
        |h| match h {
            Heard::Request {
                request: Request::Notify { done, .. },
                ..
            } => done.iter().find_map(|(task, done)| match done {
                Done::Value {
                    inline: Some(bytes),
                    ..
                } if task.seq == 301 => Some(postcard::from_bytes::<CallResults>(bytes).unwrap()),
                _ => None,
            }),
            _ => None,
        },
    );
    assert_eq!(results.len(), 4, "one outcome per call: {results:?}");
    assert!(results[0].is_ok(), "{results:?}");
    assert!(
        matches!(results[1], Err(Failure::BadArguments(_))),
        "{results:?}"
    );
    assert!(
        matches!(results[2], Err(Failure::BadArguments(_))),
        "{results:?}"
    );
    assert!(
        matches!(results[3], Err(Failure::Input { .. })),
        "{results:?}"
    );
    assert_eq!(runs("batched"), 1, "only the good call ran");
    still_works(&target);
}
