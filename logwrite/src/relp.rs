//! `relp://` and `relp+tls://`: rsyslog's Reliable Event Logging Protocol,
//! with its own saved position in the log directory (as every remote).
//!
//! Frames are `TXNR SP COMMAND SP DATALEN [SP DATA] LF`. logwrite opens a
//! session (`open` with `relp_version=0`, `relp_software`,
//! `commands=syslog`), sends one `syslog` frame per record (RFC 5424 by
//! default) and keeps at most a window of frames unacknowledged (128, as
//! librelp). A record counts as delivered, and the saved position moves
//! past it, only when the server's `rsp` with `200 OK` for its TXNR
//! arrived (and for every record before it). Records the output does not
//! select move the position with the records around them.
//!
//! After a broken connection or a restart of logwrite, every record not
//! acknowledged is sent again, in order, on a new session. The only
//! duplicates possible are records whose acknowledgement was lost: the
//! position of the last record that may have reached the server is saved
//! *before* it is sent (`sent` in the state file), and records up to it
//! that are sent again are counted and reported as `possibly duplicated`.
//! A non-200 `rsp` is reported with the server's text and the connection
//! is dropped and retried with backoff from the first record not
//! acknowledged: nothing is skipped. A full window waits (reporting a
//! stalled destination every 10 s), keeping the position; each output has
//! its own thread, so files and other remotes go on meanwhile.
//!
//! Frame size: librelp servers refuse DATA over 128 KiB by default. A
//! message is bounded by memlogd's `-max-line-len` (1 KiB by default, at
//! most 1 MiB), so a frame is far below that unless the line limit was
//! raised past it; then the message is cut to fit ([`MAX_DATA`]), counted
//! and reported, and never sent as a frame the server would refuse.

