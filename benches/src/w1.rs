//! W1 workloads (local task overhead), shared by the criterion bench
//! `benches/w1_local_overhead.rs` and the interleaved driver `src/bin/w1_interleaved.rs`.
//!
//! Each workload exists once per runtime — peer, tokio and rayon — doing the same work; the
//! runtime is built by the caller (2 workers in W1) and passed in, so building it is never
//! timed.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use peer_core::{Client, TaskFuture};

/// Workers / threads of every runtime in W1 (the benchmark machine has 2 cores).
pub const WORKERS: usize = 2;
/// `w1_flat`: empty tasks submitted from outside the pool, then all awaited.
pub const FLAT_TASKS: u64 = 1_000_000;
/// `w1_fork_join`: depth of the binary tree: 2^20 leaves, 2^21 - 1 nodes.
pub const TREE_DEPTH: u32 = 20;
/// Nodes of the fork-join tree, the group's element count (one task per node for peer and
/// tokio; `rayon::join` queues only one side, 2^20 - 1 jobs).
pub const TREE_NODES: u64 = (1 << (TREE_DEPTH + 1)) - 1;
/// `w1_chain`: tasks in the dependency chain.
pub const CHAIN_LEN: u64 = 10_000;
/// `w1_scaling`: number of busy tasks.
pub const SCALING_TASKS: u64 = 20_000;
/// `w1_scaling`: how long each busy task spins.
pub const SPIN: Duration = Duration::from_micros(10);

/// A peer client with `workers` workers.
pub fn peer_client(workers: usize) -> Client {
    Client::builder()
        .workers(workers)
        .build()
        .expect("peer client")
}

/// A multi-threaded tokio runtime with `workers` workers.
pub fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("tokio runtime")
}

/// A rayon pool with `threads` threads.
pub fn rayon_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

// ---------------------------------------------------------------------------------------------
// flat

/// peer: submit `n` empty tasks into a `Vec`, wait on each, drop the futures.
pub fn peer_flat(client: &Client, n: u64) {
    let futures: Vec<TaskFuture<()>> = (0..n).map(|_| client.submit_local(|| ())).collect();
    for f in &futures {
        f.wait().expect("task");
    }
}

/// peer: submit `n` empty tasks into a `Vec` and `gather` them (one call for all futures,
/// instead of one `wait` each).
pub fn peer_flat_gather(client: &Client, n: u64) {
    let futures: Vec<TaskFuture<()>> = (0..n).map(|_| client.submit_local(|| ())).collect();
    let values = client.gather(futures).expect("tasks");
    assert_eq!(values.len() as u64, n);
}

/// tokio: from `block_on`, spawn `n` empty tasks and await each `JoinHandle`.
pub fn tokio_flat(rt: &tokio::runtime::Runtime, n: u64) {
    rt.block_on(async {
        let handles: Vec<_> = (0..n).map(|_| tokio::spawn(async {})).collect();
        for h in handles {
            h.await.expect("task");
        }
    });
}

/// rayon: `n` empty `spawn`s in one `scope` (the scope body runs on a pool thread).
pub fn rayon_flat(pool: &rayon::ThreadPool, n: u64) {
    pool.scope(|s| {
        for _ in 0..n {
            s.spawn(|_| {});
        }
    });
}

// ---------------------------------------------------------------------------------------------
// fork-join

/// peer, the shape: every node is a task that submits both children through
/// [`Client::with_current`] (a borrow of the worker's client: no reference count touched) and
/// waits on them (`wait` runs other tasks meanwhile).
pub fn peer_tree(depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let (left, right) = Client::with_current(|client| {
        (
            client.submit_local(move || peer_tree(depth - 1)),
            client.submit_local(move || peer_tree(depth - 1)),
        )
    })
    .expect("inside a task");
    left.wait().expect("left") + right.wait().expect("right")
}

/// [`peer_tree`] through [`Client::current`], which clones the client (two atomic reference
/// count updates on one shared counter per node): kept to show what `with_current` saves.
pub fn peer_tree_current(depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let client = Client::current().expect("inside a task");
    let left = client.submit_local(move || peer_tree_current(depth - 1));
    let right = client.submit_local(move || peer_tree_current(depth - 1));
    left.wait().expect("left") + right.wait().expect("right")
}

/// peer, rayon's shape: submit one child (through [`Client::with_current`]), compute the
/// other inline.
pub fn peer_tree_half_inline(depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let right = Client::with_current(|client| {
        client.submit_local(move || peer_tree_half_inline(depth - 1))
    })
    .expect("inside a task");
    let left = peer_tree_half_inline(depth - 1);
    left + right.wait().expect("right")
}

/// tokio: every node spawns both children and awaits their handles (boxed recursion).
pub fn tokio_tree(depth: u32) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if depth == 0 {
            return 1;
        }
        let left = tokio::spawn(tokio_tree(depth - 1));
        let right = tokio::spawn(tokio_tree(depth - 1));
        left.await.expect("left") + right.await.expect("right")
    })
}

/// rayon: `rayon::join` recursion (call inside the pool).
pub fn rayon_tree(depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let (a, b) = rayon::join(|| rayon_tree(depth - 1), || rayon_tree(depth - 1));
    a + b
}

/// Runs [`peer_tree`] from a root task submitted from outside; returns the leaf count.
pub fn peer_fork_join(client: &Client, depth: u32) -> u64 {
    *client
        .submit_local(move || peer_tree(depth))
        .wait()
        .expect("root")
}

