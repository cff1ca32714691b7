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

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::builder::BoolishValueParser;
use peer_core::NamedTask;
use peer_net::{Config, Identity, Multiaddr, Peer, SwarmKey};
use peer_workloads::shell;
use signal_hook::consts::{SIGINT, SIGTERM};

use super::Exit;
use super::keygen::{IdentityError, load_identity, read_swarm_key, write_private};

/// Exit code of a usage error (a bad config file), as clap uses for bad flags.
const USAGE: u8 = 2;

/// Options of `peer join`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A TOML file with any of the keys listen, bootstrap, workers, mdns, swarm_key,
    /// insecure_open, allow_shell, shell_timeout, identity, join_timeout, drain_timeout;
    /// flags and PEER_* variables override it. Relative paths in it are relative to its
    /// directory.
    #[arg(long, env = "PEER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen on this address (repeatable, or comma-separated in PEER_LISTEN; default
    /// `/ip4/0.0.0.0/tcp/0` with a swarm key, `/ip4/127.0.0.1/tcp/0` without). Without a
    /// key, only loopback addresses unless --insecure-open.
    #[arg(long, env = "PEER_LISTEN", value_name = "ADDR", value_delimiter = ',')]
    listen: Vec<Multiaddr>,
    /// Join the swarm of this peer, `/ip4/.../tcp/.../p2p/<id>` or `/dns4/<name>/tcp/...`
    /// (repeatable, or comma-separated in PEER_BOOTSTRAP).
    #[arg(
        long,
        env = "PEER_BOOTSTRAP",
        value_name = "ADDR",
        value_delimiter = ',',
        value_parser = super::swarm_args::parse_bootstrap
    )]
    bootstrap: Vec<Multiaddr>,
    /// Tasks run at once, shell commands included (GNU parallel's -j: this peer's slots),
    /// 1 to 1024 (default: one per core).
    #[arg(
        short = 'j',
        long,
        env = "PEER_WORKERS",
        value_name = "N",
        value_parser = parse_join_workers
    )]
    workers: Option<usize>,
    /// Look for peers on the LAN with mDNS (the default with a swarm key; `--mdns false`
    /// or `--no-mdns` turns it off). Without a key, only with --insecure-open.
    #[arg(
        long,
        env = "PEER_MDNS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        overrides_with = "no_mdns",
    )]
    mdns: Option<bool>,
    /// Do not look for peers on the LAN with mDNS.
    #[arg(long, overrides_with = "mdns")]
    no_mdns: bool,
    /// A pre-shared swarm key file (`peer keygen` or `--new-swarm` writes one); only peers
    /// with the same key connect.
    #[arg(long, env = "PEER_SWARM_KEY", value_name = "FILE")]
    swarm_key: Option<PathBuf>,
    /// Start a new private swarm: create its key, swarm.key (mode 0600), in the state
    /// directory (the identity file's), or use the one an earlier --new-swarm created
    /// there; never replaces a key. The join line says how to give it to the next machine.
    #[arg(long, env = "PEER_NEW_SWARM", value_parser = BoolishValueParser::new())]
    new_swarm: bool,
    /// Without a swarm key, listen on addresses other than loopback (or use mDNS) anyway:
    /// anyone who reaches the port may then join, submit tasks and run the tasks this peer
    /// serves.
    #[arg(
        long,
        env = "PEER_INSECURE_OPEN",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
    )]
    insecure_open: Option<bool>,
    /// Run shell commands for other peers (`peer map`, `peer submit`): any member of the
    /// swarm may then run programs here as this user. Off by default.
    #[arg(
        long,
        env = "PEER_ALLOW_SHELL",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
    )]
    allow_shell: Option<bool>,
    /// Kill a shell command (with what it started) that runs longer than SECS; 0: no
    /// limit [default: none].
    #[arg(long, env = "PEER_SHELL_TIMEOUT", value_name = "SECS", value_parser = parse_secs)]
    shell_timeout: Option<Duration>,
    /// Keep this peer's identity (its peer id) in FILE, created with mode 0600 if missing
    /// [default: $XDG_DATA_HOME/peer/identity or ~/.local/share/peer/identity].
    #[arg(long, env = "PEER_IDENTITY", value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Write this peer's addresses to FILE (mode 0600) for the commands of this machine
    /// (`peer map`, `status`, ...) to find the swarm without --bootstrap; removed from it
    /// when the peer leaves [default: $XDG_DATA_HOME/peer/swarm.json]. `none`: do not.
    #[arg(long, env = "PEER_SWARM_FILE", value_name = "FILE")]
    swarm_file: Option<PathBuf>,
    /// Use a new identity (a new peer id) for this run only; ignores --identity.
    #[arg(long, env = "PEER_EPHEMERAL", value_parser = BoolishValueParser::new())]
    ephemeral: bool,
    /// With --bootstrap, give up (exit 3) if no peer connects within SECS; 0 waits forever
    /// [default: 30].
    #[arg(long, env = "PEER_JOIN_TIMEOUT", value_name = "SECS", value_parser = parse_secs)]
    join_timeout: Option<Duration>,
    /// On SIGINT or SIGTERM, wait up to SECS for the running tasks to finish before
    /// leaving [default: 30].
    #[arg(long, env = "PEER_DRAIN_TIMEOUT", value_name = "SECS", value_parser = parse_secs)]
    drain_timeout: Option<Duration>,
}

