//! What a simulated peer does with each event: run tasks, answer steals, and carry out its
//! policy's outputs the way the policy's module doc asks of a real event loop.

use super::{Event, Gossip, Msg, Swarm, Work, nanos};
use crate::policy::{Input, Outcome, Output, PeerId};

impl<W: Work> Swarm<W> {
    /// Starts peer `p`'s newest task if it is not running one.
    pub(super) fn start(&mut self, p: usize) {
        if self.peers[p].running.is_some() {
            return;
        }
        if let Some(task) = self.peers[p].queue.pop_back() {
            self.peers[p].running = Some(task);
            let at = self.now + nanos(self.net.task_cost);
            self.schedule(at, Event::Done(p));
        }
    }

    /// Tells peer `p`'s policy its ready count.
    pub(super) fn local_load(&mut self, p: usize) {
        let ready = self.peers[p].queue.len();
        self.feed(p, Input::LocalLoad { ready });
    }

    fn feed(&mut self, p: usize, input: Input) {
        let now = self.instant();
        self.peers[p].policy.handle(input, now);
        self.pump(p);
    }

    /// Takes up to `n` of peer `p`'s oldest queued tasks, as a steal does.
    fn take(&mut self, p: usize, n: usize) -> Vec<W::Task> {
        let n = n.min(self.peers[p].queue.len());
        self.peers[p].queue.drain(..n).collect()
    }

    /// Puts tasks that arrived at peer `p` onto its queue and tells its policy.
    fn receive(&mut self, p: usize, tasks: Vec<W::Task>) {
        self.peers[p].queue.extend(tasks);
        self.start(p);
        self.local_load(p);
    }

    pub(super) fn handle(&mut self, event: Event<W::Task>) {
        match event {
            Event::Done(p) => {
                self.record(1, p);
                if let Some(task) = self.peers[p].running.take() {
                    self.peers[p].ran += 1;
                    self.tally.tasks += 1;
                    self.last_done = self.now;
                    let before = self.peers[p].queue.len();
                    self.work.run(task, &mut self.peers[p].queue);
                    self.outstanding += (self.peers[p].queue.len() - before) as u64;
                    self.outstanding -= 1;
                }
                self.start(p);
                self.local_load(p);
            }
            Event::Timer(p) => {
                if self.peers[p].timer_at == Some(self.now) {
                    self.peers[p].timer_at = None;
                    let now = self.instant();
                    self.peers[p].policy.handle_timeout(now);
                    self.pump(p);
                }
            }
            Event::Deliver(p, Msg::Steal { from, request }) => {
                self.record(2, p);
                // Steal-half, rounded up: a victim with one queued task gives it away.
                let tasks = self.take(p, self.peers[p].queue.len().div_ceil(2));
                let ready = self.peers[p].queue.len();
                let reply = Msg::Reply {
                    from: p,
                    request,
                    tasks,
                    ready,
                };
                self.send(from, reply);
                self.local_load(p);
                // A thief has nothing ready.
                let thief = PeerId(from as u64);
                self.feed(
                    p,
                    Input::Load {
                        peer: thief,
                        ready: 0,
                    },
                );
            }
            Event::Deliver(
                p,
                Msg::Reply {
                    from,
                    request,
                    tasks,
                    ready,
                },
            ) => {
                self.record(3, p);
                let stolen = tasks.len();
                // Enqueue, our new count, then the reply: in the other order the policy
                // sends a needless request.
                self.receive(p, tasks);
                self.feed(p, Input::Reply { request, stolen });
                let victim = PeerId(from as u64);
                self.feed(
                    p,
                    Input::Load {
                        peer: victim,
                        ready,
                    },
                );
            }
            Event::Deliver(p, Msg::Load { from, ready }) => {
                let peer = PeerId(from as u64);
                self.feed(p, Input::Load { peer, ready });
            }
            Event::Deliver(p, Msg::Lifeline { from }) => {
                self.record(4, p);
                let from = PeerId(from as u64);
                self.feed(p, Input::LifelineRequest { from });
            }
            Event::Deliver(p, Msg::Push { from, tasks }) => {
                self.record(5, p);
                let count = tasks.len();
                self.receive(p, tasks);
                let from = PeerId(from as u64);
                self.feed(p, Input::Pushed { from, tasks: count });
            }
        }
    }

    /// Carries out what peer `p`'s policy asks for and arms its timer.
    fn pump(&mut self, p: usize) {
        let mut gave = false;
        let mut keep = Vec::new();
        while let Some(out) = self.peers[p].policy.poll_output() {
            match out {
                Output::Steal { peer, request } => {
                    self.tally.steals += 1;
                    let me = &mut self.peers[p];
                    if me.last_request.is_some_and(|last| request <= last) {
                        self.tally.request_errors += 1;
                    }
                    me.last_request = Some(request);
                    me.open.push(request);
                    self.send(peer.0 as usize, Msg::Steal { from: p, request });
                }
                Output::PublishLoad { ready } => self.publish(p, ready),
                Output::Finished { request, outcome } => {
                    self.tally.finished += 1;
                    if !matches!(outcome, Outcome::Stole(_)) {
                        self.tally.failed += 1;
                    }
                    let open = &mut self.peers[p].open;
                    match open.iter().position(|r| *r == request) {
                        Some(i) => {
                            open.swap_remove(i);
                        }
                        None => self.tally.request_errors += 1,
                    }
                }
                Output::Lifeline { peer } => {
                    self.send(peer.0 as usize, Msg::Lifeline { from: p });
                }
                Output::Push { peer, tasks } => {
                    let tasks = self.take(p, tasks);
                    if tasks.is_empty() {
                        keep.push(peer);
                    } else {
                        self.tally.pushes += 1;
                        gave = true;
                        self.send(peer.0 as usize, Msg::Push { from: p, tasks });
                    }
                }
            }
        }
        if gave || !keep.is_empty() {
            self.local_load(p);
        }
        for from in keep {
            // Nothing to give after all: the registration stays.
            self.feed(p, Input::LifelineRequest { from });
        }
        if let Some(at) = self.peers[p].policy.poll_timeout() {
            let at = nanos(at.saturating_duration_since(self.base)).max(self.now);
            if self.peers[p].timer_at.is_none_or(|t| at < t) {
                self.peers[p].timer_at = Some(at);
                self.schedule(at, Event::Timer(p));
            }
        }
    }

    fn publish(&mut self, p: usize, ready: usize) {
        let n = self.peers.len();
        match self.net.gossip {
            Gossip::All => {
                for q in (0..n).filter(|q| *q != p) {
                    self.send(q, Msg::Load { from: p, ready });
                }
            }
            Gossip::Random(fanout) => {
                for _ in 0..fanout.min(n.saturating_sub(1)) {
                    let mut q = self.rng.below(n);
                    if q == p {
                        q = (q + 1) % n;
                    }
                    self.send(q, Msg::Load { from: p, ready });
                }
            }
        }
    }
}
