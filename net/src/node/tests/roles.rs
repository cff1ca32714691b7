//! A member does only what its role allows: each check of `docs/security.md`, fed to one
//! node by hand, with the honest outcome beside the forged one.

use super::*;
use crate::wire::{ArgSpec, Done, GraphEvent, JobArg, JobSpec, JobTask, Kind, Moved};

/// One node (peer 0) that runs nothing itself, with peers 1, 2 and 3 up.
fn owner() -> (Node, Instant) {
    let settings = Settings {
        slots: 0,
        ..Settings::default()
    };
    let mut node = Node::new(0, vec![ADD], settings);
    let now = Instant::now();
    for peer in 1..=3 {
        node.handle(Input::Identified { peer, home: true }, now);
    }
    (node, now)
}

/// Feeds a request from `from` and returns the node's answer to it, and the futures it
/// resolved.
fn ask(node: &mut Node, from: u64, request: Request, now: Instant) -> (Response, Vec<TaskKey>) {
    let channel = 1_000 + node.requests.tags_given();
    node.handle(
        Input::Request {
            from,
            channel,
            request,
        },
        now,
    );
    let mut answer = None;
    let mut resolved = Vec::new();
    while let Some(output) = node.poll_output() {
        match output {
            Output::Respond {
                channel: c,
                response,
            } if c == channel => answer = Some(response),
            Output::Resolve { task, .. } => resolved.push(task),
            _ => {}
        }
    }
    (answer.expect("every request is answered"), resolved)
}

fn notify_done(task: TaskKey, value: u64) -> Request {
    let done = Done::Value {
        size: 1,
        inline: Some(enc(value)),
    };
    Request::Notify {
        done: vec![(task, done)],
        release: vec![],
        moved: vec![],
    }
}

fn notify_moved(task: TaskKey, to: u64) -> Request {
    Request::Notify {
        done: vec![],
        release: vec![],
        moved: vec![Moved { task, to, hops: 2 }],
    }
}

fn steal() -> Request {
    Request::Steal {
        max: 8,
        can_run: vec![ADD],
    }
}

/// Node 0's task, stolen by peer 1.
fn stolen_by_1() -> (Node, Instant, TaskKey) {
    let (mut node, now) = owner();
    let key = TaskKey { owner: 0, seq: 1 };
    node.submit(key, "add".into(), ADD, vec![SubmitArg::Inline(enc(1))], now);
    let (stolen, _) = ask(&mut node, 1, steal(), now);
    assert!(matches!(stolen, Response::Stolen { ref tasks, .. } if tasks.len() == 1));
    (node, now, key)
}

#[test]
fn a_result_from_a_peer_never_given_the_task_is_not_taken() {
    let (mut node, now, key) = stolen_by_1();
    let (_, resolved) = ask(&mut node, 2, notify_done(key, 666), now);
    assert!(resolved.is_empty(), "the forged result was taken");
    let (_, resolved) = ask(&mut node, 1, notify_done(key, 1), now);
    assert_eq!(resolved, vec![key], "the real one is");
}

#[test]
fn a_result_that_overtakes_its_move_waits_for_it() {
    let (mut node, now, key) = stolen_by_1();
    let (_, resolved) = ask(&mut node, 2, notify_done(key, 1), now);
    assert!(resolved.is_empty(), "peer 2 is not known to have it yet");
    let (_, resolved) = ask(&mut node, 1, notify_moved(key, 2), now);
    assert_eq!(
        resolved,
        vec![key],
        "taken once peer 1 says it handed the task on"
    );
}

#[test]
fn a_move_from_a_peer_without_the_task_is_not_taken() {
    let (mut node, now, key) = stolen_by_1();
    ask(&mut node, 2, notify_moved(key, 3), now);
    let (_, resolved) = ask(&mut node, 3, notify_done(key, 666), now);
    assert!(resolved.is_empty(), "a forged move let a third peer in");
    assert!(matches!(
        node.tasks.owned[&key].state(),
        state::State::Ready { at: 1 }
    ));
}

#[test]
fn only_a_results_owner_releases_it() {
    let (mut node, now) = owner();
    let theirs = TaskKey { owner: 1, seq: 9 };
    node.tasks.store.insert(theirs, Arc::new(vec![7; 100]));
    let release = |task| Request::Notify {
        done: vec![],
        release: vec![task],
        moved: vec![],
    };
    ask(&mut node, 2, release(theirs), now);
    assert!(
        node.tasks.store.contains_key(&theirs),
        "freed by a peer that does not own it"
    );
    ask(&mut node, 1, release(theirs), now);
    assert!(!node.tasks.store.contains_key(&theirs));
}