/// The keys a config file may hold: the long flags' names, with `_` for `-`.
const KEYS: [&str; 12] = [
    "listen",
    "bootstrap",
    "workers",
    "mdns",
    "swarm_key",
    "insecure_open",
    "allow_shell",
    "shell_timeout",
    "identity",
    "swarm_file",
    "join_timeout",
    "drain_timeout",
];

/// The config file, every key optional.
#[derive(Debug, Default, serde::Deserialize)]
struct FileConfig {
    listen: Option<Addrs>,
    bootstrap: Option<Addrs>,
    workers: Option<usize>,
    mdns: Option<bool>,
    swarm_key: Option<PathBuf>,
    insecure_open: Option<bool>,
    allow_shell: Option<bool>,
    shell_timeout: Option<f64>,
    identity: Option<PathBuf>,
    swarm_file: Option<PathBuf>,
    join_timeout: Option<f64>,
    drain_timeout: Option<f64>,
}

/// One address or a list of them.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum Addrs {
    One(String),
    Many(Vec<String>),
}

/// Where the identity comes from.
#[derive(Debug)]
enum IdentitySource {
    /// A new one for this run.
    Ephemeral,
    /// The default file (None: no home directory to put it in).
    Default(Option<PathBuf>),
    /// A file asked for by flag, variable or config file.
    Given(PathBuf),
}

/// `peer join`'s settings once flags, variables, the file and defaults are merged.
#[derive(Debug)]
struct Settings {
    listen: Vec<Multiaddr>,
    bootstrap: Vec<Multiaddr>,
    workers: Option<usize>,
    /// None: peer_net's default (on with a swarm key).
    mdns: Option<bool>,
    swarm_key: Option<PathBuf>,
    new_swarm: bool,
    insecure_open: bool,
    allow_shell: bool,
    /// None or zero: no limit.
    shell_timeout: Option<Duration>,
    identity: IdentitySource,
    /// Where to write this peer's addresses (None: nowhere).
    swarm_file: Option<PathBuf>,
    join_timeout: Duration,
    drain_timeout: Duration,
}

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
    let (identity, identity_note, _lock) = identity(&settings.identity)?;
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

/// The swarm key in use, where it is, and how it came to be there.
struct Key {
    key: SwarmKey,
    path: PathBuf,
    note: &'static str,
}

/// The key of `--swarm-key`, or of `--new-swarm` (made in the state directory unless an
/// earlier `--new-swarm` made it), or none.
fn swarm_key(settings: &Settings) -> anyhow::Result<Option<Key>> {
    if let Some(path) = &settings.swarm_key {
        return Ok(Some(Key {
            // A key file that is missing or not a key is a bad flag: a usage error.
            key: read_swarm_key(path).map_err(|e| usage(format!("{e:#}")))?,
            path: path.clone(),
            note: "given",
        }));
    }
    if !settings.new_swarm {
        return Ok(None);
    }
    let dir = state_dir(&settings.identity).ok_or_else(|| {
        usage(
            "--new-swarm: no state directory to keep the key in (no $HOME or \
             $XDG_DATA_HOME); write one with `peer keygen --out FILE` and give --swarm-key FILE"
                .to_string(),
        )
    })?;
    let (path, created) = new_swarm_key(&dir)?;
    let note = if created {
        "created by --new-swarm: a new private swarm"
    } else {
        "made by an earlier --new-swarm, kept: the same swarm as before"
    };
    Ok(Some(Key {
        key: read_swarm_key(&path)?,
        path,
        note,
    }))
}

/// The directory of the identity file, where `--new-swarm` keeps the swarm key: the default
/// one's for `--ephemeral` (None without a home directory).
fn state_dir(identity: &IdentitySource) -> Option<PathBuf> {
    let file = match identity {
        IdentitySource::Given(path) => Some(path.clone()),
        IdentitySource::Default(path) => path.clone(),
        IdentitySource::Ephemeral => default_identity_path(),
    }?;
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => Some(dir.to_path_buf()),
        _ => Some(PathBuf::from(".")),
    }
}

