//! Per-source rate limits, in the spirit of journald's: each source may
//! store `burst` records per `interval`; the rest of that window is dropped
//! and counted, and when the window ends one record says how many were
//! suppressed. Emergency messages are never limited.
//!
//! A flood from one source therefore overwrites at most `burst` records of
//! others per interval. Pure logic with an explicit clock, so tests drive it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Bucket {
    start: Instant,
    count: u32,
    suppressed: u64,
}

/// Most sources tracked at once; windows that ended are forgotten first.
const MAX_SOURCES: usize = 4096;

/// The limiter. `burst == 0` disables it.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    burst: u32,
    buckets: HashMap<Box<[u8]>, Bucket>,
}

impl RateLimiter {
    pub fn new(interval: Duration, burst: u32) -> RateLimiter {
        RateLimiter {
            interval,
            burst,
            buckets: HashMap::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.burst > 0 && !self.interval.is_zero()
    }

    fn bucket(
        &mut self,
        source: &[u8],
        now: Instant,
        report: &mut impl FnMut(&[u8], u64),
    ) -> &mut Bucket {
        if !self.buckets.contains_key(source) && self.buckets.len() >= MAX_SOURCES {
            self.expire(now, &mut *report);
        }
        let interval = self.interval;
        let b = self.buckets.entry(source.into()).or_insert(Bucket {
            start: now,
            count: 0,
            suppressed: 0,
        });
        if now.duration_since(b.start) >= interval {
            if b.suppressed > 0 {
                report(source, b.suppressed);
            }
            *b = Bucket {
                start: now,
                count: 0,
                suppressed: 0,
            };
        }
        b
    }

    /// How many more records `source` may store now (`u32::MAX` when
    /// disabled). Call [`RateLimiter::consume`] with what was used.
    /// `report(source, n)` is called for a window that just ended with `n`
    /// suppressed records.
    pub fn allowance(
        &mut self,
        source: &[u8],
        now: Instant,
        mut report: impl FnMut(&[u8], u64),
    ) -> u32 {
        if !self.enabled() {
            return u32::MAX;
        }
        let burst = self.burst;
        let b = self.bucket(source, now, &mut report);
        burst.saturating_sub(b.count)
    }

    /// Records that `source` stored `used` records and had `suppressed` dropped.
    pub fn consume(&mut self, source: &[u8], used: u32, suppressed: u64) {
        if let Some(b) = self.buckets.get_mut(source) {
            b.count = b.count.saturating_add(used);
            b.suppressed += suppressed;
        }
    }

    /// One record from `source` with syslog severity `severity` (if any):
    /// may it be stored? Emergencies (severity 0) always may.
    pub fn admit(
        &mut self,
        source: &[u8],
        severity: Option<u8>,
        now: Instant,
        report: impl FnMut(&[u8], u64),
    ) -> bool {
        if severity == Some(0) || !self.enabled() {
            return true;
        }
        if self.allowance(source, now, report) > 0 {
            self.consume(source, 1, 0);
            true
        } else {
            self.consume(source, 0, 1);
            false
        }
    }

    /// Ends windows that are over: reports their suppressed counts and
    /// forgets sources that are idle.
    pub fn expire(&mut self, now: Instant, mut report: impl FnMut(&[u8], u64)) {
        let interval = self.interval;
        self.buckets.retain(|source, b| {
            if now.duration_since(b.start) < interval {
                return true;
            }
            if b.suppressed > 0 {
                report(source, b.suppressed);
            }
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_per_interval_then_summary() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Duration::from_secs(10), 3);
        let mut reports = Vec::new();
        let admitted = (0..10)
            .filter(|_| rl.admit(b"flood", Some(6), t0, |s, n| reports.push((s.to_vec(), n))))
            .count();
        assert_eq!(admitted, 3);
        // Another source has its own budget.
        assert!(rl.admit(b"quiet", None, t0, |_, _| {}));
        // Emergencies are exempt.
        assert!(rl.admit(b"flood", Some(0), t0, |_, _| {}));
        assert!(reports.is_empty());
        // The next window: the summary of the last one, and a fresh budget.
        let t1 = t0 + Duration::from_secs(10);
        assert!(rl.admit(b"flood", Some(6), t1, |s, n| reports.push((s.to_vec(), n))));
        assert_eq!(reports, vec![(b"flood".to_vec(), 7)]);
    }

    #[test]
    fn expire_reports_and_forgets() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Duration::from_secs(1), 1);
        rl.admit(b"a", None, t0, |_, _| {});
        rl.admit(b"a", None, t0, |_, _| {});
        rl.admit(b"b", None, t0, |_, _| {});
        let mut reports = Vec::new();
        rl.expire(t0 + Duration::from_millis(500), |s, n| {
            reports.push((s.to_vec(), n))
        });
        assert!(reports.is_empty());
        rl.expire(t0 + Duration::from_secs(2), |s, n| {
            reports.push((s.to_vec(), n))
        });
        assert_eq!(reports, vec![(b"a".to_vec(), 1)]);
        assert!(rl.buckets.is_empty());
    }

    #[test]
    fn allowance_and_consume_for_batches() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Duration::from_secs(30), 100);
        assert_eq!(rl.allowance(b"s", t0, |_, _| {}), 100);
        rl.consume(b"s", 100, 5);
        assert_eq!(rl.allowance(b"s", t0, |_, _| {}), 0);
        let mut reports = Vec::new();
        assert_eq!(
            rl.allowance(b"s", t0 + Duration::from_secs(30), |s, n| reports
                .push((s.to_vec(), n))),
            100
        );
        assert_eq!(reports, vec![(b"s".to_vec(), 5)]);
        assert_eq!(
            RateLimiter::new(Duration::from_secs(30), 0).allowance(b"s", t0, |_, _| {}),
            u32::MAX
        );
    }

    #[test]
    fn many_sources_stay_bounded() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Duration::from_secs(1), 10);
        for i in 0..(MAX_SOURCES * 3) {
            let t = t0 + Duration::from_secs((i / MAX_SOURCES) as u64 * 2);
            rl.admit(format!("s{i}").as_bytes(), None, t, |_, _| {});
        }
        assert!(rl.buckets.len() <= MAX_SOURCES);
    }
}
