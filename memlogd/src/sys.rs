//! The only module that calls `libc` directly: fd passing (`SCM_RIGHTS`),
//! non-blocking flags and reads, signal dispositions, random ids.
//! Everything here is a safe function that takes `BorrowedFd` and returns
//! `OwnedFd`; no `RawFd` leaves this module.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Most fds one datagram may carry (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS_PER_DATAGRAM: usize = 253;

/// What one `recvmsg` delivered.
#[derive(Debug, Default)]
pub struct Received {
    /// Bytes of payload stored in the buffer.
    pub len: usize,
    /// The datagram was longer than the buffer (its real length is `full_len`).
    pub payload_truncated: bool,
    pub full_len: usize,
    /// The kernel dropped some fds (the control buffer was too small or the
    /// process is out of fds).
    pub fds_truncated: bool,
    /// The sender's credentials (`SCM_CREDENTIALS`; the socket needs
    /// `SO_PASSCRED`, see [`set_passcred`]).
    pub creds: Option<Creds>,
    /// The sender's address, when its socket is bound (see [`reply_to`]).
    pub peer: Option<Peer>,
}

/// The address of a bound datagram sender (a path or an abstract name),
/// to answer it with [`reply_to`].
#[derive(Clone, Copy)]
pub struct Peer {
    addr: libc::sockaddr_un,
    len: libc::socklen_t,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Peer({} bytes)", self.len)
    }
}

