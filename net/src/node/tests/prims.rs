//! Named primitives between nodes: homes, waiting operations, the backup taking over, and
//! keys moving to a peer that joins.

use super::*;
use crate::wire::{Kind, Op, Reply};

const QUEUE: Kind = Kind::Queue { capacity: 100 };
const LOCK: Kind = Kind::Semaphore { permits: 1 };

impl Net {
    /// Node `at` starts call `seq` on `key`.
    fn call(&mut self, at: usize, seq: u64, key: &str, kind: Kind, op: Op) {
        let now = self.now;
        self.nodes[at].prim_call(seq, key.to_string(), kind, op, now);
    }

    /// Delivers messages until none is left, without moving the clock.
    fn quiet(&mut self) {
        while self.step() {}
        self.drain_outputs();
    }

    /// Moves the clock by `by`, fires the timers due, and delivers what follows.
    fn tick(&mut self, by: Duration) {
        self.now += by;
        for (node, dead) in self.nodes.iter_mut().zip(&self.dead) {
            if !dead {
                node.handle_timeout(self.now);
            }
        }
        self.quiet();
    }

    /// The answer to call `seq` of node `at`, once it came.
    fn reply(&mut self, at: usize, seq: u64) -> Option<Reply> {
        self.replies.remove(&(at, seq))
    }

    /// A key of `prefix` whose home (as node 0 sees it) is not node 0 and whose backup is
    /// not `avoid`: the home, the backup and the key.
    fn key_homed_away(&self, prefix: &str, avoid: usize) -> (usize, usize, String) {
        (0..)
            .map(|i| format!("{prefix}{i}"))
            .find_map(|key| {
                let ranked = self.nodes[0].ranked_homes(&key);
                let (home, backup) = (ranked[0] as usize, ranked[1] as usize);
                (home != 0 && home != avoid && backup != avoid).then_some((home, backup, key))
            })
            .expect("some key is homed elsewhere")
    }
}

fn put(v: u8) -> Op {
    Op::Put {
        item: vec![v],
        wait: true,
    }
}

const GET: Op = Op::Get { wait: true };

#[test]
fn a_queue_loses_nothing_when_its_home_dies() {
    let mut net = Net::new(4, 1, &[&[ADD]]);
    let (home, backup, key) = net.key_homed_away("jobs", usize::MAX);
    for v in 0..20 {
        net.call(0, u64::from(v), &key, QUEUE, put(v));
    }
    net.quiet();
    for v in 0..20u8 {
        assert_eq!(net.reply(0, u64::from(v)), Some(Reply::Done));
    }
    // Every answered put is at the backup too.
    assert!(net.nodes[backup].prims.replicas.contains_key(&key));
    for seq in 100..110 {
        net.call(0, seq, &key, QUEUE, GET);
    }
    net.quiet();
    net.kill(home);
    for seq in 110..130 {
        net.call(0, seq, &key, QUEUE, GET);
    }
    net.quiet();
    let mut got: Vec<u8> = (100..130)
        .filter_map(|seq| match net.reply(0, seq) {
            Some(Reply::Item(item)) => Some(item[0]),
            Some(other) => panic!("get {seq}: {other:?}"),
            None => None,
        })
        .collect();
    assert_eq!(got.len(), 20, "the ten gets after the last item still wait");
    got.sort_unstable();
    assert_eq!(got, (0..20).collect::<Vec<u8>>(), "each item exactly once");
    assert!(net.nodes[backup].prims.hosted.contains_key(&key));
}

#[test]
fn a_lock_is_exclusive_and_a_dead_holders_lock_goes_to_the_next_with_a_higher_token() {
    let mut net = Net::new(3, 1, &[&[ADD]]);
    let (home, _, key) = net.key_homed_away("lock/", usize::MAX);
    let holder = 3 - home; // neither node 0 nor the home
    let acquire = Op::Acquire {
        lease_ms: None,
        wait: true,
    };
    net.call(holder, 1, &key, LOCK, acquire.clone());
    net.quiet();
    let Some(Reply::Granted { token: first, .. }) = net.reply(holder, 1) else {
        panic!("the first acquire is granted");
    };
    net.call(0, 2, &key, LOCK, acquire.clone());
    net.quiet();
    assert_eq!(net.reply(0, 2), None, "the lock is held");
    net.kill(holder);
    net.quiet();
    let Some(Reply::Granted { token: second, .. }) = net.reply(0, 2) else {
        panic!("the waiter gets the dead holder's lock");
    };
    assert!(second > first);
}

