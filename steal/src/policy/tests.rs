//! The policy's invariants, driven by random inputs and a fake clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::{Just, Strategy as Gen, prop_assert, prop_assert_eq, prop_oneof, proptest};

use super::*;

const ME: PeerId = PeerId(0);

fn config(strategy: Strategy) -> Config {
    Config {
        strategy,
        ..Config::default()
    }
}

fn drain(policy: &mut Policy) -> Vec<Output> {
    std::iter::from_fn(|| policy.poll_output()).collect()
}

/// One step of a random scenario.
#[derive(Debug, Clone)]
enum Step {
    Up(u64, u32),
    Down(u64),
    Load(u64, usize),
    Local(usize),
    /// Reply to the k-th request sent so far (possibly long finished, or not yet sent).
    Reply(usize, usize),
    Advance(u64),
    Lifeline(u64),
    Pushed(u64, usize),
}

fn step() -> impl Gen<Value = Step> {
    prop_oneof![
        (0u64..8, 0u32..3).prop_map(|(p, c)| Step::Up(p, c)),
        (0u64..8).prop_map(Step::Down),
        (0u64..8, 0usize..5).prop_map(|(p, r)| Step::Load(p, r)),
        (0usize..3).prop_map(Step::Local),
        (0usize..40, 0usize..4).prop_map(|(k, s)| Step::Reply(k, s)),
        (0u64..300_000).prop_map(Step::Advance),
        (0u64..8).prop_map(Step::Lifeline),
        (0u64..8, 0usize..4).prop_map(|(p, n)| Step::Pushed(p, n)),
    ]
}

fn strategy() -> impl Gen<Value = Strategy> {
    prop_oneof![
        Just(Strategy::Random),
        Just(Strategy::TwoChoices),
        Just(Strategy::ClusterAware),
    ]
}

proptest! {
    #[test]
    fn every_request_ends_exactly_once_and_never_targets_itself(
        strategy in strategy(),
        steps in proptest::collection::vec(step(), 0..200),
    ) {
        let start = Instant::now();
        let mut now = start;
        let mut policy = Policy::new(ME, 0, config(strategy));
        let mut sent: Vec<RequestId> = Vec::new();
        let mut finished: BTreeMap<RequestId, usize> = BTreeMap::new();
        let mut record = |outputs: Vec<Output>, sent: &mut Vec<RequestId>| {
            for out in outputs {
                match out {
                    Output::Steal { peer, request } => {
                        assert_ne!(peer, ME, "stole from itself");
                        sent.push(request);
                    }
                    Output::Finished { request, .. } => {
                        *finished.entry(request).or_default() += 1;
                    }
                    Output::PublishLoad { .. } => {}
                    Output::Lifeline { peer } => assert_ne!(peer, ME, "registered with itself"),
                    Output::Push { peer, tasks } => {
                        assert_ne!(peer, ME, "pushed to itself");
                        assert!(tasks >= 1, "an empty push");
                    }
                }
            }
        };
        for s in steps {
            match s {
                Step::Up(p, c) => policy.handle(Input::PeerUp { peer: PeerId(p), cluster: c }, now),
                Step::Down(p) => policy.handle(Input::PeerDown { peer: PeerId(p) }, now),
                Step::Load(p, r) => policy.handle(Input::Load { peer: PeerId(p), ready: r }, now),
                Step::Local(r) => policy.handle(Input::LocalLoad { ready: r }, now),
                Step::Reply(k, stolen) => {
                    let request = sent.get(k).copied().unwrap_or(RequestId(10_000 + k as u64));
                    policy.handle(Input::Reply { request, stolen }, now);
                }
                Step::Advance(us) => {
                    now += Duration::from_micros(us);
                    policy.handle_timeout(now);
                }
                Step::Lifeline(p) => policy.handle(Input::LifelineRequest { from: PeerId(p) }, now),
                Step::Pushed(p, n) => policy.handle(Input::Pushed { from: PeerId(p), tasks: n }, now),
            }
            record(drain(&mut policy), &mut sent);
            // The event loop never spins: whatever is due at `now` has been done.
            prop_assert!(policy.poll_timeout().is_none_or(|t| t > now));
        }
        // Let every outstanding request time out.
        now += Duration::from_secs(10);
        policy.handle_timeout(now);
        record(drain(&mut policy), &mut sent);
        while policy.in_flight() > 0 {
            now += Duration::from_secs(10);
            policy.handle_timeout(now);
            record(drain(&mut policy), &mut sent);
        }
        for request in &sent {
            prop_assert_eq!(finished.get(request).copied(), Some(1));
        }
        prop_assert_eq!(finished.len(), sent.len(), "an outcome for a request never sent");
    }

    #[test]
    fn poll_timeout_never_points_into_the_past_of_a_pending_decision(
        strategy in strategy(),
        peers in 1u64..6,
    ) {
        let now = Instant::now();
        let mut policy = Policy::new(ME, 0, config(strategy));
        for p in 1..=peers {
            policy.handle(Input::PeerUp { peer: PeerId(p), cluster: (p % 2) as u32 }, now);
            policy.handle(Input::Load { peer: PeerId(p), ready: 3 }, now);
        }
        policy.handle(Input::LocalLoad { ready: 0 }, now);
        let outputs = drain(&mut policy);
        let stole = outputs.iter().any(|o| matches!(o, Output::Steal { .. }));
        prop_assert!(stole);
        prop_assert!(policy.poll_timeout().is_some_and(|t| t > now));
    }
}

