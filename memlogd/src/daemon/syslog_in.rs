//! `/dev/log`-style syslog sockets (datagram and stream) and the kernel
//! log: opened at start as the flags ask, read by the loop like any input.

use super::inputs::{conn_uid, Kind, ReadHow, SyslogConn, KMSG_SOURCE};
use super::slab::Key;
use super::sockets::{bind_path, Access, PathGuard, SocketError};
use super::{Daemon, KIND_INPUT};
use crate::{kmsg, meta, sys, timefmt};
use nix::fcntl::{open, OFlag};
use nix::sys::epoll::{EpollEvent, EpollFlags};
use nix::sys::stat::{fstat, Mode, SFlag};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Opens the kernel-log FIFO at `path` again, refusing whatever else the
/// path may have become meanwhile.
fn reopen_fifo(path: &Path) -> io::Result<OwnedFd> {
    let fd = open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let st = fstat(&fd)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFIFO {
        return Err(io::Error::other("it is no longer a FIFO"));
    }
    Ok(fd)
}

/// Most datagrams taken from one syslog socket per loop turn: then the
/// loop serves every other ready input and reader before it reads on.
const DATAGRAMS_PER_TURN: usize = 256;

/// Datagrams one `recvmmsg` takes. The kernel queues at most
/// `net.unix.max_dgram_qlen` + 1 datagrams per socket (11 by default), so
/// more slots would rarely fill.
pub(super) const BATCH: usize = 16;

/// Longest datagram kept whole; the rest of a longer one is cut off and the
/// record marked truncated. Each of the [`BATCH`] slots has this size, but
/// only the pages that long datagrams reach are ever touched, and those are
/// given back at the end of the turn (`DgramBatch::trim`): about a page of
/// each slot stays resident.
pub(super) const DATAGRAM_MAX: usize = 64 * 1024;

/// The syslog sockets memlogd bound, and their paths (removed on exit).
#[derive(Default)]
pub struct SyslogSockets {
    pub dgram: Vec<(OwnedFd, PathGuard)>,
    pub stream: Vec<(UnixListener, PathGuard)>,
    /// The receive slots the datagram sockets share (one is read at a
    /// time); allocated only when there is a datagram socket.
    pub batch: Option<sys::DgramBatch>,
}

/// Binds every `-syslog` and `-syslog-stream` path with `access` (by
/// default mode 0666: any local process may log, as with /dev/log).
pub fn bind(
    dgram: &[PathBuf],
    stream: &[PathBuf],
    access: Access,
) -> Result<SyslogSockets, SocketError> {
    let mut out = SyslogSockets::default();
    let conf = |err| SocketError::Configure {
        what: "syslog",
        err,
    };
    for p in dgram {
        let (fd, guard) = bind_path(p, access, false, |p| {
            UnixDatagram::bind(p).map(OwnedFd::from)
        })?;
        sys::set_nonblocking(fd.as_fd(), true).map_err(conf)?;
        sys::set_passcred(fd.as_fd()).map_err(conf)?;
        out.dgram.push((fd, guard));
    }
    if !out.dgram.is_empty() {
        out.batch = Some(sys::DgramBatch::new(BATCH, DATAGRAM_MAX));
    }
    for p in stream {
        let (fd, guard) = bind_path(p, access, true, |p| {
            UnixListener::bind(p).map(OwnedFd::from)
        })?;
        let l = UnixListener::from(fd);
        l.set_nonblocking(true).map_err(conf)?;
        out.stream.push((l, guard));
    }
    Ok(out)
}

/// Most stream syslog connections one non-root uid may hold: a quarter of
/// `-max-syslog-conns` (at least 1), so that one user cannot take them all.
pub(super) fn per_uid_conns(max: usize) -> usize {
    (max / 4).max(1)
}

