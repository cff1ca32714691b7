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

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use peer_core::TaskFuture;
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
    /// W2: the seed's nested loop (`--files` data sets of `--values` numbers, `--params`
    /// scores of each), against the same work run on one thread in the same run: on one
    /// pool of `--peers` × `--workers` workers, then on `--peers` processes of `--workers`
    /// workers (this one and `peer join` children it starts on 127.0.0.1).
    W2 {
        #[arg(long, default_value_t = 20)]
        files: usize,
        #[arg(long, default_value_t = 500)]
        params: usize,
        /// Values per data set (8 bytes each; 12,500 is about 100 KB).
        #[arg(long, default_value_t = 12_500)]
        values: u64,
        #[arg(long, default_value_t = 2)]
        peers: usize,
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Times each figure is measured; the median is printed.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
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
    /// W5 in one command: `--peers` processes of one worker (this one and `peer join`
    /// children it starts on 127.0.0.1) run `--tasks` spins of `--us`, against the ideal.
    W5 {
        #[arg(long, default_value_t = 20_000)]
        tasks: u64,
        #[arg(long, default_value_t = 1_000)]
        us: u64,
        #[arg(long, default_value_t = 2)]
        peers: usize,
    },
    /// W4: UTS `--tree` on one process of 2 workers, then on 2 processes of 1 worker (this
    /// one and a `peer join` child), exact counts checked; then the idle child's CPU.
    W4 {
        #[arg(long, default_value = "T1L")]
        tree: String,
        /// Nodes a task visits before handing on the rest (as `peer uts --chunk`).
        #[arg(long, default_value_t = 200_000)]
        chunk: u64,
        #[arg(long, default_value_t = 4)]
        split: u32,
    },
    /// W6: UTS `--tree` on 4 processes (this one, which submits and owns every task, and
    /// 3 `peer join` children of 1 worker); `--runs` failure-free runs, then as many with a
    /// child killed (-9) and as many with one stopped (SIGSTOP) at half the failure-free
    /// median makespan. Counts checked exactly; detection time and penalty printed.
    W6 {
        #[arg(long, default_value = "T1L")]
        tree: String,
        #[arg(long, default_value_t = 3)]
        runs: usize,
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
        Which::W2 {
            files,
            params,
            values,
            peers,
            workers,
            runs,
        } => w2(
            files,
            params,
            values,
            peers.max(1),
            workers.max(1),
            runs.max(1),
        ),
        Which::Steal { tasks, pings } => steal(tasks, pings),
        Which::Spin { tasks, us, swarm } => spin(tasks, us, &swarm),
        Which::W5 { tasks, us, peers } => {
            let children = Children::spawn(peers.max(2) - 1, 1)?;
            let swarm = SwarmArgs::loopback(children.addr.clone(), peers.max(2) - 1);
            spin(tasks, us, &swarm)
        }
        Which::W4 { tree, chunk, split } => w4(&tree, chunk, split),
        Which::W6 { tree, runs } => w6(&tree, runs.max(1)),
        Which::Soak {
            waves,
            tasks,
            bytes,
            watch_pid,
            swarm,
        } => soak(waves, tasks, bytes, &watch_pid, &swarm),
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `peer join` children of this binary on 127.0.0.1, the first bootstrapping the others;
/// killed when dropped.
pub(crate) struct Children {
    procs: Vec<std::process::Child>,
    /// The first child's address, to bootstrap from.
    pub(crate) addr: peer_net::Multiaddr,
}

impl Children {
    /// Starts `n` (at least 1) peers of `workers` workers each.
    pub(crate) fn spawn(n: usize, workers: usize) -> anyhow::Result<Children> {
        let mut children = Children {
            procs: Vec::new(),
            addr: "/ip4/127.0.0.1/tcp/0".parse()?,
        };
        for i in 0..n.max(1) {
            let mut cmd = std::process::Command::new(std::env::current_exe()?);
            cmd.args([
                "join",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--no-mdns",
                "--ephemeral",
            ])
            .args(["--workers", &workers.to_string()]);
            if i > 0 {
                cmd.args(["--bootstrap", &children.addr.to_string()]);
            }
            let mut child = cmd
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .context("starting a peer process")?;
            let stdout = child.stdout.take();
            children.procs.push(child);
            let addr = super::join::read_bootstrap_line(stdout)?;
            if i == 0 {
                children.addr = addr;
            }
        }
        Ok(children)
    }
}

impl Children {
    /// Their process ids.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(std::process::Child::id).collect()
    }
}

/// CPU seconds (user and system) a process has used, from `/proc`.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz.max(1.0))
}

fn w4(tree: &str, chunk: u64, split: u32) -> anyhow::Result<()> {
    use peer_workloads::{swarm_uts, uts};
    let known = uts::known(tree)
        .with_context(|| format!("unknown tree {tree:?}: use T1, T3, T1L or T3L"))?;
    let loopback = || -> anyhow::Result<Config> {
        Ok(Config::new()
            .listen("/ip4/127.0.0.1/tcp/0".parse()?)
            .mdns(false))
    };
    let timed = |client: &Client| -> anyhow::Result<f64> {
        let start = Instant::now();
        let counts = swarm_uts::on_swarm(client, known.name, chunk, split)?;
        if counts != known.counts {
            bail!("wrong counts {counts:?}: expected {:?}", known.counts);
        }
        Ok(start.elapsed().as_secs_f64())
    };
    let alone = Client::join(loopback()?.workers(2))?;
    let one = timed(&alone)?;
    drop(alone);
    let children = Children::spawn(1, 1)?;
    let client = Client::join(loopback()?.workers(1).bootstrap(children.addr.clone()))?;
    if client.wait_for_peers(1, Duration::from_secs(30)) < 1 {
        bail!("the peers did not connect");
    }
    let two = timed(&client)?;
    let stats = client.status()?.stats;
    let elsewhere = stats.submitted.saturating_sub(stats.ran);
    drop(client);
    // The child, idle now that the submitter left.
    let pid = children.pids()[0];
    let before = cpu_secs(pid).context("reading the child's CPU time")?;
    std::thread::sleep(Duration::from_secs(5));
    let after = cpu_secs(pid).context("reading the child's CPU time")?;
    println!(
        "{{\"workload\":\"W4\",\"tree\":\"{}\",\"one_process_2_workers_s\":{one:.3},\
\"two_processes_1_worker_s\":{two:.3},\"two_over_one_throughput\":{:.3},\
\"tasks_run_by_joined_peer\":{elsewhere},\"idle_peer_cpu_percent\":{:.2},\"exact\":true}}",
        known.name,
        one / two,
        100.0 * (after - before) / 5.0
    );
    Ok(())
}

