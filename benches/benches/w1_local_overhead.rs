//! W1: local task overhead (see `BENCHMARKS.md`, section W1).
//!
//! Every group runs peer and its anchors (tokio, rayon) on the same work, with 2 workers /
//! threads each, so the ratios come out of one run. Each runtime is built just before its own
//! benchmark and dropped right after it, so idle pools never compete for the 2 cores.
//!
//! Run with `cargo bench -p peer-benches --bench w1_local_overhead`; per-task figures are the
//! reported time divided by the group's `Throughput::Elements`.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use peer_core::Client;

const WORKERS: usize = 2;

/// `w1_flat`: empty tasks submitted from the bench thread, then all awaited.
const FLAT_TASKS: u64 = 1_000_000;
/// `w1_fork_join`: depth of the binary tree; 2^20 leaves, 2^21 - 1 nodes.
const TREE_DEPTH: u32 = 20;
/// `w1_chain`: tasks in the dependency chain.
const CHAIN_LEN: u64 = 10_000;
/// `w1_scaling`: number of busy tasks and how long each spins.
const SCALING_TASKS: u64 = 20_000;
const SPIN: Duration = Duration::from_micros(10);

fn peer_client(workers: usize) -> Client {
    Client::builder()
        .workers(workers)
        .build()
        .expect("peer client")
}

fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("tokio runtime")
}

fn rayon_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

/// Few, long iterations: each one already covers many thousands of tasks.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, measure_secs: u64) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(measure_secs));
}

// ---------------------------------------------------------------------------------------------
// w1_flat

