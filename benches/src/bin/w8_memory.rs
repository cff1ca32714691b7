//! W8: memory per pending task, and RSS stability over many waves (see `docs/workloads.md`, W8).
//!
//! ```text
//! w8_memory pending [N]              peer: N empty tasks submitted while both workers are busy
//! w8_memory pending-tokio [N]        the tokio anchor, same method
//! w8_memory soak [WAVES] [PER_WAVE]  peer: WAVES waves of PER_WAVE tasks, gathered and dropped
//! w8_memory soak-tokio [WAVES] [PER_WAVE]
//!                                    the tokio anchor: same waves, spawned and awaited
//! ```
//!
//! `pending` occupies both workers with a task that blocks on a gate, so nothing submitted
//! afterwards can run; it reads `VmRSS`/`VmHWM` from `/proc/self/status` with the idle client
//! up, submits N empty tasks (keeping their futures in a `Vec` reserved beforehand), reads them
//! again, then opens the gate and waits for everything. `bytes_per_task` includes the
//! caller's handle (`handle_bytes` per task); `bytes_per_task_excl_handle` subtracts it.
//! Each mode prints one JSON object on stdout. Run it in release mode, one mode per process.

use std::sync::{Arc, Barrier, Condvar, Mutex};

use peer_core::Client;

const WORKERS: usize = 2;

/// `(VmRSS, VmHWM)` of this process in KiB.
fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A gate the blocking tasks wait on until the main thread opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().expect("gate");
        while !*open {
            open = self.cv.wait(open).expect("gate");
        }
    }

    fn open(&self) {
        *self.open.lock().expect("gate") = true;
        self.cv.notify_all();
    }
}

struct Pending {
    runtime: &'static str,
    tasks: usize,
    handle_bytes: usize,
    before: (u64, u64),
    after: (u64, u64),
    done: (u64, u64),
}

impl Pending {
    fn print(&self) {
        let grown = self.after.0.saturating_sub(self.before.0) as f64 * 1024.0;
        let per_task = grown / self.tasks as f64;
        println!(
            "{{\"mode\":\"pending\",\"runtime\":\"{}\",\"tasks\":{},\"rss_before_kb\":{},\
             \"hwm_before_kb\":{},\"rss_after_kb\":{},\"hwm_after_kb\":{},\
             \"rss_after_run_kb\":{},\"handle_bytes\":{},\"bytes_per_task\":{:.1},\
             \"bytes_per_task_excl_handle\":{:.1}}}",
            self.runtime,
            self.tasks,
            self.before.0,
            self.before.1,
            self.after.0,
            self.after.1,
            self.done.0,
            self.handle_bytes,
            per_task,
            per_task - self.handle_bytes as f64,
        );
    }
}

fn pending_peer(n: usize) {
    let client = Client::builder().workers(WORKERS).build().expect("client");
    let started = Arc::new(Barrier::new(WORKERS + 1));
    let gate = Arc::new(Gate::default());
    let blockers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (started, gate) = (started.clone(), gate.clone());
            client.submit_local(move || {
                started.wait();
                gate.wait();
            })
        })
        .collect();
    started.wait(); // every worker is now stuck in a blocker
    let mut futures = Vec::with_capacity(n);
    let before = rss_kb();
    for _ in 0..n {
        futures.push(client.submit_local(|| ()));
    }
    let after = rss_kb();
    gate.open();
    for f in blockers.iter().chain(&futures) {
        f.wait().expect("task");
    }
    drop(futures);
    Pending {
        runtime: "peer",
        tasks: n,
        handle_bytes: size_of::<peer_core::TaskFuture<()>>(),
        before,
        after,
        done: rss_kb(),
    }
    .print();
}

