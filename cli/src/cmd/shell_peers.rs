//! Who runs the shell commands of `peer map` and `peer submit`: this process (the user's
//! own machine, as always) and the peers started with `peer join --allow-shell`; others
//! never do. With `--remote-only` this process runs none, so some peer must: if none takes
//! a command while the others sit idle, the command fails and says why.

use std::time::{Duration, Instant};

use peer_core::NamedTask;
use peer_net::Peer;
use peer_workloads::shell::RunTask;

use super::Exit;
use super::swarm_args::SwarmArgs;

/// How long every other peer may stay idle while commands wait here, none taken yet, before
/// `--remote-only` gives up: an idle peer that serves shell commands steals within
/// milliseconds.
const IDLE_LIMIT: Duration = Duration::from_secs(5);

/// How often the peers are asked whether they are idle.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Exit code of a usage error.
const USAGE: u8 = 2;

/// Joins the swarm for `peer map` or `peer submit`: with `remote_only`, as a peer that does
/// not run shell commands itself, which needs other peers to run them.
pub(crate) fn join(swarm: &SwarmArgs, remote_only: bool) -> anyhow::Result<Peer> {
    if !remote_only {
        // This process runs its user's commands, never other members'.
        return swarm.join_with(|config| config.serve_own_only(RunTask::NAME));
    }
    if !swarm.joins_others() {
        return Err(Exit {
            code: USAGE,
            message: "--remote-only needs --bootstrap ADDR or --mdns: this process runs no \
                      commands, so other peers must"
                .into(),
        }
        .into());
    }
    let client = swarm.join_with(|config| config.withhold_task(RunTask::NAME))?;
    let me = client.peer_id();
    // The bootstrap peer may not serve shell commands while others of its swarm do: give
    // discovery the time an idle peer would take to steal before saying none does.
    let deadline = Instant::now() + IDLE_LIMIT;
    let serving = loop {
        let serving = (client.swarm_status()?.iter())
            .filter(|(peer, _)| *peer != me)
            .filter_map(|(_, report)| report.as_ref().ok())
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
                      with --remote-only this process runs none; start peers with \
                      `peer join --allow-shell` (PEER_ALLOW_SHELL, allow_shell = true)"
                .into(),
        }
        .into());
    }
    Ok(client)
}

/// Under `--remote-only`, looks that some peer takes the commands waiting here: fails once
/// none has been taken and every other peer has been idle for [`IDLE_LIMIT`] (they do not
/// serve shell commands). Quiet once a peer has taken one.
pub(crate) struct Watch {
    /// Still looking (`--remote-only`, and no command taken yet).
    on: bool,
    last_check: Instant,
    /// Since when every other peer has been idle while commands waited here.
    idle_since: Option<Instant>,
}

impl Watch {
    pub(crate) fn new(remote_only: bool) -> Watch {
        Watch {
            on: remote_only,
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
        let others: Vec<_> = reports.iter().filter(|(peer, _)| *peer != me).collect();
        let idle = others.iter().all(|(_, report)| match report {
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
                 {} s while {} commands waited here, and with --remote-only this process runs \
                 none. Peers run them only when started with `peer join --allow-shell` \
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
