//! The task cell: one allocation that is a queued job, a node of the graph, and the slot its
//! futures read the result from.
//!
//! # State protocol
//!
//! `Header::state` holds a kind and a `WAITERS` bit:
//!
//! ```text
//! PENDING --(last input done)--> QUEUED --(a worker claims it)--> RUNNING --> COMPLETE
//!    \______________________ cancel / input failed / shutdown ______/^
//! ```
//!
//! Whoever moves the state *into* `RUNNING` (by compare-and-swap from `PENDING` or `QUEUED`)
//! is the only thread that may touch `body`, `inputs` and `result` until it stores `COMPLETE`
//! with `Release`. Readers see `COMPLETE` with `Acquire` and from then on only read `result`.
//! A waiter registers under `waiters`' lock after setting `WAITERS` (only while not complete);
//! the completer swaps in `COMPLETE` and, if `WAITERS` was set, takes the list under the same
//! lock, so a registration is either seen by the completer or sees `COMPLETE` itself.

use std::cell::{RefCell, UnsafeCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use peer_steal::{PoolHandle, Runnable, SpawnError, Unparker};

use crate::error::TaskError;
use crate::id::TaskId;
use crate::inputs::Held;

pub(crate) const PENDING: usize = 0;
pub(crate) const QUEUED: usize = 1;
pub(crate) const RUNNING: usize = 2;
pub(crate) const COMPLETE: usize = 3;
const KIND: usize = 0b011;
const WAITERS: usize = 0b100;

/// The typed part of a cell that futures read.
pub(crate) struct Header<T> {
    state: AtomicUsize,
    id: TaskId,
    waiters: Mutex<Vec<Waiter>>,
    /// Errors are boxed so that a slot costs a value plus a pointer, not the largest error.
    result: UnsafeCell<Option<Result<T, Arc<TaskError>>>>,
}

// SAFETY: `result` is written only by the thread that claimed the cell (see the module doc) and
// read only after `COMPLETE` is observed with Acquire, so sharing needs `T: Send + Sync` like an
// `Arc<T>`'s contents.
unsafe impl<T: Send + Sync> Sync for Header<T> {}

/// Someone to tell when a task completes.
pub(crate) enum Waiter {
    /// A task that takes this one as input.
    Dependent(Arc<dyn Node>),
    /// An async task polling a future.
    Waker(Waker),
    /// A thread blocked in `wait`.
    Unpark(Unparker),
    /// An `as_completed` or `wait` group, with this task's index in it.
    Group(Arc<crate::collect::Group>, usize),
}

/// A task seen as a dependent of its inputs.
pub(crate) trait Node: Send + Sync {
    /// One input completed with a value.
    fn input_done(self: Arc<Self>);
    /// An input failed: fail now, without waiting for the other inputs.
    fn input_failed(self: Arc<Self>, error: &TaskError);
}

/// A task seen from its futures: typed result, type-erased function.
pub(crate) trait Slot<T>: Send + Sync {
    fn header(&self) -> &Header<T>;
    /// Cancels the task if it has not started; returns whether it did.
    fn cancel(&self) -> bool;
    /// Moves the result out; only with exclusive access, after completion.
    fn take_result(&mut self) -> Option<Result<T, TaskError>>;
}

/// A task seen as an input of another, whatever its type.
pub(crate) trait Input {
    /// Registers `node`, or hands it back with the input's outcome if already complete.
    fn add_dependent(&self, node: Arc<dyn Node>) -> Result<(), (Arc<dyn Node>, Option<TaskError>)>;
}

impl<T> Header<T> {
    pub(crate) fn new(id: TaskId, state: usize) -> Header<T> {
        Header {
            state: AtomicUsize::new(state),
            id,
            waiters: Mutex::new(Vec::new()),
            result: UnsafeCell::new(None),
        }
    }

    pub(crate) fn id(&self) -> TaskId {
        self.id
    }

    #[inline]
    pub(crate) fn is_complete(&self) -> bool {
        self.state.load(Ordering::Acquire) & KIND == COMPLETE
    }

    /// The result, once complete.
    #[inline]
    pub(crate) fn result(&self) -> Option<Result<&T, &TaskError>> {
        if !self.is_complete() {
            return None;
        }
        // SAFETY: COMPLETE was observed with Acquire, after which nobody writes `result`
        // (module doc); only `take_result` moves it, and that needs `&mut`.
        let slot = unsafe { &*self.result.get() };
        slot.as_ref().map(|r| r.as_ref().map_err(|e| &**e))
    }

    pub(crate) fn take_result(&mut self) -> Option<Result<T, TaskError>> {
        if *self.state.get_mut() & KIND != COMPLETE {
            return None;
        }
        self.result
            .get_mut()
            .take()
            .map(|r| r.map_err(Arc::unwrap_or_clone))
    }

    /// Moves from `from` to `to`, keeping the waiters bit; false if not in `from`.
    #[inline]
    pub(crate) fn transition(&self, from: usize, to: usize) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & KIND != from {
                return false;
            }
            match self.state.compare_exchange_weak(
                s,
                (s & WAITERS) | to,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// Claims a task that has not started (pending or queued), for cancel or abandon.
    pub(crate) fn claim_unstarted(&self) -> bool {
        self.transition(PENDING, RUNNING) || self.transition(QUEUED, RUNNING)
    }

    /// Stores the result and tells every waiter. Only the claimer may call this, once.
    pub(crate) fn complete(&self, result: Result<T, TaskError>) {
        // SAFETY: we hold the claim (state RUNNING), so nobody else reads or writes `result`.
        unsafe { *self.result.get() = Some(result.map_err(Arc::new)) };
        let old = self.state.swap(COMPLETE, Ordering::AcqRel);
        debug_assert_eq!(old & KIND, RUNNING, "completed a task that was not claimed");
        if old & WAITERS == 0 {
            return;
        }
        let waiters = std::mem::take(&mut *self.lock_waiters());
        let error = match self.result() {
            Some(Err(e)) => Some(e),
            _ => None,
        };
        for waiter in waiters {
            match waiter {
                Waiter::Dependent(node) => match error {
                    None => node.input_done(),
                    Some(e) => cascade_failure(node, e),
                },
                Waiter::Waker(w) => w.wake(),
                Waiter::Unpark(u) => u.unpark(),
                Waiter::Group(g, index) => g.completed(index),
            }
        }
    }

    /// Registers a waiter; hands it back if the task is already complete.
    pub(crate) fn add_waiter(&self, waiter: Waiter) -> Result<(), Waiter> {
        let mut list = self.lock_waiters();
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & KIND == COMPLETE {
                return Err(waiter);
            }
            if s & WAITERS != 0 {
                break;
            }
            match self.state.compare_exchange_weak(
                s,
                s | WAITERS,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if let Waiter::Waker(new) = &waiter {
            // A future polled again with the same waker must not grow the list.
            if list
                .iter()
                .any(|w| matches!(w, Waiter::Waker(old) if old.will_wake(new)))
            {
                return Ok(());
            }
        }
        list.push(waiter);
        Ok(())
    }

    fn lock_waiters(&self) -> MutexGuard<'_, Vec<Waiter>> {
        // Every critical section leaves the list valid; a panic inside one (in a waker's
        // `will_wake`) cannot leave it half-written.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: Send + Sync> Input for Header<T> {
    fn add_dependent(&self, node: Arc<dyn Node>) -> Result<(), (Arc<dyn Node>, Option<TaskError>)> {
        match self.add_waiter(Waiter::Dependent(node)) {
            Ok(()) => Ok(()),
            Err(Waiter::Dependent(node)) => {
                let error = match self.result() {
                    Some(Err(e)) => Some(e.clone()),
                    _ => None,
                };
                Err((node, error))
            }
            Err(_) => unreachable!("add_waiter hands back the waiter it was given"),
        }
    }
}

/// A dependent and the failure it must take on.
type PendingFailure = (Arc<dyn Node>, TaskError);

thread_local! {
    /// Failures waiting to be passed on to dependents. Failing a task fails its dependents,
    /// which fail theirs: doing that through this queue instead of recursion keeps a long
    /// failing chain from overflowing the stack.
    static CASCADE: RefCell<Option<Vec<PendingFailure>>> = const { RefCell::new(None) };
}

fn cascade_failure(node: Arc<dyn Node>, error: &TaskError) {
    let queued = CASCADE.with(|c| match &mut *c.borrow_mut() {
        Some(queue) => {
            queue.push((node.clone(), error.clone()));
            true
        }
        None => false,
    });
    if queued {
        return;
    }
    CASCADE.with(|c| *c.borrow_mut() = Some(Vec::new()));
    node.input_failed(error);
    loop {
        let next = CASCADE.with(|c| c.borrow_mut().as_mut().and_then(Vec::pop));
        match next {
            Some((node, error)) => node.input_failed(&error),
            None => break,
        }
    }
    CASCADE.with(|c| *c.borrow_mut() = None);
}

/// What a task does when it runs: call the user's function once, or retry it.
pub(crate) trait Body<H: Held, T>: Send + 'static {
    fn call(self, inputs: &H, id: TaskId) -> Result<T, TaskError>;
}

/// Calls an `FnOnce` once; a panic becomes [`TaskError::Panicked`].
pub(crate) struct Once<F>(pub(crate) F);

impl<H, T, F> Body<H, T> for Once<F>
where
    H: Held,
    F: for<'a> FnOnce(H::Refs<'a>) -> T + Send + 'static,
{
    #[inline]
    fn call(self, inputs: &H, id: TaskId) -> Result<T, TaskError> {
        let refs = inputs.refs(id)?;
        catch_unwind(AssertUnwindSafe(move || (self.0)(refs)))
            .map_err(|payload| TaskError::panicked(id, payload))
    }
}

/// Calls an `FnOnce` that decides the task's outcome itself (named tasks run through the
/// registry fail with their own errors); a panic becomes [`TaskError::Panicked`].
pub(crate) struct TryOnce<F>(pub(crate) F);

impl<H, T, F> Body<H, T> for TryOnce<F>
where
    H: Held,
    F: for<'a> FnOnce(H::Refs<'a>, TaskId) -> Result<T, TaskError> + Send + 'static,
{
    fn call(self, inputs: &H, id: TaskId) -> Result<T, TaskError> {
        let refs = inputs.refs(id)?;
        match catch_unwind(AssertUnwindSafe(move || (self.0)(refs, id))) {
            Ok(result) => result,
            Err(payload) => Err(TaskError::panicked(id, payload)),
        }
    }
}

