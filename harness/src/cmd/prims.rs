//! `peer-harness prims`: named primitives across a swarm, exercised by real processes — the
//! checks the multi-process tests run, and a benchmark of lock and queue round trips.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use peer_core::ext::keys;
use peer_net::{Peer, PeerId};
use peer_workloads::prims::{self, HoldPermitTask, IncrementUnderLockTask};

use super::bench::{Children, tcp_round_trips};
use peer_cli::SwarmArgs;
use peer_cli::harness::print_recoveries;

/// Options of `peer-harness prims`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(Debug, clap::Subcommand)]
enum Which {
    /// Tasks across the swarm add to one counter under a swarm lock; checks the count.
    Counter {
        /// Tasks submitted.
        #[arg(long, default_value_t = 24)]
        tasks: u32,
        /// Increments per task.
        #[arg(long, default_value_t = 10)]
        times: u32,
        /// Names of the lock and the counter (made unique per run by default).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        swarm: SwarmArgs,
    },
    /// Tasks across the swarm hold permits of one semaphore; checks the bound.
    Semaphore {
        /// Its permits.
        #[arg(long, default_value_t = 2)]
        permits: u32,
        /// Tasks submitted, each holding a permit for `--ms`.
        #[arg(long, default_value_t = 12)]
        tasks: u32,
        #[arg(long, default_value_t = 100)]
        ms: u64,
        #[command(flatten)]
        swarm: SwarmArgs,
    },
    /// Puts `--items` numbers on a queue whose home is one of `--home-among` (or any other
    /// peer), then closes it. The queue's name and capacity go in the variable `--name` for
    /// consumers.
    Produce {
        /// The variable that tells consumers the queue's name and capacity.
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 2_000)]
        items: u64,
        /// Pause between puts, in microseconds.
        #[arg(long, default_value_t = 0)]
        pause_us: u64,
        /// Queue capacity.
        #[arg(long, default_value_t = 64)]
        capacity: usize,
        /// Pick a queue whose home is one of these peers.
        #[arg(long, value_delimiter = ',')]
        home_among: Vec<PeerId>,
        #[command(flatten)]
        swarm: SwarmArgs,
    },
    /// Takes items from the queue named in the variable `--name` until it is closed; writes
    /// them to `--out`, one a line.
    Consume {
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: std::path::PathBuf,
        #[command(flatten)]
        swarm: SwarmArgs,
    },
    /// Takes a lock with a lease and writes a fenced variable; then, after `--hold-ms`
    /// (stop this process meanwhile to make its lease run out), writes again with the same
    /// token. Exits 0 if that stale write is refused.
    Hold {
        #[arg(long, default_value_t = 1_000)]
        lease_ms: u64,
        #[arg(long, default_value_t = 3_000)]
        hold_ms: u64,
        /// Pick a lock and a variable whose homes are among these peers.
        #[arg(long, value_delimiter = ',')]
        home_among: Vec<PeerId>,
        #[command(flatten)]
        swarm: SwarmArgs,
    },
    /// Waits for `--lock`, then writes the fenced variable `--resource` with its token.
    Take {
        #[arg(long)]
        lock: String,
        #[arg(long)]
        resource: String,
        #[command(flatten)]
        swarm: SwarmArgs,
    },
    /// Lock acquire + release and queue put and get against a home in another process,
    /// against the raw TCP round trip measured in the same run; prints JSON.
    Bench {
        /// Operations of each kind.
        #[arg(long, default_value_t = 2_000)]
        ops: u32,
        /// Raw TCP round trips measured.
        #[arg(long, default_value_t = 20_000)]
        pings: u64,
    },
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    match args.which {
        Which::Counter {
            tasks,
            times,
            name,
            swarm,
        } => counter(tasks, times, name, &swarm),
        Which::Semaphore {
            permits,
            tasks,
            ms,
            swarm,
        } => semaphore(permits, tasks, ms, &swarm),
        Which::Produce {
            name,
            items,
            pause_us,
            capacity,
            home_among,
            swarm,
        } => produce(&name, items, pause_us, capacity, &home_among, &swarm),
        Which::Consume { name, out, swarm } => consume(&name, &out, &swarm),
        Which::Hold {
            lease_ms,
            hold_ms,
            home_among,
            swarm,
        } => hold(lease_ms, hold_ms, &home_among, &swarm),
        Which::Take {
            lock,
            resource,
            swarm,
        } => take(&lock, &resource, &swarm),
        Which::Bench { ops, pings } => bench(ops, pings),
    }
}

/// A name unique to this run.
fn fresh(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{prefix}-{nanos:x}")
}

