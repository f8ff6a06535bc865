//! Docker's log stream: frames of a 4-byte big-endian length and a protobuf
//! `LogEntry` (moby `daemon/logger/internal/logdriver/entry.proto`), as
//! dockerd writes them into a logging plugin's FIFO and as a plugin answers
//! `LogDriver.ReadLogs` with. Decoded by memlogd (the FIFO is one of its
//! inputs), encoded by `memlog-docker-logdriver` (ReadLogs).
//!
//! ```text
//! message LogEntry {
//!   string source = 1;  int64 time_nano = 2;  bytes line = 3;  bool partial = 4;
//!   PartialLogEntryMetadata partial_log_metadata = 5;  repeated LogAttr attrs = 6;
//! }
//! message PartialLogEntryMetadata { bool last = 1; string id = 2; int32 ordinal = 3; }
//! ```
//!
//! Hand-written instead of prost: the decoder borrows `source`, `line` and
//! the partial id from the frame (no allocation per entry on memlogd's
//! loop), it is about 150 lines with no build step, proc-macro or `.proto`
//! compiler, and every malformed input is an `Err` with a reason (fuzzed:
//! `fuzz/fuzz_targets/docker_entry.rs`). Unknown fields are skipped by wire
//! type, as protobuf requires, so a newer dockerd's `attrs` do no harm.

/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;
/// The longest frame accepted. dockerd cuts lines at 16 KiB (its copier's
/// buffer) into partial entries, so a real frame is far smaller; a longer
/// length means a corrupt stream (or a hostile writer), never a record.
pub const MAX_FRAME: usize = 1 << 20;

/// `partial_log_metadata`: which piece of a line longer than dockerd's buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartialMeta<'a> {
    pub last: bool,
    pub id: &'a [u8],
    pub ordinal: i32,
}

/// One decoded entry; its bytes borrow from the frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry<'a> {
    /// "stdout" or "stderr".
    pub source: &'a [u8],
    pub time_nano: i64,
    /// The line without its newline.
    pub line: &'a [u8],
    /// More of this line follows (or, with `partial_meta.last`, this is its end).
    pub partial: bool,
    pub partial_meta: Option<PartialMeta<'a>>,
}

impl Entry<'_> {
    /// Whether this entry ends its line: not partial, or the last piece.
    pub fn ends_line(&self) -> bool {
        !self.partial || self.partial_meta.is_some_and(|m| m.last)
    }
}

/// Why an entry could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for DecodeError {}

fn varint(b: &[u8], i: &mut usize) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let Some(&c) = b.get(*i) else {
            return Err(DecodeError("truncated varint"));
        };
        *i += 1;
        if shift == 63 && c > 1 {
            return Err(DecodeError("varint longer than 64 bits"));
        }
        v |= u64::from(c & 0x7f) << shift;
        if c & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DecodeError("varint longer than 10 bytes"))
}

/// The fields of a message: (field number, wire type, varint value or bytes).
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn next_field<'a>(b: &'a [u8], i: &mut usize) -> Result<(u64, Field<'a>), DecodeError> {
    let key = varint(b, i)?;
    let (num, wire) = (key >> 3, key & 7);
    if num == 0 {
        return Err(DecodeError("field number 0"));
    }
    let f = match wire {
        0 => Field::Varint(varint(b, i)?),
        1 | 5 => {
            let n = if wire == 1 { 8 } else { 4 };
            if b.len() - *i < n {
                return Err(DecodeError("truncated fixed-width field"));
            }
            *i += n;
            Field::Fixed
        }
        2 => {
            let n = varint(b, i)?;
            if n > (b.len() - *i) as u64 {
                return Err(DecodeError("length-delimited field runs past the entry"));
            }
            let s = &b[*i..*i + n as usize];
            *i += n as usize;
            Field::Bytes(s)
        }
        _ => return Err(DecodeError("unsupported wire type (group)")),
    };
    Ok((num, f))
}

fn expect_varint(f: Field<'_>) -> Result<u64, DecodeError> {
    match f {
        Field::Varint(v) => Ok(v),
        _ => Err(DecodeError("a known field has the wrong wire type")),
    }
}

