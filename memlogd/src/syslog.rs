//! Parses what local syslog clients send to `/dev/log`: RFC 5424
//! (`logger --rfc5424`) and the RFC 3164 family as glibc and musl
//! `syslog(3)`, BusyBox and util-linux `logger` and Python's
//! `SysLogHandler` write it. Pure functions; nothing is ever dropped: a
//! message that does not parse comes back whole as the message.
//!
//! Source naming (documented in the README): the record's source is the
//! tag (RFC 3164) or APP-NAME (RFC 5424) when there is one, else `syslog`.

/// Source of syslog messages without a tag.
pub const DEFAULT_SOURCE: &[u8] = b"syslog";
/// Longest tag / APP-NAME taken as a source (RFC 5424's APP-NAME limit).
pub const MAX_TAG: usize = 48;

/// Which header the message had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
    /// No `<PRI>`: kept as it came.
    Unparsed,
}

/// The parts of one syslog message. Absent fields are `None` (RFC 5424's
/// `-` is absent too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub format: Format,
    /// `facility << 3 | severity`.
    pub pri: Option<u8>,
    pub timestamp: Option<&'a [u8]>,
    pub host: Option<&'a [u8]>,
    pub app: Option<&'a [u8]>,
    pub procid: Option<&'a [u8]>,
    pub msgid: Option<&'a [u8]>,
    pub sd: Option<&'a [u8]>,
    pub msg: &'a [u8],
}

impl<'a> Message<'a> {
    /// The record source: the tag / APP-NAME, or `syslog`.
    pub fn source(&self) -> &'a [u8] {
        self.app.unwrap_or(DEFAULT_SOURCE)
    }
}

/// Strips what clients append: trailing NULs (glibc over a stream, Python)
/// and line ends.
pub fn trim_end(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'\0' | b'\n' | b'\r'] = b {
        b = rest;
    }
    b
}

fn parse_pri(b: &[u8]) -> Option<(u8, &[u8])> {
    let rest = b.strip_prefix(b"<")?;
    let end = rest.iter().take(4).position(|&c| c == b'>')?;
    let digits = &rest[..end];
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return None;
    }
    let v: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (v <= 191).then(|| (v as u8, &rest[end + 1..]))
}

/// Splits off one space-terminated field.
fn field(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let sp = memchr::memchr(b' ', b)?;
    Some((&b[..sp], &b[sp + 1..]))
}

fn nil(f: &[u8]) -> Option<&[u8]> {
    (f != b"-" && !f.is_empty()).then_some(f)
}

/// Length of the STRUCTURED-DATA at the start of `b` (`-` or `[...]...`).
fn sd_len(b: &[u8]) -> Option<usize> {
    if b.first() == Some(&b'-') {
        return Some(1);
    }
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut in_quotes = false;
        i += 1;
        loop {
            match *b.get(i)? {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    (i > 0).then_some(i)
}

fn parse_5424(pri: u8, b: &[u8]) -> Option<Message<'_>> {
    let rest = b.strip_prefix(b"1 ")?;
    let (ts, rest) = field(rest)?;
    let (host, rest) = field(rest)?;
    let (app, rest) = field(rest)?;
    let (procid, rest) = field(rest)?;
    let (msgid, rest) = field(rest)?;
    let n = sd_len(rest)?;
    let (sd, rest) = rest.split_at(n);
    let msg = match rest {
        [] => rest,
        [b' ', m @ ..] => m.strip_prefix(b"\xef\xbb\xbf").unwrap_or(m),
        _ => return None,
    };
    let app = nil(app).filter(|a| a.len() <= MAX_TAG);
    Some(Message {
        format: Format::Rfc5424,
        pri: Some(pri),
        timestamp: nil(ts),
        host: nil(host),
        app,
        procid: nil(procid),
        msgid: nil(msgid),
        sd: nil(sd),
        msg,
    })
}

const MONTHS: [&[u8]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `Mmm dd hh:mm:ss` (15 bytes, day space-padded), as RFC 3164 writes it.
fn is_3164_time(b: &[u8]) -> bool {
    b.len() >= 15
        && MONTHS.contains(&&b[0..3])
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && b[7..9].iter().all(u8::is_ascii_digit)
        && b[9] == b':'
        && b[10..12].iter().all(u8::is_ascii_digit)
        && b[12] == b':'
        && b[13..15].iter().all(u8::is_ascii_digit)
}

fn tag_char(c: u8) -> bool {
    c.is_ascii_graphic() && c != b':' && c != b'[' && c != b']'
}

/// A tag, its claimed pid, and the message after them.
type Tagged<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u8]);

