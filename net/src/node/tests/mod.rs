//! Nodes wired together by hand: messages delivered in order, a fake clock, and an executor
//! that runs three toy tasks. No sockets.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::*;

mod drain;
mod prims;
mod recovery;
mod roles;

const ADD: u64 = 1; // sums its u64 arguments
const FAIL: u64 = 2; // always fails
const BIG: u64 = 3; // returns `arg` bytes of zeros, so results exceed the inline limit
const LEN: u64 = 4; // the length of its byte-vector argument, as u64
const COPY: u64 = 5; // returns its byte-vector argument

fn name(fingerprint: u64) -> String {
    ["", "add", "fail", "big", "len", "copy"][fingerprint as usize].to_string()
}

/// `node` identified `peer`, a member that may be home of primitives.
fn identified(node: &mut Node, peer: u64, now: Instant) {
    node.handle(Input::Identified { peer, home: true }, now);
}

fn enc(v: u64) -> Vec<u8> {
    postcard::to_allocvec(&v).unwrap()
}

fn run(spec: &TaskSpec, args: &[Bytes]) -> Result<Vec<u8>, Failure> {
    let nums = || args.iter().map(|a| postcard::from_bytes::<u64>(a).unwrap());
    match spec.fingerprint {
        ADD => Ok(enc(nums().sum())),
        FAIL => Err(Failure::Panicked("boom".into())),
        BIG => Ok(postcard::to_allocvec(&vec![0u8; nums().next().unwrap() as usize]).unwrap()),
        LEN => {
            let v: Vec<u8> = postcard::from_bytes(&args[0]).unwrap();
            Ok(enc(v.len() as u64))
        }
        COPY => Ok(args[0].to_vec()),
        _ => Err(Failure::UnknownTask),
    }
}

/// Several nodes and the messages between them.
struct Net {
    nodes: Vec<Node>,
    now: Instant,
    /// (to, input) in delivery order.
    wire: VecDeque<(usize, Input)>,
    /// channel -> (requester, tag)
    channels: HashMap<u64, (usize, u64)>,
    next_channel: u64,
    resolved: HashMap<TaskKey, Result<Bytes, Failure>>,
    runs: HashMap<TaskKey, usize>,
    published: usize,
    /// Killed nodes: nothing reaches them, nothing they say goes out.
    dead: Vec<bool>,
    /// Nodes cut off from all others: their requests and answers fail.
    cut: Vec<bool>,
    /// Answers to lookups: (node, waiter) -> value.
    found: HashMap<(usize, u64), crate::commands::Lookup>,
    /// Answers to calls on primitives: (node, call) -> reply.
    replies: HashMap<(usize, u64), crate::wire::Reply>,
    /// Topic values handed to each node's subscribers.
    topic_values: Vec<(usize, String, Vec<u8>)>,
    /// Gathered reports: (node, waiter) -> reports.
    reports: HashMap<(usize, u64), Vec<super::report::Report>>,
    /// Results each node asked another to free.
    releases_sent: Vec<usize>,
}

impl Net {
    fn new(n: usize, slots: usize, can_run: &[&[u64]]) -> Net {
        Net::with_slots(&vec![slots; n], can_run)
    }