fn push(owner: u64, n: u64) -> Request {
    let tasks = (0..n)
        .map(|seq| TaskSpec {
            key: TaskKey { owner, seq },
            name: "add".into(),
            fingerprint: ADD,
            args: vec![ArgSpec::Inline(enc(1))].into(),
            hops: 1,
            calls: Default::default(),
        })
        .collect();
    Request::Push { tasks }
}

#[test]
fn a_push_is_taken_only_from_a_peer_we_registered_a_lifeline_with() {
    let (mut node, now) = owner();
    let (answer, _) = ask(&mut node, 1, push(1, 1), now);
    assert!(
        matches!(answer, Response::Refused(ref why) if why.contains("lifeline")),
        "{answer:?}"
    );
    assert!(node.tasks.ready.is_empty(), "nothing was queued");
    node.stealing.buddies.insert(1);
    let (answer, _) = ask(&mut node, 1, push(1, 1), now);
    assert_eq!(answer, Response::Ack);
    assert_eq!(node.tasks.ready.len(), 1);
    let (answer, _) = ask(&mut node, 1, push(1, 1), now);
    assert!(
        matches!(answer, Response::Refused(_)),
        "one push per registration"
    );
}

#[test]
fn a_push_over_the_bound_or_of_strangers_tasks_is_not_taken() {
    let (mut node, now) = owner();
    node.stealing.buddies.insert(1);
    let most = node.settings.steal_max as u64;
    let (answer, _) = ask(&mut node, 1, push(1, most + 1), now);
    assert!(
        matches!(answer, Response::Refused(ref why) if why.contains("taken at once")),
        "{answer:?}"
    );
    node.stealing.buddies.insert(1);
    let (answer, _) = ask(&mut node, 1, push(77, 3), now);
    assert!(
        matches!(answer, Response::Refused(ref why) if why.contains("not connected")),
        "tasks of an owner that is not a member are refused, for the pusher to keep: {answer:?}"
    );
    assert!(node.tasks.ready.is_empty());
}

#[test]
fn a_draining_peer_hands_our_tasks_back_unasked() {
    let (mut node, now, key) = stolen_by_1();
    let mut back = push(0, 0);
    if let Request::Push { tasks } = &mut back {
        tasks.push(node.tasks.owned[&key].spec.clone().unwrap());
    }
    let (answer, _) = ask(&mut node, 1, back.clone(), now);
    assert_eq!(answer, Response::Ack, "its holder may");
    let (answer, _) = ask(&mut node, 2, back, now);
    assert!(
        matches!(answer, Response::Refused(_)),
        "another peer may not"
    );
}

fn batch(from: u64, number: u64, events: Vec<GraphEvent>) -> Input {
    Input::Gossip(Batch {
        from,
        number,
        events,
    })
}

#[test]
fn a_gossiped_release_counts_only_from_the_owner() {
    let (mut node, now) = owner();
    let theirs = TaskKey { owner: 1, seq: 3 };
    node.tasks
        .cache
        .insert(theirs, Arc::new(vec![1; 10]), usize::MAX, 1 << 20);
    node.handle(batch(2, 1, vec![GraphEvent::Released(theirs)]), now);
    assert!(
        node.tasks.cache.get(&theirs).is_some(),
        "released by another peer"
    );
    node.handle(batch(1, 1, vec![GraphEvent::Released(theirs)]), now);
    assert!(node.tasks.cache.get(&theirs).is_none());
}

#[test]
fn gossip_past_a_peers_rate_is_dropped() {
    let (mut node, now) = owner();
    let rate = u64::from(node.settings.limits.gossip_per_sec);
    for number in 1..=rate + 50 {
        node.handle(batch(1, number, vec![GraphEvent::Load(1)]), now);
    }
    assert_eq!(
        node.gossip.last_batch(1),
        Some(rate),
        "a second's worth at once"
    );
    let later = now + Duration::from_millis(100);
    node.handle(batch(1, rate + 51, vec![GraphEvent::Load(1)]), later);
    assert_eq!(
        node.gossip.last_batch(1),
        Some(rate + 51),
        "the budget refills"
    );
}

