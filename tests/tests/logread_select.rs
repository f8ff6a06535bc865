//! logread's selection flags and output formats against a real memlogd
//! holding records from several sources and severities (fd inputs and
//! syslog): exact output for each flag, and the same output whether
//! memlogd filters (server side), logread filters (`--client-filter`), or
//! the server is a LinuxKit-style memlogd replaying the same records.

use memlog::json;
use memlog::proto::{Mode, Record, Request};
use memlog::timefmt;
use memlog_tests::{logread, run_with_timeout, LineReader, Memlogd, TempDir, TIMEOUT};
use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A memlogd with a known set of records, their extended dump, and the
/// raw extended record lines.
struct Fixture {
    m: Memlogd,
    recs: Vec<Record>,
    raw: Vec<String>,
}

fn syslog(devlog: &Path, msgs: &[&str]) {
    let s = UnixDatagram::unbound().expect("socket");
    for m in msgs {
        s.send_to(m.as_bytes(), devlog)
            .expect("send syslog datagram");
    }
}

fn fixture() -> Fixture {
    let dir = TempDir::new("lrsel");
    let devlog = dir.join("devlog");
    let m = Memlogd::start_in(dir, &["-syslog", devlog.to_str().expect("utf-8")]);
    let mut a = m.writer("svc.out");
    a.write_all(b"hello one\neth0: up\nerror: disk full\nliteral [x] brackets\n")
        .expect("write");
    m.wait_msg("svc.out", "literal [x] brackets");
    let mut b = m.writer("onboot.a");
    b.write_all(b"boot a1\nboot a2\n").expect("write");
    m.wait_msg("onboot.a", "boot a2");
    syslog(
        &devlog,
        &[
            "<11>sshd: auth failure",
            "<12>kern: link warning",
            "<13>ntpd: clock stepped",
            "<15>dbg[77]: debug detail",
            "<8>panicky: emerg!",
        ],
    );
    m.wait_msg("panicky", "emerg!");
    let mut c = m.writer("onboot.b");
    c.write_all(b"boot b1\n").expect("write");
    m.wait_msg("onboot.b", "boot b1");
    let mut d = m.writer("odd;name");
    d.write_all(b"semi;colon msg\n").expect("write");
    m.wait_msg("odd;name", "semi;colon msg");
    let recs = m.records();
    let raw = raw_dump(&m);
    assert_eq!(recs.len(), raw.len());
    assert_eq!(recs.len(), 14, "{recs:#?}");
    Fixture { m, recs, raw }
}

/// The record lines of an extended dump, as memlogd sent them.
fn raw_dump(m: &Memlogd) -> Vec<String> {
    let mut s = m.connect();
    s.write_all(&Request::new(Mode::Dump).encode())
        .expect("request");
    let mut r = LineReader::new(s);
    let lines = r.read_to_eof();
    lines[1..]
        .iter()
        .map(|l| String::from_utf8(l.clone()).expect("utf-8"))
        .collect()
}

fn run(socket: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = logread(args);
    cmd.arg("-socket").arg(socket);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(&mut cmd, TIMEOUT)
}

/// stdout of a successful run with nothing on stderr.
fn ok(socket: &Path, args: &[&str]) -> String {
    ok_env(socket, args, &[])
}