    /// One node per entry of `slots`, with that many workers.
    fn with_slots(slots: &[usize], can_run: &[&[u64]]) -> Net {
        let n = slots.len();
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let settings = Settings {
                    slots: slots[i],
                    inline_max: 64,
                    ..Settings::default()
                };
                Node::new(i as u64, can_run[i % can_run.len()].to_vec(), settings)
            })
            .collect();
        let mut net = Net {
            nodes,
            now: Instant::now(),
            wire: VecDeque::new(),
            channels: HashMap::new(),
            next_channel: 0,
            resolved: HashMap::new(),
            runs: HashMap::new(),
            published: 0,
            dead: vec![false; n],
            cut: vec![false; n],
            found: HashMap::new(),
            replies: HashMap::new(),
            topic_values: Vec::new(),
            reports: HashMap::new(),
            releases_sent: vec![0; n],
        };
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    identified(&mut net.nodes[a], b as u64, net.now);
                }
            }
        }
        net
    }

    fn submit(&mut self, at: usize, seq: u64, fingerprint: u64, args: Vec<SubmitArg>) -> TaskKey {
        let key = TaskKey {
            owner: at as u64,
            seq,
        };
        self.nodes[at].submit(key, name(fingerprint), fingerprint, args, self.now);
        key
    }

    /// Delivers everything until nothing moves, advancing the clock when only timers are left.
    fn settle(&mut self) {
        for _ in 0..1_000_000 {
            self.drain_outputs();
            if !self.step() && !self.advance() {
                return;
            }
        }
        let last: Vec<_> = self.wire.iter().take(6).collect();
        panic!("the nodes never settled; on the wire: {last:?}");
    }

    /// Moves the clock to the next timer (if within a minute) and fires it.
    fn advance(&mut self) -> bool {
        let next = (self.nodes.iter().zip(&self.dead))
            .filter(|(_, dead)| !**dead)
            .filter_map(|(node, _)| node.poll_timeout())
            .min();
        match next {
            Some(t) if t <= self.now + Duration::from_secs(60) => {
                self.now = self.now.max(t);
                for (node, dead) in self.nodes.iter_mut().zip(&self.dead) {
                    if !dead {
                        node.handle_timeout(self.now);
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Delivers one message; false when none is waiting.
    fn step(&mut self) -> bool {
        self.drain_outputs();
        let Some((to, input)) = self.wire.pop_front() else {
            return false;
        };
        if !self.dead[to] {
            self.nodes[to].handle(input, self.now);
        }
        self.drain_outputs();
        true
    }

    /// Whether `a` and `b` can talk.
    fn linked(&self, a: usize, b: usize) -> bool {
        !(self.dead[a] || self.dead[b] || self.cut[a] || self.cut[b])
    }

    /// Kills node `k`: the others suspect it at once (its connections closed).
    fn kill(&mut self, k: usize) {
        self.dead[k] = true;
        self.tell_others(k, |peer| Input::Disconnected {
            peer,
            reason: "killed".into(),
        });
    }

    /// Cuts node `k` off: it and the others suspect each other.
    fn cut_off(&mut self, k: usize) {
        self.cut[k] = true;
        self.tell_both(k, |peer| Input::Disconnected {
            peer,
            reason: "cut off".into(),
        });
    }

    /// Joins node `k` again: it and the others see each other up.
    fn heal(&mut self, k: usize) {
        self.cut[k] = false;
        self.tell_both(k, |peer| Input::Identified { peer, home: true });
    }

    fn tell_others(&mut self, k: usize, input: impl Fn(u64) -> Input) {
        for j in 0..self.nodes.len() {
            if j != k && !self.dead[j] {
                self.nodes[j].handle(input(k as u64), self.now);
            }
        }
    }

    fn tell_both(&mut self, k: usize, input: impl Fn(u64) -> Input) {
        self.tell_others(k, &input);
        for j in 0..self.nodes.len() {
            if j != k && !self.dead[j] {
                self.nodes[k].handle(input(j as u64), self.now);
            }
        }
    }

    fn drain_outputs(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(output) = self.nodes[i].poll_output() {
                if self.dead[i] {
                    continue;
                }
                match output {
                    Output::Send { to, tag, .. } if !self.linked(i, to as usize) => {
                        let error = "not connected".to_string();
                        self.wire
                            .push_back((i, Input::RequestFailed { tag, error }));
                    }
                    Output::Send { to, tag, request } => {
                        if let Request::Notify { release, .. } = &request {
                            self.releases_sent[i] += release.len();
                        }
                        self.next_channel += 1;
                        self.channels.insert(self.next_channel, (i, tag));
                        let from = i as u64;
                        let channel = self.next_channel;
                        self.wire.push_back((
                            to as usize,
                            Input::Request {
                                from,
                                channel,
                                request,
                            },
                        ));
                    }
                    Output::Respond { channel, response } => {
                        // Requests a test hands a node itself have no requester here.
                        let Some((to, tag)) = self.channels.remove(&channel) else {
                            continue;
                        };
                        let sent = self.linked(i, to);
                        self.wire.push_back((i, Input::Responded { channel, sent }));
                        if sent {
                            self.wire.push_back((to, Input::Response { tag, response }));
                        } else if !self.dead[to] {
                            let error = "connection closed".to_string();
                            self.wire
                                .push_back((to, Input::RequestFailed { tag, error }));
                        }
                    }
                    Output::Found { waiter, value } => {
                        self.found.insert((i, waiter), value);
                    }
                    Output::PrimReply { seq, reply, .. } => {
                        let old = self.replies.insert((i, seq), reply);
                        assert!(old.is_none(), "call {seq} of node {i} answered twice");
                    }
                    Output::TopicMessage { key, value } => {
                        self.topic_values.push((i, key, value));
                    }
                    Output::Reports { waiter, reports } => {
                        self.reports.insert((i, waiter), reports);
                    }
                    Output::Run { spec, args } => {
                        *self.runs.entry(spec.key).or_default() += 1;
                        let result = run(&spec, &args);
                        let task = spec.key;
                        let took = Duration::ZERO;
                        self.wire.push_back((i, Input::Ran { task, result, took }));
                    }
                    Output::Resolve { task, result } => {
                        assert_eq!(task.owner, i as u64, "only owners resolve");
                        let old = self.resolved.insert(task, result);
                        assert!(old.is_none(), "{task} resolved twice");
                    }
                    Output::NeedArg { task, index } => {
                        panic!("unexpected NeedArg for {task} argument {index}")
                    }
                    Output::Forget(_) | Output::Watch { .. } => {}
                    Output::Publish(batch) => {
                        self.published += 1;
                        for j in 0..self.nodes.len() {
                            if j != i && self.linked(i, j) {
                                self.wire.push_back((j, Input::Gossip(batch.clone())));
                            }
                        }
                    }
                }
            }
        }
    }

    fn value(&self, key: TaskKey) -> u64 {
        match &self.resolved[&key] {
            Ok(bytes) => postcard::from_bytes(bytes).unwrap(),
            Err(f) => panic!("{key} failed: {f:?}"),
        }
    }

    fn assert_all_released(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            if self.dead[i] {
                continue;
            }
            let stats = node.stats();
            assert_eq!(
                stats.owned,
                0,
                "node {i} still owns tasks: {:?}",
                node.tasks.owned.values().next()
            );
            assert_eq!(stats.held, 0, "node {i} still holds results");
            assert_eq!(stats.ready, 0, "node {i} still has ready tasks");
        }
    }
}

#[test]
fn one_node_runs_a_graph_alone() {
    let mut net = Net::new(1, 2, &[&[ADD]]);
    let a = net.submit(
        0,
        1,
        ADD,
        vec![SubmitArg::Inline(enc(1)), SubmitArg::Inline(enc(2))],
    );
    let b = net.submit(
        0,
        2,
        ADD,
        vec![SubmitArg::Owned(a), SubmitArg::Inline(enc(10))],
    );
    let c = net.submit(0, 3, ADD, vec![SubmitArg::Owned(a), SubmitArg::Owned(b)]);
    net.settle();
    assert_eq!((net.value(a), net.value(b), net.value(c)), (3, 13, 16));
    net.assert_all_released();
}

#[test]
fn idle_nodes_steal_and_every_task_runs_exactly_once() {
    let mut net = Net::new(3, 1, &[&[ADD]]);
    let keys: Vec<TaskKey> = (0..300)
        .map(|i| net.submit(0, i, ADD, vec![SubmitArg::Inline(enc(i))]))
        .collect();
    net.settle();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(net.value(*key), i as u64);
        assert_eq!(net.runs[key], 1, "{key} ran {} times", net.runs[key]);
    }
    let ran: Vec<u64> = net.nodes.iter().map(|n| n.stats().ran).collect();
    assert_eq!(ran.iter().sum::<u64>(), 300);
    // What `peer status` reports is what ran.
    let reported: Vec<u64> = (net.nodes.iter()).map(|n| n.report(net.now).ran).collect();
    assert_eq!(reported, ran);
    assert!(
        ran[1] > 0 && ran[2] > 0,
        "the idle nodes stole nothing: {ran:?}"
    );
    net.assert_all_released();
}

#[test]
fn dependents_fetch_large_inputs_from_their_holders_and_results_are_released() {
    let mut net = Net::new(3, 1, &[&[ADD, BIG, LEN]]);
    let mut lens = Vec::new();
    for i in 0..40 {
        let big = net.submit(0, 2 * i, BIG, vec![SubmitArg::Inline(enc(100 + i))]);
        lens.push(net.submit(0, 2 * i + 1, LEN, vec![SubmitArg::Owned(big)]));
    }
    net.settle();
    for (i, key) in lens.iter().enumerate() {
        assert_eq!(net.value(*key), 100 + i as u64);
    }
    let fetched: u64 = net.nodes.iter().map(|n| n.stats().fetches).sum();
    assert!(fetched > 0, "no input was fetched from another peer");
    net.assert_all_released();
}

/// A small result travels inline with its notice and is kept by no runner: freeing it
/// costs no message. A large one is kept by its runner until its owner frees it.
#[test]
fn only_results_kept_by_their_runners_are_released_there() {
    let mut net = Net::new(3, 1, &[&[ADD, BIG]]);
    for i in 0..300 {
        net.submit(0, i, ADD, vec![SubmitArg::Inline(enc(i))]);
    }
    net.settle();
    let ran: Vec<u64> = net.nodes.iter().map(|n| n.stats().ran).collect();
    assert!(ran[1] + ran[2] > 0, "nothing ran elsewhere: {ran:?}");
    assert_eq!(
        net.releases_sent,
        vec![0, 0, 0],
        "small results are freed in place"
    );
    net.assert_all_released();
    for i in 0..40 {
        net.submit(0, 1_000 + i, BIG, vec![SubmitArg::Inline(enc(100 + i))]);
    }
    net.settle();
    let held_elsewhere: u64 =
        (net.nodes[1..].iter()).map(|n| n.stats().ran).sum::<u64>() - (ran[1] + ran[2]);
    assert!(held_elsewhere > 0, "no large result ran elsewhere");
    assert_eq!(net.releases_sent[0] as u64, held_elsewhere);
    net.assert_all_released();
}

#[test]
fn a_failure_reaches_every_dependent_with_its_first_cause() {
    let mut net = Net::new(2, 1, &[&[ADD, FAIL]]);
    let bad = net.submit(0, 1, FAIL, vec![]);
    let mid = net.submit(0, 2, ADD, vec![SubmitArg::Owned(bad)]);
    let last = net.submit(0, 3, ADD, vec![SubmitArg::Owned(mid)]);
    let fine = net.submit(0, 4, ADD, vec![SubmitArg::Inline(enc(5))]);
    net.settle();
    assert_eq!(net.resolved[&bad], Err(Failure::Panicked("boom".into())));
    let cause = Failure::Input {
        task: bad,
        cause: Box::new(Failure::Panicked("boom".into())),
    };
    assert_eq!(net.resolved[&mid], Err(cause.clone()));
    assert_eq!(net.resolved[&last], Err(cause));
    assert_eq!(net.value(fine), 5);
    assert!(!net.runs.contains_key(&mid), "a dependent of a failure ran");
    net.assert_all_released();
}

#[test]
fn a_thief_never_gets_a_task_it_cannot_run() {
    // Node 1 registers only ADD; node 0 submits FAIL-fingerprint tasks it can run itself.
    let mut net = Net::new(2, 1, &[&[ADD, LEN], &[ADD]]);
    let keys: Vec<TaskKey> = (0..50)
        .map(|i| {
            net.submit(
                0,
                i,
                LEN,
                vec![SubmitArg::Inline(
                    postcard::to_allocvec(&vec![1u8; i as usize]).unwrap(),
                )],
            )
        })
        .collect();
    net.settle();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(net.value(*key), i as u64);
    }
    assert_eq!(net.nodes[1].stats().ran, 0);
    assert_eq!(net.nodes[0].stats().given, 0);
}

