//! What the [`Tasks`] machine says to other peers and takes from them: notices batched per
//! peer, tasks given to thieves and pushed to buddies, tasks taken from victims and pushers,
//! and the answers to its fetches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::custody::Notice;
use super::state::{NoticeBatch, Pending};
use super::tasks::Tasks;
use crate::membership::Membership;
use crate::wire::{Done, Moved, Request, Response, TaskKey, TaskSpec};

/// How long a batch of notices that was not taken waits before it goes again (at once when
/// its peer comes back).
const NOTICE_RETRY: Duration = Duration::from_millis(500);
/// How long releases wait for company. Nobody waits for a release (it only frees a
/// result at its holder), so a few go together rather than one request each: with many
/// short tasks, one release per task would double the requests between owner and runner.
const RELEASE_HOLD: Duration = Duration::from_millis(20);

impl Tasks {
    /// Sends each peer its waiting notices, unless a batch to it is still in flight, the peer
    /// is down, an earlier batch failed and its retry is not due, or the batch holds only a
    /// few releases that have waited less than [`RELEASE_HOLD`].
    pub(super) fn flush_notices(&mut self, members: &Membership, now: Instant) {
        let mut ready = Vec::new();
        for (peer, n) in &mut self.notices {
            if n.in_flight
                || !n.batch.has_any()
                || n.retry_at.is_some_and(|t| t > now)
                || members.is_down(*peer)
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

    /// A thief asks for up to `max` of our ready tasks it can run (`can_run`): half of
    /// those, oldest first.
    pub(super) fn give_to_thief(
        &mut self,
        members: &Membership,
        thief: u64,
        max: u32,
        can_run: &[u64],
        now: Instant,
    ) -> Vec<TaskSpec> {
        if thief == self.me {
            return Vec::new();
        }
        let given = self.ready.give(max, can_run);
        self.gave(members, thief, &given, now);
        given
    }

    /// Takes tasks a peer pushed here ([`may_push`](Tasks::may_push) said yes): how many.
    pub(super) fn take_pushed(&mut self, tasks: Vec<TaskSpec>) -> usize {
        let count = tasks.len();
        self.stats.stolen += count as u64;
        self.ready.extend(tasks);
        count
    }

    /// Notices from `from`: results it frees, moves and finished runs of our tasks.
    pub(super) fn notified(
        &mut self,
        members: &Membership,
        from: u64,
        done: Vec<(TaskKey, Done)>,
        release: Vec<TaskKey>,
        moved: Vec<Moved>,
        now: Instant,
    ) -> Response {
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
                self.owned_notice(members, m.task, from, notice, now);
            }
        }
        let mut refused = Vec::new();
        for (task, done) in done {
            if task.owner == self.me {
                self.owned_notice(members, task, from, Notice::Done(done), now);
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

    /// Tasks a victim gave us in answer to a steal: those we take, how many.
    pub(super) fn take_stolen(&mut self, members: &Membership, mut tasks: Vec<TaskSpec>) -> usize {
        // No more than asked for, and only tasks of members: results and notices are never
        // kept for owners that are not (the owners of tasks dropped here find them missing
        // by their audit and run them again).
        tasks.truncate(self.settings.steal_max as usize);
        let mut tasks = self.of_members(members, tasks);
        let room = self.settings.limits.ready_from_others;
        tasks.truncate(room.saturating_sub(self.ready.len()));
        self.stats.stolen += tasks.len() as u64;
        let stolen = tasks.len();
        self.ready.extend(tasks);
        stolen
    }

    /// The holder of input `dep` answered our fetch (or did not).
    pub(super) fn input_answered(
        &mut self,
        members: &Membership,
        dep: TaskKey,
        holder: u64,
        response: Result<Response, String>,
        now: Instant,
    ) {
        let bytes = match response {
            Ok(Response::Value(bytes)) => Ok(Arc::new(bytes)),
            Ok(other) => Err(format!("holder answered {other:?}")),
            Err(error) => Err(error),
        };
        self.input_fetched(members, dep, holder, bytes, now);
    }

    /// The holder of our task's result answered our fetch (or did not).
    pub(super) fn result_answered(
        &mut self,
        members: &Membership,
        task: TaskKey,
        response: Result<Response, String>,
        now: Instant,
    ) {
        match response {
            Ok(Response::Value(bytes)) => {
                self.stats.fetches += 1;
                self.resolved(task, Ok(Arc::new(bytes)));
            }
            // The only copy is gone: run it again (it resolves when done).
            _ => self.rerun(members, task, now),
        }
    }

    /// A batch of notices to `peer` was taken, or not (it goes again later).
    pub(super) fn notify_answered(
        &mut self,
        peer: u64,
        batch: NoticeBatch,
        taken: bool,
        now: Instant,
    ) {
        if let Some(notices) = self.notices.get_mut(&peer) {
            notices.in_flight = false;
        }
        if !taken {
            let notices = self.notices.entry(peer).or_default();
            notices.batch.put_back(batch);
            notices.retry_at = Some(now + NOTICE_RETRY);
        }
    }

    /// A push of `tasks` was not taken: they are still ours to run.
    pub(super) fn push_refused(
        &mut self,
        members: &Membership,
        tasks: Vec<TaskSpec>,
        now: Instant,
    ) {
        self.stats.given -= tasks.len() as u64;
        self.requeue(members, tasks, now);
    }

    /// When the next batch of notices is due, if one waits.
    pub(super) fn notices_due(&self, members: &Membership) -> Option<Instant> {
        (self.notices.iter())
            .filter(|(peer, n)| !n.in_flight && !members.is_down(**peer))
            .filter_map(|(_, n)| n.retry_at.max(n.hold_until))
            .min()
    }

    /// Whether `from` may push `tasks` here: a peer we registered a lifeline with, or one
    /// handing back tasks of ours that it has (a draining peer); never more than a steal
    /// would take, nor more than the ready tasks of others this peer keeps.
    pub(super) fn may_push(
        &self,
        members: &Membership,
        from: u64,
        tasks: &[TaskSpec],
        buddy: bool,
    ) -> Result<(), String> {
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
        if !buddy && !handed_back {
            return Err("no lifeline was registered with the pushing peer".into());
        }
        // Refused, not dropped: the pusher queues them again at once, where dropping them
        // would leave them to the owner's audit (seconds). An owner that just joined is
        // often connected to the pusher before it is to us.
        let stranger =
            (tasks.iter()).find(|t| t.key.owner != self.me && !members.is_up(t.key.owner));
        if let Some(task) = stranger {
            return Err(format!(
                "the owner of {} is not connected to this peer (yet)",
                task.key
            ));
        }
        Ok(())
    }

    /// The tasks whose owners are this peer or members up.
    fn of_members(&self, members: &Membership, mut tasks: Vec<TaskSpec>) -> Vec<TaskSpec> {
        tasks.retain(|t| t.key.owner == self.me || members.is_up(t.key.owner));
        tasks
    }

    /// Gives `thief` the `take` oldest ready tasks it can run (`can_run`), recording the
    /// moves.
    pub(super) fn take_oldest(
        &mut self,
        members: &Membership,
        thief: u64,
        take: usize,
        can_run: &[u64],
        now: Instant,
    ) -> Vec<TaskSpec> {
        if thief == self.me || take == 0 {
            return Vec::new();
        }
        let given = self.ready.take_oldest(take, can_run);
        self.gave(members, thief, &given, now);
        given
    }

    /// `given` left the ready deque for `thief`, each one hop further: the moves are
    /// recorded (with their owners told).
    pub(super) fn gave(
        &mut self,
        members: &Membership,
        thief: u64,
        given: &[TaskSpec],
        now: Instant,
    ) {
        self.stats.given += given.len() as u64;
        for spec in given {
            self.record_move(members, spec.key, thief, spec.hops, now);
        }
    }

    /// Takes back tasks that were to go to another peer and did not.
    pub(super) fn requeue(&mut self, members: &Membership, tasks: Vec<TaskSpec>, now: Instant) {
        for mut spec in tasks {
            spec.hops = spec.hops.saturating_add(1);
            self.record_move(members, spec.key, self.me, spec.hops, now);
            self.ready.push_back(spec);
        }
        self.load_changed();
    }

    /// Tells the owner of `task` (or this peer, when it is the owner) that it is at `to`.
    pub(super) fn record_move(
        &mut self,
        members: &Membership,
        task: TaskKey,
        to: u64,
        hops: u32,
        now: Instant,
    ) {
        if task.owner == self.me {
            self.moved(members, task, to, hops, now);
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
}
