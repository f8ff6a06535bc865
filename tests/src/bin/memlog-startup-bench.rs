//! `memlog-startup-bench`: how long the release `memlogd` takes from exec
//! until both of its sockets answer, started directly, with `-daemonize`
//! (LinuxKit's way) and with `init-shim start`; beside the cost of starting
//! any process on this machine (exec of `true` until it exits) and, when it
//! is installed, rsyslogd until its socket takes datagrams.
//!
//! ```text
//! cargo build --release --workspace
//! cargo run --release -p memlog-tests --bin memlog-startup-bench [-- --quick | --help]
//! ```
//!
//! The Markdown report goes to stdout, progress to stderr; `--json FILE`
//! also writes every number as JSON. Every wait is bounded (`--timeout`);
//! every daemon is stopped after its run (a daemonized one is reparented to
//! this process, a child subreaper, and reaped), and the temporary
//! directory is removed.

use memlog::client::Client;
use memlog::proto::{Line, Mode, Request};
use memlog_tests::bench::{flag_value, median, min_max, split_flag};
use memlog_tests::{become_subreaper, pids_holding_socket, process_alive, reap, signal, TempDir};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

/// Pause between two readiness checks (and between two looks at whether a
/// command has exited): the resolution of every time measured here.
const POLL: Duration = Duration::from_micros(50);

const USAGE: &str = "\
memlog-startup-bench: time from exec until memlogd's sockets answer

usage: cargo run --release -p memlog-tests --bin memlog-startup-bench -- [OPTIONS]

  --bin-dir DIR    where memlogd and init-shim are (default: target/release)
  --runs N         timed starts of each kind (default 20)
  --timeout SECS   longest wait for any one start or stop (default 10)
  --json FILE      also write the results as JSON
  --quick          smoke run: 3 starts of each kind
  -h, --help       this text
";

struct Opts {
    bin_dir: PathBuf,
    runs: usize,
    timeout: Duration,
    json: Option<PathBuf>,
}

fn parse_opts() -> Res<Opts> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick" || a == "-quick");
    let mut o = Opts {
        bin_dir: memlog_tests::workspace_dir().join("target/release"),
        runs: if quick { 3 } else { 20 },
        timeout: Duration::from_secs(10),
        json: None,
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        let (flag, inline) = split_flag(a);
        match flag.trim_start_matches('-') {
            "quick" => continue,
            "h" | "help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            _ => {}
        }
        let val = flag_value(&args, &mut i, a, inline, USAGE)?;
        let num = |v: &str| -> Res<u64> {
            v.trim()
                .parse()
                .map_err(|_| format!("{a}: invalid number {v:?}"))
        };
        match flag.trim_start_matches('-') {
            "bin-dir" => o.bin_dir = PathBuf::from(val),
            "runs" => o.runs = num(&val)? as usize,
            "timeout" => o.timeout = Duration::from_secs(num(&val)?),
            "json" => o.json = Some(PathBuf::from(val)),
            _ => return Err(format!("unknown option {a}\n\n{USAGE}")),
        }
    }
    if o.runs == 0 || o.timeout.is_zero() {
        return Err("--runs and --timeout must be positive".into());
    }
    for b in ["memlogd", "init-shim"] {
        if !o.bin_dir.join(b).is_file() {
            return Err(format!(
                "{b} not found in {}: run `cargo build --release --workspace` first, or pass --bin-dir DIR",
                o.bin_dir.display()
            ));
        }
    }
    Ok(o)
}

/// `name` in `$PATH` or the sbin directories.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Asks the kernel to kill the child when this process dies.
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

/// True when memlogd answers a `stats` request on `query`.
fn answers_stats(query: &Path, timeout: Duration) -> bool {
    let Ok(s) = UnixStream::connect(query) else {
        return false;
    };
    if s.set_read_timeout(Some(timeout)).is_err() {
        return false;
    }
    let mut req = Request::new(Mode::Dump);
    req.stats = true;
    let Ok(mut c) = Client::start(s, &req) else {
        return false;
    };
    loop {
        match c.next_line() {
            Ok(Some(Line::Stats(_))) => return true,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return false,
        }
    }
}

/// True when a datagram socket can connect to `log`.
fn takes_datagrams(log: &Path) -> bool {
    UnixDatagram::unbound().is_ok_and(|d| d.connect(log).is_ok())
}

