//! One source's rotated files: rotation, `-compress`, the per-source cap,
//! and putting them right at start after a crash.
//!
//! Rotation renames only the files that exist: the run of indices from 0
//! upward at which `STEM.log.I` or `STEM.log.I.gz` exists is shifted up by
//! one (the oldest dropped once the run reaches `-max-log-files`), then
//! `STEM.log` becomes `STEM.log.0`. So a rotation costs a stat per file
//! kept, whatever `-max-log-files` is. A crash in the middle of the shift
//! leaves a hole in the run; the next rotation fills it, and the files
//! past it keep their order.
//!
//! Compression writes the gzip stream to a fresh temporary (see
//! [`Dir::create_temp`]), fsyncs it, renames it to `STEM.log.I.gz`, fsyncs
//! the directory and only then removes the plain file. A crash in between
//! leaves both, with the same content; [`recover`] (at start) then removes
//! the plain one, since the `.gz` is complete (it was renamed into place
//! after its fsync), and removes leftover compression temporaries: cheap
//! work, one failure said and passed over, so that start-up never waits on
//! a backlog nor stops on one bad file. A plain `STEM.log.0` whose
//! compression never happened is compressed at that source's next
//! rotation, with `-compress` (one file, then shifted as `.1.gz`). Only a
//! regular file with one link is compressed: a rotated name that is a link
//! to a file of someone else is never read.

use crate::dir::{Dir, Fault, Kind};
use crate::report::say;
use std::collections::BTreeMap;
use std::io;

/// How rotated files are named (`-rotated-names`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Naming {
    /// `STEM.log.0` newest, shifted up at each rotation (LinuxKit's).
    #[default]
    Index,
    /// `STEM.log.20261201T221500Z`: the UTC time of the file's last record
    /// (see [`time_key`]); a name never changes once given.
    Time,
}

/// How one source's files are rotated.
#[derive(Debug, Clone)]
pub struct Policy {
    pub max_files: u32,
    pub naming: Naming,
    pub compress: bool,
    /// The size at which `STEM.log` is rotated (counted as full in `cap`).
    pub max_size: u64,
    /// Most bytes kept per source, current and rotated files together.
    pub cap: Option<u64>,
}

/// `STEM.log.I` or `STEM.log.I.gz`.
pub fn rotated(stem: &str, i: u32, gz: bool) -> String {
    format!("{stem}.log.{i}{}", if gz { ".gz" } else { "" })
}

/// Errors of a rename or removal that are one source's trouble (something
/// in the way at one of its names).
const NAME_ERRORS: &[i32] = &[
    libc::EISDIR,
    libc::ENOTDIR,
    libc::ENOTEMPTY,
    libc::EEXIST,
    libc::EBUSY,
    libc::EMLINK,
    libc::ENAMETOOLONG,
    libc::EINVAL,
];

/// Errors that are the disk's, not one file's.
fn is_disk_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EIO | libc::ENOENT)
    )
}

/// (plain, gz) at one index: what exists there.
type Slot = (Option<Kind>, Option<Kind>);

fn size(k: Option<Kind>) -> u64 {
    match k {
        Some(Kind::Regular { size, .. }) => size,
        _ => 0,
    }
}

fn at(e: io::Error, what: &str) -> Fault {
    Fault::of(e, NAME_ERRORS).context(what)
}

