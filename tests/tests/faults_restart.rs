//! Fault: memlogd killed (`kill -9`) and started again with `init-shim
//! start`, as an init system's supervisor would. Writers that reconnect (a
//! service that hands its fd again when the old one breaks, and a new
//! `init-shim run`) are logged by the new instance; a `logread -F --retry`
//! and a running logwrite notice the new instance (logread says so on
//! stderr, logwrite writes the new buffer from its oldest record) and carry
//! on: everything after the restart arrives, nothing arrives twice.

use memlog_tests::logwrite::{msgs, Logwrite};
use memlog_tests::{
    become_subreaper, bin, decode_record, logread, run_with_timeout, wait_child, wait_until,
    Memlogd, OutputLines, Running, TempDir, TIMEOUT,
};
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lines the streaming writer writes to the new instance before it stops.
const AFTER: usize = 300;

/// `init-shim start` with memlogd's sockets in `socks`; returns the adopted
/// memlogd (killed on drop). Its output goes to files named after `tag`.
fn start(socks: &TempDir, tag: &str) -> Memlogd {
    let (log, query) = (socks.join("log.sock"), socks.join("q.sock"));
    let (o, e) = (
        socks.join(format!("{tag}.out")),
        socks.join(format!("{tag}.err")),
    );
    let mut child = Command::new(bin("init-shim"))
        .arg("start")
        .arg("-socket-log")
        .arg(&log)
        .arg("-socket-query")
        .arg(&query)
        .args(["-rate-limit-burst", "0"])
        .stdin(Stdio::null())
        .stdout(File::create(&o).expect("create"))
        .stderr(File::create(&e).expect("create"))
        .spawn()
        .expect("spawn init-shim start");
    let st = wait_child(&mut child, TIMEOUT).expect("init-shim start returns");
    let out = std::fs::read_to_string(&o).unwrap_or_default();
    assert!(
        st.success(),
        "init-shim start: {st}: {}",
        std::fs::read_to_string(&e).unwrap_or_default()
    );
    let pid = out
        .split("pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {out:?}"));
    Memlogd::adopt(TempDir::new("restart-own"), pid, log, query)
}

