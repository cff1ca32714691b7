//! One primitive's state and what each operation does to it, with no I/O: an operation
//! yields a reply (or nothing, when it must wait) and the [`Delta`]s it made, which the
//! home sends to its backup. Home and backup apply deltas with the same [`PrimState::apply`],
//! so the backup's copy is the home's as of the last delta it took.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::wire::{Body, Delta, Holder, Item, Kind, Op, OpId, PrimState, Reply, Taken};

/// When a lease of `ms` from `now` runs out; `None` (never) past what the clock can tell,
/// since the length comes from another peer.
pub(crate) fn deadline(now: Instant, ms: u64) -> Option<Instant> {
    now.checked_add(Duration::from_millis(ms))
}

/// Items taken, and tokens released, remembered so that a retried get or release (its
/// answer was lost with a home) gets the same answer.
const REMEMBERED: usize = 1024;
/// Bytes of taken items remembered at most: copies of the state travel in one frame.
const REMEMBERED_BYTES: usize = 4 << 20;

impl Kind {
    /// The size a primitive is made with: a queue has room for one item at least, and no
    /// primitive holds more entries than a copy of its state may carry
    /// ([`PRIM_ENTRIES`](crate::wire::PRIM_ENTRIES)).
    pub(crate) fn within_bounds(self) -> Kind {
        let most = crate::wire::PRIM_ENTRIES as u32;
        match self {
            Kind::Semaphore { permits } => Kind::Semaphore {
                permits: permits.min(most),
            },
            Kind::Queue { capacity } => Kind::Queue {
                capacity: capacity.clamp(1, most),
            },
            other => other,
        }
    }
}

impl PrimState {
    /// A new primitive of `kind`. A semaphore's fencing tokens start above `clock_nanos`
    /// in milliseconds: above those of any earlier copy of it that was lost.
    pub(crate) fn new(kind: Kind, clock_nanos: u64) -> PrimState {
        let body = match kind.within_bounds() {
            Kind::Semaphore { permits } => Body::Semaphore {
                permits,
                last_token: clock_nanos / 1_000_000,
                holders: Vec::new(),
                released: VecDeque::new(),
            },
            Kind::Queue { capacity } => Body::Queue {
                capacity,
                items: VecDeque::new(),
                closed: false,
                taken: VecDeque::new(),
            },
            Kind::Variable => Body::Variable {
                value: None,
                version: 0,
                fence: None,
            },
            Kind::Event => Body::Event { set: false },
        };
        PrimState { seq: 0, body }
    }

    /// What it is, with the size it was created with.
    pub(crate) fn kind(&self) -> Kind {
        match &self.body {
            Body::Semaphore { permits, .. } => Kind::Semaphore { permits: *permits },
            Body::Queue { capacity, .. } => Kind::Queue {
                capacity: *capacity,
            },
            Body::Variable { .. } => Kind::Variable,
            Body::Event { .. } => Kind::Event,
        }
    }

    /// Whether it is a primitive of `kind`, of the same size (as [`Kind::within_bounds`]
    /// makes it).
    pub(crate) fn is(&self, kind: Kind) -> bool {
        self.kind() == kind.within_bounds()
    }