/// Sends one datagram to `to` from `sock` without ever blocking (a sender
/// that does not read its replies, or went away, costs one failed send).
pub fn reply_to(sock: BorrowedFd<'_>, to: &Peer, payload: &[u8]) -> io::Result<()> {
    // SAFETY: `to.addr` is a sockaddr_un the kernel filled, `to.len` its
    // length; the payload buffer is live for the call.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            (&to.addr as *const libc::sockaddr_un).cast(),
            to.len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A `SOCK_DGRAM` Unix socket bound to an abstract name the kernel picks
/// (autobind), so that the socket it sends to can answer.
pub fn autobound_datagram() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // SAFETY: binding with only the family asks for autobind; `addr` is
    // live for the call and at least that long.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Bytes this socket sent that the receiver has not read yet (`SIOCOUTQ`;
/// for a Unix datagram socket, 0 once every datagram was received).
pub fn unread_sent_bytes(sock: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int, which we own.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

fn cmsg_space_bytes(n: usize) -> usize {
    // SAFETY: CMSG_SPACE is a pure arithmetic macro.
    unsafe { libc::CMSG_SPACE(n as u32) as usize }
}

fn cmsg_space(n: usize) -> usize {
    cmsg_space_bytes(n * std::mem::size_of::<RawFd>())
}

/// Receives one datagram without blocking, with any fds passed with it
/// (`SCM_RIGHTS`, received close-on-exec and appended to `fds`) and the
/// sender's credentials when the socket asked for them.
pub fn recv_msg(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<Received> {
    recv_msg_flags(sock, buf, fds, 0)
}

/// [`recv_msg`] without taking the datagram off the queue (`MSG_PEEK`):
/// the fds it carries are installed as new fds here all the same (the
/// kernel clones them), and a later [`recv_msg`] installs them once more.
pub fn peek_msg(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<Received> {
    recv_msg_flags(sock, buf, fds, libc::MSG_PEEK)
}

fn recv_msg_flags(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    flags: libc::c_int,
) -> io::Result<Received> {
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let space =
        cmsg_space(MAX_FDS_PER_DATAGRAM) + cmsg_space_bytes(std::mem::size_of::<libc::ucred>());
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut from: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    // SAFETY: msghdr is plain data; zeroed is a valid initial value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_un).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    // `as _`: size_t in glibc, socklen_t in musl.
    msg.msg_controllen = (cbuf.len() * 8) as _;
    // SAFETY: msg points at live buffers (from, buf, cbuf, iov) for the
    // whole call.
    let n = unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT | libc::MSG_TRUNC | flags,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let full_len = n as usize;
    let mut out = Received {
        len: full_len.min(buf.len()),
        payload_truncated: msg.msg_flags & libc::MSG_TRUNC != 0 || full_len > buf.len(),
        full_len,
        fds_truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
        creds: None,
        // An unbound sender has an address of the family alone.
        peer: (msg.msg_namelen as usize > std::mem::size_of::<libc::sa_family_t>()).then_some(
            Peer {
                addr: from,
                len: msg.msg_namelen,
            },
        ),
    };
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled,
    // bounded by msg_controllen. An SCM_RIGHTS payload is an array of ints
    // the kernel installed as new fds owned by this process; an
    // SCM_CREDENTIALS payload is a ucred.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            let bytes = (*c).cmsg_len as usize - (data as usize - c as usize);
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(
                        data.cast::<RawFd>().add(i),
                    )));
                }
            } else if (*c).cmsg_level == libc::SOL_SOCKET
                && (*c).cmsg_type == libc::SCM_CREDENTIALS
                && bytes >= std::mem::size_of::<libc::ucred>()
            {
                let u: libc::ucred = std::ptr::read_unaligned(data.cast());
                out.creds = Some(Creds {
                    pid: u.pid as u32,
                    uid: u.uid,
                    gid: u.gid,
                });
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(out)
}

/// Datagrams received together with one `recvmmsg(2)`: `count` slots of
/// `slot_len` bytes, preallocated once, each with a control buffer with
/// room for the sender's credentials (`SCM_CREDENTIALS`) and nothing
/// more. Fds a sender attaches are never installed: the kernel finds no
/// room for them, drops them and flags the datagram `MSG_CTRUNC`
/// ([`Received::fds_truncated`]). The slots are one allocation, so the
/// pages a slot's tail would use stay untouched (not resident) until a
/// datagram that long arrives.
///
/// A slot's datagram is cut to `slot_len` bytes exactly as [`recv_msg`]
/// into a buffer of that size cuts it (`payload_truncated`, `full_len`).
pub struct DgramBatch {
    /// The slots, from byte `first` on (the first page boundary, so that a
    /// short datagram touches one page of its slot).
    bufs: Vec<u8>,
    first: usize,
    slot_len: usize,
    /// `count` control buffers of `ctrl_words` u64s (aligned for cmsghdr).
    ctrl: Vec<u64>,
    ctrl_words: usize,
    iovs: Vec<libc::iovec>,
    /// Pointers into `bufs`, `ctrl` and `iovs`, set again before every
    /// call (so moving the struct never leaves one dangling).
    hdrs: Vec<libc::mmsghdr>,
    /// Datagrams the last [`DgramBatch::recv`] delivered.
    got: usize,
    /// Per slot, the most bytes a datagram wrote there since the last
    /// [`DgramBatch::trim`] (only counted beyond [`TRIM_KEEP`]).
    written: Vec<usize>,
    /// Some slot has pages to give back.
    dirty: bool,
}

/// The memory page size (4096 if the kernel does not say).
fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => 4096,
    }
}

/// Bytes at the start of each slot that [`DgramBatch::trim`] keeps.
const TRIM_KEEP: usize = 4096;

impl std::fmt::Debug for DgramBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DgramBatch({} slots of {} bytes, {} received)",
            self.hdrs.len(),
            self.slot_len,
            self.got
        )
    }
}

