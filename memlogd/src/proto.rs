//! The query protocol, both sides: LinuxKit's mode byte and JSON lines, and
//! memlog's versioned extension (see PROTOCOL.md). Encoding for the daemon,
//! decoding for clients; nothing else in the workspace frames these bytes.

use crate::escape;
use crate::json::{self, Value};
use crate::meta;
use crate::ring::{self, FLAG_TRUNCATED};
use crate::timefmt;
use std::borrow::Cow;
use std::fmt;

/// LinuxKit's default log socket (writers pass fds here).
pub const DEFAULT_LOG_SOCKET: &str = "/var/run/linuxkit-external-logging.sock";
/// LinuxKit's default query socket (readers connect here).
pub const DEFAULT_QUERY_SOCKET: &str = "/var/run/memlogdq.sock";
/// Source of memlogd's own records.
pub const SELF_SOURCE: &[u8] = b"memlogd";
/// What follows the mode byte in an extended request.
pub const EXT_MAGIC: &[u8] = b"memlog/1";
/// [`EXT_MAGIC`] as text (it starts every reply on the log socket).
pub const EXT_MAGIC_STR: &str = "memlog/1";
/// Protocol extension version.
pub const EXT_VERSION: u64 = 1;
/// Longest extended request line the daemon accepts.
pub const MAX_REQUEST: usize = 4096;

/// LinuxKit's query modes (the first byte a reader sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Send the buffer, then close.
    Dump = 0,
    /// Send only new records, never close.
    Follow = 1,
    /// Send the buffer, then new records.
    DumpFollow = 2,
}

impl Mode {
    pub fn from_byte(b: u8) -> Option<Mode> {
        match b {
            0 => Some(Mode::Dump),
            1 => Some(Mode::Follow),
            2 => Some(Mode::DumpFollow),
            _ => None,
        }
    }
}

/// A position in a memlogd's stream: its instance id and a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub instance: u64,
    pub seq: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}:{}", self.instance, self.seq)
    }
}

impl std::str::FromStr for Position {
    type Err = String;
    fn from_str(s: &str) -> Result<Position, String> {
        let (i, q) = s
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("invalid position {s:?} (want INSTANCE:SEQ)"))?;
        Ok(Position {
            instance: u64::from_str_radix(i, 16)
                .map_err(|_| format!("invalid instance id in {s:?}"))?,
            seq: q
                .parse()
                .map_err(|_| format!("invalid sequence number in {s:?}"))?,
        })
    }
}

/// A query. With nothing but a mode it is LinuxKit's one-byte request;
/// otherwise it is sent as an extended request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub mode: Mode,
    /// Resume after this record (same instance), or from the oldest record
    /// if the instance differs (the daemon restarted).
    pub after: Option<Position>,
    /// Only these sources (exact names); empty means all.
    pub sources: Vec<Vec<u8>>,
    /// Ask for the daemon's counters instead of records.
    pub stats: bool,
    /// Only sources matching one of these globs (with `sources`: any of
    /// either). See [`crate::filter`] for every selection field below.
    pub source_globs: Vec<Vec<u8>>,
    /// Never these sources (exact names), nor those matching these globs.
    pub exclude: Vec<Vec<u8>>,
    pub exclude_globs: Vec<Vec<u8>>,
    /// Only records this severe or more (0 emerg ..= 7 debug).
    pub min_severity: Option<u8>,
    /// Only records received at or after / at or before these times (ns).
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
    /// Only messages containing one of these fixed strings.
    pub grep: Vec<Vec<u8>>,
    /// Only records of one of these Docker containers (full ids).
    pub containers: Vec<Vec<u8>>,
    /// Start this many matching records before the end of the buffer
    /// (modes 0 and 2; after `after`, if both are given).
    pub last: Option<u64>,
}

/// Writes `v` as a request field value: bytes outside `!`..`~` and `%` as `%XX`.
pub fn pct_encode(out: &mut Vec<u8>, v: &[u8]) {
    for &b in v {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(b"0123456789ABCDEF"[(b >> 4) as usize]);
            out.push(b"0123456789ABCDEF"[(b & 15) as usize]);
        }
    }
}

/// Reads a value written by [`pct_encode`].
pub fn pct_decode(v: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let h = v
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(h.ok_or("bad %-escape in request")?);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    Ok(out)
}

impl Request {
    pub fn new(mode: Mode) -> Request {
        Request {
            mode,
            after: None,
            sources: Vec::new(),
            stats: false,
            source_globs: Vec::new(),
            exclude: Vec::new(),
            exclude_globs: Vec::new(),
            min_severity: None,
            since_ns: None,
            until_ns: None,
            grep: Vec::new(),
            containers: Vec::new(),
            last: None,
        }
    }

    /// The same request without the selection fields (`source=` ...
    /// `last=`): what a client sends when it filters by itself.
    pub fn unfiltered(&self) -> Request {
        Request {
            after: self.after,
            stats: self.stats,
            ..Request::new(self.mode)
        }
    }

    /// The bytes a client writes, in one `write`: the mode byte, then (for
    /// our own clients) `memlog/1` and space-separated fields up to `\n`.
    /// LinuxKit's memlogd reads only the first byte, so the same request
    /// works against it, minus the extension.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.mode as u8];
        v.extend_from_slice(EXT_MAGIC);
        if let Some(p) = self.after {
            v.extend_from_slice(format!(" after={p}").as_bytes());
        }
        for s in &self.sources {
            v.extend_from_slice(b" source=");
            pct_encode(&mut v, s);
        }
        let lists: [(&[u8], &Vec<Vec<u8>>); 5] = [
            (b" source-glob=", &self.source_globs),
            (b" exclude=", &self.exclude),
            (b" exclude-glob=", &self.exclude_globs),
            (b" grep=", &self.grep),
            (b" container=", &self.containers),
        ];
        for (key, vals) in lists {
            for s in vals {
                v.extend_from_slice(key);
                pct_encode(&mut v, s);
            }
        }
        if let Some(n) = self.min_severity {
            v.extend_from_slice(format!(" min-severity={n}").as_bytes());
        }
        for (key, t) in [
            (&b" since="[..], self.since_ns),
            (b" until=", self.until_ns),
        ] {
            if let Some(t) = t {
                v.extend_from_slice(key);
                timefmt::write_rfc3339_nano(&mut v, t);
            }
        }
        if let Some(n) = self.last {
            v.extend_from_slice(format!(" last={n}").as_bytes());
        }
        if self.stats {
            v.extend_from_slice(b" stats");
        }
        v.push(b'\n');
        v
    }
}

