//! `peer status`: what the peers of a swarm are doing — load, capacity, versions — asked of
//! every peer this command's own short-lived peer connects to.

use std::time::Duration;

use serde_json::json;

use super::swarm_args::SwarmArgs;

/// What each column of `peer status` says.
const COLUMNS: &str = "\
Columns, one row per peer (`*`: this command's own, which leaves when it ends):
  version  the peer's peer version         workers  tasks it runs at once
  ready    tasks queued there               running  tasks running there now
  owned    tasks submitted there, not done  ran      tasks it has run since it started
  local    closures submitted there (they run there only)
  peers    peers it is connected to         hosted   named primitives (locks, queues,
           variables...) it keeps as their home or backup
  state    up, or draining (leaving: it takes no more work)";

/// Options of `peer status`.
#[derive(Debug, clap::Args)]
#[command(after_help = COLUMNS)]
pub(crate) struct Args {
    /// One JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// How long to keep discovering peers before asking (milliseconds): a swarm is found
    /// from the bootstrap peer over a few round trips.
    #[arg(long, default_value_t = 500)]
    settle_ms: u64,
    #[command(flatten)]
    swarm: SwarmArgs,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let client = args.swarm.join_to_look()?;
    super::swarm_args::settle(&client, Duration::from_millis(args.settle_ms))?;
    let me = client.peer_id();
    let reports = client.swarm_status()?;
    if args.json {
        let peers: Vec<_> = reports
            .iter()
            .map(|answer| (&answer.peer, &answer.report))
            .map(|(peer, report)| match report {
                Ok(r) => json!({
                    "peer": peer.to_string(),
                    "this_command": *peer == me,
                    "version": r.version,
                    "workers": r.workers,
                    "ready": r.ready,
                    "running": r.running,
                    "owned": r.owned,
                    "ran": r.ran,
                    "local": r.local,
                    "peers": r.peers,
                    "hosted": r.hosted,
                    "draining": r.draining,
                }),
                Err(error) => json!({
                    "peer": peer.to_string(),
                    "this_command": *peer == me,
                    "error": error,
                }),
            })
            .collect();
        let others: Vec<_> = reports
            .iter()
            .filter(|answer| answer.peer != me && answer.report.is_ok())
            .collect();
        let workers: u64 = others
            .iter()
            .filter_map(|answer| answer.report.as_ref().ok())
            .map(|r| u64::from(r.workers))
            .sum();
        let out = json!({ "peers": peers, "answered": others.len(), "workers": workers });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{:<54} {:>8} {:>7} {:>6} {:>7} {:>6} {:>8} {:>8} {:>5} {:>6}  state",
        "peer",
        "version",
        "workers",
        "ready",
        "running",
        "owned",
        "ran",
        "local",
        "peers",
        "hosted"
    );
    for answer in &reports {
        let (peer, report) = (&answer.peer, &answer.report);
        let who = if *peer == me {
            format!("{peer} *")
        } else {
            peer.to_string()
        };
        match report {
            Ok(r) => println!(
                "{who:<54} {:>8} {:>7} {:>6} {:>7} {:>6} {:>8} {:>8} {:>5} {:>6}  {}",
                r.version,
                r.workers,
                r.ready,
                r.running,
                r.owned,
                r.ran,
                r.local,
                r.peers,
                r.hosted,
                if r.draining { "draining" } else { "up" }
            ),
            Err(error) => println!("{who:<54} no answer: {error}"),
        }
    }
    println!("* this command's own peer, which leaves when it ends");
    Ok(())
}