/// `init-shim run -socket LOG -n NAME -- echo MSG`, to completion.
fn run_echo(log: &Path, name: &str, msg: &str) {
    let out = run_with_timeout(
        Command::new(bin("init-shim"))
            .arg("run")
            .arg("-socket")
            .arg(log)
            .args(["-n", name, "--", "echo", msg]),
        TIMEOUT,
    );
    assert!(out.status.success(), "init-shim run: {out:?}");
    assert!(
        out.stderr.is_empty(),
        "init-shim run fell back to files: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A service that streams numbered lines on an fd it handed to memlogd and,
/// when that fd breaks (memlogd died), hands a new one to whatever listens
/// on the log socket and goes on. Returns (first line written to the new
/// fd, lines written in all).
fn streamer(
    log: PathBuf,
    written: Arc<AtomicUsize>,
    restarted: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, usize)> {
    let register = move || -> Option<UnixStream> {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let d = UnixDatagram::unbound().expect("socket");
        d.connect(&log).ok()?;
        memlog::sys::send_with_fds(d.as_fd(), b"stream", &[theirs.as_fd()]).ok()?;
        ours.set_write_timeout(Some(TIMEOUT)).expect("timeout");
        Some(ours)
    };
    std::thread::spawn(move || {
        let mut w = register().expect("memlogd is there at first");
        let mut i = 0;
        let mut first_new = None;
        loop {
            match w.write_all(format!("line {i:05}\n").as_bytes()) {
                Ok(()) => {
                    i += 1;
                    written.store(i, Ordering::SeqCst);
                }
                Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                    // memlogd is gone: this line was not written. Register
                    // again once a memlogd listens (bounded).
                    let mut again = None;
                    let ok = memlog_tests::wait_for(
                        || {
                            again = register();
                            again.is_some()
                        },
                        TIMEOUT * 2,
                    );
                    assert!(ok, "no memlogd to register with again");
                    w = again.expect("registered");
                    first_new = Some(i);
                    continue;
                }
                Err(e) => panic!("write: {e}"),
            }
            if let Some(f) = first_new {
                if restarted.load(Ordering::SeqCst) && i >= f + AFTER {
                    return (f, i);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

#[test]
fn memlogd_killed_and_started_again_under_init_shim() {
    become_subreaper();
    let socks = TempDir::new("restart");
    let (log, query) = (socks.join("log.sock"), socks.join("q.sock"));
    let mut m = start(&socks, "start1");

    let logs = TempDir::new("restart-logs");
    let errs = TempDir::new("restart-errs");
    let lw = Logwrite::start(&query, logs.path(), &errs, &[]);
    let mut lr = Running::spawn(
        logread(["-F", "--retry", "-o", "json", "-socket"])
            .arg(&query)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let out = OutputLines::spawn(lr.child.stdout.take().expect("stdout"));
    let err = OutputLines::spawn(lr.child.stderr.take().expect("stderr"));

    run_echo(&log, "svc", "before the restart");
    let written = Arc::new(AtomicUsize::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let stream = streamer(log.clone(), Arc::clone(&written), Arc::clone(&restarted));
    // Both readers are following the first instance.
    let mut printed = out.until("before the restart");
    printed.extend(out.until("line 00100"));
    wait_until("logwrite to write the stream", || {
        msgs(logs.path(), "stream.log").len() > 100
    });
    wait_until("logwrite to write svc.out", || {
        msgs(logs.path(), "svc.out.log") == ["before the restart"]
    });

    m.signal(libc::SIGKILL);
    m.wait_gone();
    drop(m);
    assert_eq!(
        err.until("reconnecting").last().map(String::as_str),
        Some("logread: memlogd closed the connection; reconnecting (--retry)")
    );
    // The socket files the killed daemon left are replaced.
    let m = start(&socks, "start2");
    restarted.store(true, Ordering::SeqCst);
    run_echo(&log, "svc", "after the restart");
    let (first_new, total) = stream.join().expect("the streaming service");
    assert!(first_new > 0 && total >= first_new + AFTER);
    println!(
        "the service wrote {first_new} lines to the killed memlogd, then {} to the new one",
        total - first_new
    );

    // logread: the restart note, then the new instance from its oldest record.
    err.until("memlogd restarted since the last record seen");
    let want_last = format!("line {:05}", total - 1);
    let end = Instant::now() + TIMEOUT;
    while !(printed.iter().any(|l| l.contains("after the restart"))
        && printed.iter().any(|l| l.contains(&want_last)))
    {
        let left = end.saturating_duration_since(Instant::now());
        match out.next(left) {
            Some(l) => printed.push(l),
            None => panic!(
                "logread did not print both the last line and svc's; last: {:?}",
                printed.last()
            ),
        }
    }
    let recs: Vec<_> = printed
        .iter()
        .map(|l| decode_record(l.as_bytes()))
        .collect();
    let stream_msgs: Vec<String> = recs
        .iter()
        .filter(|r| r.source == "stream")
        .map(|r| r.msg.clone())
        .collect();
    check_stream(&stream_msgs, first_new, total, "logread");
    let svc: Vec<&str> = recs
        .iter()
        .filter(|r| r.source == "svc.out")
        .map(|r| r.msg.as_str())
        .collect();
    assert_eq!(svc, ["before the restart", "after the restart"]);
    let starts = recs
        .iter()
        .filter(|r| r.source == "memlogd" && r.msg == "memlogd started")
        .count();
    assert_eq!(starts, 2, "each instance's start record once");

    // logwrite: the same, in its files.
    wait_until("logwrite to write the new instance", || {
        msgs(logs.path(), "stream.log").last() == Some(&want_last)
    });
    check_stream(
        &msgs(logs.path(), "stream.log"),
        first_new,
        total,
        "logwrite",
    );
    wait_until("svc.out.log", || {
        msgs(logs.path(), "svc.out.log") == ["before the restart", "after the restart"]
    });
    lw.wait_stderr("memlogd restarted");
    m.assert_serves();
    drop(lr);
}

/// `got` (a reader's lines of the stream) is `line 0 ..` up to where the
/// killed instance stopped (it may not have read the last lines written to
/// it), then every line written to the new one, each once, in order.
fn check_stream(got: &[String], first_new: usize, total: usize, who: &str) {
    let nums: Vec<usize> = got
        .iter()
        .map(|m| {
            m.strip_prefix("line ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{who}: not a stream line: {m:?}"))
        })
        .collect();
    let split = nums
        .iter()
        .position(|&n| n >= first_new)
        .unwrap_or_else(|| panic!("{who}: nothing from the new instance: {nums:?}"));
    let (old, new) = nums.split_at(split);
    assert!(
        old.iter().enumerate().all(|(k, &n)| k == n),
        "{who}: the killed instance's lines are not 0.. in order: {old:?}"
    );
    assert!(
        new.iter().copied().eq(first_new..total),
        "{who}: after the restart, want lines {first_new}..{total}, got {new:?}"
    );
}
