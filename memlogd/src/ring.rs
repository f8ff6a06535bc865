//! The ring: every record memlogd holds, bounded by bytes (`-buffer-size`)
//! and by count (`-max-lines`), oldest overwritten first. Pure data
//! structure, no I/O.
//!
//! Two layouts behind one interface:
//! - [`raw`] (`-ring-compress=false`): one preallocated arena of records as
//!   they arrived, the ring memlogd always had.
//! - [`chunked`] (the default): the newest records raw in an open chunk,
//!   older ones in sealed chunks compressed with LZ4, several times the
//!   records in the same bytes.
//!
//! A reader is a [`Cursor`] (a sequence number and where that record is)
//! and cannot tell the layouts apart: the same sequence numbers, the same
//! records, the same exact count of records lost when the ring overtook
//! it. Reading a compressed chunk needs somewhere to decompress it to: a
//! [`Scratch`], one for the whole daemon (not one per reader), that keeps
//! the last few chunks decompressed, so a dump or a seek decompresses each
//! chunk once per pass.

pub mod chunked;
pub mod raw;

pub use chunked::Scratch;
pub use raw::INDEX_STRIDE;

const HDR: usize = 32;
const ALIGN: usize = 8;

/// The record's line was cut at the maximum line length.
pub const FLAG_TRUNCATED: u16 = 1;
/// `pri` of a record whose input carried no syslog priority.
pub const NO_PRI: u8 = 0xff;
/// Most metadata bytes one record may carry.
pub const MAX_META: usize = 4096;

/// A position in the ring: the sequence number of the next record to read,
/// and where that record is (or will be) stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub seq: u64,
    /// The chunk holding the record (chunked ring; 0 in the raw ring).
    chunk: u64,
    /// Its offset in the arena (raw) or in its chunk's raw bytes (chunked;
    /// [`chunked::UNKNOWN`] when only the sequence number is known yet).
    off: usize,
}

/// A borrowed view of one stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub seq: u64,
    pub time_ns: i64,
    pub flags: u16,
    /// Syslog priority (`facility << 3 | severity`), or [`NO_PRI`].
    pub pri: u8,
    pub source: &'a [u8],
    pub msg: &'a [u8],
    /// Metadata ([`crate::meta`] encoding), usually empty.
    pub meta: &'a [u8],
}

impl Record<'_> {
    /// A record without priority or metadata (for memlogd's own notices).
    pub fn plain<'a>(time_ns: i64, source: &'a [u8], msg: &'a [u8]) -> Record<'a> {
        Record {
            seq: 0,
            time_ns,
            flags: 0,
            pri: NO_PRI,
            source,
            msg,
            meta: &[],
        }
    }
}

/// What reading at a cursor found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read<'a> {
    /// The record at the cursor, and the cursor just after it.
    Record(Record<'a>, Cursor),
    /// The cursor is at the end: nothing newer yet.
    End,
    /// The cursor's records were overwritten: `lost` of them are gone, and
    /// reading goes on from `resume` (the oldest record kept).
    Lost { lost: u64, resume: Cursor },
}

