//! What a simulated peer does with each event: run nodes, answer steals, and carry out its
//! policy's outputs the way the policy's module doc asks of a real event loop.

use peer_steal::policy::{Input, Outcome, Output, PeerId};

use super::{Event, Msg, Sim, nanos};
use crate::uts::{self, Node};

impl Sim<'_> {
    /// Starts the next node if peer `p` is not running one.
    pub(super) fn start(&mut self, p: usize) {
        if self.peers[p].running.is_some() {
            return;
        }
        if let Some(node) = self.peers[p].deque.pop_back() {
            self.peers[p].running = Some(node);
            let at = self.now + nanos(self.cfg.node_cost);
            self.schedule(at, Event::Done(p));
        }
    }

    /// Tells peer `p`'s policy its ready count.
    pub(super) fn local_load(&mut self, p: usize) {
        let ready = self.peers[p].deque.len();
        self.feed(p, Input::LocalLoad { ready });
    }

    fn feed(&mut self, p: usize, input: Input) {
        let now = self.instant();
        self.peers[p].policy.handle(input, now);
        self.pump(p);
    }

    /// Takes up to `n` of peer `p`'s oldest (shallowest) queued nodes, as a steal does.
    fn take(&mut self, p: usize, n: usize) -> Vec<Node> {
        let n = n.min(self.peers[p].deque.len());
        self.peers[p].deque.drain(..n).collect()
    }

    pub(super) fn handle(&mut self, event: Event) {
        match event {
            Event::Done(p) => {
                self.record(1, p);
                if let Some(node) = self.peers[p].running.take() {
                    self.nodes += 1;
                    self.last_done = self.now;
                    let before = self.peers[p].deque.len();
                    self.peers[p]
                        .deque
                        .extend(uts::children(&self.cfg.tree, &node));
                    self.outstanding += (self.peers[p].deque.len() - before) as u64;
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
                // Steal-half, rounded up: a victim with one queued node gives it away.
                let nodes = self.take(p, self.peers[p].deque.len().div_ceil(2));
                let ready = self.peers[p].deque.len();
                let reply = Msg::Reply {
                    from: p,
                    request,
                    nodes,
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
                    nodes,
                    ready,
                },
            ) => {
                self.record(3, p);
                let stolen = nodes.len();
                self.peers[p].deque.extend(nodes);
                self.start(p);
                self.local_load(p);
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
            Event::Deliver(p, Msg::Push { from, nodes }) => {
                self.record(5, p);
                let tasks = nodes.len();
                self.peers[p].deque.extend(nodes);
                self.start(p);
                self.local_load(p);
                let from = PeerId(from as u64);
                self.feed(p, Input::Pushed { from, tasks });
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
                    self.send(peer.0 as usize, Msg::Steal { from: p, request });
                }
                Output::PublishLoad { ready } => {
                    let n = self.cfg.peers;
                    for _ in 0..self.cfg.gossip_fanout.min(n.saturating_sub(1)) {
                        let mut q = self.random(n);
                        if q == p {
                            q = (q + 1) % n;
                        }
                        self.send(q, Msg::Load { from: p, ready });
                    }
                }
                Output::Finished { outcome, .. } => {
                    if !matches!(outcome, Outcome::Stole(_)) {
                        self.tally.failed += 1;
                    }
                }
                Output::Lifeline { peer } => {
                    self.send(peer.0 as usize, Msg::Lifeline { from: p });
                }
                Output::Push { peer, tasks } => {
                    let nodes = self.take(p, tasks);
                    if nodes.is_empty() {
                        keep.push(peer);
                    } else {
                        self.tally.pushes += 1;
                        gave = true;
                        self.send(peer.0 as usize, Msg::Push { from: p, nodes });
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
}
