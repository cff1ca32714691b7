//! The pool: its threads, its queues and how work enters it.

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_deque::{Injector, Steal, Stealer};

use crate::loom::{AtomicBool, AtomicUsize, Mutex, Ordering, fence};
use crate::parker::Unparker;
use crate::runnable::RunnableRef;
use crate::sleep::Sleep;
use crate::worker::{self, WorkerThread};

/// A fixed set of worker threads that run [`Job`](crate::Runnable)s, stealing from each other.
///
/// Dropping the last [`Pool`] shuts it down: running jobs finish, queued jobs are
/// [abandoned](crate::Runnable::abandon), and the threads are joined (unless the drop happens on
/// one of them, in which case they exit on their own).
pub struct Pool {
    handle: PoolHandle,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A cheap, cloneable reference to a pool's queues, for spawning from anywhere.
/// It does not keep the threads alive: spawning after shutdown returns the job.
#[derive(Clone)]
pub struct PoolHandle {
    pub(crate) shared: Arc<Shared>,
}

/// Configures a [`Pool`].
#[derive(Default)]
pub struct Builder {
    workers: Option<usize>,
    stack_size: Option<usize>,
    name: Option<String>,
    on_start: Option<Arc<dyn Fn(usize) + Send + Sync>>,
    on_stop: Option<Arc<dyn Fn(usize) + Send + Sync>>,
}

/// The pool could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// `workers(0)` was asked for.
    NoWorkers,
    /// The operating system refused to start a thread.
    Spawn(std::io::Error),
}

/// The pool shut down, so the job was not queued; it is handed back.
pub struct SpawnError(pub RunnableRef);

pub(crate) struct Shared {
    pub(crate) hooks: Hooks,
    pub(crate) injector: Injector<RunnableRef>,
    pub(crate) stealers: Box<[Stealer<RunnableRef>]>,
    pub(crate) sleep: Sleep,
    pub(crate) shutdown: AtomicBool,
    /// Workers that have not exited yet; the last one out drains the injector.
    pub(crate) live: AtomicUsize,
    /// Compensating threads running now.
    pub(crate) compensating: AtomicUsize,
}

/// What every thread of the pool runs at start and stop, and how it is made; compensating
/// threads (see `compensate.rs`) are made the same way.
pub(crate) struct Hooks {
    pub(crate) name: String,
    pub(crate) stack_size: usize,
    pub(crate) on_start: Option<Arc<dyn Fn(usize) + Send + Sync>>,
    pub(crate) on_stop: Option<Arc<dyn Fn(usize) + Send + Sync>>,
}

/// Default stack for worker threads. Waiting tasks help by running other tasks on top of their
/// own frames, so deep chains of tasks waiting on tasks need deep stacks. The memory is only
/// reserved; pages are committed as they are touched.
const DEFAULT_STACK_SIZE: usize = 64 << 20;

impl Builder {
    /// Number of worker threads; defaults to the number of available cores.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Stack size of each worker (default 64 MiB reserved, committed on use).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Thread name prefix (default `peer-worker`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Runs on each worker thread before it takes work, with the worker's index.
    pub fn on_start(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_start = Some(Arc::new(f));
        self
    }

    /// Runs on each worker thread after its last job, with the worker's index.
    pub fn on_stop(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_stop = Some(Arc::new(f));
        self
    }

