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
    notified: Mutex<bool>,
    condvar: Condvar,
}

/// Wakes the thread parked on a [`Parker`]; cheap to clone and send to whoever completes the
/// thing being waited for.
#[derive(Debug, Clone)]
pub struct Unparker(Arc<Parker>);

impl Parker {
    /// A parker with no token.
    pub fn new() -> Arc<Parker> {
        Arc::new(Parker {
            notified: Mutex::new(false),
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
        let mut notified = lock(&self.notified);
        while !*notified {
            match deadline {
                None => notified = wait(&self.condvar, notified),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    notified = wait_timeout(&self.condvar, notified, deadline - now);
                }
            }
        }
        *notified = false;
        true
    }

    /// Leaves a token and wakes the parked thread, if any.
    pub fn unpark(&self) {
        let mut notified = lock(&self.notified);
        if !*notified {
            *notified = true;
            // Notify while holding the lock: the parker cannot free itself in between because
            // it is reference counted, and this keeps the protocol obvious.
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

// A poisoned lock here only means another thread panicked while holding it; the bool it guards
// is always valid, so carry on with it.
fn lock(m: &Mutex<bool>) -> crate::loom::MutexGuard<'_, bool> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn wait<'a>(
    c: &Condvar,
    g: crate::loom::MutexGuard<'a, bool>,
) -> crate::loom::MutexGuard<'a, bool> {
    c.wait(g).unwrap_or_else(|e| e.into_inner())
}

fn wait_timeout<'a>(
    c: &Condvar,
    g: crate::loom::MutexGuard<'a, bool>,
    d: std::time::Duration,
) -> crate::loom::MutexGuard<'a, bool> {
    match c.wait_timeout(g, d) {
        Ok((g, _)) => g,
        Err(e) => e.into_inner().0,
    }
}
