//! A peer fails while four hosts (network namespaces on one bridge, in a user namespace of their own; the scenarios
//! are `tests/netns/failures.sh`) run a job, and the job still finishes exactly: a peer
//! killed, a peer stopped (it hangs without closing its connections), a host's cable pulled
//! and put back, and the submitter of a detached job killed.

use std::sync::Mutex;

/// The exact counts of UTS T1L (`peer_workloads::uts::known("T1L")`).
const T1L_COUNTS: &str = "T1L: 102181082 nodes, 81746377 leaves, depth 13";

/// Each scenario loads all the cores: under `cargo test` (threads of one process) they run
/// one at a time; under nextest the `processes` test group does the same across processes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `failures.sh SCENARIO`, asserts that it succeeded and returns its stdout. `k` makes
/// the namespace tag unique among the scenarios (interface names have at most 15 bytes).
fn run_scenario(scenario: &str, k: u32) -> String {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let binary = env!("CARGO_BIN_EXE_peer-harness");
    let tag = format!("f{}{k}", std::process::id() % 10_000);
    peer_testkit::netns_script("failures.sh", &[scenario, binary], &tag)
}

/// The `recovery:` lines of `peer-harness uts`, one per suspected peer, each checked for the format
/// `recovery: peer=<id> at_unix_ns=<ns> reason="<text>" requeued=<n>`.
fn recovery_lines(stdout: &str) -> Vec<&str> {
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("recovery:"))
        .collect();
    for line in &lines {
        for field in [" peer=", " at_unix_ns=", " reason=\"", " requeued="] {
            assert!(line.contains(field), "no {field:?} in {line:?}");
        }
    }
    lines
}

fn assert_t1l_exact(stdout: &str) {
    assert!(stdout.contains(T1L_COUNTS), "{stdout}");
    assert!(stdout.contains("counts exact"), "{stdout}");
}

/// The value of `key=` in a line of `key=value` fields.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

/// How long after the fault (the script's `fault:` line) the first peer suspected the failed
/// peer (`peer-harness uts` prints every peer's suspicions, earliest first: tasks are owned by the
/// peers that submitted them, so their owners notice first), by the wall clock of the one
/// machine all namespaces share; with the reason.
fn detection(stdout: &str) -> (std::time::Duration, String) {
    let fault = stdout
        .lines()
        .find(|l| l.starts_with("fault:"))
        .unwrap_or_else(|| panic!("no fault line:\n{stdout}"));
    let victim = field(fault, "peer").expect("the failed peer's id");
    let at: u128 = field(fault, "at_unix_ns").unwrap().parse().unwrap();
    let suspected = recovery_lines(stdout)
        .into_iter()
        .find(|l| field(l, "peer") == Some(victim))
        .unwrap_or_else(|| panic!("{victim} was never suspected:\n{stdout}"));
    let seen: u128 = field(suspected, "at_unix_ns").unwrap().parse().unwrap();
    let reason = suspected.split("reason=").nth(1).unwrap_or_default();
    let after = std::time::Duration::from_nanos(seen.saturating_sub(at) as u64);
    (after, reason.to_string())
}

/// Runs a UTS scenario: the counts are exact, and a peer suspected the failed peer for a
/// reason containing `why`, within `limit` of the fault.
fn uts_survives(scenario: &str, k: u32, why: &str, limit: std::time::Duration) {
    let stdout = run_scenario(scenario, k);
    assert_t1l_exact(&stdout);
    let (after, reason) = detection(&stdout);
    assert!(reason.contains(why), "{reason}");
    assert!(after <= limit, "noticed after {after:?}");
}

#[test]
fn uts_counts_exactly_when_a_peer_is_killed() {
    // The kernel closes a killed process's sockets: noticed at once (W6 measures it; this
    // bound only leaves room for a loaded machine).
    uts_survives(
        "kill9",
        1,
        "connection closed",
        std::time::Duration::from_secs(1),
    );
}

#[test]
fn uts_counts_exactly_when_a_peer_is_stopped() {
    uts_survives("stop", 2, "ping", std::time::Duration::from_secs(2));
}

#[test]
fn uts_counts_exactly_when_a_cable_is_cut_and_put_back() {
    uts_survives("cut", 3, "ping", std::time::Duration::from_secs(2));
}

#[test]
fn a_detached_job_publishes_its_result_when_its_submitter_is_killed() {
    let stdout = run_scenario("detached", 4);
    assert!(stdout.contains("detached job \"sweep-total\""), "{stdout}");
    assert!(stdout.contains("fault: host=4"), "{stdout}");
    // The sum of i * i for i in 0..400.
    let expected: u64 = (0..400u64).map(|i| i * i).sum();
    assert_eq!(expected, 21_253_400);
    assert!(
        stdout
            .lines()
            .any(|l| l.trim() == format!("sweep-total = {expected}")),
        "{stdout}"
    );
}
