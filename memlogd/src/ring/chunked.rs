//! The compressed ring (`-ring-compress`, the default): the newest records
//! raw in an open chunk, older ones in sealed chunks compressed with LZ4.
//!
//! Records are appended to the open chunk, a buffer of [`ChunkRing::chunk_size`]
//! bytes. When the next record does not fit, the chunk is sealed: compressed
//! once (kept as it is if that does not make it smaller) and copied into the
//! arena, a byte ring of sealed chunks that never straddle its end, oldest
//! evicted whole first, as the raw ring does with records. A chunk is
//! described by the sequence number of its first record, the time of that
//! record, and where its bytes are; the records of a chunk are the sequence
//! numbers up to the next chunk's first.
//!
//! Memory: `capacity` bytes in all, all allocated up front: the open chunk,
//! the arena, and the descriptors of at most `capacity / 2048` sealed
//! chunks (a chunk of 64 KiB that compresses better than 32 to 1 still
//! costs a descriptor; the cap bounds them). Beyond `capacity`: the
//! compressor's output buffer (one chunk and a bit) and, shared by every
//! reader, the [`Scratch`] of [`SCRATCH_SLOTS`] decompressed chunks; with
//! the default chunk of 64 KiB, 196 KiB in all, whatever the number of
//! readers.
//!
//! Record layout in a chunk (unaligned, LEB128 varints): `source_len |
//! msg_len | meta_len | flags | pri u8 | time | source | msg | meta`, where
//! `time` is the zigzag difference from the chunk's first record. The
//! sequence number is not stored: it is the chunk's first plus the record's
//! place in it. A record takes 6 to 24 bytes more than its text, against 32
//! to 39 in the raw ring, and the text compresses several times over.
//!
//! Compression may be given a share of the thread's time
//! ([`ChunkRing::set_compress_share`]); a chunk sealed when it is spent (a
//! flood) is stored raw and marked pending, and
//! [`ChunkRing::recompress_step`] compresses it later, when the daemon is
//! idle, moving the chunks after it down so the arena stays packed: a
//! chunk's id and raw bytes never change, only where and how it is stored.
//!
//! `-max-lines` evicts single records: the oldest chunk then holds records
//! already gone, and its memory is freed when all of them are.
//!
//! Cursors: `(chunk id, offset in the chunk's raw bytes)`, chunk ids
//! increasing for the ring's life and never reused. The offset is only a
//! hint checked against the chunk's range of sequence numbers; a cursor
//! whose chunk was evicted or whose offset is not known ([`UNKNOWN`], from
//! [`ChunkRing::seek`] or [`ChunkRing::oldest`] in the middle of a chunk)
//! is found again by its sequence number. Follow readers read the open
//! chunk as it is, without decompressing anything.

use super::{Cursor, Read, Record, FLAG_TRUNCATED, MAX_META};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

/// CPU time this thread has used, in nanoseconds: what compression is
/// charged, and earns its share of (preemption on a busy machine counts
/// for neither).
fn thread_cpu_ns() -> f64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(0.0, |t| t.tv_sec() as f64 * 1e9 + t.tv_nsec() as f64)
}

/// A cursor's offset when only its sequence number is known.
pub const UNKNOWN: usize = usize::MAX;
/// Chunk size for rings of 2 MiB and more.
pub const MAX_CHUNK: usize = 64 << 10;
/// Smallest chunk [`ChunkRing::chunk_size_for`] picks.
pub const MIN_CHUNK: usize = 4 << 10;
/// Decompressed chunks a [`Scratch`] keeps.
pub const SCRATCH_SLOTS: usize = 2;
/// Most bytes one [`ChunkRing::recompress_step`] copies.
pub const STEP_MOVE: usize = 256 << 10;
/// Bytes of capacity per descriptor of a sealed chunk.
const BYTES_PER_CHUNK: usize = 2048;
/// Longest record header in a chunk: varints of a u16, a u32, a u16 (at
/// most 4096) and a u16, the priority byte, and a zigzag i64.
const MAX_HDR: usize = 3 + 5 + 2 + 3 + 1 + 10;

/// The share of its time the daemon's ring may spend compressing (see
/// [`ChunkRing::set_compress_share`]).
pub const DAEMON_COMPRESS_SHARE: f64 = 0.4;
/// Compression time granted after an idle wait, and the most saved up
/// (nanoseconds).
const BUDGET_CAP_NS: f64 = 10e6;

static NEXT_RING_ID: AtomicU64 = AtomicU64::new(1);

/// A token bucket of compression time.
#[derive(Debug)]
struct Budget {
    share: f64,
    tokens_ns: f64,
    /// [`thread_cpu_ns`] when tokens were last earned.
    last: f64,
}

/// A sealed chunk.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    first_seq: u64,
    base_time: i64,
    /// Where its bytes are in the arena.
    off: usize,
    stored_len: usize,
    raw_len: usize,
    /// False if compressing did not make it smaller (stored as it is).
    compressed: bool,
    /// Stored as it is because the budget was spent: compressed later by
    /// [`ChunkRing::recompress_step`].
    pending: bool,
}

/// The compressed ring.
#[derive(Debug)]
pub struct ChunkRing {
    /// Tells a [`Scratch`] which ring a chunk id belongs to.
    id: u64,
    capacity: usize,
    max_records: u64,
    open: Box<[u8]>,
    open_len: usize,
    open_first: u64,
    open_base_time: i64,
    /// Compressor output (not part of `capacity`).
    cbuf: Box<[u8]>,
    arena: Box<[u8]>,
    head: usize,
    tail: usize,
    /// When `wrapped`, sealed chunks are at `head` and up, then from the
    /// start of the arena up to `tail` (a chunk never straddles the end).
    wrapped: bool,
    sealed: VecDeque<Chunk>,
    max_chunks: usize,
    /// Id of `sealed[0]`; the open chunk's id is this plus `sealed.len()`.
    first_chunk_id: u64,
    first_seq: u64,
    next_seq: u64,
    evicted: u64,
    stored: usize,
    raw: usize,
    /// `None`: every chunk is compressed.
    budget: Option<Budget>,
    /// Chunks sealed without compressing: the budget was spent.
    skipped: u64,
    /// Sealed chunks held now that are `pending`.
    pending: usize,
    /// The recompression pass under way: the id of the next chunk it
    /// moves. Every chunk before it is packed against the one before; the
    /// hole, if any, is just before this chunk.
    pass: Option<u64>,
    /// Chunks compressed by [`ChunkRing::recompress_step`] so far.
    recompressed: u64,
}

