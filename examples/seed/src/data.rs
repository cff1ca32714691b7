//! The programs' input files: CSV time series written deterministically, so every run (and
//! every machine that writes them) sees the same bytes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// splitmix64: deterministic pseudo-random numbers, the same on every peer.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A number in `[0, 1)` from `x`.
pub(crate) fn unit(x: u64) -> f64 {
    (mix(x) >> 11) as f64 / (1u64 << 53) as f64
}

/// Stands for a slower function (a model fit, a download): sleeps `ms` milliseconds.
pub(crate) fn pause(ms: u64) {
    if ms > 0 {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// The text of file `index`: a header and `rows` rows `t,value` of a noisy random walk whose
/// noise and drift differ from file to file.
fn series_csv(index: u64, rows: u64) -> String {
    let noise = 0.2 + unit(index * 1_000_003) * 2.0;
    let step = 0.05 + unit(index * 1_000_033) * 0.5;
    let mut level = 100.0 * unit(index * 1_000_037);
    let mut text = String::from("t,value\n");
    for t in 0..rows {
        let seed = (index << 32) ^ t;
        level += step * (unit(seed * 2) - 0.5);
        let value = level + noise * (unit(seed * 2 + 1) - 0.5);
        let _ = writeln!(text, "{t},{value:.6}");
    }
    text
}

/// Writes `files` files of `rows` rows into `dir` (created if missing): `part-000.csv`, ...
pub(crate) fn make(dir: &Path, files: u64, rows: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for index in 0..files {
        let path = dir.join(format!("part-{index:03}.csv"));
        std::fs::write(&path, series_csv(index, rows))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The `.csv` files of `dir`, sorted by name, as absolute paths (so a peer on the same
/// machine, started elsewhere, reads the same files). If `dir` holds none, writes `files`
/// of `rows` rows there first, and says so on stderr.
pub(crate) fn files_in(dir: &Path, files: u64, rows: u64) -> anyhow::Result<Vec<String>> {
    let mut found = csv_files(dir)?;
    if found.is_empty() {
        make(dir, files, rows)?;
        eprintln!("wrote {files} files of {rows} rows into {}", dir.display());
        found = csv_files(dir)?;
    }
    found
        .into_iter()
        .map(|path| {
            let path = std::path::absolute(&path)?;
            path.into_os_string()
                .into_string()
                .map_err(|p| anyhow::anyhow!("not a UTF-8 path: {}", p.to_string_lossy()))
        })
        .collect()
}

fn csv_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "csv") && path.is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The values of a file written by [`make`]: the second column of every row after the
/// header.
///
/// # Panics
///
/// If the file cannot be read or a row does not parse: the message names the file and
/// line, and the task that called it fails with it.
pub(crate) fn read_values(path: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            line.split(',')
                .nth(1)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{path}:{}: not `t,value`: {line:?}", n + 1))
        })
        .collect()
}

/// The file name of `path`, for output that does not depend on where the files are.
pub(crate) fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Where a program's files are, and how slow its tasks are.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DataArgs {
    /// The directory of the input files (its `*.csv`); if it holds none, --files files of
    /// --rows rows are written there first.
    #[arg(long, value_name = "DIR", default_value = "seed-data")]
    pub(crate) data: PathBuf,
    /// Files to write when --data holds none.
    #[arg(long, default_value_t = 8)]
    pub(crate) files: u64,
    /// Rows of each file written.
    #[arg(long, default_value_t = 2_000)]
    pub(crate) rows: u64,
    /// Each task also sleeps this many milliseconds, standing for a slower function.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub(crate) task_ms: u64,
}

impl DataArgs {
    /// The input files, written first if missing.
    pub(crate) fn files(&self) -> anyhow::Result<Vec<String>> {
        files_in(&self.data, self.files, self.rows)
    }
}
