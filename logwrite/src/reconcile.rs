//! When the file output has no usable saved position (no state file,
//! one that cannot be read or is damaged, or one that names a record this
//! memlogd has not reached) but log files exist (a crash, or the first run
//! after LinuxKit's own logwrite wrote them), memlogd's buffer is matched
//! against the files instead of being written again whole.
//!
//! For each source, the end of `SOURCE.log` (cut back first to its last
//! complete line; if it holds none, the end of `SOURCE.log.0` or `.0.gz`,
//! just rotated) gives the time of its last line, in RFC 3339 seconds, and
//! the lines at its end carrying that same second. A record of that source
//! older than that second is taken as written; one of that second is taken
//! as written if its formatted line is among those last lines (each line
//! matches once, so a line repeated within the second is written as often
//! as the file lacks it); a newer one is written. Sources without a file
//! are written whole. Matching ends with the records memlogd held at the
//! first connection (or when memlogd turns out to have restarted), once a
//! commit covers them; a failure before that undoes the matches it made,
//! so the records written again are matched again.
//!
//! Lines are compared by their SHA-256 (128 bits kept), so a file's end
//! costs 16 bytes per line; at most [`MAX_TAIL`] bytes of a file are read.

use crate::dir::Dir;
use crate::rotate::rotated;
use memlog::proto::Position;
use memlog::timefmt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};

/// Most bytes read from the end of a file for its last lines.
pub const MAX_TAIL: usize = 1 << 20;
/// Most bytes decompressed from a rotated `.gz` to reach its end (a real
/// one holds about `-max-log-size`; this bounds a planted one).
const MAX_GUNZIP: u64 = 256 << 20;

type Hash = [u8; 16];

fn hash(line: &[u8]) -> Hash {
    let d = Sha256::digest(line);
    let mut h = [0u8; 16];
    h.copy_from_slice(&d[..16]);
    h
}

/// The first field of a line (its time), and that time in seconds.
fn time_of(line: &[u8]) -> Option<(&[u8], i64)> {
    let end = memchr_space(line)?;
    let field = &line[..end];
    let ns = timefmt::parse_rfc3339(std::str::from_utf8(field).ok()?)?;
    Some((field, ns.div_euclid(1_000_000_000)))
}

fn memchr_space(line: &[u8]) -> Option<usize> {
    line.iter().position(|&b| b == b' ')
}

/// The end of one source's file.
#[derive(Debug)]
enum Tail {
    /// No file, no complete line, or lines whose time cannot be read:
    /// every record is written.
    Nothing,
    /// The second of the last line, and the lines at the end with it.
    At {
        secs: i64,
        lines: HashMap<Hash, u32>,
    },
}

/// The end of `buf`, the last bytes of a file; `whole` if `buf` starts at
/// the start of the file (else its first line may be cut and is skipped).
/// `None` if it holds no complete line.
fn parse_tail(buf: &[u8], whole: bool) -> Option<Tail> {
    let end = buf.iter().rposition(|&b| b == b'\n')?;
    let body = &buf[..end];
    let mut lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    if !whole {
        // The first piece may be the end of a line that started before.
        lines.remove(0);
    }
    let last = *lines.last()?;
    let Some((field, secs)) = time_of(last) else {
        return Some(Tail::Nothing);
    };
    let mut set: HashMap<Hash, u32> = HashMap::new();
    for l in lines.iter().rev() {
        if time_of(l).map(|t| t.0) != Some(field) {
            break;
        }
        *set.entry(hash(l)).or_default() += 1;
    }
    Some(Tail::At { secs, lines: set })
}

/// The end of the plain file `name`, cutting a last line without its `\n`
/// first if `cut`. `None` if there is no complete line (or no file of
/// logwrite's own at the name).
fn tail_of_plain(dir: &Dir, name: &str, cut: bool) -> io::Result<Option<Tail>> {
    let Some(mut f) = dir.open_own(name, cut)? else {
        return Ok(None);
    };
    let size = f.metadata()?.len();
    let start = size.saturating_sub(MAX_TAIL as u64);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((size - start) as usize);
    (&mut f).take(MAX_TAIL as u64).read_to_end(&mut buf)?;
    if cut && buf.last().is_some_and(|&b| b != b'\n') {
        match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => {
                f.set_len(start + i as u64 + 1)?;
                buf.truncate(i + 1);
            }
            None if start == 0 => {
                f.set_len(0)?;
                buf.clear();
            }
            // One line longer than MAX_TAIL: not a log line of ours.
            None => return Ok(Some(Tail::Nothing)),
        }
    }
    Ok(parse_tail(&buf, start == 0))
}