/// A finished task holding `value`: how plain values join a graph of futures.
pub(crate) fn finished<T: Send + Sync + 'static>(value: T) -> Arc<dyn Slot<T>> {
    let slot = promised();
    // Nobody else can see the cell yet, so completing it needs no synchronisation beyond the
    // usual Release store.
    slot.header().complete(Ok(value));
    slot
}

/// A task with no function, already claimed (RUNNING): whoever holds the returned slot
/// completes it, exactly once. How results computed elsewhere (another peer) join a graph.
pub(crate) fn promised<T: Send + Sync + 'static>() -> Arc<dyn Slot<T>> {
    type NoBody<T> = Once<fn(()) -> T>;
    let cell: Cell<T, NoBody<T>, ()> = Cell {
        header: Header::new(TaskId::next(), RUNNING),
        remaining: AtomicUsize::new(0),
        body: UnsafeCell::new(None),
        inputs: UnsafeCell::new(None),
        pool: None,
    };
    Arc::new(cell)
}

/// Calls an `FnMut` up to `1 + retries` times until it does not panic.
pub(crate) struct Retry<F> {
    pub(crate) f: F,
    pub(crate) retries: u32,
}

impl<H, T, F> Body<H, T> for Retry<F>
where
    H: Held,
    F: for<'a> FnMut(H::Refs<'a>) -> T + Send + 'static,
{
    fn call(mut self, inputs: &H, id: TaskId) -> Result<T, TaskError> {
        let mut left = self.retries;
        loop {
            let refs = inputs.refs(id)?;
            match catch_unwind(AssertUnwindSafe(|| (self.f)(refs))) {
                Ok(value) => return Ok(value),
                Err(payload) if left > 0 => {
                    left -= 1;
                    // Drop the payload now; a panicking payload drop counts as that attempt.
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                }
                Err(payload) => return Err(TaskError::panicked(id, payload)),
            }
        }
    }
}

