//! W8: waves of payload tasks whose large results are fetched and released, with the
//! resident memory of this peer and of any watched peer process after each wave.

use std::time::{Duration, Instant};

use peer_workloads::bench_tasks::{ChecksumTask, PayloadTask};

use super::measure::rss_kib;
use super::report::{Obj, Out, Row, fixed, list};
use peer_cli::SwarmArgs;

pub(super) fn run(
    out: Out,
    waves: u32,
    tasks: u64,
    bytes: u64,
    watch: &[u32],
    swarm: &SwarmArgs,
) -> anyhow::Result<()> {
    let client = swarm.join()?;
    let mut pids = vec![std::process::id()];
    pids.extend_from_slice(watch);
    let mut first: Vec<Option<u64>> = Vec::new();
    let mut last: Vec<Option<u64>> = Vec::new();
    let start = Instant::now();
    for wave in 0..waves {
        let payloads = client.map_named(PayloadTask, (0..tasks).map(|i| (i, bytes)));
        let sums = client.map_named(ChecksumTask, payloads.iter().map(|p| (p,)));
        drop(payloads);
        client.gather(sums)?;
        // Let the release notices of this wave arrive.
        std::thread::sleep(Duration::from_millis(100));
        let rss: Vec<Option<u64>> = pids.iter().map(|&p| rss_kib(p)).collect();
        // The first tenth of the waves warms the allocator and the caches up.
        if wave == (waves / 10).min(waves - 1) {
            first = rss.clone();
        }
        last = rss;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let status = client.status()?.stats;
    let ratios: Vec<Option<f64>> = first
        .iter()
        .zip(&last)
        .map(|(f, l)| Some((*l)? as f64 / (*f)? as f64))
        .collect();
    let kib =
        |v: &[Option<u64>]| list(v.iter().map(|x| x.map_or("null".into(), |k| k.to_string())));
    let json = Obj::default()
        .str("workload", "W8-swarm")
        .int("waves", waves)
        .int("tasks_per_wave", 2 * tasks)
        .int("bytes", bytes)
        .num("secs", elapsed, 2)
        .raw("pids", list(&pids))
        .raw("rss_kib_after_warmup", kib(&first))
        .raw("rss_kib_last", kib(&last))
        .raw(
            "last_over_warmup",
            list(
                ratios
                    .iter()
                    .map(|r| r.map_or("null".into(), |r| fixed(r, 3))),
            ),
        )
        .int("held_here", status.held)
        .int("owned_here", status.owned);
    let mib = |k: Option<u64>| k.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    // docs/workloads.md: after the last wave at most 1.2 times the memory after the first.
    let rows: Vec<Row> = pids
        .iter()
        .enumerate()
        .map(|(i, pid)| {
            let who = if i == 0 {
                "this peer".into()
            } else {
                format!("peer {pid}")
            };
            let row = Row::new(
                format!("resident memory of {who}"),
                mib(last.get(i).copied().flatten()),
            );
            match ratios.get(i).copied().flatten() {
                Some(r) => row
                    .anchor(
                        format!("after warm-up {}", mib(first.get(i).copied().flatten())),
                        r,
                    )
                    .target("≤ 1.2 × after warm-up", Some(r <= 1.2)),
                None => row,
            }
        })
        .collect();
    out.emit(
        &format!(
            "W8 soak: {waves} waves of {tasks} payloads of {bytes} bytes and their checksums \
             in {elapsed:.1} s; {} held and {} owned here at the end",
            status.held, status.owned
        ),
        &rows,
        &json,
    );
    Ok(())
}
