//! The daemon: one epoll loop that owns the ring, every input fd and every
//! reader. No threads on the data path (the optional console echo has one
//! writer thread of its own), no locks, no per-reader copies of the ring.

pub mod config;
mod docker_in;
mod echo;
mod inputs;
pub mod lines;
mod ratelimit;
mod readers;
mod slab;
pub mod sockets;
pub mod stats;
mod syslog_in;

use crate::ring::{self, Ring};
use crate::{proto, sys, timefmt};
use config::Config;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use slab::{Key, Slab};
use sockets::{Bound, SocketError};
use std::fmt;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

const TOKEN_LOG: u64 = 1;
const TOKEN_QUERY: u64 = 2;
const TOKEN_SIGNAL: u64 = 3;
/// Tokens of syslog sockets: base + index.
const TOKEN_SYSLOG_DGRAM: u64 = 0x1000;
const TOKEN_SYSLOG_STREAM: u64 = 0x2000;
const MAX_SYSLOG_SOCKETS: usize = 0x1000;
const KIND_INPUT: u64 = 1 << 62;
const KIND_READER: u64 = 2 << 62;
const KIND_MASK: u64 = 3 << 62;
/// An epoll wait at least this long means the loop was idle (not a flood).
const IDLE_WAIT: Duration = Duration::from_micros(500);

/// Signals read through the signalfd: the three that stop the daemon
/// cleanly, and three that are noted (see [`Daemon::on_signal`]).
const SIGNALFD_SIGNALS: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// memlogd's own messages allowed per second; the rest are counted and
/// summarised, so bad input cannot flood the ring with complaints.
const SELFLOG_PER_SEC: u32 = 20;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug)]
pub enum RunError {
    Socket(SocketError),
    Epoll(nix::Error),
    Signals(nix::Error),
    IgnoreSignals(std::io::Error),
    Kmsg(std::io::Error),
    TooManySyslogSockets,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Socket(e) => e.fmt(f),
            RunError::Epoll(e) => write!(f, "epoll: {e}"),
            RunError::Signals(e) => write!(f, "cannot set up signal handling: {e}"),
            RunError::IgnoreSignals(e) => write!(f, "cannot ignore signals: {e}"),
            RunError::Kmsg(e) => write!(f, "kernel log: {e}"),
            RunError::TooManySyslogSockets => {
                write!(f, "too many -syslog sockets (at most {MAX_SYSLOG_SOCKETS})")
            }
        }
    }
}

impl std::error::Error for RunError {}

impl From<SocketError> for RunError {
    fn from(e: SocketError) -> Self {
        RunError::Socket(e)
    }
}

/// Rate limit for memlogd's own records.
struct SelfLog {
    window_start: Instant,
    in_window: u32,
    suppressed: u64,
}

/// All state of a running daemon.
pub struct Daemon {
    cfg: Config,
    instance: u64,
    epoll: Epoll,
    ring: Ring,
    /// Decompressed chunks, shared by every reader (see [`ring::Scratch`]).
    ring_scratch: ring::Scratch,
    log_sock: Bound,
    listener: UnixListener,
    _query_path: sockets::PathGuard,
    signals: SignalFd,
    inputs: Slab<inputs::Input>,
    readers: Slab<readers::Reader>,
    counters: stats::Counters,
    scratch: Vec<u8>,
    name_buf: Vec<u8>,
    echo: Option<echo::Echo>,
    selflog: SelfLog,
    accept_paused: bool,
    reader_keys: Vec<Key>,
    /// Readers holding one of the `-max-readers` slots (dumps and follows).
    streaming: usize,
    /// Open stream syslog connections (at most `-max-syslog-conns`; they
    /// are inputs, but not counted against `-max-inputs`).
    syslog_conns: usize,
    /// Stream syslog connections held, by uid (`inputs::conn_uid`).
    syslog_uids: std::collections::HashMap<u32, u32>,
    /// Set when some reader has more to send than one turn allowed.
    busy: bool,
    syslog: syslog_in::SyslogSockets,
    rate: ratelimit::RateLimiter,
    /// Rate-limit windows that ended with records suppressed, to be noted.
    /// (whom, how many): see [`ratelimit::RateLimiter::expire`].
    pending_reports: Vec<(String, u64)>,
    /// Wall-clock time of boot (for kernel log timestamps).
    boot_time_ns: i64,
    /// Why the last fd of the datagram at hand was refused (for the reply).
    refusal: Option<String>,
}

