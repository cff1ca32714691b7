//! The seed's nested loop: for each data file, load it once (outer loop), then score every
//! parameter against it (inner loop), and print the best score.
//!
//! ```sh
//! cargo run --release -p peer-core --example nested_loop -- [FILES] [PARAMS] [WORKERS]
//! ```
//!
//! The files are real: this writes them to a fresh temporary directory first, and removes
//! it afterwards. Each `score` depends on the `load` of its file through a future, exactly as
//! Dask's `client.submit_local(score, param, data)` does.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use peer_core::Client;

/// Parsed contents of one file.
struct Data {
    values: Vec<f64>,
}

/// Reads and parses one file (the outer loop's expensive step).
fn load(path: &Path) -> Data {
    let text = fs::read_to_string(path).expect("the example's own file is readable");
    Data {
        values: text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect(),
    }
}

/// A made-up model score: how well `param` fits the data.
fn score(param: f64, data: &Data) -> f64 {
    let fit: f64 = data.values.iter().map(|v| (v - param).abs()).sum();
    -fit / data.values.len() as f64
}

fn write_files(dir: &Path, files: usize, values_per_file: usize) -> Vec<PathBuf> {
    (0..files)
        .map(|i| {
            let path = dir.join(format!("data-{i:03}.txt"));
            let mut x = 0x2545_F491_4F6C_DD1Du64 ^ i as u64;
            let text: Vec<String> = (0..values_per_file)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{:.4}", (x % 10_000) as f64 / 100.0)
                })
                .collect();
            fs::write(&path, text.join(" ")).expect("the temporary directory is writable");
            path
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let files = args.next().and_then(Result::ok).unwrap_or(20);
    let params = args.next().and_then(Result::ok).unwrap_or(500);
    let workers = args.next().and_then(Result::ok);

    let dir = std::env::temp_dir().join(format!("peer-nested-loop-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("can create a temporary directory");
    let filenames = write_files(&dir, files, 10_000);

    let mut builder = Client::builder();
    if let Some(n) = workers {
        builder = builder.workers(n);
    }
    let client = builder.build().expect("worker threads start");
    let params: Vec<f64> = (0..params)
        .map(|p| p as f64 * 100.0 / params as f64)
        .collect();

    let start = Instant::now();
    let mut futures = Vec::new();
    for filename in filenames {
        let data = client.submit_local(move || load(&filename)); // load data in the outer loop
        for &param in &params {
            let future = client.submit_local_with(&data, move |d| score(param, d)); // score all pairs
            futures.push(future);
        }
    }
    let tasks = futures.len() + files;
    let results = client.gather(futures).expect("no task fails");
    let best = results.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let elapsed = start.elapsed();

    println!("best score: {best:.6}");
    println!(
        "{tasks} tasks on {} workers in {:.3} s ({:.0} tasks/s)",
        client.workers(),
        elapsed.as_secs_f64(),
        tasks as f64 / elapsed.as_secs_f64()
    );
    fs::remove_dir_all(&dir).expect("can remove the temporary directory");
}
