//! Starting and stopping memlogd the ways LinuxKit does: `-daemonize` from
//! an init script, inherited sockets from a launcher, Go-style flags,
//! signals, and start-up failures.

use memlog_tests::{
    decode_record, is_rfc3339_nano_utc, msgs_from, pids_holding_socket, run_with_timeout,
    wait_child, wait_until, Got, Memlogd, TempDir, TIMEOUT,
};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

fn is_socket(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

/// Runs memlogd to completion (bounded) with `args`.
fn run_memlogd(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(memlog_tests::bin("memlogd"));
    for a in args {
        cmd.arg(a);
    }
    run_with_timeout(&mut cmd, TIMEOUT)
}

/// Asserts a failed start: non-zero exit, exactly one line on stderr
/// (containing `needle`), nothing on stdout.
fn assert_one_line_failure(out: &Output, code: Option<i32>, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "exit {}; stderr {stderr:?}",
        out.status
    );
    if let Some(c) = code {
        assert_eq!(out.status.code(), Some(c), "stderr {stderr:?}");
    }
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr:?}");
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    stderr
}

#[test]
fn daemonize_returns_once_sockets_exist_and_background_daemon_serves() {
    // The background daemon, orphaned, becomes our child: reaped, no zombie.
    memlog_tests::become_subreaper();
    let dir = TempDir::new("daemonize");
    let (log, query) = (dir.join("log.sock"), dir.join("q.sock"));
    let mut cmd = Memlogd::command(&dir);
    cmd.arg("-daemonize")
        .arg("-socket-log")
        .arg(&log)
        .arg("-socket-query")
        .arg(&query)
        .arg("-max-lines")
        .arg("100");
    let mut parent = cmd.spawn().expect("spawn");
    let status = wait_child(&mut parent, TIMEOUT).expect("the -daemonize parent exits");
    // LinuxKit init tests the log socket path right after this returns.
    let (log_there, query_there) = (is_socket(&log), is_socket(&query));
    assert!(status.success(), "parent exited {status}");
    assert!(
        log_there && query_there,
        "sockets missing when the parent exited"
    );

    let mut pids = Vec::new();
    wait_until("the background memlogd", || {
        pids = pids_holding_socket(&query);
        pids.retain(|&p| p != std::process::id());
        !pids.is_empty()
    });
    assert_eq!(pids.len(), 1, "{pids:?}");
    let pid = pids[0];
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(
        args.windows(4)
            .any(|w| w == ["-fd-log", "3", "-fd-query", "4"]),
        "re-executed with the sockets as fds 3 and 4: {args:?}"
    );
    let mut m = Memlogd::adopt(dir, pid, log.clone(), query.clone());
    let mut w = m.writer("bg");
    w.write_all(b"from the background\n").expect("write");
    m.wait_msg("bg", "from the background");
    let dump = m.legacy(0).read_to_eof();
    let recs: Vec<_> = dump.iter().map(|l| decode_record(l)).collect();
    assert_eq!(recs[0].msg, "memlogd started");
    assert_eq!(msgs_from(&recs, "bg"), ["from the background"]);

    memlog_tests::signal(pid, libc::SIGTERM).expect("SIGTERM");
    m.wait_gone();
    assert!(!log.exists() && !query.exists(), "sockets left behind");
}

#[test]
fn inherited_fds_3_and_4_are_served() {
    let dir = TempDir::new("inherit");
    let (log, query) = (dir.join("log.sock"), dir.join("q.sock"));
    let log_sock = UnixDatagram::bind(&log).expect("bind log");
    let query_sock = UnixListener::bind(&query).expect("bind query");
    let (lfd, qfd) = (log_sock.as_raw_fd(), query_sock.as_raw_fd());
    let mut cmd = Memlogd::command(&dir);
    cmd.args(["-fd-log", "3", "-fd-query", "4"]);
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only async-signal-safe functions (fcntl, dup2, close) on fds that are
    // open in the parent. Copying both above 10 first means the dup2 onto 3
    // cannot close the other one; the dup2 copies do not have FD_CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            let a = libc::fcntl(lfd, libc::F_DUPFD, 10);
            let b = libc::fcntl(qfd, libc::F_DUPFD, 10);
            if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(a);
            libc::close(b);
            Ok(())
        });
    }
    let mut m = Memlogd::spawn(dir, cmd, log.clone(), query.clone());
    drop((log_sock, query_sock));
    let mut w = m.writer("launched");
    w.write_all(b"via inherited sockets\n").expect("write");
    m.wait_msg("launched", "via inherited sockets");
    assert_eq!(m.records()[0].msg, "memlogd started");
    m.signal(libc::SIGTERM);
    assert_eq!(m.wait_exit().code(), Some(0));
}