fn pending_tokio(n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .build()
        .expect("runtime");
    let started = Arc::new(Barrier::new(WORKERS + 1));
    let gate = Arc::new(Gate::default());
    let blockers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (started, gate) = (started.clone(), gate.clone());
            // Blocking inside async code on purpose: it pins the worker thread.
            rt.spawn(async move {
                started.wait();
                gate.wait();
            })
        })
        .collect();
    started.wait();
    let mut handles = Vec::with_capacity(n);
    let before = rss_kb();
    for _ in 0..n {
        handles.push(rt.spawn(async {}));
    }
    let after = rss_kb();
    gate.open();
    rt.block_on(async {
        for h in blockers.into_iter().chain(handles) {
            h.await.expect("task");
        }
    });
    Pending {
        runtime: "tokio",
        tasks: n,
        handle_bytes: size_of::<tokio::task::JoinHandle<()>>(),
        before,
        after,
        done: rss_kb(),
    }
    .print();
}

fn soak(waves: usize, per_wave: usize) {
    let client = Client::builder().workers(WORKERS).build().expect("client");
    run_waves("peer", waves, per_wave, || {
        let futures: Vec<_> = (0..per_wave as u64)
            .map(|i| client.submit_local(move || i))
            .collect();
        client.gather(futures).expect("wave").iter().sum()
    });
}

/// The tokio anchor of `soak`: the same waves, spawned on a runtime and awaited in order.
fn soak_tokio(waves: usize, per_wave: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .build()
        .expect("runtime");
    run_waves("tokio", waves, per_wave, || {
        rt.block_on(async {
            let handles: Vec<_> = (0..per_wave as u64)
                .map(|i| tokio::spawn(async move { i }))
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.expect("task");
            }
            sum
        })
    });
}

/// Runs `waves` waves of `per_wave` tasks (`wave` returns the sum of their results, checked),
/// recording RSS after the first and last wave and the maximum, then prints the result.
fn run_waves(runtime: &str, waves: usize, per_wave: usize, mut wave: impl FnMut() -> u64) {
    let idle = rss_kb().0;
    let expected = per_wave as u64 * (per_wave as u64).saturating_sub(1) / 2;
    let (mut first, mut max, mut last) = (0, 0, 0);
    for n in 0..waves {
        assert_eq!(wave(), expected);
        let rss = rss_kb().0;
        if n == 0 {
            first = rss;
        }
        max = max.max(rss);
        last = rss;
    }
    print_soak(runtime, waves, per_wave, idle, (first, last, max));
}

/// Prints a soak result; `waves_kb` is the RSS after the first and last wave and the maximum.
fn print_soak(runtime: &str, waves: usize, per_wave: usize, idle: u64, waves_kb: (u64, u64, u64)) {
    let (first, last, max) = waves_kb;
    println!(
        "{{\"mode\":\"soak\",\"runtime\":\"{runtime}\",\"waves\":{waves},\"per_wave\":{per_wave},\
         \"tasks\":{},\"rss_idle_kb\":{idle},\"rss_first_wave_kb\":{first},\
         \"rss_last_wave_kb\":{last},\"rss_max_kb\":{max},\"hwm_kb\":{},\"ratio_last_first\":{:.3}}}",
        waves * per_wave,
        rss_kb().1,
        last as f64 / first.max(1) as f64,
    );
}

fn arg(args: &[String], i: usize, default: usize) -> usize {
    args.get(i).map_or(default, |s| {
        s.replace('_', "").parse().unwrap_or_else(|_| usage())
    })
}

fn usage() -> ! {
    eprintln!(
        "usage: w8_memory pending [N] | pending-tokio [N] | soak [WAVES] [PER_WAVE] \
         | soak-tokio [WAVES] [PER_WAVE]"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("pending") => pending_peer(arg(&args, 1, 1_000_000)),
        Some("pending-tokio") => pending_tokio(arg(&args, 1, 1_000_000)),
        Some("soak") => soak(arg(&args, 1, 100), arg(&args, 2, 100_000)),
        Some("soak-tokio") => soak_tokio(arg(&args, 1, 100), arg(&args, 2, 100_000)),
        _ => usage(),
    }
}
