//! A park/unpark pair with token semantics, built on a mutex and condvar so loom can check it.

use std::sync::Arc;
use std::time::Instant;

use crate::loom::{Condvar, Mutex};

/// Blocks one thread until an [`Unparker`] gives it a token.
///
/// Like `std::thread::park`, an unpark that comes before the park is not lost: it leaves a
/// token, and the next park consumes it and returns at once. Spurious returns are possible
/// (a stale token), so callers always re-check their condition in a loop.
#[derive(Debug)]
pub struct Parker {
    state: Mutex<State>,
    condvar: Condvar,
}

#[derive(Debug)]
struct State {
    /// A token is waiting to be consumed.
    notified: bool,
    /// A thread is blocked in `park`: only then does `unpark` pay for a condvar notify, which
    /// is a system call even when nobody waits.
    parked: bool,
}

/// Wakes the thread parked on a [`Parker`]; cheap to clone and send to whoever completes the
/// thing being waited for.
#[derive(Debug, Clone)]
pub struct Unparker(Arc<Parker>);

impl Parker {
    /// A parker with no token.
    pub fn new() -> Arc<Parker> {
        Arc::new(Parker {
            state: Mutex::new(State {
                notified: false,
                parked: false,
            }),
            condvar: Condvar::new(),
        })
    }

    /// An unparker for this parker.
    pub fn unparker(self: &Arc<Self>) -> Unparker {
        Unparker(self.clone())
    }

    /// Blocks until a token is available or `deadline` passes, then consumes the token.
    /// Returns `true` if a token was consumed.
    pub fn park(&self, deadline: Option<Instant>) -> bool {
        let mut state = lock(&self.state);
        state.parked = true;
        let got = loop {
            if state.notified {
                break true;
            }
            match deadline {
                None => state = wait(&self.condvar, state),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break false;
                    }
                    state = wait_timeout(&self.condvar, state, deadline - now);
                }
            }
        };
        state.parked = false;
        state.notified = false;
        got
    }

    /// Leaves a token and wakes the parked thread, if any.
    pub fn unpark(&self) {
        let mut state = lock(&self.state);
        state.notified = true;
        if state.parked {
            // Notify under the lock: the parker cannot miss it, since it checks `notified`
            // under the same lock before every wait.
            self.condvar.notify_one();
        }
    }
}

impl Unparker {
    /// Leaves a token for the parked thread and wakes it.
    pub fn unpark(&self) {
        self.0.unpark();
    }

    /// Whether both unparkers wake the same parker.
    pub fn will_unpark(&self, other: &Unparker) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

// A poisoned lock here only means another thread panicked while holding it; the flags it guards
// are always valid, so carry on with them.
fn lock(m: &Mutex<State>) -> crate::loom::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn wait<'a>(
    c: &Condvar,
    g: crate::loom::MutexGuard<'a, State>,
) -> crate::loom::MutexGuard<'a, State> {
    c.wait(g).unwrap_or_else(|e| e.into_inner())
}

fn wait_timeout<'a>(
    c: &Condvar,
    g: crate::loom::MutexGuard<'a, State>,
    d: std::time::Duration,
) -> crate::loom::MutexGuard<'a, State> {
    match c.wait_timeout(g, d) {
        Ok((g, _)) => g,
        Err(e) => e.into_inner().0,
    }
}
