//! `memlog-bench`: throughput, latency and memory of the release `memlogd`,
//! each measured side by side with a bare baseline on the same kind of
//! sockets, so that a noisy machine still gives comparable numbers.
//!
//! ```text
//! cargo build --release --workspace
//! cargo run --release -p memlog-tests --bin memlog-bench [-- --quick | --help]
//! ```
//!
//! The Markdown report goes to stdout, progress to stderr; `--json FILE`
//! also writes every number as JSON. Every wait is bounded, memlogd is
//! killed at the end (and by the kernel if this process dies: it runs with
//! `PR_SET_PDEATHSIG`), and its temporary directories are removed.

use memlog::client::Client;
use memlog::proto::{self, Line, Mode, Reply, Request};
use memlog::{ring, sys, timefmt};
use memlog_tests::bench::{flag_value, git_commit, read_first, split_flag};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::unistd::Pid;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// Length of every benchmark line, `\n` included.
const LINE_LEN: usize = 100;
/// Lines per `write` (65,500 bytes).
const CHUNK_LINES: usize = 655;
/// Read buffer of every bare reader.
const READ_BUF: usize = 64 * 1024;

type Res<T> = Result<T, String>;

/// A line on stderr. Unlike `eprintln!` it never panics (a closed stderr,
/// e.g. `2>&1 | head`, must not abort the run before memlogd is stopped).
macro_rules! progress {
    ($($arg:tt)*) => {{
        let _ = writeln!(io::stderr(), $($arg)*);
    }};
}

/// Adds what was being done to an error.
trait Ctx<T> {
    fn ctx(self, what: &str) -> Res<T>;
}

impl<T, E: std::fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Res<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// An I/O error, saying plainly when it is one of the benchmark's timeouts.
fn io_msg(what: &str, e: &io::Error) -> String {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        format!("{what}: timed out (no progress within the time limit, see --timeout)")
    } else {
        format!("{what}: {e}")
    }
}

trait IoCtx<T> {
    fn io_ctx(self, what: &str) -> Res<T>;
}

impl<T> IoCtx<T> for io::Result<T> {
    fn io_ctx(self, what: &str) -> Res<T> {
        self.map_err(|e| io_msg(what, &e))
    }
}

const USAGE: &str = "\
memlog-bench: benchmark the release memlogd against bare baselines

usage: cargo run --release -p memlog-tests --bin memlog-bench -- [OPTIONS]

  --memlogd PATH      memlogd binary (default: target/release/memlogd;
                      logread is looked up next to it)
  --reps N            repetitions of each measurement (default 5)
  --lines N           lines for the ingest test (default 4000000)
  --dump-lines N      lines held for the dump test (default 1000000)
  --samples N         follow-latency samples per repetition (default 20000)
  --writers LIST      writer counts for ingest (default 1,4,16)
  --ingest-buffer SZ  memlogd -buffer-size for ingest (default 64M)
  --mem-sizes LIST    buffer sizes for the memory test (default 1M,16M,64M)
  --only LIST         sections to run: ingest,latency,dump,memory,ring,size
  --ring-sizes LIST   buffer sizes for the ring section's records-held chart
                      (default 256k,512k,1M,2M,4M,8M,16M)
  --timeout SECS      longest wait for any one step (default 60)
  --json FILE         also write the results as JSON
  --quick             short smoke run (small counts, 1 repetition)
  -h, --help          this text
";

struct Opts {
    memlogd: PathBuf,
    reps: usize,
    lines: u64,
    dump_lines: u64,
    samples: usize,
    warmup: usize,
    writers: Vec<usize>,
    ingest_buffer: u64,
    mem_sizes: Vec<u64>,
    only: Vec<String>,
    timeout: Duration,
    json: Option<PathBuf>,
    quick: bool,
    /// Flags given to every memlogd (see [`base_flags`]).
    base_flags: Vec<String>,
    /// This memlogd has `-ring-compress` (the ring section needs it).
    ring_flag: bool,
    ring_sizes: Vec<u64>,
}

const SECTIONS: [&str; 6] = ["ingest", "latency", "dump", "memory", "ring", "size"];

impl Opts {
    fn runs(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

/// Parses `1M`, `64k`, `2G` or plain bytes.
fn parse_size(s: &str) -> Res<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("invalid size {s:?} (want e.g. 64k, 16M, 1G)"))
}

/// A size as memlogd's `-buffer-size` takes it.
fn size_arg(n: u64) -> String {
    if n % (1 << 30) == 0 {
        format!("{}G", n >> 30)
    } else if n % (1 << 20) == 0 {
        format!("{}M", n >> 20)
    } else if n % (1 << 10) == 0 {
        format!("{}k", n >> 10)
    } else {
        n.to_string()
    }
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
        memlogd: PathBuf::new(),
        reps: if quick { 1 } else { 5 },
        lines: if quick { 200_000 } else { 4_000_000 },
        dump_lines: if quick { 100_000 } else { 1_000_000 },
        samples: if quick { 1_000 } else { 20_000 },
        warmup: 0,
        writers: vec![1, 4, 16],
        ingest_buffer: 64 << 20,
        mem_sizes: if quick {
            vec![1 << 20]
        } else {
            vec![1 << 20, 16 << 20, 64 << 20]
        },
        only: Vec::new(),
        timeout: Duration::from_secs(60),
        json: None,
        quick,
        base_flags: Vec::new(),
        ring_flag: false,
        ring_sizes: if quick {
            vec![256 << 10, 2 << 20]
        } else {
            vec![
                256 << 10,
                512 << 10,
                1 << 20,
                2 << 20,
                4 << 20,
                8 << 20,
                16 << 20,
            ]
        },
    };
    let mut memlogd = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        let (flag, inline) = split_flag(a);

        if matches!(flag, "quick" | "h" | "help") {
            if flag != "quick" {
                print!("{USAGE}");
                std::process::exit(0);
            }
            continue;
        }
        let val = flag_value(&args, &mut i, a, inline, USAGE)?;
        match flag {
            "memlogd" => memlogd = Some(PathBuf::from(val)),
            "reps" => o.reps = parse_num(a, &val)?,
            "lines" => o.lines = parse_num(a, &val)?,
            "dump-lines" => o.dump_lines = parse_num(a, &val)?,
            "samples" => o.samples = parse_num(a, &val)?,
            "timeout" => o.timeout = Duration::from_secs(parse_num(a, &val)?),
            "json" => o.json = Some(PathBuf::from(val)),
            "writers" => {
                o.writers = val
                    .split(',')
                    .map(|v| parse_num(a, v))
                    .collect::<Res<_>>()?
            }
            "ingest-buffer" => o.ingest_buffer = parse_size(&val)?,
            "mem-sizes" => o.mem_sizes = val.split(',').map(parse_size).collect::<Res<_>>()?,
            "ring-sizes" => o.ring_sizes = val.split(',').map(parse_size).collect::<Res<_>>()?,
            "only" => {
                o.only = val.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = o.only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    return Err(format!(
                        "--only: unknown section {bad:?} (want {})",
                        SECTIONS.join(",")
                    ));
                }
            }
            _ => return Err(format!("unknown option {a}\n\n{USAGE}")),
        }
    }
    if o.reps == 0 || o.lines == 0 || o.dump_lines == 0 || o.samples == 0 {
        return Err("--reps, --lines, --dump-lines and --samples must be positive".into());
    }
    if o.writers.iter().any(|&w| w == 0 || w > 200) {
        return Err("--writers: each count must be between 1 and 200".into());
    }
    o.warmup = (o.samples / 10).clamp(10, 2_000);
    o.memlogd = match memlogd {
        Some(p) => p,
        None => default_memlogd(),
    };
    if !o.memlogd.is_file() {
        return Err(format!(
            "memlogd binary not found at {}: run `cargo build --release --workspace` first, or pass --memlogd PATH",
            o.memlogd.display()
        ));
    }
    let help = memlogd_help(&o.memlogd)?;
    o.base_flags = base_flags(&help);
    o.ring_flag = help.contains("ring-compress");
    Ok(o)
}

/// Flags every memlogd of the benchmark gets: memlogd's per-source rate
/// limit (when this build has one) is off, or it would drop the lines of a
/// benchmark writer past its burst. Found in `memlogd --help`, so that the
/// benchmark also runs builds without the flag.
fn base_flags(help: &str) -> Vec<String> {
    if help.contains("rate-limit-burst") {
        vec!["-rate-limit-burst".into(), "0".into()]
    } else {
        Vec::new()
    }
}

