//! When the file output has no usable saved position (no state file,
//! one that cannot be read or is damaged, or one that names a record this
//! memlogd has not reached) but log files exist (a crash, or the first run
//! after LinuxKit's own logwrite wrote them), memlogd's buffer is matched
//! against the files instead of being written again whole.
//!
//! Matching is by content, never by clock (a machine without a real-time
//! clock may come up with its time behind the files' last lines). For each
//! source with a file, the last [`ANCHOR_LINES`] lines of `SOURCE.log` (cut
//! back first to its last complete line; if it holds none, of
//! `SOURCE.log.0` or `.0.gz`, just rotated) are looked for, in order, among
//! that source's records in memlogd's buffer, formatted as they would be
//! written. Before anything is written, logwrite reads the buffer once on a
//! second connection (a dump) to find, for each source, the first record
//! where they end: its anchor. On the stream that follows, a record of that
//! source up to its anchor is taken as written; every other record is
//! written. A file whose last lines are not in the buffer (the buffer was
//! overwritten since, or memlogd restarted) gets all of its source's
//! records. The first place the lines match is taken, so that a run of
//! identical lines can be written twice, never lost. Matching ends with the
//! records memlogd held at the first connection (or when memlogd turns out
//! to have restarted), once a commit covers them; it is said on stderr.
//!
//! Lines are compared by their SHA-256 (128 bits kept); at most
//! [`MAX_TAIL`] bytes of a file are read.

use crate::dir::Dir;
use crate::rotate::{newest_rotated, Naming};
use memlog::client::Client;
use memlog::proto::{Line, Mode, Position, RecordRef, Request};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Most bytes read from the end of a file for its last lines.
pub const MAX_TAIL: usize = 1 << 20;
/// How many of a file's last lines must match, in order, to anchor it.
pub const ANCHOR_LINES: usize = 8;
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

/// The end of one source's file: the hashes of its last lines, in order
/// (empty: no file, or no complete line).
type Tail = Vec<Hash>;

/// How the file output writes a record: its file's stem and its line, or
/// `None` for a record that gets no file.
pub type LineOf<'a> = dyn FnMut(&RecordRef<'_>) -> Option<(String, Vec<u8>)> + 'a;

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
    if lines.is_empty() {
        return None;
    }
    let from = lines.len().saturating_sub(ANCHOR_LINES);
    Some(lines[from..].iter().map(|l| hash(l)).collect())
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
            None => return Ok(Some(Tail::new())),
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

fn read_tail(dir: &Dir, stem: &str, naming: Naming) -> io::Result<Tail> {
    if let Some(t) = tail_of_plain(dir, &format!("{stem}.log"), true)? {
        return Ok(t);
    }
    // Just rotated: its last lines are in the newest rotated file.
    match newest_rotated(dir, stem, naming)? {
        Some((name, false)) => Ok(tail_of_plain(dir, &name, false)?.unwrap_or_default()),
        Some((name, true)) => Ok(tail_of_gz(dir, &name)?.unwrap_or_default()),
        None => Ok(Tail::default()),
    }
}

/// Matching in progress (see the module documentation).
#[derive(Debug)]
pub struct Reconcile {
    /// How rotated files are named (where a just-rotated file's end is).
    pub naming: Naming,
    /// Why there is no usable saved position.
    reason: String,
    /// Off once memlogd turned out to have restarted.
    matching: bool,
    /// memlogd's instance at the first connection, and the last record it
    /// held then (`None`: it held none).
    end: Option<(u64, Option<u64>)>,
    /// The end of each source's file, read once, before it is written.
    tails: HashMap<String, Tail>,
    /// While finding anchors: the last lines of each source seen so far.
    windows: HashMap<String, VecDeque<Hash>>,
    /// The record each file ends with.
    anchors: HashMap<String, u64>,
    /// Records taken as written and committed.
    taken: u64,
    /// Since the last commit.
    pending: u64,
    /// The end was reached since the last commit.
    done: bool,
}

impl Reconcile {
    pub fn new(reason: String) -> Reconcile {
        Reconcile {
            naming: Naming::Index,
            reason,
            matching: true,
            end: None,
            tails: HashMap::new(),
            windows: HashMap::new(),
            anchors: HashMap::new(),
            taken: 0,
            pending: 0,
            done: false,
        }
    }

