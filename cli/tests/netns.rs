//! Peers on separate network hosts: network namespaces on one bridge (in a user namespace of their own, no root needed; the harness
//! is `tests/netns/harness.sh`): who can reach a peer without a key. A keyed swarm that
//! finds itself by mDNS alone and counts UTS: `peer-harness`'s `tests/netns.rs`.

/// Runs `tests/netns/<name>` with `args` after the peer binary; returns its stdout.
fn script(name: &str, args: &[&str], tag: &str) -> String {
    let args: Vec<&str> = [env!("CARGO_BIN_EXE_peer")]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    let tag = format!("{tag}{}", std::process::id() % 100_000);
    peer_testkit::netns_script(name, &args, &tag)
}

/// The value of `key=` among the script's lines.
fn value<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in:\n{stdout}"))
}

/// The part of the script's output between `===== name =====` and the next such line.
fn section<'a>(stdout: &'a str, name: &str) -> &'a str {
    let head = format!("===== {name} =====\n");
    let start = stdout
        .find(&head)
        .map(|i| i + head.len())
        .unwrap_or(stdout.len());
    let rest = &stdout[start..];
    &rest[..rest.find("=====").unwrap_or(rest.len())]
}

#[test]
fn a_peer_without_a_key_is_reachable_from_another_host_only_when_asked_to_be_open() {
    let stdout = script("open.sh", &[], "o");
    // `peer join` with no flags: on loopback only, so nothing answers from host 2.
    assert!(
        value(&stdout, "closed_addr").starts_with("/ip4/127.0.0.1/"),
        "{stdout}"
    );
    let sockets = value(&stdout, "closed_sockets");
    assert!(!sockets.is_empty(), "{stdout}");
    for socket in sockets.split_whitespace() {
        assert!(socket.starts_with("127.0.0.1:"), "{stdout}");
    }
    assert_ne!(value(&stdout, "closed_tcp_rc"), "0", "{stdout}");
    assert_eq!(value(&stdout, "closed_status_rc"), "3", "{stdout}");
    let closed = section(&stdout, "closed");
    let warnings: Vec<&str> = closed
        .lines()
        .filter(|l| l.starts_with("peer: warning"))
        .collect();
    assert_eq!(warnings.len(), 1, "{closed}");
    assert!(
        warnings[0].contains("open to every process of this machine"),
        "{closed}"
    );

    // --insecure-open --listen /ip4/0.0.0.0/tcp/0: host 2 joins it, and it warned.
    assert!(
        value(&stdout, "open_addr").starts_with("/ip4/10.77.0.1/"),
        "{stdout}"
    );
    assert_eq!(value(&stdout, "open_tcp_rc"), "0", "{stdout}");
    assert_eq!(value(&stdout, "open_status_rc"), "0", "{stdout}");
    let status: serde_json::Value = serde_json::from_str(section(&stdout, "open_status").trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(status["answered"], 1, "{status}");
    let open = section(&stdout, "open");
    let warning = open
        .lines()
        .find(|l| l.starts_with("peer: warning: --insecure-open"))
        .unwrap_or_else(|| panic!("no warning:\n{open}"));
    for what in [
        "join the swarm",
        "submit tasks",
        "run any task",
        "named primitive",
    ] {
        assert!(warning.contains(what), "{what:?} in {warning}");
    }
}
