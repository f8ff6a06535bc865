//! A remote syslog server: `tcp://` (RFC 5424, RFC 6587 octet counting),
//! `tls://` (the same over TLS, RFC 5425; see [`crate::tls`]) or `udp://`
//! (one datagram per message), with its own saved position in the log
//! directory (`.logwrite-remote-NAME.state`). (`relp://` and `relp+tls://`
//! parse here and run in [`crate::relp`].) `exec:CMD` runs here too, over
//! a program's stdin pipe instead of a socket ([`crate::exec`]): the same
//! saved position, resend and stop, with the pipe's unread bytes in the
//! place of TCP's unacknowledged ones.
//!
//! Delivery over TCP. A record counts as delivered once the kernel took its
//! bytes; that is the position saved, because the kernel still delivers
//! them if logwrite itself dies. When the *connection* fails, logwrite asks
//! the kernel how much of what it sent the server's TCP never acknowledged
//! (`SIOCOUTQ`) and sends those records again on the next connection, so
//! nothing the server did not receive is skipped. Before each write it
//! checks whether the server has closed its side (syslog servers never send
//! anything), so nothing is written into a connection known to be dead.
//! The edge that remains: RFC 6587 has no application acknowledgement, so
//! records the server's TCP acknowledged but the server did not process
//! before it died are lost to it (a duplicate is possible only if the
//! acknowledgement itself was lost with the connection). Servers that stop
//! cleanly (rsyslog on SIGTERM, restarted) lose nothing; see the tests.
//!
//! TLS changes none of this: a [`ByteStream`] says how many plain-text
//! bytes the server's TCP acknowledged, and TLS maps cipher text back to
//! plain text at the end of each write.

use crate::dir::{Dir, State};
use crate::follow::{Sink, Stop};
use crate::names;
use crate::report::{Episode, LostCounter};
use crate::select::Selector;
use crate::syslog::{Format, Formatter, Framing};
use crate::tls::{self, TlsOptions};
use memlog::proto::{Position, RecordRef, Request};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames are handed to the kernel in writes of about this size (and
/// whatever is buffered when memlogd's stream pauses).
const BATCH: usize = 256 * 1024;

/// Transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    /// RFC 5425: octet-counted RFC 5424 over TLS.
    Tls,
    /// RELP (plain, or over TLS with [`RemoteConfig::tls`] set).
    Relp,
    /// `exec:CMD`: a program's stdin ([`crate::exec`]).
    Exec,
}

/// How a record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// A syslog message ([`Formatter`], with the remote's format and framing).
    Syslog,
    /// The line of a log file, `TIME SOURCE MSG` ([`crate::files::line_of`]).
    Linuxkit,
    /// logread's JSON, one object per line ([`RecordRef::write_json`]).
    Json,
}

/// The sources exec: never takes: logwrite's own output.
const OWN_SOURCES: &str = "logwrite*";

/// One `-remote` URL, parsed.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// `tcp://host:port` (without the options): the name in messages and state.
    pub name: String,
    pub proto: Proto,
    /// `host:port` (exec: the command).
    pub addr: String,
    /// exec: the program and its arguments.
    pub argv: Vec<String>,
    pub format: Format,
    pub framing: Framing,
    pub lines: Lines,
    pub select: Selector,
    /// Where the position is saved (the log directory).
    pub state_dir: PathBuf,
    /// `tls://` and `relp+tls://`: the TLS options.
    pub tls: Option<TlsOptions>,
    /// RELP: most frames sent and not yet acknowledged.
    pub window: usize,
}

/// `%XX` escapes decoded; `+` is a space where `plus_is_space` (not in a
/// regular expression, where it is a repetition).
pub(crate) fn pct_decode(s: &str, plus_is_space: bool) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad %-escape in {s:?}"))?;
                out.push(h);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8"))
}

