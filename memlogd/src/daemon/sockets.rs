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
    Permissions { path: PathBuf, err: io::Error },
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
            SocketError::Permissions { path, err } => {
                write!(
                    f,
                    "cannot set the mode or group of {}: {err}",
                    path.display()
                )
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
pub(super) fn clear_stale(path: &Path, stream: bool) -> Result<(), SocketError> {
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

/// Who may connect to a socket memlogd binds: the file's mode and group.
/// Connecting to a Unix socket needs write permission on its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub mode: u32,
    /// Group owner; `None` keeps memlogd's own group.
    pub group: Option<u32>,
}

/// Binds `path` (replacing a stale socket file) so that it is never more
/// open than `access` says, not even for a moment: the socket is created
/// under umask 0177 (owner only), then given its group and mode. Returns
/// the fd and the guard that removes the path again.
pub fn bind_path(
    path: &Path,
    access: Access,
    stream: bool,
    bind: impl Fn(&Path) -> io::Result<OwnedFd>,
) -> Result<(OwnedFd, PathGuard), SocketError> {
    clear_stale(path, stream)?;
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = bind(path);
    nix::sys::stat::umask(old);
    let fd = bound.map_err(|err| SocketError::Bind {
        path: path.to_owned(),
        err,
    })?;
    let guard = PathGuard::new(Some(path.to_owned()));
    let perm = |err: io::Error| SocketError::Permissions {
        path: path.to_owned(),
        err,
    };
    if let Some(gid) = access.group {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .map_err(|e| perm(e.into()))?;
    }
    std::fs::set_permissions(
        path,
        std::os::unix::fs::PermissionsExt::from_mode(access.mode & 0o7777),
    )
    .map_err(perm)?;
    Ok((fd, guard))
}

/// Binds (or adopts) the log socket, non-blocking.
pub fn log_socket(src: &SocketSource, access: Access) -> Result<Bound, SocketError> {
    socket(src, "log", access, false, |p| {
        UnixDatagram::bind(p).map(OwnedFd::from)
    })
}

/// Binds (or adopts) the query socket, non-blocking (the caller listens).
pub fn query_socket(src: &SocketSource, access: Access) -> Result<Bound, SocketError> {
    socket(src, "query", access, true, |p| {
        UnixListener::bind(p).map(OwnedFd::from)
    })
}

fn socket(
    src: &SocketSource,
    what: &'static str,
    access: Access,
    stream: bool,
    bind: impl Fn(&Path) -> io::Result<OwnedFd>,
) -> Result<Bound, SocketError> {
    let b = match src {
        SocketSource::Path(p) => {
            let (fd, path) = bind_path(p, access, stream, bind)?;
            Bound { fd, path }
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