impl Daemon {
    /// Datagrams on syslog socket `i`, taken [`BATCH`] at a time
    /// (`recvmmsg`) and stored straight from the batch's slots. Returns to
    /// the loop when the socket is empty (a short batch says so without
    /// another call) or after [`DATAGRAMS_PER_TURN`], so that a flood on
    /// one socket leaves every other input and reader its turn.
    pub(super) fn on_syslog_dgram(&mut self, i: usize) {
        let Some(mut batch) = self.syslog.batch.take() else {
            return;
        };
        let mut taken = 0;
        while taken < DATAGRAMS_PER_TURN {
            let Some((fd, _)) = self.syslog.dgram.get(i) else {
                break;
            };
            match batch.recv(fd.as_fd(), false) {
                Ok(n) => {
                    // One receive time for what one call received.
                    let now = timefmt::now_ns();
                    let mut base = meta::MetaBuf::default();
                    for k in 0..n {
                        let Some((raw, d)) = batch.get(k) else {
                            break;
                        };
                        base.clear();
                        if let Some(c) = d.creds {
                            base.creds(c);
                        }
                        self.store_syslog(now, raw, d.payload_truncated, &base, d.creds);
                    }
                    taken += n;
                    if n < batch.capacity() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.note(format!("syslog socket: receive failed: {e}"));
                    break;
                }
            }
        }
        // Long datagrams do not leave their pages resident.
        batch.trim();
        self.syslog.batch = Some(batch);
    }

