//! What a [`Node`] says to other peers and how it answers them: requests out (capped per
//! peer, the rest queued), notices batched per peer, requests in (steal, fetch, notify,
//! lifeline, push), and the responses to ours.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::custody::Notice;
use super::requests::Sent;
use super::state::Pending;
use super::{Node, Output, portable};
use crate::wire::{Moved, Request, Response, TaskKey, TaskSpec};

/// How long a batch of notices that was not taken waits before it goes again (at once when
/// its peer comes back).
const NOTICE_RETRY: Duration = Duration::from_millis(500);
/// How long releases wait for company. Nobody waits for a release (it only frees a
/// result at its holder), so a few go together rather than one request each: with many
/// short tasks, one release per task would double the requests between owner and runner.
const RELEASE_HOLD: Duration = Duration::from_millis(20);

impl Node {
    /// Sends each peer its waiting notices, unless a batch to it is still in flight, the peer
    /// is down, an earlier batch failed and its retry is not due, or the batch holds only a
    /// few releases that have waited less than [`RELEASE_HOLD`].
    pub(super) fn flush_notices(&mut self, now: Instant) {
        let mut ready = Vec::new();
        for (peer, n) in &mut self.notices {
            if n.in_flight
                || !n.batch.has_any()
                || n.retry_at.is_some_and(|t| t > now)
                || self.membership.is_down(*peer)
            {
                continue;
            }
            if n.batch.only_a_few_releases()
                && *n.hold_until.get_or_insert(now + RELEASE_HOLD) > now
            {
                continue;
            }
            ready.push(*peer);
        }
        for peer in ready {
            let Some(notices) = self.notices.get_mut(&peer) else {
                continue;
            };
            notices.in_flight = true;
            notices.retry_at = None;
            notices.hold_until = None;
            let batch = notices.batch.take_first(crate::wire::NOTICES);
            let request = Request::Notify {
                done: batch.done.clone(),
                release: batch.release.clone(),
                moved: batch.moved.clone(),
            };
            self.send(peer, Pending::Notify(peer, batch), request);
        }
        self.notices.retain(|_, n| n.in_flight || n.batch.has_any());
    }

    /// Sends `request` to `to` now or when its turn comes ([`Requests`](super::requests)),
    /// its answer to go where `pending` says.
    pub(super) fn send(&mut self, to: u64, pending: Pending, request: Request) {
        let down = self.membership.is_down(to);
        if let Some(sent) = self.requests.send(to, pending, request, down) {
            self.emit(sent);
        }
    }

    fn emit(&mut self, sent: Sent) {
        let Sent { to, tag, request } = sent;
        self.stats.requests_sent += 1;
        self.outputs.push_back(Output::Send { to, tag, request });
    }

    pub(super) fn request(&mut self, from: u64, channel: u64, request: Request, now: Instant) {
        self.stats.requests_received += 1;
        let response = match request {
            // Answered when it completes, maybe much later.
            Request::Prim(op) => {
                return (self.prims).request(&self.membership, from, channel, op, now);
            }
            Request::Report => Response::Report(self.report(now)),
            Request::Replicate { .. } | Request::Claim { .. } => {
                (self.prims).peer_request(&self.membership, from, request, now)
            }
            Request::Steal { max, can_run } => {
                // A thief has nothing ready.
                self.stealing.load(from, 0, now);
                let count = self.ready.iter().filter(|s| portable(&can_run, s)).count();
                let take = count.div_ceil(2).min(max as usize);
                let tasks = self.take_oldest(from, take, &can_run, now);
                if !tasks.is_empty() {
                    // Kept until the answer is on its way, to be queued again if it is not.
                    self.stealing.giving(channel, tasks.clone());
                }
                Response::Stolen {
                    tasks,
                    ready: self.ready.len() as u32,
                }
            }
            Request::Lifeline { can_run } => {
                self.stealing.lifeline_registered(from, can_run, now);
                Response::Ack
            }
            Request::Push { tasks } => match self.may_push(from, &tasks) {
                Err(why) => Response::Refused(why),
                Ok(()) => {
                    let count = tasks.len();
                    self.stats.stolen += count as u64;
                    self.ready.extend(tasks);
                    let ready = self.ready.len();
                    self.stealing.pushed_here(from, count, ready, now);
                    Response::Ack
                }
            },
            Request::Fetch { task } => match self.store.get(&task) {
                Some(bytes) => Response::Value(bytes.to_vec()),
                None => Response::Missing,
            },
            Request::Holding { tasks } => {
                let held = self.held_keys();
                let missing = tasks
                    .into_iter()
                    .filter(|t| t.owner == from && !held.contains(t))
                    .collect();
                Response::NotHeld(missing)
            }
            Request::Published { name } => {
                Response::Published(self.jobs.published.get(&name).cloned())
            }
            Request::Notify {
                done,
                release,
                moved,
            } => {
                // Only a result's owner frees it.
                for task in release.into_iter().filter(|t| t.owner == from) {
                    self.store.remove(&task);
                }
                for m in moved {
                    if m.task.owner == self.me {
                        let notice = Notice::Moved {
                            to: m.to,
                            hops: m.hops,
                        };
                        self.owned_notice(m.task, from, notice, now);
                    }
                }
                let mut refused = Vec::new();
                for (task, done) in done {
                    if task.owner == self.me {
                        self.owned_notice(task, from, Notice::Done(done), now);
                    } else {
                        refused.push(task.to_string());
                    }
                }
                if refused.is_empty() {
                    Response::Ack
                } else {
                    Response::Refused(format!(
                        "tasks not owned by this peer: {}",
                        refused.join(", ")
                    ))
                }
            }
        };
        self.outputs
            .push_back(Output::Respond { channel, response });
    }

