//! The task protocol on one long-lived stream per peer and direction (a link), instead of a
//! new substream per request: nothing to open, negotiate and time out per message, and the
//! requests queued while one is written go out together, with one flush.
//!
//! Each peer opens its own link to another for its requests ([`Links::send`]); the other
//! answers on the same stream, by request number, in any order (a primitive's answer may
//! come much later). The links' tasks run beside the event loop, which still decides every
//! answer. A peer that does not speak [`LINK`] gets its requests as before, a request and
//! a response on a substream of their own (`codec::PROTOCOL`), and so do fetches and
//! published values: a large value on a link would hold up every steal behind it.
//!
//! Bounds: a peer keeps one incoming link (a new one replaces it), reads no further
//! request there while [`LinkSettings::in_flight`] wait for their answers, and frames are
//! checked against [`LinkSettings::max_frame`] from their length alone, as on substreams.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use libp2p_stream::{Control, IncomingStreams, OpenStreamError};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;

use crate::codec::{encode_frame, read_frame};
use crate::wire::{Request, Response};

/// The link protocol: frames of `(number, Request)` one way, `(number, Response)` back.
pub(crate) const LINK: StreamProtocol = StreamProtocol::new("/peer/link/1");

/// What bounds a link.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkSettings {
    /// Largest frame body sent or read.
    pub(crate) max_frame: usize,
    /// How long a request waits for its answer before it fails.
    pub(crate) timeout: Duration,
    /// Requests read from one incoming link and not answered yet, at most.
    pub(crate) in_flight: usize,
}

/// What the links tell the event loop.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// A request from `peer`, to answer with [`Reply::send`].
    Request {
        peer: PeerId,
        request: Request,
        reply: Reply,
    },
    /// The answer from `peer` to our request `id`.
    Response {
        peer: PeerId,
        id: u64,
        response: Response,
    },
    /// Whether the answer that asked for a receipt (its `channel`) was written.
    Sent { channel: u64, sent: bool },
    /// Our link number `link` to `peer` ended: `unsent` were never written (to send again);
    /// the rest in flight on it failed.
    Down {
        peer: PeerId,
        link: u64,
        unsupported: bool,
        unsent: Vec<(u64, Request)>,
        why: String,
    },
}

/// The way back for the answer to one request read from a link.
#[derive(Debug)]
pub(crate) struct Reply {
    id: u64,
    answers: mpsc::Sender<Answer>,
}

#[derive(Debug)]
struct Answer {
    id: u64,
    response: Response,
    receipt: Option<u64>,
}

impl Reply {
    /// Queues the answer; with `receipt`, a [`LinkEvent::Sent`] for that channel says
    /// whether it was written. False when the link is gone.
    pub(crate) fn send(self, response: Response, receipt: Option<u64>) -> bool {
        // Never full: the reader holds a permit, which only the writer gives back, for
        // every request whose answer is not written yet, and the queue has as many places.
        let answer = Answer {
            id: self.id,
            response,
            receipt,
        };
        self.answers.try_send(answer).is_ok()
    }
}

/// One of our requests waiting for its answer.
#[derive(Debug)]
struct InFlight {
    peer: PeerId,
    link: u64,
    tag: u64,
}

/// Our end of the links: which peers have one, and the requests waiting for answers.
pub(crate) struct Links {
    control: Control,
    events: mpsc::Sender<LinkEvent>,
    settings: LinkSettings,
    open: HashMap<PeerId, Open>,
    /// Peers that answered that they do not speak [`LINK`], until they disconnect.
    unsupported: HashSet<PeerId>,
    in_flight: HashMap<u64, InFlight>,
    /// Request numbers in the order they were sent, so in order of their deadlines.
    deadlines: VecDeque<(Instant, u64)>,
    next_id: u64,
    next_link: u64,
}

struct Open {
    link: u64,
    requests: mpsc::UnboundedSender<(u64, Request)>,
}

impl Links {
    pub(crate) fn new(
        control: Control,
        events: mpsc::Sender<LinkEvent>,
        settings: LinkSettings,
    ) -> Links {
        Links {
            control,
            events,
            settings,
            open: HashMap::new(),
            unsupported: HashSet::new(),
            in_flight: HashMap::new(),
            deadlines: VecDeque::new(),
            next_id: 0,
            next_link: 0,
        }
    }