fn expect_bytes(f: Field<'_>) -> Result<&[u8], DecodeError> {
    match f {
        Field::Bytes(v) => Ok(v),
        _ => Err(DecodeError("a known field has the wrong wire type")),
    }
}

fn partial_meta(b: &[u8]) -> Result<PartialMeta<'_>, DecodeError> {
    let mut m = PartialMeta::default();
    let mut i = 0;
    while i < b.len() {
        match next_field(b, &mut i)? {
            (1, f) => m.last = expect_varint(f)? != 0,
            (2, f) => m.id = expect_bytes(f)?,
            (3, f) => m.ordinal = expect_varint(f)? as i32,
            _ => {}
        }
    }
    Ok(m)
}

/// Decodes one `LogEntry` (the bytes after the length prefix).
pub fn decode(b: &[u8]) -> Result<Entry<'_>, DecodeError> {
    let mut e = Entry::default();
    let mut i = 0;
    while i < b.len() {
        match next_field(b, &mut i)? {
            (1, f) => e.source = expect_bytes(f)?,
            (2, f) => e.time_nano = expect_varint(f)? as i64,
            (3, f) => e.line = expect_bytes(f)?,
            (4, f) => e.partial = expect_varint(f)? != 0,
            (5, f) => e.partial_meta = Some(partial_meta(expect_bytes(f)?)?),
            _ => {}
        }
    }
    Ok(e)
}

/// What [`split`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole frame's entry bytes, and the bytes it took with its prefix.
    Whole(&'a [u8], usize),
    /// More bytes are needed.
    Incomplete,
    /// The length prefix says more than [`MAX_FRAME`]: the stream is corrupt.
    TooLong(u32),
}

/// Looks for one frame at the start of `b`.
pub fn split(b: &[u8]) -> Frame<'_> {
    let Some(head) = b.get(..LEN_BYTES) else {
        return Frame::Incomplete;
    };
    let n = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if n as usize > MAX_FRAME {
        return Frame::TooLong(n);
    }
    match b.get(LEN_BYTES..LEN_BYTES + n as usize) {
        Some(body) => Frame::Whole(body, LEN_BYTES + n as usize),
        None => Frame::Incomplete,
    }
}

/// Bytes [`find_frame_start`] looks at: a length, then `0x0a 0x06`
/// (field 1, 6 bytes) and `stdout` or `stderr`.
pub const SYNC_LEN: usize = LEN_BYTES + 8;

