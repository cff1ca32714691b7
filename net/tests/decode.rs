//! Property tests of every decoder of network input: requests, responses, gossip batches,
//! job specs, primitive states and the length-prefixed frames they travel in.
//!
//! - arbitrary bytes, and valid encodings with bytes changed or cut, never panic;
//! - every variant of every wire type survives an encode/decode round trip;
//! - a `Failure::Input` chain nested 100,000 deep, in a request frame and in a gossip
//!   batch, is an error on a 256 KiB stack, not a stack overflow;
//! - every input the fuzz targets found crashing (`fuzz/crashes/<target>/`) decodes without
//!   a panic, and round trips if it decodes.
//!
//! The AFL++ targets in `fuzz/` run the same checks on inputs they evolve.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::path::Path;

use peer_net::wire::{
    ArgSpec, Batch, Body, CallArgs, Delta, Done, Failure, GraphEvent, Holder, Item, JobArg,
    JobSpec, JobTask, Kind, Moved, Op, OpId, PeerReport, PrimRequest, PrimState, Reply, Request,
    Response, Suspected, Taken, TaskKey, TaskSpec,
};
use proptest::collection::{vec, vec_deque};
use proptest::option;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

// ---------------------------------------------------------------------------------------
// The checks (the fuzz targets' too).

/// Decodes `bytes` as a `T` as a peer does; when it decodes, the value must encode, decode
/// to an equal value, and encode to the same bytes again. Returns whether it decoded.
fn check<T>(bytes: &[u8]) -> bool
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok((value, rest)) = postcard::take_from_bytes::<T>(bytes) else {
        return false;
    };
    let encoded = postcard::to_stdvec(&value).expect("a decoded value encodes");
    assert!(
        encoded.len() <= bytes.len() - rest.len(),
        "a value longer than its input: {value:?}"
    );
    let again: T = postcard::from_bytes(&encoded).expect("a re-encoded value decodes");
    assert_eq!(again, value);
    assert_eq!(postcard::to_stdvec(&again).unwrap(), encoded);
    true
}

/// The frame reader's steps (4-byte big-endian length, refused over `max` before reading,
/// a body shorter than announced is an error): the bodies of the frames that `stream`
/// holds, up to the first error.
fn frames(mut stream: &[u8], max: usize) -> Vec<&[u8]> {
    let mut bodies = Vec::new();
    while let Some((prefix, rest)) = stream.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*prefix) as usize;
        if len > max || rest.len() < len {
            break;
        }
        let (body, rest) = rest.split_at(len);
        bodies.push(body);
        stream = rest;
    }
    bodies
}

