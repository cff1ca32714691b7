//! Bad input from the network: a raw libp2p peer sends oversized frames, garbage, and tasks
//! the receiver cannot run. Each is refused or answered with a clear error, and the peer
//! keeps serving real work.

use std::io;
use std::time::Duration;

use futures_util::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, StreamProtocol, Swarm, noise, tcp, yamux};
use peer_net::wire::{
    ArgSpec, Delta, Done, Failure, Kind, Op, OpId, PrimRequest, Reply, Request, Response, TaskKey,
    TaskSpec,
};
use peer_net::{Client, Config};

#[peer_core::task(name = "bad_input::double")]
fn double(x: u64) -> u64 {
    2 * x
}

const PROTOCOL: StreamProtocol = StreamProtocol::new("/peer/tasks/2");

/// Writes requests as given, byte for byte; reads length-prefixed frames.
#[derive(Clone, Default)]
struct RawCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > 1 << 20 {
        return Err(io::Error::other("test frame too large"));
    }
    let mut body = vec![0; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io).await
    }
    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io).await
    }
    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&bytes).await?;
        io.close().await
    }
    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&frame(&bytes)).await?;
        io.close().await
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn encoded(request: &Request) -> Vec<u8> {
    frame(&postcard::to_allocvec(request).unwrap())
}

type Raw = request_response::Behaviour<RawCodec>;

fn raw_swarm() -> Swarm<Raw> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            Raw::with_codec(
                RawCodec,
                [(PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Sends one raw request and waits for its outcome: the response body, or the failure.
async fn ask(
    swarm: &mut Swarm<Raw>,
    target: libp2p::PeerId,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let id = swarm.behaviour_mut().send_request(&target, bytes);
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            }) if request_id == id => return Ok(response),
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                request_id,
                error,
                ..
            }) if request_id == id => return Err(error.to_string()),
            _ => {}
        }
    }
}

/// Waits for the target to tell us (as the "owner") how a pushed task ended.
async fn notice(swarm: &mut Swarm<Raw>) -> Vec<(TaskKey, Done)> {
    loop {
        if let SwarmEvent::Behaviour(request_response::Event::Message {
            message:
                request_response::Message::Request {
                    request, channel, ..
                },
            ..
        }) = swarm.select_next_some().await
        {
            let _ = swarm
                .behaviour_mut()
                .send_response(channel, postcard::to_allocvec(&Response::Ack).unwrap());
            if let Ok(Request::Notify { done, .. }) = postcard::from_bytes::<Request>(&request) {
                if !done.is_empty() {
                    return done;
                }
            }
        }
    }
}

fn spec(name: &str, fingerprint: u64, owner: u64) -> TaskSpec {
    TaskSpec {
        key: TaskKey { owner, seq: 1 },
        name: name.into(),
        fingerprint,
        args: vec![ArgSpec::Inline(postcard::to_allocvec(&21u64).unwrap())],
        hops: 0,
    }
}