/// How one kind of start is done and when it counts as ready.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `memlogd -socket-log L -socket-query Q`: both answer.
    Memlogd,
    /// `memlogd -daemonize ...`: returns; then both answer.
    Daemonize,
    /// `init-shim start -memlogd BIN ...`: returns (it waits for a stats
    /// answer itself); then both answer.
    InitShim,
    /// `true`: exits. The floor: fork, exec, exit, wait.
    True,
    /// `rsyslogd -n -f CONF`: its socket takes datagrams.
    Rsyslog,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Memlogd => "memlogd",
            Kind::Daemonize => "memlogd_daemonize",
            Kind::InitShim => "init_shim_start",
            Kind::True => "true",
            Kind::Rsyslog => "rsyslogd",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Memlogd => "memlogd: exec until both sockets answer a stats request",
            Kind::Daemonize => "memlogd -daemonize: exec until both sockets answer a stats request",
            Kind::InitShim => "init-shim start: exec until both sockets answer a stats request",
            Kind::True => "baseline: exec of `true` until it has exited",
            Kind::Rsyslog => "peer: rsyslogd -n, exec until its socket takes datagrams",
        }
    }
}

/// One timed start.
#[derive(Clone, Copy, Default)]
struct Run {
    /// Until ready, seconds.
    ready: f64,
    /// Until the command returned (daemonize, init-shim start), seconds.
    returned: Option<f64>,
}

struct Bench {
    o: Opts,
    tmp: TempDir,
    seq: usize,
    true_bin: PathBuf,
    rsyslogd: Option<PathBuf>,
}

/// Waits until `ready()` or `deadline`, checking every [`POLL`]; fails
/// early if `child` has exited. Returns when it saw it ready.
fn poll_ready(
    what: &str,
    child: Option<&mut Child>,
    deadline: Instant,
    mut ready: impl FnMut() -> bool,
) -> Res<Instant> {
    let mut child = child;
    loop {
        if ready() {
            return Ok(Instant::now());
        }
        if let Some(c) = child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                return Err(format!("{what} exited before it was ready ({st})"));
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{what} was not ready in time"));
        }
        thread::sleep(POLL);
    }
}

/// Waits until `child` exits; returns when it saw that, and its status.
fn poll_exit(
    what: &str,
    child: &mut Child,
    deadline: Instant,
) -> Res<(Instant, std::process::ExitStatus)> {
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Ok((Instant::now(), st)),
            Ok(None) => {}
            Err(e) => return Err(format!("{what}: waitpid: {e}")),
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} did not exit in time (killed)"));
        }
        thread::sleep(POLL);
    }
}

/// Stops a daemon that is not our direct child (daemonized): SIGTERM, then
/// SIGKILL; it was reparented to us, so it is reaped here.
fn stop_pid(pid: u32, timeout: Duration) {
    let _ = signal(pid, libc::SIGTERM);
    let end = Instant::now() + timeout;
    while process_alive(pid) && Instant::now() < end {
        thread::sleep(Duration::from_millis(1));
    }
    if process_alive(pid) {
        let _ = signal(pid, libc::SIGKILL);
        let end = Instant::now() + timeout;
        while process_alive(pid) && Instant::now() < end {
            thread::sleep(Duration::from_millis(1));
        }
    }
    reap(pid);
}

