//! The properties the fuzz targets check, one public function per target
//! (`fuzz_targets/NAME.rs` calls `NAME`). Each function takes the raw bytes
//! libFuzzer made and panics when a property fails; a panic is a finding.
//!
//! Byte-stream targets read a few leading bytes as settings (a line limit, a
//! seed for how the stream is cut into reads) and the rest as the input.
//! Structured targets build a value from the bytes with `arbitrary`'s
//! `Unstructured`, encode it, and check that parsing gives it back.

use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use memlog::daemon::lines::LineSplitter;
use memlog::filter::{self, Pattern};
use memlog::proto::{self, Line, Mode, Parsed, Position, Request};
use memlog::ring::{self, Read, Ring};
use memlog::{json, kmsg, meta, syslog, timefmt};
use std::collections::VecDeque;
use std::time::Duration;

#[path = "../../logwrite/src/names.rs"]
#[allow(dead_code)]
mod names;

#[path = "../../logwrite/src/relpframe.rs"]
#[allow(dead_code)]
mod relpframe;

// ---------------------------------------------------------------- helpers

/// A small deterministic generator (xorshift64*), seeded from the input, for
/// choices that must not eat the input itself (where reads are cut).
struct Rng(u64);

impl Rng {
    fn new(seed: &[u8]) -> Rng {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for &b in seed {
            s = (s ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3);
        }
        Rng(s | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Splits off `n` leading bytes of settings (fewer if the input is short).
fn settings(data: &[u8], n: usize) -> (&[u8], &[u8]) {
    data.split_at(n.min(data.len()))
}

/// Cuts `data` into reads of random sizes (some empty, some 1 byte).
fn cut<'a>(data: &'a [u8], rng: &mut Rng) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = match rng.below(4) {
            0 => 0,
            1 => 1,
            2 => rng.below(8),
            _ => rng.below(rest.len() + 1),
        }
        .min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

/// Offset of `inner` in `outer`; panics unless `inner` is a subslice of it.
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    assert!(
        i >= o && i + inner.len() <= o + outer.len(),
        "{inner:?} is not part of {outer:?}"
    );
    i - o
}

/// Bytes as JSON's encoder must decode them: valid UTF-8 as is, one U+FFFD
/// for each byte of an invalid sequence (Go's rule). Written against
/// `str::from_utf8`'s error positions, not the encoder's `utf8_chunks`.
fn lossy_per_byte(mut b: &[u8]) -> String {
    let mut out = String::new();
    loop {
        match std::str::from_utf8(b) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (ok, bad) = b.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(ok).expect("valid prefix"));
                let n = e.error_len().unwrap_or(bad.len());
                out.push_str(&"\u{fffd}".repeat(n));
                b = &bad[n..];
            }
        }
    }
}

fn bytes(u: &mut Unstructured<'_>, max: usize) -> ArbResult<Vec<u8>> {
    let n = u.int_in_range(0..=max)?;
    Ok(u.bytes(n.min(u.len()))?.to_vec())
}

/// A non-empty token of bytes from `alphabet`.
fn token(u: &mut Unstructured<'_>, alphabet: &[u8], max: usize) -> ArbResult<Vec<u8>> {
    let n = u.int_in_range(1..=max)?;
    (0..n).map(|_| u.choose(alphabet).copied()).collect()
}

// ---------------------------------------------------------------- syslog

fn is_tag_char(c: u8) -> bool {
    c.is_ascii_graphic() && c != b':' && c != b'[' && c != b']'
}

/// `syslog::parse` on any datagram: never panics; every field is a piece of
/// the input, in header order; a message without `<PRI>` comes back whole;
/// and no byte is dropped except the header's punctuation (and an
/// over-long RFC 5424 APP-NAME, which the parser discards by design).
pub fn syslog(data: &[u8]) {
    let m = syslog::parse(data);
    let t = syslog::trim_end(data);
    assert_eq!(syslog::parse(t), m, "trailing NUL/CR/LF change nothing");
    if m.format == syslog::Format::Unparsed {
        assert_eq!(m.msg, t);
        assert_eq!(m.pri, None);
        assert!(m.app.is_none() && m.host.is_none() && m.timestamp.is_none());
        return;
    }
    let pri = m.pri.expect("a parsed message has a priority");
    assert!(pri <= 191);
    let pri_text = format!("<{pri}>");
    assert!(t.starts_with(pri_text.as_bytes()), "{t:?}");
    // The message runs to the end of the input.
    assert_eq!(offset_in(t, m.msg) + m.msg.len(), t.len());
    if let Some(app) = m.app {
        assert!(!app.is_empty() && app.len() <= syslog::MAX_TAG);
        assert_eq!(m.source(), app);
    } else {
        assert_eq!(m.source(), syslog::DEFAULT_SOURCE);
    }
    let fields: Vec<Option<&[u8]>> = match m.format {
        syslog::Format::Rfc5424 => vec![m.timestamp, m.host, m.app, m.procid, m.msgid, m.sd],
        _ => {
            assert!(m.msgid.is_none() && m.sd.is_none());
            if let Some(app) = m.app {
                assert!(app.iter().all(|&c| is_tag_char(c)), "{app:?}");
            }
            vec![m.timestamp, m.host, m.app, m.procid]
        }
    };
    // Fields in order, not overlapping; what lies between them is punctuation.
    let mut covered = vec![false; t.len()];
    let mut pos = pri_text.len();
    for f in fields.into_iter().flatten().chain([m.msg]) {
        let at = offset_in(t, f);
        assert!(at >= pos, "fields out of order in {t:?}");
        covered[at..at + f.len()].fill(true);
        pos = at + f.len();
    }
    let gaps = covered[pri_text.len()..]
        .iter()
        .zip(&t[pri_text.len()..])
        .enumerate()
        .filter(|(_, (&c, _))| !c);
    let rfc5424 = m.format == syslog::Format::Rfc5424;
    let mut gap_run = Vec::new();
    let check_run = |run: &mut Vec<u8>| {
        // A run of uncovered bytes between covered ones.
        let ok = run.iter().all(|c| {
            b" :[]".contains(c) || (rfc5424 && (b"-1".contains(c) || b"\xef\xbb\xbf".contains(c)))
        }) || (rfc5424
            && m.app.is_none()
            && run.len() > syslog::MAX_TAG
            && run
                .split(|&c| c == b' ')
                .any(|tok| tok.len() > syslog::MAX_TAG));
        assert!(ok, "bytes {run:?} of {t:?} were dropped");
        run.clear();
    };
    let mut last = None;
    for (i, (_, &c)) in gaps {
        if last.is_some_and(|l| l + 1 != i) {
            check_run(&mut gap_run);
        }
        gap_run.push(c);
        last = Some(i);
    }
    check_run(&mut gap_run);
}

/// A well-formed message built from random fields parses back to exactly
/// those fields (RFC 5424 with structured data, and the RFC 3164 forms
/// glibc, BusyBox and relays write).
pub fn syslog_roundtrip(data: &[u8]) {
    let _ = syslog_roundtrip_inner(&mut Unstructured::new(data));
}

