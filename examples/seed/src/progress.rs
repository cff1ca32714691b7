//! Progress on stderr, so that stdout holds only the result (the same on every run).

use std::time::Instant;

use peer_core::TaskFuture;

/// Waits for `futures` in the order they finish, printing `progress: <what> k/n` on stderr
/// at every tenth; returns when all are done (failed ones included).
pub(crate) fn report<T: Send + Sync + 'static>(what: &str, futures: &[TaskFuture<T>]) {
    let n = futures.len();
    let mut next_tenth = 1;
    for (done, _) in peer_core::as_completed(futures.iter().cloned()).enumerate() {
        let done = done + 1;
        if done * 10 >= next_tenth * n {
            eprintln!("progress: {what} {done}/{n}");
            next_tenth = done * 10 / n.max(1) + 1;
        }
    }
}

/// Prints how long the run took since `start`, on stderr.
pub(crate) fn took(start: Instant) {
    eprintln!("took {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
}
