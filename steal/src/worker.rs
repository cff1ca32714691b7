//! One worker thread: its deque, how it finds work, and how it waits.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_deque::{Steal, Worker as Deque};
use crossbeam_utils::Backoff;

use crate::parker::{Parker, Unparker};
use crate::pool::Shared;
use crate::rng::Rng;
use crate::runnable::RunnableRef;
use crate::sleep::Woke;

pub(crate) struct WorkerThread {
    pub(crate) shared: Arc<Shared>,
    index: usize,
    deque: Deque<RunnableRef>,
    rng: std::cell::RefCell<Rng>,
}

thread_local! {
    /// The worker running on this thread, if any. Set for the whole of `main_loop`, whose
    /// frame owns the `WorkerThread`, and cleared before it returns.
    static CURRENT: Cell<*const WorkerThread> = const { Cell::new(std::ptr::null()) };
    /// A parker for threads outside any pool that block on a job.
    static PARKER: Arc<Parker> = Parker::new();
}

/// Runs `f` with the worker of the calling thread, if it is a pool worker.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&WorkerThread>) -> R) -> R {
    let ptr = CURRENT.with(|c| c.get());
    // SAFETY: CURRENT is only non-null while `main_loop` runs on this thread, and that frame
    // owns the WorkerThread it points to; `f` cannot outlive this call.
    f(unsafe { ptr.as_ref() })
}

/// The index of the pool worker running on this thread, or `None` outside a pool.
pub fn current_worker_index() -> Option<usize> {
    with_current(|w| w.map(|w| w.index))
}

pub(crate) fn thread_parker() -> Arc<Parker> {
    PARKER.with(|p| p.clone())
}

impl WorkerThread {
    pub(crate) fn new(
        shared: Arc<Shared>,
        index: usize,
        deque: Deque<RunnableRef>,
    ) -> WorkerThread {
        WorkerThread {
            shared,
            index,
            deque,
            rng: std::cell::RefCell::new(Rng::new(
                0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
            )),
        }
    }

    /// Runs jobs until the pool shuts down, then abandons what is left in our deque.
    pub(crate) fn main_loop(self) {
        CURRENT.with(|c| c.set(&self));
        let shared = self.shared.clone();
        self.help_until(&|| shared.is_shutdown(), &mut |_| {}, None);
        while let Some(job) = self.deque.pop() {
            job.abandon();
        }
        CURRENT.with(|c| c.set(std::ptr::null()));
        self.shared.worker_exited();
    }

    /// Pushes onto our own deque and wakes a sleeper to steal it if anyone sleeps.
    #[inline]
    pub(crate) fn push(&self, job: RunnableRef) {
        self.deque.push(job);
        self.shared.sleep.notify_one();
    }

    /// Runs jobs until `done()` or the deadline; see `PoolHandle::wait_until`.
    pub(crate) fn help_until(
        &self,
        done: &dyn Fn() -> bool,
        register: &mut dyn FnMut(Unparker),
        deadline: Option<Instant>,
    ) -> bool {
        let mut registered = false;
        let mut chosen_for_work = false;
        loop {
            if done() {
                if chosen_for_work && self.shared.has_visible_work() {
                    // We were woken to take work we will not take now: pass the wake on.
                    self.shared.sleep.notify_one();
                }
                return true;
            }
            if let Some(job) = self.find_work() {
                chosen_for_work = false;
                job.run();
                continue;
            }
            // Spin briefly: waking a parked thread costs tens of microseconds here.
            let backoff = Backoff::new();
            let mut found = None;
            while !backoff.is_completed() {
                backoff.snooze();
                if done() {
                    break;
                }
                if let Some(job) = self.find_work() {
                    found = Some(job);
                    break;
                }
            }
            if let Some(job) = found {
                chosen_for_work = false;
                job.run();
                continue;
            }
            if done() {
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            if !registered {
                registered = true;
                register(self.shared.sleep.unparker(self.index));
                continue;
            }
            let shared = &self.shared;
            let woke = shared.sleep.sleep(
                self.index,
                &|| done() || shared.is_shutdown() || shared.has_visible_work(),
                deadline,
            );
            chosen_for_work = woke == Woke::ForWork;
        }
    }

    /// Our deque first, then a batch from the injector, then a batch from a random victim.
    #[inline]
    fn find_work(&self) -> Option<RunnableRef> {
        if let Some(job) = self.deque.pop() {
            return Some(job);
        }
        self.steal_work()
    }

    #[cold]
    fn steal_work(&self) -> Option<RunnableRef> {
        loop {
            let mut retry = false;
            match self.shared.injector.steal_batch_and_pop(&self.deque) {
                Steal::Success(job) => return Some(job),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            let stealers = &self.shared.stealers;
            let n = stealers.len();
            if n > 1 {
                let start = self.rng.borrow_mut().below(n);
                for k in 0..n {
                    let victim = (start + k) % n;
                    if victim == self.index {
                        continue;
                    }
                    match stealers[victim].steal_batch_and_pop(&self.deque) {
                        Steal::Success(job) => return Some(job),
                        Steal::Retry => retry = true,
                        Steal::Empty => {}
                    }
                }
            }
            if !retry {
                return None;
            }
        }
    }
}