fn align(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// Bytes a record with these lengths (and no metadata) takes in the raw
/// ring's arena (the most it takes in a chunk, too).
pub fn record_size(source_len: usize, msg_len: usize) -> usize {
    align(HDR + source_len + msg_len)
}

/// The ring, raw or chunked.
#[derive(Debug)]
pub enum Ring {
    Raw(raw::RawRing),
    Chunked(chunked::ChunkRing),
}

impl Ring {
    /// The raw ring: `capacity` bytes (rounded down to a multiple of 8, at
    /// least 64) holding at most `max_records` records.
    pub fn new(capacity: usize, max_records: u64) -> Ring {
        Ring::Raw(raw::RawRing::new(capacity, max_records))
    }

    /// The compressed ring of `capacity` bytes in all (open chunk, sealed
    /// chunks and their descriptors), for records of up to `max_record`
    /// bytes of source, message and metadata together; the raw ring if
    /// `capacity` is too small for chunks of that size
    /// ([`chunked::ChunkRing::chunk_size_for`]).
    pub fn compressed(capacity: usize, max_records: u64, max_record: usize) -> Ring {
        match chunked::ChunkRing::chunk_size_for(capacity, max_record) {
            Some(chunk) => Ring::Chunked(chunked::ChunkRing::new(capacity, max_records, chunk)),
            None => Ring::new(capacity, max_records),
        }
    }

    /// See [`chunked::ChunkRing::set_compress_share`] (nothing for the raw
    /// ring).
    pub fn set_compress_share(&mut self, share: f64) {
        if let Ring::Chunked(r) = self {
            r.set_compress_share(share);
        }
    }

    /// See [`chunked::ChunkRing::note_idle`] (nothing for the raw ring).
    pub fn note_idle(&mut self) {
        if let Ring::Chunked(r) = self {
            r.note_idle();
        }
    }

    /// Whether chunks kept uncompressed for lack of time wait to be
    /// compressed ([`chunked::ChunkRing::recompress_pending`]; never for the
    /// raw ring).
    pub fn recompress_pending(&self) -> bool {
        match self {
            Ring::Raw(_) => false,
            Ring::Chunked(r) => r.recompress_pending(),
        }
    }

    /// One bounded step of compressing those chunks and packing the arena
    /// ([`chunked::ChunkRing::recompress_step`]); whether work is left.
    pub fn recompress_step(&mut self) -> bool {
        match self {
            Ring::Raw(_) => false,
            Ring::Chunked(r) => r.recompress_step(),
        }
    }

    /// Chunks kept uncompressed for lack of time (0 for the raw ring).
    pub fn compress_skipped(&self) -> u64 {
        match self {
            Ring::Raw(_) => 0,
            Ring::Chunked(r) => r.compress_skipped(),
        }
    }

    /// Whether sealed chunks are compressed (the chunked ring).
    pub fn is_compressed(&self) -> bool {
        matches!(self, Ring::Chunked(_))
    }

    /// A decompression scratch fit for this ring (empty for the raw ring:
    /// it never needs one).
    pub fn scratch(&self) -> Scratch {
        match self {
            Ring::Raw(_) => Scratch::new(0),
            Ring::Chunked(r) => Scratch::new(r.chunk_size()),
        }
    }

    /// Bytes the ring may use in all (`-buffer-size`, rounded).
    pub fn capacity(&self) -> usize {
        match self {
            Ring::Raw(r) => r.capacity(),
            Ring::Chunked(r) => r.capacity(),
        }
    }
    /// Sequence number of the oldest record kept.
    pub fn first_seq(&self) -> u64 {
        match self {
            Ring::Raw(r) => r.first_seq(),
            Ring::Chunked(r) => r.first_seq(),
        }
    }
    /// Sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        match self {
            Ring::Raw(r) => r.next_seq(),
            Ring::Chunked(r) => r.next_seq(),
        }
    }
    pub fn len(&self) -> u64 {
        self.next_seq() - self.first_seq()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes of memory holding records now (the stored bytes).
    pub fn bytes_used(&self) -> usize {
        match self {
            Ring::Raw(r) => r.bytes_used(),
            Ring::Chunked(r) => r.stored_bytes(),
        }
    }
    /// What the records held would take uncompressed (the raw ring: the
    /// same as [`Ring::bytes_used`]).
    pub fn raw_bytes(&self) -> usize {
        match self {
            Ring::Raw(r) => r.bytes_used(),
            Ring::Chunked(r) => r.raw_bytes(),
        }
    }
    /// Records overwritten so far.
    pub fn evicted(&self) -> u64 {
        match self {
            Ring::Raw(r) => r.evicted(),
            Ring::Chunked(r) => r.evicted(),
        }
    }
    /// The largest `source.len() + msg.len()` a record may have in this ring.
    pub fn max_payload(&self) -> usize {
        match self {
            Ring::Raw(r) => r.max_payload(),
            Ring::Chunked(r) => r.max_payload(),
        }
    }

    /// Appends a record and returns its sequence number, evicting the oldest
    /// records as needed. `source` and `msg` together must fit
    /// [`Ring::max_payload`]; the message is cut to fit otherwise (and
    /// marked truncated).
    pub fn push(&mut self, time_ns: i64, source: &[u8], msg: &[u8], flags: u16) -> u64 {
        self.push_with(time_ns, source, msg, flags, NO_PRI, &[])
    }

    /// [`Ring::push`] with a syslog priority and metadata. Metadata longer
    /// than [`MAX_META`] (or than half of [`Ring::max_payload`] with the
    /// source) is dropped whole.
    pub fn push_with(
        &mut self,
        time_ns: i64,
        source: &[u8],
        msg: &[u8],
        flags: u16,
        pri: u8,
        meta: &[u8],
    ) -> u64 {
        match self {
            Ring::Raw(r) => r.push_with(time_ns, source, msg, flags, pri, meta),
            Ring::Chunked(r) => r.push_with(time_ns, source, msg, flags, pri, meta),
        }
    }

    /// A cursor at the oldest record kept.
    pub fn oldest(&self) -> Cursor {
        match self {
            Ring::Raw(r) => r.oldest(),
            Ring::Chunked(r) => r.oldest(),
        }
    }

    /// A cursor after the newest record: it sees only records pushed later.
    pub fn newest(&self) -> Cursor {
        match self {
            Ring::Raw(r) => r.newest(),
            Ring::Chunked(r) => r.newest(),
        }
    }

    /// A cursor at sequence number `seq`, clamped to what the ring holds.
    /// Raw ring: from a checkpoint, at most [`INDEX_STRIDE`] - 1 reads.
    /// Chunked ring: a binary search of the chunks; the first read from it
    /// finds the record in its chunk (one decompression, at most one
    /// chunk's records skipped).
    pub fn seek(&self, seq: u64) -> Cursor {
        match self {
            Ring::Raw(r) => r.seek(seq),
            Ring::Chunked(r) => r.seek(seq),
        }
    }

    /// Reads the record at `c`; a record of a compressed chunk is read from
    /// `scratch`, which decompresses the chunk if it does not hold it yet.
    pub fn read<'a>(&'a self, c: Cursor, scratch: &'a mut Scratch) -> Read<'a> {
        match self {
            Ring::Raw(r) => r.read(c),
            Ring::Chunked(r) => r.read(c, scratch),
        }
    }
}