/// Stops a direct child: SIGTERM, then SIGKILL.
fn stop_child(mut c: Child, timeout: Duration) {
    let _ = signal(c.id(), libc::SIGTERM);
    let end = Instant::now() + timeout;
    while matches!(c.try_wait(), Ok(None)) && Instant::now() < end {
        thread::sleep(Duration::from_millis(1));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// A direct child that is killed if anything goes wrong before it is stopped.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Bench {
    fn dir(&mut self) -> Res<PathBuf> {
        self.seq += 1;
        let d = self.tmp.join(format!("run{}", self.seq));
        fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        Ok(d)
    }

    fn memlogd(&self) -> PathBuf {
        self.o.bin_dir.join("memlogd")
    }

    /// The command line of a kind, with its sockets in `dir`.
    fn argv(&self, k: Kind, dir: &Path) -> Vec<String> {
        let d = |n: &str| dir.join(n).display().to_string();
        let socks = [
            "-socket-log".to_string(),
            d("log.sock"),
            "-socket-query".into(),
            d("query.sock"),
        ];
        let mut v = Vec::new();
        match k {
            Kind::Memlogd => {
                v.push(self.memlogd().display().to_string());
                v.extend(socks);
            }
            Kind::Daemonize => {
                v.push(self.memlogd().display().to_string());
                v.push("-daemonize".into());
                v.extend(socks);
            }
            Kind::InitShim => {
                v.push(self.o.bin_dir.join("init-shim").display().to_string());
                v.extend(["start".into(), "-memlogd".into()]);
                v.push(self.memlogd().display().to_string());
                v.extend(socks);
            }
            Kind::True => v.push(self.true_bin.display().to_string()),
            Kind::Rsyslog => {
                v.push(
                    self.rsyslogd
                        .as_ref()
                        .map_or("rsyslogd".into(), |p| p.display().to_string()),
                );
                v.extend([
                    "-n".into(),
                    "-f".into(),
                    d("rsyslog.conf"),
                    "-i".into(),
                    d("rsyslogd.pid"),
                ]);
            }
        }
        v
    }

    fn command(&self, argv: &[String], dir: &Path) -> Res<Command> {
        let out = |n: &str| fs::File::create(dir.join(n)).map_err(|e| format!("creating {n}: {e}"));
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(dir)
            .stdin(Stdio::null())
            // Files, never pipes: a daemonized memlogd keeps them open.
            .stdout(out("stdout.txt")?)
            .stderr(out("stderr.txt")?);
        Ok(cmd)
    }

    /// One timed start of `k`, and the stop after it (untimed).
    fn once(&mut self, k: Kind) -> Res<Run> {
        let dir = self.dir()?;
        let (log, query) = (dir.join("log.sock"), dir.join("query.sock"));
        if k == Kind::Rsyslog {
            let conf = format!(
                "# Written by memlog-startup-bench: one socket, no rate limit, nothing else.\n\
                 global(workDirectory=\"{d}\")\n\
                 module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
                 input(type=\"imuxsock\" Socket=\"{d}/log.sock\" RateLimit.Interval=\"0\")\n\
                 action(type=\"omfile\" file=\"{d}/out.log\")\n",
                d = dir.display()
            );
            fs::write(dir.join("rsyslog.conf"), conf).map_err(|e| format!("rsyslog.conf: {e}"))?;
        }
        let argv = self.argv(k, &dir);
        let mut cmd = self.command(&argv, &dir)?;
        if matches!(k, Kind::Memlogd | Kind::Rsyslog) {
            // SAFETY: the hook runs in the child between fork and exec; it
            // only makes one async-signal-safe system call and allocates nothing.
            unsafe {
                cmd.pre_exec(die_with_parent);
            }
        }
        let timeout = self.o.timeout;
        let stderr = || {
            let s = fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
            format!("; its stderr: {}", s.trim())
        };
        let t0 = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", argv[0]))?;
        let deadline = t0 + timeout;
        let mut g = Guard(Some(child));
        let c = g.0.as_mut().expect("just set");
        let both = || takes_datagrams(&log) && answers_stats(&query, timeout);
        let run = match k {
            Kind::Memlogd => {
                let t =
                    poll_ready("memlogd", Some(c), deadline, both).map_err(|e| e + &stderr())?;
                Run {
                    ready: (t - t0).as_secs_f64(),
                    returned: None,
                }
            }
            Kind::Rsyslog => {
                let t = poll_ready("rsyslogd", Some(c), deadline, || takes_datagrams(&log))
                    .map_err(|e| e + &stderr())?;
                Run {
                    ready: (t - t0).as_secs_f64(),
                    returned: None,
                }
            }
            Kind::True => {
                let (t, st) = poll_exit("true", c, deadline)?;
                if !st.success() {
                    return Err(format!("true exited with {st}"));
                }
                Run {
                    ready: (t - t0).as_secs_f64(),
                    returned: None,
                }
            }
            Kind::Daemonize | Kind::InitShim => {
                let what = if k == Kind::InitShim {
                    "init-shim start"
                } else {
                    "memlogd -daemonize"
                };
                let (t1, st) = poll_exit(what, c, deadline)?;
                g.0 = None;
                // The daemon is in a session of its own; find it by its socket.
                let pid = pids_holding_socket(&query).into_iter().max();
                if !st.success() {
                    if let Some(pid) = pid {
                        stop_pid(pid, timeout);
                    }
                    return Err(format!("{what} exited with {st}{}", stderr()));
                }
                let t2 = poll_ready(what, None, deadline, both);
                match pid {
                    Some(pid) => stop_pid(pid, timeout),
                    None => {
                        return Err(format!(
                            "{what} returned, but no process holds {}",
                            query.display()
                        ))
                    }
                }
                let t2 = t2.map_err(|e| e + &stderr())?;
                Run {
                    ready: (t2 - t0).as_secs_f64(),
                    returned: Some((t1 - t0).as_secs_f64()),
                }
            }
        };
        if let Some(c) = g.0.take() {
            stop_child(c, timeout);
        }
        let _ = fs::remove_dir_all(&dir);
        Ok(run)
    }
}

// ---------------------------------------------------------------------------
// Report

fn ms(x: f64) -> String {
    format!("{:.2}", x * 1e3)
}

fn json_str(v: &str) -> String {
    let mut b = Vec::new();
    memlog::json::write_str(&mut b, v.as_bytes());
    String::from_utf8_lossy(&b).into_owned()
}

fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".into()
    }
}

