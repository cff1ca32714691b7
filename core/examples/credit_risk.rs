//! A credit-risk model as a graph of ~1,000 interdependent tasks, like the seed's picture of
//! a bank's model: market data feeds exposures, exposures feed default probabilities (some of
//! which branch into stress scenarios run as nested tasks), those feed losses and portfolio
//! roll-ups. Every default model files an audit record on a queue that a consumer task
//! drains, and every loss books itself into a ledger guarded by a lock. The result is checked
//! against a sequential run of the same functions.
//!
//! ```sh
//! cargo run --release -p peer-core --example credit_risk
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use peer_core::{Client, TaskFuture};

const FEEDS: usize = 40;
const EXPOSURES: usize = 200;
const DEFAULTS: usize = 400;
const LOSSES: usize = 300;
const PORTFOLIOS: usize = 50;
const STRESSED_ABOVE: f64 = 0.6;

/// Deterministic pseudo-random numbers so both runs build the same graph.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (mix(x) >> 11) as f64 / (1u64 << 53) as f64
}

fn market_feed(i: usize) -> Vec<f64> {
    (0..64).map(|k| unit((i * 64 + k) as u64)).collect()
}

fn feeds_of(e: usize) -> Vec<usize> {
    (0..2 + e % 2)
        .map(|k| mix((e * 7 + k) as u64) as usize % FEEDS)
        .collect()
}

fn exposure(e: usize, curves: &[&Vec<f64>]) -> f64 {
    let total: f64 = curves
        .iter()
        .map(|c| c[e % c.len()] + c[(e * 3) % c.len()])
        .sum();
    total / (2.0 * curves.len() as f64)
}

fn stress_scenario(s: usize, exposure: f64, curve: &[f64]) -> f64 {
    exposure * (1.0 + curve[(s * 13) % curve.len()])
}

fn default_probability(d: usize, exposure: f64, curve: &[f64], stressed: &[f64]) -> f64 {
    let base = exposure * 0.1 + curve[d % curve.len()] * 0.05;
    base + stressed.iter().sum::<f64>() * 0.01
}

fn loss(l: usize, pds: &[&f64]) -> f64 {
    pds.iter().map(|p| **p).sum::<f64>() * (1.0 + (l % 5) as f64 * 0.1)
}

fn pds_of(l: usize) -> Vec<usize> {
    (0..1 + l % 4)
        .map(|k| mix((l * 31 + k) as u64) as usize % DEFAULTS)
        .collect()
}

fn portfolio(losses: &[&f64]) -> f64 {
    losses.iter().map(|l| **l).sum()
}

/// Fixed-point cents, so the ledger's total does not depend on the order of bookings.
fn cents(x: f64) -> u64 {
    (x * 100.0).round() as u64
}

/// The same model, one function call at a time.
fn sequential() -> (f64, u64, usize) {
    let feeds: Vec<Vec<f64>> = (0..FEEDS).map(market_feed).collect();
    let exposures: Vec<f64> = (0..EXPOSURES)
        .map(|e| {
            exposure(
                e,
                &feeds_of(e).iter().map(|&f| &feeds[f]).collect::<Vec<_>>(),
            )
        })
        .collect();
    let pds: Vec<f64> = (0..DEFAULTS)
        .map(|d| {
            let (x, curve) = (exposures[d % EXPOSURES], &feeds[d % FEEDS]);
            let stressed: Vec<f64> = if x > STRESSED_ABOVE {
                (0..4).map(|s| stress_scenario(s, x, curve)).collect()
            } else {
                Vec::new()
            };
            default_probability(d, x, curve, &stressed)
        })
        .collect();
    let losses: Vec<f64> = (0..LOSSES)
        .map(|l| loss(l, &pds_of(l).iter().map(|&p| &pds[p]).collect::<Vec<_>>()))
        .collect();
    let ledger: u64 = losses.iter().map(|&l| cents(l)).sum();
    let total: f64 = (0..PORTFOLIOS)
        .map(|p| {
            portfolio(
                &losses
                    .iter()
                    .skip(p)
                    .step_by(PORTFOLIOS)
                    .collect::<Vec<_>>(),
            )
        })
        .sum();
    (total, ledger, DEFAULTS)
}

