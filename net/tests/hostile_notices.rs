//! Forged notices on a live swarm: two real peers, A owning tasks and B running them, and a
//! raw member M that tells A a task of A's finished, tells B to free a result it holds, or
//! tells A it took A's task. Each forgery is ignored and the real outcome wins.
//!
//! A withholds the tasks, so that only B runs them, and submits them before B joins, so
//! that B's first steals, from A alone, take them; M joins once B runs them.

#[path = "common/peers.rs"]
mod peers;
#[path = "common/raw.rs"]
mod raw;

use std::time::Duration;

use peer_core::TaskFuture;
use peer_net::Peer;
use peer_net::wire::{Done, Failure, Moved, Request, Response, TaskKey};
use peers::{
    BigTask, GatedSumTask, GatedTask, OpenOnDrop, big_value, join, loopback, open, raw_member,
    runs, wait_until,
};
use raw::number;

const WAIT: Duration = Duration::from_secs(20);

/// A submits a gated task per value of `xs` (and runs none of them itself), B joins and runs
/// them all (gate `gate`, open when the returned guard drops), then M joins as a member.
fn running_at_b(
    gate: &'static str,
    xs: &[u64],
) -> (Peer, Peer, raw::RawPeer, Vec<TaskFuture<u64>>, OpenOnDrop) {
    let a = Peer::join(loopback().withhold_task("hostile::gated")).unwrap();
    let futures = a.map_named(GatedTask, xs.iter().map(|x| (gate.to_string(), *x)));
    wait_until("A queues the tasks", WAIT, || {
        a.status().unwrap().stats.ready >= xs.len() as u64
    });
    let b = join(&a, loopback().workers(2));
    let open = OpenOnDrop(gate);
    wait_until("B runs the tasks", WAIT, || {
        b.status().unwrap().stats.running >= xs.len() as u64
    });
    let m = raw_member(&[&a, &b]);
    (a, b, m, futures, open)
}

/// Custody (`net/src/node/custody.rs`, `Node::owned_notice`): an owner takes a task's
/// result or failure only from a peer it gave the task to or heard it was handed to. While
/// B runs two of A's tasks, M tells A the first finished with another value and the second
/// panicked. A answers, but the futures resolve with B's values once B finishes.
#[test]
fn a_forged_result_is_ignored_and_the_real_one_wins() {
    let (a, _b, m, futures, _open) = running_at_b("forged-done", &[7, 8]);
    let (first, second) = (&futures[0], &futures[1]);
    let owner = number(&a.peer_id());
    let forged = Request::Notify {
        done: vec![
            (
                TaskKey { owner, seq: 1 },
                Done::Value {
                    size: 3,
                    inline: Some(postcard::to_allocvec(&666u64).unwrap()),
                },
            ),
            (
                TaskKey { owner, seq: 2 },
                Done::Failed(Failure::Panicked("forged".into())),
            ),
        ],
        release: vec![],
        moved: vec![],
    };
    assert_eq!(m.ask(a.peer_id(), &forged).unwrap(), Response::Ack);
    open("forged-done");
    assert_eq!(first.wait_timeout(WAIT), Some(Ok(&42)));
    assert_eq!(second.wait_timeout(WAIT), Some(Ok(&48)));
    assert_eq!(runs("forged-done"), 2, "each ran once, at B");
}

/// Releases only from the owner (`Request::Notify` in `net/src/node/messages.rs`): B holds
/// a large result of A's (100 kB, over the inline limit) that a running task of A's still
/// reads. M tells B to free it; B keeps it: M's own fetch of it gets the value, the reader
/// finishes with it, and it ran once.
#[test]
fn a_forged_release_is_ignored_and_the_result_stays_fetchable() {
    // Every call goes through the swarm, so the reader runs where the status counts it.
    let a = Peer::join(
        loopback()
            .withhold_task("hostile::big")
            .keep_below(Duration::ZERO),
    )
    .unwrap();
    let len = 100_000u64;
    let data = a.submit_named(BigTask, ("forged-release".to_string(), len));
    // Runs where it likes (at A, which is free, unless B steals it), fetching the data.
    let sum = a.submit_named(GatedSumTask, ("forged-release".to_string(), &data));
    wait_until("A queues the data's task", WAIT, || {
        a.status().unwrap().stats.ready >= 1
    });
    let b = join(&a, loopback().workers(2));
    let _open = OpenOnDrop("forged-release");
    let got = data.wait_timeout(WAIT).expect("the data").expect("made");
    assert_eq!(got.len() as u64, len);
    wait_until("the task that reads the data runs", WAIT, || {
        a.status().unwrap().stats.running + b.status().unwrap().stats.running >= 1
    });
    let m = raw_member(&[&a, &b]);
    let task = TaskKey {
        owner: number(&a.peer_id()),
        seq: 1,
    };
    let forged = Request::Notify {
        done: vec![],
        release: vec![task],
        moved: vec![],
    };
    assert_eq!(m.ask(b.peer_id(), &forged).unwrap(), Response::Ack);
    match m.ask(b.peer_id(), &Request::Fetch { task }).unwrap() {
        Response::Value(bytes) => {
            assert_eq!(bytes, postcard::to_allocvec(&big_value(len)).unwrap())
        }
        other => panic!("the result was freed by a forged release: {other:?}"),
    }
    open("forged-release");
    let want: u64 = big_value(len).iter().map(|b| u64::from(*b)).sum();
    assert_eq!(sum.wait_timeout(WAIT), Some(Ok(&want)));
    assert_eq!(runs("forged-release"), 1, "the data was made once");
}

/// Custody of moves (`Node::owned_notice` with `Notice::Moved`): while B runs A's task, M
/// tells A that it handed the task to M. A does not record it: when M leaves, A queues
/// nothing again on its account, and the real result arrives.
#[test]
fn a_forged_move_is_ignored_and_the_real_result_arrives() {
    let (a, _b, m, futures, _open) = running_at_b("forged-move", &[5]);
    let value = &futures[0];
    let task = TaskKey {
        owner: number(&a.peer_id()),
        seq: 1,
    };
    let forged = Request::Notify {
        done: vec![],
        release: vec![],
        moved: vec![Moved {
            task,
            to: m.number,
            hops: 1_000,
        }],
    };
    assert_eq!(m.ask(a.peer_id(), &forged).unwrap(), Response::Ack);
    let m_id = m.id;
    drop(m); // its connections close: A suspects it at once
    wait_until("A suspects M", WAIT, || {
        (a.status().unwrap().recoveries.iter()).any(|s| s.peer == m_id)
    });
    let status = a.status().unwrap();
    let suspicion = (status.recoveries.iter()).find(|s| s.peer == m_id).unwrap();
    assert_eq!(
        suspicion.requeued, 0,
        "A took M for the task's holder: {status:?}"
    );
    assert_eq!(status.stats.requeued, 0, "{status:?}");
    open("forged-move");
    assert_eq!(value.wait_timeout(WAIT), Some(Ok(&30)));
    assert_eq!(runs("forged-move"), 1);
}