#[test]
fn a_lease_runs_out_and_a_withdrawn_waiter_is_given_nothing() {
    let mut net = Net::new(2, 1, &[&[ADD]]);
    let key = "lock/leased";
    let leased = Op::Acquire {
        lease_ms: Some(1_000),
        wait: true,
    };
    net.call(0, 1, key, LOCK, leased.clone());
    net.quiet();
    assert!(matches!(
        net.reply(0, 1),
        Some(Reply::Granted { token: 1, .. })
    ));
    net.call(1, 2, key, LOCK, leased.clone());
    net.call(1, 3, key, LOCK, leased);
    net.quiet();
    let now = net.now;
    net.nodes[1].prim_cancel(2, now);
    net.quiet();
    assert_eq!(net.reply(1, 2), None, "a withdrawn call is not answered");
    // The lease runs out: the remaining waiter is granted, with the next token.
    net.now += Duration::from_millis(1_001);
    for node in &mut net.nodes {
        node.handle_timeout(net.now);
    }
    net.quiet();
    assert!(matches!(
        net.reply(1, 3),
        Some(Reply::Granted { token: 2, .. })
    ));
    net.call(0, 4, key, LOCK, Op::Release { token: 1 });
    net.quiet();
    assert_eq!(net.reply(0, 4), Some(Reply::Expired));
}

#[test]
fn a_key_moves_to_a_peer_that_joins_as_its_home_without_losing_items() {
    let mut net = Net::new(3, 1, &[&[ADD]]);
    // A key node 2 is home of; it starts cut off, so node 0 or 1 homes it meanwhile.
    let key = (0..)
        .map(|i| format!("moving{i}"))
        .find(|k| net.nodes[0].ranked_homes(k)[0] == 2)
        .unwrap();
    net.cut_off(2);
    for v in 0..10 {
        net.call(0, u64::from(v), &key, QUEUE, put(v));
    }
    net.quiet();
    assert!(!net.nodes[2].prims.hosted.contains_key(&key));
    net.heal(2);
    net.quiet();
    for seq in 10..20 {
        net.call(1, seq, &key, QUEUE, GET);
    }
    net.quiet();
    let got: Vec<u8> = (10..20)
        .map(|seq| match net.reply(1, seq) {
            Some(Reply::Item(item)) => item[0],
            other => panic!("get {seq}: {other:?}"),
        })
        .collect();
    assert_eq!(got, (0..10).collect::<Vec<u8>>());
    assert!(net.nodes[2].prims.hosted.contains_key(&key));
}

/// Two programs that host and back up a queue leave one after the other: the home's
/// last act hands the state to a peer that is still there.
#[test]
fn a_leaving_home_hands_its_state_on_past_a_backup_that_left_unnoticed() {
    let mut net = Net::new(4, 1, &[&[ADD]]);
    let (home, backup, key) = net.key_homed_away("leaving", 0);
    let next = net.nodes[home].ranked_homes(&key)[2] as usize;
    fill(&mut net, &key);
    // The backup is gone; the home has not heard yet.
    net.dead[backup] = true;
    let now = net.now;
    net.nodes[home].hand_off(now);
    assert!(!net.nodes[home].handed_off(), "a snapshot is on its way");
    net.quiet();
    assert!(net.nodes[home].handed_off());
    assert!(net.nodes[next].prims.replicas.contains_key(&key));
    net.kill(backup);
    net.kill(home);
    assert_all_twenty_got(&mut net, &key);
}

