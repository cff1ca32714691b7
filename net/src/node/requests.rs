//! Requests out, shared by every protocol of the node: each gets a tag and a record of
//! what it was for ([`Pending`]); at most `max_in_flight` go to one peer at a time and the
//! rest wait in that peer's queue, in order; requests to a suspect are failed at the end of
//! the step. Sans-IO: [`Requests::send`] says whether a request goes out now, and a
//! request that ends hands its place to the next one queued.
//!
//! Operations on primitives have places of their own, [`PRIM_IN_FLIGHT`] per peer: one
//! that waits at its home (a lock, a get from an empty queue) may hold its place for a
//! long-poll, and must not hold up the tasks' requests, nor a release behind it (operations
//! that do not wait go ahead of those that do in their queue). Both caps together keep the
//! streams open to one peer well under the multiplexer's bound (yamux: 512 a connection,
//! both ways), past which the connection is reset and the peer suspected.

use std::collections::{HashMap, VecDeque};

use super::state::Pending;
use crate::wire::Request;

/// The requests this peer has out; see the [module docs](self).
#[derive(Debug)]
pub(super) struct Requests {
    /// What each request in flight or queued is for, by tag.
    pending: HashMap<u64, Pending>,
    next_tag: u64,
    /// Requests to each peer: how many are in flight, and those waiting for a free place.
    in_flight: HashMap<u64, usize>,
    outbox: HashMap<u64, VecDeque<(u64, Request)>>,
    /// The same for operations on primitives.
    prims_in_flight: HashMap<u64, usize>,
    prims_outbox: HashMap<u64, VecDeque<(u64, Request)>>,
    /// Requests to suspects, failed at the end of the step.
    unsendable: Vec<u64>,
    max_in_flight: usize,
}

/// Operations on primitives in flight to one peer, at most.
pub(super) const PRIM_IN_FLIGHT: usize = 128;

/// A request to send now.
#[derive(Debug, PartialEq)]
pub(super) struct Sent {
    pub(super) to: u64,
    pub(super) tag: u64,
    pub(super) request: Request,
}

impl Requests {
    /// No requests out; at most `max_in_flight` to one peer at a time.
    pub(super) fn new(max_in_flight: usize) -> Requests {
        Requests {
            pending: HashMap::new(),
            next_tag: 0,
            in_flight: HashMap::new(),
            outbox: HashMap::new(),
            prims_in_flight: HashMap::new(),
            prims_outbox: HashMap::new(),
            unsendable: Vec::new(),
            max_in_flight,
        }
    }

    /// Records `request` to `to`, for `pending`: the request to send now, or `None` if it
    /// waits behind others to that peer, or its peer is `down` (then it is failed at the
    /// end of the step: [`take_unsendable`](Requests::take_unsendable)).
    pub(super) fn send(
        &mut self,
        to: u64,
        pending: Pending,
        request: Request,
        down: bool,
    ) -> Option<Sent> {
        self.next_tag += 1;
        let tag = self.next_tag;
        debug_assert_eq!(pending.peer(), to, "a request is recorded under its peer");
        self.pending.insert(tag, pending);
        let prim = matches!(request, Request::Prim(_));
        let (in_flight, most) = match prim {
            true => (self.prims_in_flight.entry(to).or_default(), PRIM_IN_FLIGHT),
            false => (self.in_flight.entry(to).or_default(), self.max_in_flight),
        };
        if down {
            // Nobody would answer: counted in flight, so that its end balances.
            *in_flight += 1;
            self.unsendable.push(tag);
            return None;
        }
        if *in_flight < most {
            *in_flight += 1;
            return Some(Sent { to, tag, request });
        }
        match &request {
            // Ahead of the operations that wait, behind the others that do not.
            Request::Prim(p) if p.op.line().is_none() => {
                let queue = self.prims_outbox.entry(to).or_default();
                let at = (queue.iter())
                    .position(|(_, r)| matches!(r, Request::Prim(q) if q.op.line().is_some()))
                    .unwrap_or(queue.len());
                queue.insert(at, (tag, request));
            }
            Request::Prim(_) => self
                .prims_outbox
                .entry(to)
                .or_default()
                .push_back((tag, request)),
            _ => self.outbox.entry(to).or_default().push_back((tag, request)),
        }
        None
    }

