//! Pings on one long-lived stream per watched peer, at the interval [`crate::liveness`]
//! chooses for it; and the answers to other peers' pings.
//!
//! Both run as tasks of their own, beside the event loop, like libp2p's own ping: a peer
//! whose event loop is busy still answers, and a ping costs the loop one message when the
//! answer comes, not a request and a response.

use std::time::Duration;

use futures_util::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::{Control, IncomingStreams};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::commands::Internal;

/// The protocol: the pinger writes 8 bytes, the other side writes them back.
pub(crate) const ALIVE: StreamProtocol = StreamProtocol::new("/peer/alive/1");
/// A ping unanswered this long ends its stream, and a new one is opened. Suspicion does
/// not wait for it: [`crate::liveness`] counts silence on its own.
const GIVE_UP: Duration = Duration::from_secs(10);

/// Answers the pings of every peer that opens a stream, each stream in a task of its own.
pub(crate) async fn answer(mut incoming: IncomingStreams) {
    while let Some((_peer, mut stream)) = incoming.next().await {
        tokio::spawn(async move {
            let mut ping = [0u8; 8];
            while stream.read_exact(&mut ping).await.is_ok() {
                if stream.write_all(&ping).await.is_err() || stream.flush().await.is_err() {
                    break;
                }
            }
        });
    }
}

/// The task pinging one peer; stopped when dropped.
pub(crate) struct Pinger {
    interval: watch::Sender<Duration>,
    task: JoinHandle<()>,
}

impl Pinger {
    /// Starts pinging `peer` (known to the event loop as `number`) every `interval`,
    /// reporting each answer as [`Internal::Alive`].
    pub(crate) fn start(
        control: Control,
        peer: PeerId,
        number: u64,
        interval: Duration,
        alive: mpsc::Sender<Internal>,
    ) -> Pinger {
        let (tx, rx) = watch::channel(interval);
        let task = tokio::spawn(ping(control, peer, number, rx, alive));
        Pinger { interval: tx, task }
    }

    /// Pings at a new interval; at once if it changed, so that a closer watch starts now.
    pub(crate) fn set_interval(&self, interval: Duration) {
        self.interval.send_if_modified(|current| {
            let changed = *current != interval;
            *current = interval;
            changed
        });
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn ping(
    mut control: Control,
    peer: PeerId,
    number: u64,
    mut interval: watch::Receiver<Duration>,
    alive: mpsc::Sender<Internal>,
) {
    let mut count = 0u64;
    loop {
        let every = *interval.borrow_and_update();
        let mut stream = match control.open_stream(peer, ALIVE).await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%peer, %error, "no ping stream");
                if !wait(every, &mut interval).await {
                    return;
                }
                continue;
            }
        };
        loop {
            count += 1;
            let sent = count.to_le_bytes();
            let mut back = [0u8; 8];
            let answered = tokio::time::timeout(GIVE_UP, async {
                stream.write_all(&sent).await?;
                stream.flush().await?;
                stream.read_exact(&mut back).await
            })
            .await;
            match answered {
                Ok(Ok(())) if back == sent => {
                    if alive.send(Internal::Alive(number)).await.is_err() {
                        return;
                    }
                }
                _ => break,
            }
            let every = *interval.borrow_and_update();
            if !wait(every, &mut interval).await {
                return;
            }
        }
    }
}

/// Sleeps `every`, or until the interval changes; false when the pinger is stopped.
async fn wait(every: Duration, interval: &mut watch::Receiver<Duration>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(every) => true,
        changed = interval.changed() => changed.is_ok(),
    }
}