/// Where in `b` something starts that looks like a frame as dockerd writes
/// it (it encodes `source` first): a length of at least 8 and at most
/// `limit`, then field 1 of 6 bytes, `stdout` or `stderr`. Used to find the
/// framing again after bad bytes.
pub fn find_frame_start(b: &[u8], limit: usize) -> Option<usize> {
    let mut from = LEN_BYTES;
    while from < b.len() {
        let m = from + memchr::memmem::find(&b[from..], b"\x0a\x06std")?;
        from = m + 1;
        let tail = b.get(m + 5..m + 8)?;
        if tail != b"out" && tail != b"err" {
            continue;
        }
        let n = u32::from_be_bytes([b[m - 4], b[m - 3], b[m - 2], b[m - 1]]) as usize;
        if (8..=limit).contains(&n) {
            return Some(m - LEN_BYTES);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u8, v: &[u8]) {
    out.push(field << 3 | 2);
    put_varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// Appends `e` as one frame (length prefix and entry), as dockerd's
/// `logdriver.LogEntryEncoder` writes it (proto3: zero values omitted).
pub fn encode_frame(out: &mut Vec<u8>, e: &Entry<'_>) {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    if !e.source.is_empty() {
        put_bytes(out, 1, e.source);
    }
    if e.time_nano != 0 {
        out.push(2 << 3);
        put_varint(out, e.time_nano as u64);
    }
    if !e.line.is_empty() {
        put_bytes(out, 3, e.line);
    }
    if e.partial {
        out.extend_from_slice(&[4 << 3, 1]);
    }
    if let Some(m) = e.partial_meta {
        let mut inner = Vec::new();
        if m.last {
            inner.extend_from_slice(&[1 << 3, 1]);
        }
        if !m.id.is_empty() {
            put_bytes(&mut inner, 2, m.id);
        }
        if m.ordinal != 0 {
            inner.push(3 << 3);
            // int32: negative values are sign-extended to 64 bits.
            put_varint(&mut inner, i64::from(m.ordinal) as u64);
        }
        put_bytes(out, 5, &inner);
    }
    let n = (out.len() - start - LEN_BYTES) as u32;
    out[start..start + LEN_BYTES].copy_from_slice(&n.to_be_bytes());
}

/// The start of a log socket datagram that hands memlogd a Docker-framed
/// FIFO (PROTOCOL.md, "Docker-framed inputs"). A LinuxKit name never
/// starts with a NUL byte in practice; such names are reserved.
pub const HANDOVER_MAGIC: &[u8] = b"\0memlog/1 docker";
/// The longest such datagram memlogd reads.
pub const MAX_HANDOVER: usize = 4096;

/// What a Docker-framed handover says about the container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handover {
    /// The source of the container's stderr; stdout's is this and `.out`.
    pub source: Vec<u8>,
    /// The container's full id, name (without `/`) and image name.
    pub id: Vec<u8>,
    pub name: Vec<u8>,
    pub image: Vec<u8>,
}

impl Handover {
    /// The datagram's payload: the magic, then ` key=value` fields with
    /// values %-escaped as in query requests.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = HANDOVER_MAGIC.to_vec();
        for (k, val) in [
            ("source", &self.source),
            ("id", &self.id),
            ("name", &self.name),
            ("image", &self.image),
        ] {
            v.push(b' ');
            v.extend_from_slice(k.as_bytes());
            v.push(b'=');
            crate::proto::pct_encode(&mut v, val);
        }
        v
    }

    /// `None` when `payload` is a plain name (no magic); otherwise the
    /// handover, or why it is malformed.
    pub fn parse(payload: &[u8]) -> Option<Result<Handover, String>> {
        let rest = payload.strip_prefix(HANDOVER_MAGIC)?;
        Some(Self::fields(rest))
    }

    fn fields(rest: &[u8]) -> Result<Handover, String> {
        if !rest.is_empty() && rest[0] != b' ' {
            return Err("unknown handover kind".into());
        }
        let mut h = Handover::default();
        for tok in rest.split(|&c| c == b' ').filter(|t| !t.is_empty()) {
            let (k, v) = match memchr::memchr(b'=', tok) {
                Some(i) => (&tok[..i], &tok[i + 1..]),
                None => (tok, &b""[..]),
            };
            let v = crate::proto::pct_decode(v)?;
            match k {
                b"source" => h.source = v,
                b"id" => h.id = v,
                b"name" => h.name = v,
                b"image" => h.image = v,
                _ => {
                    return Err(format!(
                        "unknown handover field {:?}",
                        String::from_utf8_lossy(k)
                    ))
                }
            }
        }
        if h.source.is_empty() {
            return Err("handover without a source".into());
        }
        Ok(h)
    }

    /// The source of one stream (`stdout` gets `.out`, as LinuxKit's
    /// services do; anything else is stderr's).
    pub fn source_of(&self, stream: &[u8]) -> Vec<u8> {
        let mut s = self.source.clone();
        if stream == b"stdout" {
            s.extend_from_slice(b".out");
        }
        s
    }
}

