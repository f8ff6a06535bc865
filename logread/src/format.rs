//! Output formats (`-o`) and colour by severity. The default is LinuxKit's
//! `TIME;SOURCE;MSG`, byte for byte for text without control characters.
//! Every text format writes sources and messages through `memlog::escape`
//! (a newline is `\n`, ESC is `\x1b`, invalid UTF-8 `\xNN`): one record is
//! one line, and a message cannot drive the terminal. JSON keeps the bytes.

use chrono::{DateTime, Datelike, Local, Offset, Timelike};
use memlog::escape;
use memlog::proto::Record;
use std::io::Write;

/// One line per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `TIME;SOURCE;MSG` (`;` in SOURCE written `\;`), as LinuxKit's logread.
    LinuxKit,
    /// `Nov 21 12:00:00 SOURCE[PID]: MSG`, local time, as syslog writes.
    Short,
    /// `Short` with microseconds.
    Precise,
    /// `2026-11-21T12:00:00+01:00 SOURCE[PID]: MSG`, local time.
    Iso,
    /// `Iso` with microseconds.
    IsoPrecise,
    /// `TIME,SOURCE;MSG`: the text form in LinuxKit's logging document.
    Kmsg,
    /// One JSON object per record with every key it carries.
    Json,
    /// The message only.
    Cat,
}

impl Format {
    /// Accepted names (journalctl's `short-precise`, `short-iso` and
    /// `short-iso-precise` are accepted too).
    pub const NAMES: [&'static str; 8] = [
        "linuxkit",
        "short",
        "precise",
        "iso",
        "iso-precise",
        "kmsg",
        "json",
        "cat",
    ];

    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "linuxkit" | "default" => Format::LinuxKit,
            "short" => Format::Short,
            "precise" | "short-precise" => Format::Precise,
            "iso" | "short-iso" => Format::Iso,
            "iso-precise" | "short-iso-precise" => Format::IsoPrecise,
            "kmsg" => Format::Kmsg,
            "json" => Format::Json,
            "cat" => Format::Cat,
            _ => return None,
        })
    }

    /// Appends the local time `ns` in this format's layout (chrono's
    /// `%b %e %H:%M:%S`, `%Y-%m-%dT%H:%M:%S%:z` and the `%.6f` variants),
    /// written field by field: chrono's strftime engine would add tens of
    /// KiB to the binary for four fixed layouts.
    fn write_local(self, out: &mut Vec<u8>, ns: i64) {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let t: DateTime<Local> = DateTime::from_timestamp_nanos(ns).into();
        let (iso, precise) = match self {
            Format::Short => (false, false),
            Format::Precise => (false, true),
            Format::Iso => (true, false),
            _ => (true, true),
        };
        let _ = if iso {
            write!(out, "{:04}-{:02}-{:02}T", t.year(), t.month(), t.day())
        } else {
            let month = MONTHS[t.month0() as usize % 12];
            write!(out, "{month} {:2} ", t.day())
        };
        let _ = write!(out, "{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
        if precise {
            // A leap second shows as :59.999999 (chrono keeps it in the fraction).
            let _ = write!(out, ".{:06}", (t.nanosecond() / 1000).min(999_999));
        }
        if iso {
            let off = t.offset().fix().local_minus_utc();
            let sign = if off < 0 { '-' } else { '+' };
            let off = off.unsigned_abs() / 60;
            let _ = write!(out, "{sign}{:02}:{:02}", off / 60, off % 60);
        }
    }

    /// Appends `r` as one line.
    pub fn write(self, r: &Record, out: &mut Vec<u8>) {
        match self {
            Format::LinuxKit => r.write_text(out),
            Format::Json => r.write_json(out),
            Format::Cat => {
                escape::write(out, r.msg_bytes());
                out.push(b'\n');
            }
            Format::Kmsg => {
                escape::write(out, r.time.as_bytes());
                out.push(b',');
                escape::write_with(out, r.source_bytes(), Some(b';'));
                out.push(b';');
                escape::write(out, r.msg_bytes());
                out.push(b'\n');
            }
            Format::Short | Format::Precise | Format::Iso | Format::IsoPrecise => {
                match r.time_ns() {
                    Some(ns) => self.write_local(out, ns),
                    // A time we cannot read is shown as sent.
                    None => escape::write(out, r.time.as_bytes()),
                }
                out.push(b' ');
                escape::write(out, r.source_bytes());
                if let Some(pid) = r.pid {
                    out.extend_from_slice(format!("[{pid}]").as_bytes());
                }
                out.extend_from_slice(b": ");
                escape::write(out, r.msg_bytes());
                out.push(b'\n');
            }
        }
    }

    /// Whether lines of this format may be coloured (not JSON).
    pub fn colourable(self) -> bool {
        self != Format::Json
    }
}

/// The escape that starts a line of this severity, if it has a colour:
/// emerg/alert/crit bold red, err red, warning yellow, notice bold, info
/// plain, debug dim (as journalctl).
pub fn colour(severity: u8) -> Option<&'static [u8]> {
    match severity {
        0..=2 => Some(b"\x1b[1;31m"),
        3 => Some(b"\x1b[31m"),
        4 => Some(b"\x1b[33m"),
        5 => Some(b"\x1b[1m"),
        7 => Some(b"\x1b[2m"),
        _ => None,
    }
}