impl DgramBatch {
    /// `count` slots (at least 1) of `slot_len` bytes (at least 1).
    pub fn new(count: usize, slot_len: usize) -> DgramBatch {
        let (count, slot_len) = (count.max(1), slot_len.max(1));
        let ctrl_words = cmsg_space_bytes(std::mem::size_of::<libc::ucred>()).div_ceil(8);
        let page = page_size();
        let bufs = vec![0u8; count * slot_len + page];
        let first = (bufs.as_ptr() as usize).next_multiple_of(page) - bufs.as_ptr() as usize;
        DgramBatch {
            bufs,
            first,
            slot_len,
            ctrl: vec![0u64; count * ctrl_words],
            ctrl_words,
            iovs: (0..count)
                .map(|_| libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                })
                .collect(),
            // SAFETY: mmsghdr is plain data (pointers, lengths, flags);
            // zeroed is a valid value, and every pointer is set before use.
            hdrs: (0..count).map(|_| unsafe { std::mem::zeroed() }).collect(),
            got: 0,
            written: vec![0; count],
            dirty: false,
        }
    }

    /// Gives the pages that long datagrams touched back to the kernel
    /// (`madvise(MADV_DONTNEED)`), all but the first [`TRIM_KEEP`] bytes of
    /// each slot: the slots' resident memory stays about a page each
    /// however long the datagrams that came were. Does nothing (no system
    /// call) when no datagram reached that far since the last trim.
    pub fn trim(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let page = page_size();
        let base = self.bufs.as_mut_ptr() as usize + self.first;
        for (i, w) in self.written.iter_mut().enumerate() {
            let n = std::mem::take(w);
            if n <= TRIM_KEEP {
                continue;
            }
            // Whole pages only, from past the kept bytes to past the
            // written ones, never beyond the slot (what a slot holds past
            // its datagram is not read).
            let slot = base + i * self.slot_len;
            let start = (slot + TRIM_KEEP).next_multiple_of(page);
            let end = (slot + n)
                .next_multiple_of(page)
                .min((slot + self.slot_len) / page * page);
            if end > start {
                // SAFETY: [start, end) is a page-aligned range inside slot i
                // of `bufs`, which this struct owns and nothing borrows
                // (`&mut self`).
                // MADV_DONTNEED on this private anonymous memory makes the
                // pages read as zeros again, a valid value for u8; no other
                // allocation shares a page wholly inside the range.
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
                }
            }
        }
    }

    /// Slots: the most datagrams one [`DgramBatch::recv`] takes.
    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Takes up to [`DgramBatch::capacity`] datagrams off `sock` in one
    /// call and returns how many (at least 1). Without `wait` it never
    /// blocks (`MSG_DONTWAIT`: `WouldBlock` when the queue is empty); with
    /// `wait` it blocks until the first datagram comes and takes what is
    /// queued then (`MSG_WAITFORONE`). What it received replaces what the
    /// previous call did ([`DgramBatch::get`]).
    pub fn recv(&mut self, sock: BorrowedFd<'_>, wait: bool) -> io::Result<usize> {
        self.got = 0;
        let bufs = self.bufs.as_mut_ptr();
        let ctrl = self.ctrl.as_mut_ptr();
        for (i, (h, iov)) in self.hdrs.iter_mut().zip(self.iovs.iter_mut()).enumerate() {
            // SAFETY: slot i is bytes first+i*slot_len..first+(i+1)*slot_len
            // of `bufs`, in bounds for i < count (`first` < one page, which
            // `bufs` has in excess).
            iov.iov_base = unsafe { bufs.add(self.first + i * self.slot_len) }.cast();
            iov.iov_len = self.slot_len;
            h.msg_hdr.msg_name = std::ptr::null_mut();
            h.msg_hdr.msg_namelen = 0;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            // SAFETY: control buffer i is words i*ctrl_words.. of `ctrl`,
            // in bounds for i < count.
            h.msg_hdr.msg_control = unsafe { ctrl.add(i * self.ctrl_words) }.cast();
            h.msg_hdr.msg_controllen = (self.ctrl_words * 8) as _;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        let flags = libc::MSG_CMSG_CLOEXEC
            | libc::MSG_TRUNC
            | if wait {
                libc::MSG_WAITFORONE
            } else {
                libc::MSG_DONTWAIT
            };
        // SAFETY: every header points at a live iovec, slot and control
        // buffer of this struct, which outlive the call; vlen is the number
        // of headers; a null timeout waits as the flags say.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                // c_int in glibc, c_uint in musl.
                flags as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.got = (n as usize).min(self.hdrs.len());
        for (h, w) in self.hdrs[..self.got].iter().zip(self.written.iter_mut()) {
            let n = (h.msg_len as usize).min(self.slot_len);
            if n > TRIM_KEEP && n > *w {
                *w = n;
                self.dirty = true;
            }
        }
        Ok(self.got)
    }

    /// Datagram `i` of the last [`DgramBatch::recv`]: its bytes (cut to
    /// the slot) and what came with it (`peer` is always `None`).
    pub fn get(&self, i: usize) -> Option<(&[u8], Received)> {
        if i >= self.got {
            return None;
        }
        let h = &self.hdrs[i];
        let full_len = h.msg_len as usize;
        let len = full_len.min(self.slot_len);
        let start = self.first + i * self.slot_len;
        let mut out = Received {
            len,
            payload_truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0
                || full_len > self.slot_len,
            full_len,
            fds_truncated: h.msg_hdr.msg_flags & libc::MSG_CTRUNC != 0,
            creds: None,
            peer: None,
        };
        // SAFETY: the CMSG_* macros walk control buffer i, which the
        // kernel filled, bounded by the msg_controllen it set (at most the
        // buffer's size); only an SCM_CREDENTIALS payload (a ucred) is read.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
            while !c.is_null() {
                let data = libc::CMSG_DATA(c);
                let bytes = ((*c).cmsg_len as usize).saturating_sub(data as usize - c as usize);
                if (*c).cmsg_level == libc::SOL_SOCKET
                    && (*c).cmsg_type == libc::SCM_CREDENTIALS
                    && bytes >= std::mem::size_of::<libc::ucred>()
                {
                    let u: libc::ucred = std::ptr::read_unaligned(data.cast());
                    out.creds = Some(Creds {
                        pid: u.pid as u32,
                        uid: u.uid,
                        gid: u.gid,
                    });
                }
                c = libc::CMSG_NXTHDR(&h.msg_hdr, c);
            }
        }
        Some((&self.bufs[start..start + len], out))
    }
}

