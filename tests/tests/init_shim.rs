//! init-shim end to end, with the real binaries in temporary directories:
//! `start` (sockets bound before it returns, a second start refused, stale
//! sockets replaced, failures reported), `run` (LinuxKit's names, exit
//! statuses, signals, fallback files when memlogd is absent or its socket
//! stale, -tee), `fifo` (a fresh FIFO per start, stale ones replaced) and
//! `dump` (against memlogd, LinuxKit's memlogd, and the fallback files).

use memlog_tests::{
    become_subreaper, bin, msgs_from, pids_holding_socket, process_alive, run_with_timeout, signal,
    wait_child, wait_for, wait_until, Memlogd, TempDir, TIMEOUT,
};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;

fn shim() -> Command {
    let mut c = Command::new(bin("init-shim"));
    c.stdin(Stdio::null());
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is_socket(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

fn is_fifo(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false)
}

/// A socket file nobody listens on, as a daemon that died leaves behind.
fn stale_socket(p: &Path) {
    drop(UnixDatagram::bind(p).expect("bind"));
    assert!(is_socket(p));
}

// ---------------------------------------------------------------- start

/// `init-shim start` run to completion, its stdout and stderr in files.
struct StartRun {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

fn run_start(dir: &TempDir, tag: &str, args: &[&str]) -> StartRun {
    let (o, e) = (
        dir.join(format!("{tag}.out")),
        dir.join(format!("{tag}.err")),
    );
    let mut child = shim()
        .arg("start")
        .args(args)
        .stdout(File::create(&o).expect("create"))
        .stderr(File::create(&e).expect("create"))
        .spawn()
        .expect("spawn init-shim start");
    let status = wait_child(&mut child, TIMEOUT).expect("init-shim start returns");
    StartRun {
        status,
        stdout: std::fs::read_to_string(&o).unwrap_or_default(),
        stderr: std::fs::read_to_string(&e).unwrap_or_default(),
    }
}

fn socket_args(log: &Path, query: &Path) -> Vec<String> {
    vec![
        "-socket-log".into(),
        log.display().to_string(),
        "-socket-query".into(),
        query.display().to_string(),
    ]
}

fn pid_of(start_stdout: &str) -> u32 {
    start_stdout
        .split("pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {start_stdout:?}"))
}

/// Starts memlogd through `init-shim start` in a new temp dir; returns it
/// (killed on drop) and what start printed.
fn started(extra: &[&str]) -> (Memlogd, StartRun) {
    become_subreaper();
    let dir = TempDir::new("shim-start");
    let (log, query) = (dir.join("log.sock"), dir.join("q.sock"));
    let mut args = socket_args(&log, &query);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_start(&dir, "start", &args);
    assert!(r.status.success(), "start failed: {}", r.stderr);
    // When start returns, LinuxKit init may test the socket path at once.
    assert!(is_socket(&log) && is_socket(&query), "sockets missing");
    let pid = pid_of(&r.stdout);
    (Memlogd::adopt(dir, pid, log, query), r)
}

#[test]
fn start_returns_once_memlogd_serves_with_syslog_and_kernel_log_ready() {
    let pre = TempDir::new("shim-pre");
    let kmsg = pre.join("kmsg");
    std::fs::write(&kmsg, "6,1,5000,-;Linux version 6.1.0-test (qemu)\n").expect("kmsg");
    let devlog = pre.join("devlog");
    let (m, r) = started(&[
        "-syslog",
        devlog.to_str().expect("utf8"),
        "--kmsg-file",
        kmsg.to_str().expect("utf8"),
        "-max-lines=100",
    ]);
    assert!(
        r.stdout.starts_with("memlogd started: pid "),
        "{}",
        r.stdout
    );
    assert_eq!(r.stderr, "");
    // /dev/log was bound before memlogd answered: a syslog client works now.
    assert!(
        is_socket(&devlog),
        "syslog socket missing when start returned"
    );
    let c = UnixDatagram::unbound().expect("socket");
    c.send_to(b"<12>bootcheck: via devlog", &devlog)
        .expect("send to devlog");
    let rec = m.wait_msg("bootcheck", "via devlog");
    assert_eq!(rec.severity, Some(4));
    m.wait_msg("kmsg", "Linux version 6.1.0-test (qemu)");
    // memlogd, not a helper, holds both sockets (inherited as fds 3 and 4),
    // in a session of its own; the flags were passed on.
    let mut holders = pids_holding_socket(m.query_socket());
    holders.retain(|&p| p != std::process::id());
    assert_eq!(holders, [m.pid()]);
    let fds = std::fs::read_link(format!("/proc/{}/fd/3", m.pid())).expect("fd 3");
    assert!(fds.to_string_lossy().starts_with("socket:"), "{fds:?}");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", m.pid())).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[3],
        m.pid().to_string(),
        "memlogd leads its own session"
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", m.pid())).expect("cmdline");
    let cmdline = text(&cmdline).replace('\0', " ");
    assert!(
        cmdline.contains("-fd-log 3 -fd-query 4 -remove-sockets")
            && cmdline.contains("--max-lines 100"),
        "{cmdline}"
    );
    m.assert_serves();
}

#[test]
fn start_in_a_command_substitution_returns() {
    // `x=$(init-shim start ... 2>&1)`: the shell reads the pipe to its end,
    // so memlogd must hold neither stdout nor stderr.
    let dir = TempDir::new("shim-subst");
    let (log, query) = (dir.join("log.sock"), dir.join("q.sock"));
    let mut child = shim()
        .arg("start")
        .args(socket_args(&log, &query))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn init-shim start");
    let (mut out, mut err) = (
        child.stdout.take().expect("out"),
        child.stderr.take().expect("err"),
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut o = String::new();
        let mut e = String::new();
        let _ = out.read_to_string(&mut o);
        let _ = err.read_to_string(&mut e);
        let _ = tx.send((o, e));
    });
    let got = rx.recv_timeout(TIMEOUT);
    let st = wait_child(&mut child, TIMEOUT).expect("init-shim start returns");
    let pid = pids_holding_socket(&query)
        .into_iter()
        .find(|&p| p != std::process::id());
    let m = pid.map(|p| Memlogd::adopt(dir, p, log, query));
    let (o, e) = got.expect("stdout and stderr reach their end while memlogd runs");
    assert!(st.success(), "{o}{e}");
    assert!(o.starts_with("memlogd started: pid "), "{o}");
    assert_eq!(e, "");
    m.expect("memlogd runs").assert_serves();
}

