//! Writers: fds received on the log socket (lines), connections to a
//! stream syslog socket, and the kernel log; what is read from them becomes
//! records, subject to the per-source rate limit.

use super::lines::LineSplitter;
use super::ratelimit::Key as RateKey;
use super::slab::Key;
use super::{Daemon, KIND_INPUT};
use crate::ring::{FLAG_TRUNCATED, NO_PRI};
use crate::{kmsg, meta, proto, sys, syslog, timefmt};
use nix::sys::epoll::{EpollEvent, EpollFlags};
use nix::sys::stat::{fstat, SFlag};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

/// Reads per input per loop turn, so one busy writer cannot starve others.
const READS_PER_TURN: usize = 4;
/// Datagrams taken from the log socket per loop turn.
const DATAGRAMS_PER_TURN: usize = 64;

/// How an input's bytes become records.
pub enum Kind {
    /// A service's output: one record per line.
    Lines(LineSplitter),
    /// A connection to a stream syslog socket: framed syslog messages.
    Syslog(SyslogConn),
    /// A Docker logging plugin's FIFO: length-prefixed `LogEntry` frames.
    Docker(Box<super::docker_in::DockerStream>),
    /// The kernel log. `per_read`: each read is one whole record (/dev/kmsg).
    /// `fifo`: the path of a FIFO, opened again at EOF (its writer closed;
    /// the next one, a restarted service, will open it again).
    Kmsg {
        parser: kmsg::Parser,
        per_read: bool,
        fifo: Option<std::path::PathBuf>,
    },
}

/// A stream syslog connection's state.
pub struct SyslogConn {
    /// The bytes of an unfinished frame.
    pub buf: Vec<u8>,
    /// What is left to skip of a cut frame.
    pub skip: syslog::Skip,
    /// The peer, as the kernel reported it (`SO_PEERCRED`): its uid keys
    /// the rate limit.
    pub creds: Option<sys::Creds>,
    /// When a byte last came (for `-syslog-idle-timeout`).
    pub last_read: Instant,
    /// Since when a frame has been unfinished (its start, or the rest of a
    /// cut one to skip, arrived): a frame must end within
    /// `-syslog-idle-timeout` too, or a sender trickling one byte now and
    /// then would hold the connection for ever.
    pub frame_since: Option<Instant>,
}

impl SyslogConn {
    pub fn new(creds: Option<sys::Creds>) -> SyslogConn {
        SyslogConn {
            buf: Vec::new(),
            skip: syslog::Skip::default(),
            creds,
            last_read: Instant::now(),
            frame_since: None,
        }
    }
}

/// Whose stream syslog connection this is, for the per-uid limit
/// (`u32::MAX` when the kernel did not say).
pub(super) fn conn_uid(creds: Option<sys::Creds>) -> u32 {
    creds.map_or(u32::MAX, |c| c.uid)
}

/// The rate-limit key of a syslog record (see [`super::ratelimit`]): root's tags
/// each have their own budget; any other sender has one per uid.
pub(super) fn syslog_key(creds: Option<sys::Creds>, source: &[u8]) -> RateKey<'_> {
    match creds {
        Some(c) if c.uid == 0 => RateKey::Source(source),
        Some(c) => RateKey::Uid {
            uid: c.uid,
            tag: source,
        },
        None => RateKey::Unknown { tag: source },
    }
}

/// One fd a writer handed over (or one memlogd opened itself).
pub struct Input {
    pub(super) fd: OwnedFd,
    name: Box<[u8]>,
    pub(super) kind: Kind,
    /// Metadata stored with every record of this input (the peer's credentials).
    meta: meta::MetaBuf,
    /// How to read without blocking.
    how: ReadHow,
}

/// How an input is read without blocking. memlogd never sets `O_NONBLOCK`
/// on an fd it was handed if it can help it: the flag belongs to the open
/// file description, which the sender's own copy shares (a sender reading
/// its end of a pipe or socketpair would get `EAGAIN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadHow {
    /// `read`: the fd is memlogd's own non-blocking description (opened or
    /// reopened by memlogd, or the fallback that set `O_NONBLOCK`).
    Read,
    /// `recv(MSG_DONTWAIT)`: a socket, whatever its flags.
    Recv,
}

