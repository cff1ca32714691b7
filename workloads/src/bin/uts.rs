//! Runs a named UTS tree sequentially and as tasks on the local runtime, and prints one JSON
//! line per runtime configuration with the counts, the times, the throughputs and the ratio of
//! the runtime's throughput to the sequential one measured in the same run.
//!
//! ```text
//! cargo run --release -p peer-workloads --bin uts -- TREE [--workers N[,N...]] [--chunk C]
//!     [--split S] [--reps R]
//! ```
//!
//! TREE is `T1`, `T3`, `T1L` or `T3L`. Defaults: `--workers 1,2 --chunk 4096 --split 2
//! --reps 1`. Each rep runs the sequential search, then the runtime with each worker count
//! (a fresh client per run, built before the clock starts). Exits non-zero if any count
//! differs from the known one.

use std::process::ExitCode;
use std::time::Instant;

use peer_core::Client;
use peer_workloads::uts::{self, Counts};

struct Args {
    tree: uts::Known,
    workers: Vec<usize>,
    chunk: usize,
    split: usize,
    reps: usize,
}

fn usage() -> String {
    "usage: uts TREE [--workers N[,N...]] [--chunk C] [--split S] [--reps R]\n\
     TREE: T1, T3, T1L or T3L"
        .to_string()
}

fn number(value: Option<String>, flag: &str) -> Result<usize, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{flag}: expected a positive integer, got {value:?}"
        )),
    }
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let name = args.next().ok_or_else(usage)?;
    let tree = uts::known(&name).ok_or_else(|| format!("unknown tree {name:?}\n{}", usage()))?;
    let mut parsed = Args {
        tree,
        workers: vec![1, 2],
        chunk: 4096,
        split: uts::DEFAULT_SPLIT,
        reps: 1,
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--workers" => {
                let list = args.next().ok_or("--workers needs a value")?;
                parsed.workers = list
                    .split(',')
                    .map(|n| number(Some(n.to_string()), "--workers"))
                    .collect::<Result<_, _>>()?;
            }
            "--chunk" => parsed.chunk = number(args.next(), "--chunk")?,
            "--split" => parsed.split = number(args.next(), "--split")?,
            "--reps" => parsed.reps = number(args.next(), "--reps")?,
            _ => return Err(format!("unknown option {flag:?}\n{}", usage())),
        }
    }
    Ok(parsed)
}

fn check(what: &str, got: &Counts, want: &Counts) -> bool {
    if got != want {
        eprintln!("uts: {what}: got {got:?}, expected {want:?}");
        return false;
    }
    true
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let want = args.tree.counts;
    let name = args.tree.name;
    let mut exact = true;
    for rep in 0..args.reps {
        let start = Instant::now();
        let seq = uts::sequential(&args.tree.params);
        let seq_seconds = start.elapsed().as_secs_f64();
        exact &= check("sequential", &seq, &want);
        let seq_rate = seq.nodes as f64 / seq_seconds;
        for &workers in &args.workers {
            let client = match Client::builder().workers(workers).build() {
                Ok(client) => client,
                Err(e) => {
                    eprintln!("uts: cannot start {workers} workers: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let start = Instant::now();
            let result = uts::on_client_split(&client, &args.tree.params, args.chunk, args.split);
            let seconds = start.elapsed().as_secs_f64();
            let counts = match result {
                Ok(counts) => counts,
                Err(e) => {
                    eprintln!("uts: a task failed: {e}");
                    return ExitCode::FAILURE;
                }
            };
            exact &= check(&format!("{workers} workers"), &counts, &want);
            let rate = counts.nodes as f64 / seconds;
            let ratio = rate / seq_rate;
            println!(
                "{{\"tree\":\"{name}\",\"rep\":{rep},\"workers\":{workers},\"chunk\":{},\
                 \"split\":{},\"nodes\":{},\"depth\":{},\"leaves\":{},\"exact\":{},\
                 \"seq_seconds\":{seq_seconds:.4},\"seq_nodes_per_s\":{seq_rate:.0},\
                 \"seconds\":{seconds:.4},\"nodes_per_s\":{rate:.0},\
                 \"ratio_to_seq\":{ratio:.4},\"ratio_per_worker\":{:.4}}}",
                args.chunk,
                args.split,
                counts.nodes,
                counts.max_depth,
                counts.leaves,
                counts == want && seq == want,
                ratio / workers as f64,
            );
        }
    }
    if exact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
