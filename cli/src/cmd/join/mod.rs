//! `peer join`: run a peer until SIGINT or SIGTERM, serving the named tasks this binary
//! registers, then leave gracefully.
//!
//! Each setting comes from, first to last: a flag, a `PEER_*` environment variable, the
//! TOML file of `--config` (`PEER_CONFIG`), the default. The peer keeps its identity (and so
//! its peer id) in a file across restarts. The first SIGINT or SIGTERM drains it: it takes
//! no more work, hands the queued tasks of other peers back to their owners and waits for
//! the running ones; a second signal ends it at once. `docs/deploy.md` shows it under
//! systemd, Kubernetes and Slurm.
//!
//! Safe by default: without a swarm key it listens on loopback only with mDNS off (and
//! says so); an address other than loopback or mDNS without a key is refused unless
//! `--insecure-open`. `--new-swarm` makes the key of a new private swarm in the state
//! directory. Shell commands (`peer map`, `peer submit`) run here only with `--allow-shell`.

mod identity;
mod settings;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use peer_core::NamedTask;
use peer_net::{Config, Multiaddr, Peer};
use peer_workloads::shell;
use signal_hook::consts::{SIGINT, SIGTERM};

use super::Exit;
pub(crate) use identity::data_dir;
use identity::{Key, swarm_key};
pub(crate) use settings::Args;
use settings::{Settings, settings};

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    // Before anything else, so that a signal during start-up is not fatal but drains.
    let signals = watch_signals()?;
    let settings = settings(args)?;
    let mut config = Config::new().insecure_open(settings.insecure_open);
    if let Some(on) = settings.mdns {
        config = config.mdns(on);
    }
    for addr in &settings.listen {
        config = config.listen(addr.clone());
    }
    if let Some(n) = settings.workers {
        config = config.workers(n);
    }
    let key = swarm_key(&settings)?;
    if let Some(key) = &key {
        config = config.swarm_key(key.key);
    }
    if !settings.allow_shell {
        config = config.withhold_task(shell::RunTask::NAME);
    }
    let runs = if settings.allow_shell {
        "any task this peer serves, shell commands as this user included (--allow-shell)"
    } else {
        "any task this peer serves (not shell commands: no --allow-shell)"
    };
    super::open::check(
        &config,
        settings.insecure_open,
        "--new-swarm (or --swarm-key FILE)",
        runs,
    )?;
    let open = super::open::exposure(&config).is_some();
    if key.is_none() && !open {
        super::say(format_args!(
            "warning: no swarm key: this swarm is open to every process of this machine \
             (on loopback only); for a private one, start it with --new-swarm (or --swarm-key \
             FILE from `peer keygen`)"
        ));
    }
    shell::set_time_limit(settings.shell_timeout);
    for addr in resolve_bootstrap(&settings, &signals)? {
        config = config.bootstrap(addr);
    }
    // `_lock` keeps the identity file locked while this peer runs.
    let (identity, identity_note, _lock) = identity::identity(&settings.identity)?;
    config = config.identity(identity);
    let workers = config.worker_count();
    let wide = config.listen_addrs().iter().any(|a| {
        let text = a.to_string();
        text.starts_with("/ip4/0.0.0.0/") || text.starts_with("/ip6/::/")
    });
    let client = super::open::join(config, "start the peer")?;
    shell::set_peer(client.peer_id().to_string());
    let addrs = addresses(&client, wide);
    println!("peer {} with {workers} workers", client.peer_id());
    println!("identity: {identity_note}");
    match &key {
        Some(key) => println!("swarm key: {} ({})", key.path.display(), key.note),
        None if open => {
            println!("swarm key: none (--insecure-open: anyone who reaches it can join)")
        }
        None => println!("swarm key: none (only processes of this machine can join)"),
    }
    match (settings.allow_shell, settings.shell_timeout) {
        (false, _) => println!("shell commands: not served (--allow-shell serves them)"),
        (true, Some(limit)) if !limit.is_zero() => println!(
            "shell commands: served, each killed after {} s",
            limit.as_secs_f64()
        ),
        (true, _) => println!("shell commands: served"),
    }
    for addr in &addrs {
        println!("listening on {addr}");
    }
    let best = addrs
        .iter()
        .find(|a| !is_loopback(a))
        .or(addrs.first())
        .context("no listen address")?;
    print_join_line(best, key.as_ref());
    // Held until this peer has left: the commands of this machine find it meanwhile.
    let _registration = register(&settings, &client, &addrs, key.as_ref());
    serve(&client, &settings, &signals)?;
    drain(client, settings.drain_timeout)
}