fn put_varint(buf: &mut [u8], mut p: usize, mut v: u64) -> usize {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[p] = b;
            return p + 1;
        }
        buf[p] = b | 0x80;
        p += 1;
    }
}

fn get_varint(buf: &[u8], p: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*p];
        *p += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 || shift >= 63 {
            return v;
        }
        shift += 7;
    }
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// The record at `off` of a chunk's raw bytes, and its length there.
fn decode(b: &[u8], off: usize, seq: u64, base_time: i64) -> (Record<'_>, usize) {
    let mut p = off;
    let source_len = get_varint(b, &mut p) as usize;
    let msg_len = get_varint(b, &mut p) as usize;
    let meta_len = get_varint(b, &mut p) as usize;
    let flags = get_varint(b, &mut p) as u16;
    let pri = b[p];
    p += 1;
    let time_ns = base_time.wrapping_add(unzigzag(get_varint(b, &mut p)));
    let source = &b[p..p + source_len];
    p += source_len;
    let msg = &b[p..p + msg_len];
    p += msg_len;
    let meta = &b[p..p + meta_len];
    p += meta_len;
    let rec = Record {
        seq,
        time_ns,
        flags,
        pri,
        source,
        msg,
        meta,
    };
    (rec, p - off)
}

/// Offset of the `n`th record of a chunk's raw bytes.
fn skip(b: &[u8], n: u64) -> usize {
    let mut p = 0;
    for _ in 0..n {
        let mut q = p;
        let lens = [
            get_varint(b, &mut q),
            get_varint(b, &mut q),
            get_varint(b, &mut q),
        ];
        get_varint(b, &mut q);
        q += 1;
        get_varint(b, &mut q);
        p = q + lens.iter().sum::<u64>() as usize;
    }
    p
}

impl ChunkRing {
    /// The chunk size for a ring of `capacity` bytes whose records have up
    /// to `max_record` bytes of source, message and metadata: a 32nd of the
    /// ring, between [`MIN_CHUNK`] and [`MAX_CHUNK`] (LZ4 looks back 64 KiB
    /// at most), and at least one such record. `None` if that leaves fewer
    /// than 8 chunks in the ring: too few for compression to pay, the raw
    /// ring is better there.
    pub fn chunk_size_for(capacity: usize, max_record: usize) -> Option<usize> {
        let chunk = (capacity / 32)
            .clamp(MIN_CHUNK, MAX_CHUNK)
            .max(max_record.saturating_add(MAX_HDR));
        (chunk <= 1 << 30 && capacity / 8 >= chunk).then_some(chunk)
    }

    /// A ring of `capacity` bytes in all with chunks of `chunk` bytes (at
    /// least 64, at most 1 GiB); `capacity` is raised to two chunks and the
    /// descriptors if it is less.
    pub fn new(capacity: usize, max_records: u64, chunk: usize) -> ChunkRing {
        let chunk = chunk.clamp(64, 1 << 30);
        let max_chunks = (capacity / BYTES_PER_CHUNK).max(2);
        let desc = max_chunks * std::mem::size_of::<Chunk>();
        let capacity = capacity.max(2 * chunk + desc);
        ChunkRing {
            id: NEXT_RING_ID.fetch_add(1, Ordering::Relaxed),
            capacity,
            max_records: max_records.max(1),
            open: vec![0u8; chunk].into_boxed_slice(),
            open_len: 0,
            open_first: 0,
            open_base_time: 0,
            cbuf: vec![0u8; lz4_flex::block::get_maximum_output_size(chunk)].into_boxed_slice(),
            arena: vec![0u8; capacity - chunk - desc].into_boxed_slice(),
            head: 0,
            tail: 0,
            wrapped: false,
            sealed: VecDeque::with_capacity(max_chunks),
            max_chunks,
            first_chunk_id: 0,
            first_seq: 0,
            next_seq: 0,
            evicted: 0,
            stored: 0,
            raw: 0,
            budget: None,
            skipped: 0,
            pending: 0,
            pass: None,
            recompressed: 0,
        }
    }

    /// Compression may take at most `share` (0 to 1) of the CPU time of
    /// the thread that pushes, counted from this call, plus 10 ms after
    /// each [`ChunkRing::note_idle`]: a chunk sealed when that time is
    /// spent is kept as it is. So a flood of writes, which keeps the thread
    /// busy, is slowed by compression by at most that share (the ring then
    /// holds fewer records), and anything slower is compressed whole.
    /// Without this, every chunk is compressed whatever it costs.
    pub fn set_compress_share(&mut self, share: f64) {
        self.budget = Some(Budget {
            share: share.clamp(0.0, 1.0),
            tokens_ns: 0.0,
            last: thread_cpu_ns(),
        });
    }

    /// The thread had nothing to do for a while (the daemon's loop waited
    /// for events): compression may take 10 ms from now on, as much as a
    /// hundred 64 KiB chunks, whatever it took before.
    pub fn note_idle(&mut self) {
        if let Some(b) = &mut self.budget {
            b.tokens_ns = b.tokens_ns.max(BUDGET_CAP_NS);
        }
    }