/// Appends `r` in `format`, coloured by severity when `colour_on`.
pub fn write_record(format: Format, colour_on: bool, r: &Record, out: &mut Vec<u8>) {
    let esc = if colour_on && format.colourable() {
        colour(r.severity_or_default())
    } else {
        None
    };
    let Some(esc) = esc else {
        return format.write(r, out);
    };
    out.extend_from_slice(esc);
    format.write(r, out);
    // The reset goes before the newline, so a line never ends coloured.
    out.pop();
    out.extend_from_slice(b"\x1b[0m\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record {
            seq: Some(7),
            time: "2026-11-21T12:00:00.123456789Z".into(),
            source: "a;b".into(),
            msg: "hello; world".into(),
            ..Record::default()
        }
    }

    fn show(f: Format, r: &Record) -> String {
        let mut v = Vec::new();
        f.write(r, &mut v);
        String::from_utf8(v).expect("utf-8")
    }

    #[test]
    fn fixed_formats() {
        let r = rec();
        assert_eq!(
            show(Format::LinuxKit, &r),
            "2026-11-21T12:00:00.123456789Z;a\\;b;hello; world\n"
        );
        assert_eq!(
            show(Format::Kmsg, &r),
            "2026-11-21T12:00:00.123456789Z,a\\;b;hello; world\n"
        );
        assert_eq!(show(Format::Cat, &r), "hello; world\n");
        assert_eq!(
            show(Format::Json, &r),
            "{\"seq\":7,\"time\":\"2026-11-21T12:00:00.123456789Z\",\"source\":\"a;b\",\"msg\":\"hello; world\"}\n"
        );
    }

    #[test]
    fn every_text_format_escapes_control_characters() {
        let r = Record {
            time: "T".into(),
            source: "s\x1b".into(),
            msg: "a\nNov 21 12:00:00 sshd[1]: forged\x1b[2J".into(),
            msg_raw: Some(b"a\nNov 21 12:00:00 sshd[1]: forged\x1b[2J\xff".to_vec()),
            ..Record::default()
        };
        for f in [
            Format::LinuxKit,
            Format::Short,
            Format::Precise,
            Format::Iso,
            Format::IsoPrecise,
            Format::Kmsg,
            Format::Cat,
        ] {
            let s = show(f, &r);
            assert_eq!(s.matches('\n').count(), 1, "{f:?}: {s}");
            assert!(
                s.ends_with("a\\nNov 21 12:00:00 sshd[1]: forged\\x1b[2J\\xff\n"),
                "{f:?}: {s}"
            );
            assert!(!s.contains('\x1b'), "{f:?}: {s}");
        }
        // JSON keeps the bytes (escaped the JSON way).
        let j = show(Format::Json, &r);
        assert!(j.contains("\\n") && j.contains("\"msg_raw\""), "{j}");
    }

    #[test]
    fn local_formats_have_the_right_shape() {
        let mut r = rec();
        r.pid = Some(42);
        let s = show(Format::Short, &r);
        assert!(s.ends_with(" a;b[42]: hello; world\n"), "{s}");
        // "Nov 21 12:00:00" in any zone: month name, day, time.
        assert_eq!(s.find(" a;b").expect("source"), 15, "{s}");
        let p = show(Format::Precise, &r);
        assert_eq!(p.find(" a;b").expect("source"), 22, "{p}");
        let i = show(Format::IsoPrecise, &r);
        assert!(i.starts_with("2026-11-2"), "{i}");
        assert!(i.contains(".123456"), "{i}");
        r.time = "yesterday-ish".into();
        assert_eq!(
            show(Format::Iso, &r),
            "yesterday-ish a;b[42]: hello; world\n"
        );
    }

    #[test]
    fn local_layouts_match_chrono_strftime() {
        let layouts = [
            (Format::Short, "%b %e %H:%M:%S"),
            (Format::Precise, "%b %e %H:%M:%S%.6f"),
            (Format::Iso, "%Y-%m-%dT%H:%M:%S%:z"),
            (Format::IsoPrecise, "%Y-%m-%dT%H:%M:%S%.6f%:z"),
        ];
        for ns in [
            0,
            1_700_000_000_123_456_789,
            1_780_000_000_000_001_000,
            -86_399_999_999_999,
        ] {
            let t: DateTime<Local> = DateTime::from_timestamp_nanos(ns).into();
            for (f, layout) in layouts {
                let mut v = Vec::new();
                f.write_local(&mut v, ns);
                assert_eq!(
                    String::from_utf8(v).expect("utf-8"),
                    t.format(layout).to_string()
                );
            }
        }
    }

    #[test]
    fn colour_wraps_the_line_but_not_the_newline() {
        let mut r = rec();
        let mut v = Vec::new();
        write_record(Format::Cat, true, &r, &mut v);
        assert_eq!(v, b"hello; world\n", "info is plain");
        r.severity = Some(3);
        v.clear();
        write_record(Format::Cat, true, &r, &mut v);
        assert_eq!(v, b"\x1b[31mhello; world\x1b[0m\n");
        v.clear();
        write_record(Format::Json, true, &r, &mut v);
        assert!(!v.contains(&0x1b));
        v.clear();
        write_record(Format::Cat, false, &r, &mut v);
        assert_eq!(v, b"hello; world\n");
    }
}
