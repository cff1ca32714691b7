//! `peer map`'s progress on stderr.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress on stderr: a bar on a terminal, otherwise a line about every second.
pub(super) enum Progress {
    Bar(ProgressBar),
    Lines {
        total: usize,
        last: Instant,
        /// Done and failed as last shown.
        shown: (usize, usize),
    },
}

impl Progress {
    pub(super) fn new(total: usize) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "peer map: {wide_bar} {pos}/{len} done, {msg} [{elapsed_precise}, eta {eta}]",
            ) {
                bar.set_style(style);
            }
            bar.set_message("0 failed");
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                total,
                last: Instant::now(),
                shown: (0, 0),
            }
        }
    }

    pub(super) fn show(&mut self, done: usize, failed: usize) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(done as u64);
                bar.set_message(format!("{failed} failed"));
            }
            Progress::Lines { total, last, shown } => {
                // A line a second while it moves, one every ten seconds while it does not.
                let moved = *shown != (done, failed);
                let due = if moved { 1 } else { 10 };
                if last.elapsed() >= Duration::from_secs(due) {
                    *last = Instant::now();
                    *shown = (done, failed);
                    eprintln!("peer map: {done}/{total} done, {failed} failed");
                }
            }
        }
    }

    /// Runs `f` with the bar hidden, so that printed lines do not tear it.
    pub(super) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match self {
            Progress::Bar(bar) => bar.suspend(f),
            Progress::Lines { .. } => f(),
        }
    }

    pub(super) fn clear(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