/// `TAG[PID]: ` or `TAG: ` at the start of `b`.
fn parse_tag(b: &[u8]) -> Option<Tagged<'_>> {
    let n = b.iter().take(MAX_TAG + 1).position(|&c| !tag_char(c))?;
    if n == 0 || n > MAX_TAG {
        return None;
    }
    let (tag, rest) = b.split_at(n);
    let (pid, rest) = if let Some(r) = rest.strip_prefix(b"[") {
        let close = memchr::memchr(b']', r)?;
        (Some(&r[..close]), &r[close + 1..])
    } else {
        (None, rest)
    };
    let rest = rest.strip_prefix(b":")?;
    Some((
        tag,
        pid.filter(|p| !p.is_empty()),
        rest.strip_prefix(b" ").unwrap_or(rest),
    ))
}

fn parse_3164(pri: u8, b: &[u8]) -> Message<'_> {
    let (timestamp, rest) = if is_3164_time(b) {
        (
            Some(&b[..15]),
            b[15..].strip_prefix(b" ").unwrap_or(&b[15..]),
        )
    } else {
        (None, b)
    };
    let mut m = Message {
        format: Format::Rfc3164,
        pri: Some(pri),
        timestamp,
        host: None,
        app: None,
        procid: None,
        msgid: None,
        sd: None,
        msg: rest,
    };
    if let Some((tag, pid, msg)) = parse_tag(rest) {
        (m.app, m.procid, m.msg) = (Some(tag), pid, msg);
    } else if timestamp.is_some() {
        // `HOSTNAME TAG[PID]: MSG`, as relays and some loggers send it.
        if let Some((host, after)) = field(rest) {
            if let Some((tag, pid, msg)) = parse_tag(after) {
                (m.host, m.app, m.procid, m.msg) = (Some(host), Some(tag), pid, msg);
            }
        }
    }
    m
}

/// Parses one message (one datagram, or one frame of a stream).
pub fn parse(raw: &[u8]) -> Message<'_> {
    let b = trim_end(raw);
    let Some((pri, rest)) = parse_pri(b) else {
        return Message {
            format: Format::Unparsed,
            pri: None,
            timestamp: None,
            host: None,
            app: None,
            procid: None,
            msgid: None,
            sd: None,
            msg: b,
        };
    };
    parse_5424(pri, rest).unwrap_or_else(|| parse_3164(pri, rest))
}

/// What [`split_stream`] carries from one call to the next on a stream: the
/// part still to skip of a frame it cut.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    #[default]
    Nothing,
    /// The rest of a delimited frame, up to and including its delimiter.
    ToDelimiter,
    /// The rest of an octet-counted frame: this many bytes.
    Bytes(usize),
}

