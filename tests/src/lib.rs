//! Helpers for end-to-end tests and benchmarks: find the built binaries, run
//! `memlogd` in a private temporary directory, hand it fds, read its query
//! socket. Every wait here is bounded; nothing depends on the machine's speed
//! except how long a bounded wait takes to succeed.

pub mod bench;
pub mod docker;
pub mod logwrite;
pub mod pki;

use memlog::client::Client;
use memlog::proto::{Line, Mode, Record, Request};
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a helper waits for something that should happen at once
/// (a socket to be bound, a record to arrive, a process to exit).
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The workspace root (the parent of this crate's directory).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The path of a built binary: `$MEMLOG_BIN_DIR/NAME` if that variable is
/// set, else `<workspace>/target/debug/NAME`. Panics if it is missing.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("MEMLOG_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace_dir().join("target").join("debug"),
    };
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} not found: run `cargo build --workspace` first (or set MEMLOG_BIN_DIR)",
        p.display()
    );
    p
}

/// True when running in CI (`CI` set to anything but empty, `0` or
/// `false`): there every tool the tests need is installed, so nothing may
/// skip itself.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// Says that the running test skips itself because of `why` (a missing tool,
/// not being root): it is reported by `./test` as skipped, not passed (the
/// name goes to the file `MEMLOG_SKIP_LOG` names). In CI a skip is a
/// failure: this panics. The caller returns right after.
pub fn skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if in_ci() {
        panic!("{test} must run in CI, but: {why}");
    }
    eprintln!("SKIP {test}: {why}");
    if let Some(log) = std::env::var_os("MEMLOG_SKIP_LOG") {
        let line = format!("{test}: {}\n", why.replace('\n', " "));
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
}

/// A `sockaddr_un` for `path`, and its length: made before a `fork`, for a
/// child that may only make system calls afterwards.
pub fn sockaddr_un(path: &Path) -> (libc::sockaddr_un, libc::socklen_t) {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_un is plain data; zeroed is a valid initial value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let p = path.as_os_str().as_bytes();
    assert!(
        p.len() < addr.sun_path.len(),
        "{} is too long",
        path.display()
    );
    for (d, s) in addr.sun_path.iter_mut().zip(p) {
        *d = *s as libc::c_char;
    }
    (
        addr,
        std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
    )
}

/// In a forked child: becomes `uid` (gid `uid`, no supplementary groups),
/// with async-signal-safe system calls only. False if it could not.
pub fn become_uid_in_child(uid: u32) -> bool {
    // SAFETY: setgroups with no groups, setgid and setuid read no memory of
    // ours beyond their arguments.
    unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(uid) == 0
            && libc::setuid(uid) == 0
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (children
/// started afterwards inherit it). Returns the new soft limit.
pub fn raise_fd_limit() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct that we own.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(r, 0, "getrlimit: {}", io::Error::last_os_error());
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads one rlimit struct that we own.
        let r = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
        assert_eq!(r, 0, "setrlimit: {}", io::Error::last_os_error());
    }
    lim.rlim_cur
}

/// A directory under the system temp dir, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `memlog-TAG-PID-N` under `std::env::temp_dir()`.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("memlog-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Polls `pred` (every few milliseconds) until it is true or `timeout`
/// passes. Returns whether it became true.
pub fn wait_for(mut pred: impl FnMut() -> bool, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Like [`wait_for`] with [`TIMEOUT`], panicking with `what` on timeout.
pub fn wait_until(what: &str, pred: impl FnMut() -> bool) {
    assert!(wait_for(pred, TIMEOUT), "timed out waiting for {what}");
}

/// Waits at most `timeout` for `child` to exit.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_for(
        || {
            status = child.try_wait().expect("try_wait");
            status.is_some()
        },
        timeout,
    );
    status
}

