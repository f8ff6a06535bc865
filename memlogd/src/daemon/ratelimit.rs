//! Rate limits, in the spirit of journald's: each key may store `burst`
//! records per `interval`; the rest of that window is dropped and counted,
//! and when the window ends one record says how many were suppressed.
//! Emergency messages are never limited when they come from a trusted
//! source (the kernel, the init system's fds, root): a sender keyed by its
//! uid picked its priority itself, so its emergencies count.
//!
//! The key is what the sender cannot choose ([`Key`]): for syslog records
//! from an unprivileged sender, the uid the kernel reported (all the tags
//! of one uid share one budget, so a fresh tag per message buys nothing;
//! not the pid, which a forking sender changes per message). Root's
//! syslog records, fd inputs (the log socket is for the trusted init
//! system) and the kernel log are keyed by source.
//!
//! A flood from one key therefore overwrites at most `burst` records of
//! others per interval. Every operation is O(1) and memory is bounded: at
//! most [`MAX_BUCKETS`] buckets (a slab with an intrusive least-recently
//! used list; the least recently used is evicted first, and reports what
//! it suppressed), keys of at most [`MAX_KEY`] bytes of source, and the
//! buckets with suppressed records kept apart so that the end of their
//! windows is found without looking at the others. Pure logic with an
//! explicit clock, so tests drive it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most buckets tracked at once (a bucket is about 200 bytes).
pub const MAX_BUCKETS: usize = 1024;
/// Bytes of a source (or tag) that count in a key, and that a summary names.
pub const MAX_KEY: usize = 64;

const NONE: u32 = u32::MAX;