fn ok_env(socket: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run(socket, args, env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "logread {args:?}: {}: {err}",
        out.status
    );
    assert!(err.is_empty(), "logread {args:?}: stderr {err}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// LinuxKit's text form of `recs`.
fn text(recs: &[&Record]) -> String {
    let mut v = Vec::new();
    for r in recs {
        r.write_text(&mut v);
    }
    String::from_utf8(v).expect("utf-8")
}

fn sev(r: &Record) -> u8 {
    r.severity.unwrap_or(6)
}

fn ns(r: &Record) -> i64 {
    timefmt::parse_rfc3339(&r.time).expect("time")
}

/// A server that speaks only LinuxKit's protocol: for every connection it
/// reads one byte and sends `lines` (records without sequence numbers, but
/// with severities where the records have one), then closes with the rest
/// of the request unread, as LinuxKit's memlogd does.
struct FakeLinuxKit {
    socket: PathBuf,
    _dir: TempDir,
}

fn linuxkit_lines(recs: &[Record]) -> String {
    let mut v = Vec::new();
    for r in recs {
        v.extend_from_slice(b"{\"time\":");
        json::write_str(&mut v, r.time.as_bytes());
        v.extend_from_slice(b",\"source\":");
        json::write_str(&mut v, r.source.as_bytes());
        v.extend_from_slice(b",\"msg\":");
        json::write_str(&mut v, r.msg.as_bytes());
        if let Some(s) = r.severity {
            v.extend_from_slice(format!(",\"severity\":{s}").as_bytes());
        }
        v.extend_from_slice(b"}\n");
    }
    String::from_utf8(v).expect("utf-8")
}

impl FakeLinuxKit {
    fn start(recs: &[Record]) -> FakeLinuxKit {
        let dir = TempDir::new("lrfake");
        let socket = dir.join("fake.sock");
        let l = UnixListener::bind(&socket).expect("bind");
        let lines = linuxkit_lines(recs);
        // Serves until the test process ends (the socket file goes with the dir).
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).is_ok() && b[0] == 0 {
                    let _ = s.write_all(lines.as_bytes());
                }
            }
        });
        FakeLinuxKit { socket, _dir: dir }
    }
}

/// Runs `args` server side, client side and against the fake LinuxKit
/// server; all three must print `want`.
fn same_everywhere(f: &Fixture, fake: &FakeLinuxKit, args: &[&str], want: &str) {
    let q = f.m.query_socket();
    assert_eq!(ok(q, args), want, "server side: logread {args:?}");
    let mut local = args.to_vec();
    local.push("--client-filter");
    assert_eq!(ok(q, &local), want, "client side: logread {local:?}");
    assert_eq!(
        ok(&fake.socket, args),
        want,
        "against LinuxKit: logread {args:?}"
    );
}