/// Runs `cmd` to completion with stdout and stderr captured (stdin null),
/// killing it and panicking if it runs longer than `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let Some(status) = wait_child(&mut child, timeout) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} did not exit within {timeout:?}");
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Sends SIGKILL/SIGTERM/... to a pid.
pub fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no memory effects.
    if unsafe { libc::kill(pid as libc::pid_t, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True while `pid` exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Makes this process the reaper of its orphaned descendants (a daemon
/// that detaches from its parent then becomes our child), so that
/// [`reap`] can collect it instead of leaving a zombie behind.
pub fn become_subreaper() {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer and touches no memory.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
    assert_eq!(r, 0, "prctl: {}", io::Error::last_os_error());
}

/// Collects `pid` if it is an exited child of ours (see [`become_subreaper`]);
/// does nothing otherwise.
pub fn reap(pid: u32) {
    let mut status = 0;
    // SAFETY: waitpid writes one int that we own; WNOHANG never blocks.
    unsafe {
        libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG);
    }
}

/// The pids of processes holding the socket bound at `path` (found through
/// `/proc/net/unix` and every process's fd table).
pub fn pids_holding_socket(path: &Path) -> Vec<u32> {
    let want = path.to_string_lossy();
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[7] == want).then(|| f[6].to_owned())
        })
        .collect();
    let mut pids = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .map(|l| {
                    let l = l.to_string_lossy();
                    inodes.iter().any(|i| l == format!("socket:[{i}]"))
                })
                .unwrap_or(false)
        });
        if holds {
            pids.push(pid);
        }
    }
    pids
}

/// The pids whose command line mentions `needle`.
pub fn pids_with_cmdline(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(c) = std::fs::read(p.path().join("cmdline")) {
            if String::from_utf8_lossy(&c).contains(needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Is `s` in Go's `time.RFC3339Nano` layout in UTC
/// (`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$`)?
pub fn is_rfc3339_nano_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return false;
    }
    let fixed = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !fixed {
        return false;
    }
    let frac = &b[19..b.len() - 1];
    match frac.split_first() {
        None => true,
        Some((b'.', d)) => {
            !d.is_empty() && d.iter().all(u8::is_ascii_digit) && d[d.len() - 1] != b'0'
        }
        Some(_) => false,
    }
}

/// Reads `\n`-terminated lines from a stream with a per-call timeout.
pub struct LineReader {
    stream: UnixStream,
    buf: Vec<u8>,
    eof: bool,
}

/// What [`LineReader::next_line`] got.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    Line(Vec<u8>),
    /// The peer closed the stream (a last line without `\n` is returned as
    /// a `Line` first).
    Eof,
    /// Nothing complete arrived within the timeout.
    Timeout,
}

impl LineReader {
    pub fn new(stream: UnixStream) -> LineReader {
        LineReader {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// The next line without its `\n`, waiting at most `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> io::Result<Got> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.iter().position(|&c| c == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                return Ok(Got::Line(line));
            }
            if self.eof {
                if self.buf.is_empty() {
                    return Ok(Got::Eof);
                }
                return Ok(Got::Line(std::mem::take(&mut self.buf)));
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Got::Timeout);
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Got::Timeout)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => self.eof = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next line, panicking on EOF or after [`TIMEOUT`].
    pub fn expect_line(&mut self) -> Vec<u8> {
        match self.next_line(TIMEOUT).expect("read") {
            Got::Line(l) => l,
            other => panic!("expected a line, got {other:?}"),
        }
    }

    /// Every line up to EOF (panics if EOF does not come within [`TIMEOUT`]).
    pub fn read_to_eof(&mut self) -> Vec<Vec<u8>> {
        let end = Instant::now() + TIMEOUT;
        let mut lines = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.next_line(left).expect("read") {
                Got::Line(l) => lines.push(l),
                Got::Eof => return lines,
                Got::Timeout => panic!(
                    "no EOF within {TIMEOUT:?} after {} lines; last: {:?}",
                    lines.len(),
                    lines
                        .last()
                        .map(|l| String::from_utf8_lossy(l).into_owned())
                ),
            }
        }
    }
}

/// Decodes a reply line, panicking with the line on error.
pub fn decode(line: &[u8]) -> Line {
    memlog::proto::decode_line(line)
        .unwrap_or_else(|e| panic!("bad line {:?}: {e}", String::from_utf8_lossy(line)))
}

