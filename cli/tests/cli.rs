//! The operator's side of `peer`: `peer keygen`, `peer join`'s settings (flags over
//! `PEER_*` variables over a config file), its safe defaults (no key: loopback only; an open
//! peer only with `--insecure-open`; `--new-swarm`), its persistent identity, a wrong swarm
//! key, and usage errors (the graceful drain on SIGTERM, under a `peer-harness sweep`:
//! `peer-harness`'s `tests/drain.rs`). Real `peer` processes on 127.0.0.1
//! with mDNS off. From another network namespace: `netns.rs`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::peer;
use peer_testkit::{Running, TempDir};

/// Every variable `peer join` reads, removed so the tests do not depend on the caller's.
const VARIABLES: [&str; 15] = [
    "PEER_CONFIG",
    "PEER_LISTEN",
    "PEER_BOOTSTRAP",
    "PEER_WORKERS",
    "PEER_MDNS",
    "PEER_SWARM_KEY",
    "PEER_NEW_SWARM",
    "PEER_INSECURE_OPEN",
    "PEER_ALLOW_SHELL",
    "PEER_SHELL_TIMEOUT",
    "PEER_IDENTITY",
    "PEER_EPHEMERAL",
    "PEER_JOIN_TIMEOUT",
    "PEER_DRAIN_TIMEOUT",
    "RUST_LOG",
];

/// `peer` with no `PEER_*` variables, keeping a default identity under `dir` rather than
/// in the user's home.
fn peer_in(dir: &TempDir) -> Command {
    let mut cmd = peer();
    for var in VARIABLES {
        cmd.env_remove(var);
    }
    cmd.env("XDG_DATA_HOME", dir.path("data"));
    cmd
}

