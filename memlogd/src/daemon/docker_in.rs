//! Docker-framed inputs: a logging plugin's FIFO handed over by
//! `memlog-docker-logdriver`, read as dockerd writes it (length-prefixed
//! protobuf `LogEntry` frames, [`crate::dockerlog`]). Entries become
//! records under the container's sources, with its id, name, image, the
//! stream and dockerd's time as metadata; the pieces of a line longer than
//! dockerd's 16 KiB buffer are joined again (bounded by `-max-line-len`).
//!
//! Bad input never costs more than the bad bytes of the one stream: a frame
//! whose length is over this input's frame limit, or whose entry does not
//! decode, means the framing cannot be trusted (a length is only a number),
//! so memlogd drops bytes up to the next place that looks like the start of
//! dockerd's frames (a length within the limit, then field 1 `source` of 6
//! bytes, `stdout` or `stderr`: [`dockerlog::find_frame_start`]) and goes
//! on from there. The stream is always read on (never left unread:
//! dockerd's writes would block the container). Each bad frame is counted
//! and said in a `memlogd` record (rate-limited as all of memlogd's own).

use super::ratelimit::Key as RateKey;
use super::Daemon;
use crate::dockerlog::{self, Entry, Frame, Handover};
use crate::meta;
use crate::ring::{FLAG_TRUNCATED, NO_PRI};
use std::time::Instant;

/// The frame limit of an input: what a line of `-max-line-len` needs with
/// room for the entry's other fields, and at least what dockerd writes
/// (16 KiB pieces), within [`dockerlog::MAX_FRAME`].
pub fn frame_limit(max_line_len: usize) -> usize {
    (max_line_len + 1024).clamp(64 * 1024, dockerlog::MAX_FRAME)
}

/// A line being joined from partial entries.
#[derive(Debug, Default)]
struct Join {
    /// At most `-max-line-len` bytes.
    pending: Vec<u8>,
    /// A piece came and the line's end has not.
    active: bool,
    /// The line was already stored cut; drop its pieces up to its end.
    cut: bool,
    /// `time_nano` of the line's first piece.
    time_nano: i64,
}

/// One Docker-framed input's state.
pub struct DockerStream {
    /// stdout's and stderr's sources.
    out_name: Box<[u8]>,
    err_name: Box<[u8]>,
    /// Container id, name, image: stored with each record.
    base: meta::MetaBuf,
    /// Bytes of an unfinished frame (at most the frame limit and 4).
    buf: Vec<u8>,
    /// The framing was lost: bytes are dropped up to what looks like the
    /// start of a frame (`buf` then holds the few bytes carried over).
    resync: bool,
    /// stdout's and stderr's unfinished lines.
    joins: [Join; 2],
    /// What to say about this input in messages.
    what: String,
}

impl DockerStream {
    pub fn new(h: &Handover) -> DockerStream {
        let mut base = meta::MetaBuf::default();
        base.text(meta::CONTAINER_ID, &h.id);
        if !h.name.is_empty() {
            base.text(meta::CONTAINER_NAME, &h.name);
        }
        if !h.image.is_empty() {
            base.text(meta::IMAGE, &h.image);
        }
        let short = &h.id[..h.id.len().min(12)];
        DockerStream {
            out_name: h.source_of(b"stdout").into(),
            err_name: h.source_of(b"stderr").into(),
            base,
            buf: Vec::new(),
            resync: false,
            joins: Default::default(),
            what: format!(
                "docker stream of container {} ({})",
                String::from_utf8_lossy(short),
                super::inputs::show(&h.source)
            ),
        }
    }
}

/// One record to store, owned by nobody (borrowed from the frame or a join).
struct Out<'a> {
    stdout: bool,
    line: &'a [u8],
    cut: bool,
    time_nano: i64,
    /// Stored at EOF before the line's last piece came.
    unterminated: bool,
}