/// Decodes a line that must be a record.
pub fn decode_record(line: &[u8]) -> Record {
    match decode(line) {
        Line::Record(r) => r,
        other => panic!("expected a record, got {other:?}"),
    }
}

/// Just the records of a reply.
pub fn records(lines: &[Line]) -> Vec<Record> {
    lines
        .iter()
        .filter_map(|l| match l {
            Line::Record(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// The messages of the records from `source`.
pub fn msgs_from(recs: &[Record], source: &str) -> Vec<String> {
    recs.iter()
        .filter(|r| r.source == source)
        .map(|r| r.msg.clone())
        .collect()
}

/// Lines of a child's output sent over a channel by a reader thread, so a
/// test can wait for them with a timeout.
pub struct OutputLines {
    rx: mpsc::Receiver<String>,
}

impl OutputLines {
    /// Reads `r` line by line on a new thread.
    pub fn spawn(r: impl Read + Send + 'static) -> OutputLines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(r);
            loop {
                let mut v = Vec::new();
                match r.read_until(b'\n', &mut v) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if v.last() == Some(&b'\n') {
                            v.pop();
                        }
                        if tx.send(String::from_utf8_lossy(&v).into_owned()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        OutputLines { rx }
    }

    /// The next line; `None` on timeout or when the output ended.
    pub fn next(&self, timeout: Duration) -> Option<String> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next line, panicking after [`TIMEOUT`] or at the end.
    pub fn expect(&self) -> String {
        self.next(TIMEOUT)
            .unwrap_or_else(|| panic!("no output line within {TIMEOUT:?}"))
    }

    /// Lines until one contains `needle` (included), panicking after [`TIMEOUT`].
    pub fn until(&self, needle: &str) -> Vec<String> {
        let end = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let Some(l) = self.next(left) else {
                panic!("{needle:?} not seen within {TIMEOUT:?}; saw {seen:?}");
            };
            let done = l.contains(needle);
            seen.push(l);
            if done {
                return seen;
            }
        }
    }
}

/// A running `memlogd`, killed on drop. Its stdout and stderr go to
/// `stdout.txt` and `stderr.txt` in its directory.
pub struct Memlogd {
    child: Option<Child>,
    /// A daemon that is not our child (started with `-daemonize`).
    foreign: Option<u32>,
    log_sock: PathBuf,
    query_sock: PathBuf,
    counter: AtomicUsize,
    // Dropped last: the daemon is killed before its directory goes.
    dir: TempDir,
}

impl Memlogd {
    /// Starts memlogd with `-socket-log DIR/log.sock -socket-query DIR/q.sock`
    /// and `extra` in a new temp dir, and waits until both sockets serve.
    pub fn start(extra: &[&str]) -> Memlogd {
        Self::start_in(TempDir::new("memlogd"), extra)
    }

    /// Like [`Memlogd::start`], in a directory the caller prepared.
    pub fn start_in(dir: TempDir, extra: &[&str]) -> Memlogd {
        let (log, query) = (dir.join("log.sock"), dir.join("q.sock"));
        let mut cmd = Self::command(&dir);
        cmd.arg("-socket-log")
            .arg(&log)
            .arg("-socket-query")
            .arg(&query)
            .args(extra);
        Self::spawn(dir, cmd, log, query)
    }

    /// A `memlogd` command with stdin null and stdout/stderr going to files in
    /// `dir` (never pipes: a daemonized child may hold them open forever).
    pub fn command(dir: &TempDir) -> Command {
        let mut cmd = Command::new(bin("memlogd"));
        let file = |n: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(n))
                .expect("open output file")
        };
        cmd.stdin(Stdio::null())
            .stdout(file("stdout.txt"))
            .stderr(file("stderr.txt"));
        cmd
    }

    /// Spawns `cmd` (a memlogd that will serve `log` and `query`) and waits
    /// until both sockets serve.
    pub fn spawn(dir: TempDir, mut cmd: Command, log: PathBuf, query: PathBuf) -> Memlogd {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let mut m = Memlogd {
            child: Some(child),
            foreign: None,
            log_sock: log,
            query_sock: query,
            counter: AtomicUsize::new(0),
            dir,
        };
        m.wait_ready();
        m
    }

    /// Takes charge of a memlogd that is not our child (it is killed on
    /// drop), and waits until it serves.
    pub fn adopt(dir: TempDir, pid: u32, log: PathBuf, query: PathBuf) -> Memlogd {
        let mut m = Memlogd {
            child: None,
            foreign: Some(pid),
            log_sock: log,
            query_sock: query,
            counter: AtomicUsize::new(0),
            dir,
        };
        m.wait_ready();
        m
    }

    fn wait_ready(&mut self) {
        let mut exited = None;
        let ready = wait_for(
            || {
                if let Some(c) = self.child.as_mut() {
                    if let Ok(Some(st)) = c.try_wait() {
                        exited = Some(st);
                        return true;
                    }
                }
                serves(&self.log_sock, &self.query_sock)
            },
            TIMEOUT,
        );
        if let Some(st) = exited {
            panic!(
                "memlogd exited at start with {st}; stderr: {}",
                self.stderr()
            );
        }
        assert!(
            ready,
            "memlogd did not serve {} and {} within {TIMEOUT:?}; stderr: {}",
            self.log_sock.display(),
            self.query_sock.display(),
            self.stderr()
        );
    }

    pub fn dir(&self) -> &TempDir {
        &self.dir
    }

    pub fn log_socket(&self) -> &Path {
        &self.log_sock
    }

    pub fn query_socket(&self) -> &Path {
        &self.query_sock
    }

    pub fn pid(&self) -> u32 {
        match (&self.child, self.foreign) {
            (Some(c), _) => c.id(),
            (None, Some(pid)) => pid,
            (None, None) => panic!("memlogd is not running"),
        }
    }

    /// What memlogd wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default()
    }

    /// What memlogd wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.txt")).unwrap_or_default()
    }

    /// Sends `sig` to memlogd.
    pub fn signal(&self, sig: libc::c_int) {
        signal(self.pid(), sig).expect("kill");
    }

    /// Waits (bounded) for memlogd to exit and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        match wait_child(&mut child, TIMEOUT) {
            Some(st) => st,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("memlogd did not exit within {TIMEOUT:?}");
            }
        }
    }

    /// Waits (bounded) for an adopted memlogd to be gone.
    pub fn wait_gone(&mut self) {
        let pid = self.foreign.take().expect("an adopted memlogd");
        if !wait_for(|| !process_alive(pid), TIMEOUT) {
            let _ = signal(pid, libc::SIGKILL);
            reap(pid);
            panic!("memlogd {pid} did not exit within {TIMEOUT:?}");
        }
        reap(pid);
    }

    /// A datagram socket connected to the log socket.
    pub fn log_client(&self) -> UnixDatagram {
        let s = UnixDatagram::unbound().expect("datagram socket");
        s.connect(&self.log_sock).expect("connect log socket");
        s
    }

    /// Sends one datagram: `name` and `fds`.
    pub fn send_fds(&self, name: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        memlog::sys::send_with_fds(self.log_client().as_fd(), name, fds)
    }

    /// A new input called `name`: a socketpair whose other end memlogd now
    /// reads. Write lines to the returned end.
    pub fn writer(&self, name: &str) -> UnixStream {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        self.send_fds(name.as_bytes(), &[theirs.as_fd()])
            .expect("send fd");
        ours
    }

    /// Connects to the query socket.
    pub fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.query_sock).expect("connect query socket")
    }

    /// LinuxKit's request: connects and writes the one mode byte.
    pub fn legacy(&self, mode: u8) -> LineReader {
        let mut s = self.connect();
        s.write_all(&[mode]).expect("write mode byte");
        LineReader::new(s)
    }

    /// An extended query with a read timeout of [`TIMEOUT`].
    pub fn query(&self, req: &Request) -> Client {
        let s = self.connect();
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        Client::start(s, req).expect("send request")
    }

    /// An extended follower (mode 1 or 2) whose hello has been read.
    pub fn follow(&self, mode: Mode) -> (Client, Line) {
        let mut c = self.query(&Request::new(mode));
        let hello = c.next_line().expect("read hello").expect("hello line");
        assert!(matches!(hello, Line::Hello { .. }), "got {hello:?}");
        (c, hello)
    }

    /// Every line of an extended dump, hello included.
    pub fn dump(&self) -> Vec<Line> {
        let mut c = self.query(&Request::new(Mode::Dump));
        let mut v = Vec::new();
        while let Some(l) = c.next_line().expect("read dump") {
            v.push(l);
        }
        v
    }

    /// The records of an extended dump.
    pub fn records(&self) -> Vec<Record> {
        records(&self.dump())
    }

    /// The daemon's counters, or `None` if the request was not answered with
    /// counters (for instance because it was refused over `-max-readers`).
    pub fn try_stats(&self) -> Option<Vec<(String, u64)>> {
        let mut req = Request::new(Mode::Dump);
        req.stats = true;
        let mut c = self.query(&req);
        let mut stats = None;
        while let Some(l) = c.next_line().ok()? {
            if let Line::Stats(s) = l {
                stats = Some(s);
            }
        }
        stats
    }

    /// The daemon's counters.
    pub fn stats(&self) -> Vec<(String, u64)> {
        self.try_stats().expect("stats reply")
    }

    /// One counter (panics if the daemon does not report it).
    pub fn stat(&self, name: &str) -> u64 {
        let s = self.stats();
        s.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no counter {name:?} in {s:?}"))
    }

    /// Waits until a dump holds a record satisfying `pred`; returns it.
    pub fn wait_record(&self, what: &str, pred: impl Fn(&Record) -> bool) -> Record {
        let mut found = None;
        let mut last = Vec::new();
        let ok = wait_for(
            || {
                last = self.records();
                found = last.iter().find(|r| pred(r)).cloned();
                found.is_some()
            },
            TIMEOUT,
        );
        assert!(ok, "no record {what} within {TIMEOUT:?}; dump: {last:#?}");
        found.expect("found")
    }

    /// Waits until a record from `source` with message `msg` is in the buffer.
    pub fn wait_msg(&self, source: &str, msg: &str) -> Record {
        self.wait_record(&format!("{source}: {msg:?}"), |r| {
            r.source == source && r.msg == msg
        })
    }

    /// Like [`Memlogd::wait_msg`], but each dump asks memlogd for that
    /// source's records only (`source=`): cheap however full the ring is.
    pub fn wait_source_msg(&self, source: &str, msg: &str) -> Record {
        let mut req = Request::new(Mode::Dump);
        req.sources = vec![source.as_bytes().to_vec()];
        let mut last = Vec::new();
        let ok = wait_for(
            || {
                let mut c = self.query(&req);
                last.clear();
                while let Some(l) = c.next_line().expect("read dump") {
                    if let Line::Record(r) = l {
                        last.push(r);
                    }
                }
                last.iter().any(|r| r.source == source && r.msg == msg)
            },
            TIMEOUT,
        );
        assert!(
            ok,
            "no record {source}: {msg:?} within {TIMEOUT:?}; got {last:#?}"
        );
        last.into_iter().find(|r| r.msg == msg).expect("found")
    }

    /// Waits for a `memlogd` record whose message contains every one of
    /// `words` (case-insensitive), and returns it.
    pub fn wait_self_record(&self, words: &[&str]) -> Record {
        self.wait_record(&format!("from memlogd mentioning {words:?}"), |r| {
            let m = r.msg.to_lowercase();
            r.source == "memlogd" && words.iter().all(|w| m.contains(&w.to_lowercase()))
        })
    }

    /// A unique name for a test input.
    pub fn unique(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// Checks memlogd still works end to end: a new writer's line reaches a
    /// dump.
    pub fn assert_serves(&self) {
        let name = self.unique("alive");
        let mut w = self.writer(&name);
        w.write_all(b"still here\n").expect("write");
        self.wait_msg(&name, "still here");
    }

    /// Makes sure a follower that reads with `next` has been registered by
    /// the daemon: writes marker lines from a new input (one per short wait)
    /// until one reaches the follower, then reads until the last marker
    /// written has arrived too, so nothing from the markers is in flight.
    /// `next` returns the text of the follower's next record (or `None` if
    /// nothing came within the given time). Returns what the follower
    /// received that was not a marker.
    pub fn sync_follower(&self, mut next: impl FnMut(Duration) -> Option<String>) -> Vec<String> {
        let name = self.unique("sync");
        let mut w = self.writer(&name);
        let token = |k: usize| format!("{name} marker {k}");
        let mut other = Vec::new();
        let end = Instant::now() + TIMEOUT;
        let mut written = 0;
        let mut seen: Option<usize> = None;
        while seen.is_none() {
            assert!(
                Instant::now() < end,
                "follower got no marker within {TIMEOUT:?}"
            );
            w.write_all(format!("{}\n", token(written)).as_bytes())
                .expect("write marker");
            written += 1;
            let wait_end = Instant::now() + Duration::from_millis(100);
            while let Some(t) = next(wait_end.saturating_duration_since(Instant::now())) {
                if let Some(k) = (0..written).rev().find(|&k| t.ends_with(&token(k))) {
                    seen = Some(k);
                    break;
                }
                other.push(t);
            }
        }
        let mut last = seen.expect("seen");
        while last + 1 < written {
            let t = next(end.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|| panic!("marker {} never reached the follower", written - 1));
            match (0..written).rev().find(|&k| t.ends_with(&token(k))) {
                Some(k) => last = k,
                None => other.push(t),
            }
        }
        other
    }
}

