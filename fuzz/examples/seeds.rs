//! Writes the seed corpora: small valid encodings of representative values of each decoded
//! type into `fuzz/corpus/<target>/seed-*`, and the hand-made `Failure::Input` chain nested
//! 100,000 deep (which must decode to an error). `cargo run --example seeds` (run.sh does).

use std::collections::VecDeque;
use std::fs;
use std::path::Path;

use peer_fuzz::wire::{
    ArgSpec, Batch, CallArgs, Body, Delta, Done, Failure, GraphEvent, Holder, Item, JobArg, JobSpec, JobTask,
    Kind, Moved, Op, OpId, PeerReport, PrimRequest, PrimState, Reply, Request, Response, Suspected,
    Taken, TaskKey, TaskSpec,
};
use serde::Serialize;

const KEY: TaskKey = TaskKey { owner: 1, seq: 2 };
const ID: OpId = OpId { peer: 3, seq: 4 };

/// `Failure::Input`'s variant index: postcard numbers variants by position.
const INPUT: u8 = 8;
/// `Failure::UnknownTask`'s.
const UNKNOWN_TASK: u8 = 1;

/// A `Failure::Input` whose cause is an `Input` ... `depth` deep, ending in `UnknownTask`,
/// encoded by hand (the wire type cannot hold one).
fn nested_failure(depth: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(depth * 3 + 1);
    for _ in 0..depth {
        bytes.extend([INPUT, KEY.owner as u8, KEY.seq as u8]);
    }
    bytes.push(UNKNOWN_TASK);
    bytes
}

/// `Request::Notify` with one done task whose failure is `nested_failure(depth)`.
fn nested_notify(depth: usize) -> Vec<u8> {
    // Notify, one done: its key, Done::Failed.
    let mut bytes = vec![2, 1, KEY.owner as u8, KEY.seq as u8, 1];
    bytes.extend(nested_failure(depth));
    bytes.extend([0, 0]); // no releases, no moves
    bytes
}

/// A gossip batch of one `GraphEvent::Published` of `Err(nested_failure(depth))`.
fn nested_batch(depth: usize) -> Vec<u8> {
    // from 1, number 1, one event: Published, name "out", Err.
    let mut bytes = vec![1, 1, 1, 7, 3, b'o', b'u', b't', 1];
    bytes.extend(nested_failure(depth));
    bytes
}

fn failure() -> Failure {
    Failure::Input {
        task: KEY,
        cause: Box::new(Failure::Unfetched {
            input: KEY,
            holder: 9,
            why: "gone".into(),
        }),
    }
}

fn failures() -> Vec<Failure> {
    vec![
        Failure::Panicked("boom".into()),
        Failure::UnknownTask,
        Failure::SignatureMismatch("fn(u32) -> u32".into()),
        Failure::BadArguments("eof".into()),
        Failure::BadResult("eof".into()),
        Failure::InputLost("lost".into()),
        Failure::NotServed("shell".into()),
        failure(),
    ]
}

fn job() -> JobSpec {
    JobSpec {
        name: "report".into(),
        tasks: vec![
            JobTask {
                name: "load".into(),
                fingerprint: 0xfeed,
                args: vec![JobArg::Value(vec![1, 2, 3])],
            },
            JobTask {
                name: "sum".into(),
                fingerprint: 0xbeef,
                args: vec![JobArg::Task(0), JobArg::Value(Vec::new())],
            },
        ],
        output: 1,
    }
}

fn holder() -> Holder {
    Holder {
        token: 7,
        op: ID,
        lease_ms: Some(1000),
        left_ms: Some(400),
        expires: None,
    }
}

fn item() -> Item {
    Item {
        id: ID,
        bytes: b"item".to_vec(),
    }
}

fn prim_states() -> Vec<PrimState> {
    vec![
        PrimState {
            seq: 5,
            body: Body::Semaphore {
                permits: 2,
                last_token: 7,
                holders: vec![holder()],
                released: VecDeque::from([3, 4]),
            },
        },
        PrimState {
            seq: 6,
            body: Body::Queue {
                capacity: 8,
                items: VecDeque::from([item()]),
                closed: false,
                taken: VecDeque::from([Taken {
                    by: ID,
                    item: item(),
                }]),
            },
        },
        PrimState {
            seq: 1,
            body: Body::Variable {
                value: Some(b"v".to_vec()),
                version: 3,
                fence: Some(2),
            },
        },
        PrimState {
            seq: 0,
            body: Body::Event { set: true },
        },
    ]
}