/// A name for messages: lossy UTF-8, at most 64 characters.
pub(super) fn show(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(&name[..name.len().min(64)]);
    if name.len() > 64 {
        format!("{s:?}...")
    } else {
        format!("{s:?}")
    }
}

impl Daemon {
    /// Datagrams on the log socket: a name and fds.
    pub(super) fn on_log_socket(&mut self) {
        for _ in 0..DATAGRAMS_PER_TURN {
            let mut fds = Vec::new();
            let mut buf = std::mem::take(&mut self.name_buf);
            // Peeked, handled (and answered), only then taken off the
            // queue: a bound sender that sees its datagram read has its
            // answer already (memlog::handover relies on that order).
            let r = sys::peek_msg(self.log_sock.fd.as_fd(), &mut buf, &mut fds);
            let res = match r {
                Ok(got) => {
                    self.on_datagram(&buf[..got.len], &got, fds);
                    // The same fds, installed once more: closed at once.
                    let _ = sys::recv_msg(self.log_sock.fd.as_fd(), &mut [], &mut Vec::new());
                    true
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
                Err(e) => {
                    self.note(format!("log socket: receive failed: {e}"));
                    false
                }
            };
            self.name_buf = buf;
            if !res {
                break;
            }
        }
    }

    /// One datagram: its fds become inputs. A bound sender (our init-shim
    /// binds to an abstract name) is told how many were taken, and why not
    /// the others, so it can log elsewhere instead of into a dead end
    /// (PROTOCOL.md, "Replies"). LinuxKit's senders are unbound and get none.
    fn on_datagram(&mut self, name: &[u8], got: &sys::Received, fds: Vec<OwnedFd>) {
        let offered = fds.len();
        let before = self.counters.inputs_total;
        self.refusal = None;
        self.take_fds(name, got, fds);
        let Some(peer) = &got.peer else {
            return;
        };
        let accepted = self.counters.inputs_total - before;
        let mut reply = format!("{} accepted {accepted} of {offered}", proto::EXT_MAGIC_STR);
        if accepted > 0 && name.starts_with(crate::dockerlog::HANDOVER_MAGIC) {
            // Tells the driver these fds are read as frames, not lines.
            reply.push(' ');
            reply.push_str(crate::dockerlog::REPLY_WORD);
        }
        if let Some(why) = self.refusal.take() {
            if accepted < offered as u64 || offered == 0 {
                reply.push_str(": ");
                reply.push_str(&why);
            }
        }
        reply.push('\n');
        if sys::reply_to(self.log_sock.fd.as_fd(), peer, reply.as_bytes()).is_err() {
            self.counters.replies_failed += 1;
        }
    }

    fn take_fds(&mut self, name: &[u8], got: &sys::Received, fds: Vec<OwnedFd>) {
        if got.fds_truncated {
            self.refusal = Some(
                "the kernel dropped fds of this datagram (memlogd may be out of file descriptors)"
                    .into(),
            );
            self.counters.fds_dropped += 1;
            self.note(format!(
                "fds passed with name {} were dropped by the kernel (memlogd may be out of file descriptors)",
                show(name)
            ));
        }
        if fds.is_empty() {
            if !got.fds_truncated {
                self.refusal = Some("the datagram carried no fd".into());
                self.counters.datagrams_without_fds += 1;
                self.note(format!(
                    "ignored a datagram without fds on the log socket (name {})",
                    show(name)
                ));
            }
            return;
        }
        if let Some(h) = crate::dockerlog::Handover::parse(name) {
            return self.take_docker_fds(&h, got, fds);
        }
        if got.payload_truncated || name.len() > self.cfg.max_name_len {
            self.refusal = Some(format!(
                "name of {} bytes is longer than -max-name-len {}",
                got.full_len, self.cfg.max_name_len
            ));
            self.counters.names_refused += 1;
            self.counters.inputs_refused += fds.len() as u64;
            self.note(format!(
                "refused {} fd(s): name of {} bytes is longer than -max-name-len {}",
                fds.len(),
                got.full_len,
                self.cfg.max_name_len
            ));
            return;
        }
        for fd in fds {
            self.add_stream_input(name, fd);
        }
    }

    /// A Docker-framed handover (PROTOCOL.md, "Docker-framed inputs"):
    /// each fd is a FIFO of `LogEntry` frames of one container.
    fn take_docker_fds(
        &mut self,
        h: &Result<crate::dockerlog::Handover, String>,
        got: &sys::Received,
        fds: Vec<OwnedFd>,
    ) {
        let refuse = |d: &mut Self, n: usize, why: String| {
            d.counters.names_refused += 1;
            d.counters.inputs_refused += n as u64;
            d.note(format!("refused {n} docker fd(s): {why}"));
            d.refusal = Some(why);
        };
        let h = match h {
            _ if got.payload_truncated => {
                return refuse(
                    self,
                    fds.len(),
                    format!(
                        "docker handover of {} bytes is longer than {}",
                        got.full_len,
                        crate::dockerlog::MAX_HANDOVER
                    ),
                )
            }
            Err(e) => return refuse(self, fds.len(), format!("bad docker handover: {e}")),
            Ok(h) => h,
        };
        if h.source.len() + 4 > self.cfg.max_name_len {
            return refuse(
                self,
                fds.len(),
                format!(
                    "source of {} bytes (and .out) is longer than -max-name-len {}",
                    h.source.len(),
                    self.cfg.max_name_len
                ),
            );
        }
        for fd in fds {
            let kind = fstat(&fd)
                .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)
                .unwrap_or(SFlag::empty());
            if kind != SFlag::S_IFIFO {
                self.refuse_input(&h.source, "a docker stream must be a FIFO or pipe".into());
                continue;
            }
            let Some((fd, how)) = self.own_nonblocking(&h.source, fd) else {
                continue;
            };
            let stream = super::docker_in::DockerStream::new(h);
            self.add_input(
                &h.source,
                fd,
                Kind::Docker(Box::new(stream)),
                meta::MetaBuf::default(),
                how,
            );
        }
    }