/// What the daemon makes of the bytes a reader sent so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// LinuxKit's one-byte request (any bytes after a non-magic suffix are ignored, as LinuxKit does).
    Legacy(Mode),
    Extended(Request),
    /// An extended request whose line has not fully arrived.
    NeedMore,
    Invalid(String),
}

/// Parses what a reader sent (at least one byte).
pub fn parse_request(buf: &[u8]) -> Parsed {
    let Some(&b0) = buf.first() else {
        return Parsed::NeedMore;
    };
    let Some(mode) = Mode::from_byte(b0) else {
        return Parsed::Invalid(format!(
            "unknown query mode {b0} (0 dump, 1 follow, 2 dump and follow)"
        ));
    };
    let rest = &buf[1..];
    if rest.len() < EXT_MAGIC.len() {
        return if !rest.is_empty() && EXT_MAGIC.starts_with(rest) {
            Parsed::NeedMore
        } else {
            Parsed::Legacy(mode)
        };
    }
    if !rest.starts_with(EXT_MAGIC) {
        return Parsed::Legacy(mode);
    }
    let Some(nl) = memchr::memchr(b'\n', rest) else {
        return if buf.len() >= MAX_REQUEST {
            Parsed::Invalid(format!("request longer than {MAX_REQUEST} bytes"))
        } else {
            Parsed::NeedMore
        };
    };
    let mut req = Request::new(mode);
    for tok in rest[EXT_MAGIC.len()..nl]
        .split(|&c| c == b' ')
        .filter(|t| !t.is_empty())
    {
        let (k, v) = match memchr::memchr(b'=', tok) {
            Some(i) => (&tok[..i], Some(&tok[i + 1..])),
            None => (tok, None),
        };
        match (k, v) {
            (b"after", Some(v)) => match std::str::from_utf8(v)
                .map_err(|e| e.to_string())
                .and_then(|s| s.parse())
            {
                Ok(p) => req.after = Some(p),
                Err(e) => return Parsed::Invalid(e),
            },
            (b"source", Some(v)) => match pct_decode(v) {
                Ok(s) => req.sources.push(s),
                Err(e) => return Parsed::Invalid(e),
            },
            (b"source-glob", Some(v)) => match pct_decode(v) {
                Ok(s) => req.source_globs.push(s),
                Err(e) => return Parsed::Invalid(e),
            },
            (b"exclude", Some(v)) => match pct_decode(v) {
                Ok(s) => req.exclude.push(s),
                Err(e) => return Parsed::Invalid(e),
            },
            (b"exclude-glob", Some(v)) => match pct_decode(v) {
                Ok(s) => req.exclude_globs.push(s),
                Err(e) => return Parsed::Invalid(e),
            },
            (b"grep", Some(v)) => match pct_decode(v) {
                Ok(s) => req.grep.push(s),
                Err(e) => return Parsed::Invalid(e),
            },
            (b"container", Some(v)) => match pct_decode(v) {
                Ok(s) => req.containers.push(s),
                Err(e) => return Parsed::Invalid(e),
            },
            (b"min-severity", Some(v)) => {
                match std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<u8>().ok())
                {
                    Some(n) if n <= 7 => req.min_severity = Some(n),
                    _ => return Parsed::Invalid("min-severity wants 0..7".into()),
                }
            }
            (b"since" | b"until", Some(v)) => {
                let Some(t) = std::str::from_utf8(v).ok().and_then(timefmt::parse_rfc3339) else {
                    return Parsed::Invalid(format!(
                        "{} wants an RFC 3339 time",
                        String::from_utf8_lossy(k)
                    ));
                };
                if k == b"since" {
                    req.since_ns = Some(t);
                } else {
                    req.until_ns = Some(t);
                }
            }
            (b"last", Some(v)) => {
                match std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    Some(n) => req.last = Some(n),
                    None => return Parsed::Invalid("last wants a number".into()),
                }
            }
            (b"stats", None) => req.stats = true,
            _ => {
                return Parsed::Invalid(format!(
                    "unknown request field {:?}",
                    String::from_utf8_lossy(tok)
                ))
            }
        }
    }
    Parsed::Extended(req)
}

/// Appends one record as a JSON line. `ext` adds the sequence number (and
/// flags) for extended readers; without it the object has exactly LinuxKit's
/// keys `time`, `source`, `msg`.
pub fn encode_record(out: &mut Vec<u8>, r: &ring::Record<'_>, ext: bool) {
    encode_record_head(out, r, ext);
    let raw_source = json::write_str(out, r.source);
    out.extend_from_slice(b",\"msg\":");
    let raw_msg = json::write_str(out, r.msg);
    if ext {
        // Names and messages that are not UTF-8 are also sent exactly.
        if raw_source {
            out.extend_from_slice(b",\"source_raw\":");
            json::write_raw(out, r.source);
        }
        if raw_msg {
            out.extend_from_slice(b",\"msg_raw\":");
            json::write_raw(out, r.msg);
        }
    }
    encode_record_tail(out, r, ext);
}

/// True if `s` is not valid UTF-8 (its JSON string is lossy, and extended
/// readers get its `_raw` form too).
fn lossy(s: &[u8]) -> bool {
    !s.is_ascii() && std::str::from_utf8(s).is_err()
}

/// Most bytes of a record line before its source: `{"seq":N,"time":"...","source":`.
pub const MAX_RECORD_HEAD: usize = 128;
/// Most bytes of a record line after its message's closing quote: the
/// optional keys (metadata is at most [`ring::MAX_META`] bytes, each
/// encoding to at most [`json::MAX_UNIT`]), `}` and `\n`.
pub const MAX_RECORD_TAIL: usize = json::MAX_UNIT * ring::MAX_META + 128;

/// An upper bound on the bytes [`encode_record`] appends for `r`.
pub fn record_bound(r: &ring::Record<'_>) -> usize {
    // Strings and their `_raw` forms (each byte at most MAX_UNIT bytes).
    MAX_RECORD_HEAD
        + json::MAX_UNIT * (2 * (r.source.len() + r.msg.len()) + r.meta.len())
        + 16
        + 160
}

fn encode_record_head(out: &mut Vec<u8>, r: &ring::Record<'_>, ext: bool) {
    if ext {
        out.extend_from_slice(b"{\"seq\":");
        json::write_u64(out, r.seq);
        out.extend_from_slice(b",\"time\":\"");
    } else {
        out.extend_from_slice(b"{\"time\":\"");
    }
    timefmt::write_rfc3339_nano(out, r.time_ns);
    out.extend_from_slice(b"\",\"source\":");
}

/// Where a record line being written in pieces stands: inside its source,
/// its message, or (extended readers, bytes that are not UTF-8) their
/// `_raw` forms, at this byte of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Source(usize),
    Msg(usize),
    SourceRaw(usize),
    MsgRaw(usize),
}

