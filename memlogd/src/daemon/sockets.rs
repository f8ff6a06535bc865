//! The two listening sockets: bound from a path or inherited as fds, and
//! removed again on exit when this process is responsible for the path.

use super::config::SocketSource;
use crate::sys;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// A socket that could not be set up.
#[derive(Debug)]
pub enum SocketError {
    Bind { path: PathBuf, err: io::Error },
    InUse { path: PathBuf },
    Inherit { fd: i32, err: io::Error },
    Configure { what: &'static str, err: io::Error },
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketError::Bind { path, err } => write!(f, "cannot bind {}: {err}", path.display()),
            SocketError::InUse { path } => write!(
                f,
                "cannot bind {}: a running daemon is already listening there",
                path.display()
            ),
            SocketError::Inherit { fd, err } => write!(f, "cannot use inherited fd {fd}: {err}"),
            SocketError::Configure { what, err } => {
                write!(f, "cannot configure the {what} socket: {err}")
            }
        }
    }
}

impl std::error::Error for SocketError {}

/// Removes a socket path when dropped: however the daemon ends (a clean
/// stop, or a start that fails half way), the paths it owns go with it.
#[derive(Debug, Default)]
pub struct PathGuard(Option<PathBuf>);

impl PathGuard {
    pub fn new(p: Option<PathBuf>) -> PathGuard {
        PathGuard(p)
    }
    /// Keeps the path (its socket now belongs to another process).
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for PathGuard {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A listening socket and the guard of its path.
#[derive(Debug)]
pub struct Bound {
    pub fd: OwnedFd,
    pub path: PathGuard,
}

/// A socket file left behind by a daemon that died is removed so a restart
/// can bind; a live one is an error.
fn clear_stale(path: &Path, stream: bool) -> Result<(), SocketError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Ok(()); // bind will report EADDRINUSE with the path
    }
    let live = if stream {
        UnixStream::connect(path).is_ok()
    } else {
        UnixDatagram::unbound()
            .and_then(|s| s.connect(path))
            .is_ok()
    };
    if live {
        return Err(SocketError::InUse {
            path: path.to_owned(),
        });
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Binds (or adopts) the log socket, non-blocking.
pub fn log_socket(src: &SocketSource) -> Result<Bound, SocketError> {
    socket(src, "log", false, |p| {
        UnixDatagram::bind(p).map(OwnedFd::from)
    })
}

/// Binds (or adopts) the query socket, non-blocking (the caller listens).
pub fn query_socket(src: &SocketSource) -> Result<Bound, SocketError> {
    socket(src, "query", true, |p| {
        UnixListener::bind(p).map(OwnedFd::from)
    })
}

fn socket(
    src: &SocketSource,
    what: &'static str,
    stream: bool,
    bind: impl Fn(&Path) -> io::Result<OwnedFd>,
) -> Result<Bound, SocketError> {
    let b = match src {
        SocketSource::Path(p) => {
            clear_stale(p, stream)?;
            let fd = bind(p).map_err(|err| SocketError::Bind {
                path: p.clone(),
                err,
            })?;
            Bound {
                fd,
                path: PathGuard::new(Some(p.clone())),
            }
        }
        SocketSource::Fd { fd, remove } => Bound {
            fd: sys::adopt_inherited_fd(*fd)
                .map_err(|err| SocketError::Inherit { fd: *fd, err })?,
            path: PathGuard::new(remove.clone()),
        },
    };
    configure(&b, what)?;
    Ok(b)
}

fn configure(b: &Bound, what: &'static str) -> Result<(), SocketError> {
    sys::set_nonblocking(b.fd.as_fd(), true).map_err(|err| SocketError::Configure { what, err })?;
    sys::set_cloexec(b.fd.as_fd(), true).map_err(|err| SocketError::Configure { what, err })
}