/// Runs [`peer_tree_current`] from a root task; returns the leaf count.
pub fn peer_fork_join_current(client: &Client, depth: u32) -> u64 {
    *client
        .submit_local(move || peer_tree_current(depth))
        .wait()
        .expect("root")
}

/// Runs [`peer_tree_half_inline`] from a root task; returns the leaf count.
pub fn peer_fork_join_half_inline(client: &Client, depth: u32) -> u64 {
    *client
        .submit_local(move || peer_tree_half_inline(depth))
        .wait()
        .expect("root")
}

/// Runs [`tokio_tree`] as a spawned root task; returns the leaf count.
pub fn tokio_fork_join(rt: &tokio::runtime::Runtime, depth: u32) -> u64 {
    rt.block_on(async { tokio::spawn(tokio_tree(depth)).await.expect("root") })
}

/// Runs [`rayon_tree`] inside the pool; returns the leaf count.
pub fn rayon_fork_join(pool: &rayon::ThreadPool, depth: u32) -> u64 {
    pool.install(|| rayon_tree(depth))
}

// ---------------------------------------------------------------------------------------------
// chain

/// peer: `submit_with(&prev, |x| x + 1)` `n - 1` times from the calling thread (earlier hops
/// may already run meanwhile), then wait on the last; returns its value, `n - 1`.
pub fn peer_chain(client: &Client, n: u64) -> u64 {
    let mut prev = client.submit_local(|| 0u64);
    for _ in 1..n {
        prev = client.submit_local_with(&prev, |x: &u64| x + 1);
    }
    *prev.wait().expect("chain")
}

/// tokio: each spawned task awaits the previous task's `JoinHandle`; returns `n - 1`.
pub fn tokio_chain(rt: &tokio::runtime::Runtime, n: u64) -> u64 {
    rt.block_on(async {
        let mut prev = tokio::spawn(async { 0u64 });
        for _ in 1..n {
            let p = prev;
            prev = tokio::spawn(async move { p.await.expect("hop") + 1 });
        }
        prev.await.expect("chain")
    })
}

/// rayon has no futures or dependencies; anchor 1: the calling thread runs each hop with
/// `pool.install` and feeds the result to the next. A full submit-run-return round trip per
/// hop, including waking the caller: an upper bound.
pub fn rayon_chain_install(pool: &rayon::ThreadPool, n: u64) -> u64 {
    let mut x = 0u64;
    for _ in 1..n {
        x = pool.install(|| black_box(x) + 1);
    }
    x
}

/// rayon anchor 2: continuation passing in one scope, each job spawning its successor — what
/// a completed peer task does for its dependent, minus the result slot, waiter list and
/// dependency count: a lower bound.
pub fn rayon_chain_spawn_next(pool: &rayon::ThreadPool, n: u64) -> u64 {
    fn hop<'s>(s: &rayon::Scope<'s>, out: &'s AtomicU64, x: u64, n: u64) {
        if x + 1 == n {
            out.store(x, Ordering::Relaxed);
        } else {
            s.spawn(move |s| hop(s, out, x + 1, n));
        }
    }
    let out = AtomicU64::new(0);
    pool.scope(|s| s.spawn(|s| hop(s, &out, 0, n)));
    out.into_inner()
}

// ---------------------------------------------------------------------------------------------
// scaling

/// Busy work: spins on the clock (no sleep) for [`SPIN`].
pub fn spin() {
    let start = Instant::now();
    while start.elapsed() < SPIN {
        std::hint::spin_loop();
    }
}

/// peer: `n` [`spin`] tasks submitted from outside, each waited on in order.
pub fn peer_spin_tasks(client: &Client, n: u64) {
    let futures: Vec<TaskFuture<()>> = (0..n).map(|_| client.submit_local(spin)).collect();
    for f in &futures {
        f.wait().expect("task");
    }
}

/// peer: `n` [`spin`] tasks submitted from outside, then `gather`ed.
pub fn peer_spin_tasks_gather(client: &Client, n: u64) {
    let futures: Vec<TaskFuture<()>> = (0..n).map(|_| client.submit_local(spin)).collect();
    let values = client.gather(futures).expect("tasks");
    assert_eq!(values.len() as u64, n);
}

/// rayon: `n` [`spin`] jobs in one scope.
pub fn rayon_spin_tasks(pool: &rayon::ThreadPool, n: u64) {
    pool.scope(|s| {
        for _ in 0..n {
            s.spawn(|_| spin());
        }
    });
}

// ---------------------------------------------------------------------------------------------
// machine probe

/// Mean round trip, in ns, of a cache line bounced `iters` times between the calling thread
/// and a new one. On a VM whose two vCPUs the host moves around this flips between about
/// 50 ns (sibling cores) and about 400 ns (far cores), and every cross-thread figure in W1
/// moves with it; the interleaved driver records it per round.
pub fn core_round_trip_ns(iters: u64) -> f64 {
    let flag = std::sync::Arc::new(AtomicU64::new(0));
    let other = flag.clone();
    let echo = std::thread::spawn(move || {
        for i in 0..iters {
            while other.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            other.store(2 * i + 2, Ordering::Release);
        }
    });
    let start = Instant::now();
    for i in 0..iters {
        flag.store(2 * i + 1, Ordering::Release);
        while flag.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
    }
    let elapsed = start.elapsed();
    echo.join().expect("echo thread");
    elapsed.as_nanos() as f64 / iters as f64
}
