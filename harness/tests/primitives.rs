//! Named primitives (`peer-harness prims`) across real `peer-harness` processes on
//! 127.0.0.1: a counter kept exact by a swarm lock, a semaphore's bound, a queue whose home
//! is killed half way, and a lock holder that is stopped until its lease runs out.

mod common;

use std::time::{Duration, Instant};

use common::{harness, three_peers};
use peer_testkit::{Joined, Running, stdout_of};

/// Joins the swarm of `addr`, waiting for `wait` peers, with one worker.
fn swarm(addr: &str, wait: usize) -> Vec<String> {
    [
        "--bootstrap",
        addr,
        "--wait-peers",
        &wait.to_string(),
        "--workers",
        "1",
    ]
    .map(String::from)
    .to_vec()
}

/// Starts `peer-harness ARGS`, its output lines collected.
fn start(args: &[String]) -> Running {
    Running::spawn(harness().args(args))
}

/// How long a command may take: these tests check what happens, not how fast (2,000 queue
/// round trips take 15 s here alone, several times that beside the rest of the suite on
/// two cores).
const LIMIT: Duration = Duration::from_secs(180);

/// The first line starting with `prefix`.
fn line(process: &mut Running, prefix: &str) -> String {
    process.wait_for_within(LIMIT, |l| l.starts_with(prefix))
}

/// Waits for it to exit: whether it succeeded, and its output.
fn finish(mut process: Running) -> (bool, String) {
    let (status, out) = process.wait_exit_within(LIMIT);
    (status.success(), out)
}

/// `key=value` out of a line of `key=value` words.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn ids(peers: &[Joined]) -> String {
    peers.iter().map(|p| p.id()).collect::<Vec<_>>().join(",")
}

#[test]
fn tasks_on_three_peers_keep_a_counter_exact_under_a_swarm_lock() {
    let peers = three_peers();
    let args = ["prims", "counter", "--tasks", "24", "--times", "10"];
    let out = stdout_of(harness().args(args).args(swarm(&peers[0].addr, 3)));
    assert!(out.contains("10 increments under lock"), "{out}");
    assert!(out.contains(": 240 in "), "{out}");
    assert!(out.contains("count exact"), "{out}");
}

#[test]
fn a_semaphore_bounds_its_holders_across_peers() {
    let peers = three_peers();
    let args = [
        "prims",
        "semaphore",
        "--permits",
        "2",
        "--tasks",
        "12",
        "--ms",
        "100",
    ];
    let out = stdout_of(harness().args(args).args(swarm(&peers[0].addr, 3)));
    assert!(out.contains("at most 2 held at once"), "{out}");
    assert!(out.contains("bound held"), "{out}");
}

#[test]
fn every_item_is_consumed_once_when_the_queue_home_is_killed_half_way() {
    let mut peers = three_peers();
    let addr = peers[0].addr.clone();
    let dir = std::env::temp_dir().join(format!("peer-queue-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let outs: Vec<_> = (0..2).map(|i| dir.join(format!("consumer-{i}"))).collect();
    let consumers: Vec<Running> = outs
        .iter()
        .map(|out| {
            let mut args = ["prims", "consume", "--name", "the-queue", "--out"]
                .map(String::from)
                .to_vec();
            args.push(out.display().to_string());
            args.extend(swarm(&addr, 3));
            start(&args)
        })
        .collect();
    let mut args = ["prims", "produce", "--name", "the-queue", "--items", "2000"]
        .map(String::from)
        .to_vec();
    args.extend(["--pause-us", "500", "--home-among", &ids(&peers)].map(String::from));
    args.extend(swarm(&addr, 5));
    let mut producer = start(&args);
    let queue = line(&mut producer, "queue=");
    let home = field(&queue, "home").to_string();
    line(&mut producer, "half:");
    let victim = peers
        .iter_mut()
        .find(|p| p.id() == home)
        .expect("the home is a joined peer");
    victim.child.kill().unwrap();
    let (ok, out) = finish(producer);
    assert!(ok, "{out}");
    assert!(out.contains("produced 2000"), "{out}");
    assert!(
        out.contains(&format!("recovery: peer={home}")),
        "the home was not suspected: {out}"
    );
    for consumer in consumers {
        let (ok, out) = finish(consumer);
        assert!(ok, "{out}");
    }
    let mut items: Vec<u64> = outs
        .iter()
        .flat_map(|out| {
            let text = std::fs::read_to_string(out).unwrap();
            text.lines()
                .filter(|l| !l.is_empty())
                .map(|l| l.parse::<u64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    items.sort_unstable();
    assert_eq!(items.len(), 2000, "every item consumed once ({queue})");
    assert_eq!(items, (0..2000).collect::<Vec<u64>>());
}

#[test]
fn a_stopped_lock_holder_loses_its_lease_and_its_stale_write_is_refused() {
    let peers = three_peers();
    let addr = peers[0].addr.clone();
    let mut args = [
        "prims",
        "hold",
        "--lease-ms",
        "1000",
        "--hold-ms",
        "4000",
        "--home-among",
    ]
    .map(String::from)
    .to_vec();
    args.push(ids(&peers));
    args.extend(swarm(&addr, 3));
    let mut holder = start(&args);
    let names = line(&mut holder, "lock=");
    let (lock, resource) = (field(&names, "lock"), field(&names, "resource"));
    let held = line(&mut holder, "holding fence#");
    let stale: u64 = held.trim_start_matches("holding fence#").parse().unwrap();
    holder.signal(libc::SIGSTOP);
    let start = Instant::now();
    let taker = ["prims", "take", "--lock", lock, "--resource", resource];
    let took = stdout_of(harness().args(taker).args(swarm(&addr, 3)));
    let line = took.lines().find(|l| l.starts_with("took fence#")).unwrap();
    let fresh: u64 = line["took fence#".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(fresh > stale, "{took}");
    assert!(took.contains("write accepted"), "{took}");
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "the lock was free before the stopped holder's lease ran out"
    );
    holder.signal(libc::SIGCONT);
    let (ok, out) = finish(holder);
    assert!(ok, "{out}");
    assert!(out.contains("lease lost"), "{out}");
    assert!(out.contains("stale write refused"), "{out}");
}