/// The policy's number for a peer id, as `peer-net` computes it (FNV-1a of its bytes).
fn number(peer: &libp2p::PeerId) -> u64 {
    peer.to_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[test]
fn bad_frames_and_tasks_are_refused_and_the_peer_keeps_working() {
    let target = Client::join(
        Config::new()
            .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .mdns(false)
            .workers(1)
            .max_frame(64 * 1024),
    )
    .unwrap();
    let addr: Multiaddr = target.addresses()[0].clone();
    let target_id = target.peer_id();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut raw = raw_swarm();
        raw.dial(addr).unwrap();
        let me = number(raw.local_peer_id());

        // A frame announcing 4 GiB: refused from its length, before anything is allocated.
        let mut huge = u32::MAX.to_be_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        let refused = ask(&mut raw, target_id, huge).await;
        assert!(
            refused.is_err(),
            "an oversized frame got an answer: {refused:?}"
        );

        // A frame just over the configured limit (64 KiB), fully sent.
        let over = frame(&vec![0u8; 64 * 1024 + 1]);
        assert!(ask(&mut raw, target_id, over).await.is_err());

        // Garbage of a plausible length.
        let garbage = frame(&[0xff, 0x13, 0x37, 0x00, 0x99, 0x42, 0x17]);
        assert!(ask(&mut raw, target_id, garbage).await.is_err());

        // A well-formed push of a task nobody registers: taken, run, reported as unknown.
        let unknown = encoded(&Request::Push {
            tasks: vec![spec("no::such::task", 7, me)],
        });
        assert_eq!(
            ask(&mut raw, target_id, unknown).await.unwrap(),
            postcard::to_allocvec(&Response::Ack).unwrap()
        );
        let done = notice(&mut raw).await;
        assert_eq!(
            done,
            vec![(
                TaskKey { owner: me, seq: 1 },
                Done::Failed(Failure::UnknownTask)
            )]
        );

        // A registered name with another fingerprint: refused with the runner's signature.
        let mismatch = encoded(&Request::Push {
            tasks: vec![spec("bad_input::double", 12345, me)],
        });
        ask(&mut raw, target_id, mismatch).await.unwrap();
        let done = notice(&mut raw).await;
        match &done[..] {
            [(_, Done::Failed(Failure::SignatureMismatch(found)))] => {
                assert!(found.contains("u64"), "{found}")
            }
            other => panic!("expected a signature mismatch, got {other:?}"),
        }

        // A finish notice for a task the target does not own.
        let stray = encoded(&Request::Notify {
            done: vec![(
                TaskKey { owner: 1, seq: 1 },
                Done::Failed(Failure::UnknownTask),
            )],
            release: vec![],
            moved: vec![],
        });
        let answer = ask(&mut raw, target_id, stray).await.unwrap();
        match postcard::from_bytes::<Response>(&answer).unwrap() {
            Response::Refused(why) => assert!(why.contains("not owned by this peer"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }

        // An audit of tasks it never had, some not even the asker's: only the asker's are
        // answered, all as not held.
        let ours = TaskKey { owner: me, seq: 5 };
        let theirs = TaskKey { owner: 3, seq: 5 };
        let audit = encoded(&Request::Holding {
            tasks: vec![ours, theirs],
        });
        let answer = ask(&mut raw, target_id, audit).await.unwrap();
        assert_eq!(
            postcard::from_bytes::<Response>(&answer).unwrap(),
            Response::NotHeld(vec![ours])
        );

        // A lookup of a name nobody published.
        let lookup = encoded(&Request::Published {
            name: "nothing".into(),
        });
        let answer = ask(&mut raw, target_id, lookup).await.unwrap();
        assert_eq!(
            postcard::from_bytes::<Response>(&answer).unwrap(),
            Response::Published(None)
        );

        // Operations on named primitives: another peer's id, the wrong kind, an operation
        // that does not fit, changes to a copy the target does not have.
        let prim = |id: u64, kind: Kind, op: Op| {
            encoded(&Request::Prim(PrimRequest {
                key: "lock/bad".into(),
                kind,
                id: OpId { peer: id, seq: 1 },
                op,
            }))
        };
        let lock = Kind::Semaphore { permits: 1 };
        let acquire = Op::Acquire {
            lease_ms: Some(u64::MAX),
            wait: false,
        };
        let refused = |answer: Vec<u8>, what: &str| match postcard::from_bytes(&answer).unwrap() {
            Response::Prim(Reply::Refused(why)) => assert!(why.contains(what), "{why}"),
            other => panic!("expected a refusal ({what}), got {other:?}"),
        };
        let answer = ask(&mut raw, target_id, prim(me + 1, lock, acquire.clone())).await;
        refused(answer.unwrap(), "its sender's id");
        let answer = ask(&mut raw, target_id, prim(me, lock, acquire))
            .await
            .unwrap();
        assert!(matches!(
            postcard::from_bytes(&answer).unwrap(),
            Response::Prim(Reply::Granted { .. })
        ));
        let queue = Kind::Queue { capacity: 1 };
        let put = Op::Put {
            item: vec![1],
            wait: true,
        };
        let answer = ask(&mut raw, target_id, prim(me, queue, put)).await;
        refused(answer.unwrap(), "is not a Queue");
        let answer = ask(&mut raw, target_id, prim(me, lock, Op::Len)).await;
        refused(answer.unwrap(), "does not apply");
        let stray = encoded(&Request::Replicate {
            key: "queue/none".into(),
            base: 3,
            deltas: vec![Delta::Close],
        });
        let answer = ask(&mut raw, target_id, stray).await.unwrap();
        match postcard::from_bytes::<Response>(&answer).unwrap() {
            Response::Refused(why) => assert!(why.contains("no current copy"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    });
    // Still serving real work.
    let doubled = target.submit_named(DoubleTask, (21u64,));
    assert_eq!(doubled.wait_timeout(Duration::from_secs(10)), Some(Ok(&42)));
}
