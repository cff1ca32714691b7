//! Named tasks for the swarm benchmarks (`peer-harness bench`), registered by every binary that
//! links this crate, the `peer` binary included.

/// Returns its argument: a task that is all overhead.
#[peer_core::task(name = "peer_workloads::bench::noop")]
pub fn noop(x: u64) -> u64 {
    x
}

/// Sleeps `ms` milliseconds (W5's fixed-duration task) and returns it.
#[peer_core::task(name = "peer_workloads::bench::sleep_ms")]
pub fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

/// `bytes` bytes of a pattern seeded by `seed`: a result large enough to stay with its
/// holder and be fetched.
#[peer_core::task(name = "peer_workloads::bench::payload")]
pub fn payload(seed: u64, bytes: u64) -> Vec<u8> {
    (0..bytes).map(|i| (i ^ seed) as u8).collect()
}

/// A checksum of a payload, so that dependents read their input.
#[peer_core::task(name = "peer_workloads::bench::checksum")]
pub fn checksum(data: &Vec<u8>) -> u64 {
    data.iter()
        .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(*b))
}

/// Busy-spins `us` microseconds (W5's CPU-bound task) and returns it.
#[peer_core::task(name = "peer_workloads::bench::spin_us")]
pub fn spin_us(us: u64) -> u64 {
    let end = std::time::Instant::now() + std::time::Duration::from_micros(us);
    while std::time::Instant::now() < end {
        std::hint::spin_loop();
    }
    us
}
