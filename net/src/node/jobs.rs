//! Detached jobs and published values.
//!
//! A detached job is a graph of named tasks ([`JobSpec`]) whose owner runs it like any of
//! its tasks and publishes the output under the job's name. Its description is gossiped
//! when it is submitted, so every peer knows it: when the owner is suspected before the
//! value is published, the live peer with the highest rendezvous score for the job's name
//! adopts it (runs it again as its own and says so). Every peer decides alone, from its own
//! view of who is up, and the same view gives the same successor; if views differ, two
//! peers may run it, and the first value published is the one kept.
//!
//! Published values are gossiped to every peer; one that missed the gossip (it joined
//! later, or was cut off) asks the peers it knows.
//!
//! Sans-IO, like the node's other protocols: [`Jobs`] is fed jobs, gossip, lookups and
//! their answers, with the [`Membership`] to decide successors from, and says what to do
//! through [`Effect`]s (submit a job's tasks, gossip, ask a peer, answer a lookup).

use std::collections::{HashMap, VecDeque};

use super::SubmitArg;
use super::fifo::Published;
use super::placement::successor;
use super::state::Pending;
use crate::config::Limits;
use crate::membership::Membership;
use crate::wire::{Failure, GraphEvent, JobArg, JobSpec, Request, TaskKey};

/// Roughly the bytes a job's description holds.
fn job_bytes(spec: &JobSpec) -> usize {
    let args: usize = (spec.tasks.iter())
        .flat_map(|t| &t.args)
        .map(|a| match a {
            JobArg::Value(bytes) => bytes.len() + 8,
            JobArg::Task(_) => 8,
        })
        .sum();
    let names: usize = spec.tasks.iter().map(|t| t.name.len() + 16).sum();
    spec.name.len() + args + names
}

/// What the jobs protocol asks its node to do ([`Jobs::poll_output`]).
#[derive(Debug)]
pub(crate) enum Effect {
    /// Take in a task of a job this peer runs, as its own.
    Submit {
        key: TaskKey,
        name: String,
        fingerprint: u64,
        args: Vec<SubmitArg>,
    },
    /// Gossip an event to every peer.
    Gossip(GraphEvent),
    /// Send `request` to `to`; its answer goes to [`Jobs::looked_up`].
    Send {
        to: u64,
        pending: Pending,
        request: Request,
    },
    /// The answer to lookup `waiter`: the published value, if any peer had it.
    Found {
        waiter: u64,
        value: Option<Result<Vec<u8>, Failure>>,
    },
}

/// A detached job this peer knows of, not yet published.
#[derive(Debug)]
pub(super) struct Job {
    /// The peer running it.
    pub(super) owner: u64,
    pub(super) spec: JobSpec,
}

/// The jobs protocol: detached jobs known here, values published, lookups.
#[derive(Debug)]
pub(super) struct Jobs {
    me: u64,
    /// Bounds on the jobs and values other peers make this one keep.
    pub(super) limits: Limits,
    /// Detached jobs not yet published, by name.
    pub(super) detached: HashMap<String, Job>,
    /// Values published under names.
    pub(super) published: Published,
    /// Output tasks of jobs run here, with the job's name.
    outputs: HashMap<TaskKey, String>,
    /// The last number given to a task of a job run here.
    seq: u64,
    /// Lookups waiting for answers: the name, and how many peers have not answered.
    lookups: HashMap<u64, (String, usize)>,
    /// Jobs adopted from a suspected owner.
    pub(super) adopted: u64,
    effects: VecDeque<Effect>,
}

/// Job tasks are numbered from here, apart from the submitter's own numbers.
pub(super) const JOB_SEQ_BASE: u64 = 1 << 63;

impl Jobs {
    /// The jobs of peer `me`, bounded by `limits`.
    pub(super) fn new(me: u64, limits: Limits) -> Jobs {
        Jobs {
            me,
            limits,
            detached: HashMap::new(),
            published: Published::values(),
            outputs: HashMap::new(),
            seq: 0,
            lookups: HashMap::new(),
            adopted: 0,
            effects: VecDeque::new(),
        }
    }

