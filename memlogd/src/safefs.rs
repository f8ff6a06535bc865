//! Small files a client keeps beside its data (logread's cursor file,
//! logwrite's state files): replaced atomically, read back bounded, and
//! never a way in for another local user who can write the same directory.
//!
//! - Replacing writes a temporary file in the same directory whose name
//!   ends in 64 random bits, created with `O_CREAT | O_EXCL | O_NOFOLLOW`
//!   (mode 0600): a name planted in advance (a symlink or a hard link to a
//!   root-owned file) is never opened, only refused, and another name is
//!   tried. The temporary is then renamed over the file, so a reader sees
//!   the old content or the new, never a mix; with `sync` the file and the
//!   directory are fsynced first.
//! - Reading opens with `O_NOFOLLOW | O_NONBLOCK` (a FIFO in its place does
//!   not hang the open), refuses anything but a regular file (`/dev/zero`,
//!   a FIFO, a directory), and reads at most a given number of bytes.
//!
//! Every operation is relative to a directory fd, so the directory a path
//! named at start is the one used later, whatever is renamed meanwhile.

use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Opens `path` as a directory to work in.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)
}

/// The directory of `path` (`.` for a bare name) and its file name.
pub fn split(path: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// Longest part of the final name kept in a temporary's name (a file name
/// is at most 255 bytes).
const TEMP_NAME_KEEP: usize = 200;
const TEMP_SUFFIX: &str = ".tmp";

/// `.NAME.XXXXXXXXXXXXXXXX.tmp`, with 64 random bits.
fn temp_name(name: &OsStr) -> OsString {
    let b = name.as_bytes();
    let mut t = OsString::from(".");
    t.push(OsStr::from_bytes(&b[..b.len().min(TEMP_NAME_KEEP)]));
    t.push(format!(".{:016x}{TEMP_SUFFIX}", crate::sys::random_u64()));
    t
}

/// True if `entry` is a temporary [`replace`] makes for `name`.
fn is_temp_of(entry: &[u8], name: &OsStr) -> bool {
    let b = name.as_bytes();
    let stem = &b[..b.len().min(TEMP_NAME_KEEP)];
    let Some(rest) = entry
        .strip_prefix(b".")
        .and_then(|r| r.strip_prefix(stem))
        .and_then(|r| r.strip_prefix(b"."))
        .and_then(|r| r.strip_suffix(TEMP_SUFFIX.as_bytes()))
    else {
        return false;
    };
    rest.len() == 16 && rest.iter().all(u8::is_ascii_hexdigit)
}

/// Replaces `dir/name` with `data`, atomically (see the module
/// documentation). The new file has mode 0600.
pub fn replace(dir: BorrowedFd<'_>, name: &OsStr, data: &[u8], sync: bool) -> io::Result<()> {
    let (tmp, fd) = create_temp(dir, name)?;
    let mut f = File::from(fd);
    let res = f
        .write_all(data)
        .and_then(|()| if sync { f.sync_all() } else { Ok(()) });
    drop(f);
    let res = res.and_then(|()| renameat(dir, tmp.as_os_str(), dir, name).map_err(io_err));
    if let Err(e) = res {
        let _ = unlinkat(dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        return Err(e);
    }
    if sync {
        nix::unistd::fsync(dir).map_err(io_err)?;
    }
    Ok(())
}

/// Creates a fresh temporary for `name` in `dir` (exclusively, never
/// following a link), returning its name and fd.
pub fn create_temp(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<(OsString, OwnedFd)> {
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for _ in 0..8 {
        let tmp = temp_name(name);
        match openat(
            dir,
            tmp.as_os_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => return Ok((tmp, fd)),
            // Someone holds this name (a planted link): try another.
            Err(nix::Error::EEXIST) => last = io_err(nix::Error::EEXIST),
            Err(e) => return Err(io_err(e)),
        }
    }
    Err(last)
}

/// Removes temporaries of `name` in `dir` (at `dir_path`) that a process
/// killed between creating and renaming one left behind, if they are older
/// than a minute (a younger one may be another process's, about to be
/// renamed). Best effort.
pub fn remove_stale_temps(dir: BorrowedFd<'_>, dir_path: &Path, name: &OsStr) {
    let Ok(entries) = std::fs::read_dir(dir_path) else {
        return;
    };
    let old = SystemTime::now() - Duration::from_secs(60);
    for e in entries.flatten() {
        let n = e.file_name();
        if !is_temp_of(n.as_bytes(), name) {
            continue;
        }
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < old);
        if stale {
            let _ = unlinkat(dir, n.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// Reads `dir/name`: `None` if it does not exist; an error if it is not a
/// regular file (a symlink, FIFO, device or directory) or holds more than
/// `max` bytes.
pub fn read(dir: BorrowedFd<'_>, name: &OsStr, max: usize) -> io::Result<Option<Vec<u8>>> {
    let fd = match openat(
        dir,
        name,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) => return Ok(None),
        Err(nix::Error::ELOOP) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "it is a symbolic link, not a regular file",
            ))
        }
        Err(e) => return Err(io_err(e)),
    };
    let st = fstat(fd.as_fd()).map_err(io_err)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "it is not a regular file",
        ));
    }
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it is larger than {max} bytes"),
        )
    };
    if u64::try_from(st.st_size).unwrap_or(u64::MAX) > max as u64 {
        return Err(too_big());
    }
    let mut v = Vec::new();
    File::from(fd).take(max as u64 + 1).read_to_end(&mut v)?;
    if v.len() > max {
        return Err(too_big());
    }
    Ok(Some(v))
}