#[test]
fn flags_in_all_four_go_spellings() {
    for args in [
        &["-max-lines", "7"][..],
        &["--max-lines", "7"],
        &["-max-lines=7"],
        &["--max-lines=7"],
    ] {
        let m = Memlogd::start(args);
        let mut w = m.writer("w");
        for i in 0..20 {
            w.write_all(format!("line {i}\n").as_bytes())
                .expect("write");
        }
        m.wait_msg("w", "line 19");
        let recs = m.records();
        // The 7 newest records are the writer's last 7 lines; memlogd's own
        // "memlogd started" was the oldest and is gone.
        let want: Vec<String> = (13..20).map(|i| format!("line {i}")).collect();
        assert_eq!(recs.len(), 7, "{args:?}: {recs:#?}");
        assert_eq!(msgs_from(&recs, "w"), want, "{args:?}");
        assert_eq!(m.stat("records"), 7, "{args:?}");
    }
}

#[test]
fn unknown_flag_and_bad_value_exit_2_with_one_line() {
    let dir = TempDir::new("flags");
    let (log, query) = (dir.join("log.sock"), dir.join("q.sock"));
    let out = run_memlogd(&[
        &"-socket-log",
        &log,
        &"-socket-query",
        &query,
        &"-no-such-flag",
    ]);
    assert_one_line_failure(&out, Some(2), "no-such-flag");
    let out = run_memlogd(&[&"-socket-log", &log, &"-max-lines", &"lots"]);
    assert_one_line_failure(&out, Some(2), "max-lines");
    assert!(!log.exists() && !query.exists());
}

#[test]
fn sigterm_and_sigint_exit_0_and_remove_both_sockets() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut m = Memlogd::start(&[]);
        let (log, query) = (m.log_socket().to_owned(), m.query_socket().to_owned());
        // A follower sees why the stream ends, then EOF.
        let mut r = m.legacy(1);
        m.sync_follower(|t| match r.next_line(t).expect("read") {
            Got::Line(l) => Some(decode_record(&l).msg),
            Got::Timeout => None,
            Got::Eof => panic!("closed early"),
        });
        m.signal(sig);
        let status = m.wait_exit();
        assert_eq!(status.code(), Some(0), "signal {sig}: {status}");
        assert!(!log.exists(), "log socket left behind after signal {sig}");
        assert!(
            !query.exists(),
            "query socket left behind after signal {sig}"
        );
        let rest: Vec<_> = r.read_to_eof().iter().map(|l| decode_record(l)).collect();
        assert!(
            rest.iter()
                .any(|r| r.source == "memlogd" && r.msg.starts_with("memlogd stopping")),
            "{rest:?}"
        );
    }
}

#[test]
fn bind_failure_in_missing_directory_is_one_line_and_leaves_nothing() {
    let dir = TempDir::new("bindfail");
    let ok = dir.join("ok.sock");
    let missing = dir.join("no-such-dir").join("x.sock");
    let out = run_memlogd(&[&"-socket-log", &missing, &"-socket-query", &ok]);
    assert_one_line_failure(&out, None, "no-such-dir/x.sock");
    let out = run_memlogd(&[&"-socket-log", &ok, &"-socket-query", &missing]);
    assert_one_line_failure(&out, None, "no-such-dir/x.sock");
    assert!(!ok.exists(), "the socket bound first was left behind");
}

#[test]
fn bind_failure_on_a_live_socket_leaves_the_running_daemon_alone() {
    let m = Memlogd::start(&[]);
    let other = m.dir().join("other.sock");
    let out = run_memlogd(&[&"-socket-log", &m.log_socket(), &"-socket-query", &other]);
    assert_one_line_failure(&out, None, "log.sock");
    let out = run_memlogd(&[&"-socket-log", &other, &"-socket-query", &m.query_socket()]);
    assert_one_line_failure(&out, None, "q.sock");
    assert!(!other.exists());
    assert!(is_socket(m.log_socket()) && is_socket(m.query_socket()));
    m.assert_serves();
}

#[test]
fn stale_socket_files_from_a_dead_daemon_are_replaced() {
    let dir = TempDir::new("stale");
    drop(UnixDatagram::bind(dir.join("log.sock")).expect("bind"));
    drop(UnixListener::bind(dir.join("q.sock")).expect("bind"));
    let m = Memlogd::start_in(dir, &[]);
    m.assert_serves();
}

#[test]
fn echo_prints_records_to_stdout_only_when_asked() {
    let quiet = Memlogd::start(&[]);
    let loud = Memlogd::start(&["-echo"]);
    for m in [&quiet, &loud] {
        let mut w = m.writer("echo;src");
        w.write_all(b"hello;world\n").expect("write");
        m.wait_msg("echo;src", "hello;world");
    }
    let mut line = String::new();
    wait_until("the echoed line", || {
        line = loud
            .stdout()
            .lines()
            .find(|l| l.ends_with(";echo\\;src;hello;world"))
            .unwrap_or_default()
            .to_owned();
        !line.is_empty()
    });
    let time = line.split(';').next().expect("time");
    assert!(is_rfc3339_nano_utc(time), "{line:?}");
    assert_eq!(quiet.stdout(), "");
    // A console is a terminal: control characters are escaped, never sent.
    let mut w = loud.writer("esc");
    w.write_all(b"\x1b]0;owned\x07\rred\n").expect("write");
    wait_until("the escaped echo", || {
        loud.stdout().contains(";esc;\\x1b]0;owned\\x07\\rred\n")
    });
    assert!(!loud.stdout().contains('\x1b'));
}