/// Names `prefix-0`, `prefix-1`, ... until one whose keys (by `keys_of`) all have their
/// home among `among` (any peer but this one if empty) and, if `backup_away`, their backup
/// elsewhere than here.
fn pick(
    client: &Peer,
    prefix: &str,
    among: &[PeerId],
    backup_away: bool,
    keys_of: impl Fn(&str) -> Vec<String>,
) -> anyhow::Result<String> {
    let me = client.peer_id();
    for i in 0..100_000 {
        let name = format!("{prefix}-{i}");
        let fits = keys_of(&name).iter().all(|key| {
            let homes = client.homes(key);
            let home_fits = match homes.first() {
                Some(home) if among.is_empty() => *home != me,
                Some(home) => among.contains(home),
                None => false,
            };
            home_fits && (!backup_away || homes.get(1).is_some_and(|backup| *backup != me))
        });
        if fits {
            return Ok(name);
        }
    }
    bail!("no name of {prefix} has its home among the peers asked for")
}

fn counter(tasks: u32, times: u32, name: Option<String>, swarm: &SwarmArgs) -> anyhow::Result<()> {
    let client = swarm.join()?;
    let name = name.unwrap_or_else(|| fresh("counter"));
    let (lock, count) = (format!("{name}-lock"), format!("{name}-count"));
    let start = Instant::now();
    let futures = client.map_named(
        IncrementUnderLockTask,
        (0..tasks).map(|_| (lock.clone(), count.clone(), times)),
    );
    let done: u32 = client
        .gather(futures)
        .context("a task failed")?
        .into_iter()
        .sum();
    let total = client.variable::<u64>(&count).blocking_get().unwrap_or(0);
    let expected = u64::from(tasks) * u64::from(times);
    println!(
        "counter: {tasks} tasks x {times} increments under lock {lock:?}: {total} in {:.3} s",
        start.elapsed().as_secs_f64()
    );
    print_recoveries(&client)?;
    if total != expected || u64::from(done) != expected {
        bail!("wrong count: expected {expected}");
    }
    println!("count exact");
    Ok(())
}

fn semaphore(permits: u32, tasks: u32, ms: u64, swarm: &SwarmArgs) -> anyhow::Result<()> {
    let client = swarm.join()?;
    let name = fresh("semaphore");
    let futures = client.map_named(
        HoldPermitTask,
        (0..tasks).map(|_| (name.clone(), permits, ms)),
    );
    client.gather(futures).context("a task failed")?;
    let most = prims::most_holders(&client, &name);
    println!("semaphore: {tasks} tasks, {permits} permits, at most {most} held at once");
    if most > permits {
        bail!("the bound was broken: {most} holders of {permits} permits");
    }
    if most < permits.min(tasks) {
        bail!("never more than {most} holders: the tasks did not overlap");
    }
    println!("bound held");
    Ok(())
}

fn produce(
    name: &str,
    items: u64,
    pause_us: u64,
    capacity: usize,
    among: &[PeerId],
    swarm: &SwarmArgs,
) -> anyhow::Result<()> {
    let client = swarm.join()?;
    let queue_name = pick(&client, &format!("{name}-queue"), among, true, |q| {
        vec![keys::queue::<u64>(q)]
    })?;
    let homes = client.homes(&keys::queue::<u64>(&queue_name));
    println!(
        "queue={queue_name} home={} backup={}",
        homes[0],
        homes.get(1).map_or(String::new(), ToString::to_string)
    );
    let queue = client.queue::<u64>(&queue_name, capacity);
    // Consumers open it with the same capacity: a home refuses other parameters.
    client
        .variable::<(String, usize)>(name)
        .blocking_set((queue_name, capacity));
    let mut out = std::io::stdout().lock();
    for item in 0..items {
        queue
            .blocking_put(item)
            .map_err(|_| anyhow::anyhow!("the queue closed under us"))?;
        if item + 1 == items / 2 {
            writeln!(out, "half: {} items put", item + 1)?;
            out.flush()?;
        }
        if pause_us > 0 {
            std::thread::sleep(Duration::from_micros(pause_us));
        }
    }
    queue.blocking_close();
    writeln!(out, "produced {items}")?;
    drop(out);
    print_recoveries(&client)
}