/// What is at a name in a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regular { size: u64, links: u64 },
    Directory,
    Symlink,
    Fifo,
    Socket,
    Device,
}

impl Kind {
    // nlink_t is u64 here but u32 on other targets (aarch64).
    #[allow(clippy::useless_conversion)]
    pub fn of(st: &nix::sys::stat::FileStat) -> Kind {
        let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        match fmt {
            SFlag::S_IFREG => Kind::Regular {
                size: u64::try_from(st.st_size).unwrap_or(0),
                links: u64::from(st.st_nlink),
            },
            SFlag::S_IFDIR => Kind::Directory,
            SFlag::S_IFLNK => Kind::Symlink,
            SFlag::S_IFIFO => Kind::Fifo,
            SFlag::S_IFSOCK => Kind::Socket,
            _ => Kind::Device,
        }
    }

    /// "a FIFO", ... (for messages).
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Regular { .. } => "a regular file",
            Kind::Directory => "a directory",
            Kind::Symlink => "a symbolic link",
            Kind::Fifo => "a FIFO",
            Kind::Socket => "a socket",
            Kind::Device => "a device",
        }
    }
}

/// What is at `dir/name` (not following a symlink), or `None`.
pub fn kind(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<Kind>> {
    match nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(Kind::of(&st))),
        Err(nix::Error::ENOENT) => Ok(None),
        Err(e) => Err(io_err(e)),
    }
}

/// A log file open for appending ([`open_log`]).
#[derive(Debug)]
pub struct LogFile {
    pub file: File,
    /// Its size when opened.
    pub size: u64,
    /// Why what was at the name was replaced by a new file, if it was.
    pub replaced: Option<String>,
}