/// A record line written in pieces, so that a reader's buffer never holds
/// much more than its limit however long the record (a 1 MiB message can
/// take 6 MiB of JSON). The pieces, end to end, are exactly the bytes of
/// [`encode_record`]: the source and message strings are cut only between
/// whole units ([`json::write_str_part`]); the head and the tail (at most
/// [`MAX_RECORD_HEAD`] and [`MAX_RECORD_TAIL`] bytes) are written whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialRecord(Piece);

impl PartialRecord {
    /// Starts the line of `r`, and writes as much of it as fits: `None`
    /// when the line is complete, else where to go on when `out` has room
    /// again. Strings stop once `out` holds `limit` bytes.
    pub fn start(
        out: &mut Vec<u8>,
        r: &ring::Record<'_>,
        ext: bool,
        limit: usize,
    ) -> Option<PartialRecord> {
        encode_record_head(out, r, ext);
        out.push(b'"');
        PartialRecord(Piece::Source(0)).resume(out, r, ext, limit)
    }

    /// Goes on with the same record `r`.
    pub fn resume(
        self,
        out: &mut Vec<u8>,
        r: &ring::Record<'_>,
        ext: bool,
        limit: usize,
    ) -> Option<PartialRecord> {
        let mut at = self.0;
        loop {
            match at {
                Piece::Source(pos) => {
                    let pos = json::write_str_part(out, r.source, pos, limit);
                    if pos < r.source.len() {
                        return Some(PartialRecord(Piece::Source(pos)));
                    }
                    out.extend_from_slice(b"\",\"msg\":\"");
                    at = Piece::Msg(0);
                    if !r.msg.is_empty() && out.len() >= limit {
                        return Some(PartialRecord(at));
                    }
                }
                Piece::Msg(pos) => {
                    let pos = json::write_str_part(out, r.msg, pos, limit);
                    if pos < r.msg.len() {
                        return Some(PartialRecord(Piece::Msg(pos)));
                    }
                    out.push(b'"');
                    if ext && lossy(r.source) {
                        // Opened and started in the same piece, so that a
                        // line cut short never carries an empty `_raw`.
                        out.extend_from_slice(b",\"source_raw\":\"");
                        at = Piece::SourceRaw(0);
                    } else {
                        return Self::raw_msg_or_end(out, r, ext, limit);
                    }
                }
                Piece::SourceRaw(pos) => {
                    let pos = json::write_raw_part(out, r.source, pos, limit);
                    if pos < r.source.len() {
                        return Some(PartialRecord(Piece::SourceRaw(pos)));
                    }
                    out.push(b'"');
                    return Self::raw_msg_or_end(out, r, ext, limit);
                }
                Piece::MsgRaw(pos) => {
                    let pos = json::write_raw_part(out, r.msg, pos, limit);
                    if pos < r.msg.len() {
                        return Some(PartialRecord(Piece::MsgRaw(pos)));
                    }
                    out.push(b'"');
                    encode_record_tail(out, r, ext);
                    return None;
                }
            }
        }
    }

    /// After the strings (and `source_raw`): `msg_raw` if the message is not
    /// UTF-8 (extended readers), then the tail.
    fn raw_msg_or_end(
        out: &mut Vec<u8>,
        r: &ring::Record<'_>,
        ext: bool,
        limit: usize,
    ) -> Option<PartialRecord> {
        if ext && lossy(r.msg) {
            out.extend_from_slice(b",\"msg_raw\":\"");
            return PartialRecord(Piece::MsgRaw(0)).resume(out, r, ext, limit);
        }
        encode_record_tail(out, r, ext);
        None
    }

    /// The record was overwritten before its line was complete: ends the
    /// line as valid JSON with what was sent (LinuxKit's keys present; an
    /// extended reader also gets `"truncated":true`).
    pub fn abandon(self, out: &mut Vec<u8>, ext: bool) {
        match self.0 {
            Piece::Source(_) => out.extend_from_slice(b"\",\"msg\":\"\""),
            Piece::Msg(_) | Piece::SourceRaw(_) | Piece::MsgRaw(_) => out.push(b'"'),
        }
        if ext {
            out.extend_from_slice(b",\"truncated\":true");
        }
        out.extend_from_slice(b"}\n");
    }
}

fn encode_record_tail(out: &mut Vec<u8>, r: &ring::Record<'_>, ext: bool) {
    if ext {
        if r.flags & FLAG_TRUNCATED != 0 {
            out.extend_from_slice(b",\"truncated\":true");
        }
        if r.pri != ring::NO_PRI {
            out.extend_from_slice(b",\"facility\":");
            json::write_u64(out, u64::from(r.pri >> 3));
            out.extend_from_slice(b",\"severity\":");
            json::write_u64(out, u64::from(r.pri & 7));
        }
        if !r.meta.is_empty() {
            encode_meta(out, r.meta);
        }
    }
    out.extend_from_slice(b"}\n");
}

