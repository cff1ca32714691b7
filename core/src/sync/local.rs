//! The in-process backend: every primitive is a mutex-guarded state with a FIFO line of
//! waiters. Wakers are collected under the lock and woken after it is released.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Condvar, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::loom::{Mutex, MutexGuard};

use super::backend::{
    Backend, Codec, EventBackend, Grant, Next, Payload, QueueBackend, SemaphoreBackend, Shared,
    Ticket, TopicBackend, VariableBackend,
};
use super::{Closed, Expired, FencingToken, GetError, PutError, Versioned};

/// Primitives that live in this process, keyed by name: the default backend of a
/// [`Client`](crate::Client). The swarm's backend keeps one too, for the subscribers of
/// topics on its own peer.
#[derive(Default)]
pub struct LocalBackend {
    semaphores: Mutex<HashMap<String, Arc<LocalSemaphore>>>,
    queues: Mutex<HashMap<String, Arc<LocalQueue>>>,
    variables: Mutex<HashMap<String, Arc<LocalVariable>>>,
    events: Mutex<HashMap<String, Arc<LocalEvent>>>,
    topics: Mutex<HashMap<String, Arc<LocalTopic>>>,
}

/// Locks a mutex whose state every critical section leaves consistent, so a panic elsewhere
/// while holding it (only in user wakers) does not make the state unusable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reaper's own locks are plain `std` ones even under loom: it is never modelled.
fn lock_std<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn entry<T>(map: &Mutex<HashMap<String, Arc<T>>>, name: &str, make: impl FnOnce() -> T) -> Arc<T> {
    lock(map)
        .entry(name.to_owned())
        .or_insert_with(|| Arc::new(make()))
        .clone()
}

impl Backend for LocalBackend {
    fn semaphore(&self, name: &str, permits: usize) -> Arc<dyn SemaphoreBackend> {
        let sem: Arc<LocalSemaphore> =
            entry(&self.semaphores, name, || LocalSemaphore::new(permits));
        let _ = sem.me.set(Arc::downgrade(&sem));
        sem
    }
    fn queue(&self, name: &str, capacity: usize, _: Codec) -> Arc<dyn QueueBackend> {
        let queue: Arc<LocalQueue> = entry(&self.queues, name, || LocalQueue::new(capacity));
        queue
    }
    fn variable(&self, name: &str, _: Codec) -> Arc<dyn VariableBackend> {
        let variable: Arc<LocalVariable> = entry(&self.variables, name, Default::default);
        variable
    }
    fn event(&self, name: &str) -> Arc<dyn EventBackend> {
        let event: Arc<LocalEvent> = entry(&self.events, name, Default::default);
        event
    }
    fn topic(&self, name: &str, _: Codec) -> Arc<dyn TopicBackend> {
        let topic: Arc<LocalTopic> = entry(&self.topics, name, Default::default);
        topic
    }
}

/// The waiters of one primitive, each known by its ticket number.
struct Line {
    next_id: u64,
    waiting: VecDeque<(u64, Waker)>,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            next_id: 1,
            waiting: VecDeque::new(),
        }
    }
}

impl Line {
    /// Registers `ticket` (new) or refreshes its waker.
    fn wait(&mut self, ticket: &mut Ticket, cx: &Context<'_>) {
        if let Some(id) = ticket.0
            && let Some((_, waker)) = self.waiting.iter_mut().find(|(i, _)| *i == id)
        {
            if !waker.will_wake(cx.waker()) {
                *waker = cx.waker().clone();
            }
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        ticket.0 = Some(id);
        self.waiting.push_back((id, cx.waker().clone()));
    }

    fn remove(&mut self, ticket: &mut Ticket) {
        if let Some(id) = ticket.0.take() {
            self.waiting.retain(|(i, _)| *i != id);
        }
    }

    fn all_wakers(&self) -> Vec<Waker> {
        self.waiting.iter().map(|(_, w)| w.clone()).collect()
    }
}

fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

// ---------------------------------------------------------------------------------------
// Semaphore (and lock)
//
// No hand-off to the first waiter, and every waiter is woken when a permit frees up: a task
// that blocks runs other tasks on top of its own frames, so the first waiter can be buried
// under a later one on the same worker and unable to collect a permit handed to it. Woken
// waiters race for the permit; the losers wait again. The same holds for queues below.

pub(crate) struct LocalSemaphore {
    state: Mutex<SemState>,
    me: OnceLock<Weak<LocalSemaphore>>,
}

struct SemState {
    free: usize,
    last_token: u64,
    holders: Vec<(FencingToken, Option<Instant>)>,
    line: Line,
}

impl LocalSemaphore {
    pub(crate) fn new(permits: usize) -> LocalSemaphore {
        LocalSemaphore {
            state: Mutex::new(SemState {
                free: permits,
                last_token: 0,
                holders: Vec::new(),
                line: Line::default(),
            }),
            me: OnceLock::new(),
        }
    }

