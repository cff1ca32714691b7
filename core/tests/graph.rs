//! Large and adversarial task graphs, checked against sequential evaluation.

use peer_core::{Client, TaskError, TaskFuture};
use proptest::prelude::*;

/// splitmix64: a tiny seeded generator so graphs are reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Node `i` depends on up to three earlier nodes; its value mixes its own index with theirs.
fn node_value(i: u64, inputs: &[u64]) -> u64 {
    inputs
        .iter()
        .fold(i.wrapping_mul(0x100_0000_01B3), |acc, &x| {
            acc.rotate_left(5) ^ x.wrapping_add(i)
        })
}

fn random_graph(n: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            if i == 0 {
                return Vec::new();
            }
            let k = rng.below(4) as usize;
            (0..k).map(|_| rng.below(i as u64) as usize).collect()
        })
        .collect()
}

#[test]
fn hundred_thousand_random_dependencies_match_sequential() {
    let n = 100_000;
    let deps = random_graph(n, 42);
    let mut expected = Vec::with_capacity(n);
    for (i, d) in deps.iter().enumerate() {
        let inputs: Vec<u64> = d.iter().map(|&j| expected[j]).collect();
        expected.push(node_value(i as u64, &inputs));
    }

    let client = Client::builder().workers(2).build().unwrap();
    let mut futures: Vec<TaskFuture<u64>> = Vec::with_capacity(n);
    for (i, d) in deps.iter().enumerate() {
        let i = i as u64;
        let f = if d.is_empty() {
            client.submit_local(move || node_value(i, &[]))
        } else {
            let inputs: Vec<TaskFuture<u64>> = d.iter().map(|&j| futures[j].clone()).collect();
            client.submit_local_with(&inputs, move |xs| {
                let xs: Vec<u64> = xs.into_iter().copied().collect();
                node_value(i, &xs)
            })
        };
        futures.push(f);
    }
    let got = client.gather(futures).unwrap();
    assert_eq!(got, expected);
}

/// Task `depth` submits task `depth + 1` and waits on it: 10,000 levels of tasks waiting on
/// tasks. Every waiting worker must help, or 2 workers deadlock after 2 levels. Helping nests
/// frames, so this also checks that the default worker stack holds 10,000 levels (it needs
/// between 8 and 32 MiB in a debug build).
fn nested(client: Client, depth: u32, max: u32) -> u64 {
    if depth == max {
        return 0;
    }
    let inner = client.clone();
    let child = client.submit_local(move || nested(inner, depth + 1, max));
    *child.wait().unwrap() + 1
}

#[test]
fn ten_thousand_levels_of_waiting_tasks_finish_on_two_workers() {
    let client = Client::builder().workers(2).build().unwrap();
    let c = client.clone();
    let top = client.submit_local(move || nested(c, 0, 10_000));
    assert_eq!(top.wait(), Ok(&10_000));
}

#[test]
fn a_long_failing_chain_does_not_overflow_the_stack() {
    let client = Client::builder().workers(2).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let root = client.submit_local(move || -> u64 {
        rx.recv().unwrap();
        panic!("root")
    });
    let mut last = root.clone();
    for _ in 0..200_000 {
        last = client.submit_local_with(&last, |x| x + 1);
    }
    tx.send(()).unwrap();
    match last.wait() {
        Err(TaskError::InputFailed { cause, .. }) => {
            assert!(matches!(&*cause, TaskError::Panicked { task, .. } if *task == root.id()))
        }
        other => panic!("expected InputFailed, got {other:?}"),
    }
}

#[test]
fn a_long_chain_of_successes() {
    let client = Client::builder().workers(2).build().unwrap();
    let mut last = client.submit_local(|| 0u64);
    for _ in 0..100_000 {
        last = client.submit_local_with(&last, |x| x + 1);
    }
    assert_eq!(last.wait(), Ok(&100_000));
}

/// Small random graphs where some nodes panic: every node's outcome matches a sequential
/// evaluation (value, own panic, or failed input).
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Value(u64),
    Panicked,
    InputFailed,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_graphs_with_failures_match_sequential(
        seed in any::<u64>(),
        n in 1usize..200,
        panic_every in 2u64..20,
        workers in 1usize..=3,
    ) {
        let deps = random_graph(n, seed);
        let panics = |i: usize| ((i as u64 * 0x9E37_79B9) ^ seed).is_multiple_of(panic_every);
        let mut expected: Vec<Outcome> = Vec::with_capacity(n);
        for (i, d) in deps.iter().enumerate() {
            let inputs: Vec<&Outcome> = d.iter().map(|&j| &expected[j]).collect();
            let outcome = if inputs.iter().any(|o| !matches!(o, Outcome::Value(_))) {
                Outcome::InputFailed
            } else if panics(i) {
                Outcome::Panicked
            } else {
                let xs: Vec<u64> = inputs.iter().map(|o| match o { Outcome::Value(v) => *v, _ => 0 }).collect();
                Outcome::Value(node_value(i as u64, &xs))
            };
            expected.push(outcome);
        }

        let client = Client::builder().workers(workers).build().unwrap();
        let mut futures: Vec<TaskFuture<u64>> = Vec::with_capacity(n);
        for (i, d) in deps.iter().enumerate() {
            let p = panics(i);
            let inputs: Vec<TaskFuture<u64>> = d.iter().map(|&j| futures[j].clone()).collect();
            let iu = i as u64;
            futures.push(client.submit_local_with(&inputs, move |xs| {
                if p { panic!("node {iu}"); }
                let xs: Vec<u64> = xs.into_iter().copied().collect();
                node_value(iu, &xs)
            }));
        }
        let got: Vec<Outcome> = futures.iter().map(|f| match f.wait() {
            Ok(v) => Outcome::Value(*v),
            Err(TaskError::Panicked { .. }) => Outcome::Panicked,
            Err(TaskError::InputFailed { .. }) => Outcome::InputFailed,
            Err(e) => panic!("unexpected {e}"),
        }).collect();
        prop_assert_eq!(got, expected);
    }
}
