//! `memlog-syslog-bench`: `/dev/log`-style datagrams per second into memlogd
//! (`-syslog PATH`), BusyBox `syslogd` (shared-memory ring) and `rsyslogd`
//! (one file action), side by side in one run with the same message mix,
//! against a bare receiver: a process that only drains the same kind of
//! socket (`SO_PASSCRED` on, `recvmmsg` into preallocated slots) and
//! discards, the most the kernel and the senders allow. The stream
//! `/dev/log` (`-syslog-stream`) is measured the same way against a bare
//! stream receiver (large reads, discarded).
//!
//! ```text
//! cargo build --release --workspace
//! cargo run --release -p memlog-tests --bin memlog-syslog-bench [-- --quick | --help]
//! ```
//!
//! The Markdown report goes to stdout, progress to stderr. Every wait is
//! bounded (`--timeout`); every daemon is stopped at the end, also after an
//! error (and killed by the kernel if this process dies: they run under
//! `setpriv --pdeathsig KILL`), and the temporary directory is removed.
//! None of the daemons touches the host's `/dev/log`, `/run` or `/var/log`:
//! BusyBox `syslogd` always binds `/dev/log`, so it runs in private mount and
//! IPC namespaces where `/dev/log` is a symlink into the temporary directory.

use memlog::client::Client;
use memlog::proto::{Line, Mode, Request};
use memlog_tests::bench::{
    flag_value, git_commit, loadavg, median, min_max, read_first, split_flag,
};
use memlog_tests::TempDir;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of every benchmark message (no trailing newline or NUL, as glibc
/// sends to a datagram `/dev/log`).
const MSG_LEN: usize = 100;

/// The message mix: (`facility << 3 | severity`, tag), cycled through.
const MIX: [(u8, &str); 8] = [
    (14, "app0"),  // user.info
    (30, "app1"),  // daemon.info
    (29, "app2"),  // daemon.notice
    (36, "app3"),  // auth.warning
    (19, "app4"),  // mail.err
    (78, "app5"),  // cron.info
    (135, "app6"), // local0.debug
    (157, "app7"), // local3.notice
];

/// Padding of the messages.
const FILLER: &[u8] = b"lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore";

/// Default size of BusyBox's shared-memory ring, KiB. `busybox logread`
/// copies and prints the whole ring, at several ms per MiB, and that is how
/// completion is seen: a small ring keeps the check cheap.
const BB_RING_KIB: usize = 256;

/// `/proc/PID/stat` reports CPU times in USER_HZ ticks, 100 a second on Linux.
const USER_HZ: u64 = 100;

/// The bare receiver's slots: as many, and as large, as memlogd's
/// (`daemon::syslog_in::BATCH` and `DATAGRAM_MAX`).
const BARE_BATCH: usize = 16;
const BARE_SLOT: usize = 64 * 1024;
/// The bare stream receiver's read size: memlogd's read buffer.
const BARE_READ: usize = 64 * 1024;

/// memlogd's flags besides its sockets.
const MEMLOGD_FLAGS: [&str; 6] = [
    "-rate-limit-burst",
    "0",
    "-max-lines",
    "1000000",
    "-buffer-size",
    "256M",
];

type Res<T> = Result<T, String>;

const USAGE: &str = "\
memlog-syslog-bench: /dev/log datagrams per second into memlogd, BusyBox syslogd and rsyslogd,
against a bare receiver; and the stream /dev/log into memlogd against a bare stream receiver

usage: cargo run --release -p memlog-tests --bin memlog-syslog-bench -- [OPTIONS]

  --memlogd PATH    memlogd binary (default: target/release/memlogd)
  --messages N      messages per repetition (default 200000)
  --reps N          repetitions per daemon (default 5)
  --senders N       sender threads (default 2)
  --busybox-ring K  BusyBox syslogd -C ring size in KiB (default 256)
  --send-to         datagram senders do not connect: send_to(PATH) for every message
                    (default: connect once and send(), as glibc's and musl's syslog(3) do)
  --only LIST       receivers to run, of bare,memlogd,busybox,rsyslog (datagrams) and
                    bare-stream,memlogd-stream (stream /dev/log) (default all)
  --timeout SECS    longest wait for any one step (default 60)
  --json FILE       also write the results as JSON
  --quick           smoke run: 20000 messages, 1 repetition
  -h, --help        this text
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The baseline: drains a datagram socket and discards.
    Bare,
    Memlogd,
    Busybox,
    Rsyslog,
    /// The stream baseline: drains stream connections and discards.
    BareStream,
    /// memlogd with `-syslog-stream`.
    MemlogdStream,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Bare,
        Kind::Memlogd,
        Kind::Busybox,
        Kind::Rsyslog,
        Kind::BareStream,
        Kind::MemlogdStream,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Bare => "bare receiver",
            Kind::Memlogd => "memlogd",
            Kind::Busybox => "BusyBox syslogd",
            Kind::Rsyslog => "rsyslogd",
            Kind::BareStream => "bare stream receiver",
            Kind::MemlogdStream => "memlogd -syslog-stream",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Kind::Bare => "bare",
            Kind::Memlogd => "memlogd",
            Kind::Busybox => "busybox",
            Kind::Rsyslog => "rsyslog",
            Kind::BareStream => "bare-stream",
            Kind::MemlogdStream => "memlogd-stream",
        }
    }

    /// Sent to over a stream socket (else datagrams).
    fn stream(self) -> bool {
        matches!(self, Kind::BareStream | Kind::MemlogdStream)
    }

    /// memlogd, counted through its `stats`.
    fn memlogd(self) -> bool {
        matches!(self, Kind::Memlogd | Kind::MemlogdStream)
    }

    /// A bare receiver, counted through the lines it prints.
    fn bare(self) -> bool {
        matches!(self, Kind::Bare | Kind::BareStream)
    }

    /// The baseline of this kind's transport.
    fn baseline(self) -> Kind {
        if self.stream() {
            Kind::BareStream
        } else {
            Kind::Bare
        }
    }
}

struct Opts {
    memlogd: PathBuf,
    messages: usize,
    reps: usize,
    senders: usize,
    kinds: Vec<Kind>,
    timeout: Duration,
    /// Untimed messages sent to each daemon before the first repetition.
    warmup: usize,
    busybox_ring_kib: usize,
    /// Datagram senders use `send_to` with the path for every message
    /// instead of connecting once.
    send_to: bool,
    json: Option<PathBuf>,
}

fn parse_num<T: std::str::FromStr>(flag: &str, v: &str) -> Res<T> {
    v.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{flag}: invalid number {v:?}"))
}

fn parse_opts() -> Res<Opts> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick" || a == "-quick");
    let mut o = Opts {
        memlogd: memlog_tests::workspace_dir().join("target/release/memlogd"),
        messages: if quick { 20_000 } else { 200_000 },
        reps: if quick { 1 } else { 5 },
        senders: 2,
        kinds: Kind::ALL.to_vec(),
        timeout: Duration::from_secs(60),
        warmup: 0,
        busybox_ring_kib: BB_RING_KIB,
        send_to: false,
        json: None,
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        let (flag, inline) = split_flag(a);

        match flag {
            "quick" => continue,
            "send-to" => {
                o.send_to = true;
                continue;
            }
            "h" | "help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            _ => {}
        }
        let val = flag_value(&args, &mut i, a, inline, USAGE)?;
        match flag {
            "memlogd" => o.memlogd = PathBuf::from(val),
            "json" => o.json = Some(PathBuf::from(val)),
            "messages" => o.messages = parse_num(a, &val)?,
            "reps" => o.reps = parse_num(a, &val)?,
            "senders" => o.senders = parse_num(a, &val)?,
            "busybox-ring" => o.busybox_ring_kib = parse_num(a, &val)?,
            "timeout" => o.timeout = Duration::from_secs(parse_num(a, &val)?),
            "only" => {
                o.kinds = Vec::new();
                for k in val.split(',').map(str::trim) {
                    let kind = Kind::ALL
                        .into_iter()
                        .find(|c| c.key() == k)
                        .ok_or_else(|| {
                            format!("--only: unknown receiver {k:?} (want bare,memlogd,busybox,rsyslog,bare-stream,memlogd-stream)")
                        })?;
                    if !o.kinds.contains(&kind) {
                        o.kinds.push(kind);
                    }
                }
            }
            _ => return Err(format!("unknown option {a}\n\n{USAGE}")),
        }
    }
    if o.messages == 0 || o.reps == 0 || o.senders == 0 || o.timeout.is_zero() {
        return Err("--messages, --reps, --senders and --timeout must be positive".into());
    }
    if o.busybox_ring_kib < 4 {
        return Err("--busybox-ring: at least 4 (KiB)".into());
    }
    if o.senders > 256 {
        return Err("--senders: at most 256".into());
    }
    if o.kinds.iter().any(|k| k.memlogd()) && !o.memlogd.is_file() {
        return Err(format!(
            "memlogd binary not found at {}: run `cargo build --release --workspace` first, or pass --memlogd PATH",
            o.memlogd.display()
        ));
    }
    o.warmup = (o.messages / 10).clamp(1_000, 20_000);
    Ok(o)
}

