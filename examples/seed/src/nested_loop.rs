//! The seed's nested loop over files and parameters, with futures as arguments:
//!
//! ```python
//! for filename in filenames:
//!     data = client.submit(load, filename)          # load each file once
//!     for param in params:
//!         futures.append(client.submit(score, param, data))
//! best = max(client.gather(futures))
//! ```
//!
//! Each `score` task takes the future of its file's `load` task: the file is read once,
//! wherever `load` runs, and every score reads that one value (fetched by the peer that
//! scores, on a swarm).

use std::time::Instant;

use peer_cli::SwarmArgs;

use crate::data::{DataArgs, base_name, pause, read_values};
use crate::progress;

/// Reads the series of one file.
#[peer_core::task]
fn load(path: &str, pause_ms: u64) -> Vec<f64> {
    pause(pause_ms);
    read_values(path)
}

/// How well exponential smoothing with weight `alpha` forecasts `series` one step ahead:
/// minus the root mean square of its errors (higher is better).
#[peer_core::task]
fn score(alpha: f64, series: &[f64], pause_ms: u64) -> f64 {
    pause(pause_ms);
    let Some((&first, rest)) = series.split_first() else {
        return f64::NEG_INFINITY;
    };
    let (mut level, mut squares) = (first, 0.0);
    for &x in rest {
        let error = x - level;
        squares += error * error;
        level += alpha * error;
    }
    -(squares / rest.len().max(1) as f64).sqrt()
}

/// Options of `seed nested-loop`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// Parameters to score against each file: weights 1/N, 2/N, ..., 1.
    #[arg(long, default_value_t = 40)]
    params: u32,
    #[command(flatten)]
    swarm: SwarmArgs,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let files = args.data.files()?;
    let ms = args.data.task_ms;
    let n = args.params.max(1);
    let params: Vec<f64> = (1..=n).map(|k| f64::from(k) / f64::from(n)).collect();
    let client = args.swarm.client()?;
    let start = Instant::now();

    let mut futures = Vec::with_capacity(files.len() * params.len());
    for file in &files {
        let data = client.submit_named(LoadTask, (file.clone(), ms)); // load in the outer loop
        for &alpha in &params {
            futures.push(client.submit_named(ScoreTask, (alpha, &data, ms))); // score each pair
        }
    }
    progress::report("scores", &futures);
    let results = client.gather(futures)?;
    progress::took(start);

    println!(
        "nested loop: {} files x {} params = {} scores",
        files.len(),
        params.len(),
        results.len()
    );
    let mut best: Option<(&str, f64, f64)> = None;
    for (file, scores) in files.iter().zip(results.chunks(params.len())) {
        let (alpha, score) = params.iter().zip(scores).fold(
            (f64::NAN, f64::NEG_INFINITY),
            |(a, s), (&alpha, &score)| {
                if score > s { (alpha, score) } else { (a, s) }
            },
        );
        println!(
            "{}: best alpha {alpha:.4}, score {score:.6}",
            base_name(file)
        );
        if best.is_none_or(|(_, _, s)| score > s) {
            best = Some((base_name(file), alpha, score));
        }
    }
    match best {
        Some((file, alpha, score)) => {
            println!("best: {file} with alpha {alpha:.4}, score {score:.6}");
        }
        None => println!("best: none (no files)"),
    }
    Ok(())
}