/// The end of the gzipped file `name` (bounded: see [`MAX_GUNZIP`]).
fn tail_of_gz(dir: &Dir, name: &str) -> io::Result<Option<Tail>> {
    let Some(f) = dir.open_own(name, false)? else {
        return Ok(None);
    };
    let mut dec = flate2::read::GzDecoder::new(f).take(MAX_GUNZIP);
    let mut buf: Vec<u8> = Vec::new();
    let mut dropped = false;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match dec.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Damaged: nothing to match against.
            Err(_) => return Ok(None),
        };
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 2 * MAX_TAIL {
            buf.drain(..buf.len() - MAX_TAIL);
            dropped = true;
        }
    }
    Ok(parse_tail(&buf, !dropped))
}

fn read_tail(dir: &Dir, stem: &str) -> io::Result<Tail> {
    if let Some(t) = tail_of_plain(dir, &format!("{stem}.log"), true)? {
        return Ok(t);
    }
    // Just rotated: its last lines are in .0.
    if let Some(t) = tail_of_plain(dir, &rotated(stem, 0, false), false)? {
        return Ok(t);
    }
    Ok(tail_of_gz(dir, &rotated(stem, 0, true))?.unwrap_or(Tail::Nothing))
}

/// Matching in progress (see the module documentation).
#[derive(Debug)]
pub struct Reconcile {
    /// Why there is no usable saved position.
    reason: String,
    /// Off once memlogd turned out to have restarted.
    matching: bool,
    /// memlogd's instance at the first connection, and the last record it
    /// held then (`None`: it held none).
    end: Option<(u64, Option<u64>)>,
    tails: HashMap<String, Tail>,
    /// Records taken as written and committed.
    taken: u64,
    /// Since the last commit.
    pending: u64,
    consumed: Vec<(String, Hash)>,
    /// The end was reached since the last commit.
    done: bool,
}

impl Reconcile {
    pub fn new(reason: String) -> Reconcile {
        Reconcile {
            reason,
            matching: true,
            end: None,
            tails: HashMap::new(),
            taken: 0,
            pending: 0,
            consumed: Vec::new(),
            done: false,
        }
    }

    /// memlogd's hello on a connection.
    pub fn hello(&mut self, instance: u64, first: u64, next: u64) {
        match self.end {
            None => {
                let last = (next > first).then(|| next - 1);
                self.end = Some((instance, last));
                self.done |= last.is_none();
            }
            Some((i, last)) if i == instance => self.done |= last.is_none(),
            // A new buffer: nothing in it can be in the files.
            Some(_) => {
                self.matching = false;
                self.done = true;
            }
        }
    }

    /// Reads `stem`'s file end if not read yet (before the file is opened
    /// for writing: this may cut a last line without its `\n`).
    pub fn prepare(&mut self, dir: &Dir, stem: &str) -> io::Result<()> {
        if self.matching && !self.tails.contains_key(stem) {
            let t = read_tail(dir, stem)?;
            self.tails.insert(stem.to_owned(), t);
        }
        Ok(())
    }

    /// True if the record of `stem` whose formatted line is `line` (with
    /// its `\n`) is already in the file.
    pub fn written(&mut self, dir: &Dir, stem: &str, line: &[u8]) -> io::Result<bool> {
        if !self.matching {
            return Ok(false);
        }
        self.prepare(dir, stem)?;
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let Some(Tail::At { secs, lines }) = self.tails.get_mut(stem) else {
            return Ok(false);
        };
        let Some((_, t)) = time_of(line) else {
            return Ok(false);
        };
        let written = if t < *secs {
            true
        } else if t == *secs {
            let h = hash(line);
            match lines.get_mut(&h) {
                Some(c) if *c > 0 => {
                    *c -= 1;
                    self.consumed.push((stem.to_owned(), h));
                    true
                }
                _ => false,
            }
        } else {
            false
        };
        self.pending += u64::from(written);
        Ok(written)
    }

    /// A record (or a lost notice) at `pos` was taken.
    pub fn taken(&mut self, pos: Option<Position>) {
        let (Some(p), Some((i, last))) = (pos, self.end) else {
            return;
        };
        if p.instance != i || last.map_or(true, |l| p.seq >= l) {
            self.done = true;
        }
    }

