//! Prints the tables of `docs/stealing.md`: the stealing policy simulated on T1-shaped and
//! T3-shaped UTS trees for 2, 16, 128 and 1,024 peers at 100 µs and 1 ms latency.
//!
//! ```text
//! cargo run --release -p peer-workloads --bin sim -- [--large] [--tree T1|T3]
//!     [--peers 2,16,...] [--latency 100,1000] [--strategy two-choices|random|cluster-aware|all]
//!     [--attempts N] [--lifelines N] [--no-wake] [--load-interval LATENCIES] [--fanout N]
//!     [--clusters N] [--backoff PERCENT_OF_LATENCY]
//!     [--steal-below N] [--seed N]
//! ```
//!
//! `--large` runs the full T1L and T3L trees instead of T1 and T3 (25 times smaller). The
//! other flags narrow the table or change one knob of the policy from the defaults below, for
//! experiments; the documented tables use the defaults.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use peer_steal::policy::{Config, Strategy};
use peer_workloads::sim::{SimConfig, simulate};
use peer_workloads::uts;

/// Value of `--name`, if given.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).map(String::as_str)
}

fn list(args: &[String], name: &str, default: &[u64]) -> Result<Vec<u64>, String> {
    match flag(args, name) {
        None => Ok(default.to_vec()),
        Some(v) => v
            .split(',')
            .map(|x| x.parse().map_err(|_| format!("{name}: not a number: {x}")))
            .collect(),
    }
}

fn number(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    Ok(list(args, name, &[default])?
        .first()
        .copied()
        .unwrap_or(default))
}

fn strategies(args: &[String]) -> Result<Vec<(&'static str, Strategy)>, String> {
    let all = [
        ("two choices", Strategy::TwoChoices),
        ("random", Strategy::Random),
        ("cluster-aware", Strategy::ClusterAware),
    ];
    match flag(args, "--strategy").unwrap_or("two-choices") {
        "all" => Ok(all.to_vec()),
        "two-choices" => Ok(vec![all[0]]),
        "random" => Ok(vec![all[1]]),
        "cluster-aware" => Ok(vec![all[2]]),
        other => Err(format!("--strategy: unknown {other}")),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sim: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let large = args.iter().any(|a| a == "--large");
    let mut trees = if large {
        vec![("T1L", uts::T1L), ("T3L", uts::T3L)]
    } else {
        vec![("T1", uts::T1), ("T3", uts::T3)]
    };
    if let Some(only) = flag(&args, "--tree") {
        trees.retain(|(name, _)| name.starts_with(only));
    }
    let peers = list(&args, "--peers", &[2, 16, 128, 1024])?;
    let latencies = list(&args, "--latency", &[100, 1000])?;
    let strategies = strategies(&args)?;
    let defaults = Config::default();
    let attempts = number(&args, "--attempts", u64::from(defaults.steal_attempts))?;
    let lifelines = number(&args, "--lifelines", defaults.max_lifelines as u64)?;
    let load_interval = number(&args, "--load-interval", 100)?;
    let fanout = number(&args, "--fanout", 8)?;
    let clusters = number(&args, "--clusters", 8)?;
    let backoff = number(&args, "--backoff", 100)?;
    let seed = number(&args, "--seed", 7)?;
    let below = number(&args, "--steal-below", 8)?;
    let wake_on_load = !args.iter().any(|a| a == "--no-wake");
    println!(
        "| tree | strategy | peers | latency | efficiency | makespan | ideal | steals | failed | pushes | msgs/peer/s (run) | of which load gossip | msgs/peer/s (idle) | silent after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &(name, tree) in &trees {
        for &latency_us in &latencies {
            for &(strategy_name, strategy) in &strategies {
                for &n in &peers {
                    let cfg = SimConfig {
                        peers: n as usize,
                        tree,
                        node_cost: Duration::from_micros(25),
                        latency: Duration::from_micros(latency_us),
                        msg_cost: Duration::from_micros(5),
                        gossip_fanout: fanout as usize,
                        clusters: clusters as usize,
                        policy: Config {
                            strategy,
                            steal_timeout: Duration::from_micros(latency_us * 10),
                            backoff_min: Duration::from_micros(latency_us * backoff / 100),
                            backoff_max: Duration::from_micros(latency_us * 16),
                            load_interval: Duration::from_micros(latency_us * load_interval),
                            steal_attempts: attempts as u32,
                            max_lifelines: lifelines as usize,
                            wake_on_load,
                            steal_below: below as usize,
                            seed,
                        },
                        settle: Duration::from_secs(1),
                        idle_window: Duration::from_secs(1),
                        seed,
                    };
                    let started = Instant::now();
                    let r = simulate(&cfg);
                    eprintln!(
                        "{name} {strategy_name} n={n} lat={latency_us}us: simulated in {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    let secs = r.makespan.as_secs_f64() * n as f64;
                    println!(
                        "| {name} | {strategy_name} | {n} | {latency_us} µs | {:.1}% | {:.1} ms | {:.1} ms | {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.1} ms |",
                        r.efficiency * 100.0,
                        r.makespan.as_secs_f64() * 1e3,
                        r.ideal.as_secs_f64() * 1e3,
                        r.steals,
                        r.failed_steals,
                        r.pushes,
                        r.messages_per_peer_per_s,
                        r.load_messages as f64 / secs,
                        r.idle_messages_per_peer_per_s,
                        r.quiet_after.as_secs_f64() * 1e3,
                    );
                }
            }
        }
    }
    Ok(())
}
