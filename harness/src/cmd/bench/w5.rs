//! W5: independent tasks that each busy-spin, submitted by this peer and run by every peer
//! of a swarm (`spin`), or of `peer join` children this command starts (`w5`).

use std::time::Instant;

use anyhow::bail;
use peer_workloads::bench_tasks::SpinUsTask;

use super::children::Children;
use super::report::{Obj, Out, Row, secs_text};
use peer_cli::SwarmArgs;

/// `spin` on `peers` processes of one worker: this one and `peers - 1` children.
pub(super) fn run(out: Out, tasks: u64, us: u64, peers: usize) -> anyhow::Result<()> {
    let children = Children::spawn(peers - 1, 1)?;
    let swarm = SwarmArgs::loopback(children.addr.clone(), peers - 1);
    spin(out, tasks, us, &swarm)
}

/// `tasks` spins of `us` µs each, submitted here to the swarm `swarm` joins.
pub(super) fn spin(out: Out, tasks: u64, us: u64, swarm: &SwarmArgs) -> anyhow::Result<()> {
    let client = swarm.join()?;
    let status = client.status()?;
    // Every worker of the swarm, this peer's included, for the ideal; unknown if a peer
    // does not answer.
    let workers_all: Option<u64> = client.swarm_status()?.iter().try_fold(0, |sum, answer| {
        answer
            .report
            .as_ref()
            .ok()
            .map(|r| sum + u64::from(r.workers))
    });
    let start = Instant::now();
    let futures = client.map_named(SpinUsTask, (0..tasks).map(|_| (us,)));
    let done = client.gather(futures)?;
    let secs = start.elapsed().as_secs_f64();
    if done.len() as u64 != tasks || done.iter().any(|&d| d != us) {
        bail!("wrong results");
    }
    let after = client.status()?.stats;
    let ran_here = after.ran;
    // What this peer's event loop exchanged per task: the cost the workers share the cores
    // with.
    let per_task = |n: u64, before: u64| (n - before) as f64 / tasks.max(1) as f64;
    let requests = per_task(
        after.requests_sent + after.requests_received,
        status.stats.requests_sent + status.stats.requests_received,
    );
    let gossip = per_task(
        after.gossip_sent + after.gossip_received,
        status.stats.gossip_sent + status.stats.gossip_received,
    );
    let ideal = workers_all.map_or(f64::NAN, |w| (tasks * us) as f64 / 1e6 / w as f64);
    let json = Obj::default()
        .str("workload", "W5")
        .str("system", "peer")
        .int("tasks", tasks)
        .int("us", us)
        .int("peers", status.peers + 1)
        .int("workers_here", client.workers())
        .raw(
            "workers_all",
            workers_all.map_or("null".into(), |w| w.to_string()),
        )
        .num("secs", secs, 3)
        .num("ideal_s", ideal, 3)
        .num("over_ideal", secs / ideal, 3)
        .num("tasks_per_s", tasks as f64 / secs, 0)
        .int("ran_here", ran_here)
        .num("requests_here_per_task", requests, 3)
        .num("gossip_batches_here_per_task", gossip, 3);
    // docs/workloads.md: within 5% of the ideal for 1 ms and 10 ms tasks; at 100 µs, 20 times
    // Dask's throughput (benches/swarm/w5.sh runs Dask beside it).
    let makespan = Row::new("makespan", secs_text(secs));
    let makespan = match workers_all {
        Some(w) => makespan.anchor(
            format!("ideal on {w} workers {}", secs_text(ideal)),
            secs / ideal,
        ),
        None => makespan,
    };
    let makespan = if us >= 1_000 {
        makespan.target("≤ 1.05 × ideal", Some(secs <= 1.05 * ideal))
    } else {
        makespan
    };
    let throughput = Row::new("throughput", format!("{:.0}/s", tasks as f64 / secs));
    let throughput = if us < 1_000 {
        throughput.target("≥ 20 × Dask's (benches/swarm/w5.sh)", None)
    } else {
        throughput
    };
    out.emit(
        &format!(
            "W5 bag of tasks: {tasks} spins of {us} µs on {} peers; {ran_here} ran here",
            status.peers + 1
        ),
        &[makespan, throughput],
        &json,
    );
    Ok(())
}