fn encode_meta(out: &mut Vec<u8>, m: &[u8]) {
    // Continuation lines, joined by `\n` (an empty one is still a line).
    let mut kv: Option<Vec<u8>> = None;
    for (k, v) in meta::entries(m) {
        if k == meta::CREDS {
            if let Some((pid, uid, gid)) = meta::creds(v) {
                for (name, n) in [(&b"pid"[..], pid), (b"uid", uid), (b"gid", gid)] {
                    out.extend_from_slice(b",\"");
                    out.extend_from_slice(name);
                    out.extend_from_slice(b"\":");
                    json::write_u64(out, u64::from(n));
                }
            }
            continue;
        }
        let key: &[u8] = match k {
            meta::PID => b"pid",
            meta::UID => b"uid",
            meta::GID => b"gid",
            meta::KSEQ => b"kseq",
            meta::KTIME => b"ktime_us",
            meta::APP => b"app",
            meta::PROCID => b"procid",
            meta::MSGID => b"msgid",
            meta::SD => b"sd",
            meta::STIME => b"stime",
            meta::HOST => b"host",
            meta::CONTAINER_ID => b"container_id",
            meta::CONTAINER_NAME => b"container_name",
            meta::IMAGE => b"image",
            meta::STREAM => b"stream",
            meta::TIME_NANO => b"time_nano",
            meta::UNTERMINATED => {
                out.extend_from_slice(b",\"unterminated\":true");
                continue;
            }
            meta::KV => {
                // All continuation lines go in one string, one per line.
                match &mut kv {
                    Some(kv) => {
                        kv.push(b'\n');
                        kv.extend_from_slice(v);
                    }
                    None => kv = Some(v.to_vec()),
                }
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key);
        out.extend_from_slice(b"\":");
        match k {
            meta::PID | meta::UID | meta::GID | meta::KSEQ | meta::KTIME | meta::TIME_NANO => {
                json::write_u64(out, meta::number(v).unwrap_or(0))
            }
            _ => {
                json::write_str(out, v);
            }
        }
    }
    if let Some(kv) = kv {
        out.extend_from_slice(b",\"kv\":");
        json::write_str(out, &kv);
    }
}

/// Appends the notice that `lost` records were overwritten before this reader
/// got them. For LinuxKit readers it is a record from source `memlogd`, which
/// their clients print like any other.
pub fn encode_lost(out: &mut Vec<u8>, lost: u64, next_seq: u64, now_ns: i64, ext: bool) {
    if ext {
        out.extend_from_slice(b"{\"lost\":");
        json::write_u64(out, lost);
        out.extend_from_slice(b",\"next\":");
        json::write_u64(out, next_seq);
        out.extend_from_slice(b"}\n");
    } else {
        let msg =
            format!("{lost} records lost: this reader fell behind and the buffer overwrote them");
        let r = ring::Record::plain(now_ns, SELF_SOURCE, msg.as_bytes());
        encode_record(out, &r, false);
    }
}

/// Appends the first line of an extended reply.
pub fn encode_hello(out: &mut Vec<u8>, instance: u64, first: u64, next: u64) {
    out.extend_from_slice(format!("{{\"memlog\":{EXT_VERSION},\"instance\":\"{instance:016x}\",\"first\":{first},\"next\":{next}}}\n").as_bytes());
}

/// Appends an extended error reply.
pub fn encode_error(out: &mut Vec<u8>, msg: &str) {
    out.extend_from_slice(format!("{{\"memlog\":{EXT_VERSION},\"error\":").as_bytes());
    json::write_str(out, msg.as_bytes());
    out.extend_from_slice(b"}\n");
}

/// A record as a client holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Present when the server speaks the extension.
    pub seq: Option<u64>,
    /// The time as the server wrote it (RFC 3339).
    pub time: String,
    /// The source and message as text (bytes that are not UTF-8 shown as
    /// U+FFFD); see [`Record::source_bytes`] and [`Record::msg_bytes`].
    pub source: String,
    pub msg: String,
    /// The exact bytes of the source and message when they are not valid
    /// UTF-8 (memlogd sends them as `source_raw` and `msg_raw`).
    pub source_raw: Option<Vec<u8>>,
    pub msg_raw: Option<Vec<u8>>,
    pub truncated: bool,
    /// Syslog facility (0..=23), when the input carried one.
    pub facility: Option<u8>,
    /// Syslog severity (0 emerg ..= 7 debug), when the input carried one.
    pub severity: Option<u8>,
    /// Sender's pid, uid, gid as the kernel reported them (never as claimed).
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Syslog tag / APP-NAME, PROCID (as claimed by the sender), MSGID,
    /// STRUCTURED-DATA, the sender's timestamp and HOSTNAME, as sent.
    pub app: Option<String>,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    pub sd: Option<String>,
    pub stime: Option<String>,
    pub host: Option<String>,
    /// Kernel log sequence number and timestamp (µs since boot).
    pub kseq: Option<u64>,
    pub ktime_us: Option<u64>,
    /// Kernel continuation lines, `KEY=value` each.
    pub kv: Vec<String>,
    /// Docker: the container's id, name and image, the stream (`stdout`,
    /// `stderr`) and dockerd's own time of the line (ns since the epoch).
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    pub image: Option<String>,
    pub stream: Option<String>,
    pub time_nano: Option<u64>,
    /// Docker: the stream ended inside this line (its end never came).
    pub unterminated: bool,
}

/// A record as [`Client::next_ref`](crate::client::Client::next_ref)
/// decodes it: its text borrowed from the reply line (owned only where the
/// JSON string had escapes), so reading a record allocates nothing. The
/// fields are those of [`Record`]; [`RecordRef::to_owned`] and
/// [`Record::as_ref`] go between the two.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub seq: Option<u64>,
    pub time: Cow<'a, str>,
    pub source: Cow<'a, str>,
    pub msg: Cow<'a, str>,
    pub source_raw: Option<Cow<'a, [u8]>>,
    pub msg_raw: Option<Cow<'a, [u8]>>,
    pub truncated: bool,
    pub facility: Option<u8>,
    pub severity: Option<u8>,
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub app: Option<Cow<'a, str>>,
    pub procid: Option<Cow<'a, str>>,
    pub msgid: Option<Cow<'a, str>>,
    pub sd: Option<Cow<'a, str>>,
    pub stime: Option<Cow<'a, str>>,
    pub host: Option<Cow<'a, str>>,
    pub kseq: Option<u64>,
    pub ktime_us: Option<u64>,
    pub kv: Cow<'a, [String]>,
    pub container_id: Option<Cow<'a, str>>,
    pub container_name: Option<Cow<'a, str>>,
    pub image: Option<Cow<'a, str>>,
    pub stream: Option<Cow<'a, str>>,
    pub time_nano: Option<u64>,
    pub unterminated: bool,
}