fn flat(c: &mut Criterion) {
    let mut group = c.benchmark_group("w1_flat");
    configure(&mut group, 5);
    group.throughput(Throughput::Elements(FLAT_TASKS));

    {
        let client = peer_client(WORKERS);
        group.bench_function("peer", |b| {
            b.iter(|| {
                let futures: Vec<_> = (0..FLAT_TASKS).map(|_| client.submit(|| ())).collect();
                for f in &futures {
                    f.wait().expect("task");
                }
                futures
            });
        });
    }
    {
        let rt = tokio_rt(WORKERS);
        group.bench_function("tokio", |b| {
            b.iter(|| {
                rt.block_on(async {
                    let handles: Vec<_> = (0..FLAT_TASKS).map(|_| tokio::spawn(async {})).collect();
                    for h in handles {
                        h.await.expect("task");
                    }
                });
            });
        });
    }
    {
        let pool = rayon_pool(WORKERS);
        group.bench_function("rayon", |b| {
            b.iter(|| {
                pool.scope(|s| {
                    for _ in 0..FLAT_TASKS {
                        s.spawn(|_| {});
                    }
                });
            });
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// w1_fork_join

/// Peer, the shape: every node is a task that submits both children and waits on them
/// (`wait` runs other tasks meanwhile). 2^21 - 1 tasks.
fn peer_tree(depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let client = Client::current().expect("inside a task");
    let left = client.submit(move || peer_tree(depth - 1));
    let right = client.submit(move || peer_tree(depth - 1));
    left.wait().expect("left") + right.wait().expect("right")
}

/// Peer, rayon's shape: submit one child, compute the other inline. 2^20 - 1 tasks submitted
/// (plus the root), for comparison with `rayon::join`, which also spawns only one side.
fn peer_tree_half_inline(client: &Client, depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let inner = client.clone();
    let right = client.submit(move || peer_tree_half_inline(&inner, depth - 1));
    let left = peer_tree_half_inline(client, depth - 1);
    left + right.wait().expect("right")
}

fn tokio_tree(depth: u32) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if depth == 0 {
            return 1;
        }
        let left = tokio::spawn(tokio_tree(depth - 1));
        let right = tokio::spawn(tokio_tree(depth - 1));
        left.await.expect("left") + right.await.expect("right")
    })
}

fn rayon_tree(depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let (a, b) = rayon::join(|| rayon_tree(depth - 1), || rayon_tree(depth - 1));
    a + b
}

fn fork_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("w1_fork_join");
    configure(&mut group, 5);
    // Elements = tree nodes (2^21 - 1), i.e. tasks in the peer and tokio versions. rayon::join
    // spawns one side only, so it queues 2^20 - 1 jobs for the same tree.
    let nodes = (1u64 << (TREE_DEPTH + 1)) - 1;
    let leaves = 1u64 << TREE_DEPTH;
    group.throughput(Throughput::Elements(nodes));

    {
        let client = peer_client(WORKERS);
        group.bench_function("peer", |b| {
            b.iter(|| {
                let root = client.submit(|| peer_tree(TREE_DEPTH));
                assert_eq!(*root.wait().expect("root"), leaves);
            });
        });
        group.bench_function("peer_half_inline", |b| {
            b.iter(|| {
                let inner = client.clone();
                let root = client.submit(move || peer_tree_half_inline(&inner, TREE_DEPTH));
                assert_eq!(*root.wait().expect("root"), leaves);
            });
        });
    }
    {
        let rt = tokio_rt(WORKERS);
        group.bench_function("tokio", |b| {
            b.iter(|| {
                let n = rt
                    .block_on(async { tokio::spawn(tokio_tree(TREE_DEPTH)).await.expect("root") });
                assert_eq!(n, leaves);
            });
        });
    }
    {
        let pool = rayon_pool(WORKERS);
        group.bench_function("rayon", |b| {
            b.iter(|| assert_eq!(pool.install(|| rayon_tree(TREE_DEPTH)), leaves));
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// w1_chain

fn chain(c: &mut Criterion) {
    let mut group = c.benchmark_group("w1_chain");
    configure(&mut group, 3);
    group.throughput(Throughput::Elements(CHAIN_LEN));

    {
        let client = peer_client(WORKERS);
        // The bench thread submits task i+1 = f(task i) while earlier hops may already run;
        // each hop is queued by its input's completion.
        group.bench_function("peer", |b| {
            b.iter(|| {
                let mut prev = client.submit(|| 0u64);
                for _ in 1..CHAIN_LEN {
                    prev = client.submit_with(&prev, |x: &u64| x + 1);
                }
                assert_eq!(*prev.wait().expect("chain"), CHAIN_LEN - 1);
            });
        });
    }
    {
        let rt = tokio_rt(WORKERS);
        // Same shape: each spawned task awaits the previous task's JoinHandle.
        group.bench_function("tokio", |b| {
            b.iter(|| {
                let last = rt.block_on(async {
                    let mut prev = tokio::spawn(async { 0u64 });
                    for _ in 1..CHAIN_LEN {
                        let p = prev;
                        prev = tokio::spawn(async move { p.await.expect("hop") + 1 });
                    }
                    prev.await.expect("chain")
                });
                assert_eq!(last, CHAIN_LEN - 1);
            });
        });
    }
    {
        let pool = rayon_pool(WORKERS);
        // rayon has no futures or dependencies. Two anchors:
        // - `rayon_install_per_hop`: the bench thread runs each hop with `pool.install` and
        //   feeds the result to the next; a full submit-run-return round trip per hop (an upper
        //   bound: it includes the bench thread's cross-thread wake-up on every hop).
        // - `rayon_spawn_next`: continuation passing inside one scope; each job spawns its
        //   successor, which is what a completed peer task does for its dependent (a lower
        //   bound: no result slot, no waiter list, no dependency counting).
        group.bench_function("rayon_install_per_hop", |b| {
            b.iter(|| {
                let mut x = 0u64;
                for _ in 1..CHAIN_LEN {
                    x = pool.install(|| black_box(x) + 1);
                }
                assert_eq!(x, CHAIN_LEN - 1);
            });
        });
        group.bench_function("rayon_spawn_next", |b| {
            fn hop<'s>(s: &rayon::Scope<'s>, out: &'s std::sync::atomic::AtomicU64, x: u64) {
                if x + 1 == CHAIN_LEN {
                    out.store(x, std::sync::atomic::Ordering::Relaxed);
                } else {
                    s.spawn(move |s| hop(s, out, x + 1));
                }
            }
            b.iter(|| {
                let out = std::sync::atomic::AtomicU64::new(0);
                pool.scope(|s| s.spawn(|s| hop(s, &out, 0)));
                assert_eq!(out.into_inner(), CHAIN_LEN - 1);
            });
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// w1_scaling

/// Busy work: spins on the clock (no sleep) for `SPIN`.
fn spin() {
    let start = Instant::now();
    while start.elapsed() < SPIN {
        std::hint::spin_loop();
    }
}

fn scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("w1_scaling");
    configure(&mut group, 5);
    group.throughput(Throughput::Elements(SCALING_TASKS));

    // Target: peer/2 is at least 1.8x faster than peer/1. rayon is the anchor.
    for workers in [1, 2] {
        {
            let client = peer_client(workers);
            group.bench_function(format!("peer/{workers}"), |b| {
                b.iter(|| {
                    let futures: Vec<_> = (0..SCALING_TASKS).map(|_| client.submit(spin)).collect();
                    for f in &futures {
                        f.wait().expect("task");
                    }
                    futures
                });
            });
        }
        {
            let pool = rayon_pool(workers);
            group.bench_function(format!("rayon/{workers}"), |b| {
                b.iter(|| {
                    pool.scope(|s| {
                        for _ in 0..SCALING_TASKS {
                            s.spawn(|_| spin());
                        }
                    });
                });
            });
        }
    }
    group.finish();
}

// What `criterion_group!`/`criterion_main!` expand to, written out because the macro's
// generated `pub fn` trips the workspace's `missing_docs` lint.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    flat(&mut c);
    fork_join(&mut c);
    chain(&mut c);
    scaling(&mut c);
    c.final_summary();
}