fn job(name: &str) -> JobSpec {
    JobSpec {
        name: name.into(),
        tasks: vec![JobTask {
            name: "add".into(),
            fingerprint: ADD,
            args: vec![JobArg::Value(enc(1))],
        }],
        output: 0,
    }
}

#[test]
fn a_jobs_name_is_its_owners() {
    let (mut node, now) = owner();
    node.handle(batch(1, 1, vec![GraphEvent::Detached(job("j"))]), now);
    assert_eq!(node.jobs.detached["j"].owner, 1);
    node.handle(batch(2, 1, vec![GraphEvent::Detached(job("j"))]), now);
    assert_eq!(
        node.jobs.detached["j"].owner, 1,
        "taken over by another peer"
    );
    let published = |value| GraphEvent::Published {
        name: "j".into(),
        value: Ok(enc(value)),
    };
    node.handle(batch(2, 2, vec![published(666)]), now);
    assert!(
        !node.jobs.published.contains_key("j"),
        "published by another peer"
    );
    node.handle(batch(1, 2, vec![published(1)]), now);
    assert_eq!(node.jobs.published.get("j"), Some(&Ok(enc(1))));
}

/// A lookup in flight when its job's owner publishes (which ends the job, and with it the
/// name's binding): another peer's answer that comes after is not what the lookup returns.
#[test]
fn a_lookup_answered_after_the_owner_published_returns_the_owners_value() {
    let (mut node, now) = owner();
    node.handle(batch(1, 1, vec![GraphEvent::Detached(job("j"))]), now);
    node.lookup("j".into(), 9, now);
    let asked: HashMap<u64, u64> = std::iter::from_fn(|| node.poll_output())
        .filter_map(|o| match o {
            Output::Send { to, tag, .. } => Some((to, tag)),
            _ => None,
        })
        .collect();
    let published = GraphEvent::Published {
        name: "j".into(),
        value: Ok(enc(18)),
    };
    node.handle(batch(1, 2, vec![published]), now);
    let forged = Response::Published(Some(Ok(enc(666))));
    node.handle(
        Input::Response {
            tag: asked[&2],
            response: forged,
        },
        now,
    );
    let found: Vec<_> = std::iter::from_fn(|| node.poll_output())
        .filter_map(|o| match o {
            Output::Found { waiter: 9, value } => Some(value),
            _ => None,
        })
        .collect();
    assert_eq!(found, vec![Some(Ok(enc(18)))]);
}

#[test]
fn an_orphaned_job_is_taken_over_by_its_successor_only() {
    let (mut node, now) = owner();
    node.handle(batch(1, 1, vec![GraphEvent::Detached(job("k"))]), now);
    node.handle(
        Input::Disconnected {
            peer: 1,
            reason: "test".into(),
        },
        now,
    );
    let mut live = vec![0, 2, 3];
    let heir = super::super::placement::successor("k", &live);
    live.retain(|p| *p != heir);
    let other = live.into_iter().find(|p| *p != 0).unwrap();
    if heir != 0 {
        node.handle(batch(other, 1, vec![GraphEvent::Detached(job("k"))]), now);
        assert_ne!(node.jobs.detached.get("k").map(|j| j.owner), Some(other));
        node.handle(batch(heir, 1, vec![GraphEvent::Detached(job("k"))]), now);
        assert_eq!(node.jobs.detached["k"].owner, heir);
    }
}

#[test]
fn only_a_keys_home_replicates_to_it() {
    let (mut node, now) = owner();
    let key = (0..)
        .map(|i| format!("var/{i}"))
        .find(|k| node.ranked_homes(k)[0] == 1)
        .unwrap();
    let snapshot = crate::wire::PrimState::new(Kind::Variable, 0);
    let replicate = |base| Request::Replicate {
        key: key.clone(),
        base,
        deltas: vec![crate::wire::Delta::Snapshot(snapshot.clone())],
    };
    let (answer, _) = ask(&mut node, 2, replicate(0), now);
    assert!(
        matches!(answer, Response::Refused(ref why) if why.contains("not the home")),
        "{answer:?}"
    );
    assert!(!node.prims.replicas.contains_key(&key));
    let (answer, _) = ask(&mut node, 1, replicate(0), now);
    assert_eq!(answer, Response::Ack);
}

