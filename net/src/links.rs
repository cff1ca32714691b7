//! The task protocol on one long-lived stream per peer and direction (a link), instead of a
//! new substream per request: nothing to open, negotiate and time out per message, and the
//! requests queued while one is written go out together, with one flush.
//!
//! Each peer opens its own link to another for its requests ([`Links::send`]); the other
//! answers on the same stream, by request number, in any order (a primitive's answer may
//! come much later). The links' tasks run beside the event loop, which decides every answer
//! but a steal's (below). A peer that does not speak [`LINK`] gets its requests as before, a request and
//! a response on a substream of their own (`codec::PROTOCOL`), and so do fetches and
//! published values: a large value on a link would hold up every steal behind it.
//!
//! Every request sent ends once: answered (only by the peer and link it went on), or failed
//! when its link ends, when it cannot be encoded, or at its time-out.
//!
//! A steal is answered by the link's task itself, from the ready deque it shares with the
//! node, without waiting for the event loop (which may be busy for milliseconds taking in
//! submissions). The node learns what was given from a receipt ([`LinkEnd::Gave`]), sent
//! once the answer is written or known not to be, whichever way the link ends, and records
//! the moves then (or queues the tasks again).
//!
//! Bounds: a peer has at most [`LinkSettings::in_flight`] requests read from its links and
//! not answered yet, whatever links it opens (a new one replaces the old); a frame is checked
//! against [`LinkSettings::max_frame`] from its length alone, as on substreams; a write that
//! the other side does not take within [`LinkSettings::timeout`] ends the link.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use libp2p_stream::{Control, IncomingStreams, OpenStreamError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::codec::{encode_frame, read_frame};
use crate::node::Ready;
use crate::wire::{Request, Response, TaskSpec};

/// The link protocol: frames of `(number, Request)` one way, `(number, Response)` back.
pub(crate) const LINK: StreamProtocol = StreamProtocol::new("/peer/link/2");

/// Requests written on one link and never answered, at most: a peer that leaves more
/// unanswered (its pings may still be answered) is not serving, and its link ends, so that
/// the numbers kept to check its answers stay bounded.
const MAX_UNANSWERED: usize = 1 << 16;

/// What bounds a link.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkSettings {
    /// Largest frame body sent or read.
    pub(crate) max_frame: usize,
    /// How long a request waits for its answer, and a write for the other side to take it.
    pub(crate) timeout: Duration,
    /// Requests read from one peer's links and not answered yet, at most.
    pub(crate) in_flight: usize,
}

/// What the links tell the event loop, on a bounded queue: each [`LinkEvent::Request`]
/// holds one of its peer's in-flight places until it is answered or dropped.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// A request from `peer`, to answer with [`Reply::send`].
    Request {
        peer: PeerId,
        request: Request,
        reply: Reply,
    },
    /// An answer from `peer`, on our link number `link`, to our request `id`.
    Response {
        peer: PeerId,
        link: u64,
        id: u64,
        response: Response,
    },
    /// Our link number `link` to `peer` ended, after every answer it read; `unsent` were
    /// never written.
    Down {
        peer: PeerId,
        link: u64,
        unsupported: bool,
        unsent: Vec<(u64, Request)>,
        why: String,
    },
}

/// How the links' work ends, on a queue of its own that never waits: at most one for each
/// steal answered on a link (held to the peer's in-flight places) and for each of our
/// requests.
#[derive(Debug)]
pub(crate) enum LinkEnd {
    /// A steal from `peer` answered here with `tasks` (taken from the ready deque), and
    /// whether the answer was written: if not, the tasks go back. Holds the request's
    /// in-flight place until the loop has taken it, so that a peer's steals cannot run
    /// ahead of the loop by more than its places.
    Gave {
        peer: PeerId,
        tasks: Vec<TaskSpec>,
        sent: bool,
        place: OwnedSemaphorePermit,
    },
    /// Our request `id` on link `link` to `peer` could not be sent.
    Unsent {
        peer: PeerId,
        link: u64,
        id: u64,
        error: String,
    },
}

/// The way back for the answer to one request read from a link. Holds one of its peer's
/// in-flight places until the answer is written, or until it is dropped unanswered.
#[derive(Debug)]
pub(crate) struct Reply {
    peer: PeerId,
    id: u64,
    answers: mpsc::Sender<Answer>,
    place: OwnedSemaphorePermit,
}

#[derive(Debug)]
struct Answer {
    id: u64,
    response: Response,
    /// A steal answered here: reported once written, or known not to be.
    receipt: Option<Receipt>,
    /// The request's in-flight place, unless its receipt holds it.
    _place: Option<OwnedSemaphorePermit>,
}

