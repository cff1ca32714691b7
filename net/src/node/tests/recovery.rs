//! Peers that die, hang or are cut off, driven by hand: owners run lost work again from
//! lineage, results computed twice are kept once, detached jobs are adopted.

use super::*;
use crate::node::placement::successor;
use crate::wire::{ArgSpec, JobArg, JobSpec, JobTask};

fn key(seq: u64) -> TaskKey {
    TaskKey { owner: 0, seq }
}

/// Delivers messages one at a time until `until` holds; panics if the net settles first.
fn step_until(net: &mut Net, mut until: impl FnMut(&Net) -> bool) {
    while !until(net) {
        assert!(
            net.step() || net.advance(),
            "the net went quiet before the condition held"
        );
    }
}

/// Node `k` has started a task it has not reported yet (its `Ran` is on the wire).
fn running_at(net: &Net, k: usize) -> bool {
    net.wire
        .iter()
        .any(|(to, input)| *to == k && matches!(input, Input::Ran { .. }))
}

/// Peer `thief` asks node 0 for one task on `channel`, by hand (the net does not deliver
/// the answer); returns what node 0 answered.
fn steal_by_hand(net: &mut Net, thief: u64, channel: u64) -> Vec<TaskSpec> {
    let request = Request::Steal {
        max: 1,
        can_run: vec![ADD],
    };
    let input = Input::Request {
        from: thief,
        channel,
        request,
    };
    net.nodes[0].handle(input, net.now);
    std::iter::from_fn(|| net.nodes[0].poll_output())
        .find_map(|o| match o {
            Output::Respond {
                response: Response::Stolen { tasks, .. },
                ..
            } => Some(tasks),
            _ => None,
        })
        .expect("a steal answer")
}

#[test]
fn tasks_running_on_a_killed_peer_run_again_and_every_future_resolves_once() {
    // The owner has no worker, so the other two run everything.
    let mut net = Net::with_slots(&[0, 1, 1], &[&[ADD]]);
    for i in 0..40 {
        net.submit(
            0,
            i,
            ADD,
            vec![SubmitArg::Inline(enc(i)), SubmitArg::Inline(enc(i))],
        );
    }
    step_until(&mut net, |net| {
        running_at(net, 1) && net.resolved.len() >= 5
    });
    net.kill(1);
    net.settle();
    for i in 0..40 {
        assert_eq!(net.value(key(i)), 2 * i, "task {i}");
    }
    let stats = net.nodes[0].stats();
    assert_eq!(stats.suspicions, 1);
    assert!(stats.requeued >= 1, "the killed peer's tasks: {stats:?}");
    assert!(net.nodes[2].stats().ran >= 1);
    net.assert_all_released();
}

#[test]
fn a_lost_result_still_needed_is_computed_again_before_its_dependent_runs() {
    let mut net = Net::with_slots(&[0, 1, 1], &[&[ADD, BIG, LEN]]);
    // Each `LEN` waits for its `BIG` input (large: kept by its runner) and a late argument.
    for i in 0..6 {
        net.submit(0, i, BIG, vec![SubmitArg::Inline(enc(100 + i))]);
        net.submit(
            0,
            100 + i,
            LEN,
            vec![SubmitArg::Owned(key(i)), SubmitArg::Local],
        );
    }
    net.settle();
    let holder = |net: &Net, i| match *net.nodes[0].tasks.owned[&key(i)].state() {
        state::State::Done { holder, .. } => holder,
        ref other => panic!("BIG {i} is {other:?}"),
    };
    let victim = holder(&net, 0) as usize;
    let lost = (0..6).filter(|i| holder(&net, *i) == victim as u64).count();
    net.kill(victim);
    for i in 0..6 {
        let input = Input::LocalArg {
            task: key(100 + i),
            index: 1,
            source: 1,
            result: Ok(enc(0)),
        };
        net.nodes[0].handle(input, net.now);
    }
    net.settle();
    for i in 0..6 {
        assert_eq!(net.value(key(100 + i)), 100 + i, "LEN {i}");
    }
    assert!(net.nodes[0].stats().reruns >= lost as u64);
    net.assert_all_released();
}

