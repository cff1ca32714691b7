//! W4: UTS on two processes of one worker against one process of two, then the idle
//! joined peer's CPU.

use std::time::Duration;

use anyhow::Context;
use peer_net::Peer;

use super::children::{Children, loopback};
use super::measure::{cpu_secs, known_tree, ran_elsewhere, timed_uts};
use super::report::{Obj, Out, Row, secs_text};

pub(super) fn run(out: Out, tree: &str, chunk: u64, split: u32) -> anyhow::Result<()> {
    let known = known_tree(tree)?;
    let alone = Peer::join(loopback()?.workers(2))?;
    let one = timed_uts(&alone, &known, chunk, split)?;
    drop(alone);
    let children = Children::spawn(1, 1)?;
    let client = children.join(1)?;
    let two = timed_uts(&client, &known, chunk, split)?;
    let elsewhere = ran_elsewhere(&client)?;
    drop(client);
    // The child, idle now that the submitter left.
    let pid = children.pids()[0];
    let before = cpu_secs(pid).context("reading the child's CPU time")?;
    std::thread::sleep(Duration::from_secs(5));
    let after = cpu_secs(pid).context("reading the child's CPU time")?;
    let idle = 100.0 * (after - before) / 5.0;
    // docs/workloads.md: ≥ 95% on T1L and ≥ 85% on T3L (the binomial trees).
    let want = if known.name.starts_with("T3") {
        0.85
    } else {
        0.95
    };
    let json = Obj::default()
        .str("workload", "W4")
        .str("tree", known.name)
        .num("one_process_2_workers_s", one, 3)
        .num("two_processes_1_worker_s", two, 3)
        .num("two_over_one_throughput", one / two, 3)
        .int("tasks_run_by_joined_peer", elsewhere)
        .num("idle_peer_cpu_percent", idle, 2)
        .bool("exact", true);
    out.emit(
        &format!("W4 UTS {} across processes, counts exact", known.name),
        &[
            Row::new("2 processes × 1 worker", secs_text(two))
                .anchor(
                    format!("1 process × 2 workers {}", secs_text(one)),
                    one / two,
                )
                .target(
                    format!("≥ {want} of the throughput"),
                    Some(one / two >= want),
                ),
            Row::new("idle joined peer's CPU, over 5 s", format!("{idle:.2} %"))
                .target("< 2 %", Some(idle < 2.0)),
        ],
        &json,
    );
    out.note(&format!("{elsewhere} tasks ran at the joined peer"));
    Ok(())
}