impl RemoteConfig {
    /// Parses `tcp://HOST:PORT[?OPTION&...]`, `udp://`, `tls://`, `relp://`,
    /// `relp+tls://` or `exec:CMD` (CMD `%XX`-decoded, then split into words
    /// by [`crate::argv::split`]). Options: `format=rfc5424|rfc3164`
    /// (exec also `linuxkit`, the default, and `json`),
    /// `framing=octet|lf` (TCP), `include=GLOB`, `exclude=GLOB`, `match=REGEX`,
    /// `exclude-match=REGEX` (all repeatable), `min-severity=LEVEL`; with TLS `ca=`, `cert=`, `key=`,
    /// `name=`, `fingerprint=` ([`TlsOptions`]); RELP `window=N`.
    pub fn parse(url: &str, state_dir: PathBuf) -> Result<RemoteConfig, String> {
        if let Some(rest) = url.strip_prefix("exec:") {
            let (cmd, query) = rest.split_once('?').unwrap_or((rest, ""));
            // `+` is itself in a command (`%20` or a space is a space).
            let cmd = pct_decode(cmd, false).map_err(|e| format!("remote {url:?}: {e}"))?;
            let argv = crate::argv::split(&cmd).map_err(|e| format!("remote {url:?}: {e}"))?;
            let mut select = Selector::default();
            // The program's stdout and stderr are logwrite's, which reach
            // memlogd as `logwrite` under init: feeding them back to it
            // would be a loop (as for the files).
            select.exclude.push(OWN_SOURCES.into());
            let cfg = RemoteConfig {
                name: format!("exec:{cmd}"),
                proto: Proto::Exec,
                addr: cmd,
                argv,
                format: Format::Rfc5424,
                framing: Framing::Lf,
                lines: Lines::Linuxkit,
                select,
                state_dir,
                tls: None,
                window: crate::relp::WINDOW,
            };
            return cfg.options(url, query);
        }
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!("remote {url:?}: want SCHEME://HOST:PORT (tcp, udp, tls, relp, relp+tls) or exec:CMD")
        })?;
        let (proto, tls) = match scheme {
            "tcp" => (Proto::Tcp, None),
            "udp" => (Proto::Udp, None),
            "tls" => (Proto::Tls, Some(TlsOptions::default())),
            "relp" => (Proto::Relp, None),
            "relp+tls" => (Proto::Relp, Some(TlsOptions::default())),
            _ => {
                return Err(format!(
                    "remote {url:?}: unknown scheme {scheme:?} (tcp, udp, tls, relp, relp+tls or exec:)"
                ))
            }
        };
        let (addr, query) = rest.split_once('?').unwrap_or((rest, ""));
        let port_ok = addr
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!("remote {url:?}: want HOST:PORT after {scheme}://"));
        }
        let cfg = RemoteConfig {
            name: format!("{scheme}://{addr}"),
            proto,
            addr: addr.to_owned(),
            argv: Vec::new(),
            format: Format::Rfc5424,
            framing: if proto == Proto::Udp || proto == Proto::Relp {
                Framing::None
            } else {
                Framing::OctetCount
            },
            lines: Lines::Syslog,
            select: Selector::default(),
            state_dir,
            tls,
            window: crate::relp::WINDOW,
        };
        cfg.options(url, query)
    }

    /// Applies the options of `url` (its `query`, after `?`).
    fn options(self, url: &str, query: &str) -> Result<RemoteConfig, String> {
        let mut cfg = self;
        let proto = cfg.proto;
        let mut framing = None;
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let regex = matches!(k, "match" | "exclude-match");
            let v = pct_decode(v, !regex).map_err(|e| format!("remote {url:?}: {e}"))?;
            match k {
                "format" if proto == Proto::Exec => {
                    cfg.lines = Lines::Syslog;
                    match v.as_str() {
                        "linuxkit" => cfg.lines = Lines::Linuxkit,
                        "json" => cfg.lines = Lines::Json,
                        "rfc5424" | "5424" => cfg.format = Format::Rfc5424,
                        "rfc3164" | "3164" | "bsd" => cfg.format = Format::Rfc3164,
                        _ => {
                            return Err(format!(
                                "remote {url:?}: format is linuxkit, json, rfc5424 or rfc3164"
                            ))
                        }
                    }
                }
                "format" => {
                    cfg.format = match v.as_str() {
                        "rfc5424" | "5424" => Format::Rfc5424,
                        "rfc3164" | "3164" | "bsd" => Format::Rfc3164,
                        _ => return Err(format!("remote {url:?}: format is rfc5424 or rfc3164")),
                    }
                }
                "framing" => {
                    framing = Some(match v.as_str() {
                        "octet" | "octet-counting" => Framing::OctetCount,
                        "lf" => Framing::Lf,
                        _ => return Err(format!("remote {url:?}: framing is octet or lf")),
                    })
                }
                "include" => cfg.select.include.push(v),
                "match" => cfg.select.matching.push(
                    Selector::regex(&v, "match=").map_err(|e| format!("remote {url:?}: {e}"))?,
                ),
                "exclude-match" => cfg.select.not_matching.push(
                    Selector::regex(&v, "exclude-match=")
                        .map_err(|e| format!("remote {url:?}: {e}"))?,
                ),
                "exclude" => cfg.select.exclude.push(v),
                "min-severity" => {
                    cfg.select.min_severity = Some(
                        Selector::parse_severity(&v).map_err(|e| format!("remote {url:?}: {e}"))?,
                    )
                }
                "window" if proto == Proto::Relp => {
                    cfg.window = v
                        .parse()
                        .ok()
                        .filter(|w| (1..=crate::relp::MAX_WINDOW).contains(w))
                        .ok_or_else(|| {
                            format!(
                                "remote {url:?}: window is 1 to {} frames",
                                crate::relp::MAX_WINDOW
                            )
                        })?
                }
                _ if TlsOptions::is_option(k) && cfg.tls.is_some() => {
                    if let Some(t) = cfg.tls.as_mut() {
                        t.set(k, &v).map_err(|e| format!("remote {url:?}: {e}"))?;
                    }
                }
                _ => return Err(format!("remote {url:?}: unknown option {k:?}")),
            }
        }
        if let Some(t) = &cfg.tls {
            if !cfg!(feature = "tls") {
                return Err(format!("remote {url:?}: {}", tls::NO_TLS));
            }
            t.check().map_err(|e| format!("remote {url:?}: {e}"))?;
            t.server_name(cfg.host())
                .map_err(|e| format!("remote {url:?}: {e}"))?;
        }
        if proto == Proto::Exec && framing.is_some() {
            return Err(format!(
                "remote {url:?}: exec: writes one record per line; no framing="
            ));
        }
        if proto == Proto::Relp && framing.is_some() {
            return Err(format!(
                "remote {url:?}: RELP frames every message; no framing="
            ));
        }
        if proto == Proto::Tcp || proto == Proto::Tls {
            // Old receivers that take RFC 3164 expect LF-terminated messages.
            cfg.framing = framing.unwrap_or(match cfg.format {
                Format::Rfc5424 => Framing::OctetCount,
                Format::Rfc3164 => Framing::Lf,
            });
        }
        Ok(cfg)
    }

    /// The host part of `addr` (brackets kept).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub fn host(&self) -> &str {
        self.addr.rsplit_once(':').map_or(&self.addr, |(h, _)| h)
    }

    pub(crate) fn state_file(&self) -> String {
        format!(
            ".logwrite-remote-{}.state",
            names::stem(self.name.as_bytes())
        )
    }

    /// Connects to the first address of `addr` that answers (TCP), within 5 s each.
    /// `nodelay`: no Nagle (RELP, which batches its frames itself and
    /// waits for answers).
    pub(crate) fn connect_tcp(&self, nodelay: bool) -> io::Result<TcpStream> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for a in self.addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                Ok(s) => {
                    s.set_write_timeout(Some(Duration::from_secs(30)))?;
                    s.set_nodelay(nodelay)?;
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// [`RemoteConfig::connect_tcp`], then the TLS handshake if this is a
    /// TLS remote (the configuration read from its files now); a warning
    /// about the key file's mode is said once per `warned`.
    pub(crate) fn connect_stream(
        &self,
        read_timeout: Option<Duration>,
        warned: &mut bool,
    ) -> io::Result<Box<dyn ByteStream>> {
        let nodelay = self.proto == Proto::Relp;
        let Some(opts) = &self.tls else {
            let s = self.connect_tcp(nodelay)?;
            s.set_read_timeout(read_timeout)?;
            return Ok(Box::new(s));
        };
        #[cfg(feature = "tls")]
        {
            let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
            let (config, warning) = crate::tlsconn::client_config(opts).map_err(invalid)?;
            if let Some(w) = warning.filter(|_| !*warned) {
                *warned = true;
                crate::report::say(&self.name, &w);
            }
            let name = opts.server_name(self.host()).map_err(invalid)?;
            let s = self.connect_tcp(nodelay)?;
            Ok(Box::new(crate::tlsconn::TlsStream::connect(
                s,
                config,
                name,
                read_timeout,
            )?))
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (opts, read_timeout, warned);
            Err(io::Error::new(io::ErrorKind::Unsupported, tls::NO_TLS))
        }
    }
}

