//! Parses the kernel log as `/dev/kmsg` formats it
//! (Documentation/ABI/testing/dev-kmsg):
//!
//! ```text
//! 6,339,5140900,-;NET: Registered protocol family 10
//!  SUBSYSTEM=net
//!  DEVICE=n1
//! ```
//!
//! A header `PRI,SEQ,TIMESTAMP_US,FLAGS[,...];MESSAGE` (PRI includes the
//! facility), the message with non-printable bytes escaped as `\xNN`, then
//! continuation lines ` KEY=value`. Reading `/dev/kmsg` returns one record
//! per `read`; a file or FIFO of recorded output is a plain byte stream, so
//! this parser works on lines either way.

/// One kernel record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KRecord {
    /// `facility << 3 | level`.
    pub pri: u8,
    pub seq: u64,
    pub ts_us: u64,
    /// The message with `\xNN` escapes decoded.
    pub msg: Vec<u8>,
    /// Continuation lines, `KEY=value`, escapes decoded.
    pub kv: Vec<Vec<u8>>,
}

/// What the parser found.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Record(&'a KRecord),
    /// Sequence numbers were skipped: the kernel overwrote `lost` records
    /// before they were read.
    Gap {
        lost: u64,
    },
    /// A line that is not a kernel record, kept as it came.
    Other(&'a [u8]),
}

/// Decodes `\xNN` escapes (other backslashes are kept).
pub fn unescape(b: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            if let Some(v) = b
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
}

fn parse_header(line: &[u8]) -> Option<KRecord> {
    let semi = memchr::memchr(b';', line)?;
    let mut parts = line[..semi].split(|&c| c == b',');
    let num = |p: Option<&[u8]>| -> Option<u64> { std::str::from_utf8(p?).ok()?.parse().ok() };
    let pri = num(parts.next())?;
    let seq = num(parts.next())?;
    let ts_us = num(parts.next())?;
    let pri = u8::try_from(pri).ok().filter(|&p| p <= 191)?;
    let mut msg = Vec::with_capacity(line.len() - semi);
    unescape(&line[semi + 1..], &mut msg);
    Some(KRecord {
        pri,
        seq,
        ts_us,
        msg,
        kv: Vec::new(),
    })
}

/// Stream parser state for one kernel log input.
#[derive(Debug, Default)]
pub struct Parser {
    partial: Vec<u8>,
    pending: Option<KRecord>,
    last_seq: Option<u64>,
}

impl Parser {
    fn flush(&mut self, emit: &mut impl FnMut(Event<'_>)) {
        if let Some(r) = self.pending.take() {
            if let Some(last) = self.last_seq {
                if r.seq > last + 1 {
                    emit(Event::Gap {
                        lost: r.seq - last - 1,
                    });
                }
            }
            self.last_seq = Some(r.seq);
            emit(Event::Record(&r));
        }
    }

    fn line(&mut self, line: &[u8], emit: &mut impl FnMut(Event<'_>)) {
        if let Some(kv) = line.strip_prefix(b" ") {
            if let Some(r) = &mut self.pending {
                let mut v = Vec::with_capacity(kv.len());
                unescape(kv, &mut v);
                r.kv.push(v);
                return;
            }
        }
        self.flush(emit);
        match parse_header(line) {
            Some(r) => self.pending = Some(r),
            None if line.is_empty() => {}
            None => emit(Event::Other(line)),
        }
    }

    /// Feeds bytes. With `record_per_read` (a read of `/dev/kmsg`), the last
    /// record is complete at the end of the data; otherwise (a file or FIFO)
    /// it stays open for continuation lines until the next record or
    /// [`Parser::finish`].
    pub fn feed(&mut self, data: &[u8], record_per_read: bool, mut emit: impl FnMut(Event<'_>)) {
        let mut rest = data;
        if !self.partial.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(&rest[..i]);
                    self.line(&line, &mut emit);
                    rest = &rest[i + 1..];
                }
                None => {
                    self.partial.extend_from_slice(rest);
                    return;
                }
            }
        }
        while let Some(i) = memchr::memchr(b'\n', rest) {
            self.line(&rest[..i], &mut emit);
            rest = &rest[i + 1..];
        }
        if rest.is_empty() {
            if record_per_read {
                self.flush(&mut emit);
            }
        } else {
            self.partial.extend_from_slice(rest);
        }
    }

