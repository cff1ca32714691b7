//! Links (`net/src/links.rs`): the task protocol on one long-lived stream per peer, spoken
//! here by a raw libp2p peer. Requests are answered by number, in any order; a bad frame
//! ends only its own link; a peer reads no more unanswered requests from one link than its
//! in-flight bound (`Limits::streams_per_connection`).

#[path = "common/peers.rs"]
mod peers;
#[path = "common/raw.rs"]
mod raw;

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use futures_util::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use peer_core::NamedTask;
use peer_net::wire::{Kind, Op, OpId, PrimRequest, Reply, Request, Response, TaskKey};
use peer_net::{Limits, Peer};
use peers::{GatedTask, OpenOnDrop, loopback, still_works, wait_until};
use raw::{RawPeer, frame};

const LINK: StreamProtocol = StreamProtocol::new("/peer/link/2");
/// Long enough for an answer on loopback, even on a loaded machine.
const ANSWER: Duration = Duration::from_secs(10);
/// How long a test waits to see that no answer comes.
const QUIET: Duration = Duration::from_secs(1);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn open(raw: &RawPeer, to: PeerId) -> Stream {
    raw.streams().open_stream(to, LINK).await.unwrap()
}

async fn send(stream: &mut Stream, id: u64, request: &Request) {
    let body = postcard::to_allocvec(&(id, request)).unwrap();
    stream.write_all(&frame(&body)).await.unwrap();
    stream.flush().await.unwrap();
}

async fn read(stream: &mut Stream) -> io::Result<(u64, Response)> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await?;
    let mut body = vec![0; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut body).await?;
    postcard::from_bytes(&body).map_err(io::Error::other)
}

/// Reads one answer, failing the test if none comes in time.
async fn answer(stream: &mut Stream) -> (u64, Response) {
    tokio::time::timeout(ANSWER, read(stream))
        .await
        .expect("an answer in time")
        .expect("an answer")
}

/// Fails the test if an answer comes within [`QUIET`].
async fn no_answer(stream: &mut Stream, why: &str) {
    let early = tokio::time::timeout(QUIET, read(stream)).await;
    assert!(early.is_err(), "{why}: {early:?}");
}