/// Rotates `STEM.log` (closed by the caller, everything in it committed);
/// `last_ns` is the time of its last record (for [`Naming::Time`]). Gives
/// the name the rotated file has now (after compression), or `None` if it
/// was removed (`-max-log-files 0`). The directory is not fsynced here:
/// the caller queues that, with the rotated file's fsync, on its
/// [`crate::syncer::Syncer`] (compression syncs what its own order needs).
pub fn rotate(dir: &Dir, stem: &str, p: &Policy, last_ns: i64) -> Result<Option<String>, Fault> {
    let name = format!("{stem}.log");
    if p.max_files == 0 {
        dir.remove(&name)
            .map_err(|e| at(e, &format!("removing {name}")))?;
        return Ok(None);
    }
    if p.naming == Naming::Time {
        return rotate_time(dir, stem, p, last_ns).map(Some);
    }
    let n = p.max_files as usize;
    if p.compress {
        // A .0 left plain by an interrupted compression goes first.
        let (plain0, gz0) = (rotated(stem, 0, false), rotated(stem, 0, true));
        if dir.kind(&plain0).ok().flatten().is_some() && dir.kind(&gz0).ok().flatten().is_none() {
            compress_or_say(dir, &plain0)?;
        }
    }
    let mut run: Vec<Slot> = Vec::new();
    while run.len() < n {
        let i = run.len() as u32;
        let slot = (
            dir.kind(&rotated(stem, i, false))
                .map_err(|e| at(e, &rotated(stem, i, false)))?,
            dir.kind(&rotated(stem, i, true))
                .map_err(|e| at(e, &rotated(stem, i, true)))?,
        );
        if slot == (None, None) {
            break;
        }
        run.push(slot);
    }
    if run.len() == n {
        // The oldest goes; both of its forms, so that what moves there is
        // never taken for half of an interrupted compression.
        let last = (n - 1) as u32;
        for gz in [false, true] {
            let old = rotated(stem, last, gz);
            dir.remove(&old)
                .map_err(|e| at(e, &format!("removing {old}")))?;
        }
        run.pop();
    }
    for i in (0..run.len()).rev() {
        for (gz, there) in [(false, run[i].0), (true, run[i].1)] {
            if there.is_some() {
                let (from, to) = (rotated(stem, i as u32, gz), rotated(stem, i as u32 + 1, gz));
                dir.rename(&from, &to)
                    .map_err(|e| at(e, &format!("renaming {from} to {to}")))?;
            }
        }
    }
    dir.rename(&name, &rotated(stem, 0, false))
        .map_err(|e| at(e, &format!("renaming {name} to {stem}.log.0")))?;
    let mut first: Slot = (dir.kind(&rotated(stem, 0, false)).ok().flatten(), None);
    let mut now = rotated(stem, 0, false);
    if p.compress && compress_or_say(dir, &now)? {
        first = (None, dir.kind(&rotated(stem, 0, true)).ok().flatten());
        now = rotated(stem, 0, true);
    }
    if let Some(cap) = p.cap {
        // What is kept now: .0, then the run shifted up by one.
        let mut kept: Vec<Slot> = vec![first];
        kept.extend(run);
        let mut total: u64 = kept.iter().map(|s| size(s.0) + size(s.1)).sum::<u64>() + p.max_size;
        while total > cap {
            let Some(slot) = kept.pop() else { break };
            let i = kept.len() as u32;
            for (gz, there) in [(false, slot.0), (true, slot.1)] {
                if there.is_some() {
                    let old = rotated(stem, i, gz);
                    dir.remove(&old)
                        .map_err(|e| at(e, &format!("removing {old}")))?;
                }
            }
            total -= size(slot.0) + size(slot.1);
        }
    }
    Ok(Some(now))
}

/// The UTC time `ns` as a rotated file's time: `20261201T221500Z`.
pub fn time_stamp(ns: i64) -> String {
    let mut v = Vec::with_capacity(24);
    memlog::timefmt::write_rfc3339_secs(&mut v, ns);
    v.retain(|&b| b != b'-' && b != b':');
    String::from_utf8(v).unwrap_or_default()
}

/// The order of time-named rotated files: (time stamp, counter), oldest
/// first. `STEM.log.T` is (T, 0), `STEM.log.T-001` (T, 1): a second file
/// rotated in the same second (or when the clock went back) gets the
/// newest's time and the next counter, so names sort as they were made.
pub type TimeKey = (String, u32);

/// `T` or `T-N` (see [`TimeKey`]).
pub fn time_suffix(k: &TimeKey) -> String {
    match k.1 {
        0 => k.0.clone(),
        n => format!("{}-{n:03}", k.0),
    }
}

/// Parses the part after `STEM.log.` of a time-named file.
fn parse_time_suffix(s: &str) -> Option<TimeKey> {
    let (t, n) = match s.split_once('-') {
        Some((t, n)) => {
            if n.is_empty() || n.len() > 9 || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (t, n.parse().ok().filter(|&n| n > 0)?)
        }
        None => (s, 0),
    };
    let b = t.as_bytes();
    let shape = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    shape.then(|| (t.to_owned(), n))
}