#[test]
fn a_done_notice_for_a_task_not_owned_here_is_refused() {
    let mut node = Node::new(0, vec![ADD], Settings::default());
    let now = Instant::now();
    let task = TaskKey { owner: 9, seq: 1 };
    node.handle(
        Input::Request {
            from: 9,
            channel: 7,
            request: Request::Notify {
                done: vec![(
                    task,
                    crate::wire::Done::Value {
                        size: 1,
                        inline: Some(vec![1]),
                    },
                )],
                release: vec![],
                moved: vec![],
            },
        },
        now,
    );
    let refused = std::iter::from_fn(|| node.poll_output()).any(|o| {
        matches!(o, Output::Respond { channel: 7, response: Response::Refused(ref why) } if why.contains("not owned by this peer"))
    });
    assert!(refused);
}

#[test]
fn a_result_computed_twice_is_kept_once() {
    let mut node = Node::new(
        0,
        vec![ADD],
        Settings {
            inline_max: 0,
            // Runs nothing itself: the task waits for thieves.
            slots: 0,
            ..Settings::default()
        },
    );
    let now = Instant::now();
    let key = TaskKey { owner: 0, seq: 1 };
    identified(&mut node, 1, now);
    identified(&mut node, 2, now);
    node.submit(key, "add".into(), ADD, vec![SubmitArg::Inline(enc(1))], now);
    let done = |size| crate::wire::Done::Value { size, inline: None };
    // Peer 1 steals it and hands it on to peer 2; both finish it.
    let steal = Request::Steal {
        max: 1,
        can_run: vec![ADD],
    };
    let (from, channel) = (1, 10);
    node.handle(
        Input::Request {
            from,
            channel,
            request: steal,
        },
        now,
    );
    let moved = vec![crate::wire::Moved {
        task: key,
        to: 2,
        hops: 2,
    }];
    let request = Request::Notify {
        done: vec![],
        release: vec![],
        moved,
    };
    node.handle(
        Input::Request {
            from,
            channel: 11,
            request,
        },
        now,
    );
    for (from, channel) in [(1, 1), (2, 2)] {
        node.handle(
            Input::Request {
                from,
                channel,
                request: Request::Notify {
                    done: vec![(key, done(1))],
                    release: vec![],
                    moved: vec![],
                },
            },
            now,
        );
    }
    let outputs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    let fetch_from_1 = outputs.iter().any(|o| {
        matches!(o, Output::Send { to: 1, request: Request::Fetch { task }, .. } if *task == key)
    });
    let release_2 = |outputs: &[Output]| {
        outputs.iter().any(|o| {
            matches!(o, Output::Send { to: 2, request: Request::Notify { release, .. }, .. } if release == &vec![key])
        })
    };
    assert!(fetch_from_1, "the first result is fetched: {outputs:?}");
    // A release alone waits a little for company, and the node says until when.
    assert!(!release_2(&outputs), "{outputs:?}");
    let mut outputs = Vec::new();
    let mut timeouts = 0;
    while !release_2(&outputs) && timeouts < 4 {
        let due = node.poll_timeout().expect("the held release is due later");
        assert!(due > now, "{due:?}");
        node.handle_timeout(due);
        outputs.extend(std::iter::from_fn(|| node.poll_output()));
        timeouts += 1;
    }
    assert!(
        release_2(&outputs),
        "the second copy is released: {outputs:?}"
    );
}