// ---------------------------------------------------------------------------
// Small helpers

/// `name` in `$PATH` or the sbin directories (rsyslogd lives in /usr/sbin).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs `cmd` with stdin null and both outputs captured, killing it after
/// `timeout`. Returns as soon as its stdout closes (no polling delay).
fn run_capture(cmd: &mut Command, timeout: Duration) -> Res<(ExitStatus, Vec<u8>, Vec<u8>)> {
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {what}: {e}"))?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        if let Some(s) = out.as_mut() {
            let _ = s.read_to_end(&mut o);
        }
        if let Some(s) = err.as_mut() {
            let _ = s.read_to_end(&mut e);
        }
        let _ = tx.send((o, e));
    });
    match rx.recv_timeout(timeout) {
        Ok((o, e)) => {
            let st = child
                .wait()
                .map_err(|e| format!("waiting for {what}: {e}"))?;
            Ok((st, o, e))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "{what} did not finish within {} s",
                timeout.as_secs()
            ))
        }
    }
}

/// The first line a command prints (stdout, else stderr).
fn first_line(cmd: &mut Command) -> String {
    match run_capture(cmd, Duration::from_secs(10)) {
        Ok((_, o, e)) => {
            let s = if o.is_empty() { e } else { o };
            String::from_utf8_lossy(&s)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(e) => e,
    }
}

/// Quotes a word for a shell command line, when it needs it.
fn shell_word(w: &str) -> String {
    if !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `Mmm dd hh:mm:ss` (day padded with a space, as glibc's `%e`), UTC.
fn syslog_stamp(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `count` messages of exactly [`MSG_LEN`] bytes, back to back, in RFC 3164
/// as glibc's `syslog(3)` writes them to `/dev/log`:
/// `<PRI>Mmm dd hh:mm:ss TAG[PID]: TOKEN NNNNNNNNNN padding`.
fn make_messages(count: usize, token: &str, stamp: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(count * MSG_LEN);
    for i in 0..count {
        let (pri, tag) = MIX[i % MIX.len()];
        let start = v.len();
        let _ = write!(
            v,
            "<{pri}>{stamp} {tag}[{}]: {token} {i:010} ",
            2000 + i % MIX.len()
        );
        let pad = (start + MSG_LEN).saturating_sub(v.len());
        v.extend_from_slice(&FILLER[..pad.min(FILLER.len())]);
        v.resize(start + MSG_LEN, b'.');
    }
    v
}

/// `msgs` ([`MSG_LEN`] each) as a stream client sends them: each followed
/// by a NUL, as glibc's `syslog(3)` ends a message on a stream `/dev/log`.
fn stream_frames(msgs: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(msgs.len() / MSG_LEN * (MSG_LEN + 1));
    for m in msgs.chunks_exact(MSG_LEN) {
        v.extend_from_slice(m);
        v.push(0);
    }
    v
}

/// The marker sent after a repetition's messages.
fn marker_message(token: &str, stamp: &str) -> Vec<u8> {
    format!(
        "<30>{stamp} bench[{}]: {token} end-marker",
        std::process::id()
    )
    .into_bytes()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = 0;
    while let Some(p) = hay[i..].iter().position(|&b| b == first) {
        let s = i + p;
        if hay[s..].starts_with(needle) {
            return Some(s);
        }
        i = s + 1;
    }
    None
}

/// Counts the complete lines of `buf` that hold `token ` (a benchmark
/// message or the marker of this repetition), and whether the marker is
/// among them. Returns the bytes after the last newline, unscanned.
fn scan_lines<'a>(buf: &'a [u8], token: &str, count: &mut u64, marker: &mut bool) -> &'a [u8] {
    let tok = format!("{token} ");
    let mark = format!("{token} end-marker");
    let mut rest = buf;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..nl];
        if let Some(p) = find(line, tok.as_bytes()) {
            *count += 1;
            if line[p..].starts_with(mark.as_bytes()) {
                *marker = true;
            }
        }
        rest = &rest[nl + 1..];
    }
    rest
}

/// The message numbers of this repetition's lines in BusyBox's ring must
/// be, for each sender, a run without gaps that ends with its last message.
fn check_ring_tail(out: &[u8], token: &str, shares: &[std::ops::Range<usize>]) -> Res<()> {
    let tok = format!("{token} ");
    let mut seqs: Vec<usize> = Vec::new();
    for line in out.split(|&b| b == b'\n') {
        if let Some(p) = find(line, tok.as_bytes()) {
            let rest = &line[p + tok.len()..];
            if let Some(n) = rest
                .get(..10)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| d.parse().ok())
            {
                seqs.push(n);
            }
        }
    }
    seqs.sort_unstable();
    for (t, r) in shares.iter().enumerate() {
        let mine: Vec<usize> = seqs.iter().copied().filter(|n| r.contains(n)).collect();
        let (Some(&lo), Some(&hi)) = (mine.first(), mine.last()) else {
            continue;
        };
        if hi + 1 != r.end || mine.len() != hi - lo + 1 {
            return Err(format!(
                "busybox: the ring holds {} of sender {t}'s messages {lo}..={hi} (it sent {}..{}): messages lost",
                mine.len(),
                r.start,
                r.end
            ));
        }
    }
    if seqs.is_empty() {
        eprintln!("note: BusyBox's ring holds none of this repetition's messages but the marker: too small to check anything (--busybox-ring)");
    }
    Ok(())
}

fn send_err(who: &str, e: &io::Error, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!(
            "{who}: a send to its socket blocked for more than {} s (the daemon stopped reading)",
            timeout.as_secs()
        ),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => {
            format!("{who}: sending to its socket: {e} (did it exit?)")
        }
        _ => format!("{who}: sending to its socket: {e}"),
    }
}

