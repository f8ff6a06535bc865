//! Readers on the query socket. A reader is a cursor into the ring plus a
//! bounded output buffer: when its socket is writable the loop encodes from
//! the cursor onward. A slow reader never holds up writers; if the ring
//! overwrites records it has not been sent, it is told how many, in band.

use super::slab::Key;
use super::stats::Counters;
use super::{Daemon, KIND_READER, TOKEN_QUERY};
use crate::filter::Filter;
use crate::proto::{self, Mode, Parsed, PartialRecord};
use crate::ring::{Cursor, Read as RingRead, Ring, Scratch};
use crate::timefmt;
use nix::sys::epoll::{EpollEvent, EpollFlags};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A reader must send its request within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Records looked at per reader per loop turn (bounds the work a filtered
/// reader can cost in one turn).
const EXAMINE_PER_TURN: usize = 65_536;
/// Connections accepted per loop turn.
const ACCEPTS_PER_TURN: usize = 64;

enum Phase {
    /// Waiting for the mode byte (and the extension line, if any).
    Request {
        buf: Vec<u8>,
        since: Instant,
    },
    Stream,
}

pub struct Reader {
    stream: UnixStream,
    phase: Phase,
    ext: bool,
    cursor: Cursor,
    /// For a dump: stop at this sequence number.
    end: Option<u64>,
    /// Records to send (the request's selection fields); the same code
    /// selects client side, see [`crate::filter`].
    filter: Filter,
    /// A `last=N` request still looking for where to start.
    tail: Option<Tail>,
    /// The record at `cursor` is being written in pieces.
    partial: Option<PartialRecord>,
    /// The record at `cursor` was overwritten while half sent, and its line
    /// ended: it is not counted among the lost.
    abandoned: bool,
    out: Vec<u8>,
    sent: usize,
    close_when_flushed: bool,
    /// The socket is full; wait for EPOLLOUT.
    blocked: bool,
    /// Registered interests.
    reading: bool,
    polling_out: bool,
    /// Holds one of the `-max-readers` slots (a dump or follow; not a
    /// `stats` request, a refusal or a reader still sending its request).
    streams: bool,
}

/// Sequence numbers per block of a `last=N` scan.
const TAIL_BLOCK: u64 = 4096;

/// Bytes a reader's buffer may hold beyond `-reader-buffer`: one record's
/// head and tail (written whole; the strings between them are written in
/// pieces up to the limit) and a notice. A record whose line fits in this
/// slack (a few KiB of message) is written whole, as it always was; a
/// longer one in pieces. Per-reader memory is `-reader-buffer` + this,
/// whatever `-max-line-len`.
pub const READER_SLACK: usize = proto::MAX_RECORD_HEAD + proto::MAX_RECORD_TAIL + 256;

/// Finding the start of the last `want` matching records in `[floor, end)`
/// without any per-record memory: blocks of [`TAIL_BLOCK`] sequence numbers
/// are counted from the end backwards (each block found by
/// [`Ring::seek`] and read forwards), until the blocks counted hold `want`
/// matches; then the block where that happened is read once more to the
/// match to start from. Bounded per loop turn like any other reading.
struct Tail {
    want: u64,
    floor: u64,
    /// Where to start if fewer than `want` records match.
    start: Cursor,
    /// The block being read: `[lo, hi)`, read at `scan`.
    lo: u64,
    hi: u64,
    scan: Cursor,
    /// Matches in the blocks above this one, and in this one so far.
    above: u64,
    in_block: u64,
    /// Second reading of the block: the start is its match number `skip`.
    skip: Option<u64>,
}

/// Where a `last=N` reply starts.
enum TailStart {
    At(Cursor),
    /// Records from this sequence number on were overwritten while the
    /// scan ran: the reader is told they are lost, and gets what is left.
    LostFrom(u64),
}

impl Tail {
    fn new(ring: &Ring, want: u64, start: Cursor, end: u64) -> Tail {
        let lo = end.saturating_sub(TAIL_BLOCK).max(start.seq);
        Tail {
            want,
            floor: start.seq,
            start,
            lo,
            hi: end,
            scan: ring.seek(lo),
            above: 0,
            in_block: 0,
            skip: None,
        }
    }

    /// Reads up to `budget` records; returns where to stream from once the
    /// scan is complete.
    fn scan(
        &mut self,
        ring: &Ring,
        scratch: &mut Scratch,
        filter: &Filter,
        budget: &mut usize,
    ) -> Option<TailStart> {
        loop {
            while self.scan.seq < self.hi {
                if *budget == 0 {
                    return None;
                }
                *budget -= 1;
                match ring.read(self.scan, scratch) {
                    RingRead::Record(rec, next) => {
                        if filter.matches_ring(&rec) {
                            if self.skip == Some(self.in_block) {
                                return Some(TailStart::At(self.scan));
                            }
                            self.in_block += 1;
                        }
                        self.scan = next;
                    }
                    RingRead::Lost { .. } => return Some(TailStart::LostFrom(self.scan.seq)),
                    RingRead::End => break,
                }
            }
            if self.skip.is_some() {
                // The block changed under the scan (it cannot: records are
                // only ever evicted, which the reads above report).
                return Some(TailStart::At(self.scan));
            }
            if self.above + self.in_block >= self.want {
                self.skip = Some(self.above + self.in_block - self.want);
            } else {
                self.above += self.in_block;
                if self.lo <= self.floor {
                    return Some(TailStart::At(self.start));
                }
                self.hi = self.lo;
                self.lo = self.lo.saturating_sub(TAIL_BLOCK).max(self.floor);
            }
            self.in_block = 0;
            if self.lo < ring.first_seq() {
                return Some(TailStart::LostFrom(self.lo));
            }
            self.scan = ring.seek(self.lo);
        }
    }
}

enum Outcome {
    /// Everything available was sent.
    Idle { more: bool },
    /// The socket is full.
    Blocked,
    /// Dump complete, or a refusal sent.
    Finished,
    /// The peer went away.
    Gone(io::Error),
}

impl Reader {
    fn interest(&self) -> EpollFlags {
        let mut f = EpollFlags::empty();
        if self.reading {
            f |= EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        }
        if self.polling_out {
            f |= EpollFlags::EPOLLOUT;
        }
        f
    }

    fn has_work(&self, ring: &Ring) -> bool {
        matches!(self.phase, Phase::Stream)
            && !self.blocked
            && (self.sent < self.out.len()
                || self.close_when_flushed
                || self.cursor.seq < ring.next_seq()
                || self.end.is_some()
                || self.tail.is_some())
    }

    /// Encodes from the cursor into the output buffer, up to `limit` bytes.
    /// Returns true if it stopped early with records left to examine.
    fn fill(
        &mut self,
        ring: &Ring,
        scratch: &mut Scratch,
        counters: &mut Counters,
        limit: usize,
    ) -> bool {
        let mut budget = EXAMINE_PER_TURN;
        if let Some(t) = &mut self.tail {
            match t.scan(ring, scratch, &self.filter, &mut budget) {
                Some(TailStart::At(start)) => self.cursor = start,
                Some(TailStart::LostFrom(seq)) => {
                    let lost = ring.first_seq().saturating_sub(seq);
                    if lost > 0 {
                        counters.reader_records_lost += lost;
                        proto::encode_lost(
                            &mut self.out,
                            lost,
                            ring.first_seq(),
                            timefmt::now_ns(),
                            self.ext,
                        );
                    }
                    self.cursor = ring.oldest();
                }
                None => return true,
            }
            self.tail = None;
        }
        // The buffer is allocated once at its bound (never grown by
        // doubling past it).
        let cap = limit + READER_SLACK;
        if self.out.capacity() < cap {
            self.out.reserve_exact(cap - self.out.len());
        }
        while self.out.len() < limit {
            if let Some(p) = self.partial {
                match ring.read(self.cursor, scratch) {
                    RingRead::Record(rec, next) => {
                        self.partial = p.resume(&mut self.out, &rec, self.ext, limit);
                        if self.partial.is_none() {
                            self.cursor = next;
                        }
                    }
                    // Overwritten half sent: end its line (it was sent,
                    // cut); the next read reports the records after it.
                    _ => {
                        p.abandon(&mut self.out, self.ext);
                        self.partial = None;
                        self.abandoned = true;
                    }
                }
                continue;
            }
            if self.end.is_some_and(|end| self.cursor.seq >= end) {
                self.close_when_flushed = true;
                return false;
            }
            if budget == 0 {
                return true;
            }
            budget -= 1;
            match ring.read(self.cursor, scratch) {
                RingRead::Record(rec, next) => {
                    if !self.filter.matches_ring(&rec) {
                        self.cursor = next;
                    } else if self.out.len() + proto::record_bound(&rec) <= limit + READER_SLACK {
                        // Whole, as always for a record of a few KiB.
                        proto::encode_record(&mut self.out, &rec, self.ext);
                        self.cursor = next;
                    } else {
                        // Too long for what is left of the buffer: in pieces.
                        self.partial = PartialRecord::start(&mut self.out, &rec, self.ext, limit);
                        if self.partial.is_none() {
                            self.cursor = next;
                        }
                    }
                }
                RingRead::Lost { lost, resume } => {
                    // The record whose line was cut counts as sent.
                    let lost = lost - u64::from(std::mem::take(&mut self.abandoned));
                    if lost > 0 {
                        counters.reader_records_lost += lost;
                        proto::encode_lost(
                            &mut self.out,
                            lost,
                            resume.seq,
                            timefmt::now_ns(),
                            self.ext,
                        );
                    }
                    self.cursor = resume;
                }
                RingRead::End => return false,
            }
        }
        false
    }

    fn pump(
        &mut self,
        ring: &Ring,
        scratch: &mut Scratch,
        counters: &mut Counters,
        limit: usize,
    ) -> Outcome {
        loop {
            while self.sent < self.out.len() {
                match (&self.stream).write(&self.out[self.sent..]) {
                    Ok(0) => return Outcome::Gone(io::ErrorKind::WriteZero.into()),
                    Ok(n) => self.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Blocked,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Outcome::Gone(e),
                }
            }
            self.out.clear();
            if self.out.capacity() > limit + READER_SLACK {
                self.out = Vec::new();
            }
            self.sent = 0;
            if self.close_when_flushed {
                return Outcome::Finished;
            }
            let more = self.fill(ring, scratch, counters, limit);
            if self.out.is_empty() && !self.close_when_flushed {
                return Outcome::Idle { more };
            }
        }
    }
}

impl Daemon {
    pub(super) fn on_accept(&mut self) {
        for _ in 0..ACCEPTS_PER_TURN {
            match self.listener.accept() {
                Ok((s, _)) => self.add_reader(s),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Out of fds or memory: stop polling the listener for a
                    // second instead of spinning on it.
                    self.counters.accept_errors += 1;
                    self.note(format!("cannot accept a reader: {e}; pausing accepts"));
                    self.pause_accept();
                    return;
                }
            }
        }
    }

    fn pause_accept(&mut self) {
        if self
            .epoll
            .modify(
                self.listener.as_fd(),
                &mut EpollEvent::new(EpollFlags::empty(), TOKEN_QUERY),
            )
            .is_ok()
        {
            self.accept_paused = true;
        }
    }

    pub(super) fn resume_accept(&mut self) {
        if self
            .epoll
            .modify(
                self.listener.as_fd(),
                &mut EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_QUERY),
            )
            .is_ok()
        {
            self.accept_paused = false;
        }
    }

    /// The refusal over `-max-readers`: a `memlogd` record (what LinuxKit
    /// clients print), appended to `out`; returns its text.
    fn refusal(&self, out: &mut Vec<u8>) -> String {
        let msg = format!(
            "refused a reader: -max-readers {} reached",
            self.cfg.max_readers
        );
        let rec = crate::ring::Record::plain(timefmt::now_ns(), proto::SELF_SOURCE, msg.as_bytes());
        proto::encode_record(out, &rec, false);
        msg
    }

    /// A new query connection. Up to `-max-readers` + 1 are held, so that a
    /// `stats` request is answered while `-max-readers` stream; which
    /// request may stream is decided when it arrives ([`Daemon::start_reply`]).
    fn add_reader(&mut self, s: UnixStream) {
        self.counters.readers_total += 1;
        if s.set_nonblocking(true).is_err() {
            return;
        }
        if self.readers.len() > self.cfg.max_readers {
            self.counters.readers_refused += 1;
            let mut out = Vec::new();
            let msg = self.refusal(&mut out);
            let _ = (&s).write(&out);
            self.note(msg);
            return;
        }
        let reader = Reader {
            stream: s,
            phase: Phase::Request {
                buf: Vec::new(),
                since: Instant::now(),
            },
            ext: false,
            cursor: self.ring.newest(),
            end: None,
            filter: Filter::default(),
            tail: None,
            partial: None,
            abandoned: false,
            out: Vec::new(),
            sent: 0,
            close_when_flushed: false,
            blocked: false,
            reading: true,
            polling_out: false,
            streams: false,
        };
        let interest = reader.interest();
        let key = self.readers.insert(reader);
        let Some(r) = self.readers.get_mut(key) else {
            return;
        };
        if let Err(e) = self.epoll.add(
            r.stream.as_fd(),
            EpollEvent::new(interest, KIND_READER | key.to_u64()),
        ) {
            self.readers.remove(key);
            self.note(format!("cannot poll a reader: {e}"));
        }
    }

    fn close_reader(&mut self, key: Key, err: Option<io::Error>) {
        let Some(r) = self.readers.remove(key) else {
            return;
        };
        if r.streams {
            self.streaming -= 1;
        }
        let _ = self.epoll.delete(r.stream.as_fd());
        if let Some(e) = err {
            let unsent = r.out.len() - r.sent;
            if unsent > 0 || r.end.is_some() {
                self.note(format!(
                    "a reader went away before it had everything ({e}; {unsent} bytes unsent)"
                ));
            }
        }
        if self.accept_paused {
            self.resume_accept();
        }
    }

    fn update_interest(&mut self, key: Key) {
        let Some(r) = self.readers.get_mut(key) else {
            return;
        };
        let mut ev = EpollEvent::new(r.interest(), KIND_READER | key.to_u64());
        let _ = self.epoll.modify(r.stream.as_fd(), &mut ev);
    }

    pub(super) fn on_reader_event(&mut self, key: Key, flags: EpollFlags) {
        if flags.intersects(EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP) {
            let err = io::Error::from(io::ErrorKind::ConnectionReset);
            return self.close_reader(key, Some(err));
        }
        if flags.contains(EpollFlags::EPOLLOUT) {
            if let Some(r) = self.readers.get_mut(key) {
                r.blocked = false;
            }
        }
        if flags.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP) {
            self.on_reader_readable(key);
        }
    }

    fn on_reader_readable(&mut self, key: Key) {
        let Some(r) = self.readers.get_mut(key) else {
            return;
        };
        match &mut r.phase {
            Phase::Request { buf, .. } => {
                let mut tmp = [0u8; proto::MAX_REQUEST];
                let room = proto::MAX_REQUEST - buf.len();
                match (&r.stream).read(&mut tmp[..room]) {
                    Ok(0) => {
                        self.close_reader(key, None);
                        self.note("a reader disconnected before sending a request".into());
                    }
                    Ok(n) => {
                        buf.extend_from_slice(&tmp[..n]);
                        let parsed = proto::parse_request(buf);
                        self.start_reply(key, parsed);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => self.close_reader(key, Some(e)),
                }
            }
            Phase::Stream => {
                // Nothing is expected after the request: discard. At EOF the
                // peer only half-closed; keep sending until it hangs up.
                let mut tmp = [0u8; 4096];
                match (&r.stream).read(&mut tmp) {
                    Ok(0) => {
                        r.reading = false;
                        self.update_interest(key);
                    }
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => self.close_reader(key, Some(e)),
                }
            }
        }
    }

    fn start_reply(&mut self, key: Key, parsed: Parsed) {
        let gauges = self.gauges();
        let instance = self.instance;
        let full = self.streaming >= self.cfg.max_readers;
        let mut refusal = Vec::new();
        let refusal_msg = full.then(|| self.refusal(&mut refusal));
        let Some(r) = self.readers.get_mut(key) else {
            return;
        };
        let mut refused = None;
        let wants_slot = matches!(&parsed, Parsed::Legacy(_))
            || matches!(&parsed, Parsed::Extended(req) if !req.stats);
        if let (true, Some(msg)) = (wants_slot, refusal_msg) {
            // Every slot streams already: refused as at connect time.
            r.out = refusal;
            r.close_when_flushed = true;
            r.phase = Phase::Stream;
            self.counters.readers_refused += 1;
            self.note(msg);
            return;
        }
        if wants_slot {
            r.streams = true;
            self.streaming += 1;
        }
        match parsed {
            Parsed::NeedMore => return,
            Parsed::Invalid(msg) => {
                // An error object only for a real extended request (a valid
                // mode byte and the magic); anything else gets the record
                // PROTOCOL.md promises for an unknown mode.
                let ext = matches!(&r.phase, Phase::Request { buf, .. }
                    if buf.len() > 1
                        && Mode::from_byte(buf[0]).is_some()
                        && buf[1..].starts_with(proto::EXT_MAGIC));
                if ext {
                    proto::encode_error(&mut r.out, &msg);
                } else {
                    let rec = crate::ring::Record::plain(
                        timefmt::now_ns(),
                        proto::SELF_SOURCE,
                        msg.as_bytes(),
                    );
                    proto::encode_record(&mut r.out, &rec, false);
                }
                r.close_when_flushed = true;
                refused = Some(msg);
            }
            Parsed::Legacy(mode) => {
                r.cursor = if mode == Mode::Follow {
                    self.ring.newest()
                } else {
                    self.ring.oldest()
                };
                r.end = (mode == Mode::Dump).then(|| self.ring.next_seq());
            }
            Parsed::Extended(req) if req.stats => {
                self.counters.encode(&gauges, &mut r.out);
                r.close_when_flushed = true;
            }
            Parsed::Extended(req) => {
                r.ext = true;
                r.filter = Filter::from_request(&req);
                proto::encode_hello(
                    &mut r.out,
                    instance,
                    self.ring.first_seq(),
                    self.ring.next_seq(),
                );
                r.cursor = match req.after {
                    // A position at or past `next` was never handed out by
                    // this instance (a damaged or foreign saved position):
                    // like another instance's, it starts at the oldest.
                    Some(p) if p.instance == instance && p.seq < self.ring.next_seq() => {
                        let want = p.seq.saturating_add(1);
                        if want < self.ring.first_seq() {
                            // Records between the client's position and the
                            // oldest one kept are gone: say so first.
                            let lost = self.ring.first_seq() - want;
                            self.counters.reader_records_lost += lost;
                            proto::encode_lost(
                                &mut r.out,
                                lost,
                                self.ring.first_seq(),
                                timefmt::now_ns(),
                                true,
                            );
                        }
                        self.ring.seek(want)
                    }
                    Some(_) => self.ring.oldest(),
                    None if req.mode == Mode::Follow => self.ring.newest(),
                    None => self.ring.oldest(),
                };
                r.end = (req.mode == Mode::Dump).then(|| self.ring.next_seq());
                if let (Some(n), Mode::Dump | Mode::DumpFollow) = (req.last, req.mode) {
                    let end = self.ring.next_seq();
                    let held = end.saturating_sub(r.cursor.seq.max(self.ring.first_seq()));
                    if n == 0 {
                        r.cursor = self.ring.newest();
                    } else if n < held {
                        // (With no more records than asked for, no scan:
                        // they are all sent.)
                        if r.filter.is_empty() {
                            r.cursor = self.ring.seek(end - n);
                        } else {
                            r.tail = Some(Tail::new(&self.ring, n, r.cursor, end));
                        }
                    }
                }
            }
        }
        r.phase = Phase::Stream;
        if let Some(msg) = refused {
            self.counters.readers_refused += 1;
            self.note(format!("refused a reader: {msg}"));
        }
    }

    /// Closes readers that connected but sent no request in time.
    pub(super) fn expire_requests(&mut self) {
        let mut expired = Vec::new();
        for key in self.readers.keys() {
            if let Some(Reader {
                phase: Phase::Request { since, .. },
                ..
            }) = self.readers.get_mut(key)
            {
                if since.elapsed() > REQUEST_TIMEOUT {
                    expired.push(key);
                }
            }
        }
        for key in expired {
            self.close_reader(key, None);
            self.counters.readers_refused += 1;
            self.note(format!(
                "closed a reader that sent no request within {} s",
                REQUEST_TIMEOUT.as_secs()
            ));
        }
    }

    /// Sends what each reader can take now.
    pub(super) fn pump_readers(&mut self) {
        self.busy = false;
        let mut keys = std::mem::take(&mut self.reader_keys);
        self.readers.keys_into(&mut keys);
        let limit = self.cfg.reader_buffer;
        for &key in &keys {
            let Some(r) = self.readers.get_mut(key) else {
                continue;
            };
            if !r.has_work(&self.ring) {
                continue;
            }
            let lost_before = self.counters.reader_records_lost;
            match r.pump(
                &self.ring,
                &mut self.ring_scratch,
                &mut self.counters,
                limit,
            ) {
                Outcome::Idle { more } => {
                    self.busy |= more;
                    if r.polling_out {
                        r.polling_out = false;
                        self.update_interest(key);
                    }
                }
                Outcome::Blocked => {
                    r.blocked = true;
                    self.counters.readers_blocked += 1;
                    if !r.polling_out {
                        r.polling_out = true;
                        self.update_interest(key);
                    }
                }
                Outcome::Finished => self.close_reader(key, None),
                Outcome::Gone(e) => self.close_reader(key, Some(e)),
            }
            let lost = self.counters.reader_records_lost - lost_before;
            if lost > 0 {
                self.note(format!(
                    "a reader lost {lost} records: it read slower than writers wrote, with its -reader-buffer of {limit} bytes full"
                ));
            }
        }
        self.reader_keys = keys;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of the last `want` matches in `[floor, end)` the simple
    /// way (what the scan replaced: one cursor per match).
    fn model(ring: &Ring, filter: &Filter, want: u64, floor: Cursor, end: u64) -> u64 {
        let mut matches = Vec::new();
        let mut c = floor;
        let mut scratch = ring.scratch();
        while c.seq < end {
            let RingRead::Record(rec, next) = ring.read(c, &mut scratch) else {
                break;
            };
            if filter.matches_ring(&rec) {
                matches.push(c.seq);
            }
            c = next;
        }
        if (matches.len() as u64) < want {
            floor.seq
        } else {
            matches[matches.len() - want as usize]
        }
    }

    fn run(ring: &Ring, filter: &Filter, t: &mut Tail, per_turn: usize) -> TailStart {
        let mut scratch = ring.scratch();
        loop {
            let mut budget = per_turn;
            if let Some(s) = t.scan(ring, &mut scratch, filter, &mut budget) {
                return s;
            }
            assert_eq!(budget, 0, "a turn ends only when its budget is spent");
        }
    }

    #[test]
    fn tail_scan_finds_the_same_start_as_a_forward_walk() {
        let n = 3 * TAIL_BLOCK + 777;
        for mut ring in [
            Ring::new(1 << 22, u64::MAX),
            Ring::compressed(1 << 22, u64::MAX, 2048),
        ] {
            let mut scratch = ring.scratch();
            for i in 0..n {
                // "a" every 3rd record, "b" only in one stretch, "z" never.
                let src: &[u8] = match i {
                    _ if i % 3 == 0 => b"a",
                    _ if (5000..5010).contains(&i) => b"b",
                    _ => b"c",
                };
                ring.push(0, src, b"m", 0);
            }
            let only = |s: &[u8]| Filter {
                include: vec![crate::filter::Pattern::Exact(s.to_vec())],
                ..Filter::default()
            };
            let end = ring.next_seq();
            for (filter, name) in [(only(b"a"), "a"), (only(b"b"), "b"), (only(b"z"), "z")] {
                for floor in [0, 1, 4000, 5005, end - 10] {
                    let floor = ring.seek(floor);
                    for want in [1, 2, 3, 10, 1365, 1366, 4096, 5000, n] {
                        let expect = model(&ring, &filter, want, floor, end);
                        for per_turn in [1, 7, EXAMINE_PER_TURN] {
                            let mut t = Tail::new(&ring, want, floor, end);
                            let TailStart::At(c) = run(&ring, &filter, &mut t, per_turn) else {
                                panic!("nothing was overwritten")
                            };
                            assert_eq!(
                                c.seq, expect,
                                "{name}: want {want} from {} (turns of {per_turn})",
                                floor.seq
                            );
                            assert!(
                                matches!(ring.read(c, &mut scratch), RingRead::Record(..))
                                    || c.seq == end
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn tail_scan_overtaken_by_writers_reports_the_loss() {
        for mut ring in [
            Ring::new(1 << 20, 3 * TAIL_BLOCK),
            Ring::compressed(1 << 20, 3 * TAIL_BLOCK, 2048),
        ] {
            for _ in 0..3 * TAIL_BLOCK {
                ring.push(0, b"a", b"m", 0);
            }
            let filter = Filter {
                grep: vec![b"m".to_vec()],
                ..Filter::default()
            };
            let mut t = Tail::new(&ring, 2 * TAIL_BLOCK + 5, ring.oldest(), ring.next_seq());
            let mut budget = TAIL_BLOCK as usize + 10;
            assert!(t
                .scan(&ring, &mut ring.scratch(), &filter, &mut budget)
                .is_none());
            // The writers overwrite the lower blocks before the scan gets there.
            for _ in 0..2 * TAIL_BLOCK {
                ring.push(0, b"a", b"m", 0);
            }
            let TailStart::LostFrom(seq) = run(&ring, &filter, &mut t, EXAMINE_PER_TURN) else {
                panic!("the records to start from are gone")
            };
            assert!(seq < ring.first_seq());
        }
    }
}
