//! RFC 3339 timestamps: Go's `RFC3339Nano` layout for output, a lenient parser for input.
//!
//! Times are nanoseconds since the Unix epoch (`i64`, UTC). Formatting is
//! hand-written (no allocation, no time-zone database) because it sits on
//! the hot path of every record memlogd sends.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, from the real-time clock.
pub fn now_ns() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01. Inverse of `civil_from_days`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn push2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

fn write_date_time(out: &mut Vec<u8>, secs: i64) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        let y = y as u32;
        push2(out, y / 100);
        push2(out, y % 100);
    } else {
        out.extend_from_slice(y.to_string().as_bytes());
    }
    out.push(b'-');
    push2(out, m);
    out.push(b'-');
    push2(out, d);
    out.push(b'T');
    push2(out, sod / 3600);
    out.push(b':');
    push2(out, sod / 60 % 60);
    out.push(b':');
    push2(out, sod % 60);
}

thread_local! {
    /// The last second formatted, and its `YYYY-MM-DDTHH:MM:SS`: records
    /// come in bursts within one second, so the calendar math is done once.
    static LAST: std::cell::Cell<(i64, [u8; 19])> = const { std::cell::Cell::new((i64::MIN, [0; 19])) };
}

fn write_date_time_cached(out: &mut Vec<u8>, secs: i64) {
    let (last, text) = LAST.with(std::cell::Cell::get);
    if last == secs {
        out.extend_from_slice(&text);
        return;
    }
    let start = out.len();
    write_date_time(out, secs);
    if let Ok(t) = <[u8; 19]>::try_from(&out[start..]) {
        LAST.with(|c| c.set((secs, t)));
    }
}

