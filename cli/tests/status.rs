//! `peer status` against real `peer join` processes on 127.0.0.1.

mod common;

use common::{peer, three_peers};
use peer_testkit::stdout_of;

#[test]
fn status_reports_every_peer_and_its_json_parses() {
    let peers = three_peers();
    let args = ["status", "--bootstrap", &peers[0].addr, "--wait-peers", "3"];
    let out = stdout_of(peer().args(args).arg("--json"));
    let status: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(status["answered"], 3, "{status}");
    assert_eq!(status["workers"], 3, "three peers of one worker: {status}");
    let listed = status["peers"].as_array().unwrap();
    for joined in &peers {
        let entry = listed
            .iter()
            .find(|p| p["peer"] == joined.id())
            .unwrap_or_else(|| panic!("{} not listed: {status}", joined.id()));
        assert_eq!(entry["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(entry["workers"], 1);
        assert_eq!(entry["draining"], false);
        assert!(entry["peers"].as_u64().unwrap() >= 3, "{entry}");
    }
    assert_eq!(
        listed.iter().filter(|p| p["this_command"] == true).count(),
        1
    );
    // The table names the same peers.
    let table = stdout_of(peer().args(args));
    for joined in &peers {
        assert!(table.contains(joined.id()), "{table}");
    }
}
