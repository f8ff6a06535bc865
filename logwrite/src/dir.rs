//! The log directory, held open as a directory fd: every file operation is
//! relative to it (`openat`, `renameat`, ...), so a name can never leave it,
//! and a directory removed under us is noticed (creating anything in it
//! fails) instead of writes going on into unlinked files.
//!
//! Also the state files that hold an output's position, through
//! [`memlog::safefs`]: written to a fresh temporary with an unguessable name
//! (`O_CREAT | O_EXCL | O_NOFOLLOW`, so a link planted in advance is never
//! written through), then renamed over the old one, so a reader (logwrite
//! after a crash) sees either the old state or the new, never a mix; read
//! back bounded in size, refusing anything but a regular file. A `sync`
//! save also fsyncs the file and the directory.

use memlog::proto::Position;
use memlog::safefs;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Most bytes read from a state file. The file output's state names at most
/// the files open at once (256), each in a line under 240 bytes (`file SIZE
/// NAME`, NAME at most a 200-byte stem and `.log`): about 60 KiB; a remote's
/// is one line. 1 MiB leaves room to grow and bounds what a planted file
/// costs (a 286 MB state once cost 1.2 GB of memory).
pub const MAX_STATE: usize = 1 << 20;

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// An open log directory.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens `path`, creating it (and its parents) if it does not exist.
    pub fn open(path: &Path) -> io::Result<Dir> {
        if !path.is_dir() {
            std::fs::create_dir_all(path)?;
        }
        let fd = nix::fcntl::open(
            path,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err)?;
        Ok(Dir {
            fd,
            path: path.to_owned(),
        })
    }

    /// The directory fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// False once the directory has been removed.
    pub fn exists(&self) -> bool {
        fstat(&self.fd).map(|s| s.st_nlink > 0).unwrap_or(false)
    }

    /// The directory's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is at `name` (not following a link), or `None`.
    pub fn kind(&self, name: &str) -> io::Result<Option<Kind>> {
        match fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Kind::of(&st))),
            Err(nix::Error::ENOENT) => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Opens the log file `name` for appending, creating it if needed, only
    /// if it is logwrite's own: see [`memlog::safefs::open_log`] (a hard
    /// link or a FIFO there is replaced; a symlink or a directory is that
    /// source's trouble).
    pub fn open_log(&self, name: &str) -> io::Result<LogFile> {
        safefs::open_log(self.fd(), OsStr::new(name), LOG_MODE.bits())
    }

    /// Opens `name` if it is logwrite's own: a regular file with one link
    /// (for reading, or with `write` for cutting it back). `None` if there
    /// is nothing at the name, or something that is not ours to read or
    /// change (a hard link, a FIFO, a device, a symbolic link, a directory).
    pub fn open_own(&self, name: &str, write: bool) -> io::Result<Option<File>> {
        let mode = if write {
            OFlag::O_RDWR
        } else {
            OFlag::O_RDONLY
        };
        let flags =
            mode | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
        let fd = match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(
                nix::Error::ENOENT | nix::Error::ELOOP | nix::Error::EISDIR | nix::Error::ENXIO,
            ) => return Ok(None),
            Err(e) => return Err(io_err(e)),
        };
        let st = fstat(&fd).map_err(io_err)?;
        Ok(matches!(Kind::of(&st), Kind::Regular { links: 1, .. }).then(|| File::from(fd)))
    }

    /// Creates a fresh temporary for `name` (`.NAME.RANDOM.tmp`, mode
    /// 0600, exclusively and never through a link); returns its name.
    pub fn create_temp(&self, name: &str) -> io::Result<(String, File)> {
        let (tmp, fd) = safefs::create_temp(self.fd(), OsStr::new(name))?;
        // Made of `name`, which is UTF-8, and ASCII.
        let tmp = tmp
            .into_string()
            .map_err(|_| io::Error::other("temporary name"))?;
        Ok((tmp, File::from(fd)))
    }

    /// Renames `from` to `to`; `Ok(false)` if `from` does not exist.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<bool> {
        match renameat(&self.fd, from, &self.fd, to) {
            Ok(()) => Ok(true),
            Err(nix::Error::ENOENT) => Ok(false),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Removes `name`; `Ok(false)` if it did not exist.
    pub fn remove(&self, name: &str) -> io::Result<bool> {
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(nix::Error::ENOENT) => Ok(false),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Flushes the directory's entries (after renames) to disk.
    pub fn sync(&self) -> io::Result<()> {
        nix::unistd::fsync(&self.fd).map_err(io_err)
    }

    /// Replaces `name` with `data` atomically (see the module
    /// documentation). With `sync`, the file and the directory are fsynced.
    pub fn write_atomic(&self, name: &str, data: &[u8], sync: bool) -> io::Result<()> {
        safefs::replace(self.fd(), OsStr::new(name), data, sync)
    }

    /// Reads the state file `name`: `None` if it does not exist; an error
    /// if it is not a regular file or holds more than [`MAX_STATE`] bytes.
    pub fn read_state(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        safefs::read(self.fd(), OsStr::new(name), MAX_STATE)
    }

    /// Removes the temporaries of `name` a killed logwrite left behind (if
    /// older than a minute: see [`safefs::remove_stale_temps`]).
    pub fn remove_stale_temps(&self, name: &str) {
        safefs::remove_stale_temps(self.fd(), &self.path, OsStr::new(name));
    }
}

/// Why an operation on one source's file failed.
#[derive(Debug)]
pub enum Fault {
    /// Trouble of that file alone (a directory or a symbolic link at its
    /// name, its permissions, a name the filesystem refuses, `EFBIG`): that
    /// source is put aside, the others go on.
    File(io::Error),
    /// Trouble of the directory or the disk (`ENOSPC`, `EDQUOT`, `EROFS`,
    /// `EIO`, the directory removed...): the whole output fails and retries.
    Output(io::Error),
}

impl Fault {
    /// `e` from an operation on the existing `name` is that file's if its
    /// errno is one of `file`; anything else is the output's.
    pub fn of(e: io::Error, file: &[i32]) -> Fault {
        match e.raw_os_error() {
            Some(c) if file.contains(&c) => Fault::File(e),
            _ => Fault::Output(e),
        }
    }

    /// The error, with `what` in front of it.
    pub fn context(self, what: impl std::fmt::Display) -> Fault {
        let c = |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
        match self {
            Fault::File(e) => Fault::File(c(e)),
            Fault::Output(e) => Fault::Output(c(e)),
        }
    }
}

/// Log files are created `0644` (less the umask), as LinuxKit's are.
const LOG_MODE: Mode = Mode::from_bits_truncate(0o644);

pub use memlog::safefs::{Kind, LogFile};

/// What an output saved: where it stopped, and (for the file output) how
/// long each file it was writing was at that point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub position: Option<Position>,
    /// (file name, size) pairs.
    pub files: Vec<(String, u64)>,
    /// RELP: the last record that may have been sent (acknowledged or not),
    /// written before it is sent; after a kill, records up to it that are
    /// sent again are counted as possibly duplicated.
    pub sent: Option<Position>,
    /// The file output's armed triggers (see [`crate::trigger`]).
    pub armed: Vec<ArmedState>,
}

