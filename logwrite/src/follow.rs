//! The loop every output runs on its own thread: connect to memlogd asking
//! for everything after the output's saved position, hand each record to
//! the output, commit at the end of each batch, and on any trouble (memlogd
//! gone, the output failing) back off and start again from the last
//! committed position. It never spins: every retry waits first.
//!
//! Each output has its own connection and position, so a full disk does not
//! hold back forwarding, and a dead syslog server does not hold back files.
//!
//! Stopping (SIGTERM, SIGINT): the loop looks at the shared [`Stop`] at
//! least once a [`TICK`] (the connection reads with that timeout) and its
//! backoff sleeps wake up at once; the output then commits everything it
//! took ([`Sink::finish`]) and the loop returns.

use crate::report::{say, Episode};
use memlog::client::Client;
use memlog::proto::{Mode, Position, RecordRef, Reply, Request};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often an idle output gets a [`Sink::tick`].
pub const TICK: Duration = Duration::from_secs(1);
/// Longest time between commits while memlogd sends without a pause.
pub const COMMIT_EVERY: Duration = Duration::from_millis(100);

/// An output: the file tree or one remote server.
pub trait Sink {
    /// Its name in messages (`files`, `tcp://host:port`).
    fn name(&self) -> &str;
    /// Gets ready to write (open the directory, connect, load the saved
    /// position the first time). Called before every (re)connection to memlogd.
    fn open(&mut self) -> io::Result<()>;
    /// Where to resume: the last committed position.
    fn resume(&self) -> Option<Position>;
    /// Narrows the request to what this output takes (see
    /// [`crate::select::Selector::narrow`]); by default it asks for everything.
    fn narrow(&self, _req: &mut Request) {}
    /// Takes one record at position `pos` (`None` from a server without
    /// sequence numbers). May buffer.
    fn record(&mut self, r: &RecordRef<'_>, pos: Option<Position>) -> io::Result<()>;
    /// `count` records were lost before this output got them; `pos` is the
    /// position just before the next record.
    fn lost(&mut self, count: u64, pos: Option<Position>) -> io::Result<()>;
    /// The first line of a connection: memlogd's hello (instance, first,
    /// next), or `None` from a server without sequence numbers.
    fn hello(&mut self, _server: Option<(u64, u64, u64)>) {}
    /// The position asked for, `saved`, is one this memlogd instance has
    /// not reached (its next record is `next`): the saved state is wrong.
    /// The output drops it; the loop then connects again at once, asking
    /// from [`Sink::resume`].
    fn position_ahead(&mut self, saved: Position, next: u64);
    /// Writes out what is buffered and saves the position of the last
    /// record taken. True if records were written (or sent) since the last
    /// commit, and so are now committed.
    fn commit(&mut self) -> io::Result<bool>;
    /// The last commit before logwrite exits: like [`Sink::commit`], and
    /// made durable (fsynced) where the output can.
    fn finish(&mut self) -> io::Result<()> {
        self.commit().map(|_| ())
    }
    /// Periodic work (timed fsync, health checks); about every [`TICK`].
    fn tick(&mut self) -> io::Result<()>;
    /// The next time [`Sink::timers`] is due (the wait for memlogd ends
    /// then at the latest).
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// A descriptor that becomes readable when [`Sink::timers`] should run
    /// at once (a [`Wake`]).
    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// Work at [`Sink::deadline`] or when [`Sink::wake_fd`] is readable.
    fn timers(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Drops everything written since the last commit and closes the
    /// output; the next [`Sink::open`] starts again from [`Sink::resume`].
    fn fail(&mut self);
}

/// The flag that tells every output to stop, and wakes those waiting.
#[derive(Debug, Default)]
pub struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    /// Tells every output to stop.
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    pub fn is_set(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps `d`, or less if told to stop meanwhile; true if stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        let mut stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        while !*stopped {
            let now = Instant::now();
            if now >= end {
                break;
            }
            stopped = self
                .wake
                .wait_timeout(stopped, end - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *stopped
    }
}

/// A request from another thread (the signal handler's), that wakes an
/// output waiting for memlogd: a flag and a socket pair.
#[derive(Debug)]
pub struct Wake {
    pending: AtomicBool,
    rd: UnixStream,
    wr: UnixStream,
}

impl Wake {
    pub fn new() -> io::Result<Wake> {
        let (rd, wr) = UnixStream::pair()?;
        rd.set_nonblocking(true)?;
        wr.set_nonblocking(true)?;
        Ok(Wake {
            pending: AtomicBool::new(false),
            rd,
            wr,
        })
    }

    /// Asks, and wakes the output (never blocks: a full socket already
    /// wakes it).
    pub fn request(&self) {
        self.pending.store(true, Ordering::SeqCst);
        let _ = (&self.wr).write(b"!");
    }

    /// True (once) if asked since the last call.
    pub fn take(&self) -> bool {
        let mut buf = [0u8; 64];
        while matches!((&self.rd).read(&mut buf), Ok(n) if n > 0) {}
        self.pending.swap(false, Ordering::SeqCst)
    }

    /// Readable while a request is pending.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.rd.as_fd()
    }
}

/// Waits at most `timeout` for `conn` to be readable or `wake` to be;
/// (conn readable, woken).
fn wait_for(conn: BorrowedFd<'_>, wake: Option<BorrowedFd<'_>>, timeout: Duration) -> (bool, bool) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let ms =
        PollTimeout::try_from(timeout.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::ZERO);
    let mut fds = vec![PollFd::new(conn, PollFlags::POLLIN)];
    if let Some(w) = wake {
        fds.push(PollFd::new(w, PollFlags::POLLIN));
    }
    match poll(&mut fds, ms) {
        Ok(n) if n > 0 => {
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        }
        // Interrupted or failed: let the read find out.
        Ok(_) => (false, false),
        Err(_) => (true, false),
    }
}

/// Exponential backoff between retries.
#[derive(Debug)]
pub struct Backoff {
    cur: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { cur: min, min, max }
    }
    /// Sleeps (until `stop` is set, at most), then doubles the next wait
    /// (up to the cap).
    pub fn wait(&mut self, stop: &Stop) {
        stop.sleep(self.cur);
        self.cur = (self.cur * 2).min(self.max);
    }
    pub fn reset(&mut self) {
        self.cur = self.min;
    }
}

