//! W3 (`docs/workloads.md`): the steal round trip between two processes on loopback, in
//! microseconds and in multiples of the raw TCP round trip measured between the same two
//! processes in the same run.
//!
//! This binary runs twice. Started by criterion, it re-executes itself with
//! `PEER_W3_VICTIM=1` set, and that copy is the victim, peer A: a peer of one worker on
//! 127.0.0.1 (mDNS off) that keeps 64 1 ms sleep tasks submitted and unfinished, ready
//! there or stolen (`peer_workloads::bench_tasks::SleepMsTask`, so both processes register
//! it), replacing finished ones every millisecond, and echoes 64-byte messages on a TCP
//! socket of its own (Nagle off). The parent, peer B, joins the victim's swarm with one worker and does nothing but
//! steal and run what it stole: half the victim's ready tasks per steal, one steal each time
//! it runs dry, so about one steal every 30 ms.
//!
//! Group `w3`, side by side:
//! - `steal_round_trip`: the thief's own measurement of its steals, request sent to answer
//!   received (`Stats::steal_round_trip`), averaged over the steals of each sample;
//! - `tcp_round_trip`: a 64-byte echo on the socket to the victim process, timed here.
//!
//! A last line gives both means and medians over the whole run (warm-up included) and their
//! ratio, the figure `docs/workloads.md` asks for. Run with
//! `cargo bench -p peer-benches --bench w3_steal`; it takes under a minute. The victim exits
//! when this process closes its stdin or the echo socket, and is killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use peer_core::TaskFuture;
use peer_net::{Config, Latency, Multiaddr, Peer};
use peer_workloads::bench_tasks::SleepMsTask;

/// Set (to anything) in the victim's environment.
const VICTIM_ENV: &str = "PEER_W3_VICTIM";
/// Starts the victim's one line on stdout: `<prefix> <echo port> <swarm address>`.
const READY_LINE: &str = "peer-w3-victim";
/// Ready tasks the victim keeps for the thief.
const READY: u64 = 64;
/// How long each of them sleeps.
const TASK_MS: u64 = 1;
/// Bytes of each raw TCP echo.
const PING: usize = 64;
/// How long the victim may take to start, and the thief to make its first steal.
const START: Duration = Duration::from_secs(30);

fn loopback() -> Config {
    let any_port = "/ip4/127.0.0.1/tcp/0"
        .parse()
        .expect("a valid loopback multiaddr");
    Config::new().listen(any_port).mdns(false).workers(1)
}