/// `peer join` on loopback without mDNS, as [`peer_in`] runs it.
fn join_cmd(dir: &TempDir) -> Command {
    let mut cmd = peer_in(dir);
    cmd.args(["join", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"]);
    cmd
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn keygen(out: &Path, force: bool) -> std::process::Output {
    let mut cmd = peer();
    cmd.args(["keygen", "--out"]).arg(out);
    if force {
        cmd.arg("--force");
    }
    cmd.output().unwrap()
}

#[test]
fn keygen_writes_a_private_key_and_keeps_an_existing_one() {
    let dir = TempDir::new("keygen");
    let key = dir.path("swarm.key");
    let out = keygen(&key, false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("peer join --swarm-key {}", key.display())),
        "{stdout}"
    );
    assert_eq!(mode(&key), 0o600);
    let first = std::fs::read_to_string(&key).unwrap();
    first
        .parse::<peer_net::SwarmKey>()
        .expect("the key file parses");
    assert!(!stdout.contains(first.trim()), "the key is never printed");

    let again = keygen(&key, false);
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), first);

    // --force replaces it with a new key, in a new file of mode 0600 even where the old
    // one was readable by all.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(keygen(&key, true).status.success());
    let second = std::fs::read_to_string(&key).unwrap();
    assert_ne!(second, first);
    second.parse::<peer_net::SwarmKey>().unwrap();
    assert_eq!(mode(&key), 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(dir.root()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left");
}

#[test]
fn a_peer_with_another_swarm_key_cannot_join_and_says_why() {
    let dir = TempDir::new("swarm-key");
    let (ours, theirs) = (dir.path("ours.key"), dir.path("theirs.key"));
    assert!(keygen(&ours, false).status.success());
    assert!(keygen(&theirs, false).status.success());
    let mut first = Running::spawn(join_cmd(&dir).arg("--swarm-key").arg(&ours));
    let addr = first.addr();
    let start = Instant::now();
    let out = join_cmd(&dir)
        .args(["--bootstrap", &addr, "--join-timeout", "3", "--swarm-key"])
        .arg(&theirs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("does it use the same swarm key") || stderr.contains("another swarm key"),
        "{stderr}"
    );
    assert!(start.elapsed() < Duration::from_secs(15));
    // The keyed peer is still there and still alone.
    assert!(first.child.try_wait().unwrap().is_none());
}

#[test]
fn commands_that_submit_work_join_a_private_swarm_with_its_key_only() {
    let dir = TempDir::new("keyed-commands");
    let key = dir.path("swarm.key");
    assert!(keygen(&key, false).status.success());
    let mut first = Running::spawn(
        join_cmd(&dir)
            .arg("--swarm-key")
            .arg(&key)
            .arg("--ephemeral"),
    );
    let addr = first.addr();
    let status = |with_key: bool| {
        let mut cmd = peer_in(&dir);
        cmd.args([
            "status",
            "--json",
            "--bootstrap",
            &addr,
            "--join-timeout",
            "3",
        ]);
        if with_key {
            cmd.arg("--swarm-key").arg(&key);
        }
        cmd.output().unwrap()
    };
    let keyed = status(true);
    assert!(
        keyed.status.success(),
        "{}",
        String::from_utf8_lossy(&keyed.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&keyed.stdout).unwrap();
    assert_eq!(json["answered"], 1, "{json}");
    let stranger = status(false);
    let stderr = String::from_utf8_lossy(&stranger.stderr);
    assert_eq!(stranger.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("--swarm-key"), "{stderr}");
}

/// The `peer: warning:` lines of a `peer join` that has printed its address.
fn warnings(running: &mut Running) -> Vec<String> {
    running.addr();
    // stderr and stdout come through separate threads: give the warning, printed before
    // the address, a moment to arrive.
    std::thread::sleep(Duration::from_millis(300));
    running.wait_for(|l| l.starts_with("peer: warning") || l.ends_with(" connected"));
    running.seen_lines()
}

#[test]
fn without_a_key_a_peer_stays_on_loopback_unless_asked_to_be_open() {
    let dir = TempDir::new("open");
    // No flags at all (but a state directory of the test's own): loopback only, one warning.
    let mut closed = Running::spawn(peer_in(&dir).arg("join"));
    let lines = warnings(&mut closed);
    let warned: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("peer: warning"))
        .collect();
    assert_eq!(warned.len(), 1, "{lines:#?}");
    assert!(
        warned[0].contains("open to every process of this machine")
            && warned[0].contains("--new-swarm"),
        "{warned:?}"
    );
    let listening: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("listening on "))
        .collect();
    assert!(!listening.is_empty(), "{lines:#?}");
    for line in &listening {
        assert!(
            line.starts_with("listening on /ip4/127.0.0.1/"),
            "{lines:#?}"
        );
    }
    assert!(
        lines.iter().any(|l| l == "join it from this machine with:"),
        "{lines:#?}"
    );
    drop(closed);

    // Another address, or mDNS, without a key: refused with exit 2 and a clear message.
    for flags in [
        &["--listen", "/ip4/0.0.0.0/tcp/0", "--no-mdns"][..],
        &["--listen", "/ip4/127.0.0.1/tcp/0", "--mdns"],
    ] {
        let out = peer_in(&dir)
            .arg("join")
            .args(flags)
            .args(["--ephemeral"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(
            stderr.contains("refusing to start without a swarm key")
                && stderr.contains("--insecure-open")
                && stderr.contains("--new-swarm"),
            "{stderr}"
        );
    }
    // So are the one-shot commands that would be.
    let out = peer_in(&dir)
        .args(["status", "--mdns", "--join-timeout", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--insecure-open"), "{stderr}");

    // Asked for by flag, variable or config file, it runs and says what anyone may do.
    let config = dir.path("open.toml");
    std::fs::write(
        &config,
        "insecure_open = true
",
    )
    .unwrap();
    let open = [
        "join",
        "--listen",
        "/ip4/0.0.0.0/tcp/0",
        "--no-mdns",
        "--ephemeral",
    ];
    let ways: [(&str, Command); 3] = [
        ("flag", {
            let mut cmd = peer_in(&dir);
            cmd.args(open).arg("--insecure-open");
            cmd
        }),
        ("variable", {
            let mut cmd = peer_in(&dir);
            cmd.args(open).env("PEER_INSECURE_OPEN", "1");
            cmd
        }),
        ("file", {
            let mut cmd = peer_in(&dir);
            cmd.args(open).arg("--config").arg(&config);
            cmd
        }),
    ];
    for (how, mut cmd) in ways {
        let mut running = Running::spawn(&mut cmd);
        let lines = warnings(&mut running);
        let warning = lines
            .iter()
            .find(|l| l.starts_with("peer: warning: --insecure-open"))
            .unwrap_or_else(|| panic!("{how}: {lines:#?}"));
        for what in [
            "join the swarm",
            "submit tasks",
            "run any task this peer serves",
            "named primitive",
            "published value",
        ] {
            assert!(warning.contains(what), "{how}: {what:?} in {warning}");
        }
        assert!(warning.contains("not shell commands"), "{warning}");
    }
}

#[test]
fn new_swarm_writes_a_private_key_that_the_next_peer_joins_with() {
    let dir = TempDir::new("new-swarm");
    // All interfaces (a key allows that), so the join line is for another machine.
    let new_swarm = || {
        let mut cmd = peer_in(&dir);
        cmd.args(["join", "--new-swarm", "--no-mdns", "--ephemeral"]);
        cmd
    };
    let mut first = Running::spawn(&mut new_swarm());
    let addr = first.addr();
    let key_file = dir.path("data/peer/swarm.key");
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(mode(&dir.path("data/peer")), 0o700);
    let key = std::fs::read_to_string(&key_file).unwrap();
    key.parse::<peer_net::SwarmKey>().expect("a swarm key file");
    let hex = key.lines().rfind(|l| !l.trim().is_empty()).unwrap().trim();
    assert_eq!(hex.len(), 64, "{key}");
    let lines = first.seen_lines();
    let printed = lines.join(
        "
",
    );
    assert!(
        !printed.contains(hex),
        "the key itself is never printed:
{printed}"
    );
    assert!(
        printed.contains(&format!("swarm key: {}", key_file.display())),
        "{printed}"
    );
    let join_line = lines
        .iter()
        .find(|l| l.trim().starts_with("peer join --bootstrap "))
        .unwrap();
    assert!(
        join_line.contains("--swarm-key") && !join_line.contains(hex),
        "{join_line}"
    );
    if !addr.starts_with("/ip4/127.") {
        // Listening beyond loopback: say how to give the key to the next machine.
        assert!(
            printed.contains(&format!("copy {} there", key_file.display())),
            "{printed}"
        );
        assert!(join_line.ends_with("--swarm-key swarm.key"), "{join_line}");
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("peer: warning")),
        "{printed}"
    );

    // The next peer joins with the file.
    let mut second = Running::spawn(
        join_cmd(&dir)
            .args(["--ephemeral", "--bootstrap", &addr, "--swarm-key"])
            .arg(&key_file),
    );
    second.wait_for(|l| l == "1 peer connected");
    first.wait_for(|l| l == "1 peer connected");
    drop(second);
    drop(first);

    // Started again, it keeps the key (the same swarm); it never replaces one.
    let mut again = Running::spawn(&mut new_swarm());
    again.addr();
    assert!(
        again
            .seen_lines()
            .iter()
            .any(|l| l.contains("made by an earlier --new-swarm")),
        "{:#?}",
        again.seen_lines()
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    drop(again);

    // It makes a key; it does not take one too.
    let out = new_swarm()
        .arg("--swarm-key")
        .arg(&key_file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn flags_beat_variables_which_beat_the_config_file() {
    let dir = TempDir::new("precedence");
    let config = dir.path("peer.toml");
    std::fs::write(&config, "workers = 3\nmdns = false\ndrain_timeout = 5\n").unwrap();
    let workers = |cmd: &mut Command| {
        let mut running = Running::spawn(cmd.arg("--config").arg(&config));
        let line = running.wait_for(|l| l.ends_with(" workers"));
        line.split_whitespace().nth(3).unwrap().to_string()
    };
    assert_eq!(workers(&mut join_cmd(&dir)), "3");
    assert_eq!(workers(join_cmd(&dir).env("PEER_WORKERS", "2")), "2");
    assert_eq!(
        workers(
            join_cmd(&dir)
                .env("PEER_WORKERS", "2")
                .args(["--workers", "1"])
        ),
        "1"
    );
    // PEER_CONFIG names the file too.
    let mut running = Running::spawn(join_cmd(&dir).env("PEER_CONFIG", &config));
    running.wait_for(|l| l.ends_with(" with 3 workers"));

    // A key the file should not have is named, with exit code 2.
    std::fs::write(&config, "workers = 3\nwrokers = 2\n").unwrap();
    let out = join_cmd(&dir)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown key wrokers"), "{stderr}");
}

#[test]
fn the_identity_survives_a_restart() {
    let dir = TempDir::new("identity");
    let file = dir.path("state/identity");
    let id = |dir: &TempDir| {
        let mut running = Running::spawn(join_cmd(dir).arg("--identity").arg(&file));
        running.peer_id()
    };
    let first = id(&dir);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&dir.path("state")), 0o700);
    assert_eq!(id(&dir), first, "the same peer id after a restart");

    // A second peer cannot use it at the same time: two peers with one id would be one
    // peer to the swarm.
    let mut running = Running::spawn(join_cmd(&dir).arg("--identity").arg(&file));
    assert_eq!(running.peer_id(), first);
    let out = join_cmd(&dir)
        .arg("--identity")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in use by another peer"), "{stderr}");

    // `peer keygen --identity` makes one ahead of time and prints the id it gives.
    let made = dir.path("made");
    let out = peer()
        .args(["keygen", "--identity", "--out"])
        .arg(&made)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(mode(&made), 0o600);
    let printed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("peer id "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let mut running = Running::spawn(join_cmd(&dir).arg("--identity").arg(&made));
    assert_eq!(running.peer_id(), printed);
    drop(running);

    // The default identity lives under $XDG_DATA_HOME; --ephemeral ignores it.
    let default = {
        let mut running = Running::spawn(&mut join_cmd(&dir));
        running.peer_id()
    };
    assert_eq!(mode(&dir.path("data/peer/identity")), 0o600);
    assert_eq!(Running::spawn(&mut join_cmd(&dir)).peer_id(), default);
    let ephemeral = Running::spawn(join_cmd(&dir).arg("--ephemeral")).peer_id();
    assert_ne!(ephemeral, default);
}

#[test]
fn verbosity_flags_set_the_log_level_and_rust_log_wins() {
    let dir = TempDir::new("verbosity");
    // Nobody listens on port 1: the dial fails at once, which peer_net logs at debug.
    let nobody = "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWEXgfLK2UbCmJ4e7cfSAovUd4RkSjSYzQcYbDVRFeYJpu";
    let stderr = |flags: &[&str], rust_log: Option<&str>| {
        let mut cmd = peer_in(&dir);
        cmd.args(flags).args([
            "join",
            "--ephemeral",
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--join-timeout",
            "1",
            "--bootstrap",
            nobody,
        ]);
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let verbose = stderr(&["-v"], None);
    assert!(
        verbose.contains("DEBUG") && verbose.contains("peer_net"),
        "{verbose}"
    );
    assert!(
        !verbose.contains("\x1b["),
        "no colours when stderr is not a terminal"
    );
    let plain = stderr(&[], None);
    assert!(!plain.contains("DEBUG"), "{plain}");
    assert!(
        plain.contains("nothing listens there (connection refused)"),
        "{plain}"
    );
    // libp2p's own words stay out of it without -v.
    assert!(!plain.contains("Failed to negotiate"), "{plain}");
    let quiet = stderr(&["-q"], None);
    assert!(
        quiet.lines().all(|l| l.starts_with("peer: ")),
        "only the error itself: {quiet}"
    );
    let overridden = stderr(&["-v"], Some("error"));
    assert!(!overridden.contains("DEBUG"), "{overridden}");
}

#[test]
fn usage_errors_exit_2() {
    let dir = TempDir::new("usage");
    let cases: [&[&str]; 6] = [
        &["join", "--workers", "lots"],
        &["join", "--drain-timeout", "soon"],
        &["join", "--bootstrap", "not-an-address"],
        &["-v", "-q", "join"],
        &["keygen", "--bogus"],
        &["join", "--config", "/nonexistent/peer.toml"],
    ];
    for args in cases {
        let out = peer_in(&dir).args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "peer {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