/// The tasks a steal answered on a link took from the ready deque, and the request's place.
#[derive(Debug)]
struct Receipt {
    tasks: Vec<TaskSpec>,
    place: OwnedSemaphorePermit,
}

impl Receipt {
    fn end(self, peer: PeerId, sent: bool) -> LinkEnd {
        LinkEnd::Gave {
            peer,
            tasks: self.tasks,
            sent,
            place: self.place,
        }
    }
}

impl Reply {
    /// The peer that asked.
    pub(crate) fn peer(&self) -> PeerId {
        self.peer
    }

    /// Queues the answer: false when the link is gone.
    pub(crate) fn send(self, response: Response) -> bool {
        // Never full: every answer queued holds one of the link's places, and the queue has
        // as many.
        let answer = Answer {
            id: self.id,
            response,
            receipt: None,
            _place: Some(self.place),
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

/// Where the link tasks report: the bounded queue of events and the queue of endings.
#[derive(Debug, Clone)]
pub(crate) struct Reports {
    pub(crate) events: mpsc::Sender<LinkEvent>,
    pub(crate) endings: mpsc::UnboundedSender<LinkEnd>,
}

/// Our end of the links: which peers have one, and the requests waiting for answers.
pub(crate) struct Links {
    control: Control,
    reports: Reports,
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
    pub(crate) fn new(control: Control, reports: Reports, settings: LinkSettings) -> Links {
        Links {
            control,
            reports,
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
            if !self.open.contains_key(&peer) {
                let open = self.start(peer);
                self.open.insert(peer, open);
            }
            let Some(open) = self.open.get(&peer) else {
                break;
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
            self.reports.clone(),
            self.settings,
        );
        drop(tokio::spawn(task));
        Open { link, requests }
    }

    /// An answer came from `peer` on `link` to request `id`: its tag, if that request went
    /// there and is still waited for.
    pub(crate) fn answered(&mut self, peer: PeerId, link: u64, id: u64) -> Option<u64> {
        match self.in_flight.get(&id) {
            Some(f) if f.peer == peer && f.link == link => {
                self.in_flight.remove(&id).map(|f| f.tag)
            }
            _ => None,
        }
    }

    /// Link `link` to `peer` ended: the requests to send again on a substream (the peer
    /// does not speak links), with their tags, and the tags of those that failed.
    pub(crate) fn down(
        &mut self,
        peer: PeerId,
        link: u64,
        unsupported: bool,
        unsent: Vec<(u64, Request)>,
    ) -> (Vec<(u64, Request)>, Vec<u64>) {
        let current = self.open.get(&peer).is_some_and(|open| open.link == link);
        if current {
            self.open.remove(&peer);
        }
        let mut again = Vec::new();
        // An old link's news may come after the peer reconnected: it says nothing of now.
        if unsupported && current {
            self.unsupported.insert(peer);
            for (id, request) in unsent {
                if let Some(tag) = self.answered(peer, link, id) {
                    again.push((tag, request));
                }
            }
        }
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

    /// Where the links other peers open report.
    pub(crate) fn reports(&self) -> Reports {
        self.reports.clone()
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
/// until either side ends it, or a write is not taken in time.
async fn outgoing(
    mut control: Control,
    peer: PeerId,
    link: u64,
    mut queued: mpsc::UnboundedReceiver<(u64, Request)>,
    reports: Reports,
    settings: LinkSettings,
) {
    // Requests written and not answered yet: an answer to anything else ends the link, so a
    // peer cannot fill the event queue with answers nobody asked for.
    let asked: Mutex<HashSet<u64>> = Mutex::new(HashSet::new());
    let asked_now = || asked.lock().unwrap_or_else(PoisonError::into_inner);
    let opened = tokio::time::timeout(settings.timeout, control.open_stream(peer, LINK)).await;
    let (unsupported, why) = match opened {
        Err(_) => (false, "the link did not open in time".to_string()),
        Ok(Err(error)) => (
            matches!(error, OpenStreamError::UnsupportedProtocol(_)),
            error.to_string(),
        ),
        Ok(Ok(stream)) => {
            let (mut reader, mut writer) = stream.split();
            let write = async {
                while let Some(first) = queued.recv().await {
                    // Everything queued by now goes out with one flush.
                    let mut batch = vec![first];
                    while let Ok(more) = queued.try_recv() {
                        batch.push(more);
                    }
                    let mut frames = Vec::new();
                    for (id, request) in batch {
                        match encode_frame(&(id, &request), settings.max_frame) {
                            Ok(frame) => {
                                frames.extend_from_slice(&frame);
                                let mut asked = asked_now();
                                if asked.len() >= MAX_UNANSWERED {
                                    return Err(io::Error::other(format!(
                                        "{MAX_UNANSWERED} requests were left unanswered"
                                    )));
                                }
                                asked.insert(id);
                            }
                            Err(error) => {
                                let error = format!("request not sent: {error}");
                                let _ = reports.endings.send(LinkEnd::Unsent {
                                    peer,
                                    link,
                                    id,
                                    error,
                                });
                            }
                        }
                    }
                    let written = tokio::time::timeout(settings.timeout, async {
                        writer.write_all(&frames).await?;
                        writer.flush().await
                    })
                    .await;
                    match written {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => return Err(error),
                        Err(_) => return Err(not_taken()),
                    }
                }
                Ok(())
            };
            let read = async {
                loop {
                    // A place in the queue first: an answer read is never dropped unsent
                    // when the writer's end stops this.
                    let Ok(place) = reports.events.reserve().await else {
                        return Ok::<(), io::Error>(());
                    };
                    let (id, response) =
                        read_frame::<(u64, Response), _>(&mut reader, settings.max_frame).await?;
                    if !asked_now().remove(&id) {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("an answer to request {id}, which was not asked on this link"),
                        ));
                    }
                    place.send(LinkEvent::Response {
                        peer,
                        link,
                        id,
                        response,
                    });
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
    while let Some(item) = queued.recv().await {
        unsent.push(item);
    }
    tracing::debug!(%peer, %why, unsupported, "link ended");
    // Behind every answer this link read, so none is taken for lost.
    let down = LinkEvent::Down {
        peer,
        link,
        unsupported,
        unsent,
        why,
    };
    let _ = reports.events.send(down).await;
}

fn not_taken() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the other side took nothing in time",
    )
}

/// The link a peer has open to this one: stopped when its sender is dropped.
struct Serving {
    places: Arc<Semaphore>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Serves every link other peers open to this one, one task each; a peer's new link
/// replaces its old one and shares its in-flight places. Steals are answered from `ready`
/// (see the [module docs](self)).
pub(crate) async fn serve(
    mut incoming: IncomingStreams,
    reports: Reports,
    settings: LinkSettings,
    ready: Ready,
) {
    let in_flight = settings.in_flight.max(1);
    let mut serving: HashMap<PeerId, Serving> = HashMap::new();
    while let Some((peer, stream)) = incoming.next().await {
        // Forgotten once its link ended and none of its requests wait for answers.
        serving.retain(|_, s| !s.task.is_finished() || s.places.available_permits() < in_flight);
        let places = match serving.remove(&peer) {
            // Dropping the old one's `stop` ends it.
            Some(old) => old.places,
            None => Arc::new(Semaphore::new(in_flight)),
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(incoming_link(
            peer,
            stream,
            reports.clone(),
            settings,
            places.clone(),
            ready.clone(),
            stopped,
        ));
        serving.insert(peer, Serving { places, stop, task });
    }
    for s in serving.into_values() {
        drop(s.stop);
    }
}

/// One peer's link to this one: reads its requests while it has free places, and writes the
/// answers as the event loop gives them (and a steal's, from `ready`, at once).
async fn incoming_link(
    peer: PeerId,
    stream: Stream,
    reports: Reports,
    settings: LinkSettings,
    places: Arc<Semaphore>,
    ready: Ready,
    mut stopped: oneshot::Receiver<()>,
) {
    let (mut reader, mut writer) = stream.split();
    let (answers, mut to_write) = mpsc::channel::<Answer>(settings.in_flight.max(1));
    // Receipts of answers taken off the queue and not known to be written, by the answer's
    // place in the batch being written.
    let receipts: Mutex<Vec<(usize, Receipt)>> = Mutex::new(Vec::new());
    let receipts_now = || receipts.lock().unwrap_or_else(PoisonError::into_inner);
    let read = async {
        loop {
            let Ok(place) = places.clone().acquire_owned().await else {
                return "closed".to_string();
            };
            let (id, request) =
                match read_frame::<(u64, Request), _>(&mut reader, settings.max_frame).await {
                    Ok(frame) => frame,
                    Err(error) => return error.to_string(),
                };
            if let Request::Steal { max, can_run } = &request {
                let tasks = ready.give_unrecorded(*max, can_run);
                let left = u32::try_from(ready.len()).unwrap_or(u32::MAX);
                let answer = Answer {
                    id,
                    response: Response::Stolen {
                        tasks: tasks.clone(),
                        ready: left,
                    },
                    receipt: Some(Receipt { tasks, place }),
                    _place: None,
                };
                // Never full: the answer holds one of the places, and the queue has as many.
                if let Err(error) = answers.try_send(answer) {
                    // Its tasks go back all the same.
                    if let Some(receipt) = error.into_inner().receipt {
                        let _ = reports.endings.send(receipt.end(peer, false));
                    }
                    return "the answers' queue is gone".to_string();
                }
                continue;
            }
            let reply = Reply {
                peer,
                id,
                answers: answers.clone(),
                place,
            };
            let event = LinkEvent::Request {
                peer,
                request,
                reply,
            };
            if reports.events.send(event).await.is_err() {
                return "the peer stopped".to_string();
            }
        }
    };
    let write = async {
        while let Some(first) = to_write.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = to_write.try_recv() {
                batch.push(more);
            }
            receipts_now().extend(
                (batch.iter_mut().enumerate())
                    .filter_map(|(i, answer)| Some((i, answer.receipt.take()?))),
            );
            let written = tokio::time::timeout(settings.timeout, async {
                let mut whole = Vec::with_capacity(batch.len());
                for answer in &batch {
                    whole.push(write_answer(&mut writer, answer, settings.max_frame).await?);
                }
                writer.flush().await?;
                Ok::<_, io::Error>(whole)
            })
            .await;
            let whole = match written {
                Ok(Ok(whole)) => whole,
                Ok(Err(error)) => return error.to_string(),
                Err(_) => return not_taken().to_string(),
            };
            let written = std::mem::take(&mut *receipts_now());
            for (i, receipt) in written {
                let sent = whole.get(i).copied().unwrap_or(false);
                let _ = reports.endings.send(receipt.end(peer, sent));
            }
            // The batch's places are free again as it drops.
        }
        "closed".to_string()
    };
    let why = tokio::select! {
        why = read => why,
        why = write => why,
        _ = &mut stopped => "replaced by a new link".to_string(),
    };
    tracing::debug!(%peer, %why, "incoming link ended");
    // Every receipt not known to be written says so: those being written, and those queued.
    to_write.close();
    let mut unsent: Vec<Receipt> = (std::mem::take(&mut *receipts_now()).into_iter())
        .map(|(_, receipt)| receipt)
        .collect();
    while let Some(answer) = to_write.recv().await {
        unsent.extend(answer.receipt);
    }
    for receipt in unsent {
        let _ = (reports.endings).send(receipt.end(peer, false));
    }
}

/// Writes one answer: whether it went whole. One too large for a frame goes as a refusal
/// that says so.
async fn write_answer<W: futures_util::AsyncWrite + Unpin>(
    writer: &mut W,
    answer: &Answer,
    max_frame: usize,
) -> io::Result<bool> {
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
        let (events, rx) = mpsc::channel(16);
        let (endings, _) = mpsc::unbounded_channel();
        (
            Links::new(control, Reports { events, endings }, SETTINGS),
            rx,
        )
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
        let link = links.open[&peer].link;
        assert_eq!(links.next_deadline(), Some(now + SETTINGS.timeout));
        assert_eq!(links.expired(now + SETTINGS.timeout), vec![10]);
        assert_eq!(
            links.answered(peer, link, 1),
            None,
            "the answer came too late"
        );
        assert_eq!(links.answered(peer, link, 2), Some(11));
        assert_eq!(links.next_deadline(), None);
        assert!(links.expired(now + 2 * SETTINGS.timeout).is_empty());
    }

    #[tokio::test]
    async fn a_link_that_ends_fails_its_requests_written_or_not() {
        let (mut links, _events) = links();
        let (peer, other) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        links.send(peer, 20, audit(), now).unwrap();
        links.send(peer, 21, audit(), now).unwrap();
        links.send(other, 22, audit(), now).unwrap();
        let (link, other_link) = (links.open[&peer].link, links.open[&other].link);
        // Request 2 (tag 21) was never written; request 1 (tag 20) was. Neither is sent
        // again: a peer that cannot be reached would have them go round for ever.
        let (again, mut failed) = links.down(peer, link, false, vec![(2, audit())]);
        failed.sort_unstable();
        assert!(again.is_empty());
        assert_eq!(failed, vec![20, 21]);
        assert!(
            !links.open.contains_key(&peer),
            "a new link opens on the next send"
        );
        assert_eq!(
            links.answered(other, other_link, 3),
            Some(22),
            "another peer's is untouched"
        );
        assert_eq!(links.next_deadline(), None);
    }

    #[tokio::test]
    async fn an_answer_counts_only_from_the_peer_and_link_its_request_went_on() {
        let (mut links, _events) = links();
        let (peer, other) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        links.send(peer, 40, audit(), now).unwrap();
        links.send(other, 41, audit(), now).unwrap();
        let (link, other_link) = (links.open[&peer].link, links.open[&other].link);
        assert_eq!(
            links.answered(other, other_link, 1),
            None,
            "another peer's answer"
        );
        assert_eq!(
            links.answered(peer, other_link, 1),
            None,
            "another link's answer"
        );
        assert_eq!(links.answered(peer, link, 1), Some(40));
        assert_eq!(links.answered(peer, link, 1), None, "answered once");
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
