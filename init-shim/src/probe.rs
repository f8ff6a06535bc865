//! Is memlogd there? Connecting to a socket tells a live daemon from a
//! socket file a dead one left behind (a stale socket refuses connections),
//! and both from no socket at all.

use memlog::handover::LogSocket;
use std::fmt;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Why memlogd cannot be reached at a path.
#[derive(Debug)]
pub enum Down {
    /// Nothing at the path.
    Absent(PathBuf),
    /// A socket file nobody listens on (left by a daemon that died).
    Stale(PathBuf),
    /// Something that is not a socket.
    NotSocket(PathBuf),
    /// Any other failure (permissions, ...).
    Unreachable(PathBuf, io::Error),
}

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Down::Absent(p) => write!(f, "memlogd is not running (no socket at {})", p.display()),
            Down::Stale(p) => write!(
                f,
                "memlogd is not running ({} is a stale socket: nothing listens on it)",
                p.display()
            ),
            Down::NotSocket(p) => write!(f, "{} is not a socket", p.display()),
            Down::Unreachable(p, e) => write!(f, "cannot reach memlogd at {}: {e}", p.display()),
        }
    }
}

fn classify(path: &Path, err: io::Error) -> Down {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Down::Absent(path.to_owned()),
        Ok(m) if !m.file_type().is_socket() => Down::NotSocket(path.to_owned()),
        _ if err.kind() == io::ErrorKind::ConnectionRefused => Down::Stale(path.to_owned()),
        _ if err.kind() == io::ErrorKind::NotFound => Down::Absent(path.to_owned()),
        _ => Down::Unreachable(path.to_owned(), err),
    }
}

/// A connection to memlogd's log socket at `path`, to hand it fds and
/// learn whether it took them (`memlog::handover`: a hung memlogd costs at
/// most its `TAKE_TIMEOUT`, then the caller falls back to files).
pub fn log_socket(path: &Path) -> Result<LogSocket, Down> {
    LogSocket::connect(path).map_err(|e| classify(path, e))
}

/// A connection to memlogd's query socket at `path`.
pub fn query_socket(path: &Path) -> Result<UnixStream, Down> {
    UnixStream::connect(path).map_err(|e| classify(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixDatagram, UnixListener};

    #[test]
    fn tells_absent_stale_live_and_not_a_socket_apart() {
        let dir = std::env::temp_dir().join(format!("init-shim-probe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let (d, s) = (dir.join("d.sock"), dir.join("s.sock"));
        assert!(matches!(log_socket(&d), Err(Down::Absent(_))));
        assert!(matches!(query_socket(&s), Err(Down::Absent(_))));
        let live_d = UnixDatagram::bind(&d).expect("bind");
        let live_s = UnixListener::bind(&s).expect("bind");
        assert!(log_socket(&d).is_ok());
        assert!(query_socket(&s).is_ok());
        drop((live_d, live_s));
        assert!(matches!(log_socket(&d), Err(Down::Stale(_))));
        assert!(matches!(query_socket(&s), Err(Down::Stale(_))));
        let f = dir.join("file");
        std::fs::write(&f, b"x").expect("write");
        let e = log_socket(&f).expect_err("a file");
        assert!(matches!(e, Down::NotSocket(_)), "{e}");
        assert!(e.to_string().contains("not a socket"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
