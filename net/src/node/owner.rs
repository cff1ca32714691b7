//! What the [`Tasks`] machine does as the runner of a task and as its owner.

use std::time::Instant;

use super::owned::Owned;
use super::state::{Pending, PendingArg, State, shared};
use super::tasks::Tasks;
use super::{Bytes, NewTask, Output, SubmitArg};
use crate::membership::Membership;
use crate::wire::{ArgSpec, Done, Failure, GraphEvent, Request, TaskKey, TaskSpec};

/// The base of the numbers of [`Tasks::keep_local_value`]'s keys: the remote numbers the
/// tasks of this peer's clients from 1 up and the jobs machine its tasks from `1 << 63` up,
/// so none of the three meet.
const LOCAL_VALUES: u64 = 1 << 62;

/// Whether `task` is a value of its submitter's own ([`Tasks::keep_local_value`]).
fn is_local_value(task: TaskKey) -> bool {
    task.seq >> 62 == 1
}

impl Tasks {
    /// Takes in a task this peer owns (`key.owner` is this peer, `key.seq` unused).
    pub(super) fn take_in(&mut self, new: NewTask, now: Instant) {
        let NewTask {
            key,
            name,
            fingerprint,
            args,
            calls,
            retries,
        } = new;
        self.stats.submitted += 1;
        let mut task = Owned::new(name.into(), fingerprint);
        task.retries = retries;
        task.calls = calls;
        let mut failed = None;
        for (index, arg) in args.into_iter().enumerate() {
            let pending = match arg {
                SubmitArg::Inline(bytes) => PendingArg::Ready(ArgSpec::Inline(bytes)),
                SubmitArg::Local => PendingArg::Local,
                SubmitArg::Owned(dep) => match self.owned.get_mut(&dep) {
                    None => {
                        self.output(Output::NeedArg { task: key, index });
                        PendingArg::Local
                    }
                    Some(input) => match &input.state() {
                        State::Failed(cause) => {
                            failed.get_or_insert_with(|| Failure::input(dep, cause));
                            PendingArg::Local
                        }
                        State::Done { holder, inline } => {
                            let holder = *holder;
                            let arg = match inline {
                                Some(bytes) => ArgSpec::Inline(bytes.to_vec()),
                                None => {
                                    input.readers += 1;
                                    task.inputs.push(dep);
                                    ArgSpec::Fetch { task: dep, holder }
                                }
                            };
                            PendingArg::Ready(arg)
                        }
                        State::Waiting | State::Ready { .. } => {
                            input.dependents.push(key);
                            PendingArg::Dep(dep)
                        }
                        // Its result is freed: the submitter encodes it from its future.
                        State::Released => {
                            self.output(Output::NeedArg { task: key, index });
                            PendingArg::Local
                        }
                    },
                },
            };
            task.args.push(pending);
        }
        self.gossip(GraphEvent::Submitted(key));
        self.owned.insert(key, task);
        match failed {
            Some(failure) => self.fail_owned(key, failure),
            None => self.maybe_ready(key, now),
        }
    }

    /// A task ran here: keep a large result, tell the owner.
    pub(super) fn ran(
        &mut self,
        members: &Membership,
        task: TaskKey,
        result: Result<Vec<u8>, Failure>,
        now: Instant,
    ) {
        self.running = self.running.saturating_sub(1);
        if let Some(n) = self.running_keys.get_mut(&task) {
            *n -= 1;
            if *n == 0 {
                self.running_keys.remove(&task);
            }
        }
        self.stats.ran += 1;
        let done = match result {
            Ok(bytes) => {
                let size = bytes.len() as u64;
                self.gossip(GraphEvent::Finished { task, size });
                if bytes.len() <= self.settings.inline_max {
                    Done::Value {
                        size,
                        inline: Some(bytes),
                    }
                } else {
                    self.store.insert(task, shared(bytes));
                    Done::Value { size, inline: None }
                }
            }
            Err(failure) => {
                self.gossip(GraphEvent::Failed(task));
                Done::Failed(failure)
            }
        };
        if task.owner == self.me {
            self.done(members, task, self.me, done, now);
        } else {
            self.notices
                .entry(task.owner)
                .or_default()
                .batch
                .done
                .push((task, done));
        }
    }