/// Why one connection's stream ended.
enum Ended {
    /// memlogd closed it or went away (or refused us).
    Memlogd(String),
    /// The output failed.
    Sink(io::Error),
    /// Told to stop.
    Stopped,
    /// The output dropped a position memlogd never reached: ask again.
    Again,
}

/// What one output's loop keeps across connections.
struct Ctx {
    said_linuxkit: bool,
    memlogd_trouble: Episode,
    output_trouble: Episode,
    /// Without a saved position, where this output started in the current
    /// memlogd instance: (instance, first sequence number then held). If a
    /// failure comes before the first commit, what the ring overwrote since
    /// is still counted as lost.
    floor: Option<(u64, u64)>,
}

/// Runs `sink` against the memlogd query socket at `socket` until `stop`
/// is set; then commits what it took and returns.
pub fn run(sink: &mut dyn Sink, socket: &Path, max_backoff: Duration, stop: &Stop) {
    let name = sink.name().to_owned();
    let mut backoff = Backoff::new(Duration::from_millis(100), max_backoff);
    let mut ctx = Ctx {
        said_linuxkit: false,
        memlogd_trouble: Episode::new(&name, "memlogd"),
        output_trouble: Episode::new(&name, "cannot write"),
        floor: None,
    };
    while !stop.is_set() {
        if let Err(e) = sink.open() {
            ctx.output_trouble.fail(&e.to_string());
            sink.fail();
            backoff.wait(stop);
            continue;
        }
        let mut req = Request::new(Mode::DumpFollow);
        req.after = sink.resume();
        sink.narrow(&mut req);
        let client = UnixStream::connect(socket).and_then(|s| {
            s.set_read_timeout(Some(TICK))?;
            Client::start(s, &req)
        });
        let mut client = match client {
            Ok(c) => c,
            Err(e) => {
                ctx.memlogd_trouble
                    .fail(&format!("cannot connect to {}: {e}", socket.display()));
                backoff.wait(stop);
                continue;
            }
        };
        let mut progress = false;
        let ended = pump(sink, &mut client, req.after, &mut progress, &mut ctx, stop);
        if progress {
            backoff.reset();
        }
        match ended {
            Ended::Memlogd(why) => {
                ctx.memlogd_trouble.fail(&why);
                // Whatever was taken is written before we wait.
                if let Err(e) = sink.commit() {
                    ctx.output_trouble.fail(&e.to_string());
                    sink.fail();
                }
            }
            Ended::Sink(e) => {
                ctx.output_trouble.fail(&e.to_string());
                sink.fail();
            }
            Ended::Stopped => break,
            Ended::Again => continue,
        }
        backoff.wait(stop);
    }
    // Everything taken is written and its position saved before exit.
    if let Err(e) = sink.finish() {
        say(
            &name,
            &format!(
                "stopping: cannot write what was taken: {e}; it is written again at the next start"
            ),
        );
        sink.fail();
    }
}