/// The other order: the home leaves first, and its backup, which would take the key over
/// at the next operation, leaves before one comes.
#[test]
fn a_leaving_backup_hosts_and_hands_on_a_key_whose_home_is_gone() {
    let mut net = Net::new(4, 1, &[&[ADD]]);
    let (home, backup, key) = net.key_homed_away("orphan", 0);
    fill(&mut net, &key);
    net.kill(home);
    net.quiet();
    assert!(net.nodes[backup].prims.replicas.contains_key(&key));
    let next = net.nodes[backup].ranked_homes(&key)[1] as usize;
    let now = net.now;
    net.nodes[backup].hand_off(now);
    net.quiet();
    assert!(net.nodes[backup].handed_off());
    assert!(net.nodes[next].prims.replicas.contains_key(&key));
    net.kill(backup);
    assert_all_twenty_got(&mut net, &key);
}

/// A backup at its bound of keys refuses every copy: the home moves the copy to the next
/// peer, after a pause, instead of sending it again and again and holding every answer.
#[test]
fn a_backup_that_refuses_copies_is_replaced_by_the_next_peer() {
    let mut net = Net::new(4, 1, &[&[ADD]]);
    let (home, backup, key) = net.key_homed_away("refused", 0);
    let next = net.nodes[home].ranked_homes(&key)[2] as usize;
    net.nodes[backup].prims.limits.prim_keys = 0;
    for v in 0..5 {
        net.call(0, u64::from(v), &key, QUEUE, put(v));
    }
    net.quiet();
    let sent_before = net.nodes[home].stats().requests_sent;
    for _ in 0..3 {
        net.tick(Duration::from_millis(100));
    }
    for v in 0..5 {
        assert_eq!(net.reply(0, v), Some(Reply::Done), "put {v}");
    }
    assert!(net.nodes[next].prims.replicas.contains_key(&key));
    assert!(!net.nodes[backup].prims.replicas.contains_key(&key));
    let sent = net.nodes[home].stats().requests_sent - sent_before;
    assert!(sent < 20, "{sent} requests in 300 ms: the home is looping");
}

/// Node 0 puts 0..20 into the queue `key`.
fn fill(net: &mut Net, key: &str) {
    for v in 0..20 {
        net.call(0, u64::from(v), key, QUEUE, put(v));
    }
    net.quiet();
    for v in 0..20 {
        assert_eq!(net.reply(0, v), Some(Reply::Done));
    }
}

/// Node 0 gets 20 items from `key`: each of 0..20 once.
fn assert_all_twenty_got(net: &mut Net, key: &str) {
    for seq in 100..120 {
        net.call(0, seq, key, QUEUE, GET);
    }
    for _ in 0..5 {
        net.tick(Duration::from_millis(100));
    }
    let mut got: Vec<u8> = (100..120)
        .map(|seq| match net.reply(0, seq) {
            Some(Reply::Item(item)) => item[0],
            other => panic!("get {seq}: {other:?}"),
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..20).collect::<Vec<u8>>(), "each item exactly once");
}

#[test]
fn topic_values_reach_other_peers_by_gossip() {
    let mut net = Net::new(3, 1, &[&[ADD]]);
    let now = net.now;
    net.nodes[1].topic_publish("topic/t/u8".into(), vec![7], now);
    net.settle();
    let mut at: Vec<usize> = net.topic_values.iter().map(|(i, _, _)| *i).collect();
    at.sort_unstable();
    assert_eq!(at, vec![0, 2]);
}