    /// The owner hears that `task` finished at `from`.
    pub(super) fn done(
        &mut self,
        members: &Membership,
        task: TaskKey,
        from: u64,
        done: Done,
        now: Instant,
    ) {
        let first = self
            .owned
            .get(&task)
            .is_some_and(|o| matches!(o.state(), State::Waiting | State::Ready { .. }));
        if !first {
            // Unknown, or finished already (it ran twice): keep one result, free the other.
            if from != self.me && matches!(done, Done::Value { inline: None, .. }) {
                self.release_at(from, task);
            }
            return;
        }
        match done {
            Done::Value { inline, .. } => {
                let inline = inline.map(shared);
                let state = State::Done {
                    holder: from,
                    inline: inline.clone(),
                };
                self.owned.set_state(&task, state);
                // Before resolving, which may forget the task and its list of inputs.
                self.inputs_no_longer_needed(task);
                match inline {
                    Some(bytes) => self.resolved(task, Ok(bytes)),
                    None if from == self.me => {
                        let held = self.store.get(&task).cloned().ok_or_else(|| {
                            Failure::InputLost(format!("the result of {task} vanished"))
                        });
                        self.resolved(task, held);
                    }
                    None => self.send(from, Pending::Resolve(task, from), Request::Fetch { task }),
                }
                self.start_dependents(task, now);
                self.maybe_release(task);
            }
            // An input could not be fetched: its result is lost, not the task's fault. The
            // input runs again if the owner still records it at that holder (else it ran
            // again already), then the task.
            Done::Failed(Failure::Unfetched { input, holder, why }) if self.may_rerun(task) => {
                tracing::debug!(%task, %input, %why, "an input was lost; running it again");
                if self.held_at(input, holder) {
                    self.rerun(members, input, now);
                }
                self.rerun(members, task, now);
            }
            Done::Failed(Failure::Panicked(message)) if self.take_retry(task) => {
                tracing::debug!(%task, %message, "a task panicked; running it again");
                let before = self.stats.reruns;
                self.rerun(members, task, now);
                // A retry is not a loss: it does not count towards the most runs after losses.
                if self.stats.reruns > before {
                    self.stats.reruns -= 1;
                    if let Some(owned) = self.owned.get_mut(&task) {
                        owned.reruns = owned.reruns.saturating_sub(1);
                    }
                }
            }
            Done::Failed(failure) => self.fail_owned(task, failure),
        }
    }

    /// Whether `task` has a retry left after a panic; takes it.
    fn take_retry(&mut self, task: TaskKey) -> bool {
        match self.owned.get_mut(&task) {
            Some(owned) if owned.retries > 0 && owned.spec.is_some() => {
                owned.retries -= 1;
                true
            }
            _ => false,
        }
    }

    /// Gives the dependents of a finished task its result (inline or where to fetch it).
    fn start_dependents(&mut self, task: TaskKey, now: Instant) {
        let Some(owned) = self.owned.get_mut(&task) else {
            return;
        };
        let State::Done { holder, inline } = &owned.state() else {
            return;
        };
        let (holder, inline) = (*holder, inline.clone());
        let dependents = std::mem::take(&mut owned.dependents);
        for dependent in dependents {
            let Some(d) = self.owned.get_mut(&dependent) else {
                continue;
            };
            if !matches!(d.state(), State::Waiting) {
                continue;
            }
            let mut fetches = 0;
            for arg in &mut d.args {
                if matches!(arg, PendingArg::Dep(dep) if *dep == task) {
                    *arg = PendingArg::Ready(match &inline {
                        Some(bytes) => ArgSpec::Inline(bytes.to_vec()),
                        None => {
                            fetches += 1;
                            ArgSpec::Fetch { task, holder }
                        }
                    });
                }
            }
            if fetches > 0 {
                d.inputs.push(task);
                if let Some(input) = self.owned.get_mut(&task) {
                    input.readers += 1;
                }
            }
            self.maybe_ready(dependent, now);
        }
    }

    /// Fails `task` and, transitively, every dependent, each with the first cause.
    pub(super) fn fail_owned(&mut self, task: TaskKey, failure: Failure) {
        let mut failing = vec![(task, failure)];
        while let Some((task, failure)) = failing.pop() {
            let Some(owned) = self.owned.get_mut(&task) else {
                continue;
            };
            if matches!(
                owned.state(),
                State::Done { .. } | State::Released | State::Failed(_)
            ) {
                continue;
            }
            owned.args.clear();
            let dependents = std::mem::take(&mut owned.dependents);
            self.owned.set_state(&task, State::Failed(failure.clone()));
            let cause = Failure::input(task, &failure);
            failing.extend(dependents.into_iter().map(|d| (d, cause.clone())));
            self.inputs_no_longer_needed(task);
            self.resolved(task, Err(failure));
        }
    }

