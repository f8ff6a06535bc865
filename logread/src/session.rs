//! One run of logread: the requests it sends, where each filter runs, the
//! last-N tail, the resume position, and reconnection.
//!
//! Where filters run:
//! - memlogd (when it speaks `memlog/1` and accepts the fields): sources
//!   (`-s`, `-x`), `-p`, `--since`/`--until`, `--fixed-strings -e`, and the
//!   tail `-n` (`last=N`) unless a regex is given.
//! - logread: `-e REGEX` always; everything when the server is LinuxKit's
//!   memlogd, when memlogd refused a field (an older memlogd), or with
//!   `--client-filter`. Both sides use `memlog::filter`, so the records
//!   selected are the same.
//! - A tail that cannot run in memlogd is kept here: the last N records of
//!   a dump, in a ring. With `-f`/`-F` that needs to know where the dump
//!   ends, so logread opens a follow connection first, then a dump, prints
//!   the dump's tail, then the follow stream without the records the dump
//!   already had (by sequence number; against LinuxKit's memlogd, which has
//!   none, by time, source and message).

use crate::args::{Color, Options};
use crate::cursor::CursorFile;
use crate::format;
use crate::signals;
use memlog::client::Client;
use memlog::proto::{Line, Mode, Position, Record, Request};
use std::collections::{HashSet, VecDeque};
use std::io::{self, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Why a run failed (exit status 1).
#[derive(Debug)]
pub enum Error {
    /// Writing stdout failed (a closed pipe ends the run quietly).
    Output(io::Error),
    /// Anything else, as one line.
    Msg(String),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Output(e)
    }
}

fn msg(s: impl Into<String>) -> Error {
    Error::Msg(s.into())
}

/// The next record to handle: everything of `instance` before `next` has
/// been printed or passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    instance: u64,
    next: u64,
}

impl Mark {
    fn position(self) -> Option<Position> {
        (self.next > 0).then(|| Position {
            instance: self.instance,
            seq: self.next - 1,
        })
    }
}

/// How a connection ended.
enum End {
    /// The dump is complete.
    Done,
    /// The connection closed or broke (while following, or mid-dump).
    Gone(String),
    /// memlogd answered with an error line.
    Refused(String),
    /// LinuxKit's memlogd and a tail with follow: use two connections.
    Split,
    /// SIGINT or SIGTERM.
    Interrupted,
}

/// What to do when the server turns out to be LinuxKit's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnLinuxKit {
    Continue,
    /// Keep the last N here (memlogd would have done it).
    Tail(u64),
    Split,
}

type Key = (String, String, String);

fn key(r: &Record) -> Key {
    (r.time.clone(), r.source.clone(), r.msg.clone())
}

/// One connection to the query socket.
struct Conn {
    client: Client,
    mode: Mode,
    after: Option<Position>,
    first_line: bool,
    instance: Option<u64>,
    dump_next: Option<u64>,
    seen_record: bool,
    on_linuxkit: OnLinuxKit,
    /// A client-side tail: the last `n` records, printed at the end of the dump.
    tail: Option<(u64, VecDeque<Record>)>,
    /// Records the follow connection of a split skips: below this sequence
    /// number of this instance (memlogd), or equal to these (LinuxKit).
    skip_below: Option<(u64, u64)>,
    dedupe: Option<HashSet<Key>>,
    /// Collect the keys of every record (the dump of a split, LinuxKit).
    keys: Option<HashSet<Key>>,
    collect_keys_if_linuxkit: bool,
    mark_before: Option<Mark>,
}

/// Parameters of a query.
#[derive(Clone, Copy)]
struct Query {
    mode: Mode,
    after: Option<Position>,
    tail: Option<u64>,
}

pub struct Session {
    o: Options,
    colour: bool,
    out: Vec<u8>,
    cursor: Option<CursorFile>,
    mark: Option<Mark>,
    /// memlogd refused a selection field: filter here from now on.
    fallback: bool,
    /// A client-side tail is being collected: the mark runs ahead of stdout.
    collecting: bool,
    /// The position the first query resumes after (from the cursor file).
    start_after: Option<Position>,
    /// Run the first query again (a tail was cut off by a disconnect).
    rerun_first: bool,
}