fn syslog_roundtrip_inner(u: &mut Unstructured<'_>) -> ArbResult<()> {
    let printable: Vec<u8> = (33u8..=126).collect();
    let tagc: Vec<u8> = (33u8..=126).filter(|&c| is_tag_char(c)).collect();
    let pri: u8 = u.int_in_range(0..=191)?;
    let raw_msg = bytes(u, 64)?;
    let mut line = format!("<{pri}>").into_bytes();
    if u.arbitrary()? {
        // RFC 5424.
        let mut fields: Vec<Option<Vec<u8>>> = Vec::new();
        for max in [32, 32, 60, 16, 32] {
            fields.push(if u.arbitrary()? {
                Some(token(u, &printable, max)?).filter(|t| t != b"-")
            } else {
                None
            });
        }
        let sd = if u.arbitrary()? {
            let mut sd = Vec::new();
            for _ in 0..u.int_in_range(1..=3)? {
                sd.push(b'[');
                let name_chars: Vec<u8> = printable
                    .iter()
                    .copied()
                    .filter(|c| !b"=]\"".contains(c))
                    .collect();
                sd.extend(token(u, &name_chars, 12)?);
                for _ in 0..u.int_in_range(0..=2)? {
                    sd.push(b' ');
                    sd.extend(token(u, &name_chars, 8)?);
                    sd.extend_from_slice(b"=\"");
                    for c in bytes(u, 12)? {
                        if matches!(c, b'"' | b'\\' | b']') {
                            sd.push(b'\\');
                        }
                        sd.push(c);
                    }
                    sd.push(b'"');
                }
                sd.push(b']');
            }
            Some(sd)
        } else {
            None
        };
        line.extend_from_slice(b"1");
        for f in &fields {
            line.push(b' ');
            line.extend_from_slice(f.as_deref().unwrap_or(b"-"));
        }
        line.push(b' ');
        line.extend_from_slice(sd.as_deref().unwrap_or(b"-"));
        let bom = u.arbitrary::<bool>()?;
        if !raw_msg.is_empty() || bom {
            line.push(b' ');
            if bom {
                line.extend_from_slice(b"\xef\xbb\xbf");
            }
            line.extend_from_slice(&raw_msg);
        }
        let m = syslog::parse(&line);
        assert_eq!(m.format, syslog::Format::Rfc5424, "{line:?}");
        assert_eq!(m.pri, Some(pri));
        let f = |i: usize| fields[i].as_deref();
        assert_eq!(m.timestamp, f(0));
        assert_eq!(m.host, f(1));
        assert_eq!(m.app, f(2).filter(|a| a.len() <= syslog::MAX_TAG));
        assert_eq!(m.procid, f(3));
        assert_eq!(m.msgid, f(4));
        assert_eq!(m.sd, sd.as_deref());
        let mut want = syslog::trim_end(&raw_msg);
        if !bom {
            want = want.strip_prefix(b"\xef\xbb\xbf").unwrap_or(want);
        }
        assert_eq!(m.msg, want, "{line:?}");
    } else {
        // RFC 3164.
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let ts = if u.arbitrary()? {
            let day: u8 = u.int_in_range(1..=31)?;
            Some(format!(
                "{} {:>2} {:02}:{:02}:{:02}",
                u.choose(&MONTHS)?,
                day,
                u.int_in_range(0..=23u8)?,
                u.int_in_range(0..=59u8)?,
                u.int_in_range(0..=60u8)?
            ))
        } else {
            None
        };
        let host = if ts.is_some() && u.arbitrary()? {
            Some(token(u, &tagc, 20)?)
        } else {
            None
        };
        let tag = token(u, &tagc, syslog::MAX_TAG)?;
        let pid = if u.arbitrary()? {
            let pid_chars: Vec<u8> = (32u8..=126).filter(|&c| c != b']').collect();
            Some(token(u, &pid_chars, 10)?)
        } else {
            None
        };
        if let Some(ts) = &ts {
            line.extend_from_slice(ts.as_bytes());
            line.push(b' ');
        }
        if let Some(h) = &host {
            line.extend_from_slice(h);
            line.push(b' ');
        }
        line.extend_from_slice(&tag);
        if let Some(p) = &pid {
            line.push(b'[');
            line.extend_from_slice(p);
            line.push(b']');
        }
        line.extend_from_slice(b": ");
        line.extend_from_slice(&raw_msg);
        let m = syslog::parse(&line);
        assert_eq!(m.format, syslog::Format::Rfc3164, "{line:?}");
        assert_eq!(m.pri, Some(pri));
        assert_eq!(m.timestamp, ts.as_deref().map(str::as_bytes), "{line:?}");
        assert_eq!(m.host, host.as_deref(), "{line:?}");
        assert_eq!(m.app, Some(&tag[..]), "{line:?}");
        assert_eq!(m.procid, pid.as_deref(), "{line:?}");
        assert_eq!(m.msg, syslog::trim_end(&raw_msg), "{line:?}");
    }
    Ok(())
}

/// Checks one `split_stream` call: frames are pieces of the input in order,
/// at most `max` bytes unless octet counted; a cut frame is marked; what lies
/// between frames is delimiters, octet counts and the skipped rest of a cut
/// frame only; what is left is an unfinished frame of bounded size.
/// Returns (frames, bytes used).
fn split_checked(buf: &[u8], max: usize, skip: &mut syslog::Skip) -> (Vec<(Vec<u8>, bool)>, usize) {
    let skip_before = *skip;
    // Where each frame is in `buf` (the callback's slices borrow it).
    let mut spans = Vec::new();
    let used = syslog::split_stream(buf, max, skip, |f, cut| {
        spans.push((offset_in(buf, f), f.len(), cut))
    });
    assert!(used <= buf.len());
    let mut pos = 0;
    let mut skipping = skip_before != syslog::Skip::Nothing;
    for &(at, n, cut) in &spans {
        let f = &buf[at..at + n];
        assert!(at >= pos, "frames out of order");
        let mut gap = &buf[pos..at];
        if std::mem::take(&mut skipping) {
            // The rest of a frame cut in an earlier call.
            match skip_before {
                syslog::Skip::Bytes(k) => {
                    assert!(gap.len() >= k);
                    gap = &gap[k..];
                }
                _ => {
                    let end = gap.iter().position(|&c| c == 0 || c == b'\n');
                    gap = &gap[end.expect("skipped to a delimiter") + 1..];
                }
            }
        }
        let delims = gap.iter().take_while(|&&c| c == 0 || c == b'\n').count();
        let count = &gap[delims..];
        if count.is_empty() {
            // Delimited by NUL or LF (or cut at max): a frame never holds one.
            assert!(!f.is_empty(), "empty frame from {buf:?}");
            assert!(!f.contains(&0) && !f.contains(&b'\n'), "{f:?}");
            assert!(n <= max);
        } else {
            // Octet counted: `LEN ` with LEN the frame's length, or cut at max.
            let digits = &count[..count.len() - 1];
            assert_eq!(count.last(), Some(&b' '), "{gap:?} before a frame");
            assert!(!digits.is_empty() && digits.iter().all(u8::is_ascii_digit));
            let len: usize = std::str::from_utf8(digits).unwrap().parse().unwrap();
            if cut {
                assert!(n == max && len > max + 64 * 1024 - count.len());
            } else {
                assert_eq!(n, len, "{gap:?}");
            }
        }
        pos = at + n;
        if cut {
            assert_eq!(n, max);
            // Its rest is skipped: up to the delimiter, the count, or to `used`.
            let rest = &buf[pos..used];
            match rest.iter().position(|&c| c == 0 || c == b'\n') {
                Some(d) if count.is_empty() => pos += d + 1,
                _ if count.is_empty() => {
                    assert_eq!(*skip, syslog::Skip::ToDelimiter);
                    pos = used;
                }
                _ => {
                    let len: usize = std::str::from_utf8(&count[..count.len() - 1])
                        .unwrap()
                        .parse()
                        .unwrap();
                    let k = (len - max).min(rest.len());
                    if k < len - max {
                        assert_eq!(*skip, syslog::Skip::Bytes(len - max - k));
                    }
                    pos += k;
                }
            }
        }
    }
    assert!(pos <= used);
    // Between the last frame and `used`: delimiters (or skipped bytes) only.
    if !skipping && *skip == syslog::Skip::Nothing {
        assert!(
            buf[pos..used].iter().all(|&c| c == 0 || c == b'\n'),
            "{:?} used but in no frame",
            &buf[pos..used]
        );
    }
    // The rest waits for more bytes: an unterminated frame of at most `max`
    // bytes, or an octet-counted frame not yet complete; never more than
    // memlogd keeps for a stream.
    let rest = &buf[used..];
    assert!(rest.len() <= max + 64 * 1024, "keeps {} bytes", rest.len());
    if !rest.is_empty() {
        assert_eq!(*skip, syslog::Skip::Nothing);
        assert!(rest[0] != 0 && rest[0] != b'\n');
        let sp = rest.iter().take(10).position(|&c| c == b' ');
        let counted = sp.is_some_and(|sp| sp > 0 && rest[..sp].iter().all(u8::is_ascii_digit))
            || (rest.len() < 10 && rest.iter().all(u8::is_ascii_digit));
        assert!(
            counted || (rest.len() <= max && !rest.contains(&0) && !rest.contains(&b'\n')),
            "left over {rest:?}"
        );
    }
    let frames = spans
        .iter()
        .map(|&(at, n, cut)| (buf[at..at + n].to_vec(), cut))
        .collect();
    (frames, used)
}