/// Opens the log file `dir/name` for appending, creating it (with `mode`)
/// if needed, as a root-run log writer must.
///
/// Appending to whatever is at the name would be appending to someone
/// else's file: a hard link to a file of another user, or a FIFO or device
/// planted there. So what is opened must be a regular file with one link;
/// anything else that can be opened is unlinked and a new file created in
/// its place (`O_EXCL`), and [`LogFile::replaced`] says why; the other
/// name's content is never touched. A symbolic link (`ELOOP`) or a
/// directory (`EISDIR`) at the name is an error, not replaced.
pub fn open_log(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<LogFile> {
    let mode = Mode::from_bits_truncate(mode);
    let flags = OFlag::O_WRONLY
        | OFlag::O_APPEND
        | OFlag::O_CLOEXEC
        | OFlag::O_NOFOLLOW
        | OFlag::O_NOCTTY
        // A FIFO must not hang the open (ENXIO without a reader).
        | OFlag::O_NONBLOCK;
    let why = match openat(dir, name, flags | OFlag::O_CREAT, mode) {
        Ok(fd) => {
            let st = fstat(fd.as_fd()).map_err(io_err)?;
            match Kind::of(&st) {
                Kind::Regular { size, links: 1 } => {
                    // O_NONBLOCK means nothing to a regular file.
                    return Ok(LogFile {
                        file: File::from(fd),
                        size,
                        replaced: None,
                    });
                }
                Kind::Regular { links, .. } => {
                    format!("had {links} links (another name for the same file exists)")
                }
                k => format!("was {}, not a regular file", k.describe()),
            }
        }
        Err(nix::Error::ENXIO) => match kind(dir, name)? {
            Some(k) => format!("was {}, not a regular file", k.describe()),
            None => return Err(io_err(nix::Error::ENXIO)),
        },
        Err(e) => return Err(io_err(e)),
    };
    unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(io_err)?;
    let fd = openat(dir, name, flags | OFlag::O_CREAT | OFlag::O_EXCL, mode).map_err(io_err)?;
    Ok(LogFile {
        file: File::from(fd),
        size: 0,
        replaced: Some(why),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("memlog-safefs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    }

    #[test]
    fn replace_then_read_leaves_no_temporary() {
        let p = tmp("replace");
        let d = open_dir(&p).expect("dir");
        let n = OsStr::new("state");
        assert_eq!(read(d.as_fd(), n, 100).expect("read"), None);
        replace(d.as_fd(), n, b"one", true).expect("replace");
        replace(d.as_fd(), n, b"two", false).expect("replace");
        assert_eq!(
            read(d.as_fd(), n, 100).expect("read"),
            Some(b"two".to_vec())
        );
        let names: Vec<_> = std::fs::read_dir(&p).expect("ls").flatten().collect();
        assert_eq!(names.len(), 1);
        let mode = std::fs::metadata(p.join("state")).expect("stat").mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn a_planted_link_is_never_written_through() {
        let p = tmp("planted");
        let d = open_dir(&p).expect("dir");
        let victim = p.join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        // Links at the names an attacker can guess: the old fixed ones.
        std::os::unix::fs::symlink(&victim, p.join("cursor.tmp")).expect("symlink");
        std::fs::hard_link(&victim, p.join("cursor.1.tmp")).expect("link");
        replace(d.as_fd(), OsStr::new("cursor"), b"pos", false).expect("replace");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        // A symlink in place of the file itself is replaced, not followed.
        std::os::unix::fs::symlink(&victim, p.join("cur2")).expect("symlink");
        replace(d.as_fd(), OsStr::new("cur2"), b"pos", false).expect("replace");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        assert!(!std::fs::symlink_metadata(p.join("cur2"))
            .expect("stat")
            .file_type()
            .is_symlink());
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn reads_refuse_what_is_not_a_small_regular_file() {
        let p = tmp("read");
        let d = open_dir(&p).expect("dir");
        std::fs::write(p.join("big"), vec![b'x'; 101]).expect("write");
        assert!(read(d.as_fd(), OsStr::new("big"), 100).is_err());
        assert!(read(d.as_fd(), OsStr::new("big"), 101).is_ok());
        nix::unistd::mkfifo(&p.join("fifo"), Mode::from_bits_truncate(0o600)).expect("fifo");
        let e = read(d.as_fd(), OsStr::new("fifo"), 100).expect_err("a FIFO");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        std::os::unix::fs::symlink("/dev/zero", p.join("zero")).expect("symlink");
        assert!(read(d.as_fd(), OsStr::new("zero"), 100).is_err());
        let null = open_dir(Path::new("/dev")).expect("/dev");
        assert!(read(null.as_fd(), OsStr::new("zero"), 100).is_err());
        std::fs::create_dir(p.join("sub")).expect("mkdir");
        assert!(read(d.as_fd(), OsStr::new("sub"), 100).is_err());
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn stale_temporaries_are_recognised() {
        let n = OsStr::new(".logwrite.state");
        let t = temp_name(n);
        assert!(is_temp_of(t.as_bytes(), n));
        assert!(!is_temp_of(b"..logwrite.state.tmp", n));
        assert!(!is_temp_of(b".other.0123456789abcdef.tmp", n));
        let long = OsString::from("x".repeat(300));
        assert!(temp_name(&long).len() < 255);
        assert!(is_temp_of(temp_name(&long).as_bytes(), &long));
    }

    #[test]
    fn a_log_file_that_is_not_ours_is_replaced_never_written_through() {
        let p = tmp("log");
        let d = open_dir(&p).expect("dir");
        let victim = p.join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        std::fs::hard_link(&victim, p.join("svc.log")).expect("link");
        let mut lf = open_log(d.as_fd(), OsStr::new("svc.log"), 0o644).expect("open");
        assert!(
            lf.replaced
                .as_deref()
                .is_some_and(|w| w.contains("2 links")),
            "{lf:?}"
        );
        lf.file.write_all(b"ours\n").expect("write");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        assert_eq!(std::fs::read(p.join("svc.log")).expect("read"), b"ours\n");
        // Ours now: opened as it is, appended to.
        let lf = open_log(d.as_fd(), OsStr::new("svc.log"), 0o644).expect("open");
        assert_eq!((lf.replaced, lf.size), (None, 5));
        // A symlink or a directory is an error, never followed.
        std::os::unix::fs::symlink(&victim, p.join("l.log")).expect("symlink");
        assert!(open_log(d.as_fd(), OsStr::new("l.log"), 0o644).is_err());
        std::fs::create_dir(p.join("d.log")).expect("mkdir");
        assert!(open_log(d.as_fd(), OsStr::new("d.log"), 0o644).is_err());
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        let _ = std::fs::remove_dir_all(&p);
    }

    #[test]
    fn split_names_the_directory() {
        assert_eq!(
            split(Path::new("/a/b/c")).expect("split"),
            (Path::new("/a/b"), OsStr::new("c"))
        );
        assert_eq!(
            split(Path::new("c")).expect("split"),
            (Path::new("."), OsStr::new("c"))
        );
        assert!(split(Path::new("/")).is_err());
    }
}
