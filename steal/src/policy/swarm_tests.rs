//! A small swarm of policies over a fake network with a fake clock: work injected at any
//! peer reaches every peer, through steals and lifeline pushes alone when gossip is not
//! allowed to wake anyone, every task runs once, and the swarm falls silent (no message,
//! no timer) once the work is done.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

use proptest::prelude::{ProptestConfig, prop_assert, prop_assert_eq, proptest};

use super::*;

const LATENCY_US: u64 = 100;

enum Msg {
    Steal {
        from: usize,
        request: RequestId,
    },
    Reply {
        request: RequestId,
        tasks: usize,
        ready: usize,
        from: usize,
    },
    Load {
        from: usize,
        ready: usize,
    },
    Lifeline {
        from: usize,
    },
    Push {
        from: usize,
        tasks: usize,
    },
}

enum Event {
    Deliver(usize, Msg),
    Timer(usize),
    Done(usize),
}

struct Member {
    policy: Policy,
    ready: usize,
    running: bool,
    ran: usize,
    timer: Option<u64>,
}

struct Swarm {
    base: Instant,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    members: Vec<Member>,
    task_us: u64,
    /// Requests sent, and outcomes seen, per (peer, request).
    sent: BTreeMap<(usize, RequestId), usize>,
    ended: BTreeMap<(usize, RequestId), usize>,
}

impl Swarm {
    fn new(n: usize, config: &Config, task_us: u64) -> Swarm {
        let base = Instant::now();
        let members = (0..n)
            .map(|i| {
                let mut config = config.clone();
                config.seed = config.seed.wrapping_add(i as u64);
                let mut policy = Policy::new(PeerId(i as u64), 0, config);
                for j in (0..n).filter(|j| *j != i) {
                    let peer = PeerId(j as u64);
                    policy.handle(Input::PeerUp { peer, cluster: 0 }, base);
                }
                Member {
                    policy,
                    ready: 0,
                    running: false,
                    ran: 0,
                    timer: None,
                }
            })
            .collect();
        let mut swarm = Swarm {
            base,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            members,
            task_us,
            sent: BTreeMap::new(),
            ended: BTreeMap::new(),
        };
        for p in 0..n {
            swarm.feed(p, Input::LocalLoad { ready: 0 });
        }
        swarm
    }

    fn at(&self) -> Instant {
        self.base + Duration::from_micros(self.now)
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.insert(self.seq, event);
        self.queue.push(Reverse((at, self.seq)));
    }

    fn send(&mut self, to: usize, msg: Msg) {
        self.schedule(self.now + LATENCY_US, Event::Deliver(to, msg));
    }

    fn feed(&mut self, p: usize, input: Input) {
        let now = self.at();
        self.members[p].policy.handle(input, now);
        self.pump(p);
    }

    /// Gives `p` `tasks` more tasks, as the event loop does with a reply or a push.
    fn add(&mut self, p: usize, tasks: usize) {
        self.members[p].ready += tasks;
        self.start(p);
    }

    fn start(&mut self, p: usize) {
        if !self.members[p].running && self.members[p].ready > 0 {
            self.members[p].ready -= 1;
            self.members[p].running = true;
            self.schedule(self.now + self.task_us, Event::Done(p));
        }
        let ready = self.members[p].ready;
        self.feed(p, Input::LocalLoad { ready });
    }

    fn take(&mut self, p: usize, n: usize) -> usize {
        let n = n.min(self.members[p].ready);
        self.members[p].ready -= n;
        n
    }

    fn pump(&mut self, p: usize) {
        while let Some(out) = self.members[p].policy.poll_output() {
            match out {
                Output::Steal { peer, request } => {
                    *self.sent.entry((p, request)).or_default() += 1;
                    self.send(peer.0 as usize, Msg::Steal { from: p, request });
                }
                Output::Finished { request, .. } => {
                    *self.ended.entry((p, request)).or_default() += 1;
                }
                Output::PublishLoad { ready } => {
                    for q in (0..self.members.len()).filter(|q| *q != p) {
                        self.send(q, Msg::Load { from: p, ready });
                    }
                }
                Output::Lifeline { peer } => {
                    self.send(peer.0 as usize, Msg::Lifeline { from: p });
                }
                Output::Push { peer, tasks } => {
                    let tasks = self.take(p, tasks);
                    let ready = self.members[p].ready;
                    if tasks == 0 {
                        let from = peer;
                        self.feed(p, Input::LocalLoad { ready });
                        self.feed(p, Input::LifelineRequest { from });
                    } else {
                        self.send(peer.0 as usize, Msg::Push { from: p, tasks });
                        self.feed(p, Input::LocalLoad { ready });
                    }
                }
            }
        }
        if let Some(at) = self.members[p].policy.poll_timeout() {
            let at = (at.saturating_duration_since(self.base).as_micros() as u64).max(self.now);
            if self.members[p].timer.is_none_or(|t| at < t) {
                self.members[p].timer = Some(at);
                self.schedule(at, Event::Timer(p));
            }
        }
    }

