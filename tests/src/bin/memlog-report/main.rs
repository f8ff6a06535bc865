//! `memlog-report`: runs every benchmark of the project, each as a child
//! process, and writes one report: `report.md` (a Markdown table per
//! section, medians and ratios to the baselines and peers measured in the
//! same run, the machine, the date, the commit and the exact commands),
//! SVG charts beside it, and each benchmark's own output under `raw/`.
//!
//! ```text
//! cargo run --release -p memlog-tests --bin memlog-report [-- --quick | --out DIR | --help]
//! ```
//!
//! It builds the release binaries first (`cargo build --release
//! --workspace --bins`), then runs `memlog-bench` (fd ingest at 1/4/16/64
//! writers, follow latency, dump, memory), `memlog-syslog-bench` (/dev/log
//! against BusyBox `syslogd -C` and rsyslogd), `memlog-logwrite-bench`,
//! `memlog-startup-bench` and `scripts/build-static`, and reads their
//! `--json` output. Every child has a time limit (then it and everything
//! it started are killed); the temporary directory is removed.

mod json;
mod md;
mod svg;

use json::Json;
use md::{fixed, ratio, table, thousands};
use memlog_tests::bench::{flag_value, loadavg, read_first, split_flag};
use memlog_tests::TempDir;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Write as _};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

const USAGE: &str = "\
memlog-report: run every memlog benchmark and write a report with charts

usage: cargo run --release -p memlog-tests --bin memlog-report -- [OPTIONS]

  --out DIR        where report.md, the SVG charts and raw/ go
                   (default docs/bench; with --quick target/bench-report-quick)
  --quick          smoke run, well under a minute: small counts, one
                   repetition, no static build (numbers not meaningful)
  --only LIST      run only these parts: bench,syslog,logwrite,startup,static
  --static         build the static binaries even with --quick
  --no-build       do not run `cargo build --release --workspace --bins` first
  --timeout SECS   time limit of each benchmark (default 1800; --quick 120)
  -h, --help       this text
";

const PARTS: [&str; 5] = ["bench", "syslog", "logwrite", "startup", "static"];

/// The release binaries whose sizes are reported.
const BINARIES: [&str; 4] = ["memlogd", "logread", "logwrite", "init-shim"];

/// The charts, written beside report.md.
const CHARTS: [&str; 5] = [
    "ingest.svg",
    "latency.svg",
    "syslog.svg",
    "startup.svg",
    "ring.svg",
];

struct Opts {
    quick: bool,
    out: PathBuf,
    only: Vec<String>,
    static_build: bool,
    build: bool,
    timeout: Duration,
    args: Vec<String>,
}

impl Opts {
    fn runs(&self, part: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|p| p == part))
            && (part != "static" || self.static_build)
    }
}

fn parse_opts() -> Res<Opts> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ws = memlog_tests::workspace_dir();
    let mut o = Opts {
        quick: false,
        out: PathBuf::new(),
        only: Vec::new(),
        static_build: true,
        build: true,
        timeout: Duration::ZERO,
        args: args.clone(),
    };
    let (mut out, mut timeout, mut want_static) = (None, None, false);
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        let (flag, inline) = split_flag(a);

        match flag {
            "quick" => {
                o.quick = true;
                continue;
            }
            "static" => {
                want_static = true;
                continue;
            }
            "no-build" => {
                o.build = false;
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
            "out" => out = Some(PathBuf::from(val)),
            "timeout" => {
                let s: u64 = val
                    .trim()
                    .parse()
                    .map_err(|_| format!("--timeout: invalid number {val:?}"))?;
                if s == 0 {
                    return Err("--timeout must be positive".into());
                }
                timeout = Some(Duration::from_secs(s));
            }
            "only" => {
                o.only = val.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = o.only.iter().find(|p| !PARTS.contains(&p.as_str())) {
                    return Err(format!(
                        "--only: unknown part {bad:?} (want {})",
                        PARTS.join(",")
                    ));
                }
            }
            _ => return Err(format!("unknown option {a}\n\n{USAGE}")),
        }
    }
    o.static_build = !o.quick || want_static;
    o.out = out.unwrap_or_else(|| {
        if o.quick {
            target_dir().join("bench-report-quick")
        } else {
            ws.join("docs/bench")
        }
    });
    o.timeout = timeout.unwrap_or(Duration::from_secs(if o.quick { 120 } else { 1800 }));
    Ok(o)
}

/// The cargo target directory this program was built in (`target/` of the
/// workspace unless `CARGO_TARGET_DIR` moved it).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| {
            let profile = e.parent()?;
            matches!(profile.file_name()?.to_str()?, "release" | "debug")
                .then(|| profile.parent().map(Path::to_path_buf))
                .flatten()
        })
        .unwrap_or_else(|| memlog_tests::workspace_dir().join("target"))
}

// ---------------------------------------------------------------------------
// Children

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

/// Every process below `pid` (through `/proc/PID/task/TID/children`).
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let kids = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids
                .split_whitespace()
                .filter_map(|k| k.parse::<u32>().ok())
            {
                if !out.contains(&k) {
                    out.push(k);
                    todo.push(k);
                }
            }
        }
    }
    out
}

/// Removes the temporary directories of killed processes, which could not
/// clean up: `memlog-TAG-PID-N` (`memlog_tests::TempDir`) and
/// `memlog-bench.PID.N` (memlog-bench's own).
fn remove_temp_dirs_of(pids: &[u32]) {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("memlog") {
            continue;
        }
        let ours = pids.iter().any(|p| {
            let dash = format!("-{p}-");
            let dot = format!(".{p}.");
            name.contains(&dash) || name.contains(&dot)
        });
        if ours && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// One benchmark (or build) run as a child process.
struct Ran {
    name: &'static str,
    /// The command as the report shows it (paths relative to the workspace).
    shown: String,
    ok: bool,
    /// `exit status 0`, `timed out after 120 s`, ...
    status: String,
    secs: f64,
    stdout: Vec<u8>,
    /// The last lines of its stderr.
    stderr_tail: String,
}

/// A path as the report shows it: relative to the workspace when inside it.
fn rel(p: &Path) -> String {
    let ws = memlog_tests::workspace_dir();
    match p.strip_prefix(&ws) {
        Ok(r) => r.display().to_string(),
        Err(_) => p.display().to_string(),
    }
}

/// Runs `argv` in the workspace with stdout captured and stderr passed on
/// (each line prefixed with `name`), for at most `timeout`. `shown` is the
/// command line for the report.
fn run_child(
    name: &'static str,
    argv: &[String],
    shown: String,
    env: &[(&str, String)],
    timeout: Duration,
    scratch: &Path,
) -> Ran {
    eprintln!("memlog-report: running {shown}");
    let mut ran = Ran {
        name,
        shown,
        ok: false,
        status: String::new(),
        secs: 0.0,
        stdout: Vec::new(),
        stderr_tail: String::new(),
    };
    let out_path = scratch.join(format!("{name}.stdout"));
    let out = match fs::File::create(&out_path) {
        Ok(f) => f,
        Err(e) => {
            ran.status = format!("cannot create {}: {e}", out_path.display());
            return ran;
        }
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(memlog_tests::workspace_dir())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: the hook runs in the child between fork and exec; it only
    // makes one async-signal-safe system call and allocates nothing.
    unsafe {
        cmd.pre_exec(die_with_parent);
    }
    let t0 = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            ran.status = format!("could not start: {e}");
            return ran;
        }
    };
    let tail = Arc::new(Mutex::new(VecDeque::<String>::new()));
    let (done_tx, done_rx) = mpsc::channel();
    if let Some(err) = child.stderr.take() {
        let tail = Arc::clone(&tail);
        thread::spawn(move || {
            for l in BufReader::new(err).lines() {
                let Ok(l) = l else { break };
                let _ = writeln!(io::stderr(), "  [{name}] {l}");
                if let Ok(mut t) = tail.lock() {
                    t.push_back(l);
                    if t.len() > 30 {
                        t.pop_front();
                    }
                }
            }
            let _ = done_tx.send(());
        });
    }
    let deadline = t0 + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(e) => {
                ran.status = format!("waitpid: {e}");
                break None;
            }
        }
        if Instant::now() > deadline {
            // It, and everything it started, whose orphans would otherwise
            // live on (a daemonized memlogd, say).
            let mut all = descendants(child.id());
            let _ = memlog_tests::signal(child.id(), libc::SIGKILL);
            for &p in &all {
                let _ = memlog_tests::signal(p, libc::SIGKILL);
            }
            let _ = child.wait();
            all.push(child.id());
            remove_temp_dirs_of(&all);
            ran.status = format!("timed out after {} s (killed)", timeout.as_secs());
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    ran.secs = t0.elapsed().as_secs_f64();
    // Its stderr ends with it, unless something it left behind holds it.
    let _ = done_rx.recv_timeout(Duration::from_secs(2));
    ran.stderr_tail = tail
        .lock()
        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    ran.stdout = fs::read(&out_path).unwrap_or_default();
    if let Some(st) = status {
        ran.ok = st.success();
        ran.status = st.to_string();
    }
    eprintln!(
        "memlog-report: {name}: {} after {:.0} s",
        ran.status, ran.secs
    );
    ran
}

// ---------------------------------------------------------------------------
// The machine

struct Machine {
    nproc: usize,
    cpu: String,
    mem: String,
    kernel: String,
    os: String,
    rustc: String,
    load_start: String,
    load_end: String,
    date: String,
    commit: String,
}

