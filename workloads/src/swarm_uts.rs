//! UTS across a swarm: the search as named tasks that any peer may run.
//!
//! A task ([`explore`]) visits up to `chunk` nodes of its frontier depth first and returns
//! their counts together with what is left of its stack, split round-robin into up to
//! `split` new frontiers. The submitter ([`on_swarm`]) submits a new task for each frontier
//! as soon as a result arrives, so the swarm always has the whole frontier as ready,
//! stealable tasks. Closures cannot cross machines and a task's own submissions would be
//! owned by whichever peer ran it, so the driver owns every task: each node is visited by
//! exactly one task and counted once, and a lost or repeated task would show in the counts.

use peer_core::{TaskError, TaskFuture, as_completed};
use peer_net::Peer;

use crate::uts::{self, Counts, Node};

/// Nodes a task visits before handing on the rest of its stack, unless told otherwise: at
/// most about 22 ms of hashing on one core here (18 M nodes/s; tasks on T1L average about
/// 10 ms, as frontiers run out), long enough that a task's trip through the swarm (its
/// result back to the submitter, its frontier submitted and stolen again) is a small part. W4 on T1L, 2 processes against 1, interleaved runs: 94.2–95.6% with
/// 200,000 nodes, 96.7–98.5% with 400,000; the one-process time did not change.
pub const CHUNK: u64 = 400_000;

/// What one [`explore`] task found: counts of the nodes it visited and the frontiers left.
pub type Explored = (Counts, Vec<Vec<Node>>);

/// Visits up to `chunk` nodes of the tree named `tree` (`T1`, `T3`, `T1L`, `T3L`) from
/// `frontier`, returning their counts and the rest of the stack in up to `split` parts.
///
/// # Panics
///
/// On an unknown tree name (the submitter checks it first).
#[peer_core::task(name = "peer_workloads::uts::explore")]
pub fn explore(tree: String, frontier: Vec<Node>, chunk: u64, split: u32) -> Explored {
    let Some(known) = uts::known(&tree) else {
        panic!("unknown UTS tree {tree:?}");
    };
    let mut stack = frontier;
    let mut counts = Counts::default();
    uts::explore(&known.params, &mut stack, chunk.max(1), &mut counts);
    let parts = (split.max(1) as usize).min(stack.len());
    let frontiers = (0..parts)
        .map(|k| stack.iter().skip(k).step_by(parts).copied().collect())
        .collect();
    (counts, frontiers)
}

/// Counts the tree named `tree` as [`explore`] tasks across `client`'s swarm.
///
/// Fails with the first failed task's error; an unknown tree name fails before submitting.
pub fn on_swarm(client: &Peer, tree: &str, chunk: u64, split: u32) -> Result<Counts, TaskError> {
    let Some(known) = uts::known(tree) else {
        let (promise, future) = peer_core::Promise::<()>::new();
        let task = promise.id();
        drop(future);
        return Err(TaskError::BadArguments {
            task,
            name: "peer_workloads::uts::explore".into(),
            message: format!("unknown UTS tree {tree:?}").into(),
        });
    };
    let submit = |frontier: Vec<Node>| -> TaskFuture<Explored> {
        client.submit_named(
            ExploreTask,
            (known.name.to_string(), frontier, chunk, split),
        )
    };
    let mut total = Counts::default();
    let mut batch = vec![submit(vec![uts::root(&known.params)])];
    while !batch.is_empty() {
        let mut next = Vec::new();
        for done in as_completed(std::mem::take(&mut batch)) {
            let (counts, frontiers) = done.wait()?;
            total.merge(counts);
            next.extend(frontiers.iter().cloned().map(submit));
        }
        batch = next;
    }
    Ok(total)
}