/// `split_stream` as memlogd's stream input drives it: the properties of
/// each call, and the same frames however the stream is cut into reads.
pub fn syslog_stream(data: &[u8]) {
    let (cfg, stream) = settings(data, 3);
    let max = 1 + usize::from(*cfg.first().unwrap_or(&0)) % 64;
    let mut skip = syslog::Skip::Nothing;
    let (whole, used) = split_checked(stream, max, &mut skip);
    let mut rng = Rng::new(cfg);
    let mut buf = Vec::new();
    let mut skip2 = syslog::Skip::Nothing;
    let mut got = Vec::new();
    for read in cut(stream, &mut rng) {
        buf.extend_from_slice(read);
        let (frames, used) = split_checked(&buf, max, &mut skip2);
        got.extend(frames);
        buf.drain(..used);
    }
    assert_eq!(got, whole, "frames depend on how reads cut the stream");
    assert_eq!(buf, &stream[used..]);
    assert_eq!(skip2, skip);
}

// ---------------------------------------------------------------- kmsg

#[derive(Debug, PartialEq, Eq)]
enum KEv {
    Rec(kmsg::KRecord),
    Gap(u64),
    Other(Vec<u8>),
}

fn kmsg_events(chunks: &[&[u8]], per_read: bool) -> Vec<KEv> {
    let mut p = kmsg::Parser::default();
    let mut out = Vec::new();
    let mut push = |e: kmsg::Event<'_>| {
        out.push(match e {
            kmsg::Event::Record(r) => KEv::Rec(r.clone()),
            kmsg::Event::Gap { lost } => KEv::Gap(lost),
            kmsg::Event::Other(l) => KEv::Other(l.to_vec()),
        })
    };
    for c in chunks {
        p.feed(c, per_read, &mut push);
    }
    p.finish(&mut push);
    out
}

/// Gaps are reported exactly when sequence numbers skip, with the number
/// skipped; priorities are valid; other lines are single non-empty lines.
fn check_kmsg_events(ev: &[KEv]) {
    let mut last: Option<u64> = None;
    let mut gap: Option<u64> = None;
    for e in ev {
        match e {
            KEv::Gap(n) => {
                assert!(gap.is_none() && *n > 0, "{ev:?}");
                gap = Some(*n);
            }
            KEv::Rec(r) => {
                assert!(r.pri <= 191);
                let want = match last {
                    Some(l) if r.seq > l.saturating_add(1) => Some(r.seq - l - 1),
                    _ => None,
                };
                assert_eq!(gap.take(), want, "gap before seq {} after {last:?}", r.seq);
                last = Some(r.seq);
            }
            KEv::Other(l) => {
                assert!(!l.is_empty() && !l.contains(&b'\n'));
                assert!(gap.is_none());
            }
        }
    }
    assert!(gap.is_none(), "a gap not followed by its record");
}

/// `kmsg::Parser` on any bytes: every non-empty line is a record header, a
/// continuation line or an `Other` line (nothing lost, nothing invented);
/// gaps are right; a file or FIFO gives the same events however reads cut
/// it; and records escaped as the kernel escapes them parse back exactly.
pub fn kmsg(data: &[u8]) {
    let (cfg, stream) = settings(data, 2);
    let mut rng = Rng::new(cfg);
    let per_read = cfg.first().is_some_and(|b| b & 1 == 1);
    let chunks = cut(stream, &mut rng);
    let ev = kmsg_events(&chunks, per_read);
    check_kmsg_events(&ev);
    let lines = stream
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let accounted: usize = ev
        .iter()
        .map(|e| match e {
            KEv::Rec(r) => 1 + r.kv.len(),
            KEv::Gap(_) => 0,
            KEv::Other(_) => 1,
        })
        .sum();
    assert_eq!(accounted, lines, "lines lost or invented");
    if !per_read {
        assert_eq!(ev, kmsg_events(&[stream], false), "depends on read cuts");
    }
    let _ = kmsg_roundtrip(&mut Unstructured::new(stream), &mut rng);
}

fn kernel_escape(b: &[u8], out: &mut Vec<u8>) {
    for &c in b {
        if !(b' '..0x7f).contains(&c) || c == b'\\' {
            out.extend_from_slice(format!("\\x{c:02x}").as_bytes());
        } else {
            out.push(c);
        }
    }
}

fn kmsg_roundtrip(u: &mut Unstructured<'_>, rng: &mut Rng) -> ArbResult<()> {
    let mut recs = Vec::new();
    let mut text = Vec::new();
    let mut seq: u64 = u.arbitrary()?;
    for _ in 0..u.int_in_range(1..=4)? {
        let r = kmsg::KRecord {
            pri: u.int_in_range(0..=191)?,
            seq,
            ts_us: u.arbitrary()?,
            msg: bytes(u, 40)?,
            kv: (0..u.int_in_range(0..=2)?)
                .map(|_| bytes(u, 20))
                .collect::<ArbResult<_>>()?,
        };
        let flags = *u.choose(&["-", "c", "-,more"])?;
        text.extend_from_slice(format!("{},{},{},{flags};", r.pri, r.seq, r.ts_us).as_bytes());
        kernel_escape(&r.msg, &mut text);
        text.push(b'\n');
        for kv in &r.kv {
            text.push(b' ');
            kernel_escape(kv, &mut text);
            text.push(b'\n');
        }
        recs.push(r);
        let Some(next) = seq.checked_add(u.int_in_range(1..=3)?) else {
            break;
        };
        seq = next;
    }
    let ev = kmsg_events(&cut(&text, rng), false);
    check_kmsg_events(&ev);
    let got: Vec<&kmsg::KRecord> = ev
        .iter()
        .filter_map(|e| match e {
            KEv::Rec(r) => Some(r),
            KEv::Other(l) => panic!("{l:?} from {text:?}"),
            KEv::Gap(_) => None,
        })
        .collect();
    assert_eq!(got, recs.iter().collect::<Vec<_>>());
    Ok(())
}

