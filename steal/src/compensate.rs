//! Blocking inside a task without losing a worker.
//!
//! Helping while waiting (`block_until`) is right for waits on other tasks, but wrong for a
//! blocking primitive: a consumer blocked on a queue would run, on top of its own frames, a
//! producer that then blocks on the full queue, burying the very consumer that could drain
//! it. So a worker that blocks on a primitive parks instead, and a compensating thread takes
//! its place until it resumes — Java's `ForkJoinPool.managedBlock`, Dask's `secede`. A
//! compensating thread steals from the injector and every deque (the parked worker's too),
//! runs what it finds, and exits after its current job once the worker resumes.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_deque::Steal;

use crate::parker::Unparker;
use crate::pool::{Shared, wait_parked};
use crate::runnable::RunnableRef;
use crate::worker;

/// Compensating threads per pool at most; past this a blocked worker just blocks.
const MAX_COMPENSATING: usize = 256;
/// How long an idle compensating thread sleeps between looks for work, at first and at most.
/// It is not on the sleep protocol's idle list, so it polls.
const IDLE_FIRST: Duration = Duration::from_micros(50);
const IDLE_MAX: Duration = Duration::from_millis(2);

thread_local! {
    /// On a compensating thread, the pool it works for.
    static COMPENSATING_FOR: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

/// Whether this thread is a compensating thread of the pool `shared`.
pub(crate) fn is_compensating_for(shared: &Arc<Shared>) -> bool {
    COMPENSATING_FOR.with(|c| c.borrow().as_ref().is_some_and(|p| Arc::ptr_eq(p, shared)))
}

/// Whether this thread is a compensating thread of some pool.
pub(crate) fn is_compensating() -> bool {
    COMPENSATING_FOR.with(|c| c.borrow().is_some())
}

/// Blocks until `done()` holds or `deadline` passes, like [`block_until`](crate::block_until),
/// but without running other jobs on this thread: if this thread works for a pool, a
/// compensating thread runs the pool's jobs meanwhile. For waits on locks, queues and other
/// primitives inside a job.
pub fn block_compensated(
    done: &dyn Fn() -> bool,
    register: &mut dyn FnMut(Unparker),
    deadline: Option<Instant>,
) -> bool {
    if done() {
        return true;
    }
    let pool = worker::with_current(|w| w.map(|w| w.shared.clone()))
        .or_else(|| COMPENSATING_FOR.with(|c| c.borrow().clone()));
    let Some(pool) = pool else {
        return wait_parked(done, register, deadline);
    };
    let stop = Arc::new(AtomicBool::new(false));
    let compensator = spawn(&pool, stop.clone());
    let result = wait_parked(done, register, deadline);
    stop.store(true, Ordering::Release);
    if let Some(thread) = compensator {
        thread.unpark();
    }
    result
}

fn spawn(pool: &Arc<Shared>, stop: Arc<AtomicBool>) -> Option<Thread> {
    if pool.is_shutdown() {
        return None;
    }
    if pool.compensating.fetch_add(1, Ordering::AcqRel) >= MAX_COMPENSATING {
        pool.compensating.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    let shared = pool.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("{}-comp", pool.hooks.name))
        .stack_size(pool.hooks.stack_size)
        .spawn(move || {
            if let Some(f) = &shared.hooks.on_start {
                f(usize::MAX);
            }
            COMPENSATING_FOR.with(|c| *c.borrow_mut() = Some(shared.clone()));
            run(&shared, &stop);
            COMPENSATING_FOR.with(|c| *c.borrow_mut() = None);
            if let Some(f) = &shared.hooks.on_stop {
                f(usize::MAX);
            }
            shared.compensating.fetch_sub(1, Ordering::AcqRel);
        });
    match spawned {
        Ok(handle) => Some(handle.thread().clone()),
        Err(_) => {
            // No thread to be had: the worker blocks without a stand-in.
            pool.compensating.fetch_sub(1, Ordering::AcqRel);
            None
        }
    }
}

fn run(pool: &Shared, stop: &AtomicBool) {
    let mut idle = IDLE_FIRST;
    while !stop.load(Ordering::Acquire) && !pool.is_shutdown() {
        match steal_one(pool) {
            Some(job) => {
                job.run();
                idle = IDLE_FIRST;
            }
            None => {
                std::thread::park_timeout(idle);
                idle = (idle * 2).min(IDLE_MAX);
            }
        }
    }
}

fn steal_one(pool: &Shared) -> Option<RunnableRef> {
    loop {
        let mut retry = false;
        match pool.injector.steal() {
            Steal::Success(job) => return Some(job),
            Steal::Retry => retry = true,
            Steal::Empty => {}
        }
        for stealer in pool.stealers.iter() {
            match stealer.steal() {
                Steal::Success(job) => return Some(job),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
        }
        if !retry {
            return None;
        }
    }
}