/// True when something accepts on both sockets: the log socket takes a
/// connect, and the query socket answers a complete dump.
pub fn serves(log: &Path, query: &Path) -> bool {
    let Ok(d) = UnixDatagram::unbound() else {
        return false;
    };
    if d.connect(log).is_err() {
        return false;
    }
    let Ok(s) = UnixStream::connect(query) else {
        return false;
    };
    if s.set_read_timeout(Some(TIMEOUT)).is_err() {
        return false;
    }
    let Ok(mut c) = Client::start(s, &Request::new(Mode::Dump)) else {
        return false;
    };
    loop {
        match c.next_line() {
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

impl Drop for Memlogd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(pid) = self.foreign.take() {
            if process_alive(pid) {
                let _ = signal(pid, libc::SIGKILL);
                wait_for(|| !process_alive(pid), TIMEOUT);
            }
            reap(pid);
        }
    }
}

/// A `logread` command with `args` and stdin null.
pub fn logread<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    let mut cmd = Command::new(bin("logread"));
    cmd.stdin(Stdio::null()).args(args);
    cmd
}

/// A process killed on drop (for `logread -f` and the like).
pub struct Running {
    pub child: Child,
}

impl Running {
    pub fn spawn(cmd: &mut Command) -> Running {
        Running {
            child: cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes the process `cmd` starts run with `RLIMIT_NOFILE` soft and hard
/// limits of `n` (so it cannot raise them: fd exhaustion tests).
pub fn limit_fds(cmd: &mut Command, n: libc::rlim_t) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setrlimit (async-signal-safe) on a struct on its own stack.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
}

/// A line of `len` printable bytes that does not compress (xorshift from
/// `state`, which goes on): what fills the bytes of a compressed ring as
/// fast as a raw one's, where a memory test wants the ring's pages resident
/// before its baseline (a line of one repeated byte compresses some 250 to
/// 1, and `-max-lines` would then evict long before the bytes are full).
pub fn noise_line(state: &mut u64, len: usize) -> String {
    let mut l = String::with_capacity(len);
    while l.len() < len {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        l.push(char::from(b'!' + (*state % 94) as u8));
    }
    l
}

/// Resident memory of `pid` in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// Peak resident memory of `pid` in KiB (`VmHWM`): a peak between two
/// looks counts too.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM")
}

/// A `KEY:   N kB` line of `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}
