//! Tasks that coordinate through named primitives, for the checks of `peer-harness prims` and the
//! tests: a counter kept exact by a lock, and a semaphore's bound across peers. They use
//! the client that runs them, so on a swarm every primitive lives at its home peer.

use std::time::Duration;

/// The variable that counts permits held now, under its own lock.
fn inside_key(semaphore: &str) -> (String, String, String) {
    (
        format!("{semaphore}-inside-lock"),
        format!("{semaphore}-inside"),
        format!("{semaphore}-most"),
    )
}

fn client() -> peer_core::Client {
    peer_core::Client::current().expect("a task runs with the client that runs it")
}

/// Adds one to the variable `counter` `times` times, each a read-modify-write under the
/// lock `lock` (it loses updates without the lock: it sleeps between read and write).
/// Returns `times`.
#[peer_core::task(name = "peer_workloads::prims::increment_under_lock")]
pub fn increment_under_lock(lock: String, counter: String, times: u32) -> u32 {
    let client = client();
    let (lock, counter) = (client.lock(&lock), client.variable::<u64>(&counter));
    for _ in 0..times {
        let _held = lock.blocking_lock();
        let value = counter.blocking_get().unwrap_or(0);
        std::thread::sleep(Duration::from_micros(300));
        counter.blocking_set(value + 1);
    }
    times
}

/// Holds a permit of `semaphore` (of `permits`) for `ms` milliseconds, counting the
/// holders meanwhile; returns the most holders it saw at once (never above `permits` if
/// the bound holds across peers).
#[peer_core::task(name = "peer_workloads::prims::hold_permit")]
pub fn hold_permit(semaphore: String, permits: u32, ms: u64) -> u32 {
    let client = client();
    let (lock, inside, most) = inside_key(&semaphore);
    let (lock, inside, most) = (
        client.lock(&lock),
        client.variable::<u32>(&inside),
        client.variable::<u32>(&most),
    );
    let permit = client
        .semaphore(&semaphore, permits as usize)
        .blocking_acquire();
    let now = {
        let _held = lock.blocking_lock();
        let now = inside.blocking_get().unwrap_or(0) + 1;
        inside.blocking_set(now);
        most.blocking_set(most.blocking_get().unwrap_or(0).max(now));
        now
    };
    std::thread::sleep(Duration::from_millis(ms));
    {
        let _held = lock.blocking_lock();
        inside.blocking_set(inside.blocking_get().unwrap_or(1).saturating_sub(1));
    }
    drop(permit);
    now
}

/// The most holders of `semaphore` seen at once by [`hold_permit`] tasks.
pub fn most_holders(client: &peer_core::Client, semaphore: &str) -> u32 {
    client
        .variable::<u32>(&inside_key(semaphore).2)
        .blocking_get()
        .unwrap_or(0)
}
