//! Blocking twins of the async methods: poll the same future, and between polls block this
//! thread. On a worker, a compensating thread runs the pool's tasks meanwhile
//! (`peer_steal::block_compensated`), so tasks blocked on a queue that a pending task would
//! fill cannot deadlock the pool — and, unlike helping on this thread's own stack, a blocked
//! consumer is never buried under a producer that waits for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use peer_steal::Unparker;

/// A waker that records the wake and unparks whoever blocks.
#[derive(Default)]
struct Signal {
    woken: AtomicBool,
    unparker: Mutex<Option<Unparker>>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let unparker = self
            .unparker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(u) = unparker {
            u.unpark();
        }
    }
}

/// Polls `future` to completion on this thread, or gives up at `deadline` and returns `None`,
/// leaving the future with the caller (dropping it withdraws it cleanly).
pub(crate) fn block_on<F: Future + Unpin>(
    future: &mut F,
    deadline: Option<Instant>,
) -> Option<F::Output> {
    // Answered at once (in-process, or already done): no signal to set up. A later poll
    // registers the real waker, as every poll must.
    if let Poll::Ready(value) = Pin::new(&mut *future).poll(&mut Context::from_waker(Waker::noop()))
    {
        return Some(value);
    }
    let signal = Arc::new(Signal::default());
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    // On a worker of a swarm's client, its node hands the pool one more task meanwhile.
    let mut waiting = None;
    loop {
        if let Poll::Ready(value) = Pin::new(&mut *future).poll(&mut cx) {
            return Some(value);
        }
        if waiting.is_none() {
            waiting = Some(crate::Client::waiting_on_worker());
        }
        let woke = peer_steal::block_compensated(
            &|| signal.woken.load(Ordering::Acquire),
            &mut |u| *signal.unparker.lock().unwrap_or_else(|e| e.into_inner()) = Some(u),
            deadline,
        );
        if !woke {
            return None;
        }
        signal.woken.store(false, Ordering::Release);
    }
}