/// Sends one datagram carrying `payload` and `fds` as `SCM_RIGHTS`. The fds
/// stay owned by the caller (the kernel duplicates them into the receiver).
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if fds.len() > MAX_FDS_PER_DATAGRAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many fds for one datagram",
        ));
    }
    let mut cbuf = vec![0u64; cmsg_space(fds.len().max(1)).div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid initial value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = cmsg_space(fds.len()) as _;
        // SAFETY: the control buffer holds CMSG_SPACE(len) bytes, enough for
        // one header and `fds.len()` ints.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN((fds.len() * std::mem::size_of::<RawFd>()) as u32) as _;
            let data = libc::CMSG_DATA(c).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                std::ptr::write_unaligned(data.add(i), fd.as_raw_fd());
            }
        }
    }
    // SAFETY: msg points at live buffers for the whole call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Who sent something, as the kernel says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Creds {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Asks the kernel to attach senders' credentials to every datagram.
pub fn set_passcred(sock: BorrowedFd<'_>) -> io::Result<()> {
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::PassCred, &true)
        .map_err(io::Error::from)
}

/// The credentials of a connected socket's peer (`SO_PEERCRED`); `None`
/// when `fd` is not a Unix socket.
pub fn peer_creds(fd: BorrowedFd<'_>) -> Option<Creds> {
    let c = nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    Some(Creds {
        pid: c.pid() as u32,
        uid: c.uid(),
        gid: c.gid(),
    })
}

/// Receives from a socket without blocking (`MSG_DONTWAIT`), whatever the
/// socket's `O_NONBLOCK` flag says: memlogd reads sockets it was handed this
/// way, so it never changes the flags of an open file description it shares
/// with the sender.
pub fn recv_dontwait(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: recv writes at most `buf.len()` bytes into `buf`, which lives
    // for the whole call.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Opens what `fd` is (a pipe, FIFO or terminal) again through
/// `/proc/self/fd/N`, read-only, non-blocking and close-on-exec (and never
/// as a controlling terminal): a new open file description of the same
/// object, whose flags are memlogd's alone. Fails if `/proc` is not there,
/// the open is not permitted, or what was opened is not the same inode.
pub fn reopen_nonblocking(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use nix::fcntl::OFlag;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let new = nix::fcntl::open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )?;
    let (a, b) = (nix::sys::stat::fstat(fd)?, nix::sys::stat::fstat(&new)?);
    if (a.st_dev, a.st_ino, a.st_rdev) != (b.st_dev, b.st_ino, b.st_rdev) {
        return Err(io::Error::other(format!(
            "{path} opened another file than the fd"
        )));
    }
    Ok(new)
}

