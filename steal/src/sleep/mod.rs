//! Parking idle workers without losing a wake-up. The protocol and its proof are in
//! `README.md` beside this file.

use std::sync::Arc;
use std::time::Instant;

use crate::loom::{AtomicUsize, Mutex, Ordering, fence};
use crate::parker::{Parker, Unparker};

#[cfg(all(test, peer_loom))]
mod loom_tests;

/// The idle list of a pool: which workers sleep, and their parkers.
#[derive(Debug)]
pub(crate) struct Sleep {
    /// Indices of the workers that registered as sleeping and were not woken yet.
    idle: Mutex<Vec<usize>>,
    /// `idle.len()`, readable without the lock so a producer pays one load when nobody sleeps.
    sleeping: AtomicUsize,
    parkers: Box<[Arc<Parker>]>,
}

/// Why [`Sleep::sleep`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Woke {
    /// The condition already held after registering; we never parked.
    Ready,
    /// A producer chose us to look for new work.
    ForWork,
    /// Someone else unparked us (a completion we registered for), the deadline passed, or a
    /// stale token: re-check.
    Other,
}

impl Sleep {
    pub(crate) fn new(workers: usize) -> Sleep {
        Sleep {
            idle: Mutex::new(Vec::with_capacity(workers)),
            sleeping: AtomicUsize::new(0),
            parkers: (0..workers).map(|_| Parker::new()).collect(),
        }
    }

    /// An unparker for worker `index`, for completions it waits on.
    pub(crate) fn unparker(&self, index: usize) -> Unparker {
        self.parkers[index].unparker()
    }

    /// Producer side: call after making work visible (a push to any deque). Wakes one
    /// sleeping worker if there is one.
    #[inline]
    pub(crate) fn notify_one(&self) {
        // Pairs with the fence in `sleep`: either we see the sleeper's registration or it sees
        // our push. See README.md, "the store-buffer argument".
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) != 0 {
            self.wake_one();
        }
    }

    /// Wakes every sleeping worker (shutdown). The caller sets its flag before calling.
    pub(crate) fn notify_all(&self) {
        fence(Ordering::SeqCst);
        let woken: Vec<usize> = {
            let mut idle = self.lock();
            self.sleeping.store(0, Ordering::Relaxed);
            std::mem::take(&mut *idle)
        };
        for index in woken {
            self.parkers[index].unpark();
        }
    }

    #[cold]
    fn wake_one(&self) {
        let chosen = {
            let mut idle = self.lock();
            let chosen = idle.pop();
            if chosen.is_some() {
                self.sleeping.fetch_sub(1, Ordering::Relaxed);
            }
            chosen
        };
        if let Some(index) = chosen {
            self.parkers[index].unpark();
        }
    }

    /// Sleeper side: registers worker `index` as idle, re-checks `ready` (which must look at
    /// every place work or a wake reason can appear), and parks until woken or `deadline`.
    pub(crate) fn sleep(
        &self,
        index: usize,
        ready: &dyn Fn() -> bool,
        deadline: Option<Instant>,
    ) -> Woke {
        {
            let mut idle = self.lock();
            idle.push(index);
            self.sleeping.fetch_add(1, Ordering::Relaxed);
        }
        // Pairs with the fence in `notify_one`/`notify_all`.
        fence(Ordering::SeqCst);
        if ready() {
            return if self.unregister(index) {
                Woke::Ready
            } else {
                // A producer chose us between the registration and the check: we will look
                // for work anyway, which is what it asked for.
                Woke::ForWork
            };
        }
        self.parkers[index].park(deadline);
        if self.unregister(index) {
            Woke::Other
        } else {
            Woke::ForWork
        }
    }

    /// Removes `index` from the idle list; `false` if a producer already took it out.
    fn unregister(&self, index: usize) -> bool {
        let mut idle = self.lock();
        match idle.iter().position(|&i| i == index) {
            Some(at) => {
                idle.swap_remove(at);
                self.sleeping.fetch_sub(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> crate::loom::MutexGuard<'_, Vec<usize>> {
        // The list holds plain indices and every critical section leaves it consistent.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}