    /// At end of input: the last record (or partial line) is complete.
    pub fn finish(&mut self, mut emit: impl FnMut(Event<'_>)) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, &mut emit);
        }
        self.flush(&mut emit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Ev {
        R(KRecord),
        Gap(u64),
        Other(Vec<u8>),
    }

    fn collect(chunks: &[&[u8]], per_read: bool) -> Vec<Ev> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        let mut push = |e: Event<'_>| {
            out.push(match e {
                Event::Record(r) => Ev::R(r.clone()),
                Event::Gap { lost } => Ev::Gap(lost),
                Event::Other(l) => Ev::Other(l.to_vec()),
            })
        };
        for c in chunks {
            p.feed(c, per_read, &mut push);
        }
        p.finish(&mut push);
        out
    }

    const SAMPLE: &[u8] = b"6,1,0,-;Linux version 6.1.0 (gcc)\n5,2,1200,-;SCSI subsystem initialized\n 6,3,5140900,c;NET: x\n6,3,5140900,-;NET: Registered \\x5c protocol family 10 caf\\xc3\\xa9\n SUBSYSTEM=net\n DEVICE=n1\n3,7,6000000,-;usb 1-1: error \\x0a newline\n";

    #[test]
    fn records_continuations_escapes_and_gaps() {
        let ev = collect(&[SAMPLE], false);
        let recs: Vec<&KRecord> = ev
            .iter()
            .filter_map(|e| if let Ev::R(r) = e { Some(r) } else { None })
            .collect();
        assert_eq!(recs.len(), 4);
        assert_eq!((recs[0].pri, recs[0].seq, recs[0].ts_us), (6, 1, 0));
        assert_eq!(recs[1].msg, b"SCSI subsystem initialized");
        // A continuation line right after record 2 is attached to it.
        assert_eq!(recs[1].kv, vec![b"6,3,5140900,c;NET: x".to_vec()]);
        assert_eq!(
            recs[2].msg,
            "NET: Registered \\ protocol family 10 café".as_bytes()
        );
        assert_eq!(
            recs[2].kv,
            vec![b"SUBSYSTEM=net".to_vec(), b"DEVICE=n1".to_vec()]
        );
        assert_eq!(recs[3].msg, b"usb 1-1: error \n newline");
        assert_eq!(recs[3].pri, 3);
        // Sequence 3 -> 7: three records were overwritten by the kernel.
        assert!(ev.contains(&Ev::Gap(3)));
    }

    #[test]
    fn any_split_gives_the_same_events() {
        let want = collect(&[SAMPLE], false);
        for cut in 0..SAMPLE.len() {
            assert_eq!(
                collect(&[&SAMPLE[..cut], &SAMPLE[cut..]], false),
                want,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn one_record_per_read_is_emitted_at_once() {
        let mut p = Parser::default();
        let mut n = 0;
        p.feed(b"6,10,5,-;hello\n SUBSYSTEM=x\n", true, |e| {
            if let Event::Record(r) = e {
                assert_eq!(r.kv, vec![b"SUBSYSTEM=x".to_vec()]);
                n += 1;
            }
        });
        assert_eq!(n, 1);
    }

    #[test]
    fn garbage_is_kept() {
        assert_eq!(
            collect(&[b"not a record\n"], false),
            vec![Ev::Other(b"not a record".to_vec())]
        );
        assert_eq!(
            collect(&[b"999,1,1,-;bad pri\n"], false),
            vec![Ev::Other(b"999,1,1,-;bad pri".to_vec())]
        );
    }
}
