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
            .or_else(|| {
                [
                    "%Y-%m-%d %H:%M:%S%.f",
                    "%Y-%m-%dT%H:%M:%S%.f",
                    "%Y-%m-%d %H:%M",
                    "%Y-%m-%dT%H:%M",
                ]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
                .and_then(local_ns)
            })
            .or_else(|| {
                NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| local_ns(d.and_time(NaiveTime::MIN)))
            }),
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
        assert!(parse("today", NOW).expect("today") <= NOW);
        assert!(parse("yesterday", NOW).expect("y") < parse("today", NOW).expect("t"));
    }

    #[test]
    fn garbage() {
        for s in ["", "-", "10", "10x", "m", "2023-13-01", "soon", "1h-5m"] {
            assert!(parse(s, NOW).is_err(), "{s}");
        }
    }
}
