//! `Client`: where tasks are submitted.

mod builder;
mod options;

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, OnceLock};

use peer_steal::{PoolHandle, SpawnError};

use builder::Owner;

pub use builder::{BuildError, Builder};
pub use options::TaskBuilder;

use crate::cell::{Body, Cell, Node, Once, Slot, TryOnce};
use crate::collect;
use crate::error::TaskError;
use crate::ext::{Backend, Remote};
use crate::future::TaskFuture;
use crate::id::TaskId;
use crate::inputs::{Held, Inputs};
use crate::named::remote::{Place, Probe};
use crate::named::{IntoArgs, NamedTask};

/// Submits tasks and hands back [`TaskFuture`]s; Dask's `Client`.
///
/// The same type runs a program on one machine (`Client::new()`) or on a swarm (the client
/// of a `peer_net::Peer`): **named tasks** (`submit_named`, `map_named`) run on this pool, or
/// on any peer of the swarm; **closures** (`submit_local`, `submit_local_with`, `map_local`)
/// always run on this process's pool, as their names say, since code cannot cross machines.
///
/// Cheap to clone; all clones share one pool of worker threads. Inside a task,
/// [`Client::current`] and [`Client::with_current`] give the client that runs it, so tasks
/// can submit tasks.
///
/// # Shutdown
///
/// When the last clone made from the built client is dropped the pool shuts down: running
/// tasks finish, tasks that have not started resolve to [`TaskError::Shutdown`], and the drop
/// waits for the worker threads (unless it happens on one of them). Wait for what you need
/// before dropping the client. The client a task gets from [`Client::current`] is a view that
/// does not keep the pool running.
#[derive(Clone)]
pub struct Client {
    pool: PoolHandle,
    encode_named: bool,
    /// Where named primitives (locks, queues, ...) live.
    backend: Arc<dyn Backend>,
    /// Where named tasks run, if not on this pool (the swarm).
    remote: Option<Arc<dyn Remote>>,
    /// In the view that runs a call placed [`Place::HereMeasured`]: whom to tell.
    probe: Probe,
    /// Keeps the worker threads running; `None` in the view given to tasks, so that workers
    /// never keep their own pool alive.
    _owner: Option<Arc<Owner>>,
}

thread_local! {
    /// On worker threads, a view of the client that owns the pool, set once the pool is up.
    /// Borrowed by `with_current`, so tasks submitting tasks touch no shared reference count.
    static CURRENT: RefCell<Option<Arc<OnceLock<Client>>>> = const { RefCell::new(None) };
}

impl Client {
    /// A client with one worker per core.
    ///
    /// # Panics
    ///
    /// If the operating system refuses to start threads; use [`Client::builder`] to handle
    /// that as an error.
    pub fn new() -> Client {
        match Builder::default().build() {
            Ok(client) => client,
            Err(e) => panic!("peer: {e}"),
        }
    }

    /// Configure a client.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The client whose task is running on this thread, if any (Dask's `get_client`). It
    /// does not keep the pool running once every other client is dropped.
    pub fn current() -> Option<Client> {
        Client::with_current(Client::clone)
    }

    /// Calls `f` with the client whose task is running on this thread, without cloning it:
    /// the cheapest way for a task to submit tasks. `None` outside a worker.
    #[inline]
    pub fn with_current<R>(f: impl FnOnce(&Client) -> R) -> Option<R> {
        CURRENT.with(|c| {
            let slot = c.borrow();
            slot.as_ref()?.get().map(f)
        })
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.pool.workers()
    }

    fn pool(&self) -> &PoolHandle {
        &self.pool
    }