/// Blocking `send_to` with a bounded wait, retried on EINTR.
fn send_one(sock: &UnixDatagram, msg: &[u8], path: &Path) -> io::Result<()> {
    loop {
        match sock.send_to(msg, path) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Blocking `send` on a connected socket, retried on EINTR.
fn send_connected(sock: &UnixDatagram, msg: &[u8]) -> io::Result<()> {
    loop {
        match sock.send(msg) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn sender_socket(timeout: Duration) -> io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

/// A connection to a stream syslog socket, with a bounded write wait.
fn stream_sender(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let s = UnixStream::connect(path)?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

/// Sends `frame` on a new connection to the stream socket at `path`, then
/// closes it.
fn send_stream_once(path: &Path, frame: &[u8], timeout: Duration) -> io::Result<()> {
    let mut s = stream_sender(path, timeout)?;
    s.write_all(frame)?;
    s.flush()
}

/// The range of message numbers that sender `t` of `senders` sends.
fn share(n: usize, senders: usize, t: usize) -> std::ops::Range<usize> {
    t * n / senders..(t + 1) * n / senders
}

/// Sends `msgs` (back to back, `frame` bytes each) to `path` from
/// `senders` threads, each with its own unbound datagram socket (one
/// `send_to` per message) or, with `stream`, its own connection (one
/// `write` per message, closed at the end), and a contiguous share.
/// Returns when the first send started and when the last one returned.
fn send_all(
    path: &Path,
    msgs: &[u8],
    frame: usize,
    stream: bool,
    o: &Opts,
    who: &str,
) -> Res<(Instant, Instant)> {
    let (senders, timeout) = (o.senders, o.timeout);
    let n = msgs.len() / frame;
    let barrier = Barrier::new(senders + 1);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let handles: Vec<_> = (0..senders)
            .map(|t| {
                let r = share(n, senders, t);
                let share = &msgs[r.start * frame..r.end * frame];
                let (barrier, stop) = (&barrier, &stop);
                s.spawn(move || -> Res<()> {
                    if stream {
                        let conn = stream_sender(path, timeout);
                        barrier.wait();
                        let mut conn = conn.map_err(|e| send_err(who, &e, timeout))?;
                        for (k, m) in share.chunks_exact(frame).enumerate() {
                            if k % 1024 == 0 && stop.load(Ordering::Relaxed) {
                                return Ok(());
                            }
                            if let Err(e) = conn.write_all(m) {
                                stop.store(true, Ordering::Relaxed);
                                return Err(send_err(who, &e, timeout));
                            }
                        }
                        return Ok(());
                    }
                    let sock = sender_socket(timeout);
                    // Every thread reaches the barrier exactly once.
                    barrier.wait();
                    let sock = sock.map_err(|e| format!("creating a sender socket: {e}"))?;
                    // As glibc's openlog(3): connect once, then send().
                    if !o.send_to {
                        sock.connect(path).map_err(|e| send_err(who, &e, timeout))?;
                    }
                    for (k, m) in share.chunks_exact(frame).enumerate() {
                        if k % 1024 == 0 && stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let r = if o.send_to {
                            send_one(&sock, m, path)
                        } else {
                            send_connected(&sock, m)
                        };
                        if let Err(e) = r {
                            stop.store(true, Ordering::Relaxed);
                            return Err(send_err(who, &e, timeout));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        let mut err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    err.get_or_insert(e);
                }
                Err(_) => {
                    err.get_or_insert_with(|| "a sender thread panicked".to_string());
                }
            }
        }
        let t1 = Instant::now();
        match err {
            Some(e) => Err(e),
            None => Ok((t0, t1)),
        }
    })
}

// ---------------------------------------------------------------------------
// The daemons

/// A daemon under test, stopped on drop.
struct Daemon {
    kind: Kind,
    child: Option<Child>,
    dir: PathBuf,
    /// The `/dev/log`-style socket it reads.
    sock: PathBuf,
    /// Its command line, for the report.
    cmdline: String,
    /// memlogd's query socket.
    query: PathBuf,
    /// BusyBox: the `busybox` and `nsenter` binaries.
    busybox: PathBuf,
    nsenter: PathBuf,
    /// rsyslogd's output file, and how much of it has been scanned.
    out: PathBuf,
    out_pos: u64,
    timeout: Duration,
}

/// What a repetition waits for, and what was seen so far.
struct Pending {
    token: String,
    /// Messages plus the marker.
    expect: u64,
    /// What the counter of `base` must grow by: records (memlogd),
    /// datagrams (bare receiver) or bytes (bare stream receiver).
    units: u64,
    /// memlogd: `next` before the repetition; a bare receiver: what it
    /// last reported.
    base: u64,
    /// busybox, rsyslog: lines of this repetition seen, marker among them.
    count: u64,
    marker: bool,
    /// rsyslog: an incomplete last line, and when `count` last changed.
    partial: Vec<u8>,
    changed: Instant,
    /// busybox: the message numbers each sender sent.
    shares: Vec<std::ops::Range<usize>>,
}

enum Progress {
    /// Complete, as observed at `at`, with `stored` messages of the
    /// repetition (marker included).
    Done {
        at: Instant,
        stored: u64,
    },
    NotYet(String),
}

/// One timed repetition.
#[derive(Clone, Copy)]
struct Run {
    /// First send to everything visible.
    total: Duration,
    /// First send to the last send returning.
    sent: Duration,
    /// Daemon CPU time (user + system), in ticks.
    cpu_ticks: u64,
    /// Duration of the completion check that succeeded.
    last_check: Duration,
    checks: usize,
}

impl Daemon {
    fn new(kind: Kind, dir: PathBuf, sock: PathBuf, timeout: Duration) -> Daemon {
        Daemon {
            kind,
            child: None,
            dir,
            sock,
            cmdline: String::new(),
            query: PathBuf::new(),
            busybox: PathBuf::new(),
            nsenter: PathBuf::new(),
            out: PathBuf::new(),
            out_pos: 0,
            timeout,
        }
    }

    /// Starts `argv` (under `setpriv --pdeathsig KILL` when there is one)
    /// with its output in files in its directory, and waits until its
    /// socket takes datagrams.
    fn spawn(&mut self, argv: Vec<String>) -> Res<()> {
        let name = self.kind.name();
        let file = |n: &str| {
            fs::File::create(self.dir.join(n)).map_err(|e| format!("{name}: creating {n}: {e}"))
        };
        let mut cmd = match find_program("setpriv") {
            Some(sp) => {
                let mut c = Command::new(sp);
                c.args(["--pdeathsig", "KILL", "--"]).args(&argv);
                c
            }
            None => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(file("stdout.txt")?)
            .stderr(file("stderr.txt")?)
            .current_dir(&self.dir);
        self.cmdline = shell_join(&argv);
        let child = cmd
            .spawn()
            .map_err(|e| format!("{name}: starting {}: {e}", argv[0]))?;
        self.child = Some(child);
        let deadline = Instant::now() + self.timeout;
        loop {
            self.check_alive()?;
            let connects = if self.kind.stream() {
                UnixStream::connect(&self.sock).is_ok()
            } else {
                UnixDatagram::unbound()
                    .and_then(|d| d.connect(&self.sock))
                    .is_ok()
            };
            let ready =
                self.sock.exists() && connects && (!self.kind.memlogd() || self.stats().is_ok());
            if ready {
                eprintln!("started {name}, pid {}: {}", self.pid(), self.cmdline);
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} did not serve {} within {} s; its stderr: {}",
                    self.sock.display(),
                    self.timeout.as_secs(),
                    self.stderr_tail()
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// memlogd with `-syslog` (kind [`Kind::Memlogd`]) or `-syslog-stream`.
    fn start_memlogd(kind: Kind, bin: &Path, dir: PathBuf, timeout: Duration) -> Res<Daemon> {
        let sock = dir.join("devlog");
        let mut d = Daemon::new(kind, dir.clone(), sock.clone(), timeout);
        d.query = dir.join("query.sock");
        let mut argv: Vec<String> = vec![
            bin.display().to_string(),
            "-socket-log".into(),
            dir.join("log.sock").display().to_string(),
            "-socket-query".into(),
            d.query.display().to_string(),
            if kind.stream() {
                "-syslog-stream".into()
            } else {
                "-syslog".into()
            },
            sock.display().to_string(),
        ];
        argv.extend(MEMLOGD_FLAGS.iter().map(|s| s.to_string()));
        d.spawn(argv)?;
        Ok(d)
    }

    /// This program again, as a bare receiver of `kind`'s transport
    /// (see [`bare_receiver`]).
    fn start_bare(kind: Kind, dir: PathBuf, timeout: Duration) -> Res<Daemon> {
        let sock = dir.join("devlog");
        let mut d = Daemon::new(kind, dir, sock.clone(), timeout);
        let me = std::env::current_exe().map_err(|e| format!("{}: {e}", kind.name()))?;
        d.spawn(vec![
            me.display().to_string(),
            BARE_FLAG.into(),
            if kind.stream() { "stream" } else { "dgram" }.into(),
            sock.display().to_string(),
        ])?;
        Ok(d)
    }

    /// What a bare receiver last reported (the last complete line of its
    /// output; 0 before the first).
    fn bare_reported(&self) -> Res<u64> {
        let p = self.dir.join("stdout.txt");
        let out = fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let done = out
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(&out[..0], |e| &out[..e]);
        let last = done.rsplit(|&b| b == b'\n').next().unwrap_or_default();
        if last.is_empty() {
            return Ok(0);
        }
        std::str::from_utf8(last)
            .ok()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| {
                format!(
                    "{}: unexpected line {:?}",
                    p.display(),
                    String::from_utf8_lossy(last)
                )
            })
    }

    fn start_busybox(
        busybox: &Path,
        nsenter: &Path,
        unshare: &Path,
        dir: PathBuf,
        ring_kib: usize,
        timeout: Duration,
    ) -> Res<Daemon> {
        let sock = dir.join("devlog");
        let mut d = Daemon::new(Kind::Busybox, dir.clone(), sock.clone(), timeout);
        d.busybox = busybox.to_path_buf();
        d.nsenter = nsenter.to_path_buf();
        // BusyBox syslogd has no flag for its socket: it binds /dev/log,
        // following a symlink there. In its own mount namespace /dev is
        // DIR/dev, whose `log` points at DIR/devlog, and /var/run (its pid
        // file) is DIR/run; its shared-memory ring is in its own IPC namespace.
        let mk = |p: &Path| fs::create_dir_all(p).map_err(|e| format!("busybox: {e}"));
        mk(&dir.join("dev"))?;
        mk(&dir.join("run"))?;
        std::os::unix::fs::symlink(&sock, dir.join("dev/log"))
            .map_err(|e| format!("busybox: symlink: {e}"))?;
        let mut argv: Vec<String> = vec![unshare.display().to_string()];
        if !nix::unistd::geteuid().is_root() {
            argv.extend(["--user".into(), "--map-root-user".into()]);
        }
        argv.extend(
            [
                "--mount",
                "--ipc",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-c",
                r#"mount --bind "$1/dev" /dev && mount --bind "$1/run" /var/run && exec "$3" syslogd -n -C"$2" -O "$1/messages""#,
                "sh",
            ]
            .map(String::from),
        );
        argv.push(dir.display().to_string());
        argv.push(ring_kib.to_string());
        argv.push(busybox.display().to_string());
        d.spawn(argv)?;
        Ok(d)
    }

    fn start_rsyslog(rsyslogd: &Path, dir: PathBuf, timeout: Duration) -> Res<Daemon> {
        let sock = dir.join("devlog");
        let mut d = Daemon::new(Kind::Rsyslog, dir.clone(), sock.clone(), timeout);
        d.out = dir.join("out.log");
        let work = dir.join("work");
        fs::create_dir_all(&work).map_err(|e| format!("rsyslogd: {e}"))?;
        let conf = dir.join("rsyslog.conf");
        fs::write(&conf, rsyslog_conf(&dir)).map_err(|e| format!("rsyslogd: {e}"))?;
        let argv: Vec<String> = vec![
            rsyslogd.display().to_string(),
            "-n".into(),
            "-f".into(),
            conf.display().to_string(),
            "-i".into(),
            dir.join("rsyslogd.pid").display().to_string(),
        ];
        d.spawn(argv)?;
        Ok(d)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn stderr_tail(&self) -> String {
        let s = fs::read(self.dir.join("stderr.txt")).unwrap_or_default();
        let s = String::from_utf8_lossy(&s[s.len().saturating_sub(1500)..])
            .trim()
            .to_string();
        if s.is_empty() {
            "(empty)".into()
        } else {
            s
        }
    }

    /// An error if the daemon has exited.
    fn check_alive(&mut self) -> Res<()> {
        let name = self.kind.name();
        let Some(c) = self.child.as_mut() else {
            return Err(format!("{name} is not running"));
        };
        match c.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(st)) => Err(format!(
                "{name} exited ({st}); its stderr: {}",
                self.stderr_tail()
            )),
            Err(e) => Err(format!("{name}: waitpid: {e}")),
        }
    }

    /// Stops the daemon: SIGTERM, then SIGKILL after 5 s.
    fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        if let Ok(None) = c.try_wait() {
            let _ = memlog_tests::signal(c.id(), libc::SIGTERM);
            let end = Instant::now() + Duration::from_secs(5);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < end {
                thread::sleep(Duration::from_millis(5));
            }
            let _ = c.kill();
        }
        let _ = c.wait();
    }

    /// memlogd's counters.
    fn stats(&self) -> Res<Vec<(String, u64)>> {
        let s = UnixStream::connect(&self.query)
            .map_err(|e| format!("connecting to {}: {e}", self.query.display()))?;
        s.set_read_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        let mut req = Request::new(Mode::Dump);
        req.stats = true;
        let mut c = Client::start(s, &req).map_err(|e| format!("stats request: {e}"))?;
        let mut stats = None;
        loop {
            match c.next_line() {
                Ok(Some(Line::Stats(s))) => stats = Some(s),
                Ok(Some(Line::Error(e))) => return Err(format!("memlogd refused stats: {e}")),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(format!(
                        "no answer to a stats request within {} s",
                        self.timeout.as_secs()
                    ))
                }
                Err(e) => return Err(format!("reading stats: {e}")),
            }
        }
        stats.ok_or_else(|| "memlogd answered a stats request without counters".into())
    }

    fn stat(&self, key: &str) -> Res<u64> {
        let s = self.stats()?;
        s.iter()
            .find(|(k, _)| k == key)
            .map(|&(_, v)| v)
            .ok_or_else(|| format!("memlogd's stats have no {key:?}"))
    }

    /// `busybox logread` in the daemon's IPC namespace.
    fn logread(&self) -> Res<Vec<u8>> {
        let mut cmd = Command::new(&self.nsenter);
        cmd.args(["-t", &self.pid().to_string(), "-i", "--"])
            .arg(&self.busybox)
            .arg("logread");
        let (st, out, err) = run_capture(&mut cmd, self.timeout)?;
        if st.success() {
            Ok(out)
        } else {
            Err(format!(
                "busybox logread: {st}: {}",
                String::from_utf8_lossy(&err).trim()
            ))
        }
    }

    /// (utime + stime) of the whole process, in ticks.
    fn cpu_ticks(&self) -> Res<u64> {
        let p = format!("/proc/{}/stat", self.pid());
        let s = fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?;
        let f: Vec<&str> = s
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        match (f.get(11), f.get(12)) {
            (Some(u), Some(s)) => Ok(u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0)),
            _ => Err(format!("{p}: unexpected format")),
        }
    }

    /// Peak resident set size (VmHWM), in KiB.
    fn vm_hwm_kib(&self) -> Res<u64> {
        let p = format!("/proc/{}/status", self.pid());
        let s = fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?;
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no VmHWM in {p}"))
    }

    fn pending(&mut self, token: &str, n: usize, senders: usize, units: u64) -> Res<Pending> {
        let base = match self.kind {
            k if k.memlogd() => self.stat("next")?,
            k if k.bare() => self.bare_reported()?,
            _ => 0,
        };
        if self.kind == Kind::Rsyslog {
            // Nothing of this repetition can be in the file yet.
            self.out_pos = fs::metadata(&self.out).map_or(0, |m| m.len());
        }
        Ok(Pending {
            token: token.to_string(),
            expect: n as u64 + 1,
            units,
            base,
            count: 0,
            marker: false,
            partial: Vec::new(),
            changed: Instant::now(),
            shares: (0..senders).map(|t| share(n, senders, t)).collect(),
        })
    }

    /// One look at whether everything of the repetition is visible.
    fn check(&mut self, p: &mut Pending) -> Res<Progress> {
        match self.kind {
            Kind::Bare | Kind::BareStream => {
                let now = self.bare_reported()?;
                let at = Instant::now();
                let got = now.saturating_sub(p.base);
                // The datagram receiver reports once, at the marker: what
                // it counted then is final. The stream one reports at
                // every connection's end.
                Ok(if self.kind == Kind::Bare && got > 0 {
                    Progress::Done {
                        at,
                        stored: got.min(p.expect),
                    }
                } else if self.kind == Kind::BareStream && got >= p.units {
                    Progress::Done {
                        at,
                        stored: p.expect,
                    }
                } else {
                    Progress::NotYet(format!("{got} of {} bytes received", p.units))
                })
            }
            Kind::Memlogd | Kind::MemlogdStream => match self.stat("next") {
                Ok(next) => {
                    let at = Instant::now();
                    let stored = next.saturating_sub(p.base);
                    Ok(if stored >= p.units {
                        Progress::Done { at, stored }
                    } else {
                        Progress::NotYet(format!("{stored} of {} records stored", p.units))
                    })
                }
                Err(e) => Ok(Progress::NotYet(e)),
            },
            Kind::Busybox => match self.logread() {
                Ok(out) => {
                    let at = Instant::now();
                    let (mut count, mut marker) = (0, false);
                    scan_lines(&out, &p.token, &mut count, &mut marker);
                    if !marker {
                        return Ok(Progress::NotYet(format!(
                            "no marker in logread's output yet ({count} lines of this repetition there)"
                        )));
                    }
                    // Datagrams are read in order and every send succeeded, so
                    // with the marker everything has been read. The ring
                    // holds only the latest lines: what it holds of each
                    // sender must be the end of what it sent, without gaps.
                    check_ring_tail(&out, &p.token, &p.shares)?;
                    Ok(Progress::Done {
                        at,
                        stored: p.expect,
                    })
                }
                Err(e) => Ok(Progress::NotYet(e)),
            },
            Kind::Rsyslog => self.check_rsyslog(p),
        }
    }

    /// Appends bytes `from..to` (`to` = `None`: to the end) of rsyslogd's
    /// output file to `buf`; returns how many.
    fn read_out(&self, from: u64, to: Option<u64>, buf: &mut Vec<u8>) -> Res<u64> {
        let what = |e: io::Error| format!("reading {}: {e}", self.out.display());
        let mut f = fs::File::open(&self.out).map_err(what)?;
        f.seek(SeekFrom::Start(from)).map_err(what)?;
        let n = match to {
            Some(to) => f.take(to.saturating_sub(from)).read_to_end(buf),
            None => f.read_to_end(buf),
        };
        n.map(|n| n as u64).map_err(what)
    }

    /// rsyslogd: first a cheap look at the end of the file for the marker;
    /// once it is there, everything before it is counted (not timed: it
    /// was all in the file when the marker was seen). If rsyslog wrote
    /// some lines after the marker, the file is then read as it grows.
    fn check_rsyslog(&mut self, p: &mut Pending) -> Res<Progress> {
        let len = match fs::metadata(&self.out) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Progress::NotYet(format!("no {} yet", self.out.display())))
            }
            Err(e) => return Err(format!("{}: {e}", self.out.display())),
        };
        if !p.marker {
            const TAIL: u64 = 64 * 1024;
            let mut tail = Vec::new();
            self.read_out(
                len.saturating_sub(TAIL).max(self.out_pos),
                Some(len),
                &mut tail,
            )?;
            let at = Instant::now();
            let mark = format!("{} end-marker\n", p.token);
            if find(&tail, mark.as_bytes()).is_none() {
                return Ok(Progress::NotYet(format!(
                    "no marker in {} yet ({} bytes written in this repetition)",
                    self.out.display(),
                    len - self.out_pos
                )));
            }
            let mut buf = std::mem::take(&mut p.partial);
            self.out_pos += self.read_out(self.out_pos, Some(len), &mut buf)?;
            p.partial = scan_lines(&buf, &p.token, &mut p.count, &mut p.marker).to_vec();
            p.changed = Instant::now();
            if p.count >= p.expect {
                return Ok(Progress::Done {
                    at,
                    stored: p.count,
                });
            }
        } else {
            let mut buf = std::mem::take(&mut p.partial);
            self.out_pos += self.read_out(self.out_pos, None, &mut buf)?;
            let at = Instant::now();
            let before = p.count;
            p.partial = scan_lines(&buf, &p.token, &mut p.count, &mut p.marker).to_vec();
            if p.count != before {
                p.changed = at;
            }
            if p.count >= p.expect {
                return Ok(Progress::Done {
                    at,
                    stored: p.count,
                });
            }
            // If the count stops growing after the marker, messages were lost.
            if at.duration_since(p.changed) > Duration::from_secs(3) {
                return Err(format!(
                    "rsyslogd: the marker is in {} but only {} of {} messages are, unchanged for 3 s",
                    self.out.display(),
                    p.count.saturating_sub(1),
                    p.expect - 1
                ));
            }
        }
        Ok(Progress::NotYet(format!(
            "{} of {} lines in {}, marker seen",
            p.count,
            p.expect,
            self.out.display(),
        )))
    }

    /// Checks until everything is visible; returns when it was observed,
    /// what was stored, how many checks it took and how long the last took.
    fn wait_complete(&mut self, p: &mut Pending) -> Res<(Instant, u64, usize, Duration)> {
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_micros(200);
        let mut checks = 0;
        loop {
            self.check_alive()?;
            let start = Instant::now();
            checks += 1;
            match self.check(p)? {
                Progress::Done { at, stored } => return Ok((at, stored, checks, at - start)),
                Progress::NotYet(what) => {
                    if Instant::now() > deadline {
                        return Err(format!(
                            "{}: not complete {} s after the last send: {what}",
                            self.kind.name(),
                            self.timeout.as_secs()
                        ));
                    }
                }
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Sends `n` messages and the marker, and waits until all are visible.
    /// An error says when the daemon has exited.
    fn measure(&mut self, o: &Opts, n: usize, token: &str, stamp: &str) -> Res<Run> {
        self.measure_inner(o, n, token, stamp)
            .map_err(|e| match self.check_alive() {
                Err(exit) if !e.contains(" exited (") => format!("{e}; {exit}"),
                _ => e,
            })
    }

    fn measure_inner(&mut self, o: &Opts, n: usize, token: &str, stamp: &str) -> Res<Run> {
        let name = self.kind.name();
        let stream = self.kind.stream();
        let mut msgs = make_messages(n, token, stamp);
        let mut marker = marker_message(token, stamp);
        // The bare datagram receiver tells the marker by its length.
        assert_ne!(marker.len(), MSG_LEN);
        let mut frame = MSG_LEN;
        if stream {
            msgs = stream_frames(&msgs);
            marker.push(0);
            frame += 1;
        }
        let units = if self.kind == Kind::BareStream {
            (msgs.len() + marker.len()) as u64
        } else {
            n as u64 + 1
        };
        let mut p = self
            .pending(token, n, o.senders, units)
            .map_err(|e| format!("{name}: {e}"))?;
        let cpu0 = self.cpu_ticks()?;
        let (t0, t_sent) = send_all(&self.sock, &msgs, frame, stream, o, name)?;
        if stream {
            send_stream_once(&self.sock, &marker, o.timeout)
                .map_err(|e| send_err(name, &e, o.timeout))?;
        } else {
            let sock = sender_socket(o.timeout).map_err(|e| format!("socket: {e}"))?;
            send_one(&sock, &marker, &self.sock).map_err(|e| send_err(name, &e, o.timeout))?;
        }
        let (at, stored, checks, last_check) = self.wait_complete(&mut p)?;
        let cpu1 = self.cpu_ticks()?;
        if stored < p.expect {
            return Err(format!(
                "{name}: only {} of {n} messages arrived ({} lost)",
                stored.saturating_sub(1),
                p.expect - stored
            ));
        }
        if stored > p.expect {
            eprintln!(
                "note: {name} stored {} records for {} messages (its own records in between?)",
                stored, p.expect
            );
        }
        Ok(Run {
            total: at - t0,
            sent: t_sent - t0,
            cpu_ticks: cpu1.saturating_sub(cpu0),
            last_check,
            checks,
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn rsyslog_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "# Written by memlog-syslog-bench: one socket, no rate limit, every message to one file.\n\
         global(workDirectory=\"{d}/work\")\n\
         module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
         input(type=\"imuxsock\" Socket=\"{d}/devlog\" RateLimit.Interval=\"0\" CreatePath=\"on\")\n\
         action(type=\"omfile\" file=\"{d}/out.log\")\n"
    )
}

// ---------------------------------------------------------------------------
// The benchmark

/// One daemon's line of the report.
struct Entry {
    kind: Kind,
    daemon: Option<Daemon>,
    /// Why there is no result (not installed, or failed).
    missing: Option<String>,
    failed: Option<String>,
    cmdline: String,
    /// The daemon's temporary directory.
    dir: PathBuf,
    runs: Vec<Run>,
    hwm_kib: Option<u64>,
}

/// `1234567` as `1,234,567`.
fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v);
    let (sign, digits) = s.split_at(usize::from(s.starts_with('-')));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn secs(d: f64) -> String {
    if d < 1.0 {
        format!("{:.0} ms", d * 1000.0)
    } else {
        format!("{d:.2} s")
    }
}

fn start_daemon(o: &Opts, kind: Kind, root: &Path) -> Result<Daemon, (bool, String)> {
    let dir = root.join(kind.key());
    fs::create_dir_all(&dir).map_err(|e| (false, format!("{}: {e}", dir.display())))?;
    match kind {
        Kind::Memlogd | Kind::MemlogdStream => {
            Daemon::start_memlogd(kind, &o.memlogd, dir, o.timeout).map_err(|e| (false, e))
        }
        Kind::Bare | Kind::BareStream => {
            Daemon::start_bare(kind, dir, o.timeout).map_err(|e| (false, e))
        }
        Kind::Busybox => {
            let bb = find_program("busybox").ok_or((true, "not installed".to_string()))?;
            let list = run_capture(Command::new(&bb).arg("--list"), o.timeout)
                .map(|(_, out, _)| String::from_utf8_lossy(&out).into_owned())
                .unwrap_or_default();
            if !list.lines().any(|l| l == "syslogd") || !list.lines().any(|l| l == "logread") {
                return Err((
                    true,
                    "not installed (busybox has no syslogd or logread applet)".into(),
                ));
            }
            let (Some(ns), Some(us), Some(_)) = (
                find_program("nsenter"),
                find_program("unshare"),
                find_program("mount"),
            ) else {
                return Err((
                    true,
                    "not available: needs util-linux unshare, nsenter and mount (BusyBox syslogd binds /dev/log; it runs in a private mount namespace)".into(),
                ));
            };
            Daemon::start_busybox(&bb, &ns, &us, dir, o.busybox_ring_kib, o.timeout)
                .map_err(|e| (false, e))
        }
        Kind::Rsyslog => {
            let rs = find_program("rsyslogd").ok_or((true, "not installed".to_string()))?;
            Daemon::start_rsyslog(&rs, dir, o.timeout).map_err(|e| (false, e))
        }
    }
}

fn run(o: &Opts) -> i32 {
    let load_start = loadavg();
    let tmp = TempDir::new("syslog-bench");
    let stamp = syslog_stamp(SystemTime::now());
    let tag = format!("#{:x}", std::process::id());
    let mut entries: Vec<Entry> = Vec::new();
    for &kind in &o.kinds {
        let mut e = Entry {
            kind,
            daemon: None,
            missing: None,
            failed: None,
            cmdline: String::new(),
            dir: tmp.path().join(kind.key()),
            runs: Vec::new(),
            hwm_kib: None,
        };
        match start_daemon(o, kind, tmp.path()) {
            Ok(d) => {
                e.cmdline = d.cmdline.clone();
                e.daemon = Some(d);
            }
            Err((true, why)) => {
                eprintln!("{}: {why}", kind.name());
                e.missing = Some(why);
            }
            Err((false, why)) => {
                eprintln!("error: {why}");
                e.failed = Some(why);
            }
        }
        entries.push(e);
    }
    // Untimed warm-up, which also proves each daemon works end to end.
    for e in entries.iter_mut() {
        let Some(d) = e.daemon.as_mut() else { continue };
        let token = format!("{tag}.{}.w", e.kind.key());
        match d.measure(o, o.warmup, &token, &stamp) {
            Ok(r) => eprintln!(
                "warm-up {}: {} messages in {}",
                e.kind.name(),
                o.warmup,
                secs(r.total.as_secs_f64())
            ),
            Err(why) => {
                eprintln!("error: warm-up: {why}");
                e.failed = Some(format!("warm-up: {why}"));
                e.daemon = None;
            }
        }
    }
    // Repetitions, interleaved; the order rotates so that no daemon always
    // runs first or last.
    let k = entries.len();
    for rep in 0..o.reps {
        for j in 0..k {
            let e = &mut entries[(rep + j) % k];
            let Some(d) = e.daemon.as_mut() else { continue };
            let token = format!("{tag}.{}.{rep}", e.kind.key());
            match d.measure(o, o.messages, &token, &stamp) {
                Ok(r) => {
                    eprintln!(
                        "rep {}/{} {}: {} messages in {} = {}/s (senders done after {}, {} checks, last {:.1} ms)",
                        rep + 1,
                        o.reps,
                        e.kind.name(),
                        o.messages,
                        secs(r.total.as_secs_f64()),
                        thousands(o.messages as f64 / r.total.as_secs_f64()),
                        secs(r.sent.as_secs_f64()),
                        r.checks,
                        r.last_check.as_secs_f64() * 1000.0
                    );
                    e.runs.push(r);
                }
                Err(why) => {
                    eprintln!("error: rep {}: {why}", rep + 1);
                    e.failed = Some(format!("repetition {}: {why}", rep + 1));
                    e.daemon = None;
                }
            }
        }
    }
    for e in entries.iter_mut() {
        if let Some(d) = e.daemon.as_mut() {
            match d.vm_hwm_kib() {
                Ok(v) => e.hwm_kib = Some(v),
                Err(why) => eprintln!("{}: {why}", e.kind.name()),
            }
            d.stop();
        }
        e.daemon = None;
    }
    let load = format!("{load_start} at start, {} at the end", loadavg());
    let report = report(o, &entries, &stamp, &tag, &load);
    print!("{report}");
    let _ = io::stdout().flush();
    drop(tmp);
    let mut status = i32::from(entries.iter().any(|e| e.failed.is_some()));
    if let Some(p) = &o.json {
        if let Err(e) = fs::write(p, json(o, &entries, &load)) {
            eprintln!("memlog-syslog-bench: writing {}: {e}", p.display());
            status = 1;
        }
    }
    status
}

/// One receiver's figures over its timed repetitions.
struct Figures {
    rates: Vec<f64>,
    median: f64,
    lo: f64,
    hi: f64,
    /// Daemon CPU per message, µs.
    cpu_us: f64,
    total: f64,
    sent: f64,
}

fn figures(o: &Opts, e: &Entry) -> Option<Figures> {
    if e.runs.is_empty() {
        return None;
    }
    let n = o.messages;
    let rates: Vec<f64> = e
        .runs
        .iter()
        .map(|r| n as f64 / r.total.as_secs_f64())
        .collect();
    let (lo, hi) = min_max(&rates);
    let ticks: u64 = e.runs.iter().map(|r| r.cpu_ticks).sum();
    let med = |f: &dyn Fn(&Run) -> f64| median(&e.runs.iter().map(f).collect::<Vec<_>>());
    Some(Figures {
        median: median(&rates),
        lo,
        hi,
        cpu_us: ticks as f64 * 1e6 / USER_HZ as f64 / (n * e.runs.len()) as f64,
        total: med(&|r| r.total.as_secs_f64()),
        sent: med(&|r| r.sent.as_secs_f64()),
        rates,
    })
}

/// The figures of `kind`, when it ran to the end.
fn figures_of(o: &Opts, entries: &[Entry], kind: Kind) -> Option<Figures> {
    entries
        .iter()
        .find(|e| e.kind == kind && e.failed.is_none())
        .and_then(|e| figures(o, e))
}

fn version_of(o: &Opts, k: Kind) -> String {
    match k {
        Kind::Memlogd | Kind::MemlogdStream => o.memlogd.display().to_string(),
        Kind::Bare | Kind::BareStream => std::env::current_exe()
            .map(|p| format!("{} {BARE_FLAG}", p.display()))
            .unwrap_or_default(),
        Kind::Busybox => {
            find_program("busybox").map_or(String::new(), |b| first_line(&mut Command::new(b)))
        }
        Kind::Rsyslog => find_program("rsyslogd")
            .map_or(String::new(), |r| first_line(Command::new(r).arg("-v"))),
    }
}

/// The results as one JSON object (`--json`): per receiver, messages/s of
/// every repetition and their median, CPU per message, peak RSS, both as
/// ratios to the bare receiver of the same transport, or why there is no
/// result.
fn json(o: &Opts, entries: &[Entry], load: &str) -> String {
    let s = |v: &str| {
        let mut b = Vec::new();
        memlog::json::write_str(&mut b, v.as_bytes());
        String::from_utf8_lossy(&b).into_owned()
    };
    let num = |x: f64| {
        if x.is_finite() {
            format!("{x}")
        } else {
            "null".into()
        }
    };
    let opt = |v: &Option<String>| v.as_deref().map_or("null".into(), s);
    let mut daemons = Vec::new();
    for e in entries {
        let f = figures(o, e);
        let get = |g: fn(&Figures) -> f64| f.as_ref().map_or(f64::NAN, g);
        let base = figures_of(o, entries, e.kind.baseline());
        let vs = |g: fn(&Figures) -> f64| match (&f, &base) {
            (Some(a), Some(b)) => g(a) / g(b),
            _ => f64::NAN,
        };
        daemons.push(format!(
            "{{\"key\":{},\"name\":{},\"transport\":{},\"baseline\":{},\"version\":{},\"cmdline\":{},\"missing\":{},\"failed\":{},\"messages_per_s\":{{\"median\":{},\"min\":{},\"max\":{},\"runs\":[{}]}},\"cpu_us_per_message\":{},\"vs_baseline\":{{\"messages_per_s\":{},\"cpu_us_per_message\":{}}},\"vm_hwm_kib\":{}}}",
            s(e.kind.key()),
            s(e.kind.name()),
            s(if e.kind.stream() { "stream" } else { "dgram" }),
            s(e.kind.baseline().key()),
            s(&version_of(o, e.kind)),
            s(&e.cmdline),
            opt(&e.missing),
            opt(&e.failed),
            num(get(|f| f.median)),
            num(get(|f| f.lo)),
            num(get(|f| f.hi)),
            f.as_ref()
                .map(|f| f.rates.iter().map(|&r| num(r)).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
            num(get(|f| f.cpu_us)),
            num(vs(|f| f.median)),
            num(vs(|f| f.cpu_us)),
            e.hwm_kib.map_or("null".into(), |k| k.to_string())
        ));
    }
    format!(
        "{{\"command\":{},\"send_to\":{},\"messages\":{},\"message_len\":{MSG_LEN},\"reps\":{},\"senders\":{},\"busybox_ring_kib\":{},\"bare_batch\":{BARE_BATCH},\"bare_slot\":{BARE_SLOT},\"bare_read\":{BARE_READ},\"load_average\":{},\"daemons\":[{}]}}\n",
        s(&std::env::args().collect::<Vec<_>>().join(" ")),
        o.send_to,
        o.messages,
        o.reps,
        o.senders,
        o.busybox_ring_kib,
        s(load),
        daemons.join(",")
    )
}

/// `a / b` as `1.23×`, or `–`.
fn times(a: f64, b: f64) -> String {
    let r = a / b;
    if r.is_finite() {
        format!("{r:.2}×")
    } else {
        "–".into()
    }
}

/// The table of one transport's receivers, in the order they ran.
fn table(o: &Opts, entries: &[Entry], stream: bool, m: &mut String) {
    let base = figures_of(
        o,
        entries,
        if stream { Kind::BareStream } else { Kind::Bare },
    );
    let mem = figures_of(
        o,
        entries,
        if stream {
            Kind::MemlogdStream
        } else {
            Kind::Memlogd
        },
    );
    let _ = writeln!(
        m,
        "| receiver | messages/s, median (min – max) | ÷ bare receiver | vs memlogd | time, median | senders done, median | CPU per message | CPU ÷ bare receiver | peak RSS (VmHWM) | keeps |"
    );
    let _ = writeln!(
        m,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for e in entries.iter().filter(|e| e.kind.stream() == stream) {
        let name = e.kind.name();
        if let Some(why) = &e.missing {
            let _ = writeln!(m, "| {name} | {why} | | | | | | | | |");
            continue;
        }
        let Some(f) = figures(o, e) else {
            let _ = writeln!(m, "| {name} | failed (see below) | | | | | | | | |");
            continue;
        };
        let hwm = e
            .hwm_kib
            .map_or("–".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        let partial = if e.failed.is_some() {
            format!(
                " (only {} of {} repetitions, then failed)",
                e.runs.len(),
                o.reps
            )
        } else {
            String::new()
        };
        let keeps = match e.kind {
            Kind::Memlogd | Kind::MemlogdStream => {
                "in memory: all (up to 1,000,000 records / 256 MiB)".to_string()
            }
            Kind::Busybox => format!("in memory: the latest {} KiB of lines", o.busybox_ring_kib),
            Kind::Rsyslog => "on disk: all (one file)".to_string(),
            Kind::Bare | Kind::BareStream => "nothing (discards)".to_string(),
        };
        let (b_rate, b_cpu) = base
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |b| (b.median, b.cpu_us));
        let _ = writeln!(
            m,
            "| {name} | {} ({} – {}){partial} | {} | {} | {} | {} | {:.2} µs | {} | {hwm} | {keeps} |",
            thousands(f.median),
            thousands(f.lo),
            thousands(f.hi),
            times(f.median, b_rate),
            times(f.median, mem.as_ref().map_or(f64::NAN, |x| x.median)),
            secs(f.total),
            secs(f.sent),
            f.cpu_us,
            times(f.cpu_us, b_cpu),
        );
    }
}

fn report(o: &Opts, entries: &[Entry], stamp: &str, tag: &str, load: &str) -> String {
    let mut m = String::new();
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let model = read_first("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mem = read_first("/proc/meminfo", "MemTotal").unwrap_or_default();
    let qlen = fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let args: Vec<String> = std::env::args().collect();
    let version = |k: Kind| -> Option<String> {
        Some(match k {
            Kind::Memlogd => format!(
                "memlogd `{}` (commit {})",
                o.memlogd.display(),
                git_commit().unwrap_or_else(|| "unknown".into())
            ),
            Kind::Busybox => match find_program("busybox") {
                Some(b) => format!("`{}`", first_line(&mut Command::new(b))),
                None => "BusyBox not installed".into(),
            },
            Kind::Rsyslog => match find_program("rsyslogd") {
                Some(r) => format!("`{}`", first_line(Command::new(r).arg("-v"))),
                None => "rsyslogd not installed".into(),
            },
            Kind::MemlogdStream if !o.kinds.contains(&Kind::Memlogd) => format!(
                "memlogd `{}` (commit {})",
                o.memlogd.display(),
                git_commit().unwrap_or_else(|| "unknown".into())
            ),
            Kind::Bare => "bare receivers: this program (`--bare-receiver`)".into(),
            Kind::BareStream if !o.kinds.contains(&Kind::Bare) => {
                "bare receivers: this program (`--bare-receiver`)".into()
            }
            _ => return None,
        })
    };
    let n = o.messages;
    let _ = writeln!(
        m,
        "# Syslog ingest: memlogd vs BusyBox syslogd vs rsyslogd, against a bare receiver\n"
    );
    let _ = writeln!(
        m,
        "- Machine: {cpus} CPUs (nproc), {model}, {mem} RAM, Linux {kernel}; load average {load}"
    );
    let _ = writeln!(m, "- Command: `{}`", args.join(" "));
    let _ = writeln!(
        m,
        "- Rerun: `cargo build --release --workspace && cargo run --release -p memlog-tests --bin memlog-syslog-bench{}`",
        if args.len() > 1 {
            format!(" -- {}", args[1..].join(" "))
        } else {
            String::new()
        }
    );
    let versions: Vec<String> = o.kinds.iter().filter_map(|&k| version(k)).collect();
    let _ = writeln!(m, "- Versions: {}", versions.join("; "));
    let sample = make_messages(4, &format!("{tag}.x.0"), stamp);
    let _ = writeln!(
        m,
        "- Workload, per repetition and receiver: {} messages of {MSG_LEN} bytes in RFC 3164 as glibc `syslog(3)` sends them to `/dev/log`, e.g. `{}`, cycling through {} tags and facility.severity pairs, then one marker message; sent by {} threads. Datagrams: each thread has its own unbound `UnixDatagram` {} (a full receive queue blocks the sender, so the send rate follows the receiver; `net.unix.max_dgram_qlen` = {qlen}). Stream `/dev/log`: each thread connects once and writes every message followed by a NUL (as glibc does on a stream socket), one blocking `write` each; the marker comes on a connection of its own.",
        thousands(n as f64),
        String::from_utf8_lossy(&sample[3 * MSG_LEN..4 * MSG_LEN]),
        MIX.len(),
        o.senders,
        if o.send_to {
            "doing a blocking `send_to` with the socket's path for every message (`--send-to`)"
        } else {
            "connected once to the socket, then a blocking `send` per message, as glibc's and musl's `syslog(3)` do"
        }
    );
    let _ = writeln!(
        m,
        "- {} timed repetitions per receiver, interleaved (the order rotates each repetition), after an untimed warm-up of {} messages each. All receivers run for the whole benchmark; only one is sent to at a time.",
        o.reps,
        thousands(o.warmup as f64)
    );
    let _ = writeln!(
        m,
        "- Time: from the first send until everything is visible to a reader: memlogd's `stats` counter `next` has grown by {} (messages + marker); the marker shows in `busybox logread` (and the ring's tail has no gaps); the marker line and all {} lines are in rsyslog's output file; the bare receiver has counted {} datagrams when the marker came, the bare stream receiver every byte sent when the last connection ended. A receiver that loses a message fails. Rate = messages / time.",
        thousands((n + 1) as f64),
        thousands((n + 1) as f64),
        thousands((n + 1) as f64),
    );
    let _ = writeln!(
        m,
        "- The bare receiver is the baseline: what the kernel and the senders allow when the receiving end does nothing with the messages (see below). `÷ bare receiver` is a receiver's median rate over the bare receiver's, `CPU ÷ bare receiver` its CPU per message over the bare receiver's, both of the same transport and the same run.\n"
    );

    let dgram = entries.iter().any(|e| !e.kind.stream());
    let stream = entries.iter().any(|e| e.kind.stream());
    if dgram {
        let _ = writeln!(m, "## Datagram `/dev/log` (`-syslog`)\n");
        table(o, entries, false, &mut m);
    }
    if stream {
        let _ = writeln!(m, "\n## Stream `/dev/log` (`-syslog-stream`)\n");
        table(o, entries, true, &mut m);
    }

    // The ratios that say how far from the limit memlogd is.
    let get = |k: Kind| figures_of(o, entries, k);
    let mut ratios = Vec::new();
    if let (Some(mm), Some(b)) = (get(Kind::Memlogd), get(Kind::Bare)) {
        ratios.push(format!(
            "memlogd ÷ bare receiver, messages/s: {}; CPU per message: {}",
            times(mm.median, b.median),
            times(mm.cpu_us, b.cpu_us)
        ));
    }
    if let (Some(mm), Some(bb)) = (get(Kind::Memlogd), get(Kind::Busybox)) {
        ratios.push(format!(
            "memlogd ÷ BusyBox syslogd, messages/s: {}; CPU per message: {} ({:.2} µs against {:.2} µs)",
            times(mm.median, bb.median),
            times(mm.cpu_us, bb.cpu_us),
            mm.cpu_us,
            bb.cpu_us
        ));
        if let Some(b) = get(Kind::Bare) {
            ratios.push(format!(
                "bare receiver ÷ BusyBox syslogd, messages/s: {} (the most any receiver could gain over BusyBox with these senders: where this is small, the senders are the bottleneck)",
                times(b.median, bb.median)
            ));
        }
    }
    if let (Some(mm), Some(b)) = (get(Kind::MemlogdStream), get(Kind::BareStream)) {
        ratios.push(format!(
            "memlogd -syslog-stream ÷ bare stream receiver, messages/s: {}; CPU per message: {}",
            times(mm.median, b.median),
            times(mm.cpu_us, b.cpu_us)
        ));
    }
    if !ratios.is_empty() {
        let _ = writeln!(m, "\nRatios (medians, same run):\n");
        for r in ratios {
            let _ = writeln!(m, "- {r}");
        }
    }

    // Every repetition.
    let _ = writeln!(m, "\nEvery repetition, messages/s:\n");
    let head: Vec<String> = (1..=o.reps).map(|r| format!("rep {r}")).collect();
    let _ = writeln!(m, "| receiver | {} |", head.join(" | "));
    let _ = writeln!(m, "| --- |{}", " ---: |".repeat(o.reps));
    for e in entries.iter().filter(|e| !e.runs.is_empty()) {
        let mut cells: Vec<String> = e
            .runs
            .iter()
            .map(|r| thousands(n as f64 / r.total.as_secs_f64()))
            .collect();
        cells.resize(o.reps, "–".into());
        let _ = writeln!(m, "| {} | {} |", e.kind.name(), cells.join(" | "));
    }

    // Setup.
    let _ = writeln!(
        m,
        "\n## Receivers\n\nEach runs {}in the foreground, its output in files in its own temporary directory (removed at the end).\n",
        if find_program("setpriv").is_some() {
            "under `setpriv --pdeathsig KILL --` (killed if the benchmark dies), "
        } else {
            ""
        }
    );
    for e in entries {
        let name = e.kind.name();
        if let Some(why) = &e.missing {
            let _ = writeln!(m, "- {name}: {why}.");
            continue;
        }
        if e.cmdline.is_empty() {
            let _ = writeln!(m, "- {name}: did not start (see the notes).");
            continue;
        }
        match e.kind {
            Kind::Bare => {
                let _ = writeln!(
                    m,
                    "- bare receiver: `{}`. This program again, in a process of its own: it binds a `SOCK_DGRAM` Unix socket with `SO_PASSCRED` on (as memlogd's: the kernel attaches every sender's credentials), and loops on blocking `recvmmsg` (`MSG_WAITFORONE`: it sleeps until a datagram comes, then takes what is queued, up to {BARE_BATCH}) into {BARE_BATCH} preallocated slots of {} KiB with a credentials control buffer each, the same receive code (`memlog::sys::DgramBatch`) and sizes as memlogd's. It looks at each datagram's length (a marker is not {MSG_LEN} bytes long: then it prints its count) and discards it. No epoll: nothing else to wait for, so one system call per batch.",
                    e.cmdline,
                    BARE_SLOT / 1024
                );
            }
            Kind::BareStream => {
                let _ = writeln!(
                    m,
                    "- bare stream receiver: `{}`. This program again: a stream listener; `poll` on it and every connection, each readable connection read with {} KiB reads (memlogd's read size) until it would block, the bytes discarded; at each connection's end it prints the bytes received so far.",
                    e.cmdline,
                    BARE_READ / 1024
                );
            }
            Kind::Memlogd | Kind::MemlogdStream => {
                let _ = writeln!(
                    m,
                    "- {name}: `{}`. **Rate limit off** (`-rate-limit-burst 0`) for a throughput comparison: by default memlogd stores at most 10,000 records per source per 30 s, and the benchmark's 8 tags would be cut off after 80,000 messages. Keeps up to 1,000,000 records in a 256 MiB ring, with the sender's pid/uid/gid ({}) and the parsed syslog fields.",
                    e.cmdline,
                    if e.kind.stream() { "SO_PEERCRED" } else { "SO_PASSCRED" }
                );
            }
            Kind::Busybox => {
                let _ = writeln!(
                    m,
                    "- BusyBox syslogd: `{}`. A {} KiB ring (`-C`, `--busybox-ring`; it keeps only the latest messages): `busybox logread` copies and prints the whole ring, at several ms per MiB, and it is how completion is seen, so a ring big enough for a whole repetition would mostly measure logread. Completion is the marker in logread's output (datagrams are read in order and every send succeeded, so everything before it has been read); what the ring still holds of each sender must be the end of what it sent, without gaps. BusyBox syslogd has no flag for its socket path and always binds `/dev/log` (following a symlink), so it runs in private mount and IPC namespaces where `/dev/log` is a symlink to the benchmark's socket and `/var/run` (its pid file) is a temporary directory; `logread` runs there through `nsenter -t PID -i`. BusyBox does no rate limiting.",
                    e.cmdline, o.busybox_ring_kib
                );
            }
            Kind::Rsyslog => {
                let conf = rsyslog_conf(&e.dir);
                let _ = writeln!(
                    m,
                    "- rsyslogd: `{}`, in the foreground, with this configuration (imuxsock rate limit off; rsyslog's defaults otherwise, so its main queue holds up to 50,000 messages between the socket and the file):\n\n  ```\n{}  ```",
                    e.cmdline,
                    conf.lines().map(|l| format!("  {l}\n")).collect::<String>()
                );
            }
        }
    }
    if stream {
        let _ = writeln!(
            m,
            "- Neither BusyBox syslogd nor rsyslogd's imuxsock takes a stream `/dev/log`, so the stream table has memlogd and its baseline only."
        );
    }

    // Notes.
    let _ = writeln!(m, "\n## Notes\n");
    for e in entries.iter().filter(|e| !e.runs.is_empty()) {
        let last = median(
            &e.runs
                .iter()
                .map(|r| r.last_check.as_secs_f64())
                .collect::<Vec<_>>(),
        );
        let checks = median(&e.runs.iter().map(|r| r.checks as f64).collect::<Vec<_>>());
        let how = match e.kind {
            Kind::Memlogd | Kind::MemlogdStream => "a `stats` request",
            Kind::Busybox => "`nsenter … busybox logread`, which prints the whole ring",
            Kind::Rsyslog => "reading the last 64 KiB of the output file (then counting every line of the repetition, untimed)",
            Kind::Bare | Kind::BareStream => "reading what it printed",
        };
        let _ = writeln!(
            m,
            "- {}: completion is checked with {how}; the check that saw the end took {:.1} ms (median; included in the time), after {checks:.0} checks.",
            e.kind.name(),
            last * 1000.0
        );
    }
    let _ = writeln!(
        m,
        "- Senders done: when the last sender's last `send_to` (or `write`) returned. Since a full receive queue blocks the senders, this is when the receiver had taken all but a few datagrams (or a socket buffer's worth of bytes) off its socket; the rest of the time is what it still had to store (rsyslog: its main queue and the file write).",
    );
    let _ = writeln!(
        m,
        "- CPU per message: user + system time of the receiver's process (all threads) from `/proc/PID/stat`, in {}-ms ticks, over the timed repetitions. The senders' CPU is not counted; on {cpus} CPUs the senders and the receiver compete for them.",
        1000 / USER_HZ
    );
    let _ = writeln!(
        m,
        "- Peak RSS is VmHWM from `/proc/PID/status` after all repetitions (warm-up + {} × ({} + 1) messages). It reflects what each keeps: memlogd's ring of records (up to 1,000,000 / 256 MiB), BusyBox's shared-memory ring (counted once touched), rsyslog's queues (its file is page cache, not counted).",
        o.reps,
        thousands(n as f64)
    );
    for e in entries {
        if let Some(why) = &e.failed {
            let _ = writeln!(m, "- **{} failed**: {why}", e.kind.name());
        }
    }
    m
}

// ---------------------------------------------------------------------------
// The bare receivers

/// The hidden first argument that makes this program a bare receiver.
const BARE_FLAG: &str = "--bare-receiver";

/// `--bare-receiver dgram|stream PATH`: the baseline, in a process of its
/// own (its CPU is counted like a daemon's). It binds PATH and drains it
/// until killed, doing nothing with what it reads:
///
/// - `dgram`: a datagram socket with `SO_PASSCRED` on (memlogd needs the
///   senders' credentials, so the kernel attaches them to every datagram),
///   read with blocking `recvmmsg` (`MSG_WAITFORONE`: it sleeps until a
///   datagram comes, then takes what is queued) into [`BARE_BATCH`]
///   preallocated slots of [`BARE_SLOT`] bytes, the same receive code and
///   sizes as memlogd's. It counts the datagrams and looks at each one's
///   length: a datagram that is not [`MSG_LEN`] long is a marker, and it
///   prints how many it has received so far.
/// - `stream`: a stream listener; every connection is read with
///   [`BARE_READ`]-byte reads as soon as `poll` says it is readable; at
///   each connection's end it prints how many bytes all connections
///   brought so far.
fn bare_receiver(args: &[String]) -> Res<()> {
    let [how, path] = args else {
        return Err(format!("usage: {BARE_FLAG} dgram|stream PATH"));
    };
    let path = Path::new(path);
    let out = io::stdout();
    let report = |v: u64| -> Res<()> {
        let mut o = out.lock();
        writeln!(o, "{v}")
            .and_then(|()| o.flush())
            .map_err(|e| format!("stdout: {e}"))
    };
    match how.as_str() {
        "dgram" => {
            let sock = UnixDatagram::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
            memlog::sys::set_passcred(sock.as_fd()).map_err(|e| format!("SO_PASSCRED: {e}"))?;
            let mut batch = memlog::sys::DgramBatch::new(BARE_BATCH, BARE_SLOT);
            let mut count = 0u64;
            loop {
                let n = match batch.recv(sock.as_fd(), true) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("recvmmsg: {e}")),
                };
                for k in 0..n {
                    count += 1;
                    if batch.get(k).is_some_and(|(d, _)| d.len() != MSG_LEN) {
                        report(count)?;
                    }
                }
            }
        }
        "stream" => {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            let l = UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            let mut conns: Vec<UnixStream> = Vec::new();
            let mut buf = vec![0u8; BARE_READ];
            let mut total = 0u64;
            loop {
                let (accept, ready): (bool, Vec<bool>) = {
                    let mut fds = vec![PollFd::new(l.as_fd(), PollFlags::POLLIN)];
                    fds.extend(
                        conns
                            .iter()
                            .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN)),
                    );
                    match poll(&mut fds, PollTimeout::NONE) {
                        Ok(_) => {}
                        Err(nix::Error::EINTR) => continue,
                        Err(e) => return Err(format!("poll: {e}")),
                    }
                    let hit = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                    (hit(&fds[0]), fds[1..].iter().map(hit).collect())
                };
                let mut closed = false;
                let mut k = 0;
                conns.retain_mut(|c| {
                    k += 1;
                    if !ready[k - 1] {
                        return true;
                    }
                    loop {
                        match c.read(&mut buf) {
                            Ok(0) => {
                                closed = true;
                                return false;
                            }
                            Ok(n) => total += n as u64,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(_) => {
                                closed = true;
                                return false;
                            }
                        }
                    }
                });
                if closed {
                    report(total)?;
                }
                if accept {
                    loop {
                        match l.accept() {
                            Ok((c, _)) => {
                                c.set_nonblocking(true).map_err(|e| e.to_string())?;
                                conns.push(c);
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(format!("accept: {e}")),
                        }
                    }
                }
            }
        }
        _ => Err(format!("usage: {BARE_FLAG} dgram|stream PATH")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(BARE_FLAG) {
        if let Err(e) = bare_receiver(&args[2..]) {
            eprintln!("memlog-syslog-bench {BARE_FLAG}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("memlog-syslog-bench: {e}");
            std::process::exit(2);
        }
    };
    std::process::exit(run(&o));
}