/// `fd` reports a hang-up now (`POLLHUP`: for a pipe or FIFO, the writers
/// this description saw are gone).
pub fn hung_up(fd: BorrowedFd<'_>) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(fd, PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP))
}

/// `fd` is a terminal.
pub fn is_tty(fd: BorrowedFd<'_>) -> bool {
    nix::unistd::isatty(fd).unwrap_or(false)
}

/// Sets or clears `O_NONBLOCK`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a valid fd have no memory effects.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let new = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if new != flags && libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, new) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets or clears `FD_CLOEXEC` (cleared on fds handed to a child on purpose).
pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on a valid fd have no memory effects.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFD);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let new = if on {
            flags | libc::FD_CLOEXEC
        } else {
            flags & !libc::FD_CLOEXEC
        };
        if libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, new) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Takes ownership of an inherited fd number given on the command line,
/// after checking that it is open.
pub fn adopt_inherited_fd(fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only checks that the number is an open descriptor.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("fd {fd} is not open"),
        ));
    }
    // SAFETY: the fd is open, and the caller hands its only reference to us
    // (it was passed on the command line for this process to own).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Moves `fd` to exactly `target` (for handing fds 3 and 4 to a child).
/// Returns the new fd; the old one is closed if it differed.
pub fn dup_to(fd: OwnedFd, target: i32) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() == target {
        set_cloexec(std::os::fd::AsFd::as_fd(&fd), false)?;
        return Ok(fd);
    }
    // SAFETY: dup2 onto a number we own afterwards; `fd` stays valid until dropped.
    let r = unsafe { libc::dup2(fd.as_raw_fd(), target) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: dup2 returned `target`, a new descriptor now owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// 64 random bits from the kernel (`getrandom`), falling back to time and pid.
pub fn random_u64() -> u64 {
    let mut v = [0u8; 8];
    // SAFETY: writes at most 8 bytes into `v`.
    let n = unsafe { libc::getrandom(v.as_mut_ptr().cast(), 8, libc::GRND_NONBLOCK) };
    if n == 8 {
        u64::from_ne_bytes(v)
    } else {
        (crate::timefmt::now_ns() as u64) ^ (u64::from(std::process::id()) << 32)
    }
}

/// Makes a command start with no signal blocked: a blocked mask survives
/// exec, and std's spawn keeps it, so a program that blocks the signals it
/// reads through a signalfd must clear the mask in the children it starts.
pub fn unblock_signals_in_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec; it only
    // calls sigprocmask(2), which is async-signal-safe, on a local set.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            )
            .map_err(io::Error::from)
        });
    }
}

/// Makes a command start as a program expects to: no signal blocked (see
/// [`unblock_signals_in_child`]) and no signal ignored (SIG_IGN survives
/// exec; handlers do not): for the programs logwrite runs (`-on-rotate`,
/// `exec:`).
pub fn default_signals_in_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec; it only
    // calls signal(2) and sigprocmask(2), both async-signal-safe, on local
    // data (no allocation). signal() refuses SIGKILL, SIGSTOP and the C
    // library's own signals, which changes nothing.
    unsafe {
        cmd.pre_exec(move || {
            for sig in 1..=libc::SIGRTMAX() {
                libc::signal(sig, libc::SIG_DFL);
            }
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            )
            .map_err(io::Error::from)
        });
    }
}

/// Ignores SIGPIPE so writes to a vanished peer fail with EPIPE instead.
pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN for SIGPIPE has no memory effects.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Signals whose default action ends the process and that memlogd ignores
/// (SIG_IGN): a stray `kill -ALRM`, a timer or I/O signal nobody asked for,
/// a resource-limit signal, or any real-time signal must not cost the
/// buffer. SIGPIPE is among them (writes to a vanished peer fail with EPIPE
/// instead). The stop signals and SIGHUP/SIGUSR1/SIGUSR2 are not here: the
/// daemon blocks them and reads them from a signalfd.
pub fn ignored_signals() -> Vec<libc::c_int> {
    let mut v = vec![
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGSTKFLT,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGTTOU,
    ];
    // SIGRTMIN() skips the signals the C library keeps for itself (glibc's
    // thread cancellation and setxid broadcast), which must keep their
    // handlers.
    v.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    v
}