impl Daemon {
    /// Bytes read from a Docker-framed input.
    pub(super) fn consume_docker(&mut self, s: &mut DockerStream, mut data: &[u8], now: i64) {
        let limit = frame_limit(self.cfg.max_line_len);
        while !data.is_empty() {
            if s.resync {
                match self.resync(s, data, limit) {
                    Some(rest) => {
                        data = rest;
                        continue;
                    }
                    None => return,
                }
            }
            if s.buf.is_empty() {
                // The common case: whole frames straight from the read.
                let used = self.frames(s, data, now);
                data = &data[used..];
                if !s.resync {
                    // An unfinished frame: at most `limit` + 4 bytes.
                    s.buf.extend_from_slice(data);
                    return;
                }
                continue;
            }
            // Complete the frame held from earlier reads: its length first.
            if s.buf.len() < dockerlog::LEN_BYTES {
                let n = (dockerlog::LEN_BYTES - s.buf.len()).min(data.len());
                s.buf.extend_from_slice(&data[..n]);
                data = &data[n..];
                if s.buf.len() < dockerlog::LEN_BYTES {
                    return;
                }
            }
            let n = u32::from_be_bytes([s.buf[0], s.buf[1], s.buf[2], s.buf[3]]) as usize;
            if n <= limit {
                let need = dockerlog::LEN_BYTES + n - s.buf.len();
                let take = need.min(data.len());
                s.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                if take < need {
                    return;
                }
            }
            // A whole frame, or a length that loses the framing.
            let held = std::mem::take(&mut s.buf);
            self.frames(s, &held, now);
            if s.resync {
                // Look for the next frame after the bad one's length.
                let rest = held[dockerlog::LEN_BYTES..].to_vec();
                if let Some(r) = self.resync(s, &rest, limit) {
                    let r = r.to_vec();
                    // Rare (a bad frame across reads): what follows the
                    // frame start found is handled as if read now.
                    self.consume_docker(s, &r, now);
                }
                continue;
            }
            // Keep a small buffer for the next frame, not the largest seen.
            if held.capacity() <= 32 * 1024 {
                s.buf = held;
                s.buf.clear();
            }
        }
    }