#[test]
fn each_selection_flag_prints_exactly_the_selected_records_wherever_it_runs() {
    let f = fixture();
    let fake = FakeLinuxKit::start(&f.recs);
    let all: Vec<&Record> = f.recs.iter().collect();
    let t4 = f.recs[4].time.clone();
    let t9 = f.recs[9].time.clone();
    // A local time (TZ=UTC0 below) for record 9: "YYYY-MM-DD HH:MM:SS.fff".
    let t9_local = t9.trim_end_matches('Z').replacen('T', " ", 1);
    type Pred = Box<dyn Fn(&Record) -> bool>;
    let cases: Vec<(Vec<&str>, Pred)> = vec![
        (vec![], Box::new(|_| true)),
        (vec!["-s", "svc.out"], Box::new(|r| r.source == "svc.out")),
        (
            vec!["-s", "onboot.*"],
            Box::new(|r| r.source.starts_with("onboot.")),
        ),
        (
            vec!["-s", "sshd", "--source", "onboot.*"],
            Box::new(|r| r.source == "sshd" || r.source.starts_with("onboot.")),
        ),
        (
            vec!["-s", "[kn]*"],
            Box::new(|r| r.source == "kern" || r.source == "ntpd"),
        ),
        (vec!["-s", "odd;name"], Box::new(|r| r.source == "odd;name")),
        (vec!["-s", "no-such-source"], Box::new(|_| false)),
        (vec!["-x", "memlogd"], Box::new(|r| r.source != "memlogd")),
        (
            vec!["-x", "*.out", "--exclude=memlogd"],
            Box::new(|r| r.source != "memlogd" && r.source != "svc.out"),
        ),
        (
            vec!["-s", "onboot.*", "-x", "onboot.b"],
            Box::new(|r| r.source == "onboot.a"),
        ),
        (
            vec!["-e", "eth[0-9]: up"],
            Box::new(|r| r.msg == "eth0: up"),
        ),
        (
            vec!["-e", "^boot", "-e", "disk"],
            Box::new(|r| r.msg.starts_with("boot") || r.msg.contains("disk")),
        ),
        (vec!["-e", "[x]"], Box::new(|r| r.msg.contains('x'))),
        (
            vec!["--fixed-strings", "-e", "[x]"],
            Box::new(|r| r.msg.contains("[x]")),
        ),
        (
            vec!["--fixed-strings", "-e", "boot a", "-e", "emerg"],
            Box::new(|r| r.msg.contains("boot a") || r.msg.contains("emerg")),
        ),
        (vec!["-p", "err"], Box::new(|r| sev(r) <= 3)),
        (vec!["-p", "3"], Box::new(|r| sev(r) <= 3)),
        (vec!["-p", "warning"], Box::new(|r| sev(r) <= 4)),
        (vec!["--priority=notice"], Box::new(|r| sev(r) <= 5)),
        (vec!["-p", "info"], Box::new(|r| sev(r) <= 6)),
        (vec!["-p", "debug"], Box::new(|_| true)),
        (vec!["-p", "emerg"], Box::new(|r| sev(r) == 0)),
        (vec!["--since", &t4], {
            let t = ns(&f.recs[4]);
            Box::new(move |r| ns(r) >= t)
        }),
        (vec!["--until", &t4], {
            let t = ns(&f.recs[4]);
            Box::new(move |r| ns(r) <= t)
        }),
        (vec!["--since", &t4, "--until", &t9], {
            let (a, b) = (ns(&f.recs[4]), ns(&f.recs[9]));
            Box::new(move |r| ns(r) >= a && ns(r) <= b)
        }),
        (vec!["--since", "1h"], Box::new(|_| true)),
        (vec!["--until", "1h"], Box::new(|_| false)),
        (vec!["--since", "-2d", "--until", "now"], Box::new(|_| true)),
        (
            vec![
                "-s", "onboot.*", "-p", "info", "--since", &t4, "-x", "onboot.b",
            ],
            {
                let t = ns(&f.recs[4]);
                Box::new(move |r| r.source == "onboot.a" && ns(r) >= t)
            },
        ),
    ];
    for (args, pred) in &cases {
        let want: Vec<&Record> = all.iter().copied().filter(|r| pred(r)).collect();
        same_everywhere(&f, &fake, args, &text(&want));
    }
    // A local time, read in the zone of TZ.
    let want: Vec<&Record> = {
        let t = ns(&f.recs[9]);
        all.iter().copied().filter(|r| ns(r) >= t).collect()
    };
    let args = ["--since", t9_local.as_str()];
    assert_eq!(
        ok_env(f.m.query_socket(), &args, &[("TZ", "UTC0")]),
        text(&want)
    );
    assert_eq!(ok_env(&fake.socket, &args, &[("TZ", "UTC0")]), text(&want));
    // memlogd wrote nothing of its own meanwhile (the model stayed valid).
    assert_eq!(f.m.records(), f.recs);
}

#[test]
fn last_n_records_of_the_selection_wherever_it_runs() {
    let f = fixture();
    let fake = FakeLinuxKit::start(&f.recs);
    let all: Vec<&Record> = f.recs.iter().collect();
    let last = |n: usize, pred: &dyn Fn(&Record) -> bool| -> String {
        let sel: Vec<&Record> = all.iter().copied().filter(|r| pred(r)).collect();
        text(&sel[sel.len().saturating_sub(n)..])
    };
    let any = |_: &Record| true;
    same_everywhere(&f, &fake, &["-n", "3"], &last(3, &any));
    same_everywhere(&f, &fake, &["-l", "3"], &last(3, &any));
    same_everywhere(&f, &fake, &["-n", "1"], &last(1, &any));
    same_everywhere(&f, &fake, &["-n", "0"], "");
    same_everywhere(&f, &fake, &["-n", "1000"], &last(1000, &any));
    same_everywhere(&f, &fake, &["-n", "14"], &last(14, &any));
    same_everywhere(&f, &fake, &["-n", "13"], &last(13, &any));
    same_everywhere(
        &f,
        &fake,
        &["-n", "2", "-s", "onboot.*"],
        &last(2, &|r: &Record| r.source.starts_with("onboot.")),
    );
    // With a regex the tail is kept in logread.
    same_everywhere(
        &f,
        &fake,
        &["-n", "2", "-e", "boot"],
        &last(2, &|r: &Record| r.msg.contains("boot")),
    );
    same_everywhere(
        &f,
        &fake,
        &["-n", "2", "-p", "warning", "-x", "panicky"],
        &last(2, &|r: &Record| sev(r) <= 4 && r.source != "panicky"),
    );
}