/// Whether the target closed the link in time: reads (and drops whatever the target writes
/// there, its own requests on a link it opened) until the stream ends.
async fn closed(stream: &mut Stream) -> bool {
    let mut buffer = [0u8; 4096];
    let ended = tokio::time::timeout(ANSWER, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    ended.await.is_ok()
}

#[test]
fn requests_on_a_link_are_answered_by_number() {
    let target = Peer::join(loopback()).unwrap();
    let raw = RawPeer::plain();
    let target_id = raw.connect(&target.addresses()[0]);
    let ours = TaskKey {
        owner: raw.number,
        seq: 5,
    };
    let answers = runtime().block_on(async {
        let mut link = open(&raw, target_id).await;
        send(&mut link, 7, &Request::Holding { tasks: vec![ours] }).await;
        let lookup = Request::Published {
            name: "nothing".into(),
        };
        send(&mut link, 3, &lookup).await;
        let first = answer(&mut link).await;
        let second = answer(&mut link).await;
        HashMap::from([first, second])
    });
    assert_eq!(answers.get(&7), Some(&Response::NotHeld(vec![ours])));
    assert_eq!(answers.get(&3), Some(&Response::Published(None)));
    still_works(&target);
}

#[test]
fn a_bad_frame_ends_only_its_own_link() {
    let target = Peer::join(loopback().max_frame(64 * 1024)).unwrap();
    let raw = RawPeer::plain();
    let target_id = raw.connect(&target.addresses()[0]);
    runtime().block_on(async {
        // A frame announcing 4 GiB: refused from its length, before anything is allocated.
        let mut link = open(&raw, target_id).await;
        link.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        link.write_all(&[0; 16]).await.unwrap();
        link.flush().await.unwrap();
        assert!(closed(&mut link).await, "a 4 GiB frame left the link open");

        // A frame just over the configured limit, fully sent.
        let mut link = open(&raw, target_id).await;
        let _ = link.write_all(&frame(&vec![0u8; 64 * 1024 + 1])).await;
        let _ = link.flush().await;
        assert!(
            closed(&mut link).await,
            "an oversized frame left the link open"
        );

        // Garbage of a plausible length.
        let mut link = open(&raw, target_id).await;
        let garbage = frame(&[0xff, 0x13, 0x37, 0x00, 0x99, 0x42, 0x17]);
        link.write_all(&garbage).await.unwrap();
        link.flush().await.unwrap();
        assert!(closed(&mut link).await, "garbage left the link open");

        // A new link is served as before.
        let mut link = open(&raw, target_id).await;
        send(&mut link, 1, &Request::Holding { tasks: vec![] }).await;
        assert_eq!(answer(&mut link).await, (1, Response::NotHeld(vec![])));
    });
    still_works(&target);
}

/// A target that allows 2 unanswered requests a peer, and a raw peer connected to it.
fn two_places() -> (Peer, RawPeer, PeerId) {
    let mut limits = Limits::default();
    limits.streams_per_connection = 2;
    let target = Peer::join(loopback().limits(limits)).unwrap();
    let raw = RawPeer::plain();
    let target_id = raw.connect(&target.addresses()[0]);
    (target, raw, target_id)
}

/// Get `seq` of peer `me` from queue `name` of `u64`s, waiting while it is empty.
fn waiting_get(me: u64, name: &str, seq: u64) -> Request {
    Request::Prim(PrimRequest {
        key: format!("queue/{name}/u64"),
        kind: Kind::Queue { capacity: 4 },
        id: OpId { peer: me, seq },
        op: Op::Get { wait: true },
    })
}

/// Two gets wait on an empty queue homed at the target, which allows 2 unanswered requests
/// a link: a third request is not even read until an item answers the first get.
#[test]
fn a_link_is_read_no_further_than_its_in_flight_bound() {
    let (target, raw, target_id) = two_places();
    let get = |seq| waiting_get(raw.number, "links", seq);
    let rt = runtime();
    let mut link = rt.block_on(async {
        let mut link = open(&raw, target_id).await;
        send(&mut link, 1, &get(1)).await;
        send(&mut link, 2, &get(2)).await;
        send(&mut link, 3, &Request::Holding { tasks: vec![] }).await;
        no_answer(&mut link, "an answer came while both gets waited").await;
        link
    });
    target
        .queue::<u64>("links", 4)
        .blocking_put_timeout(7, ANSWER)
        .unwrap();
    rt.block_on(async {
        let (id, first) = answer(&mut link).await;
        assert_eq!(id, 1, "{first:?}");
        assert!(matches!(first, Response::Prim(Reply::Item(_))), "{first:?}");
        assert_eq!(answer(&mut link).await, (3, Response::NotHeld(vec![])));
    });
    still_works(&target);
}

/// A peer's in-flight places are its own, not its link's: two gets wait on the first link,
/// the peer opens a second (which replaces the first), and a request there is not read until
/// an item frees a place.
#[test]
fn a_new_link_shares_its_peers_in_flight_places() {
    let (target, raw, target_id) = two_places();
    let get = |seq| waiting_get(raw.number, "places", seq);
    let rt = runtime();
    let mut second = rt.block_on(async {
        let mut first = open(&raw, target_id).await;
        send(&mut first, 1, &get(1)).await;
        send(&mut first, 2, &get(2)).await;
        // Both gets are read before the second link opens (well within this, even on a
        // loaded machine: reading them takes microseconds).
        tokio::time::sleep(3 * QUIET).await;
        let mut second = open(&raw, target_id).await;
        send(&mut second, 3, &Request::Holding { tasks: vec![] }).await;
        no_answer(
            &mut second,
            "the new link was read while both places were taken",
        )
        .await;
        second
    });
    target
        .queue::<u64>("places", 4)
        .blocking_put_timeout(7, ANSWER)
        .unwrap();
    rt.block_on(async {
        assert_eq!(answer(&mut second).await, (3, Response::NotHeld(vec![])));
    });
    still_works(&target);
}

/// A peer opens a link to each member it identifies; the member answering a request that
/// was never asked ends that link (its answers are bounded by the requests sent on it).
#[test]
fn an_answer_to_no_request_ends_the_link() {
    let raw = RawPeer::member();
    let rt = runtime();
    let mut incoming = raw.streams().accept(LINK).unwrap();
    let target = Peer::join(loopback()).unwrap();
    raw.connect(&target.addresses()[0]);
    rt.block_on(async {
        use futures_util::StreamExt;
        let (_, mut link) = tokio::time::timeout(ANSWER, incoming.next())
            .await
            .expect("the target opens a link to a member")
            .unwrap();
        let body = postcard::to_allocvec(&(999u64, Response::Ack)).unwrap();
        link.write_all(&frame(&body)).await.unwrap();
        link.flush().await.unwrap();
        assert!(
            closed(&mut link).await,
            "an unasked answer left the link open"
        );
    });
    still_works(&target);
}

/// A peer that sends requests on its link and never reads the answers: once the target's
/// writes are not taken within its request time-out, it ends the link (what it holds for
/// that peer is then freed), and it goes on serving.
#[test]
fn a_link_whose_answers_are_not_read_ends_at_the_time_out() {
    let timeout = Duration::from_secs(2);
    let target = Peer::join(loopback().request_timeout(timeout)).unwrap();
    let raw = RawPeer::plain();
    let target_id = raw.connect(&target.addresses()[0]);
    let rt = runtime();
    rt.block_on(async {
        let mut link = open(&raw, target_id).await;
        // Each answer lists the 4,096 tasks asked about (some 40 KB), far more in all than
        // the stream's window and the sockets' buffers take while nobody reads.
        let tasks: Vec<TaskKey> = (0..4096)
            .map(|seq| TaskKey {
                owner: raw.number,
                seq: u64::MAX - seq,
            })
            .collect();
        let holding = Request::Holding { tasks };
        for id in 0..64 {
            // The target stops reading once its writes block: the last sends may wait.
            let sent = tokio::time::timeout(QUIET, send(&mut link, id, &holding)).await;
            if sent.is_err() {
                break;
            }
        }
        // Well past the time-out, then read: what was written before it comes, then the
        // end. Had the link stayed open, reading would let every answer through and the
        // stream would not end.
        tokio::time::sleep(3 * timeout).await;
        assert!(
            closed(&mut link).await,
            "a link whose answers were never read stayed open"
        );
    });
    still_works(&target);
}

/// A steal on a link is answered by the link's task from the ready deque it shares with the
/// node (not by the event loop), and the node still records what it gave.
#[test]
fn a_steal_on_a_link_is_answered_and_its_tasks_recorded_as_given() {
    // Every call through the node (none kept on the pool to be measured).
    let target = Peer::join(loopback().keep_below(Duration::ZERO)).unwrap();
    let _open = OpenOnDrop("links-steal");
    // Some run on the target's worker and wait at the gate; the rest wait in its deque.
    let _futures: Vec<_> = (0..6u64)
        .map(|x| target.submit_named(GatedTask, ("links-steal".to_string(), x)))
        .collect();
    let mut waiting = 0;
    wait_until("the tasks are started or queued", ANSWER, || {
        let stats = target.status().unwrap().stats;
        waiting = stats.ready;
        stats.ready + stats.running == 6
    });
    assert!(waiting >= 2, "{waiting} queued");
    let raw = RawPeer::plain();
    let target_id = raw.connect(&target.addresses()[0]);
    let steal = Request::Steal {
        max: 64,
        can_run: vec![GatedTask::FINGERPRINT],
    };
    let (id, answer) = runtime().block_on(async {
        let mut link = open(&raw, target_id).await;
        send(&mut link, 1, &steal).await;
        answer(&mut link).await
    });
    assert_eq!(id, 1);
    let Response::Stolen { tasks, ready } = answer else {
        panic!("a steal answered {answer:?}");
    };
    let half = waiting.div_ceil(2);
    assert_eq!(tasks.len() as u64, half, "half of the {waiting} queued");
    assert_eq!(u64::from(ready), waiting - half, "the rest left");
    assert!(
        tasks
            .iter()
            .all(|t| t.fingerprint == GatedTask::FINGERPRINT && t.hops == 1)
    );
    wait_until("the node records what the link gave", ANSWER, || {
        (target.status()).is_ok_and(|s| s.stats.given == half && s.stats.ready == waiting - half)
    });
}