    /// Request `tag` was answered or failed: what it was for, and the request queued
    /// behind it to send now, if any.
    pub(super) fn ended(&mut self, tag: u64) -> Option<(Pending, Option<Sent>)> {
        let pending = self.pending.remove(&tag)?;
        let peer = pending.peer();
        let (in_flight, outbox) = match pending {
            Pending::Prim(..) => (&mut self.prims_in_flight, &mut self.prims_outbox),
            _ => (&mut self.in_flight, &mut self.outbox),
        };
        if let Some((tag, request)) = outbox.get_mut(&peer).and_then(VecDeque::pop_front) {
            let next = Sent {
                to: peer,
                tag,
                request,
            };
            return Some((pending, Some(next)));
        }
        outbox.remove(&peer);
        if let Some(n) = in_flight.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                in_flight.remove(&peer);
            }
        }
        Some((pending, None))
    }

    /// `peer` is suspected: forgets its queue and returns the tags of every request to it,
    /// oldest first, for the caller to fail.
    pub(super) fn drop_peer(&mut self, peer: u64) -> Vec<u64> {
        self.in_flight.remove(&peer);
        self.outbox.remove(&peer);
        self.prims_in_flight.remove(&peer);
        self.prims_outbox.remove(&peer);
        let mut tags: Vec<u64> = (self.pending.iter())
            .filter(|(_, p)| p.peer() == peer)
            .map(|(tag, _)| *tag)
            .collect();
        tags.sort_unstable();
        tags
    }

    /// The next request that could not be sent (its peer is down), with that peer.
    pub(super) fn take_unsendable(&mut self) -> Option<(u64, u64)> {
        let tag = self.unsendable.pop()?;
        let to = self.pending.get(&tag).map(|p| p.peer()).unwrap_or_default();
        Some((tag, to))
    }

    /// Whether requests to suspects wait to be failed.
    pub(super) fn any_unsendable(&self) -> bool {
        !self.unsendable.is_empty()
    }

    /// The peers with requests in flight or queued.
    pub(super) fn peers(&self) -> impl Iterator<Item = u64> + '_ {
        let prims = self
            .prims_in_flight
            .keys()
            .filter(|p| !self.in_flight.contains_key(p));
        self.in_flight.keys().chain(prims).copied()
    }

    /// What the requests out are for.
    pub(super) fn pending(&self) -> impl Iterator<Item = &Pending> {
        self.pending.values()
    }

    /// The newest request out, for tests that answer it by hand.
    #[cfg(test)]
    pub(super) fn newest(&self) -> Option<u64> {
        self.pending.keys().copied().max()
    }

    /// Tags given so far, for tests.
    #[cfg(test)]
    pub(super) fn tags_given(&self) -> u64 {
        self.next_tag
    }

    /// Whether any request to `peer` is out.
    #[cfg(test)]
    pub(super) fn has_any_to(&self, peer: u64) -> bool {
        self.in_flight.contains_key(&peer) || self.prims_in_flight.contains_key(&peer)
    }

    /// The peers with requests out, for tests.
    #[cfg(test)]
    pub(super) fn peer_set(&self) -> std::collections::HashSet<u64> {
        self.peers().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Kind, Op, OpId, PrimRequest};

    fn lookup(to: u64, waiter: u64) -> (Pending, Request) {
        let request = Request::Published {
            name: format!("{waiter}"),
        };
        (Pending::Lookup(waiter, to), request)
    }

    #[test]
    fn past_the_cap_a_request_waits_and_goes_when_one_ends() {
        let mut r = Requests::new(2);
        let sent: Vec<Option<Sent>> = (0..3)
            .map(|i| {
                let (pending, request) = lookup(7, i);
                r.send(7, pending, request, false)
            })
            .collect();
        assert!(sent[0].is_some() && sent[1].is_some() && sent[2].is_none());
        let first = sent[0].as_ref().unwrap().tag;
        let (pending, next) = r.ended(first).unwrap();
        assert_eq!(pending.peer(), 7);
        assert_eq!(
            next.map(|s| s.tag),
            Some(3),
            "the queued one goes in its place"
        );
        assert!(r.ended(first).is_none(), "a tag ends once");
        r.ended(2);
        r.ended(3);
        assert!(!r.has_any_to(7), "every end balanced: {:?}", r.peer_set());
    }

    #[test]
    fn a_request_to_a_suspect_is_failed_later_and_balances() {
        let mut r = Requests::new(2);
        let (pending, request) = lookup(5, 1);
        assert!(r.send(5, pending, request, true).is_none());
        assert!(r.any_unsendable());
        let (tag, to) = r.take_unsendable().unwrap();
        assert_eq!(to, 5);
        assert!(r.ended(tag).is_some());
        assert!(!r.any_unsendable() && !r.has_any_to(5));
    }

    #[test]
    fn a_suspect_s_requests_are_handed_back_oldest_first() {
        let mut r = Requests::new(1);
        for i in 0..3 {
            let (pending, request) = lookup(9, i);
            r.send(9, pending, request, false);
        }
        assert_eq!(r.drop_peer(9), [1, 2, 3]);
        assert!(!r.has_any_to(9));
    }

    fn prim(to: u64, seq: u64, op: Op) -> (Pending, Request) {
        let request = Request::Prim(PrimRequest {
            key: "lock/k".into(),
            kind: Kind::Semaphore { permits: 1 },
            id: OpId { peer: 1, seq },
            op,
        });
        (Pending::Prim(to, seq), request)
    }

    #[test]
    fn primitives_have_places_of_their_own_and_a_release_goes_ahead_of_waiting_acquires() {
        let mut r = Requests::new(2);
        let acquire = Op::Acquire {
            lease_ms: None,
            wait: true,
        };
        let sent: Vec<u64> = (0..PRIM_IN_FLIGHT as u64 + 2)
            .filter_map(|seq| {
                let (pending, request) = prim(4, seq, acquire.clone());
                r.send(4, pending, request, false).map(|s| s.tag)
            })
            .collect();
        assert_eq!(sent.len(), PRIM_IN_FLIGHT, "past the cap, operations wait");
        let (pending, request) = prim(4, 999, Op::Release { token: 1 });
        assert!(r.send(4, pending, request, false).is_none());
        // The tasks' requests to that peer are not held up by them.
        let (pending, request) = lookup(4, 1);
        assert!(r.send(4, pending, request, false).is_some());
        // The first place freed goes to the release, ahead of the acquires queued before it.
        let (_, next) = r.ended(sent[0]).unwrap();
        let next = next.expect("a queued operation goes");
        assert!(matches!(next.request, Request::Prim(p) if p.op == Op::Release { token: 1 }));
    }
}
