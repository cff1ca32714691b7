//! The node as a router: each request, answer and membership change goes to the protocols
//! it concerns ([`Tasks`](super::tasks::Tasks), [`Stealing`](super::stealing::Stealing),
//! [`Prims`](super::prims::Prims), [`Jobs`](super::jobs::Jobs),
//! [`Reports`](super::report::Reports)), in the order they must hear of it. No protocol
//! state lives here.

use std::collections::HashSet;
use std::time::Instant;

use super::requests::Sent;
use super::state::Pending;
use super::{NewTask, Node, Output, gossip, jobs, prims, stealing, tasks};
use crate::membership::Change;
use crate::wire::{Batch, GraphEvent, Request, Response};

/// How long a suspect's notices, results and queued tasks are kept for it.
pub(super) const FORGET_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

impl Node {
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
        self.traffic.requests_sent += 1;
        self.outputs.push_back(Output::Send { to, tag, request });
    }

    /// A request from `from`, to answer on `channel`.
    pub(super) fn request(&mut self, from: u64, channel: u64, request: Request, now: Instant) {
        self.traffic.requests_received += 1;
        let members = &self.membership;
        let response = match request {
            // Answered when it completes, maybe much later.
            Request::Prim(op) => return (self.prims).request(members, from, channel, op, now),
            Request::Report => Response::Report(self.report(now)),
            Request::Replicate { .. } | Request::Claim { .. } => {
                (self.prims).peer_request(members, from, request, now)
            }
            Request::Steal { max, can_run } => {
                // A thief has nothing ready.
                self.stealing.load(from, 0, now);
                let tasks = (self.tasks).give_to_thief(members, from, max, &can_run, now);
                if !tasks.is_empty() {
                    // Kept until the answer is on its way, to be queued again if it is not.
                    self.stealing.giving(channel, tasks.clone());
                }
                let ready = self.tasks.ready.len() as u32;
                Response::Stolen { tasks, ready }
            }
            Request::Lifeline { can_run } => {
                self.stealing.lifeline_registered(from, can_run, now);
                Response::Ack
            }
            Request::Push { tasks } => {
                let buddy = self.stealing.buddies.contains(&from);
                match self.tasks.may_push(members, from, &tasks, buddy) {
                    Err(why) => Response::Refused(why),
                    Ok(()) => {
                        let count = self.tasks.take_pushed(tasks);
                        let ready = self.tasks.ready.len();
                        self.stealing.pushed_here(from, count, ready, now);
                        Response::Ack
                    }
                }
            }
            Request::Fetch { task } => match self.tasks.store.get(&task) {
                Some(bytes) => Response::Value(bytes.to_vec()),
                None => Response::Missing,
            },
            Request::Holding { tasks } => {
                let held = self.tasks.held_keys(self.requests.pending());
                let missing = (tasks.into_iter())
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
            } => (self.tasks).notified(members, from, done, release, moved, now),
        };
        (self.outputs).push_back(Output::Respond { channel, response });
    }

    /// The answer to our request `tag`, or why there was none.
    pub(super) fn response(&mut self, tag: u64, response: Result<Response, String>, now: Instant) {
        let Some((pending, next)) = self.requests.ended(tag) else {
            return;
        };
        if let Some(next) = next {
            self.emit(next);
        }
        let members = &self.membership;
        match (pending, response) {
            (Pending::Steal(request, victim, sent), response) => {
                if response.is_ok() {
                    self.stealing.answered(sent, now);
                }
                let (tasks, left) = match response {
                    Ok(Response::Stolen { tasks, ready }) => (tasks, Some(ready)),
                    _ => (Vec::new(), None),
                };
                let stolen = self.tasks.take_stolen(members, tasks);
                let ready = self.tasks.ready.len();
                (self.stealing).stole(request, victim, stolen, left, ready, now);
            }
            (Pending::Input { dep, peer }, response) => {
                (self.tasks).input_answered(members, dep, peer, response, now);
            }
            (Pending::Resolve(task, _), response) => {
                (self.tasks).result_answered(members, task, response, now);
            }
            (Pending::Notify(peer, batch), response) => {
                (self.tasks).notify_answered(peer, batch, response.is_ok(), now);
            }
            (Pending::OneWay(_), _) | (Pending::Push(..), Ok(Response::Ack)) => {}
            // The waiting peer is gone or refused: the tasks are still ours to run.
            (Pending::Push(_, tasks), _) => self.tasks.push_refused(members, tasks, now),
            (Pending::Audit(peer, tasks, sent), Ok(Response::NotHeld(missing))) => {
                (self.tasks).audited(members, peer, tasks, Some(missing), sent, now);
            }
            // No answer: count them as not held (at worst, each runs twice).
            (Pending::Audit(peer, tasks, sent), _) => {
                (self.tasks).audited(members, peer, tasks, None, sent, now);
            }
            (Pending::Prim(_, seq), response) => {
                (self.prims).response(members, seq, response, now);
            }
            (Pending::Replicate(sent), response) => {
                (self.prims).replicated(members, sent, response, now);
            }
            (Pending::Claim(peer, key), response) => {
                (self.prims).claim_answered(members, peer, &key, response, now);
            }
            (Pending::Report(waiter, peer), response) => {
                self.reports.reported(waiter, peer, response);
            }
            (Pending::Lookup(waiter, peer), response) => {
                let value = match response {
                    Ok(Response::Published(value)) => value,
                    _ => None,
                };
                (self.jobs).looked_up(members, waiter, peer, value);
            }
        }
    }

    /// A peer speaks to us (again, if `back`).
    pub(super) fn peer_up(&mut self, peer: u64, back: bool, now: Instant) {
        if !back {
            // A newcomer missed the descriptions of our running jobs: it may be the one to
            // adopt them.
            self.jobs.announce();
        }
        self.tasks.peer_up(peer, back, now);
        self.stealing.peer_up(peer, now);
        (self.prims).membership_changed(&self.membership, None, now);
    }

    /// A peer is suspected (its connection closed, or it stopped answering pings): every
    /// request to it fails, what it had of ours runs again, its jobs may fall to us, its
    /// keys' homes move.
    pub(super) fn peer_down(&mut self, peer: u64, reason: String, now: Instant) {
        if peer == self.me {
            return;
        }
        self.stealing.peer_down(peer, now);
        for tag in self.requests.drop_peer(peer) {
            let error = format!("peer {peer:016x} is suspected: {reason}");
            self.response(tag, Err(error), now);
        }
        (self.tasks).peer_down(&self.membership, peer, reason, now);
        (self.jobs).adopt_orphans(&self.membership, &self.tasks.can_run);
        (self.prims).membership_changed(&self.membership, Some(peer), now);
    }

    /// The peers whose failure this one must notice quickly (see [`crate::liveness`]):
    /// those holding its tasks queued or running, or the only copy of a result of its own;
    /// those it has requests to, in flight or queued; and holders of permits on keys it
    /// hosts.
    pub(crate) fn business(&self) -> HashSet<u64> {
        let mut peers = self.tasks.business();
        // Requests queued for a peer wait behind some in flight to it.
        peers.extend(self.requests.peers());
        peers.extend(self.prims.holder_peers());
        peers.remove(&self.me);
        peers
    }

    /// Fails the requests that [`send`](Node::send) could not send (their peer is down).
    /// `send` counted them in flight, so that their ends balance like any other's.
    pub(super) fn fail_unsendable(&mut self, now: Instant) {
        while let Some((tag, to)) = self.requests.take_unsendable() {
            self.response(tag, Err(format!("peer {to:016x} is suspected")), now);
        }
    }

    /// When the longest suspect is to be forgotten, if any is remembered.
    pub(super) fn forget_due(&self) -> Option<Instant> {
        (self.membership.suspected_since())
            .map(|(_, since)| since + FORGET_AFTER)
            .min()
    }

    /// Forgets what this peer keeps for peers suspected for [`FORGET_AFTER`]: notices to
    /// them, results of their tasks, their tasks still queued here. Nothing is lost if one
    /// comes back after all: it asks for what it lacks (audits, fetches that fail) and runs
    /// it again.
    pub(super) fn forget_gone(&mut self, now: Instant) {
        let gone: Vec<u64> = (self.membership.suspected_since())
            .filter(|(_, since)| now.saturating_duration_since(*since) >= FORGET_AFTER)
            .map(|(peer, _)| peer)
            .collect();
        for peer in gone {
            // A suspect that owns a job stays one, so that the job can still be adopted.
            let owns_a_job = self.jobs.owns_a_job(peer);
            self.membership.forget(peer, owns_a_job);
            self.outputs.push_back(Output::Forget(peer));
            self.gossip.forget(peer);
            self.tasks.forget(peer);
        }
    }

    /// Starts draining: no more stealing; queued tasks of others go back to them.
    pub(crate) fn drain(&mut self, now: Instant) {
        self.tasks.draining = true;
        self.after(now);
    }

    /// Whether a draining peer is done; see [`Tasks::drained`](super::tasks::Tasks::drained).
    pub(crate) fn drained(&self) -> bool {
        let pushing = (self.requests.pending()).any(|p| matches!(p, Pending::Push(..)));
        self.tasks.drained(&self.membership, pushing)
    }

    /// A worker starts (`true`) or ends a wait on a future: while it waits, one more task
    /// may go to the pool, for it or another worker to run.
    pub(crate) fn waiting(&mut self, waiting: bool, now: Instant) {
        self.tasks.set_waiting(waiting);
        if waiting {
            self.after(now);
        }
    }

    /// Carries out what membership decided; true if anything changed but whom to watch.
    pub(super) fn apply_membership(&mut self, now: Instant) -> bool {
        let mut changed = false;
        while let Some(change) = self.membership.poll_output() {
            match change {
                Change::Up { peer, back } => self.peer_up(peer, back, now),
                Change::Down { peer, reason } => self.peer_down(peer, reason, now),
                Change::HeldUp => self.prims.held_up(),
                Change::Watch(peer, interval) => {
                    self.outputs.push_back(Output::Watch { peer, interval });
                    continue;
                }
            }
            changed = true;
        }
        changed
    }

    /// Tells stealing our load, and carries out what it decided (moving the tasks of a
    /// push here).
    pub(super) fn steal_step(&mut self, now: Instant) {
        let ready = self.tasks.ready.len();
        let load = ready + self.tasks.not_here.min(ready);
        self.stealing.step(load, ready, now);
        while let Some(effect) = self.stealing.poll_output(self.tasks.draining, now) {
            match effect {
                stealing::Effect::Send {
                    to,
                    pending,
                    request,
                } => self.send(to, pending, request),
                stealing::Effect::Gossip(event) => self.gossip.push(event, now),
                stealing::Effect::Push {
                    peer,
                    tasks,
                    can_run,
                } => {
                    let given =
                        (self.tasks).take_oldest(&self.membership, peer, tasks, &can_run, now);
                    let ready = self.tasks.ready.len();
                    if let Some((pending, push)) = self.stealing.pushed(peer, given, ready, now) {
                        self.send(peer, pending, push);
                    }
                    // The moves it recorded.
                    self.carry_out(now);
                }
            }
        }
    }

    /// Carries out what the tasks, jobs and primitives protocols asked for, until none
    /// asks for more.
    pub(super) fn carry_out(&mut self, now: Instant) {
        loop {
            let mut any = false;
            while let Some(effect) = self.tasks.poll_output() {
                any = true;
                self.carry_out_task(effect, now);
            }
            while let Some(effect) = self.jobs.poll_output() {
                any = true;
                self.carry_out_job(effect, now);
            }
            while let Some(effect) = self.prims.poll_output() {
                any = true;
                self.carry_out_prim(effect);
            }
            if !any {
                return;
            }
        }
    }

    fn carry_out_task(&mut self, effect: tasks::Effect, now: Instant) {
        match effect {
            tasks::Effect::Send {
                to,
                pending,
                request,
            } => self.send(to, pending, request),
            tasks::Effect::Output(Output::Resolve { task, result }) => {
                if let Some(name) = self.jobs.output_done(task) {
                    let value = result.clone().map(|bytes| bytes.to_vec());
                    self.jobs.publish(name, value);
                }
                self.outputs.push_back(Output::Resolve { task, result });
            }
            tasks::Effect::Output(output) => self.outputs.push_back(output),
            tasks::Effect::Gossip(event) => self.gossip.push(event, now),
            tasks::Effect::Load => self.stealing.local_load(self.tasks.ready.len(), now),
        }
    }

    fn carry_out_job(&mut self, effect: jobs::Effect, now: Instant) {
        {
            match effect {
                jobs::Effect::Submit {
                    key,
                    name,
                    fingerprint,
                    args,
                } => {
                    let task = NewTask::one(key, name, fingerprint, args);
                    self.tasks.take_in(task, now);
                }
                jobs::Effect::Gossip(event) => self.gossip.push(event, now),
                jobs::Effect::Send {
                    to,
                    pending,
                    request,
                } => self.send(to, pending, request),
                jobs::Effect::Found { waiter, value } => {
                    self.outputs.push_back(Output::Found { waiter, value });
                }
            }
        }
    }

    fn carry_out_prim(&mut self, effect: prims::Effect) {
        {
            match effect {
                prims::Effect::Send {
                    to,
                    pending,
                    request,
                } => self.send(to, pending, request),
                prims::Effect::Respond { channel, response } => {
                    self.outputs
                        .push_back(Output::Respond { channel, response });
                }
                prims::Effect::Reply { seq, reply, asked } => {
                    (self.outputs).push_back(Output::PrimReply { seq, reply, asked });
                }
            }
        }
    }

    pub(super) fn gossip_in(&mut self, batch: Batch, now: Instant) {
        let admitted =
            (self.gossip).admit(&batch, &self.settings.limits, self.membership.up(), now);
        if admitted == gossip::Admitted::Dropped {
            return;
        }
        // Job events and releases may be applied twice or late: they count from any batch.
        for event in &batch.events {
            match event {
                // Only a result's owner releases it.
                GraphEvent::Released(task) if task.owner == batch.from => {
                    self.tasks.cache.remove(task)
                }
                GraphEvent::Detached(_) | GraphEvent::Published { .. } => {
                    (self.jobs).gossip(&self.membership, &self.tasks.can_run, batch.from, event);
                }
                GraphEvent::Topic { key, value } => {
                    self.outputs.push_back(Output::TopicMessage {
                        key: key.clone(),
                        value: value.clone(),
                    });
                }
                _ => {}
            }
        }
        // A load report is only news in a batch newer than the last one.
        if admitted == gossip::Admitted::Stale {
            return;
        }
        // Only the newest load in a batch counts.
        if let Some(ready) = batch.events.iter().rev().find_map(|e| match e {
            GraphEvent::Load(n) => Some(*n),
            _ => None,
        }) {
            self.stealing.load(batch.from, ready as usize, now);
        }
    }
}