/// Splits an RFC 3339 UTC time shifted by `off` seconds into
/// (year, month, day, "HH:MM:SS", microseconds).
fn local_fields(time: &str, off: i64) -> (String, usize, u32, String, u32) {
    let ns = timefmt::parse_rfc3339(time).expect("time") + off * 1_000_000_000;
    let micros = (ns.rem_euclid(1_000_000_000) / 1000) as u32;
    let s = timefmt::rfc3339_nano(ns);
    (
        s[0..4].to_owned(),
        s[5..7].parse().expect("month"),
        s[8..10].parse().expect("day"),
        s[11..19].to_owned(),
        micros,
    )
}

#[test]
fn output_formats_are_exact() {
    let f = fixture();
    let q = f.m.query_socket();
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let pid = |r: &Record| r.pid.map(|p| format!("[{p}]")).unwrap_or_default();
    let each = |line: &dyn Fn(&Record) -> String| -> String {
        f.recs.iter().map(|r| line(r) + "\n").collect()
    };
    let all: Vec<&Record> = f.recs.iter().collect();
    assert_eq!(ok(q, &[]), text(&all));
    assert_eq!(ok(q, &["-o", "linuxkit"]), text(&all));
    assert_eq!(
        ok(q, &["-o", "kmsg"]),
        each(&|r| format!("{},{};{}", r.time, r.source.replace(';', "\\;"), r.msg))
    );
    assert_eq!(ok(q, &["-o", "cat"]), each(&|r| r.msg.clone()));
    // JSON: exactly the lines memlogd sends its own clients.
    assert_eq!(
        ok(q, &["--output=json"]),
        f.raw.iter().map(|l| format!("{l}\n")).collect::<String>()
    );
    // Local times in a fixed zone two and a half hours east of UTC.
    let env = [("TZ", "XYZ-02:30")];
    let off = 2 * 3600 + 1800;
    assert_eq!(
        ok_env(q, &["-o", "short"], &env),
        each(&|r| {
            let (_, mo, d, hms, _) = local_fields(&r.time, off);
            format!(
                "{} {d:>2} {hms} {}{}: {}",
                MONTHS[mo - 1],
                r.source,
                pid(r),
                r.msg
            )
        })
    );
    assert_eq!(
        ok_env(q, &["-o", "precise"], &env),
        each(&|r| {
            let (_, mo, d, hms, us) = local_fields(&r.time, off);
            format!(
                "{} {d:>2} {hms}.{us:06} {}{}: {}",
                MONTHS[mo - 1],
                r.source,
                pid(r),
                r.msg
            )
        })
    );
    assert_eq!(
        ok_env(q, &["-o", "iso"], &env),
        each(&|r| {
            let (y, mo, d, hms, _) = local_fields(&r.time, off);
            format!(
                "{y}-{mo:02}-{d:02}T{hms}+02:30 {}{}: {}",
                r.source,
                pid(r),
                r.msg
            )
        })
    );
    assert_eq!(
        ok_env(q, &["-o", "iso-precise"], &env),
        each(&|r| {
            let (y, mo, d, hms, us) = local_fields(&r.time, off);
            format!(
                "{y}-{mo:02}-{d:02}T{hms}.{us:06}+02:30 {}{}: {}",
                r.source,
                pid(r),
                r.msg
            )
        })
    );
    // The syslog records carry the sender's pid, shown as SOURCE[PID].
    assert!(ok(q, &["-o", "short", "-s", "sshd"]).contains(" sshd["));
}