/// Runs a swarm where nobody has work: every steal is answered empty.
fn starve(policy: &mut Policy, mut now: Instant, rounds: usize) -> (Instant, usize) {
    let mut steals = 0;
    for _ in 0..rounds {
        for out in drain(policy) {
            if let Output::Steal { request, .. } = out {
                steals += 1;
                policy.handle(Input::Reply { request, stolen: 0 }, now);
            }
        }
        now = policy
            .poll_timeout()
            .unwrap_or(now + Duration::from_millis(1));
        policy.handle_timeout(now);
    }
    (now, steals)
}

#[test]
fn quiescence_is_reached_when_no_one_has_work_and_left_when_work_appears() {
    for strategy in [
        Strategy::Random,
        Strategy::TwoChoices,
        Strategy::ClusterAware,
    ] {
        let start = Instant::now();
        let mut policy = Policy::new(ME, 0, config(strategy));
        for p in 1..=5 {
            policy.handle(
                Input::PeerUp {
                    peer: PeerId(p),
                    cluster: (p % 2) as u32,
                },
                start,
            );
        }
        policy.handle(Input::LocalLoad { ready: 0 }, start);
        let (now, steals) = starve(&mut policy, start, 50);
        assert!(
            policy.is_quiescent(),
            "{strategy:?}: still asking after {steals} empty steals"
        );
        // Quiet: a long time passes and no request goes out.
        let (now, more) = starve(&mut policy, now, 50);
        assert_eq!(more, 0, "{strategy:?}: a quiescent peer kept stealing");
        assert!(policy.poll_timeout().is_none() || policy.in_flight() > 0);

        // Work appears at peer 3: the gossip is the lifeline.
        policy.handle(
            Input::Load {
                peer: PeerId(3),
                ready: 10,
            },
            now,
        );
        assert!(!policy.is_quiescent());
        let outputs = drain(&mut policy);
        assert!(
            outputs.iter().any(|o| matches!(o, Output::Steal { .. })),
            "{strategy:?}: no steal after work appeared: {outputs:?}"
        );
    }
}

#[test]
fn two_choices_prefers_the_busier_peer() {
    let now = Instant::now();
    let mut policy = Policy::new(ME, 0, config(Strategy::TwoChoices));
    policy.handle(
        Input::PeerUp {
            peer: PeerId(1),
            cluster: 0,
        },
        now,
    );
    policy.handle(
        Input::PeerUp {
            peer: PeerId(2),
            cluster: 0,
        },
        now,
    );
    policy.handle(
        Input::Load {
            peer: PeerId(2),
            ready: 100,
        },
        now,
    );
    let mut picks = [0usize; 3];
    let mut t = now;
    policy.handle(Input::LocalLoad { ready: 0 }, t);
    for _ in 0..400 {
        for out in drain(&mut policy) {
            if let Output::Steal { peer, request } = out {
                picks[peer.0 as usize] += 1;
                policy.handle(Input::Reply { request, stolen: 1 }, t);
            }
        }
        t += Duration::from_millis(1);
        policy.handle_timeout(t);
    }
    // Two random picks miss peer 2 only when both land on peer 1: about a quarter.
    assert!(picks[2] > picks[1] * 2, "picks {picks:?}");
}

#[test]
fn cluster_aware_keeps_one_wide_area_request_in_flight() {
    let now = Instant::now();
    let mut policy = Policy::new(ME, 0, config(Strategy::ClusterAware));
    for p in 1..=3 {
        policy.handle(
            Input::PeerUp {
                peer: PeerId(p),
                cluster: 0,
            },
            now,
        );
    }
    for p in 10..=12 {
        policy.handle(
            Input::PeerUp {
                peer: PeerId(p),
                cluster: 1,
            },
            now,
        );
        policy.handle(
            Input::Load {
                peer: PeerId(p),
                ready: 5,
            },
            now,
        );
    }
    policy.handle(Input::LocalLoad { ready: 0 }, now);
    let steals: Vec<PeerId> = drain(&mut policy)
        .into_iter()
        .filter_map(|o| match o {
            Output::Steal { peer, .. } => Some(peer),
            _ => None,
        })
        .collect();
    assert_eq!(
        steals.len(),
        2,
        "one near and one wide-area request: {steals:?}"
    );
    assert_eq!(steals.iter().filter(|p| p.0 >= 10).count(), 1);
    assert_eq!(policy.in_flight(), 2);
}