/// Whose budget a record uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// A source: fd inputs, the kernel log, root's syslog tags.
    Source(&'a [u8]),
    /// An unprivileged syslog sender (`tag` is only remembered, for the
    /// summary).
    Uid { uid: u32, tag: &'a [u8] },
    /// A syslog sender whose credentials the kernel did not report.
    Unknown { tag: &'a [u8] },
}

impl Key<'_> {
    /// The bytes the buckets are found by.
    fn bytes(&self, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Key::Source(s) => {
                out.push(0);
                out.extend_from_slice(&s[..s.len().min(MAX_KEY)]);
            }
            Key::Uid { uid, .. } => {
                out.push(1);
                out.extend_from_slice(&uid.to_le_bytes());
            }
            Key::Unknown { .. } => out.push(2),
        }
    }

    fn tag(&self) -> Option<&[u8]> {
        match self {
            Key::Source(_) => None,
            Key::Uid { tag, .. } | Key::Unknown { tag } => Some(tag),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    key: Box<[u8]>,
    start: Instant,
    count: u32,
    suppressed: u64,
    /// The last tag seen (uid keys), for the summary.
    tag: [u8; MAX_KEY],
    tag_len: u8,
    /// Least-recently-used list (toward the tail: used longer ago).
    prev: u32,
    next: u32,
    /// Position in `suppressing`, or `NONE`.
    in_suppressing: u32,
}

impl Bucket {
    /// Who this bucket is, for a summary: `SOURCE`, `uid N (last tag "x")`.
    fn who(&self) -> String {
        let tag = String::from_utf8_lossy(&self.tag[..usize::from(self.tag_len)]);
        match self.key.first() {
            Some(1) if self.key.len() == 5 => {
                let uid = u32::from_le_bytes([self.key[1], self.key[2], self.key[3], self.key[4]]);
                format!("uid {uid} (last tag {tag:?})")
            }
            Some(2) => format!("a sender without credentials (last tag {tag:?})"),
            _ => String::from_utf8_lossy(&self.key[1..]).into_owned(),
        }
    }
}

/// The limiter. `burst == 0` disables it.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    burst: u32,
    slots: Vec<Bucket>,
    index: HashMap<Box<[u8]>, u32>,
    /// Most and least recently used.
    head: u32,
    tail: u32,
    /// Buckets with suppressed records in their window.
    suppressing: Vec<u32>,
    /// The key being looked up (reused).
    scratch: Vec<u8>,
}

impl RateLimiter {
    pub fn new(interval: Duration, burst: u32) -> RateLimiter {
        RateLimiter {
            interval,
            burst,
            slots: Vec::new(),
            index: HashMap::new(),
            head: NONE,
            tail: NONE,
            suppressing: Vec::new(),
            scratch: Vec::with_capacity(MAX_KEY + 1),
        }
    }

    pub fn enabled(&self) -> bool {
        self.burst > 0 && !self.interval.is_zero()
    }

    /// Buckets held now (at most [`MAX_BUCKETS`]).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.index.len()
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = (self.slots[i as usize].prev, self.slots[i as usize].next);
        match prev {
            NONE => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NONE => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, i: u32) {
        let b = &mut self.slots[i as usize];
        b.prev = NONE;
        b.next = self.head;
        match self.head {
            NONE => self.tail = i,
            h => self.slots[h as usize].prev = i,
        }
        self.head = i;
    }

    fn mark_suppressing(&mut self, i: u32) {
        if self.slots[i as usize].in_suppressing == NONE {
            self.slots[i as usize].in_suppressing = self.suppressing.len() as u32;
            self.suppressing.push(i);
        }
    }

    fn unmark_suppressing(&mut self, i: u32) {
        let pos = self.slots[i as usize].in_suppressing;
        if pos == NONE {
            return;
        }
        self.suppressing.swap_remove(pos as usize);
        if let Some(&moved) = self.suppressing.get(pos as usize) {
            self.slots[moved as usize].in_suppressing = pos;
        }
        self.slots[i as usize].in_suppressing = NONE;
    }

    /// Reports and clears a bucket's suppressed records.
    fn flush(&mut self, i: u32, report: &mut impl FnMut(String, u64)) {
        let n = std::mem::take(&mut self.slots[i as usize].suppressed);
        if n > 0 {
            report(self.slots[i as usize].who(), n);
        }
        self.unmark_suppressing(i);
    }

    /// The bucket of `key`, most recently used now, its window current.
    fn bucket(&mut self, key: Key<'_>, now: Instant, report: &mut impl FnMut(String, u64)) -> u32 {
        let mut k = std::mem::take(&mut self.scratch);
        key.bytes(&mut k);
        let i = match self.index.get(&k[..]) {
            Some(&i) => {
                self.unlink(i);
                i
            }
            None if self.index.len() >= MAX_BUCKETS && self.tail != NONE => {
                // Evict the least recently used, after its summary.
                let i = self.tail;
                self.unlink(i);
                self.flush(i, report);
                let old = std::mem::replace(&mut self.slots[i as usize].key, k[..].into());
                self.index.remove(&old);
                self.index.insert(k[..].into(), i);
                let b = &mut self.slots[i as usize];
                b.start = now;
                b.count = 0;
                i
            }
            None => {
                let i = self.slots.len() as u32;
                self.slots.push(Bucket {
                    key: k[..].into(),
                    start: now,
                    count: 0,
                    suppressed: 0,
                    tag: [0; MAX_KEY],
                    tag_len: 0,
                    prev: NONE,
                    next: NONE,
                    in_suppressing: NONE,
                });
                self.index.insert(k[..].into(), i);
                i
            }
        };
        self.scratch = k;
        self.push_front(i);
        if now.duration_since(self.slots[i as usize].start) >= self.interval {
            self.flush(i, report);
            let b = &mut self.slots[i as usize];
            b.start = now;
            b.count = 0;
        }
        if let Some(tag) = key.tag() {
            let b = &mut self.slots[i as usize];
            let n = tag.len().min(MAX_KEY);
            b.tag[..n].copy_from_slice(&tag[..n]);
            b.tag_len = n as u8;
        }
        i
    }

    /// How many more records `key` may store now (`u32::MAX` when
    /// disabled). Call [`RateLimiter::consume`] with what was used.
    /// `report(who, n)` is called for a window that just ended with `n`
    /// suppressed records (and for a bucket evicted with some).
    pub fn allowance(
        &mut self,
        key: Key<'_>,
        now: Instant,
        mut report: impl FnMut(String, u64),
    ) -> u32 {
        if !self.enabled() {
            return u32::MAX;
        }
        let i = self.bucket(key, now, &mut report);
        self.burst.saturating_sub(self.slots[i as usize].count)
    }

    /// Records that `key` stored `used` records and had `suppressed` dropped
    /// (right after [`RateLimiter::allowance`] for the same key).
    pub fn consume(&mut self, key: Key<'_>, used: u32, suppressed: u64) {
        let mut k = std::mem::take(&mut self.scratch);
        key.bytes(&mut k);
        if let Some(&i) = self.index.get(&k[..]) {
            let b = &mut self.slots[i as usize];
            b.count = b.count.saturating_add(used);
            b.suppressed += suppressed;
            if suppressed > 0 {
                self.mark_suppressing(i);
            }
        }
        self.scratch = k;
    }

    /// One record from `key` with syslog severity `severity` (if any): may
    /// it be stored? Emergencies (severity 0) always may when they come from
    /// a trusted source ([`Key::Source`]: the kernel, the init system's fds,
    /// root); a sender keyed by its uid chose that priority itself, so its
    /// emergencies count like any other record.
    pub fn admit(
        &mut self,
        key: Key<'_>,
        severity: Option<u8>,
        now: Instant,
        report: impl FnMut(String, u64),
    ) -> bool {
        let trusted = matches!(key, Key::Source(_));
        if (severity == Some(0) && trusted) || !self.enabled() {
            return true;
        }
        if self.allowance(key, now, report) > 0 {
            self.consume(key, 1, 0);
            true
        } else {
            self.consume(key, 0, 1);
            false
        }
    }

    /// Ends the windows that are over among the buckets with suppressed
    /// records (the others need no summary): reports their counts.
    pub fn expire(&mut self, now: Instant, mut report: impl FnMut(String, u64)) {
        let mut pos = 0;
        while pos < self.suppressing.len() {
            let i = self.suppressing[pos];
            if now.duration_since(self.slots[i as usize].start) >= self.interval {
                // Removes it from `suppressing`: the last one moves to `pos`.
                self.flush(i, &mut report);
                self.slots[i as usize].count = 0;
            } else {
                pos += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Reports = Vec<(String, u64)>;

    fn src(s: &[u8]) -> Key<'_> {
        Key::Source(s)
    }

    /// The least-recently-used list, most recent first, as keys.
    fn lru(rl: &RateLimiter) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = rl.head;
        while i != NONE {
            out.push(rl.slots[i as usize].key.to_vec());
            i = rl.slots[i as usize].next;
        }
        out
    }

    #[test]
    fn burst_per_interval_then_summary() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Duration::from_secs(10), 3);
        let mut reports = Reports::new();
        let admitted = (0..10)
            .filter(|_| rl.admit(src(b"flood"), Some(6), t0, |s, n| reports.push((s, n))))
            .count();
        assert_eq!(admitted, 3);
        // Another source has its own budget.
        assert!(rl.admit(src(b"quiet"), None, t0, |_, _| {}));
        // Emergencies from a trusted source are exempt; an unprivileged
        // sender's claimed emergencies are not.
        assert!(rl.admit(src(b"flood"), Some(0), t0, |_, _| {}));
        let user = Key::Uid {
            uid: 1000,
            tag: b"x",
        };
        let (mut n, mut r) = (0, Vec::new());
        for _ in 0..10 {
            n += usize::from(rl.admit(user, Some(0), t0, |s, c| r.push((s, c))));
        }
        assert_eq!(n, 3);
        assert!(reports.is_empty());
        // The next window: the summary of the last one, and a fresh budget.
        let t1 = t0 + Duration::from_secs(10);
        assert!(rl.admit(src(b"flood"), Some(6), t1, |s, n| reports.push((s, n))));
        assert_eq!(reports, vec![("flood".to_owned(), 7)]);
    }

    #[test]
    fn fresh_tags_from_one_uid_share_its_budget() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Duration::from_secs(10), 100);
        let tags: Vec<String> = (0..10_000).map(|i| format!("fresh{i}")).collect();
        let admitted = tags
            .iter()
            .filter(|t| {
                let k = Key::Uid {
                    uid: 1000,
                    tag: t.as_bytes(),
                };
                rl.admit(k, Some(6), t0, |_, _| {})
            })
            .count();
        assert_eq!(admitted, 100);
        assert_eq!(rl.len(), 1, "one bucket for the uid, whatever the tags");
        // Another uid has its own budget.
        let other = Key::Uid {
            uid: 1001,
            tag: b"fresh0",
        };
        assert!(rl.admit(other, Some(6), t0, |_, _| {}));
        // The summary names the uid and its last tag.
        let mut reports = Reports::new();
        rl.expire(t0 + Duration::from_secs(10), |s, n| reports.push((s, n)));
        assert_eq!(
            reports,
            vec![("uid 1000 (last tag \"fresh9999\")".to_owned(), 9900)]
        );
    }

    #[test]
    fn root_and_fd_inputs_keep_a_budget_per_source() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Duration::from_secs(10), 2);
        for i in 0..100 {
            let tag = format!("tag{i}");
            assert!(rl.admit(src(tag.as_bytes()), None, t0, |_, _| {}));
            assert!(rl.admit(src(tag.as_bytes()), None, t0, |_, _| {}));
            assert!(!rl.admit(src(tag.as_bytes()), None, t0, |_, _| {}));
        }
        assert_eq!(rl.len(), 100);
        // Sources longer than MAX_KEY share their first MAX_KEY bytes' bucket.
        let a = [vec![b'a'; MAX_KEY], b"-one".to_vec()].concat();
        let b = [vec![b'a'; MAX_KEY], b"-two".to_vec()].concat();
        assert!(rl.admit(src(&a), None, t0, |_, _| {}));
        assert!(rl.admit(src(&b), None, t0, |_, _| {}));
        assert!(!rl.admit(src(&a), None, t0, |_, _| {}));
        assert!(rl.slots.iter().all(|b| b.key.len() <= MAX_KEY + 1));
    }

    #[test]
    fn expire_reports_only_suppressing_buckets_whose_window_ended() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Duration::from_secs(1), 1);
        rl.admit(src(b"a"), None, t0, |_, _| {});
        rl.admit(src(b"a"), None, t0, |_, _| {});
        rl.admit(src(b"b"), None, t0, |_, _| {});
        let later = t0 + Duration::from_millis(600);
        rl.admit(src(b"c"), None, later, |_, _| {});
        rl.admit(src(b"c"), None, later, |_, _| {});
        assert_eq!(rl.suppressing.len(), 2);
        let mut reports = Reports::new();
        rl.expire(t0 + Duration::from_millis(500), |s, n| reports.push((s, n)));
        assert!(reports.is_empty());
        rl.expire(t0 + Duration::from_millis(1200), |s, n| {
            reports.push((s, n))
        });
        assert_eq!(reports, vec![("a".to_owned(), 1)]);
        assert_eq!(rl.suppressing.len(), 1);
        rl.expire(t0 + Duration::from_secs(2), |s, n| reports.push((s, n)));
        assert_eq!(reports[1..], [("c".to_owned(), 1)]);
        assert!(rl.suppressing.is_empty());
        // A reported window is not reported again, and "a" starts afresh.
        rl.expire(t0 + Duration::from_secs(5), |s, n| reports.push((s, n)));
        assert_eq!(reports.len(), 2);
        assert!(rl.admit(src(b"a"), None, t0 + Duration::from_secs(5), |_, _| {}));
    }

    #[test]
    fn allowance_and_consume_for_batches() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Duration::from_secs(30), 100);
        assert_eq!(rl.allowance(src(b"s"), t0, |_, _| {}), 100);
        rl.consume(src(b"s"), 100, 5);
        assert_eq!(rl.allowance(src(b"s"), t0, |_, _| {}), 0);
        let mut reports = Reports::new();
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(
            rl.allowance(src(b"s"), t1, |s, n| reports.push((s, n))),
            100
        );
        assert_eq!(reports, vec![("s".to_owned(), 5)]);
        assert_eq!(
            RateLimiter::new(Duration::from_secs(30), 0).allowance(src(b"s"), t0, |_, _| {}),
            u32::MAX
        );
    }

    #[test]
    fn buckets_never_exceed_the_cap_and_the_least_recently_used_goes_first() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Duration::from_secs(60), 1);
        let name = |i: usize| format!("s{i}");
        for i in 0..MAX_BUCKETS {
            rl.admit(src(name(i).as_bytes()), None, t0, |_, _| {});
        }
        assert_eq!(rl.len(), MAX_BUCKETS);
        // s0 used again: s1 is now the least recently used; s1 has
        // suppressed records, and reports them as it is evicted.
        rl.admit(src(b"s0"), None, t0, |_, _| {});
        rl.admit(src(b"s1"), None, t0, |_, _| {});
        rl.admit(src(b"s2"), None, t0, |_, _| {});
        rl.admit(src(b"s0"), None, t0, |_, _| {});
        let order = lru(&rl);
        assert_eq!(order.len(), MAX_BUCKETS);
        assert_eq!(order[0], b"\0s0");
        assert_eq!(order[MAX_BUCKETS - 1], b"\0s3");
        let mut reports = Reports::new();
        for i in MAX_BUCKETS..MAX_BUCKETS + 2 {
            rl.admit(src(name(i).as_bytes()), None, t0, |s, n| {
                reports.push((s, n))
            });
        }
        // s3 and s4 went (no summary: nothing suppressed); s0, s1, s2 stay.
        assert!(reports.is_empty());
        let order = lru(&rl);
        assert!(!order.contains(&b"\0s3".to_vec()) && !order.contains(&b"\0s4".to_vec()));
        assert!(order.contains(&b"\0s1".to_vec()));
        // Fill with new keys until s1 (suppressed 1) is evicted: it reports.
        for i in MAX_BUCKETS + 2..3 * MAX_BUCKETS {
            rl.admit(src(name(i).as_bytes()), None, t0, |s, n| {
                reports.push((s, n))
            });
            assert!(rl.len() <= MAX_BUCKETS);
            assert!(rl.slots.len() <= MAX_BUCKETS);
        }
        assert_eq!(
            reports,
            vec![
                ("s1".to_owned(), 1),
                ("s2".to_owned(), 1),
                ("s0".to_owned(), 2)
            ]
        );
        assert!(rl.suppressing.is_empty());
        // The list and the index agree.
        assert_eq!(lru(&rl).len(), rl.len());
    }
}