    /// What was taken is committed; true once matching is over (then say
    /// [`Reconcile::message`] and drop this).
    pub fn commit(&mut self) -> bool {
        self.taken += self.pending;
        self.pending = 0;
        self.consumed.clear();
        self.done
    }

    /// What was taken since the last commit will be taken again.
    pub fn fail(&mut self) {
        for (stem, h) in self.consumed.drain(..) {
            if let Some(Tail::At { lines, .. }) = self.tails.get_mut(&stem) {
                *lines.entry(h).or_default() += 1;
            }
        }
        self.pending = 0;
        self.done = false;
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Records taken as written (committed).
    pub fn count(&self) -> u64 {
        self.taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("logwrite-rec-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    }

    const T1: &str = "2026-11-21T12:00:01Z";
    const T2: &str = "2026-11-21T12:00:02Z";
    const T3: &str = "2026-11-21T12:00:03Z";

    #[test]
    fn matches_the_last_second_once_each() {
        let p = tmp("match");
        let d = Dir::open(&p).expect("dir");
        // The file ends in second T2 with "b" twice and "c"; then a line
        // cut by a crash.
        std::fs::write(
            p.join("s.log"),
            format!("{T1} s a\n{T2} s b\n{T2} s b\n{T2} s c\n{T3} s hal"),
        )
        .expect("write");
        let mut r = Reconcile::new("test".into());
        r.hello(1, 10, 20);
        let mut w = |line: String| r.written(&d, "s", line.as_bytes()).expect("check");
        assert!(w(format!("{T1} s a\n")));
        assert!(w(format!("{T1} s never seen but older\n")));
        assert!(w(format!("{T2} s b\n")));
        assert!(w(format!("{T2} s b\n")));
        // A third b in that second is not in the file.
        assert!(!w(format!("{T2} s b\n")));
        assert!(w(format!("{T2} s c\n")));
        assert!(!w(format!("{T3} s half\n")));
        // The cut line is gone.
        let text = std::fs::read_to_string(p.join("s.log")).expect("read");
        assert!(text.ends_with(&format!("{T2} s c\n")), "{text}");
        // A source without a file is written whole.
        assert!(!r
            .written(&d, "none", format!("{T1} none x\n").as_bytes())
            .expect("check"));
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn a_failure_undoes_the_matches_since_the_commit() {
        let p = tmp("undo");
        let d = Dir::open(&p).expect("dir");
        std::fs::write(p.join("s.log"), format!("{T2} s b\n{T2} s c\n")).expect("write");
        let mut r = Reconcile::new("test".into());
        r.hello(1, 10, 20);
        let b = format!("{T2} s b\n");
        let c = format!("{T2} s c\n");
        assert!(r.written(&d, "s", b.as_bytes()).expect("check"));
        assert!(!r.commit());
        assert!(r.written(&d, "s", c.as_bytes()).expect("check"));
        r.fail();
        // c is matched again after the failure; b was committed.
        assert!(r.written(&d, "s", c.as_bytes()).expect("check"));
        assert!(!r.written(&d, "s", b.as_bytes()).expect("check"));
        r.taken(Some(Position {
            instance: 1,
            seq: 19,
        }));
        assert!(r.commit());
        assert_eq!(r.count(), 2);
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn just_rotated_files_are_read_from_dot_0() {
        let p = tmp("rot");
        let d = Dir::open(&p).expect("dir");
        std::fs::write(p.join("s.log"), "").expect("write");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, format!("{T1} s a\n{T2} s z\n").as_bytes())
            .expect("gzip");
        std::fs::write(p.join("s.log.0.gz"), enc.finish().expect("gzip")).expect("write");
        let mut r = Reconcile::new("test".into());
        assert!(r
            .written(&d, "s", format!("{T2} s z\n").as_bytes())
            .expect("check"));
        assert!(!r
            .written(&d, "s", format!("{T3} s new\n").as_bytes())
            .expect("check"));
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn a_new_memlogd_instance_ends_matching() {
        let p = tmp("inst");
        let d = Dir::open(&p).expect("dir");
        std::fs::write(p.join("s.log"), format!("{T2} s b\n")).expect("write");
        let mut r = Reconcile::new("test".into());
        r.hello(1, 10, 20);
        r.hello(2, 0, 5);
        assert!(!r
            .written(&d, "s", format!("{T2} s b\n").as_bytes())
            .expect("check"));
        assert!(r.commit());
        let _ = std::fs::remove_dir_all(&p);
    }
}
