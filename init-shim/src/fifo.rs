//! `init-shim fifo NAME`: make a FIFO for a container runtime to open as a
//! service's stdout or stderr, and hand its read end to memlogd, as LinuxKit
//! init does for the services containerd runs.
//!
//! How it waits: it does not. The FIFO is created afresh (a FIFO, file or
//! socket already at the path is replaced: a FIFO left by an earlier start
//! of the service has no reader any more, and a writer opening it would
//! block forever, which is how LinuxKit lost a restarted service's logs),
//! its read end is opened with `O_NONBLOCK` (which never waits for a
//! writer), passed to memlogd at once, and closed here. memlogd polls it:
//! nothing happens until the runtime opens the write end, and when the
//! service ends (its last writer closes) memlogd reads to the end and closes
//! it. So every start of a service needs its own `init-shim fifo`, which
//! then gives it a fresh FIFO; nothing lingers in the background.
//!
//! The path (`DIR/NAME.log`, LinuxKit's `/var/run/NAME.log`) is printed on
//! stdout. Without memlogd (or when the FIFO cannot be made) the path
//! printed is a plain file, `LOGDIR/NAME.log`, as LinuxKit's init uses
//! then, and init-shim says why on stderr.

use argh::FromArgs;
use memlog::goflags::{self, Spec};
use memlog::handover::{LogSocket, Outcome};
use memlog::proto;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::fmt;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::{names, probe};

const SPEC: Spec = Spec {
    switches: &[],
    options: &["socket", "dir", "log-dir"],
    bytes: &["socket", "dir", "log-dir"],
    bytes_positionals: false,
};

/// Create a FIFO DIR/NAME.log for a container runtime to write a service's
/// output to, hand its read end to memlogd (records get source NAME), and
/// print its path. A FIFO or file already at the path is replaced. Run it
/// again for every start of the service. Without memlogd, a plain file
/// LOGDIR/NAME.log is made instead and its path printed.
/// Flags may be written -name value, --name value, -name=value or --name=value.
///
/// Example: `out=$(init-shim fifo getty.out); err=$(init-shim fifo getty)`
#[derive(FromArgs, Debug)]
struct Args {
    /// memlogd's log socket (default /var/run/linuxkit-external-logging.sock)
    #[argh(option, default = "proto::DEFAULT_LOG_SOCKET.into()")]
    socket: String,
    /// directory of the FIFO (default /var/run, as LinuxKit's init)
    #[argh(option, default = "\"/var/run\".into()")]
    dir: String,
    /// directory of the fallback file when memlogd is absent (default /var/log)
    #[argh(option, default = "\"/var/log\".into()")]
    log_dir: String,
    /// the log name (memlogd source), e.g. SERVICE.out for stdout, SERVICE for stderr
    #[argh(positional)]
    name: String,
}

/// Why no FIFO was made.
#[derive(Debug)]
pub enum Error {
    /// A directory (or something else that is not ours to remove) is in the way.
    InTheWay(PathBuf, &'static str),
    Remove(PathBuf, io::Error),
    Mkfifo(PathBuf, nix::Error),
    Open(PathBuf, nix::Error),
    /// memlogd's socket took the connection but not the fd.
    Send(PathBuf, io::Error),
    /// memlogd refused the fd (say its inputs are full): nobody would read it.
    Refused(PathBuf, String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InTheWay(p, what) => {
                write!(f, "{} is {what}; not replacing it", p.display())
            }
            Error::Remove(p, e) => write!(f, "cannot remove the old {}: {e}", p.display()),
            Error::Mkfifo(p, e) => write!(f, "cannot create FIFO {}: {e}", p.display()),
            Error::Open(p, e) => write!(f, "cannot open FIFO {}: {e}", p.display()),
            Error::Send(p, e) => write!(f, "cannot hand memlogd the FIFO {}: {e}", p.display()),
            Error::Refused(p, why) => write!(f, "memlogd refused the FIFO {}: {why}", p.display()),
        }
    }
}

/// Removes whatever an earlier start left at `path` (FIFO, file, socket,
/// symlink), but never a directory or a device.
fn clear(path: &Path) -> Result<(), Error> {
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Remove(path.to_owned(), e)),
    };
    let t = m.file_type();
    if t.is_dir() {
        return Err(Error::InTheWay(path.to_owned(), "a directory"));
    }
    if t.is_block_device() || t.is_char_device() {
        return Err(Error::InTheWay(path.to_owned(), "a device"));
    }
    std::fs::remove_file(path).map_err(|e| Error::Remove(path.to_owned(), e))
}

/// Creates a fresh FIFO at `path` and passes its read end to memlogd. If
/// memlogd refuses it, the FIFO is removed again: a service opening it for
/// writing would block forever with no reader.
fn make(sock: &mut LogSocket, path: &Path, name: &str) -> Result<(), Error> {
    clear(path)?;
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600))
        .map_err(|e| Error::Mkfifo(path.to_owned(), e))?;
    let rd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Open(path.to_owned(), e))?;
    let res = match sock.hand_over(name.as_bytes(), &[rd.as_fd()]) {
        Ok(Outcome::Taken | Outcome::Unconfirmed) => return Ok(()),
        Ok(Outcome::Refused(why)) => Error::Refused(path.to_owned(), why),
        Err(e) => Error::Send(path.to_owned(), e),
    };
    let _ = std::fs::remove_file(path);
    Err(res)
}

/// Prints the path the runtime is to open: the one result of this command.
fn print_path(p: &Path) -> u8 {
    match writeln!(io::stdout(), "{}", p.display()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("init-shim fifo: cannot print {}: {e}", p.display());
            1
        }
    }
}

fn run(a: &Args) -> u8 {
    if let Err(e) = names::check(&a.name) {
        eprintln!("init-shim fifo: {e}");
        return 2;
    }
    let path = names::log_file(&goflags::path(&a.dir), &a.name);
    let reason = match probe::log_socket(&goflags::path(&a.socket)) {
        Ok(mut sock) => match make(&mut sock, &path, &a.name) {
            Ok(()) => return print_path(&path),
            // The service's output must go somewhere all the same.
            Err(e) => e.to_string(),
        },
        Err(down) => down.to_string(),
    };
    let dir = &goflags::path(&a.log_dir);
    let file = names::log_file(dir, &a.name);
    match names::open_log_file(dir, &a.name) {
        Ok(_) => {
            eprintln!(
                "init-shim: {reason}; logging {} to {}",
                a.name,
                file.display()
            );
            print_path(&file)
        }
        Err(e) => {
            eprintln!(
                "init-shim fifo: {reason}, and cannot open {}: {e}",
                file.display()
            );
            1
        }
    }
}

/// `init-shim fifo ARGS`: the exit status.
pub fn main(argv: &[std::ffi::OsString]) -> u8 {
    let args: Args = goflags::parse_or_exit("init-shim fifo", argv, &SPEC);
    run(&args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clears_files_fifos_and_symlinks_but_not_directories() {
        let dir = std::env::temp_dir().join(format!("init-shim-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = dir.join("f");
        std::fs::write(&f, b"x").expect("write");
        clear(&f).expect("file");
        assert!(!f.exists());
        nix::unistd::mkfifo(&f, Mode::from_bits_truncate(0o600)).expect("mkfifo");
        clear(&f).expect("fifo");
        std::os::unix::fs::symlink("/nonexistent", &f).expect("symlink");
        clear(&f).expect("dangling symlink");
        clear(&f).expect("nothing there");
        let d = dir.join("d");
        std::fs::create_dir(&d).expect("mkdir");
        assert!(matches!(clear(&d), Err(Error::InTheWay(..))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