    /// The next thing to do, if any.
    pub(super) fn poll_output(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Takes in a detached job this peer submits.
    pub(super) fn detach(&mut self, spec: JobSpec) -> Result<(), String> {
        check_job(&spec)?;
        // Its description is gossiped, so that any peer can adopt it.
        let size = postcard::to_allocvec(&spec).map_or(usize::MAX, |b| b.len());
        let most = self.limits.gossip_bytes.saturating_sub(1024);
        if size > most {
            return Err(format!(
                "job {:?}: its description is {size} bytes, over the {most} a gossip message \
                 carries; compute large inputs in a task of the job instead",
                spec.name
            ));
        }
        if self.published.contains_key(&spec.name) || self.detached.contains_key(&spec.name) {
            return Err(format!("a job named {:?} exists already", spec.name));
        }
        self.run_job(spec);
        Ok(())
    }

    /// The name of the job whose output `task` is, once: its result is to be published.
    pub(super) fn output_done(&mut self, task: TaskKey) -> Option<String> {
        self.outputs.remove(&task)
    }

    /// Whether `peer` owns a job known here.
    pub(super) fn owns_a_job(&self, peer: u64) -> bool {
        self.detached.values().any(|job| job.owner == peer)
    }

    /// Publishes `value` under `name` (the first value under a name is kept).
    pub(super) fn publish(&mut self, name: String, value: Result<Vec<u8>, Failure>) {
        if self.keep_published(&name, &value) {
            (self.effects).push_back(Effect::Gossip(GraphEvent::Published { name, value }));
        }
    }

    /// Keeps `value` under `name` unless a value is kept already (the first one wins); the
    /// job that was to publish it is done. Whether it was kept.
    fn keep_published(&mut self, name: &str, value: &Result<Vec<u8>, Failure>) -> bool {
        self.detached.remove(name);
        let (most, bytes) = (self.limits.published, self.limits.published_bytes);
        (self.published).insert(name.to_string(), value.clone(), most, bytes)
    }

    /// Whether `from` may speak for the job named `name`: its owner as this peer knows it,
    /// or the peer that adopts it once that owner is suspected. True for a name of no job
    /// known here (the first to gossip a job binds its name).
    fn speaks_for_job(&self, members: &Membership, name: &str, from: u64) -> bool {
        let Some(job) = self.detached.get(name) else {
            return true;
        };
        if job.owner == from {
            return true;
        }
        let mut candidates: Vec<u64> = members.up().iter().copied().collect();
        candidates.extend([self.me, from]);
        members.is_down(job.owner) && successor(name, &candidates) == from
    }

    /// Looks up the value published under `name`: answers [`Effect::Found`] for `waiter`,
    /// asking the peers that are up when this peer does not know it.
    pub(super) fn lookup(&mut self, members: &Membership, name: String, waiter: u64) {
        if let Some(value) = self.published.get(&name) {
            let value = Some(value.clone());
            self.effects.push_back(Effect::Found { waiter, value });
            return;
        }
        let mut peers: Vec<u64> = members.up().iter().copied().collect();
        peers.sort_unstable();
        if peers.is_empty() {
            let value = None;
            self.effects.push_back(Effect::Found { waiter, value });
            return;
        }
        self.lookups.insert(waiter, (name.clone(), peers.len()));
        for to in peers {
            self.effects.push_back(Effect::Send {
                to,
                pending: Pending::Lookup(waiter, to),
                request: Request::Published { name: name.clone() },
            });
        }
    }

    /// Peer `from` answered lookup `waiter`: the first value found answers it. For the name
    /// of a job known here, only its owner's (or adopter's) answer counts, as with gossip.
    pub(super) fn looked_up(
        &mut self,
        members: &Membership,
        waiter: u64,
        from: u64,
        mut value: Option<Result<Vec<u8>, Failure>>,
    ) {
        let Some((name, _)) = self.lookups.get(&waiter) else {
            return;
        };
        // The value came here meanwhile (its owner's gossip, which also ends the job and so
        // its binding): that one answers, not whatever another peer says.
        if let Some(kept) = self.published.get(name) {
            let value = Some(kept.clone());
            self.lookups.remove(&waiter);
            self.effects.push_back(Effect::Found { waiter, value });
            return;
        }
        let speaks = self.speaks_for_job(members, name, from);
        if !speaks && value.take().is_some() {
            tracing::debug!(from = %format_args!("{from:016x}"), "a published value from a peer that does not own its job dropped");
        }
        let Some((name, left)) = self.lookups.get_mut(&waiter) else {
            return;
        };
        *left = left.saturating_sub(1);
        match value {
            Some(value) => {
                let name = name.clone();
                self.lookups.remove(&waiter);
                self.keep_published(&name, &value);
                let value = Some(value);
                self.effects.push_back(Effect::Found { waiter, value });
            }
            None if *left == 0 => {
                self.lookups.remove(&waiter);
                let value = None;
                self.effects.push_back(Effect::Found { waiter, value });
            }
            None => {}
        }
    }

    /// Gossip about jobs from `from`; `can_run` is what this peer registers, should it
    /// adopt a job.
    pub(super) fn gossip(
        &mut self,
        members: &Membership,
        can_run: &[u64],
        from: u64,
        event: &GraphEvent,
    ) {
        match event {
            GraphEvent::Detached(spec) if !self.published.contains_key(&spec.name) => {
                if let Err(why) = check_job(spec) {
                    tracing::debug!(%why, "a malformed job from gossip dropped");
                    return;
                }
                if !self.speaks_for_job(members, &spec.name, from) {
                    tracing::debug!(job = %spec.name, "a job claimed by a peer that does not own it dropped");
                    return;
                }
                if !self.detached.contains_key(&spec.name) && !self.room_for_job(spec) {
                    tracing::debug!(job = %spec.name, "at the bound of jobs kept: not recorded");
                    return;
                }
                let job = Job {
                    owner: from,
                    spec: spec.clone(),
                };
                self.detached.insert(spec.name.clone(), job);
                if members.is_down(from) {
                    // Heard of only after its owner was suspected.
                    self.adopt_orphans(members, can_run);
                }
            }
            GraphEvent::Published { name, value } if self.speaks_for_job(members, name, from) => {
                self.keep_published(name, value);
            }
            _ => {}
        }
    }

    /// Whether another peer's job fits the bounds on jobs kept.
    fn room_for_job(&self, spec: &JobSpec) -> bool {
        let (count, bytes) = (self.detached.values())
            .filter(|j| j.owner != self.me)
            .fold((0, 0), |(n, b), j| (n + 1, b + job_bytes(&j.spec)));
        count < self.limits.jobs && bytes + job_bytes(spec) <= self.limits.job_bytes
    }

    /// Adopts the unpublished jobs whose owner is suspected and that fall to this peer, if
    /// it registers their tasks (`can_run`, sorted). Called whenever a peer is suspected
    /// (the owner, or a successor that died before saying it adopted) and when a job is
    /// heard of after its owner was suspected.
    pub(super) fn adopt_orphans(&mut self, members: &Membership, can_run: &[u64]) {
        let mut candidates: Vec<u64> = members.up().iter().copied().collect();
        candidates.push(self.me);
        let mut orphans: Vec<String> = (self.detached.iter())
            .filter(|(name, job)| {
                job.owner != self.me
                    && members.is_down(job.owner)
                    && successor(name, &candidates) == self.me
            })
            .map(|(name, _)| name.clone())
            .collect();
        orphans.sort_unstable();
        for name in orphans {
            let Some(job) = self.detached.remove(&name) else {
                continue;
            };
            let missing =
                (job.spec.tasks.iter()).find(|t| can_run.binary_search(&t.fingerprint).is_err());
            if let Some(task) = missing {
                // Running it would publish `UnknownTask` for everyone: leave it.
                tracing::warn!(job = %name, task = %task.name, "cannot adopt a job with a task this binary does not register");
                self.detached.insert(name, job);
                continue;
            }
            tracing::info!(job = %name, "adopting a detached job whose owner is suspected");
            self.adopted += 1;
            self.run_job(job.spec);
        }
    }

    /// Gossips the descriptions of the unpublished jobs this peer runs.
    pub(super) fn announce(&mut self) {
        let mut mine: Vec<JobSpec> = (self.detached.values())
            .filter(|job| job.owner == self.me)
            .map(|job| job.spec.clone())
            .collect();
        mine.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        for spec in mine {
            self.effects
                .push_back(Effect::Gossip(GraphEvent::Detached(spec)));
        }
    }

    /// Runs a job as this peer's: submits its tasks and tells every peer it owns it.
    fn run_job(&mut self, spec: JobSpec) {
        let mut keys: Vec<TaskKey> = Vec::with_capacity(spec.tasks.len());
        for task in &spec.tasks {
            self.seq += 1;
            let key = TaskKey {
                owner: self.me,
                seq: JOB_SEQ_BASE + self.seq,
            };
            let args = (task.args.iter())
                .map(|arg| match arg {
                    JobArg::Value(bytes) => SubmitArg::Inline(bytes.clone()),
                    JobArg::Task(index) => SubmitArg::Owned(keys[*index as usize]),
                })
                .collect();
            self.effects.push_back(Effect::Submit {
                key,
                name: task.name.clone(),
                fingerprint: task.fingerprint,
                args,
            });
            keys.push(key);
        }
        (self.outputs).insert(keys[spec.output as usize], spec.name.clone());
        (self.effects).push_back(Effect::Gossip(GraphEvent::Detached(spec.clone())));
        let job = Job {
            owner: self.me,
            spec,
        };
        self.detached.insert(job.spec.name.clone(), job);
    }
}

/// Checks that a job's tasks depend only on earlier ones and its output exists.
pub(crate) fn check_job(spec: &JobSpec) -> Result<(), String> {
    if spec.tasks.len() > crate::wire::JOB_TASKS {
        return Err(format!(
            "job {:?}: {} tasks, over the {} a job may have",
            spec.name,
            spec.tasks.len(),
            crate::wire::JOB_TASKS
        ));
    }
    if spec.output as usize >= spec.tasks.len() {
        return Err(format!(
            "job {:?}: output {} of {} tasks",
            spec.name,
            spec.output,
            spec.tasks.len()
        ));
    }
    for (i, task) in spec.tasks.iter().enumerate() {
        if task.args.len() > crate::wire::ARGS {
            return Err(format!(
                "job {:?}: task {i} has too many arguments",
                spec.name
            ));
        }
        for arg in &task.args {
            if let JobArg::Task(j) = arg
                && *j as usize >= i
            {
                return Err(format!(
                    "job {:?}: task {i} ({}) reads task {j}, which is not an earlier one",
                    spec.name, task.name
                ));
            }
        }
    }
    Ok(())
}