    fn grant(&self, s: &mut SemState, lease: Option<Duration>) -> Grant {
        s.free -= 1;
        s.last_token += 1;
        let grant = Grant {
            token: FencingToken(s.last_token),
            expires: lease.map(|l| Instant::now() + l),
        };
        s.holders.push((grant.token, grant.expires));
        if let (Some(at), Some(me)) = (grant.expires, self.me.get()) {
            reaper().schedule(at, me.clone());
        }
        grant
    }

    /// Takes back expired leases; if a permit is free, every waiter is to be woken.
    fn settle(s: &mut SemState) -> Vec<Waker> {
        // Reading the clock costs more than the rest of an uncontended lock: skip it when no
        // holder has a lease.
        if s.holders.iter().any(|(_, exp)| exp.is_some()) {
            let now = Instant::now();
            let before = s.holders.len();
            s.holders.retain(|(_, exp)| exp.is_none_or(|e| e > now));
            s.free += before - s.holders.len();
        }
        if s.free > 0 {
            s.line.all_wakers()
        } else {
            Vec::new()
        }
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut SemState) -> (R, bool)) -> R {
        let (result, wake) = {
            let mut s = lock(&self.state);
            let before = Self::settle(&mut s);
            let (result, freed) = f(&mut s);
            let wake = if freed { Self::settle(&mut s) } else { before };
            (result, wake)
        };
        wake_all(wake);
        result
    }

    /// Called by the reaper when a lease may have run out.
    fn expire(&self) {
        self.with_state(|_| ((), false));
    }
}

impl LocalSemaphore {
    pub(crate) fn try_acquire(&self, lease: Option<Duration>) -> Option<Grant> {
        self.with_state(|s| ((s.free > 0).then(|| self.grant(s, lease)), false))
    }

    pub(crate) fn release(&self, token: FencingToken) -> Result<(), Expired> {
        self.with_state(|s| {
            // Expired leases were taken back by `settle`, so a stale holder's release fails.
            match s.holders.iter().position(|(t, _)| *t == token) {
                Some(at) => {
                    s.holders.swap_remove(at);
                    s.free += 1;
                    (Ok(()), true)
                }
                None => (Err(Expired(token)), false),
            }
        })
    }

    fn renew(&self, token: FencingToken, lease: Duration) -> Result<Grant, Expired> {
        self.with_state(|s| {
            let result = match s.holders.iter_mut().find(|(t, _)| *t == token) {
                Some(holder) => {
                    let expires = Instant::now() + lease;
                    holder.1 = Some(expires);
                    if let Some(me) = self.me.get() {
                        reaper().schedule(expires, me.clone());
                    }
                    Ok(Grant {
                        token,
                        expires: Some(expires),
                    })
                }
                None => Err(Expired(token)),
            };
            (result, false)
        })
    }

    pub(crate) fn available(&self) -> usize {
        self.with_state(|s| (s.free, false))
    }
}