// ---------------------------------------------------------------- requests

/// `proto::parse_request` on any bytes a reader may send: never panics; an
/// extended request re-encodes to bytes that parse to the same request;
/// legacy means the mode byte; incomplete never exceeds the limit; and every
/// strict prefix of a complete extended request is incomplete.
pub fn request(data: &[u8]) {
    let parsed = proto::parse_request(data);
    match &parsed {
        Parsed::Extended(req) => {
            assert_eq!(req.mode as u8, data[0]);
            let enc = req.encode();
            assert_eq!(proto::parse_request(&enc), parsed, "{enc:?}");
            let nl = data.iter().position(|&c| c == b'\n').expect("a full line");
            let last = nl.min(proto::MAX_REQUEST - 1);
            for cut in (2..=last).step_by((last / 16).max(1)).chain([last]) {
                assert_eq!(proto::parse_request(&data[..cut]), Parsed::NeedMore);
            }
            assert_eq!(proto::parse_request(&data[..1]), Parsed::Legacy(req.mode));
            // What follows the line is not part of the request.
            let mut more = data[..=nl].to_vec();
            more.extend_from_slice(b"\x02memlog/1 stats\n");
            assert_eq!(proto::parse_request(&more), parsed);
        }
        Parsed::Legacy(m) => {
            assert_eq!(*m as u8, data[0]);
            assert!(!data[1..].starts_with(proto::EXT_MAGIC));
        }
        Parsed::NeedMore => {
            assert!(data.len() < proto::MAX_REQUEST);
            assert!(data.len() < 2 || !data[1..].contains(&b'\n'));
        }
        Parsed::Invalid(e) => assert!(!e.is_empty()),
    }
    let _ = request_roundtrip(&mut Unstructured::new(data));
}

fn request_roundtrip(u: &mut Unstructured<'_>) -> ArbResult<()> {
    let mut r = Request::new(*u.choose(&[Mode::Dump, Mode::Follow, Mode::DumpFollow])?);
    if u.arbitrary()? {
        r.after = Some(Position {
            instance: u.arbitrary()?,
            seq: u.arbitrary()?,
        });
    }
    for list in [
        &mut r.sources,
        &mut r.source_globs,
        &mut r.exclude,
        &mut r.exclude_globs,
        &mut r.grep,
    ] {
        for _ in 0..u.int_in_range(0..=2)? {
            list.push(bytes(u, 16)?);
        }
    }
    if u.arbitrary()? {
        r.min_severity = Some(u.int_in_range(0..=7)?);
    }
    r.since_ns = u.arbitrary()?;
    r.until_ns = u.arbitrary()?;
    r.last = u.arbitrary()?;
    r.stats = u.arbitrary()?;
    let enc = r.encode();
    assert_eq!(
        proto::parse_request(&enc),
        Parsed::Extended(r.clone()),
        "{:?}",
        String::from_utf8_lossy(&enc)
    );
    // Filters survive the trip: the daemon selects what the client asked.
    let f = filter::Filter::from_request(&r);
    let mut back = Request::new(r.mode);
    f.apply_to(&mut back);
    assert_eq!(filter::Filter::from_request(&back), f);
    Ok(())
}

// ---------------------------------------------------------------- JSON

/// `proto::decode_line` on any reply line: never panics; a decoded record
/// written back with `Record::write_json` decodes to the same record, and
/// that output is valid JSON to serde_json. And the flat-object parser
/// agrees with serde_json on every object serde_json accepts.
pub fn decode_line(data: &[u8]) {
    if let Ok(Line::Record(r)) = proto::decode_line(data) {
        let mut out = Vec::new();
        r.write_json(&mut out);
        assert_eq!(out.pop(), Some(b'\n'));
        assert_eq!(proto::decode_line(&out), Ok(Line::Record(r)));
        serde_json::from_slice::<serde_json::Value>(&out).expect("valid JSON");
    }
    differential_object(data);
}

fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Where serde_json reads a JSON object, `json::parse_object` must read the
/// same keys and scalar values.
fn differential_object(data: &[u8]) {
    let Ok(serde_json::Value::Object(want)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        return;
    };
    if want.values().map(depth).max().unwrap_or(0) > 64 {
        return; // deeper than json.rs accepts on purpose
    }
    let got = json::parse_object(data).unwrap_or_else(|e| {
        panic!(
            "serde_json reads {:?}, json.rs does not: {e}",
            String::from_utf8_lossy(data)
        )
    });
    // serde_json keeps the last of duplicate keys.
    let mut keys: Vec<&str> = got.iter().map(|(k, _)| k.as_ref()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), want.len());
    for (k, w) in &want {
        let v = &got.iter().rev().find(|(gk, _)| gk == k).expect("key").1;
        match w {
            serde_json::Value::String(s) => assert_eq!(v.as_str(), Some(s.as_str())),
            serde_json::Value::Bool(b) => assert_eq!(v.as_bool(), Some(*b)),
            serde_json::Value::Null => assert_eq!(*v, json::Value::Null),
            serde_json::Value::Number(n) => {
                assert!(matches!(v, json::Value::Num(_)));
                if let Some(n) = n.as_u64() {
                    assert_eq!(v.as_u64(), Some(n));
                }
                if let Some(n) = n.as_i64() {
                    assert_eq!(v.as_i64(), Some(n));
                }
            }
            _ => assert_eq!(*v, json::Value::Other),
        }
    }
}

/// `json::write_str` on any bytes gives a JSON string that serde_json and
/// `json::parse_object` both decode to the input (invalid UTF-8 as one
/// U+FFFD per byte); and a ring record encoded by `proto::encode_record`
/// decodes, in `proto::decode_line` and in serde_json, to its fields.
pub fn json(data: &[u8]) {
    let mut enc = Vec::new();
    json::write_str(&mut enc, data);
    let want = lossy_per_byte(data);
    let text = std::str::from_utf8(&enc).expect("the encoder writes UTF-8");
    assert!(!text.chars().any(|c| c < ' ' || c == '\u{7f}'), "{text:?}");
    let s: String = serde_json::from_slice(&enc).expect("serde_json reads it");
    assert_eq!(s, want);
    let mut obj = b"{\"k\":".to_vec();
    obj.extend_from_slice(&enc);
    obj.push(b'}');
    let o = json::parse_object(&obj).expect("json.rs reads it");
    assert_eq!(
        json::get(&o, "k").and_then(json::Value::as_str),
        Some(&want[..])
    );
    let _ = record_roundtrip(&mut Unstructured::new(data));
}

