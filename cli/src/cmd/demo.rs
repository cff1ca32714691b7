//! `peer demo`: the seed's nested loop on an embedded runtime.

use std::time::Instant;

use anyhow::Context;
use peer_core::Client;

/// Options of `peer demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Number of data sets (the outer loop).
    #[arg(long, default_value_t = 20, value_parser = positive)]
    files: usize,
    /// Number of parameters scored against each data set (the inner loop).
    #[arg(long, default_value_t = 500, value_parser = positive)]
    params: usize,
    /// Values in each data set (~8 bytes each).
    #[arg(long, default_value_t = 12_500, value_parser = positive)]
    values: usize,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = positive)]
    workers: Option<usize>,
}

fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A data set as `load` returns it.
struct Data(Vec<f64>);

fn load(file: usize, values: usize) -> Data {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ file as u64;
    Data(
        (0..values)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 10_000) as f64 / 100.0
            })
            .collect(),
    )
}

/// Scores a parameter against a sample of the data (a few microseconds of work).
fn score(param: f64, data: &Data) -> f64 {
    let sample = &data.0[..data.0.len().min(2_000)];
    -sample.iter().map(|v| (v - param).abs()).sum::<f64>() / sample.len().max(1) as f64
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let mut builder = Client::builder();
    if let Some(n) = args.workers {
        builder = builder.workers(n);
    }
    let client = builder.build().context("starting the worker pool")?;
    let params: Vec<f64> = (0..args.params)
        .map(|p| p as f64 * 100.0 / args.params as f64)
        .collect();

    let start = Instant::now();
    let mut futures = Vec::with_capacity(args.files * args.params);
    for file in 0..args.files {
        let values = args.values;
        let data = client.submit(move || load(file, values));
        for &param in &params {
            futures.push(client.submit_with(&data, move |d| score(param, d)));
        }
    }
    let tasks = futures.len() + args.files;
    let results = client.gather(futures)?;
    let best = results.into_iter().fold(f64::NEG_INFINITY, f64::max);
    let secs = start.elapsed().as_secs_f64();
    println!("best score: {best:.6}");
    println!(
        "{tasks} tasks on {} workers in {secs:.3} s ({:.0} tasks/s)",
        client.workers(),
        tasks as f64 / secs
    );
    Ok(())
}
