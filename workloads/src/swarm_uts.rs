//! UTS as named tasks that submit tasks: the same code on a local client and on a swarm.
//!
//! A [`search`] task visits up to `chunk` nodes of its frontier depth first, splits what is
//! left of its stack round-robin into up to `split` new frontiers, submits a `search` for each
//! through [`Client::current`], waits for them (helping meanwhile) and returns its own counts
//! with theirs. On a swarm every task is owned by the peer that submitted it, so any peer's
//! children may be stolen by any other, and results flow back up the tree of tasks. Each node
//! is visited by exactly one task and counted once: a lost or repeated task would show in the
//! counts (a task that runs twice keeps only its first result at its owner).

use peer_core::{Client, TaskError, TaskFuture};

use crate::uts::{self, Counts, Node};

/// Nodes a task visits before handing on the rest of its stack, unless told otherwise: at
/// most about 22 ms of hashing on one core here (18 M nodes/s; tasks on T1L average about
/// 10 ms, as frontiers run out), long enough that a task's trip through the swarm (submitted,
/// stolen, its result back to its parent) is a small part.
pub const CHUNK: u64 = 400_000;

/// The name every peer registers [`search`] under.
pub const SEARCH: &str = "peer_workloads::uts::search";

/// Counts the subtree of the tree named `tree` (`T1`, `T3`, `T1L`, `T3L`) below `frontier`:
/// up to `chunk` nodes here, the rest in up to `split` tasks of its own, submitted through
/// the client running it.
///
/// # Panics
///
/// On an unknown tree name (the submitter checks it first), outside a client's worker, and
/// when a child task fails (the panic names it, and fails every task above it).
#[peer_core::task(name = "peer_workloads::uts::search")]
pub fn search(tree: &str, frontier: Vec<Node>, chunk: u64, split: u32) -> Counts {
    let Some(known) = uts::known(tree) else {
        panic!("unknown UTS tree {tree:?}");
    };
    let mut stack = frontier;
    let mut counts = Counts::default();
    uts::explore(&known.params, &mut stack, chunk.max(1), &mut counts);
    if stack.is_empty() {
        return counts;
    }
    let parts = (split.max(1) as usize).min(stack.len());
    let children: Vec<TaskFuture<Counts>> = Client::with_current(|client| {
        (0..parts)
            .map(|k| {
                let part: Vec<Node> = stack.iter().skip(k).step_by(parts).copied().collect();
                client.submit_named(SearchTask, (tree.to_string(), part, chunk, split))
            })
            .collect()
    })
    .expect("a UTS search runs on a client's worker");
    for child in &children {
        match child.wait() {
            Ok(found) => counts.merge(found),
            Err(error) => panic!("a UTS child search failed: {error}"),
        }
    }
    counts
}

/// Counts the tree named `tree` as [`search`] tasks on `client`: on its own pool for a local
/// client, across the swarm for a peer's.
///
/// Fails with the first failed task's error; an unknown tree name fails before submitting.
pub fn on_client(client: &Client, tree: &str, chunk: u64, split: u32) -> Result<Counts, TaskError> {
    let Some(known) = uts::known(tree) else {
        let (promise, future) = peer_core::Promise::<()>::new();
        let task = promise.id();
        drop(future);
        return Err(TaskError::BadArguments {
            task,
            name: SEARCH.into(),
            message: format!("unknown UTS tree {tree:?}").into(),
        });
    };
    let root = vec![uts::root(&known.params)];
    let counts = client
        .submit_named(SearchTask, (known.name.to_string(), root, chunk, split))
        .into_result()?;
    Ok(counts)
}
