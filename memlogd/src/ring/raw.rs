//! The raw ring (`-ring-compress=false`): one preallocated byte arena of log
//! records, bounded by bytes and by count, oldest overwritten first.
//!
//! Records are stored contiguously and never straddle the end of the arena:
//! when one does not fit before the end, writing continues at offset 0
//! (records are evicted from the head until the space is free). Each record
//! carries its 64-bit sequence number, so a reader is just a [`Cursor`]
//! (sequence number + offset) into the arena. A cursor whose record was
//! overwritten is detected by comparing its sequence number with the oldest
//! one kept, which gives the exact number of records it lost.
//!
//! Record layout (little endian, 8-byte aligned):
//! `len u32 | source_len u16 | flags u16 | seq u64 | time_ns i64 | msg_len u32 | pri u8 | 0 u8 | meta_len u16 | source | msg | meta | pad`
//!
//! `pri` is the syslog priority (`facility << 3 | severity`) or [`NO_PRI`];
//! `meta` is optional metadata encoded by [`crate::meta`].
//!
//! Seeking to a sequence number ([`RawRing::seek`]) costs at most
//! [`INDEX_STRIDE`] record reads, whatever the ring's size: the ring keeps
//! the offset of every record whose sequence number is a multiple of
//! [`INDEX_STRIDE`] (a checkpoint), oldest first, dropped as those records
//! are evicted. Its memory is bounded by [`RawRing::index_bound`]: 8 bytes
//! per [`INDEX_STRIDE`] records held, at most `capacity / 256` bytes
//! (a record takes at least 32 bytes), allocated up front.

#[cfg(test)]
use super::record_size;
use super::{align, Cursor, Read, Record, ALIGN, FLAG_TRUNCATED, HDR, MAX_META, NO_PRI};
use std::collections::VecDeque;

/// Every this many sequence numbers the ring records where a record is.
pub const INDEX_STRIDE: u64 = 64;

/// Fixed-size record ring.
#[derive(Debug)]
pub struct RawRing {
    buf: Box<[u8]>,
    max_records: u64,
    head: usize,
    tail: usize,
    /// When `wrapped`, live data is `[head, end)` then `[0, tail)`.
    wrapped: bool,
    end: usize,
    first_seq: u64,
    next_seq: u64,
    bytes_used: usize,
    evicted: u64,
    /// Sequence number of the last record written at offset 0. It is the one
    /// record whose place a cursor cannot know in advance (the writer went
    /// back to the start instead of writing at the cursor's offset).
    at_zero: u64,
    /// Offsets of the checkpoints held: `checkpoints[i]` is where record
    /// `ckpt_first + i * INDEX_STRIDE` is.
    checkpoints: VecDeque<usize>,
    ckpt_first: u64,
}

/// Most checkpoints a ring of `cap` bytes and `max_records` records holds.
fn index_entries(cap: usize, max_records: u64) -> usize {
    let held = max_records.min((cap / HDR) as u64);
    (held / INDEX_STRIDE + 1) as usize
}

