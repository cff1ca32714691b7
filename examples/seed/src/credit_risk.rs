//! The seed's credit-risk model: a graph of about a thousand tasks with no common shape.
//!
//! Market feeds feed exposures (fan-in of two or three feeds each); each default model
//! reads an exposure and a feed, and for a stressed name submits stress scenarios as nested
//! tasks and waits for them; losses fan in default probabilities; portfolios fan in losses;
//! one total fans in the portfolios. Beside the graph, two primitives:
//!
//! - a **ledger**: every portfolio books its losses into a `Variable` holding a map from
//!   loss id to cents, under a `Lock`, writing with the lock's fencing token;
//! - an **audit queue**: every stressed default model files a record on a `Queue`, and
//!   auditor tasks take records off it and grade them.
//!
//! On a swarm a peer may die mid-run, and its tasks run again elsewhere, so every side
//! effect is idempotent: a portfolio that books twice writes the same entries; a record filed
//! twice is counted once (records carry ids, and the summary is built from the ids); and a
//! record taken by an auditor that died with its peer is filed again by the driver once
//! every default model is done and the queue has been drained. Amounts are summed in a
//! fixed order or as integer cents, so the printed result is the same on every run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peer_cli::SwarmArgs;
use peer_core::{Client, TaskFuture};
use serde::{Deserialize, Serialize};

use crate::data::{mix, pause, unit};
use crate::progress;

const FEEDS: u32 = 40;
const EXPOSURES: u32 = 200;
const DEFAULTS: u32 = 400;
const LOSSES: u32 = 300;
const PORTFOLIOS: u32 = 50;
/// Default models of exposures above this run stress scenarios.
const STRESSED_ABOVE: f64 = 0.6;
/// Stress scenarios per stressed name.
const SCENARIOS: u32 = 4;
/// Auditor tasks started in each round.
const AUDITORS: usize = 2;
/// Room in the audit queue: every record once, and the copies that re-runs file again, so
/// that filing never waits.
const AUDIT_CAPACITY: usize = 4 * DEFAULTS as usize;
/// Notional of one unit of default probability, in currency units.
const NOTIONAL: f64 = 1_000_000.0;

/// The names of one run's primitives: a new run never sees an earlier run's state.
fn ledger_name(run: &str) -> String {
    format!("seed/credit-risk/{run}/ledger")
}

fn audit_name(run: &str) -> String {
    format!("seed/credit-risk/{run}/audit")
}

fn ledger(client: &Client, run: &str) -> peer_core::Variable<BTreeMap<u32, u64>> {
    client.variable(&ledger_name(run))
}

fn audit_queue(client: &Client, run: &str) -> peer_core::Queue<AuditRecord> {
    client.queue(&audit_name(run), AUDIT_CAPACITY)
}

/// The feeds exposure `e` reads.
fn feeds_of(e: u32) -> Vec<u32> {
    (0..2 + e % 2)
        .map(|k| (mix(u64::from(e * 7 + k)) % u64::from(FEEDS)) as u32)
        .collect()
}

/// The default models loss `l` reads.
fn pds_of(l: u32) -> Vec<u32> {
    (0..1 + l % 4)
        .map(|k| (mix(u64::from(l * 31 + k) + 1_000) % u64::from(DEFAULTS)) as u32)
        .collect()
}

/// Cents of an amount: integers, so the ledger's sum does not depend on booking order.
fn cents(amount: f64) -> u64 {
    (amount * 100.0).round() as u64
}

/// A stressed default model's audit record, filed on the audit queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AuditRecord {
    /// The default model's number: the same in every run of it.
    model: u32,
    /// Its default probability in parts per million.
    pd_ppm: u64,
}

/// An auditor's verdict on one record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Audited {
    model: u32,
    grade: char,
}

/// The record default model `model` files.
fn record(model: u32, pd: f64) -> AuditRecord {
    AuditRecord {
        model,
        pd_ppm: (pd * 1e6).round() as u64,
    }
}