/// Syslog severity names, by number (RFC 5424 section 6.2.1).
pub const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Syslog facility names, by number (RFC 5424; 12..=15 as rsyslog names them).
pub const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Severity of records whose input carried none (a service's stdout or
/// stderr): `info`, as journald assigns to stdout.
pub const DEFAULT_SEVERITY: u8 = 6;
/// Facility of records whose input carried none: `user`.
pub const DEFAULT_FACILITY: u8 = 1;

/// Parses a severity as syslog tools accept it: a number 0..=7 or a name
/// (`emerg`, `alert`, `crit`, `err`, `warning`, `notice`, `info`, `debug`,
/// and the aliases `panic`, `error`, `warn`).
pub fn parse_severity(s: &str) -> Option<u8> {
    let l = s.trim().to_ascii_lowercase();
    if let Ok(n) = l.parse::<u8>() {
        return (n <= 7).then_some(n);
    }
    match l.as_str() {
        "panic" => Some(0),
        "error" => Some(3),
        "warn" => Some(4),
        _ => SEVERITIES.iter().position(|&n| n == l).map(|p| p as u8),
    }
}

/// Parses a facility: a number 0..=23 or a name (`auth`, `local3`, ...).
pub fn parse_facility(s: &str) -> Option<u8> {
    let l = s.trim().to_ascii_lowercase();
    if let Ok(n) = l.parse::<u8>() {
        return (n <= 23).then_some(n);
    }
    FACILITIES.iter().position(|&n| n == l).map(|p| p as u8)
}

impl<'a> RecordRef<'a> {
    /// The source's exact bytes (its name as the writer gave it).
    pub fn source_bytes(&self) -> &[u8] {
        self.source_raw.as_deref().unwrap_or(self.source.as_bytes())
    }

    /// The message's exact bytes.
    pub fn msg_bytes(&self) -> &[u8] {
        self.msg_raw.as_deref().unwrap_or(self.msg.as_bytes())
    }

    /// The record's severity, or [`DEFAULT_SEVERITY`].
    pub fn severity_or_default(&self) -> u8 {
        self.severity.unwrap_or(DEFAULT_SEVERITY)
    }
    /// The record's facility, or [`DEFAULT_FACILITY`].
    pub fn facility_or_default(&self) -> u8 {
        self.facility.unwrap_or(DEFAULT_FACILITY)
    }

    /// The time in nanoseconds since the epoch, if it parses.
    pub fn time_ns(&self) -> Option<i64> {
        timefmt::parse_rfc3339(&self.time)
    }

    /// Appends `TIME;SOURCE;MSG\n` as LinuxKit's logread prints it (`;` in
    /// the source escaped as `\;`), with control characters and invalid
    /// UTF-8 escaped (see [`crate::escape`]): one record is one line.
    pub fn write_text(&self, out: &mut Vec<u8>) {
        escape::write(out, self.time.as_bytes());
        out.push(b';');
        escape::write_with(out, self.source_bytes(), Some(b';'));
        out.push(b';');
        escape::write(out, self.msg_bytes());
        out.push(b'\n');
    }

    /// The same record, owning its text.
    pub fn to_owned(&self) -> Record {
        let s = |c: &Option<Cow<'a, str>>| c.as_ref().map(|v| v.clone().into_owned());
        Record {
            seq: self.seq,
            time: self.time.clone().into_owned(),
            source: self.source.clone().into_owned(),
            msg: self.msg.clone().into_owned(),
            source_raw: self.source_raw.as_ref().map(|v| v.clone().into_owned()),
            msg_raw: self.msg_raw.as_ref().map(|v| v.clone().into_owned()),
            truncated: self.truncated,
            facility: self.facility,
            severity: self.severity,
            pid: self.pid,
            uid: self.uid,
            gid: self.gid,
            app: s(&self.app),
            procid: s(&self.procid),
            msgid: s(&self.msgid),
            sd: s(&self.sd),
            stime: s(&self.stime),
            host: s(&self.host),
            kseq: self.kseq,
            ktime_us: self.ktime_us,
            kv: self.kv.clone().into_owned(),
            container_id: s(&self.container_id),
            container_name: s(&self.container_name),
            image: s(&self.image),
            stream: s(&self.stream),
            time_nano: self.time_nano,
            unterminated: self.unterminated,
        }
    }
}

impl Record {
    /// A borrowed view of this record (no copy), for code written against
    /// [`RecordRef`].
    pub fn as_ref(&self) -> RecordRef<'_> {
        fn s(c: &Option<String>) -> Option<Cow<'_, str>> {
            c.as_deref().map(Cow::Borrowed)
        }
        RecordRef {
            seq: self.seq,
            time: Cow::Borrowed(&self.time),
            source: Cow::Borrowed(&self.source),
            msg: Cow::Borrowed(&self.msg),
            source_raw: self.source_raw.as_deref().map(Cow::Borrowed),
            msg_raw: self.msg_raw.as_deref().map(Cow::Borrowed),
            truncated: self.truncated,
            facility: self.facility,
            severity: self.severity,
            pid: self.pid,
            uid: self.uid,
            gid: self.gid,
            app: s(&self.app),
            procid: s(&self.procid),
            msgid: s(&self.msgid),
            sd: s(&self.sd),
            stime: s(&self.stime),
            host: s(&self.host),
            kseq: self.kseq,
            ktime_us: self.ktime_us,
            kv: Cow::Borrowed(&self.kv),
            container_id: s(&self.container_id),
            container_name: s(&self.container_name),
            image: s(&self.image),
            stream: s(&self.stream),
            time_nano: self.time_nano,
            unterminated: self.unterminated,
        }
    }

    /// The source's exact bytes (its name as the writer gave it).
    pub fn source_bytes(&self) -> &[u8] {
        self.source_raw.as_deref().unwrap_or(self.source.as_bytes())
    }

    /// The message's exact bytes.
    pub fn msg_bytes(&self) -> &[u8] {
        self.msg_raw.as_deref().unwrap_or(self.msg.as_bytes())
    }

    /// The record's severity, or [`DEFAULT_SEVERITY`].
    pub fn severity_or_default(&self) -> u8 {
        self.severity.unwrap_or(DEFAULT_SEVERITY)
    }
    /// The record's facility, or [`DEFAULT_FACILITY`].
    pub fn facility_or_default(&self) -> u8 {
        self.facility.unwrap_or(DEFAULT_FACILITY)
    }

    /// The time in nanoseconds since the epoch, if it parses.
    pub fn time_ns(&self) -> Option<i64> {
        timefmt::parse_rfc3339(&self.time)
    }

    /// [`RecordRef::write_text`].
    pub fn write_text(&self, out: &mut Vec<u8>) {
        self.as_ref().write_text(out)
    }

    /// [`RecordRef::write_json`].
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.as_ref().write_json(out)
    }
}

/// One line of a reply, decoded.
// Records are nearly every line; boxing them would allocate for each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Reply<R> {
    /// First line of an extended reply.
    Hello {
        instance: u64,
        first: u64,
        next: u64,
    },
    Record(R),
    /// `count` records were lost; the stream goes on at `next` (if known).
    Lost {
        count: u64,
        next: Option<u64>,
    },
    /// Counters (reply to a stats request), as name/value pairs.
    Stats(Vec<(String, u64)>),
    /// The server refused the request.
    Error(String),
}

/// A reply line owning its record.
pub type Line = Reply<Record>;
/// A reply line whose record borrows the line it was decoded from.
pub type LineRef<'a> = Reply<RecordRef<'a>>;

impl LineRef<'_> {
    /// The same line, owning its record.
    pub fn to_owned(&self) -> Line {
        match self {
            Reply::Hello {
                instance,
                first,
                next,
            } => Reply::Hello {
                instance: *instance,
                first: *first,
                next: *next,
            },
            Reply::Record(r) => Reply::Record(r.to_owned()),
            Reply::Lost { count, next } => Reply::Lost {
                count: *count,
                next: *next,
            },
            Reply::Stats(s) => Reply::Stats(s.clone()),
            Reply::Error(e) => Reply::Error(e.clone()),
        }
    }
}

/// Why a reply line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one reply line (without its `\n`).
pub fn decode_line(line: &[u8]) -> Result<Line, DecodeError> {
    decode_ref(line).map(|l| l.to_owned())
}