fn record_roundtrip(u: &mut Unstructured<'_>) -> ArbResult<()> {
    let source = bytes(u, 24)?;
    let msg = bytes(u, 64)?;
    let mut m = meta::MetaBuf::default();
    let mut texts: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut nums: Vec<(&str, u64)> = Vec::new();
    let mut kv: Vec<Vec<u8>> = Vec::new();
    let names = [
        (meta::APP, "app"),
        (meta::PROCID, "procid"),
        (meta::MSGID, "msgid"),
        (meta::SD, "sd"),
        (meta::STIME, "stime"),
        (meta::HOST, "host"),
    ];
    for (k, name) in names {
        if u.arbitrary()? {
            let v = bytes(u, 16)?;
            m.text(k, &v);
            texts.push((name, v));
        }
    }
    if u.arbitrary()? {
        let c = memlog::sys::Creds {
            pid: u.arbitrary()?,
            uid: u.arbitrary()?,
            gid: u.arbitrary()?,
        };
        m.creds(c);
        nums.extend([
            ("pid", u64::from(c.pid)),
            ("uid", u64::from(c.uid)),
            ("gid", u64::from(c.gid)),
        ]);
    }
    for (k, name) in [(meta::KSEQ, "kseq"), (meta::KTIME, "ktime_us")] {
        if u.arbitrary()? {
            let v: u64 = u.arbitrary()?;
            m.u64(k, v);
            nums.push((name, v));
        }
    }
    for _ in 0..u.int_in_range(0..=2)? {
        let v = bytes(u, 12)?;
        m.text(meta::KV, &v);
        kv.push(v);
    }
    let pri: u8 = u.arbitrary()?;
    let pri = if pri < 192 { pri } else { ring::NO_PRI };
    let rec = ring::Record {
        seq: u.arbitrary()?,
        time_ns: u.arbitrary()?,
        flags: u.int_in_range(0..=1)?,
        pri,
        source: &source,
        msg: &msg,
        meta: m.as_bytes(),
    };
    for ext in [false, true] {
        let mut line = Vec::new();
        proto::encode_record(&mut line, &rec, ext);
        assert_eq!(line.pop(), Some(b'\n'));
        assert!(!line.contains(&b'\n'), "one line per record");
        let v: serde_json::Value = serde_json::from_slice(&line).expect("valid JSON");
        let o = v.as_object().expect("an object");
        assert_eq!(o["source"], lossy_per_byte(&source));
        assert_eq!(o["msg"], lossy_per_byte(&msg));
        let Ok(Line::Record(d)) = proto::decode_line(&line) else {
            panic!("{line:?} does not decode")
        };
        assert_eq!(d.source, lossy_per_byte(&source));
        assert_eq!(d.msg, lossy_per_byte(&msg));
        assert_eq!(d.time_ns(), Some(rec.time_ns), "{}", d.time);
        if !ext {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            assert_eq!(keys, ["msg", "source", "time"], "LinuxKit's keys only");
            continue;
        }
        assert_eq!(d.seq, Some(rec.seq));
        assert_eq!(d.truncated, rec.flags & ring::FLAG_TRUNCATED != 0);
        let (fac, sev) = if pri == ring::NO_PRI {
            (None, None)
        } else {
            (Some(pri >> 3), Some(pri & 7))
        };
        assert_eq!((d.facility, d.severity), (fac, sev));
        for (name, v) in &texts {
            assert_eq!(o[*name], lossy_per_byte(v), "{name}");
        }
        for (name, v) in &nums {
            assert_eq!(o[*name].as_u64(), Some(*v), "{name}");
        }
        // The daemon (on the ring record) and a client (on the decoded one)
        // select alike. Only for UTF-8 text: a client sees U+FFFD where the
        // daemon sees the raw bytes.
        if std::str::from_utf8(&source).is_ok() && std::str::from_utf8(&msg).is_ok() {
            let f = random_filter(u, &source, &msg, rec.time_ns)?;
            assert_eq!(f.matches_ring(&rec), f.matches_record(&d), "{f:?} on {d:?}");
        }
        let kv_text: Vec<String> = kv.iter().map(|v| lossy_per_byte(v)).collect();
        if kv.is_empty() {
            assert!(d.kv.is_empty());
        } else {
            assert_eq!(d.kv.join("\n"), kv_text.join("\n"));
        }
    }
    Ok(())
}

/// A filter likely to say yes and no to a record with these fields: its
/// patterns and strings are cut from them.
fn random_filter(
    u: &mut Unstructured<'_>,
    source: &[u8],
    msg: &[u8],
    time_ns: i64,
) -> ArbResult<filter::Filter> {
    let piece = |u: &mut Unstructured<'_>, b: &[u8]| -> ArbResult<Vec<u8>> {
        let i = u.int_in_range(0..=b.len())?;
        let j = u.int_in_range(i..=b.len())?;
        Ok(b[i..j].to_vec())
    };
    let pattern = |u: &mut Unstructured<'_>| -> ArbResult<Pattern> {
        let mut p = piece(u, source)?;
        Ok(match u.int_in_range(0..=3u8)? {
            0 => Pattern::Exact(source.to_vec()),
            1 => Pattern::Exact(p),
            2 => {
                p.insert(0, b'*');
                p.push(b'*');
                Pattern::Glob(p)
            }
            _ => Pattern::Glob(bytes(u, 6)?),
        })
    };
    let mut f = filter::Filter::default();
    for _ in 0..u.int_in_range(0..=2)? {
        f.include.push(pattern(u)?);
    }
    for _ in 0..u.int_in_range(0..=1)? {
        f.exclude.push(pattern(u)?);
    }
    if u.arbitrary()? {
        f.min_severity = Some(u.int_in_range(0..=7)?);
    }
    let near = |u: &mut Unstructured<'_>| -> ArbResult<Option<i64>> {
        Ok(if u.arbitrary()? {
            Some(time_ns.saturating_add(u.int_in_range(-2..=2)?))
        } else {
            None
        })
    };
    f.since_ns = near(u)?;
    f.until_ns = near(u)?;
    for _ in 0..u.int_in_range(0..=2)? {
        f.grep.push(piece(u, msg)?);
    }
    Ok(f)
}

// ---------------------------------------------------------------- glob

/// One element of a glob: a set of bytes it matches, or `*`.
#[derive(Debug)]
enum G {
    Star,
    One(Box<[bool; 256]>),
}

/// The glob syntax of `filter::Pattern::Glob`, read independently of
/// filter.rs: `*`, `?`, `\x`, `[...]` with `!`/`^`, ranges, `\` escapes and
/// a leading `]`; an unclosed `[` is a literal.
fn glob_elements(p: &[u8]) -> Vec<G> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        let mut set = [false; 256];
        match p[i] {
            b'*' => {
                out.push(G::Star);
                i += 1;
                continue;
            }
            b'?' => {
                set = [true; 256];
                i += 1;
            }
            b'\\' if i + 1 < p.len() => {
                set[usize::from(p[i + 1])] = true;
                i += 2;
            }
            b'[' => match glob_set(p, i + 1) {
                Some((s, next)) => {
                    set = s;
                    i = next;
                }
                None => {
                    set[usize::from(b'[')] = true;
                    i += 1;
                }
            },
            c => {
                set[usize::from(c)] = true;
                i += 1;
            }
        }
        out.push(G::One(Box::new(set)));
    }
    out
}

fn glob_set(p: &[u8], mut i: usize) -> Option<([bool; 256], usize)> {
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut set = [false; 256];
    let mut items = 0;
    // One byte, escaped or not: (byte, index after it).
    let byte = |i: usize| -> Option<(u8, usize)> {
        match *p.get(i)? {
            b'\\' => Some((*p.get(i + 1)?, i + 2)),
            c => Some((c, i + 1)),
        }
    };
    loop {
        if p.get(i)? == &b']' && items > 0 {
            if negate {
                set.iter_mut().for_each(|b| *b = !*b);
            }
            return Some((set, i + 1));
        }
        let (lo, next) = byte(i)?;
        items += 1;
        if p.get(next) == Some(&b'-') && p.get(next + 1).is_some_and(|&c| c != b']') {
            let (hi, after) = byte(next + 1)?;
            for c in lo..=hi {
                set[usize::from(c)] = true;
            }
            i = after;
        } else {
            set[usize::from(lo)] = true;
            i = next;
        }
    }
}