    /// Sends `request` (the node's `tag`) to `peer` on its link, opened if need be; or hands
    /// it back for a substream of its own: a fetch or a published value, or a peer without
    /// links.
    pub(crate) fn send(
        &mut self,
        peer: PeerId,
        tag: u64,
        request: Request,
        now: Instant,
    ) -> Result<(), Request> {
        if self.unsupported.contains(&peer)
            || matches!(request, Request::Fetch { .. } | Request::Published { .. })
        {
            return Err(request);
        }
        self.next_id += 1;
        let id = self.next_id;
        let mut item = (id, request);
        // A link whose task has ended hands the request back: a new link takes it.
        for _ in 0..2 {
            let open = match self.open.get(&peer) {
                Some(open) => open,
                None => {
                    let open = self.start(peer);
                    self.open.entry(peer).or_insert(open)
                }
            };
            let link = open.link;
            match open.requests.send(item) {
                Ok(()) => {
                    self.in_flight.insert(id, InFlight { peer, link, tag });
                    self.deadlines.push_back((now + self.settings.timeout, id));
                    return Ok(());
                }
                Err(mpsc::error::SendError(back)) => {
                    self.open.remove(&peer);
                    item = back;
                }
            }
        }
        Err(item.1)
    }

    /// Opens a link to `peer` unless one is open or it does not speak links.
    pub(crate) fn warm(&mut self, peer: PeerId) {
        if !self.open.contains_key(&peer) && !self.unsupported.contains(&peer) {
            let open = self.start(peer);
            self.open.insert(peer, open);
        }
    }

    fn start(&mut self, peer: PeerId) -> Open {
        self.next_link += 1;
        let link = self.next_link;
        let (requests, queued) = mpsc::unbounded_channel();
        let task = outgoing(
            self.control.clone(),
            peer,
            link,
            queued,
            self.events.clone(),
            self.settings.max_frame,
        );
        drop(tokio::spawn(task));
        Open { link, requests }
    }

    /// The answer to request `id` came: its tag, if it was still waited for.
    pub(crate) fn answered(&mut self, id: u64) -> Option<u64> {
        self.in_flight.remove(&id).map(|f| f.tag)
    }

    /// Link `link` to `peer` ended: the requests to send again, with their tags, and the
    /// tags of those that failed.
    pub(crate) fn down(
        &mut self,
        peer: PeerId,
        link: u64,
        unsupported: bool,
        unsent: Vec<(u64, Request)>,
    ) -> (Vec<(u64, Request)>, Vec<u64>) {
        if self.open.get(&peer).is_some_and(|open| open.link == link) {
            self.open.remove(&peer);
        }
        if unsupported {
            self.unsupported.insert(peer);
        }
        let again = (unsent.into_iter())
            .filter_map(|(id, request)| Some((self.in_flight.remove(&id)?.tag, request)))
            .collect();
        let mut failed = Vec::new();
        self.in_flight.retain(|_, f| {
            let lost = f.peer == peer && f.link == link;
            if lost {
                failed.push(f.tag);
            }
            !lost
        });
        (again, failed)
    }

    /// `peer` disconnected: whether it speaks links is asked again when it is back.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.unsupported.remove(peer);
    }

    /// A sender of events, for the links other peers open.
    pub(crate) fn events(&self) -> mpsc::Sender<LinkEvent> {
        self.events.clone()
    }

    /// When the oldest request still waiting times out.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some((at, id)) = self.deadlines.front() {
            if self.in_flight.contains_key(id) {
                return Some(*at);
            }
            self.deadlines.pop_front();
        }
        None
    }

    /// The tags of the requests that have waited their whole time-out by `now`.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<u64> {
        let mut tags = Vec::new();
        while let Some(&(at, id)) = self.deadlines.front() {
            if at > now {
                break;
            }
            self.deadlines.pop_front();
            tags.extend(self.in_flight.remove(&id).map(|f| f.tag));
        }
        tags
    }
}