fn ops() -> Vec<Op> {
    vec![
        Op::Acquire {
            lease_ms: Some(100),
            wait: true,
        },
        Op::Release { token: 1 },
        Op::Renew {
            token: 1,
            lease_ms: 100,
        },
        Op::IsHeld { token: 1 },
        Op::Available,
        Op::Put {
            item: b"x".to_vec(),
            wait: false,
        },
        Op::Get { wait: true },
        Op::Unget {
            item: b"x".to_vec(),
        },
        Op::Close,
        Op::Len,
        Op::Set {
            value: b"v".to_vec(),
            fence: Some(3),
        },
        Op::Read,
        Op::Changed { seen: 2 },
        Op::Flag(true),
        Op::IsSet,
        Op::Wait,
        Op::Cancel { seq: 9 },
    ]
}

fn requests() -> Vec<Request> {
    let spec = TaskSpec {
        key: KEY,
        name: "sum".into(),
        fingerprint: 0xbeef,
        args: vec![
            ArgSpec::Inline(vec![1, 2]),
            ArgSpec::Fetch {
                task: KEY,
                holder: 5,
            },
        ]
        .into(),
        calls: vec![CallArgs(vec![0, 1]), CallArgs(vec![1, 0])].into(),
        hops: 1,
    };
    let kinds = [
        Kind::Semaphore { permits: 1 },
        Kind::Queue { capacity: 4 },
        Kind::Variable,
        Kind::Event,
    ];
    let mut requests = vec![
        Request::Steal {
            max: 4,
            can_run: vec![1, 2],
        },
        Request::Fetch { task: KEY },
        Request::Notify {
            done: vec![
                (
                    KEY,
                    Done::Value {
                        size: 2,
                        inline: Some(vec![1, 2]),
                    },
                ),
                (
                    KEY,
                    Done::Value {
                        size: 1 << 20,
                        inline: None,
                    },
                ),
                (KEY, Done::Failed(failure())),
            ],
            release: vec![KEY],
            moved: vec![Moved {
                task: KEY,
                to: 6,
                hops: 2,
            }],
        },
        Request::Lifeline { can_run: vec![3] },
        Request::Push { tasks: vec![spec] },
        Request::Holding { tasks: vec![KEY] },
        Request::Published { name: "out".into() },
        Request::Replicate {
            key: "lock/db".into(),
            base: 3,
            deltas: vec![
                Delta::Snapshot(prim_states().remove(0)),
                Delta::Grant(holder()),
                Delta::Ungrant {
                    token: 7,
                    released: true,
                },
                Delta::Renew {
                    token: 7,
                    lease_ms: 50,
                },
                Delta::Push {
                    item: item(),
                    front: true,
                },
                Delta::Pop { by: ID },
                Delta::Close,
                Delta::Set {
                    value: b"v".to_vec(),
                    fence: None,
                },
                Delta::Flag(false),
            ],
        },
        Request::Claim {
            key: "queue/jobs".into(),
        },
        Request::Report,
    ];
    for (i, op) in ops().into_iter().enumerate() {
        requests.push(Request::Prim(PrimRequest {
            key: "lock/db".into(),
            kind: kinds[i % kinds.len()],
            id: ID,
            op,
        }));
    }
    for failure in failures() {
        requests.push(Request::Notify {
            done: vec![(KEY, Done::Failed(failure))],
            release: Vec::new(),
            moved: Vec::new(),
        });
    }
    requests
}

fn replies() -> Vec<Reply> {
    vec![
        Reply::Granted {
            token: 1,
            lease_ms: Some(10),
        },
        Reply::NotGranted,
        Reply::Done,
        Reply::Expired,
        Reply::Bool(true),
        Reply::Count(3),
        Reply::Item(b"i".to_vec()),
        Reply::Empty,
        Reply::Full,
        Reply::Closed,
        Reply::Value(Some((b"v".to_vec(), 2))),
        Reply::Version(4),
        Reply::Fenced { highest: 5 },
        Reply::Again,
        Reply::Cancelled,
        Reply::NotHome { home: 6 },
        Reply::Refused("no".into()),
    ]
}