    /// Whether `from` may push `tasks` here: a peer we registered a lifeline with, or one
    /// handing back tasks of ours that it has (a draining peer); never more than a steal
    /// would take, nor more than the ready tasks of others this peer keeps.
    fn may_push(&self, from: u64, tasks: &[TaskSpec]) -> Result<(), String> {
        let most = self.settings.steal_max as usize;
        if tasks.len() > most {
            return Err(format!(
                "a push of {} tasks is over the {most} taken at once",
                tasks.len()
            ));
        }
        if self.ready.len() + tasks.len() > self.settings.limits.ready_from_others {
            return Err("this peer has as many ready tasks as it keeps".into());
        }
        // Every peer an owned task was recorded at is in its custody.
        let handed_back =
            (tasks.iter()).all(|t| t.key.owner == self.me && self.in_custody(t.key, from));
        if !self.stealing.buddies.contains(&from) && !handed_back {
            return Err("no lifeline was registered with the pushing peer".into());
        }
        // Refused, not dropped: the pusher queues them again at once, where dropping them
        // would leave them to the owner's audit (seconds). An owner that just joined is
        // often connected to the pusher before it is to us.
        let stranger =
            (tasks.iter()).find(|t| t.key.owner != self.me && !self.membership.is_up(t.key.owner));
        if let Some(task) = stranger {
            return Err(format!(
                "the owner of {} is not connected to this peer (yet)",
                task.key
            ));
        }
        Ok(())
    }

    /// The tasks whose owners are this peer or members up.
    fn of_members(&self, mut tasks: Vec<TaskSpec>) -> Vec<TaskSpec> {
        tasks.retain(|t| t.key.owner == self.me || self.membership.is_up(t.key.owner));
        tasks
    }

    /// Up to `take` of our ready tasks, oldest first, among those `thief` can run.
    pub(super) fn take_oldest(
        &mut self,
        thief: u64,
        take: usize,
        can_run: &[u64],
        now: Instant,
    ) -> Vec<TaskSpec> {
        if thief == self.me || take == 0 {
            return Vec::new();
        }
        let mut given = Vec::with_capacity(take.min(self.ready.len()));
        let mut kept = VecDeque::with_capacity(self.ready.len());
        for spec in self.ready.drain(..) {
            if given.len() < take && portable(can_run, &spec) {
                given.push(spec);
            } else {
                kept.push_back(spec);
            }
        }
        self.ready = kept;
        self.stats.given += given.len() as u64;
        for spec in &mut given {
            spec.hops = spec.hops.saturating_add(1);
            self.record_move(spec.key, thief, spec.hops, now);
        }
        given
    }