/// Wall-clock time at which the monotonic clock read zero (kernel log
/// timestamps count from there).
fn boot_time_ns() -> i64 {
    let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() * 1_000_000_000 + t.tv_nsec())
        .unwrap_or(0);
    timefmt::now_ns() - mono
}

/// Binds (or adopts) both sockets. Separate from [`Daemon::new`] so that
/// `-daemonize` can bind in the parent and hand the fds to its child.
pub fn bind(cfg: &Config) -> Result<(Bound, Bound), RunError> {
    let log = sockets::log_socket(&cfg.log, cfg.log_access)?;
    // If this fails, `log` drops and its path guard removes the log socket.
    let query = sockets::query_socket(&cfg.query, cfg.query_access)?;
    nix::sys::socket::listen(
        &query.fd,
        nix::sys::socket::Backlog::new(128).unwrap_or(nix::sys::socket::Backlog::MAXCONN),
    )
    .map_err(|e| {
        RunError::Socket(SocketError::Configure {
            what: "query",
            err: e.into(),
        })
    })?;
    Ok((log, query))
}

/// Raises the soft fd limit so that -max-inputs, -max-readers and
/// -max-syslog-conns can be reached (the hard limit permitting). Returns a
/// note when it cannot.
fn raise_fd_limit(cfg: &Config) -> Option<String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // One reader more than -max-readers is accepted (for stats).
    let syslog = if cfg.syslog_stream.is_empty() {
        0
    } else {
        cfg.max_syslog_conns
    };
    let want = (cfg.max_inputs + cfg.max_readers + 1 + syslog + 64) as u64;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= want {
        return None;
    }
    let new = want.min(hard);
    if setrlimit(Resource::RLIMIT_NOFILE, new, hard).is_err() || new < want {
        return Some(format!(
            "the fd limit ({}) is below -max-inputs + -max-readers + -max-syslog-conns + 65 ({want}); fds beyond it will be refused",
            new.max(soft)
        ));
    }
    None
}