/// Splits a syslog byte stream (the `SOCK_STREAM` flavour of `/dev/log`)
/// into frames: RFC 6587 octet counting when a frame starts with a digit,
/// otherwise delimited by NUL or `\n`. Calls `emit(frame, cut)` for each
/// complete frame and returns the number of bytes used; the caller keeps the
/// rest for the next call, with `skip`.
///
/// A delimited frame longer than `max` is emitted once, its first `max`
/// bytes marked cut, and the rest of it is skipped up to its delimiter, so
/// the frames do not depend on how reads cut the stream. An octet-counted
/// frame is emitted whole once it has arrived, unless its length is absurd
/// (its frame over `max` + 64 KiB): then it is cut the same way, so the
/// bytes kept for the next call never exceed `max` + 64 KiB.
pub fn split_stream(
    buf: &[u8],
    max: usize,
    skip: &mut Skip,
    mut emit: impl FnMut(&[u8], bool),
) -> usize {
    let mut i = 0;
    while i < buf.len() {
        let b = &buf[i..];
        match *skip {
            Skip::Nothing => {}
            Skip::Bytes(n) => {
                let k = n.min(b.len());
                i += k;
                *skip = if k == n {
                    Skip::Nothing
                } else {
                    Skip::Bytes(n - k)
                };
                continue;
            }
            Skip::ToDelimiter => match memchr::memchr2(b'\0', b'\n', b) {
                Some(end) => {
                    i += end + 1;
                    *skip = Skip::Nothing;
                    continue;
                }
                None => return buf.len(),
            },
        }
        if b[0] == b'\0' || b[0] == b'\n' {
            i += 1;
            continue;
        }
        if b[0].is_ascii_digit() {
            let sp = b.iter().take(10).position(|&c| c == b' ');
            if sp.is_none() && b.len() < 10 && b.iter().all(u8::is_ascii_digit) {
                // Maybe an octet count whose space has not arrived yet.
                return i;
            }
            if let Some(sp) = sp {
                if let Some(len) = std::str::from_utf8(&b[..sp])
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok())
                {
                    let frame = &b[sp + 1..];
                    if sp + 1 + len > max + 64 * 1024 {
                        // Absurd length: its first `max` bytes, cut.
                        if frame.len() < max {
                            return i;
                        }
                        emit(&frame[..max], true);
                        *skip = Skip::Bytes(len - max);
                        i += sp + 1 + max;
                        continue;
                    }
                    if frame.len() < len {
                        return i;
                    }
                    emit(&frame[..len], false);
                    i += sp + 1 + len;
                    continue;
                }
            }
        }
        match memchr::memchr2(b'\0', b'\n', b) {
            Some(end) if end <= max => {
                emit(&b[..end], false);
                i += end + 1;
            }
            Some(end) => {
                emit(&b[..max], true);
                i += end + 1;
            }
            None if b.len() > max => {
                emit(&b[..max], true);
                *skip = Skip::ToDelimiter;
                return buf.len();
            }
            None => return i,
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> Message<'_> {
        parse(s)
    }

    #[test]
    fn glibc_and_musl_syslog_3() {
        let m = p(b"<30>Nov 21 12:00:01 sshd[123]: Accepted key for root\0");
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!(m.pri, Some(30));
        assert_eq!(m.timestamp, Some(&b"Nov 21 12:00:01"[..]));
        assert_eq!(
            (m.app, m.procid, m.host),
            (Some(&b"sshd"[..]), Some(&b"123"[..]), None)
        );
        assert_eq!(m.msg, b"Accepted key for root");
        assert_eq!(m.source(), b"sshd");
        // Day padded with a space, no pid.
        let m = p(b"<13>Jan  5 01:02:03 cron: job done\n");
        assert_eq!(
            (m.app, m.procid, m.msg),
            (Some(&b"cron"[..]), None, &b"job done"[..])
        );
    }

    #[test]
    fn busybox_and_util_linux_logger() {
        let m = p(b"<12>Nov 21 12:00:01 root: hello world");
        assert_eq!(
            (m.pri, m.app, m.msg),
            (Some(12), Some(&b"root"[..]), &b"hello world"[..])
        );
        let m = p(b"<13>Nov 21 12:00:01 myhost tagged[42]: with a host");
        assert_eq!(
            (m.host, m.app, m.procid, m.msg),
            (
                Some(&b"myhost"[..]),
                Some(&b"tagged"[..]),
                Some(&b"42"[..]),
                &b"with a host"[..]
            )
        );
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let m = p(b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][x@1 a=\"q\\]x\"] \xef\xbb\xbfAn application event");
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.pri, Some(165));
        assert_eq!(m.timestamp, Some(&b"2003-10-11T22:14:15.003Z"[..]));
        assert_eq!(m.host, Some(&b"mymachine.example.com"[..]));
        assert_eq!(
            (m.app, m.procid, m.msgid),
            (Some(&b"evntslog"[..]), None, Some(&b"ID47"[..]))
        );
        assert_eq!(m.sd, Some(&b"[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][x@1 a=\"q\\]x\"]"[..]));
        assert_eq!(m.msg, b"An application event");
        let m = p(b"<13>1 2026-11-21T12:00:00.1+01:00 host app 77 - - plain");
        assert_eq!(
            (m.app, m.procid, m.msgid, m.sd, m.msg),
            (
                Some(&b"app"[..]),
                Some(&b"77"[..]),
                None,
                None,
                &b"plain"[..]
            )
        );
        let m = p(b"<13>1 - - - - - -");
        assert_eq!(
            (m.format, m.source(), m.msg),
            (Format::Rfc5424, DEFAULT_SOURCE, &b""[..])
        );
    }

    #[test]
    fn python_syslog_handler() {
        // SysLogHandler sends "<PRI>message\0", with the ident (if any) in front.
        let m = p(b"<14>myapp: something happened\x00");
        assert_eq!(
            (m.pri, m.app, m.msg, m.timestamp),
            (
                Some(14),
                Some(&b"myapp"[..]),
                &b"something happened"[..],
                None
            )
        );
        let m = p(b"<11>no tag here at all\x00");
        assert_eq!(
            (m.pri, m.app, m.msg),
            (Some(11), None, &b"no tag here at all"[..])
        );
        assert_eq!(m.source(), DEFAULT_SOURCE);
    }

    #[test]
    fn unparsable_messages_are_kept_whole() {
        for raw in [
            &b"no pri at all"[..],
            b"<999>too big",
            b"<>empty",
            b"<01>leading zero",
            b"<13",
            b"",
        ] {
            let m = p(raw);
            assert_eq!(m.format, Format::Unparsed, "{raw:?}");
            assert_eq!(m.msg, trim_end(raw));
        }
        // Broken RFC 5424 falls back to RFC 3164 treatment, keeping everything.
        let m = p(b"<13>1 onlyonefield");
        assert_eq!((m.format, m.msg), (Format::Rfc3164, &b"1 onlyonefield"[..]));
        let m = p(b"<13>embedded\0nul\n\n\0");
        assert_eq!(m.msg, b"embedded\0nul");
    }

    #[test]
    fn never_panics_on_any_prefix() {
        let samples: [&[u8]; 3] = [
            b"<165>1 2003-10-11T22:14:15.003Z host app 1 ID [a b=\"c\\\"d\"] msg",
            b"<30>Nov 21 12:00:01 sshd[123]: Accepted",
            b"<13>Nov 21 12:00:01 host tag[: x",
        ];
        for s in samples {
            for cut in 0..=s.len() {
                let _ = parse(&s[..cut]);
            }
        }
    }

    fn split_all(chunks: &[&[u8]], max: usize) -> (Vec<(Vec<u8>, bool)>, Vec<u8>) {
        let (mut buf, mut skip, mut got) = (Vec::new(), Skip::Nothing, Vec::new());
        for c in chunks {
            buf.extend_from_slice(c);
            let used = split_stream(&buf, max, &mut skip, |f, cut| got.push((f.to_vec(), cut)));
            buf.drain(..used);
        }
        (got, buf)
    }

    #[test]
    fn stream_framing() {
        let data = b"<13>one\0<13>two\n17 <13>octet counted<13>tail";
        let (got, rest) = split_all(&[data], 1024);
        assert_eq!(
            got,
            vec![
                (b"<13>one".to_vec(), false),
                (b"<13>two".to_vec(), false),
                (b"<13>octet counted".to_vec(), false)
            ]
        );
        assert_eq!(rest, b"<13>tail");
        // An incomplete octet-counted frame waits for more bytes.
        assert_eq!(
            split_all(&[b"30 <13>short"], 1024),
            (vec![], b"30 <13>short".to_vec())
        );
        // An overlong unterminated frame is cut at max, once; its rest is skipped.
        let (got, rest) = split_all(&[&[b'x'; 50]], 20);
        assert_eq!((got, rest), (vec![(vec![b'x'; 20], true)], vec![]));
    }

    #[test]
    fn overlong_frames_are_cut_once_however_reads_cut_them() {
        // Found by fuzz/ (syslog_stream): a frame over max came out whole when
        // its delimiter was in the same read, but as pieces of max bytes, the
        // first not marked cut and the rest as records of their own, when it
        // spanned reads.
        let data = b"mlog/1 source=a%20b since=2020-01-01T00:00:00Z stats\n<13>ok\n";
        let want = vec![(b"mlog/1".to_vec(), true), (b"<13>ok".to_vec(), false)];
        for cut in 0..=data.len() {
            assert_eq!(
                split_all(&[&data[..cut], &data[cut..]], 6).0,
                want,
                "cut at {cut}"
            );
        }
        // An absurd octet count: the first max bytes, cut; the rest skipped.
        let data = b"999999 abcdefgh\n<13>ok\n";
        let mut long = data.to_vec();
        long.extend_from_slice(&vec![b'z'; 999_999 - 16]);
        long.extend_from_slice(b"5 <13>x");
        for cut in [0, 3, 7, 9, 12, 30, long.len()] {
            let (got, rest) = split_all(&[&long[..cut], &long[cut..]], 4);
            assert_eq!(
                got,
                vec![(b"abcd".to_vec(), true), (b"<13>x".to_vec(), false)],
                "cut at {cut}"
            );
            assert!(rest.is_empty());
        }
        // Found by fuzz/ (syslog_stream): with a max shorter than the count,
        // the count itself was cut as a frame when its space came in a later
        // read.
        let data = b"999999 abc\n<13>xssage ";
        let want = split_all(&[data], 5).0;
        assert_eq!(want, vec![(b"abc\n<".to_vec(), true)]);
        for cut in 0..=data.len() {
            assert_eq!(
                split_all(&[&data[..cut], &data[cut..]], 5).0,
                want,
                "cut at {cut}"
            );
        }
    }
}