    /// Takes back tasks that were to go to another peer and did not.
    pub(super) fn requeue(&mut self, tasks: Vec<TaskSpec>, now: Instant) {
        for mut spec in tasks {
            spec.hops = spec.hops.saturating_add(1);
            self.record_move(spec.key, self.me, spec.hops, now);
            self.ready.push_back(spec);
        }
        let ready = self.ready.len();
        self.stealing.local_load(ready, now);
    }

    /// Tells the owner of `task` (or this peer, when it is the owner) that it is at `to`.
    pub(super) fn record_move(&mut self, task: TaskKey, to: u64, hops: u32, now: Instant) {
        if task.owner == self.me {
            self.moved(task, to, hops, now);
        } else {
            let moved = Moved { task, to, hops };
            self.notices
                .entry(task.owner)
                .or_default()
                .batch
                .moved
                .push(moved);
        }
    }

    pub(super) fn response(&mut self, tag: u64, response: Result<Response, String>, now: Instant) {
        let Some((pending, next)) = self.requests.ended(tag) else {
            return;
        };
        if let Some(next) = next {
            self.emit(next);
        }
        match (pending, response) {
            (Pending::Steal(request, victim, sent), response) => {
                if response.is_ok() {
                    self.stealing.answered(sent, now);
                }
                let (mut tasks, left) = match response {
                    Ok(Response::Stolen { tasks, ready }) => (tasks, Some(ready)),
                    _ => (Vec::new(), None),
                };
                // No more than asked for, and only tasks of members: results and notices
                // are never kept for owners that are not (the owners of tasks dropped here
                // find them missing by their audit and run them again).
                tasks.truncate(self.settings.steal_max as usize);
                let mut tasks = self.of_members(tasks);
                let room = self.settings.limits.ready_from_others;
                tasks.truncate(room.saturating_sub(self.ready.len()));
                self.stats.stolen += tasks.len() as u64;
                let stolen = tasks.len();
                self.ready.extend(tasks);
                let ready = self.ready.len();
                (self.stealing).stole(request, victim, stolen, left, ready, now);
            }
            (Pending::Input { dep, peer }, response) => {
                let bytes = match response {
                    Ok(Response::Value(bytes)) => Ok(Arc::new(bytes)),
                    Ok(other) => Err(format!("holder answered {other:?}")),
                    Err(error) => Err(error),
                };
                self.input_fetched(dep, peer, bytes, now);
            }
            (Pending::Resolve(task, _), response) => match response {
                Ok(Response::Value(bytes)) => {
                    self.stats.fetches += 1;
                    self.resolved(task, Ok(Arc::new(bytes)), now);
                }
                // The only copy is gone: run it again (it resolves when done).
                _ => self.rerun(task, now),
            },
            (Pending::Notify(peer, batch), response) => {
                let taken = response.is_ok();
                if let Some(notices) = self.notices.get_mut(&peer) {
                    notices.in_flight = false;
                }
                if !taken {
                    let notices = self.notices.entry(peer).or_default();
                    notices.batch.put_back(batch);
                    notices.retry_at = Some(now + NOTICE_RETRY);
                }
            }
            (Pending::OneWay(_), _) | (Pending::Push(..), Ok(Response::Ack)) => {}
            (Pending::Push(_, tasks), _) => {
                // The waiting peer is gone or refused: the tasks are still ours to run.
                self.stats.given -= tasks.len() as u64;
                self.requeue(tasks, now);
            }
            (Pending::Audit(peer, tasks, sent), Ok(Response::NotHeld(missing))) => {
                self.audited(peer, tasks, Some(missing), sent, now);
            }
            // No answer: count them as not held (at worst, each runs twice).
            (Pending::Audit(peer, tasks, sent), _) => self.audited(peer, tasks, None, sent, now),
            (Pending::Prim(_, seq), response) => {
                (self.prims).response(&self.membership, seq, response, now);
            }
            (Pending::Replicate(sent), response) => {
                (self.prims).replicated(&self.membership, sent, response, now);
            }
            (Pending::Claim(peer, key), response) => {
                (self.prims).claim_answered(&self.membership, peer, &key, response, now);
            }
            (Pending::Report(waiter, peer), response) => {
                self.reports.reported(waiter, peer, response);
            }
            (Pending::Lookup(waiter, peer), response) => {
                let value = match response {
                    Ok(Response::Published(value)) => value,
                    _ => None,
                };
                (self.jobs).looked_up(&self.membership, waiter, peer, value);
            }
        }
    }
}