#[test]
fn lineage_reaches_back_through_released_inputs() {
    // big -> copy -> len: `big`'s result is freed once `copy` has read it, but its record
    // stays while `copy`'s does, so losing `copy`'s result runs both again.
    let mut net = Net::with_slots(&[0, 1, 1], &[&[BIG, COPY, LEN]]);
    let big = net.submit(0, 1, BIG, vec![SubmitArg::Inline(enc(300))]);
    let copy = net.submit(0, 2, COPY, vec![SubmitArg::Owned(big)]);
    let len = net.submit(0, 3, LEN, vec![SubmitArg::Owned(copy), SubmitArg::Local]);
    net.settle();
    assert!(
        matches!(
            net.nodes[0].tasks.owned[&big].state(),
            state::State::Released
        ),
        "big's result is freed once copy read it"
    );
    let state::State::Done { holder, .. } = *net.nodes[0].tasks.owned[&copy].state() else {
        panic!("copy is not done");
    };
    net.kill(holder as usize);
    let runs_before = net.runs[&big];
    let input = Input::LocalArg {
        task: len,
        index: 1,
        source: 1,
        result: Ok(enc(0)),
    };
    net.nodes[0].handle(input, net.now);
    net.settle();
    assert_eq!(net.value(len), 300);
    assert_eq!(net.runs[&big], runs_before + 1, "big ran again for copy");
    assert_eq!(net.runs[&copy], 2);
    net.assert_all_released();
}

#[test]
fn a_cut_off_peer_keeps_working_and_what_it_finished_is_kept_once_after_the_heal() {
    let mut net = Net::with_slots(&[0, 1, 1], &[&[ADD, BIG]]);
    for i in 0..30 {
        // Large results, so a second copy is held somewhere and must be freed.
        net.submit(0, i, BIG, vec![SubmitArg::Inline(enc(80 + i))]);
    }
    step_until(&mut net, |net| {
        running_at(net, 2) && net.nodes[2].stats().stolen > 3
    });
    net.cut_off(2);
    // The cut-off side runs what it holds; its notices to the owner wait.
    net.settle();
    assert!(net.nodes[2].stats().ran >= 1);
    net.heal(2);
    net.settle();
    for i in 0..30 {
        let bytes = net.resolved[&key(i)].as_ref().expect("resolved");
        let v: Vec<u8> = postcard::from_bytes(bytes).unwrap();
        assert_eq!(v.len() as u64, 80 + i);
    }
    assert!(net.nodes[0].stats().requeued >= 1);
    // Every duplicate result is freed at its holder once the notices got through.
    net.assert_all_released();
}

#[test]
fn a_task_handed_on_to_a_peer_that_dies_runs_again() {
    let mut net = Net::with_slots(&[0, 1, 1, 1], &[&[ADD]]);
    let task = net.submit(0, 1, ADD, vec![SubmitArg::Inline(enc(5))]);
    // Peer 1 took it and hands it to peer 2 (as a steal answer would); 2 dies before the
    // owner hears of the move: the notice from 1 names a suspect, so the owner runs it.
    let stolen = steal_by_hand(&mut net, 1, 1);
    assert_eq!(stolen.len(), 1);
    net.kill(2);
    let moved = crate::wire::Moved {
        task,
        to: 2,
        hops: stolen[0].hops + 1,
    };
    let notify = Request::Notify {
        done: vec![],
        release: vec![],
        moved: vec![moved],
    };
    net.nodes[0].handle(
        Input::Request {
            from: 1,
            channel: 2,
            request: notify,
        },
        net.now,
    );
    net.dead[1] = true; // peer 1 never runs its copy in this test
    net.settle();
    assert_eq!(net.value(task), 5);
    assert_eq!(net.runs[&task], 1, "run once, by the peer left");
    assert_eq!(net.nodes[3].stats().ran, 1);
}

#[test]
fn a_steal_answer_that_never_arrives_is_found_by_the_owner_s_audit() {
    let mut net = Net::with_slots(&[0, 1, 1], &[&[ADD]]);
    let task = net.submit(0, 1, ADD, vec![SubmitArg::Inline(enc(7))]);
    // Peer 1 asks; the answer goes out (as far as the owner's network layer can tell) but
    // is lost: no peer fails, nobody holds the task.
    assert_eq!(steal_by_hand(&mut net, 1, 99).len(), 1);
    net.nodes[0].handle(
        Input::Responded {
            channel: 99,
            sent: true,
        },
        net.now,
    );
    net.settle();
    assert_eq!(net.value(task), 7);
    assert_eq!(net.runs[&task], 1);
    assert_eq!(net.nodes[0].stats().requeued, 1, "found by the audit");
    net.assert_all_released();
}