    /// The owner's future of `task` gets its result.
    pub(super) fn resolved(&mut self, task: TaskKey, result: Result<Bytes, Failure>) {
        let Some(owned) = self.owned.get_mut(&task) else {
            return;
        };
        if owned.resolved {
            return;
        }
        owned.resolved = true;
        self.output(Output::Resolve { task, result });
        self.maybe_release(task);
    }

    /// A finished task no longer needs to fetch its inputs.
    fn inputs_no_longer_needed(&mut self, task: TaskKey) {
        let inputs = match self.owned.get_mut(&task) {
            Some(owned) => std::mem::take(&mut owned.inputs),
            None => return,
        };
        for input in inputs {
            if let Some(o) = self.owned.get_mut(&input) {
                o.readers = o.readers.saturating_sub(1);
            }
            self.maybe_release(input);
        }
    }

    /// Frees a finished task's result once its future is resolved and nobody will fetch it,
    /// telling its holder; forgets the task too unless a tracked dependent may need it to
    /// run again.
    pub(super) fn maybe_release(&mut self, task: TaskKey) {
        let Some(owned) = self.owned.get_mut(&task) else {
            return;
        };
        let releasable = owned.resolved
            && owned.readers == 0
            && owned.dependents.is_empty()
            && matches!(owned.state(), State::Done { .. } | State::Failed(_))
            // Nothing can make it again: kept while a reader may run again.
            && !(is_local_value(task) && owned.lineage > 0);
        if !releasable {
            return;
        }
        if let State::Done { holder, inline } = owned.state() {
            // A result that came inline is kept by nobody but us (the runner sent it with
            // its notice, dependents got it in their specs): nothing to tell anyone. In W5
            // at 1 ms that was a notice, and its answer, for every task run elsewhere.
            let (holder, held) = (*holder, inline.is_none());
            self.owned.set_state(&task, State::Released);
            if held {
                // Our own copy, if a task of ours fetched it as an input.
                self.cache.remove(&task);
                if holder == self.me {
                    self.store.remove(&task);
                } else {
                    self.release_at(holder, task);
                }
                self.gossip(GraphEvent::Released(task));
            }
        }
        self.maybe_forget(task);
    }

    /// Forgets released or failed tasks that no tracked dependent reads, and then their
    /// inputs that no longer have a reason to be kept.
    fn maybe_forget(&mut self, task: TaskKey) {
        let mut candidates = vec![task];
        let mut local_values = Vec::new();
        while let Some(task) = candidates.pop() {
            if is_local_value(task) {
                local_values.push(task);
            }
            let forgettable = self.owned.get(&task).is_some_and(|o| {
                o.lineage == 0
                    && o.resolved
                    && o.readers == 0
                    && o.dependents.is_empty()
                    && matches!(o.state(), State::Released | State::Failed(_))
            });
            if !forgettable {
                continue;
            }
            let Some(owned) = self.owned.remove(&task) else {
                continue;
            };
            if is_local_value(task) {
                self.local_value_of.retain(|_, key| *key != task);
            }
            for input in owned.lineage_inputs {
                if let Some(o) = self.owned.get_mut(&input) {
                    o.lineage = o.lineage.saturating_sub(1);
                    candidates.push(input);
                }
            }
        }
        // A value of the submitter's own no reader may need again is freed now.
        for value in local_values {
            if self.owned.get(&value).is_some_and(|o| o.lineage == 0) {
                self.maybe_release(value);
            }
        }
    }

    pub(super) fn release_at(&mut self, holder: u64, task: TaskKey) {
        let notices = self.notices.entry(holder).or_default();
        notices.batch.release.push(task);
    }