/// One market feed: a curve of 64 points.
#[peer_core::task]
fn market_feed(feed: u32, pause_ms: u64) -> Vec<f64> {
    pause(pause_ms);
    (0..64).map(|k| unit(u64::from(feed * 64 + k))).collect()
}

/// Exposure `e`, from the curves of its feeds (fan-in: gathered in order).
#[peer_core::task]
fn exposure(e: u32, curves: &[Vec<f64>], pause_ms: u64) -> f64 {
    pause(pause_ms);
    let e = e as usize;
    let total: f64 = curves
        .iter()
        .map(|c| c[e % c.len()] + c[(e * 3) % c.len()])
        .sum();
    total / (2.0 * curves.len().max(1) as f64)
}

/// One stress scenario of a stressed name: submitted by its default model, as a nested task.
#[peer_core::task]
fn stress_scenario(scenario: u32, exposure: f64, curve: &[f64], pause_ms: u64) -> f64 {
    pause(pause_ms);
    exposure * (1.0 + curve[(scenario as usize * 13) % curve.len()])
}

/// Default probability of name `model`. A stressed name (exposure above
/// [`STRESSED_ABOVE`]) first runs [`SCENARIOS`] stress scenarios as tasks of its own and
/// waits for them (helping meanwhile), and files an audit record.
#[peer_core::task]
fn default_model(model: u32, exposure: f64, curve: &[f64], run: &str, pause_ms: u64) -> f64 {
    pause(pause_ms);
    let base = exposure * 0.1 + curve[model as usize % curve.len()] * 0.05;
    if exposure <= STRESSED_ABOVE {
        return base;
    }
    Client::with_current(|client| {
        let runs: Vec<TaskFuture<f64>> = (0..SCENARIOS)
            .map(|s| {
                client.submit_named(StressScenarioTask, (s, exposure, curve.to_vec(), pause_ms))
            })
            .collect();
        let stressed = client
            .gather(runs)
            .unwrap_or_else(|e| panic!("a stress scenario of model {model} failed: {e}"));
        let pd = base + stressed.iter().sum::<f64>() * 0.01;
        // A second run of this task (its first run's peer died) files the same record
        // again. The queue is closed only after the run, when nothing files any more.
        let _ = audit_queue(client, run).blocking_put(record(model, pd));
        pd
    })
    .expect("a default model runs on a client's worker")
}

/// Loss `l` from its default probabilities (fan-in).
#[peer_core::task]
fn loss(l: u32, pds: &[f64], pause_ms: u64) -> f64 {
    pause(pause_ms);
    pds.iter().sum::<f64>() * NOTIONAL * (1.0 + f64::from(l % 5) * 0.1)
}

/// The losses of portfolio `p`: every [`PORTFOLIOS`]th, from `p`.
fn losses_of(p: u32) -> impl Iterator<Item = u32> {
    (p..LOSSES).step_by(PORTFOLIOS as usize)
}

/// Portfolio `p`: the sum of its losses (fan-in, in order). Books each of them into the
/// ledger, under its lock, as cents keyed by loss: a second run books the same entries.
#[peer_core::task]
fn portfolio(p: u32, losses: &[f64], run: &str, pause_ms: u64) -> f64 {
    pause(pause_ms);
    let entries: Vec<(u32, u64)> = losses_of(p)
        .zip(losses)
        .map(|(l, &x)| (l, cents(x)))
        .collect();
    Client::with_current(|client| {
        let (lock, ledger) = (client.lock(&ledger_name(run)), ledger(client, run));
        loop {
            let guard = lock.blocking_lock();
            let mut book = ledger.blocking_get().unwrap_or_default();
            if entries.iter().all(|(l, c)| book.get(l) == Some(c)) {
                return; // an earlier run of this task booked them
            }
            book.extend(entries.iter().copied());
            // Fenced: had the lock been taken back from us (our peer was thought dead) and
            // given to another, its write would win and we would read the book again.
            if ledger.blocking_set_fenced(book, guard.token()).is_ok() {
                return;
            }
        }
    })
    .expect("a portfolio runs on a client's worker");
    losses.iter().sum()
}