impl Session {
    /// Reads the cursor file, if any.
    pub fn new(o: Options) -> Result<Session, String> {
        let colour = match o.color {
            Color::Never => false,
            Color::Always => true,
            Color::Auto => {
                io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").map_or(true, |v| v.is_empty())
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        };
        let mut cursor = o.cursor_file.as_deref().map(CursorFile::new);
        let start_after = match &mut cursor {
            Some(c) => c.load()?,
            None => None,
        };
        Ok(Session {
            o,
            colour,
            out: Vec::with_capacity(64 * 1024),
            cursor,
            mark: None,
            fallback: false,
            collecting: false,
            start_after,
            rerun_first: false,
        })
    }

    /// Runs to the end of the dump, or follows until interrupted.
    pub fn run(&mut self) -> Result<(), Error> {
        let mut end = self.first()?;
        loop {
            match end {
                End::Done | End::Interrupted => return Ok(()),
                End::Gone(why) if self.o.retry => {
                    self.flush()?;
                    eprintln!("logread: {why}; reconnecting (--retry)");
                    end = if self.rerun_first {
                        self.rerun_first = false;
                        self.first()?
                    } else {
                        self.resume()?
                    };
                }
                End::Gone(why) if self.o.mode == Mode::Dump => return Err(msg(why)),
                End::Gone(why) => {
                    return Err(msg(format!(
                        "{why} while following (memlogd stopped?); --retry reconnects"
                    )))
                }
                End::Refused(e) => return Err(msg(format!("memlogd refused the request: {e}"))),
                End::Split => unreachable!("handled by query"),
            }
        }
    }

    fn first(&mut self) -> Result<End, Error> {
        let after = self.start_after;
        let tail = self.o.tail;
        // A tail or a resume position needs the dump part.
        let mode = match self.o.mode {
            Mode::Follow if tail.is_some() || after.is_some() => Mode::DumpFollow,
            m => m,
        };
        self.query(Query { mode, after, tail })
    }

    fn resume(&mut self) -> Result<End, Error> {
        let after = self.mark.and_then(Mark::position);
        let mode = match (self.o.mode, after) {
            (Mode::Dump, _) => Mode::Dump,
            (_, Some(_)) => Mode::DumpFollow,
            // No position (LinuxKit's memlogd): only new records.
            (_, None) => Mode::Follow,
        };
        self.query(Query {
            mode,
            after,
            tail: None,
        })
    }

    fn local(&self) -> bool {
        self.o.client_filter || self.fallback
    }

    fn request(&self, mode: Mode, after: Option<Position>) -> Request {
        let mut req = Request::new(mode);
        req.after = after;
        self.o.filter.apply_to(&mut req);
        req
    }

    /// Runs a query, falling back to local filtering if memlogd refuses a
    /// field, and to two connections where a tail needs them.
    fn query(&mut self, q: Query) -> Result<End, Error> {
        let mut split = false;
        loop {
            let local = self.local();
            let server_tail = q.tail.is_some() && self.o.regex.is_empty() && !local;
            let end = if q.tail.is_some() && q.mode != Mode::Dump && (split || !server_tail) {
                self.split(q, local)?
            } else {
                let mut req = self.request(q.mode, q.after);
                if server_tail {
                    req.last = q.tail;
                }
                let mut c = self.open(&req, local)?;
                match (q.tail, server_tail) {
                    (Some(n), false) => self.start_tail(&mut c, n),
                    (Some(n), true) if q.mode == Mode::Dump => c.on_linuxkit = OnLinuxKit::Tail(n),
                    (Some(_), true) => c.on_linuxkit = OnLinuxKit::Split,
                    (None, _) => {}
                }
                self.pump(&mut c)?
            };
            match end {
                End::Refused(_) if !local => self.fallback = true,
                End::Split => split = true,
                e => return Ok(e),
            }
        }
    }

    /// A tail with follow, kept here: a follow connection first (so nothing
    /// written meanwhile is missed), then a dump whose last N are printed,
    /// then the follow stream without what the dump had.
    fn split(&mut self, q: Query, local: bool) -> Result<End, Error> {
        let n = q.tail.unwrap_or(0);
        let mut f = self.open(&self.request(Mode::Follow, None), local)?;
        let mut d = self.open(&self.request(Mode::Dump, q.after), local)?;
        self.start_tail(&mut d, n);
        d.collect_keys_if_linuxkit = true;
        match self.pump(&mut d)? {
            End::Done => {}
            other => return Ok(other),
        }
        f.skip_below = d.instance.zip(d.dump_next);
        f.dedupe = d.keys.take();
        self.pump(&mut f)
    }

    fn start_tail(&mut self, c: &mut Conn, n: u64) {
        c.tail = Some((n, VecDeque::new()));
        c.mark_before = self.mark;
        self.collecting = true;
    }

    /// Connects and sends `req`; with `--retry`, waits for memlogd.
    fn open(&mut self, req: &Request, local: bool) -> Result<Conn, Error> {
        let path = self.o.socket.clone();
        let mut delay = Duration::from_millis(100);
        let mut told = false;
        loop {
            let res = UnixStream::connect(&path).and_then(|s| {
                if local {
                    Client::start_local(s, req)
                } else {
                    Client::start(s, req)
                }
            });
            let e = match res {
                Ok(client) => {
                    if told {
                        eprintln!("logread: connected to {}", path.display());
                    }
                    return Ok(Conn {
                        client,
                        mode: req.mode,
                        after: req.after,
                        first_line: true,
                        instance: None,
                        dump_next: None,
                        seen_record: false,
                        on_linuxkit: OnLinuxKit::Continue,
                        tail: None,
                        skip_below: None,
                        dedupe: None,
                        keys: None,
                        collect_keys_if_linuxkit: false,
                        mark_before: None,
                    });
                }
                Err(e) => e,
            };
            let what = format!("cannot connect to {}: {e}", path.display());
            if !self.o.retry {
                return Err(msg(what));
            }
            if !told {
                self.flush()?;
                eprintln!("logread: {what}; retrying (--retry)");
                told = true;
            }
            signals::waiting(|| std::thread::sleep(delay));
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Reads one connection to its end.
    fn pump(&mut self, c: &mut Conn) -> Result<End, Error> {
        loop {
            if signals::pending() {
                self.flush()?;
                return Ok(End::Interrupted);
            }
            let got = if c.client.ready() {
                c.client.next_line()
            } else {
                self.flush()?;
                signals::waiting(|| c.client.next_line())
            };
            let line = match got {
                Ok(Some(l)) => l,
                Ok(None) => return self.on_eof(c),
                // Not the protocol: reconnecting would not help.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => return Err(msg(e.to_string())),
                Err(e) => return Ok(self.gone(c, format!("lost the connection to memlogd ({e})"))),
            };
            if std::mem::take(&mut c.first_line)
                && !matches!(line, Line::Hello { .. } | Line::Error(_))
            {
                if let Some(end) = self.on_linuxkit(c)? {
                    return Ok(end);
                }
            }
            match line {
                Line::Hello {
                    instance,
                    first,
                    next,
                } => self.on_hello(c, instance, first, next),
                Line::Error(e) => {
                    if c.tail.take().is_some() {
                        self.collecting = false;
                    }
                    return Ok(End::Refused(e));
                }
                Line::Record(r) => self.on_record(c, r),
                Line::Lost { count, next } => self.on_lost(c, count, next)?,
                Line::Stats(_) => {}
            }
            if self.out.len() >= 32 * 1024 {
                self.flush()?;
            }
        }
    }

    fn gone(&mut self, c: &mut Conn, why: String) -> End {
        if c.tail.take().is_some() {
            // The tail was not printed: start over.
            self.mark = c.mark_before;
            self.collecting = false;
            self.rerun_first = true;
        }
        End::Gone(why)
    }

    fn on_eof(&mut self, c: &mut Conn) -> Result<End, Error> {
        if std::mem::take(&mut c.first_line) {
            if let Some(end) = self.on_linuxkit(c)? {
                return Ok(end);
            }
        }
        if c.mode != Mode::Dump {
            return Ok(self.gone(c, "memlogd closed the connection".into()));
        }
        if let (Some(instance), Some(next)) = (c.instance, c.dump_next) {
            // The dump covered everything before `next`.
            if self
                .mark
                .map_or(true, |m| m.instance != instance || m.next < next)
            {
                self.mark = Some(Mark { instance, next });
            }
        }
        if let Some((_, recs)) = c.tail.take() {
            self.collecting = false;
            for r in &recs {
                format::write_record(self.o.format, self.colour, r, &mut self.out);
            }
        }
        self.flush()?;
        Ok(End::Done)
    }

    fn on_linuxkit(&mut self, c: &mut Conn) -> Result<Option<End>, Error> {
        if let Some(cf) = &self.cursor {
            return Err(msg(format!(
                "--cursor-file {} needs memlogd's sequence numbers; the server at {} speaks only LinuxKit's protocol",
                cf.path().display(),
                self.o.socket.display()
            )));
        }
        if c.collect_keys_if_linuxkit {
            c.keys = Some(HashSet::new());
        }
        match c.on_linuxkit {
            OnLinuxKit::Continue => {}
            OnLinuxKit::Tail(n) => self.start_tail(c, n),
            OnLinuxKit::Split => return Ok(Some(End::Split)),
        }
        Ok(None)
    }

    fn what_after(&self, c: &Conn) -> String {
        match (&self.cursor, c.after == self.start_after) {
            (Some(cf), true) => format!("the position in {}", cf.path().display()),
            _ => "the last record seen".into(),
        }
    }

    fn on_hello(&mut self, c: &mut Conn, instance: u64, first: u64, next: u64) {
        c.instance = Some(instance);
        c.dump_next = Some(next);
        let start = match c.after {
            Some(p) if p.instance == instance && p.seq < next => p.seq + 1,
            Some(p) if p.instance == instance => {
                let _ = self.flush_stdout();
                eprintln!(
                    "logread: {} ({p}) is ahead of memlogd's newest record ({}): it was not saved by this memlogd; printing from its oldest record",
                    self.what_after(c),
                    next.saturating_sub(1)
                );
                first
            }
            Some(p) => {
                let _ = self.flush_stdout();
                eprintln!(
                    "logread: memlogd restarted since {} (instance {:016x}, now {instance:016x}): printing from its oldest record",
                    self.what_after(c),
                    p.instance
                );
                first
            }
            None if c.mode == Mode::Follow => {
                // The dump of a split already covers more: keep its mark.
                if self.mark.is_some_and(|m| m.instance == instance) {
                    return;
                }
                next
            }
            None => first,
        };
        self.mark = Some(Mark {
            instance,
            next: start,
        });
    }

    fn on_record(&mut self, c: &mut Conn, r: Record) {
        c.seen_record = true;
        if let (Some(seq), Some(instance)) = (r.seq, c.instance) {
            if c.skip_below
                .is_some_and(|(i, below)| i == instance && seq < below)
            {
                return;
            }
            self.mark = Some(Mark {
                instance,
                next: seq + 1,
            });
        } else if let Some(set) = &mut c.dedupe {
            if set.remove(&key(&r)) {
                return;
            }
            c.dedupe = None;
        }
        if let Some(keys) = &mut c.keys {
            keys.insert(key(&r));
        }
        if !self.o.regex.is_empty() && !self.o.regex.iter().any(|re| re.is_match(&r.msg)) {
            return;
        }
        if let Some((n, recs)) = &mut c.tail {
            if *n == 0 {
                return;
            }
            if recs.len() as u64 == *n {
                recs.pop_front();
            }
            recs.push_back(r);
            return;
        }
        format::write_record(self.o.format, self.colour, &r, &mut self.out);
    }

    fn on_lost(&mut self, c: &mut Conn, count: u64, next: Option<u64>) -> Result<(), Error> {
        if let (Some(n), Some(instance)) = (next, c.instance) {
            self.mark = Some(Mark { instance, next: n });
        }
        let text = if !c.seen_record && c.after.is_some() {
            format!(
                "{count} records lost since {}: memlogd's buffer overwrote them",
                self.what_after(c)
            )
        } else {
            format!("{count} records lost: memlogd overwrote them before this reader got them")
        };
        if self.o.show_lost {
            let r = Record {
                time: memlog::timefmt::rfc3339_nano(memlog::timefmt::now_ns()),
                source: "logread".into(),
                msg: text,
                severity: Some(4),
                ..Record::default()
            };
            match self.o.format {
                format::Format::Json => self
                    .out
                    .extend_from_slice(format!("{{\"lost\":{count}}}\n").as_bytes()),
                f => format::write_record(f, self.colour, &r, &mut self.out),
            }
        } else {
            self.flush_stdout()?;
            eprintln!("logread: {text}");
        }
        Ok(())
    }

    fn flush_stdout(&mut self) -> io::Result<()> {
        let mut so = io::stdout().lock();
        so.write_all(&self.out)?;
        self.out.clear();
        so.flush()
    }

    /// Writes what is buffered to stdout, then saves the position.
    fn flush(&mut self) -> Result<(), Error> {
        self.flush_stdout()?;
        if self.collecting {
            return Ok(());
        }
        if let (Some(cf), Some(p)) = (&mut self.cursor, self.mark.and_then(Mark::position)) {
            cf.save(p).map_err(|e| msg(e.to_string()))?;
        }
        Ok(())
    }
}
