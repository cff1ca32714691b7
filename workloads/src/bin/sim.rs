//! Prints the efficiency table of `docs/stealing.md`: the stealing policy simulated on
//! T1-shaped and T3-shaped UTS trees for 2, 16, 128 and 1,024 peers at 100 µs and 1 ms
//! latency. `cargo run --release -p peer-workloads --bin sim [-- --quick] [--large] [--peers N]`
//! (`--large`: the full T1L and T3L trees instead of T1 and T3).

use std::time::{Duration, Instant};

use peer_steal::policy::{Config, Strategy};
use peer_workloads::sim::{SimConfig, simulate};
use peer_workloads::uts;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let large = args.iter().any(|a| a == "--large");
    let peers: &[usize] = if quick { &[2, 16] } else { &[2, 16, 128, 1024] };
    let trees = if large {
        [("T1L", uts::T1L), ("T3L", uts::T3L)]
    } else {
        [("T1-shaped (T1)", uts::T1), ("T3-shaped (T3)", uts::T3)]
    };
    let only: Option<usize> = args
        .iter()
        .position(|a| a == "--peers")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok());
    let peers: Vec<usize> = match only {
        Some(n) => vec![n],
        None => peers.to_vec(),
    };
    println!(
        "| tree | peers | latency | efficiency | makespan | ideal | steals | failed | msgs/peer/s (run) | msgs/peer/s (idle, 1 s after the end) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, tree) in trees {
        for &latency_us in &[100u64, 1000] {
            for &n in &peers {
                let cfg = SimConfig {
                    peers: n,
                    tree,
                    node_cost: Duration::from_micros(25),
                    latency: Duration::from_micros(latency_us),
                    msg_cost: Duration::from_micros(5),
                    gossip_fanout: 8,
                    clusters: 1,
                    policy: Config {
                        strategy: Strategy::TwoChoices,
                        steal_timeout: Duration::from_micros(latency_us * 10),
                        backoff_min: Duration::from_micros(latency_us),
                        backoff_max: Duration::from_micros(latency_us * 16),
                        load_interval: Duration::from_micros(latency_us * 10),
                        ..Config::default()
                    },
                    settle: Duration::from_secs(1),
                    idle_window: Duration::from_secs(1),
                    seed: 7,
                };
                let started = Instant::now();
                let r = simulate(&cfg);
                eprintln!(
                    "{name} n={n} lat={latency_us}us: simulated in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                println!(
                    "| {name} | {n} | {latency_us} µs | {:.1}% | {:.1} ms | {:.1} ms | {} | {} | {:.0} | {:.2} |",
                    r.efficiency * 100.0,
                    r.makespan.as_secs_f64() * 1e3,
                    r.ideal.as_secs_f64() * 1e3,
                    r.steals,
                    r.failed_steals,
                    r.messages_per_peer_per_s,
                    r.idle_messages_per_peer_per_s,
                );
            }
        }
    }
}