/// Our link to `peer`: opens the stream, then writes queued requests and reads answers
/// until either side ends it.
async fn outgoing(
    mut control: Control,
    peer: PeerId,
    link: u64,
    mut queued: mpsc::UnboundedReceiver<(u64, Request)>,
    events: mpsc::Sender<LinkEvent>,
    max_frame: usize,
) {
    let (unsupported, why) = match control.open_stream(peer, LINK).await {
        Err(error) => (
            matches!(error, OpenStreamError::UnsupportedProtocol(_)),
            error.to_string(),
        ),
        Ok(stream) => {
            let (mut reader, mut writer) = stream.split();
            let write = async {
                while let Some(first) = queued.recv().await {
                    // Everything queued by now goes out with one flush.
                    let mut next = Some(first);
                    while let Some((id, request)) = next {
                        match encode_frame(&(id, &request), max_frame) {
                            Ok(frame) => writer.write_all(&frame).await?,
                            // Too large to send: the request times out, as on a substream
                            // whose write fails, and the link goes on.
                            Err(error) => tracing::warn!(%peer, %error, "request not sent"),
                        }
                        next = queued.try_recv().ok();
                    }
                    writer.flush().await?;
                }
                Ok::<(), std::io::Error>(())
            };
            let read = async {
                loop {
                    let (id, response) =
                        read_frame::<(u64, Response), _>(&mut reader, max_frame).await?;
                    let event = LinkEvent::Response { peer, id, response };
                    if events.send(event).await.is_err() {
                        return Ok::<(), std::io::Error>(());
                    }
                }
            };
            let ended = tokio::select! {
                ended = write => ended,
                ended = read => ended,
            };
            let why = match ended {
                Ok(()) => "the link was closed".to_string(),
                Err(error) => error.to_string(),
            };
            (false, why)
        }
    };
    queued.close();
    let mut unsent = Vec::new();
    while let Ok(item) = queued.try_recv() {
        unsent.push(item);
    }
    tracing::debug!(%peer, %why, unsupported, "link ended");
    let down = LinkEvent::Down {
        peer,
        link,
        unsupported,
        unsent,
        why,
    };
    let _ = events.send(down).await;
}

/// Serves every link other peers open to this one, one task each; a peer's new link
/// replaces its old one.
pub(crate) async fn serve(
    mut incoming: IncomingStreams,
    events: mpsc::Sender<LinkEvent>,
    settings: LinkSettings,
) {
    let mut serving: HashMap<PeerId, AbortHandle> = HashMap::new();
    while let Some((peer, stream)) = incoming.next().await {
        serving.retain(|_, task| !task.is_finished());
        let task = tokio::spawn(incoming_link(peer, stream, events.clone(), settings));
        if let Some(old) = serving.insert(peer, task.abort_handle()) {
            old.abort();
        }
    }
    for task in serving.values() {
        task.abort();
    }
}

/// One peer's link to this one: reads its requests while fewer than `in_flight` wait for
/// answers, and writes the answers as the event loop gives them.
async fn incoming_link(
    peer: PeerId,
    stream: Stream,
    events: mpsc::Sender<LinkEvent>,
    settings: LinkSettings,
) {
    let in_flight = settings.in_flight.max(1);
    let (mut reader, mut writer) = stream.split();
    let permits = Arc::new(Semaphore::new(in_flight));
    let (answers, mut to_write) = mpsc::channel::<Answer>(in_flight);
    let read = async {
        loop {
            let Ok(permit) = permits.acquire().await else {
                return "closed".to_string();
            };
            permit.forget();
            let (id, request) =
                match read_frame::<(u64, Request), _>(&mut reader, settings.max_frame).await {
                    Ok(frame) => frame,
                    Err(error) => return error.to_string(),
                };
            let reply = Reply {
                id,
                answers: answers.clone(),
            };
            let event = LinkEvent::Request {
                peer,
                request,
                reply,
            };
            if events.send(event).await.is_err() {
                return "the peer stopped".to_string();
            }
        }
    };
    let write = async {
        let mut receipts = Vec::new();
        while let Some(first) = to_write.recv().await {
            let mut next = Some(first);
            let mut written = 0;
            let mut outcome = Ok(());
            while let Some(answer) = next {
                written += 1;
                let receipt = answer.receipt;
                let mut delivered = false;
                if outcome.is_ok() {
                    match write_answer(&mut writer, answer, settings.max_frame).await {
                        Ok(whole) => delivered = whole,
                        Err(error) => outcome = Err(error),
                    }
                }
                receipts.extend(receipt.map(|channel| (channel, delivered)));
                next = to_write.try_recv().ok();
            }
            if outcome.is_ok() {
                outcome = writer.flush().await;
            }
            let flushed = outcome.is_ok();
            for (channel, delivered) in receipts.drain(..) {
                let sent = delivered && flushed;
                let _ = events.send(LinkEvent::Sent { channel, sent }).await;
            }
            if let Err(error) = outcome {
                return error.to_string();
            }
            permits.add_permits(written);
        }
        "closed".to_string()
    };
    let why = tokio::select! {
        why = read => why,
        why = write => why,
    };
    tracing::debug!(%peer, %why, "incoming link ended");
    // Receipts still queued say their answers were not written.
    to_write.close();
    while let Ok(answer) = to_write.try_recv() {
        if let Some(channel) = answer.receipt {
            let _ = events
                .send(LinkEvent::Sent {
                    channel,
                    sent: false,
                })
                .await;
        }
    }
}