/// The whole task: header, function, inputs, and how to reschedule it.
pub(crate) struct Cell<T, B, H> {
    header: Header<T>,
    /// Inputs not yet complete, plus one held by the submitter until it has registered with
    /// every input (so the task cannot start half-registered).
    remaining: AtomicUsize,
    body: UnsafeCell<Option<B>>,
    inputs: UnsafeCell<Option<H>>,
    /// Where to queue the task when its last input completes; `None` for tasks submitted
    /// ready, which the submitter queues itself.
    pool: Option<PoolHandle>,
}

// SAFETY: `body` and `inputs` are touched only by the claimer (module doc) and `B`, `H` are
// `Send`; the header is `Sync` for `T: Send + Sync`.
unsafe impl<T: Send + Sync, B: Send, H: Send> Sync for Cell<T, B, H> {}

impl<T, B, H> Cell<T, B, H>
where
    T: Send + Sync + 'static,
    H: Held,
    B: Body<H, T>,
{
    /// A task that is ready now (no inputs); the caller queues it.
    pub(crate) fn ready(body: B, inputs: H) -> Cell<T, B, H> {
        Cell {
            header: Header::new(TaskId::next(), QUEUED),
            remaining: AtomicUsize::new(0),
            body: UnsafeCell::new(Some(body)),
            inputs: UnsafeCell::new(Some(inputs)),
            pool: None,
        }
    }

    /// A task waiting on `count` inputs; the caller registers it with each and then calls
    /// `input_done` once for the submitter's own count.
    pub(crate) fn pending(body: B, inputs: H, count: usize, pool: PoolHandle) -> Cell<T, B, H> {
        Cell {
            header: Header::new(TaskId::next(), PENDING),
            remaining: AtomicUsize::new(count + 1),
            body: UnsafeCell::new(Some(body)),
            inputs: UnsafeCell::new(Some(inputs)),
            pool: Some(pool),
        }
    }

    /// Drops the function and inputs of a claimed task and completes it with `error`.
    fn fail_claimed(&self, error: TaskError) {
        // SAFETY: the caller holds the claim.
        let (body, inputs) = unsafe { ((*self.body.get()).take(), (*self.inputs.get()).take()) };
        // User destructors may panic; the task is failing anyway, so keep going.
        let _ = catch_unwind(AssertUnwindSafe(move || drop((body, inputs))));
        self.header.complete(Err(error));
    }
}

