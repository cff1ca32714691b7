//! What a [`Node`] says to other peers and how it answers them: requests out (capped per
//! peer, the rest queued), notices batched per peer, requests in (steal, fetch, notify,
//! lifeline, push), and the responses to ours.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use peer_steal::policy;

use super::state::Pending;
use super::{Node, Output, portable};
use crate::wire::{Failure, Request, Response, TaskSpec};

impl Node {
    /// Sends each peer its waiting notices, unless a batch to it is still in flight.
    pub(super) fn flush_notices(&mut self) {
        let ready: Vec<u64> = self
            .notices
            .iter()
            .filter(|(_, n)| !n.in_flight && n.has_any())
            .map(|(peer, _)| *peer)
            .collect();
        for peer in ready {
            let Some(notices) = self.notices.get_mut(&peer) else {
                continue;
            };
            notices.in_flight = true;
            let request = Request::Notify {
                done: std::mem::take(&mut notices.done),
                release: std::mem::take(&mut notices.release),
            };
            self.send(peer, Pending::Notify(peer), request);
        }
        self.notices.retain(|_, n| n.in_flight || n.has_any());
    }

    pub(super) fn send(&mut self, to: u64, pending: Pending, request: Request) {
        self.next_tag += 1;
        let tag = self.next_tag;
        debug_assert_eq!(pending.peer(), to, "a request is recorded under its peer");
        self.pending.insert(tag, pending);
        let in_flight = self.in_flight.entry(to).or_default();
        if *in_flight < self.settings.max_in_flight {
            *in_flight += 1;
            self.outputs.push_back(Output::Send { to, tag, request });
        } else {
            self.outbox.entry(to).or_default().push_back((tag, request));
        }
    }

    /// A request to `peer` ended: send the next one waiting for it.
    pub(super) fn request_ended(&mut self, peer: u64) {
        if let Some((tag, request)) = self.outbox.get_mut(&peer).and_then(VecDeque::pop_front) {
            self.outputs.push_back(Output::Send {
                to: peer,
                tag,
                request,
            });
            return;
        }
        self.outbox.remove(&peer);
        if let Some(n) = self.in_flight.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&peer);
            }
        }
    }

    pub(super) fn request(&mut self, from: u64, channel: u64, request: Request, now: Instant) {
        let response = match request {
            Request::Steal { max, can_run } => {
                // A thief has nothing ready.
                self.policy.handle(
                    policy::Input::Load {
                        peer: policy::PeerId(from),
                        ready: 0,
                    },
                    now,
                );
                let count = self.ready.iter().filter(|s| portable(&can_run, s)).count();
                let take = count.div_ceil(2).min(max as usize);
                let tasks = self.take_oldest(from, take, &can_run);
                Response::Stolen {
                    tasks,
                    ready: self.ready.len() as u32,
                }
            }
            Request::Lifeline { can_run } => {
                self.lifelines.insert(from, can_run);
                self.policy.handle(
                    policy::Input::LifelineRequest {
                        from: policy::PeerId(from),
                    },
                    now,
                );
                Response::Ack
            }
            Request::Push { tasks } => {
                let count = tasks.len();
                self.stats.stolen += count as u64;
                self.ready.extend(tasks);
                self.policy.handle(
                    policy::Input::LocalLoad {
                        ready: self.ready.len(),
                    },
                    now,
                );
                self.policy.handle(
                    policy::Input::Pushed {
                        from: policy::PeerId(from),
                        tasks: count,
                    },
                    now,
                );
                Response::Ack
            }
            Request::Fetch { task } => match self.store.get(&task) {
                Some(bytes) => Response::Value(bytes.to_vec()),
                None => Response::Missing,
            },
            Request::Notify { done, release } => {
                for task in release {
                    self.store.remove(&task);
                }
                let mut refused = Vec::new();
                for (task, done) in done {
                    if task.owner == self.me {
                        self.done(task, from, done, now);
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

    /// Up to `take` of our ready tasks, oldest first, among those `thief` can run.
    pub(super) fn take_oldest(
        &mut self,
        thief: u64,
        take: usize,
        can_run: &[u64],
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
        given
    }

    pub(super) fn response(&mut self, tag: u64, response: Result<Response, String>, now: Instant) {
        let Some(pending) = self.pending.remove(&tag) else {
            return;
        };
        self.request_ended(pending.peer());
        match (pending, response) {
            (Pending::Steal(request, victim, sent), response) => {
                if response.is_ok() {
                    let nanos = now.saturating_duration_since(sent).as_nanos();
                    let _ = self
                        .steal_rtt
                        .record(u64::try_from(nanos).unwrap_or(u64::MAX));
                }
                let (tasks, left) = match response {
                    Ok(Response::Stolen { tasks, ready }) => (tasks, Some(ready)),
                    _ => (Vec::new(), None),
                };
                self.stats.stolen += tasks.len() as u64;
                let stolen = tasks.len();
                self.ready.extend(tasks);
                self.policy.handle(
                    policy::Input::LocalLoad {
                        ready: self.ready.len(),
                    },
                    now,
                );
                self.policy
                    .handle(policy::Input::Reply { request, stolen }, now);
                if let Some(ready) = left {
                    self.policy.handle(
                        policy::Input::Load {
                            peer: policy::PeerId(victim),
                            ready: ready as usize,
                        },
                        now,
                    );
                }
            }
            (Pending::Input { dep, .. }, response) => {
                let bytes = match response {
                    Ok(Response::Value(bytes)) => Ok(Arc::new(bytes)),
                    Ok(other) => Err(format!("holder answered {other:?}")),
                    Err(error) => Err(error),
                };
                self.input_fetched(dep, bytes, now);
            }
            (Pending::Resolve(task, _), response) => {
                let result = match response {
                    Ok(Response::Value(bytes)) => {
                        self.stats.fetches += 1;
                        Ok(Arc::new(bytes))
                    }
                    Ok(other) => Err(Failure::InputLost(format!(
                        "the holder of {task} answered {other:?}"
                    ))),
                    Err(error) => Err(Failure::InputLost(format!(
                        "fetching {task} failed: {error}"
                    ))),
                };
                self.resolved(task, result, now);
            }
            (Pending::Notify(peer), _) => {
                if let Some(notices) = self.notices.get_mut(&peer) {
                    notices.in_flight = false;
                }
            }
            (Pending::OneWay(_), _) | (Pending::Push(..), Ok(Response::Ack)) => {}
            (Pending::Push(_, tasks), _) => {
                // The waiting peer is gone or refused: the tasks are still ours to run.
                self.stats.given -= tasks.len() as u64;
                self.ready.extend(tasks);
                let ready = self.ready.len();
                self.policy.handle(policy::Input::LocalLoad { ready }, now);
            }
        }
    }
}