#[test]
fn notices_go_in_requests_a_receiver_decodes() {
    let (mut node, now) = owner();
    let most = crate::wire::NOTICES;
    for seq in 0..most as u64 + 5 {
        node.tasks.release_at(1, TaskKey { owner: 0, seq });
    }
    node.handle_timeout(now + Duration::from_secs(1));
    let sizes = |node: &mut Node| -> Vec<usize> {
        std::iter::from_fn(|| node.poll_output())
            .filter_map(|o| match o {
                Output::Send {
                    request: Request::Notify { release, .. },
                    ..
                } => Some(release.len()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(sizes(&mut node), vec![most]);
    let tag = node.requests.newest().unwrap();
    let later = now + Duration::from_secs(2);
    node.handle(
        Input::Response {
            tag,
            response: Response::Ack,
        },
        later,
    );
    node.handle_timeout(later + Duration::from_secs(1));
    assert_eq!(sizes(&mut node), vec![5], "the rest in the next");
}

#[test]
fn a_task_served_only_to_its_own_peer_is_neither_offered_nor_run_for_others() {
    let settings = Settings {
        slots: 4,
        ..Settings::default()
    };
    let mut node = Node::new(0, vec![ADD], settings).running_own(vec![COPY]);
    let now = Instant::now();
    identified(&mut node, 1, now);
    assert_eq!(node.report(Instant::now()).serves, vec![ADD], "not offered");
    let own = TaskKey { owner: 0, seq: 1 };
    node.submit(
        own,
        "copy".into(),
        COPY,
        vec![SubmitArg::Inline(enc(5))],
        now,
    );
    let runs = |node: &mut Node| -> Vec<TaskKey> {
        std::iter::from_fn(|| node.poll_output())
            .filter_map(|o| match o {
                Output::Run { spec, .. } => Some(spec.key),
                _ => None,
            })
            .collect()
    };
    assert_eq!(runs(&mut node), vec![own], "its own runs here");
    node.stealing.buddies.insert(1);
    let theirs = TaskSpec {
        key: TaskKey { owner: 1, seq: 1 },
        name: "copy".into(),
        fingerprint: COPY,
        args: vec![ArgSpec::Inline(enc(5))].into(),
        hops: 1,
        calls: Default::default(),
    };
    let request = Request::Push {
        tasks: vec![theirs.clone()],
    };
    node.handle(
        Input::Request {
            from: 1,
            channel: 1,
            request,
        },
        now,
    );
    let outputs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    let ran = outputs.iter().any(|o| matches!(o, Output::Run { .. }));
    assert!(!ran, "another owner's does not run: {outputs:?}");
    let told = outputs.iter().any(|o| match o {
        Output::Send {
            to: 1,
            request: Request::Notify { done, .. },
            ..
        } => done.iter().any(|(task, done)| {
            *task == theirs.key && matches!(done, Done::Failed(Failure::NotServed(_)))
        }),
        _ => false,
    });
    assert!(told, "and its owner hears why: {outputs:?}");
}

/// Every request, response and gossip batch of the fuzzers' corpus (`fuzz/corpus/`) that
/// decodes, fed to a node as if from members: the node may refuse, but never panics (this
/// debug build checks overflows too). The decoders are fuzzed on their own; this carries
/// their inputs into the state machine behind them.
#[test]
fn the_fuzz_corpus_fed_to_a_node_never_panics() {
    let corpus = |target: &str| -> Vec<Vec<u8>> {
        let dir = format!("{}/../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect()
    };
    let (requests, responses, batches) = (corpus("request"), corpus("response"), corpus("batch"));
    assert!(requests.len() > 100 && responses.len() > 100 && batches.len() > 100);
    let (mut node, mut now, _) = stolen_by_1();
    let key = TaskKey { owner: 0, seq: 2 };
    node.submit(key, "add".into(), ADD, vec![SubmitArg::Inline(enc(2))], now);
    let mut decoded = 0;
    for (i, bytes) in requests.iter().enumerate() {
        if let Ok(request) = postcard::from_bytes::<Request>(bytes) {
            decoded += 1;
            let from = 1 + (i as u64 % 3);
            let channel = i as u64;
            node.handle(
                Input::Request {
                    from,
                    channel,
                    request,
                },
                now,
            );
        }
        now += Duration::from_millis(7);
        node.handle_timeout(now);
        while node.poll_output().is_some() {}
    }
    for bytes in &responses {
        if let Ok(response) = postcard::from_bytes::<Response>(bytes) {
            decoded += 1;
            // As the answer to whatever the node asked last.
            if let Some(tag) = node.requests.newest() {
                node.handle(Input::Response { tag, response }, now);
            }
        }
        now += Duration::from_millis(7);
        node.handle_timeout(now);
        while node.poll_output().is_some() {}
    }
    for bytes in &batches {
        if let Ok(batch) = postcard::from_bytes::<Batch>(bytes) {
            decoded += 1;
            node.handle(Input::Gossip(batch), now);
        }
        now += Duration::from_millis(7);
        node.handle_timeout(now);
        while node.poll_output().is_some() {}
    }
    assert!(decoded > 300, "only {decoded} inputs decoded");
}

#[test]
fn published_values_past_their_bound_push_out_the_oldest() {
    let (mut node, now) = owner();
    node.jobs.limits.published = 3;
    for (number, name) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        let event = GraphEvent::Published {
            name: name.into(),
            value: Ok(enc(1)),
        };
        node.handle(batch(1, number as u64 + 1, vec![event]), now);
    }
    let kept: Vec<bool> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| node.jobs.published.contains_key(*n))
        .collect();
    assert_eq!(kept, [false, false, true, true, true]);
}

#[test]
fn jobs_of_others_past_their_bound_are_not_recorded_and_ours_always_are() {
    let (mut node, now) = owner();
    node.jobs.limits.jobs = 2;
    for (number, name) in ["j1", "j2", "j3"].into_iter().enumerate() {
        let event = GraphEvent::Detached(job(name));
        node.handle(batch(1, number as u64 + 1, vec![event]), now);
    }
    assert!(node.jobs.detached.contains_key("j1") && node.jobs.detached.contains_key("j2"));
    assert!(
        !node.jobs.detached.contains_key("j3"),
        "the first known are kept, not pushed out"
    );
    assert_eq!(node.detach(job("mine"), now), Ok(()));
    assert_eq!(node.jobs.detached["mine"].owner, 0);
}

#[test]
fn a_new_primitive_past_the_bound_is_refused() {
    let (mut node, now) = owner();
    node.prims.limits.prim_keys = 0;
    let key = (0..)
        .map(|i| format!("lock/{i}"))
        .find(|k| node.ranked_homes(k)[0] == 0)
        .unwrap();
    let request = Request::Prim(crate::wire::PrimRequest {
        key,
        kind: Kind::Semaphore { permits: 1 },
        id: crate::wire::OpId { peer: 1, seq: 1 },
        op: crate::wire::Op::Available,
    });
    let (answer, _) = ask(&mut node, 1, request, now);
    match answer {
        Response::Prim(crate::wire::Reply::Refused(why)) => assert!(why.contains("limit"), "{why}"),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn ready_tasks_of_others_and_remembered_peers_are_bounded() {
    let (mut node, now) = owner();
    node.tasks.settings.limits.ready_from_others = 2;
    node.stealing.buddies.insert(1);
    let (answer, _) = ask(&mut node, 1, push(1, 3), now);
    assert!(
        matches!(answer, Response::Refused(ref why) if why.contains("as many ready")),
        "{answer:?}"
    );
    assert!(node.tasks.ready.is_empty());
    node.settings.limits.remembered_peers = 4;
    for stranger in 100..200 {
        node.handle(batch(stranger, 1, vec![GraphEvent::Load(1)]), now);
    }
    let (budgets, batches) = node.gossip.remembered();
    assert!(budgets <= 4, "{budgets}");
    assert!(batches <= 5, "{batches}");
}

#[test]
fn a_last_task_this_peer_withholds_is_pushed_to_a_waiting_peer() {
    let settings = Settings {
        slots: 2,
        ..Settings::default()
    };
    // Peer 0 runs ADD but not COPY; peer 1 runs COPY and waits for work.
    let mut node = Node::new(0, vec![ADD], settings);
    let now = Instant::now();
    identified(&mut node, 1, now);
    let lifeline = Request::Lifeline {
        can_run: vec![COPY],
    };
    ask(&mut node, 1, lifeline, now);
    let key = TaskKey { owner: 0, seq: 1 };
    node.submit(
        key,
        "copy".into(),
        COPY,
        vec![SubmitArg::Inline(enc(5))],
        now,
    );
    let pushed = std::iter::from_fn(|| node.poll_output()).any(|o| {
        matches!(o, Output::Send { to: 1, request: Request::Push { ref tasks }, .. }
            if tasks.iter().any(|t| t.key == key))
    });
    assert!(
        pushed,
        "the one task nobody here runs went to the waiting peer"
    );
}