fn frame<T: Serialize>(value: &T) -> Vec<u8> {
    let body = postcard::to_stdvec(value).unwrap();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

/// Every decoder, on the same bytes.
fn check_all(bytes: &[u8]) {
    check::<Request>(bytes);
    check::<Response>(bytes);
    check::<Batch>(bytes);
    check::<JobSpec>(bytes);
    check::<PrimState>(bytes);
    for body in frames(bytes, 64 << 20) {
        check::<Request>(body);
        check::<Response>(body);
    }
}

/// Runs `f` on a thread with a 256 KiB stack: deep recursion overflows it (and aborts the
/// test binary) long before 100,000 levels.
fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Strategies: every variant of every wire type.

fn key() -> impl Strategy<Value = TaskKey> {
    (any::<u64>(), any::<u64>()).prop_map(|(owner, seq)| TaskKey { owner, seq })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..24)
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn op_id() -> impl Strategy<Value = OpId> {
    (any::<u64>(), any::<u64>()).prop_map(|(peer, seq)| OpId { peer, seq })
}

/// A failure that is not an input's: what `Failure::Input`'s cause can be.
fn first_failure() -> impl Strategy<Value = Failure> {
    prop_oneof![
        text().prop_map(Failure::Panicked),
        Just(Failure::UnknownTask),
        text().prop_map(Failure::SignatureMismatch),
        text().prop_map(Failure::BadArguments),
        text().prop_map(Failure::BadResult),
        text().prop_map(Failure::InputLost),
        (key(), any::<u64>(), text()).prop_map(|(input, holder, why)| Failure::Unfetched {
            input,
            holder,
            why
        }),
        text().prop_map(Failure::NotServed),
    ]
}

fn failure() -> impl Strategy<Value = Failure> {
    prop_oneof![
        first_failure(),
        (key(), first_failure()).prop_map(|(task, cause)| Failure::Input {
            task,
            cause: Box::new(cause),
        }),
    ]
}

fn done() -> impl Strategy<Value = Done> {
    prop_oneof![
        (any::<u64>(), option::of(bytes())).prop_map(|(size, inline)| Done::Value { size, inline }),
        failure().prop_map(Done::Failed),
    ]
}

fn arg_spec() -> impl Strategy<Value = ArgSpec> {
    prop_oneof![
        bytes().prop_map(ArgSpec::Inline),
        (key(), any::<u64>()).prop_map(|(task, holder)| ArgSpec::Fetch { task, holder }),
    ]
}

fn task_spec() -> impl Strategy<Value = TaskSpec> {
    (
        key(),
        text(),
        any::<u64>(),
        vec(arg_spec(), 0..4),
        vec(vec(any::<u16>(), 0..4).prop_map(CallArgs), 0..3),
        any::<u32>(),
    )
        .prop_map(|(key, name, fingerprint, args, calls, hops)| TaskSpec {
            key,
            name: name.into(),
            fingerprint,
            args: args.into(),
            calls: calls.into(),
            hops,
        })
}

fn moved() -> impl Strategy<Value = Moved> {
    (key(), any::<u64>(), any::<u32>()).prop_map(|(task, to, hops)| Moved { task, to, hops })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        any::<u32>().prop_map(|permits| Kind::Semaphore { permits }),
        any::<u32>().prop_map(|capacity| Kind::Queue { capacity }),
        Just(Kind::Variable),
        Just(Kind::Event),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (option::of(any::<u64>()), any::<bool>())
            .prop_map(|(lease_ms, wait)| Op::Acquire { lease_ms, wait }),
        any::<u64>().prop_map(|token| Op::Release { token }),
        (any::<u64>(), any::<u64>()).prop_map(|(token, lease_ms)| Op::Renew { token, lease_ms }),
        any::<u64>().prop_map(|token| Op::IsHeld { token }),
        Just(Op::Available),
        (bytes(), any::<bool>()).prop_map(|(item, wait)| Op::Put { item, wait }),
        any::<bool>().prop_map(|wait| Op::Get { wait }),
        bytes().prop_map(|item| Op::Unget { item }),
        Just(Op::Close),
        Just(Op::Len),
        (bytes(), option::of(any::<u64>())).prop_map(|(value, fence)| Op::Set { value, fence }),
        Just(Op::Read),
        any::<u64>().prop_map(|seen| Op::Changed { seen }),
        any::<bool>().prop_map(Op::Flag),
        Just(Op::IsSet),
        Just(Op::Wait),
        any::<u64>().prop_map(|seq| Op::Cancel { seq }),
    ]
}

fn prim_request() -> impl Strategy<Value = PrimRequest> {
    (text(), kind(), op_id(), op()).prop_map(|(key, kind, id, op)| PrimRequest {
        key,
        kind,
        id,
        op,
    })
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (any::<u64>(), option::of(any::<u64>()))
            .prop_map(|(token, lease_ms)| Reply::Granted { token, lease_ms }),
        Just(Reply::NotGranted),
        Just(Reply::Done),
        Just(Reply::Expired),
        any::<bool>().prop_map(Reply::Bool),
        any::<u64>().prop_map(Reply::Count),
        bytes().prop_map(Reply::Item),
        Just(Reply::Empty),
        Just(Reply::Full),
        Just(Reply::Closed),
        option::of((bytes(), any::<u64>())).prop_map(Reply::Value),
        any::<u64>().prop_map(Reply::Version),
        any::<u64>().prop_map(|highest| Reply::Fenced { highest }),
        Just(Reply::Again),
        Just(Reply::Cancelled),
        any::<u64>().prop_map(|home| Reply::NotHome { home }),
        text().prop_map(Reply::Refused),
    ]
}

