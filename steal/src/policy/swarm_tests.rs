//! A small swarm of policies over a fake network with a fake clock ([`super::sim`]): work
//! injected at any peer reaches every peer, through steals and lifeline pushes alone when
//! gossip is not allowed to wake anyone, every task runs once, and the swarm falls silent
//! (no message, no timer) once the work is done.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::{ProptestConfig, prop_assert, prop_assert_eq, proptest};

use super::sim::{Gossip, Network, Swarm, Work};
use super::*;

const LATENCY: Duration = Duration::from_micros(100);

/// Tasks that spawn nothing: only their count matters.
struct Counted;

impl Work for Counted {
    type Task = ();
    fn run(&self, _task: (), _queue: &mut VecDeque<()>) {}
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
            steal_timeout: 10 * LATENCY,
            backoff_min: LATENCY,
            backoff_max: 16 * LATENCY,
            load_interval: 10 * LATENCY,
            wake_on_load,
            steal_below,
            seed,
            ..Config::default()
        };
        let net = Network {
            latency: LATENCY,
            msg_cost: Duration::ZERO,
            // Tasks long against the latency, so each peer's share is worth a trip.
            task_cost: 20 * LATENCY,
            gossip: Gossip::All,
            clusters: 1,
            seed,
        };
        let mut swarm = Swarm::new(Counted, n, &config, net);
        prop_assert!(swarm.run(100_000).is_some(), "an empty swarm never fell silent");
        let mut total = 0;
        for origin in origins {
            // A wave of work at one peer of a silent swarm: the lifelines must spread it.
            for p in 0..n {
                prop_assert!(swarm.policy(p).is_quiescent() && swarm.timer(p).is_none());
            }
            let before: Vec<u64> = (0..n).map(|p| swarm.ran(p)).collect();
            let tasks = 40 * n;
            total += tasks;
            swarm.add(origin % n, std::iter::repeat_n((), tasks));
            prop_assert!(swarm.run(1_000_000).is_some(), "the swarm never fell silent");
            let ran: Vec<u64> = (0..n).map(|p| swarm.ran(p) - before[p]).collect();
            prop_assert_eq!(ran.iter().sum::<u64>(), tasks as u64, "tasks lost or run twice");
            prop_assert!(ran.iter().all(|r| *r > 0), "a peer never got work: {:?}", ran);
        }
        prop_assert!(total > 0);
        // Every request sent once and ended exactly once.
        let tally = swarm.tally();
        prop_assert_eq!(tally.request_errors, 0);
        prop_assert_eq!(swarm.open_requests(), 0);
        prop_assert_eq!(tally.finished, tally.steals);
        prop_assert_eq!(swarm.outstanding(), 0);
        // Silent for good: nothing in flight, and no peer wants a timer.
        prop_assert!(swarm.is_silent());
        for p in 0..n {
            let policy = swarm.policy(p);
            prop_assert!(policy.is_quiescent() && policy.poll_timeout().is_none());
        }
    }
}