/// A byte stream to a server (TCP, or TLS over TCP): the transport hook
/// of `tcp://`, `tls://` and RELP.
pub trait ByteStream: io::Read + Write + Send {
    /// Of the `taken` bytes [`Write::write`] took, how many the server's
    /// TCP acknowledged.
    fn acked(&mut self, taken: u64) -> io::Result<u64>;
    /// True if the server closed its side or the connection broke (it
    /// sent something a syslog server never sends; TLS: an alert or
    /// close_notify, but not its own housekeeping).
    fn gone(&mut self) -> bool;
    /// Waits at most `timeout` until something can be read without
    /// blocking (or the connection ended).
    fn poll_read(&mut self, timeout: Duration) -> io::Result<bool>;
    /// Says goodbye where the protocol has a way (TLS close_notify).
    fn shutdown(&mut self) {}
    /// The error for a peer found [`ByteStream::gone`] (`name`: the
    /// destination's).
    fn gone_error(&mut self, name: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("{name} closed the connection"),
        )
    }
    /// logwrite is stopping: writes may go on until `deadline` even though
    /// the [`Stop`] is set (exec: so may the program's exit).
    fn stopping(&mut self, _deadline: Instant) {}
    /// Waits (until the [`ByteStream::stopping`] deadline at most) for the
    /// peer to take everything written (exec: the program read the pipe
    /// empty). Sockets do not wait.
    fn drain(&mut self) {}
    /// The TCP socket.
    fn fd(&self) -> BorrowedFd<'_>;
}

