//! The simulator is deterministic and loses no work.

use std::time::Duration;

use peer_steal::policy::{Config, Strategy};
use peer_workloads::sim::{SimConfig, simulate};
use peer_workloads::uts::{self, Params, Shape, Tree};

fn small(seed: u64, strategy: Strategy) -> SimConfig {
    SimConfig {
        peers: 8,
        tree: Params {
            tree: Tree::Geo(Shape::Fixed),
            b0: 4.0,
            gen_mx: 6,
            q: 0.0,
            m: 0,
            r: 19,
        },
        node_cost: Duration::from_micros(25),
        latency: Duration::from_micros(100),
        msg_cost: Duration::from_micros(5),
        gossip_fanout: 3,
        clusters: 2,
        policy: Config {
            strategy,
            seed,
            ..Config::default()
        },
        settle: Duration::from_millis(200),
        idle_window: Duration::from_millis(200),
        seed,
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for strategy in [
        Strategy::Random,
        Strategy::TwoChoices,
        Strategy::ClusterAware,
    ] {
        let a = simulate(&small(1, strategy));
        let b = simulate(&small(1, strategy));
        assert_eq!(a, b, "{strategy:?}: two runs of one seed differ");
        let c = simulate(&small(2, strategy));
        assert_ne!(a.trace, c.trace, "{strategy:?}: the seed changes nothing");
    }
}

#[test]
fn every_node_runs_exactly_once_under_every_strategy() {
    let cfg = small(3, Strategy::TwoChoices);
    let expected = uts::sequential(&cfg.tree).nodes;
    for strategy in [
        Strategy::Random,
        Strategy::TwoChoices,
        Strategy::ClusterAware,
    ] {
        let r = simulate(&small(3, strategy));
        assert_eq!(r.nodes, expected, "{strategy:?}");
        assert!(
            r.efficiency > 0.0 && r.efficiency <= 1.0,
            "{strategy:?}: {}",
            r.efficiency
        );
        assert!(r.steals >= r.failed_steals);
    }
}

/// A BIN tree like T3, narrow and deep, small enough for a debug build.
fn narrow(seed: u64, strategy: Strategy) -> SimConfig {
    SimConfig {
        peers: 32,
        tree: Params {
            tree: Tree::Bin,
            b0: 40.0,
            gen_mx: 0,
            q: 0.23,
            m: 4,
            r: 7,
        },
        latency: Duration::from_micros(50),
        ..small(seed, strategy)
    }
}

#[test]
fn every_node_of_a_narrow_tree_runs_exactly_once_on_32_peers() {
    let expected = uts::sequential(&narrow(0, Strategy::Random).tree).nodes;
    assert!(expected > 500, "a tree worth spreading: {expected} nodes");
    for strategy in [
        Strategy::Random,
        Strategy::TwoChoices,
        Strategy::ClusterAware,
    ] {
        let r = simulate(&narrow(5, strategy));
        assert_eq!(r.nodes, expected, "{strategy:?}");
        assert!(r.pushes > 0, "{strategy:?}: the lifelines never pushed");
    }
}

#[test]
fn the_swarm_falls_silent_once_the_work_is_done() {
    for strategy in [
        Strategy::Random,
        Strategy::TwoChoices,
        Strategy::ClusterAware,
    ] {
        for cfg in [small(4, strategy), narrow(4, strategy)] {
            let r = simulate(&cfg);
            assert_eq!(
                r.idle_messages_per_peer_per_s, 0.0,
                "{strategy:?}, {} peers: messages after the end",
                cfg.peers
            );
            // The last message goes out within a load interval of the end (the last
            // deferred publication of an empty queue), well before the idle window.
            assert!(
                r.quiet_after <= cfg.policy.load_interval + cfg.policy.steal_timeout,
                "{strategy:?}: still talking {:?} after the end",
                r.quiet_after
            );
        }
    }
}