/// Reference matcher: the classic dynamic program, O(elements × name).
fn glob_reference(p: &[u8], s: &[u8]) -> bool {
    let els = glob_elements(p);
    // ok[j]: the elements so far match s[..j].
    let mut ok = vec![false; s.len() + 1];
    ok[0] = true;
    for e in &els {
        let mut next = vec![false; s.len() + 1];
        match e {
            G::Star => {
                let mut any = false;
                for j in 0..=s.len() {
                    any |= ok[j];
                    next[j] = any;
                }
            }
            G::One(set) => {
                for j in 1..=s.len() {
                    next[j] = ok[j - 1] && set[usize::from(s[j - 1])];
                }
            }
        }
        ok = next;
    }
    ok[s.len()]
}

/// Far above what O(pattern × name) costs at the sizes the target allows
/// (2048 × 1024 steps: a few milliseconds), far below what exponential
/// backtracking or pattern² × name (seconds) would.
const GLOB_BOUND: Duration = Duration::from_millis(250);

/// Runs `f`, and the CPU time this thread spent in it.
fn cpu_timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    use nix::time::{clock_gettime, ClockId};
    let now = || {
        let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
        Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
    };
    let start = now();
    let v = f();
    (v, now().saturating_sub(start))
}

/// `filter::glob_match` agrees with a reference dynamic program on any
/// pattern and name (up to 2^18 cells of it), stays within a CPU-time cap
/// that only O(pattern × name) meets at the lengths allowed (patterns up to
/// 2 KiB, names up to 1 KiB), and an exact `Pattern` matches exactly its
/// own name.
pub fn glob(data: &[u8]) {
    let (cfg, rest) = settings(data, 1);
    let split = usize::from(*cfg.first().unwrap_or(&0)) * rest.len() / 256;
    let (p, s) = rest.split_at(split);
    let p = &p[..p.len().min(2048)];
    let s = &s[..s.len().min(1024)];
    let (got, took) = cpu_timed(|| filter::glob_match(p, s));
    // A hiccup of the machine can still count: only a second slow run fails.
    let took = if took < GLOB_BOUND {
        took
    } else {
        cpu_timed(|| filter::glob_match(p, s)).1
    };
    assert!(
        took < GLOB_BOUND,
        "{took:?} for a {}-byte pattern and a {}-byte name",
        p.len(),
        s.len()
    );
    if p.len() * (s.len() + 1) <= 1 << 18 {
        assert_eq!(got, glob_reference(p, s), "pattern {p:?} name {s:?}");
    }
    if let Ok(text) = std::str::from_utf8(p) {
        match Pattern::parse(text) {
            Pattern::Exact(e) => {
                assert!(Pattern::Exact(e.clone()).matches(&e));
                assert!(filter::glob_match(p, &e), "{text:?} is a glob for {e:?}");
                assert_eq!(filter::glob_match(p, s), s == e.as_slice());
            }
            Pattern::Glob(g) => assert_eq!(g, p),
        }
    }
}

// ---------------------------------------------------------------- time

/// `timefmt::parse_rfc3339` never panics; what it accepts formats (Go's
/// RFC3339Nano) to a string that parses to the same instant; and every
/// instant an i64 holds survives format then parse.
pub fn rfc3339(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(ns) = timefmt::parse_rfc3339(s) {
            let f = timefmt::rfc3339_nano(ns);
            assert_eq!(timefmt::parse_rfc3339(&f), Some(ns), "{s:?} -> {f:?}");
        }
    }
    if data.len() >= 8 {
        let ns = i64::from_le_bytes(data[..8].try_into().unwrap());
        let f = timefmt::rfc3339_nano(ns);
        assert_eq!(timefmt::parse_rfc3339(&f), Some(ns), "{ns} -> {f:?}");
        let mut secs = Vec::new();
        timefmt::write_rfc3339_secs(&mut secs, ns);
        let secs = std::str::from_utf8(&secs).unwrap();
        assert_eq!(
            timefmt::parse_rfc3339(secs),
            ns.div_euclid(1_000_000_000).checked_mul(1_000_000_000),
            "{secs}"
        );
    }
}

// ---------------------------------------------------------------- lines

/// `LineSplitter` against a model: one `\r` right before each `\n` is
/// dropped (a final `\r` at the end of the stream is kept); each line of at
/// most `max` bytes then comes out whole; a longer one comes out once, cut
/// to `max` and marked, and the rest of it (up to its `\n`) is dropped;
/// however reads cut the stream.
pub fn lines(data: &[u8]) {
    let (cfg, stream) = settings(data, 3);
    let max = usize::from(*cfg.first().unwrap_or(&0)) % 40;
    let mut want: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut dropped = 0;
    let mut parts: Vec<&[u8]> = stream.split(|&c| c == b'\n').collect();
    let last = parts.pop().unwrap_or(&[]);
    let mut crs = 0;
    let parts: Vec<&[u8]> = parts
        .into_iter()
        .map(|l| match l.strip_suffix(b"\r") {
            Some(l) => {
                crs += 1;
                l
            }
            None => l,
        })
        .collect();
    for l in parts
        .into_iter()
        .chain([last].into_iter().filter(|l| !l.is_empty()))
    {
        if l.len() > max {
            want.push((l[..max].to_vec(), true));
            dropped += l.len() - max;
        } else {
            want.push((l.to_vec(), false));
        }
    }
    let mut rng = Rng::new(cfg);
    let mut s = LineSplitter::default();
    let mut got: Vec<(Vec<u8>, bool)> = Vec::new();
    for read in cut(stream, &mut rng) {
        s.feed(read, max, |l, t| got.push((l.to_vec(), t)));
        // A `\r` after `max` bytes is held until the next byte is known.
        assert!(s.pending_len() <= max + 1);
    }
    s.finish(|l, t| got.push((l.to_vec(), t)));
    assert_eq!(s.pending_len(), 0);
    assert_eq!(got, want, "max {max}");
    // Every input byte is in a line, is a `\n` or the `\r` before one, or
    // is one of the dropped.
    let kept: usize = got.iter().map(|(l, _)| l.len()).sum();
    let newlines = stream.iter().filter(|&&c| c == b'\n').count();
    assert_eq!(kept + dropped + newlines + crs, stream.len());
}

// ---------------------------------------------------------------- names