fn main() {
    let client = Client::new();
    let start = Instant::now();

    let feeds: Vec<TaskFuture<Vec<f64>>> = (0..FEEDS)
        .map(|i| client.submit_local(move || market_feed(i)))
        .collect();
    let exposures: Vec<TaskFuture<f64>> = (0..EXPOSURES)
        .map(|e| {
            let inputs: Vec<_> = feeds_of(e).iter().map(|&f| feeds[f].clone()).collect();
            client.submit_local_with(&inputs, move |curves| exposure(e, &curves))
        })
        .collect();

    // Default models file audit records; one consumer task drains them. The queue has room
    // for every record: with less, more than 256 models could block on a full queue while
    // the consumer still waits in a deque behind newer tasks, and the pool starts at most
    // 256 stand-in threads for blocked workers, so nobody would be left to run it (seen
    // once in CI, 2026-12-07).
    let audit = client.queue::<(usize, u64)>("audit", DEFAULTS);
    let auditor = client.submit_local({
        let audit = audit.clone();
        move || {
            let (mut count, mut sum) = (0usize, 0u64);
            while let Ok((_, value)) = audit.blocking_get() {
                count += 1;
                sum += value;
            }
            (count, sum)
        }
    });
    let pds: Vec<TaskFuture<f64>> = (0..DEFAULTS)
        .map(|d| {
            let audit = audit.clone();
            client.submit_local_with(
                (&exposures[d % EXPOSURES], &feeds[d % FEEDS]),
                move |(&x, curve)| {
                    // Branching and nesting: stressed names run four scenarios as sub-tasks.
                    let stressed: Vec<f64> = if x > STRESSED_ABOVE {
                        let curve = Arc::new(curve.clone());
                        Client::with_current(|c| {
                            let runs: Vec<_> = (0..4)
                                .map(|s| {
                                    let curve = curve.clone();
                                    c.submit_local(move || stress_scenario(s, x, &curve))
                                })
                                .collect();
                            c.gather(runs).expect("stress scenarios do not fail")
                        })
                        .expect("runs inside a task")
                    } else {
                        Vec::new()
                    };
                    let pd = default_probability(d, x, curve, &stressed);
                    audit
                        .blocking_put((d, cents(pd)))
                        .expect("the audit queue stays open until every model filed");
                    pd
                },
            )
        })
        .collect();

    // Losses book themselves into a ledger; the lock makes the read-modify-write exact.
    let ledger = Arc::new(AtomicU64::new(0));
    let losses: Vec<TaskFuture<f64>> = (0..LOSSES)
        .map(|l| {
            let inputs: Vec<_> = pds_of(l).iter().map(|&p| pds[p].clone()).collect();
            let (lock, ledger) = (client.lock("ledger"), ledger.clone());
            client.submit_local_with(&inputs, move |pds| {
                let value = loss(l, &pds);
                let _guard = lock.blocking_lock();
                let booked = ledger.load(Ordering::Relaxed);
                ledger.store(booked + cents(value), Ordering::Relaxed);
                value
            })
        })
        .collect();
    let portfolios: Vec<TaskFuture<f64>> = (0..PORTFOLIOS)
        .map(|p| {
            let inputs: Vec<_> = losses.iter().skip(p).step_by(PORTFOLIOS).cloned().collect();
            client.submit_local_with(&inputs, |ls| portfolio(&ls))
        })
        .collect();
    let total = client.submit_local_with(&portfolios, |ps| ps.into_iter().sum::<f64>());

    let total = *total.wait().expect("the model does not fail");
    client.gather(pds).expect("every default model ran");
    audit.blocking_close();
    let (audited, audit_sum) = auditor.into_result().expect("the auditor does not fail");
    let elapsed = start.elapsed();

    let (expected_total, expected_ledger, expected_audits) = sequential();
    let tasks = FEEDS + EXPOSURES + DEFAULTS + LOSSES + PORTFOLIOS + 2;
    println!("portfolio loss: {total:.6} (sequential {expected_total:.6})");
    println!(
        "ledger: {} cents; audit records: {audited} (sum {audit_sum})",
        ledger.load(Ordering::SeqCst)
    );
    println!(
        "{tasks} tasks plus nested stress runs in {:.1} ms",
        elapsed.as_secs_f64() * 1e3
    );
    assert_eq!(
        total, expected_total,
        "the graph disagrees with the sequential run"
    );
    assert_eq!(
        ledger.load(Ordering::SeqCst),
        expected_ledger,
        "a booking was lost"
    );
    assert_eq!(
        audited, expected_audits,
        "an audit record was lost or duplicated"
    );
    println!("matches the sequential run");
}