    /// A connection on stream syslog socket `i`: it becomes an input.
    pub(super) fn on_syslog_accept(&mut self, i: usize) {
        for _ in 0..64 {
            let Some((l, _)) = self.syslog.stream.get(i) else {
                return;
            };
            match l.accept() {
                Ok((s, _)) => {
                    let creds = sys::peer_creds(s.as_fd());
                    let uid = conn_uid(creds);
                    let per_uid = self.syslog_uids.get(&uid).copied().unwrap_or(0);
                    let cap = per_uid_conns(self.cfg.max_syslog_conns);
                    if uid != 0 && per_uid as usize >= cap {
                        self.counters.syslog_conns_refused += 1;
                        self.note(format!(
                            "refused a syslog stream connection from uid {uid}: it holds {per_uid}, a quarter of -max-syslog-conns {}",
                            self.cfg.max_syslog_conns
                        ));
                        continue;
                    }
                    if self.syslog_conns >= self.cfg.max_syslog_conns {
                        // Accepted and closed at once (dropped): the
                        // listener never stays readable for it.
                        self.counters.syslog_conns_refused += 1;
                        let who = creds.map_or("unknown".into(), |c| c.uid.to_string());
                        self.note(format!(
                            "refused a syslog stream connection from uid {who}: -max-syslog-conns {} reached",
                            self.cfg.max_syslog_conns
                        ));
                        continue;
                    }
                    let mut m = meta::MetaBuf::default();
                    if let Some(c) = creds {
                        m.creds(c);
                    }
                    if self.add_input(
                        b"syslog",
                        OwnedFd::from(s),
                        Kind::Syslog(SyslogConn::new(creds)),
                        m,
                        ReadHow::Recv,
                    ) {
                        *self.syslog_uids.entry(uid).or_default() += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.counters.accept_errors += 1;
                    self.note(format!("syslog stream socket: accept failed: {e}"));
                    return;
                }
            }
        }
    }

    /// Closes stream syslog connections that sent nothing for
    /// `-syslog-idle-timeout` (their unfinished frame is stored, as at any
    /// close). Runs on the 1 s tick; the work is bounded by the inputs held
    /// (`-max-inputs` + `-max-syslog-conns`), and nothing when there is no
    /// stream connection.
    pub(super) fn expire_syslog_conns(&mut self) {
        let timeout = self.cfg.syslog_idle_timeout;
        if timeout.is_zero() || self.syslog_conns == 0 {
            return;
        }
        let now = Instant::now();
        let idle: Vec<Key> = self
            .inputs
            .keys()
            .into_iter()
            .filter(|&k| {
                matches!(self.inputs.get_mut(k), Some(i)
                    if matches!(&i.kind, Kind::Syslog(c) if now.duration_since(c.last_read) >= timeout
                        || c.frame_since.is_some_and(|t| now.duration_since(t) >= timeout)))
            })
            .collect();
        if idle.is_empty() {
            return;
        }
        for &k in &idle {
            self.close_input(k);
        }
        self.counters.syslog_conns_idle_closed += idle.len() as u64;
        self.note(format!(
            "closed {} syslog stream connection(s) idle, or holding an unfinished frame, for -syslog-idle-timeout {} s",
            idle.len(),
            timeout.as_secs_f64()
        ));
    }

    /// The writer of the kernel-log FIFO closed it: the last record is
    /// complete, and the FIFO is opened again for the next writer (a
    /// service that restarts opens it anew). The new fd is opened before
    /// the old one is closed, so the FIFO always has a reader; a fresh open
    /// does not report the hang-up of writers that came before it, so this
    /// cannot spin.
    pub(super) fn reopen_kmsg_fifo(&mut self, key: Key) {
        let Some(mut input) = self.inputs.take(key) else {
            return;
        };
        let mut events = Vec::new();
        let mut path = None;
        if let Kind::Kmsg { parser, fifo, .. } = &mut input.kind {
            parser.finish(|e| events.push(super::inputs::own_event(e)));
            path = fifo.clone();
        }
        let now = timefmt::now_ns();
        for e in events {
            self.store_kmsg(now, e);
        }
        let reopened = path.as_deref().map(|p| (p, reopen_fifo(p)));
        match reopened {
            Some((_, Ok(fd))) => {
                let _ = self.epoll.delete(input.fd.as_fd());
                let ev = EpollEvent::new(EpollFlags::EPOLLIN, KIND_INPUT | key.to_u64());
                match self.epoll.add(fd.as_fd(), ev) {
                    Ok(()) => {
                        input.fd = fd;
                        self.inputs.restore(key, input);
                    }
                    Err(e) => {
                        self.inputs.restore(key, input);
                        self.close_input(key);
                        self.note(format!("kernel log FIFO: cannot poll it again: {e}"));
                    }
                }
            }
            Some((p, Err(e))) => {
                self.inputs.restore(key, input);
                self.close_input(key);
                self.note(format!(
                    "kernel log FIFO {}: cannot open it again after its writer closed it: {e}",
                    p.display()
                ));
            }
            None => {
                self.inputs.restore(key, input);
                self.close_input(key);
            }
        }
    }

    /// Opens the kernel log: `/dev/kmsg` (a record per read) or a FIFO are
    /// polled; a regular file (a recording) is read whole now.
    pub(super) fn open_kmsg(&mut self, path: &Path) -> io::Result<()> {
        let fd = open(
            path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("cannot open {}: {e}", path.display()),
            )
        })?;
        let st = fstat(&fd).map_err(io::Error::from)?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFREG {
            let mut parser = kmsg::Parser::default();
            let mut f = std::fs::File::from(fd);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = io::Read::read(&mut f, &mut buf)?;
                let now = timefmt::now_ns();
                let mut events = Vec::new();
                if n == 0 {
                    parser.finish(|e| events.push(super::inputs::own_event(e)));
                } else {
                    parser.feed(&buf[..n], false, |e| {
                        events.push(super::inputs::own_event(e))
                    });
                }
                for e in events {
                    self.store_kmsg(now, e);
                }
                if n == 0 {
                    return Ok(());
                }
            }
        }
        let per_read = kind == SFlag::S_IFCHR;
        if !self.add_input(
            KMSG_SOURCE,
            fd,
            Kind::Kmsg {
                parser: kmsg::Parser::default(),
                per_read,
                fifo: (kind == SFlag::S_IFIFO).then(|| path.to_owned()),
            },
            meta::MetaBuf::default(),
            // Opened O_NONBLOCK above.
            ReadHow::Read,
        ) {
            return Err(io::Error::other(format!("cannot poll {}", path.display())));
        }
        Ok(())
    }
}