/// The bank's total: the portfolios summed in order.
#[peer_core::task]
fn total(portfolios: &[f64]) -> f64 {
    portfolios.iter().sum()
}

/// An auditor: takes records off the audit queue and grades them, until the queue has been
/// empty for `idle_ms` (or is closed).
#[peer_core::task]
fn audit(run: &str, idle_ms: u64, pause_ms: u64) -> Vec<Audited> {
    let queue = Client::with_current(|client| audit_queue(client, run))
        .expect("an auditor runs on a client's worker");
    let mut graded = Vec::new();
    while let Ok(record) = queue.blocking_get_timeout(Duration::from_millis(idle_ms)) {
        pause(pause_ms);
        let grade = match record.pd_ppm {
            ..120_000 => 'A',
            120_000..135_000 => 'B',
            135_000..150_000 => 'C',
            _ => 'D',
        };
        graded.push(Audited {
            model: record.model,
            grade,
        });
    }
    graded
}

/// Options of `seed credit-risk`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Each task also sleeps this many milliseconds, standing for a slower model.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    task_ms: u64,
    /// An auditor stops after the audit queue has been empty this long (milliseconds).
    #[arg(long, value_name = "MS", default_value_t = 100)]
    audit_idle_ms: u64,
    #[command(flatten)]
    swarm: SwarmArgs,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let client = args.swarm.client()?;
    let ms = args.task_ms;
    let run = run_id();
    let start = Instant::now();

    let feeds = client.map_named(MarketFeedTask, (0..FEEDS).map(|f| (f, ms)));
    let exposures: Vec<TaskFuture<f64>> = (0..EXPOSURES)
        .map(|e| {
            let curves: Vec<&TaskFuture<Vec<f64>>> =
                feeds_of(e).iter().map(|&f| &feeds[f as usize]).collect();
            client.submit_named(ExposureTask, (e, &curves, ms))
        })
        .collect();
    let pds: Vec<TaskFuture<f64>> = (0..DEFAULTS)
        .map(|d| {
            let exposure = &exposures[(d % EXPOSURES) as usize];
            let curve = &feeds[(d % FEEDS) as usize];
            client.submit_named(DefaultModelTask, (d, exposure, curve, run.clone(), ms))
        })
        .collect();
    let losses: Vec<TaskFuture<f64>> = (0..LOSSES)
        .map(|l| {
            let pds: Vec<&TaskFuture<f64>> = pds_of(l).iter().map(|&d| &pds[d as usize]).collect();
            client.submit_named(LossTask, (l, &pds, ms))
        })
        .collect();
    let portfolios: Vec<TaskFuture<f64>> = (0..PORTFOLIOS)
        .map(|p| {
            let losses: Vec<&TaskFuture<f64>> = losses_of(p).map(|l| &losses[l as usize]).collect();
            client.submit_named(PortfolioTask, (p, &losses, run.clone(), ms))
        })
        .collect();
    let total = client.submit_named(TotalTask, &portfolios);
    let watched: Vec<TaskFuture<f64>> = (pds.iter().chain(&losses).chain(&portfolios))
        .cloned()
        .collect();
    let reporter = std::thread::spawn(move || progress::report("models", &watched));

    // Which names are stressed is known once the exposures are.
    let exposures = client.gather(exposures)?;
    let stressed: Vec<u32> = (0..DEFAULTS)
        .filter(|&d| exposures[(d % EXPOSURES) as usize] > STRESSED_ABOVE)
        .collect();
    let audit = audit_all(&client, &run, &pds, &stressed, args.audit_idle_ms, ms)?;
    eprintln!(
        "audit: {} rounds of {AUDITORS} auditors; {} records filed again",
        audit.rounds, audit.refiled
    );
    let audited = audit.graded;
    let total = *total.wait()?;
    let portfolios = client.gather(portfolios)?;
    let losses = client.gather(losses)?;
    let book = ledger(&client, &run).blocking_get().unwrap_or_default();
    audit_queue(&client, &run).blocking_close();
    let _ = reporter.join();
    progress::took(start);

    let stressed = stressed.len() as u32;
    println!(
        "credit risk: {FEEDS} feeds, {EXPOSURES} exposures, {DEFAULTS} default models \
         ({stressed} stressed, {} nested stress scenarios), {LOSSES} losses, {PORTFOLIOS} \
         portfolios, 1 total",
        stressed * SCENARIOS
    );
    println!("total loss: {total:.2}");
    let mut largest: Vec<(usize, f64)> = portfolios.iter().copied().enumerate().collect();
    largest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    for (p, amount) in largest.iter().take(3) {
        println!("portfolio {p}: {amount:.2}");
    }
    let expected: u64 = losses.iter().map(|&l| cents(l)).sum();
    let booked: u64 = book.values().sum();
    println!(
        "ledger: {} of {LOSSES} losses booked, {booked} cents ({})",
        book.len(),
        if booked == expected && book.len() == LOSSES as usize {
            "matches the losses"
        } else {
            "DOES NOT match the losses"
        }
    );
    let mut grades: BTreeMap<char, u32> = BTreeMap::new();
    for a in audited.values() {
        *grades.entry(a.grade).or_default() += 1;
    }
    let grades: Vec<String> = grades.iter().map(|(g, n)| format!("{g} {n}")).collect();
    println!(
        "audit: {} of {stressed} stressed names graded: {}",
        audited.len(),
        grades.join(", ")
    );
    Ok(())
}