#[test]
fn second_start_is_refused_while_one_runs() {
    let (m, _) = started(&[]);
    let other = TempDir::new("shim-second");
    let args = socket_args(m.log_socket(), m.query_socket());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_start(&other, "again", &args);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{:?}", r.stderr);
    assert!(
        r.stderr.contains("already running") && r.stderr.contains("log.sock"),
        "{:?}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    // The running one is untouched.
    assert!(process_alive(m.pid()));
    m.assert_serves();
    // Also when only the query socket is live (the log path given differs).
    let args = socket_args(&other.join("l.sock"), m.query_socket());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_start(&other, "again2", &args);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("already running"), "{}", r.stderr);
    assert!(!other.join("l.sock").exists(), "nothing bound on refusal");
}

#[test]
fn start_replaces_stale_sockets_and_memlogd_removes_them_when_stopped() {
    become_subreaper();
    let dir = TempDir::new("shim-stale");
    let (log, query) = (dir.join("log.sock"), dir.join("q.sock"));
    stale_socket(&log);
    drop(UnixListener::bind(&query).expect("bind"));
    let args = socket_args(&log, &query);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_start(&dir, "start", &args);
    assert!(r.status.success(), "{}", r.stderr);
    let pid = pid_of(&r.stdout);
    let mut m = Memlogd::adopt(dir, pid, log.clone(), query.clone());
    m.assert_serves();
    m.signal(libc::SIGTERM);
    m.wait_gone();
    assert!(!log.exists() && !query.exists(), "socket paths left behind");
}