    /// Applies `op` by `id` at `now`: the reply, or `None` when it must wait. The changes
    /// made are applied and appended to `deltas`.
    pub(crate) fn operate(
        &mut self,
        id: OpId,
        op: &Op,
        now: Instant,
        deltas: &mut Vec<Delta>,
    ) -> Option<Reply> {
        let mut change = |state: &mut PrimState, delta: Delta| {
            state.apply(&delta, now);
            deltas.push(delta);
        };
        match (&self.body, op) {
            (Body::Semaphore { holders, .. }, Op::Acquire { lease_ms, wait }) => {
                // A retry of a granted acquire gets the same grant.
                if let Some(h) = holders.iter().find(|h| h.op == id) {
                    return Some(granted(h, now));
                }
                if self.free() == 0 {
                    return (!wait).then_some(Reply::NotGranted);
                }
                let token = self.last_token().saturating_add(1);
                let holder = Holder {
                    token,
                    op: id,
                    lease_ms: *lease_ms,
                    left_ms: *lease_ms,
                    expires: None,
                };
                change(self, Delta::Grant(holder));
                Some(Reply::Granted {
                    token,
                    lease_ms: *lease_ms,
                })
            }
            (
                Body::Semaphore {
                    holders, released, ..
                },
                Op::Release { token },
            ) => {
                if holders.iter().any(|h| h.token == *token) {
                    change(
                        self,
                        Delta::Ungrant {
                            token: *token,
                            released: true,
                        },
                    );
                    Some(Reply::Done)
                } else if released.contains(token) {
                    Some(Reply::Done)
                } else {
                    Some(Reply::Expired)
                }
            }
            (Body::Semaphore { holders, .. }, Op::Renew { token, lease_ms }) => {
                if !holders.iter().any(|h| h.token == *token) {
                    return Some(Reply::Expired);
                }
                change(
                    self,
                    Delta::Renew {
                        token: *token,
                        lease_ms: *lease_ms,
                    },
                );
                Some(Reply::Granted {
                    token: *token,
                    lease_ms: Some(*lease_ms),
                })
            }
            (Body::Semaphore { holders, .. }, Op::IsHeld { token }) => {
                Some(Reply::Bool(holders.iter().any(|h| h.token == *token)))
            }
            (Body::Semaphore { .. }, Op::Available) => Some(Reply::Count(self.free() as u64)),
            (
                Body::Queue {
                    capacity,
                    items,
                    closed,
                    taken,
                },
                Op::Put { item, wait },
            ) => {
                // A retried put is queued once.
                if items.iter().any(|i| i.id == id) || taken.iter().any(|t| t.item.id == id) {
                    return Some(Reply::Done);
                }
                if *closed {
                    return Some(Reply::Closed);
                }
                if items.len() >= *capacity as usize {
                    return (!wait).then_some(Reply::Full);
                }
                let item = Item {
                    id,
                    bytes: item.clone(),
                };
                change(self, Delta::Push { item, front: false });
                Some(Reply::Done)
            }
            (
                Body::Queue {
                    items,
                    closed,
                    taken,
                    ..
                },
                Op::Get { wait },
            ) => {
                // A retried get receives the item the first one took.
                if let Some(t) = taken.iter().find(|t| t.by == id) {
                    return Some(Reply::Item(t.item.bytes.clone()));
                }
                let Some(first) = items.front() else {
                    if *closed {
                        return Some(Reply::Closed);
                    }
                    return (!wait).then_some(Reply::Empty);
                };
                let bytes = first.bytes.clone();
                change(self, Delta::Pop { by: id });
                Some(Reply::Item(bytes))
            }
            (Body::Queue { items, taken, .. }, Op::Unget { item }) => {
                // A retried unget is put back once (even if taken again meanwhile).
                if !items.iter().any(|i| i.id == id) && !taken.iter().any(|t| t.item.id == id) {
                    let item = Item {
                        id,
                        bytes: item.clone(),
                    };
                    change(self, Delta::Push { item, front: true });
                }
                Some(Reply::Done)
            }
            (Body::Queue { closed, .. }, Op::Close) => {
                if !closed {
                    change(self, Delta::Close);
                }
                Some(Reply::Done)
            }
            (Body::Queue { items, .. }, Op::Len) => Some(Reply::Count(items.len() as u64)),
            (
                Body::Variable { fence, .. },
                Op::Set {
                    value,
                    fence: token,
                },
            ) => {
                if let (Some(highest), Some(token)) = (fence, token)
                    && highest > token
                {
                    return Some(Reply::Fenced { highest: *highest });
                }
                change(
                    self,
                    Delta::Set {
                        value: value.clone(),
                        fence: *token,
                    },
                );
                Some(Reply::Version(self.version()))
            }
            (Body::Variable { value, version, .. }, Op::Read) => {
                Some(Reply::Value(value.as_ref().map(|v| (v.clone(), *version))))
            }
            (Body::Variable { version, .. }, Op::Changed { seen }) => {
                (*version > *seen).then_some(Reply::Version(*version))
            }
            (Body::Event { set }, Op::Flag(to)) => {
                if set != to {
                    change(self, Delta::Flag(*to));
                }
                Some(Reply::Done)
            }
            (Body::Event { set }, Op::IsSet) => Some(Reply::Bool(*set)),
            (Body::Event { set }, Op::Wait) => set.then_some(Reply::Done),
            (_, op) => Some(Reply::Refused(format!(
                "{op:?} does not apply to this primitive"
            ))),
        }
    }

