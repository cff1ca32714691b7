//! Named tasks against closures: the same small task (`a + b` on two `u64`s) submitted
//! `NAMED_TASKS` times from outside the pool and gathered, three ways. Shared by the criterion
//! bench `benches/named.rs` and the `named` group of the `w1_interleaved` driver.
//!
//! - [`closure`]: `client.submit_local(move || a + b)`, the reference;
//! - named direct, [`named`] on a default client: `client.submit_named(AddTask, (a, b))` calls
//!   [`add`] directly (each value argument is first stored as a finished future, then the task
//!   runs once both inputs are done);
//! - named encoded, [`named`] on an [`encoding_client`] (`encode_named_tasks(true)`): the task
//!   runs as a remote peer would run it: encode the arguments with postcard, look the name up
//!   in the registry, decode, run, encode the result, decode it.

use peer_core::{Client, NamedTask, TaskFuture};

/// Tasks per run.
pub const NAMED_TASKS: u64 = 100_000;

/// The task: one value parameter and one lent by reference.
#[peer_core::task]
pub fn add(a: u64, b: &u64) -> u64 {
    a + b
}

/// A client with `workers` workers that runs named tasks through the registry with encoded
/// arguments and result. Panics if [`AddTask`] did not reach the registry (see the linker
/// pitfall in `peer_core::named`).
pub fn encoding_client(workers: usize) -> Client {
    assert!(
        peer_core::named::registry().get(AddTask::NAME).is_some(),
        "{} is not registered",
        AddTask::NAME
    );
    Client::builder()
        .workers(workers)
        .encode_named_tasks(true)
        .build()
        .expect("peer client")
}

/// Sum of the results of one run: task `i` computes `i + 1`.
pub const fn expected_sum(n: u64) -> u64 {
    n * (n + 1) / 2
}

fn gather_sum(client: &Client, futures: Vec<TaskFuture<u64>>) -> u64 {
    client.gather(futures).expect("tasks").iter().sum()
}

/// `n` closures `move || a + b`, gathered; returns the sum of the results.
pub fn closure(client: &Client, n: u64) -> u64 {
    let futures = (0..n)
        .map(|a| {
            let b = 1u64;
            client.submit_local(move || a + b)
        })
        .collect();
    gather_sum(client, futures)
}

/// `n` named calls `submit_named(AddTask, (a, b))`, gathered; returns the sum of the results.
/// Direct on a default client, through the registry on an [`encoding_client`].
pub fn named(client: &Client, n: u64) -> u64 {
    let futures = (0..n)
        .map(|a| client.submit_named(AddTask, (a, 1u64)))
        .collect();
    gather_sum(client, futures)
}