    /// memlogd's hello on a connection. The first one also finds the
    /// anchors, reading memlogd's buffer at `socket` once: `line` formats
    /// a record as it is written (its stem and line), or `None` for a
    /// record that gets no file. If that fails, nothing is matched and
    /// everything is written (records may then be in a file twice).
    pub fn hello(
        &mut self,
        instance: u64,
        first: u64,
        next: u64,
        socket: &Path,
        dir: &Dir,
        line: &mut LineOf<'_>,
    ) {
        match self.end {
            None => {
                let last = (next > first).then(|| next - 1);
                self.end = Some((instance, last));
                self.done |= last.is_none();
                if last.is_some() {
                    if let Err(e) = self.find_anchors(instance, socket, dir, line) {
                        self.matching = false;
                        crate::report::say(
                            "files",
                            &format!(
                                "cannot match memlogd's buffer against the files ({e}): writing all of it (records may be in a file twice)"
                            ),
                        );
                    }
                }
            }
            Some((i, last)) if i == instance => self.done |= last.is_none(),
            // A new buffer: nothing in it can be in the files.
            Some(_) => {
                self.matching = false;
                self.done = true;
            }
        }
    }

    fn find_anchors(
        &mut self,
        instance: u64,
        socket: &Path,
        dir: &Dir,
        line: &mut LineOf<'_>,
    ) -> io::Result<()> {
        let s = UnixStream::connect(socket)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut c = Client::start(s, &Request::new(Mode::Dump))?;
        while let Some(l) = c.next_line()? {
            match l {
                Line::Hello { instance: i, .. } if i != instance => {
                    // memlogd restarted between the two connections.
                    self.matching = false;
                    return Ok(());
                }
                Line::Record(r) => {
                    let (Some(seq), Some((stem, text))) = (r.seq, line(&r.as_ref())) else {
                        continue;
                    };
                    self.feed(dir, &stem, seq, &text)?;
                }
                Line::Error(e) => return Err(io::Error::other(e)),
                _ => {}
            }
        }
        self.windows.clear();
        Ok(())
    }

    /// One record of the buffer while finding anchors: `stem`'s record
    /// `seq`, formatted as `line` (with or without its `\n`).
    pub fn feed(&mut self, dir: &Dir, stem: &str, seq: u64, line: &[u8]) -> io::Result<()> {
        if self.anchors.contains_key(stem) {
            return Ok(());
        }
        self.prepare(dir, stem)?;
        let Some(tail) = self.tails.get(stem).filter(|t| !t.is_empty()) else {
            return Ok(());
        };
        let w = self.windows.entry(stem.to_owned()).or_default();
        w.push_back(hash(line.strip_suffix(b"\n").unwrap_or(line)));
        if w.len() > tail.len() {
            w.pop_front();
        }
        if w.len() == tail.len() && w.iter().eq(tail.iter()) {
            self.anchors.insert(stem.to_owned(), seq);
            self.windows.remove(stem);
        }
        Ok(())
    }

    /// Reads `stem`'s file end if not read yet (before the file is opened
    /// for writing: this may cut a last line without its `\n`).
    pub fn prepare(&mut self, dir: &Dir, stem: &str) -> io::Result<()> {
        if self.matching && !self.tails.contains_key(stem) {
            let t = read_tail(dir, stem, self.naming)?;
            self.tails.insert(stem.to_owned(), t);
        }
        Ok(())
    }

    /// True if `stem`'s record `seq` is already in its file.
    pub fn written(&mut self, stem: &str, seq: Option<u64>) -> bool {
        let written =
            self.matching && seq.is_some_and(|s| self.anchors.get(stem).is_some_and(|&a| s <= a));
        self.pending += u64::from(written);
        written
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
        self.done
    }