    /// Applies one change.
    pub(crate) fn apply(&mut self, delta: &Delta, now: Instant) {
        if let Delta::Snapshot(state) = delta {
            *self = state.clone();
            self.restore(now);
            return;
        }
        self.seq = self.seq.saturating_add(1);
        match (&mut self.body, delta) {
            (
                Body::Semaphore {
                    last_token,
                    holders,
                    ..
                },
                Delta::Grant(holder),
            ) => {
                *last_token = (*last_token).max(holder.token);
                let mut holder = holder.clone();
                holder.expires = holder.lease_ms.and_then(|ms| deadline(now, ms));
                holders.push(holder);
            }
            (
                Body::Semaphore {
                    holders, released, ..
                },
                Delta::Ungrant {
                    token,
                    released: by_holder,
                },
            ) => {
                holders.retain(|h| h.token != *token);
                if *by_holder {
                    remember(released, *token);
                }
            }
            (Body::Semaphore { holders, .. }, Delta::Renew { token, lease_ms }) => {
                if let Some(h) = holders.iter_mut().find(|h| h.token == *token) {
                    h.lease_ms = Some(*lease_ms);
                    h.expires = deadline(now, *lease_ms);
                }
            }
            (Body::Queue { items, .. }, Delta::Push { item, front }) => {
                if *front {
                    items.push_front(item.clone());
                } else {
                    items.push_back(item.clone());
                }
            }
            (Body::Queue { items, taken, .. }, Delta::Pop { by }) => {
                if let Some(item) = items.pop_front() {
                    remember(taken, Taken { by: *by, item });
                    let mut bytes: usize = taken.iter().map(|t| t.item.bytes.len()).sum();
                    while bytes > REMEMBERED_BYTES && taken.len() > 1 {
                        bytes -= taken.pop_front().map_or(0, |t| t.item.bytes.len());
                    }
                }
            }
            (Body::Queue { closed, .. }, Delta::Close) => *closed = true,
            (
                Body::Variable {
                    value,
                    version,
                    fence,
                },
                Delta::Set { value: v, fence: f },
            ) => {
                *value = Some(v.clone());
                *version = version.saturating_add(1);
                if f.is_some() {
                    *fence = (*fence).max(*f);
                }
            }
            (Body::Event { set }, Delta::Flag(to)) => *set = *to,
            // A delta of another kind: a bad copy; ignore it (the home sends a snapshot to
            // a backup that refuses).
            _ => {}
        }
    }

    /// Takes back leases that ran out at `now`; the changes go to `deltas`.
    pub(crate) fn expire(&mut self, now: Instant, deltas: &mut Vec<Delta>) {
        self.take_back(now, deltas, |h| h.expires.is_some_and(|at| at <= now));
    }

    /// Takes back the permits of `peer`, which is gone; the changes go to `deltas`.
    pub(crate) fn drop_holder(&mut self, peer: u64, now: Instant, deltas: &mut Vec<Delta>) {
        self.take_back(now, deltas, |h| h.op.peer == peer);
    }

    /// Takes back the permits whose holders `lost` picks.
    fn take_back(&mut self, now: Instant, deltas: &mut Vec<Delta>, lost: impl Fn(&Holder) -> bool) {
        let Body::Semaphore { holders, .. } = &self.body else {
            return;
        };
        let tokens: Vec<u64> = holders
            .iter()
            .filter(|h| lost(h))
            .map(|h| h.token)
            .collect();
        for token in tokens {
            let delta = Delta::Ungrant {
                token,
                released: false,
            };
            self.apply(&delta, now);
            deltas.push(delta);
        }
    }

