//! `--since`/`--until` values: RFC 3339, a local date and time, a few words,
//! or an age (`10m` ago). Resolved once, to nanoseconds since the epoch, so
//! memlogd and logread compare records with the same instant.

use chrono::{Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use memlog::timefmt;

const NS: i64 = 1_000_000_000;

/// An age: one or more NUMBER UNIT groups (`s`, `m`, `h`, `d`, `w`), with an
/// optional leading `-` (`10m`, `-10m`, `1h30m`), in nanoseconds.
fn age(s: &str) -> Option<i64> {
    let s = s.strip_prefix('-').unwrap_or(s);
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n: i64 = s[start..i].parse().ok()?;
        let unit = match b.get(i)? {
            b's' => 1,
            b'm' => 60,
            b'h' => 3600,
            b'd' => 86_400,
            b'w' => 7 * 86_400,
            _ => return None,
        };
        i += 1;
        total = total.checked_add(n.checked_mul(unit)?.checked_mul(NS)?)?;
    }
    Some(total)
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |a, &c| {
        a.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

/// `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM`,
/// `HH:MM:SS` or `HH:MM:SS.fraction`, without a zone (read by hand: chrono's
/// format-string parser costs tens of KiB of binary).
fn naive(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(digits(&b[0..4])?).ok()?,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
    )?;
    let rest = &b[10..];
    if rest.is_empty() {
        return Some(date.and_time(NaiveTime::MIN));
    }
    if rest.len() < 6 || !matches!(rest[0], b'T' | b' ') || rest[3] != b':' {
        return None;
    }
    let (h, mi) = (digits(&rest[1..3])?, digits(&rest[4..6])?);
    let (mut sec, mut nano) = (0, 0);
    let tail = &rest[6..];
    if !tail.is_empty() {
        if tail.len() < 3 || tail[0] != b':' {
            return None;
        }
        sec = digits(&tail[1..3])?;
        let frac = &tail[3..];
        if !frac.is_empty() {
            let f = frac.strip_prefix(b".")?;
            if f.is_empty() || f.len() > 9 {
                return None;
            }
            nano = digits(f)? * 10u32.pow(9 - f.len() as u32);
        }
    }
    date.and_hms_nano_opt(h, mi, sec, nano)
}

fn local_ns(dt: NaiveDateTime) -> Option<i64> {
    // An ambiguous local time (clocks going back) is its earlier instant; a
    // time that does not exist (clocks going forward) is an error.
    Local
        .from_local_datetime(&dt)
        .earliest()?
        .timestamp_nanos_opt()
}

fn local_midnight(days_back: i64, now_ns: i64) -> Option<i64> {
    let now = Local.timestamp_nanos(now_ns);
    let day = now.date_naive() - chrono::Days::new(days_back as u64);
    local_ns(day.and_time(NaiveTime::MIN))
}

/// Parses a time for `--since`/`--until`; `now_ns` anchors ages and words.
pub fn parse(s: &str, now_ns: i64) -> Result<i64, String> {
    let t = s.trim();
    let found = match t {
        "now" => Some(now_ns),
        "today" => local_midnight(0, now_ns),
        "yesterday" => local_midnight(1, now_ns),
        _ => age(t)
            .and_then(|a| now_ns.checked_sub(a))
            .or_else(|| timefmt::parse_rfc3339(t))
            .or_else(|| naive(t).and_then(local_ns)),
    };
    found.ok_or_else(|| {
        format!("{s:?} (use RFC 3339 like 2026-11-21T12:00:00Z, a local time like \"2026-11-21 12:00\", today, yesterday, now, or an age like 30s, 10m, 2h, 1d)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000 * NS;

    #[test]
    fn ages() {
        assert_eq!(parse("10m", NOW), Ok(NOW - 600 * NS));
        assert_eq!(parse("-10m", NOW), Ok(NOW - 600 * NS));
        assert_eq!(parse("2h", NOW), Ok(NOW - 7200 * NS));
        assert_eq!(parse("1d", NOW), Ok(NOW - 86_400 * NS));
        assert_eq!(parse("1h30m", NOW), Ok(NOW - 5400 * NS));
        assert_eq!(parse("45s", NOW), Ok(NOW - 45 * NS));
        assert_eq!(parse("now", NOW), Ok(NOW));
    }

    #[test]
    fn absolute_times() {
        assert_eq!(
            parse("2023-11-14T22:13:20Z", NOW),
            Ok(NOW),
            "RFC 3339 in UTC"
        );
        assert_eq!(parse("2023-11-14T23:13:20.5+01:00", NOW), Ok(NOW + NS / 2));
        // Local times depend on TZ; at least they parse and order correctly.
        let a = parse("2023-11-14 10:00", NOW).expect("local");
        let b = parse("2023-11-14 10:00:01", NOW).expect("local");
        assert_eq!(b - a, NS);
        let d = parse("2023-11-14", NOW).expect("date");
        assert_eq!(a - d, 10 * 3600 * NS);
        let f = parse("2023-11-14T10:00:01.25", NOW).expect("fraction");
        assert_eq!(f - b, NS / 4);
        assert!(parse("today", NOW).expect("today") <= NOW);
        assert!(parse("yesterday", NOW).expect("y") < parse("today", NOW).expect("t"));
    }

    #[test]
    fn garbage() {
        for s in [
            "",
            "-",
            "10",
            "10x",
            "m",
            "2023-13-01",
            "soon",
            "1h-5m",
            "2023-11-14 10",
            "2023-11-14 10:0",
            "2023-11-14 25:00",
            "2023-11-14 10:00:5",
            "2023-11-14 10:00:05.",
            "2023-11-14 10:00:05,5",
            "2023-11-14x10:00",
        ] {
            assert!(parse(s, NOW).is_err(), "{s}");
        }
    }
}
