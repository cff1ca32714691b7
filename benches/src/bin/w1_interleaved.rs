//! W1 (local task overhead) run round-robin: each round times peer, tokio and rayon once, in
//! rotating order, so each ratio compares runs made within a second of each other. Use it when
//! the criterion bench (`benches/w1_local_overhead.rs`, same workloads) gives wide intervals:
//! on a VM whose vCPUs the host moves around, cross-core latency flips between rounds, so each
//! round also records the cache-line round trip between two threads and the ratios are
//! reported per kind of round as well ("near": < 150 ns, "far": otherwise).
//!
//! ```text
//! cargo run --release -p peer-benches --bin w1_interleaved -- [GROUP ...] [--rounds N]
//! ```
//!
//! GROUP is `flat`, `fork_join`, `chain` or `scaling` (default: these four), or `named`
//! (not part of W1: closures against named tasks, see `peer_benches::named`). Prints a table
//! per group and one JSON line per group (`{"group":..,"impl":{..}}`).

use std::time::Instant;

use peer_benches::named;
use peer_benches::w1::{self, WORKERS};

/// One implementation of a group's workload; returns nothing, panics if the result is wrong.
type Run<'a> = Box<dyn Fn() + 'a>;

/// Chain runs take milliseconds: time several per round and keep the mean.
const CHAIN_REPS: u32 = 10;
/// Named-task runs take tens of milliseconds: likewise.
const NAMED_REPS: u32 = 5;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `impls` round-robin and prints the summary. The first impl is the reference for ratios.
fn interleave(group: &str, elements: u64, reps: u32, rounds: usize, impls: &[(&str, Run<'_>)]) {
    for (_, run) in impls {
        run(); // warm up: first-touch page faults, thread start-up
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); impls.len()];
    let mut probes = Vec::new();
    for round in 0..rounds {
        probes.push(w1::core_round_trip_ns(20_000));
        for k in 0..impls.len() {
            let i = (round + k) % impls.len();
            let start = Instant::now();
            for _ in 0..reps {
                (impls[i].1)();
            }
            times[i].push(start.elapsed().as_secs_f64() * 1e3 / f64::from(reps));
        }
    }
    let near: Vec<bool> = probes.iter().map(|&p| p < 150.0).collect();
    println!(
        "\n{group}: {rounds} rounds ({} near, {} far; core round trip median {:.0} ns), {elements} elements",
        near.iter().filter(|&&n| n).count(),
        near.iter().filter(|&&n| !n).count(),
        median(&mut probes.clone()),
    );
    println!(
        "  {:<24} {:>11} {:>11} {:>14} {:>12} {:>12}",
        "impl", "median ms", "ns/elem", "x / first", "near", "far"
    );
    let mut json = Vec::new();
    for (i, (name, _)) in impls.iter().enumerate() {
        let ratio = |filter: &dyn Fn(usize) -> bool| {
            let mut r: Vec<f64> = (0..rounds)
                .filter(|&r| filter(r))
                .map(|r| times[i][r] / times[0][r])
                .collect();
            median(&mut r)
        };
        let all = ratio(&|_| true);
        let (rn, rf) = (ratio(&|r| near[r]), ratio(&|r| !near[r]));
        let med = median(&mut times[i].clone());
        let cell = |x: f64| {
            if x.is_finite() {
                format!("{x:.3}")
            } else {
                "-".into()
            }
        };
        println!(
            "  {name:<24} {med:>11.3} {:>11.1} {:>14} {:>12} {:>12}",
            med * 1e6 / elements as f64,
            cell(all),
            cell(rn),
            cell(rf),
        );
        let num = |x: f64| {
            if x.is_finite() {
                format!("{x:.4}")
            } else {
                "null".into()
            }
        };
        json.push(format!(
            "\"{name}\":{{\"median_ms\":{},\"ns_per_elem\":{},\"ratio_to_first\":{},\"ratio_near\":{},\"ratio_far\":{}}}",
            num(med),
            num(med * 1e6 / elements as f64),
            num(all),
            num(rn),
            num(rf),
        ));
    }
    println!(
        "{{\"group\":\"{group}\",\"rounds\":{rounds},\"elements\":{elements},\"impl\":{{{}}}}}",
        json.join(",")
    );
}

fn flat(rounds: usize) {
    let n = w1::FLAT_TASKS;
    let client = w1::peer_client(WORKERS);
    let rt = w1::tokio_rt(WORKERS);
    let pool = w1::rayon_pool(WORKERS);
    let impls: Vec<(&str, Run<'_>)> = vec![
        ("peer", Box::new(|| w1::peer_flat(&client, n))),
        ("peer_gather", Box::new(|| w1::peer_flat_gather(&client, n))),
        ("tokio", Box::new(|| w1::tokio_flat(&rt, n))),
        ("rayon", Box::new(|| w1::rayon_flat(&pool, n))),
    ];
    interleave("w1_flat", n, 1, rounds, &impls);
}

fn fork_join(rounds: usize) {
    let d = w1::TREE_DEPTH;
    let leaves = 1u64 << d;
    let client = w1::peer_client(WORKERS);
    let rt = w1::tokio_rt(WORKERS);
    let pool = w1::rayon_pool(WORKERS);
    let impls: Vec<(&str, Run<'_>)> = vec![
        (
            "peer",
            Box::new(|| assert_eq!(w1::peer_fork_join(&client, d), leaves)),
        ),
        (
            "peer_current",
            Box::new(|| assert_eq!(w1::peer_fork_join_current(&client, d), leaves)),
        ),
        (
            "peer_half_inline",
            Box::new(|| assert_eq!(w1::peer_fork_join_half_inline(&client, d), leaves)),
        ),
        (
            "tokio",
            Box::new(|| assert_eq!(w1::tokio_fork_join(&rt, d), leaves)),
        ),
        (
            "rayon",
            Box::new(|| assert_eq!(w1::rayon_fork_join(&pool, d), leaves)),
        ),
    ];
    interleave("w1_fork_join", w1::TREE_NODES, 1, rounds, &impls);
}

fn chain(rounds: usize) {
    let n = w1::CHAIN_LEN;
    let client = w1::peer_client(WORKERS);
    let rt = w1::tokio_rt(WORKERS);
    let pool = w1::rayon_pool(WORKERS);
    let impls: Vec<(&str, Run<'_>)> = vec![
        (
            "peer",
            Box::new(|| assert_eq!(w1::peer_chain(&client, n), n - 1)),
        ),
        (
            "tokio",
            Box::new(|| assert_eq!(w1::tokio_chain(&rt, n), n - 1)),
        ),
        (
            "rayon_install_per_hop",
            Box::new(|| assert_eq!(w1::rayon_chain_install(&pool, n), n - 1)),
        ),
        (
            "rayon_spawn_next",
            Box::new(|| assert_eq!(w1::rayon_chain_spawn_next(&pool, n), n - 1)),
        ),
    ];
    interleave("w1_chain", n, CHAIN_REPS, rounds, &impls);
}

fn scaling(rounds: usize) {
    let n = w1::SCALING_TASKS;
    let (peer1, peer2) = (w1::peer_client(1), w1::peer_client(2));
    let (rayon1, rayon2) = (w1::rayon_pool(1), w1::rayon_pool(2));
    let impls: Vec<(&str, Run<'_>)> = vec![
        ("peer/1", Box::new(|| w1::peer_spin_tasks(&peer1, n))),
        ("peer/2", Box::new(|| w1::peer_spin_tasks(&peer2, n))),
        (
            "peer_gather/1",
            Box::new(|| w1::peer_spin_tasks_gather(&peer1, n)),
        ),
        (
            "peer_gather/2",
            Box::new(|| w1::peer_spin_tasks_gather(&peer2, n)),
        ),
        ("rayon/1", Box::new(|| w1::rayon_spin_tasks(&rayon1, n))),
        ("rayon/2", Box::new(|| w1::rayon_spin_tasks(&rayon2, n))),
    ];
    interleave("w1_scaling", n, 1, rounds, &impls);
}

/// Not W1: closures against named tasks, direct and through the registry (`named` module).
fn named(rounds: usize) {
    let n = named::NAMED_TASKS;
    let sum = named::expected_sum(n);
    let client = w1::peer_client(WORKERS);
    let encoding = named::encoding_client(WORKERS);
    let impls: Vec<(&str, Run<'_>)> = vec![
        (
            "closure",
            Box::new(|| assert_eq!(named::closure(&client, n), sum)),
        ),
        (
            "named_direct",
            Box::new(|| assert_eq!(named::named(&client, n), sum)),
        ),
        (
            "named_encoded",
            Box::new(|| assert_eq!(named::named(&encoding, n), sum)),
        ),
    ];
    interleave("named_vs_closure", n, NAMED_REPS, rounds, &impls);
}

fn main() {
    let mut groups = Vec::new();
    let mut rounds = 15;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|r| r.parse().ok())
                    .filter(|&r| r > 0)
                    .unwrap_or_else(|| usage())
            }
            "flat" | "fork_join" | "chain" | "scaling" | "named" => groups.push(arg),
            _ => usage(),
        }
    }
    if groups.is_empty() {
        groups = ["flat", "fork_join", "chain", "scaling"]
            .map(String::from)
            .to_vec();
    }
    for g in &groups {
        match g.as_str() {
            "flat" => flat(rounds),
            "fork_join" => fork_join(rounds),
            "chain" => chain(rounds),
            "named" => named(rounds),
            _ => scaling(rounds),
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: w1_interleaved [flat|fork_join|chain|scaling|named ...] [--rounds N]");
    std::process::exit(2)
}