#[test]
fn a_home_that_was_stopped_and_comes_back_serves_the_newest_state() {
    let mut net = Net::new(3, 1, &[&[ADD]]);
    let (home, backup, key) = net.key_homed_away("stopped", 0);
    for v in 0..6 {
        net.call(0, u64::from(v), &key, QUEUE, put(v));
    }
    net.quiet();
    // The home hangs: the others suspect it, it suspects nobody.
    net.cut[home] = true;
    net.tell_others(home, |peer| Input::Disconnected {
        peer,
        reason: "silent".into(),
    });
    for seq in 10..12 {
        net.call(0, seq, &key, QUEUE, GET);
    }
    net.quiet();
    // It wakes up and knows it was held up. Node 0 hears it first and asks it before the
    // peer that took over hears it (and would hand the state back).
    net.cut[home] = false;
    let now = net.now;
    // Its watch finds its own loop held up (a check three seconds late).
    let before = now.checked_sub(Duration::from_secs(3)).unwrap();
    net.nodes[home].handle_watch_timeout(before);
    net.nodes[home].handle_watch_timeout(now);
    identified(&mut net.nodes[0], home as u64, now);
    net.call(0, 12, &key, QUEUE, GET);
    net.quiet();
    // The peer that took over does not yet see it, so refuses its claim: the get waits
    // until views agree.
    assert_eq!(net.reply(0, 12), None);
    let other = backup;
    identified(&mut net.nodes[other], home as u64, now);
    for seq in 13..16 {
        net.call(0, seq, &key, QUEUE, GET);
    }
    net.quiet();
    net.tick(Duration::from_millis(100));
    let got: Vec<u8> = (10..16)
        .map(|seq| match net.reply(0, seq) {
            Some(Reply::Item(item)) => item[0],
            other => panic!("get {seq}: {other:?}"),
        })
        .collect();
    assert_eq!(got[..2], [0, 1]);
    let mut got = got;
    got.sort_unstable();
    assert_eq!(got, (0..6).collect::<Vec<u8>>(), "each item once");
    assert!(net.nodes[home].prims.hosted.contains_key(&key));
}

/// A key whose ranking (as node 0 sees all three up) starts with `first`.
fn key_ranked(net: &Net, prefix: &str, first: &[u64]) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| net.nodes[0].ranked_homes(k).starts_with(first))
        .unwrap()
}

#[test]
fn a_waiter_at_its_own_peer_waits_on_past_the_long_poll() {
    let mut net = Net::new(2, 1, &[&[ADD]]);
    let key = key_ranked(&net, "lock/", &[0]);
    let acquire = Op::Acquire {
        lease_ms: None,
        wait: true,
    };
    net.call(0, 1, &key, LOCK, acquire.clone());
    net.quiet();
    let Some(Reply::Granted { token, .. }) = net.reply(0, 1) else {
        panic!("granted");
    };
    net.call(0, 2, &key, LOCK, acquire);
    net.tick(Duration::from_secs(11));
    assert_eq!(net.reply(0, 2), None, "answered at the long-poll's end");
    net.call(0, 3, &key, LOCK, Op::Release { token });
    net.quiet();
    assert!(matches!(net.reply(0, 2), Some(Reply::Granted { .. })));
}

#[test]
fn a_peer_whose_view_lags_does_not_host_a_key_a_second_time() {
    let mut net = Net::new(3, 1, &[&[ADD]]);
    let key = key_ranked(&net, "lock/", &[2, 1]);
    net.cut_off(2);
    net.call(0, 1, &key, LOCK, Op::Available); // node 1 hosts it
    net.quiet();
    assert_eq!(net.reply(0, 1), Some(Reply::Count(1)));
    // Node 2 comes back; only node 2 has heard so far.
    net.cut[2] = false;
    let now = net.now;
    identified(&mut net.nodes[2], 0, now);
    identified(&mut net.nodes[2], 1, now);
    net.call(2, 2, &key, LOCK, Op::Available);
    net.quiet();
    net.call(1, 3, &key, LOCK, Op::Available);
    net.quiet();
    let acquire = Op::Acquire {
        lease_ms: None,
        wait: false,
    };
    net.call(2, 4, &key, LOCK, acquire.clone());
    net.call(1, 5, &key, LOCK, acquire);
    net.quiet();
    net.tick(Duration::from_millis(100));
    let now = net.now;
    identified(&mut net.nodes[0], 2, now);
    identified(&mut net.nodes[1], 2, now);
    for _ in 0..20 {
        net.tick(Duration::from_millis(100));
    }
    let granted = [net.reply(2, 4), net.reply(1, 5)]
        .iter()
        .filter(|r| matches!(r, Some(Reply::Granted { .. })))
        .count();
    assert_eq!(granted, 1, "exactly one of two acquires is granted");
}