impl Daemon {
    /// Sets up the loop around already bound sockets. From here on the
    /// signals of [`SIGNALFD_SIGNALS`] are blocked and read through a
    /// signalfd, and those of [`sys::ignored_signals`] are ignored (README,
    /// "Signals"). This runs before any thread is started (the echo
    /// thread inherits the mask, so no signal reaches a thread that would
    /// take its default action).
    pub fn new(cfg: Config, log_sock: Bound, query_sock: Bound) -> Result<Daemon, RunError> {
        sys::ignore_signals().map_err(RunError::IgnoreSignals)?;
        let fd_limit_note = raise_fd_limit(&cfg);
        let mut mask = SigSet::empty();
        for s in SIGNALFD_SIGNALS {
            mask.add(s);
        }
        mask.thread_block().map_err(RunError::Signals)?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(RunError::Signals)?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(RunError::Epoll)?;
        epoll
            .add(
                log_sock.fd.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_LOG),
            )
            .map_err(RunError::Epoll)?;
        epoll
            .add(
                query_sock.fd.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_QUERY),
            )
            .map_err(RunError::Epoll)?;
        let Bound {
            fd: query_fd,
            path: query_path,
        } = query_sock;
        let listener = UnixListener::from(query_fd);
        epoll
            .add(
                signals.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SIGNAL),
            )
            .map_err(RunError::Epoll)?;
        if cfg.syslog_dgram.len() + cfg.syslog_stream.len() > MAX_SYSLOG_SOCKETS {
            return Err(RunError::TooManySyslogSockets);
        }
        let syslog = syslog_in::bind(&cfg.syslog_dgram, &cfg.syslog_stream, cfg.syslog_access)?;
        for (i, (fd, _)) in syslog.dgram.iter().enumerate() {
            epoll
                .add(
                    fd.as_fd(),
                    EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SYSLOG_DGRAM + i as u64),
                )
                .map_err(RunError::Epoll)?;
        }
        for (i, (l, _)) in syslog.stream.iter().enumerate() {
            epoll
                .add(
                    l.as_fd(),
                    EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SYSLOG_STREAM + i as u64),
                )
                .map_err(RunError::Epoll)?;
        }
        let ring = if cfg.ring_compress {
            // Chunks hold the longest record the inputs make: a source (a
            // name, or a syslog tag, at most a line), a line, metadata.
            let longest =
                cfg.max_name_len.max(cfg.max_line_len) + cfg.max_line_len + ring::MAX_META;
            let mut r = Ring::compressed(cfg.buffer_size, cfg.max_lines, longest);
            // A flood of writes is slowed by compression by at most this
            // share; beyond it, chunks are kept as they are.
            r.set_compress_share(ring::chunked::DAEMON_COMPRESS_SHARE);
            r
        } else {
            Ring::new(cfg.buffer_size, cfg.max_lines)
        };
        let rate = ratelimit::RateLimiter::new(cfg.rate_interval, cfg.rate_burst);
        let echo = cfg.echo.then(echo::Echo::start);
        let mut d = Daemon {
            instance: sys::random_u64(),
            ring_scratch: ring.scratch(),
            ring,
            // Room for a Docker-framed handover (its own limit), whose
            // fields are more than a name; plain names stay within -max-name-len.
            name_buf: vec![0u8; cfg.max_name_len.max(crate::dockerlog::MAX_HANDOVER) + 1],
            cfg,
            epoll,
            log_sock,
            listener,
            _query_path: query_path,
            signals,
            inputs: Slab::default(),
            readers: Slab::default(),
            counters: stats::Counters::default(),
            scratch: vec![0u8; 64 * 1024],
            echo,
            selflog: SelfLog {
                window_start: Instant::now(),
                in_window: 0,
                suppressed: 0,
            },
            accept_paused: false,
            reader_keys: Vec::new(),
            streaming: 0,
            syslog_conns: 0,
            syslog_uids: std::collections::HashMap::new(),
            busy: false,
            syslog,
            rate,
            pending_reports: Vec::new(),
            boot_time_ns: boot_time_ns(),
            refusal: None,
        };
        d.note("memlogd started".into());
        if let Some(p) = d.cfg.kmsg.clone() {
            // On error the socket paths go with `d` (their guards).
            d.open_kmsg(&p).map_err(RunError::Kmsg)?;
        }
        if let Some(n) = fd_limit_note {
            d.note(n);
        }
        Ok(d)
    }

    /// This daemon's instance id.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// Appends a record to the ring (and the echo).
    fn store(&mut self, time_ns: i64, source: &[u8], msg: &[u8], flags: u16, pri: u8, meta: &[u8]) {
        self.ring.push_with(time_ns, source, msg, flags, pri, meta);
        if let Some(e) = &mut self.echo {
            self.counters.echo_dropped += e.record(time_ns, source, msg);
        }
    }

    /// Records one of memlogd's own messages (source `memlogd`), subject to
    /// a rate limit of [`SELFLOG_PER_SEC`].
    fn note(&mut self, msg: String) {
        self.roll_selflog_window();
        if self.selflog.in_window >= SELFLOG_PER_SEC {
            self.selflog.suppressed += 1;
            self.counters.selflog_suppressed += 1;
            return;
        }
        self.selflog.in_window += 1;
        self.store(
            timefmt::now_ns(),
            proto::SELF_SOURCE,
            msg.as_bytes(),
            0,
            ring::NO_PRI,
            &[],
        );
    }

    fn roll_selflog_window(&mut self) {
        if self.selflog.window_start.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.selflog.window_start = Instant::now();
        self.selflog.in_window = 0;
        if self.selflog.suppressed > 0 {
            let n = std::mem::take(&mut self.selflog.suppressed);
            self.selflog.in_window = 1;
            let msg =
                format!("suppressed {n} memlogd messages (more than {SELFLOG_PER_SEC} per second)");
            self.store(
                timefmt::now_ns(),
                proto::SELF_SOURCE,
                msg.as_bytes(),
                0,
                ring::NO_PRI,
                &[],
            );
        }
    }

    /// One record per rate-limit window that ended with records suppressed.
    fn report_suppressed(&mut self) {
        if self.pending_reports.is_empty() {
            return;
        }
        for (who, n) in std::mem::take(&mut self.pending_reports) {
            self.note(format!("suppressed {n} messages from {who}"));
        }
    }

    fn gauges(&self) -> stats::Gauges {
        stats::Gauges {
            first: self.ring.first_seq(),
            next: self.ring.next_seq(),
            records: self.ring.len(),
            evicted: self.ring.evicted(),
            bytes_used: self.ring.bytes_used(),
            buffer_size: self.ring.capacity(),
            raw_bytes: self.ring.raw_bytes(),
            ring_compressed: self.ring.is_compressed(),
            compress_skipped: self.ring.compress_skipped(),
            inputs: self.inputs.len(),
            readers: self.readers.len(),
            syslog_conns: self.syslog_conns,
        }
    }

    /// Runs until SIGTERM, SIGINT or SIGQUIT, then removes the socket paths
    /// it owns.
    pub fn run(mut self) -> Result<(), RunError> {
        let mut events = vec![EpollEvent::empty(); 256];
        let mut last_tick = Instant::now();
        let stop = loop {
            // Chunks a flood left uncompressed are compressed when the loop
            // has nothing else to do: one bounded step per turn that finds
            // no event, so no writer or reader waits for more than a step.
            let recompress = !self.busy && self.ring.recompress_pending();
            let timeout = if self.busy || recompress {
                EpollTimeout::ZERO
            } else {
                EpollTimeout::from(1000u16)
            };
            let waited = Instant::now();
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::Error::EINTR) => 0,
                Err(e) => break Err(RunError::Epoll(e)),
            };
            if waited.elapsed() >= IDLE_WAIT {
                // Not a flood: the ring may spend time compressing again.
                self.ring.note_idle();
            }
            if recompress && n == 0 {
                self.ring.recompress_step();
            }
            let mut stop_signal = None;
            for ev in &events[..n] {
                let (token, flags) = (ev.data(), ev.events());
                match token & KIND_MASK {
                    KIND_INPUT => self.on_input(Key::from_u64(token & !KIND_MASK), flags),
                    KIND_READER => self.on_reader_event(Key::from_u64(token & !KIND_MASK), flags),
                    _ => match token {
                        TOKEN_LOG => self.on_log_socket(),
                        TOKEN_QUERY => self.on_accept(),
                        TOKEN_SIGNAL => {
                            while let Ok(Some(si)) = self.signals.read_signal() {
                                if let Some(stop) = self.on_signal(si.ssi_signo) {
                                    stop_signal = Some(stop);
                                }
                            }
                        }
                        t if (TOKEN_SYSLOG_DGRAM..TOKEN_SYSLOG_STREAM).contains(&t) => {
                            self.on_syslog_dgram((t - TOKEN_SYSLOG_DGRAM) as usize)
                        }
                        t if (TOKEN_SYSLOG_STREAM
                            ..TOKEN_SYSLOG_STREAM + MAX_SYSLOG_SOCKETS as u64)
                            .contains(&t) =>
                        {
                            self.on_syslog_accept((t - TOKEN_SYSLOG_STREAM) as usize)
                        }
                        _ => {}
                    },
                }
            }
            self.report_suppressed();
            self.pump_readers();
            if let Some(e) = &mut self.echo {
                self.counters.echo_dropped += e.flush();
            }
            if last_tick.elapsed() >= Duration::from_secs(1) {
                last_tick = Instant::now();
                self.tick();
            }
            if let Some(sig) = stop_signal {
                break Ok(sig);
            }
        };
        if let Ok(sig) = stop {
            self.note(format!("memlogd stopping on {}", sig.as_str()));
            self.pump_readers();
        }
        // The socket paths are removed as `self` drops (their guards).
        stop.map(|_| ())
    }

    /// A signal read from the signalfd: returns it if it stops the daemon
    /// (SIGTERM, SIGINT, SIGQUIT); the others are noted and the daemon goes
    /// on. A number not in the mask (it cannot be) is ignored.
    fn on_signal(&mut self, signo: u32) -> Option<Signal> {
        let sig = Signal::try_from(i32::try_from(signo).ok()?).ok()?;
        match sig {
            Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => return Some(sig),
            Signal::SIGHUP => self.note(
                "SIGHUP: nothing to reload (all of memlogd's settings are flags); still running"
                    .into(),
            ),
            Signal::SIGUSR1 => {
                let text = self.counters.text(&self.gauges());
                self.note(format!("SIGUSR1: {text}"));
            }
            Signal::SIGUSR2 => self.note("SIGUSR2: ignored (it has no meaning here)".into()),
            _ => {}
        }
        None
    }

    /// Once a second: expire silent readers and idle stream syslog
    /// connections, resume accepting, summarise suppressed self-messages.
    fn tick(&mut self) {
        let reports = &mut self.pending_reports;
        self.rate
            .expire(Instant::now(), |s, n| reports.push((s, n)));
        self.expire_requests();
        self.expire_syslog_conns();
        if self.accept_paused {
            self.resume_accept();
        }
        self.roll_selflog_window();
    }
}