fn pump(
    sink: &mut dyn Sink,
    client: &mut Client,
    after: Option<Position>,
    progress: &mut bool,
    ctx: &mut Ctx,
    stop: &Stop,
) -> Ended {
    let mut instance = None;
    let mut last_tick = Instant::now();
    let mut last_commit = Instant::now();
    let mut memlogd_ok = false;
    // Lines handled since the clock and the stop flag were last looked at.
    let mut run = 0u32;
    loop {
        let ready = client.ready();
        // While lines are buffered, the stop flag and the clock are looked
        // at every 64 lines (well under a millisecond), not at every one.
        run += 1;
        if ready && run < 64 {
            // Straight to the next line.
        } else {
            run = 0;
            if stop.is_set() {
                return Ended::Stopped;
            }
        }
        // Commit before a read that may block; while memlogd keeps the
        // socket full, at most every COMMIT_EVERY (one state save and one
        // large write per batch, not per 64 KiB read).
        let pause = !ready && (last_commit.elapsed() >= COMMIT_EVERY || !client.more_waiting());
        if pause {
            last_commit = Instant::now();
            match sink.commit() {
                // "Writing again" only once something was written and
                // committed after the trouble.
                Ok(true) => {
                    *progress = true;
                    ctx.output_trouble.recover("writing again");
                }
                Ok(false) => *progress |= memlogd_ok && !ctx.output_trouble.active(),
                Err(e) => return Ended::Sink(e),
            }
        }
        if run == 0 && last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            if let Err(e) = sink.tick() {
                return Ended::Sink(e);
            }
        }
        if !ready {
            // Wait for memlogd, a wake-up or the output's next deadline,
            // whichever comes first (at most until the next tick).
            let mut wait = TICK.saturating_sub(last_tick.elapsed());
            if let Some(d) = sink.deadline() {
                wait = wait.min(d.saturating_duration_since(Instant::now()));
            }
            let (readable, woken) = wait_for(client.stream().as_fd(), sink.wake_fd(), wait);
            if woken || sink.deadline().is_some_and(|d| d <= Instant::now()) {
                if let Err(e) = sink.timers() {
                    return Ended::Sink(e);
                }
            }
            if !readable {
                continue;
            }
        }
        let line = match client.next_ref() {
            Ok(Some(l)) => l,
            Ok(None) => return Ended::Memlogd("memlogd closed the connection".into()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Ended::Memlogd(format!("reading from memlogd: {e}")),
        };
        if !memlogd_ok {
            memlogd_ok = true;
            ctx.memlogd_trouble.recover("connected to memlogd");
            // The client takes a first line that is not a hello for
            // LinuxKit's memlogd (the record borrows the client, so its
            // `server()` cannot be asked here).
            let linuxkit = !matches!(line, Reply::Hello { .. });
            if linuxkit {
                sink.hello(None);
            }
            if linuxkit && !ctx.said_linuxkit {
                ctx.said_linuxkit = true;
                say(
                    sink.name(),
                    "memlogd does not speak memlog/1 (LinuxKit's memlogd?): no exact resume; \
                     writing its whole buffer, then following (records may be written twice \
                     after a restart)",
                );
            }
        }
        let res = match line {
            Reply::Hello {
                instance: i,
                first,
                next,
            } => {
                if let Some(p) = after.filter(|p| p.instance == i && p.seq >= next) {
                    // A position this instance never reached (a state
                    // written by hand, or damaged): memlogd answers it from
                    // its oldest record; the output drops it (and matches
                    // the files instead), and asks again from there.
                    sink.position_ahead(p, next);
                    return Ended::Again;
                }
                sink.hello(Some((i, first, next)));
                let mut res = Ok(());
                if after.is_none() {
                    match ctx.floor {
                        Some((fi, ff)) if fi == i => {
                            if first > ff {
                                let pos = Position {
                                    instance: i,
                                    seq: first - 1,
                                };
                                res = sink.lost(first - ff, Some(pos));
                            }
                        }
                        _ => ctx.floor = Some((i, first)),
                    }
                }
                if let Some(p) = after.filter(|p| p.instance != i) {
                    say(
                        sink.name(),
                        &format!(
                            "memlogd restarted (instance {i:016x}, was {:016x}): writing its buffer from the oldest record",
                            p.instance
                        ),
                    );
                }
                instance = Some(i);
                res
            }
            Reply::Record(r) => {
                let pos = match (instance, r.seq) {
                    (Some(i), Some(seq)) => Some(Position { instance: i, seq }),
                    _ => None,
                };
                sink.record(&r, pos)
            }
            Reply::Lost { count, next } => {
                let pos = match (instance, next) {
                    (Some(i), Some(n)) if n > 0 => Some(Position {
                        instance: i,
                        seq: n - 1,
                    }),
                    _ => None,
                };
                sink.lost(count, pos)
            }
            Reply::Error(e) => return Ended::Memlogd(format!("memlogd refused the request: {e}")),
            Reply::Stats(_) => Ok(()),
        };
        if let Err(e) = res {
            return Ended::Sink(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn stop_wakes_a_sleeping_backoff() {
        let stop = Arc::new(Stop::default());
        assert!(!stop.sleep(Duration::from_millis(1)));
        let s = Arc::clone(&stop);
        // Without the wake-up this sleeps 30 s and returns false.
        let sleeper = std::thread::spawn(move || s.sleep(Duration::from_secs(30)));
        stop.stop();
        assert!(sleeper.join().expect("join"));
        assert!(stop.is_set() && stop.sleep(Duration::from_secs(30)));
    }
}
