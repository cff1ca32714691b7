//! What the [`Tasks`] machine does to run ready tasks: take them from the deque while workers are free,
//! fetch inputs it lacks (one fetch per input, however many tasks wait for it), and keep
//! fetched inputs in a bounded cache, since the tasks of one graph often share an input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::{Pending, Preparing};
use super::tasks::Tasks;
use super::{Bytes, Output};
use crate::membership::Membership;
use crate::wire::{ArgSpec, Failure, Request, TaskKey};

/// Most tasks handed to the local pool at once, however short they are.
const MAX_SLOTS: usize = 64;

impl Tasks {
    /// Keeps the mean run time of the tasks run here (exponentially weighted, 1/8).
    pub(super) fn measure_run(&mut self, took: Duration) {
        if took.is_zero() {
            return;
        }
        self.mean_run = Some(match self.mean_run {
            None => took,
            Some(mean) => (mean * 7 + took) / 8,
        });
    }

    /// Tasks to hand the local pool at once: its workers and one more, and for short tasks
    /// enough queued to keep each worker busy for [`Settings::buffer`](super::Settings::buffer).
    pub(super) fn slots(&self) -> usize {
        let base = self.settings.slots + self.waiting;
        match self.mean_run {
            Some(mean) if mean < self.settings.buffer => {
                let per_worker =
                    (self.settings.buffer.as_nanos() / mean.as_nanos().max(1)) as usize;
                (base + self.settings.workers * per_worker).min(MAX_SLOTS.max(base))
            }
            _ => base,
        }
    }

    /// A worker starts (`true`) or ends a wait on a future: while it waits, one more task
    /// may go to the pool, for it or another worker to run.
    pub(super) fn set_waiting(&mut self, waiting: bool) {
        if waiting {
            self.waiting += 1;
        } else {
            self.waiting = self.waiting.saturating_sub(1);
        }
    }

    /// Starts ready tasks while workers are free: newest first, fetching missing inputs.
    pub(super) fn dispatch(&mut self, members: &Membership, now: Instant) {
        let slots = self.slots();
        // This peer's own tasks that it does not serve wait for a thief that does.
        let mut not_here = Vec::new();
        while self.running + self.preparing.len() < slots {
            let Some(spec) = self.ready.pop_back() else {
                break;
            };
            let key = spec.key;
            if !self.runs(&spec) {
                if key.owner == self.me {
                    not_here.push(spec);
                } else {
                    let why = format!("{} is not served by this peer", spec.name);
                    self.running += 1;
                    self.ran(members, key, Err(Failure::NotServed(why)), now);
                }
                continue;
            }
            if self.preparing.contains_key(&key) || self.running_keys.contains_key(&key) {
                // A second copy of a task already starting or running here (it was queued
                // again elsewhere and came back): the first one reports for both.
                continue;
            }
            let mut prep = Preparing::new(spec.args.len());
            let mut wanted: Vec<(TaskKey, u64)> = Vec::new();
            for (index, arg) in spec.args.iter().enumerate() {
                match arg {
                    ArgSpec::Inline(bytes) => prep.args[index] = Some(Arc::new(bytes.clone())),
                    ArgSpec::Fetch { task, holder } => {
                        if let Some(bytes) = self.store.get(task).or(self.cache.get(task)) {
                            prep.args[index] = Some(bytes.clone());
                        } else if *holder == self.me {
                            prep.lost = Some(Failure::Unfetched {
                                input: *task,
                                holder: self.me,
                                why: "no longer held here".into(),
                            });
                        } else if !wanted.iter().any(|(t, _)| t == task) {
                            wanted.push((*task, *holder));
                        }
                    }
                }
            }
            prep.missing = wanted.len();
            prep.spec = Some(spec);
            self.preparing.insert(key, prep);
            for (dep, holder) in wanted {
                let waiting = self.fetching.entry(dep).or_default();
                waiting.push(key);
                if waiting.len() == 1 {
                    self.send(
                        holder,
                        Pending::Input { dep, peer: holder },
                        Request::Fetch { task: dep },
                    );
                }
            }
            self.maybe_run(members, key, now);
        }
        self.not_here = not_here.len();
        self.ready.extend(not_here.into_iter().rev());
    }

    /// A fetch of `dep` ended: hand it to every task waiting for it.
    pub(super) fn input_fetched(
        &mut self,
        members: &Membership,
        dep: TaskKey,
        holder: u64,
        bytes: Result<Bytes, String>,
        now: Instant,
    ) {
        if let Ok(bytes) = &bytes {
            self.stats.fetches += 1;
            let budget = self.settings.cache_max;
            self.cache.insert(dep, bytes.clone(), usize::MAX, budget);
        }
        for task in self.fetching.remove(&dep).unwrap_or_default() {
            let Some(prep) = self.preparing.get_mut(&task) else {
                continue;
            };
            prep.missing -= 1;
            match &bytes {
                Ok(bytes) => prep.fill(dep, bytes.clone()),
                Err(error) => {
                    prep.lost.get_or_insert(Failure::Unfetched {
                        input: dep,
                        holder,
                        why: error.clone(),
                    });
                }
            }
            self.maybe_run(members, task, now);
        }
    }

    fn maybe_run(&mut self, members: &Membership, task: TaskKey, now: Instant) {
        if self.preparing.get(&task).is_none_or(|p| p.missing > 0) {
            return;
        }
        let Some(prep) = self.preparing.remove(&task) else {
            return;
        };
        self.running += 1;
        *self.running_keys.entry(task).or_default() += 1;
        match prep.into_run() {
            Ok((spec, args)) => self.output(Output::Run { spec, args }),
            // Reported as a failed run, so the owner hears of it the usual way.
            Err(lost) => self.ran(members, task, Err(lost), now),
        }
    }
}