/// What [`audit_all`] did.
#[derive(Debug)]
struct Audit {
    /// The verdict on each stressed default model, by model.
    graded: BTreeMap<u32, Audited>,
    /// Rounds of auditors it ran.
    rounds: u32,
    /// Records it filed again (an auditor took them, then died with its peer).
    refiled: u32,
}

/// Runs rounds of auditors until the record of every stressed default model is graded:
/// each round's auditors take what the queue holds and stop when it stays empty. A record
/// is counted once however many times it was filed or graded. A record taken by an auditor
/// whose peer died is lost with it: once every default model was done before a round began
/// and that round left the queue empty, the driver files the missing records again.
fn audit_all(
    client: &Client,
    run: &str,
    pds: &[TaskFuture<f64>],
    stressed: &[u32],
    idle_ms: u64,
    pause_ms: u64,
) -> anyhow::Result<Audit> {
    let start = Instant::now();
    let queue = audit_queue(client, run);
    let mut audited: BTreeMap<u32, Audited> = BTreeMap::new();
    let (mut rounds, mut refiled, mut idle_rounds) = (0u32, 0u32, 0u32);
    while audited.len() < stressed.len() {
        let producers_done = pds.iter().all(TaskFuture::is_done);
        let auditors = client.map_named(
            AuditTask,
            (0..AUDITORS).map(|_| (run.to_string(), idle_ms, pause_ms)),
        );
        let before = audited.len();
        for graded in client.gather(auditors)? {
            for a in graded {
                audited.entry(a.model).or_insert(a);
            }
        }
        rounds += 1;
        eprintln!(
            "progress: audit round {rounds}: default models {}/{DEFAULTS}, audited {}/{} \
             ({:.0} ms)",
            pds.iter().filter(|f| f.is_done()).count(),
            audited.len(),
            stressed.len(),
            start.elapsed().as_secs_f64() * 1e3
        );
        if !producers_done || audited.len() == stressed.len() {
            continue;
        }
        if audited.len() == before {
            idle_rounds += 1;
            anyhow::ensure!(
                idle_rounds < 20,
                "the audit made no progress in 20 rounds ({} of {} records)",
                audited.len(),
                stressed.len()
            );
        }
        if queue.blocking_is_empty() {
            for &model in stressed {
                if !audited.contains_key(&model) {
                    let pd = *pds[model as usize].wait()?;
                    queue
                        .blocking_put(record(model, pd))
                        .map_err(|_| anyhow::anyhow!("the audit queue closed"))?;
                    refiled += 1;
                }
            }
        }
    }
    Ok(Audit {
        graded: audited,
        rounds,
        refiled,
    })
}