#[test]
fn colour_by_severity_only_when_asked_or_on_a_terminal() {
    let f = fixture();
    let q = f.m.query_socket();
    let plain = ok(q, &[]);
    // In a pipe: never colour, whatever the severities.
    assert_eq!(ok(q, &["--color=auto"]), plain);
    assert_eq!(ok(q, &["--color", "never"]), plain);
    assert!(!plain.contains('\x1b'));
    let coloured = ok(q, &["--color=always"]);
    let want: String = f
        .recs
        .iter()
        .map(|r| {
            let mut v = Vec::new();
            r.write_text(&mut v);
            v.pop();
            let line = String::from_utf8(v).expect("utf-8");
            let esc = match sev(r) {
                0..=2 => "\x1b[1;31m",
                3 => "\x1b[31m",
                4 => "\x1b[33m",
                5 => "\x1b[1m",
                7 => "\x1b[2m",
                _ => return line + "\n",
            };
            format!("{esc}{line}\x1b[0m\n")
        })
        .collect();
    assert_eq!(coloured, want);
    // JSON is never coloured.
    assert!(!ok(q, &["--color=always", "-o", "json"]).contains('\x1b'));
    // On a terminal, colour is on by default (and NO_COLOR turns it off).
    let tty = on_a_terminal(q, &["-p", "err"], &[]);
    assert!(tty.contains("\x1b[31m"), "{tty:?}");
    let tty = on_a_terminal(q, &["-p", "err"], &[("NO_COLOR", "1")]);
    assert!(!tty.contains('\x1b'), "{tty:?}");
}

/// Runs logread with its stdout on a pseudo-terminal; returns what it printed.
fn on_a_terminal(q: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: posix_openpt returns a new fd or -1; no pointers involved.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    assert!(master >= 0, "posix_openpt");
    // SAFETY: master is a new fd that nothing else owns.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    use std::os::fd::AsRawFd;
    // SAFETY: grantpt/unlockpt take the fd of a pty master we own.
    unsafe {
        assert_eq!(libc::grantpt(master.as_raw_fd()), 0);
        assert_eq!(libc::unlockpt(master.as_raw_fd()), 0);
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: ptsname_r writes at most name.len() bytes into our buffer.
    let r = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    assert_eq!(r, 0, "ptsname_r");
    // SAFETY: ptsname_r wrote a NUL-terminated string into `name`.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_str()
        .expect("utf-8")
        .to_owned();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open pty slave");
    let mut cmd = logread(args);
    cmd.arg("-socket")
        .arg(q)
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(slave).stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn logread");
    drop(cmd);
    let status = memlog_tests::wait_child(&mut child, TIMEOUT).expect("logread exits");
    assert!(status.success(), "{status}");
    // Everything it wrote is in the master's buffer.
    let mut got = Vec::new();
    let mut f = std::fs::File::from(master);
    let mut chunk = [0u8; 4096];
    loop {
        // Non-blocking read of what is buffered.
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&f),
            nix::poll::PollFlags::POLLIN,
        )];
        let n = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(200u16)).expect("poll");
        if n == 0 {
            break;
        }
        match f.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The selection fields on the wire: what memlogd sends for them, and its
/// refusal of bad values.
#[test]
fn selection_fields_on_the_wire() {
    let f = fixture();
    let query = |req: &Request| -> Vec<memlog::proto::Line> {
        let mut c = f.m.query(req);
        let mut v = Vec::new();
        while let Some(l) = c.next_line().expect("read") {
            v.push(l);
        }
        v
    };
    let msgs = |lines: &[memlog::proto::Line]| -> Vec<String> {
        memlog_tests::records(lines)
            .into_iter()
            .map(|r| r.msg)
            .collect()
    };
    let mut req = Request::new(Mode::Dump);
    req.source_globs = vec![b"onboot.*".to_vec()];
    req.exclude = vec![b"onboot.b".to_vec()];
    assert_eq!(msgs(&query(&req)), ["boot a1", "boot a2"]);
    let mut req = Request::new(Mode::Dump);
    req.exclude_globs = vec![b"*".to_vec()];
    assert!(msgs(&query(&req)).is_empty());
    let mut req = Request::new(Mode::Dump);
    req.min_severity = Some(4);
    req.grep = vec![b"link".to_vec(), b"!".to_vec()];
    assert_eq!(msgs(&query(&req)), ["link warning", "emerg!"]);
    let mut req = Request::new(Mode::Dump);
    req.since_ns = Some(ns(&f.recs[13]));
    assert_eq!(msgs(&query(&req)), ["semi;colon msg"]);
    req.since_ns = None;
    req.until_ns = Some(ns(&f.recs[0]));
    assert_eq!(msgs(&query(&req)), ["memlogd started"]);
    // last=N after after=: the last N of what follows the position.
    let mut req = Request::new(Mode::Dump);
    req.last = Some(2);
    req.after = Some(memlog::proto::Position {
        instance: match query(&Request::new(Mode::Dump)).first() {
            Some(memlog::proto::Line::Hello { instance, .. }) => *instance,
            other => panic!("{other:?}"),
        },
        seq: 10,
    });
    req.source_globs = vec![b"*".to_vec()];
    assert_eq!(msgs(&query(&req)), ["boot b1", "semi;colon msg"]);
    req.last = Some(10);
    assert_eq!(
        msgs(&query(&req)),
        ["emerg!", "boot b1", "semi;colon msg"],
        "fewer than asked: all after the position"
    );
    // Bad values get an error line.
    for bad in [
        &b"\x00memlog/1 min-severity=8\n"[..],
        b"\x00memlog/1 since=yesterday\n",
        b"\x00memlog/1 last=-1\n",
        b"\x00memlog/1 grep=%zz\n",
    ] {
        let mut s = f.m.connect();
        s.write_all(bad).expect("request");
        let mut r = LineReader::new(s);
        let lines = r.read_to_eof();
        assert_eq!(lines.len(), 1, "{:?}", String::from_utf8_lossy(bad));
        assert!(
            matches!(
                memlog_tests::decode(&lines[0]),
                memlog::proto::Line::Error(_)
            ),
            "{:?}",
            String::from_utf8_lossy(&lines[0])
        );
    }
}

