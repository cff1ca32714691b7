//! W6: UTS on several processes with a joined peer killed or stopped half way: the time
//! to notice it and the makespan's penalty, counts checked exactly in every run.

use std::time::Duration;

use super::children::Children;
use super::measure::{known_tree, median, timed_uts};
use super::report::{Obj, Out, Row, fixed, secs_text};

/// A fault W6 injects into a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Kill,
    Stop,
}

pub(super) fn run(out: Out, tree: &str, runs: usize, peers: usize) -> anyhow::Result<()> {
    out.title(&format!(
        "W6 failure recovery: UTS {tree} on {peers} processes (this one submits; {} joined \
         peers of 1 worker), counts exact in every run",
        peers - 1
    ));
    let mut run = 0;
    let median = median(runs, || {
        run += 1;
        let (secs, _) = run_once(tree, peers, Fault::None, Duration::ZERO)?;
        out.json(
            &Obj::default()
                .str("workload", "W6")
                .str("tree", tree)
                .str("fault", "none")
                .num("makespan_s", secs, 3)
                .bool("exact", true),
        );
        out.rows(&[Row::new(
            format!("no fault, run {run}: makespan"),
            secs_text(secs),
        )]);
        Ok(secs)
    })?;
    let half = Duration::from_secs_f64(median / 2.0);
    // docs/workloads.md: a crash noticed within 100 ms, a hang within 2 s; the penalty at most
    // the lost work plus 1 s (crash) or 3 s (hang).
    for (fault, name, notice_ms, slack) in [
        (Fault::Kill, "kill", 100.0, 1),
        (Fault::Stop, "stop", 2_000.0, 3),
    ] {
        for run in 1..=runs {
            let (secs, detected) = run_once(tree, peers, fault, half)?;
            let penalty = secs - median;
            let json = Obj::default()
                .str("workload", "W6")
                .str("tree", tree)
                .str("fault", name)
                .num("fault_after_s", half.as_secs_f64(), 2)
                .num("makespan_s", secs, 3)
                .num("penalty_s", penalty, 3)
                .raw(
                    "detected_after_ms",
                    detected.map_or("null".into(), |(ms, _)| fixed(ms, 1)),
                )
                .int("requeued", detected.map_or(0, |(_, r)| r))
                .bool("exact", true);
            out.json(&json);
            let noticed = match detected {
                Some((ms, requeued)) => Row::new(
                    format!("{name} run {run}: noticed ({requeued} requeued)"),
                    format!("{ms:.1} ms"),
                )
                .target(format!("≤ {notice_ms} ms"), Some(ms <= notice_ms)),
                None => Row::new(format!("{name} run {run}: noticed"), "never")
                    .target(format!("≤ {notice_ms} ms"), Some(false)),
            };
            out.rows(&[
                Row::new(
                    format!("{name} at {:.2} s, run {run}: makespan", half.as_secs_f64()),
                    secs_text(secs),
                )
                .anchor(format!("no fault {}", secs_text(median)), secs / median)
                .target(
                    format!("penalty {penalty:+.2} s ≤ lost work + {slack} s"),
                    None,
                ),
                noticed,
            ]);
        }
    }
    Ok(())
}

/// One run on `peers` processes: the makespan, and for a fault, the detection delay (ms)
/// and tasks requeued.
fn run_once(
    tree: &str,
    peers: usize,
    fault: Fault,
    after: Duration,
) -> anyhow::Result<(f64, Option<(f64, usize)>)> {
    let known = known_tree(tree)?;
    let children = Children::spawn(peers - 1, 1)?;
    let victim_pid = children.pids()[1];
    let client = children.join(1)?;
    let signal = match fault {
        Fault::None => None,
        Fault::Kill => Some(libc::SIGKILL),
        Fault::Stop => Some(libc::SIGSTOP),
    };
    let injector = signal.map(|signal| {
        std::thread::spawn(move || {
            std::thread::sleep(after);
            let at = std::time::SystemTime::now();
            // SAFETY: kill(2) on our own child, which is still running (not yet waited for).
            unsafe { libc::kill(victim_pid as libc::pid_t, signal) };
            at
        })
    });
    let secs = timed_uts(&client, &known, peer_workloads::swarm_uts::CHUNK, 4)?;
    let detected = match injector {
        None => None,
        Some(injector) => {
            let fault_at = injector
                .join()
                .map_err(|_| anyhow::anyhow!("the fault thread panicked"))?;
            // The first peer to notice, and the tasks every peer ran again.
            let suspicions = client.suspicions()?;
            let requeued = suspicions.iter().map(|s| s.requeued).sum();
            suspicions.first().map(|first| {
                let ms = (first.at.duration_since(fault_at)).map_or(0.0, |d| d.as_secs_f64() * 1e3);
                (ms, requeued)
            })
        }
    };
    // SAFETY: as above; a stopped child must run again to be killed cleanly.
    unsafe { libc::kill(victim_pid as libc::pid_t, libc::SIGCONT) };
    drop(client);
    drop(children);
    Ok((secs, detected))
}