use crate::dir::State;
use crate::follow::{Sink, Stop};
use crate::relpframe::{parse_frame, rsp_code, write_frame, Frame, MAX_DATA};
use crate::remote::{ByteStream, PositionStore, RemoteConfig};
use crate::report::{say, LostCounter, INTERVAL};
use crate::syslog::{Formatter, Framing};
use memlog::proto::{Position, RecordRef, Request};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames sent and not yet acknowledged, by default (librelp's window).
pub const WINDOW: usize = 128;
/// Largest `window=`.
pub const MAX_WINDOW: usize = 1024;
/// Largest TXNR (librelp wraps to 1 after it).
const MAX_TXNR: u32 = 999_999_999;
/// How long a session open and, at shutdown, the last acknowledgements
/// may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);
/// A frame unacknowledged this long makes the destination stalled.
const STALL: Duration = Duration::from_secs(10);
/// Longest wait in one read (the loop checks for stop between reads).
const READ_SLICE: Duration = Duration::from_secs(1);

/// An entry of the window: a frame sent (`txnr`), or a position that the
/// output passed without sending (a record not selected, a loss), which
/// counts as delivered once everything before it is.
#[derive(Debug)]
struct Entry {
    txnr: Option<u32>,
    pos: Option<Position>,
    acked: bool,
    sent_at: Instant,
}

/// Counts records sent again that the server may already have.
#[derive(Debug)]
struct DupCounter {
    output: String,
    total: u64,
    unreported: u64,
    last_print: Option<Instant>,
}

impl DupCounter {
    fn flush(&mut self, force: bool) {
        if self.unreported == 0 {
            return;
        }
        if force || self.last_print.map_or(true, |t| t.elapsed() >= INTERVAL) {
            say(
                &self.output,
                &format!(
                    "{} records sent again that the server may already have (their acknowledgement \
                     was lost with the connection): {} possibly duplicated in total",
                    self.unreported, self.total
                ),
            );
            self.unreported = 0;
            self.last_print = Some(Instant::now());
        }
    }
}

/// An error that names the destination.
fn err(name: &str, kind: io::ErrorKind, msg: String) -> io::Error {
    io::Error::new(kind, format!("{name}: {msg}"))
}

fn le(a: Position, b: Position) -> bool {
    a.instance == b.instance && a.seq <= b.seq
}

/// A RELP destination.
pub struct Relp {
    cfg: RemoteConfig,
    fmt: Formatter,
    stop: Arc<Stop>,
    conn: Option<Box<dyn ByteStream>>,
    /// Bytes read from the server, not yet a whole frame.
    rbuf: Vec<u8>,
    store: PositionStore,
    loaded: bool,
    /// The position saved (everything up to it acknowledged).
    committed: Option<Position>,
    /// The `sent` position saved.
    saved_sent: Option<Position>,
    /// Everything up to here is acknowledged.
    acked: Option<Position>,
    /// The last record taken (sent, buffered or passed).
    taken: Option<Position>,
    window: VecDeque<Entry>,
    /// Frames in `window` not acknowledged.
    inflight: usize,
    /// Frames not yet handed to the connection, and the last record in them.
    out: Vec<u8>,
    out_hi: Option<Position>,
    /// The last record handed to the connection.
    sent_hi: Option<Position>,
    next_txnr: u32,
    /// Records up to here that are sent are possibly duplicated.
    dup_until: Option<Position>,
    dups: DupCounter,
    lost: LostCounter,
    /// Records acknowledged since the last commit.
    acks: u64,
    stall_said: Option<Instant>,
    stalled: bool,
    /// Messages cut to fit [`MAX_DATA`].
    cut: u64,
    cut_said: Option<Instant>,
    key_warned: bool,
    msg: Vec<u8>,
    /// The server said serverclose on this connection: it answers frames
    /// in order and says it after its last answer, so what it did not
    /// acknowledge it did not take, and is not counted as duplicated.
    server_closed: bool,
}

impl Relp {
    pub fn new(cfg: RemoteConfig, hostname: String, stop: Arc<Stop>) -> Relp {
        let fmt = Formatter {
            format: cfg.format,
            framing: Framing::None,
            hostname,
        };
        let name = cfg.name.clone();
        Relp {
            store: PositionStore::new(&cfg),
            cfg,
            fmt,
            stop,
            conn: None,
            rbuf: Vec::new(),
            loaded: false,
            committed: None,
            saved_sent: None,
            acked: None,
            taken: None,
            window: VecDeque::new(),
            inflight: 0,
            out: Vec::with_capacity(128 * 1024),
            out_hi: None,
            sent_hi: None,
            next_txnr: 1,
            dup_until: None,
            dups: DupCounter {
                output: name.clone(),
                total: 0,
                unreported: 0,
                last_print: None,
            },
            lost: LostCounter::new(&name),
            acks: 0,
            stall_said: None,
            stalled: false,
            cut: 0,
            cut_said: None,
            key_warned: false,
            msg: Vec::new(),
            server_closed: false,
        }
    }

    /// Saves the position (and `sent`), best effort as every remote.
    fn save(&mut self, sync: bool) {
        let st = State {
            position: self.committed,
            sent: self.saved_sent,
            ..State::default()
        };
        self.store.save(&st, sync);
    }

    fn load(&mut self) {
        self.loaded = true;
        if let Some(st) = self.store.load() {
            self.committed = st.position;
            self.acked = st.position;
            self.taken = st.position;
            self.saved_sent = st.sent;
            // Sent before the kill and not acknowledged: possibly
            // on the server already.
            self.dup_until = st.sent.filter(|s| match st.position {
                Some(p) => p.instance != s.instance || p.seq < s.seq,
                None => true,
            });
        }
    }

    /// Writes the buffered frames to the server, saving first the position
    /// of the last of them as `sent`.
    fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        if self.out_hi.is_some() && self.out_hi != self.saved_sent {
            self.saved_sent = self.out_hi;
            self.save(false);
        }
        // An answer or a serverclose that came meanwhile, first.
        self.read_responses(Duration::ZERO)?;
        let Some(s) = self.conn.as_mut() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let res = s.write_all(&self.out);
        // Some of it may have gone even if the write failed.
        if self.out_hi.is_some() {
            self.sent_hi = self.out_hi;
        }
        self.out.clear();
        if let Err(e) = res {
            // The server may have said why (serverclose) before it closed.
            self.read_responses(Duration::ZERO)?;
            return Err(err(&self.cfg.name, e.kind(), format!("sending: {e}")));
        }
        Ok(())
    }

    /// Reads what the server sent within `timeout` (and then whatever else
    /// is there at once, up to 1 MiB) and handles every frame.
    fn read_responses(&mut self, timeout: Duration) -> io::Result<()> {
        for i in 0..64 {
            let t = if i == 0 { timeout } else { Duration::ZERO };
            if !self.read_some(t)? {
                break;
            }
        }
        Ok(())
    }

    /// One read of [`Relp::read_responses`]; false if nothing came.
    fn read_some(&mut self, timeout: Duration) -> io::Result<bool> {
        let Some(s) = self.conn.as_mut() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let ready = s
            .poll_read(timeout)
            .map_err(|e| err(&self.cfg.name, e.kind(), format!("reading: {e}")))?;
        if !ready {
            return Ok(false);
        }
        let mut buf = [0u8; 16 * 1024];
        let n = match s.read(&mut buf) {
            Ok(0) => {
                return Err(err(
                    &self.cfg.name,
                    io::ErrorKind::ConnectionReset,
                    "the server closed the connection".into(),
                ))
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(err(&self.cfg.name, e.kind(), format!("reading: {e}"))),
        };
        crate::remote::quickack(s.fd());
        self.rbuf.extend_from_slice(&buf[..n]);
        let mut at = 0;
        let res = loop {
            match parse_frame(&self.rbuf[at..]) {
                Ok(Some((f, used))) => {
                    at += used;
                    if let Err(e) = self.handle(f) {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(why) => {
                    break Err(err(
                        &self.cfg.name,
                        io::ErrorKind::InvalidData,
                        format!("the server broke the protocol: {why}"),
                    ))
                }
            }
        };
        self.rbuf.drain(..at);
        res.map(|()| true)
    }

    /// One frame from the server.
    fn handle(&mut self, f: Frame) -> io::Result<()> {
        match f.command.as_str() {
            "rsp" => {}
            "serverclose" => {
                self.server_closed = true;
                return Err(err(
                    &self.cfg.name,
                    io::ErrorKind::ConnectionAborted,
                    "the server is closing the session (serverclose); reconnecting".into(),
                ));
            }
            c => {
                return Err(err(
                    &self.cfg.name,
                    io::ErrorKind::InvalidData,
                    format!("the server broke the protocol: unexpected command {c:?}"),
                ))
            }
        }
        let Some(e) = self
            .window
            .iter_mut()
            .find(|e| e.txnr == Some(f.txnr) && !e.acked)
        else {
            return Err(err(
                &self.cfg.name,
                io::ErrorKind::InvalidData,
                format!(
                    "the server broke the protocol: rsp for TXNR {}, which is not waiting for one",
                    f.txnr
                ),
            ));
        };
        match rsp_code(&f.data) {
            (Some(200), _) => {
                e.acked = true;
                self.inflight -= 1;
                self.advance();
                Ok(())
            }
            (_, text) => Err(err(
                &self.cfg.name,
                io::ErrorKind::Other,
                format!(
                    "the server refused a record (TXNR {}): {text:?}; sending it again",
                    f.txnr
                ),
            )),
        }
    }

    /// Moves the acknowledged position over the acknowledged front.
    fn advance(&mut self) {
        while let Some(e) = self.window.front() {
            if e.txnr.is_some() && !e.acked {
                break;
            }
            if e.txnr.is_some() {
                self.acks += 1;
            }
            if e.pos.is_some() {
                self.acked = e.pos;
            }
            self.window.pop_front();
        }
        if self.stalled && self.oldest_unacked().map_or(true, |t| t.elapsed() < STALL) {
            self.stalled = false;
            self.stall_said = None;
            say(&self.cfg.name, "the server acknowledges records again");
        }
    }

    fn oldest_unacked(&self) -> Option<Instant> {
        self.window
            .iter()
            .find(|e| e.txnr.is_some() && !e.acked)
            .map(|e| e.sent_at)
    }

    /// Reports a stall (at most every [`INTERVAL`]).
    fn check_stall(&mut self) {
        let Some(t) = self.oldest_unacked() else {
            return;
        };
        if t.elapsed() < STALL || self.stall_said.is_some_and(|s| s.elapsed() < INTERVAL) {
            return;
        }
        self.stalled = true;
        self.stall_said = Some(Instant::now());
        let full = if self.inflight >= self.cfg.window {
            format!(" (the window of {} is full)", self.cfg.window)
        } else {
            String::new()
        };
        say(
            &self.cfg.name,
            &format!(
                "stalled: the server has acknowledged none of the {} records in flight for {} s{full}; \
                 waiting, the position kept at the last record it acknowledged",
                self.inflight,
                t.elapsed().as_secs()
            ),
        );
    }

    /// Waits until half the window is free (or logwrite stops), so frames
    /// go in batches, not one per answer.
    fn wait_for_room(&mut self) -> io::Result<()> {
        while self.inflight > self.cfg.window / 2 {
            if self.stop.is_set() {
                return Err(err(
                    &self.cfg.name,
                    io::ErrorKind::Interrupted,
                    "stopping while waiting for the server's acknowledgements".into(),
                ));
            }
            self.read_responses(READ_SLICE)?;
            self.check_stall();
        }
        Ok(())
    }

    /// Passes `pos` without sending anything.
    fn mark(&mut self, pos: Option<Position>) {
        if pos.is_none() {
            return;
        }
        if self.window.is_empty() {
            self.acked = pos;
            return;
        }
        if let Some(back) = self.window.back_mut().filter(|e| e.txnr.is_none()) {
            back.pos = pos;
            return;
        }
        self.window.push_back(Entry {
            txnr: None,
            pos,
            acked: true,
            sent_at: Instant::now(),
        });
    }

    /// The syslog message of `r`, cut to [`MAX_DATA`] bytes (at a UTF-8
    /// boundary) if it is longer.
    fn message(&mut self, r: &RecordRef<'_>) -> Vec<u8> {
        let mut m = std::mem::take(&mut self.msg);
        m.clear();
        self.fmt.write(&mut m, r);
        if m.len() > MAX_DATA {
            let mut end = MAX_DATA;
            while end > 0 && (m[end] & 0xC0) == 0x80 {
                end -= 1;
            }
            m.truncate(end);
            self.cut += 1;
            if self.cut_said.map_or(true, |t| t.elapsed() >= INTERVAL) {
                self.cut_said = Some(Instant::now());
                say(
                    &self.cfg.name,
                    &format!(
                        "{} messages longer than RELP's {MAX_DATA}-byte frame limit cut to fit \
                         (memlogd's -max-line-len is above it)",
                        self.cut
                    ),
                );
            }
        }
        m
    }

    /// Opens a session: connect (and TLS), `open`, its `rsp`.
    fn connect(&mut self) -> io::Result<()> {
        let mut s = self
            .cfg
            .connect_stream(Some(READ_SLICE), &mut self.key_warned)?;
        let offer = format!(
            "relp_version=0\nrelp_software=memlog-logwrite,{},https://github.com/linuxkit/linuxkit\ncommands=syslog",
            env!("CARGO_PKG_VERSION")
        );
        let mut f = Vec::new();
        write_frame(&mut f, 1, "open", offer.as_bytes());
        s.write_all(&f)?;
        self.conn = Some(s);
        self.rbuf.clear();
        let end = Instant::now() + OPEN_TIMEOUT;
        let reply = loop {
            match parse_frame(&self.rbuf) {
                Ok(Some((f, used))) => {
                    self.rbuf.drain(..used);
                    break f;
                }
                Ok(None) => {}
                Err(why) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the server broke the protocol: {why}"),
                    ))
                }
            }
            let now = Instant::now();
            if now >= end {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the server did not answer the session open",
                ));
            }
            let s = self.conn.as_mut().ok_or(io::ErrorKind::NotConnected)?;
            if s.poll_read((end - now).min(READ_SLICE))? {
                let mut buf = [0u8; 4096];
                match s.read(&mut buf) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionReset,
                            "the server closed the connection at the session open",
                        ))
                    }
                    Ok(n) => self.rbuf.extend_from_slice(&buf[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => return Err(e),
                }
            }
        };
        if reply.txnr != 1 || reply.command != "rsp" {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the server answered the session open with {} {}",
                    reply.txnr, reply.command
                ),
            ));
        }
        let (code, text) = rsp_code(&reply.data);
        if code != Some(200) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("the server refused the session: {text:?}"),
            ));
        }
        let offers = String::from_utf8_lossy(&reply.data);
        if let Some(cmds) = offers.lines().find_map(|l| l.strip_prefix("commands=")) {
            if !cmds.split(',').any(|c| c == "syslog") {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("the server does not take the syslog command (commands={cmds})"),
                ));
            }
        }
        self.next_txnr = 2;
        Ok(())
    }

    fn take_txnr(&mut self) -> u32 {
        let t = self.next_txnr;
        self.next_txnr = if t >= MAX_TXNR { 1 } else { t + 1 };
        t
    }

    /// Closes the session: the last acknowledgements (bounded), `close`.
    fn close(&mut self) {
        if self.flush().is_err() {
            return;
        }
        let end = Instant::now() + FINISH_TIMEOUT;
        while self.inflight > 0 {
            let now = Instant::now();
            if now >= end || self.read_responses((end - now).min(READ_SLICE)).is_err() {
                return;
            }
        }
        let t = self.take_txnr();
        let mut f = Vec::new();
        write_frame(&mut f, t, "close", b"");
        if let Some(s) = self.conn.as_mut() {
            if s.write_all(&f).is_ok() {
                // Its rsp, if it comes soon; then the server closes.
                let _ = s.poll_read(Duration::from_millis(500));
                s.shutdown();
            }
        }
    }
}