/// Decodes one reply line (without its `\n`), its record borrowing `line`.
/// One pass over the object's keys; unknown keys are skipped.
pub fn decode_ref(line: &[u8]) -> Result<LineRef<'_>, DecodeError> {
    let mut r = RecordRef::default();
    let (mut time, mut source, mut msg) = (None, None, None);
    let (mut memlog, mut error, mut stats) = (false, None, false);
    let (mut instance, mut first, mut next, mut lost) = (None, None, None, None);
    let small = |v: &Value, max: u64| v.as_u64().filter(|&n| n <= max);
    json::for_each_field(line, |k, v| {
        let v = &v;
        let text = || match v {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        };
        match k.as_ref() {
            "time" => time = text(),
            "source" => source = text(),
            "msg" => msg = text(),
            "seq" => r.seq = v.as_u64(),
            "source_raw" => r.source_raw = v.as_str().and_then(json::decode_raw).map(Cow::Owned),
            "msg_raw" => r.msg_raw = v.as_str().and_then(json::decode_raw).map(Cow::Owned),
            "truncated" => r.truncated = v.as_bool().unwrap_or(false),
            "facility" => r.facility = small(v, 23).map(|n| n as u8),
            "severity" => r.severity = small(v, 7).map(|n| n as u8),
            "pid" => r.pid = small(v, u32::MAX.into()).map(|n| n as u32),
            "uid" => r.uid = small(v, u32::MAX.into()).map(|n| n as u32),
            "gid" => r.gid = small(v, u32::MAX.into()).map(|n| n as u32),
            "app" => r.app = text(),
            "procid" => r.procid = text(),
            "msgid" => r.msgid = text(),
            "sd" => r.sd = text(),
            "stime" => r.stime = text(),
            "host" => r.host = text(),
            "kseq" => r.kseq = v.as_u64(),
            "ktime_us" => r.ktime_us = v.as_u64(),
            "kv" => {
                if let Some(kv) = v.as_str() {
                    r.kv = Cow::Owned(kv.split('\n').map(str::to_owned).collect());
                }
            }
            "container_id" => r.container_id = text(),
            "container_name" => r.container_name = text(),
            "image" => r.image = text(),
            "stream" => r.stream = text(),
            "time_nano" => r.time_nano = v.as_u64(),
            "unterminated" => r.unterminated = v.as_bool().unwrap_or(false),
            "memlog" => memlog = true,
            "error" => error = Some(v.as_str().unwrap_or("unknown error").to_owned()),
            "stats" => stats = true,
            "instance" => instance = v.as_str().and_then(|s| u64::from_str_radix(s, 16).ok()),
            "first" => first = v.as_u64(),
            "next" => next = v.as_u64(),
            "lost" => lost = v.as_u64(),
            _ => {}
        }
    })
    .map_err(|e| DecodeError(e.to_string()))?;
    if memlog {
        if let Some(e) = error {
            return Ok(Reply::Error(e));
        }
        if stats {
            // Rare: parsed again, whole.
            let obj = json::parse_object(line).map_err(|e| DecodeError(e.to_string()))?;
            let stats = obj
                .iter()
                .filter(|(k, _)| k != "memlog" && k != "stats")
                .filter_map(|(k, v)| Some((k.clone().into_owned(), v.as_u64()?)))
                .collect();
            return Ok(Reply::Stats(stats));
        }
        let (Some(instance), Some(first), Some(next)) = (instance, first, next) else {
            return Err(DecodeError("malformed memlog hello line".into()));
        };
        return Ok(Reply::Hello {
            instance,
            first,
            next,
        });
    }
    if let (Some(count), None) = (lost, &msg) {
        return Ok(Reply::Lost { count, next });
    }
    let (Some(time), Some(source), Some(msg)) = (time, source, msg) else {
        return Err(DecodeError("record without time, source or msg".into()));
    };
    r.time = time;
    r.source = source;
    r.msg = msg;
    Ok(Reply::Record(r))
}