fn holder() -> impl Strategy<Value = Holder> {
    (
        any::<u64>(),
        op_id(),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
    )
        .prop_map(|(token, op, lease_ms, left_ms)| Holder {
            token,
            op,
            lease_ms,
            left_ms,
            // Not sent: each peer times leases by its own clock.
            expires: None,
        })
}

fn item() -> impl Strategy<Value = Item> {
    (op_id(), bytes()).prop_map(|(id, bytes)| Item { id, bytes })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u64>(),
            vec(holder(), 0..3),
            vec_deque(any::<u64>(), 0..4)
        )
            .prop_map(|(permits, last_token, holders, released)| Body::Semaphore {
                permits,
                last_token,
                holders,
                released,
            }),
        (
            any::<u32>(),
            vec_deque(item(), 0..3),
            any::<bool>(),
            vec_deque(
                (op_id(), item()).prop_map(|(by, item)| Taken { by, item }),
                0..3
            ),
        )
            .prop_map(|(capacity, items, closed, taken)| Body::Queue {
                capacity,
                items,
                closed,
                taken,
            }),
        (option::of(bytes()), any::<u64>(), option::of(any::<u64>())).prop_map(
            |(value, version, fence)| Body::Variable {
                value,
                version,
                fence,
            }
        ),
        any::<bool>().prop_map(|set| Body::Event { set }),
    ]
}

fn prim_state() -> impl Strategy<Value = PrimState> {
    (any::<u64>(), body()).prop_map(|(seq, body)| PrimState { seq, body })
}

fn delta() -> impl Strategy<Value = Delta> {
    prop_oneof![
        prim_state().prop_map(Delta::Snapshot),
        holder().prop_map(Delta::Grant),
        (any::<u64>(), any::<bool>())
            .prop_map(|(token, released)| Delta::Ungrant { token, released }),
        (any::<u64>(), any::<u64>()).prop_map(|(token, lease_ms)| Delta::Renew { token, lease_ms }),
        (item(), any::<bool>()).prop_map(|(item, front)| Delta::Push { item, front }),
        op_id().prop_map(|by| Delta::Pop { by }),
        Just(Delta::Close),
        (bytes(), option::of(any::<u64>())).prop_map(|(value, fence)| Delta::Set { value, fence }),
        any::<bool>().prop_map(Delta::Flag),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u32>(), vec(any::<u64>(), 0..6))
            .prop_map(|(max, can_run)| Request::Steal { max, can_run }),
        key().prop_map(|task| Request::Fetch { task }),
        (
            vec((key(), done()), 0..4),
            vec(key(), 0..4),
            vec(moved(), 0..4)
        )
            .prop_map(|(done, release, moved)| Request::Notify {
                done,
                release,
                moved
            }),
        vec(any::<u64>(), 0..6).prop_map(|can_run| Request::Lifeline { can_run }),
        vec(task_spec(), 0..3).prop_map(|tasks| Request::Push { tasks }),
        vec(key(), 0..6).prop_map(|tasks| Request::Holding { tasks }),
        text().prop_map(|name| Request::Published { name }),
        prim_request().prop_map(Request::Prim),
        (text(), any::<u64>(), vec(delta(), 0..5))
            .prop_map(|(key, base, deltas)| Request::Replicate { key, base, deltas }),
        text().prop_map(|key| Request::Claim { key }),
        Just(Request::Report),
    ]
}