/// A name for this run's primitives, unique on this machine and very likely beyond.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::builder().workers(2).build().unwrap()
    }

    #[test]
    fn records_an_auditor_took_with_it_are_filed_again_and_counted_once() {
        let client = client();
        let run = run_id();
        let pds: Vec<TaskFuture<f64>> = (0..4)
            .map(|d| client.scatter(0.11 + f64::from(d) * 0.01))
            .collect();
        let queue = audit_queue(&client, &run);
        for model in [1, 3, 3] {
            // Model 3 filed twice: its first run's peer died after filing.
            assert!(
                queue
                    .blocking_try_put(record(model, 0.11 + f64::from(model) * 0.01))
                    .is_ok()
            );
        }
        // An auditor took model 1's record, then died with its peer.
        assert_eq!(queue.blocking_try_get().map(|r| r.model), Ok(1));

        let audit = audit_all(&client, &run, &pds, &[1, 3], 20, 0).unwrap();
        let graded: Vec<(u32, char)> = audit.graded.values().map(|a| (a.model, a.grade)).collect();
        assert_eq!(graded, [(1, 'B'), (3, 'C')]);
        assert_eq!(audit.refiled, 1);
    }

    #[test]
    fn a_portfolio_booked_twice_writes_the_same_entries() {
        let client = client();
        let run = run_id();
        let losses = vec![10.004, 20.5, 30.0, 40.25, 50.0, 60.125];
        let first = client.submit_named(PortfolioTask, (7, losses.clone(), run.clone(), 0));
        assert_eq!(first.wait().copied(), Ok(losses.iter().sum()));
        let book = ledger(&client, &run).blocking_get().unwrap();
        let again = client.submit_named(PortfolioTask, (7, losses, run.clone(), 0));
        assert!(again.wait().is_ok());
        assert_eq!(ledger(&client, &run).blocking_get().unwrap(), book);
        let expected: Vec<(u32, u64)> = vec![
            (7, 1000),
            (57, 2050),
            (107, 3000),
            (157, 4025),
            (207, 5000),
            (257, 6013),
        ];
        assert_eq!(book.into_iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn default_models_give_the_same_bits_with_encoded_tasks_as_with_direct_calls() {
        // A peer runs named tasks through the registry, arguments and results encoded: a
        // local client that encodes them runs them that way, nested stress scenarios too.
        let encoded = Client::builder()
            .workers(2)
            .encode_named_tasks(true)
            .build()
            .unwrap();
        let runs: Vec<Vec<(f64, f64)>> = [encoded, client()]
            .iter()
            .map(|client| {
                let feeds = client.map_named(MarketFeedTask, (0..FEEDS).map(|f| (f, 0)));
                (0..12)
                    .map(|d| {
                        let curves: Vec<&TaskFuture<Vec<f64>>> =
                            feeds_of(d).iter().map(|&f| &feeds[f as usize]).collect();
                        let x = client.submit_named(ExposureTask, (d, &curves, 0));
                        let curve = &feeds[(d % FEEDS) as usize];
                        let pd = client.submit_named(DefaultModelTask, (d, &x, curve, run_id(), 0));
                        (*x.wait().unwrap(), *pd.wait().unwrap())
                    })
                    .collect()
            })
            .collect();
        assert!(
            runs[1].iter().any(|&(x, _)| x > STRESSED_ABOVE),
            "no stressed name among the first models: {:?}",
            runs[1]
        );
        let bits =
            |run: &[(f64, f64)]| -> Vec<u64> { run.iter().map(|(_, pd)| pd.to_bits()).collect() };
        assert_eq!(bits(&runs[0]), bits(&runs[1]));
    }
}