#[test]
fn a_home_that_steps_down_for_an_unreachable_peer_keeps_what_it_answered() {
    let mut net = Net::new(3, 1, &[&[ADD]]);
    let key = key_ranked(&net, "q/", &[2]);
    net.cut_off(2);
    let h = net.nodes[0].ranked_homes(&key)[0] as usize;
    net.call(h, 9, &key, QUEUE, Op::Len);
    net.quiet();
    net.call(h, 1, &key, QUEUE, put(1));
    net.call(h, 2, &key, QUEUE, put(2));
    // It hears of node 2 before anything was delivered; node 2 is not reachable after all.
    let now = net.now;
    identified(&mut net.nodes[h], 2, now);
    net.quiet();
    net.nodes[h].handle(
        Input::Disconnected {
            peer: 2,
            reason: "gone again".into(),
        },
        now,
    );
    let answered = [net.reply(h, 1), net.reply(h, 2)];
    for seq in 3..5 {
        net.call(h, seq, &key, QUEUE, Op::Get { wait: false });
    }
    net.quiet();
    let mut got: Vec<Reply> = (3..5).filter_map(|seq| net.reply(h, seq)).collect();
    got.sort_by_key(|r| format!("{r:?}"));
    for (seq, reply) in answered.iter().enumerate() {
        if reply.is_some() {
            let item = Reply::Item(vec![seq as u8 + 1]);
            assert!(got.contains(&item), "put {} was answered and lost", seq + 1);
        }
    }
}

#[test]
fn a_withdrawn_put_is_not_enqueued_after_its_long_poll_ends() {
    let mut net = Net::new(2, 1, &[&[ADD]]);
    let key = key_ranked(&net, "q/", &[1]);
    let one = Kind::Queue { capacity: 1 };
    net.call(1, 1, &key, one, put(1));
    net.quiet();
    net.call(0, 2, &key, one, put(2)); // waits for room
    net.quiet();
    // The home answers "again" and the caller's future is dropped meanwhile.
    net.now += Duration::from_secs(11);
    net.nodes[1].handle_timeout(net.now);
    net.drain_outputs();
    let now = net.now;
    net.nodes[0].prim_cancel(2, now);
    net.quiet();
    net.call(1, 3, &key, one, GET);
    net.quiet();
    net.call(1, 4, &key, one, Op::Get { wait: false });
    net.quiet();
    assert_eq!(net.reply(1, 3), Some(Reply::Item(vec![1])));
    assert_eq!(
        net.reply(1, 4),
        Some(Reply::Empty),
        "the withdrawn put went in"
    );
    assert_eq!(net.reply(0, 2), None, "a withdrawn call is not answered");
}

/// Issue 17: a member cannot release or renew another peer's permit, nor open a primitive
/// with other parameters (see also `roles.rs`).
#[test]
fn a_permit_is_released_only_by_its_holders_peer_and_sizes_must_match() {
    let mut net = Net::new(3, 1, &[&[ADD]]);
    let key = (0..)
        .map(|i| format!("lock/{i}"))
        .find(|k| net.nodes[0].ranked_homes(k)[0] == 0)
        .unwrap();
    let lock = Kind::Semaphore { permits: 1 };
    let acquire = Op::Acquire {
        lease_ms: None,
        wait: false,
    };
    net.call(1, 1, &key, lock, acquire);
    net.quiet();
    let Some(Reply::Granted { token, .. }) = net.reply(1, 1) else {
        panic!("granted");
    };
    net.call(2, 2, &key, lock, Op::Release { token });
    net.quiet();
    match net.reply(2, 2) {
        Some(Reply::Refused(why)) => assert!(why.contains("held by another peer"), "{why}"),
        other => panic!("a forged release was not refused: {other:?}"),
    }
    let renew = Op::Renew { token, lease_ms: 1 };
    net.call(2, 3, &key, lock, renew);
    net.quiet();
    assert!(matches!(net.reply(2, 3), Some(Reply::Refused(_))));
    net.call(1, 4, &key, lock, Op::IsHeld { token });
    net.quiet();
    assert_eq!(net.reply(1, 4), Some(Reply::Bool(true)), "still held");
    let two = Kind::Semaphore { permits: 2 };
    net.call(2, 5, &key, two, Op::Available);
    net.quiet();
    match net.reply(2, 5) {
        Some(Reply::Refused(why)) => {
            assert!(
                why.contains("permits: 1") && why.contains("permits: 2"),
                "{why}"
            )
        }
        other => panic!("other parameters were not refused: {other:?}"),
    }
    net.call(1, 6, &key, lock, Op::Release { token });
    net.quiet();
    assert_eq!(net.reply(1, 6), Some(Reply::Done), "its holder releases it");
}