fn peer_report() -> impl Strategy<Value = PeerReport> {
    (
        text(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        vec(any::<u64>(), 0..6),
        any::<u64>(),
        vec(
            (any::<u64>(), any::<u64>(), ".{0,8}", any::<u64>()).prop_map(
                |(peer, ago_us, reason, requeued)| Suspected {
                    peer,
                    ago_us,
                    reason,
                    requeued,
                },
            ),
            0..3,
        ),
    )
        .prop_map(
            |(
                version,
                workers,
                ready,
                running,
                owned,
                ran,
                peers,
                hosted,
                draining,
                serves,
                local,
                suspected,
            )| {
                PeerReport {
                    version,
                    workers,
                    ready,
                    running,
                    owned,
                    ran,
                    peers,
                    hosted,
                    draining,
                    serves,
                    local,
                    suspected,
                }
            },
        )
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (vec(task_spec(), 0..3), any::<u32>())
            .prop_map(|(tasks, ready)| Response::Stolen { tasks, ready }),
        bytes().prop_map(Response::Value),
        Just(Response::Missing),
        Just(Response::Ack),
        text().prop_map(Response::Refused),
        vec(key(), 0..6).prop_map(Response::NotHeld),
        option::of(prop_oneof![bytes().prop_map(Ok), failure().prop_map(Err)])
            .prop_map(Response::Published),
        reply().prop_map(Response::Prim),
        option::of(prim_state()).prop_map(Response::Claimed),
        peer_report().prop_map(Response::Report),
    ]
}

fn job_spec() -> impl Strategy<Value = JobSpec> {
    let arg = prop_oneof![
        bytes().prop_map(JobArg::Value),
        any::<u32>().prop_map(JobArg::Task)
    ];
    let task =
        (text(), any::<u64>(), vec(arg, 0..4)).prop_map(|(name, fingerprint, args)| JobTask {
            name,
            fingerprint,
            args,
        });
    (text(), vec(task, 0..4), any::<u32>()).prop_map(|(name, tasks, output)| JobSpec {
        name,
        tasks,
        output,
    })
}

fn graph_event() -> impl Strategy<Value = GraphEvent> {
    prop_oneof![
        any::<u32>().prop_map(GraphEvent::Load),
        key().prop_map(GraphEvent::Submitted),
        (key(), any::<u64>()).prop_map(|(task, size)| GraphEvent::Finished { task, size }),
        key().prop_map(GraphEvent::Failed),
        key().prop_map(GraphEvent::Released),
        job_spec().prop_map(GraphEvent::Detached),
        (text(), bytes()).prop_map(|(key, value)| GraphEvent::Topic { key, value }),
        (
            text(),
            prop_oneof![bytes().prop_map(Ok), failure().prop_map(Err)]
        )
            .prop_map(|(name, value)| GraphEvent::Published { name, value }),
    ]
}

fn batch() -> impl Strategy<Value = Batch> {
    (any::<u64>(), any::<u64>(), vec(graph_event(), 0..6)).prop_map(|(from, number, events)| {
        Batch {
            from,
            number,
            events,
        }
    })
}

