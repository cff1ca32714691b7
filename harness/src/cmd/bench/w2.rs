//! W2: the seed's nested loop (load each file, score every parameter, keep the best) on
//! one pool and on several processes, against the same work on one thread.

use std::time::{Duration, Instant};

use anyhow::bail;
use peer_core::TaskFuture;
use peer_net::Peer;

use super::children::{Children, loopback};
use super::measure::{median, middle};
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
    use peer_workloads::w2;
    let mut best = f64::NAN;
    let work = median(runs, || {
        let (b, secs) = w2::sequential(files, params, values);
        best = b;
        Ok(secs)
    })?;
    let all = peers * workers;
    let pool = peer_core::Client::builder().workers(all).build()?;
    let local = median(runs, || nested(&pool, files, params, values, best))?;
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
    let swarm = median(runs, || nested(&client, files, params, values, best))?;
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

/// The loop on a client of either kind: the seconds it took; its best must be `best`.
fn nested(
    client: &peer_core::Client,
    files: usize,
    params: usize,
    values: u64,
    best: f64,
) -> anyhow::Result<f64> {
    use peer_workloads::w2::{self, LoadTask, ScoreTask};
    let start = Instant::now();
    let mut futures: Vec<TaskFuture<f64>> = Vec::with_capacity(files * params);
    for file in 0..files {
        let data = client.submit_named(LoadTask, (file as u64, values));
        for p in 0..params {
            futures.push(client.submit_named(ScoreTask, (w2::param(p, params), &data)));
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
}

/// W9: the seed's loop of tiny tasks (scores of about a microsecond) on a local client of
/// `workers` workers, then on a swarm client of as many workers with `idle` joined peers
/// (`peer join` children of `workers` workers each) that submit nothing, in the same run:
/// a swarm client must never make a program slower than staying local would.
pub(super) fn w9(
    out: Out,
    files: usize,
    params: usize,
    values: u64,
    idle: usize,
    workers: usize,
    runs: usize,
) -> anyhow::Result<()> {
    let (best, work) = peer_workloads::w2::sequential(files, params, values);
    let pool = peer_core::Client::builder().workers(workers).build()?;
    let children = Children::spawn(idle.max(1), workers)?;
    let client = children.join(workers)?;
    // Alternated, so that a drift of the machine shows in both.
    let (mut local, mut swarm) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        local.push(nested(&pool, files, params, values, best)?);
        swarm.push(nested(&client, files, params, values, best)?);
    }
    let status = client.status()?;
    let moved = super::ran_elsewhere(&client)?;
    drop(client);
    // As before issue 21: every call through the swarm (`keep_below` zero), with the same
    // idle peers.
    let every = children.join_with(loopback()?.workers(workers).keep_below(Duration::ZERO))?;
    let mut through_swarm = Vec::new();
    for _ in 0..runs {
        through_swarm.push(nested(&every, files, params, values, best)?);
    }
    drop(every);
    drop(children);
    let runs_text = |xs: &[f64]| {
        let each: Vec<String> = xs.iter().map(|x| format!("{x:.4}")).collect();
        format!("[{}]", each.join(","))
    };
    let (local_runs, swarm_runs) = (runs_text(&local), runs_text(&swarm));
    let every_runs = runs_text(&through_swarm);
    // A program runs its loop once: its first run, learning included, counts alone too.
    let first = swarm[0] / local[0];
    let (local, swarm, every) = (middle(local), middle(swarm), middle(through_swarm));
    let tasks = files * (params + 1);
    let json = Obj::default()
        .str("workload", "W9")
        .int("files", files)
        .int("params", params)
        .int("values", values)
        .int("tasks", tasks)
        .num("work_s", work, 4)
        .int("workers", workers)
        .int("idle_peers", idle)
        .num("local_s", local, 4)
        .num("swarm_s", swarm, 4)
        .num("swarm_over_local", swarm / local, 3)
        .num("first_run_swarm_over_local", first, 3)
        .int("ran_at_submitter", status.stats.ran)
        .int("kept_at_submitter", status.kept_here)
        .int("ran_elsewhere", moved)
        .raw("local_runs_s", local_runs)
        .raw("swarm_runs_s", swarm_runs)
        .num("every_call_to_swarm_s", every, 4)
        .raw("every_call_to_swarm_runs_s", every_runs)
        .int("runs", runs);
    out.emit(
        &format!(
            "W9: {files} files × {params} tiny scores ({tasks} tasks, one thread {}); \
             medians of {runs} alternated runs; {workers} workers, {idle} idle joined peers",
            secs_text(work)
        ),
        &[
            Row::new(
                format!("local client, {workers} workers (anchor)"),
                secs_text(local),
            ),
            Row::new("swarm client with idle peers", secs_text(swarm))
                .anchor(format!("local {}", secs_text(local)), swarm / local)
                .target("≤ 1.2 × local", Some(swarm <= 1.2 * local)),
            Row::new("first run: swarm ÷ local", format!("{first:.3}"))
                .target("≤ 1.2", Some(first <= 1.2)),
            Row::new("every call through the swarm (before)", secs_text(every))
                .anchor(format!("local {}", secs_text(local)), every / local),
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
