//! The swarm backend with a full queue and a loop that is not running.

use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use peer_core::ext::Ticket;
use peer_core::sync::FencingToken;

use super::*;
use crate::commands::{Command, Commands, Inbox, queue};
use crate::wire::{Op, Reply};

/// A queue to a loop that does not run yet, filled to the brim.
fn full_queue() -> (Commands, Inbox, usize) {
    let (commands, inbox) = queue();
    let mut filled = 0;
    while commands.try_send(Command::PrimCancel(u64::MAX)).is_ok() {
        filled += 1;
    }
    (commands, inbox, filled)
}

/// Takes the next command off the loop's queue, as the loop would.
fn next(inbox: &mut Inbox) -> Command {
    inbox.rx.blocking_recv().expect("a command")
}

#[test]
fn calls_made_while_the_loops_queue_is_full_return_at_once_and_reach_it_in_order() {
    let (commands, mut inbox, filled) = full_queue();
    let backend = SwarmBackend::new(commands.downgrade());
    let sem = backend.semaphore("lock/full", 1);
    let topic = backend.topic("topic/full/u64", Codec::of::<u64>());
    let mut cx = Context::from_waker(Waker::noop());
    let started = Instant::now();
    // A try_acquire polled, a permit dropped, a value published, another call polled
    // and then withdrawn: none of them waits for room.
    let mut ticket = Ticket::default();
    assert!(
        sem.poll_try_acquire(&mut ticket, None, &mut cx)
            .is_pending()
    );
    sem.release_soon(FencingToken(5));
    assert_eq!(topic.publish(Arc::new(3u64)), 0);
    let mut withdrawn = Ticket::default();
    assert!(sem.poll_available(&mut withdrawn, &mut cx).is_pending());
    let withdrawn_seq = withdrawn.0.expect("a call in flight");
    sem.cancel(&mut withdrawn);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a call waited for room in the loop's queue"
    );

    // The loop takes what filled its queue, then what waited, in the order it was made.
    for _ in 0..filled {
        assert!(matches!(next(&mut inbox), Command::PrimCancel(u64::MAX)));
    }
    let Command::Prim { op, slot, .. } = next(&mut inbox) else {
        panic!("the try_acquire first")
    };
    assert_eq!(
        op,
        Op::Acquire {
            lease_ms: None,
            wait: false
        }
    );
    assert!(matches!(
        next(&mut inbox),
        Command::Prim {
            op: Op::Release { token: 5 },
            ..
        }
    ));
    assert!(matches!(next(&mut inbox), Command::TopicPublish { .. }));
    assert!(matches!(
        next(&mut inbox),
        Command::Prim {
            op: Op::Available,
            ..
        }
    ));
    assert!(matches!(next(&mut inbox), Command::PrimCancel(seq) if seq == withdrawn_seq));

    // The answer reaches the call that was sent late.
    let granted = Reply::Granted {
        token: 9,
        lease_ms: None,
    };
    assert!(slot.complete(granted, Instant::now()).is_none());
    match sem.poll_try_acquire(&mut ticket, None, &mut cx) {
        Poll::Ready(Some(grant)) => assert_eq!(grant.token, FencingToken(9)),
        other => panic!("expected the grant, got {other:?}"),
    }
    drop(commands);
}

#[test]
fn a_call_made_once_the_loop_is_gone_is_answered_at_once() {
    let (commands, inbox) = queue();
    let backend = SwarmBackend::new(commands.downgrade());
    drop((commands, inbox));
    let queue = backend.queue("queue/gone/u64", 4, Codec::of::<u64>());
    let mut cx = Context::from_waker(Waker::noop());
    let mut ticket = Ticket::default();
    assert_eq!(
        queue.poll_len(&mut ticket, &mut cx),
        Poll::Ready(0),
        "a refusal reads as the neutral value"
    );
}

/// The slot of the next operation the backend sent to the loop.
fn next_slot(inbox: &mut Inbox) -> Arc<CallSlot> {
    match next(inbox) {
        Command::Prim { slot, .. } => slot,
        _ => panic!("expected an operation"),
    }
}

/// Only this peer can say that its loop is gone: a home's refusal with the same words is a
/// refusal like any other (logged; the waiter waits on), so a hostile home can neither close
/// a queue's waiting get nor end a waiting acquire. The stop itself ends both: the get as
/// if the queue were closed, the acquire, which has no error to give, with a panic.
#[test]
fn only_this_peer_can_end_a_wait_as_stopped() {
    let (commands, mut inbox) = queue();
    let backend = SwarmBackend::new(commands.downgrade());
    let queue = backend.queue("queue/stop/u64", 4, Codec::of::<u64>());
    let sem = backend.semaphore("lock/stop", 1);
    let mut cx = Context::from_waker(Waker::noop());
    let faked = || Reply::Refused(call::STOPPED.into());

    let mut get = Ticket::default();
    assert!(queue.poll_get(&mut get, &mut cx).is_pending());
    assert!(
        next_slot(&mut inbox)
            .complete(faked(), Instant::now())
            .is_none()
    );
    assert!(
        queue.poll_get(&mut get, &mut cx).is_pending(),
        "a home's refusal closed a waiting get"
    );
    let mut acquire = Ticket::default();
    assert!(sem.poll_acquire(&mut acquire, None, &mut cx).is_pending());
    assert!(
        next_slot(&mut inbox)
            .complete(faked(), Instant::now())
            .is_none()
    );
    assert!(
        sem.poll_acquire(&mut acquire, None, &mut cx).is_pending(),
        "a home's refusal ended a waiting acquire"
    );

    // The next polls start the calls again; then this peer stops.
    assert!(queue.poll_get(&mut get, &mut cx).is_pending());
    next_slot(&mut inbox).stopped();
    assert!(matches!(
        queue.poll_get(&mut get, &mut cx),
        Poll::Ready(Err(peer_core::sync::Closed))
    ));
    assert!(sem.poll_acquire(&mut acquire, None, &mut cx).is_pending());
    next_slot(&mut inbox).stopped();
    let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = sem.poll_acquire(&mut acquire, None, &mut cx);
    }));
    let message = ended.expect_err("an acquire whose peer stopped went on");
    let message = message
        .downcast_ref::<String>()
        .expect("a formatted message");
    assert!(
        message.contains("lock/stop") && message.contains("stopped"),
        "{message}"
    );
    drop(commands);
}