fn consume(name: &str, out: &std::path::Path, swarm: &SwarmArgs) -> anyhow::Result<()> {
    let client = swarm.join()?;
    let variable = client.variable::<(String, usize)>(name);
    let (queue_name, capacity) = loop {
        if let Some(queue) = variable.blocking_get() {
            break queue;
        }
        variable.blocking_changed_timeout(0, Duration::from_secs(60));
    };
    let queue = client.queue::<u64>(&queue_name, capacity);
    let mut items = Vec::new();
    while let Ok(item) = queue.blocking_get() {
        items.push(item.to_string());
    }
    std::fs::write(out, items.join("\n") + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("consumed {} from {queue_name}", items.len());
    Ok(())
}

fn hold(lease_ms: u64, hold_ms: u64, among: &[PeerId], swarm: &SwarmArgs) -> anyhow::Result<()> {
    let client = swarm.join()?;
    let name = pick(&client, "held", among, true, |n| {
        vec![
            keys::lock(n),
            keys::variable::<String>(&format!("{n}-resource")),
        ]
    })?;
    let resource_name = format!("{name}-resource");
    println!("lock={name} resource={resource_name}");
    let lock = client.lock(&name);
    let resource = client.variable::<String>(&resource_name);
    let mut permit = lock
        .blocking_lock_with_lease_timeout(Duration::from_millis(lease_ms), Duration::from_secs(30))
        .context("the lock was not granted")?;
    let token = permit.token();
    resource
        .blocking_set_fenced("holder".into(), token)
        .context("the holder's first write")?;
    println!("holding {token}");
    std::io::stdout().flush()?;
    std::thread::sleep(Duration::from_millis(hold_ms));
    match permit.blocking_renew(Duration::from_millis(lease_ms)) {
        Ok(()) => println!("lease renewed: it had not run out"),
        Err(e) => println!("lease lost: {e}"),
    }
    match resource.blocking_set_fenced("stale holder".into(), token) {
        Ok(version) => bail!("stale write accepted (version {version})"),
        Err(refused) => println!("stale write refused: {refused}"),
    }
    Ok(())
}

fn take(lock: &str, resource: &str, swarm: &SwarmArgs) -> anyhow::Result<()> {
    let client = swarm.join()?;
    let start = Instant::now();
    let permit = client
        .lock(lock)
        .blocking_lock_timeout(Duration::from_secs(60))
        .context("the lock was not granted within 60 s")?;
    println!(
        "took {} after {:.3} s",
        permit.token(),
        start.elapsed().as_secs_f64()
    );
    let version = client
        .variable::<String>(resource)
        .blocking_set_fenced("taker".into(), permit.token())
        .context("the new holder's write")?;
    println!("write accepted (version {version})");
    Ok(())
}

fn summary(h: &Histogram<u64>) -> String {
    format!(
        "{{\"p50\":{:.1},\"p99\":{:.1},\"max\":{:.1},\"count\":{}}}",
        h.value_at_quantile(0.5) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.max() as f64 / 1e3,
        h.len()
    )
}

fn ratio(h: &Histogram<u64>, base: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / base.value_at_quantile(q).max(1) as f64
}

/// Times `op` `n` times.
fn timed(n: u32, mut op: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new(3)?;
    for _ in 0..n {
        let start = Instant::now();
        op()?;
        h.record(start.elapsed().as_nanos() as u64)?;
    }
    Ok(h)
}

fn bench(ops: u32, pings: u64) -> anyhow::Result<()> {
    let tcp = tcp_round_trips(pings)?;
    // The other process: a `peer join` that homes the primitives.
    let home = Children::spawn(1, 1)?;
    let result = (|| {
        let swarm = SwarmArgs::loopback(home.addr.clone(), 1);
        let client = swarm.join()?;
        let name = pick(&client, "bench", &[], false, |n| {
            vec![keys::lock(n), keys::queue::<u64>(n)]
        })?;
        let lock = client.lock(&name);
        // Room for every put: the gets come after them.
        let queue = client.queue::<u64>(&name, ops as usize + 1);
        // Warm up: the first operation of a key claims it at its home.
        drop(lock.blocking_lock());
        queue
            .blocking_put(0)
            .map_err(|_| anyhow::anyhow!("closed"))?;
        queue.blocking_get()?;
        let locks = timed(ops, || {
            drop(lock.blocking_lock());
            Ok(())
        })?;
        let puts = timed(ops, || {
            queue.blocking_put(1).map_err(|_| anyhow::anyhow!("closed"))
        })?;
        let gets = timed(ops, || {
            queue.blocking_get()?;
            Ok(())
        })?;
        // One request and its answer through the same stack, with nothing to replicate.
        let reads = timed(ops, || {
            queue.blocking_len();
            Ok(())
        })?;
        println!(
            "{{\"workload\":\"primitives\",\"tcp_rtt_us\":{},\"queue_len_us\":{},\"lock_acquire_release_us\":{},\
\"queue_put_us\":{},\"queue_get_us\":{},\"over_tcp_p50\":{{\"len\":{:.2},\"lock\":{:.2},\"put\":{:.2},\"get\":{:.2}}},\
\"over_tcp_p99\":{{\"lock\":{:.2},\"put\":{:.2},\"get\":{:.2}}}}}",
            summary(&tcp),
            summary(&reads),
            summary(&locks),
            summary(&puts),
            summary(&gets),
            ratio(&reads, &tcp, 0.5),
            ratio(&locks, &tcp, 0.5),
            ratio(&puts, &tcp, 0.5),
            ratio(&gets, &tcp, 0.5),
            ratio(&locks, &tcp, 0.99),
            ratio(&puts, &tcp, 0.99),
            ratio(&gets, &tcp, 0.99),
        );
        Ok(())
    })();
    drop(home);
    result
}