    /// When the next lease runs out.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        match &self.body {
            Body::Semaphore { holders, .. } => holders.iter().filter_map(|h| h.expires).min(),
            _ => None,
        }
    }

    /// A copy to send: leases carry what is left of them.
    pub(crate) fn snapshot(&self, now: Instant) -> PrimState {
        let mut copy = self.clone();
        if let Body::Semaphore { holders, .. } = &mut copy.body {
            for h in holders {
                h.left_ms = h
                    .expires
                    .map(|at| at.saturating_duration_since(now).as_millis() as u64);
                h.expires = None;
            }
        }
        copy
    }

    /// Turns a received copy's leases back into deadlines by this peer's clock.
    fn restore(&mut self, now: Instant) {
        if let Body::Semaphore { holders, .. } = &mut self.body {
            for h in holders {
                h.expires = h.left_ms.and_then(|ms| deadline(now, ms));
            }
        }
    }

    fn free(&self) -> usize {
        match &self.body {
            Body::Semaphore {
                permits, holders, ..
            } => (*permits as usize).saturating_sub(holders.len()),
            _ => 0,
        }
    }

    fn last_token(&self) -> u64 {
        match &self.body {
            Body::Semaphore { last_token, .. } => *last_token,
            _ => 0,
        }
    }

    fn version(&self) -> u64 {
        match &self.body {
            Body::Variable { version, .. } => *version,
            _ => 0,
        }
    }
}

/// The grant of `holder`, its lease as what is left of it.
fn granted(holder: &Holder, now: Instant) -> Reply {
    Reply::Granted {
        token: holder.token,
        lease_ms: holder
            .expires
            .map(|at| at.saturating_duration_since(now).as_millis() as u64),
    }
}

