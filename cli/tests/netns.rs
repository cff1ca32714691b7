//! Peers on separate network hosts: network namespaces on one bridge (as root; the harness
//! is `tests/netns/harness.sh`), discovering each other by mDNS alone.

use std::process::Command;

#[test]
fn four_hosts_find_each_other_by_mdns_and_count_uts_exactly() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/netns/mdns_uts.sh");
    let out = Command::new("bash")
        .args([script, env!("CARGO_BIN_EXE_peer"), "T1"])
        .env("NETNS_TAG", format!("t{}", std::process::id()))
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the harness needs root (ip netns); stdout:\n{stdout}\nstderr:\n{stderr}"
    );
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
}