    /// Queues an owned task once all its arguments are known, keeping its spec to run it
    /// again should its run or its result be lost.
    pub(super) fn maybe_ready(&mut self, task: TaskKey, now: Instant) {
        let ready = (self.owned.get(&task))
            .is_some_and(|o| matches!(o.state(), State::Waiting) && o.has_all_args());
        if !ready {
            return;
        }
        self.owned.set_state(&task, State::Ready { at: self.me });
        let Some(owned) = self.owned.get_mut(&task) else {
            return;
        };
        owned.since = Some(now);
        let args = std::mem::take(&mut owned.args)
            .into_iter()
            .filter_map(|a| match a {
                PendingArg::Ready(arg) => Some(arg),
                PendingArg::Dep(_) | PendingArg::Local => None,
            })
            .collect();
        let first_time = owned.spec.is_none();
        if !first_time {
            owned.hops = owned.hops.saturating_add(1);
        }
        let spec = TaskSpec {
            key: task,
            name: owned.name.clone(),
            fingerprint: owned.fingerprint,
            args,
            calls: owned.calls.clone(),
            hops: owned.hops,
        };
        owned.spec = Some(spec.clone());
        if first_time {
            // Its inputs are kept while it is: it may have to run again from them.
            let inputs: Vec<TaskKey> = owned.fetched_inputs().collect();
            owned.lineage_inputs = inputs.clone();
            for input in inputs {
                if let Some(o) = self.owned.get_mut(&input) {
                    o.lineage += 1;
                }
            }
        }
        self.ready.push_back(spec);
    }

    /// A late argument of an owned task arrived from the submitter.
    pub(super) fn local_arg(
        &mut self,
        task: TaskKey,
        index: usize,
        source: u64,
        result: Result<Vec<u8>, Failure>,
        now: Instant,
    ) {
        let Some(owned) = self.owned.get_mut(&task) else {
            return;
        };
        if !matches!(owned.state(), State::Waiting) {
            return;
        }
        match result {
            Ok(bytes) if bytes.len() > self.settings.inline_max => {
                if index < owned.args.len() {
                    let value = self.keep_local_value(source, bytes);
                    if let Some(owned) = self.owned.get_mut(&task) {
                        owned.inputs.push(value);
                        owned.args[index] = PendingArg::Ready(ArgSpec::Fetch {
                            task: value,
                            holder: self.me,
                        });
                    }
                }
                self.maybe_ready(task, now);
            }
            Ok(bytes) => {
                if let Some(arg) = owned.args.get_mut(index) {
                    *arg = PendingArg::Ready(ArgSpec::Inline(bytes));
                }
                self.maybe_ready(task, now);
            }
            Err(failure) => self.fail_owned(task, failure),
        }
    }

    /// Keeps a large value of the submitter's own (a closure's result, or a call its client
    /// kept, `local_first.rs`; `source` is its future's id) for a task that reads it: in
    /// the store as a finished task of this peer's that readers fetch, like any large
    /// result, instead of inline in each reader's spec, which every thief would carry.
    /// Readers of one future share one copy. It has no spec and cannot be made again, so it
    /// is kept while a reader may run again (its `lineage`), not only while one is to run.
    fn keep_local_value(&mut self, source: u64, bytes: Vec<u8>) -> TaskKey {
        let kept = (self.local_value_of.get(&source).copied()).filter(|key| {
            self.store.contains_key(key)
                && (self.owned.get(key)).is_some_and(|o| matches!(o.state(), State::Done { .. }))
        });
        if let Some(key) = kept {
            if let Some(value) = self.owned.get_mut(&key) {
                value.readers += 1;
            }
            return key;
        }
        self.local_values += 1;
        let key = TaskKey {
            owner: self.me,
            seq: LOCAL_VALUES | self.local_values,
        };
        let mut value = Owned::new(std::sync::Arc::from(""), 0);
        value.resolved = true;
        value.readers = 1;
        self.store.insert(key, shared(bytes));
        self.owned.insert(key, value);
        let state = State::Done {
            holder: self.me,
            inline: None,
        };
        self.owned.set_state(&key, state);
        self.local_value_of.insert(source, key);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_values_jobs_and_client_tasks_are_numbered_apart() {
        let key = |seq| TaskKey { owner: 1, seq };
        assert!(is_local_value(key(LOCAL_VALUES | 1)));
        assert!(is_local_value(key(LOCAL_VALUES | u32::MAX as u64)));
        assert!(!is_local_value(key(1)), "a client's task");
        assert!(
            !is_local_value(key(super::super::jobs::JOB_SEQ_BASE + 1)),
            "a job's task"
        );
    }
}