    fn refuse_input(&mut self, name: &[u8], why: String) {
        self.refusal = Some(why.clone());
        self.counters.inputs_refused += 1;
        self.note(format!("refused an fd for {}: {why}", show(name)));
    }

    /// A service's fd: refuse what cannot be polled, record its peer's credentials.
    fn add_stream_input(&mut self, name: &[u8], fd: OwnedFd) {
        match fstat(&fd) {
            Ok(st) => {
                let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
                if kind == SFlag::S_IFDIR {
                    return self.refuse_input(name, "it is a directory, not a stream".into());
                }
                if kind == SFlag::S_IFREG {
                    return self.refuse_input(
                        name,
                        "it is a regular file, not a stream (pass a pipe, FIFO or socket)".into(),
                    );
                }
            }
            Err(e) => return self.refuse_input(name, format!("fstat failed: {e}")),
        }
        let mut m = meta::MetaBuf::default();
        if let Some(c) = sys::peer_creds(fd.as_fd()) {
            m.creds(c);
        }
        let Some((fd, how)) = self.own_nonblocking(name, fd) else {
            return;
        };
        self.add_input(name, fd, Kind::Lines(LineSplitter::default()), m, how);
    }

    /// A way to read a received fd without blocking that leaves the
    /// sender's file status flags alone: sockets are read with
    /// `recv(MSG_DONTWAIT)`; pipes, FIFOs and terminals are opened again
    /// through `/proc/self/fd` (a description of memlogd's own) and the
    /// received fd is closed. Only when neither works (another kind of
    /// device, no `/proc`, no permission) is `O_NONBLOCK` set on the shared
    /// description (PROTOCOL.md section 1).
    fn own_nonblocking(&mut self, name: &[u8], fd: OwnedFd) -> Option<(OwnedFd, ReadHow)> {
        let kind = fstat(&fd)
            .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)
            .unwrap_or(SFlag::empty());
        if kind == SFlag::S_IFSOCK {
            return Some((fd, ReadHow::Recv));
        }
        if kind == SFlag::S_IFIFO || (kind == SFlag::S_IFCHR && sys::is_tty(fd.as_fd())) {
            match sys::reopen_nonblocking(fd.as_fd()) {
                // A FIFO opened while it has no writer does not report the
                // hang-up of writers that came before: if the sender's
                // writer is already gone, only the received description
                // will ever say so. Its sender cannot block on it now, so
                // it is used as it is (made non-blocking below).
                Ok(own) if sys::hung_up(fd.as_fd()) && !sys::hung_up(own.as_fd()) => {}
                Ok(own) => return Some((own, ReadHow::Read)),
                Err(e) => self.note(format!(
                    "cannot open the fd for {} again ({e}): set O_NONBLOCK on it, which its sender's copy shares",
                    show(name)
                )),
            }
        }
        if let Err(e) = sys::set_nonblocking(fd.as_fd(), true) {
            self.refuse_input(name, format!("cannot make it non-blocking: {e}"));
            return None;
        }
        Some((fd, ReadHow::Read))
    }

    /// Starts polling an input, which `how` reads without blocking.
    /// Returns false (and says why) if it was refused. Stream syslog
    /// connections are counted apart (`-max-syslog-conns`, checked when
    /// they are accepted); every other input against `-max-inputs`.
    pub(super) fn add_input(
        &mut self,
        name: &[u8],
        fd: OwnedFd,
        kind: Kind,
        meta: meta::MetaBuf,
        how: ReadHow,
    ) -> bool {
        let syslog = matches!(kind, Kind::Syslog(_));
        if !syslog && self.inputs.len() - self.syslog_conns >= self.cfg.max_inputs {
            self.refuse_input(name, format!("-max-inputs {} reached", self.cfg.max_inputs));
            return false;
        }
        let key = self.inputs.insert(Input {
            fd,
            name: name.into(),
            kind,
            meta,
            how,
        });
        let Some(input) = self.inputs.get_mut(key) else {
            return false;
        };
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, KIND_INPUT | key.to_u64());
        if let Err(e) = self.epoll.add(input.fd.as_fd(), ev) {
            self.inputs.remove(key);
            self.refuse_input(name, format!("cannot poll it: {e}"));
            return false;
        }
        self.counters.inputs_total += 1;
        self.syslog_conns += usize::from(syslog);
        true
    }

    /// An input is readable (or hung up): read what is there.
    pub(super) fn on_input(&mut self, key: Key, _flags: EpollFlags) {
        for _ in 0..READS_PER_TURN {
            let Some(input) = self.inputs.get_mut(key) else {
                return;
            };
            let got = match input.how {
                ReadHow::Read => nix::unistd::read(&input.fd, &mut self.scratch),
                ReadHow::Recv => sys::recv_dontwait(input.fd.as_fd(), &mut self.scratch)
                    .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
            };
            let n = match got {
                Ok(n) => n,
                Err(nix::Error::EAGAIN) => return,
                Err(nix::Error::EINTR) => continue,
                // /dev/kmsg: the kernel overwrote records we had not read;
                // the next read continues, and the sequence gap says how many.
                Err(nix::Error::EPIPE) if matches!(input.kind, Kind::Kmsg { .. }) => continue,
                Err(e) => {
                    let msg = format!("input {}: read failed: {e}; closed", show(&input.name));
                    self.counters.input_errors += 1;
                    self.close_input(key);
                    self.note(msg);
                    return;
                }
            };
            if n == 0 {
                if matches!(input.kind, Kind::Kmsg { fifo: Some(_), .. }) {
                    self.reopen_kmsg_fifo(key);
                } else {
                    self.close_input(key);
                }
                return;
            }
            let Some(mut input) = self.inputs.take(key) else {
                return;
            };
            let scratch = std::mem::take(&mut self.scratch);
            self.consume(&mut input, &scratch[..n]);
            self.scratch = scratch;
            self.inputs.restore(key, input);
            if n < self.scratch.len() {
                return;
            }
        }
    }

    /// Turns bytes read from `input` into records.
    fn consume(&mut self, input: &mut Input, data: &[u8]) {
        let now = timefmt::now_ns();
        match &mut input.kind {
            Kind::Lines(lines) => {
                let name = &input.name;
                let max = self.cfg.max_line_len;
                let key = RateKey::Source(name);
                let mut allowed = self.rate.allowance(key, Instant::now(), |s, n| {
                    self.pending_reports.push((s, n))
                });
                let (mut used, mut dropped) = (0u32, 0u64);
                lines.feed(data, max, |line, cut| {
                    if allowed == 0 {
                        dropped += 1;
                        return;
                    }
                    allowed -= 1;
                    used += 1;
                    if cut {
                        self.counters.lines_truncated += 1;
                    }
                    self.store(
                        now,
                        name,
                        line,
                        if cut { FLAG_TRUNCATED } else { 0 },
                        NO_PRI,
                        input.meta.as_bytes(),
                    );
                });
                self.rate.consume(key, used, dropped);
                self.counters.rate_limited += dropped;
            }
            Kind::Syslog(conn) => {
                let creds = conn.creds;
                conn.last_read = Instant::now();
                conn.buf.extend_from_slice(data);
                let frames = std::mem::take(&mut conn.buf);
                let max = self.cfg.max_line_len;
                let used = syslog::split_stream(&frames, max, &mut conn.skip, |f, cut| {
                    self.store_syslog(now, f, cut, &input.meta, creds)
                });
                conn.buf.extend_from_slice(&frames[used..]);
                if conn.buf.len() > self.cfg.max_line_len + 64 * 1024 {
                    conn.buf.clear();
                }
                let in_frame = !conn.buf.is_empty() || !matches!(conn.skip, syslog::Skip::Nothing);
                conn.frame_since = match (in_frame, conn.frame_since) {
                    (false, _) => None,
                    (true, Some(t)) => Some(t),
                    (true, None) => Some(conn.last_read),
                };
            }
            Kind::Docker(s) => self.consume_docker(s, data, now),
            Kind::Kmsg {
                parser, per_read, ..
            } => {
                let mut events = Vec::new();
                parser.feed(data, *per_read, |e| events.push(own_event(e)));
                for e in events {
                    self.store_kmsg(now, e);
                }
            }
        }
    }

    /// End of an input: its last unfinished line is still a record.
    pub(super) fn close_input(&mut self, key: Key) {
        let Some(mut input) = self.inputs.remove(key) else {
            return;
        };
        let _ = self.epoll.delete(input.fd.as_fd());
        let now = timefmt::now_ns();
        match &mut input.kind {
            Kind::Lines(lines) => {
                let name = std::mem::take(&mut input.name);
                let m = std::mem::take(&mut input.meta);
                lines.finish(|line, cut| {
                    if cut {
                        self.counters.lines_truncated += 1;
                    }
                    let flags = if cut { FLAG_TRUNCATED } else { 0 };
                    self.store(now, &name, line, flags, NO_PRI, m.as_bytes())
                });
            }
            Kind::Syslog(conn) => {
                self.syslog_conns -= 1;
                let uid = conn_uid(conn.creds);
                if let Some(n) = self.syslog_uids.get_mut(&uid) {
                    *n -= 1;
                    if *n == 0 {
                        self.syslog_uids.remove(&uid);
                    }
                }
                if !conn.buf.is_empty() {
                    let rest = std::mem::take(&mut conn.buf);
                    self.store_syslog(now, &rest, false, &input.meta, conn.creds);
                }
            }
            Kind::Docker(s) => self.finish_docker(s, now),
            Kind::Kmsg { parser, .. } => {
                let mut events = Vec::new();
                parser.finish(|e| events.push(own_event(e)));
                for e in events {
                    self.store_kmsg(now, e);
                }
            }
        }
        if self.accept_paused {
            self.resume_accept();
        }
    }

    /// Stores one syslog message (a datagram or a stream frame) from the
    /// sender the kernel reported as `creds`.
    pub(super) fn store_syslog(
        &mut self,
        now: i64,
        raw: &[u8],
        cut: bool,
        base: &meta::MetaBuf,
        creds: Option<sys::Creds>,
    ) {
        let m = syslog::parse(raw);
        let max = self.cfg.max_line_len;
        let (msg, cut) = if m.msg.len() > max {
            (&m.msg[..max], true)
        } else {
            (m.msg, cut)
        };
        let source = m.source();
        let key = syslog_key(creds, source);
        // The clock is read only when the limiter is on (`admit` lets
        // everything through when it is off).
        if self.rate.enabled()
            && !self
                .rate
                .admit(key, m.pri.map(|p| p & 7), Instant::now(), |s, n| {
                    self.pending_reports.push((s, n))
                })
        {
            self.counters.rate_limited += 1;
            return;
        }
        let mut md = base.clone();
        for (k, v) in [
            (meta::APP, m.app),
            (meta::PROCID, m.procid),
            (meta::MSGID, m.msgid),
            (meta::SD, m.sd),
            (meta::STIME, m.timestamp),
            (meta::HOST, m.host),
        ] {
            if let Some(v) = v {
                md.text(k, v);
            }
        }
        if cut {
            self.counters.lines_truncated += 1;
        }
        self.store(
            now,
            source,
            msg,
            if cut { FLAG_TRUNCATED } else { 0 },
            m.pri.unwrap_or(NO_PRI),
            md.as_bytes(),
        );
    }

    pub(super) fn store_kmsg(&mut self, now: i64, e: KEvent) {
        match e {
            KEvent::Record(r) => {
                if !self.rate.admit(
                    RateKey::Source(KMSG_SOURCE),
                    Some(r.pri & 7),
                    Instant::now(),
                    |s, n| self.pending_reports.push((s, n)),
                ) {
                    self.counters.rate_limited += 1;
                    return;
                }
                let mut md = meta::MetaBuf::default();
                md.u64(meta::KSEQ, r.seq).u64(meta::KTIME, r.ts_us);
                for kv in &r.kv {
                    md.text(meta::KV, kv);
                }
                let max = self.cfg.max_line_len;
                let (msg, flags) = if r.msg.len() > max {
                    (&r.msg[..max], FLAG_TRUNCATED)
                } else {
                    (&r.msg[..], 0)
                };
                let time = self
                    .boot_time_ns
                    .saturating_add((r.ts_us as i64).saturating_mul(1000));
                // A record from before memlogd's clock offset was known, or
                // from a recording, may claim a future time: never store one.
                self.store(time.min(now), KMSG_SOURCE, msg, flags, r.pri, md.as_bytes());
            }
            KEvent::Gap(lost) => {
                self.counters.kmsg_lost += lost;
                self.note(format!("kmsg: {lost} kernel messages lost (the kernel overwrote them before memlogd read them)"));
            }
            KEvent::Other(line) => self.store(now, KMSG_SOURCE, &line, 0, NO_PRI, &[]),
        }
    }
}

/// Source of kernel log records, as LinuxKit's kmsg package names them.
pub const KMSG_SOURCE: &[u8] = b"kmsg";

/// An owned kernel log event (parsed first, stored after the parser is done).
pub(super) enum KEvent {
    Record(kmsg::KRecord),
    Gap(u64),
    Other(Vec<u8>),
}

pub(super) fn own_event(e: kmsg::Event<'_>) -> KEvent {
    match e {
        kmsg::Event::Record(r) => KEvent::Record(r.clone()),
        kmsg::Event::Gap { lost } => KEvent::Gap(lost),
        kmsg::Event::Other(l) => KEvent::Other(l.to_vec()),
    }
}