/// `STEM.log.TIME[.gz]` -> (STEM, key, gz).
pub fn parse_time_rotated(name: &str) -> Option<(&str, TimeKey, bool)> {
    let (base, gz) = match name.strip_suffix(".gz") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let (base, suffix) = base.rsplit_once('.')?;
    let key = parse_time_suffix(suffix)?;
    let stem = base.strip_suffix(".log")?;
    if stem.is_empty() || stem.starts_with('.') {
        return None;
    }
    Some((stem, key, gz))
}

/// `stem`'s time-named rotated files, oldest first: key -> (plain, gz).
fn time_rotated(dir: &Dir, stem: &str) -> io::Result<BTreeMap<TimeKey, Slot>> {
    let mut out: BTreeMap<TimeKey, Slot> = BTreeMap::new();
    for e in std::fs::read_dir(dir.path())? {
        let Ok(e) = e else { continue };
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Some((s, key, gz)) = parse_time_rotated(&name) else {
            continue;
        };
        if s != stem {
            continue;
        }
        let kind = dir.kind(&name).ok().flatten();
        let slot = out.entry(key).or_default();
        if gz {
            slot.1 = kind;
        } else {
            slot.0 = kind;
        }
    }
    Ok(out)
}

/// [`rotate`] with [`Naming::Time`]: `STEM.log` becomes
/// `STEM.log.TIME` (see [`TimeKey`]); then the oldest beyond
/// `-max-log-files`, and beyond the cap, are removed. A file a hook moved
/// or removed is simply not there any more.
fn rotate_time(dir: &Dir, stem: &str, p: &Policy, last_ns: i64) -> Result<String, Fault> {
    let name = format!("{stem}.log");
    let mut have = time_rotated(dir, stem)
        .map_err(|e| Fault::Output(e).context(format!("listing {}", dir.path().display())))?;
    let t = time_stamp(last_ns);
    let mut key = match have.keys().next_back() {
        Some(newest) if newest.0 >= t => (newest.0.clone(), newest.1 + 1),
        _ => (t, 0),
    };
    // Never over anything already there (something not ours, say).
    loop {
        let plain = format!("{name}.{}", time_suffix(&key));
        let taken = dir.kind(&plain).map_err(|e| at(e, &plain))?.is_some()
            || dir
                .kind(&format!("{plain}.gz"))
                .map_err(|e| at(e, &plain))?
                .is_some();
        if !taken {
            break;
        }
        key.1 += 1;
    }
    let plain = format!("{name}.{}", time_suffix(&key));
    dir.rename(&name, &plain)
        .map_err(|e| at(e, &format!("renaming {name} to {plain}")))?;
    have.insert(key.clone(), (dir.kind(&plain).ok().flatten(), None));
    let mut now = plain.clone();
    if p.compress {
        // The new one, and any left plain by an interrupted compression.
        let plains: Vec<TimeKey> = have
            .iter()
            .filter(|(_, s)| s.0.is_some() && s.1.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for k in plains {
            let f = format!("{name}.{}", time_suffix(&k));
            if compress_or_say(dir, &f)? {
                let gz = dir.kind(&format!("{f}.gz")).ok().flatten();
                have.insert(k.clone(), (None, gz));
                if k == key {
                    now = format!("{f}.gz");
                }
            }
        }
    }
    let remove = |have: &mut BTreeMap<TimeKey, Slot>| -> Result<u64, Fault> {
        let Some((k, slot)) = have.pop_first() else {
            return Ok(0);
        };
        let f = format!("{name}.{}", time_suffix(&k));
        for (gz, there) in [(false, slot.0), (true, slot.1)] {
            if there.is_some() {
                let old = if gz { format!("{f}.gz") } else { f.clone() };
                dir.remove(&old)
                    .map_err(|e| at(e, &format!("removing {old}")))?;
            }
        }
        Ok(size(slot.0) + size(slot.1))
    };
    while have.len() > p.max_files as usize {
        remove(&mut have)?;
    }
    if let Some(cap) = p.cap {
        let mut total: u64 = have.values().map(|s| size(s.0) + size(s.1)).sum::<u64>() + p.max_size;
        while total > cap && !have.is_empty() {
            total = total.saturating_sub(remove(&mut have)?);
        }
    }
    Ok(now)
}

/// The newest rotated file of `stem` and whether it is gzipped, under
/// either naming (for matching memlogd's buffer against the files).
pub fn newest_rotated(dir: &Dir, stem: &str, naming: Naming) -> io::Result<Option<(String, bool)>> {
    if naming == Naming::Index {
        for gz in [false, true] {
            let n = rotated(stem, 0, gz);
            if dir.kind(&n)?.is_some() {
                return Ok(Some((n, gz)));
            }
        }
        return Ok(None);
    }
    let have = time_rotated(dir, stem)?;
    Ok(have.iter().next_back().map(|(k, slot)| {
        let f = format!("{stem}.log.{}", time_suffix(k));
        match slot.0 {
            Some(_) => (f, false),
            None => (format!("{f}.gz"), true),
        }
    }))
}

/// [`compress`], with a failure that is not the disk's said and passed
/// over (the file stays plain). True if it was compressed.
fn compress_or_say(dir: &Dir, plain: &str) -> Result<bool, Fault> {
    match compress(dir, plain) {
        Ok(done) => Ok(done),
        Err(e) if is_disk_error(&e) => {
            Err(Fault::Output(e).context(format!("compressing {plain}")))
        }
        Err(e) => {
            say(
                "files",
                &format!(
                    "cannot compress {}: {e}; left as it is",
                    dir.path().join(plain).display()
                ),
            );
            Ok(false)
        }
    }
}

/// The rotated file `plain` (`STEM.log.I`, `STEM.log.TIME`) ->
/// `plain.gz` (see the module documentation). `Ok(false)` if the plain
/// file is not logwrite's own (not a regular file with one link): it is
/// left as it is, and that is said on stderr.
pub fn compress(dir: &Dir, plain: &str) -> io::Result<bool> {
    let gz = format!("{plain}.gz");
    let plain = plain.to_owned();
    let Some(mut src) = dir.open_own(&plain, false)? else {
        say(
            "files",
            &format!(
                "not compressing {}: it is not a regular file with one link (not logwrite's own); left as it is",
                dir.path().join(&plain).display()
            ),
        );
        return Ok(false);
    };
    let (tmp, out) = dir.create_temp(&gz)?;
    let res = (|| {
        // The temporary is 0600: give the .gz the plain file's mode.
        out.set_permissions(src.metadata()?.permissions())?;
        let mut enc =
            flate2::write::GzEncoder::new(io::BufWriter::new(out), flate2::Compression::default());
        io::copy(&mut src, &mut enc)?;
        let f = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        dir.rename(&tmp, &gz)?;
        // The .gz is in place before the plain file goes.
        dir.sync()
    })();
    if let Err(e) = res {
        let _ = dir.remove(&tmp);
        return Err(e);
    }
    dir.remove(&plain)?;
    Ok(true)
}

/// `STEM.log.I[.gz]` -> (STEM, I, gz).
pub fn parse_rotated(name: &str) -> Option<(&str, u32, bool)> {
    let (base, gz) = match name.strip_suffix(".gz") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let (base, idx) = base.rsplit_once('.')?;
    if idx.is_empty() || idx.len() > 9 || !idx.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if idx.len() > 1 && idx.starts_with('0') {
        return None;
    }
    let stem = base.strip_suffix(".log")?;
    if stem.is_empty() || stem.starts_with('.') {
        return None;
    }
    Some((stem, idx.parse().ok()?, gz))
}

/// True if `name` is a compression temporary (`.STEM.log.I.gz.RANDOM.tmp`,
/// as [`Dir::create_temp`] names them; the part before the random digits
/// is cut at 200 bytes for long names, and no other file in the log
/// directory starts with `.` and such a part: the state files' temporaries
/// start with `..`).
fn is_compress_temp(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.').and_then(|r| r.strip_suffix(".tmp")) else {
        return false;
    };
    let Some((x, hex)) = rest.rsplit_once('.') else {
        return false;
    };
    hex.len() == 16
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && !x.starts_with('.')
        && ((x.contains(".log.") && x.ends_with(".gz")) || x.len() == 200)
}

