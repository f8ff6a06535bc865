//! Syslog messages for forwarding: RFC 5424 (default) or RFC 3164, framed
//! for TCP with RFC 6587 octet counting (`LEN SP MSG`) or a trailing LF, or
//! sent as one UDP datagram each (RFC 5426).

#[cfg(test)]
use memlog::proto::Record;
use memlog::proto::RecordRef;
use memlog::timefmt;

/// Message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
}

/// How messages are delimited on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// RFC 6587 octet counting: `LEN SP MSG`.
    OctetCount,
    /// RFC 6587 non-transparent framing: `MSG LF` (what old receivers expect).
    Lf,
    /// No framing (one datagram per message).
    None,
}

/// Longest APP-NAME in RFC 5424.
pub const APP_NAME_MAX: usize = 48;
/// Longest TAG in RFC 3164.
pub const TAG_MAX: usize = 32;
/// Longest HOSTNAME in RFC 5424.
pub const HOSTNAME_MAX: usize = 255;

/// `s` reduced to PRINTUSASCII (`!`..=`~`), other bytes replaced by `_`,
/// minus the bytes in `also_bad`, at most `max` bytes; `-` (NILVALUE) if empty.
pub fn sanitize(s: &str, max: usize, also_bad: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len().min(max));
    sanitize_into(&mut out, s, max, also_bad);
    String::from_utf8(out).unwrap_or_else(|_| "-".into())
}

/// [`sanitize`], appended to `out` (no allocation).
pub fn sanitize_into(out: &mut Vec<u8>, s: &str, max: usize, also_bad: &[u8]) {
    let b = &s.as_bytes()[..s.len().min(max)];
    if b.is_empty() {
        out.push(b'-');
        return;
    }
    let ok = |c: u8| c.is_ascii_graphic() && !also_bad.contains(&c);
    if b.iter().all(|&c| ok(c)) {
        out.extend_from_slice(b);
    } else {
        out.extend(b.iter().map(|&c| if ok(c) { c } else { b'_' }));
    }
}

/// Everything about a message that does not change per record.
#[derive(Debug, Clone)]
pub struct Formatter {
    pub format: Format,
    pub framing: Framing,
    /// Already sanitized.
    pub hostname: String,
}

/// `v` in decimal, in the tail of `digits`.
fn decimal(digits: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &digits[i..]
}

fn push_num(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(decimal(&mut [0; 20], v));
}