/// `dir/swarm.key`, written with a new key (mode 0600, in a directory of mode 0700 if it
/// has to be made) unless it exists; says whether it was made now.
fn new_swarm_key(dir: &Path) -> anyhow::Result<(PathBuf, bool)> {
    use std::os::unix::fs::DirBuilderExt;
    let path = dir.join("swarm.key");
    if path.exists() {
        return Ok((path, false));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let key = SwarmKey::generate().context("generating a swarm key")?;
    match write_private(&path, format!("{key}\n").as_bytes(), false) {
        Ok(()) => Ok((path, true)),
        // Another peer made it first: the same swarm.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((path, false)),
        Err(e) => Err(anyhow::Error::from(e).context(format!("writing {}", path.display()))),
    }
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
        if waiting_for_first || ticks % STOPPED_CHECK_TICKS == 0 {
            let status = client.status().context("the peer's event loop stopped")?;
            let error = status.last_dial_error.as_deref();
            // A bootstrap peer with another peer id will not turn into the right one.
            let wrong = super::dial::Why::of(error) == super::dial::Why::WrongPeer;
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

/// Merges flags and variables (which clap has merged), the config file and defaults.
fn settings(args: Args) -> anyhow::Result<Settings> {
    let (file, base) = match &args.config {
        Some(path) => (read_config(path)?, path.parent().map(Path::to_path_buf)),
        None => (FileConfig::default(), None),
    };
    let relative = |p: PathBuf| match &base {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p,
    };
    let config_name = args.config.as_deref().unwrap_or(Path::new("")).display();
    let file_addrs = |addrs: Option<Addrs>, key: &str| -> anyhow::Result<Vec<Multiaddr>> {
        let list = match addrs {
            None => Vec::new(),
            Some(Addrs::One(a)) => vec![a],
            Some(Addrs::Many(list)) => list,
        };
        list.iter()
            .map(|a| {
                a.parse().map_err(|e| {
                    usage(format!(
                        "{config_name}: {key}: {a:?} is not an address: {e}"
                    ))
                })
            })
            .collect()
    };
    let file_secs = |secs: Option<f64>, key: &str| -> anyhow::Result<Option<Duration>> {
        secs.map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                usage(format!(
                    "{config_name}: {key}: {s} is not a number of seconds"
                ))
            })
        })
        .transpose()
    };
    let listen = match args.listen.is_empty() {
        true => file_addrs(file.listen, "listen")?,
        false => args.listen,
    };
    let bootstrap = match args.bootstrap.is_empty() {
        true => file_addrs(file.bootstrap, "bootstrap")?,
        false => args.bootstrap,
    };
    for addr in &bootstrap {
        super::swarm_args::parse_bootstrap(&addr.to_string())
            .map_err(|e| usage(format!("{config_name}: bootstrap: {e}")))?;
    }
    let workers = args.workers.or(file.workers);
    if let Some(n) = workers {
        parse_join_workers(&n.to_string())
            .map_err(|e| usage(format!("{config_name}: workers: {e}")))?;
    }
    let swarm_file = match args.swarm_file.or(file.swarm_file.map(relative)) {
        Some(path) if path.as_os_str() == "none" => None,
        Some(path) => Some(path),
        None => super::swarm_file::default_path(),
    };
    let mdns = if args.no_mdns {
        Some(false)
    } else {
        args.mdns.or(file.mdns)
    };
    let swarm_key = args.swarm_key.or(file.swarm_key.map(relative));
    if args.new_swarm && swarm_key.is_some() {
        return Err(usage(
            "--new-swarm makes a new swarm key; it cannot go with --swarm-key FILE \
             (PEER_SWARM_KEY, swarm_key)"
                .to_string(),
        ));
    }
    let identity = if args.ephemeral {
        IdentitySource::Ephemeral
    } else {
        match args.identity.or(file.identity.map(relative)) {
            Some(path) => IdentitySource::Given(path),
            None => IdentitySource::Default(default_identity_path()),
        }
    };
    let join_timeout = args
        .join_timeout
        .or(file_secs(file.join_timeout, "join_timeout")?);
    let drain_timeout = args
        .drain_timeout
        .or(file_secs(file.drain_timeout, "drain_timeout")?);
    let shell_timeout = args
        .shell_timeout
        .or(file_secs(file.shell_timeout, "shell_timeout")?)
        .filter(|limit| !limit.is_zero());
    let insecure_open = args.insecure_open.or(file.insecure_open).unwrap_or(false);
    let allow_shell = args.allow_shell.or(file.allow_shell).unwrap_or(false);
    Ok(Settings {
        listen,
        bootstrap,
        workers,
        mdns,
        swarm_key,
        new_swarm: args.new_swarm,
        insecure_open,
        allow_shell,
        shell_timeout,
        identity,
        swarm_file,
        join_timeout: join_timeout.unwrap_or(Duration::from_secs(30)),
        drain_timeout: drain_timeout.unwrap_or(Duration::from_secs(30)),
    })
}