impl SemaphoreBackend for LocalSemaphore {
    fn poll_try_acquire(
        &self,
        _: &mut Ticket,
        lease: Option<Duration>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Grant>> {
        Poll::Ready(self.try_acquire(lease))
    }

    fn poll_acquire(
        &self,
        ticket: &mut Ticket,
        lease: Option<Duration>,
        cx: &mut Context<'_>,
    ) -> Poll<Grant> {
        self.with_state(|s| {
            if s.free > 0 {
                s.line.remove(ticket);
                return (Poll::Ready(self.grant(s, lease)), false);
            }
            s.line.wait(ticket, cx);
            (Poll::Pending, false)
        })
    }

    fn cancel(&self, ticket: &mut Ticket) {
        lock(&self.state).line.remove(ticket);
    }

    fn poll_release(
        &self,
        _: &mut Ticket,
        token: FencingToken,
        _: &mut Context<'_>,
    ) -> Poll<Result<(), Expired>> {
        Poll::Ready(self.release(token))
    }

    fn release_soon(&self, token: FencingToken) {
        let _ = self.release(token);
    }

    fn poll_renew(
        &self,
        _: &mut Ticket,
        token: FencingToken,
        lease: Duration,
        _: &mut Context<'_>,
    ) -> Poll<Result<Grant, Expired>> {
        Poll::Ready(self.renew(token, lease))
    }

    fn poll_is_held(&self, _: &mut Ticket, token: FencingToken, _: &mut Context<'_>) -> Poll<bool> {
        Poll::Ready(self.with_state(|s| (s.holders.iter().any(|(t, _)| *t == token), false)))
    }

    fn poll_available(&self, _: &mut Ticket, _: &mut Context<'_>) -> Poll<usize> {
        Poll::Ready(self.available())
    }
}

/// One thread for the whole process that wakes semaphores when a lease may have run out, so
/// waiters get the permit of a holder that died or hung without anyone polling.
struct Reaper {
    state: std::sync::Mutex<ReaperState>,
    wake: Condvar,
}

/// Leases that will run out, soonest first. A `Weak` has no order, so the heap holds ids and
/// `targets` maps them to their semaphores.
#[derive(Default)]
struct ReaperState {
    next_id: u64,
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    targets: HashMap<u64, Weak<LocalSemaphore>>,
}

fn reaper() -> &'static Reaper {
    static REAPER: OnceLock<&'static Reaper> = OnceLock::new();
    REAPER.get_or_init(|| {
        let reaper: &'static Reaper = Box::leak(Box::new(Reaper {
            state: std::sync::Mutex::new(ReaperState::default()),
            wake: Condvar::new(),
        }));
        // If the thread cannot start, leases still expire on the next operation; only
        // waiters that nobody else wakes would wait longer.
        let _ = std::thread::Builder::new()
            .name("peer-lease-reaper".into())
            .spawn(move || reaper.run());
        reaper
    })
}