/// Issue 17: one peer's queued bytes at a home are bounded.
#[test]
fn a_peers_queued_bytes_are_bounded_at_the_home() {
    let mut net = Net::new(3, 1, &[&[ADD]]);
    let key = (0..)
        .map(|i| format!("queue/{i}"))
        .find(|k| net.nodes[0].ranked_homes(k)[0] == 0)
        .unwrap();
    net.nodes[0].prims.limits.queued_bytes_per_peer = 2;
    let put = |v: u8| Op::Put {
        item: vec![v],
        wait: false,
    };
    for seq in 1..=3 {
        net.call(1, seq, &key, QUEUE, put(seq as u8));
    }
    net.quiet();
    assert_eq!(net.reply(1, 1), Some(Reply::Done));
    assert_eq!(net.reply(1, 2), Some(Reply::Done));
    match net.reply(1, 3) {
        Some(Reply::Refused(why)) => assert!(why.contains("bytes queued"), "{why}"),
        other => panic!("not refused: {other:?}"),
    }
    net.call(2, 4, &key, QUEUE, put(4));
    net.quiet();
    assert_eq!(net.reply(2, 4), Some(Reply::Done), "another peer still may");
}

#[test]
fn peers_that_are_no_home_are_never_ranked_unless_all_are() {
    let now = Instant::now();
    let settings = Settings {
        home: false,
        ..Settings::default()
    };
    let mut client = Node::new(0, vec![ADD], settings);
    for peer in [1, 2] {
        client.handle(Input::Identified { peer, home: true }, now);
    }
    client.handle(
        Input::Identified {
            peer: 3,
            home: false,
        },
        now,
    );
    for key in ["peer.jobs", "peer.job.1.tasks", "a", "b", "c"] {
        let ranked = client.ranked_homes(key);
        assert_eq!(ranked.len(), 2, "{key}: {ranked:?}");
        assert!(
            !ranked.contains(&0) && !ranked.contains(&3),
            "{key}: {ranked:?}"
        );
    }
    // A swarm of clients only: they are homes all the same.
    let mut lone = Node::new(
        0,
        vec![ADD],
        Settings {
            home: false,
            ..Settings::default()
        },
    );
    lone.handle(
        Input::Identified {
            peer: 3,
            home: false,
        },
        now,
    );
    let mut ranked = lone.ranked_homes("k");
    ranked.sort_unstable();
    assert_eq!(ranked, vec![0, 3]);
}

#[test]
fn a_gone_peers_waiters_are_answered_not_forgotten() {
    let mut net = Net::new(3, 1, &[&[ADD]]);
    let (home, _, key) = net.key_homed_away("wait/", usize::MAX);
    net.call(0, 1, &key, QUEUE, GET);
    net.quiet();
    assert_eq!(net.reply(0, 1), None, "the get waits on the empty queue");
    let open = |net: &Net| net.channels.values().filter(|(at, _)| *at == 0).count();
    assert_eq!(open(&net), 1, "the get's request is open at the home");
    net.kill(0);
    net.quiet();
    // Its request was answered (to nobody), so a link or substream holding it is freed.
    assert_eq!(
        open(&net),
        0,
        "the home still holds the gone peer's request"
    );
    assert!(net.nodes[home].prims.hosted.contains_key(&key));
}
