//! What logwrite tells the operator, on stderr only, rate-limited.
//!
//! Never into memlogd: when logwrite runs under init its stderr does reach
//! memlogd, but as source `logwrite`, which the file output never writes
//! back; and a failure that repeats is printed at most once per
//! [`INTERVAL`], with the number of repeats, so a full disk cannot turn
//! into a flood of messages about itself.

use std::io::Write;
use std::time::{Duration, Instant};

/// Least time between two messages about the same ongoing trouble.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Prints one line to stderr, `logwrite: OUTPUT: MSG`.
pub fn say(output: &str, msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "logwrite: {output}: {msg}");
}

/// An episode of trouble (an output failing, memlogd unreachable): counted,
/// reported at its start, at most every [`INTERVAL`] while it lasts, and at
/// its end.
#[derive(Debug)]
pub struct Episode {
    output: String,
    what: &'static str,
    /// Failures in this episode.
    count: u64,
    /// Failures ever.
    pub total: u64,
    since_print: u64,
    last_print: Option<Instant>,
}

impl Episode {
    pub fn new(output: &str, what: &'static str) -> Episode {
        Episode {
            output: output.to_owned(),
            what,
            count: 0,
            total: 0,
            since_print: 0,
            last_print: None,
        }
    }

    /// One more failure; `detail` says what failed.
    pub fn fail(&mut self, detail: &str) {
        self.count += 1;
        self.total += 1;
        self.since_print += 1;
        let due = self.last_print.map_or(true, |t| t.elapsed() >= INTERVAL);
        if self.count == 1 || due {
            let repeats = if self.since_print > 1 {
                format!(" ({} failures since the last message)", self.since_print)
            } else {
                String::new()
            };
            say(
                &self.output,
                &format!("{}: {detail}{repeats}; retrying with backoff", self.what),
            );
            self.last_print = Some(Instant::now());
            self.since_print = 0;
        }
    }

    /// True while the trouble lasts.
    pub fn active(&self) -> bool {
        self.count > 0
    }

    /// The trouble is over.
    pub fn recover(&mut self, msg: &str) {
        if self.count > 0 {
            say(
                &self.output,
                &format!(
                    "{msg} after {} failed attempts ({} in total)",
                    self.count, self.total
                ),
            );
        }
        self.count = 0;
        self.since_print = 0;
        self.last_print = None;
    }
}

/// Counts records lost (overwritten in memlogd before this output got them)
/// and reports them, at most every [`INTERVAL`].
#[derive(Debug)]
pub struct LostCounter {
    output: String,
    pub total: u64,
    unreported: u64,
    last_print: Option<Instant>,
}

impl LostCounter {
    pub fn new(output: &str) -> LostCounter {
        LostCounter {
            output: output.to_owned(),
            total: 0,
            unreported: 0,
            last_print: None,
        }
    }

    pub fn add(&mut self, n: u64) {
        self.total += n;
        self.unreported += n;
        self.flush(false);
    }

    /// Prints what was not reported yet (if due, or always with `force`).
    pub fn flush(&mut self, force: bool) {
        if self.unreported == 0 {
            return;
        }
        if force || self.last_print.map_or(true, |t| t.elapsed() >= INTERVAL) {
            say(
                &self.output,
                &format!(
                    "{} records lost: memlogd overwrote them before this output got them ({} lost in total)",
                    self.unreported, self.total
                ),
            );
            self.unreported = 0;
            self.last_print = Some(Instant::now());
        }
    }
}