/// Inverse of `names::stem` for names it did not shorten.
fn unstem(s: &str) -> Option<Vec<u8>> {
    if s == "%" {
        return Some(Vec::new());
    }
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// logwrite's file names: any source (two at a time, any bytes, UTF-8 or
/// not) maps to one plain name inside the directory (no `/`, not `.` or
/// `..`, not hidden, printable ASCII, within the length cap); the map is
/// one-to-one: an unshortened name decodes back to its source, a shortened
/// one ends with the SHA-256 of the whole source; two different sources
/// never share a name.
pub fn names(data: &[u8]) {
    use sha2::{Digest, Sha256};
    let (a, b) = settings(data, data.len() / 2);
    let mut stems = Vec::new();
    for src in [a, b] {
        let s = names::stem(src);
        assert!(
            !s.is_empty() && s.len() <= names::MAX_STEM,
            "{src:?} -> {s:?}"
        );
        assert!(
            s.bytes().all(|c| c.is_ascii_graphic() && c != b'/'),
            "{s:?}"
        );
        assert!(!s.starts_with('.'), "{s:?}");
        let file = format!("{s}.log");
        let dir = std::path::Path::new("/var/log");
        let path = dir.join(&file);
        assert_eq!(path.parent(), Some(dir));
        assert_eq!(path.file_name().and_then(|f| f.to_str()), Some(&file[..]));
        match s.find("%~") {
            Some(at) => {
                let hex: String = Sha256::digest(src)[..16]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(&s[at + 2..], hex, "{s:?}");
                let prefix = unstem(&s[..at]).expect("prefix decodes");
                assert!(src.starts_with(&prefix), "{s:?}");
            }
            None => assert_eq!(unstem(&s).as_deref(), Some(src), "{s:?}"),
        }
        stems.push(s);
    }
    assert_eq!(stems[0] == stems[1], a == b, "{a:?} and {b:?} -> {stems:?}");
}

// ---------------------------------------------------------------- ring

#[derive(Debug, Clone, PartialEq, Eq)]
struct MRec {
    time_ns: i64,
    flags: u16,
    pri: u8,
    source: Vec<u8>,
    msg: Vec<u8>,
    meta: Vec<u8>,
}

impl PartialEq<MRec> for ring::Record<'_> {
    fn eq(&self, m: &MRec) -> bool {
        (
            self.time_ns,
            self.flags,
            self.pri,
            self.source,
            self.msg,
            self.meta,
        ) == (
            m.time_ns,
            m.flags,
            m.pri,
            &m.source[..],
            &m.msg[..],
            &m.meta[..],
        )
    }
}

/// `ring::Ring` under random pushes against a model (every record pushed,
/// after the ring's documented cutting): the records kept are the newest
/// ones, intact and in order; the bounds hold; the byte count is exact; and
/// cursors taken at any time read exactly what the model says (the record,
/// the end, or the exact number lost).
pub fn ring(data: &[u8]) {
    let _ = ring_inner(&mut Unstructured::new(data));
}