    /// What was taken since the last commit will be taken again.
    pub fn fail(&mut self) {
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

    /// Files whose last lines were not found in the buffer (all of their
    /// source's records were written).
    pub fn unmatched(&self) -> usize {
        self.tails
            .iter()
            .filter(|(stem, t)| !t.is_empty() && !self.anchors.contains_key(*stem))
            .count()
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
    /// A time far ahead of the records: the files' clock was ahead (a
    /// machine without a real-time clock comes up with its time behind).
    const LATER: &str = "2099-01-01T00:00:00Z";

    fn rc(d: &Dir, records: &[(&str, u64, String)]) -> Reconcile {
        let mut r = Reconcile::new("test".into());
        r.end = Some((1, Some(100)));
        for (stem, seq, line) in records {
            r.feed(d, stem, *seq, line.as_bytes()).expect("feed");
        }
        r
    }

    #[test]
    fn anchors_where_the_file_ends_whatever_the_clock() {
        let p = tmp("anchor");
        let d = Dir::open(&p).expect("dir");
        // The file ends with a, b, b (then a line cut by a crash).
        std::fs::write(
            p.join("s.log"),
            format!("{LATER} s a\n{LATER} s b\n{LATER} s b\n{LATER} s hal"),
        )
        .expect("write");
        let mut r = rc(
            &d,
            &[
                ("s", 1, format!("{LATER} s a\n")),
                ("t", 2, format!("{T1} t other source\n")),
                ("s", 3, format!("{LATER} s b\n")),
                ("s", 4, format!("{LATER} s b\n")),
                ("s", 5, format!("{LATER} s b\n")),
                (
                    "s",
                    6,
                    format!("{T1} s new, and older than the file's end\n"),
                ),
            ],
        );
        assert_eq!(r.anchors.get("s"), Some(&4));
        assert!(r.written("s", Some(1)) && r.written("s", Some(4)));
        // A third b was not in the file; an earlier time is no reason to skip.
        assert!(!r.written("s", Some(5)));
        assert!(!r.written("s", Some(6)));
        // A source without a file is written whole.
        assert!(!r.written("t", Some(2)));
        // The cut line is gone.
        let text = std::fs::read_to_string(p.join("s.log")).expect("read");
        assert!(text.ends_with(&format!("{LATER} s b\n")), "{text}");
        assert_eq!(r.unmatched(), 0);
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn a_file_whose_end_is_not_in_the_buffer_gets_every_record() {
        let p = tmp("none");
        let d = Dir::open(&p).expect("dir");
        // An earlier boot's file: its lines are not in this buffer, and
        // they are later than the records (a clock that went back).
        std::fs::write(p.join("s.log"), format!("{LATER} s old boot\n")).expect("write");
        let mut r = rc(
            &d,
            &[
                ("s", 1, format!("{T1} s first\n")),
                ("s", 2, format!("{T2} s second\n")),
            ],
        );
        assert!(!r.written("s", Some(1)) && !r.written("s", Some(2)));
        assert_eq!(r.unmatched(), 1);
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn a_failure_undoes_what_was_not_committed() {
        let p = tmp("undo");
        let d = Dir::open(&p).expect("dir");
        std::fs::write(p.join("s.log"), format!("{T2} s b\n{T2} s c\n")).expect("write");
        let mut r = rc(
            &d,
            &[
                ("s", 10, format!("{T2} s b\n")),
                ("s", 11, format!("{T2} s c\n")),
            ],
        );
        assert!(r.written("s", Some(10)));
        assert!(!r.commit());
        assert!(r.written("s", Some(11)));
        r.fail();
        assert!(r.written("s", Some(11)));
        r.taken(Some(Position {
            instance: 1,
            seq: 100,
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
        let mut r = rc(
            &d,
            &[
                ("s", 1, format!("{T1} s a\n")),
                ("s", 2, format!("{T2} s z\n")),
                ("s", 3, format!("{T2} s new\n")),
            ],
        );
        assert!(r.written("s", Some(2)));
        assert!(!r.written("s", Some(3)));
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn a_new_memlogd_instance_ends_matching() {
        let p = tmp("inst");
        let d = Dir::open(&p).expect("dir");
        std::fs::write(p.join("s.log"), format!("{T2} s b\n")).expect("write");
        let mut r = rc(&d, &[("s", 5, format!("{T2} s b\n"))]);
        let mut none = |_: &RecordRef<'_>| None;
        r.hello(2, 0, 5, Path::new("/nonexistent"), &d, &mut none);
        assert!(!r.written("s", Some(5)));
        assert!(r.commit());
        let _ = std::fs::remove_dir_all(&p);
    }
}
