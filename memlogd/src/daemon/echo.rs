//! Optional echo of records to stdout (`TIME;SOURCE;MSG`, as LinuxKit's
//! memlogd prints them). A console can be slow, so the event loop never
//! writes to it: it hands batches to one writer thread through a bounded
//! channel and counts what did not fit.

use crossbeam_channel::{bounded, Sender, TrySendError};
use std::io::Write;
use std::thread::JoinHandle;

/// Batches of text queued for the console at most.
const QUEUE: usize = 64;
/// A batch is handed over when it reaches this size (or at the end of a loop turn).
const BATCH: usize = 64 * 1024;

/// The loop's side of the echo.
pub struct Echo {
    tx: Option<Sender<Vec<u8>>>,
    batch: Vec<u8>,
    batch_lines: u64,
    /// Lines dropped since the last notice was queued.
    dropped: u64,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    /// Starts the writer thread.
    pub fn start() -> Echo {
        let (tx, rx) = bounded::<Vec<u8>>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("memlogd-echo".into())
            .spawn(move || {
                let mut out = std::io::stdout().lock();
                for chunk in rx {
                    if out.write_all(&chunk).and_then(|_| out.flush()).is_err() {
                        // stdout is gone: keep draining so the loop never notices.
                        continue;
                    }
                }
            })
            .ok();
        Echo {
            tx: thread.as_ref().map(|_| tx),
            batch: Vec::new(),
            batch_lines: 0,
            dropped: 0,
            thread,
        }
    }

    /// Adds one record to the current batch. Returns lines dropped so far
    /// that the caller should count (0 normally).
    pub fn record(&mut self, time_ns: i64, source: &[u8], msg: &[u8]) -> u64 {
        if self.tx.is_none() {
            return 0;
        }
        crate::timefmt::write_rfc3339_nano(&mut self.batch, time_ns);
        self.batch.push(b';');
        // A console is a terminal: control characters escaped (crate::escape).
        crate::escape::write_with(&mut self.batch, source, Some(b';'));
        self.batch.push(b';');
        crate::escape::write(&mut self.batch, msg);
        self.batch.push(b'\n');
        self.batch_lines += 1;
        if self.batch.len() >= BATCH {
            self.flush()
        } else {
            0
        }
    }

    /// Hands the batch to the writer thread. Returns the number of lines
    /// dropped (the queue was full).
    pub fn flush(&mut self) -> u64 {
        let Some(tx) = &self.tx else { return 0 };
        if self.batch.is_empty() {
            return 0;
        }
        if self.dropped > 0 {
            let note = format!(
                "memlogd: {} lines not echoed (stdout too slow)\n",
                self.dropped
            );
            self.batch.splice(0..0, note.into_bytes());
        }
        let chunk = std::mem::take(&mut self.batch);
        let lines = std::mem::take(&mut self.batch_lines);
        match tx.try_send(chunk) {
            Ok(()) => {
                self.dropped = 0;
                0
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped += lines;
                lines
            }
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.flush();
        self.tx = None;
        // The writer may be stuck on a console that never drains; do not
        // wait for it at exit.
        drop(self.thread.take());
    }
}
