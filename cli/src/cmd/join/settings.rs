//! `peer join`'s settings: each from, first to last, a flag, a `PEER_*` environment
//! variable, the TOML file of `--config` (`PEER_CONFIG`), the default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::BoolishValueParser;
use peer_net::Multiaddr;

use super::super::Exit;
use super::identity::default_identity_path;

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
        value_parser = super::super::swarm_args::parse_bootstrap
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
pub(super) enum IdentitySource {
    /// A new one for this run.
    Ephemeral,
    /// The default file (None: no home directory to put it in).
    Default(Option<PathBuf>),
    /// A file asked for by flag, variable or config file.
    Given(PathBuf),
}

/// `peer join`'s settings once flags, variables, the file and defaults are merged.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) listen: Vec<Multiaddr>,
    pub(super) bootstrap: Vec<Multiaddr>,
    pub(super) workers: Option<usize>,
    /// None: peer_net's default (on with a swarm key).
    pub(super) mdns: Option<bool>,
    pub(super) swarm_key: Option<PathBuf>,
    pub(super) new_swarm: bool,
    pub(super) insecure_open: bool,
    pub(super) allow_shell: bool,
    /// None or zero: no limit.
    pub(super) shell_timeout: Option<Duration>,
    pub(super) identity: IdentitySource,
    /// Where to write this peer's addresses (None: nowhere).
    pub(super) swarm_file: Option<PathBuf>,
    pub(super) join_timeout: Duration,
    pub(super) drain_timeout: Duration,
}

/// Merges flags and variables (which clap has merged), the config file and defaults.
pub(super) fn settings(args: Args) -> anyhow::Result<Settings> {
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
        super::super::swarm_args::parse_bootstrap(&addr.to_string())
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
        None => super::super::swarm_file::default_path(),
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

pub(super) fn usage(message: String) -> anyhow::Error {
    Exit {
        code: USAGE,
        message,
    }
    .into()
}

/// `peer join --workers`: 1 to [`MAX_WORKERS`](super::super::swarm_args::MAX_WORKERS) (a peer
/// with none would serve nothing).
fn parse_join_workers(s: &str) -> Result<usize, String> {
    match super::super::swarm_args::parse_workers(s)? {
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
    fn seconds_parse() {
        assert_eq!(parse_secs("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_secs("0.5s"), Ok(Duration::from_millis(500)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
    }
}