/// A valid encoding with some bytes changed, cut short, or grown: the inputs a decoder
/// meets from a buggy or hostile peer, nearer its real paths than random bytes.
fn mutated(encoding: Vec<u8>, edits: Vec<(usize, u8)>, cut: Option<usize>) -> Vec<u8> {
    let mut bytes = encoding;
    for (at, byte) in edits {
        if !bytes.is_empty() {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes
}

fn edits() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<usize>)> {
    (
        vec((any::<usize>(), any::<u8>()), 0..4),
        option::of(any::<usize>()),
    )
}

/// Round trips `value`, alone and in a frame.
fn round_trips<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = postcard::to_stdvec(value).unwrap();
    prop_assert_eq!(&postcard::from_bytes::<T>(&bytes).unwrap(), value);
    prop_assert!(check::<T>(&bytes));
    let framed = frame(value);
    let bodies = frames(&framed, bytes.len());
    prop_assert_eq!(bodies, vec![&bytes[..]]);
    prop_assert!(
        frames(&framed, bytes.len().saturating_sub(1)).is_empty() || bytes.is_empty(),
        "a frame over the limit is refused"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        check_all(&bytes);
    }

    #[test]
    fn requests_round_trip(value in request()) {
        round_trips(&value)?;
    }

    #[test]
    fn responses_round_trip(value in response()) {
        round_trips(&value)?;
    }

    #[test]
    fn batches_round_trip(value in batch()) {
        round_trips(&value)?;
    }

    #[test]
    fn job_specs_round_trip(value in job_spec()) {
        round_trips(&value)?;
    }

    #[test]
    fn prim_states_round_trip(value in prim_state()) {
        round_trips(&value)?;
    }

    #[test]
    fn changed_requests_never_panic(value in request(), (edits, cut) in edits()) {
        let bytes = mutated(postcard::to_stdvec(&value).unwrap(), edits, cut);
        check_all(&bytes);
    }

    #[test]
    fn changed_responses_never_panic(value in response(), (edits, cut) in edits()) {
        let bytes = mutated(postcard::to_stdvec(&value).unwrap(), edits, cut);
        check_all(&bytes);
    }

    #[test]
    fn changed_batches_never_panic(value in batch(), (edits, cut) in edits()) {
        let bytes = mutated(postcard::to_stdvec(&value).unwrap(), edits, cut);
        check_all(&bytes);
    }

    #[test]
    fn changed_job_specs_never_panic(value in job_spec(), (edits, cut) in edits()) {
        let bytes = mutated(postcard::to_stdvec(&value).unwrap(), edits, cut);
        check::<JobSpec>(&bytes);
    }

    #[test]
    fn changed_prim_states_never_panic(value in prim_state(), (edits, cut) in edits()) {
        let bytes = mutated(postcard::to_stdvec(&value).unwrap(), edits, cut);
        check::<PrimState>(&bytes);
    }

    #[test]
    fn changed_frames_never_panic(value in request(), (edits, cut) in edits()) {
        let bytes = mutated(frame(&value), edits, cut);
        check_all(&bytes);
    }
}

// ---------------------------------------------------------------------------------------
// The nested-failure regression (issue 17): one ~300 KB message aborted every peer it
// reached by overflowing the stack.

const KEY: TaskKey = TaskKey { owner: 1, seq: 2 };
const DEPTH: usize = 100_000;

/// `Failure::Input` with an `Input` cause ... `depth` deep, ending in `UnknownTask`,
/// encoded by hand: its variant index (8), the task key's two varints, repeated.
fn nested_failure(depth: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(depth * 3 + 1);
    for _ in 0..depth {
        bytes.extend([8, KEY.owner as u8, KEY.seq as u8]);
    }
    bytes.push(1); // Failure::UnknownTask
    bytes
}

/// `Request::Notify` (2) with one done task (its key), `Done::Failed` (1) of the chain,
/// no releases and no moves.
fn nested_notify(depth: usize) -> Vec<u8> {
    let mut bytes = vec![2, 1, KEY.owner as u8, KEY.seq as u8, 1];
    bytes.extend(nested_failure(depth));
    bytes.extend([0, 0]);
    bytes
}

/// A batch from 1, number 1, of one `GraphEvent::Published` (7) named "out" whose value is
/// `Err` (1) of the chain.
fn nested_batch(depth: usize) -> Vec<u8> {
    let mut bytes = vec![1, 1, 1, 7, 3, b'o', b'u', b't', 1];
    bytes.extend(nested_failure(depth));
    bytes
}

fn input_failure() -> Failure {
    Failure::Input {
        task: KEY,
        cause: Box::new(Failure::UnknownTask),
    }
}