/// Reads a config file, refusing keys it does not know (naming them all).
fn read_config(path: &Path) -> anyhow::Result<FileConfig> {
    let name = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read the config file {name}: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| usage(format!("{name} is not valid TOML: {e}")))?;
    let unknown: Vec<&str> = table
        .keys()
        .map(String::as_str)
        .filter(|k| !KEYS.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(usage(format!(
            "{name}: unknown key{} {} (known keys: {})",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            KEYS.join(", ")
        )));
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e| usage(format!("{name}: {e}")))
}

fn usage(message: String) -> anyhow::Error {
    Exit {
        code: USAGE,
        message,
    }
    .into()
}

/// `peer join --workers`: 1 to [`MAX_WORKERS`](super::swarm_args::MAX_WORKERS) (a peer
/// with none would serve nothing).
fn parse_join_workers(s: &str) -> Result<usize, String> {
    match super::swarm_args::parse_workers(s)? {
        0 => Err("a peer needs at least 1 worker (leave --workers out for one per core)".into()),
        n => Ok(n),
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let number = s.strip_suffix('s').unwrap_or(s);
    number
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds"))
}

/// `$XDG_DATA_HOME/peer/identity`, or `~/.local/share/peer/identity`.
fn default_identity_path() -> Option<PathBuf> {
    Some(data_dir()?.join("identity"))
}

/// Where `peer` keeps its state by default: `$XDG_DATA_HOME/peer`, or
/// `~/.local/share/peer` (None without a home directory).
pub(crate) fn data_dir() -> Option<PathBuf> {
    let nonempty = |v: std::ffi::OsString| (!v.is_empty()).then(|| PathBuf::from(v));
    let data = std::env::var_os("XDG_DATA_HOME")
        .and_then(nonempty)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(nonempty)
                .map(|home| home.join(".local/share"))
        })?;
    Some(data.join("peer"))
}

/// The identity to join with, a line saying where it came from, and the locked file that
/// stops a second peer on this machine from using the same one.
fn identity(source: &IdentitySource) -> anyhow::Result<(Identity, String, Option<File>)> {
    let fresh = |why: &str| (Identity::generate(), why.to_string(), None);
    match source {
        IdentitySource::Ephemeral => Ok(fresh("new for this run (--ephemeral)")),
        IdentitySource::Given(path) => {
            let (identity, lock, created) = load_identity(path).map_err(|e| match e {
                IdentityError::InUse => anyhow::Error::from(Exit {
                    code: Exit::FAILED,
                    message: format!(
                        "the identity {} is in use by another peer on this machine; give \
                         each peer its own --identity FILE",
                        path.display()
                    ),
                }),
                IdentityError::Other(e) => e,
            })?;
            Ok((identity, identity_note(path, created), Some(lock)))
        }
        IdentitySource::Default(None) => {
            super::say(format_args!(
                "no $HOME or $XDG_DATA_HOME to keep an identity in; using a new one \
                 for this run (--identity FILE keeps one)"
            ));
            Ok(fresh("new for this run (no home directory to keep one in)"))
        }
        IdentitySource::Default(Some(path)) => match load_identity(path) {
            Ok((identity, lock, created)) => {
                Ok((identity, identity_note(path, created), Some(lock)))
            }
            // Several peers on one machine (tests, a laptop): the first keeps the
            // identity, the others run with new ones.
            Err(IdentityError::InUse) => Ok(fresh(
                "new for this run (the default identity is in use by another peer here; \
                 --identity FILE keeps one per peer)",
            )),
            Err(IdentityError::Other(e)) => {
                super::say(format_args!(
                    "cannot keep an identity in {}: {e:#}; using a new one for this run",
                    path.display()
                ));
                Ok(fresh("new for this run"))
            }
        },
    }
}

