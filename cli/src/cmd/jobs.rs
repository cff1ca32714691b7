//! `peer jobs`, `peer tasks JOB` and `peer cancel JOB`: what `peer map` and `peer submit`
//! run on the swarm, and stopping it, from any terminal. They read and write the swarm's
//! job record ([`job_board`](super::job_board)) and a job's control variable
//! ([`peer_workloads::job_control`]) through a peer that runs no task.

use std::collections::HashSet;
use std::time::Duration;

use peer_workloads::job_control::{self, Control};
use serde_json::json;

use super::Exit;
use super::job_board::{self, JobState, JobSummary};
use super::swarm_args::SwarmArgs;

/// Options of `peer jobs`.
#[derive(Debug, clap::Args)]
pub(crate) struct JobsArgs {
    /// One JSON object per job and line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    swarm: SwarmArgs,
}

/// Options of `peer tasks`.
#[derive(Debug, clap::Args)]
pub(crate) struct TasksArgs {
    /// The job's id, as `peer jobs` lists it.
    job: u64,
    /// One JSON object per task and line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    swarm: SwarmArgs,
}

/// Options of `peer cancel`.
#[derive(Debug, clap::Args)]
pub(crate) struct CancelArgs {
    /// The job's id, as `peer jobs` lists it.
    job: u64,
    /// Let the commands already running finish; only start no more.
    #[arg(long)]
    let_running_finish: bool,
    #[command(flatten)]
    swarm: SwarmArgs,
}

/// How long the peer of `jobs`, `tasks` and `cancel` waits for no new peer to appear before
/// it reads the job record (see [`settle`](super::swarm_args::settle)).
const SETTLE: Duration = Duration::from_millis(300);

/// A peer that runs no task, once it knows the swarm.
fn look(swarm: &SwarmArgs) -> anyhow::Result<peer_net::Peer> {
    let peer = swarm.join_to_look()?;
    super::swarm_args::settle(&peer, SETTLE)?;
    Ok(peer)
}

/// A job's state as shown: a running job whose submitter left the swarm is `lost`.
fn shown_state(job: &JobSummary, up: &HashSet<String>) -> &'static str {
    if job.state == JobState::Running && !up.contains(&job.peer) {
        "lost"
    } else {
        job.state.as_str()
    }
}

/// The peers up now, as their ids' text.
fn peers_up(peer: &peer_net::Peer) -> anyhow::Result<HashSet<String>> {
    let mut up: HashSet<String> = (peer.swarm_status()?.into_iter())
        .map(|answer| answer.peer.to_string())
        .collect();
    up.insert(peer.peer_id().to_string());
    Ok(up)
}

pub(crate) fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    let peer = look(&args.swarm)?;
    let list = job_board::jobs(&peer);
    let up = peers_up(&peer)?;
    if args.json {
        for job in &list {
            let mut line = serde_json::to_value(job)?;
            line["state"] = json!(shown_state(job, &up));
            println!("{line}");
        }
        return Ok(());
    }
    if list.is_empty() {
        println!("no jobs yet: `peer map` and `peer submit` start them");
        return Ok(());
    }
    println!(
        "{:>5}  {:<11} {:<6} {:>7} {:>7} {:>7}  {:<20} command",
        "id", "state", "kind", "tasks", "done", "failed", "submitted from"
    );
    for job in &list {
        println!(
            "{:>5}  {:<11} {:<6} {:>7} {:>7} {:>7}  {:<20} {}",
            job.id,
            shown_state(job, &up),
            job.kind,
            job.tasks,
            job.done,
            job.failed,
            format!("{} ({})", job.host, job.pid),
            job.command
        );
    }
    Ok(())
}

pub(crate) fn tasks(args: TasksArgs) -> anyhow::Result<()> {
    let peer = look(&args.swarm)?;
    let job = job_board::jobs(&peer)
        .into_iter()
        .find(|j| j.id == args.job);
    let Some(table) = job.as_ref().and_then(|job| job_board::tasks(&peer, job)) else {
        let why = match job {
            Some(_) => "its task table was replaced by a newer job's (the swarm keeps 256)",
            None => "`peer jobs` lists the jobs it keeps",
        };
        return Err(Exit {
            code: Exit::FAILED,
            message: format!("no task table of job {} in this swarm: {why}", args.job),
        }
        .into());
    };
    if args.json {
        for task in &table {
            println!("{}", serde_json::to_value(task)?);
        }
        return Ok(());
    }
    println!(
        "{:>6}  {:<9} {:>5} {:>9}  {:<20} {:<54} input",
        "index", "state", "exit", "seconds", "host (peer pid)", "peer"
    );
    for t in &table {
        let exit = match (t.exit_code, t.signal) {
            (Some(code), _) => code.to_string(),
            (None, Some(signal)) => format!("sig{signal}"),
            (None, None) => "-".to_string(),
        };
        let at = if t.host.is_empty() {
            "-".to_string()
        } else {
            format!("{} ({})", t.host, t.pid)
        };
        let state = serde_json::to_value(t.state)?;
        println!(
            "{:>6}  {:<9} {:>5} {:>9.3}  {:<20} {:<54} {}",
            t.index,
            state.as_str().unwrap_or_default(),
            exit,
            t.seconds,
            at,
            if t.peer.is_empty() { "-" } else { &t.peer },
            t.input
        );
    }
    Ok(())
}

pub(crate) fn cancel(args: CancelArgs) -> anyhow::Result<()> {
    let peer = look(&args.swarm)?;
    let Some(job) = job_board::jobs(&peer)
        .into_iter()
        .find(|j| j.id == args.job)
    else {
        return Err(Exit {
            code: Exit::FAILED,
            message: format!("no job {} in this swarm (`peer jobs` lists them)", args.job),
        }
        .into());
    };
    let control = if args.let_running_finish {
        Control::Cancel
    } else {
        Control::Kill
    };
    job_control::request(&peer, job.key, control);
    let what = match control {
        Control::Kill => "its running commands are killed and no more start",
        _ => "no more of its commands start; running ones finish",
    };
    if job.state == JobState::Running {
        println!("cancelling job {}: {what}", job.id);
    } else {
        println!("job {} had already ended ({})", job.id, job.state.as_str());
    }
    Ok(())
}
