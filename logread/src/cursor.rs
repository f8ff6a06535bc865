//! `--cursor-file`: the position of the last record handled, as
//! `INSTANCE:SEQ` (memlogd's instance id in hex, a sequence number), read at
//! start and replaced as records are printed. It is written only after the
//! records up to it reached stdout: a crash may print a record again, never
//! skip one.
//!
//! The file lives in a directory other users may be able to write (a
//! shared `/var/run`, `/tmp`), so it goes through `memlog::safefs`: it is
//! replaced through a temporary with an unguessable name created with
//! `O_EXCL | O_NOFOLLOW` beside it, then renamed over it (a reader of the
//! file, or a logread killed at any moment, sees the old position or the new
//! one, never half; a link planted at a temporary's name is never written
//! through), and read back only if it is a regular file of at most
//! [`MAX_SIZE`] bytes (a FIFO, `/dev/zero` or a huge file in its place is an
//! error, not a hang or a memory blow-up).

use memlog::proto::Position;
use memlog::safefs;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Largest cursor file read (a position is about 40 bytes).
pub const MAX_SIZE: usize = 4096;

/// The cursor file of one run.
#[derive(Debug)]
pub struct CursorFile {
    path: PathBuf,
    dir_path: PathBuf,
    name: OsString,
    /// The directory, opened at the first use.
    dir: Option<OwnedFd>,
    written: Option<Position>,
}

fn ctx(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl CursorFile {
    pub fn new(path: &Path) -> CursorFile {
        let (dir, name) = match safefs::split(path) {
            Ok((d, n)) => (d.to_path_buf(), n.to_owned()),
            Err(_) => (PathBuf::from("."), path.as_os_str().to_owned()),
        };
        CursorFile {
            path: path.to_path_buf(),
            dir_path: dir,
            name,
            dir: None,
            written: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir(&mut self) -> io::Result<&OwnedFd> {
        if self.dir.is_none() {
            let d = safefs::open_dir(&self.dir_path).map_err(|e| {
                ctx(
                    e,
                    format!("cannot open the directory {}", self.dir_path.display()),
                )
            })?;
            safefs::remove_stale_temps(d.as_fd(), &self.dir_path, &self.name);
            self.dir = Some(d);
        }
        self.dir
            .as_ref()
            .ok_or_else(|| io::Error::other("no directory"))
    }

    /// The saved position; `None` if the file (or its directory) does not
    /// exist or is empty.
    pub fn load(&mut self) -> Result<Option<Position>, String> {
        let shown = self.path.display().to_string();
        let name = self.name.clone();
        let dir = match self.dir() {
            Ok(d) => d.as_fd(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let data = match safefs::read(dir, &name, MAX_SIZE) {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(None),
            Err(e) => return Err(format!("cannot read {shown}: {e}")),
        };
        let text = String::from_utf8_lossy(&data);
        if text.trim().is_empty() {
            return Ok(None);
        }
        let p: Position = text.parse().map_err(|e| format!("{shown}: {e}"))?;
        self.written = Some(p);
        Ok(Some(p))
    }

    /// Saves `p` unless it is what the file already holds.
    pub fn save(&mut self, p: Position) -> io::Result<()> {
        if self.written == Some(p) {
            return Ok(());
        }
        let shown = self.path.display().to_string();
        let name = self.name.clone();
        let res = self
            .dir()
            .and_then(|d| safefs::replace(d.as_fd(), &name, format!("{p}\n").as_bytes(), false));
        if let Err(e) = res {
            return Err(ctx(e, format!("cannot save the position in {shown}")));
        }
        self.written = Some(p);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("logread-cursor-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn save_then_load() {
        let dir = tmp("save");
        let path = dir.join("c");
        let mut c = CursorFile::new(&path);
        assert_eq!(c.load(), Ok(None));
        let p = Position {
            instance: 0xab,
            seq: 9,
        };
        c.save(p).expect("save");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "00000000000000ab:9\n"
        );
        assert_eq!(CursorFile::new(&path).load(), Ok(Some(p)));
        std::fs::write(&path, "garbage").expect("write");
        assert!(CursorFile::new(&path).load().is_err());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&dir).expect("ls").flatten().collect();
        assert_eq!(names.len(), 1);
        // A missing directory is no position yet.
        assert_eq!(CursorFile::new(&dir.join("none/c")).load(), Ok(None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_link_planted_at_the_old_temporary_name_is_not_written_through() {
        let dir = tmp("planted");
        let victim = dir.join("victim");
        std::fs::write(&victim, "root's secret\n").expect("write");
        let path = dir.join("cursor");
        // The name the old code used: PATH.<pid>.tmp, opened with O_TRUNC.
        std::os::unix::fs::symlink(
            &victim,
            dir.join(format!("cursor.{}.tmp", std::process::id())),
        )
        .expect("symlink");
        let mut c = CursorFile::new(&path);
        c.save(Position {
            instance: 1,
            seq: 2,
        })
        .expect("save");
        assert_eq!(
            std::fs::read_to_string(&victim).expect("read"),
            "root's secret\n"
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "0000000000000001:2\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_a_small_regular_file_is_read() {
        let dir = tmp("odd");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let e = CursorFile::new(&fifo).load().expect_err("a FIFO");
        assert!(e.contains("not a regular file"), "{e}");
        let zero = dir.join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
        assert!(CursorFile::new(&zero).load().is_err());
        let big = dir.join("big");
        std::fs::write(&big, vec![b'0'; MAX_SIZE + 1]).expect("write");
        let e = CursorFile::new(&big).load().expect_err("too big");
        assert!(e.contains("larger than"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