/// The word memlogd adds to its reply for a Docker-framed handover, so the
/// driver knows the fd is decoded as frames (an older memlogd would have
/// read the datagram as a name and the FIFO as lines).
pub const REPLY_WORD: &str = "docker-framed";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_starts_are_found_after_garbage() {
        let mut good = Vec::new();
        encode_frame(
            &mut good,
            &Entry {
                source: b"stderr",
                line: b"x",
                ..Entry::default()
            },
        );
        let mut b = b"garbage \x0a\x06stdout without a length before".to_vec();
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        b.extend_from_slice(b"\x0a\x06stdout");
        let at = b.len();
        b.extend_from_slice(&good);
        assert_eq!(find_frame_start(&b, 1 << 16), Some(at));
        assert_eq!(find_frame_start(&good, 1 << 16), Some(0));
        assert_eq!(find_frame_start(&good[..SYNC_LEN - 1], 1 << 16), None);
        assert_eq!(find_frame_start(b"\x0a\x06std", 1 << 16), None);
    }

    #[test]
    fn handover_round_trip() {
        let h = Handover {
            source: b"web 1".to_vec(),
            id: b"0123".to_vec(),
            name: b"web".to_vec(),
            image: b"bb:1".to_vec(),
        };
        let p = h.encode();
        assert!(p.starts_with(HANDOVER_MAGIC));
        assert_eq!(Handover::parse(&p), Some(Ok(h.clone())));
        assert_eq!(h.source_of(b"stdout"), b"web 1.out");
        assert_eq!(h.source_of(b"stderr"), b"web 1");
        assert_eq!(Handover::parse(b"plain-name"), None);
        assert!(matches!(
            Handover::parse(b"\0memlog/1 dockerx"),
            Some(Err(_))
        ));
        assert!(matches!(
            Handover::parse(b"\0memlog/1 docker id=1"),
            Some(Err(_))
        ));
        assert!(matches!(
            Handover::parse(b"\0memlog/1 docker source=a x=1"),
            Some(Err(_))
        ));
        assert!(matches!(
            Handover::parse(b"\0memlog/1 docker source=%zz"),
            Some(Err(_))
        ));
    }

    #[test]
    fn decodes_what_gogo_protobuf_writes() {
        // entry.pb.go's MarshalTo for {Source:"stdout", TimeNano:1, Line:"hi",
        // Partial:true, PartialLogMetadata:{Last:true, Id:"ab", Ordinal:2}}.
        let body = [
            0x0a, 6, b's', b't', b'd', b'o', b'u', b't', 0x10, 1, 0x1a, 2, b'h', b'i', 0x20, 1,
            0x2a, 8, 0x08, 1, 0x12, 2, b'a', b'b', 0x18, 2,
        ];
        let e = decode(&body).expect("decodes");
        assert_eq!(e.source, b"stdout");
        assert_eq!(e.time_nano, 1);
        assert_eq!(e.line, b"hi");
        assert!(e.partial && e.ends_line());
        assert_eq!(
            e.partial_meta,
            Some(PartialMeta {
                last: true,
                id: b"ab",
                ordinal: 2
            })
        );
    }

    #[test]
    fn round_trip_and_framing() {
        let e = Entry {
            source: b"stderr",
            time_nano: 1_764_657_000_123_456_789,
            line: &[0xff, b'x', 0, b'\n'],
            partial: true,
            partial_meta: Some(PartialMeta {
                last: false,
                id: b"id1",
                ordinal: -3,
            }),
        };
        let mut out = Vec::new();
        encode_frame(&mut out, &e);
        encode_frame(&mut out, &Entry::default());
        let Frame::Whole(body, used) = split(&out) else {
            panic!("a frame")
        };
        assert_eq!(decode(body), Ok(e));
        assert!(!e.ends_line());
        assert_eq!(split(&out[used..]), Frame::Whole(&[], 4));
        assert_eq!(split(&out[..used - 1]), Frame::Incomplete);
        assert_eq!(split(&[0, 0, 1]), Frame::Incomplete);
        assert_eq!(split(&[0x06, 0, 0, 0]), Frame::TooLong(100_663_296));
    }

    #[test]
    fn malformed_entries_are_errors_not_panics() {
        for bad in [
            &[0x0a, 5, b'a'][..], // string past the end
            &[0x10],              // varint missing
            &[
                0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ], // > 64 bits
            &[0x0b],              // group
            &[0x00, 1],           // field 0
            &[0x09, 1, 2],        // fixed64 short
            &[0x2a, 2, 0x0a, 9],  // nested runs past
            &[0x1d, 1, 2, 3, 4, 0x18, 1], // line as fixed32
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        // Unknown fields of every wire type are skipped.
        let ok = [
            0x32, 2, 0x0a, 0, 0x39, 1, 2, 3, 4, 5, 6, 7, 8, 0x45, 1, 2, 3, 4, 0x48, 5, 0x1a, 1,
            b'z',
        ];
        assert_eq!(decode(&ok).expect("skips").line, b"z");
        // Arbitrary bytes never panic.
        let mut x = 12345u64;
        for _ in 0..20_000 {
            let mut b = [0u8; 24];
            for c in &mut b {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *c = x as u8;
            }
            let _ = decode(&b[..(x as usize) % 25]);
        }
    }
}