/// Sets the action of every signal of [`ignored_signals`] to SIG_IGN.
/// Returns the first failure (with the signal number), after trying all.
pub fn ignore_signals() -> io::Result<()> {
    let mut first_err = None;
    for sig in ignored_signals() {
        // SAFETY: sigaction is plain data; zeroed is a valid initial value
        // (empty mask, no flags) before the handler is set.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = libc::SIG_IGN;
        // SAFETY: installing SIG_IGN reads one sigaction struct we own and
        // runs no code of ours in signal context.
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 && first_err.is_none() {
            let e = io::Error::last_os_error();
            first_err = Some(io::Error::new(e.kind(), format!("signal {sig}: {e}")));
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// The action of `sig` is SIG_IGN (for tests and checks).
pub fn signal_is_ignored(sig: libc::c_int) -> bool {
    // SAFETY: sigaction is plain data; zeroed is a valid value to be overwritten.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `old`.
    let r = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    r == 0 && old.sa_sigaction == libc::SIG_IGN
}

/// Restores the default SIGPIPE action (a CLI writing to a closed pipe then
/// ends quietly, as `logread | head` users expect).
pub fn default_sigpipe() {
    // SAFETY: installing SIG_DFL for SIGPIPE has no memory effects.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::{UnixDatagram, UnixStream};

    #[test]
    fn passes_several_fds_and_name() {
        let (a, b) = UnixDatagram::pair().expect("pair");
        let (mut w1, r1) = UnixStream::pair().expect("pair");
        let (mut w2, r2) = UnixStream::pair().expect("pair");
        send_with_fds(a.as_fd(), b"svc", &[r1.as_fd(), r2.as_fd()]).expect("send");
        drop((r1, r2));
        let mut buf = [0u8; 64];
        let mut fds = Vec::new();
        let got = recv_msg(b.as_fd(), &mut buf, &mut fds).expect("recv");
        assert_eq!(&buf[..got.len], b"svc");
        assert!(!got.payload_truncated && !got.fds_truncated);
        assert_eq!(fds.len(), 2);
        w1.write_all(b"one").expect("w");
        w2.write_all(b"two").expect("w");
        drop((w1, w2));
        let mut s = String::new();
        for fd in fds {
            std::fs::File::from(fd)
                .read_to_string(&mut s)
                .expect("read");
        }
        assert_eq!(s, "onetwo");
    }

    #[test]
    fn credentials_of_datagram_senders_and_stream_peers() {
        let (a, b) = UnixDatagram::pair().expect("pair");
        set_passcred(b.as_fd()).expect("passcred");
        a.send(b"<13>hi").expect("send");
        let mut buf = [0u8; 64];
        let d = recv_msg(b.as_fd(), &mut buf, &mut Vec::new()).expect("recv");
        assert_eq!(&buf[..d.len], b"<13>hi");
        let me = Creds {
            pid: std::process::id(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        };
        assert_eq!(d.creds, Some(me));
        let (s1, _s2) = UnixStream::pair().expect("pair");
        assert_eq!(peer_creds(s1.as_fd()), Some(me));
        let f = std::fs::File::open("/dev/null").expect("null");
        assert_eq!(peer_creds(f.as_fd()), None);
    }

    #[test]
    fn fatal_signals_are_ignored_but_not_the_c_library_ones() {
        ignore_signals().expect("sigaction");
        for sig in ignored_signals() {
            assert!(signal_is_ignored(sig), "signal {sig}");
        }
        let all = ignored_signals();
        assert!(all.contains(&libc::SIGALRM) && all.contains(&libc::SIGRTMAX()));
        // The C library's own real-time signals keep their handlers, and the
        // signals the daemon reads from its signalfd are not ignored.
        for sig in [
            libc::SIGRTMIN() - 1,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ] {
            assert!(!all.contains(&sig), "signal {sig}");
        }
    }

    #[test]
    fn reopened_pipe_is_non_blocking_alone_and_sockets_read_without_the_flag() {
        let flags = |fd: BorrowedFd<'_>| {
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).expect("F_GETFL")
                & libc::O_NONBLOCK
        };
        let (rd, wr) = nix::unistd::pipe().expect("pipe");
        let own = reopen_nonblocking(rd.as_fd()).expect("reopen");
        assert_eq!(
            flags(rd.as_fd()),
            0,
            "the original description is untouched"
        );
        assert_ne!(flags(own.as_fd()), 0);
        let mut buf = [0u8; 8];
        assert_eq!(
            nix::unistd::read(&own, &mut buf),
            Err(nix::Error::EAGAIN),
            "empty, with a writer: would block"
        );
        nix::unistd::write(&wr, b"hi").expect("write");
        assert_eq!(nix::unistd::read(&own, &mut buf), Ok(2));
        assert!(!hung_up(own.as_fd()));
        drop(wr);
        assert!(hung_up(own.as_fd()) && hung_up(rd.as_fd()));
        assert_eq!(nix::unistd::read(&own, &mut buf), Ok(0));

        let (a, b) = UnixStream::pair().expect("pair");
        assert_eq!(
            recv_dontwait(b.as_fd(), &mut buf).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        (&a).write_all(b"x").expect("write");
        assert_eq!(recv_dontwait(b.as_fd(), &mut buf).expect("recv"), 1);
        assert_eq!(flags(b.as_fd()), 0);
        drop(a);
        assert_eq!(recv_dontwait(b.as_fd(), &mut buf).expect("eof"), 0);
    }

    fn me() -> Creds {
        Creds {
            pid: std::process::id(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    }

    #[test]
    fn batch_takes_what_is_queued_with_credentials_in_slot_sized_calls() {
        let (a, b) = UnixDatagram::pair().expect("pair");
        set_passcred(b.as_fd()).expect("passcred");
        b.set_nonblocking(true).expect("nonblocking");
        for m in [&b"<13>one"[..], b"<13>two", b"", b"<13>four", b"<13>five"] {
            a.send(m).expect("send");
        }
        let mut batch = DgramBatch::new(2, 64);
        assert_eq!(batch.capacity(), 2);
        let mut got = Vec::new();
        let mut calls = Vec::new();
        loop {
            match batch.recv(b.as_fd(), false) {
                Ok(n) => {
                    calls.push(n);
                    for i in 0..n {
                        let (d, r) = batch.get(i).expect("slot");
                        assert_eq!(r.creds, Some(me()));
                        assert!(!r.payload_truncated && !r.fds_truncated && r.peer.is_none());
                        assert_eq!((r.len, r.full_len), (d.len(), d.len()));
                        got.push(d.to_vec());
                    }
                    assert!(batch.get(n).is_none());
                }
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                    break;
                }
            }
        }
        assert_eq!(calls, [2, 2, 1]);
        let want: Vec<&[u8]> = vec![b"<13>one", b"<13>two", b"", b"<13>four", b"<13>five"];
        assert_eq!(got, want);
        assert!(batch.get(0).is_none(), "a failed call leaves nothing");
    }

    #[test]
    fn batch_cuts_a_long_datagram_at_the_slot_as_recv_msg_does() {
        let (a, b) = UnixDatagram::pair().expect("pair");
        set_passcred(b.as_fd()).expect("passcred");
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        a.send(&big).expect("send");
        a.send(&big).expect("send");
        a.send(b"short").expect("send");
        let mut one = [0u8; 100];
        let r1 = recv_msg(b.as_fd(), &mut one, &mut Vec::new()).expect("recv");
        let mut batch = DgramBatch::new(4, 100);
        assert_eq!(batch.recv(b.as_fd(), false).expect("batch"), 2);
        let (d, r2) = batch.get(0).expect("slot");
        assert_eq!(d, &one[..]);
        assert_eq!(d, &big[..100]);
        assert_eq!(
            (r2.len, r2.payload_truncated, r2.full_len, r2.creds),
            (r1.len, r1.payload_truncated, r1.full_len, r1.creds)
        );
        assert!(r2.payload_truncated && r2.full_len == 10_000);
        let (d, r) = batch.get(1).expect("slot");
        assert_eq!(
            (d, r.payload_truncated, r.full_len),
            (&b"short"[..], false, 5)
        );
    }

    #[test]
    fn batch_trim_gives_back_what_long_datagrams_touched_and_keeps_the_first_page() {
        let (a, b) = UnixDatagram::pair().expect("pair");
        set_passcred(b.as_fd()).expect("passcred");
        let long: Vec<u8> = (0..60_000u32).map(|i| (i % 255) as u8 + 1).collect();
        a.send(&long).expect("send");
        a.send(b"<13>short").expect("send");
        let mut batch = DgramBatch::new(2, 64 * 1024);
        assert_eq!(batch.recv(b.as_fd(), false).expect("batch"), 2);
        assert!(batch.dirty);
        assert_eq!(batch.get(0).expect("slot").0, &long[..]);
        batch.trim();
        assert!(!batch.dirty);
        let (d, _) = batch.get(0).expect("slot");
        assert_eq!(
            &d[..TRIM_KEEP],
            &long[..TRIM_KEEP],
            "the first page is kept"
        );
        assert!(
            d[16 * 1024..48 * 1024].iter().all(|&x| x == 0),
            "the pages beyond it were given back (they read as zeros)"
        );
        assert_eq!(batch.get(1).expect("slot").0, b"<13>short");
        // Short datagrams leave nothing to trim.
        a.send(b"<13>again").expect("send");
        assert_eq!(batch.recv(b.as_fd(), false).expect("batch"), 1);
        assert!(!batch.dirty);
        assert_eq!(batch.get(0).expect("slot").0, b"<13>again");
    }

    #[test]
    fn batch_never_installs_fds_a_sender_attaches() {
        let (a, b) = UnixDatagram::pair().expect("pair");
        set_passcred(b.as_fd()).expect("passcred");
        let (rd, wr) = nix::unistd::pipe().expect("pipe");
        send_with_fds(a.as_fd(), b"<13>with an fd", &[wr.as_fd()]).expect("send");
        drop(wr);
        let mut batch = DgramBatch::new(4, 64);
        assert_eq!(batch.recv(b.as_fd(), false).expect("batch"), 1);
        let (d, r) = batch.get(0).expect("slot");
        assert_eq!(d, b"<13>with an fd");
        assert!(r.fds_truncated, "the kernel had no room for the fd");
        assert_eq!(r.creds, Some(me()));
        // No copy of the pipe's write end is open anywhere: its reader
        // sees the end at once.
        let mut buf = [0u8; 1];
        assert_eq!(nix::unistd::read(&rd, &mut buf), Ok(0));
    }

    #[test]
    fn batch_waits_for_the_first_datagram_when_asked() {
        let (a, b) = UnixDatagram::pair().expect("pair");
        set_passcred(b.as_fd()).expect("passcred");
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            a.send(b"late").expect("send");
            a
        });
        let mut batch = DgramBatch::new(8, 64);
        assert_eq!(batch.recv(b.as_fd(), true).expect("batch"), 1);
        assert_eq!(batch.get(0).expect("slot").0, b"late");
        let _a = t.join().expect("join");
        assert_eq!(
            batch.recv(b.as_fd(), false).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
    }

    #[test]
    fn reports_oversized_payload() {
        let (a, b) = UnixDatagram::pair().expect("pair");
        send_with_fds(a.as_fd(), &[b'n'; 10_000], &[]).expect("send");
        let mut buf = [0u8; 100];
        let mut fds = Vec::new();
        let got = recv_msg(b.as_fd(), &mut buf, &mut fds).expect("recv");
        assert!(got.payload_truncated);
        assert_eq!(got.full_len, 10_000);
        assert_eq!(got.len, 100);
        assert!(fds.is_empty());
    }
}