/// Writes one answer: whether it went whole. One too large for a frame goes as a refusal
/// that says so.
async fn write_answer<W: futures_util::AsyncWrite + Unpin>(
    writer: &mut W,
    answer: Answer,
    max_frame: usize,
) -> std::io::Result<bool> {
    let (frame, whole) = match encode_frame(&(answer.id, &answer.response), max_frame) {
        Ok(frame) => (frame, true),
        Err(error) => {
            let refusal = Response::Refused(format!("the answer was not sent: {error}"));
            (encode_frame(&(answer.id, &refusal), max_frame)?, false)
        }
    };
    writer.write_all(&frame).await?;
    Ok(whole)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::decode_body;

    const SETTINGS: LinkSettings = LinkSettings {
        max_frame: 1 << 20,
        timeout: Duration::from_secs(30),
        in_flight: 4,
    };

    /// Links whose streams never open (their behaviour is not in a swarm): what is left to
    /// see is the bookkeeping.
    fn links() -> (Links, mpsc::Receiver<LinkEvent>) {
        let control = libp2p_stream::Behaviour::new().new_control();
        let (tx, rx) = mpsc::channel(16);
        (Links::new(control, tx, SETTINGS), rx)
    }

    fn audit() -> Request {
        Request::Holding { tasks: vec![] }
    }

    #[tokio::test]
    async fn fetches_and_lookups_keep_a_substream_of_their_own() {
        let (mut links, _events) = links();
        let peer = PeerId::random();
        let now = Instant::now();
        let fetch = Request::Fetch {
            task: crate::wire::TaskKey { owner: 1, seq: 1 },
        };
        assert!(links.send(peer, 1, fetch, now).is_err());
        let lookup = Request::Published { name: "x".into() };
        assert!(links.send(peer, 2, lookup, now).is_err());
        assert!(links.send(peer, 3, audit(), now).is_ok());
    }

    #[tokio::test]
    async fn a_request_times_out_once_and_an_answer_after_it_is_ignored() {
        let (mut links, _events) = links();
        let peer = PeerId::random();
        let now = Instant::now();
        links.send(peer, 10, audit(), now).unwrap();
        links
            .send(peer, 11, audit(), now + Duration::from_secs(1))
            .unwrap();
        assert_eq!(links.next_deadline(), Some(now + SETTINGS.timeout));
        assert_eq!(links.expired(now + SETTINGS.timeout), vec![10]);
        assert_eq!(links.answered(1), None, "the answer came too late");
        assert_eq!(links.answered(2), Some(11));
        assert_eq!(links.next_deadline(), None);
        assert!(links.expired(now + 2 * SETTINGS.timeout).is_empty());
    }

    #[tokio::test]
    async fn a_link_that_ends_sends_its_unwritten_requests_again_and_fails_the_rest() {
        let (mut links, _events) = links();
        let (peer, other) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        links.send(peer, 20, audit(), now).unwrap();
        links.send(peer, 21, audit(), now).unwrap();
        links.send(other, 22, audit(), now).unwrap();
        let link = links.open[&peer].link;
        // Request 2 (tag 21) was never written; request 1 (tag 20) was.
        let (again, failed) = links.down(peer, link, false, vec![(2, audit())]);
        assert_eq!(again, vec![(21, audit())]);
        assert_eq!(failed, vec![20]);
        assert!(
            !links.open.contains_key(&peer),
            "a new link opens on the next send"
        );
        assert_eq!(
            links.answered(3),
            Some(22),
            "another peer's link is untouched"
        );
    }

    #[tokio::test]
    async fn a_peer_without_links_gets_substreams_until_it_reconnects() {
        let (mut links, _events) = links();
        let peer = PeerId::random();
        let now = Instant::now();
        links.send(peer, 30, audit(), now).unwrap();
        let link = links.open[&peer].link;
        let (again, failed) = links.down(peer, link, true, vec![(1, audit())]);
        assert_eq!((again.len(), failed.len()), (1, 0));
        assert!(links.send(peer, 31, audit(), now).is_err());
        links.warm(peer);
        assert!(!links.open.contains_key(&peer), "not opened again");
        links.disconnected(&peer);
        assert!(links.send(peer, 32, audit(), now).is_ok());
    }

    proptest! {
        /// Whatever bytes a link frame holds, decoding returns; it never panics.
        #[test]
        fn any_link_frame_decodes_or_fails_cleanly(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode_body::<(u64, Request)>(&body);
            let _ = decode_body::<(u64, Response)>(&body);
        }
    }
}