/// What [`recover`] found and did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Some `SOURCE.log` exists (so this is not a first run).
    pub has_logs: bool,
    /// Plain rotated files removed because their `.gz` was complete.
    pub twins: u64,
    /// Compression temporaries removed.
    pub temps: u64,
}

/// Puts the rotated files right after a crash (see the module
/// documentation). Compression temporaries are removed whatever their age:
/// the file output is the only writer of its sources' files (two on one
/// directory would already spoil each other's files), so at its start any
/// is a leftover. Only reading the directory can fail this; a name that
/// cannot be removed is said and passed over.
pub fn recover(dir: &Dir) -> io::Result<Recovered> {
    let mut out = Recovered::default();
    let remove = |name: &str| match dir.remove(name) {
        Ok(done) => done,
        Err(e) => {
            say(
                "files",
                &format!(
                    "cannot remove {}: {e}; left as it is",
                    dir.path().join(name).display()
                ),
            );
            false
        }
    };
    // plain name -> (plain, gz) are regular files.
    let mut slots: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for e in std::fs::read_dir(dir.path())? {
        let Ok(e) = e else { continue };
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let regular = e.file_type().is_ok_and(|t| t.is_file());
        if is_compress_temp(&name) {
            if remove(&name) {
                out.temps += 1;
            }
        } else if !name.starts_with('.') && name.ends_with(".log") {
            out.has_logs |= regular;
        } else if regular && (parse_rotated(&name).is_some() || parse_time_rotated(&name).is_some())
        {
            let gz = name.ends_with(".gz");
            let plain = name.strip_suffix(".gz").unwrap_or(&name).to_owned();
            let s = slots.entry(plain).or_default();
            if gz {
                s.1 = true;
            } else {
                s.0 = true;
            }
        }
    }
    for (name, (plain, gz)) in slots {
        if plain && gz && remove(&name) {
            out.twins += 1;
        }
    }
    if out.twins > 0 {
        let _ = dir.sync();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::path::PathBuf;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("logwrite-rotate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    }

    fn gunzip(p: &std::path::Path) -> String {
        let mut s = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(p).expect("open"))
            .read_to_string(&mut s)
            .expect("gunzip");
        s
    }

    fn policy(max_files: u32, compress: bool) -> Policy {
        Policy {
            max_files,
            naming: Naming::Index,
            compress,
            max_size: 10,
            cap: None,
        }
    }

    #[test]
    fn names() {
        assert_eq!(parse_rotated("svc.log.0"), Some(("svc", 0, false)));
        assert_eq!(
            parse_rotated("a.log.1.log.12.gz"),
            Some(("a.log.1", 12, true))
        );
        for n in [
            "svc.log",
            "svc.log.",
            "svc.log.01",
            ".x.log.1",
            ".log.1",
            "svc.1",
            "x.log.1x",
        ] {
            assert_eq!(parse_rotated(n), None, "{n}");
        }
        assert!(is_compress_temp(".svc.log.0.gz.0123456789abcdef.tmp"));
        assert!(!is_compress_temp("..logwrite.state.0123456789abcdef.tmp"));
        assert!(!is_compress_temp(".svc.log.0.gz.tmp"));
        assert!(!is_compress_temp("svc.log.0.gz.0123456789abcdef.tmp"));
        // A long stem: the name kept in the temporary's is cut at 200.
        let long = format!("{}.log.1.gz", "x".repeat(198));
        assert!(is_compress_temp(&format!(
            ".{}.0123456789abcdef.tmp",
            &long[..200]
        )));
    }

    #[test]
    fn rotation_shifts_only_what_exists_and_keeps_the_order() {
        let p = tmp("shift");
        let d = Dir::open(&p).expect("dir");
        for round in 0..5 {
            std::fs::write(p.join("s.log"), format!("{round}")).expect("write");
            rotate(&d, "s", &policy(100_000, false), 0).expect("rotate");
        }
        for i in 0..5 {
            let got = std::fs::read_to_string(p.join(format!("s.log.{i}"))).expect("read");
            assert_eq!(got, format!("{}", 4 - i));
        }
        assert!(!p.join("s.log").exists() && !p.join("s.log.5").exists());
        // A crash in the middle of a shift left a hole at .1: the next
        // rotation fills it, and the files past it keep their order.
        std::fs::rename(p.join("s.log.1"), p.join("gone")).expect("rename");
        std::fs::write(p.join("s.log"), "5").expect("write");
        rotate(&d, "s", &policy(100_000, false), 0).expect("rotate");
        let order: Vec<String> = (0..5)
            .map(|i| std::fs::read_to_string(p.join(format!("s.log.{i}"))).expect("read"))
            .collect();
        assert_eq!(order, ["5", "4", "2", "1", "0"]);
        let _ = std::fs::remove_dir_all(&p);
    }

    fn ls(p: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(p)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn time_names_sort_as_made_and_keep_the_newest() {
        let p = tmp("time");
        let d = Dir::open(&p).expect("dir");
        let pol = |max_files, compress| Policy {
            naming: Naming::Time,
            ..policy(max_files, compress)
        };
        // 2026-12-01T22:15:00Z, then twice in the same second, then a
        // clock that went back an hour.
        let t = 1_796_163_300 * 1_000_000_000i64;
        for (i, ns) in [t, t + 400_000_000, t + 900_000_000, t - 3_600_000_000_000]
            .into_iter()
            .enumerate()
        {
            std::fs::write(p.join("s.log"), format!("{i}\n")).expect("write");
            let got = rotate(&d, "s", &pol(10, false), ns).expect("rotate");
            let want = [
                "s.log.20261201T221500Z",
                "s.log.20261201T221500Z-001",
                "s.log.20261201T221500Z-002",
                "s.log.20261201T221500Z-003",
            ][i];
            assert_eq!(got.as_deref(), Some(want));
        }
        // Sorted by name is the order they were made in.
        let names = ls(&p);
        let contents: Vec<String> = names
            .iter()
            .map(|n| std::fs::read_to_string(p.join(n)).expect("read"))
            .collect();
        assert_eq!(contents, ["0\n", "1\n", "2\n", "3\n"]);
        // A hook took one away: nothing trips over it. -max-log-files 2
        // keeps the two newest, -compress compresses the new one.
        std::fs::remove_file(p.join("s.log.20261201T221500Z-001")).expect("rm");
        std::fs::write(p.join("s.log"), "4\n").expect("write");
        let got = rotate(&d, "s", &pol(2, true), t + 1_000_000_000).expect("rotate");
        assert_eq!(got.as_deref(), Some("s.log.20261201T221501Z.gz"));
        assert_eq!(
            ls(&p),
            ["s.log.20261201T221500Z-003.gz", "s.log.20261201T221501Z.gz"]
        );
        assert_eq!(gunzip(&p.join("s.log.20261201T221501Z.gz")), "4\n");
        assert_eq!(
            newest_rotated(&d, "s", Naming::Time).expect("newest"),
            Some(("s.log.20261201T221501Z.gz".into(), true))
        );
        // The cap keeps the newest that fit.
        std::fs::write(p.join("s.log"), "5\n").expect("write");
        let capped = Policy {
            cap: Some(10 + 2 + 5),
            ..pol(10, false)
        };
        rotate(&d, "s", &capped, t + 2_000_000_000).expect("rotate");
        assert_eq!(ls(&p), ["s.log.20261201T221502Z"]);
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn time_names_parse_only_their_shape() {
        assert_eq!(
            parse_time_rotated("a.log.20261201T221500Z-002.gz"),
            Some(("a", ("20261201T221500Z".into(), 2), true))
        );
        assert_eq!(
            parse_time_rotated("a.log.1.log.20261201T221500Z"),
            Some(("a.log.1", ("20261201T221500Z".into(), 0), false))
        );
        for n in [
            "a.log.20261201T221500",
            "a.log.20261201X221500Z",
            "a.log.20261201T221500Z-",
            "a.log.20261201T221500Z-000",
            "a.log.20261201T22150aZ",
            ".a.log.20261201T221500Z",
            "a.20261201T221500Z",
        ] {
            assert_eq!(parse_time_rotated(n), None, "{n}");
        }
        assert_eq!(
            time_stamp(1_796_163_300 * 1_000_000_000),
            "20261201T221500Z"
        );
    }

    #[test]
    fn the_oldest_is_dropped_in_both_forms() {
        let p = tmp("drop");
        let d = Dir::open(&p).expect("dir");
        std::fs::write(p.join("s.log.0"), "b").expect("write");
        // A .gz left at the last index (from a run with -compress).
        std::fs::write(p.join("s.log.1.gz"), "old").expect("write");
        std::fs::write(p.join("s.log"), "c").expect("write");
        rotate(&d, "s", &policy(2, false), 0).expect("rotate");
        assert_eq!(std::fs::read_to_string(p.join("s.log.0")).expect("r"), "c");
        assert_eq!(std::fs::read_to_string(p.join("s.log.1")).expect("r"), "b");
        assert!(!p.join("s.log.1.gz").exists());
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn compression_and_the_cap() {
        let p = tmp("gz");
        let d = Dir::open(&p).expect("dir");
        for round in 0..4 {
            std::fs::write(p.join("s.log"), format!("line {round}\n")).expect("write");
            let pol = Policy {
                cap: Some(1000),
                ..policy(10, true)
            };
            rotate(&d, "s", &pol, 0).expect("rotate");
        }
        assert_eq!(gunzip(&p.join("s.log.0.gz")), "line 3\n");
        assert!(!p.join("s.log.0").exists());
        // A small cap keeps only the newest.
        std::fs::write(p.join("s.log"), "line 4\n").expect("write");
        let size_gz = std::fs::metadata(p.join("s.log.0.gz")).expect("stat").len();
        let pol = Policy {
            cap: Some(10 + size_gz + 5),
            ..policy(10, true)
        };
        rotate(&d, "s", &pol, 0).expect("rotate");
        assert_eq!(gunzip(&p.join("s.log.0.gz")), "line 4\n");
        assert!(!p.join("s.log.1.gz").exists());
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn a_file_that_is_not_ours_is_not_compressed() {
        let p = tmp("notours");
        let d = Dir::open(&p).expect("dir");
        std::fs::write(p.join("secret"), "precious").expect("write");
        std::fs::hard_link(p.join("secret"), p.join("s.log.0")).expect("link");
        assert!(!compress(&d, "s.log.0").expect("compress"));
        assert!(!p.join("s.log.0.gz").exists());
        assert_eq!(
            std::fs::read_to_string(p.join("secret")).expect("r"),
            "precious"
        );
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn recovery_after_a_crash_in_compression() {
        let p = tmp("recover");
        let d = Dir::open(&p).expect("dir");
        // Killed after the rename of the .gz, before the plain removal.
        std::fs::write(p.join("s.log.0"), "zero\n").expect("write");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, b"zero\n").expect("gzip");
        std::fs::write(p.join("s.log.0.gz"), enc.finish().expect("gzip")).expect("write");
        // Killed while writing a temporary; and a rotated file of a run
        // without -compress.
        std::fs::write(p.join(".s.log.1.gz.0123456789abcdef.tmp"), "half").expect("write");
        std::fs::write(p.join("s.log.1"), "one\n").expect("write");
        std::fs::write(p.join("s.log"), "current\n").expect("write");
        let r = recover(&d).expect("recover");
        assert_eq!(
            r,
            Recovered {
                has_logs: true,
                twins: 1,
                temps: 1,
            }
        );
        let mut names: Vec<String> = std::fs::read_dir(&p)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        names.sort();
        // Start-up compresses nothing: no backlog before the first record.
        assert_eq!(names, ["s.log", "s.log.0.gz", "s.log.1"]);
        assert_eq!(gunzip(&p.join("s.log.0.gz")), "zero\n");
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn a_plain_dot_0_left_by_a_crash_is_compressed_at_the_next_rotation() {
        let p = tmp("lazy");
        let d = Dir::open(&p).expect("dir");
        // Killed after SOURCE.log became .0, before its compression.
        std::fs::write(p.join("s.log.0"), "older\n").expect("write");
        std::fs::write(p.join("s.log"), "newer\n").expect("write");
        rotate(&d, "s", &policy(5, true), 0).expect("rotate");
        let mut names: Vec<String> = std::fs::read_dir(&p)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        names.sort();
        assert_eq!(names, ["s.log.0.gz", "s.log.1.gz"]);
        assert_eq!(gunzip(&p.join("s.log.0.gz")), "newer\n");
        assert_eq!(gunzip(&p.join("s.log.1.gz")), "older\n");
        let _ = std::fs::remove_dir_all(&p);
    }
}