#[test]
fn a_detached_job_is_adopted_by_one_successor_and_published_everywhere() {
    // The owner has no worker: its job waits for thieves when it dies.
    let mut net = Net::with_slots(&[0, 1, 1, 1], &[&[ADD]]);
    // ((1 + 2) + (3 + 4)) as a job of three additions.
    let job = JobSpec {
        name: "sum".into(),
        tasks: vec![
            JobTask {
                name: name(ADD),
                fingerprint: ADD,
                args: vec![JobArg::Value(enc(1)), JobArg::Value(enc(2))],
            },
            JobTask {
                name: name(ADD),
                fingerprint: ADD,
                args: vec![JobArg::Value(enc(3)), JobArg::Value(enc(4))],
            },
            JobTask {
                name: name(ADD),
                fingerprint: ADD,
                args: vec![JobArg::Task(0), JobArg::Task(1)],
            },
        ],
        output: 2,
    };
    net.nodes[0].detach(job.clone(), net.now).unwrap();
    assert!(
        net.nodes[0].detach(job, net.now).is_err(),
        "names are unique"
    );
    // The job's description goes out by gossip (the batch is due one gossip interval
    // later); only that reaches the others before the owner dies: no thief got a task.
    net.drain_outputs();
    net.wire.clear();
    net.now += Settings::default().gossip_interval;
    net.nodes[0].handle_timeout(net.now);
    net.drain_outputs();
    let gossip: Vec<(usize, Input)> = net
        .wire
        .drain(..)
        .filter(|(_, input)| matches!(input, Input::Gossip(_)))
        .collect();
    for (to, input) in gossip {
        net.nodes[to].handle(input, net.now);
    }
    assert!((1..4).all(|i| net.nodes[i].jobs.detached.contains_key("sum")));
    net.kill(0);
    net.settle();
    let adopted: Vec<usize> = (1..4)
        .filter(|i| net.nodes[*i].stats().adopted == 1)
        .collect();
    assert_eq!(adopted.len(), 1, "one successor");
    assert_eq!(adopted[0] as u64, successor("sum", &[1, 2, 3]));
    for i in 1..4 {
        let value = net.nodes[i].jobs.published.get("sum").cloned();
        assert_eq!(value, Some(Ok(enc(10))), "node {i}");
    }
}

#[test]
fn a_newcomer_hears_of_the_jobs_running_when_it_joins() {
    let now = Instant::now();
    let mut owner = Node::new(0, vec![ADD], Settings::default());
    let job = JobSpec {
        name: "late".into(),
        tasks: vec![JobTask {
            name: name(ADD),
            fingerprint: ADD,
            args: vec![JobArg::Value(enc(1))],
        }],
        output: 0,
    };
    let batch = Settings::default().gossip_interval;
    owner.detach(job.clone(), now).unwrap();
    owner.handle_timeout(now + batch);
    while owner.poll_output().is_some() {}
    let joined = now + batch + Duration::from_millis(1);
    owner.handle(
        Input::Identified {
            peer: 7,
            home: true,
        },
        joined,
    );
    owner.handle_timeout(joined + batch);
    let announced = std::iter::from_fn(|| owner.poll_output()).any(|o| {
        matches!(o, Output::Publish(ref batch) if batch.events.contains(&GraphEvent::Detached(job.clone())))
    });
    assert!(
        announced,
        "the job's description goes out again for the newcomer"
    );
}

#[test]
fn what_is_kept_for_a_peer_gone_for_a_minute_is_forgotten() {
    let mut net = Net::with_slots(&[1, 0], &[&[BIG]]);
    // Node 1 owns tasks that node 0 runs: large results held at node 0, notices to node 1.
    for seq in 0..4 {
        net.submit(1, seq, BIG, vec![SubmitArg::Inline(enc(100))]);
    }
    step_until(&mut net, |net| net.nodes[0].stats().ran >= 2);
    net.kill(1);
    net.settle(); // runs the rest, then the clock passes the minute
    let node = &net.nodes[0];
    assert_eq!(
        node.stats().held,
        0,
        "results of the gone peer's tasks freed"
    );
    assert!(node.tasks.notices.is_empty(), "notices to it dropped");
    assert_eq!(node.stats().ready, 0);
    assert!(
        node.forget_due().is_none(),
        "nothing left to forget: the timer is off"
    );
}

#[test]
fn a_malformed_job_from_gossip_is_dropped_without_a_panic() {
    let mut net = Net::new(2, 1, &[&[ADD]]);
    let bad = JobSpec {
        name: "bad".into(),
        tasks: vec![JobTask {
            name: name(ADD),
            fingerprint: ADD,
            args: vec![JobArg::Task(5)],
        }],
        output: 3,
    };
    let batch = Batch {
        from: 1,
        number: 1,
        events: vec![GraphEvent::Detached(bad)],
    };
    net.nodes[0].handle(Input::Gossip(batch), net.now);
    net.kill(1);
    net.settle();
    assert!(net.nodes[0].jobs.detached.is_empty());
    assert_eq!(net.nodes[0].stats().adopted, 0);
}

