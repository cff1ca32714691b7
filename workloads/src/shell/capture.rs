//! A command's output pipes, each read to its end by a thread of its own into a buffer
//! capped at [`CAPTURE_MAX`] bytes, so that the command never blocks on a full pipe.

use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::CAPTURE_MAX;

/// One output pipe, read to its end by its own thread into a capped buffer.
pub(super) struct Capture {
    /// The bytes kept, and whether more came than [`CAPTURE_MAX`].
    shared: Arc<Mutex<(Vec<u8>, bool)>>,
    /// Told when the pipe reached its end.
    done: std::sync::mpsc::Receiver<()>,
}

impl Capture {
    pub(super) fn start(pipe: Option<impl Read + Send + 'static>) -> Capture {
        let shared = Arc::new(Mutex::new((Vec::new(), false)));
        let (tx, done) = std::sync::mpsc::sync_channel(1);
        match pipe {
            Some(mut pipe) => {
                let buffer = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("peer-shell-output".into())
                    .spawn(move || {
                        let mut chunk = vec![0u8; 64 << 10];
                        loop {
                            let n = match pipe.read(&mut chunk) {
                                Ok(0) => break,
                                Ok(n) => n,
                                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                                Err(_) => break,
                            };
                            let mut b = buffer.lock().unwrap_or_else(PoisonError::into_inner);
                            let room = CAPTURE_MAX.saturating_sub(b.0.len());
                            b.0.extend_from_slice(&chunk[..n.min(room)]);
                            b.1 |= n > room;
                        }
                        let _ = tx.send(());
                    });
                if spawned.is_err() {
                    // No thread to read it: the pipe closes, and the command sees EPIPE.
                    shared.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
                }
            }
            None => drop(tx),
        }
        Capture { shared, done }
    }

    /// What was read: all of it, or what came before `deadline`.
    pub(super) fn finish(self, deadline: Option<Instant>) -> (Vec<u8>, bool) {
        match deadline {
            None => {
                let _ = self.done.recv();
            }
            Some(deadline) => {
                let _ = self
                    .done
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()));
            }
        }
        let mut b = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        (std::mem::take(&mut b.0), b.1)
    }
}