#[test]
fn start_refuses_bad_flags_before_binding() {
    let dir = TempDir::new("shim-badflags");
    let (log, query) = (dir.join("log.sock"), dir.join("q.sock"));
    for bad in [
        &["-max-lines", "zero"][..],
        &["-fd-log", "3"],
        &["-daemonize"],
        &["-no-such-flag"],
        &["positional"],
    ] {
        let mut args = socket_args(&log, &query);
        args.extend(bad.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run_start(&dir, "bad", &args);
        assert_eq!(r.status.code(), Some(2), "{bad:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{bad:?}: {:?}", r.stderr);
        assert!(!log.exists() && !query.exists(), "{bad:?}: bound anyway");
    }
}

#[test]
fn start_reports_a_memlogd_that_fails_or_never_serves_and_leaves_no_sockets() {
    become_subreaper();
    let dir = TempDir::new("shim-fail");
    let (log, query) = (dir.join("log.sock"), dir.join("q.sock"));
    // memlogd exits at once: its -syslog directory does not exist.
    let mut args = socket_args(&log, &query);
    args.extend([
        "-syslog".into(),
        dir.join("no/such/dir/log").display().to_string(),
    ]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_start(&dir, "fails", &a);
    assert_eq!(r.status.code(), Some(1));
    assert!(r.stderr.contains("exited before it served"), "{}", r.stderr);
    // memlogd's own reason is on the same stderr, before init-shim's line.
    assert!(r.stderr.contains("no/such/dir/log"), "{}", r.stderr);
    assert!(!log.exists() && !query.exists(), "paths left behind");

    // A "memlogd" that never answers is killed after -timeout.
    let fake = dir.join("fake-memlogd");
    std::fs::write(&fake, "#!/bin/sh\necho $$ > \"$0.pid\"\nexec sleep 60\n").expect("write");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let mut args = socket_args(&log, &query);
    args.extend([
        "-memlogd".into(),
        fake.display().to_string(),
        "-timeout".into(),
        "500ms".into(),
    ]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_start(&dir, "hangs", &a);
    assert_eq!(r.status.code(), Some(1));
    assert!(r.stderr.contains("did not answer within"), "{}", r.stderr);
    let pid: u32 = std::fs::read_to_string(dir.join("fake-memlogd.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(wait_for(|| !process_alive(pid), TIMEOUT), "not killed");
    assert!(!log.exists() && !query.exists(), "paths left behind");
}

// ---------------------------------------------------------------- run

fn run_shim(args: &[&str]) -> Output {
    run_with_timeout(shim().arg("run").args(args), TIMEOUT)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

#[test]
fn run_logs_stdout_as_name_out_and_stderr_as_name_and_exits_with_its_status() {
    let m = Memlogd::start(&[]);
    let out = run_shim(&[
        "-socket",
        path(m.log_socket()),
        "-n",
        "onboot.001-hello",
        "--",
        "sh",
        "-c",
        "echo hello out; echo hello err >&2; printf 'no newline'; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    m.wait_msg("onboot.001-hello.out", "no newline");
    let recs = m.records();
    assert_eq!(
        msgs_from(&recs, "onboot.001-hello.out"),
        ["hello out", "no newline"]
    );
    assert_eq!(msgs_from(&recs, "onboot.001-hello"), ["hello err"]);

    // NAME defaults to the command's base name.
    let out = run_shim(&["-socket", path(m.log_socket()), "/bin/echo", "hi", "-n"]);
    assert!(out.status.success(), "{out:?}");
    m.wait_msg("echo.out", "hi -n");
}

#[test]
fn socket_flag_in_all_four_spellings_for_every_verb() {
    let m = Memlogd::start(&[]);
    let s = path(m.log_socket()).to_owned();
    let q = path(m.query_socket()).to_owned();
    let spellings = |p: &str| {
        [
            vec!["-socket".to_owned(), p.to_owned()],
            vec!["--socket".to_owned(), p.to_owned()],
            vec![format!("-socket={p}")],
            vec![format!("--socket={p}")],
        ]
    };
    for (i, sock) in spellings(&s).iter().enumerate() {
        let mut a: Vec<&str> = sock.iter().map(String::as_str).collect();
        let msg = format!("spelling {i}");
        a.extend(["-n", "spell", "--", "echo", &msg]);
        let out = run_shim(&a);
        assert!(out.status.success(), "{a:?}: {out:?}");
        m.wait_msg("spell.out", &msg);
        let dir = m.dir().join(format!("fifo{i}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut a: Vec<&str> = sock.iter().map(String::as_str).collect();
        a.extend(["-dir", path(&dir), "spell-fifo"]);
        let out = run_with_timeout(shim().arg("fifo").args(&a), TIMEOUT);
        assert!(out.status.success(), "{a:?}: {out:?}");
        assert!(text(&out.stderr).is_empty(), "fallback taken: {out:?}");
    }
    for sock in spellings(&q) {
        let mut a: Vec<&str> = sock.iter().map(String::as_str).collect();
        a.push("spell.out");
        let out = run_with_timeout(shim().arg("dump").args(&a), TIMEOUT);
        assert!(out.status.success(), "{a:?}: {out:?}");
        assert_eq!(text(&out.stdout).lines().count(), 4, "{a:?}: {out:?}");
    }
}

#[test]
fn run_exit_status_is_128_plus_the_signal_and_signals_are_passed_on() {
    let dir = TempDir::new("shim-sig");
    let nosock = dir.join("none.sock");
    let logs = dir.join("logs");
    let base = ["-socket", path(&nosock), "-log-dir", path(&logs)];
    let out = run_shim(&[&base[..], &["--", "sh", "-c", "kill -TERM $$"]].concat());
    assert_eq!(out.status.code(), Some(143), "{out:?}");
    let out = run_shim(&[&base[..], &["--", "sh", "-c", "kill -KILL $$"]].concat());
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    let out = run_shim(&[&base[..], &["--", "false"]].concat());
    assert_eq!(out.status.code(), Some(1));

    // A SIGTERM sent to init-shim reaches the command, whose status it returns.
    for (sig, code) in [
        (libc::SIGTERM, 143),
        (libc::SIGHUP, 129),
        (libc::SIGINT, 130),
    ] {
        let ready = dir.join(format!("ready-{sig}"));
        let script = format!("echo $$ > {}; exec sleep 60", path(&ready));
        let mut child = shim()
            .arg("run")
            .args(base)
            .args(["-n", "sleeper", "--", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        wait_until("the command to start", || {
            std::fs::read_to_string(&ready).is_ok_and(|s| s.ends_with('\n'))
        });
        signal(child.id(), sig).expect("kill");
        let st = wait_child(&mut child, TIMEOUT).expect("init-shim exits after the command");
        assert_eq!(st.code(), Some(code), "signal {sig}");
    }
}

#[test]
fn run_without_memlogd_falls_back_to_files_says_so_once_and_loses_nothing() {
    let dir = TempDir::new("shim-fallback");
    let logs = dir.join("logs");
    let stale = dir.join("stale.sock");
    stale_socket(&stale);
    for (sock, why) in [
        (dir.join("absent.sock"), "no socket at"),
        (stale.clone(), "stale socket"),
    ] {
        let name = if why.contains("stale") {
            "svc-stale"
        } else {
            "svc-absent"
        };
        let out = run_shim(&[
            "-socket",
            path(&sock),
            "-log-dir",
            path(&logs),
            "-n",
            name,
            "--",
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do echo out $i; echo err $i >&2; i=$((i+1)); done; exit 5",
        ]);
        assert_eq!(out.status.code(), Some(5), "the command ran: {out:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "said once: {err:?}");
        assert!(
            err.starts_with("init-shim: memlogd is not running"),
            "{err:?}"
        );
        assert!(
            err.contains(why) && err.contains(&format!("{name}.out.log")),
            "{err:?}"
        );
        assert!(out.stdout.is_empty());
        let want = |p: &str| (0..20000).map(|i| format!("{p} {i}")).collect::<Vec<_>>();
        let got = |f: String| {
            std::fs::read_to_string(logs.join(f))
                .expect("fallback file")
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(got(format!("{name}.out.log")), want("out"));
        assert_eq!(got(format!("{name}.log")), want("err"));
    }
    // Appends on the next run, as a restarted service does.
    let out = run_shim(&[
        "-socket",
        path(&dir.join("absent.sock")),
        "-log-dir",
        path(&logs),
        "-n",
        "svc-absent",
        "--",
        "echo",
        "again",
    ]);
    assert!(out.status.success());
    let all = std::fs::read_to_string(logs.join("svc-absent.out.log")).expect("read");
    assert!(all.ends_with("out 19999\nagain\n"));
}

#[test]
fn run_with_tee_copies_to_the_console_and_survives_memlogd_going_away() {
    let mut m = Memlogd::start(&[]);
    let out = run_shim(&[
        "-socket",
        path(m.log_socket()),
        "-tee",
        "-n",
        "teed",
        "--",
        "sh",
        "-c",
        "echo to out; echo to err >&2",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "to out\n");
    assert_eq!(text(&out.stderr), "to err\n");
    m.wait_msg("teed.out", "to out");
    m.wait_msg("teed", "to err");

    // memlogd dies while the command runs: the rest goes to the fallback file.
    let logs = m.dir().join("logs");
    let go = m.dir().join("go");
    let script = format!(
        "echo before; while [ ! -e {} ]; do sleep 0.02; done; echo after; echo after-err >&2",
        path(&go)
    );
    let mut child = shim()
        .arg("run")
        .args(["-socket", path(m.log_socket()), "-log-dir", path(&logs)])
        .args(["--tee", "-n", "survivor", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    m.wait_msg("survivor.out", "before");
    m.signal(libc::SIGKILL);
    m.wait_exit();
    File::create(&go).expect("go");
    let st = wait_child(&mut child, TIMEOUT).expect("exits");
    assert!(st.success());
    let mut so = String::new();
    let mut se = String::new();
    child
        .stdout
        .take()
        .expect("out")
        .read_to_string(&mut so)
        .expect("read");
    child
        .stderr
        .take()
        .expect("err")
        .read_to_string(&mut se)
        .expect("read");
    assert_eq!(so, "before\nafter\n");
    assert!(se.contains("after-err"), "{se}");
    assert_eq!(se.matches("init-shim: writing survivor").count(), 1, "{se}");
    let f = std::fs::read_to_string(logs.join("survivor.out.log")).expect("fallback file");
    assert_eq!(f, "after\n");
}

#[test]
fn run_with_tee_relays_a_large_output_whole_to_both() {
    let m = Memlogd::start(&[
        "-rate-limit-burst",
        "0",
        "-max-lines",
        "100000",
        "-buffer-size",
        "16M",
    ]);
    let out = run_shim(&[
        "-socket",
        path(m.log_socket()),
        "-tee",
        "-n",
        "bulk",
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 30000 ]; do echo \"line $i\"; i=$((i+1)); done",
    ]);
    assert!(out.status.success(), "{:?}", out.status);
    let want: Vec<String> = (0..30000).map(|i| format!("line {i}")).collect();
    let got: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert!(got == want, "console got {} lines", got.len());
    m.wait_msg("bulk.out", "line 29999");
    assert!(
        msgs_from(&m.records(), "bulk.out") == want,
        "memlogd lost lines"
    );
}

#[test]
fn run_returns_when_the_command_exits_and_its_background_children_keep_logging() {
    let m = Memlogd::start(&[]);
    let go = m.dir().join("go");
    let script = format!(
        "(while [ ! -e {} ]; do sleep 0.02; done; echo late) & echo early",
        path(&go)
    );
    let out = run_shim(&[
        "-socket",
        path(m.log_socket()),
        "-n",
        "bg",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.status.success(), "{out:?}");
    m.wait_msg("bg.out", "early");
    File::create(&go).expect("go");
    m.wait_msg("bg.out", "late");
}

#[test]
fn run_of_a_missing_command_says_why_in_the_log_and_exits_127() {
    let m = Memlogd::start(&[]);
    let out = run_shim(&[
        "-socket",
        path(m.log_socket()),
        "-n",
        "ghost",
        "--",
        "/no/such/cmd",
    ]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        text(&out.stderr).contains("cannot run /no/such/cmd"),
        "{out:?}"
    );
    let r = m.wait_record("the failure under ghost", |r| r.source == "ghost");
    assert!(r.msg.contains("cannot run /no/such/cmd"), "{}", r.msg);
    // Bad names are refused before anything runs.
    for bad in ["a/b", "..", ""] {
        let out = run_shim(&["-socket", path(m.log_socket()), "-n", bad, "--", "true"]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    let out = run_shim(&["-socket", path(m.log_socket())]);
    assert_eq!(out.status.code(), Some(2));
}

// ---------------------------------------------------------------- fifo

fn fifo(sock: &Path, dir: &Path, logs: &Path, name: &str) -> Output {
    run_with_timeout(
        shim().arg("fifo").args([
            "-socket",
            path(sock),
            "-dir",
            path(dir),
            "-log-dir",
            path(logs),
            name,
        ]),
        TIMEOUT,
    )
}

/// Opens a FIFO for writing without waiting for a reader (ENXIO if none).
fn open_writer(p: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)?;
    // Blocking writes from here on, as a service's are.
    memlog::sys::set_nonblocking(std::os::fd::AsFd::as_fd(&f), false)?;
    Ok(f)
}

#[test]
fn fifo_hands_memlogd_a_fresh_fifo_per_start_replacing_a_stale_one() {
    let m = Memlogd::start(&[]);
    let (dir, logs) = (m.dir().join("run"), m.dir().join("logs"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let p = dir.join("getty.out.log");
    // Left by an earlier start: nobody reads it, so a writer cannot open it
    // (a blocking open would wait forever: LinuxKit's lost logs).
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    assert_eq!(
        open_writer(&p).expect_err("no reader").raw_os_error(),
        Some(libc::ENXIO)
    );
    // Held open (by us, not as a reader of the new one) so that its inode
    // number cannot be reused: the new FIFO must have another.
    let old = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&p)
        .expect("open old fifo");
    let old_ino = old.metadata().expect("stat").ino();

    let inputs_before = m.stat("inputs");
    let out = fifo(m.log_socket(), &dir, &logs, "getty.out");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), format!("{}\n", p.display()));
    assert!(out.stderr.is_empty(), "{out:?}");
    assert!(is_fifo(&p));
    assert_ne!(
        std::fs::metadata(&p).expect("stat").ino(),
        old_ino,
        "replaced"
    );
    drop(old);
    // memlogd holds the read end and waits for a writer.
    wait_until("memlogd to take the fifo", || {
        m.stat("inputs") == inputs_before + 1
    });
    let mut w = open_writer(&p).expect("memlogd reads it now");
    w.write_all(b"first start\n").expect("write");
    m.wait_msg("getty.out", "first start");
    drop(w);
    // The service ended: memlogd read to the end and let go.
    wait_until("memlogd to close the fifo", || {
        m.stat("inputs") == inputs_before
    });
    assert_eq!(
        open_writer(&p).expect_err("stale again").raw_os_error(),
        Some(libc::ENXIO)
    );

    // The restarted service gets a fresh FIFO, and its logs arrive.
    let out = fifo(m.log_socket(), &dir, &logs, "getty.out");
    assert!(out.status.success(), "{out:?}");
    let mut w = open_writer(&p).expect("fresh fifo");
    w.write_all(b"second start\n").expect("write");
    drop(w);
    m.wait_msg("getty.out", "second start");
    assert_eq!(
        msgs_from(&m.records(), "getty.out"),
        ["first start", "second start"]
    );
}

#[test]
fn fifo_without_memlogd_gives_a_plain_file_and_says_so() {
    let dir = TempDir::new("shim-fifo-fallback");
    let (run, logs) = (dir.join("run"), dir.join("logs"));
    for sock in [dir.join("absent.sock"), {
        let s = dir.join("stale.sock");
        stale_socket(&s);
        s
    }] {
        let out = fifo(&sock, &run, &logs, "svc");
        assert!(out.status.success(), "{out:?}");
        let p = logs.join("svc.log");
        assert_eq!(text(&out.stdout), format!("{}\n", p.display()));
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err:?}");
        assert!(err.contains("memlogd is not running"), "{err:?}");
        assert!(std::fs::metadata(&p).expect("file").is_file());
        assert!(!run.join("svc.log").exists(), "no fifo without memlogd");
    }
    // With memlogd there but a directory in the way, the file is used too.
    let m = Memlogd::start(&[]);
    std::fs::create_dir_all(run.join("blocked.log")).expect("mkdir");
    let out = fifo(m.log_socket(), &run, &logs, "blocked");
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stderr).contains("is a directory"), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        format!("{}\n", logs.join("blocked.log").display())
    );
}

// ---------------------------------------------------------------- dump

fn dump(args: &[&str]) -> Output {
    run_with_timeout(shim().arg("dump").args(args), TIMEOUT)
}

#[test]
fn dump_prints_the_named_sources_only_in_every_format() {
    let m = Memlogd::start(&[]);
    for (src, msg) in [("a", "one"), ("b", "two"), ("a;x", "three"), ("c", "four")] {
        let mut w = m.writer(src);
        w.write_all(format!("{msg}\n").as_bytes()).expect("write");
        drop(w);
        m.wait_msg(src, msg);
    }
    let q = path(m.query_socket());
    let out = dump(&["-socket", q, "a", "a;x"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (t, rest) = lines[0].split_once(';').expect("TIME;");
    assert!(memlog_tests::is_rfc3339_nano_utc(t), "{t}");
    assert_eq!(rest, "a;one");
    assert!(lines[1].ends_with(";a\\;x;three"), "{}", lines[1]);
    let out = dump(&["-socket", q, "-o", "plain", "c", "b"]);
    assert_eq!(text(&out.stdout), "two\nfour\n");
    let out = dump(&["-socket", q, "--format=json", "b"]);
    let line = text(&out.stdout);
    let Ok(memlog::proto::Line::Record(r)) = memlog::proto::decode_line(line.trim_end().as_bytes())
    else {
        panic!("not a record: {line}")
    };
    assert_eq!((r.source.as_str(), r.msg.as_str()), ("b", "two"));
    assert!(r.seq.is_some() && r.pid.is_some(), "{r:?}");
    let out = dump(&["-socket", q, "nobody"]);
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    let out = dump(&["-socket", q]);
    assert_eq!(out.status.code(), Some(2));
    let out = dump(&["-socket", q, "-o", "yaml", "a"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn dump_shows_syslog_severity_in_json() {
    let dir = TempDir::new("shim-dump-sev");
    let devlog = dir.join("devlog");
    let m = Memlogd::start_in(dir, &["-syslog", path(&devlog)]);
    let c = UnixDatagram::unbound().expect("socket");
    c.send_to(b"<11>bootcheck[7]: disk on fire", &devlog)
        .expect("send");
    m.wait_msg("bootcheck", "disk on fire");
    let out = dump(&["-socket", path(m.query_socket()), "-o", "json", "bootcheck"]);
    let s = text(&out.stdout);
    assert!(
        s.contains("\"severity\":3") && s.contains("\"facility\":1"),
        "{s}"
    );
}

/// A server that speaks only LinuxKit's protocol: reads one byte, sends
/// `lines`, closes.
fn fake_linuxkit(dir: &TempDir, lines: &'static str) -> (PathBuf, mpsc::Receiver<u8>) {
    let socket = dir.join("lk.sock");
    let l = UnixListener::bind(&socket).expect("bind");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _): (UnixStream, _) = l.accept().expect("accept");
        let mut b = [0u8; 1];
        s.read_exact(&mut b).expect("mode byte");
        let _ = tx.send(b[0]);
        let _ = s.write_all(lines.as_bytes());
    });
    (socket, rx)
}

#[test]
fn dump_works_against_linuxkits_memlogd() {
    let dir = TempDir::new("shim-dump-lk");
    let (sock, mode) = fake_linuxkit(
        &dir,
        concat!(
            r#"{"time":"2018-07-08T09:16:53.123456789Z","source":"memlogd","msg":"memlogd started"}"#,
            "\n",
            r#"{"time":"2018-07-08T09:16:54Z","source":"onboot.001-dhcpcd.out","msg":"eth0: waiting for carrier"}"#,
            "\n",
            r#"{"time":"2018-07-08T09:16:55Z","source":"onboot.001-dhcpcd","msg":"warning"}"#,
            "\n",
            r#"{"time":"2018-07-08T09:16:56Z","source":"onboot.001-dhcpcd.out","msg":"eth0: carrier acquired"}"#,
            "\n",
        ),
    );
    let out = dump(&["-socket", path(&sock), "onboot.001-dhcpcd.out"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode.recv_timeout(TIMEOUT).expect("request"), 0, "a dump");
    assert_eq!(
        text(&out.stdout),
        "2018-07-08T09:16:54Z;onboot.001-dhcpcd.out;eth0: waiting for carrier\n\
         2018-07-08T09:16:56Z;onboot.001-dhcpcd.out;eth0: carrier acquired\n"
    );
}

#[test]
fn dump_without_memlogd_prints_the_fallback_files() {
    let dir = TempDir::new("shim-dump-files");
    let logs = dir.join("logs");
    let out = run_shim(&[
        "-socket",
        path(&dir.join("none.sock")),
        "-log-dir",
        path(&logs),
        "-n",
        "onboot.002-x",
        "--",
        "sh",
        "-c",
        "echo from stdout; echo from stderr >&2",
    ]);
    assert!(out.status.success());
    let stale = dir.join("q.sock");
    drop(UnixListener::bind(&stale).expect("bind"));
    for (sock, why) in [
        (&stale, "stale socket"),
        (&dir.join("absent.sock"), "no socket at"),
    ] {
        let out = dump(&[
            "-socket",
            path(sock),
            "-log-dir",
            path(&logs),
            "onboot.002-x.out",
            "onboot.002-x",
        ]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(text(&out.stdout), "from stdout\nfrom stderr\n");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(why) && err.contains("onboot.002-x.out.log"),
            "{err}"
        );
    }
    let out = dump(&["-socket", path(&stale), "-log-dir", path(&logs), "nothing"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn help_and_unknown_commands() {
    let out = run_with_timeout(shim().arg("-help"), TIMEOUT);
    assert!(out.status.success());
    for verb in ["start", "run", "fifo", "dump"] {
        assert!(text(&out.stdout).contains(verb));
        let out = run_with_timeout(shim().args([verb, "-help"]), TIMEOUT);
        assert!(out.status.success(), "{verb}: {out:?}");
        assert!(text(&out.stdout).contains("-socket"), "{verb}");
    }
    let out = run_with_timeout(shim().arg("restart"), TIMEOUT);
    assert_eq!(out.status.code(), Some(2));
    let out = run_with_timeout(&mut shim(), TIMEOUT);
    assert_eq!(out.status.code(), Some(2));
}