/// `memlogd --help`.
fn memlogd_help(bin: &Path) -> Res<String> {
    let out = std::env::temp_dir().join(format!("memlog-bench.{}.help", std::process::id()));
    let f = fs::File::create(&out).ctx(&format!("creating {}", out.display()))?;
    let mut child = Command::new(bin)
        .arg("--help")
        .stdin(Stdio::null())
        .stdout(f.try_clone().ctx("dup")?)
        .stderr(f)
        .spawn()
        .ctx(&format!("running {} --help", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while child
        .try_wait()
        .ctx("waiting for memlogd --help")?
        .is_none()
    {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = fs::remove_file(&out);
            return Err(format!("{} --help did not exit within 10 s", bin.display()));
        }
        thread::sleep(Duration::from_millis(10));
    }
    let help = fs::read_to_string(&out).unwrap_or_default();
    let _ = fs::remove_file(&out);
    Ok(help)
}

/// `target/release/memlogd`: next to this binary when it is a release
/// build, else in the `release` directory beside this build's directory.
fn default_memlogd() -> PathBuf {
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let sibling = dir.join("memlogd");
        if dir.file_name().is_some_and(|n| n == "release") && sibling.is_file() {
            return sibling;
        }
        if let Some(target) = dir.parent() {
            let p = target.join("release").join("memlogd");
            if p.is_file() {
                return p;
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/memlogd")
}

// ---------------------------------------------------------------------------
// The daemon under test

static DIR_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Removes temporary directories of earlier runs whose process is gone (a
/// run killed by a signal cannot clean up; its memlogd died with it).
fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("memlog-bench.")) else {
            continue;
        };
        let Some((pid, seq)) = rest.split_once('.') else {
            continue;
        };
        if pid.parse::<u32>().is_ok()
            && seq.parse::<u32>().is_ok()
            && !Path::new("/proc").join(pid).exists()
            && e.file_type().is_ok_and(|t| t.is_dir())
        {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// A running memlogd in its own temporary directory. Dropping it kills the
/// process and removes the directory.
struct Daemon {
    child: Child,
    dir: PathBuf,
    log: UnixDatagram,
    query: PathBuf,
    timeout: Duration,
}

/// Asks the kernel to kill the child when this process dies, so that no
/// memlogd outlives an aborted benchmark.
fn die_with_parent() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is a plain system call with integer
    // arguments; it is async-signal-safe and touches no memory.
    let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Daemon {
    fn start(o: &Opts, args: &[String]) -> Res<Daemon> {
        let (bin, timeout) = (&o.memlogd, o.timeout);
        let extra: Vec<String> = o.base_flags.iter().chain(args).cloned().collect();
        let dir = std::env::temp_dir().join(format!(
            "memlog-bench.{}.{}",
            std::process::id(),
            DIR_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).ctx(&format!("creating {}", dir.display()))?;
        let logp = dir.join("log.sock");
        let query = dir.join("query.sock");
        let stderr = fs::File::create(dir.join("stderr")).ctx("creating stderr file")?;
        let log = UnixDatagram::unbound().ctx("creating a datagram socket")?;
        let mut cmd = Command::new(bin);
        cmd.arg("-socket-log")
            .arg(&logp)
            .arg("-socket-query")
            .arg(&query)
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // SAFETY: the hook runs in the child between fork and exec; it only
        // makes one async-signal-safe system call and allocates nothing.
        unsafe {
            cmd.pre_exec(die_with_parent);
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(format!("starting {}: {e}", bin.display()));
            }
        };
        let mut d = Daemon {
            child,
            dir,
            log,
            query,
            timeout,
        };
        let deadline = Instant::now() + Duration::from_secs(10).min(timeout);
        loop {
            if let Ok(Some(st)) = d.child.try_wait() {
                return Err(format!(
                    "memlogd {extra:?} exited at start ({st}); its stderr:\n{}",
                    d.stderr_tail()
                ));
            }
            if logp.exists() && d.query.exists() && d.log.connect(&logp).is_ok() {
                if let Ok(s) = d.stats() {
                    stat(&s, "next")?;
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "memlogd did not answer on {} within 10 s; its stderr:\n{}",
                    d.query.display(),
                    d.stderr_tail()
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
        progress!("started memlogd pid {} {}", d.pid(), extra.join(" "));
        Ok(d)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr_tail(&self) -> String {
        let s = fs::read(self.dir.join("stderr")).unwrap_or_default();
        let s = String::from_utf8_lossy(&s[s.len().saturating_sub(2000)..]).into_owned();
        if s.trim().is_empty() {
            "(empty)".into()
        } else {
            s
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Hands `fd` to memlogd as an input called `name`.
    fn pass(&self, name: &str, fd: std::os::fd::BorrowedFd<'_>) -> Res<()> {
        sys::send_with_fds(self.log.as_fd(), name.as_bytes(), &[fd])
            .map(drop)
            .ctx("passing an fd to memlogd")
    }

    /// Connects to the query socket with read and write timeouts.
    fn connect(&self) -> Res<UnixStream> {
        let s = UnixStream::connect(&self.query)
            .map_err(|e| self.why(format!("connecting to memlogd's query socket: {e}")))?;
        s.set_read_timeout(Some(self.timeout)).ctx("timeout")?;
        s.set_write_timeout(Some(self.timeout)).ctx("timeout")?;
        Ok(s)
    }

    /// Why memlogd may not be answering: it has exited (a zombie until
    /// waited for), with its stderr.
    fn exit_note(&self) -> String {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        if !matches!(fields.first(), None | Some(&"Z" | &"X")) {
            return String::new();
        }
        // Field 52, the wait status, is kept for a zombie.
        let how = match fields.get(49).and_then(|v| v.parse::<i32>().ok()) {
            Some(st) if st & 0x7f != 0 => format!("was killed by signal {}", st & 0x7f),
            Some(st) => format!("exited with status {}", st >> 8),
            None => "exited".into(),
        };
        format!(" (memlogd {how}; its stderr:\n{})", self.stderr_tail())
    }

    /// `e`, plus whether memlogd has exited (once).
    fn why(&self, e: String) -> String {
        if e.contains(" (memlogd ") {
            e
        } else {
            format!("{e}{}", self.exit_note())
        }
    }

    /// memlogd's counters (an extended `stats` request).
    fn stats(&self) -> Res<Vec<(String, u64)>> {
        self.try_stats().map_err(|e| self.why(e))
    }

    fn try_stats(&self) -> Res<Vec<(String, u64)>> {
        let s = self.connect()?;
        s.set_read_timeout(Some(self.timeout.min(Duration::from_secs(10))))
            .ctx("timeout")?;
        let mut req = Request::new(Mode::Dump);
        req.stats = true;
        let mut c = Client::start(s, &req).io_ctx("sending a stats request")?;
        while let Some(line) = c.next_line().io_ctx("reading memlogd's stats")? {
            match line {
                Line::Stats(v) => return Ok(v),
                Line::Error(e) => return Err(format!("memlogd refused a stats request: {e}")),
                _ => {}
            }
        }
        Err("memlogd closed a stats request without stats".into())
    }

    /// The next sequence number: records stored since start.
    fn next_seq(&self) -> Res<u64> {
        stat(&self.stats()?, "next")
    }

    /// Waits until `next` is at least `min` and has stopped moving (memlogd
    /// has handled the inputs just passed and logged its own records).
    fn settle(&self, min: u64) -> Res<u64> {
        let deadline = Instant::now() + self.timeout;
        let (mut last, mut same) = (u64::MAX, 0);
        loop {
            let n = self.next_seq()?;
            if n == last && n >= min {
                same += 1;
                if same >= 3 {
                    return Ok(n);
                }
            } else {
                same = 0;
            }
            last = n;
            if Instant::now() > deadline {
                return Err(format!(
                    "memlogd's record count did not settle at >= {min} within {:?} (now {n})",
                    self.timeout
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls until memlogd has stored `lines` records after `base`; returns
    /// when it saw that. Polls sparsely while far from the end, so that the
    /// polling itself barely loads memlogd.
    fn wait_stored(&self, base: u64, lines: u64, t0: Instant) -> Res<Instant> {
        let target = base + lines;
        loop {
            let n = self.next_seq()?;
            let now = Instant::now();
            if n >= target {
                return Ok(now);
            }
            let el = now - t0;
            if el > self.timeout {
                let counters: Vec<String> = self
                    .stats()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(_, v)| *v != 0)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                return Err(format!(
                    "memlogd stored only {} of {lines} lines within {:?} (its non-zero counters: {}); its stderr:\n{}",
                    n.saturating_sub(base),
                    self.timeout,
                    counters.join(" "),
                    self.stderr_tail()
                ));
            }
            let done = n.saturating_sub(base);
            let pause = if done == 0 {
                Duration::from_millis(2)
            } else {
                let left = el.as_secs_f64() * (target - n) as f64 / done as f64;
                Duration::from_secs_f64(left / 2.0)
                    .clamp(Duration::from_micros(500), Duration::from_millis(100))
            };
            thread::sleep(pause);
        }
    }

    /// The `kB` fields `keys` of `/proc/PID/status`, in bytes.
    fn status_bytes<const N: usize>(&self, keys: [&str; N]) -> Res<[u64; N]> {
        let p = format!("/proc/{}/status", self.pid());
        let s = fs::read_to_string(&p).ctx(&p)?;
        let mut out = [0; N];
        for (o, k) in out.iter_mut().zip(keys) {
            *o = s
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
                .ok_or_else(|| format!("no {k} in {p}"))?;
        }
        Ok(out)
    }

    /// (VmHWM, VmRSS) in bytes.
    fn memory(&self) -> Res<(u64, u64)> {
        let [hwm, rss] = self.status_bytes(["VmHWM:", "VmRSS:"])?;
        Ok((hwm, rss))
    }

    /// Resident (private, file-backed) bytes: `RssAnon` (the ring, heap,
    /// stack) and `RssFile` (code and read-only data of the binary and its
    /// shared libraries, pages the kernel maps from the page cache).
    fn rss_split(&self) -> Res<(u64, u64)> {
        let [anon, file] = self.status_bytes(["RssAnon:", "RssFile:"])?;
        Ok((anon, file))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn stat(stats: &[(String, u64)], key: &str) -> Res<u64> {
    stats
        .iter()
        .find(|(k, _)| k == key)
        .map(|&(_, v)| v)
        .ok_or_else(|| {
            let keys: Vec<&str> = stats.iter().map(|(k, _)| k.as_str()).collect();
            format!(
                "memlogd's stats have no {key:?} (keys: {})",
                keys.join(", ")
            )
        })
}

/// Fails if memlogd counted anything the benchmark should never cause.
fn check_clean(stats: &[(String, u64)]) -> Res<()> {
    for key in [
        "lines_truncated",
        "inputs_refused",
        "input_errors",
        "readers_refused",
        "fds_dropped",
        "rate_limited",
    ] {
        // Counters an older memlogd does not have are skipped.
        let Ok(v) = stat(stats, key) else { continue };
        if v != 0 {
            return Err(format!("memlogd counted {key} = {v} during the benchmark"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Lines and sockets

/// One 100-byte line: `prefix`, printable filler, `\n`.
fn make_line(prefix: &str) -> Vec<u8> {
    const FILL: &[u8] = b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 ";
    let mut l = prefix.as_bytes().to_vec();
    l.truncate(LINE_LEN - 1);
    let mut i = 0;
    while l.len() < LINE_LEN - 1 {
        l.push(FILL[i % FILL.len()]);
        i += 1;
    }
    l.push(b'\n');
    l
}

/// `CHUNK_LINES` whole lines, written in one `write` each.
fn line_chunk() -> Vec<u8> {
    (0..CHUNK_LINES)
        .flat_map(|i| make_line(&format!("bench line {i:06} ")))
        .collect()
}

fn pairs(n: usize, timeout: Duration) -> Res<(Vec<UnixStream>, Vec<UnixStream>)> {
    let mut w = Vec::with_capacity(n);
    let mut r = Vec::with_capacity(n);
    for _ in 0..n {
        let (a, b) = UnixStream::pair().ctx("socketpair")?;
        a.set_write_timeout(Some(timeout)).ctx("timeout")?;
        w.push(a);
        r.push(b);
    }
    Ok((w, r))
}

/// `total` split over `n` writers.
fn shares(total: u64, n: usize) -> Vec<u64> {
    let n64 = n as u64;
    (0..n64)
        .map(|i| total / n64 + u64::from(i < total % n64))
        .collect()
}

/// A writer: waits for the start, writes `n` lines in 64 KiB batches, and
/// hands its socket back (closing it would make memlogd log the EOF).
fn write_share(mut w: UnixStream, mut n: u64, chunk: &[u8], start: &Barrier) -> Res<UnixStream> {
    start.wait();
    while n > 0 {
        let k = n.min(CHUNK_LINES as u64);
        w.write_all(&chunk[..k as usize * LINE_LEN])
            .io_ctx("writer: write")?;
        n -= k;
    }
    Ok(w)
}

/// Joins writer threads, keeping their sockets; the first error wins.
fn join_writers(
    hs: Vec<thread::ScopedJoinHandle<'_, Res<UnixStream>>>,
) -> (Vec<UnixStream>, Option<String>) {
    let mut socks = Vec::new();
    let mut err = None;
    for h in hs {
        match h.join() {
            Ok(Ok(s)) => socks.push(s),
            Ok(Err(e)) => {
                err.get_or_insert(e);
            }
            Err(_) => {
                err.get_or_insert("a writer thread panicked".into());
            }
        }
    }
    (socks, err)
}

/// Reads lines from a stream.
struct LineReader {
    s: UnixStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl LineReader {
    fn new(s: UnixStream) -> LineReader {
        LineReader {
            s,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
        }
    }

    /// The next line (without `\n`); an error at EOF or timeout.
    fn next_line(&mut self) -> Res<&[u8]> {
        match self.try_line() {
            Ok(Some((a, b))) => Ok(&self.buf[a..b]),
            Ok(None) => Err("the follower's stream ended".into()),
            Err(e) => Err(io_msg("follower: read", &e)),
        }
    }

    /// The next line's range in `buf`; `None` at EOF.
    fn try_line(&mut self) -> io::Result<Option<(usize, usize)>> {
        loop {
            if let Some(i) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let l = self.start;
                self.start += i + 1;
                return Ok(Some((l, l + i)));
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            match self.s.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(None),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------
// 1. Ingest

/// Ingest through memlogd: seconds from the start signal until memlogd has
/// stored all `lines`.
fn ingest_memlogd(d: &mut Daemon, writers: usize, lines: u64, tag: &str) -> Res<f64> {
    let (ws, rs) = pairs(writers, d.timeout)?;
    let before = d.next_seq()?;
    for (i, r) in rs.iter().enumerate() {
        d.pass(&format!("{tag}{i}"), r.as_fd())?;
    }
    drop(rs);
    // One line each first: memlogd has taken every input before the clock starts.
    let warm = make_line("warm-up");
    for mut w in &ws {
        w.write_all(&warm).io_ctx("writer: warm-up write")?;
    }
    let base = d.settle(before + writers as u64)?;
    let chunk = line_chunk();
    let start = Barrier::new(writers + 1);
    let (secs, socks) = thread::scope(|s| {
        let hs: Vec<_> = ws
            .into_iter()
            .zip(shares(lines, writers))
            .map(|(w, n)| {
                let (chunk, start) = (&chunk, &start);
                s.spawn(move || write_share(w, n, chunk, start))
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let done = d.wait_stored(base, lines, t0);
        if done.is_err() {
            // Unblocks the writers (EPIPE) so that the scope can end.
            d.kill();
        }
        let (socks, err) = join_writers(hs);
        let t = done?;
        match err {
            Some(e) => Err(e),
            None => Ok(((t - t0).as_secs_f64(), socks)),
        }
    })?;
    drop(socks);
    Ok(secs)
}

/// The same writers into a bare epoll loop that reads and discards.
fn ingest_baseline(writers: usize, lines: u64, timeout: Duration) -> Res<f64> {
    let (ws, rs) = pairs(writers, timeout)?;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).ctx("epoll_create")?;
    for (i, r) in rs.iter().enumerate() {
        sys::set_nonblocking(r.as_fd(), true).ctx("O_NONBLOCK")?;
        epoll
            .add(r, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
            .ctx("epoll_ctl")?;
    }
    let chunk = line_chunk();
    let start = Barrier::new(writers + 2);
    let total = lines * LINE_LEN as u64;
    let (secs, socks) = thread::scope(|s| {
        let hs: Vec<_> = ws
            .into_iter()
            .zip(shares(lines, writers))
            .map(|(w, n)| {
                let (chunk, start) = (&chunk, &start);
                s.spawn(move || write_share(w, n, chunk, start))
            })
            .collect();
        let (epoll, rs, start) = (&epoll, &rs, &start);
        let reader = s.spawn(move || {
            start.wait();
            let r = drain(epoll, rs, total, timeout);
            if r.is_err() {
                for r in rs {
                    let _ = r.shutdown(Shutdown::Both);
                }
            }
            r
        });
        start.wait();
        let t0 = Instant::now();
        let done = reader
            .join()
            .unwrap_or_else(|_| Err("the reader thread panicked".into()));
        let (socks, err) = join_writers(hs);
        let t = done?;
        match err {
            Some(e) => Err(e),
            None => Ok(((t - t0).as_secs_f64(), socks)),
        }
    })?;
    drop(socks);
    Ok(secs)
}

/// Reads every ready fd once per wakeup, into one buffer, until `total`
/// bytes arrived.
fn drain(epoll: &Epoll, rs: &[UnixStream], total: u64, timeout: Duration) -> Res<Instant> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; READ_BUF];
    let mut events = vec![EpollEvent::empty(); 64];
    let mut got = 0u64;
    let mut open = rs.len();
    while got < total {
        if Instant::now() > deadline {
            return Err(format!(
                "baseline reader got {got} of {total} bytes within {timeout:?}"
            ));
        }
        let n = match epoll.wait(&mut events, 1000u16) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("epoll_wait: {e}")),
        };
        for ev in &events[..n] {
            let mut r = &rs[ev.data() as usize];
            match r.read(&mut buf) {
                Ok(0) => {
                    let _ = epoll.delete(r);
                    open -= 1;
                    if open == 0 {
                        return Err(format!(
                            "baseline: every writer closed after {got} of {total} bytes"
                        ));
                    }
                }
                Ok(k) => got += k as u64,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(format!("baseline: read: {e}")),
            }
        }
    }
    Ok(Instant::now())
}

// ---------------------------------------------------------------------------
// 2. Follow latency

/// Round trips per path before the next path takes over.
const LAT_CHUNK: usize = 500;

/// One writer-to-follower path, driven one round trip at a time.
struct LatPath {
    w: UnixStream,
    rd: LineReader,
    next: u64,
    /// The far side: memlogd's pid, or the relay thread's tid.
    far: Pid,
}

impl LatPath {
    /// `n` round trips: write one line, wait until the follower has it.
    /// Their times in microseconds are appended to `out`.
    fn rounds(&mut self, n: usize, out: &mut Vec<f64>) -> Res<()> {
        for _ in 0..n {
            let token = format!("ping {:010} ", self.next);
            self.next += 1;
            let line = make_line(&token);
            let t = Instant::now();
            self.w.write_all(&line).io_ctx("latency writer: write")?;
            while !contains(self.rd.next_line()?, token.as_bytes()) {}
            out.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Ok(())
    }
}

/// Through memlogd; `legacy` follows with LinuxKit's one-byte request.
fn memlogd_path(d: &Daemon, legacy: bool) -> Res<LatPath> {
    let (mut w, r) = UnixStream::pair().ctx("socketpair")?;
    w.set_write_timeout(Some(d.timeout)).ctx("timeout")?;
    d.pass("lat", r.as_fd())?;
    drop(r);
    let mut f = d.connect()?;
    let req = if legacy {
        vec![Mode::Follow as u8]
    } else {
        Request::new(Mode::Follow).encode()
    };
    f.write_all(&req).io_ctx("follower: request")?;
    let mut rd = LineReader::new(f);
    if legacy {
        sync_follower(&mut w, &mut rd, d.timeout)?;
    } else {
        // The hello comes once memlogd has set the follower up.
        let hello = rd.next_line()?;
        if !hello.starts_with(b"{\"memlog\"") {
            return Err(format!(
                "follower: expected a hello line, got {}",
                String::from_utf8_lossy(hello)
            ));
        }
    }
    Ok(LatPath {
        w,
        rd,
        next: 0,
        far: Pid::from_raw(d.pid() as i32),
    })
}

/// A LinuxKit follower gets no hello, so nothing tells when memlogd has
/// read its mode byte: write marker lines until one reaches it.
fn sync_follower(w: &mut UnixStream, rd: &mut LineReader, timeout: Duration) -> Res<()> {
    let deadline = Instant::now() + timeout;
    rd.s.set_read_timeout(Some(Duration::from_millis(100)))
        .ctx("timeout")?;
    for i in 0.. {
        if Instant::now() > deadline {
            return Err(format!(
                "the LinuxKit follower got no line within {timeout:?}"
            ));
        }
        w.write_all(&make_line(&format!("sync {i}")))
            .io_ctx("latency writer: write")?;
        match rd.try_line() {
            Ok(Some(_)) => break,
            Ok(None) => return Err("the follower's stream ended".into()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(io_msg("follower: read", &e)),
        }
    }
    rd.s.set_read_timeout(Some(timeout)).ctx("timeout")
}

/// Two hops without memlogd: socketpair -> relay thread -> stream -> follower.
/// The relay ends when the path (its writer) is dropped.
fn baseline_path(timeout: Duration) -> Res<LatPath> {
    let (w, mut r) = UnixStream::pair().ctx("socketpair")?;
    let (mut out, f) = UnixStream::pair().ctx("socketpair")?;
    w.set_write_timeout(Some(timeout)).ctx("timeout")?;
    f.set_read_timeout(Some(timeout)).ctx("timeout")?;
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tid_tx.send(nix::unistd::gettid());
        let mut buf = vec![0u8; READ_BUF];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    let far = tid_rx
        .recv_timeout(timeout)
        .ctx("the relay thread did not start")?;
    Ok(LatPath {
        w,
        rd: LineReader::new(f),
        next: 0,
        far,
    })
}

// ---------------------------------------------------------------------------
// 3. Dump

#[derive(Clone, Copy)]
struct DumpRun {
    records: u64,
    bytes: u64,
    secs: f64,
}

/// Reads a reply to EOF, counting bytes and lines (no decoding).
fn count_to_eof(s: UnixStream, t0: Instant) -> Res<DumpRun> {
    count_to_eof_capturing(s, t0, &mut Vec::new(), 0)
}

/// [`count_to_eof`], keeping the first `keep` bytes in `head`.
fn count_to_eof_capturing(
    mut s: UnixStream,
    t0: Instant,
    head: &mut Vec<u8>,
    keep: usize,
) -> Res<DumpRun> {
    let mut buf = vec![0u8; READ_BUF];
    let (mut lines, mut bytes) = (0u64, 0u64);
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                bytes += n as u64;
                lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                if head.len() < keep {
                    head.extend_from_slice(&buf[..n.min(keep - head.len())]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_msg("dump reader: read", &e)),
        }
    }
    Ok(DumpRun {
        records: lines,
        bytes,
        secs: t0.elapsed().as_secs_f64(),
    })
}

/// A mode-0 dump read raw; `ext` sends the extended request (records then
/// carry `seq`, and a hello line comes first).
/// The first 128 KiB of the reply go to `head`.
fn dump_raw(d: &Daemon, ext: bool, head: &mut Vec<u8>) -> Res<DumpRun> {
    let t0 = Instant::now();
    let mut s = d.connect()?;
    let req = if ext {
        Request::new(Mode::Dump).encode()
    } else {
        vec![Mode::Dump as u8]
    };
    s.write_all(&req).io_ctx("dump: request")?;
    let mut r = count_to_eof_capturing(s, t0, head, 128 * 1024)?;
    if ext {
        r.records = r.records.saturating_sub(1); // the hello line
    }
    Ok(r)
}

/// Counts records through [`Client`], which decodes every line.
fn count_decoded(mut c: Client) -> Res<u64> {
    let mut n = 0u64;
    while let Some(l) = c.next_ref().io_ctx("dump client")? {
        match l {
            Reply::Record(r) => {
                n += 1;
                if r.source != "memlogd" && r.msg.len() != LINE_LEN - 1 {
                    return Err(format!(
                        "dump: record {:?} from {:?} has a message of {} bytes, not {}",
                        r.seq,
                        r.source,
                        r.msg.len(),
                        LINE_LEN - 1
                    ));
                }
            }
            Reply::Error(e) => return Err(format!("dump refused: {e}")),
            _ => {}
        }
    }
    Ok(n)
}

fn dump_decoded(d: &Daemon, wire_bytes: u64) -> Res<DumpRun> {
    let t0 = Instant::now();
    let c = Client::start(d.connect()?, &Request::new(Mode::Dump)).io_ctx("dump: request")?;
    let records = count_decoded(c)?;
    Ok(DumpRun {
        records,
        bytes: wire_bytes,
        secs: t0.elapsed().as_secs_f64(),
    })
}

/// The benchmark's record lines from the start of a captured extended
/// dump (the hello, memlogd's own records and a cut last line left out),
/// so the baseline sends exactly the bytes memlogd sends. Falls back to
/// lines encoded here if the capture holds none.
fn record_block(head: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut n = 0;
    let whole = head
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(&head[..0], |i| &head[..=i]);
    for line in whole.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"{\"seq\":") && contains(line, b"\"source\":\"d") {
            out.extend_from_slice(line);
            n += 1;
        }
    }
    if n == 0 {
        let now = timefmt::now_ns();
        for i in 0..CHUNK_LINES {
            let line = make_line(&format!("bench line {i:06} "));
            let r = ring::Record {
                seq: 1_000_000 + i as u64,
                ..ring::Record::plain(now + i as i64 * 1_037, b"d0", &line[..LINE_LEN - 1])
            };
            proto::encode_record(&mut out, &r, true);
        }
        n = CHUNK_LINES;
    }
    (out, n)
}

/// A bare sender thread writing `records` pre-built JSON lines (after a
/// hello line when `hello`) to a reader in this thread, raw or decoded.
fn dump_baseline(
    block: &[u8],
    block_lines: usize,
    records: u64,
    decoded: bool,
    timeout: Duration,
) -> Res<DumpRun> {
    let block = block.to_vec();
    let (mut tx, rx) = UnixStream::pair().ctx("socketpair")?;
    tx.set_write_timeout(Some(timeout)).ctx("timeout")?;
    tx.set_read_timeout(Some(timeout)).ctx("timeout")?;
    rx.set_read_timeout(Some(timeout)).ctx("timeout")?;
    let t0 = Instant::now();
    let sender = thread::spawn(move || -> Res<()> {
        // Read the request first: closing with it unread would reset the reader.
        let mut req = [0u8; 256];
        let _ = tx.read(&mut req).io_ctx("baseline sender: request")?;
        let mut hello = Vec::new();
        proto::encode_hello(&mut hello, 0x0123_4567_89ab_cdef, 1, records + 1);
        tx.write_all(&hello).io_ctx("baseline sender: write")?;
        let mut left = records;
        while left > 0 {
            let k = left.min(block_lines as u64) as usize;
            // Whole lines: the block's k-th line ends at its k-th '\n'.
            let end = if k == block_lines {
                block.len()
            } else {
                block
                    .iter()
                    .enumerate()
                    .filter(|&(_, &b)| b == b'\n')
                    .nth(k - 1)
                    .map_or(block.len(), |(i, _)| i + 1)
            };
            tx.write_all(&block[..end])
                .io_ctx("baseline sender: write")?;
            left -= k as u64;
        }
        Ok(())
    });
    let run = if decoded {
        let c = Client::start(rx, &Request::new(Mode::Dump)).io_ctx("baseline: request")?;
        let n = count_decoded(c)?;
        Ok(DumpRun {
            records: n,
            bytes: 0,
            secs: t0.elapsed().as_secs_f64(),
        })
    } else {
        let mut rx = rx;
        rx.write_all(&Request::new(Mode::Dump).encode())
            .io_ctx("baseline: request")?;
        count_to_eof(rx, t0).map(|mut r| {
            r.records = r.records.saturating_sub(1);
            r
        })
    };
    let sent = sender
        .join()
        .unwrap_or_else(|_| Err("the sender thread panicked".into()));
    let run = run?;
    sent?;
    Ok(run)
}

// ---------------------------------------------------------------------------
// Statistics and report

#[derive(Clone, Copy, Debug)]
struct Summary {
    median: f64,
    min: f64,
    max: f64,
}

fn summary(v: &[f64]) -> Summary {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return Summary {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        };
    }
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Summary {
        median,
        min: s[0],
        max: s[n - 1],
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `median (min–max)` with `prec` decimals; just the median for one rep.
fn cell(s: Summary, prec: usize) -> String {
    if s.min == s.max {
        format!("{:.prec$}", s.median)
    } else {
        format!("{:.prec$} ({:.prec$}–{:.prec$})", s.median, s.min, s.max)
    }
}

fn scaled(v: &[f64], f: f64) -> Vec<f64> {
    v.iter().map(|x| x * f).collect()
}

/// A JSON value for `--json`.
enum J {
    N(f64),
    S(String),
    A(Vec<J>),
    O(Vec<(&'static str, J)>),
}

impl J {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            J::N(x) if x.is_finite() => out.extend_from_slice(format!("{x}").as_bytes()),
            J::N(_) => out.extend_from_slice(b"null"),
            J::S(s) => {
                memlog::json::write_str(out, s.as_bytes());
            }
            J::A(v) => {
                out.push(b'[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    x.write(out);
                }
                out.push(b']');
            }
            J::O(v) => {
                out.push(b'{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    memlog::json::write_str(out, k.as_bytes());
                    out.push(b':');
                    x.write(out);
                }
                out.push(b'}');
            }
        }
    }
}

fn jsum(s: Summary, runs: &[f64]) -> J {
    J::O(vec![
        ("median", J::N(s.median)),
        ("min", J::N(s.min)),
        ("max", J::N(s.max)),
        ("runs", J::A(runs.iter().map(|&x| J::N(x)).collect())),
    ])
}

fn n(x: u64) -> J {
    J::N(x as f64)
}

fn kib(b: u64) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

// ---------------------------------------------------------------------------

struct Report {
    md: String,
    json: Vec<(&'static str, J)>,
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            progress!("memlog-bench: {e}");
            std::process::exit(2);
        }
    };
    let mut rep = Report {
        md: String::new(),
        json: Vec::new(),
    };
    remove_stale_dirs();
    let t0 = Instant::now();
    let res = run(&opts, &mut rep);
    let _ = writeln!(
        rep.md,
        "\nTotal benchmark time: {:.0} s.",
        t0.elapsed().as_secs_f64()
    );
    let mut stdout = io::stdout();
    let _ = stdout.write_all(rep.md.as_bytes());
    let _ = stdout.flush();
    if let Some(p) = &opts.json {
        let mut out = Vec::new();
        J::O(std::mem::take(&mut rep.json)).write(&mut out);
        out.push(b'\n');
        if let Err(e) = fs::write(p, out) {
            progress!("memlog-bench: writing {}: {e}", p.display());
            std::process::exit(1);
        }
    }
    if let Err(e) = res {
        progress!("memlog-bench: error: {e}");
        std::process::exit(1);
    }
}

fn run(o: &Opts, r: &mut Report) -> Res<()> {
    header(o, r);
    if o.runs("ingest") {
        ingest(o, r)?;
    }
    if o.runs("latency") {
        latency(o, r)?;
    }
    if o.runs("dump") {
        dump(o, r)?;
    }
    if o.runs("memory") {
        memory(o, r)?;
    }
    if o.runs("ring") {
        ring_section(o, r)?;
    }
    if o.runs("size") {
        sizes(o, r)?;
    }
    Ok(())
}

fn header(o: &Opts, r: &mut Report) {
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let model = read_first("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mem = read_first("/proc/meminfo", "MemTotal").unwrap_or_default();
    let load = fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let args: Vec<String> = std::env::args().collect();
    let cmdline = args.join(" ");
    let commit = git_commit().unwrap_or_else(|| "unknown".into());
    let date = timefmt::rfc3339_nano(timefmt::now_ns() / 1_000_000_000 * 1_000_000_000);
    let m = &mut r.md;
    let _ = writeln!(m, "# memlog benchmark\n");
    let _ = writeln!(m, "- Date: {date}, commit `{commit}`");
    let _ = writeln!(
        m,
        "- Machine: {cpus} CPUs, {model}, {mem} RAM, Linux {kernel}, load average at start {load}"
    );
    let _ = writeln!(m, "- Command: `{cmdline}`");
    let _ = writeln!(
        m,
        "- Rerun: `cargo build --release --workspace && cargo run --release -p memlog-tests --bin memlog-bench{}`",
        if args.len() > 1 {
            format!(" -- {}", args[1..].join(" "))
        } else {
            String::new()
        }
    );
    let _ = writeln!(m, "- memlogd: `{}`", o.memlogd.display());
    if !o.base_flags.is_empty() {
        let _ = writeln!(
            m,
            "- Every memlogd also runs with `{}`: its per-source rate limit would otherwise drop a benchmark writer's lines past the burst.",
            o.base_flags.join(" ")
        );
    }
    let _ = writeln!(
        m,
        "- Each measurement is repeated {} times{}; cells show the median, then (min–max) over the repetitions.",
        o.reps,
        if o.quick { " (`--quick` smoke run: numbers are not meaningful)" } else { "" }
    );
    if cfg!(debug_assertions) {
        let _ = writeln!(
            m,
            "- **Warning**: memlog-bench itself is a debug build, which slows the baselines and clients; use `--release`."
        );
    }
    r.json.push((
        "machine",
        J::O(vec![
            ("cpus", n(cpus as u64)),
            ("cpu_model", J::S(model)),
            ("kernel", J::S(kernel)),
            ("mem_total", J::S(mem)),
            ("load_average", J::S(load)),
        ]),
    ));
    r.json.push(("command", J::S(cmdline)));
    r.json.push(("commit", J::S(commit)));
    r.json.push(("date", J::S(date)));
    r.json.push(("reps", n(o.reps as u64)));
}

fn ingest(o: &Opts, r: &mut Report) -> Res<()> {
    let max_w = o.writers.iter().copied().max().unwrap_or(1);
    let buffer = o.ingest_buffer;
    let args: Vec<String> = [
        "-max-lines",
        "100000000",
        "-buffer-size",
        &size_arg(buffer),
        "-max-inputs",
        &(max_w * 2 + 16).to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut d = Daemon::start(o, &args)?;
    // One untimed pass that fills the ring: a long-running memlogd has
    // every page of it resident, a fresh one takes page faults first.
    // (A compressed ring holds several times the raw one: passes until it
    // evicts.)
    let fill = buffer / ring::record_size(5, LINE_LEN - 1) as u64 + 1_000;
    for pass in 0..64 {
        let secs = ingest_memlogd(&mut d, 1, fill, "warm")?;
        progress!(
            "ingest warm-up {pass}: {fill} lines into the ring at {:.3} M lines/s",
            fill as f64 / secs / 1e6
        );
        if stat(&d.stats()?, "evicted")? > 0 {
            break;
        }
    }
    // Per writer count: (memlogd lines/s, baseline lines/s, ratio) per rep.
    let mut res: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = vec![Default::default(); o.writers.len()];
    for rep in 0..o.reps {
        for (wi, &w) in o.writers.iter().enumerate() {
            let m = o.lines as f64 / ingest_memlogd(&mut d, w, o.lines, &format!("r{rep}w"))?;
            let b = o.lines as f64 / ingest_baseline(w, o.lines, o.timeout)?;
            progress!(
                "ingest rep {}/{} {w:>2} writers: memlogd {:.3} M lines/s, baseline {:.3} M lines/s",
                rep + 1,
                o.reps,
                m / 1e6,
                b / 1e6
            );
            res[wi].0.push(m);
            res[wi].1.push(b);
            res[wi].2.push(m / b);
        }
    }
    let stats = d.stats()?;
    check_clean(&stats)?;
    let evicted = stat(&stats, "evicted")?;
    drop(d);
    let m = &mut r.md;
    let _ = writeln!(
        m,
        "\n## 1. Ingest\n\n{} lines of {LINE_LEN} bytes per run, split over the writers (threads, each on its own socketpair passed to memlogd's log socket), written in {} KiB batches. memlogd: `{}`; timed from the start signal until memlogd's `next` counter (extended `stats` request) has grown by the line count. Baseline: the same writers and socketpairs read by one bare epoll thread (64 KiB `read`s, data discarded). The ratio is the median of per-repetition ratios (the two runs of a pair are back to back). One untimed pass filled the ring first (page faults on a fresh ring are not counted). The ring evicted {} records in all.\n",
        o.lines,
        CHUNK_LINES * LINE_LEN / 1024,
        args.join(" "),
        evicted
    );
    let _ = writeln!(
        m,
        "| writers | memlogd (M lines/s) | baseline (M lines/s) | memlogd / baseline | memlogd MB/s |"
    );
    let _ = writeln!(m, "| ---: | ---: | ---: | ---: | ---: |");
    let mut rows = Vec::new();
    for (wi, &w) in o.writers.iter().enumerate() {
        let (mm, bb, rr) = &res[wi];
        let ms = summary(&scaled(mm, 1e-6));
        let _ = writeln!(
            m,
            "| {w} | {} | {} | {} | {:.0} |",
            cell(ms, 3),
            cell(summary(&scaled(bb, 1e-6)), 3),
            cell(summary(rr), 2),
            ms.median * LINE_LEN as f64
        );
        rows.push(J::O(vec![
            ("writers", n(w as u64)),
            ("memlogd_lines_per_s", jsum(summary(mm), mm)),
            ("baseline_lines_per_s", jsum(summary(bb), bb)),
            ("ratio", jsum(summary(rr), rr)),
        ]));
    }
    r.json.push((
        "ingest",
        J::O(vec![
            ("lines", n(o.lines)),
            ("line_len", n(LINE_LEN as u64)),
            ("memlogd_args", J::S(args.join(" "))),
            ("evicted", n(evicted)),
            ("rows", J::A(rows)),
        ]),
    ));
    Ok(())
}

/// Where the two ends of a latency path run.
struct Placement {
    name: String,
    /// The writer and follower (this thread).
    near: usize,
    /// memlogd, or the relay thread.
    far: usize,
}

/// The CPUs this process may use.
fn allowed_cpus() -> Vec<usize> {
    sched_getaffinity(Pid::from_raw(0))
        .map(|set| {
            (0..CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default()
}

fn pin(who: Pid, cpu: usize) -> Res<()> {
    let mut set = CpuSet::new();
    set.set(cpu).ctx("CPU set")?;
    sched_setaffinity(who, &set).ctx(&format!("pinning {who} to CPU {cpu}"))
}

/// Restores this thread's CPU affinity when dropped.
struct AffinityGuard(Option<CpuSet>);

impl Drop for AffinityGuard {
    fn drop(&mut self) {
        if let Some(set) = &self.0 {
            let _ = sched_setaffinity(Pid::from_raw(0), set);
        }
    }
}

fn latency(o: &Opts, r: &mut Report) -> Res<()> {
    // One memlogd per follower kind, so that neither adds work to the other.
    let d_ext = Daemon::start(o, &[])?;
    let d_legacy = Daemon::start(o, &[])?;
    let names = [
        "memlogd, extended follower",
        "memlogd, LinuxKit follower (mode byte 1)",
        "baseline: bare relay thread",
    ];
    let why = |pi: usize, e: String| match pi {
        0 => d_ext.why(e),
        1 => d_legacy.why(e),
        _ => e,
    };
    let mut paths = [
        memlogd_path(&d_ext, false).map_err(|e| why(0, e))?,
        memlogd_path(&d_legacy, true).map_err(|e| why(1, e))?,
        baseline_path(o.timeout)?,
    ];
    // A wakeup on another CPU costs far more than one on the same CPU (tens
    // of microseconds on some VMs), and the scheduler may pick either for
    // any path at any time: both placements are measured, pinned.
    let cpus = allowed_cpus();
    let placements = match cpus[..] {
        [a, b, ..] => vec![
            Placement {
                name: format!("one CPU ({a})"),
                near: a,
                far: a,
            },
            Placement {
                name: format!("two CPUs ({a}, {b})"),
                near: a,
                far: b,
            },
        ],
        [a] => vec![Placement {
            name: format!("one CPU ({a})"),
            near: a,
            far: a,
        }],
        [] => return Err("cannot read this process's CPU affinity".into()),
    };
    let _restore = AffinityGuard(sched_getaffinity(Pid::from_raw(0)).ok());
    // [placement][path][statistic] -> per-rep values: p50 p90 p99 max,
    // samples >= 1 ms.
    let mut all = Vec::new();
    for pl in &placements {
        pin(Pid::from_raw(0), pl.near)?;
        for p in &paths {
            pin(p.far, pl.far)?;
        }
        for (pi, p) in paths.iter_mut().enumerate() {
            p.rounds(o.warmup, &mut Vec::new())
                .map_err(|e| why(pi, e))?;
        }
        all.push(latency_reps(o, &names, &mut paths, &why, &pl.name)?);
    }
    drop(_restore);
    drop(paths);
    drop((d_ext, d_legacy));
    latency_report(o, r, &names, &placements, &all);
    Ok(())
}

type Why<'a> = dyn Fn(usize, String) -> String + 'a;

/// The repetitions of one placement: [path][statistic] -> per-rep values.
fn latency_reps(
    o: &Opts,
    names: &[&str],
    paths: &mut [LatPath],
    why: &Why<'_>,
    placement: &str,
) -> Res<Vec<Vec<Vec<f64>>>> {
    let mut res = vec![vec![Vec::new(); 5]; names.len()];
    for rep in 0..o.reps {
        // The paths take turns, LAT_CHUNK round trips at a time (starting
        // with a different one each turn), so load on the machine falls on
        // all of them alike.
        let mut v = vec![Vec::with_capacity(o.samples); names.len()];
        let mut done = 0;
        let mut turn = 0;
        while done < o.samples {
            let k = (o.samples - done).min(LAT_CHUNK);
            for j in 0..paths.len() {
                let pi = (turn + j) % paths.len();
                paths[pi].rounds(k, &mut v[pi]).map_err(|e| why(pi, e))?;
            }
            done += k;
            turn += 1;
        }
        for (pi, name) in names.iter().enumerate() {
            let v = &mut v[pi];
            v.sort_by(f64::total_cmp);
            let ps = [
                percentile(v, 50.0),
                percentile(v, 90.0),
                percentile(v, 99.0),
                v.last().copied().unwrap_or(f64::NAN),
                v.iter().filter(|&&x| x >= 1000.0).count() as f64,
            ];
            progress!(
                "latency {placement} rep {}/{} {name}: p50 {:.1} µs, p99 {:.1} µs",
                rep + 1,
                o.reps,
                ps[0],
                ps[2]
            );
            for (k, p) in ps.into_iter().enumerate() {
                res[pi][k].push(p);
            }
        }
    }
    Ok(res)
}

fn latency_report(
    o: &Opts,
    r: &mut Report,
    names: &[&str],
    placements: &[Placement],
    all: &[Vec<Vec<Vec<f64>>>],
) {
    let m = &mut r.md;
    let _ = writeln!(
        m,
        "\n## 2. Follow latency\n\nOne thread writes a {LINE_LEN}-byte line carrying a counter to a socketpair passed to memlogd, then blocks until its follower (a mode-1 query connection) has received that line; {} samples per repetition after {} warm-up rounds. Baseline: the same two hops without memlogd (socketpair, a relay thread that `read`s and `write`s, a stream to the follower). Each follower kind has its own memlogd, and the three paths take turns, {LAT_CHUNK} round trips at a time, so that load on the machine falls on all of them alike. Placement: the writer/follower thread and the far side (memlogd, or the relay thread) are pinned to one CPU, then to two different CPUs; a wakeup on another CPU costs much more (tens of µs on some VMs), and unpinned the scheduler switches between the two at will, which makes unpinned results bimodal. Microseconds; the percentiles are per repetition, then median (min–max) over repetitions. On a loaded machine the max and the count of samples of 1 ms or more measure scheduling more than memlogd.\n",
        o.samples, o.warmup
    );
    let _ = writeln!(
        m,
        "| placement | path | p50 | p90 | p99 | max | samples ≥ 1 ms |"
    );
    let _ = writeln!(m, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    let mut rows = Vec::new();
    for (pl, res) in placements.iter().zip(all) {
        for (pi, name) in names.iter().enumerate() {
            let c: Vec<String> = res[pi]
                .iter()
                .enumerate()
                .map(|(k, v)| cell(summary(v), if k == 4 { 0 } else { 1 }))
                .collect();
            let _ = writeln!(
                m,
                "| {} | {name} | {} | {} | {} | {} | {} |",
                pl.name, c[0], c[1], c[2], c[3], c[4]
            );
            let j = |k: usize| jsum(summary(&res[pi][k]), &res[pi][k]);
            rows.push(J::O(vec![
                ("placement", J::S(pl.name.clone())),
                ("path", J::S(name.to_string())),
                ("p50_us", j(0)),
                ("p90_us", j(1)),
                ("p99_us", j(2)),
                ("max_us", j(3)),
                ("samples_over_1ms", j(4)),
            ]));
        }
    }
    r.json.push((
        "latency",
        J::O(vec![
            ("samples", n(o.samples as u64)),
            ("warmup", n(o.warmup as u64)),
            ("rows", J::A(rows)),
        ]),
    ));
}

fn dump(o: &Opts, r: &mut Report) -> Res<()> {
    // Room for every line: each takes record_size(2, 99) bytes in the ring.
    let need = o.dump_lines * ring::record_size(2, LINE_LEN - 1) as u64;
    let buffer = (need + need / 4).next_power_of_two().max(256 << 20);
    let args: Vec<String> = vec![
        "-max-lines".into(),
        o.dump_lines.to_string(),
        "-buffer-size".into(),
        size_arg(buffer),
    ];
    let mut d = Daemon::start(o, &args)?;
    let fill = ingest_memlogd(&mut d, 2, o.dump_lines, "d")?;
    progress!(
        "dump: filled memlogd with {} lines at {:.3} M lines/s",
        o.dump_lines,
        o.dump_lines as f64 / fill / 1e6
    );
    let names = [
        "memlogd, raw read (extended request)",
        "memlogd, raw read (LinuxKit mode byte 0)",
        "memlogd, decoded by memlog::client::Client",
        "baseline: bare sender, raw read",
        "baseline: bare sender, decoded by Client",
    ];
    let mut runs: Vec<Vec<DumpRun>> = vec![Vec::new(); names.len()];
    let mut block = None;
    for rep in 0..o.reps {
        let mut head = Vec::new();
        let ext = dump_raw(&d, true, &mut head).map_err(|e| d.why(e))?;
        let (block, block_lines) = block.get_or_insert_with(|| record_block(&head));
        let records = ext.records;
        if records < o.dump_lines * 9 / 10 {
            return Err(d.why(format!(
                "dump returned {records} records, expected about {}",
                o.dump_lines
            )));
        }
        let legacy = dump_raw(&d, false, &mut Vec::new()).map_err(|e| d.why(e))?;
        let dec = dump_decoded(&d, ext.bytes).map_err(|e| d.why(e))?;
        let b_raw = dump_baseline(block, *block_lines, records, false, o.timeout)?;
        let mut b_dec = dump_baseline(block, *block_lines, records, true, o.timeout)?;
        b_dec.bytes = b_raw.bytes;
        for (k, x) in [ext, legacy, dec, b_raw, b_dec].into_iter().enumerate() {
            runs[k].push(x);
        }
        progress!(
            "dump rep {}/{}: raw {:.3} M records/s, decoded {:.3} M/s, baseline raw {:.3} M/s, baseline decoded {:.3} M/s",
            rep + 1,
            o.reps,
            ext.records as f64 / ext.secs / 1e6,
            dec.records as f64 / dec.secs / 1e6,
            b_raw.records as f64 / b_raw.secs / 1e6,
            b_dec.records as f64 / b_dec.secs / 1e6
        );
    }
    check_clean(&d.stats()?)?;
    drop(d);
    let held = runs[0].first().map_or(0, |x| x.records);
    let avg_len = runs[0]
        .first()
        .map_or(0.0, |x| x.bytes as f64 / (x.records + 1) as f64);
    let m = &mut r.md;
    let _ = writeln!(
        m,
        "\n## 3. Dump\n\nmemlogd `{}` filled with {} lines of {LINE_LEN} bytes from 2 writers, then a mode-0 dump of the {held} records held, read to EOF (about {avg_len:.0} bytes per JSON line with an extended request). Raw: `read` into 64 KiB and count `\\n`; decoded: `memlog::client::Client::next_line` on every line. Baseline: a bare thread writing the same number of record lines, copies of the ones memlogd sent (same bytes), over a socketpair to the same reader. Timed from `connect` to EOF.\n",
        args.join(" "),
        o.dump_lines
    );
    let _ = writeln!(m, "| reader | M records/s | MB/s | records |");
    let _ = writeln!(m, "| --- | ---: | ---: | ---: |");
    let mut rows = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let rate: Vec<f64> = runs[k].iter().map(|x| x.records as f64 / x.secs).collect();
        let mbs: Vec<f64> = runs[k]
            .iter()
            .map(|x| x.bytes as f64 / x.secs / 1e6)
            .collect();
        let recs = runs[k].first().map_or(0, |x| x.records);
        let _ = writeln!(
            m,
            "| {name} | {} | {} | {recs} |",
            cell(summary(&scaled(&rate, 1e-6)), 3),
            cell(summary(&mbs), 0)
        );
        rows.push(J::O(vec![
            ("reader", J::S(name.to_string())),
            ("records_per_s", jsum(summary(&rate), &rate)),
            ("mb_per_s", jsum(summary(&mbs), &mbs)),
            ("records", n(recs)),
        ]));
    }
    r.json.push((
        "dump",
        J::O(vec![
            ("memlogd_args", J::S(args.join(" "))),
            ("records", n(held)),
            ("rows", J::A(rows)),
        ]),
    ));
    Ok(())
}

/// A follower that reads and discards until `stop`.
fn reading_follower(mut s: UnixStream, stop: &AtomicBool) -> u64 {
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; READ_BUF];
    let mut got = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    got
}

struct MemRow {
    size: u64,
    lines: u64,
    idle_hwm: u64,
    hwm: u64,
    rss: u64,
    evicted: u64,
}

fn memory_one(o: &Opts, size: u64) -> Res<MemRow> {
    // Bytes are the bound: even records of nothing but a header fit max-lines.
    let max_lines = (size / ring::record_size(0, 0) as u64).max(1);
    let args: Vec<String> = vec![
        "-max-lines".into(),
        max_lines.to_string(),
        "-buffer-size".into(),
        size_arg(size),
    ];
    let mut d = Daemon::start(o, &args)?;
    let (idle_hwm, _) = d.memory()?;
    // Lines enough to fill the ring more than twice (a line takes more than
    // LINE_LEN bytes there).
    let lines = 2 * size / LINE_LEN as u64 + 1_000;
    let stop = AtomicBool::new(false);
    let (ext_f, legacy_f, idle) = (d.connect()?, d.connect()?, d.connect()?);
    (&ext_f)
        .write_all(&Request::new(Mode::Follow).encode())
        .io_ctx("follower: request")?;
    (&legacy_f)
        .write_all(&[Mode::Follow as u8])
        .io_ctx("follower: request")?;
    (&idle)
        .write_all(&Request::new(Mode::DumpFollow).encode())
        .io_ctx("idle reader: request")?;
    let res = thread::scope(|s| {
        let stop = &stop;
        let fs = [
            s.spawn(move || reading_follower(ext_f, stop)),
            s.spawn(move || reading_follower(legacy_f, stop)),
        ];
        // Until the ring has wrapped (a compressed ring holds several
        // times the lines), then once more.
        let mut r = ingest_memlogd(&mut d, 4, lines, "m");
        let mut written = lines;
        for _ in 0..64 {
            match d.stats().and_then(|s| stat(&s, "evicted")) {
                Ok(0) => r = r.and_then(|_| ingest_memlogd(&mut d, 4, lines, "m")),
                _ => break,
            }
            written += lines;
        }
        r = r.and_then(|_| ingest_memlogd(&mut d, 4, lines, "m"));
        written += lines;
        thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        for f in fs {
            let _ = f.join();
        }
        r.map(|_| written)
    });
    let lines = res?;
    let stats = d.stats()?;
    check_clean(&stats)?;
    let evicted = stat(&stats, "evicted")?;
    let (hwm, rss) = d.memory()?;
    drop(idle);
    Ok(MemRow {
        size,
        lines,
        idle_hwm,
        hwm,
        rss,
        evicted,
    })
}

fn memory(o: &Opts, r: &mut Report) -> Res<()> {
    let mut rows = Vec::new();
    for &size in &o.mem_sizes {
        let row = memory_one(o, size)?;
        progress!(
            "memory {}: VmHWM {}, VmRSS {}",
            size_arg(size),
            mib(row.hwm),
            mib(row.rss)
        );
        rows.push(row);
    }
    let m = &mut r.md;
    let _ = writeln!(
        m,
        "\n## 4. Memory\n\nmemlogd with `-buffer-size SIZE` and `-max-lines SIZE/{}` (bytes are the bound), three readers connected (an extended follower and a LinuxKit follower that read everything, and an extended dump+follow reader that never reads), then 4 writers write 2×SIZE/{LINE_LEN} lines, and as many again until the ring has evicted records (a compressed ring holds several times as many), then once more. VmHWM and VmRSS from `/proc/PID/status` afterwards; idle is VmHWM right after start. Overhead = VmHWM − buffer size.\n",
        ring::record_size(0, 0)
    );
    let _ = writeln!(
        m,
        "| buffer | lines written | records evicted | idle VmHWM | VmHWM | VmRSS | overhead |"
    );
    let _ = writeln!(m, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut js = Vec::new();
    for x in &rows {
        let over = x.hwm as i64 - x.size as i64;
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {}{} |",
            size_arg(x.size),
            x.lines,
            x.evicted,
            mib(x.idle_hwm),
            mib(x.hwm),
            mib(x.rss),
            if over < 0 { "−" } else { "" },
            mib(over.unsigned_abs())
        );
        js.push(J::O(vec![
            ("buffer_bytes", n(x.size)),
            ("lines", n(x.lines)),
            ("evicted", n(x.evicted)),
            ("idle_vm_hwm", n(x.idle_hwm)),
            ("vm_hwm", n(x.hwm)),
            ("vm_rss", n(x.rss)),
            ("overhead", J::N(over as f64)),
        ]));
    }
    r.json.push(("memory", J::A(js)));
    Ok(())
}

// ---------------------------------------------------------------------------
// 5. The compressed ring, on real log text

/// Lines per second at which the rings are filled for the records-held
/// figures: far more than any real logging (memlogd's /dev/log path takes
/// some 200,000 a second), and less than the compressed ring compresses
/// within its share of time, so that the figures say what the ring holds
/// of real logging. What a flood leaves is reported apart.
const HELD_PACE: f64 = 1_000_000.0;
/// Longest line replayed: memlogd's default `-max-line-len` is 1024, and a
/// cut line would be counted (`lines_truncated`).
const TEXT_MAX_LINE: usize = 1023;
/// Most bytes per `write` of a replaying writer (whole lines).
const TEXT_BATCH: usize = 64 * 1024;

/// Lines of one real log, replayed as records.
struct Text {
    /// What it is and where it came from.
    name: String,
    /// The source name its records get.
    source: &'static str,
    /// Every line with its `\n`, back to back.
    tape: Vec<u8>,
    /// `ends[i]`: offset after line `i`'s `\n`.
    ends: Vec<usize>,
}

impl Text {
    fn new(name: String, source: &'static str, text: &[u8]) -> Option<Text> {
        let mut tape = Vec::with_capacity(text.len());
        let mut ends = Vec::new();
        for l in text.split(|&b| b == b'\n') {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            if l.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            tape.extend_from_slice(&l[..l.len().min(TEXT_MAX_LINE)]);
            tape.push(b'\n');
            ends.push(tape.len());
        }
        (!ends.is_empty()).then_some(Text {
            name,
            source,
            tape,
            ends,
        })
    }

    fn lines(&self) -> usize {
        self.ends.len()
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1]
        }
    }

    /// Mean line length without `\n`.
    fn mean_len(&self) -> f64 {
        self.tape.len() as f64 / self.lines() as f64 - 1.0
    }
}

/// The kernel log's messages: a capture of the boot test's guest if one is
/// named by `MEMLOG_BENCH_KMSG`, else this machine's `/dev/kmsg` (read
/// without blocking to its end), else `dmesg`.
fn kernel_text() -> Option<Text> {
    if let Ok(p) = std::env::var("MEMLOG_BENCH_KMSG") {
        if let Ok(b) = fs::read(&p) {
            return Text::new(format!("kernel log, {p}"), "kmsg", &b);
        }
    }
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(mut f) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
    {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                // PRI,SEQ,TIME,FLAGS;MESSAGE\n then continuation lines.
                Ok(n) => {
                    let rec = &buf[..n];
                    let Some(semi) = rec.iter().position(|&b| b == b';') else {
                        continue;
                    };
                    let msg = &rec[semi + 1..];
                    let end = msg.iter().position(|&b| b == b'\n').unwrap_or(msg.len());
                    out.extend_from_slice(&msg[..end]);
                    out.push(b'\n');
                }
                // EPIPE: records overwritten while reading; go on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if let Some(t) = Text::new("kernel log, /dev/kmsg of this machine".into(), "kmsg", &out) {
            return Some(t);
        }
    }
    let out = Command::new("dmesg").stderr(Stdio::null()).output().ok()?;
    let text: Vec<u8> = out
        .stdout
        .split(|&b| b == b'\n')
        .flat_map(|l| {
            // "[    0.000000] message"
            let m = match l.iter().position(|&b| b == b']') {
                Some(i) if l.starts_with(b"[") => {
                    l[i + 1..].strip_prefix(b" ").unwrap_or(&l[i + 1..])
                }
                _ => l,
            };
            m.iter().copied().chain([b'\n'])
        })
        .collect();
    Text::new("kernel log, `dmesg` of this machine".into(), "kmsg", &text)
}

/// Every real text there is, and notes on what is missing.
fn real_texts() -> (Vec<Text>, Vec<String>) {
    let mut texts = Vec::new();
    let mut missing = Vec::new();
    match kernel_text() {
        Some(t) => texts.push(t),
        None => missing.push("the kernel log (no /dev/kmsg, no dmesg)".to_string()),
    }
    for (p, source) in [
        ("/var/log/dpkg.log", "dpkg"),
        ("/var/log/apt/term.log", "apt-term"),
    ] {
        match fs::read(p)
            .ok()
            .and_then(|b| Text::new(p.to_string(), source, &b))
        {
            Some(t) => texts.push(t),
            None => missing.push(p.to_string()),
        }
    }
    (texts, missing)
}

/// A writer replaying `text` from line `at`: `n` lines in batches of whole
/// lines of at most [`TEXT_BATCH`] bytes, looping over the text.
fn replay(
    mut w: UnixStream,
    text: &Text,
    mut at: usize,
    mut n: u64,
    pace: Option<f64>,
    start: &Barrier,
) -> Res<UnixStream> {
    start.wait();
    let t0 = Instant::now();
    let mut sent = 0u64;
    at %= text.lines();
    while n > 0 {
        if let Some(rate) = pace {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                thread::sleep(wait);
            }
        }
        let from = text.start(at);
        let mut j = at + 1;
        while j < text.lines() && ((j - at) as u64) < n && text.ends[j] - from <= TEXT_BATCH {
            j += 1;
        }
        w.write_all(&text.tape[from..text.ends[j - 1]])
            .io_ctx("replaying writer: write")?;
        n -= (j - at) as u64;
        sent += (j - at) as u64;
        at = j % text.lines();
    }
    Ok(w)
}

/// Replays: writer `i` writes `per_writer` lines of `texts[i % len]` (from
/// a line of its own); seconds until memlogd stored them all.
fn ingest_texts(
    d: &mut Daemon,
    texts: &[&Text],
    writers: usize,
    per_writer: u64,
    round: u64,
    pace: Option<f64>,
) -> Res<f64> {
    let (ws, rs) = pairs(writers, d.timeout)?;
    let before = d.next_seq()?;
    for (i, r) in rs.iter().enumerate() {
        d.pass(texts[i % texts.len()].source, r.as_fd())?;
    }
    drop(rs);
    let base = d.settle(before)?;
    let start = Barrier::new(writers + 1);
    let lines = per_writer * writers as u64;
    let (secs, socks) = thread::scope(|s| {
        let hs: Vec<_> = ws
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                let (t, start) = (texts[i % texts.len()], &start);
                // Writers of the same text start at different lines, and
                // each round goes on where the last one stopped.
                let at = (i / texts.len()) * 7919 + (round * per_writer) as usize;
                let pace = pace.map(|p| p / writers as f64);
                s.spawn(move || replay(w, t, at, per_writer, pace, start))
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let done = d.wait_stored(base, lines, t0);
        if done.is_err() {
            d.kill();
        }
        let (socks, err) = join_writers(hs);
        let t = done?;
        match err {
            Some(e) => Err(e),
            None => Ok(((t - t0).as_secs_f64(), socks)),
        }
    })?;
    drop(socks);
    Ok(secs)
}

/// `-ring-compress=BOOL` and a ring of `size` bytes bounded by bytes only.
fn ring_args(size: u64, compress: bool) -> Vec<String> {
    vec![
        "-buffer-size".into(),
        size_arg(size),
        "-max-lines".into(),
        "1000000000".into(),
        format!("-ring-compress={compress}"),
    ]
}

/// What a full ring holds.
#[derive(Clone, Copy)]
struct Held {
    records: u64,
    raw_bytes: u64,
    stored_bytes: u64,
    hwm: u64,
}

/// Replays `texts` (one writer each) into a fresh ring of `size` bytes
/// until it has evicted records, then as much again: what it holds then.
fn held(o: &Opts, texts: &[&Text], size: u64, compress: bool) -> Res<Held> {
    let mut d = Daemon::start(o, &ring_args(size, compress))?;
    let mean = texts.iter().map(|t| t.mean_len()).sum::<f64>() / texts.len() as f64;
    // A raw-ring's worth of lines per round, over the writers.
    let per = (size as f64 / (mean + 40.0) / texts.len() as f64) as u64 + 1;
    let mut round = 0;
    let mut full = None;
    while round < 200 {
        ingest_texts(&mut d, texts, texts.len(), per, round, Some(HELD_PACE))?;
        round += 1;
        let st = d.stats()?;
        if stat(&st, "evicted")? > 0 {
            match full {
                None => full = Some(round),
                // As many rounds again as it took to fill it.
                Some(f) if round >= 2 * f => break,
                Some(_) => {}
            }
        }
    }
    let st = d.stats()?;
    check_clean(&st)?;
    let (hwm, _) = d.memory()?;
    Ok(Held {
        records: stat(&st, "records")?,
        raw_bytes: stat(&st, "raw_bytes").unwrap_or(0),
        stored_bytes: stat(&st, "stored_bytes").unwrap_or(0),
        hwm,
    })
}

fn ring_section(o: &Opts, r: &mut Report) -> Res<()> {
    let m = &mut r.md;
    if !o.ring_flag {
        let _ = writeln!(
            m,
            "\n## 5. Compressed ring\n\nSkipped: this memlogd has no `-ring-compress` flag.\n"
        );
        return Ok(());
    }
    let (texts, missing) = real_texts();
    if texts.is_empty() {
        return Err(format!(
            "ring: no real log text on this machine (looked for {})",
            missing.join(", ")
        ));
    }
    let all: Vec<&Text> = texts.iter().collect();
    // 1. Records held in 2 MiB, each text alone and all together.
    let mut sets: Vec<(String, Vec<&Text>)> = texts
        .iter()
        .map(|t| (t.source.to_string(), vec![t]))
        .collect();
    if texts.len() > 1 {
        sets.push(("all, interleaved".into(), all.clone()));
    }
    let size = 2u64 << 20;
    let mut held_rows = Vec::new();
    for (name, set) in &sets {
        let raw = held(o, set, size, false)?;
        let comp = held(o, set, size, true)?;
        progress!(
            "ring: {name}: 2M holds {} records raw, {} compressed ({:.2}x)",
            raw.records,
            comp.records,
            comp.records as f64 / raw.records as f64
        );
        held_rows.push((name.clone(), raw, comp));
    }
    // 2. Records held by buffer size (the chart), all texts together.
    let mut by_size = Vec::new();
    for &sz in &o.ring_sizes {
        let raw = held(o, &all, sz, false)?;
        let comp = held(o, &all, sz, true)?;
        progress!(
            "ring: {} holds {} records raw, {} compressed",
            size_arg(sz),
            raw.records,
            comp.records
        );
        by_size.push((sz, raw, comp));
    }
    // 3. Ingest, 4 writers, raw and compressed rings of 2 MiB, full and
    // taking turns.
    let mut dr = Daemon::start(o, &ring_args(size, false))?;
    let mut dc = Daemon::start(o, &ring_args(size, true))?;
    let per = (o.lines / 4).max(1000);
    for (d, what) in [(&mut dr, "raw"), (&mut dc, "compressed")] {
        // Full first: a compressed ring holds several times as much.
        for round in 0..16 {
            ingest_texts(d, &all, 4, per / 4 + 1, 1000 + round, Some(HELD_PACE))?;
            if stat(&d.stats()?, "evicted")? > 0 {
                break;
            }
        }
        progress!("ring: {what} ring of 2M full");
    }
    let (mut ing_raw, mut ing_comp, mut ing_ratio) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..o.reps {
        let a = 4.0 * per as f64 / ingest_texts(&mut dr, &all, 4, per, 2 * rep as u64, None)?;
        let b = 4.0 * per as f64 / ingest_texts(&mut dc, &all, 4, per, 2 * rep as u64, None)?;
        progress!(
            "ring ingest rep {}/{}: raw {:.3} M lines/s, compressed {:.3} M lines/s",
            rep + 1,
            o.reps,
            a / 1e6,
            b / 1e6
        );
        ing_raw.push(a);
        ing_comp.push(b);
        ing_ratio.push(b / a);
    }
    // What the floods left in the rings.
    let flood = (dr.stats()?, dc.stats()?);
    let bytes = |st: &[(String, u64)]| -> Res<(u64, u64)> {
        Ok((
            stat(st, "stored_bytes").unwrap_or(0),
            stat(st, "raw_bytes").unwrap_or(0),
        ))
    };
    let mut flood = Flood {
        raw: stat(&flood.0, "records")?,
        comp: stat(&flood.1, "records")?,
        uncompressed: stat(&flood.1, "ring_chunks_uncompressed").unwrap_or(0),
        bytes: bytes(&flood.1)?,
        ..Flood::default()
    };
    // A quiet second (memlogd compresses what the flood left raw when it
    // has nothing else to do), then paced writing in batches of 2,000 lines
    // until each ring evicts again: what it holds once full again.
    thread::sleep(Duration::from_secs(1));
    flood.idle_bytes = bytes(&dc.stats()?)?;
    for (k, d) in [&mut dr, &mut dc].into_iter().enumerate() {
        let ev = stat(&d.stats()?, "evicted")?;
        for round in 0..1000 {
            ingest_texts(d, &all, 4, 500, 7000 + round, Some(HELD_PACE))?;
            if stat(&d.stats()?, "evicted")? > ev {
                break;
            }
        }
        let held = stat(&d.stats()?, "records")?;
        if k == 0 {
            flood.idle_raw = held;
        } else {
            flood.idle_comp = held;
        }
    }
    progress!(
        "ring: after the floods {} records raw, {} compressed; after a quiet second and refilling, {} raw, {} compressed",
        flood.raw,
        flood.comp,
        flood.idle_raw,
        flood.idle_comp
    );
    // 4. Dump of the full rings, filled again at HELD_PACE (all chunks
    // compressed), taking turns.
    let again = held_rows.last().map_or(1 << 20, |h| 2 * h.2.records) / 4 + 1;
    for (d, round) in [(&mut dr, 5000), (&mut dc, 5000)] {
        ingest_texts(d, &all, 4, again, round, Some(HELD_PACE))?;
    }
    let (mut dump_raw_r, mut dump_comp_r, mut dump_ratio) = (Vec::new(), Vec::new(), Vec::new());
    let mut dump_recs = (0, 0);
    for rep in 0..o.reps {
        let a = dump_raw(&dr, true, &mut Vec::new()).map_err(|e| dr.why(e))?;
        let b = dump_raw(&dc, true, &mut Vec::new()).map_err(|e| dc.why(e))?;
        let (ra, rb) = (a.records as f64 / a.secs, b.records as f64 / b.secs);
        progress!(
            "ring dump rep {}/{}: raw {} records at {:.3} M/s, compressed {} at {:.3} M/s",
            rep + 1,
            o.reps,
            a.records,
            ra / 1e6,
            b.records,
            rb / 1e6
        );
        dump_recs = (a.records, b.records);
        dump_raw_r.push(ra);
        dump_comp_r.push(rb);
        dump_ratio.push(rb / ra);
    }
    let mem = (dr.memory()?, dc.memory()?);
    let split = (dr.rss_split()?, dc.rss_split()?);
    let scr = (dr.stats()?, dc.stats()?);
    check_clean(&scr.0)?;
    check_clean(&scr.1)?;
    drop((dr, dc));
    // 5. Follow latency through full rings of 2 MiB, one CPU.
    let mut dr = Daemon::start(o, &ring_args(size, false))?;
    let mut dc = Daemon::start(o, &ring_args(size, true))?;
    for d in [&mut dr, &mut dc] {
        for round in 0..16 {
            ingest_texts(d, &all, 4, per / 4 + 1, 3000 + round, Some(HELD_PACE))?;
            if stat(&d.stats()?, "evicted")? > 0 {
                break;
            }
        }
    }
    let names = ["memlogd, raw ring", "memlogd, compressed ring"];
    let why = |pi: usize, e: String| if pi == 0 { dr.why(e) } else { dc.why(e) };
    let mut paths = [
        memlogd_path(&dr, false).map_err(|e| why(0, e))?,
        memlogd_path(&dc, false).map_err(|e| why(1, e))?,
    ];
    let cpu = *allowed_cpus()
        .first()
        .ok_or("cannot read this process's CPU affinity")?;
    let restore = AffinityGuard(sched_getaffinity(Pid::from_raw(0)).ok());
    pin(Pid::from_raw(0), cpu)?;
    for p in &paths {
        pin(p.far, cpu)?;
    }
    for (pi, p) in paths.iter_mut().enumerate() {
        p.rounds(o.warmup, &mut Vec::new())
            .map_err(|e| why(pi, e))?;
    }
    let lat = latency_reps(
        o,
        &names,
        &mut paths,
        &why,
        &format!("ring, one CPU ({cpu})"),
    )?;
    drop(restore);
    drop(paths);
    drop((dr, dc));
    ring_report(
        o,
        r,
        &RingResults {
            texts: &texts,
            missing: &missing,
            held: &held_rows,
            by_size: &by_size,
            ingest: [&ing_raw, &ing_comp, &ing_ratio],
            per_rep: 4 * per,
            dump: [&dump_raw_r, &dump_comp_r, &dump_ratio],
            dump_recs,
            flood,
            mem,
            split,
            lat: &lat,
            cpu,
        },
    );
    Ok(())
}

/// What the ingest floods left in the rings of 2 MiB, and what they held
/// after a quiet second and paced writing until they evicted again.
#[derive(Default)]
struct Flood {
    raw: u64,
    comp: u64,
    /// The compressed ring's chunks kept uncompressed.
    uncompressed: u64,
    /// The compressed ring's (stored, raw) bytes after the floods.
    bytes: (u64, u64),
    /// The same after the quiet second.
    idle_bytes: (u64, u64),
    idle_raw: u64,
    idle_comp: u64,
}

struct RingResults<'a> {
    texts: &'a [Text],
    missing: &'a [String],
    held: &'a [(String, Held, Held)],
    by_size: &'a [(u64, Held, Held)],
    ingest: [&'a [f64]; 3],
    per_rep: u64,
    dump: [&'a [f64]; 3],
    dump_recs: (u64, u64),
    flood: Flood,
    /// (VmHWM, VmRSS) of the raw and the compressed memlogd.
    mem: ((u64, u64), (u64, u64)),
    /// (RssAnon, RssFile) of the raw and the compressed memlogd.
    split: ((u64, u64), (u64, u64)),
    /// [path][statistic] -> per-rep values.
    lat: &'a [Vec<Vec<f64>>],
    cpu: usize,
}

fn ring_report(o: &Opts, r: &mut Report, x: &RingResults<'_>) {
    let m = &mut r.md;
    let _ = writeln!(
        m,
        "\n## 5. Compressed ring (`-ring-compress`) on real log text\n\nReal text, replayed line by line as records (lines cut at {TEXT_MAX_LINE} bytes, blank lines left out): {}.{} Each memlogd runs with `-buffer-size SIZE -max-lines 1000000000` (bytes are the bound) and `-ring-compress=false` (raw) or `=true` (compressed), fed by one writer per text (a socketpair each, batches of whole lines up to 64 KiB, the text looped, {:.0} lines per second in all) until it evicts records, then as much again; `records` is what its `stats` says it then holds.\n",
        x.texts
            .iter()
            .map(|t| format!(
                "{} ({} lines, {} bytes, mean line {:.0} bytes; source `{}`)",
                t.name,
                t.lines(),
                t.tape.len(),
                t.mean_len(),
                t.source
            ))
            .collect::<Vec<_>>()
            .join("; "),
        if x.missing.is_empty() {
            String::new()
        } else {
            format!(" Not found here: {}.", x.missing.join(", "))
        },
        HELD_PACE
    );
    let _ = writeln!(
        m,
        "| text | raw ring, records | compressed, records | held ratio | raw bytes / stored bytes | compressed ring VmHWM |"
    );
    let _ = writeln!(m, "| --- | ---: | ---: | ---: | ---: | ---: |");
    let mut js_held = Vec::new();
    for (name, raw, comp) in x.held {
        let ratio = comp.records as f64 / raw.records as f64;
        let _ = writeln!(
            m,
            "| {name} | {} | {} | {ratio:.2}× | {:.2} | {} |",
            raw.records,
            comp.records,
            comp.raw_bytes as f64 / comp.stored_bytes.max(1) as f64,
            mib(comp.hwm)
        );
        js_held.push(J::O(vec![
            ("text", J::S(name.clone())),
            ("buffer_bytes", n(2 << 20)),
            ("raw_records", n(raw.records)),
            ("compressed_records", n(comp.records)),
            ("ratio", J::N(ratio)),
            ("raw_bytes", n(comp.raw_bytes)),
            ("stored_bytes", n(comp.stored_bytes)),
            ("raw_vm_hwm", n(raw.hwm)),
            ("compressed_vm_hwm", n(comp.hwm)),
        ]));
    }
    let _ = writeln!(
        m,
        "\nRecords held by buffer size, all texts interleaved (the chart in the report):\n\n| buffer | raw ring, records | compressed, records | ratio | raw VmHWM | compressed VmHWM |\n| ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut js_size = Vec::new();
    for (sz, raw, comp) in x.by_size {
        let ratio = comp.records as f64 / raw.records as f64;
        let _ = writeln!(
            m,
            "| {} | {} | {} | {ratio:.2}× | {} | {} |",
            size_arg(*sz),
            raw.records,
            comp.records,
            mib(raw.hwm),
            mib(comp.hwm)
        );
        js_size.push(J::O(vec![
            ("buffer_bytes", n(*sz)),
            ("raw_records", n(raw.records)),
            ("compressed_records", n(comp.records)),
            ("ratio", J::N(ratio)),
            ("raw_vm_hwm", n(raw.hwm)),
            ("compressed_vm_hwm", n(comp.hwm)),
        ]));
    }
    let [ir, ic, iq] = x.ingest;
    let [dr, dc, dq] = x.dump;
    let ((hr, _), (hc, _)) = x.mem;
    let _ = writeln!(
        m,
        "\nSpeed, 2 MiB rings of every text interleaved, each full before it is timed; the raw and the compressed memlogd take turns, {} repetitions. Ingest: 4 writers (one per text, the fourth on the first text again), {} lines per repetition. Dump: a mode-0 extended dump of the whole ring read raw to EOF ({} records raw, {} compressed), records per second. Follow latency: one extended follower per memlogd, writer and memlogd pinned to CPU {}, as in section 2, {} samples per repetition.\n",
        o.reps, x.per_rep, x.dump_recs.0, x.dump_recs.1, x.cpu, o.samples
    );
    let _ = writeln!(
        m,
        "| measure | raw ring | compressed ring | compressed / raw |"
    );
    let _ = writeln!(m, "| --- | ---: | ---: | ---: |");
    let _ = writeln!(
        m,
        "| ingest, 4 writers, M lines/s | {} | {} | {} |",
        cell(summary(&scaled(ir, 1e-6)), 3),
        cell(summary(&scaled(ic, 1e-6)), 3),
        cell(summary(iq), 2)
    );
    let _ = writeln!(
        m,
        "| dump, M records/s | {} | {} | {} |",
        cell(summary(&scaled(dr, 1e-6)), 3),
        cell(summary(&scaled(dc, 1e-6)), 3),
        cell(summary(dq), 2)
    );
    let lat_ratio = |k: usize| -> Vec<f64> {
        x.lat[1][k]
            .iter()
            .zip(&x.lat[0][k])
            .map(|(c, r)| c / r)
            .collect()
    };
    for (k, what) in [(0, "p50"), (2, "p99")] {
        let _ = writeln!(
            m,
            "| follow latency {what}, µs | {} | {} | {} |",
            cell(summary(&x.lat[0][k]), 1),
            cell(summary(&x.lat[1][k]), 1),
            cell(summary(&lat_ratio(k)), 2)
        );
    }
    let _ = writeln!(
        m,
        "| VmHWM after the dumps | {} | {} | {:.3} |",
        mib(hr),
        mib(hc),
        hc as f64 / hr as f64
    );
    let f = &x.flood;
    let ((ar, fir), (ac, fic)) = x.split;
    for (what, a, b) in [
        ("private (RssAnon) then", ar, ac),
        ("file-backed (RssFile: code) then", fir, fic),
    ] {
        let _ = writeln!(
            m,
            "| {what} | {} | {} | {:.3} |",
            mib(a),
            mib(b),
            b as f64 / a.max(1) as f64
        );
    }
    let (fr, fc, fu) = (f.raw, f.comp, f.uncompressed);
    let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    let _ = writeln!(
        m,
        "\nAfter the unpaced ingest runs (a flood: compression may take {:.0}% of memlogd's time, chunks sealed past that are kept uncompressed and compressed later, when memlogd is idle), the raw ring held {fr} records and the compressed one {fc} ({:.2}×; {fu} chunks kept uncompressed; stored {} of {} raw bytes). After a quiet second: stored {} of {} raw bytes; then written at {:.0} lines/s in batches of 2,000 until each ring evicted again, the raw ring held {} records and the compressed one {} ({:.2}×).",
        100.0 * memlog::ring::chunked::DAEMON_COMPRESS_SHARE,
        ratio(fc, fr),
        f.bytes.0,
        f.bytes.1,
        f.idle_bytes.0,
        f.idle_bytes.1,
        HELD_PACE,
        f.idle_raw,
        f.idle_comp,
        ratio(f.idle_comp, f.idle_raw)
    );
    let lj = |p: usize, k: usize| jsum(summary(&x.lat[p][k]), &x.lat[p][k]);
    let texts: Vec<J> = x
        .texts
        .iter()
        .map(|t| {
            J::O(vec![
                ("name", J::S(t.name.clone())),
                ("source", J::S(t.source.to_string())),
                ("lines", n(t.lines() as u64)),
                ("bytes", n(t.tape.len() as u64)),
            ])
        })
        .collect();
    r.json.push((
        "ring",
        J::O(vec![
            ("texts", J::A(texts)),
            (
                "missing",
                J::A(x.missing.iter().map(|s| J::S(s.clone())).collect()),
            ),
            ("held", J::A(js_held)),
            ("by_size", J::A(js_size)),
            ("ingest_lines_per_rep", n(x.per_rep)),
            ("ingest_raw", jsum(summary(ir), ir)),
            ("ingest_compressed", jsum(summary(ic), ic)),
            ("ingest_ratio", jsum(summary(iq), iq)),
            ("dump_raw_records", n(x.dump_recs.0)),
            ("dump_compressed_records", n(x.dump_recs.1)),
            ("dump_raw", jsum(summary(dr), dr)),
            ("dump_compressed", jsum(summary(dc), dc)),
            ("dump_ratio", jsum(summary(dq), dq)),
            ("latency_p50_raw", lj(0, 0)),
            ("latency_p50_compressed", lj(1, 0)),
            ("latency_p99_raw", lj(0, 2)),
            ("latency_p99_compressed", lj(1, 2)),
            (
                "latency_p99_ratio",
                jsum(summary(&lat_ratio(2)), &lat_ratio(2)),
            ),
            ("flood_raw_records", n(fr)),
            ("flood_compressed_records", n(fc)),
            ("flood_chunks_uncompressed", n(fu)),
            ("flood_stored_bytes", n(f.bytes.0)),
            ("flood_raw_bytes", n(f.bytes.1)),
            ("idle_stored_bytes", n(f.idle_bytes.0)),
            ("idle_raw_bytes", n(f.idle_bytes.1)),
            ("refilled_raw_records", n(f.idle_raw)),
            ("refilled_compressed_records", n(f.idle_comp)),
            ("held_pace_lines_per_s", J::N(HELD_PACE)),
            ("vm_hwm_raw", n(hr)),
            ("vm_hwm_compressed", n(hc)),
            ("rss_anon_raw", n(ar)),
            ("rss_anon_compressed", n(ac)),
            ("rss_file_raw", n(fir)),
            ("rss_file_compressed", n(fic)),
            ("buffer_bytes", n(2 << 20)),
        ]),
    ));
}

fn sizes(o: &Opts, r: &mut Report) -> Res<()> {
    let dir = o.memlogd.parent().unwrap_or(Path::new("."));
    let m = &mut r.md;
    let _ = writeln!(m, "\n## 6. Binary sizes\n");
    let _ = writeln!(m, "| binary | bytes | KiB |");
    let _ = writeln!(m, "| --- | ---: | ---: |");
    let mut js = Vec::new();
    for (name, p) in [
        ("memlogd", o.memlogd.clone()),
        ("logread", dir.join("logread")),
    ] {
        match fs::metadata(&p) {
            Ok(md) => {
                let _ = writeln!(m, "| {} | {} | {} |", p.display(), md.len(), kib(md.len()));
                js.push((name, n(md.len())));
            }
            Err(e) => {
                let _ = writeln!(m, "| {} | missing ({e}) | |", p.display());
            }
        }
    }
    r.json.push(("binary_sizes", J::O(js)));
    Ok(())
}