/// Appends `ns` as Go's `time.RFC3339Nano` in UTC: `2018-07-08T09:16:53.123456789Z`,
/// with trailing zeros of the fraction removed (and no `.` for whole seconds).
pub fn write_rfc3339_nano(out: &mut Vec<u8>, ns: i64) {
    let secs = ns.div_euclid(1_000_000_000);
    let mut frac = ns.rem_euclid(1_000_000_000) as u32;
    write_date_time_cached(out, secs);
    if frac != 0 {
        let mut digits = 9;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        out.push(b'.');
        let start = out.len();
        out.resize(start + digits, b'0');
        for i in (0..digits).rev() {
            out[start + i] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
    }
    out.push(b'Z');
}

/// Appends `ns` as RFC 3339 in whole seconds, UTC (`2018-07-08T09:16:53Z`), as
/// LinuxKit's logwrite writes its files.
pub fn write_rfc3339_secs(out: &mut Vec<u8>, ns: i64) {
    write_date_time(out, ns.div_euclid(1_000_000_000));
    out.push(b'Z');
}

/// [`write_rfc3339_secs`] for a run of times, most of them in the same
/// second as the one before (a log's): the last second's text is kept and
/// copied, not formatted again.
#[derive(Debug, Clone)]
pub struct SecsWriter {
    secs: i64,
    text: [u8; 32],
    len: usize,
}

impl Default for SecsWriter {
    fn default() -> SecsWriter {
        SecsWriter {
            secs: i64::MIN,
            text: [0; 32],
            len: 0,
        }
    }
}

impl SecsWriter {
    /// Appends `ns` as [`write_rfc3339_secs`] does.
    pub fn write(&mut self, out: &mut Vec<u8>, ns: i64) {
        let secs = ns.div_euclid(1_000_000_000);
        if secs != self.secs || self.len == 0 {
            let mut v = Vec::with_capacity(32);
            write_rfc3339_secs(&mut v, ns);
            if v.len() > self.text.len() {
                // A year past 9999 and beyond what fits: not kept.
                self.len = 0;
                out.extend_from_slice(&v);
                return;
            }
            self.text[..v.len()].copy_from_slice(&v);
            self.len = v.len();
            self.secs = secs;
        }
        out.extend_from_slice(&self.text[..self.len]);
    }
}

/// `write_rfc3339_nano` into a new `String`.
pub fn rfc3339_nano(ns: i64) -> String {
    let mut v = Vec::with_capacity(32);
    write_rfc3339_nano(&mut v, ns);
    String::from_utf8(v).unwrap_or_default()
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |a, &c| {
        a.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

/// Parses an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±hh:mm)`, `t`/`z`
/// and a space separator accepted) to nanoseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (h, mi, se) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ns: i64 = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &b[start..i];
        for k in 0..9 {
            frac_ns = frac_ns * 10 + digits.get(k).map_or(0, |c| i64::from(c - b'0'));
        }
    }
    let offset_secs: i64 = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = i64::from(num(&[*h1, *h2])?);
            let om = i64::from(num(&[*m1, *m2])?);
            let v = oh * 3600 + om * 60;
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs =
        days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(se) - offset_secs;
    // In i128: before the epoch, the whole seconds alone may be out of range
    // when the time (seconds plus fraction) is not.
    i64::try_from(i128::from(secs) * 1_000_000_000 + i128::from(frac_ns)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secs_writer_writes_what_write_rfc3339_secs_writes() {
        let mut w = SecsWriter::default();
        let times = [
            1_700_000_000_123_456_789i64,
            1_700_000_000_999_999_999,
            1_700_000_001_000_000_000,
            1_700_000_000_000_000_000,
            -1,
            0,
            -1_000_000_001,
            i64::MAX,
            i64::MIN,
            1_700_000_001_500_000_000,
        ];
        for ns in times {
            let (mut a, mut b) = (b"x ".to_vec(), b"x ".to_vec());
            w.write(&mut a, ns);
            write_rfc3339_secs(&mut b, ns);
            assert_eq!(a, b, "{ns}");
        }
    }

    fn fmt(ns: i64) -> String {
        rfc3339_nano(ns)
    }

    #[test]
    fn nano_layout_trims_trailing_zeros_like_go() {
        // 2018-07-08T09:16:53Z is 1531041413 seconds.
        let base = 1_531_041_413_000_000_000;
        assert_eq!(fmt(base), "2018-07-08T09:16:53Z");
        assert_eq!(fmt(base + 123_456_789), "2018-07-08T09:16:53.123456789Z");
        assert_eq!(fmt(base + 120_000_000), "2018-07-08T09:16:53.12Z");
        assert_eq!(fmt(base + 1), "2018-07-08T09:16:53.000000001Z");
        assert_eq!(fmt(base + 100_000_000), "2018-07-08T09:16:53.1Z");
    }

    #[test]
    fn epoch_leap_years_and_pre_epoch() {
        assert_eq!(fmt(0), "1970-01-01T00:00:00Z");
        assert_eq!(fmt(951_782_400 * 1_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(fmt(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(fmt(4_102_444_800 * 1_000_000_000), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn cached_seconds_format_like_fresh_ones() {
        let base: i64 = 1_531_041_413_000_000_000;
        for ns in [
            base,
            base + 5,
            base + 999_999_999,
            base + 1_000_000_000,
            base - 1,
            base,
            -5_000_000_000,
            base,
        ] {
            let mut fresh = Vec::new();
            write_date_time(&mut fresh, ns.div_euclid(1_000_000_000));
            assert!(
                fmt(ns).starts_with(std::str::from_utf8(&fresh).expect("utf8")),
                "{ns}"
            );
        }
    }

    #[test]
    fn whole_seconds_layout() {
        let mut v = Vec::new();
        write_rfc3339_secs(&mut v, 1_531_041_413_999_999_999);
        assert_eq!(v, b"2018-07-08T09:16:53Z");
    }

    #[test]
    fn parse_round_trips_and_offsets() {
        for ns in [
            0,
            1,
            1_531_041_413_123_456_789,
            1_700_000_000_100_000_000,
            -1,
        ] {
            assert_eq!(parse_rfc3339(&fmt(ns)), Some(ns), "{}", fmt(ns));
        }
        assert_eq!(
            parse_rfc3339("2018-07-08T10:16:53.5+01:00"),
            Some(1_531_041_413_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2018-07-08T08:46:53-00:30"),
            Some(1_531_041_413_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2018-07-08 09:16:53z"),
            Some(1_531_041_413_000_000_000)
        );
    }

    #[test]
    fn parse_round_trips_the_ends_of_the_range() {
        // Found by fuzz/ (rfc3339): the first second of the range was
        // refused, its whole seconds times 10^9 being below i64::MIN.
        for ns in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1] {
            assert_eq!(parse_rfc3339(&fmt(ns)), Some(ns), "{}", fmt(ns));
        }
        assert_eq!(parse_rfc3339("1677-09-21T00:12:43.145224191Z"), None);
        assert_eq!(parse_rfc3339("2262-04-11T23:47:16.854775808Z"), None);
    }

    #[test]
    fn parse_rejects_garbage() {
        for s in [
            "",
            "2018-07-08",
            "2018-13-08T09:16:53Z",
            "2018-07-08T09:16:53",
            "2018-07-08T09:16:53.Z",
            "2018-07-08T09:16:53+0100",
            "abcd-07-08T09:16:53Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
    }
}