/// A memlogd from before the selection fields: it answers a request with
/// one of them with an error line, and a plain request with its records.
fn fake_old_memlogd(f: &Fixture) -> (PathBuf, TempDir, std::sync::mpsc::Receiver<String>) {
    let dir = TempDir::new("lrold");
    let socket = dir.join("old.sock");
    let l = UnixListener::bind(&socket).expect("bind");
    let records: Vec<(String, String)> = f
        .raw
        .iter()
        .zip(&f.recs)
        .map(|(line, r)| (r.source.clone(), format!("{line}\n")))
        .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut req = Vec::new();
            let mut b = [0u8; 1];
            while !req.ends_with(b"\n") && s.read_exact(&mut b).is_ok() {
                req.push(b[0]);
            }
            let text = String::from_utf8_lossy(&req[1..]).trim_end().to_owned();
            let _ = tx.send(text.clone());
            let known = text
                .split(' ')
                .skip(1)
                .all(|t| t.starts_with("after=") || t.starts_with("source=") || t == "stats");
            if known {
                // It knows exact sources (none of ours needs %-escapes).
                let sources: Vec<&str> = text
                    .split(' ')
                    .filter_map(|t| t.strip_prefix("source="))
                    .collect();
                let mut reply =
                    b"{\"memlog\":1,\"instance\":\"00000000000000aa\",\"first\":0,\"next\":14}\n"
                        .to_vec();
                for (source, line) in &records {
                    if sources.is_empty() || sources.contains(&source.as_str()) {
                        reply.extend_from_slice(line.as_bytes());
                    }
                }
                let _ = s.write_all(&reply);
            } else {
                let _ = s.write_all(b"{\"memlog\":1,\"error\":\"unknown request field\"}\n");
            }
        }
    });
    (socket, dir, rx)
}

#[test]
fn an_older_memlogd_refusing_a_field_gets_the_same_selection_from_logread() {
    let f = fixture();
    let (old, _dir, requests) = fake_old_memlogd(&f);
    for args in [
        &["-s", "onboot.*"][..],
        &["-x", "memlogd", "-p", "warning"],
        &["-n", "2", "-s", "onboot.*"],
        &["-s", "sshd"],
    ] {
        let want = ok(f.m.query_socket(), args);
        assert_eq!(ok(&old, args), want, "logread {args:?}");
    }
    let sent: Vec<String> = requests.try_iter().collect();
    // The first request carried the fields and was refused; logread asked
    // again without them and selected the records itself.
    assert_eq!(
        &sent[..2],
        ["memlog/1 source-glob=onboot.*", "memlog/1"],
        "{sent:?}"
    );
    // An exact source alone is a field every memlogd knows: no retry.
    assert_eq!(
        sent.last().map(String::as_str),
        Some("memlog/1 source=sshd")
    );
}