fn ring_inner(u: &mut Unstructured<'_>) -> ArbResult<()> {
    // The raw ring, or the compressed one (chunks of 64 bytes to 1 KiB:
    // many seals, evictions of compressed chunks, a full descriptor table).
    let compressed: bool = u.arbitrary()?;
    let capacity = u.int_in_range(0..=if compressed { 16384 } else { 2048usize })?;
    let max_records = if u.arbitrary()? {
        u.int_in_range(0..=40u64)?
    } else {
        u64::MAX
    };
    let mut r = if compressed {
        let chunk = u.int_in_range(64..=1024usize)?;
        let mut c = ring::chunked::ChunkRing::new(capacity, max_records, chunk);
        if u.arbitrary()? {
            // No time to compress: chunks are sealed raw, for
            // `recompress_step` to compress and pack later.
            c.set_compress_share(0.0);
        }
        Ring::Chunked(c)
    } else {
        Ring::new(capacity, max_records)
    };
    let cap = r.capacity();
    if compressed {
        assert!(cap >= capacity);
    } else {
        assert!(cap >= 64 && cap % 8 == 0 && cap <= capacity.max(64));
    }
    // One scratch for every read, as the daemon has.
    let mut scratch = r.scratch();
    let max_payload = r.max_payload();
    let mut model: VecDeque<MRec> = VecDeque::new();
    let mut first = 0u64;
    let mut cursors: Vec<ring::Cursor> = Vec::new();
    while !u.is_empty() {
        match u.int_in_range(0..=11u8)? {
            0..=5 => {
                let big = u.arbitrary::<u8>()? < 16;
                let src_len = u.int_in_range(0..=if big { 3000 } else { 12 })?;
                let msg_len = u.int_in_range(0..=if big { 3000 } else { 200 })?;
                let meta_len = u.int_in_range(0..=if big { 5000 } else { 24 })?;
                let fill: u8 = u.arbitrary()?;
                let source = vec![fill; src_len];
                let msg: Vec<u8> = (0..msg_len).map(|i| fill.wrapping_add(i as u8)).collect();
                let meta = vec![fill ^ 0x55; meta_len];
                let (time_ns, flags, pri) = (u.arbitrary()?, u.arbitrary()?, u.arbitrary()?);
                let seq = r.push_with(time_ns, &source, &msg, flags, pri, &meta);
                assert_eq!(seq, first + model.len() as u64);
                // The documented cutting.
                let s = &source[..src_len.min(u16::MAX.into()).min(max_payload)];
                let meta = if meta_len <= ring::MAX_META && meta_len + s.len() <= max_payload / 2 {
                    &meta[..]
                } else {
                    &[][..]
                };
                let room = max_payload - s.len() - meta.len();
                let mut flags = flags;
                if msg.len() > room {
                    flags |= ring::FLAG_TRUNCATED;
                }
                model.push_back(MRec {
                    time_ns,
                    flags,
                    pri,
                    source: s.to_vec(),
                    msg: msg[..msg.len().min(room)].to_vec(),
                    meta: meta.to_vec(),
                });
            }
            10 => {
                // Compress and pack what was sealed raw, a step or a whole
                // pass, between any pushes and reads.
                if u.arbitrary()? {
                    r.recompress_step();
                } else {
                    while r.recompress_step() {}
                    assert!(!r.recompress_pending());
                }
            }
            11 => {
                // Time to compress at sealing runs out, or comes back (a
                // share of 0 leaves nothing; 1 earns as much as is spent).
                let share = if u.arbitrary()? { 0.0 } else { 1.0 };
                r.set_compress_share(share);
            }
            6 => cursors.push(r.newest()),
            7 => cursors.push(r.oldest()),
            8 => {
                let seq = u.int_in_range(0..=first + model.len() as u64 + 2)?;
                let c = r.seek(seq);
                let want = seq.clamp(r.first_seq(), r.next_seq());
                assert_eq!(c.seq, want);
                // The checkpoint index finds the very record.
                match r.read(c, &mut scratch) {
                    Read::Record(rec, _) => {
                        assert_eq!(rec.seq, want);
                        assert!(rec == model[(want - first) as usize], "seek {seq}");
                    }
                    other => assert_eq!((other, want), (Read::End, r.next_seq())),
                }
                cursors.push(c);
            }
            _ => {
                // Advance a cursor by one read.
                if !cursors.is_empty() {
                    let i = u.choose_index(cursors.len())?;
                    let c = cursors[i];
                    match r.read(c, &mut scratch) {
                        Read::Record(rec, next) => {
                            assert_eq!(rec.seq, c.seq);
                            assert!(rec == model[(c.seq - first) as usize], "record {}", c.seq);
                            assert_eq!(next.seq, c.seq + 1);
                            cursors[i] = next;
                        }
                        Read::End => assert_eq!(c.seq, r.next_seq()),
                        Read::Lost { lost, resume } => {
                            assert_eq!(lost, r.first_seq() - c.seq);
                            assert_eq!(resume, r.oldest());
                            cursors[i] = resume;
                        }
                    }
                }
            }
        }
        // The ring keeps a suffix of the model.
        assert!(r.first_seq() >= first, "first_seq went back");
        while first < r.first_seq() {
            model.pop_front();
            first += 1;
        }
        assert_eq!(r.next_seq(), first + model.len() as u64);
        assert_eq!(r.evicted(), first);
        assert!(r.len() <= max_records.max(1));
        assert!(r.bytes_used() <= cap);
        match &r {
            Ring::Raw(raw) => {
                // The seek index: within its bound, one checkpoint per
                // `INDEX_STRIDE` records held (plus one).
                assert!(raw.index_len() <= raw.index_bound());
                assert!(raw.index_len() as u64 <= r.len() / ring::INDEX_STRIDE + 1);
                let sizes: usize = model
                    .iter()
                    .map(|m| (32 + m.source.len() + m.msg.len() + m.meta.len()).next_multiple_of(8))
                    .sum();
                assert_eq!(r.bytes_used(), sizes);
                assert_eq!(r.raw_bytes(), sizes);
            }
            Ring::Chunked(c) => {
                // Every record held is in a chunk held: at least its text
                // and a header of 6 bytes, raw.
                let text: usize = model
                    .iter()
                    .map(|m| 6 + m.source.len() + m.msg.len() + m.meta.len())
                    .sum();
                assert!(r.raw_bytes() >= text);
                assert!(c.chunks() <= cap / 2048 + 2);
                assert_eq!(c.layout_error(), None);
                assert!(scratch.allocated() <= ring::chunked::SCRATCH_SLOTS * c.chunk_size());
            }
        }
        // The newest record is always kept, and anything pushed fits.
        if r.next_seq() > 0 {
            assert!(!model.is_empty());
        }
        // Reading from the oldest gives the model, in order.
        let mut c = r.oldest();
        for want in &model {
            let Read::Record(rec, next) = r.read(c, &mut scratch) else {
                panic!("record {} missing", c.seq)
            };
            assert!(rec == *want, "record {}: {rec:?} != {want:?}", c.seq);
            c = next;
        }
        assert_eq!(r.read(c, &mut scratch), Read::End);
        // Every cursor reads what the model says.
        for c in &cursors {
            match r.read(*c, &mut scratch) {
                Read::Record(rec, _) => {
                    assert!(c.seq >= first);
                    assert!(rec == model[(c.seq - first) as usize], "record {}", c.seq);
                }
                Read::End => assert!(c.seq >= r.next_seq()),
                Read::Lost { lost, .. } => assert_eq!(lost, first - c.seq),
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- escape

/// Text output (`memlog::escape`, issue 16 item 11): whatever the bytes,
/// the escaped form is valid UTF-8, holds no control character but TAB (so
/// it is one line and cannot drive a terminal), and keeps every printable
/// character; and the lossless JSON form of bytes that are not UTF-8
/// (`json::write_raw`, item 15) parses back to exactly those bytes.
pub fn escape(data: &[u8]) {
    let mut out = Vec::new();
    memlog::escape::write_with(&mut out, data, Some(b';'));
    let text = std::str::from_utf8(&out).expect("escaped text is UTF-8");
    for c in text.chars() {
        let u = c as u32;
        assert!(
            c == '\t' || !(u < 0x20 || (0x7f..=0x9f).contains(&u)),
            "control character {u:#x} in {text:?}"
        );
    }
    // Plain printable ASCII without `;` is kept as it is.
    if data.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b';') {
        assert_eq!(out, data);
    }
    let mut line = b"{\"k\":".to_vec();
    json::write_raw(&mut line, data);
    line.push(b'}');
    let obj = json::parse_object(&line).expect("write_raw gives a JSON string");
    let back = json::get(&obj, "k")
        .and_then(json::Value::as_str)
        .and_then(json::decode_raw)
        .expect("decodes");
    assert_eq!(back, data);
}

/// Docker's `LogEntry` frames (`dockerlog`): decoding any bytes never
/// panics; a decoded entry encodes to a frame that splits and decodes to
/// the same entry; the frame finder and splitter never panic and only
/// point at a length within the limit.
pub fn docker_entry(data: &[u8]) {
    use memlog::dockerlog::{self, Frame};
    if let Ok(e) = dockerlog::decode(data) {
        let mut out = Vec::new();
        dockerlog::encode_frame(&mut out, &e);
        let Frame::Whole(body, n) = dockerlog::split(&out) else {
            panic!("an encoded frame splits whole")
        };
        assert_eq!(n, out.len());
        assert_eq!(dockerlog::decode(body), Ok(e));
    }
    let limit = 1 + usize::from(data.first().copied().unwrap_or(0)) * 64;
    if let Some(h) = dockerlog::find_frame_start(data, limit) {
        let n = u32::from_be_bytes([data[h], data[h + 1], data[h + 2], data[h + 3]]) as usize;
        assert!((8..=limit).contains(&n));
        assert_eq!(&data[h + 4..h + 6], b"\x0a\x06");
    }
    let _ = dockerlog::split(data);
}

/// logwrite's RELP frame parser (what a server sends): a frame found is
/// bounded, took exactly the bytes it says, every shorter prefix of those
/// is incomplete (never another frame nor an error), and written back it
/// parses to the same frame; an error or `None` is the same however much
/// more input follows an error or however the input is cut before a frame.
pub fn relp_frame(data: &[u8]) {
    use relpframe::{parse_frame, write_frame, MAX_COMMAND, MAX_DATA};
    match parse_frame(data) {
        Ok(Some((f, n))) => {
            assert!(n <= data.len() && f.data.len() <= MAX_DATA);
            assert!(!f.command.is_empty() && f.command.len() <= MAX_COMMAND);
            assert_eq!(data[n - 1], b'\n');
            assert_eq!(&data[n - 1 - f.data.len()..n - 1], &f.data[..]);
            for cut in 0..n {
                assert!(
                    matches!(parse_frame(&data[..cut]), Ok(None)),
                    "prefix {cut} of a frame of {n}"
                );
            }
            let mut again = Vec::new();
            write_frame(&mut again, f.txnr, &f.command, &f.data);
            assert_eq!(parse_frame(&again), Ok(Some((f, again.len()))));
        }
        Ok(None) => {
            // Incomplete: so is every prefix.
            for cut in 0..data.len() {
                assert!(matches!(parse_frame(&data[..cut]), Ok(None)));
            }
        }
        Err(_) => {
            // Refused: more bytes after it do not make it a frame.
            let mut more = data.to_vec();
            more.extend_from_slice(b"0 rsp 0\n");
            assert!(parse_frame(&more).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    /// Each target on a few fixed inputs (the fuzzers themselves run in CI
    /// through `fuzz/run`).
    #[test]
    fn targets_run_on_simple_inputs() {
        let inputs: [&[u8]; 8] = [
            b"",
            b"1 rsp 6 200 OK\n0 serverclose 0\n",
            b"1 rsp 6 200",
            b"\x00",
            b"<13>Nov 21 12:00:01 host tag[1]: msg\n",
            b"\x02memlog/1 source=a%20b since=2020-01-01T00:00:00Z stats\n",
            b"{\"time\":\"T\",\"source\":\"s\",\"msg\":\"m\"}",
            b"6,1,0,-;x\n SUBSYSTEM=y\n7,5,1,-;z\n",
        ];
        for i in inputs {
            super::syslog(i);
            super::syslog_roundtrip(i);
            super::syslog_stream(i);
            super::kmsg(i);
            super::request(i);
            super::decode_line(i);
            super::json(i);
            super::glob(i);
            super::rfc3339(i);
            super::lines(i);
            super::names(i);
            super::ring(i);
            super::escape(i);
            super::docker_entry(i);
            super::relp_frame(i);
        }
    }
}