/// Acknowledges what was read at once (`TCP_QUICKACK`, which the kernel
/// turns off again by itself): a server that answers with small writes
/// (RELP's `rsp`) and Nagle's algorithm would otherwise wait for our
/// delayed ACK (40 ms) before each answer.
pub(crate) fn quickack(fd: BorrowedFd<'_>) {
    let one: libc::c_int = 1;
    // SAFETY: TCP_QUICKACK reads one int, which lives for the call; a
    // failure (not TCP) changes nothing.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Waits at most `timeout` until `fd` is readable or hung up.
pub(crate) fn readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let ms =
        PollTimeout::try_from(timeout.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::ZERO);
    let mut fds = [PollFd::new(
        fd,
        PollFlags::POLLIN | PollFlags::from_bits_retain(libc::POLLRDHUP),
    )];
    match poll(&mut fds, ms) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl ByteStream for TcpStream {
    fn acked(&mut self, taken: u64) -> io::Result<u64> {
        Ok(taken.saturating_sub(unacked(self.as_fd())?))
    }
    fn gone(&mut self) -> bool {
        peer_gone(self)
    }
    fn poll_read(&mut self, timeout: Duration) -> io::Result<bool> {
        readable(self.as_fd(), timeout)
    }
    fn fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}

enum Conn {
    Stream(Box<dyn ByteStream>),
    Udp(UdpSocket),
}

/// Bytes the peer's TCP has not acknowledged yet (`SIOCOUTQ`).
pub(crate) fn unacked(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int, which we own, for a TCP socket.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(n).unwrap_or(0))
}

/// True if the server closed its side or the connection broke. Syslog
/// servers never send anything, so anything readable means that.
fn peer_gone(s: &TcpStream) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(
        s.as_fd(),
        PollFlags::POLLIN | PollFlags::from_bits_retain(libc::POLLRDHUP),
    )];
    // poll counts the fds with any event (revents may hold POLLRDHUP, which
    // nix's PollFlags does not decode).
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// A remote's saved position (`.logwrite-remote-NAME.state` in the log
/// directory), shared by every kind of remote. Saving is best effort:
/// forwarding goes on if the directory cannot be written, and the trouble
/// is reported (once, then every 10 s).
pub struct PositionStore {
    state_dir: PathBuf,
    name: String,
    /// Who says it (the remote's name).
    who: String,
    dir: Option<Dir>,
    trouble: Episode,
}

impl PositionStore {
    pub fn new(cfg: &RemoteConfig) -> PositionStore {
        PositionStore {
            state_dir: cfg.state_dir.clone(),
            name: cfg.state_file(),
            who: cfg.name.clone(),
            dir: None,
            trouble: Episode::new(&cfg.name, "cannot save position"),
        }
    }

    /// Opens the log directory if it is not open; true if it is.
    fn open(&mut self) -> bool {
        if self.dir.is_none() {
            match Dir::open(&self.state_dir) {
                Ok(d) => self.dir = Some(d),
                Err(e) => {
                    self.trouble
                        .fail(&format!("{}: {e}", self.state_dir.display()));
                }
            }
        }
        self.dir.is_some()
    }

    /// Saves `st`, fsynced with `sync`.
    pub fn save(&mut self, st: &State, sync: bool) {
        if !self.open() {
            return;
        }
        let res = self
            .dir
            .as_ref()
            .map(|d| d.write_atomic(&self.name, &st.encode(), sync));
        match res.unwrap_or(Ok(())) {
            Ok(()) => self.trouble.recover("saving the position again"),
            Err(e) => {
                let path = self.state_dir.join(&self.name);
                self.trouble.fail(&format!("{}: {e}", path.display()));
                self.dir = None;
            }
        }
    }