impl<T, B, H> Runnable for Cell<T, B, H>
where
    T: Send + Sync + 'static,
    H: Held,
    B: Body<H, T>,
{
    #[inline]
    fn run(self: Arc<Self>) {
        if !self.header.transition(QUEUED, RUNNING) {
            return; // cancelled while queued
        }
        let id = self.header.id;
        // SAFETY: we hold the claim.
        let (body, inputs) = unsafe { ((*self.body.get()).take(), (*self.inputs.get()).take()) };
        let result = match (body, inputs) {
            (Some(body), Some(inputs)) => {
                let result = body.call(&inputs, id);
                // Release the inputs before announcing, so a result that only this task read
                // is freed as early as possible.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(inputs)));
                result
            }
            _ => unreachable!("a claimed task always has its body and inputs"),
        };
        self.header.complete(result);
    }

    fn abandon(self: Arc<Self>) {
        if self.header.claim_unstarted() {
            let id = self.header.id;
            self.fail_claimed(TaskError::Shutdown { task: id });
        }
    }
}

impl<T, B, H> Node for Cell<T, B, H>
where
    T: Send + Sync + 'static,
    H: Held,
    B: Body<H, T>,
{
    fn input_done(self: Arc<Self>) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        if !self.header.transition(PENDING, QUEUED) {
            return; // failed or cancelled meanwhile
        }
        let Some(pool) = self.pool.clone() else {
            unreachable!("pending tasks carry their pool")
        };
        if let Err(SpawnError(job)) = pool.spawn(self) {
            job.abandon();
        }
    }

    fn input_failed(self: Arc<Self>, error: &TaskError) {
        if self.header.transition(PENDING, RUNNING) {
            let id = self.header.id;
            self.fail_claimed(error.for_dependent(id));
        }
    }
}

impl<T, B, H> Slot<T> for Cell<T, B, H>
where
    T: Send + Sync + 'static,
    H: Held,
    B: Body<H, T>,
{
    #[inline]
    fn header(&self) -> &Header<T> {
        &self.header
    }

    fn cancel(&self) -> bool {
        if !self.header.claim_unstarted() {
            return false;
        }
        let id = self.header.id;
        self.fail_claimed(TaskError::Cancelled { task: id });
        true
    }

    fn take_result(&mut self) -> Option<Result<T, TaskError>> {
        self.header.take_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell_of<T, B, H>(_: &Cell<T, B, H>) -> usize {
        std::mem::size_of::<Cell<T, B, H>>()
    }

    #[test]
    fn an_empty_task_cell_stays_small() {
        // W8 budgets 200 bytes per pending task in all: the cell, the allocator's rounding,
        // the queue slot and the future. Keep the cell itself well inside that.
        let cell = Cell::ready(Once(|()| ()), ());
        let size = cell_of(&cell);
        println!("empty task cell: {size} bytes");
        assert!(size <= 128, "an empty task cell grew to {size} bytes");
    }
}