thread_local! {
    /// The last second's text (each output formats on its own thread).
    static SECS: std::cell::RefCell<timefmt::SecsWriter> =
        std::cell::RefCell::new(timefmt::SecsWriter::default());
    /// Digits of the last octet-counted frame's length: the room left for
    /// the next one's, so that the frame is not moved once written.
    static WIDTH: std::cell::Cell<usize> = const { std::cell::Cell::new(3) };
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Formatter {
    /// Appends text a sender chose (the message, structured data). With LF
    /// framing a newline would end the message there and start a forged
    /// one on the server, so control characters are escaped
    /// ([`memlog::escape`]: `\n`, `\xNN`); octet counting and datagrams
    /// frame any bytes, which go as they are.
    fn text(&self, out: &mut Vec<u8>, s: &[u8]) {
        if self.framing == Framing::Lf {
            memlog::escape::write(out, s);
        } else {
            out.extend_from_slice(s);
        }
    }

    /// Appends `r` as one framed message.
    pub fn write(&self, out: &mut Vec<u8>, r: &RecordRef<'_>) {
        let start = out.len();
        let width = WIDTH.with(std::cell::Cell::get);
        if self.framing == Framing::OctetCount {
            // Room for the length (as many digits as the last frame's);
            // filled in below.
            out.resize(start + width, b'0');
            out.push(b' ');
        }
        let body = out.len();
        let pri = u64::from(r.facility_or_default()) * 8 + u64::from(r.severity_or_default());
        out.push(b'<');
        push_num(out, pri);
        out.push(b'>');
        let ns = r.time_ns().unwrap_or_else(timefmt::now_ns);
        match self.format {
            Format::Rfc5424 => {
                out.extend_from_slice(b"1 ");
                // TIME-SECFRAC allows at most 6 digits: microseconds.
                SECS.with(|w| w.borrow_mut().write(out, ns));
                out.pop(); // 'Z'
                out.push(b'.');
                let us = ns.rem_euclid(1_000_000_000) / 1000;
                // Six digits.
                let mut digits = [0u8; 20];
                out.extend_from_slice(&decimal(&mut digits, 1_000_000 + us as u64)[1..]);
                out.extend_from_slice(b"Z ");
                out.extend_from_slice(self.hostname.as_bytes());
                out.push(b' ');
                sanitize_into(out, &r.source, APP_NAME_MAX, b"");
                out.push(b' ');
                // PROCID, MSGID and STRUCTURED-DATA as the syslog client sent
                // them. Not the kernel-reported pid: for a service's output
                // that is whoever created its socketpair (init), not the service.
                match r.procid.as_deref().filter(|p| !p.is_empty()) {
                    Some(p) => sanitize_into(out, p, 128, b""),
                    None => out.push(b'-'),
                }
                out.push(b' ');
                match r.msgid.as_deref().filter(|m| !m.is_empty()) {
                    Some(m) => sanitize_into(out, m, 32, b""),
                    None => out.push(b'-'),
                }
                out.push(b' ');
                match r
                    .sd
                    .as_deref()
                    .filter(|sd| sd.starts_with('[') && sd.ends_with(']'))
                {
                    Some(sd) => self.text(out, sd.as_bytes()),
                    None => out.push(b'-'),
                }
                out.push(b' ');
            }
            Format::Rfc3164 => {
                // `Mmm dd hh:mm:ss` in UTC (no time-zone data on small images).
                let mut t = Vec::with_capacity(32);
                timefmt::write_rfc3339_secs(&mut t, ns);
                let month: usize = std::str::from_utf8(&t[5..7])
                    .ok()
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(1);
                let day: u32 = std::str::from_utf8(&t[8..10])
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(1);
                out.extend_from_slice(MONTHS[month.clamp(1, 12) - 1].as_bytes());
                out.extend_from_slice(format!(" {day:>2} ").as_bytes());
                out.extend_from_slice(&t[11..19]);
                out.push(b' ');
                out.extend_from_slice(self.hostname.as_bytes());
                out.push(b' ');
                sanitize_into(out, &r.source, TAG_MAX, b":[]");
                if let Some(p) = r.procid.as_deref().filter(|p| !p.is_empty()) {
                    out.push(b'[');
                    sanitize_into(out, p, 32, b"[]");
                    out.push(b']');
                }
                out.extend_from_slice(b": ");
            }
        }
        self.text(out, r.msg.as_bytes());
        match self.framing {
            Framing::OctetCount => {
                let mut digits = [0u8; 20];
                let n = decimal(&mut digits, (out.len() - body) as u64);
                if n.len() == width {
                    out[start..start + width].copy_from_slice(n);
                } else {
                    // Another number of digits than the last frame's: the
                    // frame moves this once.
                    out.splice(start..start + width, n.iter().copied());
                    WIDTH.with(|w| w.set(n.len()));
                }
            }
            Framing::Lf => out.push(b'\n'),
            Framing::None => {}
        }
    }
}

/// This machine's host name (`gethostname`), sanitized; `-` if unknown.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf, which we own.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "-".into();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    sanitize(&String::from_utf8_lossy(&buf[..n]), HOSTNAME_MAX, b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record {
            seq: Some(1),
            time: "2018-07-08T09:16:53.123456789Z".into(),
            source: "onboot.001 dhcpcd".into(),
            msg: "eth0: up".into(),
            facility: Some(3),
            severity: Some(4),
            pid: Some(42),
            procid: Some("1234".into()),
            msgid: Some("ID7".into()),
            sd: Some("[x@32473 a=\"b\"]".into()),
            ..Record::default()
        }
    }

    #[test]
    fn rfc5424_octet_counted() {
        let f = Formatter {
            format: Format::Rfc5424,
            framing: Framing::OctetCount,
            hostname: "box".into(),
        };
        let mut out = b"x".to_vec();
        f.write(&mut out, &rec().as_ref());
        // PROCID, MSGID and SD as the client sent them; the kernel pid (42) is not a PROCID.
        let msg = "<28>1 2018-07-08T09:16:53.123456Z box onboot.001_dhcpcd 1234 ID7 [x@32473 a=\"b\"] eth0: up";
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            format!("x{} {msg}", msg.len())
        );
    }

    #[test]
    fn defaults_and_long_app_names() {
        let f = Formatter {
            format: Format::Rfc5424,
            framing: Framing::None,
            hostname: "h".into(),
        };
        let r = Record {
            time: "2020-01-01T00:00:00Z".into(),
            source: "a".repeat(100),
            msg: "m".into(),
            ..Record::default()
        };
        let mut out = Vec::new();
        f.write(&mut out, &r.as_ref());
        let want = format!(
            "<14>1 2020-01-01T00:00:00.000000Z h {} - - - m",
            "a".repeat(48)
        );
        assert_eq!(String::from_utf8(out).expect("utf8"), want);
    }

    #[test]
    fn rfc3164_with_lf() {
        let f = Formatter {
            format: Format::Rfc3164,
            framing: Framing::Lf,
            hostname: "box".into(),
        };
        let mut out = Vec::new();
        let mut r = rec();
        r.source = "a:b[c]".into();
        f.write(&mut out, &r.as_ref());
        assert_eq!(out, b"<28>Jul  8 09:16:53 box a_b_c_[1234]: eth0: up\n");
    }

    #[test]
    fn sanitizing() {
        assert_eq!(sanitize("", 48, b""), "-");
        assert_eq!(sanitize("a b\u{e9}", 48, b""), "a_b__");
        assert!(!hostname().is_empty());
    }

    #[test]
    fn lf_framing_cannot_be_broken_by_a_message() {
        let f = Formatter {
            format: Format::Rfc3164,
            framing: Framing::Lf,
            hostname: "h".into(),
        };
        let r = Record {
            msg: "ok\n<38>Nov 21 12:00:00 h sshd[1]: Accepted password for root".into(),
            sd: Some("[x a=\"\n\"]".into()),
            ..rec()
        };
        let mut out = Vec::new();
        f.write(&mut out, &r.as_ref());
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(out.ends_with(b"ok\\n<38>Nov 21 12:00:00 h sshd[1]: Accepted password for root\n"));
        // RFC 5424 over LF framing: the structured data is escaped too.
        let f5 = Formatter {
            format: Format::Rfc5424,
            ..f.clone()
        };
        out.clear();
        f5.write(&mut out, &r.as_ref());
        assert_eq!(
            out.iter().filter(|&&b| b == b'\n').count(),
            1,
            "{}",
            String::from_utf8_lossy(&out)
        );
        // Octet counting frames any bytes: they go as they are.
        let oc = Formatter {
            framing: Framing::OctetCount,
            ..f5
        };
        out.clear();
        oc.write(&mut out, &r.as_ref());
        assert!(out.windows(5).any(|w| w == b"ok\n<3"));
    }

    #[test]
    fn octet_counts_are_exact_whatever_the_digits_of_the_frame_before() {
        let f = Formatter {
            format: Format::Rfc5424,
            framing: Framing::OctetCount,
            hostname: "h".into(),
        };
        let mut out = Vec::new();
        let lens = [1usize, 80, 5, 2000, 900, 12_000, 3, 120];
        for (i, &n) in lens.iter().enumerate() {
            let r = Record {
                time: "2020-01-01T00:00:00.123456789Z".into(),
                source: format!("s{i}"),
                msg: "m".repeat(n),
                ..Record::default()
            };
            f.write(&mut out, &r.as_ref());
        }
        let mut rest = &out[..];
        for (i, &n) in lens.iter().enumerate() {
            let sp = rest.iter().position(|&b| b == b' ').expect("length");
            let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
            let frame = &rest[sp + 1..sp + 1 + len];
            let text = String::from_utf8_lossy(frame);
            assert!(
                text.starts_with("<14>1 2020-01-01T00:00:00.123456Z h "),
                "{text}"
            );
            assert!(text.contains(&format!(" s{i} ")), "{text}");
            assert!(text.ends_with(&format!(" {}", "m".repeat(n))), "{text}");
            rest = &rest[sp + 1 + len..];
        }
        assert!(rest.is_empty());
    }
}