#[test]
fn the_hand_made_chain_is_postcards_encoding_one_deep() {
    let notify = Request::Notify {
        done: vec![(KEY, Done::Failed(input_failure()))],
        release: Vec::new(),
        moved: Vec::new(),
    };
    assert_eq!(postcard::to_stdvec(&notify).unwrap(), nested_notify(1));
    assert_eq!(
        postcard::from_bytes::<Request>(&nested_notify(1)).unwrap(),
        notify
    );
    let batch = Batch {
        from: 1,
        number: 1,
        events: vec![GraphEvent::Published {
            name: "out".into(),
            value: Err(input_failure()),
        }],
    };
    assert_eq!(postcard::to_stdvec(&batch).unwrap(), nested_batch(1));
    assert_eq!(
        postcard::from_bytes::<Batch>(&nested_batch(1)).unwrap(),
        batch
    );
}

#[test]
fn a_request_frame_nested_100000_deep_is_an_error_not_a_stack_overflow() {
    let framed = {
        let body = nested_notify(DEPTH);
        let mut framed = (body.len() as u32).to_be_bytes().to_vec();
        framed.extend(body);
        framed
    };
    assert!(framed.len() > 300_000);
    on_small_stack(move || {
        let bodies = frames(&framed, 64 << 20);
        assert_eq!(bodies.len(), 1, "the frame itself is well formed");
        let error = postcard::from_bytes::<Request>(bodies[0]).unwrap_err();
        // The other side of a stream reads the same bytes as a response (`Missing`, its
        // third variant, followed by bytes it ignores): no overflow there either.
        check::<Response>(bodies[0]);
        error
    });
    // Two deep is the smallest nesting refused.
    assert!(postcard::from_bytes::<Request>(&nested_notify(2)).is_err());
}

#[test]
fn a_gossip_batch_nested_100000_deep_is_an_error_not_a_stack_overflow() {
    let bytes = nested_batch(DEPTH);
    on_small_stack(move || postcard::from_bytes::<Batch>(&bytes).unwrap_err());
    assert!(postcard::from_bytes::<Batch>(&nested_batch(2)).is_err());
}

#[test]
fn a_response_nested_100000_deep_is_an_error_not_a_stack_overflow() {
    // Response::Published (6), Some (1), Err (1), the chain.
    let mut bytes = vec![6, 1, 1];
    bytes.extend(nested_failure(DEPTH));
    on_small_stack(move || postcard::from_bytes::<Response>(&bytes).unwrap_err());
}

// ---------------------------------------------------------------------------------------
// Every crash the fuzz targets found, kept in `fuzz/crashes/<target>/`.

#[test]
fn every_crash_the_fuzzers_found_decodes_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/crashes");
    let Ok(targets) = std::fs::read_dir(&root) else {
        return;
    };
    let mut seen = 0;
    for target in targets {
        let target = target.unwrap().path();
        if !target.is_dir() {
            continue;
        }
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        for input in std::fs::read_dir(&target).unwrap() {
            let path = input.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("README")
            {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            // Every decoder, whatever the target that found it; on a small stack, as
            // deep recursion must fail there too.
            on_small_stack(move || check_all(&bytes));
            eprintln!("{name}: {} checked", path.display());
            seen += 1;
        }
    }
    eprintln!("{seen} crash inputs checked");
}

#[test]
fn prim_state_round_trip_keeps_every_queue_field() {
    // A fixed example beside the generated ones: the deques keep their order.
    let state = PrimState {
        seq: 9,
        body: Body::Queue {
            capacity: 3,
            items: VecDeque::from([
                Item {
                    id: OpId { peer: 1, seq: 1 },
                    bytes: vec![1],
                },
                Item {
                    id: OpId { peer: 1, seq: 2 },
                    bytes: vec![2],
                },
            ]),
            closed: true,
            taken: VecDeque::new(),
        },
    };
    let bytes = postcard::to_stdvec(&state).unwrap();
    assert_eq!(postcard::from_bytes::<PrimState>(&bytes).unwrap(), state);
}
