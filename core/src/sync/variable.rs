//! Named variables (the latest value, versioned) and events (a flag to wait on).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::backend::{EventBackend, Shared, VariableBackend};
use super::{FencingToken, blocking, blocking_timeout, request};

/// A named cell with the latest value and a version that grows on every set:
/// `client.variable::<Params>("params")`.
pub struct Variable<T> {
    backend: Arc<dyn VariableBackend>,
    _value: PhantomData<fn(T) -> T>,
}

/// A variable's value with its version (which grows on every set, from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version.
    pub version: u64,
}

/// A [`Variable::set_fenced`] refused: a write with a higher token was accepted before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fenced {
    /// The token of the refused write.
    pub token: FencingToken,
    /// The highest token accepted so far.
    pub highest: FencingToken,
}

/// A named flag tasks can wait on: `client.event("ready")`.
#[derive(Clone)]
pub struct Event {
    backend: Arc<dyn EventBackend>,
}

impl<T: Clone + Send + Sync + 'static> Variable<T> {
    pub(crate) fn new(backend: Arc<dyn VariableBackend>) -> Variable<T> {
        Variable {
            backend,
            _value: PhantomData,
        }
    }

    async fn write(&self, value: T, fence: Option<FencingToken>) -> Result<u64, FencingToken> {
        let value: Shared = Arc::new(value);
        request(&*self.backend, |b, t, cx| b.poll_set(t, &value, fence, cx)).await
    }

    /// Replaces the value and wakes everyone waiting for a change; returns the new version.
    /// Cancel safe: if dropped, the value may or may not have been set.
    pub async fn set(&self, value: T) -> u64 {
        match self.write(value, None).await {
            Ok(version) => version,
            Err(_) => unreachable!("an unfenced write is never refused"),
        }
    }

    /// The blocking twin of [`set`](Variable::set).
    pub fn blocking_set(&self, value: T) -> u64 {
        blocking(self.set(value))
    }

    /// Replaces the value unless a write with a higher fencing token was accepted before:
    /// the variable is then a resource guarded by a lock, and a holder whose lease ran out
    /// (its token is older than the current holder's) cannot overwrite it. Cancel safe: if
    /// dropped, the value may or may not have been set.
    pub async fn set_fenced(&self, value: T, token: FencingToken) -> Result<u64, Fenced> {
        self.write(value, Some(token))
            .await
            .map_err(|highest| Fenced { token, highest })
    }

    /// The blocking twin of [`set_fenced`](Variable::set_fenced).
    pub fn blocking_set_fenced(&self, value: T, token: FencingToken) -> Result<u64, Fenced> {
        blocking(self.set_fenced(value, token))
    }

    /// The value, if ever set. Cancel safe.
    pub async fn get(&self) -> Option<T> {
        self.get_versioned().await.map(|v| v.value)
    }

    /// The blocking twin of [`get`](Variable::get).
    pub fn blocking_get(&self) -> Option<T> {
        blocking(self.get())
    }

    /// The value with its version, if ever set. Cancel safe.
    pub async fn get_versioned(&self) -> Option<Versioned<T>> {
        let read = request(&*self.backend, |b, t, cx| b.poll_get(t, cx)).await?;
        let value = read.value.downcast_ref::<T>()?.clone();
        Some(Versioned {
            value,
            version: read.version,
        })
    }

    /// The blocking twin of [`get_versioned`](Variable::get_versioned).
    pub fn blocking_get_versioned(&self) -> Option<Versioned<T>> {
        blocking(self.get_versioned())
    }

    /// The current version (0 before the first set). Cancel safe.
    pub async fn version(&self) -> u64 {
        let read = request(&*self.backend, |b, t, cx| b.poll_get(t, cx)).await;
        read.map_or(0, |read| read.version)
    }

    /// The blocking twin of [`version`](Variable::version).
    pub fn blocking_version(&self) -> u64 {
        blocking(self.version())
    }

    /// Waits until the version is above `seen`; returns the new version. Cancel safe.
    /// Panics, as do its `blocking_*` forms, if a swarm client's peer stops while it waits
    /// (see [when a swarm peer stops](crate::sync#when-a-swarm-peer-stops)).
    pub fn changed(&self, seen: u64) -> impl Future<Output = u64> + Unpin + use<T> {
        request(self.backend.clone(), move |b, t, cx| {
            b.poll_changed(t, seen, cx)
        })
    }

    /// Blocks until the version is above `seen`; returns the new version.
    pub fn blocking_changed(&self, seen: u64) -> u64 {
        blocking(self.changed(seen))
    }

    /// Like [`blocking_changed`](Variable::blocking_changed), giving up after `timeout`
    /// (`None`).
    pub fn blocking_changed_timeout(&self, seen: u64, timeout: Duration) -> Option<u64> {
        blocking_timeout(self.changed(seen), timeout)
    }
}

impl Event {
    pub(crate) fn new(backend: Arc<dyn EventBackend>) -> Event {
        Event { backend }
    }

    /// Sets the flag and wakes every waiter. Cancel safe: if dropped, the flag may or may
    /// not have been set.
    pub async fn set(&self) {
        request(&*self.backend, |b, t, cx| b.poll_set(t, true, cx)).await;
    }

    /// The blocking twin of [`set`](Event::set).
    pub fn blocking_set(&self) {
        blocking(self.set());
    }

    /// Clears the flag. Cancel safe: if dropped, the flag may or may not have been cleared.
    pub async fn clear(&self) {
        request(&*self.backend, |b, t, cx| b.poll_set(t, false, cx)).await;
    }

    /// The blocking twin of [`clear`](Event::clear).
    pub fn blocking_clear(&self) {
        blocking(self.clear());
    }

    /// Whether the flag is set. Cancel safe.
    pub async fn is_set(&self) -> bool {
        request(&*self.backend, |b, t, cx| b.poll_is_set(t, cx)).await
    }

    /// The blocking twin of [`is_set`](Event::is_set).
    pub fn blocking_is_set(&self) -> bool {
        blocking(self.is_set())
    }

    /// Waits until the flag is set. Cancel safe. Panics, as do its `blocking_*` forms, if a
    /// swarm client's peer stops while it waits (see [when a swarm peer
    /// stops](crate::sync#when-a-swarm-peer-stops)).
    pub fn wait(&self) -> impl Future<Output = ()> + Unpin + use<> {
        request(self.backend.clone(), |b, t, cx| b.poll_wait(t, cx))
    }

    /// Blocks until the flag is set; inside a task, runs other tasks meanwhile.
    pub fn blocking_wait(&self) {
        blocking(self.wait());
    }

    /// Like [`blocking_wait`](Event::blocking_wait), giving up after `timeout`; whether the
    /// flag was set in time.
    pub fn blocking_wait_timeout(&self, timeout: Duration) -> bool {
        blocking_timeout(self.wait(), timeout).is_some()
    }
}

impl<T> Clone for Variable<T> {
    fn clone(&self) -> Self {
        Variable {
            backend: self.backend.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Variable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Variable").finish_non_exhaustive()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").finish_non_exhaustive()
    }
}

impl fmt::Display for Fenced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "write with {} refused: {} was accepted before (the lock was taken back and given on)",
            self.token, self.highest
        )
    }
}

impl std::error::Error for Fenced {}