impl RawRing {
    /// A ring of `capacity` bytes (rounded down to a multiple of 8, at least
    /// 64) holding at most `max_records` records. The arena is allocated
    /// zeroed up front; the kernel backs it with pages only as they are used.
    pub fn new(capacity: usize, max_records: u64) -> RawRing {
        let cap = (capacity.max(64)) & !(ALIGN - 1);
        let max_records = max_records.max(1);
        RawRing {
            checkpoints: VecDeque::with_capacity(index_entries(cap, max_records)),
            ckpt_first: 0,
            buf: vec![0u8; cap].into_boxed_slice(),
            max_records,
            head: 0,
            tail: 0,
            wrapped: false,
            end: 0,
            first_seq: 0,
            next_seq: 0,
            bytes_used: 0,
            evicted: 0,
            at_zero: u64::MAX,
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
    /// Sequence number of the oldest record kept.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }
    /// Sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
    pub fn len(&self) -> u64 {
        self.next_seq - self.first_seq
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes of the arena holding live records.
    pub fn bytes_used(&self) -> usize {
        self.bytes_used
    }
    /// Records overwritten so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
    /// Checkpoints held now (at most [`RawRing::index_bound`]).
    pub fn index_len(&self) -> usize {
        self.checkpoints.len()
    }
    /// Most checkpoints this ring ever holds: one per [`INDEX_STRIDE`]
    /// records it can hold, plus one; 8 bytes each.
    pub fn index_bound(&self) -> usize {
        index_entries(self.buf.len(), self.max_records)
    }
    /// The largest `source.len() + msg.len()` a record may have in this ring.
    pub fn max_payload(&self) -> usize {
        self.buf.len() - HDR
    }

    fn rec_len(&self, off: usize) -> usize {
        u32::from_le_bytes([
            self.buf[off],
            self.buf[off + 1],
            self.buf[off + 2],
            self.buf[off + 3],
        ]) as usize
    }
    fn rec_seq(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.buf[off + 8..off + 16]);
        u64::from_le_bytes(b)
    }

    #[inline]
    fn evict_head(&mut self) {
        let len = self.rec_len(self.head);
        self.head += len;
        self.bytes_used -= len;
        self.first_seq += 1;
        self.evicted += 1;
        if self.ckpt_first < self.first_seq && self.checkpoints.pop_front().is_some() {
            self.ckpt_first += INDEX_STRIDE;
        }
        if self.first_seq == self.next_seq {
            self.head = 0;
            self.tail = 0;
            self.wrapped = false;
        } else if self.wrapped && self.head >= self.end {
            self.head = 0;
            self.wrapped = false;
        }
    }

    /// Appends a record and returns its sequence number, evicting the oldest
    /// records as needed. `source` and `msg` together must fit
    /// [`RawRing::max_payload`]; the message is cut to fit otherwise (and
    /// marked truncated).
    pub fn push(&mut self, time_ns: i64, source: &[u8], msg: &[u8], flags: u16) -> u64 {
        self.push_with(time_ns, source, msg, flags, NO_PRI, &[])
    }

    /// [`RawRing::push`] with a syslog priority and metadata. Metadata longer
    /// than [`MAX_META`] (or than the ring can hold) is dropped whole.
    pub fn push_with(
        &mut self,
        time_ns: i64,
        source: &[u8],
        msg: &[u8],
        mut flags: u16,
        pri: u8,
        meta: &[u8],
    ) -> u64 {
        let source = &source[..source.len().min(u16::MAX as usize).min(self.max_payload())];
        let meta = if meta.len() <= MAX_META && meta.len() + source.len() <= self.max_payload() / 2
        {
            meta
        } else {
            &[]
        };
        let room = self.max_payload() - source.len() - meta.len();
        let msg = if msg.len() > room {
            flags |= FLAG_TRUNCATED;
            &msg[..room]
        } else {
            msg
        };
        let need = align(HDR + source.len() + msg.len() + meta.len());
        while self.len() >= self.max_records {
            self.evict_head();
        }
        loop {
            if self.is_empty() {
                self.head = 0;
                self.tail = 0;
                self.wrapped = false;
            }
            if !self.wrapped {
                if self.tail + need <= self.buf.len() {
                    break;
                }
                // Continue at the start of the arena.
                self.end = self.tail;
                self.wrapped = true;
                self.tail = 0;
            } else if self.tail + need <= self.head {
                break;
            } else {
                self.evict_head();
            }
        }
        let off = self.tail;
        let seq = self.next_seq;
        if off == 0 {
            self.at_zero = seq;
        }
        if seq % INDEX_STRIDE == 0 {
            if self.checkpoints.is_empty() {
                self.ckpt_first = seq;
            }
            self.checkpoints.push_back(off);
        }
        let mut h = [0u8; HDR];
        h[0..4].copy_from_slice(&(need as u32).to_le_bytes());
        h[4..6].copy_from_slice(&(source.len() as u16).to_le_bytes());
        h[6..8].copy_from_slice(&flags.to_le_bytes());
        h[8..16].copy_from_slice(&seq.to_le_bytes());
        h[16..24].copy_from_slice(&time_ns.to_le_bytes());
        h[24..28].copy_from_slice(&(msg.len() as u32).to_le_bytes());
        h[28] = pri;
        h[30..32].copy_from_slice(&(meta.len() as u16).to_le_bytes());
        let b = &mut self.buf[off..off + need];
        let (hdr, body) = b.split_at_mut(HDR);
        hdr.copy_from_slice(&h);
        let (src, body) = body.split_at_mut(source.len());
        src.copy_from_slice(source);
        let (m, body) = body.split_at_mut(msg.len());
        m.copy_from_slice(msg);
        body[..meta.len()].copy_from_slice(meta);
        self.tail += need;
        self.bytes_used += need;
        self.next_seq += 1;
        seq
    }

    fn record_at(&self, off: usize) -> Record<'_> {
        let b = &self.buf[off..];
        let source_len = u16::from_le_bytes([b[4], b[5]]) as usize;
        let flags = u16::from_le_bytes([b[6], b[7]]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[16..24]);
        let msg_len = u32::from_le_bytes([b[24], b[25], b[26], b[27]]) as usize;
        let meta_len = u16::from_le_bytes([b[30], b[31]]) as usize;
        let m = HDR + source_len + msg_len;
        Record {
            seq: self.rec_seq(off),
            time_ns: i64::from_le_bytes(t),
            flags,
            pri: b[28],
            source: &b[HDR..HDR + source_len],
            msg: &b[HDR + source_len..m],
            meta: &b[m..m + meta_len],
        }
    }

    /// A cursor at the oldest record kept.
    pub fn oldest(&self) -> Cursor {
        Cursor {
            seq: self.first_seq,
            chunk: 0,
            off: self.head,
        }
    }

    /// A cursor after the newest record: it sees only records pushed later.
    pub fn newest(&self) -> Cursor {
        Cursor {
            seq: self.next_seq,
            chunk: 0,
            off: self.tail,
        }
    }

    /// A cursor at sequence number `seq`, clamped to what the ring holds:
    /// from the checkpoint at or before `seq` (or the oldest record, if
    /// that checkpoint was evicted), at most `INDEX_STRIDE - 1` reads.
    pub fn seek(&self, seq: u64) -> Cursor {
        self.seek_counting(seq).0
    }

    /// [`RawRing::seek`], and how many records it read on the way.
    pub(super) fn seek_counting(&self, seq: u64) -> (Cursor, usize) {
        if seq >= self.next_seq {
            return (self.newest(), 0);
        }
        if seq <= self.first_seq {
            return (self.oldest(), 0);
        }
        let base = seq - seq % INDEX_STRIDE;
        let checkpoint = base
            .checked_sub(self.ckpt_first)
            .and_then(|d| self.checkpoints.get((d / INDEX_STRIDE) as usize));
        let mut c = match checkpoint {
            Some(&off) => Cursor {
                seq: base,
                chunk: 0,
                off,
            },
            None => self.oldest(),
        };
        let mut steps = 0;
        while c.seq < seq {
            steps += 1;
            match self.read(c) {
                Read::Record(_, next) => c = next,
                _ => break,
            }
        }
        (c, steps)
    }

    /// Reads the record at `c`.
    pub fn read(&self, c: Cursor) -> Read<'_> {
        if c.seq < self.first_seq {
            return Read::Lost {
                lost: self.first_seq - c.seq,
                resume: self.oldest(),
            };
        }
        if c.seq >= self.next_seq {
            return Read::End;
        }
        // The record is at `c.off` unless the writer went back to offset 0
        // for it after the cursor was taken. Any later return to 0 would
        // have overwritten it, so `c.seq < first_seq` above.
        let off = if c.seq == self.at_zero { 0 } else { c.off };
        debug_assert_eq!(self.rec_seq(off), c.seq);
        let rec = self.record_at(off);
        let next = Cursor {
            seq: c.seq + 1,
            chunk: 0,
            off: off + self.rec_len(off),
        };
        Read::Record(rec, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(r: &RawRing, mut c: Cursor) -> (Vec<(u64, Vec<u8>)>, u64) {
        let mut out = Vec::new();
        let mut lost = 0;
        loop {
            match r.read(c) {
                Read::Record(rec, next) => {
                    out.push((rec.seq, rec.msg.to_vec()));
                    c = next;
                }
                Read::Lost { lost: n, resume } => {
                    lost += n;
                    c = resume;
                }
                Read::End => return (out, lost),
            }
        }
    }

    #[test]
    fn push_and_read_in_order_with_metadata() {
        let mut r = RawRing::new(4096, 100);
        assert!(r.is_empty());
        assert_eq!(r.push(5, b"src", b"one", 0), 0);
        assert_eq!(r.push(6, b"", b"", FLAG_TRUNCATED), 1);
        let Read::Record(a, c) = r.read(r.oldest()) else {
            panic!("record")
        };
        assert_eq!(
            (a.seq, a.time_ns, a.source, a.msg, a.flags),
            (0, 5, &b"src"[..], &b"one"[..], 0)
        );
        let Read::Record(b, c) = r.read(c) else {
            panic!("record")
        };
        assert_eq!(
            (b.seq, b.source, b.msg, b.flags),
            (1, &b""[..], &b""[..], FLAG_TRUNCATED)
        );
        assert_eq!(r.read(c), Read::End);
    }

    #[test]
    fn count_bound_evicts_oldest() {
        let mut r = RawRing::new(1 << 16, 3);
        for i in 0..10u64 {
            r.push(0, b"s", i.to_string().as_bytes(), 0);
        }
        assert_eq!(
            (r.first_seq(), r.next_seq(), r.len(), r.evicted()),
            (7, 10, 3, 7)
        );
        let (recs, lost) = collect(&r, r.oldest());
        assert_eq!(recs.iter().map(|x| x.0).collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!(lost, 0);
    }

    #[test]
    fn byte_bound_wraps_around_many_times() {
        let cap = 1024;
        let mut r = RawRing::new(cap, u64::MAX);
        let mut expect_first = 0;
        for i in 0..10_000u64 {
            let msg = vec![b'a' + (i % 26) as u8; (i as usize * 7) % 90];
            r.push(i as i64, b"src", &msg, 0);
            assert!(r.bytes_used() <= cap);
            let (recs, lost) = collect(&r, r.oldest());
            assert_eq!(lost, 0);
            assert_eq!(recs.last().map(|x| x.0), Some(i));
            assert!(recs.first().map(|x| x.0).unwrap_or(0) >= expect_first);
            expect_first = recs[0].0;
            for (seq, m) in &recs {
                assert_eq!(m.len(), (*seq as usize * 7) % 90, "record {seq} intact");
                assert!(m.iter().all(|&b| b == b'a' + (*seq % 26) as u8));
            }
            assert_eq!(recs.len() as u64, r.len());
        }
        assert!(r.evicted() > 9000);
    }

    #[test]
    fn overtaken_cursor_learns_exact_lost_count() {
        let mut r = RawRing::new(2048, 1000);
        for _ in 0..5 {
            r.push(0, b"s", b"0123456789", 0);
        }
        let c = r.oldest();
        let end = r.newest();
        for _ in 0..500 {
            r.push(0, b"s", b"0123456789", 0);
        }
        let first = r.first_seq();
        assert!(first > 5);
        let (recs, lost) = collect(&r, c);
        assert_eq!(lost, first);
        assert_eq!(recs.len() as u64 + lost, 505);
        // A cursor taken at the end before the writes also learns its loss.
        let (recs2, lost2) = collect(&r, end);
        assert_eq!(lost2, first - 5);
        assert_eq!(recs2.len(), recs.len());
    }

    #[test]
    fn end_cursor_survives_a_wrap() {
        // The next record may land at offset 0 instead of at the cursor's offset.
        let mut r = RawRing::new(256, 100);
        let rec = record_size(1, 40);
        let mut n = 0;
        while r.newest().off + 2 * rec <= 256 {
            r.push(0, b"s", &[b'x'; 40], 0);
            n += 1;
        }
        r.push(0, b"s", &[b'y'; 40], 0);
        let c = r.newest();
        r.push(0, b"s", b"after-wrap-0123456789012345678901234567", 0);
        let Read::Record(rec, _) = r.read(c) else {
            panic!("record after wrap")
        };
        assert_eq!(rec.seq, n + 1);
        assert_eq!(rec.msg, b"after-wrap-0123456789012345678901234567");
    }

    #[test]
    fn seek_finds_sequence_numbers() {
        let mut r = RawRing::new(1 << 14, 1000);
        for i in 0..300u64 {
            r.push(0, b"s", i.to_string().as_bytes(), 0);
        }
        let Read::Record(rec, _) = r.read(r.seek(r.first_seq() + 3)) else {
            panic!()
        };
        assert_eq!(rec.seq, r.first_seq() + 3);
        assert_eq!(r.seek(10_000), r.newest());
        assert_eq!(r.seek(0).seq, r.first_seq());
    }

    /// Every sequence number the ring holds, the linear way.
    fn walk(r: &RawRing) -> Vec<Cursor> {
        let mut out = Vec::new();
        let mut c = r.oldest();
        while let Read::Record(_, next) = r.read(c) {
            out.push(c);
            c = next;
        }
        out
    }

    #[test]
    fn seek_by_checkpoint_equals_a_linear_walk_after_many_wraps() {
        for (cap, max) in [(4096, u64::MAX), (1 << 14, 1000), (2048, 130), (64, 1)] {
            let mut r = RawRing::new(cap, max);
            for i in 0..20_000u64 {
                let msg = vec![b'a' + (i % 26) as u8; (i as usize * 13) % 150];
                r.push(i as i64, b"src", &msg, 0);
                assert!(r.index_len() <= r.index_bound(), "cap {cap}, max {max}");
                assert!(
                    r.index_len() as u64 <= r.len() / INDEX_STRIDE + 1,
                    "checkpoints beyond the records held"
                );
                if i % 997 != 0 && i > 300 {
                    continue;
                }
                let all = walk(&r);
                assert_eq!(all.len() as u64, r.len());
                for c in &all {
                    let (got, steps) = r.seek_counting(c.seq);
                    assert_eq!(got, *c, "seek {} (cap {cap}, max {max})", c.seq);
                    assert!(
                        steps < INDEX_STRIDE as usize,
                        "{steps} reads to seek {}",
                        c.seq
                    );
                    let Read::Record(rec, _) = r.read(r.seek(c.seq)) else {
                        panic!("record {}", c.seq)
                    };
                    assert_eq!(rec.seq, c.seq);
                    let len = ((c.seq as usize * 13) % 150).min(r.max_payload() - 3);
                    assert_eq!(rec.msg.len(), len);
                }
                assert_eq!(r.seek(0), r.oldest());
                assert_eq!(r.seek(r.next_seq()), r.newest());
                assert_eq!(r.seek(u64::MAX), r.newest());
            }
        }
    }

    #[test]
    fn index_memory_is_bounded_by_the_arena() {
        // 1 GiB of ring: at most one 8-byte checkpoint per 64 records of at
        // least 32 bytes, i.e. capacity / 256 bytes.
        let r = RawRing::new(64, u64::MAX);
        assert_eq!(r.index_bound(), 1);
        assert_eq!(index_entries(1 << 30, u64::MAX) * 8, (1 << 30) / 256 + 8);
        assert_eq!(index_entries(1 << 30, 5000), 5000 / 64 + 1);
        // A ring of tiny records, full: the index stays at its bound.
        let mut r = RawRing::new(1 << 16, u64::MAX);
        let cap = r.checkpoints.capacity();
        for _ in 0..100_000 {
            r.push(0, b"", b"", 0);
            assert!(r.index_len() <= r.index_bound());
        }
        assert_eq!(r.len(), (1 << 16) / 32);
        assert_eq!(r.checkpoints.capacity(), cap, "allocated once, never grown");
    }

    #[test]
    fn priority_and_metadata_are_kept() {
        let mut r = RawRing::new(4096, 10);
        r.push_with(1, b"sshd", b"accepted", 0, 4 << 3 | 6, b"\x01\x04\x00abcd");
        r.push(2, b"svc", b"plain", 0);
        let Read::Record(a, c) = r.read(r.oldest()) else {
            panic!()
        };
        assert_eq!(
            (a.pri, a.meta, a.msg),
            (38, &b"\x01\x04\x00abcd"[..], &b"accepted"[..])
        );
        let Read::Record(b, _) = r.read(c) else {
            panic!()
        };
        assert_eq!((b.pri, b.meta), (NO_PRI, &b""[..]));
    }

    #[test]
    fn oversized_record_is_cut_to_fit_and_marked() {
        let mut r = RawRing::new(128, 10);
        r.push(0, b"src", &[b'z'; 1000], 0);
        let Read::Record(rec, _) = r.read(r.oldest()) else {
            panic!()
        };
        assert_eq!(rec.msg.len(), 128 - HDR - 3);
        assert_eq!(rec.flags & FLAG_TRUNCATED, FLAG_TRUNCATED);
        r.push(0, b"src", b"small", 0);
        assert_eq!(r.len(), 1);
    }
}