    /// Runs until nothing is left to happen; the number of events, or `None` past `limit`.
    fn run(&mut self, limit: usize) -> Option<usize> {
        let mut events = 0;
        while let Some(Reverse((at, id))) = self.queue.pop() {
            events += 1;
            if events > limit {
                return None;
            }
            self.now = at;
            let Some(event) = self.events.remove(&id) else {
                continue;
            };
            match event {
                Event::Done(p) => {
                    self.members[p].running = false;
                    self.members[p].ran += 1;
                    self.start(p);
                }
                Event::Timer(p) => {
                    if self.members[p].timer == Some(at) {
                        self.members[p].timer = None;
                        let now = self.at();
                        self.members[p].policy.handle_timeout(now);
                        self.pump(p);
                    }
                }
                Event::Deliver(p, Msg::Steal { from, request }) => {
                    let tasks = self.take(p, self.members[p].ready.div_ceil(2));
                    let ready = self.members[p].ready;
                    let reply = Msg::Reply {
                        request,
                        tasks,
                        ready,
                        from: p,
                    };
                    self.send(from, reply);
                    self.feed(p, Input::LocalLoad { ready });
                    let thief = PeerId(from as u64);
                    self.feed(
                        p,
                        Input::Load {
                            peer: thief,
                            ready: 0,
                        },
                    );
                }
                Event::Deliver(
                    p,
                    Msg::Reply {
                        request,
                        tasks,
                        ready,
                        from,
                    },
                ) => {
                    self.add(p, tasks);
                    self.feed(
                        p,
                        Input::Reply {
                            request,
                            stolen: tasks,
                        },
                    );
                    let peer = PeerId(from as u64);
                    self.feed(p, Input::Load { peer, ready });
                }
                Event::Deliver(p, Msg::Load { from, ready }) => {
                    let peer = PeerId(from as u64);
                    self.feed(p, Input::Load { peer, ready });
                }
                Event::Deliver(p, Msg::Lifeline { from }) => {
                    let from = PeerId(from as u64);
                    self.feed(p, Input::LifelineRequest { from });
                }
                Event::Deliver(p, Msg::Push { from, tasks }) => {
                    self.add(p, tasks);
                    let from = PeerId(from as u64);
                    self.feed(p, Input::Pushed { from, tasks });
                }
            }
        }
        Some(events)
    }
}

fn strategy(i: u8) -> Strategy {
    match i % 3 {
        0 => Strategy::Random,
        1 => Strategy::TwoChoices,
        _ => Strategy::ClusterAware,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn work_reaches_every_peer_and_the_swarm_falls_silent(
        n in 2usize..10,
        kind in 0u8..3,
        wake_on_load: bool,
        steal_below in 0usize..3,
        origins in proptest::collection::vec(0usize..10, 1..3),
        seed: u64,
    ) {
        let config = Config {
            strategy: strategy(kind),
            steal_timeout: Duration::from_micros(10 * LATENCY_US),
            backoff_min: Duration::from_micros(LATENCY_US),
            backoff_max: Duration::from_micros(16 * LATENCY_US),
            load_interval: Duration::from_micros(10 * LATENCY_US),
            wake_on_load,
            steal_below,
            seed,
            ..Config::default()
        };
        // Tasks long against the latency, so each peer's share is worth a trip.
        let mut swarm = Swarm::new(n, &config, 20 * LATENCY_US);
        prop_assert!(swarm.run(100_000).is_some(), "an empty swarm never fell silent");
        let mut total = 0;
        for origin in origins {
            // A wave of work at one peer of a silent swarm: the lifelines must spread it.
            for m in &mut swarm.members {
                prop_assert!(m.policy.is_quiescent() && m.timer.is_none());
                m.ran = 0;
            }
            let tasks = 40 * n;
            total += tasks;
            let origin = origin % n;
            swarm.add(origin, tasks);
            prop_assert!(swarm.run(1_000_000).is_some(), "the swarm never fell silent");
            let ran: Vec<usize> = swarm.members.iter().map(|m| m.ran).collect();
            prop_assert_eq!(ran.iter().sum::<usize>(), tasks, "tasks lost or run twice");
            prop_assert!(ran.iter().all(|r| *r > 0), "a peer never got work: {:?}", ran);
        }
        prop_assert!(total > 0);
        for (request, count) in &swarm.sent {
            prop_assert_eq!(*count, 1);
            prop_assert_eq!(swarm.ended.get(request).copied(), Some(1), "{:?}", request);
        }
        prop_assert_eq!(swarm.ended.len(), swarm.sent.len());
        // Silent for good: nothing in flight, and no peer wants a timer.
        prop_assert!(swarm.queue.is_empty());
        for m in &swarm.members {
            prop_assert!(m.policy.is_quiescent() && m.policy.poll_timeout().is_none());
        }
    }
}