/// One armed trigger as saved: the stem it rotates, when it armed and when
/// it last matched (milliseconds since the epoch), and its quiet and
/// max-wait (milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArmedState {
    pub stem: String,
    pub at_ms: u64,
    pub last_ms: u64,
    pub quiet_ms: u64,
    pub max_wait_ms: u64,
}

const MAGIC: &str = "logwrite-state 1";

impl State {
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("{MAGIC}\n");
        match self.position {
            Some(p) => s.push_str(&format!("position {p}\n")),
            None => s.push_str("position none\n"),
        }
        for (name, size) in &self.files {
            s.push_str(&format!("file {size} {name}\n"));
        }
        if let Some(p) = self.sent {
            s.push_str(&format!("sent {p}\n"));
        }
        for a in &self.armed {
            s.push_str(&format!(
                "armed {} {} {} {} {}\n",
                a.at_ms, a.last_ms, a.quiet_ms, a.max_wait_ms, a.stem
            ));
        }
        s.into_bytes()
    }

    pub fn decode(data: &[u8]) -> Result<State, String> {
        let text = std::str::from_utf8(data).map_err(|_| "state is not UTF-8".to_string())?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("state does not start with {MAGIC:?}"));
        }
        let mut st = State::default();
        for line in lines {
            match line.split_once(' ') {
                Some(("position", "none")) => st.position = None,
                Some(("position", p)) => st.position = Some(p.parse()?),
                Some(("sent", p)) => st.sent = Some(p.parse()?),
                Some(("armed", rest)) => {
                    let bad = || format!("bad state line {line:?}");
                    let f: Vec<&str> = rest.splitn(5, ' ').collect();
                    let [at, last, quiet, max_wait, stem] = f[..] else {
                        return Err(bad());
                    };
                    let n = |s: &str| s.parse::<u64>().map_err(|_| bad());
                    if stem.contains('/') || stem.starts_with('.') || stem.is_empty() {
                        return Err(format!("bad file name in {line:?}"));
                    }
                    st.armed.push(ArmedState {
                        stem: stem.to_owned(),
                        at_ms: n(at)?,
                        last_ms: n(last)?,
                        quiet_ms: n(quiet)?,
                        max_wait_ms: n(max_wait)?,
                    });
                }
                Some(("file", rest)) => {
                    let (size, name) = rest
                        .split_once(' ')
                        .ok_or_else(|| format!("bad state line {line:?}"))?;
                    let size = size.parse().map_err(|_| format!("bad size in {line:?}"))?;
                    if name.contains('/') || name.starts_with('.') || name.is_empty() {
                        return Err(format!("bad file name in {line:?}"));
                    }
                    st.files.push((name.to_owned(), size));
                }
                _ => return Err(format!("bad state line {line:?}")),
            }
        }
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("logwrite-dir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn state_round_trip() {
        let st = State {
            position: Some(Position {
                instance: 0xabc,
                seq: 9,
            }),
            files: vec![("a.log".into(), 10), ("b%2fc.log".into(), 0)],
            sent: None,
            armed: Vec::new(),
        };
        assert_eq!(State::decode(&st.encode()), Ok(st));
        let relp = State {
            position: None,
            files: Vec::new(),
            sent: Some(Position {
                instance: 0xabc,
                seq: 12,
            }),
            armed: Vec::new(),
        };
        assert_eq!(State::decode(&relp.encode()), Ok(relp));
        let armed = State {
            armed: vec![ArmedState {
                stem: "web".into(),
                at_ms: 1,
                last_ms: 2,
                quiet_ms: 30_000,
                max_wait_ms: 300_000,
            }],
            ..State::default()
        };
        assert_eq!(State::decode(&armed.encode()), Ok(armed));
        assert!(State::decode(b"logwrite-state 1\narmed 1 2 3 4 ../x\n").is_err());
        assert!(State::decode(b"logwrite-state 1\narmed 1 2 x 4 web\n").is_err());
        assert_eq!(
            State::decode(&State::default().encode()),
            Ok(State::default())
        );
        assert!(State::decode(b"garbage").is_err());
        assert!(State::decode(b"logwrite-state 1\nfile 1 ../x\n").is_err());
    }

    #[test]
    fn atomic_writes_and_removal() {
        let p = tmp("atomic");
        let d = Dir::open(&p).expect("open");
        d.write_atomic("s", b"one", true).expect("write");
        d.write_atomic("s", b"two", false).expect("write");
        assert_eq!(d.read_state("s").expect("read"), Some(b"two".to_vec()));
        assert_eq!(d.read_state("none").expect("read"), None);
        assert_eq!(
            d.kind("s").expect("kind"),
            Some(Kind::Regular { size: 3, links: 1 })
        );
        assert!(d.rename("s", "t").expect("rename"));
        assert!(!d.rename("s", "t").expect("rename missing"));
        assert!(d.exists());
        std::fs::remove_dir_all(&p).expect("rm");
        assert!(!d.exists());
        assert!(d.open_log("x.log").is_err());
    }
}