/// A fault W6 injects into a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Kill,
    Stop,
}

/// One W6 run: the makespan, and for a fault, the detection delay (ms) and tasks requeued.
fn w6_run(
    tree: &str,
    fault: Fault,
    after: Duration,
) -> anyhow::Result<(f64, Option<(f64, usize)>)> {
    use peer_workloads::{swarm_uts, uts};
    let known = uts::known(tree)
        .with_context(|| format!("unknown tree {tree:?}: use T1, T3, T1L or T3L"))?;
    let children = Children::spawn(3, 1)?;
    let victim_pid = children.pids()[1];
    let client = Client::join(
        Config::new()
            .listen("/ip4/127.0.0.1/tcp/0".parse()?)
            .mdns(false)
            .workers(1)
            .bootstrap(children.addr.clone()),
    )?;
    if client.wait_for_peers(3, Duration::from_secs(30)) < 3 {
        bail!("the peers did not connect");
    }
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
    let start = Instant::now();
    let counts = swarm_uts::on_swarm(&client, known.name, 200_000, 4)?;
    let secs = start.elapsed().as_secs_f64();
    if counts != known.counts {
        bail!("wrong counts {counts:?}: expected {:?}", known.counts);
    }
    let detected = match injector {
        None => None,
        Some(injector) => {
            let fault_at = injector
                .join()
                .map_err(|_| anyhow::anyhow!("the fault thread panicked"))?;
            let status = client.status()?;
            status.recoveries.first().map(|r| {
                let ms =
                    r.at.duration_since(fault_at)
                        .map_or(0.0, |d| d.as_secs_f64() * 1e3);
                (ms, r.requeued)
            })
        }
    };
    // SAFETY: as above; a stopped child must run again to be killed cleanly.
    unsafe { libc::kill(victim_pid as libc::pid_t, libc::SIGCONT) };
    drop(client);
    drop(children);
    Ok((secs, detected))
}

fn w6(tree: &str, runs: usize) -> anyhow::Result<()> {
    let mut base = Vec::new();
    for _ in 0..runs {
        let (secs, _) = w6_run(tree, Fault::None, Duration::ZERO)?;
        println!(
            "{{\"workload\":\"W6\",\"tree\":\"{tree}\",\"fault\":\"none\",\"makespan_s\":{secs:.3},\"exact\":true}}"
        );
        base.push(secs);
    }
    base.sort_by(f64::total_cmp);
    let median = base[base.len() / 2];
    let half = Duration::from_secs_f64(median / 2.0);
    for (fault, name) in [(Fault::Kill, "kill"), (Fault::Stop, "stop")] {
        for _ in 0..runs {
            let (secs, detected) = w6_run(tree, fault, half)?;
            let (ms, requeued) =
                detected.map_or(("null".to_string(), 0), |(ms, r)| (format!("{ms:.1}"), r));
            println!(
                "{{\"workload\":\"W6\",\"tree\":\"{tree}\",\"fault\":\"{name}\",\"fault_after_s\":{:.2},\
\"makespan_s\":{secs:.3},\"penalty_s\":{:.3},\"detected_after_ms\":{ms},\"requeued\":{requeued},\"exact\":true}}",
                half.as_secs_f64(),
                secs - median
            );
        }
    }
    Ok(())
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.procs {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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

/// The median of `runs` measurements.
fn median(runs: usize, mut measure: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let mut times = (0..runs)
        .map(|_| measure())
        .collect::<anyhow::Result<Vec<f64>>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn w2(
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
    let children = if peers > 1 {
        Some(Children::spawn(peers - 1, workers)?)
    } else {
        None
    };
    let mut config = Config::new()
        .listen("/ip4/127.0.0.1/tcp/0".parse()?)
        .mdns(false)
        .workers(workers);
    if let Some(children) = &children {
        config = config.bootstrap(children.addr.clone());
    }
    let client = Client::join(config)?;
    if client.wait_for_peers(peers - 1, Duration::from_secs(30)) < peers - 1 {
        bail!("the peers did not connect");
    }
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
    println!(
        "{{\"workload\":\"W2\",\"files\":{files},\"params\":{params},\"values\":{values},\
\"tasks\":{},\"work_s\":{work:.4},\"local\":{{\"workers\":{all},\"makespan_s\":{local:.4},\
\"over_ideal\":{:.3}}},\"swarm\":{{\"peers\":{peers},\"workers_each\":{workers},\
\"makespan_s\":{swarm:.4},\"over_ideal\":{:.3},\"ran_at_submitter\":{ran_here}}},\"runs\":{runs},\
\"best\":{best}}}",
        files * (params + 1),
        local / ideal,
        swarm / ideal,
    );
    Ok(())
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
