//! Who runs the shell commands of `peer map` and `peer submit`: the peers started with
//! `peer join --allow-shell`, and this process only when asked (`--workers N`, `--alone`);
//! other peers never do. When this process runs none, some peer must: if none takes a
//! command while the others sit idle, the command fails and says why.

use std::time::{Duration, Instant};

use peer_core::NamedTask;
use peer_net::Peer;
use peer_workloads::shell::RunTask;

use super::Exit;
use super::swarm_args::SwarmArgs;

/// How long every other peer may stay idle while commands wait here, none taken yet, before
/// a client that runs no command itself gives up: an idle peer that serves shell commands steals within
/// milliseconds.
const IDLE_LIMIT: Duration = Duration::from_secs(5);

/// How often the peers are asked whether they are idle.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Exit code of a usage error.
const USAGE: u8 = 2;

/// Joins the swarm for `peer map` or `peer submit`. Commands run in this process only when
/// `--workers N` (N ≥ 1) asks for it, or with `--alone` (then on every core unless
/// `--workers` says otherwise); otherwise only on other peers, so some must serve them.
pub(crate) fn join(swarm: &SwarmArgs, remote_only: bool) -> anyhow::Result<Peer> {
    let local = local_workers(swarm, remote_only)?;
    if local > 0 {
        // This process runs its user's commands, never other members'.
        // Short-lived: the swarm's primitives (the job record among them) stay with the
        // peers that stay.
        let peer = swarm.join_with(|config| {
            (config.serve_own_only(RunTask::NAME))
                .workers(local)
                .home(false)
        })?;
        peer_workloads::shell::set_peer(peer.peer_id().to_string());
        return Ok(peer);
    }
    let client =
        swarm.join_with(|config| config.withhold_task(RunTask::NAME).workers(1).home(false))?;
    let me = client.peer_id();
    // The bootstrap peer may not serve shell commands while others of its swarm do: give
    // discovery the time an idle peer would take to steal before saying none does.
    let deadline = Instant::now() + IDLE_LIMIT;
    let serving = loop {
        let serving = (client.swarm_status()?.iter())
            .filter(|answer| answer.peer != me)
            .filter_map(|answer| answer.report.as_ref().ok())
            .filter(|r| r.serves.binary_search(&RunTask::FINGERPRINT).is_ok())
            .count();
        if serving > 0 || Instant::now() >= deadline {
            break serving;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    if serving == 0 {
        return Err(Exit {
            code: Exit::CANNOT_JOIN,
            message: "no peer runs shell commands: no other peer of the swarm serves them, and \
                      this process runs none (no --workers N); start peers with \
                      `peer join --allow-shell` (PEER_ALLOW_SHELL, allow_shell = true), or \
                      run them here with --workers N or --alone"
                .into(),
        }
        .into());
    }
    Ok(client)
}

/// How many commands this process runs at once: `--workers`, or one per core with
/// `--alone`; none otherwise, and none with `--remote-only` (kept for scripts of before).
pub(crate) fn local_workers(swarm: &SwarmArgs, remote_only: bool) -> anyhow::Result<usize> {
    let workers = swarm.workers();
    if swarm.alone() {
        if workers == Some(0) || remote_only {
            return Err(usage(
                "--alone runs every command in this process, so it needs workers: leave out \
                 --workers 0 and --remote-only",
            ));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        return Ok(workers.unwrap_or(cores));
    }
    if remote_only && workers.is_some_and(|n| n > 0) {
        return Err(usage(
            "--remote-only runs no command in this process; it cannot go with --workers N",
        ));
    }
    Ok(if remote_only { 0 } else { workers.unwrap_or(0) })
}

fn usage(message: &str) -> anyhow::Error {
    Exit {
        code: USAGE,
        message: message.into(),
    }
    .into()
}

/// When this process runs no command, looks that some peer takes the commands waiting
/// here: fails once none has been taken and every other peer has been idle for [`IDLE_LIMIT`] (they do not
/// serve shell commands). Quiet once a peer has taken one.
pub(crate) struct Watch {
    /// Still looking (this process runs no command, and none was taken yet).
    on: bool,
    last_check: Instant,
    /// Since when every other peer has been idle while commands waited here.
    idle_since: Option<Instant>,
}

impl Watch {
    pub(crate) fn new(runs_none_here: bool) -> Watch {
        Watch {
            on: runs_none_here,
            last_check: Instant::now(),
            idle_since: None,
        }
    }

    /// Called often; asks the swarm at most every [`CHECK_EVERY`].
    pub(crate) fn check(&mut self, client: &Peer) -> anyhow::Result<()> {
        if !self.on || self.last_check.elapsed() < CHECK_EVERY {
            return Ok(());
        }
        self.last_check = Instant::now();
        let stats = client.status()?.stats;
        if stats.given > 0 {
            // A peer took one: some peer serves shell commands.
            self.on = false;
            return Ok(());
        }
        let me = client.peer_id();
        let reports = client.swarm_status()?;
        let others: Vec<_> = reports.iter().filter(|answer| answer.peer != me).collect();
        let idle = others.iter().all(|answer| match &answer.report {
            Ok(r) => r.draining || (r.running == 0 && r.ready == 0),
            // A peer that does not answer takes nothing either.
            Err(_) => true,
        });
        if stats.ready == 0 || !idle {
            self.idle_since = None;
            return Ok(());
        }
        let since = *self.idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() < IDLE_LIMIT {
            return Ok(());
        }
        Err(Exit {
            code: Exit::CANNOT_JOIN,
            message: format!(
                "no peer runs shell commands: the {} other peers of the swarm stayed idle for \
                 {} s while {} commands waited here, and this process runs none (no --workers \
                 N). Peers run them only when started with `peer join --allow-shell` \
                 (PEER_ALLOW_SHELL, allow_shell = true)",
                others.len(),
                IDLE_LIMIT.as_secs(),
                stats.ready
            ),
        }
        .into())
    }
}

/// The note for a `peer map` on a swarm where no other peer ran any command.
pub(crate) const NONE_ELSEWHERE: &str = "every command ran in this process: no other peer \
     took one (peers run shell commands only when started with `peer join --allow-shell`)";
