//! W1: local task overhead (see `docs/workloads.md`, section W1).
//!
//! Every group runs peer and its anchors (tokio, rayon) on the same work, with 2 workers /
//! threads each, so the ratios come out of one run. Each runtime is built just before its own
//! benchmark and dropped right after it, so idle pools never compete for the 2 cores. The
//! workloads themselves are in `src/w1.rs`, shared with the `w1_interleaved` driver.
//!
//! Run with `cargo bench -p peer-benches --bench w1_local_overhead`; per-task figures are the
//! reported time divided by the group's `Throughput::Elements`:
//!
//! - `w1_flat`: 1,000,000 empty tasks submitted from the bench thread, then all awaited
//!   (`peer`: one `wait` per future, in order; `peer_gather`: one `gather` call).
//! - `w1_fork_join`: a binary tree of depth 20 (2^20 leaves); elements = the 2^21 - 1 nodes,
//!   each a task for peer and tokio (`rayon::join` queues only one side of each fork).
//!   `peer` reaches the client through `Client::with_current`, `peer_current` through
//!   `Client::current` (a clone per node); `peer_half_inline` runs one child inline.
//! - `w1_chain`: 10,000 tasks each depending on the previous; elements = hops.
//! - `w1_scaling`: 20,000 tasks spinning 10 µs each, 1 worker vs 2 (target: 2 ≥ 1.8× 1),
//!   awaited with a `wait` each (`peer/N`) or one `gather` (`peer_gather/N`).
//!
//! On a VM the cross-core latency can flip while a group runs (see
//! `peer_benches::w1::core_round_trip_ns`); if the confidence intervals are wide, compare with
//! `cargo run --release -p peer-benches --bin w1_interleaved`.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use peer_benches::w1::{self, WORKERS};

/// Few, long iterations: each one already covers thousands to millions of tasks.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, measure_secs: u64) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(measure_secs));
}

fn flat(c: &mut Criterion) {
    let mut group = c.benchmark_group("w1_flat");
    configure(&mut group, 5);
    group.throughput(Throughput::Elements(w1::FLAT_TASKS));
    {
        let client = w1::peer_client(WORKERS);
        group.bench_function("peer", |b| {
            b.iter(|| w1::peer_flat(&client, w1::FLAT_TASKS))
        });
        group.bench_function("peer_gather", |b| {
            b.iter(|| w1::peer_flat_gather(&client, w1::FLAT_TASKS))
        });
    }
    {
        let rt = w1::tokio_rt(WORKERS);
        group.bench_function("tokio", |b| b.iter(|| w1::tokio_flat(&rt, w1::FLAT_TASKS)));
    }
    {
        let pool = w1::rayon_pool(WORKERS);
        group.bench_function("rayon", |b| {
            b.iter(|| w1::rayon_flat(&pool, w1::FLAT_TASKS))
        });
    }
    group.finish();
}

fn fork_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("w1_fork_join");
    configure(&mut group, 5);
    group.throughput(Throughput::Elements(w1::TREE_NODES));
    let leaves = 1u64 << w1::TREE_DEPTH;
    {
        let client = w1::peer_client(WORKERS);
        group.bench_function("peer", |b| {
            b.iter(|| assert_eq!(w1::peer_fork_join(&client, w1::TREE_DEPTH), leaves));
        });
        group.bench_function("peer_current", |b| {
            b.iter(|| {
                assert_eq!(w1::peer_fork_join_current(&client, w1::TREE_DEPTH), leaves);
            });
        });
        group.bench_function("peer_half_inline", |b| {
            b.iter(|| {
                assert_eq!(
                    w1::peer_fork_join_half_inline(&client, w1::TREE_DEPTH),
                    leaves
                );
            });
        });
    }
    {
        let rt = w1::tokio_rt(WORKERS);
        group.bench_function("tokio", |b| {
            b.iter(|| assert_eq!(w1::tokio_fork_join(&rt, w1::TREE_DEPTH), leaves));
        });
    }
    {
        let pool = w1::rayon_pool(WORKERS);
        group.bench_function("rayon", |b| {
            b.iter(|| assert_eq!(w1::rayon_fork_join(&pool, w1::TREE_DEPTH), leaves));
        });
    }
    group.finish();
}

fn chain(c: &mut Criterion) {
    let mut group = c.benchmark_group("w1_chain");
    configure(&mut group, 3);
    group.throughput(Throughput::Elements(w1::CHAIN_LEN));
    let last = w1::CHAIN_LEN - 1;
    {
        let client = w1::peer_client(WORKERS);
        group.bench_function("peer", |b| {
            b.iter(|| assert_eq!(w1::peer_chain(&client, black_box(w1::CHAIN_LEN)), last));
        });
    }
    {
        let rt = w1::tokio_rt(WORKERS);
        group.bench_function("tokio", |b| {
            b.iter(|| assert_eq!(w1::tokio_chain(&rt, black_box(w1::CHAIN_LEN)), last));
        });
    }
    {
        // Two anchors, an upper and a lower bound; see their docs in src/w1.rs.
        let pool = w1::rayon_pool(WORKERS);
        group.bench_function("rayon_install_per_hop", |b| {
            b.iter(|| {
                assert_eq!(
                    w1::rayon_chain_install(&pool, black_box(w1::CHAIN_LEN)),
                    last
                )
            });
        });
        group.bench_function("rayon_spawn_next", |b| {
            b.iter(|| {
                assert_eq!(
                    w1::rayon_chain_spawn_next(&pool, black_box(w1::CHAIN_LEN)),
                    last
                );
            });
        });
    }
    group.finish();
}

fn scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("w1_scaling");
    configure(&mut group, 5);
    group.throughput(Throughput::Elements(w1::SCALING_TASKS));
    // Target: peer/2 at least 1.8x faster than peer/1. rayon is the anchor.
    for workers in [1, 2] {
        {
            let client = w1::peer_client(workers);
            group.bench_function(format!("peer/{workers}"), |b| {
                b.iter(|| w1::peer_spin_tasks(&client, w1::SCALING_TASKS));
            });
            group.bench_function(format!("peer_gather/{workers}"), |b| {
                b.iter(|| w1::peer_spin_tasks_gather(&client, w1::SCALING_TASKS));
            });
        }
        {
            let pool = w1::rayon_pool(workers);
            group.bench_function(format!("rayon/{workers}"), |b| {
                b.iter(|| w1::rayon_spin_tasks(&pool, w1::SCALING_TASKS));
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