/// Adds this peer to the swarm file (if any), saying so; a file that cannot be written is a
/// warning, not a reason to stop serving.
fn register(
    settings: &Settings,
    client: &Peer,
    addrs: &[Multiaddr],
    key: Option<&Key>,
) -> Option<super::swarm_file::Registration> {
    let path = settings.swarm_file.as_ref()?;
    let member = super::swarm_file::Member {
        peer: client.peer_id().to_string(),
        pid: std::process::id(),
        addrs: addrs.iter().map(ToString::to_string).collect(),
        swarm_key: key.map(|k| std::path::absolute(&k.path).unwrap_or_else(|_| k.path.clone())),
        since: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    match super::swarm_file::register(path, member) {
        Ok(registration) => {
            println!(
                "swarm file: {} (commands of this machine find the swarm there)",
                path.display()
            );
            Some(registration)
        }
        Err(e) => {
            super::say(format_args!(
                "warning: {e:#}; give commands --bootstrap instead"
            ));
            None
        }
    }
}

/// The addresses to bootstrap from. Listening on all interfaces (`wide`), the first
/// address may come before the others: wait up to a second for one that is not loopback.
fn addresses(client: &Peer, wide: bool) -> Vec<Multiaddr> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let addrs = client.addresses();
        if !wide || addrs.iter().any(|a| !is_loopback(a)) || Instant::now() >= deadline {
            return addrs;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Prints how to join this peer: from another machine when it listens elsewhere than on
/// loopback. With a key, how to give it to that machine: copy the file. The key itself is
/// never printed and never goes on a command line.
fn print_join_line(best: &Multiaddr, key: Option<&Key>) {
    let here = is_loopback(best);
    match key {
        Some(key) if !here => {
            let name = key.path.file_name().map_or_else(
                || key.path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            println!(
                "join it from another machine: copy {} there (keep it mode 0600: it is the \
                 swarm's secret), then run:",
                key.path.display()
            );
            println!("  {} join --bootstrap {best} --swarm-key {name}", program());
        }
        Some(key) => {
            println!("join it from this machine with:");
            println!(
                "  {} join --bootstrap {best} --swarm-key {}",
                program(),
                key.path.display()
            );
        }
        None if !here => {
            println!("join it from another machine (as openly) with:");
            println!(
                "  {} join --bootstrap {best} --insecure-open --listen /ip4/0.0.0.0/tcp/0",
                program()
            );
        }
        None => {
            println!("join it from this machine with:");
            println!("  {} join --bootstrap {best}", program());
        }
    }
}

/// The name this binary was started as (`peer`, or a user's binary built on `peer_cli`), for
/// the commands it prints.
pub(crate) fn program() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(std::path::Path::file_name)
        .map_or_else(|| "peer".to_string(), |n| n.to_string_lossy().into_owned())
}

/// Whether `addr` is on loopback (127.0.0.0/8 or ::1).
fn is_loopback(addr: &Multiaddr) -> bool {
    let text = addr.to_string();
    text.starts_with("/ip4/127.") || text.starts_with("/ip6/::1/")
}

/// The bootstrap addresses with `/dns`, `/dns4` and `/dns6` names resolved (the transport
/// takes IP addresses only), retrying every second until the join time-out while none
/// resolves (a Kubernetes pod's name appears in DNS only once it runs).
fn resolve_bootstrap(
    settings: &Settings,
    signals: &mpsc::Receiver<i32>,
) -> anyhow::Result<Vec<Multiaddr>> {
    let start = Instant::now();
    loop {
        let (resolved, failed): (Vec<_>, Vec<_>) = settings
            .bootstrap
            .iter()
            .map(resolve)
            .partition(Result::is_ok);
        let failed: Vec<anyhow::Error> = failed.into_iter().filter_map(Result::err).collect();
        if failed.is_empty() || !resolved.is_empty() {
            for e in &failed {
                super::say(format_args!("warning: skipping a bootstrap address: {e:#}"));
            }
            return Ok(resolved.into_iter().filter_map(Result::ok).collect());
        }
        let timeout = settings.join_timeout;
        if !timeout.is_zero() && start.elapsed() >= timeout {
            let why: Vec<String> = failed.iter().map(|e| format!("{e:#}")).collect();
            return Err(Exit {
                code: Exit::CANNOT_JOIN,
                message: format!(
                    "cannot join the swarm: no bootstrap address resolved within {} s: {}",
                    timeout.as_secs_f64(),
                    why.join("; ")
                ),
            }
            .into());
        }
        if let Ok(signal) = signals.recv_timeout(Duration::from_secs(1)) {
            return Err(Exit {
                code: Exit::INTERRUPTED,
                message: format!("{} before joining", signal_name(signal)),
            }
            .into());
        }
    }
}

/// `addr` with a leading `/dns*/<host>` replaced by the host's first IP address.
pub(crate) fn resolve(addr: &Multiaddr) -> anyhow::Result<Multiaddr> {
    use std::net::ToSocketAddrs;
    let text = addr.to_string();
    let parts: Vec<&str> = text.split('/').collect();
    let (family, host, rest) = match parts.as_slice() {
        ["", family @ ("dns" | "dns4" | "dns6"), host, rest @ ..] => (*family, *host, rest),
        _ => return Ok(addr.clone()),
    };
    let ip = (host, 0)
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .map(|socket| socket.ip())
        .find(|ip| match family {
            "dns4" => ip.is_ipv4(),
            "dns6" => ip.is_ipv6(),
            _ => true,
        })
        .with_context(|| format!("{host} has no {family} address"))?;
    let protocol = if ip.is_ipv4() { "ip4" } else { "ip6" };
    let mut text = format!("/{protocol}/{ip}");
    for part in rest {
        text.push('/');
        text.push_str(part);
    }
    Ok(text.parse()?)
}

/// How often `serve` looks at the number of peers.
const SERVE_TICK: Duration = Duration::from_millis(250);
/// Every this many ticks (5 s) it also checks that the event loop still answers.
const STOPPED_CHECK_TICKS: u64 = 20;

/// Serves until the first signal, printing changes in the number of peers; with
/// `--bootstrap`, fails if no peer connects within the join time-out.
fn serve(client: &Peer, settings: &Settings, signals: &mpsc::Receiver<i32>) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut waiting_for_first = !settings.bootstrap.is_empty();
    // Said once while it waits: why the bootstrap peers cannot be reached yet.
    let mut said_why = false;
    let mut last_peers = usize::MAX;
    let mut ticks = 0u64;
    loop {
        match signals.recv_timeout(SERVE_TICK) {
            Ok(signal) => {
                println!(
                    "{}: draining: taking no more work, handing queued tasks back to their \
                     owners, waiting up to {} s for running tasks (send it again to leave at once)",
                    signal_name(signal),
                    settings.drain_timeout.as_secs_f64()
                );
                return Ok(());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => anyhow::bail!("the signal thread ended"),
        }
        // Read without waking the event loop: an idle peer stays idle.
        let peers = client.peers();
        if peers != last_peers {
            last_peers = peers;
            println!(
                "{peers} peer{} connected",
                if peers == 1 { "" } else { "s" }
            );
        }
        if peers > 0 {
            waiting_for_first = false;
        }
        ticks += 1;
        let timed_out = waiting_for_first
            && !settings.join_timeout.is_zero()
            && start.elapsed() >= settings.join_timeout;
        if waiting_for_first || ticks.is_multiple_of(STOPPED_CHECK_TICKS) {
            let status = client.status().context("the peer's event loop stopped")?;
            let error = status.last_dial_error.as_deref();
            // A bootstrap peer with another peer id will not turn into the right one.
            let why = super::dial::Why::of(error);
            let wrong = why == super::dial::Why::WrongPeer;
            if waiting_for_first && !said_why && why != super::dial::Why::Nothing && !wrong {
                // A peer started before its bootstrap peer (a service, a pod) waits for it:
                // say why meanwhile, not only at the time-out.
                said_why = true;
                let until = match settings.join_timeout.as_secs_f64() {
                    0.0 => "for good (--join-timeout 0)".to_string(),
                    secs => format!("for up to {secs} s (--join-timeout)"),
                };
                super::say(format_args!(
                    "not joined yet: {}; trying again {until}",
                    why.describe()
                ));
            }
            if waiting_for_first && (timed_out || wrong) {
                return Err(Exit {
                    code: Exit::CANNOT_JOIN,
                    message: super::dial::cannot_join(&settings.bootstrap, start.elapsed(), error),
                }
                .into());
            }
        }
    }
}

/// Drains the peer, leaves the swarm and says how it went: exit 0 if everything was
/// handed back or finished in time, 130 if tasks were left unfinished.
fn drain(client: Peer, timeout: Duration) -> anyhow::Result<()> {
    let drained = client.drain(timeout).context("draining")?;
    println!(
        "drained: handed back {} tasks to their owners, {} unfinished",
        drained.handed_back, drained.unfinished
    );
    if !drained.complete {
        // Shell commands run in their own process groups: stop those still running.
        peer_workloads::shell::stop_all();
    }
    leave(client);
    if drained.complete {
        println!("left the swarm");
        Ok(())
    } else {
        Err(Exit {
            code: Exit::INTERRUPTED,
            message: format!(
                "left the swarm with {} tasks unfinished after {} s; their owners will run \
                 them again",
                drained.unfinished,
                timeout.as_secs_f64()
            ),
        }
        .into())
    }
}

/// Leaves the swarm by dropping the client, but waits for that at most 2 s: a task still
/// running after the drain time-out would hold the drop until it ends. Exiting closes the
/// connections all the same, and the owners run such tasks again.
fn leave(client: Peer) {
    let (tx, rx) = mpsc::sync_channel(1);
    let dropper = std::thread::Builder::new()
        .name("leave".into())
        .spawn(move || {
            drop(client);
            let _ = tx.send(());
        });
    if dropper.is_ok() {
        let _ = rx.recv_timeout(Duration::from_secs(2));
    }
}

/// Starts a thread that forwards the first SIGINT or SIGTERM and ends the process with 130
/// on the second.
fn watch_signals() -> anyhow::Result<mpsc::Receiver<i32>> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing the signal handlers")?;
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen == 1 {
                    let _ = tx.try_send(signal);
                } else {
                    super::say(format_args!(
                        "{} again: leaving at once without draining",
                        signal_name(signal)
                    ));
                    peer_workloads::shell::stop_all();
                    std::process::exit(Exit::INTERRUPTED.into());
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(rx)
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

/// The address a `peer join` child prints for others to bootstrap from, read from its
/// standard output. The rest is read in a thread of its own, so the child never blocks on
/// a full pipe; the count of each `N peers connected` line, before the address or after,
/// goes to `on_peers`.
pub fn read_bootstrap_line(
    stdout: Option<std::process::ChildStdout>,
    mut on_peers: impl FnMut(usize) + Send + 'static,
) -> anyhow::Result<Multiaddr> {
    use std::io::BufRead;
    let stdout = stdout.context("the peer's output is not piped")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut follow = move |line: &str| {
        let peers = (line.strip_suffix(" peers connected"))
            .or_else(|| line.strip_suffix(" peer connected"));
        if let Some(n) = peers.and_then(|n| n.trim().parse().ok()) {
            on_peers(n);
        }
    };
    for line in lines.by_ref() {
        let line = line?;
        follow(&line);
        let printed = line.trim().split_once(" join --bootstrap ");
        if let Some((_, rest)) = printed {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            let addr = addr.parse().context("the printed address")?;
            // On past a line that is not UTF-8 too, so the child never blocks on its pipe.
            std::thread::spawn(move || {
                lines.for_each(|line| {
                    if let Ok(line) = line {
                        follow(&line);
                    }
                });
            });
            return Ok(addr);
        }
    }
    anyhow::bail!("the peer ended before printing its address")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_resolve_to_ip_addresses() {
        let id = "12D3KooWEXgfLK2UbCmJ4e7cfSAovUd4RkSjSYzQcYbDVRFeYJpu";
        let addr: Multiaddr = format!("/dns4/localhost/tcp/4001/p2p/{id}")
            .parse()
            .unwrap();
        assert_eq!(
            resolve(&addr).unwrap().to_string(),
            format!("/ip4/127.0.0.1/tcp/4001/p2p/{id}")
        );
        let ip: Multiaddr = format!("/ip4/10.0.0.5/tcp/1/p2p/{id}").parse().unwrap();
        assert_eq!(resolve(&ip).unwrap(), ip);
        let nowhere: Multiaddr = "/dns4/nowhere.invalid/tcp/1".parse().unwrap();
        assert!(resolve(&nowhere).is_err());
    }
}
