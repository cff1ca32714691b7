//! Peers on separate network hosts: network namespaces on one bridge (in a user namespace of their own, no root needed; the harness
//! is `tests/netns/harness.sh`): a keyed swarm that finds itself by mDNS alone, counts UTS
//! exactly (`peer-harness uts`) and maps shell commands. Who can reach a peer without a
//! key: `peer-cli`'s `tests/netns.rs`.

/// Runs `tests/netns/<name>` with `args` after the `peer-harness` binary; returns its
/// stdout.
fn script(name: &str, args: &[&str], tag: &str) -> String {
    let binary = env!("CARGO_BIN_EXE_peer-harness");
    let args: Vec<&str> = [binary].into_iter().chain(args.iter().copied()).collect();
    let tag = format!("{tag}{}", std::process::id() % 100_000);
    peer_testkit::netns_script(name, &args, &tag)
}

#[test]
fn four_keyed_hosts_find_each_other_by_mdns_count_uts_exactly_and_map() {
    let stdout = script("mdns_uts.sh", &["T1"], "t");
    assert!(
        stdout.contains("T1: 4130071 nodes, 3305118 leaves, depth 10"),
        "{stdout}"
    );
    assert!(stdout.contains("counts exact"), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("tasks: ")).unwrap();
    assert!(
        !line.ends_with(" 0 ran elsewhere"),
        "the other hosts ran nothing: {line}"
    );
    // `peer map --json` of 40 commands on the same keyed swarm, its joins --allow-shell.
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 40, "{stdout}");
    let mut pids = std::collections::HashSet::new();
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["index"], i, "{record}");
        assert_eq!(record["exit_code"], 0, "{record}");
        assert_eq!(record["stdout"], format!("{i}\n"), "{record}");
        pids.insert(record["pid"].as_u64().unwrap());
    }
    assert!(pids.len() > 1, "one process ran every command: {pids:?}");
}