    /// The saved state, read once at start (stale temporaries of an earlier
    /// save removed first). `None` when there is none, or when the
    /// directory cannot be read (reported; forwarding then starts from
    /// memlogd's oldest record); an unusable one is said here and is `None`
    /// too.
    pub fn load(&mut self) -> Option<State> {
        if !self.open() {
            return None;
        }
        let d = self.dir.as_ref()?;
        d.remove_stale_temps(&self.name);
        let st = match d.read_state(&self.name) {
            Ok(None) => return None,
            Ok(Some(data)) => State::decode(&data),
            Err(e) => Err(e.to_string()),
        };
        match st {
            Ok(st) => Some(st),
            Err(why) => {
                crate::report::say(
                    &self.who,
                    &format!(
                        "no usable saved position in {} ({why}): forwarding from memlogd's oldest record \
                         (the server may get records twice)",
                        self.path().display()
                    ),
                );
                None
            }
        }
    }

    /// The state file's path (for messages).
    pub fn path(&self) -> PathBuf {
        self.state_dir.join(&self.name)
    }
}

/// A remote output.
pub struct Remote {
    cfg: RemoteConfig,
    fmt: Formatter,
    conn: Option<Conn>,
    store: PositionStore,
    loaded: bool,
    committed: Option<Position>,
    taken: Option<Position>,
    /// Frames not yet handed to the kernel (TCP).
    out: Vec<u8>,
    /// The last second's text (`lines=linuxkit`).
    secs: memlog::timefmt::SecsWriter,
    /// Bytes the kernel took on this connection.
    accepted: u64,
    /// (end offset in the stream, position) of records handed over but not
    /// known to be acknowledged by the server's TCP.
    inflight: VecDeque<(u64, Option<Position>)>,
    /// Everything up to this position is acknowledged.
    acked: Option<Position>,
    lost: LostCounter,
    /// Records sent (handed to the kernel or buffered) since the last commit.
    sent: u64,
    /// The key file's mode was warned about.
    key_warned: bool,
    /// logwrite's stop (exec: a write to a full pipe gives up on it).
    stop: Arc<Stop>,
}

impl Remote {
    pub fn new(cfg: RemoteConfig, hostname: String, stop: Arc<Stop>) -> Remote {
        let fmt = Formatter {
            format: cfg.format,
            framing: cfg.framing,
            hostname,
        };
        let name = cfg.name.clone();
        Remote {
            store: PositionStore::new(&cfg),
            cfg,
            fmt,
            conn: None,
            loaded: false,
            committed: None,
            taken: None,
            out: Vec::with_capacity(BATCH + 64 * 1024),
            secs: memlog::timefmt::SecsWriter::default(),
            accepted: 0,
            inflight: VecDeque::new(),
            acked: None,
            lost: LostCounter::new(&name),
            sent: 0,
            key_warned: false,
            stop,
        }
    }

    fn connect(&mut self) -> io::Result<Conn> {
        if self.cfg.proto == Proto::Exec {
            let s = crate::exec::ExecStream::spawn(
                &self.cfg.name,
                &self.cfg.argv,
                Arc::clone(&self.stop),
            )?;
            return Ok(Conn::Stream(Box::new(s)));
        }
        if self.cfg.proto != Proto::Udp {
            return Ok(Conn::Stream(
                self.cfg.connect_stream(None, &mut self.key_warned)?,
            ));
        }
        let a = self
            .cfg
            .addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
        let local: SocketAddr = if a.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let s = UdpSocket::bind(local)?;
        s.connect(a)?;
        Ok(Conn::Udp(s))
    }

    /// Saves the committed position (best effort: forwarding goes on if the
    /// log directory cannot be written, and the trouble is reported).
    fn save(&mut self) {
        self.save_with(false)
    }

    /// [`Remote::save`], fsynced with `sync`.
    fn save_with(&mut self, sync: bool) {
        let st = State {
            position: self.committed,
            ..State::default()
        };
        self.store.save(&st, sync);
    }

    /// Reads the saved position (once; if the directory cannot be read,
    /// forwarding starts from memlogd's oldest record).
    fn load(&mut self) {
        self.loaded = true;
        if let Some(st) = self.store.load() {
            self.committed = st.position;
            self.taken = st.position;
            self.acked = st.position;
        }
    }

    /// Drops in-flight entries the server's TCP has acknowledged.
    fn trim(&mut self) {
        let Some(Conn::Stream(s)) = &mut self.conn else {
            return;
        };
        let Ok(acked_bytes) = s.acked(self.accepted) else {
            return;
        };
        while let Some(&(end, pos)) = self.inflight.front() {
            if end > acked_bytes {
                break;
            }
            if pos.is_some() {
                self.acked = pos;
            }
            self.inflight.pop_front();
        }
    }