impl RecordRef<'_> {
    /// Appends the record as one JSON object and `\n`, with the keys of an
    /// extended record line (`seq` and the optional keys only when known),
    /// whichever server it came from.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        if let Some(seq) = self.seq {
            out.extend_from_slice(b"\"seq\":");
            json::write_u64(out, seq);
            out.push(b',');
        }
        out.extend_from_slice(b"\"time\":");
        json::write_str(out, self.time.as_bytes());
        out.extend_from_slice(b",\"source\":");
        json::write_str(out, self.source.as_bytes());
        out.extend_from_slice(b",\"msg\":");
        json::write_str(out, self.msg.as_bytes());
        for (k, v) in [("source_raw", &self.source_raw), ("msg_raw", &self.msg_raw)] {
            if let Some(v) = v {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(k.as_bytes());
                out.extend_from_slice(b"\":");
                json::write_raw(out, v);
            }
        }
        if self.truncated {
            out.extend_from_slice(b",\"truncated\":true");
        }
        let nums = [
            ("facility", self.facility.map(u64::from)),
            ("severity", self.severity.map(u64::from)),
            ("pid", self.pid.map(u64::from)),
            ("uid", self.uid.map(u64::from)),
            ("gid", self.gid.map(u64::from)),
        ];
        let texts = [
            ("app", &self.app),
            ("procid", &self.procid),
            ("msgid", &self.msgid),
            ("sd", &self.sd),
            ("stime", &self.stime),
            ("host", &self.host),
            ("container_id", &self.container_id),
            ("container_name", &self.container_name),
            ("image", &self.image),
            ("stream", &self.stream),
        ];
        let key = |out: &mut Vec<u8>, k: &str| {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"\":");
        };
        for (k, v) in nums {
            if let Some(v) = v {
                key(out, k);
                json::write_u64(out, v);
            }
        }
        for (k, v) in texts {
            if let Some(v) = v {
                key(out, k);
                json::write_str(out, v.as_bytes());
            }
        }
        for (k, v) in [
            ("kseq", self.kseq),
            ("ktime_us", self.ktime_us),
            ("time_nano", self.time_nano),
        ] {
            if let Some(v) = v {
                key(out, k);
                json::write_u64(out, v);
            }
        }
        if !self.kv.is_empty() {
            key(out, "kv");
            json::write_str(out, self.kv.join("\n").as_bytes());
        }
        if self.unterminated {
            out.extend_from_slice(b",\"unterminated\":true");
        }
        out.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_requests_are_one_byte() {
        assert_eq!(parse_request(&[0]), Parsed::Legacy(Mode::Dump));
        assert_eq!(parse_request(&[1]), Parsed::Legacy(Mode::Follow));
        assert_eq!(parse_request(&[2]), Parsed::Legacy(Mode::DumpFollow));
        assert_eq!(
            parse_request(&[2, b'x', b'y']),
            Parsed::Legacy(Mode::DumpFollow)
        );
        assert!(matches!(parse_request(&[7]), Parsed::Invalid(_)));
    }

    #[test]
    fn extended_request_round_trip() {
        let mut r = Request::new(Mode::DumpFollow);
        r.after = Some(Position {
            instance: 0xabc,
            seq: 42,
        });
        r.sources = vec![
            b"a b%c".to_vec(),
            b"onboot.x.out".to_vec(),
            vec![0, 255, b'\n'],
        ];
        let enc = r.encode();
        assert_eq!(parse_request(&enc), Parsed::Extended(r.clone()));
        // Any strict prefix is incomplete, never misread as a legacy request.
        for cut in 2..enc.len() {
            assert_eq!(parse_request(&enc[..cut]), Parsed::NeedMore, "cut at {cut}");
        }
        let mut s = Request::new(Mode::Dump);
        s.stats = true;
        assert_eq!(parse_request(&s.encode()), Parsed::Extended(s));
    }

    #[test]
    fn bad_extended_requests_are_invalid() {
        assert!(matches!(
            parse_request(b"\x00memlog/1 frobnicate\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse_request(b"\x00memlog/1 after=zz:1\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse_request(b"\x00memlog/1 source=%G1\n"),
            Parsed::Invalid(_)
        ));
        let long = [&b"\x00memlog/1 "[..], &vec![b'a'; MAX_REQUEST]].concat();
        assert!(matches!(parse_request(&long), Parsed::Invalid(_)));
    }

    #[test]
    fn legacy_record_has_exactly_linuxkit_keys() {
        let r = ring::Record {
            seq: 9,
            time_ns: 1_531_041_413_123_456_789,
            flags: FLAG_TRUNCATED,
            pri: ring::NO_PRI,
            meta: &[],
            source: b"onboot.001-dhcpcd.out",
            msg: b"eth0: waiting for carrier",
        };
        let mut out = Vec::new();
        encode_record(&mut out, &r, false);
        assert_eq!(out, b"{\"time\":\"2018-07-08T09:16:53.123456789Z\",\"source\":\"onboot.001-dhcpcd.out\",\"msg\":\"eth0: waiting for carrier\"}\n");
        out.clear();
        encode_record(&mut out, &r, true);
        let Line::Record(d) = decode_line(&out[..out.len() - 1]).expect("decodes") else {
            panic!()
        };
        assert_eq!(
            (d.seq, d.truncated, d.source.as_str()),
            (Some(9), true, "onboot.001-dhcpcd.out")
        );
        assert_eq!(d.time_ns(), Some(r.time_ns));
    }

    #[test]
    fn lost_notices_in_both_forms() {
        let mut out = Vec::new();
        encode_lost(&mut out, 17, 100, 0, true);
        assert_eq!(
            decode_line(&out[..out.len() - 1]),
            Ok(Line::Lost {
                count: 17,
                next: Some(100)
            })
        );
        out.clear();
        encode_lost(&mut out, 17, 100, 0, false);
        let Line::Record(r) = decode_line(&out[..out.len() - 1]).expect("decodes") else {
            panic!()
        };
        assert_eq!(r.source, "memlogd");
        assert!(r.msg.starts_with("17 records lost"), "{}", r.msg);
    }

    #[test]
    fn hello_and_error_lines() {
        let mut out = Vec::new();
        encode_hello(&mut out, 0xdead_beef, 3, 10);
        assert_eq!(
            decode_line(&out[..out.len() - 1]),
            Ok(Line::Hello {
                instance: 0xdead_beef,
                first: 3,
                next: 10
            })
        );
        out.clear();
        encode_error(&mut out, "no \"such\" thing");
        assert_eq!(
            decode_line(&out[..out.len() - 1]),
            Ok(Line::Error("no \"such\" thing".into()))
        );
    }

    #[test]
    fn text_form_escapes_semicolons_in_source() {
        let r = Record {
            seq: None,
            time: "T".into(),
            source: "a;b".into(),
            msg: "m;n".into(),
            ..Record::default()
        };
        let mut out = Vec::new();
        r.write_text(&mut out);
        assert_eq!(out, b"T;a\\;b;m;n\n");
    }

    #[test]
    fn extended_record_carries_priority_and_metadata() {
        let mut m = meta::MetaBuf::default();
        m.creds(crate::sys::Creds {
            pid: 7,
            uid: 0,
            gid: 9,
        })
        .text(meta::APP, b"sshd")
        .text(meta::PROCID, b"99")
        .text(meta::KV, b"SUBSYSTEM=pci")
        .text(meta::KV, b"DEVICE=+pci:0000:00:01.0")
        .u64(meta::KSEQ, 12);
        let r = ring::Record {
            seq: 3,
            time_ns: 0,
            flags: 0,
            pri: 4 << 3 | 2,
            source: b"sshd",
            msg: b"m",
            meta: m.as_bytes(),
        };
        let mut out = Vec::new();
        encode_record(&mut out, &r, true);
        let Line::Record(d) = decode_line(&out[..out.len() - 1]).expect("decodes") else {
            panic!()
        };
        assert_eq!(
            (d.facility, d.severity, d.pid, d.uid),
            (Some(4), Some(2), Some(7), Some(0))
        );
        assert_eq!(
            (d.app.as_deref(), d.procid.as_deref(), d.kseq),
            (Some("sshd"), Some("99"), Some(12))
        );
        assert_eq!(d.kv, vec!["SUBSYSTEM=pci", "DEVICE=+pci:0000:00:01.0"]);
        // Found by fuzz/ (json): empty continuation lines were dropped, and
        // the line after one lost its separator.
        for lines in [&[""][..], &["", ""], &["", "A=1"], &["A=1", "", "B=2"]] {
            let mut m = meta::MetaBuf::default();
            for l in lines {
                m.text(meta::KV, l.as_bytes());
            }
            out.clear();
            encode_record(
                &mut out,
                &ring::Record {
                    meta: m.as_bytes(),
                    ..r
                },
                true,
            );
            let Line::Record(d) = decode_line(&out[..out.len() - 1]).expect("decodes") else {
                panic!()
            };
            assert_eq!(d.kv, lines, "{}", String::from_utf8_lossy(&out));
        }
        // LinuxKit readers get exactly their three keys, whatever the metadata.
        out.clear();
        encode_record(&mut out, &r, false);
        assert_eq!(
            out,
            b"{\"time\":\"1970-01-01T00:00:00Z\",\"source\":\"sshd\",\"msg\":\"m\"}\n"
        );
    }

    #[test]
    fn names_and_messages_that_are_not_utf8_arrive_exactly() {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (source, msg) in [
            (&b"\xff\xfe"[..], &b"a\xe2\x82b%25"[..]),
            (b"\xfd\xfc", b"caf\xc3\xa9 \xc3"),
            (b"ok", b"\x80"),
        ] {
            let r = ring::Record {
                source,
                msg,
                ..ring::Record::plain(0, b"", b"")
            };
            out.clear();
            encode_record(&mut out, &r, true);
            let Line::Record(d) = decode_line(&out[..out.len() - 1]).expect("decodes") else {
                panic!()
            };
            assert_eq!((d.source_bytes(), d.msg_bytes()), (source, msg));
            // Only what is not UTF-8 gets a raw key.
            assert_eq!(d.source_raw.is_some(), std::str::from_utf8(source).is_err());
            assert!(seen.insert(d.source_bytes().to_vec()));
            // Our JSON output keeps them too.
            let mut j = Vec::new();
            d.write_json(&mut j);
            let Line::Record(back) = decode_line(&j[..j.len() - 1]).expect("decodes") else {
                panic!()
            };
            assert_eq!(back, d);
            // LinuxKit readers get exactly their three keys, lossy.
            out.clear();
            encode_record(&mut out, &r, false);
            assert!(!out.windows(4).any(|w| w == b"_raw"));
        }
    }

    #[test]
    fn a_record_in_pieces_is_the_one_shot_line() {
        let mut m = meta::MetaBuf::default();
        m.creds(crate::sys::Creds {
            pid: 7,
            uid: 1000,
            gid: 9,
        })
        .text(meta::KV, b"A=\x01\xff")
        .text(meta::APP, "é".as_bytes());
        let msg = [
            &b"long \x01\"\\ "[..],
            "é€😀".as_bytes(),
            b"\xe2\x82 \xff end",
        ]
        .concat();
        let src = ["sr\u{e9}c\x02%".as_bytes(), b"\xff"].concat();
        let r = ring::Record {
            seq: 12,
            time_ns: 1_531_041_413_123_456_789,
            flags: FLAG_TRUNCATED,
            pri: 3 << 3 | 4,
            source: &src,
            msg: &msg,
            meta: m.as_bytes(),
        };
        for ext in [false, true] {
            let mut whole = Vec::new();
            encode_record(&mut whole, &r, ext);
            assert!(whole.len() <= record_bound(&r));
            for limit in 0..whole.len() + 2 {
                // The reader's buffer is flushed between pieces.
                let (mut got, mut out) = (Vec::new(), Vec::new());
                let mut p = PartialRecord::start(&mut out, &r, ext, limit);
                let mut pieces = 1;
                loop {
                    assert!(
                        out.len() < limit.max(MAX_RECORD_HEAD) + MAX_RECORD_TAIL,
                        "a piece of {} bytes for limit {limit}",
                        out.len()
                    );
                    got.append(&mut out);
                    let Some(at) = p else { break };
                    p = at.resume(&mut out, &r, ext, limit);
                    pieces += 1;
                }
                assert_eq!(got, whole, "ext {ext}, limit {limit}, {pieces} pieces");
                // Abandoned after the first piece: still one valid line with
                // LinuxKit's keys, marked for extended readers.
                let mut cut = Vec::new();
                if let Some(at) = PartialRecord::start(&mut cut, &r, ext, limit) {
                    at.abandon(&mut cut, ext);
                    assert_eq!(cut.last(), Some(&b'\n'));
                    let Ok(Line::Record(d)) = decode_line(&cut[..cut.len() - 1]) else {
                        panic!("not a record: {}", String::from_utf8_lossy(&cut))
                    };
                    assert_eq!(d.truncated, ext);
                    assert_eq!(d.seq.is_some(), ext);
                }
            }
        }
    }

    #[test]
    fn text_form_is_one_line_whatever_the_bytes() {
        let r = Record {
            time: "T".into(),
            source: "s;\n".into(),
            msg: "a\nb\x1b[2J".into(),
            msg_raw: Some(b"a\nb\x1b[2J\xff".to_vec()),
            ..Record::default()
        };
        let mut out = Vec::new();
        r.write_text(&mut out);
        assert_eq!(out, b"T;s\\;\\n;a\\nb\\x1b[2J\\xff\n");
    }

    #[test]
    fn severity_and_facility_names() {
        assert_eq!(parse_severity("err"), Some(3));
        assert_eq!(parse_severity("WARNING"), Some(4));
        assert_eq!(parse_severity("warn"), Some(4));
        assert_eq!(parse_severity("7"), Some(7));
        assert_eq!(parse_severity("8"), None);
        assert_eq!(parse_severity("loud"), None);
        assert_eq!(parse_facility("local7"), Some(23));
        assert_eq!(parse_facility("kern"), Some(0));
        assert_eq!(parse_facility("24"), None);
        let line = br#"{"seq":1,"time":"2020-01-01T00:00:00Z","source":"s","msg":"m","facility":4,"severity":2,"pid":10,"uid":0,"gid":5}"#;
        let Line::Record(r) = decode_line(line).expect("decodes") else {
            panic!()
        };
        assert_eq!(
            (r.facility, r.severity, r.pid, r.uid, r.gid),
            (Some(4), Some(2), Some(10), Some(0), Some(5))
        );
        assert_eq!(r.severity_or_default(), 2);
    }

    #[test]
    fn json_output_round_trips_every_field() {
        let line = br#"{"seq":1,"time":"2020-01-01T00:00:00Z","source":"s","msg":"m \"q\"","truncated":true,"facility":4,"severity":2,"pid":10,"uid":0,"gid":5,"app":"sshd","procid":"7","msgid":"ID","sd":"[x a=\"b\"]","stime":"T","host":"h","kseq":3,"ktime_us":9,"kv":"A=1\nB=2"}"#;
        let Line::Record(r) = decode_line(line).expect("decodes") else {
            panic!()
        };
        let mut out = Vec::new();
        r.write_json(&mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(&out[..out.len() - 1], &line[..]);
        let plain = Record {
            time: "T".into(),
            source: "a".into(),
            msg: "b".into(),
            ..Record::default()
        };
        out.clear();
        plain.write_json(&mut out);
        assert_eq!(out, b"{\"time\":\"T\",\"source\":\"a\",\"msg\":\"b\"}\n");
    }

    #[test]
    fn positions_parse_and_print() {
        let p = Position {
            instance: 0x0123_4567_89ab_cdef,
            seq: 77,
        };
        assert_eq!(p.to_string(), "0123456789abcdef:77");
        assert_eq!(p.to_string().parse::<Position>(), Ok(p));
        assert!("nope".parse::<Position>().is_err());
    }
}
