//! W2, the seed's nested loop as a benchmark: `load(file)` returns a data set of about
//! 100 KB, `score(param, data)` scans it (about 10 µs of CPU), and the best score wins.

/// Loads data set `file`: `values` pseudo-random numbers (8 bytes each), the same on
/// every peer.
#[peer_core::task(name = "peer_workloads::w2::load")]
pub fn load(file: u64, values: u64) -> Vec<f64> {
    data(file.wrapping_mul(0x2545_F491_4F6C_DD1D), values)
}

/// `values` pseudo-random numbers in `0..100` from `seed` (xorshift): a data set that every
/// peer makes alike without reading files.
pub fn data(seed: u64, values: u64) -> Vec<f64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    (0..values)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f64 / 100.0
        })
        .collect()
}

/// Scores `param` against the whole data set: the mean absolute and squared distances,
/// negated (higher is better). Two passes over 100 KB: about 10 µs here, as W2 asks.
#[peer_core::task(name = "peer_workloads::w2::score")]
pub fn score(param: f64, data: &Vec<f64>) -> f64 {
    let n = data.len().max(1) as f64;
    let absolute = data.iter().map(|v| (v - param).abs()).sum::<f64>() / n;
    let squared = data.iter().map(|v| (v - param) * (v - param)).sum::<f64>() / n;
    -(absolute + squared.sqrt())
}

/// The parameter `p` of `params`.
pub fn param(p: usize, params: usize) -> f64 {
    p as f64 * 100.0 / params as f64
}

/// The whole loop on this thread, one task after another: the best score and the seconds
/// it took — the work that a perfect scheduler would divide among its workers.
pub fn sequential(files: usize, params: usize, values: u64) -> (f64, f64) {
    let start = std::time::Instant::now();
    let mut best = f64::NEG_INFINITY;
    for file in 0..files {
        let data = load(file as u64, values);
        for p in 0..params {
            best = best.max(score(param(p, params), &data));
        }
    }
    (best, start.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_on_a_pool_finds_the_sequential_best() {
        let (best, _) = sequential(3, 40, 1_000);
        let client = peer_core::Client::builder().workers(2).build().unwrap();
        let mut futures = Vec::new();
        for file in 0..3u64 {
            let data = client.submit_named(LoadTask, (file, 1_000u64));
            for p in 0..40 {
                futures.push(client.submit_named(ScoreTask, (param(p, 40), &data)));
            }
        }
        let scores = client.gather(futures).unwrap();
        assert_eq!(scores.into_iter().fold(f64::NEG_INFINITY, f64::max), best);
    }
}