    /// Chunks sealed without compressing because the share of time for it
    /// was spent.
    pub fn compress_skipped(&self) -> u64 {
        self.skipped
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// Bytes of the open chunk (and the most a sealed one holds raw).
    pub fn chunk_size(&self) -> usize {
        self.open.len()
    }
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
    /// Bytes holding records: the sealed chunks as stored, and the open
    /// chunk's records.
    pub fn stored_bytes(&self) -> usize {
        self.stored
    }
    /// What the same chunks take uncompressed.
    pub fn raw_bytes(&self) -> usize {
        self.raw
    }
    /// Sealed chunks held now (at most `capacity / 2048`).
    pub fn chunks(&self) -> usize {
        self.sealed.len()
    }
    pub fn max_payload(&self) -> usize {
        self.open.len() - MAX_HDR
    }
    fn open_id(&self) -> u64 {
        self.first_chunk_id + self.sealed.len() as u64
    }
    /// Sequence number after the last record of `sealed[i]`.
    fn end_of(&self, i: usize) -> u64 {
        self.sealed
            .get(i + 1)
            .map_or(self.open_first, |c| c.first_seq)
    }

    /// Drops the oldest sealed chunk, and with it the records of it still
    /// held.
    fn evict_chunk(&mut self) {
        let end = self.end_of(0);
        let Some(c) = self.sealed.pop_front() else {
            return;
        };
        self.first_chunk_id += 1;
        if end > self.first_seq {
            self.evicted += end - self.first_seq;
            self.first_seq = end;
        }
        self.stored -= c.stored_len;
        self.raw -= c.raw_len;
        self.pending -= usize::from(c.pending);
        match self.sealed.front() {
            None => {
                self.head = 0;
                self.tail = 0;
                self.wrapped = false;
            }
            Some(f) => {
                if self.wrapped && f.off < self.head {
                    self.wrapped = false;
                }
                self.head = f.off;
            }
        }
    }

    /// Drops sealed chunks all of whose records are gone (by `-max-lines`).
    fn drop_dead(&mut self) {
        while !self.sealed.is_empty() && self.end_of(0) <= self.first_seq {
            self.evict_chunk();
        }
    }

    /// Compresses the open chunk into the arena; it becomes the newest
    /// sealed chunk and the open chunk starts empty.
    fn seal(&mut self) {
        if self.open_len == 0 {
            return;
        }
        let raw = &self.open[..self.open_len];
        let now = self.budget.as_mut().map(|b| {
            let now = thread_cpu_ns();
            let earned = (now - b.last).max(0.0) * b.share;
            b.tokens_ns = (b.tokens_ns + earned).min(BUDGET_CAP_NS);
            b.last = now;
            now
        });
        let afford = self.budget.as_ref().map_or(true, |b| b.tokens_ns > 0.0);
        let packed = if afford {
            lz4_flex::block::compress_into(raw, &mut self.cbuf).ok()
        } else {
            self.skipped += 1;
            None
        };
        if let (Some(b), Some(t0), true) = (self.budget.as_mut(), now, afford) {
            b.tokens_ns -= (thread_cpu_ns() - t0).max(0.0);
        }
        let (compressed, len) = match packed {
            Some(n) if n < raw.len() => (true, n),
            _ => (false, raw.len()),
        };
        while self.sealed.len() >= self.max_chunks {
            self.evict_chunk();
        }
        loop {
            if self.sealed.is_empty() {
                self.head = 0;
                self.tail = 0;
                self.wrapped = false;
            }
            if !self.wrapped {
                if self.tail + len <= self.arena.len() {
                    break;
                }
                self.wrapped = true;
                self.tail = 0;
            } else if self.tail + len <= self.head {
                break;
            } else {
                self.evict_chunk();
            }
        }
        let off = self.tail;
        let src = if compressed {
            &self.cbuf[..len]
        } else {
            &self.open[..len]
        };
        self.arena[off..off + len].copy_from_slice(src);
        self.tail += len;
        self.sealed.push_back(Chunk {
            first_seq: self.open_first,
            base_time: self.open_base_time,
            off,
            stored_len: len,
            raw_len: self.open_len,
            compressed,
            pending: !afford,
        });
        self.pending += usize::from(!afford);
        self.stored = self.stored - self.open_len + len;
        self.open_len = 0;
        self.open_first = self.next_seq;
    }

    /// Whether [`ChunkRing::recompress_step`] has work to do: chunks kept
    /// as they were for lack of time, or a pass under way.
    pub fn recompress_pending(&self) -> bool {
        self.pending > 0 || self.pass.is_some()
    }

    /// Chunks compressed late, by [`ChunkRing::recompress_step`], so far.
    pub fn recompressed(&self) -> u64 {
        self.recompressed
    }

    /// Compresses the sealed chunks kept as they were because the budget
    /// was spent (a flood), and packs the arena so that the bytes saved
    /// hold records again: one pass from the oldest such chunk to the
    /// newest, each chunk compressed if it is one of them and moved down
    /// against the one before it (a chunk of the arena's second part joins
    /// the first if it fits there). Only where and how a chunk is stored
    /// changes: its id, its records and its raw bytes stay, so cursors and
    /// a [`Scratch`] stay valid.
    ///
    /// Bounded: one call compresses at most one chunk and copies at most
    /// [`STEP_MOVE`] bytes (with 64 KiB chunks of real log text some 50 µs
    /// on the 2-CPU VM), then returns whether work is left; the daemon
    /// calls it once per loop turn that found nothing else to do. The time it takes is not
    /// charged to the budget of [`ChunkRing::set_compress_share`]: it only
    /// runs when the loop is idle.
    pub fn recompress_step(&mut self) -> bool {
        if !self.recompress_pending() {
            return false;
        }
        let mut id = match self.pass {
            Some(id) if id >= self.first_chunk_id => id,
            _ => match self.sealed.iter().position(|c| c.pending) {
                Some(i) => self.first_chunk_id + i as u64,
                None => {
                    self.pass = None;
                    return false;
                }
            },
        };
        let mut packed_one = false;
        let mut moved = 0;
        loop {
            let i = (id - self.first_chunk_id) as usize;
            let Some(&c) = self.sealed.get(i) else {
                // The pass reached the open chunk.
                self.pass = None;
                return self.pending > 0;
            };
            if (c.pending && packed_one) || moved >= STEP_MOVE {
                self.pass = Some(id);
                return true;
            }
            let mut len = c.stored_len;
            let mut packed = false;
            if c.pending {
                packed_one = true;
                let raw = &self.arena[c.off..c.off + c.stored_len];
                if let Ok(n) = lz4_flex::block::compress_into(raw, &mut self.cbuf) {
                    if n < len {
                        (len, packed) = (n, true);
                    }
                }
            }
            // Against the chunk before it: in the same part of the arena
            // it is at or after that one's end; the first chunk of the
            // second part moves up to the end of the first if it fits
            // there (nothing is between that end and the arena's), else to
            // the arena's start (nothing is before it in its part).
            let dest = match i.checked_sub(1).map(|j| self.sealed[j]) {
                None => c.off,
                Some(p) if c.off >= p.off => p.off + p.stored_len,
                Some(p) if p.off + p.stored_len + len <= self.arena.len() => p.off + p.stored_len,
                Some(_) => 0,
            };
            if packed {
                self.arena[dest..dest + len].copy_from_slice(&self.cbuf[..len]);
            } else if dest != c.off {
                self.arena.copy_within(c.off..c.off + len, dest);
                moved += len;
            }
            let ch = &mut self.sealed[i];
            ch.off = dest;
            ch.stored_len = len;
            ch.compressed |= packed;
            if ch.pending {
                ch.pending = false;
                self.pending -= 1;
                self.recompressed += u64::from(packed);
            }
            self.stored = self.stored - c.stored_len + len;
            if i + 1 == self.sealed.len() {
                self.tail = dest + len;
                if dest >= self.head {
                    self.wrapped = false;
                }
            }
            id += 1;
        }
    }

    /// What is wrong with the arena's layout, if anything (for tests and
    /// the fuzz target): chunks in order, apart, within the arena, `head`
    /// and `tail` at the first's start and the last's end.
    #[doc(hidden)]
    pub fn layout_error(&self) -> Option<String> {
        let first = self.sealed.front()?;
        if first.off != self.head {
            return Some(format!(
                "head {} but oldest chunk at {}",
                self.head, first.off
            ));
        }
        let mut descents = 0;
        for (i, c) in self.sealed.iter().enumerate() {
            if c.off + c.stored_len > self.arena.len() {
                return Some(format!("chunk {i} past the arena"));
            }
            if c.pending && c.compressed {
                return Some(format!("chunk {i} pending but compressed"));
            }
            if let Some(p) = i.checked_sub(1).map(|j| self.sealed[j]) {
                if c.off < p.off {
                    descents += 1;
                } else if c.off < p.off + p.stored_len {
                    return Some(format!("chunk {i} overlaps the one before"));
                }
            }
        }
        let last = self.sealed[self.sealed.len() - 1];
        if last.off + last.stored_len != self.tail {
            return Some(format!(
                "tail {} but newest chunk ends at {}",
                self.tail,
                last.off + last.stored_len
            ));
        }
        if descents != usize::from(self.wrapped) || (self.wrapped && self.tail > self.head) {
            return Some(format!("{descents} wraps, wrapped {}", self.wrapped));
        }
        let pending = self.sealed.iter().filter(|c| c.pending).count();
        (pending != self.pending).then(|| format!("{pending} pending, counted {}", self.pending))
    }

    /// Evicts the oldest record (`-max-lines`).
    fn evict_record(&mut self) {
        self.first_seq += 1;
        self.evicted += 1;
        self.drop_dead();
        if self.first_seq == self.next_seq {
            // Empty: the open chunk starts again, under a new id (a cursor
            // into the old one must not read the new bytes at its offset).
            self.stored -= self.open_len;
            self.raw -= self.open_len;
            self.open_len = 0;
            self.open_first = self.next_seq;
            self.first_chunk_id += 1;
        }
    }

    /// Appends a record; cut as [`super::Ring::push_with`] says.
    pub fn push_with(
        &mut self,
        time_ns: i64,
        source: &[u8],
        msg: &[u8],
        mut flags: u16,
        pri: u8,
        meta: &[u8],
    ) -> u64 {
        let max_payload = self.max_payload();
        let source = &source[..source.len().min(u16::MAX as usize).min(max_payload)];
        let meta = if meta.len() <= MAX_META && meta.len() + source.len() <= max_payload / 2 {
            meta
        } else {
            &[]
        };
        let room = max_payload - source.len() - meta.len();
        let msg = if msg.len() > room {
            flags |= FLAG_TRUNCATED;
            &msg[..room]
        } else {
            msg
        };
        while self.next_seq - self.first_seq >= self.max_records {
            self.evict_record();
        }
        let base = if self.open_len == 0 {
            time_ns
        } else {
            self.open_base_time
        };
        let dt = zigzag(time_ns.wrapping_sub(base));
        let hdr = varint_len(source.len() as u64)
            + varint_len(msg.len() as u64)
            + varint_len(meta.len() as u64)
            + varint_len(u64::from(flags))
            + 1
            + varint_len(dt);
        let need = hdr + source.len() + msg.len() + meta.len();
        if self.open_len + need > self.open.len() {
            self.seal();
        }
        let (base, dt) = if self.open_len == 0 {
            self.open_base_time = time_ns;
            self.open_first = self.next_seq;
            (time_ns, 0)
        } else {
            (self.open_base_time, dt)
        };
        debug_assert_eq!(base, self.open_base_time);
        let b = &mut self.open;
        let mut p = self.open_len;
        p = put_varint(b, p, source.len() as u64);
        p = put_varint(b, p, msg.len() as u64);
        p = put_varint(b, p, meta.len() as u64);
        p = put_varint(b, p, u64::from(flags));
        b[p] = pri;
        p = put_varint(b, p + 1, dt);
        for part in [source, msg, meta] {
            b[p..p + part.len()].copy_from_slice(part);
            p += part.len();
        }
        let len = p - self.open_len;
        self.open_len = p;
        self.stored += len;
        self.raw += len;
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The chunk holding `seq` (which the ring holds) and its first record.
    fn chunk_of(&self, seq: u64) -> (u64, u64) {
        if seq >= self.open_first {
            return (self.open_id(), self.open_first);
        }
        let i = self
            .sealed
            .partition_point(|c| c.first_seq <= seq)
            .saturating_sub(1);
        (self.first_chunk_id + i as u64, self.sealed[i].first_seq)
    }

    fn cursor_at(&self, seq: u64) -> Cursor {
        let (chunk, first) = self.chunk_of(seq);
        Cursor {
            seq,
            chunk,
            off: if seq == first { 0 } else { UNKNOWN },
        }
    }

    pub fn oldest(&self) -> Cursor {
        if self.first_seq == self.next_seq {
            return self.newest();
        }
        self.cursor_at(self.first_seq)
    }

    pub fn newest(&self) -> Cursor {
        Cursor {
            seq: self.next_seq,
            chunk: self.open_id(),
            off: self.open_len,
        }
    }

    /// A cursor at `seq`, clamped to what the ring holds; its first read
    /// finds the record in its chunk.
    pub fn seek(&self, seq: u64) -> Cursor {
        if seq >= self.next_seq {
            return self.newest();
        }
        if seq <= self.first_seq {
            return self.oldest();
        }
        self.cursor_at(seq)
    }

    /// Where `c` reads from: chunk id and offset (or [`UNKNOWN`]). The
    /// cursor's own place if the record is there, else found by sequence
    /// number (`c.seq` is held).
    fn locate(&self, c: Cursor) -> (u64, usize) {
        let open = self.open_id();
        if c.chunk >= self.first_chunk_id && c.chunk <= open {
            let i = (c.chunk - self.first_chunk_id) as usize;
            let (first, end, len) = match self.sealed.get(i) {
                Some(ch) => (ch.first_seq, self.end_of(i), ch.raw_len),
                None => (self.open_first, self.next_seq, self.open_len),
            };
            if (first..end).contains(&c.seq) && (c.off < len || c.off == UNKNOWN) {
                return (c.chunk, c.off);
            }
        }
        let (chunk, first) = self.chunk_of(c.seq);
        (chunk, if c.seq == first { 0 } else { UNKNOWN })
    }

    pub fn read<'a>(&'a self, c: Cursor, scratch: &'a mut Scratch) -> Read<'a> {
        if c.seq < self.first_seq {
            return Read::Lost {
                lost: self.first_seq - c.seq,
                resume: self.oldest(),
            };
        }
        if c.seq >= self.next_seq {
            return Read::End;
        }
        let (chunk, off) = self.locate(c);
        let i = (chunk - self.first_chunk_id) as usize;
        let (bytes, first, base_time) = match self.sealed.get(i) {
            None => (
                &self.open[..self.open_len],
                self.open_first,
                self.open_base_time,
            ),
            Some(ch) => {
                let stored = &self.arena[ch.off..ch.off + ch.stored_len];
                let bytes = if ch.compressed {
                    scratch.get(self.id, chunk, stored, ch.raw_len)
                } else {
                    Some(stored)
                };
                let Some(bytes) = bytes else {
                    // Cannot happen (the ring compressed these bytes
                    // itself); if it did, the chunk's records are lost,
                    // said so, and reading goes on after them.
                    debug_assert!(false, "chunk {chunk} does not decompress");
                    let end = self.end_of(i);
                    return Read::Lost {
                        lost: end - c.seq,
                        resume: Cursor {
                            seq: end,
                            chunk: chunk + 1,
                            off: 0,
                        },
                    };
                };
                (bytes, ch.first_seq, ch.base_time)
            }
        };
        let off = if off == UNKNOWN {
            skip(bytes, c.seq - first)
        } else {
            off
        };
        let (rec, len) = decode(bytes, off, c.seq, base_time);
        Read::Record(
            rec,
            Cursor {
                seq: c.seq + 1,
                chunk,
                off: off + len,
            },
        )
    }
}

/// Decompressed chunks, shared by every reader of a daemon: the last
/// [`SCRATCH_SLOTS`] chunks read, so that a reader reading a chunk through
/// decompresses it once, and memory does not grow with the number of
/// readers. Buffers are allocated on first use, the second only when two
/// readers take turns (the chunk just put out of the one slot is read
/// again): one pass alone, or passes one after another, need one.
#[derive(Debug, Default)]
pub struct Scratch {
    chunk: usize,
    slots: Vec<Slot>,
    clock: u64,
    decompressions: u64,
    /// (ring id, chunk id) last put out of a slot.
    victim: (u64, u64),
}

#[derive(Debug)]
struct Slot {
    /// (ring id, chunk id) held, or ring id 0 for none.
    ring: u64,
    id: u64,
    len: usize,
    used: u64,
    buf: Box<[u8]>,
}

impl Scratch {
    /// A scratch for chunks of `chunk` bytes (a larger one grows a slot).
    pub fn new(chunk: usize) -> Scratch {
        Scratch {
            chunk,
            ..Scratch::default()
        }
    }

    /// Chunks decompressed so far.
    pub fn decompressions(&self) -> u64 {
        self.decompressions
    }

    /// Bytes of the buffers allocated now (at most [`SCRATCH_SLOTS`]
    /// chunks).
    pub fn allocated(&self) -> usize {
        self.slots.iter().map(|s| s.buf.len()).sum()
    }

    fn get(&mut self, ring: u64, id: u64, stored: &[u8], raw_len: usize) -> Option<&[u8]> {
        self.clock += 1;
        let i = match self.slots.iter().position(|s| s.ring == ring && s.id == id) {
            Some(i) => i,
            None => {
                // One pass (one reader) needs one slot; another slot only
                // once two readers take turns: the chunk just put out of
                // the one slot is wanted again.
                let grow = self.slots.is_empty() || self.victim == (ring, id);
                let i = if self.slots.len() < SCRATCH_SLOTS && grow {
                    self.slots.push(Slot {
                        ring: 0,
                        id: 0,
                        len: 0,
                        used: 0,
                        buf: vec![0u8; self.chunk.max(raw_len)].into_boxed_slice(),
                    });
                    self.slots.len() - 1
                } else {
                    self.slots
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, s)| s.used)
                        .map_or(0, |(i, _)| i)
                };
                let s = &mut self.slots[i];
                if s.ring != 0 {
                    self.victim = (s.ring, s.id);
                }
                s.ring = 0;
                if s.buf.len() < raw_len {
                    s.buf = vec![0u8; raw_len].into_boxed_slice();
                }
                self.decompressions += 1;
                match lz4_flex::block::decompress_into(stored, &mut s.buf[..raw_len]) {
                    Ok(n) if n == raw_len => {}
                    _ => return None,
                }
                (s.ring, s.id, s.len) = (ring, id, raw_len);
                i
            }
        };
        let s = &mut self.slots[i];
        s.used = self.clock;
        Some(&s.buf[..s.len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::NO_PRI;

    type Rec = (u64, i64, Vec<u8>, Vec<u8>);

    fn collect(r: &ChunkRing, s: &mut Scratch, mut c: Cursor) -> (Vec<Rec>, u64) {
        let mut out = Vec::new();
        let mut lost = 0;
        loop {
            match r.read(c, s) {
                Read::Record(rec, next) => {
                    assert_eq!(next.seq, rec.seq + 1);
                    out.push((rec.seq, rec.time_ns, rec.source.to_vec(), rec.msg.to_vec()));
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

    /// A line of log-like text: it compresses as such text does.
    fn line(i: u64) -> Vec<u8> {
        let pkgs = ["libc6", "openssl", "systemd", "libssl3", "tzdata", "bash"];
        format!(
            "2026-12-02 06:{:02}:{:02} status {} {}:amd64 {}.{}-{}",
            i / 60 % 60,
            i % 60,
            ["unpacked", "half-configured", "installed"][(i % 3) as usize],
            pkgs[(i / 3 % 6) as usize],
            i % 7,
            i % 13,
            i % 5
        )
        .into_bytes()
    }

    fn check(r: &ChunkRing) {
        assert_eq!(r.layout_error(), None);
        let sealed: usize = r.sealed.iter().map(|c| c.stored_len).sum();
        assert_eq!(r.stored_bytes(), sealed + r.open_len);
        let raw: usize = r.sealed.iter().map(|c| c.raw_len).sum();
        assert_eq!(r.raw_bytes(), raw + r.open_len);
        assert!(r.sealed.len() <= r.max_chunks);
        assert!(sealed <= r.arena.len());
        let desc = r.max_chunks * std::mem::size_of::<Chunk>();
        assert_eq!(r.arena.len() + r.open.len() + desc, r.capacity());
        assert!(r.sealed.capacity() <= r.max_chunks.next_power_of_two());
        if let Some(c) = r.sealed.front() {
            assert!(c.first_seq <= r.first_seq.max(c.first_seq));
            assert!(r.end_of(0) > r.first_seq, "a dead chunk is kept");
        }
    }

    #[test]
    fn holds_several_times_the_raw_ring_and_reads_back_in_order() {
        let cap = 1 << 20;
        let chunk = ChunkRing::chunk_size_for(cap, 2048).expect("chunked");
        assert_eq!(chunk, 32 << 10);
        let mut r = ChunkRing::new(cap, u64::MAX, chunk);
        let mut raw = crate::ring::Ring::new(cap, u64::MAX);
        for i in 0..200_000u64 {
            let t = 1_764_000_000_000_000_000 + i as i64 * 1_234_567;
            assert_eq!(r.push_with(t, b"dpkg", &line(i), 0, NO_PRI, b""), i);
            raw.push(t, b"dpkg", &line(i), 0);
            if i % 20_000 == 0 {
                check(&r);
            }
        }
        check(&r);
        let held = r.next_seq() - r.first_seq();
        assert!(r.evicted() > 0 && r.evicted() + held == 200_000);
        assert!(
            held > 3 * raw.len(),
            "{held} records against {} raw",
            raw.len()
        );
        assert!(r.raw_bytes() > 2 * r.stored_bytes());
        let mut s = Scratch::new(chunk);
        let (recs, lost) = collect(&r, &mut s, r.oldest());
        assert_eq!(lost, 0);
        assert_eq!(recs.len() as u64, held);
        for (seq, t, src, msg) in &recs {
            assert_eq!(*t, 1_764_000_000_000_000_000 + *seq as i64 * 1_234_567);
            assert_eq!((&src[..], msg), (&b"dpkg"[..], &line(*seq)));
        }
        // One pass decompresses each sealed chunk once.
        assert_eq!(s.decompressions(), r.chunks() as u64);
        assert!(s.allocated() <= SCRATCH_SLOTS * chunk);
    }

    #[test]
    fn count_bound_evicts_single_records_and_frees_dead_chunks() {
        for max in [1, 3, 50, 1000] {
            // Big enough that the count is the bound.
            let mut r = ChunkRing::new(1 << 20, max, 1024);
            let mut s = Scratch::new(1024);
            for i in 0..5000u64 {
                r.push_with(i as i64, b"s", &line(i), 0, NO_PRI, b"");
                assert_eq!(r.next_seq() - r.first_seq(), (i + 1).min(max));
                check(&r);
                if i % 331 == 0 || i > 4990 {
                    let (recs, lost) = collect(&r, &mut s, r.oldest());
                    assert_eq!(lost, 0);
                    assert_eq!(recs.first().map(|x| x.0), Some(r.first_seq()));
                    assert_eq!(recs.len() as u64, (i + 1).min(max));
                    for (seq, t, _, msg) in recs {
                        assert_eq!((t, msg), (seq as i64, line(seq)));
                    }
                }
            }
            assert_eq!(r.evicted(), 5000 - max);
        }
    }

    #[test]
    fn overtaken_cursors_learn_the_exact_count_lost() {
        let mut r = ChunkRing::new(8192, u64::MAX, 512);
        let mut s = Scratch::new(512);
        for i in 0..10 {
            r.push_with(0, b"s", &line(i), 0, NO_PRI, b"");
        }
        let old = r.oldest();
        let end = r.newest();
        let mid = r.seek(5);
        for i in 10..5000 {
            r.push_with(0, b"s", &line(i), 0, NO_PRI, b"");
        }
        let first = r.first_seq();
        assert!(first > 10);
        for (c, from) in [(old, 0), (end, 10), (mid, 5)] {
            let (recs, lost) = collect(&r, &mut s, c);
            assert_eq!(lost, first - from);
            assert_eq!(recs.len() as u64 + lost + from, 5000);
        }
    }

    #[test]
    fn cursors_survive_sealing_and_seek_equals_a_walk() {
        let mut r = ChunkRing::new(16 << 10, u64::MAX, 700);
        let mut s = Scratch::new(700);
        let mut ends = Vec::new();
        for i in 0..3000u64 {
            ends.push(r.newest());
            let msg = vec![b'a' + (i % 26) as u8; (i as usize * 13) % 150];
            r.push_with(
                i as i64 * 3 - 4000,
                b"src",
                &msg,
                (i % 4) as u16,
                i as u8,
                b"m",
            );
            // Every end cursor taken before reads its record, or its loss.
            if i % 97 == 0 {
                for c in &ends {
                    match r.read(*c, &mut s) {
                        Read::Record(rec, _) => {
                            assert_eq!(rec.seq, c.seq);
                            assert_eq!(rec.time_ns, c.seq as i64 * 3 - 4000);
                            assert_eq!(rec.msg.len(), (c.seq as usize * 13) % 150);
                            assert_eq!((rec.flags, rec.pri), ((c.seq % 4) as u16, c.seq as u8));
                        }
                        Read::Lost { lost, .. } => assert_eq!(lost, r.first_seq() - c.seq),
                        Read::End => panic!("end before the newest"),
                    }
                }
                let mut walk = Vec::new();
                let mut c = r.oldest();
                while let Read::Record(_, next) = r.read(c, &mut s) {
                    walk.push(c);
                    c = next;
                }
                assert_eq!(walk.len() as u64, r.next_seq() - r.first_seq());
                for w in &walk {
                    let Read::Record(a, an) = r.read(r.seek(w.seq), &mut s) else {
                        panic!("seek {}", w.seq)
                    };
                    let a = (a.seq, a.msg.to_vec());
                    let Read::Record(b, bn) = r.read(*w, &mut s) else {
                        panic!()
                    };
                    assert_eq!(a, (b.seq, b.msg.to_vec()));
                    assert_eq!(an, bn);
                }
                assert_eq!(r.seek(0), r.oldest());
                assert_eq!(r.seek(u64::MAX), r.newest());
            }
        }
    }

    #[test]
    fn incompressible_chunks_are_stored_as_they_are() {
        let mut r = ChunkRing::new(32 << 10, u64::MAX, 1024);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut msgs = Vec::new();
        for _ in 0..100 {
            let m: Vec<u8> = (0..900)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            r.push_with(0, b"", &m, 0, NO_PRI, b"");
            msgs.push(m);
        }
        check(&r);
        assert!(r.sealed.iter().any(|c| !c.compressed));
        let mut s = Scratch::new(1024);
        let (recs, _) = collect(&r, &mut s, r.oldest());
        for (seq, _, _, m) in recs {
            assert_eq!(m, msgs[seq as usize]);
        }
    }

    #[test]
    fn oversized_records_are_cut_to_the_chunk_and_marked() {
        let mut r = ChunkRing::new(4096, 10, 256);
        let mut s = Scratch::new(256);
        r.push_with(0, b"src", &[b'z'; 1000], 0, NO_PRI, &[1; 100]);
        let Read::Record(rec, _) = r.read(r.oldest(), &mut s) else {
            panic!()
        };
        assert_eq!(
            rec.msg.len() + rec.source.len() + rec.meta.len(),
            256 - MAX_HDR
        );
        assert_eq!(rec.flags & FLAG_TRUNCATED, FLAG_TRUNCATED);
        assert_eq!(rec.meta.len(), 100);
    }

    #[test]
    fn a_full_descriptor_table_evicts_the_oldest_chunk() {
        // Chunks of zeros compress some 250 to 1; the descriptors run out
        // before the arena does.
        let mut r = ChunkRing::new(64 << 10, u64::MAX, 8192);
        for i in 0..20_000u64 {
            r.push_with(0, b"", &[0; 200], 0, NO_PRI, b"");
            assert!(r.chunks() <= 32, "{i}");
        }
        check(&r);
        assert_eq!(r.chunks(), 32);
        assert!(r.stored_bytes() < r.arena.len() / 2);
    }

    #[test]
    fn scratch_keeps_the_last_chunks_and_tells_rings_apart() {
        let mk = || {
            let mut r = ChunkRing::new(64 << 10, u64::MAX, 1024);
            for i in 0..2000 {
                r.push_with(0, b"s", &line(i), 0, NO_PRI, b"");
            }
            r
        };
        let (a, b) = (mk(), mk());
        let mut s = Scratch::new(1024);
        let c = a.oldest();
        assert!(matches!(a.read(c, &mut s), Read::Record(..)));
        assert!(matches!(a.read(c, &mut s), Read::Record(..)));
        assert_eq!(s.decompressions(), 1);
        // The same chunk id of another ring is another chunk.
        assert!(matches!(b.read(b.oldest(), &mut s), Read::Record(..)));
        assert_eq!(s.decompressions(), 2);
        // Readers of both taking turns: a second slot, then both held.
        assert!(matches!(a.read(c, &mut s), Read::Record(..)));
        assert_eq!(s.decompressions(), 3);
        for _ in 0..3 {
            assert!(matches!(b.read(b.oldest(), &mut s), Read::Record(..)));
            assert!(matches!(a.read(c, &mut s), Read::Record(..)));
        }
        assert_eq!(s.decompressions(), 3);
        assert_eq!(s.allocated(), 2 * 1024);
    }

    #[test]
    fn one_pass_takes_one_scratch_slot_and_a_reader_behind_it_a_second() {
        let mut r = ChunkRing::new(64 << 10, u64::MAX, 1024);
        for i in 0..2000 {
            r.push_with(0, b"s", &line(i), 0, NO_PRI, b"");
        }
        let mut s = Scratch::new(1024);
        let (recs, _) = collect(&r, &mut s, r.oldest());
        let held = r.next_seq() - r.first_seq();
        assert_eq!(recs.len() as u64, held);
        assert!(r.chunks() > 4);
        assert_eq!(s.decompressions(), r.chunks() as u64);
        assert_eq!(s.allocated(), 1024);
        // Another pass after it needs no more.
        collect(&r, &mut s, r.oldest());
        assert_eq!(s.allocated(), 1024);
        // Two readers taking turns: a second slot, and then each
        // decompresses each chunk once.
        let (mut a, mut b) = (r.oldest(), r.seek(r.first_seq() + held / 2));
        let before = s.decompressions();
        loop {
            let mut moved = false;
            for c in [&mut a, &mut b] {
                if let Read::Record(_, next) = r.read(*c, &mut s) {
                    (*c, moved) = (next, true);
                }
            }
            if !moved {
                break;
            }
        }
        assert_eq!(s.allocated(), 2 * 1024);
        assert!(s.decompressions() - before <= r.chunks() as u64 * 3 / 2 + 2);
    }

    #[test]
    fn a_spent_compression_budget_keeps_chunks_as_they_are() {
        let mut r = ChunkRing::new(1 << 20, u64::MAX, 4096);
        r.set_compress_share(0.0);
        for i in 0..5000 {
            r.push_with(0, b"s", &line(i), 0, NO_PRI, b"");
        }
        check(&r);
        assert!(r.chunks() > 10);
        assert_eq!(r.compress_skipped(), r.chunks() as u64);
        assert!(r.sealed.iter().all(|c| !c.compressed));
        assert_eq!(r.raw_bytes(), r.stored_bytes());
        let mut s = Scratch::new(4096);
        let (recs, _) = collect(&r, &mut s, r.oldest());
        assert_eq!(recs.len(), 5000);
        assert_eq!(s.decompressions(), 0);
        // After an idle wait, it compresses again.
        let mut r = ChunkRing::new(1 << 20, u64::MAX, 4096);
        r.set_compress_share(0.0);
        r.note_idle();
        for i in 0..30 {
            r.push_with(0, b"s", &line(i), 0, NO_PRI, b"");
        }
        r.seal();
        assert_eq!((r.compress_skipped(), r.chunks()), (0, 1));
        assert!(r.sealed[0].compressed);
    }

    /// Records held by a ring of 1 MiB of `line` text: every chunk
    /// compressed as it is sealed, none (a flood), none then recompressed.
    #[test]
    fn a_flood_left_raw_is_compressed_and_packed_later() {
        let cap = 1 << 20;
        let chunk = 32 << 10;
        let fill = |r: &mut ChunkRing, from: u64, n: u64| {
            for i in from..from + n {
                r.push_with(i as i64, b"dpkg", &line(i), 0, NO_PRI, b"");
            }
        };
        let mut all = ChunkRing::new(cap, u64::MAX, chunk);
        fill(&mut all, 0, 200_000);
        let mut r = ChunkRing::new(cap, u64::MAX, chunk);
        r.set_compress_share(0.0);
        fill(&mut r, 0, 200_000);
        check(&r);
        let flood = r.next_seq() - r.first_seq();
        assert!(r.chunks() > 10 && r.recompress_pending());
        assert!(flood * 2 < all.next_seq() - all.first_seq());
        // Cursors taken before, and a scratch holding chunks read before.
        let mut s = Scratch::new(chunk);
        let before = collect(&r, &mut s, r.oldest());
        let mid = r.seek(r.first_seq() + flood / 2);
        let end = r.newest();
        let mut steps = 0;
        while r.recompress_step() {
            steps += 1;
            check(&r);
            assert!(steps < 10_000);
        }
        check(&r);
        // One chunk compressed per step at most.
        assert!(
            steps + 1 >= r.chunks(),
            "{steps} steps, {} chunks",
            r.chunks()
        );
        assert_eq!(r.recompressed(), r.chunks() as u64);
        assert!(!r.recompress_pending());
        assert!(r.stored_bytes() * 3 < r.raw_bytes());
        // The same records, from the same cursors, and the scratch too.
        assert_eq!(collect(&r, &mut s, r.oldest()), before);
        assert_eq!(collect(&r, &mut Scratch::new(chunk), r.oldest()), before);
        let (tail, _) = collect(&r, &mut s, mid);
        assert_eq!(tail[..], before.0[(flood / 2) as usize..]);
        assert_eq!(r.read(end, &mut s), Read::End);
        // The space saved holds records: pushing on (compressed at seal
        // time now) ends up holding what the ring compressing all along
        // holds, and nothing before was evicted meanwhile.
        r.budget = None;
        let first = r.first_seq();
        fill(&mut r, 200_000, 5_000);
        assert_eq!(r.first_seq(), first, "evicted while the arena had room");
        fill(&mut r, 205_000, 200_000);
        fill(&mut all, 200_000, 205_000);
        check(&r);
        let (a, b) = (
            r.next_seq() - r.first_seq(),
            all.next_seq() - all.first_seq(),
        );
        assert!(a * 10 >= b * 9, "{a} held against {b}");
    }

    /// Recompression steps between pushes, evictions (by bytes and by
    /// count) and reads from cursors taken at any time, against a model.
    #[test]
    fn recompression_under_pushes_and_reads_matches_a_model() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut late = 0;
        for round in 0..40 {
            let chunk = 200 + rnd(900) as usize;
            let max = if round % 3 == 0 {
                1 + rnd(300)
            } else {
                u64::MAX
            };
            let mut r = ChunkRing::new(8 * chunk + rnd(20_000) as usize, max, chunk);
            r.set_compress_share(0.0);
            let mut s = Scratch::new(chunk);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut first = 0u64;
            let mut cursors: Vec<Cursor> = Vec::new();
            for _ in 0..3000 {
                match rnd(10) {
                    0..=4 => {
                        let i = rnd(1000);
                        let mut m = line(i);
                        m.truncate(rnd(m.len() as u64 + 1) as usize);
                        r.push_with(0, b"s", &m, 0, NO_PRI, b"");
                        model.push_back(m);
                    }
                    5 => {
                        r.recompress_step();
                    }
                    6 => cursors.push(match rnd(3) {
                        0 => r.oldest(),
                        1 => r.newest(),
                        _ => r.seek(first + rnd(model.len() as u64 + 2)),
                    }),
                    7 => r.set_compress_share(if rnd(2) == 0 { 0.0 } else { 1.0 }),
                    _ => {
                        if !cursors.is_empty() {
                            let k = rnd(cursors.len() as u64) as usize;
                            match r.read(cursors[k], &mut s) {
                                Read::Record(rec, next) => {
                                    assert_eq!(
                                        rec.msg,
                                        &model[(rec.seq - r.first_seq()) as usize][..]
                                    );
                                    cursors[k] = next;
                                }
                                Read::Lost { lost, resume } => {
                                    assert_eq!(lost, r.first_seq() - cursors[k].seq);
                                    cursors[k] = resume;
                                }
                                Read::End => assert_eq!(cursors[k].seq, r.next_seq()),
                            }
                        }
                    }
                }
                while first < r.first_seq() {
                    model.pop_front();
                    first += 1;
                }
                assert_eq!(r.next_seq() - first, model.len() as u64);
                check(&r);
            }
            let (recs, lost) = collect(&r, &mut s, r.oldest());
            assert_eq!(lost, 0);
            let msgs: Vec<_> = recs.into_iter().map(|x| x.3).collect();
            assert_eq!(msgs, Vec::from(model));
            late += r.recompressed();
        }
        assert!(late > 500, "{late} chunks compressed late");
    }

    #[test]
    fn varints_and_zigzag_round_trip() {
        let mut b = [0u8; 16];
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let n = put_varint(&mut b, 0, v);
            assert_eq!(n, varint_len(v));
            let mut p = 0;
            assert_eq!((get_varint(&b, &mut p), p), (v, n));
        }
        for d in [0, 1, -1, i64::MIN, i64::MAX, 12345] {
            assert_eq!(unzigzag(zigzag(d)), d);
        }
    }
}