    fn send_out(&mut self) -> io::Result<()> {
        let Some(Conn::Stream(s)) = &mut self.conn else {
            return Ok(());
        };
        if self.out.is_empty() {
            return Ok(());
        }
        if s.gone() {
            return Err(s.gone_error(&self.cfg.name));
        }
        let mut done = 0;
        while done < self.out.len() {
            match s.write(&self.out[done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    done += n;
                    self.accepted += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // exec, stopping: the rest stays in `out` (not delivered).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.out.drain(..done);
                    return Ok(());
                }
                Err(e) => {
                    self.out.drain(..done);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("sending to {}: {e}", self.cfg.name),
                    ));
                }
            }
        }
        self.out.clear();
        Ok(())
    }

    /// The position of the last record whose bytes the kernel all took
    /// ([`Remote::taken`] unless a stopping exec: left some in `out`).
    fn written(&self) -> Option<Position> {
        if self.out.is_empty() {
            return self.taken;
        }
        self.inflight
            .iter()
            .rev()
            .find(|(end, pos)| *end <= self.accepted && pos.is_some())
            .map_or(self.acked, |&(_, pos)| pos)
    }

    /// Commits what was written and saves it if it moved.
    fn commit_written(&mut self) {
        let w = self.written();
        if self.committed != w {
            self.committed = w;
            self.save();
        }
    }

    /// logwrite stops, exec: what was written (until [`crate::exec::STOP_GRACE`])
    /// and read by the program is committed and saved; what it did not
    /// read is fed again at the next start; then its stdin closes and it
    /// is waited for (the rest of the grace period) and reaped.
    fn finish_exec(&mut self) -> io::Result<()> {
        if let Some(Conn::Stream(s)) = &mut self.conn {
            s.stopping(Instant::now() + crate::exec::STOP_GRACE);
        }
        self.send_out()?;
        if let Some(Conn::Stream(s)) = &mut self.conn {
            s.drain();
        }
        self.trim();
        self.committed = self.acked;
        self.save_with(true);
        self.lost.flush(true);
        self.conn = None;
        Ok(())
    }
}

impl Sink for Remote {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn open(&mut self) -> io::Result<()> {
        if !self.loaded {
            self.load();
        }
        if self.conn.is_none() {
            let c = self.connect().map_err(|e| match self.cfg.proto {
                // It says which program.
                Proto::Exec => e,
                _ => io::Error::new(e.kind(), format!("connecting to {}: {e}", self.cfg.name)),
            })?;
            self.conn = Some(c);
            self.accepted = 0;
            self.inflight.clear();
            self.out.clear();
            self.acked = self.committed;
        }
        Ok(())
    }

    fn resume(&self) -> Option<Position> {
        self.committed
    }

    fn narrow(&self, req: &mut Request) {
        self.cfg.select.narrow(req);
    }

    fn record(&mut self, r: &RecordRef<'_>, pos: Option<Position>) -> io::Result<()> {
        if self.cfg.select.matches(r) {
            match &self.conn {
                Some(Conn::Udp(s)) => {
                    self.out.clear();
                    self.fmt.write(&mut self.out, r);
                    // A datagram is at most 64 KiB.
                    self.out.truncate(65_000);
                    s.send(&self.out).map_err(|e| {
                        io::Error::new(e.kind(), format!("sending to {}: {e}", self.cfg.name))
                    })?;
                    self.out.clear();
                }
                Some(Conn::Stream(_)) => match self.cfg.lines {
                    Lines::Syslog => self.fmt.write(&mut self.out, r),
                    Lines::Linuxkit => crate::files::line_of(&mut self.out, r, &mut self.secs),
                    Lines::Json => r.write_json(&mut self.out),
                },
                None => return Err(io::Error::new(io::ErrorKind::NotConnected, "not connected")),
            }
            self.sent += 1;
        }
        if pos.is_some() {
            self.taken = pos;
        }
        match self.conn {
            Some(Conn::Stream(_)) => {
                let end = self.accepted + self.out.len() as u64;
                self.inflight.push_back((end, pos));
                if self.out.len() >= BATCH {
                    // What the kernel took is the position saved at once,
                    // batch by batch (not only at the end of memlogd's
                    // burst): a kill -9 resends nothing it took.
                    self.send_out()?;
                    self.trim();
                    self.commit_written();
                }
            }
            _ => self.acked = self.taken,
        }
        Ok(())
    }

