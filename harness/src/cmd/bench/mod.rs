//! `peer-harness bench`: the swarm benchmarks. Each prints its figures as a few aligned lines
//! (figure, anchor measured in the same run, ratio, target from `docs/workloads.md`), or with
//! `--json` one JSON object per result line, as `benches/swarm/*.sh` collect them.
//!
//! - `w2` (W2): the seed's nested loop on one pool and on several processes.
//! - `w9` (W9): the W2 loop of tiny tasks on a swarm client with idle joined peers against
//!   a local client, in the same run.
//! - `steal` (W3): the round trip of a steal against the raw TCP round trip on the same
//!   loopback, in the same run.
//! - `w4` (W4): UTS on two processes of one worker against one process of two.
//! - `spin`, `w5` (W5): N independent busy-spinning tasks across a swarm.
//! - `w6` (W6): UTS with a joined peer killed or stopped half way.
//! - `w7` (W7): the CPU and the TCP segments of idle peers.
//! - `soak` (W8): waves of tasks whose large results are fetched and released, with the
//!   resident memory of this peer and of any watched peer process after each wave.

mod children;
mod measure;
pub(crate) use measure::ran_elsewhere;
mod report;
mod soak;
mod steal;
mod w2;
mod w4;
mod w5;
mod w6;
mod w7;

pub(crate) use children::Children;
pub(crate) use measure::tcp_round_trips;

use peer_cli::SwarmArgs;
use report::Out;

/// Options of `peer-harness bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print each result as one JSON object on a line of its own instead of aligned lines.
    #[arg(long, global = true)]
    json: bool,
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
    /// W9: the W2 loop of tiny tasks (`--values` 500: scores of about a microsecond) on a
    /// local client of `--workers` workers, then on a swarm client of as many with `--idle`
    /// joined peers (`peer join` children) that submit nothing; `--runs` alternated runs
    /// each, the first being W9's figure (a program runs its loop once). Target: the swarm
    /// client ≤ 1.2 × the local client.
    W9 {
        #[arg(long, default_value_t = 20)]
        files: usize,
        #[arg(long, default_value_t = 500)]
        params: usize,
        #[arg(long, default_value_t = 500)]
        values: u64,
        #[arg(long, default_value_t = 2)]
        idle: usize,
        /// Workers of each client and peer (default: this machine's cores).
        #[arg(long)]
        workers: Option<usize>,
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
    /// one and a `peer join` child), exact counts checked; then the idle child's CPU. (Two
    /// processes by definition: no `--peers`.)
    W4 {
        #[arg(long, default_value = "T1L")]
        tree: String,
        /// Nodes a task visits before handing on the rest (as `peer-harness uts --chunk`).
        #[arg(long, default_value_t = peer_workloads::swarm_uts::CHUNK)]
        chunk: u64,
        #[arg(long, default_value_t = 4)]
        split: u32,
    },
    /// W6: UTS `--tree` on `--peers` processes (this one, which submits and owns every task,
    /// and `peer join` children of 1 worker); `--runs` failure-free runs, then as many with
    /// a child killed (-9) and as many with one stopped (SIGSTOP) at half the failure-free
    /// median makespan. Counts checked exactly; detection time and penalty printed.
    W6 {
        #[arg(long, default_value = "T1L")]
        tree: String,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Processes in all, this one included (at least 3: the first child bootstraps the
        /// others, another is the victim).
        #[arg(long, default_value_t = 4)]
        peers: usize,
    },
    /// W7: `--peers` idle `peer join` processes of one worker, connected to each other;
    /// after 5 s to settle, for `--secs` seconds: the CPU they use in all, and the TCP
    /// segments they send per peer per second. As root they run in a network namespace of
    /// their own (`ip netns`), so the TCP counters see only them; otherwise the counters
    /// are the machine's.
    W7 {
        #[arg(long, default_value_t = 8)]
        peers: usize,
        #[arg(long, default_value_t = 60)]
        secs: u64,
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
    let out = Out { json: args.json };
    match args.which {
        Which::W2 {
            files,
            params,
            values,
            peers,
            workers,
            runs,
        } => w2::run(
            out,
            files,
            params,
            values,
            peers.max(1),
            workers.max(1),
            runs.max(1),
        ),
        Which::W9 {
            files,
            params,
            values,
            idle,
            workers,
            runs,
        } => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let workers = workers.unwrap_or(cores).max(1);
            w2::w9(out, files, params, values, idle, workers, runs.max(1))
        }
        Which::Steal { tasks, pings } => steal::run(out, tasks, pings),
        Which::Spin { tasks, us, swarm } => w5::spin(out, tasks, us, &swarm),
        Which::W5 { tasks, us, peers } => w5::run(out, tasks, us, peers.max(2)),
        Which::W4 { tree, chunk, split } => w4::run(out, &tree, chunk, split),
        Which::W6 { tree, runs, peers } => w6::run(out, &tree, runs.max(1), peers.max(3)),
        Which::W7 { peers, secs } => w7::run(out, peers.max(1), secs),
        Which::Soak {
            waves,
            tasks,
            bytes,
            watch_pid,
            swarm,
        } => soak::run(out, waves, tasks, bytes, &watch_pid, &swarm),
    }
}