fn remember<T>(list: &mut VecDeque<T>, value: T) {
    if list.len() >= REMEMBERED {
        list.pop_front();
    }
    list.push_back(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64) -> OpId {
        OpId { peer: 7, seq }
    }

    /// Applies `op` at the home and replays its deltas at a backup.
    fn both(
        home: &mut PrimState,
        backup: &mut PrimState,
        seq: u64,
        op: Op,
        now: Instant,
    ) -> Option<Reply> {
        let mut deltas = Vec::new();
        let reply = home.operate(id(seq), &op, now, &mut deltas);
        for d in &deltas {
            backup.apply(d, now);
        }
        reply
    }

    #[test]
    fn a_backup_that_replays_the_deltas_equals_the_home() {
        let now = Instant::now();
        let mut home = PrimState::new(Kind::Queue { capacity: 2 }, 0);
        let mut backup = PrimState::new(Kind::Queue { capacity: 2 }, 0);
        let put = |b: u8| Op::Put {
            item: vec![b],
            wait: false,
        };
        assert_eq!(
            both(&mut home, &mut backup, 1, put(1), now),
            Some(Reply::Done)
        );
        assert_eq!(
            both(&mut home, &mut backup, 2, put(2), now),
            Some(Reply::Done)
        );
        assert_eq!(
            both(&mut home, &mut backup, 3, put(3), now),
            Some(Reply::Full)
        );
        let get = Op::Get { wait: true };
        assert_eq!(
            both(&mut home, &mut backup, 4, get.clone(), now),
            Some(Reply::Item(vec![1]))
        );
        assert_eq!(home, backup);
        assert_eq!(home.seq, 3);
        // Retries (the answers were lost with a home) are applied once.
        assert_eq!(
            both(&mut backup, &mut home, 4, get, now),
            Some(Reply::Item(vec![1]))
        );
        assert_eq!(
            both(&mut backup, &mut home, 2, put(2), now),
            Some(Reply::Done)
        );
        assert_eq!(home, backup);
        assert_eq!(home.seq, 3);
    }

    #[test]
    fn a_retried_unget_puts_the_item_back_once() {
        let now = Instant::now();
        let mut q = PrimState::new(Kind::Queue { capacity: 4 }, 0);
        let mut deltas = Vec::new();
        let unget = Op::Unget { item: vec![9] };
        assert_eq!(
            q.operate(id(1), &unget, now, &mut deltas),
            Some(Reply::Done)
        );
        let get = Op::Get { wait: true };
        assert_eq!(
            q.operate(id(2), &get, now, &mut deltas),
            Some(Reply::Item(vec![9]))
        );
        assert_eq!(
            q.operate(id(1), &unget, now, &mut deltas),
            Some(Reply::Done)
        );
        assert_eq!(
            q.operate(id(3), &Op::Len, now, &mut deltas),
            Some(Reply::Count(0))
        );
    }

    #[test]
    fn leases_expire_and_tokens_only_grow_across_a_copy() {
        let now = Instant::now();
        let mut home = PrimState::new(Kind::Semaphore { permits: 1 }, 0);
        let mut backup = PrimState::new(Kind::Semaphore { permits: 1 }, 0);
        let acquire = Op::Acquire {
            lease_ms: Some(100),
            wait: true,
        };
        let first = both(&mut home, &mut backup, 1, acquire.clone(), now);
        assert_eq!(
            first,
            Some(Reply::Granted {
                token: 1,
                lease_ms: Some(100)
            })
        );
        assert_eq!(both(&mut home, &mut backup, 2, acquire.clone(), now), None);
        // The backup takes over with the lease still running, then it runs out.
        let mut new_home = PrimState::new(Kind::Event, 0);
        new_home.apply(&Delta::Snapshot(backup.snapshot(now)), now);
        let later = now + Duration::from_millis(150);
        let mut deltas = Vec::new();
        new_home.expire(later, &mut deltas);
        assert_eq!(deltas.len(), 1);
        let second = new_home.operate(id(2), &acquire, later, &mut deltas);
        assert!(matches!(second, Some(Reply::Granted { token: 2, .. })));
        // The stale holder can neither renew nor release.
        let renew = Op::Renew {
            token: 1,
            lease_ms: 100,
        };
        assert_eq!(
            new_home.operate(id(3), &renew, later, &mut deltas),
            Some(Reply::Expired)
        );
        assert_eq!(
            new_home.operate(id(4), &Op::Release { token: 1 }, later, &mut deltas),
            Some(Reply::Expired)
        );
        // A retried release of a released permit succeeds.
        let release = Op::Release { token: 2 };
        assert_eq!(
            new_home.operate(id(5), &release, later, &mut deltas),
            Some(Reply::Done)
        );
        assert_eq!(
            new_home.operate(id(5), &release, later, &mut deltas),
            Some(Reply::Done)
        );
    }

    #[test]
    fn a_fenced_set_refuses_an_older_token_and_a_gone_holder_loses_its_permit() {
        let now = Instant::now();
        let mut v = PrimState::new(Kind::Variable, 0);
        let mut deltas = Vec::new();
        let set = |fence| Op::Set {
            value: vec![1],
            fence: Some(fence),
        };
        assert_eq!(
            v.operate(id(1), &set(5), now, &mut deltas),
            Some(Reply::Version(1))
        );
        assert_eq!(
            v.operate(id(2), &set(4), now, &mut deltas),
            Some(Reply::Fenced { highest: 5 })
        );
        assert_eq!(
            v.operate(id(3), &set(5), now, &mut deltas),
            Some(Reply::Version(2))
        );

        let mut s = PrimState::new(Kind::Semaphore { permits: 1 }, 0);
        let acquire = Op::Acquire {
            lease_ms: None,
            wait: false,
        };
        assert!(matches!(
            s.operate(id(1), &acquire, now, &mut deltas),
            Some(Reply::Granted { .. })
        ));
        s.drop_holder(7, now, &mut deltas);
        assert_eq!(
            s.operate(id(2), &Op::Available, now, &mut deltas),
            Some(Reply::Count(1))
        );
        assert!(matches!(
            s.operate(id(3), &Op::Len, now, &mut deltas),
            Some(Reply::Refused(_))
        ));
    }
}
