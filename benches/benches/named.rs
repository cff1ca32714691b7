//! Named tasks against closures (not a `docs/workloads.md` workload; results in
//! `docs/benchmarks.md`).
//!
//! Group `named_vs_closure`, 2 workers: 100,000 tasks computing `a + b` on two `u64`s,
//! submitted from the bench thread and gathered, three ways (see `peer_benches::named`):
//!
//! - `closure`: `client.submit_local(move || a + b)`;
//! - `named_direct`: `client.submit_named(AddTask, (a, b))`, the function called directly;
//! - `named_encoded`: the same on a client built with `encode_named_tasks(true)`: arguments
//!   and result encoded with postcard, the function found by name in the registry.
//!
//! Run with `cargo bench -p peer-benches --bench named`; per-task time is the reported time
//! divided by the 100,000 elements. For ratios that survive a noisy machine, run
//! `cargo run --release -p peer-benches --bin w1_interleaved -- named`.

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput};
use peer_benches::named::{self, NAMED_TASKS};
use peer_benches::w1::{self, WORKERS};

fn named_vs_closure(c: &mut Criterion) {
    let mut group = c.benchmark_group("named_vs_closure");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(NAMED_TASKS));
    let sum = named::expected_sum(NAMED_TASKS);
    {
        let client = w1::peer_client(WORKERS);
        group.bench_function("closure", |b| {
            b.iter(|| assert_eq!(named::closure(&client, NAMED_TASKS), sum));
        });
        group.bench_function("named_direct", |b| {
            b.iter(|| assert_eq!(named::named(&client, NAMED_TASKS), sum));
        });
    }
    {
        let client = named::encoding_client(WORKERS);
        group.bench_function("named_encoded", |b| {
            b.iter(|| assert_eq!(named::named(&client, NAMED_TASKS), sum));
        });
    }
    group.finish();
}

// Written out instead of `criterion_group!`/`criterion_main!`, whose generated `pub fn` trips
// the workspace's `missing_docs` lint.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    named_vs_closure(&mut c);
    c.final_summary();
}
