//! Waiters that got an answer they cannot take (a home's refusal: at its bound of keys, the
//! key made as another kind; or a hostile home's nonsense) wait on and ask again later.
//! Their call is over, so nothing would wake them: one timer thread for the process wakes
//! each after [`AGAIN_AFTER`], and its next poll sends a new call. A refusing home costs a
//! waiter a request every [`AGAIN_AFTER`], not a busy loop.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::OnceLock;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::task::Waker;
use std::time::{Duration, Instant};

/// How long a waiter whose answer it could not take waits before it asks again.
pub(super) const AGAIN_AFTER: Duration = Duration::from_millis(500);

/// Wakes `waker` after [`AGAIN_AFTER`] (at once if the timer thread cannot be started).
pub(super) fn wake_later(waker: &Waker) {
    static TIMER: OnceLock<Option<Sender<(Instant, Waker)>>> = OnceLock::new();
    let timer = TIMER.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("peer-prims-again".into())
            .spawn(move || run(rx));
        spawned.ok().map(|_| tx)
    });
    let due = Instant::now() + AGAIN_AFTER;
    match timer {
        Some(tx) if tx.send((due, waker.clone())).is_ok() => {}
        _ => waker.wake_by_ref(),
    }
}

/// Wakes what is due, in order; ends when no sender is left (never, in practice).
fn run(rx: mpsc::Receiver<(Instant, Waker)>) {
    let mut due: BinaryHeap<Reverse<Timed>> = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while due.peek().is_some_and(|Reverse(t)| t.at <= now) {
            if let Some(Reverse(t)) = due.pop() {
                t.waker.wake();
            }
        }
        let next = match due.peek() {
            Some(Reverse(t)) => rx.recv_timeout(t.at.saturating_duration_since(now)),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok((at, waker)) => due.push(Reverse(Timed { at, waker })),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

struct Timed {
    at: Instant,
    waker: Waker,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Timed {}

impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::sync::{Arc, Mutex};
    use std::task::Wake;

    struct Woken(Mutex<Sender<Instant>>);

    impl Wake for Woken {
        fn wake(self: Arc<Self>) {
            let _ = self.0.lock().unwrap().send(Instant::now());
        }
    }

    #[test]
    fn a_waiter_is_woken_once_after_the_wait_in_order() {
        let (tx, rx) = channel();
        let start = Instant::now();
        for _ in 0..3 {
            wake_later(&Waker::from(Arc::new(Woken(Mutex::new(tx.clone())))));
        }
        for _ in 0..3 {
            let at = rx.recv_timeout(AGAIN_AFTER * 10).expect("woken");
            assert!(at >= start + AGAIN_AFTER, "woken early: {:?}", at - start);
        }
        assert!(rx.recv_timeout(AGAIN_AFTER).is_err(), "woken twice");
    }
}