#[test]
fn a_busy_peer_does_not_steal_and_publishes_its_load() {
    let now = Instant::now();
    let mut policy = Policy::new(ME, 0, Config::default());
    policy.handle(Input::LocalLoad { ready: 4 }, now);
    policy.handle(
        Input::PeerUp {
            peer: PeerId(1),
            cluster: 0,
        },
        now,
    );
    policy.handle(
        Input::Load {
            peer: PeerId(1),
            ready: 9,
        },
        now,
    );
    let outputs = drain(&mut policy);
    assert_eq!(outputs, vec![Output::PublishLoad { ready: 4 }]);
    // Every change waits for the interval, crossing zero too; stealing does not.
    policy.handle(Input::LocalLoad { ready: 3 }, now);
    assert!(
        drain(&mut policy)
            .iter()
            .all(|o| !matches!(o, Output::PublishLoad { .. }))
    );
    policy.handle(Input::LocalLoad { ready: 0 }, now);
    let outputs = drain(&mut policy);
    assert!(
        !outputs.contains(&Output::PublishLoad { ready: 0 }),
        "{outputs:?}"
    );
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Steal {
            peer: PeerId(1),
            ..
        }
    )));
    let due = now + Config::default().load_interval;
    assert_eq!(policy.poll_timeout(), Some(due));
    policy.handle_timeout(due);
    assert!(drain(&mut policy).contains(&Output::PublishLoad { ready: 0 }));
}

#[test]
fn the_same_seed_gives_the_same_choices() {
    let run = || {
        let now = Instant::now();
        let mut policy = Policy::new(ME, 0, config(Strategy::Random));
        for p in 1..=20 {
            policy.handle(
                Input::PeerUp {
                    peer: PeerId(p),
                    cluster: 0,
                },
                now,
            );
        }
        policy.handle(Input::LocalLoad { ready: 0 }, now);
        let mut victims = Vec::new();
        let mut t = now;
        for _ in 0..50 {
            for out in drain(&mut policy) {
                if let Output::Steal { peer, request } = out {
                    victims.push(peer);
                    policy.handle(Input::Reply { request, stolen: 1 }, t);
                }
            }
            t += Duration::from_millis(1);
            policy.handle_timeout(t);
        }
        victims
    };
    assert_eq!(run(), run());
}

/// Drives an idle peer whose every steal comes back empty until `rounds` timer turns
/// passed; returns the time and the lifeline registrations it sent.
fn idle(policy: &mut Policy, mut now: Instant, rounds: usize) -> (Instant, Vec<PeerId>) {
    let mut lifelines = Vec::new();
    for _ in 0..rounds {
        for out in drain(policy) {
            match out {
                Output::Steal { request, .. } => {
                    policy.handle(Input::Reply { request, stolen: 0 }, now);
                }
                Output::Lifeline { peer } => lifelines.push(peer),
                _ => {}
            }
        }
        now = policy
            .poll_timeout()
            .unwrap_or(now + Duration::from_millis(1));
        policy.handle_timeout(now);
    }
    lifelines.sort();
    (now, lifelines)
}

fn with_peers(config: Config, peers: u64) -> (Policy, Instant) {
    let now = Instant::now();
    let mut policy = Policy::new(ME, 0, config);
    for p in 1..=peers {
        policy.handle(
            Input::PeerUp {
                peer: PeerId(p),
                cluster: 0,
            },
            now,
        );
    }
    (policy, now)
}

#[test]
fn a_quiescent_peer_registers_with_its_buddies_and_only_a_push_wakes_it() {
    let config = Config {
        wake_on_load: false,
        ..Config::default()
    };
    // Nine peers, we are rank 0: buddies at ranks 1, 2, 4 and 8.
    let (mut policy, now) = with_peers(config, 8);
    let buddies = vec![PeerId(1), PeerId(2), PeerId(4), PeerId(8)];
    assert_eq!(policy.lifeline_buddies(), buddies);
    policy.handle(Input::LocalLoad { ready: 0 }, now);
    let (now, registered) = idle(&mut policy, now, 20);
    assert!(policy.is_quiescent());
    assert_eq!(registered, buddies);
    // Silent: no timer, and nothing however long we wait.
    assert_eq!(policy.poll_timeout(), None);
    let (now, again) = idle(&mut policy, now, 20);
    assert!(again.is_empty());
    // Gossip does not wake it when told not to; a push does.
    policy.handle(
        Input::Load {
            peer: PeerId(3),
            ready: 50,
        },
        now,
    );
    assert!(policy.is_quiescent() && drain(&mut policy).is_empty());
    policy.handle(Input::LocalLoad { ready: 2 }, now);
    policy.handle(
        Input::Pushed {
            from: PeerId(4),
            tasks: 2,
        },
        now,
    );
    assert!(!policy.is_quiescent());
    // Out of work again: steals, then registers anew only where the push consumed it.
    policy.handle(Input::LocalLoad { ready: 0 }, now);
    let (_, registered) = idle(&mut policy, now, 20);
    assert!(policy.is_quiescent());
    assert_eq!(registered, vec![PeerId(4)]);
}