    /// Runs the closure `f` on this process's pool and returns a future of its result.
    ///
    /// A closure cannot cross machines, so on a swarm it still runs here (counted in the
    /// peer's status as local-only); work that may run on any peer is a
    /// [named task](Client::submit_named). A panic in `f` becomes [`TaskError::Panicked`]
    /// with the panic message.
    #[inline]
    pub fn submit_local<T, F>(&self, f: F) -> TaskFuture<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        self.submit_ready(Once(move |()| f()))
    }

    /// Runs the closure `f` on this process's pool once every input future is done, with
    /// references to their values: the task-graph form of Dask's
    /// `client.submit(score, param, data_future)`, for work that stays in this process
    /// ([`submit_named`](Client::submit_named) for work any peer may run).
    ///
    /// `inputs` is `&fut`, a tuple `(&a, &b, ...)` of up to twelve futures, or a slice of futures
    /// of one type; `f` receives `&A`, `(&A, &B, ...)` or `Vec<&A>`. If an input fails or is
    /// cancelled, `f` never runs and the task fails with an error naming that input.
    ///
    /// ```
    /// let client = peer_core::Client::builder().workers(2).build().unwrap();
    /// let data = client.submit_local(|| vec![3, 1, 2]);
    /// let scale = client.submit_local(|| 10);
    /// let best = client.submit_local_with((&data, &scale), |(d, s)| d.iter().max().unwrap() * s);
    /// assert_eq!(*best.wait().unwrap(), 30);
    /// ```
    pub fn submit_local_with<I, T, F>(&self, inputs: I, f: F) -> TaskFuture<T>
    where
        I: Inputs,
        F: for<'a> FnOnce(<I::Held as Held>::Refs<'a>) -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        self.submit_after(inputs, Once(f))
    }

    /// Submits a [named task](crate::named), which runs on this pool for a local client and on
    /// any peer for a swarm's: `args` is a tuple with one value or `&TaskFuture` per
    /// parameter, e.g. `client.submit_named(ScoreTask, (0.5, &data))`, or for a task of one
    /// parameter that argument alone (`client.submit_named(LoadTask, 3)`). `F` is inferred.
    pub fn submit_named<N, A, F>(&self, task: N, args: A) -> TaskFuture<N::Output>
    where
        N: NamedTask,
        A: IntoArgs<N::Args, F>,
    {
        let _ = task;
        self.submit_named_retrying::<N, A, F>(args, 0)
    }

    /// Submits the named task once per item of `items`, each the arguments of one call as
    /// [`submit_named`](Client::submit_named) takes them.
    pub fn map_named<N, A, F, I>(&self, task: N, items: I) -> Vec<TaskFuture<N::Output>>
    where
        N: NamedTask,
        A: IntoArgs<N::Args, F>,
        I: IntoIterator<Item = A>,
    {
        let _ = task;
        items
            .into_iter()
            .map(|args| self.submit_named_retrying::<N, A, F>(args, 0))
            .collect()
    }

    /// Where every named task goes: the remote if there is one and it takes the call, else
    /// this pool (a call the remote keeps here is no closure of the program's: it is run
    /// through a view that counts nothing).
    fn submit_named_retrying<N, A, F>(&self, args: A, retries: u32) -> TaskFuture<N::Output>
    where
        N: NamedTask,
        A: IntoArgs<N::Args, F>,
    {
        let Some(remote) = &self.remote else {
            return args.submit::<N>(self, retries);
        };
        let mut waits_on = Vec::new();
        args.pending(&mut waits_on);
        match remote.place(N::FINGERPRINT, &waits_on) {
            Place::Remote => crate::named::remote::submit::<N, A, F>(remote, args, retries),
            Place::Here => args.submit::<N>(&self.pool_view(), retries),
            Place::HereMeasured => {
                let view = Client {
                    probe: Probe(Some(Arc::clone(remote))),
                    ..self.pool_view()
                };
                args.submit::<N>(&view, retries)
            }
        }
    }

    /// Whether named tasks may run on other processes (a client of a swarm).
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// A clone that does not keep the pool running, for a runtime that serves this pool (the
    /// swarm's event loop): it submits to the pool but counts nothing as a closure of the
    /// program's, and sends no named task to the remote. An extension point (see
    /// `crate::ext`), hidden.
    #[doc(hidden)]
    pub fn pool_view(&self) -> Client {
        Client {
            pool: self.pool.clone(),
            encode_named: self.encode_named,
            backend: self.backend.clone(),
            remote: None,
            probe: Probe::default(),
            _owner: None,
        }
    }

    /// What measures the named tasks this client runs (see [`Place::HereMeasured`]).
    pub(crate) fn probe(&self) -> Probe {
        self.probe.clone()
    }

    /// Tells the remote that this thread, a worker of this client's pool, waits on a future
    /// until the guard drops.
    pub(crate) fn waiting_on_worker() -> Option<Waiting> {
        let remote = Client::with_current(|c| c.remote.clone())??;
        remote.waiting(true);
        Some(Waiting(remote))
    }

    /// A future that is already done with `value`: a way to pass plain data into a graph
    /// (Dask's `scatter`).
    pub fn scatter<T: Send + Sync + 'static>(&self, value: T) -> TaskFuture<T> {
        TaskFuture::new(crate::cell::finished(value))
    }

    pub(crate) fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub(crate) fn encodes_named_tasks(&self) -> bool {
        self.encode_named
    }

    /// Like `submit_local`, for a function that decides the task's error itself.
    pub(crate) fn submit_fallible<T, F>(&self, f: F) -> TaskFuture<T>
    where
        F: FnOnce(TaskId) -> Result<T, TaskError> + Send + 'static,
        T: Send + Sync + 'static,
    {
        self.submit_ready(TryOnce(move |(), id| f(id)))
    }

    /// Like `submit_local_with`, for a function that decides the task's error itself.
    pub(crate) fn submit_fallible_with<I, T, F>(&self, inputs: I, f: F) -> TaskFuture<T>
    where
        I: Inputs,
        F: for<'a> FnOnce(<I::Held as Held>::Refs<'a>, TaskId) -> Result<T, TaskError>
            + Send
            + 'static,
        T: Send + Sync + 'static,
    {
        self.submit_after(inputs, TryOnce(f))
    }

    /// Options for the next task (retries).
    pub fn task(&self) -> TaskBuilder<'_> {
        TaskBuilder::new(self)
    }

    /// Submits the closure `f(item)` for every item, in order, one task per item, on this
    /// process's pool ([`map_named`](Client::map_named) for work any peer may run).
    pub fn map_local<A, T, F, It>(&self, items: It, f: F) -> Vec<TaskFuture<T>>
    where
        It: IntoIterator<Item = A>,
        A: Send + 'static,
        F: Fn(A) -> T + Send + Sync + 'static,
        T: Send + Sync + 'static,
    {
        let f = Arc::new(f);
        items
            .into_iter()
            .map(|item| {
                let f = f.clone();
                self.submit_local(move || f(item))
            })
            .collect()
    }

    /// Waits for every future and returns their values in order, or the first error in order.
    /// Values are moved out where these are the last handles, cloned otherwise.
    pub fn gather<T, It>(&self, futures: It) -> Result<Vec<T>, TaskError>
    where
        It: IntoIterator<Item = TaskFuture<T>>,
        T: Clone + Send + Sync + 'static,
    {
        collect::gather(futures)
    }

    #[inline]
    fn count_closure(&self) {
        if let Some(remote) = &self.remote {
            remote.ran_here();
        }
    }

    fn submit_ready<T, B>(&self, body: B) -> TaskFuture<T>
    where
        T: Send + Sync + 'static,
        B: Body<(), T>,
    {
        self.count_closure();
        let cell = Arc::new(Cell::ready(body, ()));
        let future = TaskFuture::new(cell.clone() as Arc<dyn Slot<T>>);
        if let Err(SpawnError(job)) = self.pool().spawn(cell) {
            job.abandon();
        }
        future
    }

    fn submit_after<I, T, B>(&self, inputs: I, body: B) -> TaskFuture<T>
    where
        I: Inputs,
        T: Send + Sync + 'static,
        B: Body<I::Held, T>,
    {
        self.count_closure();
        let cell = Arc::new(Cell::pending(
            body,
            inputs.hold(),
            inputs.count(),
            self.pool().clone(),
        ));
        let future = TaskFuture::new(cell.clone() as Arc<dyn Slot<T>>);
        inputs.visit(&mut |input| {
            let node: Arc<dyn Node> = cell.clone();
            if let Err((node, error)) = input.add_dependent(node) {
                match error {
                    None => node.input_done(),
                    Some(e) => node.input_failed(&e),
                }
            }
        });
        // Release the submitter's own count: the task may now start.
        (cell as Arc<dyn Node>).input_done();
        future
    }
}

/// While alive, a worker of a client with a remote waits on a future ([`Remote::waiting`]).
pub(crate) struct Waiting(Arc<dyn Remote>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting(false);
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("workers", &self.workers())
            .field("remote", &self.remote.is_some())
            .finish()
    }
}
