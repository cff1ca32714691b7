//! A peer that drains hands the queued tasks of others back and none is lost.

use super::*;

#[test]
fn a_draining_peer_hands_its_queued_tasks_back_and_each_runs_once() {
    // The owner runs nothing itself: nodes 1 and 2 steal everything.
    let mut net = Net::with_slots(&[0, 1, 1], &[&[ADD]]);
    let keys: Vec<TaskKey> = (0..60)
        .map(|i| net.submit(0, i, ADD, vec![SubmitArg::Inline(enc(i))]))
        .collect();
    // Until node 1 holds stolen tasks queued beyond what it runs.
    while net.nodes[1].tasks.ready.len() < 4 {
        assert!(net.step() || net.advance(), "node 1 never stole");
    }
    let queued = net.nodes[1].tasks.ready.len() as u64;
    let now = net.now;
    net.nodes[1].drain(now);
    net.settle();
    let stats = net.nodes[1].stats();
    assert!(stats.handed_back >= queued, "{stats:?}");
    assert!(stats.draining && net.nodes[1].drained());
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(net.value(*key), i as u64);
        assert_eq!(net.runs[key], 1, "{key} ran {} times", net.runs[key]);
    }
    // It asked for no more work once draining: node 2 ran the rest.
    let ran: Vec<u64> = net.nodes.iter().map(|n| n.stats().ran).collect();
    assert!(ran[2] > ran[1], "{ran:?}");
    net.assert_all_released();
}

#[test]
fn a_peer_gathers_every_connected_peer_s_report() {
    let mut net = Net::with_slots(&[1, 2, 3], &[&[ADD]]);
    let now = net.now;
    net.nodes[0].gather_reports(7, now);
    net.settle();
    let reports = &net.reports[&(0, 7)];
    let peers: Vec<u64> = reports.iter().map(|(p, _)| *p).collect();
    assert_eq!(peers, vec![0, 1, 2]);
    for (peer, report) in reports {
        let report = report.as_ref().unwrap();
        assert_eq!(report.peers, 2, "peer {peer}");
        assert_eq!(report.version, env!("CARGO_PKG_VERSION"));
    }
}

#[test]
fn notices_to_a_gone_owner_do_not_hold_a_drain_up() {
    // Node 1 runs a task of node 0, a client that then goes before it hears of it.
    let mut net = Net::with_slots(&[0, 1], &[&[ADD]]);
    let key = net.submit(0, 1, ADD, vec![SubmitArg::Inline(enc(1))]);
    while net.nodes[1].stats().ran == 0 {
        assert!(net.step() || net.advance(), "node 1 never ran it");
    }
    let now = net.now;
    let reason = "connection closed".to_string();
    net.nodes[1].handle(Input::Disconnected { peer: 0, reason }, now);
    net.nodes[1].drain(now);
    assert!(
        net.nodes[1]
            .tasks
            .notices
            .get(&0)
            .is_some_and(|n| n.in_flight || n.batch.has_any()),
        "the notice to node 0 is still held: {key}"
    );
    assert!(net.nodes[1].drained(), "an idle peer leaves at once");
}

#[test]
fn queued_tasks_of_a_gone_owner_do_not_hold_a_drain_up() {
    // Node 1 steals more of node 0's tasks than it runs; node 0 (a client) then goes.
    let mut net = Net::with_slots(&[0, 1], &[&[ADD]]);
    for i in 0..20 {
        net.submit(0, i, ADD, vec![SubmitArg::Inline(enc(i))]);
    }
    while net.nodes[1].tasks.ready.len() < 2 {
        assert!(net.step() || net.advance(), "node 1 never stole");
    }
    let now = net.now;
    let reason = "connection closed".to_string();
    net.nodes[1].handle(Input::Disconnected { peer: 0, reason }, now);
    let ran = net.nodes[1].stats().ran;
    net.nodes[1].drain(now);
    assert!(
        net.nodes[1].tasks.ready.is_empty(),
        "nobody to hand them back to: dropped"
    );
    // The one running finishes, and the drain is done without running the others.
    net.settle();
    assert!(net.nodes[1].drained());
    assert!(
        net.nodes[1].stats().ran <= ran + 1,
        "{:?}",
        net.nodes[1].stats()
    );
}
