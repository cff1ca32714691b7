//! Locks and semaphores: permits with optional leases and fencing tokens.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::backend::{Grant, SemaphoreBackend, Ticket};
use super::{blocking, blocking_timeout, request};

/// A named mutual-exclusion lock: `client.lock("db")`. A lock is a semaphore of one permit:
/// holding it is holding a [`Permit`].
#[derive(Clone)]
pub struct Lock {
    sem: Semaphore,
}

/// A named semaphore with a fixed number of permits: `client.semaphore("gpu", 2)`.
#[derive(Clone)]
pub struct Semaphore {
    name: Arc<str>,
    backend: Arc<dyn SemaphoreBackend>,
}

/// A held lock or semaphore permit; released when dropped (without waiting for the answer:
/// [`release`](Permit::release) waits for it).
#[must_use = "the permit is released as soon as it is dropped"]
pub struct Permit {
    backend: Arc<dyn SemaphoreBackend>,
    grant: Grant,
    released: bool,
}

/// Waits for a permit; see [`Semaphore::acquire`] and [`Lock::lock`]. Cancel safe.
///
/// # Panics
///
/// On a swarm client, when its peer stops while it waits: no permit can be granted any
/// more, and there is no error to give (see [when a swarm peer
/// stops](crate::sync#when-a-swarm-peer-stops)). The `blocking_*` forms of `lock` and
/// `acquire`, timed or not, panic alike.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire {
    backend: Arc<dyn SemaphoreBackend>,
    ticket: Ticket,
    lease: Option<Duration>,
}

/// Grows with every grant of one primitive: a resource guarded by a lock remembers the highest
/// token it accepted and refuses lower ones, so a holder whose lease ran out cannot act on it
/// after a newer holder did (the stale-holder problem of leases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(pub u64);

/// The permit is no longer held: its lease ran out and it was given to someone else, or it
/// was released already. Carries the permit's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired(pub FencingToken);

impl Semaphore {
    pub(crate) fn new(name: &str, backend: Arc<dyn SemaphoreBackend>) -> Semaphore {
        Semaphore {
            name: name.into(),
            backend,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn permit(&self, grant: Grant) -> Permit {
        Permit {
            backend: self.backend.clone(),
            grant,
            released: false,
        }
    }

    /// Waits for a permit. Cancel safe: dropping the future leaves the line.
    pub fn acquire(&self) -> Acquire {
        self.acquire_leased(None)
    }

    /// Waits for a permit that is taken back if not renewed within `lease`. Cancel safe.
    pub fn acquire_with_lease(&self, lease: Duration) -> Acquire {
        self.acquire_leased(Some(lease))
    }

    fn acquire_leased(&self, lease: Option<Duration>) -> Acquire {
        Acquire {
            backend: self.backend.clone(),
            ticket: Ticket::default(),
            lease,
        }
    }

    /// Blocks until a permit is free; inside a task, runs other tasks meanwhile.
    pub fn blocking_acquire(&self) -> Permit {
        blocking(self.acquire())
    }

    /// Like [`blocking_acquire`](Semaphore::blocking_acquire), giving up after `timeout`.
    pub fn blocking_acquire_timeout(&self, timeout: Duration) -> Option<Permit> {
        blocking_timeout(self.acquire(), timeout)
    }

    /// Blocks for a permit that is taken back if not renewed within `lease`.
    pub fn blocking_acquire_with_lease(&self, lease: Duration) -> Permit {
        blocking(self.acquire_with_lease(lease))
    }

    /// Like [`blocking_acquire_with_lease`](Semaphore::blocking_acquire_with_lease), giving
    /// up after `timeout`.
    pub fn blocking_acquire_with_lease_timeout(
        &self,
        lease: Duration,
        timeout: Duration,
    ) -> Option<Permit> {
        blocking_timeout(self.acquire_with_lease(lease), timeout)
    }

    /// A permit if one is free now and nobody waits ahead; never waits in line (on a swarm,
    /// one round trip to the home). Cancel safe: a permit granted to a dropped call is
    /// handed on.
    pub async fn try_acquire(&self) -> Option<Permit> {
        let grant = request(&*self.backend, |b, t, cx| b.poll_try_acquire(t, None, cx)).await;
        grant.map(|grant| self.permit(grant))
    }

    /// The blocking twin of [`try_acquire`](Semaphore::try_acquire).
    pub fn blocking_try_acquire(&self) -> Option<Permit> {
        blocking(self.try_acquire())
    }

    /// Permits free now. Cancel safe.
    pub async fn available(&self) -> usize {
        request(&*self.backend, |b, t, cx| b.poll_available(t, cx)).await
    }

    /// The blocking twin of [`available`](Semaphore::available).
    pub fn blocking_available(&self) -> usize {
        blocking(self.available())
    }
}

impl Future for Acquire {
    type Output = Permit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let this = &mut *self;
        this.backend
            .poll_acquire(&mut this.ticket, this.lease, cx)
            .map(|grant| Permit {
                backend: this.backend.clone(),
                grant,
                released: false,
            })
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if self.ticket.0.is_some() {
            self.backend.cancel(&mut self.ticket);
        }
    }
}

impl Lock {
    pub(crate) fn new(sem: Semaphore) -> Lock {
        Lock { sem }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.sem.name()
    }