#[test]
fn a_lookup_asks_the_peers_that_are_up() {
    let mut net = Net::new(3, 1, &[&[ADD]]);
    net.cut_off(2);
    net.nodes[0].publish("answer".into(), Ok(enc(42)), net.now);
    net.settle();
    net.heal(2);
    // Node 2 missed the gossip; it asks.
    net.nodes[2].lookup("answer".into(), 7, net.now);
    net.settle();
    assert_eq!(net.found[&(2, 7)], Some(Ok(enc(42))));
    net.nodes[2].lookup("nothing".into(), 8, net.now);
    net.settle();
    assert_eq!(net.found[&(2, 8)], None);
}

#[test]
fn the_successor_depends_only_on_the_candidates() {
    let peers = [11u64, 22, 33, 44, 55];
    let chosen = successor("job", &peers);
    let mut shuffled = peers;
    shuffled.reverse();
    assert_eq!(successor("job", &shuffled), chosen);
    let others: Vec<u64> = peers
        .iter()
        .copied()
        .filter(|p| *p != 44 || chosen == 44)
        .collect();
    assert_eq!(
        successor("job", &others),
        chosen,
        "removing another peer changes nothing"
    );
    let spread: std::collections::HashSet<u64> = (0..64)
        .map(|i| successor(&format!("job-{i}"), &peers))
        .collect();
    assert!(spread.len() >= 4, "names spread over the peers: {spread:?}");
}

#[test]
fn a_large_value_of_the_submitters_own_is_fetched_once_kept_not_carried_in_specs() {
    // The owner runs nothing: both `len`s run elsewhere, and their argument, a value the
    // submitter encodes from one future of its own (source 7), is over the inline limit.
    let mut net = Net::with_slots(&[0, 1], &[&[LEN]]);
    let value = postcard::to_allocvec(&vec![7u8; 5_000]).unwrap();
    let readers: Vec<TaskKey> = (1..=2)
        .map(|seq| net.submit(0, seq, LEN, vec![SubmitArg::Local]))
        .collect();
    for &task in &readers {
        let input = Input::LocalArg {
            task,
            index: 0,
            source: 7,
            result: Ok(value.clone()),
        };
        net.nodes[0].handle(input, net.now);
    }
    let me = net.nodes[0].tasks.me;
    let fetched: Vec<TaskKey> = (readers.iter())
        .map(
            |task| match &net.nodes[0].tasks.owned[task].spec.as_ref().unwrap().args[0] {
                ArgSpec::Fetch { task, holder } if *holder == me => *task,
                other => panic!("the argument travels inline: {other:?}"),
            },
        )
        .collect();
    assert_eq!(
        fetched[0], fetched[1],
        "the readers of one future share one copy"
    );
    assert_eq!(net.nodes[0].stats().held, 1);
    net.settle();
    assert_eq!(net.value(readers[0]), 5_000);
    assert_eq!(net.value(readers[1]), 5_000);
    assert!(net.nodes[1].stats().fetches >= 1, "the runner fetched it");
    net.assert_all_released();
}

#[test]
fn a_large_value_of_the_submitters_own_is_kept_while_a_reader_may_run_again() {
    // `copy` reads the submitter's value and makes a large result at its runner; `len`
    // reads that result but waits for a late argument. Killing the result's holder runs
    // `copy` again, which must find the value still kept.
    let mut net = Net::with_slots(&[0, 1, 1], &[&[COPY, LEN]]);
    let copy = net.submit(0, 1, COPY, vec![SubmitArg::Local]);
    let len = net.submit(0, 2, LEN, vec![SubmitArg::Owned(copy), SubmitArg::Local]);
    let value = postcard::to_allocvec(&vec![3u8; 4_000]).unwrap();
    let input = Input::LocalArg {
        task: copy,
        index: 0,
        source: 9,
        result: Ok(value),
    };
    net.nodes[0].handle(input, net.now);
    net.settle();
    let state::State::Done { holder, .. } = *net.nodes[0].tasks.owned[&copy].state() else {
        panic!("copy is not done");
    };
    net.kill(holder as usize);
    let input = Input::LocalArg {
        task: len,
        index: 1,
        source: 10,
        result: Ok(enc(0)),
    };
    net.nodes[0].handle(input, net.now);
    net.settle();
    assert_eq!(net.value(len), 4_000);
    assert_eq!(net.runs[&copy], 2, "copy ran again from the kept value");
    net.assert_all_released();
}