    /// Starts the threads.
    pub fn build(self) -> Result<Pool, BuildError> {
        let workers = match self.workers {
            Some(0) => return Err(BuildError::NoWorkers),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let deques: Vec<_> = (0..workers)
            .map(|_| crossbeam_deque::Worker::new_lifo())
            .collect();
        let name = self.name.unwrap_or_else(|| "peer-worker".to_owned());
        let stack = self.stack_size.unwrap_or(DEFAULT_STACK_SIZE);
        let shared = Arc::new(Shared {
            hooks: Hooks {
                name: name.clone(),
                stack_size: stack,
                on_start: self.on_start.clone(),
                on_stop: self.on_stop.clone(),
            },
            injector: Injector::new(),
            stealers: deques.iter().map(|d| d.stealer()).collect(),
            sleep: Sleep::new(workers),
            shutdown: AtomicBool::new(false),
            live: AtomicUsize::new(workers),
            compensating: AtomicUsize::new(0),
        });
        let mut threads = Vec::with_capacity(workers);
        for (index, deque) in deques.into_iter().enumerate() {
            let for_thread = shared.clone();
            let (on_start, on_stop) = (self.on_start.clone(), self.on_stop.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .stack_size(stack)
                .spawn(move || {
                    if let Some(f) = on_start {
                        f(index);
                    }
                    WorkerThread::new(for_thread, index, deque).main_loop();
                    if let Some(f) = on_stop {
                        f(index);
                    }
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // Stop the ones already started; the remaining deques were never run.
                    let pool = Pool {
                        handle: PoolHandle { shared },
                        threads: Mutex::new(threads),
                    };
                    drop(pool);
                    return Err(BuildError::Spawn(e));
                }
            }
        }
        Ok(Pool {
            handle: PoolHandle { shared },
            threads: Mutex::new(threads),
        })
    }
}

impl Pool {
    /// A pool with one worker per core.
    pub fn new() -> Result<Pool, BuildError> {
        Builder::default().build()
    }

    /// Configure a pool.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A handle that can spawn onto this pool without keeping it alive.
    pub fn handle(&self) -> &PoolHandle {
        &self.handle
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.handle.workers()
    }

    /// Queues a job; see [`PoolHandle::spawn`].
    #[inline]
    pub fn spawn(&self, job: RunnableRef) -> Result<(), SpawnError> {
        self.handle.spawn(job)
    }

    /// Blocks until `done()` holds or `deadline` passes; see [`PoolHandle::wait_until`].
    pub fn wait_until(
        &self,
        done: &dyn Fn() -> bool,
        register: &mut dyn FnMut(Unparker),
        deadline: Option<Instant>,
    ) -> bool {
        self.handle.wait_until(done, register, deadline)
    }

    /// Stops taking work and wakes every worker so it exits; queued jobs are abandoned.
    /// Does not wait: dropping the pool joins the threads.
    pub fn shutdown(&self) {
        self.handle.shared.shutdown.store(true, Ordering::SeqCst);
        self.handle.shared.sleep.notify_all();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        let on_own_thread = worker::with_current(|w| {
            w.is_some_and(|w| Arc::ptr_eq(&w.shared, &self.handle.shared))
        }) || crate::compensate::is_compensating_for(&self.handle.shared);
        if on_own_thread {
            // Joining ourselves, or a worker that may wait on the job running here, would
            // deadlock; the workers exit on their own.
            return;
        }
        for t in threads {
            // A worker only panics on a broken invariant, and that panic was already printed.
            let _ = t.join();
        }
        self.handle.shared.drain_injector();
    }
}

impl PoolHandle {
    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.shared.stealers.len()
    }

    /// Whether the pool has shut down.
    pub fn is_shutdown(&self) -> bool {
        self.shared.shutdown.load(Ordering::Acquire)
    }

    /// Whether the calling thread is one of this pool's workers.
    pub fn is_current(&self) -> bool {
        worker::with_current(|w| w.is_some_and(|w| Arc::ptr_eq(&w.shared, &self.shared)))
    }

    /// Queues a job: on the calling worker's own deque when called from a worker of this pool
    /// (LIFO, so a task's children run hot in cache), otherwise on the shared injector.
    /// Returns the job if the pool has shut down.
    #[inline]
    pub fn spawn(&self, job: RunnableRef) -> Result<(), SpawnError> {
        let job = match worker::with_current(|w| match w {
            Some(w) if Arc::ptr_eq(&w.shared, &self.shared) => {
                w.push(job);
                None
            }
            _ => Some(job),
        }) {
            None => return Ok(()),
            Some(job) => job,
        };
        if self.shared.shutdown.load(Ordering::Acquire) {
            return Err(SpawnError(job));
        }
        self.shared.injector.push(job);
        self.shared.sleep.notify_one();
        // If shutdown raced with the push, the last worker may already have drained the
        // injector; drain again ourselves so the job is abandoned rather than forgotten.
        // (notify_one's SeqCst fence orders the push before this load.)
        if self.shared.shutdown.load(Ordering::SeqCst)
            && self.shared.live.load(Ordering::SeqCst) == 0
        {
            self.shared.drain_injector();
        }
        Ok(())
    }

    /// Blocks until `done()` returns true or `deadline` passes, and returns whether `done()`
    /// held. On a worker of this pool it runs other jobs meanwhile ("help while waiting");
    /// elsewhere it parks. Before parking it calls `register` once with an [`Unparker`] that
    /// whoever makes `done()` true must call afterwards.
    pub fn wait_until(
        &self,
        done: &dyn Fn() -> bool,
        register: &mut dyn FnMut(Unparker),
        deadline: Option<Instant>,
    ) -> bool {
        let helped = worker::with_current(|w| match w {
            Some(w) if Arc::ptr_eq(&w.shared, &self.shared) => {
                Some(w.help_until(done, register, deadline))
            }
            _ => None,
        });
        match helped {
            Some(result) => result,
            None => wait_parked(done, register, deadline),
        }
    }
}

/// Blocks until `done()` holds or `deadline` passes, like [`PoolHandle::wait_until`], helping
/// whichever pool the calling thread works for (if any). For waiting on a job whose pool is
/// not known, such as a task future.
pub fn block_until(
    done: &dyn Fn() -> bool,
    register: &mut dyn FnMut(Unparker),
    deadline: Option<Instant>,
) -> bool {
    let helped = worker::with_current(|w| w.map(|w| w.help_until(done, register, deadline)));
    match helped {
        Some(result) => result,
        // A compensating thread has no deque to help from; it must not simply block either,
        // or the work it stands in for stops: hand over to another compensating thread.
        None if crate::compensate::is_compensating() => {
            crate::compensate::block_compensated(done, register, deadline)
        }
        None => wait_parked(done, register, deadline),
    }
}

/// Waits on a thread that is not a worker of the pool whose job we wait for.
pub(crate) fn wait_parked(
    done: &dyn Fn() -> bool,
    register: &mut dyn FnMut(Unparker),
    deadline: Option<Instant>,
) -> bool {
    if done() {
        return true;
    }
    let parker = worker::thread_parker();
    register(parker.unparker());
    loop {
        if done() {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        parker.park(deadline);
    }
}

impl Shared {
    /// Whether any queue holds a job; used by sleepers after registering.
    pub(crate) fn has_visible_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// Abandons everything left in the injector.
    pub(crate) fn drain_injector(&self) {
        loop {
            match self.injector.steal() {
                Steal::Success(job) => job.abandon(),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Called by each worker as it exits, after abandoning its own deque.
    pub(crate) fn worker_exited(&self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            fence(Ordering::SeqCst);
            self.drain_injector();
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.workers())
            .finish()
    }
}

impl fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolHandle")
            .field("workers", &self.workers())
            .field("shutdown", &self.is_shutdown())
            .finish()
    }
}

impl fmt::Debug for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpawnError(..)")
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the pool has shut down")
    }
}

impl std::error::Error for SpawnError {}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoWorkers => f.write_str("a pool needs at least one worker"),
            BuildError::Spawn(e) => write!(f, "could not start a worker thread: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Spawn(e) => Some(e),
            BuildError::NoWorkers => None,
        }
    }
}