impl Sink for Relp {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn open(&mut self) -> io::Result<()> {
        if !self.loaded {
            self.load();
        }
        if self.conn.is_none() {
            self.window.clear();
            self.inflight = 0;
            self.out.clear();
            self.out_hi = None;
            self.sent_hi = None;
            self.acked = self.committed;
            self.taken = self.committed;
            self.server_closed = false;
            if let Err(e) = self.connect() {
                self.conn = None;
                return Err(err(&self.cfg.name, e.kind(), format!("connecting: {e}")));
            }
        }
        Ok(())
    }

    fn resume(&self) -> Option<Position> {
        self.taken
    }

    fn narrow(&self, req: &mut Request) {
        self.cfg.select.narrow(req);
    }

    fn record(&mut self, r: &RecordRef<'_>, pos: Option<Position>) -> io::Result<()> {
        if self.conn.is_none() {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "not connected"));
        }
        if self.cfg.select.matches(r) {
            if self.inflight >= self.cfg.window {
                self.flush()?;
                self.wait_for_room()?;
            }
            let data = self.message(r);
            let t = self.take_txnr();
            write_frame(&mut self.out, t, "syslog", &data);
            self.msg = data;
            if let (Some(p), Some(d)) = (pos, self.dup_until) {
                if le(p, d) {
                    self.dups.total += 1;
                    self.dups.unreported += 1;
                }
            }
            self.window.push_back(Entry {
                txnr: Some(t),
                pos,
                acked: false,
                sent_at: Instant::now(),
            });
            self.inflight += 1;
            if pos.is_some() {
                self.out_hi = pos;
            }
            if self.out.len() >= 64 * 1024 {
                self.flush()?;
            }
        } else {
            self.mark(pos);
        }
        if let (Some(p), Some(d)) = (pos, self.dup_until) {
            if !le(p, d) {
                self.dup_until = None;
                self.dups.flush(false);
            }
        }
        if pos.is_some() {
            self.taken = pos;
        }
        Ok(())
    }

    fn lost(&mut self, count: u64, pos: Option<Position>) -> io::Result<()> {
        self.lost.add(count);
        self.mark(pos);
        if pos.is_some() {
            self.taken = pos;
        }
        Ok(())
    }

    fn position_ahead(&mut self, saved: Position, next: u64) {
        let reached = match next {
            0 => "has no record yet".to_owned(),
            n => format!("has only reached record {}", n - 1),
        };
        say(
            &self.cfg.name,
            &format!(
                "no usable saved position in {} (it names record {} of this memlogd, which {reached}): \
                 forwarding from memlogd's oldest record (the server may get records twice)",
                self.store.path().display(),
                saved.seq
            ),
        );
        self.committed = None;
        self.acked = None;
        self.taken = None;
        self.saved_sent = None;
        self.dup_until = None;
    }

    fn commit(&mut self) -> io::Result<bool> {
        self.flush()?;
        if self.conn.is_some() {
            self.read_responses(Duration::ZERO)?;
        }
        if self.committed != self.acked {
            self.committed = self.acked;
            self.save(false);
        }
        let acked = self.acks > 0;
        self.acks = 0;
        Ok(acked)
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.conn.is_some() {
            self.close();
        }
        self.conn = None;
        self.committed = self.acked;
        self.save(true);
        self.dups.flush(true);
        self.lost.flush(true);
        Ok(())
    }

    fn tick(&mut self) -> io::Result<()> {
        self.lost.flush(false);
        self.dups.flush(false);
        self.check_stall();
        self.commit().map(|_| ())
    }

    fn fail(&mut self) {
        if self.conn.take().is_some() && !self.server_closed {
            // What was handed to the connection and not acknowledged may
            // be on the server: sent again, and counted, from the next one.
            if let Some(s) = self.sent_hi {
                if self.acked.map_or(true, |a| !le(s, a)) {
                    self.dup_until = match self.dup_until {
                        Some(d) if le(s, d) => Some(d),
                        _ => Some(s),
                    };
                }
            }
        }
        self.window.clear();
        self.inflight = 0;
        self.out.clear();
        self.out_hi = None;
        self.sent_hi = None;
        self.rbuf.clear();
        self.stalled = false;
        self.stall_said = None;
        self.taken = self.acked;
        if self.committed != self.acked {
            self.committed = self.acked;
            self.save(false);
        }
        self.acks = 0;
    }
}
