//! `peer bench`: the swarm benchmarks, each printing one JSON object per line.
//!
//! - `steal` (W3): the round trip of a steal against the raw TCP round trip on the same
//!   loopback, in the same run.
//! - `spin` (W5): N independent busy-spinning tasks across a swarm.
//! - `soak` (W8): waves of tasks whose large results are fetched and released, with the
//!   resident memory of this peer and of any watched peer process after each wave.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::bail;
use hdrhistogram::Histogram;
use peer_net::{Client, Config};
use peer_workloads::bench_tasks::{ChecksumTask, PayloadTask, SleepMsTask, SpinUsTask};

use super::swarm_args::SwarmArgs;

/// Options of `peer bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(Debug, clap::Subcommand)]
enum Which {
    /// W3: steal round trip against the raw TCP round trip (two in-process peers). The
    /// victim holds `--tasks` ready 1 ms tasks and runs them one at a time; the thief steals
    /// half of what is left whenever it runs dry.
    Steal {
        /// Tasks submitted for the thief to steal.
        #[arg(long, default_value_t = 4_000)]
        tasks: u64,
        /// Raw TCP round trips measured.
        #[arg(long, default_value_t = 20_000)]
        pings: u64,
    },
    /// W5: `--tasks` independent tasks that each busy-spin `--us` microseconds, submitted
    /// by this peer and run by every peer.
    Spin {
        #[arg(long, default_value_t = 20_000)]
        tasks: u64,
        #[arg(long, default_value_t = 1_000)]
        us: u64,
        #[command(flatten)]
        swarm: SwarmArgs,
    },
    /// W8: waves of payload tasks and dependents; resident memory after each wave.
    Soak {
        #[arg(long, default_value_t = 100)]
        waves: u32,
        /// Payload tasks per wave, each read by one checksum task.
        #[arg(long, default_value_t = 200)]
        tasks: u64,
        /// Bytes of each payload (over the inline limit, so it is fetched).
        #[arg(long, default_value_t = 100_000)]
        bytes: u64,
        /// Also report the memory of these peer processes.
        #[arg(long)]
        watch_pid: Vec<u32>,
        #[command(flatten)]
        swarm: SwarmArgs,
    },
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    match args.which {
        Which::Steal { tasks, pings } => steal(tasks, pings),
        Which::Spin { tasks, us, swarm } => spin(tasks, us, &swarm),
        Which::Soak {
            waves,
            tasks,
            bytes,
            watch_pid,
            swarm,
        } => soak(waves, tasks, bytes, &watch_pid, &swarm),
    }
}

pub(crate) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
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

fn steal(tasks: u64, pings: u64) -> anyhow::Result<()> {
    let tcp = tcp_round_trips(pings)?;
    let base = Config::new()
        .listen("/ip4/127.0.0.1/tcp/0".parse()?)
        .mdns(false)
        .workers(1);
    let victim = Client::join(base.clone())?;
    let thief = Client::join(base.bootstrap(victim.addresses()[0].clone()))?;
    if victim.wait_for_peers(1, Duration::from_secs(30)) < 1 {
        bail!("the peers did not connect");
    }
    let futures = victim.map_named(SleepMsTask, (0..tasks).map(|_| (1,)));
    victim.gather(futures)?;
    let steals = thief.status()?.stats.steal_round_trip;
    let tcp_p50 = Duration::from_nanos(tcp.value_at_quantile(0.5));
    let tcp_p99 = Duration::from_nanos(tcp.value_at_quantile(0.99));
    let tcp_max = Duration::from_nanos(tcp.max());
    println!(
        "{{\"workload\":\"W3\",\"tcp_rtt_us\":{{\"p50\":{:.1},\"p99\":{:.1},\"max\":{:.1},\"count\":{}}},\
\"steal_rtt_us\":{{\"p50\":{:.1},\"p99\":{:.1},\"max\":{:.1},\"count\":{}}},\
\"steal_over_tcp\":{{\"p50\":{:.2},\"p99\":{:.2}}}}}",
        micros(tcp_p50),
        micros(tcp_p99),
        micros(tcp_max),
        tcp.len(),
        micros(steals.p50),
        micros(steals.p99),
        micros(steals.max),
        steals.count,
        steals.p50.as_secs_f64() / tcp_p50.as_secs_f64(),
        steals.p99.as_secs_f64() / tcp_p99.as_secs_f64(),
    );
    Ok(())
}

fn spin(tasks: u64, us: u64, swarm: &SwarmArgs) -> anyhow::Result<()> {
    let client = swarm.join()?;
    let status = client.status()?;
    let start = Instant::now();
    let futures = client.map_named(SpinUsTask, (0..tasks).map(|_| (us,)));
    let done = client.gather(futures)?;
    let secs = start.elapsed().as_secs_f64();
    if done.len() as u64 != tasks || done.iter().any(|&d| d != us) {
        bail!("wrong results");
    }
    let ran_here = client.status()?.stats.ran;
    println!(
        "{{\"workload\":\"W5\",\"system\":\"peer\",\"tasks\":{tasks},\"us\":{us},\"peers\":{},\
\"workers_here\":{},\"secs\":{secs:.3},\"tasks_per_s\":{:.0},\"ran_here\":{ran_here}}}",
        status.peers + 1,
        client.workers(),
        tasks as f64 / secs
    );
    Ok(())
}

/// Resident set size of a process in KiB, from `/proc`.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn soak(
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
    let status = client.status()?.stats;
    let ratio: Vec<String> = first
        .iter()
        .zip(&last)
        .map(|(f, l)| match (f, l) {
            (Some(f), Some(l)) => format!("{:.3}", *l as f64 / *f as f64),
            _ => "null".into(),
        })
        .collect();
    let kib = |v: &[Option<u64>]| {
        v.iter()
            .map(|x| x.map_or("null".into(), |k| k.to_string()))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "{{\"workload\":\"W8-swarm\",\"waves\":{waves},\"tasks_per_wave\":{},\"bytes\":{bytes},\
\"secs\":{:.2},\"pids\":[{}],\"rss_kib_after_warmup\":[{}],\"rss_kib_last\":[{}],\
\"last_over_warmup\":[{}],\"held_here\":{},\"owned_here\":{}}}",
        2 * tasks,
        start.elapsed().as_secs_f64(),
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        kib(&first),
        kib(&last),
        ratio.join(","),
        status.held,
        status.owned,
    );
    Ok(())
}