/// The output of a short command, or `None`.
fn output_of(argv: &[&str]) -> Option<String> {
    let out = memlog_tests::run_with_timeout(
        Command::new(argv[0])
            .args(&argv[1..])
            .current_dir(memlog_tests::workspace_dir()),
        Duration::from_secs(20),
    );
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `abc1234 (branch report)`, with `, with uncommitted changes` when the
/// tracked files differ from it.
fn commit() -> String {
    let Some(hash) = output_of(&["git", "rev-parse", "--short=12", "HEAD"]) else {
        return "unknown (not a git checkout)".into();
    };
    let branch = output_of(&["git", "rev-parse", "--abbrev-ref", "HEAD"]).unwrap_or_default();
    let dirty = output_of(&["git", "status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    format!(
        "{hash}{}{}",
        if branch.is_empty() || branch == "HEAD" {
            String::new()
        } else {
            format!(" (branch {branch})")
        },
        if dirty {
            ", with uncommitted changes"
        } else {
            ""
        }
    )
}

fn machine() -> Machine {
    let date = memlog::timefmt::rfc3339_nano(memlog::timefmt::now_ns());
    Machine {
        nproc: thread::available_parallelism().map_or(0, |n| n.get()),
        cpu: read_first("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
        mem: read_first("/proc/meminfo", "MemTotal").map_or("unknown".into(), |m| {
            m.trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .map_or(m.clone(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        }),
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        os: read_first("/etc/os-release", "PRETTY_NAME").unwrap_or_else(|| "unknown".into()),
        rustc: output_of(&["rustc", "--version"]).unwrap_or_else(|| "unknown".into()),
        load_start: loadavg(),
        load_end: String::new(),
        // Whole seconds.
        date: format!("{}Z", date.get(..19).unwrap_or(&date)),
        commit: commit(),
    }
}

// ---------------------------------------------------------------------------
// The report

/// What the sections are made from.
struct Data {
    bench: Option<Json>,
    syslog: Option<Json>,
    logwrite: Option<Json>,
    startup: Option<Json>,
    /// `memlog-bench --only ring` run again with the static memlogd.
    ring_static: Option<Json>,
    /// (binary, bytes) of the static build.
    statics: Vec<(String, u64)>,
    /// (binary, bytes) of the dynamic release build.
    dynamic: Vec<(String, u64)>,
}

/// A report being written: Markdown, and the charts to write beside it.
struct Report {
    md: String,
    charts: Vec<(&'static str, String)>,
    quick: bool,
}

/// `median (min–max)` of a `{median,min,max}` object scaled by `f`.
fn cell(j: &Json, f: f64, prec: usize) -> String {
    let (m, lo, hi) = (j.get("median").f(), j.get("min").f(), j.get("max").f());
    if !m.is_finite() {
        return "–".into();
    }
    if !(lo.is_finite() && hi.is_finite()) || lo == hi {
        return fixed(m * f, prec);
    }
    format!(
        "{} ({}–{})",
        fixed(m * f, prec),
        fixed(lo * f, prec),
        fixed(hi * f, prec)
    )
}

/// [`cell`] for whole numbers, with thousands separators.
fn cell_thousands(j: &Json) -> String {
    let (m, lo, hi) = (j.get("median").f(), j.get("min").f(), j.get("max").f());
    if !(lo.is_finite() && hi.is_finite()) || lo == hi {
        return thousands(m);
    }
    format!("{} ({}–{})", thousands(m), thousands(lo), thousands(hi))
}

fn range(j: &Json, f: f64) -> Option<(f64, f64)> {
    let (lo, hi) = (j.get("min").f() * f, j.get("max").f() * f);
    (lo.is_finite() && hi.is_finite()).then_some((lo, hi))
}

/// A short note for a section whose benchmark did not give results.
fn missing(r: &mut Report, what: &str, ran: Option<&Ran>) {
    match ran {
        None => {
            let _ = writeln!(r.md, "Not run ({what} is not in `--only`).\n");
        }
        Some(x) => {
            let _ = writeln!(
                r.md,
                "**No results**: `{}` {}. The end of its stderr:\n\n```\n{}\n```\n",
                x.shown, x.status, x.stderr_tail
            );
        }
    }
}

fn failed_note(r: &mut Report, ran: Option<&Ran>) {
    if let Some(x) = ran.filter(|x| !x.ok) {
        let _ = writeln!(
            r.md,
            "**The benchmark failed** ({}); what it measured before is shown. The end of its stderr:\n\n```\n{}\n```\n",
            x.status, x.stderr_tail
        );
    }
}

fn raw_links(r: &mut Report, ran: Option<&Ran>, json: bool) {
    if let Some(x) = ran {
        let _ = writeln!(
            r.md,
            "Command: `{}` ({:.0} s). Its own report, with every detail of the method: [raw/{n}.md](raw/{n}.md){}.\n",
            x.shown,
            x.secs,
            if json {
                format!("; numbers: [raw/{n}.json](raw/{n}.json)", n = x.name)
            } else {
                String::new()
            },
            n = x.name
        );
    }
}

/// 1. fd ingest.
fn ingest(r: &mut Report, d: &Data, ran: Option<&Ran>) {
    let _ = writeln!(r.md, "## 1. Ingest from fds (1, 4, 16, 64 writers)\n");
    let Some(b) = d
        .bench
        .as_ref()
        .filter(|b| !b.at("ingest.rows").arr().is_empty())
    else {
        return missing(r, "bench", ran);
    };
    let ing = b.get("ingest");
    let _ = writeln!(
        r.md,
        "{} lines of {} bytes per run, split over the writers: threads, each writing 64 KiB batches into its own socketpair whose other end was passed to memlogd's log socket. memlogd runs with `{}`; a run ends when memlogd's `next` counter shows every line stored. Baseline: the same writers and socketpairs read by one bare epoll thread that discards the data (what any reader must at least do). Median (min–max) of {} repetitions; the ratio is the median of per-repetition ratios.\n",
        thousands(ing.get("lines").f()),
        ing.get("line_len").f(),
        ing.get("memlogd_args").str().unwrap_or("?"),
        b.get("reps").f()
    );
    failed_note(r, ran);
    let mut rows = Vec::new();
    let (mut ml, mut bl) = (Vec::new(), Vec::new());
    for x in ing.get("rows").arr() {
        let w = x.get("writers").f();
        let (m, bb) = (x.get("memlogd_lines_per_s"), x.get("baseline_lines_per_s"));
        rows.push(vec![
            format!("{w}"),
            cell(m, 1e-6, 2),
            cell(bb, 1e-6, 2),
            format!("{:.2}", x.at("ratio.median").f()),
            format!("{:.0}", m.get("median").f() * ing.get("line_len").f() / 1e6),
        ]);
        ml.push(svg::Point {
            x: w,
            y: m.get("median").f() / 1e6,
            range: range(m, 1e-6),
        });
        bl.push(svg::Point {
            x: w,
            y: bb.get("median").f() / 1e6,
            range: range(bb, 1e-6),
        });
    }
    r.md.push_str(&table(
        &[
            "writers",
            "memlogd, M lines/s",
            "baseline, M lines/s",
            "memlogd / baseline",
            "memlogd, MB/s",
        ],
        &[true; 5],
        &rows,
    ));
    let _ = writeln!(r.md, "\n![ingest against writers](ingest.svg)\n");
    raw_links(r, ran, true);
    let chart = svg::LineChart {
        title: "Ingest from fds: lines per second against writers".into(),
        subtitle: format!(
            "{} lines of {} bytes per run; median and min–max of {} repetitions{}",
            thousands(ing.get("lines").f()),
            ing.get("line_len").f(),
            b.get("reps").f(),
            if r.quick {
                " (--quick: not meaningful)"
            } else {
                ""
            }
        ),
        x_label: "writers (threads, one socketpair each)".into(),
        y_label: "million lines per second".into(),
        log2_x: true,
        lines: vec![
            svg::Line {
                name: "memlogd (stored in its ring)".into(),
                dashed: false,
                points: ml,
            },
            svg::Line {
                name: "baseline: bare epoll loop, read and discard".into(),
                dashed: true,
                points: bl,
            },
        ],
    };
    r.charts.push(("ingest.svg", chart.svg()));
}

/// 2. /dev/log ingest with peers, against the bare receiver.
fn syslog(r: &mut Report, d: &Data, ran: Option<&Ran>) {
    let _ = writeln!(
        r.md,
        "## 2. /dev/log ingest: memlogd, BusyBox `syslogd -C`, rsyslogd, against a bare receiver\n"
    );
    let Some(s) = d
        .syslog
        .as_ref()
        .filter(|s| !s.get("daemons").arr().is_empty())
    else {
        return missing(r, "syslog", ran);
    };
    let senders = if *s.get("send_to") == Json::Bool(true) {
        "`send_to` with the socket's path for every message"
    } else {
        "a socket connected once and blocking `send`, as glibc's `syslog(3)` does"
    };
    let _ = writeln!(
        r.md,
        "{} RFC 3164 messages of {} bytes per repetition (as glibc's `syslog(3)` sends them, 8 tags and priorities), sent by {} threads: datagrams with {senders}; on the stream `/dev/log`, one connection per thread and a NUL after each message. A repetition ends when everything sent is visible to a reader (memlogd: `stats`; BusyBox: `logread`; rsyslogd: its output file). BusyBox keeps a {} KiB shared-memory ring (`-C`), rsyslogd writes one file, memlogd keeps everything in its ring (rate limit off). The baseline is the **bare receiver**: a process that drains the same kind of socket (`SO_PASSCRED` on, blocking `recvmmsg` into {} preallocated slots; for the stream, {} KiB reads) and discards, so it shows what the kernel and these senders allow. The receivers take turns; median (min–max) of {} repetitions. `÷ bare` is a receiver's median over the bare receiver's of the same transport.\n",
        thousands(s.get("messages").f()),
        s.get("message_len").f(),
        s.get("senders").f(),
        s.get("busybox_ring_kib").f(),
        s.get("bare_batch").f(),
        s.get("bare_read").f() / 1024.0,
        s.get("reps").f()
    );
    failed_note(r, ran);
    let daemons = s.get("daemons").arr();
    let find = |k: &str| daemons.iter().find(|x| x.get("key").str() == Some(k));
    let med = |k: &str| find(k).map_or(f64::NAN, |x| x.at("messages_per_s.median").f());
    let cpu = |k: &str| find(k).map_or(f64::NAN, |x| x.get("cpu_us_per_message").f());
    let mut groups = Vec::new();
    for stream in [false, true] {
        let mine: Vec<&Json> = daemons
            .iter()
            .filter(|x| (x.get("transport").str() == Some("stream")) == stream)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let (base, mem) = if stream {
            ("bare-stream", "memlogd-stream")
        } else {
            ("bare", "memlogd")
        };
        if stream {
            let _ = writeln!(
                r.md,
                "Stream `/dev/log` (`-syslog-stream`; neither BusyBox syslogd nor rsyslogd's imuxsock takes one):\n"
            );
        }
        let mut rows = Vec::new();
        for x in mine {
            let key = x.get("key").str().unwrap_or("");
            let name = x.get("name").str().unwrap_or("?").to_string();
            // memlogd: the binary of this commit; the bare receivers: the
            // benchmark; the others: their first line, without the noise.
            let version = if key.starts_with("memlogd") {
                "this commit".to_string()
            } else if key.starts_with("bare") {
                "memlog-syslog-bench --bare-receiver".to_string()
            } else {
                x.get("version")
                    .str()
                    .unwrap_or("")
                    .replace(" multi-call binary.", "")
                    .replace(" compiled with:", "")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            if let Some(why) = x.get("missing").str() {
                rows.push(vec![name.clone(), why.to_string()]);
                continue;
            }
            let rate = x.get("messages_per_s");
            let mut c = cell_thousands(rate);
            if let Some(f) = x.get("failed").str() {
                c = format!("{c} (failed: {f})");
            }
            let m = rate.get("median").f();
            let u = x.get("cpu_us_per_message").f();
            rows.push(vec![
                name.clone(),
                c,
                ratio(m, med(base)),
                ratio(med(mem), m),
                fixed(u, 2),
                ratio(u, cpu(base)),
                fixed(x.get("vm_hwm_kib").f() / 1024.0, 1),
                version,
            ]);
            groups.push(svg::Group {
                label: name,
                values: vec![Some(m / 1e3)],
            });
        }
        r.md.push_str(&table(
            &[
                "receiver",
                "messages/s",
                "÷ bare",
                "memlogd / receiver",
                "CPU µs per message",
                "CPU ÷ bare",
                "peak RSS, MiB",
                "version",
            ],
            &[false, true, true, true, true, true, true, false],
            &rows,
        ));
        r.md.push('\n');
    }
    let bb = "busybox";
    let _ = writeln!(
        r.md,
        "memlogd reaches {} the bare receiver's rate at {} its CPU per message; against BusyBox `syslogd -C`: {} the rate at {} the CPU per message, where the bare receiver itself reaches {} BusyBox's rate (the most any receiver can gain over BusyBox with these senders). Stream: {} the bare stream receiver's rate.\n",
        ratio(med("memlogd"), med("bare")),
        ratio(cpu("memlogd"), cpu("bare")),
        ratio(med("memlogd"), med(bb)),
        ratio(cpu("memlogd"), cpu(bb)),
        ratio(med("bare"), med(bb)),
        ratio(med("memlogd-stream"), med("bare-stream")),
    );
    let _ = writeln!(r.md, "![/dev/log ingest by receiver](syslog.svg)\n");
    raw_links(r, ran, true);
    let chart = svg::BarChart {
        title: "/dev/log ingest: messages per second".into(),
        subtitle: format!(
            "{} messages of {} bytes from {} senders; median of {} repetitions{}",
            thousands(s.get("messages").f()),
            s.get("message_len").f(),
            s.get("senders").f(),
            s.get("reps").f(),
            if r.quick { " (--quick)" } else { "" }
        ),
        y_label: "thousand messages per second".into(),
        log_y: false,
        series: vec!["median rate until every message is visible to a reader".into()],
        panels: vec![svg::Panel {
            title: String::new(),
            groups,
        }],
    };
    r.charts.push(("syslog.svg", chart.svg()));
}

/// The latency rows of one placement: (path, [p50, p90, p99, max]).
fn short_path(p: &str) -> String {
    match p {
        "memlogd, extended follower" => "memlogd, extended follower".into(),
        "memlogd, LinuxKit follower (mode byte 1)" => "memlogd, LinuxKit follower".into(),
        "baseline: bare relay thread" => "baseline: bare relay thread".into(),
        other => other.into(),
    }
}

/// 3. Follow latency.
fn latency(r: &mut Report, d: &Data, ran: Option<&Ran>) {
    let _ = writeln!(r.md, "## 3. Follow latency\n");
    let Some(b) = d
        .bench
        .as_ref()
        .filter(|b| !b.at("latency.rows").arr().is_empty())
    else {
        return missing(r, "bench", ran);
    };
    let lat = b.get("latency");
    let _ = writeln!(
        r.md,
        "One thread writes a 100-byte line into a socketpair passed to memlogd and waits until its follower (a query connection in follow mode) has it; {} round trips per repetition. Baseline: the same two hops without memlogd (socketpair, a relay thread that reads and writes, a stream to the follower). The writer and the far side (memlogd or the relay) are pinned to one CPU, then to two: a wakeup across CPUs costs far more on a VM. Microseconds; each percentile is taken per repetition, then the median (min–max) over {} repetitions. The ratios are memlogd's over the baseline's in the same placement.\n",
        thousands(lat.get("samples").f()),
        b.get("reps").f()
    );
    failed_note(r, ran);
    let rows_j = lat.get("rows").arr();
    let mut placements: Vec<String> = Vec::new();
    for x in rows_j {
        let p = x.get("placement").str().unwrap_or("?").to_string();
        if !placements.contains(&p) {
            placements.push(p);
        }
    }
    let mut rows = Vec::new();
    let mut panels = Vec::new();
    for pl in &placements {
        let mine: Vec<&Json> = rows_j
            .iter()
            .filter(|x| x.get("placement").str() == Some(pl.as_str()))
            .collect();
        let base = mine.iter().find(|x| {
            x.get("path")
                .str()
                .is_some_and(|p| p.starts_with("baseline"))
        });
        let mut groups = Vec::new();
        for x in &mine {
            let path = x.get("path").str().unwrap_or("?");
            let is_base = path.starts_with("baseline");
            let vs = |k: &str| match base {
                Some(bb) if !is_base => ratio(x.at(k).f(), bb.at(k).f()),
                _ => String::new(),
            };
            rows.push(vec![
                pl.clone(),
                path.to_string(),
                cell(x.get("p50_us"), 1.0, 1),
                cell(x.get("p90_us"), 1.0, 1),
                cell(x.get("p99_us"), 1.0, 1),
                cell(x.get("max_us"), 1.0, 0),
                vs("p50_us.median"),
                vs("p99_us.median"),
            ]);
            groups.push(svg::Group {
                label: short_path(path),
                values: ["p50_us", "p90_us", "p99_us"]
                    .iter()
                    .map(|k| Some(x.at(k).get("median").f()))
                    .collect(),
            });
        }
        panels.push(svg::Panel {
            title: pl.clone(),
            groups,
        });
    }
    r.md.push_str(&table(
        &[
            "placement",
            "path",
            "p50",
            "p90",
            "p99",
            "max",
            "p50 / baseline",
            "p99 / baseline",
        ],
        &[false, false, true, true, true, true, true, true],
        &rows,
    ));
    let _ = writeln!(r.md, "\n![follow latency percentiles](latency.svg)\n");
    raw_links(r, ran, true);
    let chart = svg::BarChart {
        title: "Follow latency: write to follower, percentiles".into(),
        subtitle: format!(
            "{} round trips per repetition; median of {} repetitions; log scale{}",
            thousands(lat.get("samples").f()),
            b.get("reps").f(),
            if r.quick { " (--quick)" } else { "" }
        ),
        y_label: "microseconds (log scale)".into(),
        log_y: true,
        series: vec!["p50".into(), "p90".into(), "p99".into()],
        panels,
    };
    r.charts.push(("latency.svg", chart.svg()));
}

/// 4. Dump throughput.
fn dump(r: &mut Report, d: &Data, ran: Option<&Ran>) {
    let _ = writeln!(r.md, "## 4. Dump throughput\n");
    let Some(b) = d
        .bench
        .as_ref()
        .filter(|b| !b.at("dump.rows").arr().is_empty())
    else {
        return missing(r, "bench", ran);
    };
    let dj = b.get("dump");
    let _ = writeln!(
        r.md,
        "memlogd (`{}`) holds {} records of 100-byte lines; a reader dumps them all and reads to the end: raw (read into 64 KiB, count lines) or decoded by `memlog::client::Client`. Baseline: a bare thread sending the very same JSON lines over a socketpair to the same reader. Median (min–max) of {} repetitions; the ratio is to the baseline read the same way.\n",
        dj.get("memlogd_args").str().unwrap_or("?"),
        thousands(dj.get("records").f()),
        b.get("reps").f()
    );
    failed_note(r, ran);
    let rows_j = dj.get("rows").arr();
    let find = |prefix: &str| {
        rows_j
            .iter()
            .find(|x| x.get("reader").str().is_some_and(|s| s.starts_with(prefix)))
            .map_or(f64::NAN, |x| x.at("records_per_s.median").f())
    };
    let (base_raw, base_dec) = (
        find("baseline: bare sender, raw"),
        find("baseline: bare sender, decoded"),
    );
    let rows: Vec<Vec<String>> = rows_j
        .iter()
        .map(|x| {
            let name = x.get("reader").str().unwrap_or("?");
            let rate = x.at("records_per_s.median").f();
            let vs = if name.starts_with("baseline") {
                String::new()
            } else if name.contains("decoded") {
                ratio(rate, base_dec)
            } else {
                ratio(rate, base_raw)
            };
            vec![
                name.to_string(),
                cell(x.get("records_per_s"), 1e-6, 2),
                cell(x.get("mb_per_s"), 1.0, 0),
                vs,
            ]
        })
        .collect();
    r.md.push_str(&table(
        &["reader", "M records/s", "MB/s", "vs baseline"],
        &[false, true, true, true],
        &rows,
    ));
    r.md.push('\n');
    raw_links(r, ran, true);
}

/// 5. logwrite.
fn logwrite(r: &mut Report, d: &Data, ran: Option<&Ran>) {
    let _ = writeln!(r.md, "## 5. logwrite: files and forwarding\n");
    let Some(l) = d
        .logwrite
        .as_ref()
        .filter(|l| !l.get("rows").arr().is_empty())
    else {
        return missing(r, "logwrite", ran);
    };
    let _ = writeln!(
        r.md,
        "memlogd holds {} records of {} bytes from one source; a fresh logwrite writes them all to files (default flags: 1 MiB rotation, position saved per batch), or forwards them over TCP (RFC 5424, octet counting) to a local sink that counts frames. Timed from starting logwrite until its saved position (files) or the sink (TCP) has the last record. A second memlogd holds as many records from 200 sources, written in rounds of 8 lines per source so that the ring holds them interleaved (the shape of a boot); logwrite writes them to one file per source. Baselines: an in-process reader of the same memlogd (the shared `Client`, decoding every line) that formats the same lines into one buffered file; buffered writes of those bytes from memory; the very same TCP frames written in 64 KiB writes. And the ceiling of any output that reads memlogd: the same dump read through the shared `Client`, every line decoded, nothing written (the TCP baseline does not read memlogd at all, so no forwarder can come near it). Median of {} runs.\n",
        thousands(l.get("records").f()),
        l.get("record_len").f(),
        l.get("reps").f()
    );
    failed_note(r, ran);
    let rows_j = l.get("rows").arr();
    let get = |k: &str| {
        rows_j
            .iter()
            .find(|x| x.get("key").str() == Some(k))
            .map_or(f64::NAN, |x| x.get("median").f())
    };
    let rows: Vec<Vec<String>> = rows_j
        .iter()
        .map(|x| {
            let k = x.get("key").str().unwrap_or("");
            let m = x.get("median").f();
            let vs = match k {
                "files_base_read" | "files_base_write" => ratio(get("files_logwrite"), m),
                "tcp_base" => ratio(get("tcp_logwrite"), m),
                "read_only" => format!(
                    "files: {}, tcp: {}",
                    ratio(get("files_logwrite"), m),
                    ratio(get("tcp_logwrite"), m)
                ),
                "files_logwrite_many" => {
                    format!("this / one source: {}", ratio(m, get("files_logwrite")))
                }
                _ => String::new(),
            };
            vec![
                x.get("what").str().unwrap_or("?").to_string(),
                thousands(m),
                vs,
            ]
        })
        .collect();
    r.md.push_str(&table(
        &["what", "records/s", "logwrite / this"],
        &[false, true, true],
        &rows,
    ));
    r.md.push('\n');
    raw_links(r, ran, true);
}

fn mib(b: f64) -> String {
    fixed(b / 1048576.0, 1)
}

/// 6. Memory by buffer size.
fn memory(r: &mut Report, d: &Data, ran: Option<&Ran>) {
    let _ = writeln!(r.md, "## 6. Memory by buffer size\n");
    let Some(b) = d
        .bench
        .as_ref()
        .filter(|b| !b.get("memory").arr().is_empty())
    else {
        return missing(r, "bench", ran);
    };
    let _ = writeln!(
        r.md,
        "memlogd with `-buffer-size SIZE`, three readers connected (two followers that read everything, one dump+follow reader that never reads), then 4 writers write twice the ring's size in 100-byte lines. Peak resident memory (VmHWM) and VmRSS from `/proc/PID/status` afterwards; idle is VmHWM right after start (the dynamic binary's glibc and code pages, about 2 MiB of it). MiB.\n"
    );
    failed_note(r, ran);
    let rows: Vec<Vec<String>> = b
        .get("memory")
        .arr()
        .iter()
        .map(|x| {
            let size = x.get("buffer_bytes").f();
            let hwm = x.get("vm_hwm").f();
            vec![
                mib(size),
                thousands(x.get("lines").f()),
                mib(x.get("idle_vm_hwm").f()),
                mib(hwm),
                mib(x.get("vm_rss").f()),
                mib(hwm - size),
                format!("{:.3}", hwm / size),
            ]
        })
        .collect();
    r.md.push_str(&table(
        &[
            "buffer",
            "lines written",
            "idle VmHWM",
            "VmHWM",
            "VmRSS",
            "VmHWM − buffer",
            "VmHWM / buffer",
        ],
        &[true; 7],
        &rows,
    ));
    r.md.push('\n');
    raw_links(r, ran, true);
}

/// 7. Binary sizes.
fn sizes(r: &mut Report, d: &Data, ran: Option<&Ran>, target: &Path) {
    let _ = writeln!(r.md, "## 7. Binary sizes\n");
    let _ = writeln!(
        r.md,
        "Release profile (LTO, one codegen unit, `panic = \"abort\"`, stripped). Dynamic: `{}/release/`, linked against the system's glibc. Static: `scripts/build-static` (glibc's static libc, `x86_64-unknown-linux-gnu`, `+crt-static`); the Dockerfile's musl build is smaller but is not built here. Bytes.\n",
        rel(target)
    );
    let rows: Vec<Vec<String>> = BINARIES
        .iter()
        .map(|&b| {
            let dy = d.dynamic.iter().find(|(n, _)| n == b).map(|x| x.1 as f64);
            let st = d.statics.iter().find(|(n, _)| n == b).map(|x| x.1 as f64);
            vec![
                b.to_string(),
                dy.map_or("–".into(), thousands),
                dy.map_or("–".into(), |x| fixed(x / 1024.0, 0)),
                st.map_or("–".into(), thousands),
                st.map_or("–".into(), |x| fixed(x / 1024.0, 0)),
            ]
        })
        .collect();
    r.md.push_str(&table(
        &[
            "binary",
            "dynamic, bytes",
            "dynamic, KiB",
            "static (glibc), bytes",
            "static, KiB",
        ],
        &[false, true, true, true, true],
        &rows,
    ));
    r.md.push('\n');
    match ran {
        None => {
            let _ = writeln!(
                r.md,
                "The static build was not run (`--quick` without `--static`, or `--only`).\n"
            );
        }
        Some(x) if !x.ok || d.statics.is_empty() => {
            let _ = writeln!(
                r.md,
                "**The static build failed**: `{}` {}.\n\n```\n{}\n```\n",
                x.shown, x.status, x.stderr_tail
            );
        }
        Some(x) => {
            let _ = writeln!(
                r.md,
                "Command: `{}` ({:.0} s); its output: [raw/{}.md](raw/{}.md).\n",
                x.shown, x.secs, x.name, x.name
            );
        }
    }
}

/// A command line with the workspace's path left out (`target/release/memlogd`).
fn unroot(cmd: &str) -> String {
    let ws = memlog_tests::workspace_dir().display().to_string();
    cmd.replace(&format!("{ws}/"), "")
}

/// 8. Start-up time.
fn startup(r: &mut Report, d: &Data, ran: Option<&Ran>) {
    let _ = writeln!(r.md, "## 8. Start-up time to sockets ready\n");
    let Some(s) = d
        .startup
        .as_ref()
        .filter(|s| !s.get("rows").arr().is_empty())
    else {
        return missing(r, "startup", ran);
    };
    let _ = writeln!(
        r.md,
        "From just before `spawn` (fork and exec) until both of memlogd's sockets answer: a datagram socket connects to the log socket and the query socket answers a `stats` request. memlogd started directly, with `-daemonize` (LinuxKit's `002-logging` does this) and with `init-shim start` (which binds the sockets, starts memlogd and returns once it answers); \"returned\" is when that command exited. Baseline: exec of `true` until it has exited, the cost of starting any process on this machine. Peer: rsyslogd until its socket takes datagrams. The kinds take turns; median (min–max) of {} starts each, polled every {} µs. Milliseconds.\n",
        s.get("runs").f(),
        s.get("poll_us").f()
    );
    failed_note(r, ran);
    let rows_j = s.get("rows").arr();
    let base = rows_j
        .iter()
        .find(|x| x.get("key").str() == Some("true"))
        .map_or(f64::NAN, |x| x.at("ready_ms.median").f());
    let mut rows = Vec::new();
    let mut groups = Vec::new();
    for x in rows_j {
        let what = x.get("what").str().unwrap_or("?").to_string();
        let key = x.get("key").str().unwrap_or("");
        if let Some(why) = x.get("missing").str() {
            rows.push(vec![what, why.to_string()]);
            continue;
        }
        let ready = x.get("ready_ms");
        rows.push(vec![
            what,
            cell(ready, 1.0, 2),
            if x.get("returned_ms").is_null() {
                String::new()
            } else {
                cell(x.get("returned_ms"), 1.0, 2)
            },
            if key == "true" {
                String::new()
            } else {
                ratio(ready.get("median").f(), base)
            },
            format!("`{}`", unroot(x.get("command").str().unwrap_or(""))),
        ]);
        let label = match key {
            "memlogd" => "memlogd",
            "memlogd_daemonize" => "memlogd -daemonize",
            "init_shim_start" => "init-shim start",
            "true" => "baseline: exec of true",
            "rsyslogd" => "peer: rsyslogd",
            k => k,
        };
        groups.push(svg::Group {
            label: label.into(),
            values: vec![
                Some(ready.get("median").f()),
                x.at("returned_ms.median").num(),
            ],
        });
    }
    r.md.push_str(&table(
        &[
            "start",
            "until ready, ms",
            "returned, ms",
            "ready / exec of `true`",
            "command (DIR: a fresh directory)",
        ],
        &[false, true, true, true, false],
        &rows,
    ));
    let _ = writeln!(r.md, "\n![start-up time](startup.svg)\n");
    raw_links(r, ran, true);
    let chart = svg::BarChart {
        title: "Start-up: exec until the sockets answer".into(),
        subtitle: format!(
            "median of {} starts each{}",
            s.get("runs").f(),
            if r.quick { " (--quick)" } else { "" }
        ),
        y_label: "milliseconds".into(),
        log_y: false,
        series: vec![
            "until ready (memlogd: both sockets answer)".into(),
            "until the command returned".into(),
        ],
        panels: vec![svg::Panel {
            title: String::new(),
            groups,
        }],
    };
    r.charts.push(("startup.svg", chart.svg()));
}

/// The headline figures, each with its baseline or peer.
fn glance(d: &Data) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut row = |what: &str, ours: String, theirs: String, r: String| {
        if ours != "–" {
            rows.push(vec![what.to_string(), ours, theirs, r]);
        }
    };
    let nan = Json::Null;
    let b = d.bench.as_ref().unwrap_or(&nan);
    for w in [1.0, 4.0, 16.0, 64.0] {
        if let Some(x) = b
            .at("ingest.rows")
            .arr()
            .iter()
            .find(|x| x.get("writers").f() == w)
        {
            let (m, bb) = (
                x.at("memlogd_lines_per_s.median").f(),
                x.at("baseline_lines_per_s.median").f(),
            );
            row(
                &format!(
                    "fd ingest, {w} writer{}, M lines/s",
                    if w == 1.0 { "" } else { "s" }
                ),
                fixed(m / 1e6, 1),
                format!("{} (bare epoll loop)", fixed(bb / 1e6, 1)),
                format!("{:.2}×", x.at("ratio.median").f()),
            );
        }
    }
    if let Some(s) = &d.syslog {
        let ds = s.get("daemons").arr();
        let rate = |k: &str| {
            ds.iter()
                .find(|x| x.get("key").str() == Some(k))
                .map_or(f64::NAN, |x| x.at("messages_per_s.median").f())
        };
        let m = rate("memlogd");
        for (k, name) in [
            ("bare", "the bare receiver"),
            ("busybox", "BusyBox syslogd -C"),
            ("rsyslog", "rsyslogd"),
        ] {
            let p = rate(k);
            if p.is_finite() {
                row(
                    &format!("/dev/log ingest vs {name}, messages/s"),
                    thousands(m),
                    format!("{} ({name})", thousands(p)),
                    ratio(m, p),
                );
            }
        }
    }
    let lat = b.at("latency.rows").arr();
    if let Some(pl) = lat.first().and_then(|x| x.get("placement").str()) {
        let get = |path_prefix: &str, k: &str| {
            lat.iter()
                .find(|x| {
                    x.get("placement").str() == Some(pl)
                        && x.get("path")
                            .str()
                            .is_some_and(|p| p.starts_with(path_prefix))
                })
                .map_or(f64::NAN, |x| x.at(k).get("median").f())
        };
        for k in ["p50_us", "p99_us"] {
            let (m, bb) = (get("memlogd, extended", k), get("baseline", k));
            row(
                &format!("follow latency {}, {pl}, µs", &k[..3]),
                fixed(m, 1),
                format!("{} (bare relay thread)", fixed(bb, 1)),
                ratio(m, bb),
            );
        }
    }
    let dr = b.at("dump.rows").arr();
    let dget = |p: &str| {
        dr.iter()
            .find(|x| x.get("reader").str().is_some_and(|s| s.starts_with(p)))
            .map_or(f64::NAN, |x| x.at("records_per_s.median").f())
    };
    let (dm, db) = (
        dget("memlogd, raw read (extended"),
        dget("baseline: bare sender, raw"),
    );
    row(
        "dump, M records/s",
        fixed(dm / 1e6, 2),
        format!("{} (bare sender)", fixed(db / 1e6, 2)),
        ratio(dm, db),
    );
    if let Some(l) = &d.logwrite {
        let get = |k: &str| {
            l.get("rows")
                .arr()
                .iter()
                .find(|x| x.get("key").str() == Some(k))
                .map_or(f64::NAN, |x| x.get("median").f())
        };
        row(
            "logwrite to files, records/s",
            thousands(get("files_logwrite")),
            format!(
                "{} (read memlogd + buffered write)",
                thousands(get("files_base_read"))
            ),
            ratio(get("files_logwrite"), get("files_base_read")),
        );
        row(
            "logwrite to files, 200 sources interleaved, records/s",
            thousands(get("files_logwrite_many")),
            format!("{} (one source)", thousands(get("files_logwrite"))),
            ratio(get("files_logwrite_many"), get("files_logwrite")),
        );
        row(
            "logwrite TCP forwarding, records/s",
            thousands(get("tcp_logwrite")),
            format!(
                "{} (the same frames, 64 KiB writes)",
                thousands(get("tcp_base"))
            ),
            ratio(get("tcp_logwrite"), get("tcp_base")),
        );
        if get("read_only").is_finite() {
            row(
                "logwrite TCP forwarding vs reading memlogd alone, records/s",
                thousands(get("tcp_logwrite")),
                format!(
                    "{} (the same dump decoded, no output)",
                    thousands(get("read_only"))
                ),
                ratio(get("tcp_logwrite"), get("read_only")),
            );
        }
    }
    if let Some(x) = b.get("memory").arr().last() {
        let (size, hwm) = (x.get("buffer_bytes").f(), x.get("vm_hwm").f());
        row(
            &format!("peak RSS with a {} MiB ring, MiB", mib(size)),
            mib(hwm),
            format!("{} (the ring alone)", mib(size)),
            format!("{:.3}×", hwm / size),
        );
    }
    let g = b.get("ring");
    if let Some(x) = g.get("held").arr().last() {
        row(
            &format!(
                "records held in a 2 MiB ring, real log text ({}), compressed",
                x.get("text").str().unwrap_or("?")
            ),
            thousands(x.get("compressed_records").f()),
            format!("{} (raw ring)", thousands(x.get("raw_records").f())),
            format!("{:.2}×", x.get("ratio").f()),
        );
        row(
            "compressed ring: ingest, 4 writers, M lines/s",
            fixed(g.at("ingest_compressed.median").f() / 1e6, 1),
            format!(
                "{} (raw ring)",
                fixed(g.at("ingest_raw.median").f() / 1e6, 1)
            ),
            format!("{:.2}×", g.at("ingest_ratio.median").f()),
        );
        row(
            "compressed ring: dump, M records/s",
            fixed(g.at("dump_compressed.median").f() / 1e6, 2),
            format!("{} (raw ring)", fixed(g.at("dump_raw.median").f() / 1e6, 2)),
            format!("{:.2}×", g.at("dump_ratio.median").f()),
        );
        row(
            "compressed ring: follow latency p99, µs",
            fixed(g.at("latency_p99_compressed.median").f(), 1),
            format!(
                "{} (raw ring)",
                fixed(g.at("latency_p99_raw.median").f(), 1)
            ),
            ratio(
                g.at("latency_p99_compressed.median").f(),
                g.at("latency_p99_raw.median").f(),
            ),
        );
        // The issue's bound: VmHWM within the buffer and 2 MiB.
        let bound = 4.0 * 1048576.0;
        let statics = d.ring_static.as_ref().map(|s| s.get("ring"));
        for (what, ring) in [("dynamic `target/release`", Some(g)), ("static", statics)] {
            let Some(ring) = ring.filter(|x| !x.get("vm_hwm_compressed").is_null()) else {
                continue;
            };
            let hwm = ring.get("vm_hwm_compressed").f();
            row(
                &format!("compressed ring: VmHWM of a 2 MiB ring, {what} memlogd, MiB"),
                mib(hwm),
                format!("{} (buffer + 2 MiB)", mib(bound)),
                format!("{:.2}×", hwm / bound),
            );
        }
    }
    let size = |v: &[(String, u64)]| {
        v.iter()
            .find(|(n, _)| n == "memlogd")
            .map_or(f64::NAN, |x| x.1 as f64)
    };
    let (dy, st) = (size(&d.dynamic), size(&d.statics));
    row(
        "memlogd binary, KiB (dynamic; static glibc)",
        fixed(dy / 1024.0, 0),
        if st.is_finite() {
            format!("{} static", fixed(st / 1024.0, 0))
        } else {
            String::new()
        },
        String::new(),
    );
    if let Some(s) = &d.startup {
        let get = |k: &str| {
            s.get("rows")
                .arr()
                .iter()
                .find(|x| x.get("key").str() == Some(k))
                .map_or(f64::NAN, |x| x.at("ready_ms.median").f())
        };
        for (k, name) in [
            ("memlogd", "start-up of memlogd to sockets ready, ms"),
            ("init_shim_start", "`init-shim start` to sockets ready, ms"),
        ] {
            row(
                name,
                fixed(get(k), 2),
                format!("{} (exec of `true`)", fixed(get("true"), 2)),
                ratio(get(k), get("true")),
            );
        }
        let rs = get("rsyslogd");
        if rs.is_finite() {
            row(
                "start-up of rsyslogd to its socket, ms",
                fixed(rs, 2),
                format!("{} (memlogd)", fixed(get("memlogd"), 2)),
                ratio(rs, get("memlogd")),
            );
        }
    }
    table(
        &["measure", "memlog", "baseline or peer, same run", "ratio"],
        &[false, true, true, true],
        &rows,
    )
}

/// 9. The compressed ring against the raw one, on real log text.
fn ring(r: &mut Report, d: &Data, ran: Option<&Ran>) {
    let _ = writeln!(
        r.md,
        "## 9. Compressed ring (`-ring-compress`) on real log text\n"
    );
    let Some(b) = d
        .bench
        .as_ref()
        .filter(|b| !b.at("ring.held").arr().is_empty())
    else {
        return missing(r, "bench", ran);
    };
    let g = b.get("ring");
    let texts: Vec<String> = g
        .get("texts")
        .arr()
        .iter()
        .map(|t| {
            format!(
                "{} ({} lines, {} bytes; source `{}`)",
                t.get("name").str().unwrap_or("?"),
                thousands(t.get("lines").f()),
                thousands(t.get("bytes").f()),
                t.get("source").str().unwrap_or("?")
            )
        })
        .collect();
    let missing_texts: Vec<&str> = g
        .get("missing")
        .arr()
        .iter()
        .filter_map(|x| x.str())
        .collect();
    let _ = writeln!(
        r.md,
        "The ring holds the newest records raw in an open chunk and compresses each chunk (LZ4) as it is sealed. Real text replayed line by line as records: {}.{} Each memlogd runs with `-buffer-size SIZE -max-lines 1000000000` and `-ring-compress=false` (raw) or `=true` (compressed), fed by one writer per text at {} lines per second in all (far above any real logging; a flood is reported below) until it evicts records, then as much again; records held are what its `stats` then says.\n",
        texts.join("; "),
        if missing_texts.is_empty() {
            String::new()
        } else {
            format!(" Not on this machine: {}.", missing_texts.join(", "))
        },
        thousands(g.get("held_pace_lines_per_s").f())
    );
    failed_note(r, ran);
    let rows: Vec<Vec<String>> = g
        .get("held")
        .arr()
        .iter()
        .map(|x| {
            vec![
                x.get("text").str().unwrap_or("?").to_string(),
                thousands(x.get("raw_records").f()),
                thousands(x.get("compressed_records").f()),
                format!("{:.2}×", x.get("ratio").f()),
                fixed(x.get("raw_bytes").f() / x.get("stored_bytes").f(), 2),
                mib(x.get("raw_vm_hwm").f()),
                mib(x.get("compressed_vm_hwm").f()),
            ]
        })
        .collect();
    let _ = writeln!(r.md, "Records held in a 2 MiB ring:\n");
    r.md.push_str(&table(
        &[
            "text",
            "raw ring, records",
            "compressed, records",
            "compressed / raw",
            "raw bytes / stored bytes",
            "raw ring VmHWM, MiB",
            "compressed VmHWM, MiB",
        ],
        &[false, true, true, true, true, true, true],
        &rows,
    ));
    let by: Vec<&Json> = g.get("by_size").arr().iter().collect();
    let rows: Vec<Vec<String>> = by
        .iter()
        .map(|x| {
            vec![
                mib(x.get("buffer_bytes").f()),
                thousands(x.get("raw_records").f()),
                thousands(x.get("compressed_records").f()),
                format!("{:.2}×", x.get("ratio").f()),
                mib(x.get("raw_vm_hwm").f()),
                mib(x.get("compressed_vm_hwm").f()),
            ]
        })
        .collect();
    let _ = writeln!(
        r.md,
        "\nRecords held by buffer size, every text interleaved:\n"
    );
    r.md.push_str(&table(
        &[
            "buffer, MiB",
            "raw ring, records",
            "compressed, records",
            "compressed / raw",
            "raw ring VmHWM, MiB",
            "compressed VmHWM, MiB",
        ],
        &[true; 6],
        &rows,
    ));
    let _ = writeln!(r.md, "\n![records held by buffer size](ring.svg)\n");
    let _ = writeln!(
        r.md,
        "Speed, 2 MiB rings of every text interleaved, full before they are timed; the raw and the compressed memlogd take turns, median (min–max) of {} repetitions. Ingest: 4 writers, unpaced ({} lines per repetition). Dump: a mode-0 extended dump of the whole ring read to EOF ({} records raw, {} compressed). Follow latency: an extended follower, writer and memlogd on one CPU. The ratio is the median of per-repetition ratios.\n",
        b.get("reps").f(),
        thousands(g.get("ingest_lines_per_rep").f()),
        thousands(g.get("dump_raw_records").f()),
        thousands(g.get("dump_compressed_records").f())
    );
    let p99_ratio = g.at("latency_p99_compressed.median").f() / g.at("latency_p99_raw.median").f();
    let rows = vec![
        vec![
            "ingest, 4 writers, M lines/s".to_string(),
            cell(g.get("ingest_raw"), 1e-6, 2),
            cell(g.get("ingest_compressed"), 1e-6, 2),
            format!("{:.2}", g.at("ingest_ratio.median").f()),
        ],
        vec![
            "dump, M records/s".to_string(),
            cell(g.get("dump_raw"), 1e-6, 2),
            cell(g.get("dump_compressed"), 1e-6, 2),
            format!("{:.2}", g.at("dump_ratio.median").f()),
        ],
        vec![
            "follow latency p50, µs".to_string(),
            cell(g.get("latency_p50_raw"), 1.0, 1),
            cell(g.get("latency_p50_compressed"), 1.0, 1),
            fixed(
                g.at("latency_p50_compressed.median").f() / g.at("latency_p50_raw.median").f(),
                2,
            ),
        ],
        vec![
            "follow latency p99, µs".to_string(),
            cell(g.get("latency_p99_raw"), 1.0, 1),
            cell(g.get("latency_p99_compressed"), 1.0, 1),
            fixed(p99_ratio, 2),
        ],
        vec![
            "VmHWM after the dumps, MiB".to_string(),
            mib(g.get("vm_hwm_raw").f()),
            mib(g.get("vm_hwm_compressed").f()),
            fixed(g.get("vm_hwm_compressed").f() / g.get("vm_hwm_raw").f(), 3),
        ],
    ];
    r.md.push_str(&table(
        &["measure", "raw ring", "compressed ring", "compressed / raw"],
        &[false, true, true, true],
        &rows,
    ));
    let _ = writeln!(
        r.md,
        "\nA flood (the unpaced ingest runs) left {} records in the raw ring and {} in the compressed one ({}; {} chunks kept uncompressed: compression may take 40% of memlogd's time, a chunk sealed past that is kept as it is).\n",
        thousands(g.get("flood_raw_records").f()),
        thousands(g.get("flood_compressed_records").f()),
        ratio(
            g.get("flood_compressed_records").f(),
            g.get("flood_raw_records").f()
        ),
        thousands(g.get("flood_chunks_uncompressed").f())
    );
    if !g.get("refilled_compressed_records").is_null() {
        let _ = writeln!(
            r.md,
            "memlogd compresses those chunks later, when it is idle, and packs its arena: after a quiet second the compressed ring's records took {} of their {} raw bytes (against {} right after the flood), and written on at {} lines per second until each ring evicted again, the raw ring held {} records and the compressed one {} ({}).\n",
            thousands(g.get("idle_stored_bytes").f()),
            thousands(g.get("idle_raw_bytes").f()),
            thousands(g.get("flood_stored_bytes").f()),
            thousands(g.get("held_pace_lines_per_s").f()),
            thousands(g.get("refilled_raw_records").f()),
            thousands(g.get("refilled_compressed_records").f()),
            ratio(
                g.get("refilled_compressed_records").f(),
                g.get("refilled_raw_records").f()
            )
        );
    }
    if !g.get("rss_anon_compressed").is_null() {
        let _ = writeln!(
            r.md,
            "Resident after the dumps, private (`RssAnon`: the ring, heap, stack) and file-backed (`RssFile`: code pages the kernel maps from the page cache, which depend on how the binary was linked): raw ring {} and {} MiB, compressed ring {} and {} MiB.\n",
            mib(g.get("rss_anon_raw").f()),
            mib(g.get("rss_file_raw").f()),
            mib(g.get("rss_anon_compressed").f()),
            mib(g.get("rss_file_compressed").f())
        );
    }
    if let Some(st) = d
        .ring_static
        .as_ref()
        .map(|s| s.get("ring"))
        .filter(|x| !x.get("vm_hwm_compressed").is_null())
    {
        let _ = writeln!(
            r.md,
            "The same measure with the static memlogd (`scripts/build-static`: the image's binary is static too): VmHWM after the dumps {} MiB raw, {} MiB compressed; private {} and {} MiB, file-backed {} and {} MiB. Command: `target/release/memlog-bench --memlogd OUTDIR/memlogd --only ring --ring-sizes 2M` (see the list of commands).\n",
            mib(st.get("vm_hwm_raw").f()),
            mib(st.get("vm_hwm_compressed").f()),
            mib(st.get("rss_anon_raw").f()),
            mib(st.get("rss_anon_compressed").f()),
            mib(st.get("rss_file_raw").f()),
            mib(st.get("rss_file_compressed").f())
        );
    }
    raw_links(r, ran, true);
    let line = |name: &str, key: &str, dashed: bool| svg::Line {
        name: name.into(),
        dashed,
        points: by
            .iter()
            .map(|x| svg::Point {
                x: x.get("buffer_bytes").f() / 1048576.0,
                y: x.get(key).f() / 1000.0,
                range: None,
            })
            .collect(),
    };
    let chart = svg::LineChart {
        title: "Records held by buffer size: compressed ring against raw".into(),
        subtitle: format!(
            "real log text ({}), every text interleaved{}",
            g.get("texts")
                .arr()
                .iter()
                .filter_map(|t| t.get("source").str())
                .collect::<Vec<_>>()
                .join(", "),
            if r.quick {
                " (--quick: not meaningful)"
            } else {
                ""
            }
        ),
        x_label: "-buffer-size, MiB".into(),
        y_label: "thousand records held".into(),
        log2_x: true,
        lines: vec![
            line(
                "compressed ring (-ring-compress)",
                "compressed_records",
                false,
            ),
            line("raw ring (-ring-compress=false)", "raw_records", true),
        ],
    };
    r.charts.push(("ring.svg", chart.svg()));
}

/// Parses `scripts/build-static`'s table: `NAME BYTES static`.
fn parse_static(out: &str) -> Vec<(String, u64)> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[..] {
                [name, bytes, "static", ..] if BINARIES.contains(&name) => {
                    bytes.parse().ok().map(|b| (name.to_string(), b))
                }
                _ => None,
            }
        })
        .collect()
}

fn read_json(p: &Path) -> Option<Json> {
    let text = fs::read_to_string(p).ok()?;
    match json::parse(&text) {
        Ok(j) => Some(j),
        Err(e) => {
            eprintln!("memlog-report: {}: {e}", p.display());
            None
        }
    }
}

fn run(o: &Opts) -> i32 {
    let ws = memlog_tests::workspace_dir();
    let target = target_dir();
    let bins = target.join("release");
    let mut m = machine();
    let started = Instant::now();
    let tmp = TempDir::new("report");
    let t = o.timeout;
    let mut ran: Vec<Ran> = Vec::new();
    let q = |v: &mut Vec<String>| {
        if o.quick {
            v.push("--quick".into());
        }
    };
    if o.build {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let argv: Vec<String> = [
            cargo.as_str(),
            "build",
            "--release",
            "--workspace",
            "--bins",
        ]
        .map(String::from)
        .to_vec();
        let shown = "cargo build --release --workspace --bins".to_string();
        let env = [("CARGO_TARGET_DIR", target.display().to_string())];
        let b = run_child("build", &argv, shown, &env, t, tmp.path());
        if !b.ok {
            eprintln!(
                "memlog-report: the release build failed ({}); no benchmark run",
                b.status
            );
            return 1;
        }
        ran.push(b);
    }
    for b in ["memlogd", "memlog-bench", "memlog-syslog-bench"] {
        if !bins.join(b).is_file() {
            eprintln!(
                "memlog-report: {} is missing: run `cargo build --release --workspace --bins` (or drop --no-build)",
                bins.join(b).display()
            );
            return 1;
        }
    }
    let bin = |n: &str| bins.join(n).display().to_string();
    let shown_bin = |n: &str| format!("{}/{n}", rel(&bins));
    let json_arg = |n: &str| tmp.join(format!("{n}.json")).display().to_string();
    let mut jobs: Vec<(&'static str, Vec<String>)> = Vec::new();
    if o.runs("bench") {
        let mut v = vec![
            "--writers".into(),
            "1,4,16,64".into(),
            "--only".into(),
            "ingest,latency,dump,memory,ring".into(),
        ];
        q(&mut v);
        jobs.push(("memlog-bench", v));
    }
    if o.runs("syslog") {
        let mut v = Vec::new();
        q(&mut v);
        jobs.push(("memlog-syslog-bench", v));
    }
    if o.runs("logwrite") {
        // RECORDS REPS come after --json.
        let v = if o.quick {
            vec!["20000".into(), "1".into()]
        } else {
            Vec::new()
        };
        jobs.push(("memlog-logwrite-bench", v));
    }
    if o.runs("startup") {
        let mut v = Vec::new();
        q(&mut v);
        jobs.push(("memlog-startup-bench", v));
    }
    for (name, args) in jobs {
        let mut argv = vec![bin(name), "--json".into(), json_arg(name)];
        argv.extend(args.iter().cloned());
        let mut shown = vec![shown_bin(name), "--json".into(), format!("raw/{name}.json")];
        shown.extend(args);
        ran.push(run_child(name, &argv, shown.join(" "), &[], t, tmp.path()));
    }
    if o.runs("static") {
        let out = tmp.join("static");
        let argv = vec![
            "sh".into(),
            ws.join("scripts/build-static").display().to_string(),
            out.display().to_string(),
        ];
        let env = [("CARGO_TARGET_DIR", target.display().to_string())];
        ran.push(run_child(
            "build-static",
            &argv,
            "scripts/build-static OUTDIR".into(),
            &env,
            t,
            tmp.path(),
        ));
        // The ring's memory with the static memlogd: the image links it
        // statically, and what is resident depends on how it is linked.
        let memlogd = out.join("memlogd");
        if o.runs("bench") && memlogd.is_file() {
            let mut args = vec![
                "--memlogd".to_string(),
                memlogd.display().to_string(),
                "--only".into(),
                "ring".into(),
                "--ring-sizes".into(),
                "2M".into(),
            ];
            q(&mut args);
            let mut argv = vec![
                bin("memlog-bench"),
                "--json".into(),
                json_arg("memlog-bench-static"),
            ];
            argv.extend(args.iter().cloned());
            let mut shown = vec![
                shown_bin("memlog-bench"),
                "--json".into(),
                "raw/memlog-bench-static.json".into(),
            ];
            shown.extend(args.into_iter().map(|a| {
                if a.ends_with("/memlogd") {
                    "OUTDIR/memlogd".into()
                } else {
                    a
                }
            }));
            ran.push(run_child(
                "memlog-bench-static",
                &argv,
                shown.join(" "),
                &[],
                t,
                tmp.path(),
            ));
        }
    }
    m.load_end = loadavg();
    let find = |n: &str| ran.iter().find(|x| x.name == n);
    let data = Data {
        bench: read_json(&tmp.join("memlog-bench.json")),
        syslog: read_json(&tmp.join("memlog-syslog-bench.json")),
        logwrite: read_json(&tmp.join("memlog-logwrite-bench.json")),
        startup: read_json(&tmp.join("memlog-startup-bench.json")),
        ring_static: read_json(&tmp.join("memlog-bench-static.json")),
        statics: find("build-static")
            .map(|x| parse_static(&String::from_utf8_lossy(&x.stdout)))
            .unwrap_or_default(),
        dynamic: BINARIES
            .iter()
            .filter_map(|&b| {
                fs::metadata(bins.join(b))
                    .ok()
                    .map(|md| (b.to_string(), md.len()))
            })
            .collect(),
    };
    let mut r = Report {
        md: String::new(),
        charts: Vec::new(),
        quick: o.quick,
    };
    let total = started.elapsed().as_secs_f64();
    head(&mut r, o, &m, &data, total);
    ingest(&mut r, &data, find("memlog-bench"));
    syslog(&mut r, &data, find("memlog-syslog-bench"));
    latency(&mut r, &data, find("memlog-bench"));
    dump(&mut r, &data, find("memlog-bench"));
    logwrite(&mut r, &data, find("memlog-logwrite-bench"));
    memory(&mut r, &data, find("memlog-bench"));
    sizes(&mut r, &data, find("build-static"), &target);
    startup(&mut r, &data, find("memlog-startup-bench"));
    ring(&mut r, &data, find("memlog-bench"));
    commands(&mut r, &ran);
    let status = match write_out(o, &r, &ran, tmp.path()) {
        Ok(()) => {
            eprintln!(
                "memlog-report: wrote {} in {total:.0} s",
                o.out.join("report.md").display()
            );
            i32::from(ran.iter().any(|x| !x.ok))
        }
        Err(e) => {
            eprintln!("memlog-report: {e}");
            1
        }
    };
    drop(tmp);
    status
}

fn head(r: &mut Report, o: &Opts, m: &Machine, d: &Data, total: f64) {
    let _ = writeln!(r.md, "# memlog benchmark report\n");
    if o.quick {
        let _ = writeln!(
            r.md,
            "> **`--quick` smoke run**: small counts and one repetition; the numbers are not meaningful.\n"
        );
    }
    let cmd = if o.args.is_empty() {
        String::new()
    } else {
        format!(" -- {}", o.args.join(" "))
    };
    let _ = writeln!(
        r.md,
        "Made by `cargo run --release -p memlog-tests --bin memlog-report{cmd}`, which runs every benchmark of the project as a child process, in one sitting, and writes this file, the charts beside it and each benchmark's own output under [raw/](raw/). Every ratio compares two things measured in the same run on the same machine; medians throughout.\n"
    );
    let rows = vec![
        vec!["date".into(), m.date.clone()],
        vec!["commit".into(), format!("`{}`", m.commit)],
        vec![
            "machine".into(),
            format!("{} CPUs (nproc), {}, {} RAM", m.nproc, m.cpu, m.mem),
        ],
        vec!["system".into(), format!("Linux {}, {}", m.kernel, m.os)],
        vec!["compiler".into(), m.rustc.clone()],
        vec![
            "load average (1, 5, 15 min)".into(),
            format!(
                "{} at the start, {} at the end{}",
                m.load_start,
                m.load_end,
                if o.runs("static") {
                    " (the static build, run last, included)"
                } else {
                    ""
                }
            ),
        ],
        vec!["duration".into(), format!("{total:.0} s")],
    ];
    r.md.push_str(&table(&["", ""], &[false, false], &rows));
    let before = m
        .load_start
        .split_whitespace()
        .next()
        .and_then(|l| l.parse::<f64>().ok())
        .unwrap_or(0.0);
    if before > 0.5 * m.nproc as f64 {
        let _ = writeln!(
            r.md,
            "\n> **The machine was busy**: a 1-minute load average of {before:.2} on {} CPUs when the report started, from other work. It competed with every measurement, so absolute rates and tail latencies are lower and noisier than on an idle machine; the ratios compare runs made back to back under the same load and are the figures to read.",
            m.nproc
        );
    }
    let _ = writeln!(r.md, "\n## At a glance\n");
    r.md.push_str(&glance(d));
    let _ = writeln!(
        r.md,
        "\n![ingest against writers](ingest.svg)\n\n![follow latency percentiles](latency.svg)\n"
    );
}

fn commands(r: &mut Report, ran: &[Ran]) {
    let _ = writeln!(r.md, "## Commands\n");
    let _ = writeln!(
        r.md,
        "Run from the workspace root, in this order. `--json` files were written to a temporary directory and copied to `raw/`, with each benchmark's standard output as `raw/NAME.md`.\n"
    );
    let rows: Vec<Vec<String>> = ran
        .iter()
        .map(|x| {
            vec![
                format!("`{}`", x.shown),
                x.status.clone(),
                format!("{:.0}", x.secs),
            ]
        })
        .collect();
    r.md.push_str(&table(
        &["command", "status", "seconds"],
        &[false, false, true],
        &rows,
    ));
}

/// Writes report.md, the charts and raw/ into the output directory,
/// removing charts and raw files of an earlier run that this one did not make.
fn write_out(o: &Opts, r: &Report, ran: &[Ran], tmp: &Path) -> Res<()> {
    let raw = o.out.join("raw");
    fs::create_dir_all(&raw).map_err(|e| format!("creating {}: {e}", raw.display()))?;
    let put = |p: PathBuf, data: &[u8]| {
        fs::write(&p, data).map_err(|e| format!("writing {}: {e}", p.display()))
    };
    for c in CHARTS {
        if !r.charts.iter().any(|(n, _)| *n == c) {
            let _ = fs::remove_file(o.out.join(c));
        }
    }
    for (name, svg) in &r.charts {
        put(o.out.join(name), svg.as_bytes())?;
    }
    let names = [
        "build",
        "memlog-bench",
        "memlog-syslog-bench",
        "memlog-logwrite-bench",
        "memlog-startup-bench",
        "build-static",
    ];
    for n in names {
        let _ = fs::remove_file(raw.join(format!("{n}.md")));
        let _ = fs::remove_file(raw.join(format!("{n}.json")));
    }
    for x in ran.iter().filter(|x| x.name != "build") {
        let mut md = x.stdout.clone();
        if x.name == "build-static" {
            md = format!(
                "# scripts/build-static\n\n```\n{}```\n",
                String::from_utf8_lossy(&x.stdout)
            )
            .into_bytes();
        }
        put(raw.join(format!("{}.md", x.name)), &md)?;
        let j = tmp.join(format!("{}.json", x.name));
        if let Ok(data) = fs::read(&j) {
            put(raw.join(format!("{}.json", x.name)), &data)?;
        }
    }
    put(o.out.join("report.md"), r.md.as_bytes())?;
    // The README's size table is made from the report, never by hand.
    let ws = memlog_tests::workspace_dir();
    if o.out == ws.join("docs/bench") {
        let readme = ws.join("README.md");
        let text = fs::read_to_string(&readme)
            .map_err(|e| format!("reading {}: {e}", readme.display()))?;
        match readme_with_sizes(&text, &r.md) {
            Some(new) => put(readme, new.as_bytes())?,
            None => eprintln!(
                "memlog-report: README.md has no {SIZES_BEGIN} block, or the report no size table: not updated"
            ),
        }
    }
    Ok(())
}

/// Markers of the generated size table in README.md.
const SIZES_BEGIN: &str =
    "<!-- sizes: made by memlog-report from docs/bench/report.md, section 7; do not edit -->";
const SIZES_END: &str = "<!-- end of sizes -->";

/// The binary size table of a report (section 7), as README.md shows it.
fn sizes_block(report: &str) -> Option<String> {
    let sec = &report[report.find("## 7. Binary sizes")?..];
    let table: Vec<&str> = sec
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect();
    if table.len() < 3 {
        return None;
    }
    // The machine table's `| commit | `HASH (branch ...)` |` row.
    let commit = report
        .lines()
        .find(|l| l.starts_with("| commit |"))
        .and_then(|l| l.split('`').nth(1))
        .and_then(|c| c.split_whitespace().next())
        .map(|c| format!(" (commit {c})"))
        .unwrap_or_default();
    Some(format!(
        "{SIZES_BEGIN}\nFrom the latest benchmark report{commit}, [docs/bench/report.md](docs/bench/report.md#7-binary-sizes):\n\n{}\n{SIZES_END}",
        table.join("\n")
    ))
}

/// `readme` with its size block replaced by the one of `report`.
fn readme_with_sizes(readme: &str, report: &str) -> Option<String> {
    let start = readme.find(SIZES_BEGIN)?;
    let end = start + readme[start..].find(SIZES_END)? + SIZES_END.len();
    Some(format!(
        "{}{}{}",
        &readme[..start],
        sizes_block(report)?,
        &readme[end..]
    ))
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("memlog-report: {e}");
            std::process::exit(2);
        }
    };
    let status = run(&o);
    std::process::exit(status);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_sizes_are_the_reports() {
        let ws = memlog_tests::workspace_dir();
        let readme = fs::read_to_string(ws.join("README.md")).expect("README.md");
        let report = fs::read_to_string(ws.join("docs/bench/report.md")).expect("report.md");
        let made = readme_with_sizes(&readme, &report).expect("a size block in both");
        assert!(
            made == readme,
            "README.md's size table differs from docs/bench/report.md: run memlog-report (it rewrites the block), do not edit it by hand"
        );
    }

    fn data(bench: &str) -> Data {
        Data {
            bench: Some(json::parse(bench).unwrap()),
            syslog: None,
            logwrite: None,
            startup: None,
            ring_static: None,
            statics: vec![("memlogd".into(), 1_500_000)],
            dynamic: vec![("memlogd".into(), 600_000)],
        }
    }

    const BENCH: &str = r#"{"reps":3,
      "ingest":{"lines":4000000,"line_len":100,"memlogd_args":"-buffer-size 64M","rows":[
        {"writers":1,"memlogd_lines_per_s":{"median":16e6,"min":15e6,"max":17e6},
         "baseline_lines_per_s":{"median":60e6,"min":50e6,"max":70e6},"ratio":{"median":0.27}},
        {"writers":64,"memlogd_lines_per_s":{"median":18e6,"min":18e6,"max":18e6},
         "baseline_lines_per_s":{"median":70e6,"min":70e6,"max":70e6},"ratio":{"median":0.26}}]},
      "latency":{"samples":20000,"rows":[
        {"placement":"one CPU (0)","path":"memlogd, extended follower",
         "p50_us":{"median":5.5},"p90_us":{"median":6.1},"p99_us":{"median":7.7},"max_us":{"median":60}},
        {"placement":"one CPU (0)","path":"baseline: bare relay thread",
         "p50_us":{"median":3.7},"p90_us":{"median":3.8},"p99_us":{"median":4.4},"max_us":{"median":40}}]},
      "memory":[{"buffer_bytes":1048576,"lines":21000,"idle_vm_hwm":2000000,"vm_hwm":3460300,"vm_rss":3460300}]}"#;

    #[test]
    fn sections_from_json() {
        let d = data(BENCH);
        let mut r = Report {
            md: String::new(),
            charts: Vec::new(),
            quick: false,
        };
        ingest(&mut r, &d, None);
        latency(&mut r, &d, None);
        memory(&mut r, &d, None);
        dump(&mut r, &d, None);
        assert!(
            r.md.contains("| 1 | 16.00 (15.00–17.00) | 60.00 (50.00–70.00) | 0.27 | 1600 |"),
            "{}",
            r.md
        );
        assert!(r.md.contains("| 64 | 18.00 | 70.00 | 0.26 | 1800 |"));
        assert!(r.md.contains(
            "| one CPU (0) | memlogd, extended follower | 5.5 | 6.1 | 7.7 | 60 | 1.49× | 1.75× |"
        ));
        assert!(r
            .md
            .contains("| 1.0 | 21,000 | 1.9 | 3.3 | 3.3 | 2.3 | 3.300 |"));
        // No dump rows: said so, nothing invented.
        assert!(r.md.contains("## 4. Dump throughput\n\nNot run"));
        let names: Vec<&str> = r.charts.iter().map(|c| c.0).collect();
        assert_eq!(names, ["ingest.svg", "latency.svg"]);
        let g = glance(&d);
        assert!(
            g.contains(
                "| fd ingest, 64 writers, M lines/s | 18.0 | 70.0 (bare epoll loop) | 0.26× |"
            ),
            "{g}"
        );
        assert!(g.contains(
            "| follow latency p99, one CPU (0), µs | 7.7 | 4.4 (bare relay thread) | 1.75× |"
        ));
        assert!(
            g.contains("| memlogd binary, KiB (dynamic; static glibc) | 586 | 1465 static |  |")
        );
        assert!(!g.contains("dump"), "no dump figures without dump results");
    }

    #[test]
    fn static_sizes() {
        let out = "binary          bytes  linkage\nmemlogd       1501824  static\nlogread    1437664  NOT STATIC: dynamic\ninit-shim 1425152 static\nin /tmp/x\n";
        assert_eq!(
            parse_static(out),
            [
                ("memlogd".to_string(), 1501824),
                ("init-shim".to_string(), 1425152)
            ]
        );
    }

    #[test]
    fn tree_of_this_process() {
        let mut c = Command::new("sleep").arg("5").spawn().unwrap();
        let d = descendants(std::process::id());
        let _ = c.kill();
        let _ = c.wait();
        assert!(d.contains(&c.id()), "{d:?}");
    }
}