    fn lost(&mut self, count: u64, pos: Option<Position>) -> io::Result<()> {
        self.lost.add(count);
        if pos.is_some() {
            self.taken = pos;
        }
        if let Some(Conn::Stream(_)) = self.conn {
            let end = self.accepted + self.out.len() as u64;
            self.inflight.push_back((end, pos));
        } else {
            self.acked = self.taken;
        }
        Ok(())
    }

    fn position_ahead(&mut self, saved: Position, next: u64) {
        let reached = match next {
            0 => "has no record yet".to_owned(),
            n => format!("has only reached record {}", n - 1),
        };
        crate::report::say(
            &self.cfg.name,
            &format!(
                "no usable saved position in {} (it names record {} of this memlogd, which {reached}): \
                 forwarding from memlogd's oldest record (the server may get records twice)",
                self.store.path().display(),
                saved.seq
            ),
        );
        self.committed = None;
        self.taken = None;
        self.acked = None;
    }

    fn commit(&mut self) -> io::Result<bool> {
        self.send_out()?;
        self.trim();
        self.commit_written();
        let sent = self.sent > 0;
        self.sent = 0;
        Ok(sent)
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.cfg.proto == Proto::Exec {
            return self.finish_exec();
        }
        self.send_out()?;
        self.trim();
        self.committed = self.taken;
        self.save_with(true);
        self.lost.flush(true);
        Ok(())
    }

    fn tick(&mut self) -> io::Result<()> {
        self.lost.flush(false);
        if let Some(Conn::Stream(s)) = &mut self.conn {
            if s.gone() {
                return Err(s.gone_error(&self.cfg.name));
            }
        }
        self.commit().map(|_| ())
    }