    /// Waits for the lock. Cancel safe: a dropped `lock()` leaves the line and leaks nothing.
    pub fn lock(&self) -> Acquire {
        self.sem.acquire()
    }

    /// Waits for the lock, held for at most `lease` unless renewed. Cancel safe.
    pub fn lock_with_lease(&self, lease: Duration) -> Acquire {
        self.sem.acquire_with_lease(lease)
    }

    /// Blocks for the lock; inside a task, runs other tasks meanwhile.
    pub fn blocking_lock(&self) -> Permit {
        self.sem.blocking_acquire()
    }

    /// Like [`blocking_lock`](Lock::blocking_lock), giving up after `timeout`.
    pub fn blocking_lock_timeout(&self, timeout: Duration) -> Option<Permit> {
        self.sem.blocking_acquire_timeout(timeout)
    }

    /// Blocks for the lock, held for at most `lease` unless renewed.
    pub fn blocking_lock_with_lease(&self, lease: Duration) -> Permit {
        self.sem.blocking_acquire_with_lease(lease)
    }

    /// Like [`blocking_lock_with_lease`](Lock::blocking_lock_with_lease), giving up after
    /// `timeout`.
    pub fn blocking_lock_with_lease_timeout(
        &self,
        lease: Duration,
        timeout: Duration,
    ) -> Option<Permit> {
        self.sem.blocking_acquire_with_lease_timeout(lease, timeout)
    }

    /// The lock if it is free now; never waits in line (on a swarm, one round trip to the
    /// home). Cancel safe.
    pub async fn try_lock(&self) -> Option<Permit> {
        self.sem.try_acquire().await
    }

    /// The blocking twin of [`try_lock`](Lock::try_lock).
    pub fn blocking_try_lock(&self) -> Option<Permit> {
        self.sem.blocking_try_acquire()
    }

    /// Whether someone holds it now. Cancel safe.
    pub async fn is_locked(&self) -> bool {
        self.sem.available().await == 0
    }

    /// The blocking twin of [`is_locked`](Lock::is_locked).
    pub fn blocking_is_locked(&self) -> bool {
        self.sem.blocking_available() == 0
    }
}

impl Permit {
    /// Its fencing token: compare it at the protected resource.
    pub fn token(&self) -> FencingToken {
        self.grant.token
    }

    /// When its lease runs out, if it has one (as this process counts: never later than
    /// the home does).
    pub fn expires(&self) -> Option<Instant> {
        self.grant.expires
    }

    /// Whether it is still held (false once its lease ran out). Cancel safe.
    pub async fn is_held(&self) -> bool {
        if self.released {
            return false;
        }
        let token = self.grant.token;
        request(&*self.backend, |b, t, cx| b.poll_is_held(t, token, cx)).await
    }

    /// The blocking twin of [`is_held`](Permit::is_held).
    pub fn blocking_is_held(&self) -> bool {
        blocking(self.is_held())
    }

    /// Extends the lease to `lease` from now; fails if it already ran out. Cancel safe: if
    /// dropped, the lease may or may not have been extended, and
    /// [`expires`](Permit::expires) still tells the old deadline.
    pub async fn renew(&mut self, lease: Duration) -> Result<(), Expired> {
        let token = self.grant.token;
        let backend = &*self.backend;
        self.grant = request(backend, |b, t, cx| b.poll_renew(t, token, lease, cx)).await?;
        Ok(())
    }

    /// The blocking twin of [`renew`](Permit::renew).
    pub fn blocking_renew(&mut self, lease: Duration) -> Result<(), Expired> {
        blocking(self.renew(lease))
    }

    /// Releases now, reporting whether it was still held. Cancel safe: if dropped, the
    /// permit is still released.
    pub async fn release(mut self) -> Result<(), Expired> {
        // From here the release is this call's: a backend's `cancel` of a release still
        // releases, and dropping the permit must not release it a second time.
        self.released = true;
        let token = self.grant.token;
        request(&*self.backend, |b, t, cx| b.poll_release(t, token, cx)).await
    }

    /// The blocking twin of [`release`](Permit::release).
    pub fn blocking_release(self) -> Result<(), Expired> {
        blocking(self.release())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.released {
            // An expired permit was already taken back; nothing else to do.
            self.backend.release_soon(self.grant.token);
        }
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fence#{}", self.0)
    }
}

impl fmt::Display for Expired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is no longer held: its lease ran out or it was released",
            self.0
        )
    }
}

impl std::error::Error for Expired {}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").field("name", &self.name()).finish()
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("name", &self.name)
            .finish()
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("token", &self.grant.token)
            .field("expires", &self.grant.expires)
            .finish()
    }
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}
