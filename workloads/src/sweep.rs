//! A parameter sweep with a known answer: `n` tasks that each sleep `ms` milliseconds and
//! return the square of their index, summed. As a detached [`Job`], the sum is a binary
//! tree of additions, so the job is a graph whose output depends on every task.

use peer_net::{Job, JobRef};

/// Sleeps `ms` milliseconds and returns `i²`.
#[peer_core::task(name = "peer_workloads::sweep::square_after")]
pub fn square_after(i: u64, ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    i.wrapping_mul(i)
}

/// `a + b` (wrapping).
#[peer_core::task(name = "peer_workloads::sweep::add")]
pub fn add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

/// The sweep's answer: the sum of `i²` for `i` in `0..n` (wrapping).
pub fn expected(n: u64) -> u64 {
    (0..n).fold(0u64, |sum, i| sum.wrapping_add(i.wrapping_mul(i)))
}

/// The sweep as a detached job named `name`: `n` squares and `n - 1` additions, the last
/// of which is the output. `n` must be at least 1.
pub fn job(name: &str, n: u64, ms: u64) -> Result<Job, peer_net::Error> {
    let mut job = Job::new(name);
    let mut level: Vec<JobRef<u64>> = (0..n.max(1))
        .map(|i| job.add(SquareAfterTask, (i, ms)))
        .collect::<Result<_, _>>()?;
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            next.push(match pair {
                [a, b] => job.add(AddTask, (a, b))?,
                [a] => job.add(AddTask, (a, 0u64))?,
                _ => unreachable!("chunks of two"),
            });
        }
        level = next;
    }
    Ok(job)
}