#[test]
fn idle_nodes_go_quiet_once_no_work_is_left() {
    let mut net = Net::new(4, 1, &[&[ADD]]);
    for i in 0..20 {
        net.submit(0, i, ADD, vec![SubmitArg::Inline(enc(i))]);
    }
    net.settle();
    // `settle` returns only when no node has a timer within a minute: the swarm is silent.
    let before = net.published;
    net.now += Duration::from_secs(600);
    for node in &mut net.nodes {
        node.handle_timeout(net.now);
    }
    net.drain_outputs();
    assert!(
        net.wire.is_empty(),
        "an idle swarm still talks: {:?}",
        net.wire
    );
    assert_eq!(net.published, before);
}

#[test]
fn tasks_pushed_to_a_peer_that_vanished_are_run_here_after_all() {
    let mut node = Node::new(0, vec![ADD], Settings::default());
    let now = Instant::now();
    identified(&mut node, 1, now);
    node.handle(
        Input::Request {
            from: 1,
            channel: 1,
            request: Request::Lifeline { can_run: vec![ADD] },
        },
        now,
    );
    for seq in 0..6 {
        let key = TaskKey { owner: 0, seq };
        submit_add(&mut node, key, seq, now);
    }
    let outputs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    let (tag, pushed) = outputs
        .iter()
        .find_map(|o| match o {
            Output::Send {
                to: 1,
                tag,
                request: Request::Push { tasks },
            } => Some((*tag, tasks.len() as u64)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no push to the registered peer: {outputs:?}"));
    assert!(pushed > 0);
    let before = node.stats().ready;
    node.handle(
        Input::RequestFailed {
            tag,
            error: "connection closed".into(),
        },
        now,
    );
    assert_eq!(
        node.stats().ready,
        before + pushed,
        "the pushed tasks are queued again"
    );
    assert_eq!(node.stats().given, 0);
}

#[test]
fn short_tasks_get_a_buffer_in_the_local_pool_and_long_ones_do_not() {
    let settings = Settings {
        slots: 3,
        workers: 2,
        ..Settings::default()
    };
    let mut node = Node::new(0, vec![ADD], settings);
    assert_eq!(node.tasks.slots(), 3, "nothing measured yet");
    node.tasks.measure_run(Duration::from_micros(400));
    // 4 ms of work per worker at 400 µs a task: 10 more each.
    assert_eq!(node.tasks.slots(), 3 + 2 * 10);
    for _ in 0..64 {
        node.tasks.measure_run(Duration::from_millis(6));
    }
    assert_eq!(node.tasks.slots(), 3, "6 ms tasks stay stealable");
    node.tasks.measure_run(Duration::ZERO);
    assert_eq!(
        node.tasks.slots(),
        3,
        "a task that did not run is not a measure"
    );
    for _ in 0..64 {
        node.tasks.measure_run(Duration::from_nanos(10));
    }
    assert_eq!(node.tasks.slots(), 64, "capped");
}

/// Submits the task `key` adding `value` at its owner `node`.
fn submit_add(node: &mut Node, key: TaskKey, value: u64, now: Instant) {
    let args = vec![SubmitArg::Inline(enc(value))];
    node.submit(key, "add".into(), ADD, args, now);
}

/// The tasks a node hands its pool now.
fn runs(node: &mut Node) -> Vec<TaskKey> {
    std::iter::from_fn(|| node.poll_output())
        .filter_map(|o| match o {
            Output::Run { spec, .. } => Some(spec.key),
            _ => None,
        })
        .collect()
}

#[test]
fn a_worker_waiting_on_a_future_frees_a_slot_until_it_stops() {
    let settings = Settings {
        slots: 1,
        ..Settings::default()
    };
    let mut node = Node::new(0, vec![ADD], settings);
    let now = Instant::now();
    for seq in 1..=3 {
        let key = TaskKey { owner: 0, seq };
        submit_add(&mut node, key, seq, now);
    }
    assert_eq!(runs(&mut node).len(), 1, "one slot: one task to the pool");
    // The running task waits for tasks it submitted: one more may run meanwhile.
    node.waiting(true, now);
    assert_eq!(runs(&mut node).len(), 1);
    assert!(runs(&mut node).is_empty());
    node.waiting(false, now);
    let done = |seq| Input::Ran {
        task: TaskKey { owner: 0, seq },
        result: Ok(enc(seq)),
        took: Duration::from_millis(5),
    };
    // Back to one slot: the first finishing frees none (two still run).
    node.handle(done(3), now);
    assert!(
        runs(&mut node).is_empty(),
        "the slot given while waiting was taken back"
    );
    node.handle(done(2), now);
    assert_eq!(runs(&mut node).len(), 1);
}

#[test]
fn a_panic_with_retries_left_runs_the_task_again_and_is_not_a_loss() {
    let mut node = Node::new(0, vec![ADD], Settings::default());
    let now = Instant::now();
    let key = TaskKey { owner: 0, seq: 1 };
    let task = NewTask {
        key,
        name: "add".into(),
        fingerprint: ADD,
        args: vec![SubmitArg::Inline(enc(1))],
        calls: Default::default(),
        retries: 2,
    };
    node.submit_task(task, now);
    let panicked = || Input::Ran {
        task: key,
        result: Err(Failure::Panicked("not yet".into())),
        took: Duration::from_millis(1),
    };
    for _ in 0..2 {
        assert_eq!(runs(&mut node), vec![key]);
        node.handle(panicked(), now);
    }
    // The third panic is the task's.
    assert_eq!(runs(&mut node), vec![key]);
    node.handle(panicked(), now);
    let outputs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    assert!(
        outputs.iter().any(|o| matches!(o, Output::Resolve { task, result: Err(Failure::Panicked(_)) } if *task == key)),
        "{outputs:?}"
    );
    assert_eq!(node.stats().reruns, 0, "retries are not losses");
}

#[test]
fn a_thief_gets_the_oldest_tasks_it_can_run_and_the_rest_keep_their_order() {
    let mut tasks = super::tasks::Tasks::new(0, vec![ADD, LEN], Settings::default());
    let members = crate::membership::Membership::new(0);
    let spec = |seq: u64, fingerprint: u64| TaskSpec {
        key: TaskKey { owner: 0, seq },
        name: name(fingerprint).into(),
        fingerprint,
        args: Vec::new().into(),
        hops: 0,
        calls: Default::default(),
    };
    // Oldest first: LEN 1, ADD 2, LEN 3, ADD 4, ADD 5.
    for (seq, fingerprint) in [(1, LEN), (2, ADD), (3, LEN), (4, ADD), (5, ADD)] {
        tasks.ready.push_back(spec(seq, fingerprint));
    }
    let given = tasks.take_oldest(&members, 9, 2, &[ADD], Instant::now());
    let seqs = |specs: &mut dyn Iterator<Item = &TaskSpec>| specs.map(|s| s.key.seq).collect();
    let given: Vec<u64> = seqs(&mut given.iter());
    let left: Vec<u64> = tasks.ready.keys().iter().map(|k| k.seq).collect();
    assert_eq!(given, vec![2, 4], "the two oldest the thief runs");
    assert_eq!(left, vec![1, 3, 5], "the rest in their order");
}

/// A steal answered on a link, without the node (`Ready::give`): the node records the moves
/// once the answer is written, and queues the tasks again if it was not.
#[test]
fn tasks_given_off_the_node_are_recorded_when_sent_and_queued_again_when_not() {
    let mut node = Node::new(
        0,
        vec![ADD],
        Settings {
            // Runs nothing itself: the tasks wait for thieves.
            slots: 0,
            ..Settings::default()
        },
    );
    let now = Instant::now();
    identified(&mut node, 1, now);
    let keys: Vec<TaskKey> = (1..=4).map(|seq| TaskKey { owner: 0, seq }).collect();
    for key in &keys {
        node.submit(
            *key,
            "add".into(),
            ADD,
            vec![SubmitArg::Inline(enc(1))],
            now,
        );
    }
    let at = |node: &Node, key: &TaskKey| match *node.tasks.owned[key].state() {
        state::State::Ready { at } => at,
        ref other => panic!("{key} is {other:?}"),
    };
    let ready = node.ready();
    let given = ready.give_unrecorded(64, &[ADD]);
    assert_eq!(given.len(), 2, "half of four");
    assert_eq!(ready.len(), 2);
    let held = |node: &Node| node.tasks.held_keys(std::iter::empty());
    assert!(
        given.iter().all(|s| held(&node).contains(&s.key)),
        "held here until the node records the move: an audit must not run them again"
    );
    node.handle(
        Input::Gave {
            thief: 1,
            tasks: given.clone(),
            sent: true,
        },
        now,
    );
    for spec in &given {
        assert_eq!(at(&node, &spec.key), 1, "recorded at the thief");
        assert!(!held(&node).contains(&spec.key), "no longer held here");
    }
    assert_eq!(node.stats().given, 2);
    let lost = ready.give_unrecorded(64, &[ADD]);
    assert_eq!(lost.len(), 1);
    node.handle(
        Input::Gave {
            thief: 1,
            tasks: lost.clone(),
            sent: false,
        },
        now,
    );
    assert_eq!(ready.len(), 2, "queued again");
    assert_eq!(at(&node, &lost[0].key), 0, "still here");
    assert_eq!(node.stats().given, 2, "not counted as given");
}

/// A value published (or a job detached) just before the stop goes with the hand-off, not
/// a gossip interval later, when the peer may be gone.
#[test]
fn a_leaving_peer_publishes_its_waiting_gossip_at_once() {
    let now = Instant::now();
    let mut node = Node::new(0, vec![ADD], Settings::default());
    node.publish("answer".into(), Ok(enc(42)), now);
    let published = |node: &mut Node| {
        std::iter::from_fn(|| node.poll_output()).any(|o| matches!(o, Output::Publish(_)))
    };
    assert!(!published(&mut node), "batched for the gossip interval");
    node.hand_off(now);
    assert!(published(&mut node), "flushed by the hand-off");
}
