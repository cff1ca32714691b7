//! What the benchmarks measure with, beside the swarm's own figures: medians of runs, timed
//! UTS counts, raw TCP round trips (the anchor of W3 and of `peer-harness prims bench`), and a
//! process's CPU time, TCP segments and resident memory from `/proc`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use peer_net::Peer;
use peer_workloads::{swarm_uts, uts};

/// The median of `runs` measurements.
pub(super) fn median(
    runs: usize,
    mut measure: impl FnMut() -> anyhow::Result<f64>,
) -> anyhow::Result<f64> {
    let times = (0..runs)
        .map(|_| measure())
        .collect::<anyhow::Result<Vec<f64>>>()?;
    Ok(middle(times))
}

/// The median of `xs` (not empty).
pub(super) fn middle(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The UTS tree named `tree`, with its exact counts.
pub(super) fn known_tree(tree: &str) -> anyhow::Result<uts::Known> {
    uts::known(tree).with_context(|| format!("unknown tree {tree:?}: use T1, T3, T1L or T3L"))
}

/// The seconds UTS `tree` takes on `client`'s swarm; fails unless the counts are exact.
pub(super) fn timed_uts(
    client: &Peer,
    tree: &uts::Known,
    chunk: u64,
    split: u32,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let counts = swarm_uts::on_client(client, tree.name, chunk, split)?;
    let secs = start.elapsed().as_secs_f64();
    if counts != tree.counts {
        bail!("wrong counts {counts:?}: expected {:?}", tree.counts);
    }
    Ok(secs)
}

/// Tasks the other peers of `client`'s swarm have run, from their reports: tasks submit
/// tasks on whichever peer runs them, so the submitter's own counters cannot tell.
pub(crate) fn ran_elsewhere(client: &Peer) -> anyhow::Result<u64> {
    let me = client.peer_id();
    Ok((client.swarm_status()?.iter())
        .filter(|answer| answer.peer != me)
        .filter_map(|answer| answer.report.as_ref().ok().map(|r| r.ran))
        .sum())
}

/// Raw TCP round trips of 64 bytes on loopback, with Nagle off, as the anchor.
pub(crate) fn tcp_round_trips(pings: u64) -> anyhow::Result<Histogram<u64>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut socket, _) = listener.accept()?;
        socket.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        while socket.read_exact(&mut buf).is_ok() {
            socket.write_all(&buf)?;
        }
        Ok(())
    });
    let mut socket = TcpStream::connect(addr)?;
    socket.set_nodelay(true)?;
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut buf = [7u8; 64];
    for _ in 0..pings {
        let start = Instant::now();
        socket.write_all(&buf)?;
        socket.read_exact(&mut buf)?;
        histogram.record(start.elapsed().as_nanos() as u64)?;
    }
    drop(socket);
    let _ = echo.join();
    Ok(histogram)
}

/// CPU seconds (user and system) a process has used, from `/proc`.
pub(super) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz.max(1.0))
}

/// TCP segments sent so far in the network namespace of process `pid` (`OutSegs` of its
/// `/proc/<pid>/net/snmp`, which shows the namespace the process is in).
pub(super) fn tcp_out_segs(pid: u32) -> Option<u64> {
    let snmp = std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).ok()?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let at = names.split_whitespace().position(|n| n == "OutSegs")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Resident set size of a process in KiB, from `/proc`.
pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