fn identity_note(path: &Path, created: bool) -> String {
    let how = if created {
        "created"
    } else {
        "kept across restarts"
    };
    format!("{} ({how})", path.display())
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

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(flags: &[&str]) -> Settings {
        use clap::Parser;
        let argv = std::iter::once("join").chain(flags.iter().copied());
        settings(Cli::try_parse_from(argv).unwrap().args).unwrap()
    }

    #[test]
    fn the_last_mdns_flag_wins() {
        assert_eq!(
            parse(&[]).mdns,
            None,
            "peer_net decides: on with a key only"
        );
        assert_eq!(parse(&["--no-mdns"]).mdns, Some(false));
        assert_eq!(parse(&["--mdns", "false"]).mdns, Some(false));
        assert_eq!(parse(&["--mdns", "--no-mdns"]).mdns, Some(false));
        assert_eq!(parse(&["--no-mdns", "--mdns"]).mdns, Some(true));
    }

    #[test]
    fn safety_settings_are_off_unless_asked_for() {
        let s = parse(&[]);
        assert!(!s.insecure_open && !s.allow_shell && !s.new_swarm);
        assert_eq!(s.shell_timeout, None);
        let s = parse(&["--insecure-open", "--allow-shell", "--shell-timeout", "90"]);
        assert!(s.insecure_open && s.allow_shell);
        assert_eq!(s.shell_timeout, Some(Duration::from_secs(90)));
        let s = parse(&["--allow-shell", "false", "--shell-timeout", "0"]);
        assert!(!s.allow_shell);
        assert_eq!(s.shell_timeout, None, "0 is no limit");
        assert!(parse(&["--new-swarm"]).new_swarm);
        use clap::Parser;
        let args = Cli::try_parse_from(["join", "--new-swarm", "--swarm-key", "k"])
            .unwrap()
            .args;
        let error = settings(args).unwrap_err();
        assert_eq!(error.downcast_ref::<Exit>().map(|e| e.code), Some(2));
        assert!(error.to_string().contains("--swarm-key"), "{error}");
    }

    #[test]
    fn new_swarm_keeps_its_key_beside_the_identity_and_never_replaces_it() {
        let dir = std::env::temp_dir().join(format!("peer-join-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = dir.join("state");
        let identity = IdentitySource::Given(state.join("identity"));
        assert_eq!(state_dir(&identity), Some(state.clone()));
        assert_eq!(
            state_dir(&IdentitySource::Given("identity".into())),
            Some(PathBuf::from("."))
        );
        let (path, created) = new_swarm_key(&state).unwrap();
        assert!(created);
        assert_eq!(path, state.join("swarm.key"));
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&state), 0o700);
        let first = std::fs::read_to_string(&path).unwrap();
        first.parse::<SwarmKey>().unwrap();
        let (again, created) = new_swarm_key(&state).unwrap();
        assert!(!created);
        assert_eq!(again, path);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flags_beat_the_file_and_paths_in_it_are_relative_to_it() {
        let dir = std::env::temp_dir().join(format!("peer-join-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("peer.toml");
        std::fs::write(
            &file,
            "workers = 3\nmdns = false\nswarm_key = \"swarm.key\"\n\
             allow_shell = true\ninsecure_open = true\nshell_timeout = 2.5\n\
             bootstrap = \"/ip4/127.0.0.1/tcp/9/p2p/12D3KooWEXgfLK2UbCmJ4e7cfSAovUd4RkSjSYzQcYbDVRFeYJpu\"\n\
             drain_timeout = 5\njoin_timeout = 0.5\n",
        )
        .unwrap();
        let config = file.to_str().unwrap();
        let s = parse(&["--config", config]);
        assert_eq!(s.workers, Some(3));
        assert_eq!(s.mdns, Some(false));
        assert_eq!(s.swarm_key, Some(dir.join("swarm.key")));
        assert!(s.allow_shell && s.insecure_open);
        assert_eq!(s.shell_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(s.bootstrap.len(), 1);
        assert_eq!(s.drain_timeout, Duration::from_secs(5));
        assert_eq!(s.join_timeout, Duration::from_millis(500));
        let s = parse(&[
            "--config",
            config,
            "--workers",
            "1",
            "--mdns",
            "--allow-shell",
            "false",
        ]);
        assert_eq!(s.workers, Some(1));
        assert_eq!(s.mdns, Some(true));
        assert!(!s.allow_shell, "a flag's false beats the file's true");
        std::fs::write(&file, "workers = 3\nwokers = 2\nlisten_on = \"x\"\n").unwrap();
        use clap::Parser;
        let args = Cli::try_parse_from(["join", "--config", config])
            .unwrap()
            .args;
        let error = settings(args).unwrap_err().to_string();
        assert!(error.contains("unknown keys listen_on, wokers"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

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

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_secs("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_secs("0.5s"), Ok(Duration::from_millis(500)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
    }
}