impl Reaper {
    fn schedule(&self, at: Instant, target: Weak<LocalSemaphore>) {
        {
            let mut s = lock_std(&self.state);
            s.next_id += 1;
            let id = s.next_id;
            s.targets.insert(id, target);
            s.due.push(Reverse((at, id)));
        }
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut s = lock_std(&self.state);
        loop {
            let now = Instant::now();
            match s.due.peek().copied() {
                Some(Reverse((at, id))) if at <= now => {
                    s.due.pop();
                    let target = s.targets.remove(&id);
                    // Expire outside our lock: it takes the semaphore's and wakes waiters.
                    drop(s);
                    if let Some(sem) = target.and_then(|w| w.upgrade()) {
                        sem.expire();
                    }
                    s = lock_std(&self.state);
                }
                Some(Reverse((at, _))) => {
                    s = match self.wake.wait_timeout(s, at - now) {
                        Ok((g, _)) => g,
                        Err(e) => e.into_inner().0,
                    };
                }
                None => {
                    s = self.wake.wait(s).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Queue

pub(crate) struct LocalQueue {
    state: Mutex<QueueState>,
    capacity: usize,
}

struct QueueState {
    items: VecDeque<Payload>,
    closed: bool,
    getters: Line,
    putters: Line,
}

impl LocalQueue {
    fn new(capacity: usize) -> LocalQueue {
        LocalQueue {
            state: Mutex::new(QueueState {
                items: VecDeque::with_capacity(capacity.min(1024)),
                closed: false,
                getters: Line::default(),
                putters: Line::default(),
            }),
            capacity: capacity.max(1),
        }
    }
}

impl QueueBackend for LocalQueue {
    fn poll_try_put(
        &self,
        _: &mut Ticket,
        item: &mut Option<Payload>,
        _: &mut Context<'_>,
    ) -> Poll<Result<(), PutError<()>>> {
        let wake = {
            let mut s = lock(&self.state);
            if s.closed {
                return Poll::Ready(Err(PutError::Closed(())));
            }
            if s.items.len() >= self.capacity {
                return Poll::Ready(Err(PutError::Full(())));
            }
            if let Some(value) = item.take() {
                s.items.push_back(value);
            }
            s.getters.all_wakers()
        };
        wake_all(wake);
        Poll::Ready(Ok(()))
    }

    fn poll_put(
        &self,
        ticket: &mut Ticket,
        item: &mut Option<Payload>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Closed>> {
        let mut wake = Vec::new();
        let result = {
            let mut s = lock(&self.state);
            if s.closed {
                s.putters.remove(ticket);
                Poll::Ready(Err(Closed))
            } else if s.items.len() < self.capacity {
                s.putters.remove(ticket);
                if let Some(value) = item.take() {
                    s.items.push_back(value);
                }
                wake = s.getters.all_wakers();
                Poll::Ready(Ok(()))
            } else {
                s.putters.wait(ticket, cx);
                Poll::Pending
            }
        };
        wake_all(wake);
        result
    }

    fn poll_try_get(&self, _: &mut Ticket, _: &mut Context<'_>) -> Poll<Result<Payload, GetError>> {
        let (item, wake) = {
            let mut s = lock(&self.state);
            match s.items.pop_front() {
                Some(item) => (item, s.putters.all_wakers()),
                None if s.closed => return Poll::Ready(Err(GetError::Closed)),
                None => return Poll::Ready(Err(GetError::Empty)),
            }
        };
        wake_all(wake);
        Poll::Ready(Ok(item))
    }

    fn poll_get(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<Result<Payload, Closed>> {
        let mut wake = Vec::new();
        let result = {
            let mut s = lock(&self.state);
            if let Some(item) = s.items.pop_front() {
                s.getters.remove(ticket);
                wake = s.putters.all_wakers();
                Poll::Ready(Ok(item))
            } else if s.closed {
                s.getters.remove(ticket);
                Poll::Ready(Err(Closed))
            } else {
                s.getters.wait(ticket, cx);
                Poll::Pending
            }
        };
        wake_all(wake);
        result
    }

    fn cancel(&self, ticket: &mut Ticket) {
        let mut s = lock(&self.state);
        let id = ticket.0.take();
        s.getters.remove(&mut Ticket(id));
        s.putters.remove(&mut Ticket(id));
    }

    fn poll_close(&self, _: &mut Ticket, _: &mut Context<'_>) -> Poll<()> {
        let wake = {
            let mut s = lock(&self.state);
            s.closed = true;
            let mut wake = s.getters.all_wakers();
            wake.extend(s.putters.all_wakers());
            wake
        };
        wake_all(wake);
        Poll::Ready(())
    }

    fn poll_len(&self, _: &mut Ticket, _: &mut Context<'_>) -> Poll<usize> {
        Poll::Ready(lock(&self.state).items.len())
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

// ---------------------------------------------------------------------------------------
// Variable

#[derive(Default)]
pub(crate) struct LocalVariable {
    state: Mutex<VariableState>,
}

#[derive(Default)]
struct VariableState {
    value: Option<Shared>,
    version: u64,
    /// The highest fencing token of a fenced set accepted.
    fence: Option<FencingToken>,
    line: Line,
}

impl VariableBackend for LocalVariable {
    fn poll_set(
        &self,
        _: &mut Ticket,
        value: &Shared,
        fence: Option<FencingToken>,
        _: &mut Context<'_>,
    ) -> Poll<Result<u64, FencingToken>> {
        let (version, wake) = {
            let mut s = lock(&self.state);
            if let Some(token) = fence {
                if let Some(highest) = s.fence.filter(|highest| *highest > token) {
                    return Poll::Ready(Err(highest));
                }
                s.fence = Some(token);
            }
            s.value = Some(value.clone());
            s.version += 1;
            (s.version, s.line.all_wakers())
        };
        wake_all(wake);
        Poll::Ready(Ok(version))
    }

    fn poll_get(&self, _: &mut Ticket, _: &mut Context<'_>) -> Poll<Option<Versioned<Shared>>> {
        let s = lock(&self.state);
        Poll::Ready(s.value.clone().map(|value| Versioned {
            value,
            version: s.version,
        }))
    }

    fn poll_changed(&self, ticket: &mut Ticket, seen: u64, cx: &mut Context<'_>) -> Poll<u64> {
        let mut s = lock(&self.state);
        if s.version > seen {
            s.line.remove(ticket);
            return Poll::Ready(s.version);
        }
        s.line.wait(ticket, cx);
        Poll::Pending
    }

    fn cancel(&self, ticket: &mut Ticket) {
        lock(&self.state).line.remove(ticket);
    }
}

// ---------------------------------------------------------------------------------------
// Event

#[derive(Default)]
pub(crate) struct LocalEvent {
    state: Mutex<EventState>,
}

#[derive(Default)]
struct EventState {
    set: bool,
    line: Line,
}

impl EventBackend for LocalEvent {
    fn poll_set(&self, _: &mut Ticket, set: bool, _: &mut Context<'_>) -> Poll<()> {
        let wake = {
            let mut s = lock(&self.state);
            s.set = set;
            if set { s.line.all_wakers() } else { Vec::new() }
        };
        wake_all(wake);
        Poll::Ready(())
    }

    fn poll_is_set(&self, _: &mut Ticket, _: &mut Context<'_>) -> Poll<bool> {
        Poll::Ready(lock(&self.state).set)
    }

    fn poll_wait(&self, ticket: &mut Ticket, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = lock(&self.state);
        if s.set {
            s.line.remove(ticket);
            return Poll::Ready(());
        }
        s.line.wait(ticket, cx);
        Poll::Pending
    }

    fn cancel(&self, ticket: &mut Ticket) {
        lock(&self.state).line.remove(ticket);
    }
}

// ---------------------------------------------------------------------------------------
// Topic

#[derive(Default)]
pub(crate) struct LocalTopic {
    state: Mutex<TopicState>,
}

#[derive(Default)]
struct TopicState {
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
}

struct Subscriber {
    buffer: VecDeque<Shared>,
    capacity: usize,
    dropped: u64,
    waker: Option<Waker>,
}

impl TopicBackend for LocalTopic {
    fn publish(&self, value: Shared) -> usize {
        let (count, wake) = {
            let mut s = lock(&self.state);
            let mut wake = Vec::new();
            for sub in s.subscribers.values_mut() {
                if sub.buffer.len() >= sub.capacity {
                    sub.buffer.pop_front();
                    sub.dropped += 1;
                }
                sub.buffer.push_back(value.clone());
                wake.extend(sub.waker.take());
            }
            (s.subscribers.len(), wake)
        };
        wake_all(wake);
        count
    }

    fn subscribe(&self, buffer: usize) -> u64 {
        let mut s = lock(&self.state);
        s.next_id += 1;
        let id = s.next_id;
        s.subscribers.insert(
            id,
            Subscriber {
                buffer: VecDeque::new(),
                capacity: buffer.max(1),
                dropped: 0,
                waker: None,
            },
        );
        id
    }

    fn poll_next(&self, id: u64, cx: &mut Context<'_>) -> Poll<Next> {
        let mut s = lock(&self.state);
        let Some(sub) = s.subscribers.get_mut(&id) else {
            return Poll::Pending;
        };
        match sub.buffer.pop_front() {
            Some(value) => Poll::Ready(Next {
                value,
                dropped: std::mem::take(&mut sub.dropped),
            }),
            None => {
                sub.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn unsubscribe(&self, id: u64) {
        lock(&self.state).subscribers.remove(&id);
    }
}
