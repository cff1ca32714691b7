//! W2: the seed's nested loop (load each file, score every parameter, keep the best) on
//! one pool and on several processes, against the same work on one thread.

use std::time::Instant;

use anyhow::bail;
use peer_core::TaskFuture;
use peer_net::Peer;

use super::children::{Children, loopback};
use super::measure::median;
use super::report::{Obj, Out, Row, secs_text};

pub(super) fn run(
    out: Out,
    files: usize,
    params: usize,
    values: u64,
    peers: usize,
    workers: usize,
    runs: usize,
) -> anyhow::Result<()> {
    use peer_workloads::w2::{self, LoadTask, ScoreTask};
    let mut best = f64::NAN;
    let work = median(runs, || {
        let (b, secs) = w2::sequential(files, params, values);
        best = b;
        Ok(secs)
    })?;
    // The loop on a client of either kind: the seconds it took; its best must match.
    type Load<'a> = &'a dyn Fn(u64) -> TaskFuture<Vec<f64>>;
    type Score<'a> = &'a dyn Fn(f64, &TaskFuture<Vec<f64>>) -> TaskFuture<f64>;
    let nested = |client: &peer_core::Client, load: Load, score: Score| -> anyhow::Result<f64> {
        let start = Instant::now();
        let mut futures = Vec::with_capacity(files * params);
        for file in 0..files {
            let data = load(file as u64);
            for p in 0..params {
                futures.push(score(w2::param(p, params), &data));
            }
        }
        let found = client
            .gather(futures)?
            .into_iter()
            .fold(f64::NEG_INFINITY, f64::max);
        if found != best {
            bail!("the loop found {found}, one thread found {best}");
        }
        Ok(start.elapsed().as_secs_f64())
    };
    let all = peers * workers;
    let pool = peer_core::Client::builder().workers(all).build()?;
    let local = median(runs, || {
        nested(
            &pool,
            &|file| pool.submit_named(LoadTask, (file, values)),
            &|param, data| pool.submit_named(ScoreTask, (param, data)),
        )
    })?;
    drop(pool);
    let rayon = median(runs, || rayon_loop(files, params, values, all, best))?;
    let children = if peers > 1 {
        Some(Children::spawn(peers - 1, workers)?)
    } else {
        None
    };
    let client = match &children {
        Some(children) => children.join(workers)?,
        None => Peer::join(loopback()?.workers(workers))?,
    };
    let swarm = median(runs, || {
        nested(
            &client,
            &|file| client.submit_named(LoadTask, (file, values)),
            &|param, data| client.submit_named(ScoreTask, (param, data)),
        )
    })?;
    let ran_here = client.status()?.stats.ran;
    drop(client);
    drop(children);
    let ideal = work / all as f64;
    let tasks = files * (params + 1);
    let json = Obj::default()
        .str("workload", "W2")
        .int("files", files)
        .int("params", params)
        .int("values", values)
        .int("tasks", tasks)
        .num("work_s", work, 4)
        .obj(
            "local",
            Obj::default()
                .int("workers", all)
                .num("makespan_s", local, 4)
                .num("over_ideal", local / ideal, 3)
                .num("over_rayon", local / rayon, 3),
        )
        .obj(
            "rayon",
            Obj::default()
                .int("threads", all)
                .num("makespan_s", rayon, 4)
                .num("over_ideal", rayon / ideal, 3),
        )
        .obj(
            "swarm",
            Obj::default()
                .int("peers", peers)
                .int("workers_each", workers)
                .num("makespan_s", swarm, 4)
                .num("over_ideal", swarm / ideal, 3)
                .int("ran_at_submitter", ran_here),
        )
        .int("runs", runs)
        .raw("best", serde_json::Value::from(best).to_string());
    // docs/workloads.md: a makespan within 5% of the ideal, locally and on 2 peers.
    let row = |figure: String, makespan: f64| {
        Row::new(figure, secs_text(makespan))
            .anchor(format!("ideal {}", secs_text(ideal)), makespan / ideal)
            .target("≤ 1.05 × ideal", Some(makespan <= 1.05 * ideal))
    };
    out.emit(
        &format!(
            "W2 nested loop: {files} files × {params} params ({tasks} tasks), one thread \
             {}; medians of {runs} runs; ideal = one thread's time / {all} workers",
            secs_text(work)
        ),
        &[
            Row::new(format!("rayon, {all} threads (anchor)"), secs_text(rayon))
                .anchor(format!("ideal {}", secs_text(ideal)), rayon / ideal),
            row(format!("one pool of {all} workers"), local),
            row(
                format!(
                    "{peers} processes × {workers} worker{}",
                    if workers == 1 { "" } else { "s" }
                ),
                swarm,
            ),
        ],
        &json,
    );
    Ok(())
}

/// The same loop on a rayon pool of `threads` (the local anchor): each file loaded once,
/// its scores in parallel. The seconds it took; its best must be `best`.
fn rayon_loop(
    files: usize,
    params: usize,
    values: u64,
    threads: usize,
    best: f64,
) -> anyhow::Result<f64> {
    use peer_workloads::w2;
    use rayon::prelude::*;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let start = Instant::now();
    let found = pool.install(|| {
        (0..files as u64)
            .into_par_iter()
            .flat_map(|file| {
                let data = std::sync::Arc::new(w2::load(file, values));
                (0..params)
                    .into_par_iter()
                    .map(move |p| w2::score(w2::param(p, params), &data))
            })
            .reduce(|| f64::NEG_INFINITY, f64::max)
    });
    let secs = start.elapsed().as_secs_f64();
    if found != best {
        bail!("rayon found {found}, one thread found {best}");
    }
    Ok(secs)
}
