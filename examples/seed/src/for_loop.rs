//! The seed's parallel for loop: one function applied to every file.
//!
//! ```python
//! futures = [client.submit(process, filename) for filename in filenames]
//! results = client.gather(futures)
//! ```

use std::time::Instant;

use peer_cli::SwarmArgs;
use serde::{Deserialize, Serialize};

use crate::data::{DataArgs, base_name, pause, read_values};
use crate::progress;

/// What `process` finds in one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Summary {
    path: String,
    rows: u64,
    mean: f64,
    min: f64,
    max: f64,
    /// The largest rise from a low to a later high.
    best_gain: f64,
}

/// Reads one file and summarises its series.
#[peer_core::task]
fn process(path: &str, pause_ms: u64) -> Summary {
    pause(pause_ms);
    let values = read_values(path);
    let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
    let (mut low, mut best_gain) = (f64::INFINITY, 0.0f64);
    for &x in &values {
        min = min.min(x);
        max = max.max(x);
        sum += x;
        low = low.min(x);
        best_gain = best_gain.max(x - low);
    }
    Summary {
        path: path.to_string(),
        rows: values.len() as u64,
        mean: sum / values.len().max(1) as f64,
        min,
        max,
        best_gain,
    }
}

/// Options of `seed for-loop`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    swarm: SwarmArgs,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let files = args.data.files()?;
    let ms = args.data.task_ms;
    let client = args.swarm.client()?;
    let start = Instant::now();

    let futures = client.map_named(ProcessTask, files.iter().map(|f| (f.clone(), ms)));
    progress::report("files", &futures);
    let summaries = client.gather(futures)?;
    progress::took(start);

    println!("for loop: {} files", summaries.len());
    for s in &summaries {
        println!(
            "{}: {} rows, mean {:.6}, min {:.6}, max {:.6}, best gain {:.6}",
            base_name(&s.path),
            s.rows,
            s.mean,
            s.min,
            s.max,
            s.best_gain
        );
    }
    // Summed in file order, so the total is the same however the tasks were spread.
    let rows: u64 = summaries.iter().map(|s| s.rows).sum();
    let gains: f64 = summaries.iter().map(|s| s.best_gain).sum();
    let best = summaries.iter().fold(None::<&Summary>, |b, s| match b {
        Some(b) if b.best_gain >= s.best_gain => Some(b),
        _ => Some(s),
    });
    println!("total: {rows} rows, best gains summed {gains:.6}");
    if let Some(best) = best {
        println!(
            "largest gain: {} ({:.6})",
            base_name(&best.path),
            best.best_gain
        );
    }
    Ok(())
}