#[test]
fn an_empty_push_or_a_lost_buddy_is_replaced_by_a_new_registration() {
    let (mut policy, now) = with_peers(Config::default(), 4);
    policy.handle(Input::LocalLoad { ready: 0 }, now);
    let (now, registered) = idle(&mut policy, now, 20);
    assert_eq!(registered, vec![PeerId(1), PeerId(2), PeerId(4)]);
    policy.handle(
        Input::Pushed {
            from: PeerId(2),
            tasks: 0,
        },
        now,
    );
    assert!(policy.is_quiescent());
    assert_eq!(
        drain(&mut policy),
        vec![Output::Lifeline { peer: PeerId(2) }]
    );
    // Peer 4 leaves: four peers remain, our buddies are now ranks 1 and 2 (peers 1, 2),
    // both still registered; a reconnecting peer 1 may have lost ours.
    policy.handle(Input::PeerDown { peer: PeerId(4) }, now);
    assert!(drain(&mut policy).is_empty());
    policy.handle(
        Input::PeerUp {
            peer: PeerId(1),
            cluster: 0,
        },
        now,
    );
    assert_eq!(
        drain(&mut policy),
        vec![Output::Lifeline { peer: PeerId(1) }]
    );
}

#[test]
fn a_buddy_with_work_pushes_its_waiters_at_most_half_of_it() {
    let (mut policy, now) = with_peers(Config::default(), 4);
    policy.handle(Input::LocalLoad { ready: 1 }, now);
    drain(&mut policy);
    for p in [1, 2, 3, 2] {
        policy.handle(Input::LifelineRequest { from: PeerId(p) }, now);
    }
    // A last task is kept.
    assert!(drain(&mut policy).is_empty());
    assert_eq!(policy.waiting(), 3);
    // Two tasks: one to the oldest waiter.
    policy.handle(Input::LocalLoad { ready: 2 }, now);
    assert_eq!(
        drain(&mut policy),
        vec![Output::Push {
            peer: PeerId(1),
            tasks: 1
        }]
    );
    policy.handle(Input::LocalLoad { ready: 1 }, now);
    assert!(drain(&mut policy).is_empty());
    // A waiter that goes down is forgotten.
    policy.handle(Input::PeerDown { peer: PeerId(3) }, now);
    assert_eq!(policy.waiting(), 1);
    policy.handle(Input::LocalLoad { ready: 12 }, now);
    let pushes: Vec<Output> = drain(&mut policy)
        .into_iter()
        .filter(|o| matches!(o, Output::Push { .. }))
        .collect();
    assert_eq!(
        pushes,
        vec![Output::Push {
            peer: PeerId(2),
            tasks: 6
        }]
    );
    assert_eq!(policy.waiting(), 0);
}

#[test]
fn stealing_early_gives_up_without_going_quiescent() {
    let config = Config {
        steal_below: 4,
        ..Config::default()
    };
    let now = Instant::now();
    let mut policy = Policy::new(ME, 0, config);
    policy.handle(Input::LocalLoad { ready: 10 }, now);
    for p in 1..=3 {
        policy.handle(
            Input::PeerUp {
                peer: PeerId(p),
                cluster: 0,
            },
            now,
        );
    }
    assert_eq!(policy.in_flight(), 0);
    policy.handle(Input::LocalLoad { ready: 3 }, now);
    assert_eq!(policy.in_flight(), 1, "no steal while running low");
    let (now, registered) = idle(&mut policy, now, 20);
    assert!(registered.is_empty() && !policy.is_quiescent());
    assert_eq!(policy.in_flight(), 0);
    // Out of work: a fresh spell, steals first, then the lifelines.
    policy.handle(Input::LocalLoad { ready: 0 }, now);
    assert_eq!(policy.in_flight(), 1);
    let (_, registered) = idle(&mut policy, now, 20);
    assert!(policy.is_quiescent());
    assert_eq!(registered, vec![PeerId(1), PeerId(2)]);
    // Four peers, ranks 0..4: buddies at ranks 1 and 2.
}