/// Peer A: serves the echo socket and keeps [`READY`] tasks ready until the parent goes.
fn victim() -> ! {
    // The parent holds our stdin: it closes when the parent exits, however it exits.
    std::thread::spawn(|| {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    let echo = TcpListener::bind("127.0.0.1:0").expect("victim: binding the echo socket");
    let port = echo
        .local_addr()
        .expect("victim: the echo socket's address")
        .port();
    let client = Peer::join(loopback()).expect("victim: joining a swarm on 127.0.0.1");
    let addr = client
        .addresses()
        .into_iter()
        .next()
        .expect("victim: the peer listens on 127.0.0.1");
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{READY_LINE} {port} {addr}").expect("victim: writing to the parent");
        stdout.flush().expect("victim: writing to the parent");
    }
    std::thread::spawn(move || {
        // One connection, the parent's; when it closes, the run is over.
        if let Ok((mut socket, _)) = echo.accept() {
            let _ = socket.set_nodelay(true);
            let mut buf = [0u8; PING];
            while socket.read_exact(&mut buf).is_ok() && socket.write_all(&buf).is_ok() {}
        }
        std::process::exit(0);
    });
    // Every task finished, here or at the thief, is replaced: about READY stay ready or
    // stolen. Counted from the futures, not asked of the event loop, so that the harness
    // does not load the loop whose answers it measures.
    let mut pending: Vec<TaskFuture<u64>> = Vec::new();
    loop {
        pending.retain(|task| match task.try_get() {
            None => true,
            Some(Ok(_)) => false,
            Some(Err(e)) => panic!("victim: a sleep task failed: {e}"),
        });
        let missing = READY.saturating_sub(pending.len() as u64);
        if missing > 0 {
            pending.extend(client.map_named(SleepMsTask, (0..missing).map(|_| (TASK_MS,))));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The victim process, killed (and waited for) when dropped.
struct Victim {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for Victim {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peer B and its link to peer A, with what the run measured.
struct Run {
    thief: Peer,
    echo: TcpStream,
    /// Steal round trips measured while a benchmark waited: their sum and count.
    steal_total: Duration,
    steals: u64,
    /// Every raw TCP round trip measured, in nanoseconds.
    tcp: Vec<u64>,
    // Last: the thief leaves before the victim is killed.
    _victim: Victim,
}

impl Run {
    /// Starts the victim, joins its swarm, and waits for the first steal.
    fn start() -> Run {
        let exe = std::env::current_exe().expect("the path of this benchmark binary");
        let mut child = Command::new(exe)
            .env(VICTIM_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the victim process");
        let stdout = child.stdout.take().expect("the victim's stdout is piped");
        let stdin = child.stdin.take();
        let victim = Victim { child, stdin };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(START)
            .expect("the victim did not report its addresses in time");
        let mut fields = line
            .strip_prefix(READY_LINE)
            .unwrap_or_else(|| panic!("the victim failed to start (it said {line:?})"))
            .split_whitespace();
        let port: u16 = fields
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no echo port in the victim's line {line:?}"));
        let addr: Multiaddr = fields
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no swarm address in the victim's line {line:?}"));
        let echo =
            TcpStream::connect(("127.0.0.1", port)).expect("connecting to the victim's echo");
        echo.set_nodelay(true)
            .expect("turning Nagle off on the echo socket");
        let thief = Peer::join(loopback().bootstrap(addr)).expect("joining the victim's swarm");
        if thief.wait_for_peers(1, START) < 1 {
            panic!("the thief did not connect to the victim within {START:?}");
        }
        let run = Run {
            thief,
            echo,
            steal_total: Duration::ZERO,
            steals: 0,
            tcp: Vec::new(),
            _victim: victim,
        };
        let deadline = Instant::now() + START;
        while run.steal_rtt().count == 0 {
            assert!(
                Instant::now() < deadline,
                "the thief stole nothing within {START:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        run
    }

    fn steal_rtt(&self) -> Latency {
        self.thief
            .status()
            .expect("the thief's event loop stopped")
            .stats
            .steal_round_trip
    }

    /// Waits for at least `iters` more steals; their round trips, scaled to exactly `iters`.
    fn steal(&mut self, iters: u64) -> Duration {
        let before = self.steal_rtt();
        // About 30 ms per steal; allow ten times that, and a start.
        let timeout = START + Duration::from_millis(iters.saturating_mul(300));
        let deadline = Instant::now() + timeout;
        loop {
            // Each look costs the thief's event loop a status (histogram quantiles
            // included): not too often, so that the harness does not load what it measures.
            std::thread::sleep(Duration::from_millis(5));
            let now = self.steal_rtt();
            let count = now.count - before.count;
            if count >= iters.max(1) {
                let total = now.total.saturating_sub(before.total);
                self.steal_total += total;
                self.steals += count;
                let scaled = total.as_nanos() * u128::from(iters) / u128::from(count);
                return Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX));
            }
            if Instant::now() >= deadline {
                let stats = self.thief.status().map(|s| s.stats);
                panic!(
                    "only {count} of {iters} steals within {timeout:?}: has the victim stopped \
                     supplying tasks? thief's stats: {stats:?}"
                );
            }
        }
    }

    /// `iters` raw 64-byte round trips to the victim process, timed one by one.
    fn tcp(&mut self, iters: u64) -> Duration {
        let mut buf = [7u8; PING];
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let start = Instant::now();
            self.echo
                .write_all(&buf)
                .expect("sending to the victim's echo");
            self.echo
                .read_exact(&mut buf)
                .expect("reading the victim's echo");
            let took = start.elapsed();
            total += took;
            self.tcp
                .push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        }
        total
    }

    /// The one-line summary over the whole run.
    fn summary(&mut self) -> Option<String> {
        if self.steals == 0 || self.tcp.is_empty() {
            return None;
        }
        let rtt = self.steal_rtt();
        self.tcp.sort_unstable();
        let us = |nanos: f64| nanos / 1e3;
        let steal_mean = self.steal_total.as_nanos() as f64 / self.steals as f64;
        let tcp_mean = self.tcp.iter().map(|&n| n as f64).sum::<f64>() / self.tcp.len() as f64;
        let tcp_p50 = self.tcp[self.tcp.len() / 2] as f64;
        let steal_p50 = rtt.p50.as_nanos() as f64;
        Some(format!(
            "W3 steal round trip: mean {:.1} µs over {} steals (p50 {:.1}, p99 {:.1}, max {:.1} µs \
             over all {}); raw TCP round trip: mean {:.1} µs, p50 {:.1} µs over {} echoes; \
             steal/tcp: mean {:.2}x, p50 {:.2}x",
            us(steal_mean),
            self.steals,
            us(steal_p50),
            us(rtt.p99.as_nanos() as f64),
            us(rtt.max.as_nanos() as f64),
            rtt.count,
            us(tcp_mean),
            us(tcp_p50),
            self.tcp.len(),
            steal_mean / tcp_mean,
            steal_p50 / tcp_p50,
        ))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.echo.shutdown(Shutdown::Both);
    }
}

fn w3(c: &mut Criterion, run: &mut Option<Run>) {
    let mut group = c.benchmark_group("w3");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(30));
    group.bench_function("steal_round_trip", |b| {
        let run = run.get_or_insert_with(Run::start);
        b.iter_custom(|iters| run.steal(iters));
    });
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("tcp_round_trip", |b| {
        let run = run.get_or_insert_with(Run::start);
        b.iter_custom(|iters| run.tcp(iters));
    });
    group.finish();
}

// Written out instead of `criterion_group!`/`criterion_main!`, whose generated `pub fn` trips
// the workspace's `missing_docs` lint; and this binary is also the victim.
fn main() {
    if std::env::var_os(VICTIM_ENV).is_some() {
        victim();
    }
    // Started only if a benchmark of the group runs (not for `--list` or another filter).
    let mut run = None;
    let mut c = Criterion::default().configure_from_args();
    w3(&mut c, &mut run);
    c.final_summary();
    if let Some(line) = run.as_mut().and_then(Run::summary) {
        println!("{line}");
    }
}