fn responses() -> Vec<Response> {
    let mut responses = vec![
        Response::Stolen {
            tasks: vec![TaskSpec {
                key: KEY,
                name: "sum".into(),
                fingerprint: 1,
                args: vec![ArgSpec::Inline(Vec::new())].into(),
                hops: 0,
                calls: Default::default(),
            }],
            ready: 3,
        },
        Response::Value(vec![1, 2, 3]),
        Response::Missing,
        Response::Ack,
        Response::Refused("not a member".into()),
        Response::NotHeld(vec![KEY]),
        Response::Published(None),
        Response::Published(Some(Ok(vec![4]))),
        Response::Published(Some(Err(failure()))),
        Response::Claimed(None),
        Response::Report(PeerReport {
            version: "0.1.0".into(),
            workers: 2,
            ready: 3,
            running: 1,
            owned: 4,
            ran: 10,
            peers: 2,
            hosted: 1,
            draining: false,
            serves: vec![0xbeef, 0xfeed],
            local: 5,
            suspected: vec![Suspected {
                peer: 9,
                ago_us: 1_500,
                reason: "connection closed".into(),
                requeued: 3,
            }],
        }),
    ];
    responses.extend(
        prim_states()
            .into_iter()
            .map(|s| Response::Claimed(Some(s))),
    );
    responses.extend(replies().into_iter().map(Response::Prim));
    responses
}

fn batches() -> Vec<Batch> {
    vec![
        Batch {
            from: 1,
            number: 2,
            events: vec![
                GraphEvent::Load(3),
                GraphEvent::Submitted(KEY),
                GraphEvent::Finished { task: KEY, size: 8 },
                GraphEvent::Failed(KEY),
                GraphEvent::Released(KEY),
                GraphEvent::Detached(job()),
                GraphEvent::Topic {
                    key: "topic/x".into(),
                    value: vec![1],
                },
                GraphEvent::Published {
                    name: "out".into(),
                    value: Ok(vec![2]),
                },
                GraphEvent::Published {
                    name: "out".into(),
                    value: Err(failure()),
                },
            ],
        },
        Batch {
            from: u64::MAX,
            number: 0,
            events: Vec::new(),
        },
    ]
}

fn write<T: Serialize>(dir: &Path, values: &[T]) {
    for (i, value) in values.iter().enumerate() {
        let bytes = postcard::to_stdvec(value).expect("encodes");
        fs::write(dir.join(format!("seed-{i:02}")), bytes).unwrap();
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let dir = |target: &str| {
        let dir = root.join(target);
        fs::create_dir_all(&dir).unwrap();
        dir
    };

    // The hand-made chains must be what postcard makes of the same value one deep.
    let one_deep = Request::Notify {
        done: vec![(
            KEY,
            Done::Failed(Failure::Input {
                task: KEY,
                cause: Box::new(Failure::UnknownTask),
            }),
        )],
        release: Vec::new(),
        moved: Vec::new(),
    };
    assert_eq!(postcard::to_stdvec(&one_deep).unwrap(), nested_notify(1));
    let one_deep = Batch {
        from: 1,
        number: 1,
        events: vec![GraphEvent::Published {
            name: "out".into(),
            value: Err(Failure::Input {
                task: KEY,
                cause: Box::new(Failure::UnknownTask),
            }),
        }],
    };
    assert_eq!(postcard::to_stdvec(&one_deep).unwrap(), nested_batch(1));

    write(&dir("request"), &requests());
    write(&dir("response"), &responses());
    write(&dir("batch"), &batches());
    write(&dir("job_spec"), &[job()]);
    write(&dir("prim_state"), &prim_states());

    let frames = dir("frame");
    for (i, request) in requests().iter().enumerate().step_by(4) {
        fs::write(
            frames.join(format!("seed-req-{i:02}")),
            peer_fuzz::frame(request),
        )
        .unwrap();
    }
    for (i, response) in responses().iter().enumerate().step_by(4) {
        fs::write(
            frames.join(format!("seed-resp-{i:02}")),
            peer_fuzz::frame(response),
        )
        .unwrap();
    }
    // Two frames in a row, as on a stream.
    let mut two = peer_fuzz::frame(&Request::Report);
    two.extend(peer_fuzz::frame(&Response::Ack));
    fs::write(frames.join("seed-two"), two).unwrap();

    // Nested twice (the smallest that must fail) and 100,000 deep (about 300 KB).
    for depth in [2, 100_000] {
        let notify = nested_notify(depth);
        let batch = nested_batch(depth);
        assert!(postcard::from_bytes::<Request>(&notify).is_err());
        assert!(postcard::from_bytes::<Batch>(&batch).is_err());
        let mut framed = (notify.len() as u32).to_be_bytes().to_vec();
        framed.extend(&notify);
        fs::write(dir("request").join(format!("seed-nested-{depth}")), &notify).unwrap();
        fs::write(dir("batch").join(format!("seed-nested-{depth}")), &batch).unwrap();
        fs::write(frames.join(format!("seed-nested-{depth}")), framed).unwrap();
    }
    println!("seeds written under {}", root.display());
}