/// `{"median":..,"min":..,"max":..,"runs":[..]}` in milliseconds.
fn json_summary(v: &[f64]) -> String {
    let (lo, hi) = min_max(v);
    let runs: Vec<String> = v.iter().map(|&x| json_num(x * 1e3)).collect();
    format!(
        "{{\"median\":{},\"min\":{},\"max\":{},\"runs\":[{}]}}",
        json_num(median(v) * 1e3),
        json_num(lo * 1e3),
        json_num(hi * 1e3),
        runs.join(",")
    )
}

/// One kind's results: its command, its runs, or why it has none.
struct Entry {
    kind: Kind,
    /// Its command line, the temporary directory shown as `DIR`.
    command: String,
    runs: Vec<Run>,
    missing: Option<String>,
    failed: Option<String>,
}

impl Entry {
    fn ready(&self) -> Vec<f64> {
        self.runs.iter().map(|r| r.ready).collect()
    }

    fn returned(&self) -> Vec<f64> {
        self.runs.iter().filter_map(|r| r.returned).collect()
    }
}

/// The command line of a kind with its temporary directory shown as `DIR`.
fn shown(argv: &[String], dir: &Path) -> String {
    let d = dir.display().to_string();
    argv.iter()
        .map(|w| w.replace(&d, "DIR"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn markdown(o: &Opts, entries: &[Entry]) -> String {
    let mut m = String::new();
    let base = entries
        .iter()
        .find(|e| e.kind == Kind::True && !e.runs.is_empty())
        .map(|e| median(&e.ready()));
    let _ = writeln!(m, "# Start-up time\n");
    let _ = writeln!(
        m,
        "Each kind is started {} times, the kinds taking turns (the order rotates every round), after one untimed start of each. Clock: from just before `spawn` (fork and exec) until the state is seen; the state is checked in a loop that sleeps {} µs between checks (longer when the machine is busy), so a time is when a check first saw the state. Both sockets answer = a datagram socket connects to the log socket and the query socket answers a `stats` request with counters. A fresh directory for every start; every daemon is stopped (SIGTERM) after its start. Milliseconds: median (min–max).\n",
        o.runs,
        POLL.as_micros()
    );
    let _ = writeln!(
        m,
        "| start | until ready | returned | ready / exec of `true` |"
    );
    let _ = writeln!(m, "| --- | ---: | ---: | ---: |");
    for e in entries {
        if let Some(why) = e.missing.as_ref().or(e.failed.as_ref()) {
            if e.runs.is_empty() {
                let _ = writeln!(m, "| {} | {why} | | |", e.kind.what());
                continue;
            }
        }
        let r = e.ready();
        let (lo, hi) = min_max(&r);
        let ret = e.returned();
        let ret = if ret.is_empty() {
            String::new()
        } else {
            let (a, b) = min_max(&ret);
            format!("{} ({}–{})", ms(median(&ret)), ms(a), ms(b))
        };
        let ratio = match base {
            Some(b) if e.kind != Kind::True => format!("{:.1}×", median(&r) / b),
            _ => String::new(),
        };
        let _ = writeln!(
            m,
            "| {} | {} ({}–{}) | {ret} | {ratio} |",
            e.kind.what(),
            ms(median(&r)),
            ms(lo),
            ms(hi)
        );
    }
    let _ = writeln!(m, "\nCommands (DIR is a fresh temporary directory):\n");
    for e in entries {
        let _ = writeln!(m, "- `{}`", e.command);
    }
    for e in entries {
        if let Some(why) = &e.failed {
            let _ = writeln!(m, "- **{} failed**: {why}", e.kind.key());
        }
    }
    m
}

fn json(o: &Opts, entries: &[Entry]) -> String {
    let rows: Vec<String> = entries
        .iter()
        .map(|e| {
            let ret = e.returned();
            format!(
                "{{\"key\":{},\"what\":{},\"command\":{},\"missing\":{},\"failed\":{},\"ready_ms\":{},\"returned_ms\":{}}}",
                json_str(e.kind.key()),
                json_str(e.kind.what()),
                json_str(&e.command),
                e.missing.as_deref().map_or("null".into(), json_str),
                e.failed.as_deref().map_or("null".into(), json_str),
                if e.runs.is_empty() { "null".into() } else { json_summary(&e.ready()) },
                if ret.is_empty() { "null".into() } else { json_summary(&ret) },
            )
        })
        .collect();
    format!(
        "{{\"command\":{},\"runs\":{},\"poll_us\":{},\"rows\":[{}]}}\n",
        json_str(&std::env::args().collect::<Vec<_>>().join(" ")),
        o.runs,
        POLL.as_micros(),
        rows.join(",")
    )
}

fn run(o: Opts) -> i32 {
    become_subreaper();
    let true_bin = find_program("true").unwrap_or_else(|| PathBuf::from("/bin/true"));
    let rsyslogd = find_program("rsyslogd");
    let mut b = Bench {
        tmp: TempDir::new("startup-bench"),
        o,
        seq: 0,
        true_bin,
        rsyslogd,
    };
    let kinds = [
        Kind::Memlogd,
        Kind::Daemonize,
        Kind::InitShim,
        Kind::True,
        Kind::Rsyslog,
    ];
    let tmp = b.tmp.path().to_path_buf();
    let mut entries: Vec<Entry> = kinds
        .iter()
        .map(|&k| Entry {
            kind: k,
            command: String::new(),
            runs: Vec::new(),
            missing: (k == Kind::Rsyslog && b.rsyslogd.is_none())
                .then(|| "rsyslogd not installed".to_string()),
            failed: None,
        })
        .collect();
    for e in entries.iter_mut() {
        e.command = shown(&b.argv(e.kind, &tmp.join("DIR")), &tmp.join("DIR"));
    }
    // Untimed: the binaries and libraries into the page cache.
    for e in entries.iter_mut().filter(|e| e.missing.is_none()) {
        if let Err(why) = b.once(e.kind) {
            eprintln!("error: warm-up {}: {why}", e.kind.key());
            e.failed = Some(format!("warm-up: {why}"));
        }
    }
    let n = entries.len();
    for round in 0..b.o.runs {
        for j in 0..n {
            let e = &mut entries[(round + j) % n];
            if e.missing.is_some() || e.failed.is_some() {
                continue;
            }
            match b.once(e.kind) {
                Ok(r) => e.runs.push(r),
                Err(why) => {
                    eprintln!("error: {} run {}: {why}", e.kind.key(), round + 1);
                    e.failed = Some(format!("run {}: {why}", round + 1));
                }
            }
        }
        let line: Vec<String> = entries
            .iter()
            .filter_map(|e| {
                e.runs
                    .last()
                    .map(|r| format!("{} {}", e.kind.key(), ms(r.ready)))
            })
            .collect();
        eprintln!("round {}/{} (ms): {}", round + 1, b.o.runs, line.join(", "));
    }
    let md = markdown(&b.o, &entries);
    print!("{md}");
    let _ = io::stdout().flush();
    let mut status = i32::from(entries.iter().any(|e| e.failed.is_some()));
    if let Some(p) = &b.o.json {
        if let Err(e) = fs::write(p, json(&b.o, &entries)) {
            eprintln!("memlog-startup-bench: writing {}: {e}", p.display());
            status = 1;
        }
    }
    status
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("memlog-startup-bench: {e}");
            std::process::exit(2);
        }
    };
    std::process::exit(run(o));
}
