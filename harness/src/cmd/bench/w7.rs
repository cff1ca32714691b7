//! W7: the CPU and the TCP segments of idle `peer join` processes, in a network namespace
//! of their own when it can be made.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::children::{Children, Netns};
use super::measure::{cpu_secs, tcp_out_segs};
use super::report::{Obj, Out, Row, list};
use peer_cli::harness::Exit;

/// How long the peers idle before the measurement starts.
const SETTLE: Duration = Duration::from_secs(5);
/// The targets: CPU of all peers in % of one core, and messages per peer per second.
const CPU_PERCENT: f64 = 1.0;
const MESSAGES: f64 = 20.0;

pub(super) fn run(out: Out, n: usize, secs: u64) -> anyhow::Result<()> {
    let stop = peer_cli::harness::interrupt_flag()?;
    let netns = Netns::create();
    // Declared after `netns`, so dropped (killed) before the namespace is deleted.
    let mut children = Children::spawn_in(n, 1, netns.as_ref())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while children.fully_connected() < n && Instant::now() < deadline {
        pause(Duration::from_millis(50), &stop)?;
    }
    pause(SETTLE, &stop)?;
    let pids = children.pids();
    let cpu = || -> anyhow::Result<f64> {
        pids.iter()
            .map(|&p| cpu_secs(p).with_context(|| format!("reading the CPU time of {p}")))
            .sum()
    };
    let segs = || tcp_out_segs(pids[0]).context("reading the TCP counters");
    let (cpu0, segs0, start) = (cpu()?, segs()?, Instant::now());
    pause(Duration::from_secs(secs), &stop)?;
    let (cpu1, segs1, elapsed) = (cpu()?, segs()?, start.elapsed().as_secs_f64());
    children.check_running()?;
    let connected = children.fully_connected();
    drop(children);
    let in_netns = netns.is_some();
    drop(netns);
    let cpu_percent = 100.0 * (cpu1 - cpu0) / elapsed;
    let per_peer = segs1.saturating_sub(segs0) as f64 / n as f64 / elapsed;
    let (cpu_met, messages_met) = (cpu_percent <= CPU_PERCENT, per_peer <= MESSAGES);
    let scope_note = if in_netns {
        "TCP segments counted in a network namespace of the peers' own"
    } else {
        "TCP segments counted on the whole machine: any other TCP traffic on it counts too \
         (as root, the peers get a network namespace of their own)"
    };
    let mut json = Obj::default()
        .str("workload", "W7")
        .int("peers", n)
        .int("fully_connected_peers", connected)
        .num("secs", elapsed, 2)
        .num("settle_s", SETTLE.as_secs_f64(), 0)
        .num("cpu_percent_of_one_core_all_peers", cpu_percent, 2)
        .num("tcp_segments_per_peer_per_s", per_peer, 1)
        .str(
            "segments_scope",
            if in_netns { "namespace" } else { "host" },
        );
    if !in_netns {
        json = json.str("segments_note", scope_note);
    }
    let json = json
        .obj(
            "target",
            Obj::default()
                .num("cpu_percent_of_one_core_all_peers", CPU_PERCENT, 1)
                .num("messages_per_peer_per_s", MESSAGES, 1),
        )
        .obj(
            "met",
            Obj::default()
                .bool("cpu", cpu_met)
                .bool("messages", messages_met),
        )
        .raw("pids", list(&pids));
    out.emit(
        &format!(
            "W7 idle cost: {n} peers of 1 worker, {connected} of them connected to all the \
             others, over {elapsed:.1} s after {} s to settle",
            SETTLE.as_secs()
        ),
        &[
            Row::new(
                "CPU of all the peers, % of one core",
                format!("{cpu_percent:.2} %"),
            )
            .target(format!("≤ {CPU_PERCENT} %"), Some(cpu_met)),
            Row::new("TCP segments sent per peer per s", format!("{per_peer:.1}"))
                .target(format!("≤ {MESSAGES} messages"), Some(messages_met)),
        ],
        &json,
    );
    out.note(scope_note);
    out.note("segments bound messages from above: ACKs count too");
    out.note(&format!(
        "the target also asks that the rate per peer not grow when the swarm doubles: \
         compare with --peers {}",
        2 * n
    ));
    Ok(())
}

/// Sleeps for `d`, or fails (exit code 130) as soon as `stop` is set.
fn pause(d: Duration, stop: &AtomicBool) -> anyhow::Result<()> {
    let deadline = Instant::now() + d;
    loop {
        // Relaxed: the flag alone is the message.
        if stop.load(Ordering::Relaxed) {
            return Err(Exit {
                code: Exit::INTERRUPTED,
                message: "interrupted: the peers were stopped".into(),
            }
            .into());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}