    /// Looking for a frame start after bad bytes: the start of `data` (with
    /// the few bytes carried from the last read) that looks like dockerd's
    /// frame, or `None` when `data` had none (all of it is dropped).
    fn resync<'a>(
        &mut self,
        s: &mut DockerStream,
        data: &'a [u8],
        limit: usize,
    ) -> Option<&'a [u8]> {
        // A start that begins in the carried bytes.
        let mut win = std::mem::take(&mut s.buf);
        let carried = win.len();
        win.extend_from_slice(&data[..data.len().min(dockerlog::SYNC_LEN)]);
        if let Some(h) = dockerlog::find_frame_start(&win, limit).filter(|&h| h < carried) {
            self.counters.docker_bytes_discarded += h as u64;
            win.truncate(carried);
            s.buf = win.split_off(h);
            s.resync = false;
            return Some(data);
        }
        if let Some(h) = dockerlog::find_frame_start(data, limit) {
            self.counters.docker_bytes_discarded += (carried + h) as u64;
            s.resync = false;
            return Some(&data[h..]);
        }
        // None here: keep the last bytes, a start may straddle the next read.
        win.truncate(carried);
        win.extend_from_slice(data);
        let keep = win.len().min(dockerlog::SYNC_LEN - 1);
        self.counters.docker_bytes_discarded += (win.len() - keep) as u64;
        s.buf = win.split_off(win.len() - keep);
        None
    }

    /// Handles the whole frames at the start of `b`; returns the bytes used.
    /// On a frame that cannot be Docker's (a length over the limit, an entry
    /// that does not decode) it sets `s.resync` and returns the offset just
    /// after that frame's length.
    fn frames(&mut self, s: &mut DockerStream, b: &[u8], now: i64) -> usize {
        let limit = frame_limit(self.cfg.max_line_len);
        let mut used = 0;
        loop {
            let rest = &b[used..];
            let why = match dockerlog::split(rest) {
                Frame::Whole(body, n) if body.len() <= limit => match dockerlog::decode(body) {
                    Ok(e) => {
                        used += n;
                        self.entry(s, &e, now);
                        continue;
                    }
                    Err(e) => format!("an entry of {} bytes does not decode ({e})", body.len()),
                },
                Frame::Incomplete if rest.len() < dockerlog::LEN_BYTES => return used,
                Frame::Incomplete | Frame::Whole(..) | Frame::TooLong(_) => {
                    let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    if n <= limit {
                        return used;
                    }
                    format!("a frame length of {n} bytes is over the limit of {limit} (-max-line-len + 1024, at least 64 KiB)")
                }
            };
            self.counters.docker_frames_bad += 1;
            self.counters.docker_bytes_discarded += dockerlog::LEN_BYTES as u64;
            s.resync = true;
            self.note(format!(
                "{}: {why}: not Docker's framing, or corrupt; bytes up to the next frame are dropped",
                s.what
            ));
            return used + dockerlog::LEN_BYTES;
        }
    }

    /// One decoded entry: a whole line, or a piece of one.
    fn entry(&mut self, s: &mut DockerStream, e: &Entry<'_>, now: i64) {
        let stdout = e.source == b"stdout";
        let max = self.cfg.max_line_len;
        let j = &mut s.joins[usize::from(!stdout)];
        if !j.active && e.ends_line() {
            let cut = e.line.len() > max;
            let line = &e.line[..e.line.len().min(max)];
            let out = Out {
                stdout,
                line,
                cut,
                time_nano: e.time_nano,
                unterminated: false,
            };
            return self.store_docker(s, &out, now);
        }
        if !j.active {
            j.active = true;
            j.time_nano = e.time_nano;
        }
        let mut emit_cut = false;
        if !j.cut {
            let room = max - j.pending.len();
            if e.line.len() > room {
                j.pending.extend_from_slice(&e.line[..room]);
                j.cut = true;
                emit_cut = true;
            } else {
                j.pending.extend_from_slice(e.line);
            }
        }
        let ends = e.ends_line();
        if emit_cut || (ends && !j.cut) {
            let pending = std::mem::take(&mut j.pending);
            let time_nano = j.time_nano;
            let out = Out {
                stdout,
                line: &pending,
                cut: emit_cut,
                time_nano,
                unterminated: false,
            };
            self.store_docker(s, &out, now);
            let j = &mut s.joins[usize::from(!stdout)];
            j.pending = pending;
            j.pending.clear();
        }
        if ends {
            let j = &mut s.joins[usize::from(!stdout)];
            j.active = false;
            j.cut = false;
        }
    }

    /// At EOF: a line whose last piece never came is still a record.
    pub(super) fn finish_docker(&mut self, s: &mut DockerStream, now: i64) {
        for stdout in [true, false] {
            let j = &mut s.joins[usize::from(!stdout)];
            if j.active && !j.cut {
                let pending = std::mem::take(&mut j.pending);
                let out = Out {
                    stdout,
                    line: &pending,
                    cut: false,
                    time_nano: j.time_nano,
                    unterminated: true,
                };
                self.store_docker(s, &out, now);
            }
        }
        if !s.buf.is_empty() && !s.resync {
            self.counters.docker_frames_bad += 1;
            self.note(format!(
                "{}: the stream ended inside a frame ({} bytes of it dropped)",
                s.what,
                s.buf.len()
            ));
        }
    }

    fn store_docker(&mut self, s: &DockerStream, o: &Out<'_>, now: i64) {
        let name: &[u8] = if o.stdout { &s.out_name } else { &s.err_name };
        if !self
            .rate
            .admit(RateKey::Source(name), None, Instant::now(), |w, n| {
                self.pending_reports.push((w, n))
            })
        {
            self.counters.rate_limited += 1;
            return;
        }
        if o.cut {
            self.counters.lines_truncated += 1;
        }
        let mut m = s.base.clone();
        m.text(meta::STREAM, if o.stdout { b"stdout" } else { b"stderr" });
        if let Ok(t) = u64::try_from(o.time_nano) {
            m.u64(meta::TIME_NANO, t);
        }
        if o.unterminated {
            m.text(meta::UNTERMINATED, b"");
        }
        let flags = if o.cut { FLAG_TRUNCATED } else { 0 };
        self.store(now, name, o.line, flags, NO_PRI, m.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_limits() {
        assert_eq!(frame_limit(1024), 64 * 1024);
        assert_eq!(frame_limit(1 << 20), dockerlog::MAX_FRAME);
        assert_eq!(frame_limit(100_000), 101_024);
    }
}