    fn fail(&mut self) {
        // Whatever the server's TCP did not acknowledge is sent again.
        self.trim();
        self.conn = None;
        if self.acked != self.committed {
            self.committed = self.acked;
            self.save();
        }
        self.taken = self.committed;
        self.out.clear();
        self.inflight.clear();
        self.accepted = 0;
        self.sent = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memlog::proto::Record;

    #[test]
    fn urls() {
        let c = RemoteConfig::parse(
            "tcp://127.0.0.1:5514?min-severity=warning&exclude=debug.*&include=a%2Ab&include=c",
            PathBuf::from("/x"),
        )
        .expect("parses");
        assert_eq!(
            (c.proto, c.addr.as_str(), c.name.as_str()),
            (Proto::Tcp, "127.0.0.1:5514", "tcp://127.0.0.1:5514")
        );
        assert_eq!(c.select.min_severity, Some(4));
        assert_eq!(c.select.include, vec!["a*b", "c"]);
        assert_eq!(c.select.exclude, vec!["debug.*"]);
        assert_eq!(c.framing, Framing::OctetCount);
        let o =
            RemoteConfig::parse("tcp://[::1]:514?format=rfc3164", PathBuf::new()).expect("parses");
        assert_eq!((o.format, o.framing), (Format::Rfc3164, Framing::Lf));
        let u = RemoteConfig::parse("udp://localhost:514", PathBuf::new()).expect("parses");
        assert_eq!((u.proto, u.framing), (Proto::Udp, Framing::None));
        let m = RemoteConfig::parse(
            r"tcp://h:1?match=HTTP/.{3,20}\s5\d\d\s&match=a+b%26c&exclude-match=health",
            PathBuf::new(),
        )
        .expect("parses");
        let msg = |t: &str| Record {
            msg: t.into(),
            ..Record::default()
        };
        let takes = |t: &str| m.select.matches(&msg(t).as_ref());
        assert!(takes(r#"GET / HTTP/1.1" 503 12"#));
        assert!(!takes(r#"GET / HTTP/1.1" 200 12"#));
        // `+` is a repetition in a regex, not a space; `%26` is `&`.
        assert!(takes("aab&c"));
        assert!(!takes(r#"GET /health HTTP/1.1" 503 12"#));
        let r = RemoteConfig::parse("relp://h:2514?window=16", PathBuf::new()).expect("parses");
        assert_eq!(
            (r.proto, r.window, r.tls.is_none()),
            (Proto::Relp, 16, true)
        );
        for bad in [
            "tcp://h:1?match=(",
            "relp://h:1?window=0",
            "relp://h:1?window=100000",
            "relp://h:1?framing=lf",
            "tcp://h:1?window=4",
            "tcp://host",
            "http://h:1",
            "tcp://:1",
            "tcp://h:1?nope=1",
            "tcp://h:1?min-severity=loud",
            "h:1",
        ] {
            assert!(RemoteConfig::parse(bad, PathBuf::new()).is_err(), "{bad}");
        }
        tls_urls();
    }

    #[test]
    fn exec_urls() {
        let c = RemoteConfig::parse(
            "exec:sh -c 'gzip -c > /tmp/a%3Fb.gz' %25x+y?format=json&include=web.*",
            PathBuf::from("/x"),
        )
        .expect("parses");
        assert_eq!(c.proto, Proto::Exec);
        // `%3F` is `?`, `%25` is `%`, `+` stays `+`; the name is the decoded command.
        assert_eq!(c.name, "exec:sh -c 'gzip -c > /tmp/a?b.gz' %x+y");
        assert_eq!(c.argv, ["sh", "-c", "gzip -c > /tmp/a?b.gz", "%x+y"]);
        assert_eq!(c.lines, Lines::Json);
        assert_eq!(c.select.include, vec!["web.*"]);
        // logwrite's own output is never fed to the program (a loop).
        assert_eq!(c.select.exclude, vec![OWN_SOURCES]);
        assert!(c.state_file().starts_with(".logwrite-remote-exec:sh%20-c"));
        let d = RemoteConfig::parse("exec:cat", PathBuf::new()).expect("parses");
        assert_eq!(
            (d.lines, d.argv.as_slice(), d.name.as_str()),
            (Lines::Linuxkit, &["cat".to_owned()][..], "exec:cat")
        );
        let r = RemoteConfig::parse(
            "exec:/usr/bin/up --to x?format=rfc5424&min-severity=err&exclude-match=a+b",
            PathBuf::new(),
        )
        .expect("parses");
        assert_eq!(
            (r.lines, r.format, r.framing, r.select.min_severity),
            (Lines::Syslog, Format::Rfc5424, Framing::Lf, Some(3))
        );
        let r = RemoteConfig::parse("exec:x?format=rfc3164", PathBuf::new()).expect("parses");
        assert_eq!((r.lines, r.format), (Lines::Syslog, Format::Rfc3164));
        for (bad, says) in [
            ("exec:", "empty command"),
            ("exec:   ?format=json", "empty command"),
            ("exec:?format=json", "empty command"),
            ("exec:sh -c 'x", "unterminated"),
            ("exec:x?format=xml", "format is linuxkit"),
            ("exec:x?framing=lf", "no framing"),
            ("exec:x?window=4", "unknown option"),
            ("exec:x?ca=/a", "unknown option"),
            ("exec:a%zz", "bad %-escape"),
            ("exec:a%00b", "NUL"),
            ("exec:a%ff", "not UTF-8"),
            ("exec:x?match=(", "invalid regular expression"),
        ] {
            let e = RemoteConfig::parse(bad, PathBuf::new()).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[cfg(not(feature = "tls"))]
    fn tls_urls() {
        let e = RemoteConfig::parse("tls://127.0.0.1:6514", PathBuf::new()).expect_err("no TLS");
        assert!(e.contains("without TLS"), "{e}");
    }

    #[cfg(feature = "tls")]
    fn tls_urls() {
        let t = RemoteConfig::parse(
            "tls://127.0.0.1:6514?ca=/etc/ca.pem&name=logs.example&include=a",
            PathBuf::new(),
        )
        .expect("parses");
        assert_eq!((t.proto, t.framing), (Proto::Tls, Framing::OctetCount));
        let opts = t.tls.expect("TLS options");
        assert_eq!(
            (opts.ca.as_deref(), opts.name.as_deref()),
            (
                Some(std::path::Path::new("/etc/ca.pem")),
                Some("logs.example")
            )
        );
        let r = RemoteConfig::parse("relp://h:2514?window=16", PathBuf::new()).expect("parses");
        assert_eq!(
            (r.proto, r.window, r.tls.is_none()),
            (Proto::Relp, 16, true)
        );
        let rt = RemoteConfig::parse(
            "relp+tls://h:2514?fingerprint=SHA256:".to_owned().as_str(),
            PathBuf::new(),
        );
        assert!(rt.is_err(), "a bad pin");
        let rt = RemoteConfig::parse(
            &format!("relp+tls://h:2514?fingerprint=SHA256:{}", "0a".repeat(32)),
            PathBuf::new(),
        )
        .expect("parses");
        assert_eq!(rt.tls.and_then(|t| t.fingerprint), Some([10; 32]));
        for bad in [
            "tcp://h:1?ca=/x",
            "udp://h:1?name=x",
            "tls://h:1?cert=/c",
            "tls://h:1?ca=/a&fingerprint=SHA256:0000000000000000000000000000000000000000000000000000000000000000",
            "tls://a%20b:1",
        ] {
            assert!(RemoteConfig::parse(bad, PathBuf::new()).is_err(), "{bad}");
        }
    }
}
