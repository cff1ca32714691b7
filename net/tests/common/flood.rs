//! A raw member's flood of one peer, for hostile-peer tests of a peer under load: requests
//! answered at once and gets that wait at a home, and signed gossip batches, from threads
//! of their own until dropped. Also a panic hook that records every panic of the process:
//! a panic of a peer's loop thread is swallowed by the join at shutdown.

#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use peer_core::ext::keys;
use peer_net::PeerId;
use peer_net::wire::{Batch, GraphEvent, Kind, Op, OpId, PrimRequest, Request, TaskKey};

use super::raw::{RawPeer, encoded, number};

/// How hard a [`Flood`] pushes.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Requests answered at once kept in flight on the connection.
    pub in_flight: usize,
    /// Events in each gossip batch.
    pub events: u64,
    /// Pause between two batches.
    pub pause: Duration,
}

/// About 1,000 batches a second of 256 events (a peer's default gossip budget) and 128
/// requests in flight.
pub const HEAVY: Rate = Rate {
    in_flight: 128,
    events: 256,
    pause: Duration::from_millis(1),
};

/// About 200 batches a second of 32 events and 16 requests in flight: load that leaves a
/// debug build on two cores room for its own calls.
pub const LIGHT: Rate = Rate {
    in_flight: 16,
    events: 32,
    pause: Duration::from_millis(5),
};

/// A raw member flooding one peer until dropped.
pub struct Flood {
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    batches: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Flood {
    /// `m` floods `target` with requests, and everyone with gossip batches whose events
    /// include values on `topic` (of `u64`s).
    pub fn start(m: &Arc<RawPeer>, target: PeerId, topic: &str, rate: Rate) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let (requests, batches) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let ask = std::thread::spawn({
            let (m, stop, requests) = (m.clone(), stop.clone(), requests.clone());
            move || ask(&m, target, rate, &stop, &requests)
        });
        let gossip = std::thread::spawn({
            let (m, stop, batches) = (m.clone(), stop.clone(), batches.clone());
            let key = keys::topic::<u64>(topic);
            move || gossip(&m, &key, rate, &stop, &batches)
        });
        Flood {
            stop,
            requests,
            batches,
            threads: vec![ask, gossip],
        }
    }

    /// Requests sent and batches published so far.
    pub fn sent(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.batches.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Requests answered at once, `rate.in_flight` at most; and one in 50 a get that waits at
/// the home of an empty queue (held there until its long poll), 64 of them at most.
fn ask(m: &RawPeer, target: PeerId, rate: Rate, stop: &AtomicBool, requests: &AtomicU64) {
    let (mut in_flight, mut held) = (VecDeque::new(), Vec::new());
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        in_flight.retain(|r: &Receiver<_>| r.try_recv().is_err());
        held.retain(|r: &Receiver<_>| r.try_recv().is_err());
        if i.is_multiple_of(50) {
            if held.len() < 64 {
                held.push(m.send_bytes(target, encoded(&waiting_get(m, i))));
                requests.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        if in_flight.len() >= rate.in_flight {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let request = request(m, number(&target), i);
        in_flight.push_back(m.send_bytes(target, encoded(&request)));
        requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// Batches of loads, topic values, releases of tasks M does not own and submissions it
/// never made.
fn gossip(m: &RawPeer, key: &str, rate: Rate, stop: &AtomicBool, batches: &AtomicU64) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let events = (0..rate.events)
            .map(|j| match j % 4 {
                0 => GraphEvent::Load(u32::MAX),
                1 => GraphEvent::Topic {
                    key: key.to_string(),
                    value: postcard::to_allocvec(&(n * 1000 + j)).unwrap(),
                },
                2 => GraphEvent::Released(TaskKey { owner: 1, seq: j }),
                _ => GraphEvent::Submitted(TaskKey {
                    owner: m.number,
                    seq: n * 1000 + j,
                }),
            })
            .collect();
        let batch = Batch {
            from: m.number,
            number: n,
            events,
        };
        if m.publish_bytes(postcard::to_allocvec(&batch).unwrap())
            .is_ok()
        {
            batches.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(rate.pause);
    }
}

/// The `i`th request of a flood: reports, audits, steals, fetches, lookups and reads of a
/// few variables, all answered at once.
fn request(m: &RawPeer, target: u64, i: u64) -> Request {
    match i % 6 {
        0 => Request::Report,
        1 => Request::Holding {
            tasks: (0..64)
                .map(|seq| TaskKey {
                    owner: m.number,
                    seq,
                })
                .collect(),
        },
        2 => Request::Steal {
            max: 64,
            can_run: Vec::new(),
        },
        3 => Request::Fetch {
            task: TaskKey {
                owner: target,
                seq: i,
            },
        },
        4 => Request::Published {
            name: format!("flood-{}", i % 16),
        },
        _ => Request::Prim(PrimRequest {
            key: keys::variable::<u64>(&format!("flood-{}", i % 16)),
            kind: Kind::Variable,
            id: OpId {
                peer: m.number,
                seq: i,
            },
            op: Op::Read,
        }),
    }
}

/// A get that waits at the home of an empty queue, if the target is its home.
fn waiting_get(m: &RawPeer, i: u64) -> Request {
    Request::Prim(PrimRequest {
        key: keys::queue::<u64>("flood-empty"),
        kind: Kind::Queue { capacity: 4 },
        id: OpId {
            peer: m.number,
            seq: i,
        },
        op: Op::Get { wait: true },
    })
}

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records every panic of every thread of the process from now on (and prints it as the
/// default hook does).
pub fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("<unnamed>").to_string();
            PANICS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(format!("{name}: {info}"));
            default(info);
        }));
    });
}

/// Panics if any thread panicked since [`watch_panics`].
pub fn assert_no_panics() {
    let panics = PANICS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(panics.is_empty(), "threads panicked: {panics:#?}");
}

/// Threads of this process named `name` (Linux: `/proc/self/task/*/comm`).
pub fn threads_named(name: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}
