//! /dev/log: real syslog clients (util-linux logger, Python's
//! SysLogHandler, a C program calling syslog(3), BusyBox logger) send to
//! memlogd's syslog sockets; every header field is kept, the sender's
//! kernel-reported pid/uid sit beside what it claims, nothing is dropped.

use memlog::proto::Record;
use memlog_tests::{run_with_timeout, Memlogd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn with_syslog(extra: &[&str]) -> (Memlogd, std::path::PathBuf, std::path::PathBuf) {
    let dir = memlog_tests::TempDir::new("syslog");
    let (dgram, stream) = (dir.join("devlog"), dir.join("devlog-stream"));
    let mut args = vec![
        "-syslog",
        dgram.to_str().expect("utf8"),
        "-syslog-stream",
        stream.to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    let m = Memlogd::start_in(dir, &args);
    (m, dgram, stream)
}

/// Runs a command, asserting it succeeds; returns its pid.
fn run_ok(cmd: &mut Command) -> u32 {
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pid
}

#[test]
fn util_linux_logger_rfc3164_keeps_priority_tag_and_true_pid_beside_claimed_one() {
    let (m, dgram, _) = with_syslog(&[]);
    // --id=4242 makes logger claim pid 4242 in its header; the kernel knows better.
    let pid = run_ok(Command::new("logger").arg("-u").arg(&dgram).args([
        "--rfc3164",
        "-t",
        "mytag",
        "-p",
        "auth.warning",
        "--id=4242",
        "hello from logger",
    ]));
    let r = m.wait_msg("mytag", "hello from logger");
    assert_eq!((r.facility, r.severity), (Some(4), Some(4)));
    assert_eq!(r.app.as_deref(), Some("mytag"));
    assert_eq!(
        r.procid.as_deref(),
        Some("4242"),
        "the claimed pid is kept as procid"
    );
    assert_eq!(
        r.pid,
        Some(pid),
        "pid is the sender's real pid, from SCM_CREDENTIALS"
    );
    assert_eq!(r.uid, Some(nix::unistd::geteuid().as_raw()));
    assert!(r.stime.is_some(), "the sender's timestamp is kept");
}

#[test]
fn util_linux_logger_rfc5424_keeps_msgid_and_structured_data() {
    let (m, dgram, _) = with_syslog(&[]);
    run_ok(Command::new("logger").arg("-u").arg(&dgram).args([
        "--rfc5424",
        "-t",
        "r5424",
        "-p",
        "local3.err",
        "--msgid",
        "ID47",
        "--sd-id",
        "x@32473",
        "--sd-param",
        "a=\"b\"",
        "structured hello",
    ]));
    let r = m.wait_msg("r5424", "structured hello");
    assert_eq!((r.facility, r.severity), (Some(19), Some(3)));
    assert_eq!(r.msgid.as_deref(), Some("ID47"));
    assert!(
        r.sd.as_deref().unwrap_or("").contains("[x@32473 a=\"b\"]"),
        "sd: {:?}",
        r.sd
    );
    assert!(r.host.is_some() && r.stime.is_some());
}

#[test]
fn stream_socket_takes_logger_over_sock_stream() {
    let (m, _, stream) = with_syslog(&[]);
    run_ok(
        Command::new("logger")
            .arg("-T")
            .arg("-u")
            .arg(&stream)
            .args(["-t", "streamy", "-p", "daemon.notice", "one"]),
    );
    run_ok(
        Command::new("logger")
            .arg("-T")
            .arg("-u")
            .arg(&stream)
            .args(["-t", "streamy", "two"]),
    );
    let r = m.wait_msg("streamy", "two");
    assert_eq!(r.severity, Some(5));
    let recs = m.records();
    assert_eq!(memlog_tests::msgs_from(&recs, "streamy"), ["one", "two"]);
    assert!(
        recs.iter()
            .filter(|r| r.source == "streamy")
            .all(|r| r.pid.is_some()),
        "SO_PEERCRED pid on stream messages"
    );
}

#[test]
fn python_syslog_handler() {
    let (m, dgram, _) = with_syslog(&[]);
    let script = r#"
import logging, logging.handlers, sys
h = logging.handlers.SysLogHandler(address=sys.argv[1], facility=logging.handlers.SysLogHandler.LOG_LOCAL0)
h.ident = "pyapp: "
log = logging.getLogger("t")
log.addHandler(h)
log.error("python error %d", 7)
log.warning("python warning")
"#;
    run_ok(Command::new("python3").arg("-c").arg(script).arg(&dgram));
    let e = m.wait_msg("pyapp", "python error 7");
    assert_eq!((e.facility, e.severity), (Some(16), Some(3)));
    let w = m.wait_msg("pyapp", "python warning");
    assert_eq!(w.severity, Some(4));
}

/// Why `with_dev_log` cannot run here, if it cannot: it needs root and a
/// private mount namespace (which root in an unprivileged container lacks).
fn no_private_dev() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root for a private /dev (CI runs as root)".into());
    }
    let probe = Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .output();
    match probe {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "cannot make a private mount namespace (an unprivileged container?): unshare -m: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run unshare: {e}")),
    }
}

/// Runs `prog args` where `/dev/log` is memlogd's socket: in a private
/// mount namespace with a fresh /dev holding only that link (C libraries
/// hard-code /dev/log).
fn with_dev_log(log: &Path, prog: &str, args: &[&str]) -> std::process::Output {
    let script = format!(
        "mount -t tmpfs none /dev && ln -s '{}' /dev/log && exec \"$@\"",
        log.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
        prog,
    ])
    .args(args);
    run_with_timeout(&mut cmd, T)
}

#[test]
fn c_program_calling_syslog_3() {
    if let Some(why) = no_private_dev() {
        memlog_tests::skip(&why);
        return;
    }
    let (m, dgram, _) = with_syslog(&[]);
    let src = m.dir().join("sl.c");
    std::fs::write(
        &src,
        "#include <syslog.h>\nint main(void){ openlog(\"cprog\", LOG_PID, LOG_DAEMON); syslog(LOG_ERR, \"from syslog(3) %d\", 42); syslog(LOG_DEBUG, \"debug line\"); closelog(); return 0; }\n",
    )
    .expect("write c");
    let exe = m.dir().join("sl");
    let cc = run_with_timeout(Command::new("cc").arg("-o").arg(&exe).arg(&src), T);
    assert!(
        cc.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = with_dev_log(&dgram, exe.to_str().expect("utf8"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = m.wait_msg("cprog", "from syslog(3) 42");
    assert_eq!((r.facility, r.severity), (Some(3), Some(3)));
    assert!(r.procid.is_some(), "LOG_PID puts the pid in the tag");
    assert_eq!(
        r.procid.as_deref().map(|p| p.parse::<u32>().ok()),
        Some(r.pid),
        "glibc claims its own pid truthfully"
    );
    assert_eq!(m.wait_msg("cprog", "debug line").severity, Some(7));
}

#[test]
fn busybox_logger_where_installed() {
    let Ok(bb) = which("busybox") else {
        memlog_tests::skip("busybox is not installed (.ci/run installs busybox-static)");
        return;
    };
    if let Some(why) = no_private_dev() {
        memlog_tests::skip(&why);
        return;
    }
    let (m, dgram, _) = with_syslog(&[]);
    let out = with_dev_log(
        &dgram,
        &bb,
        &[
            "logger",
            "-t",
            "bbtag",
            "-p",
            "user.crit",
            "busybox says hi",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = m.wait_msg("bbtag", "busybox says hi");
    assert_eq!((r.facility, r.severity), (Some(1), Some(2)));
    assert!(r.pid.is_some());
}

fn which(name: &str) -> Result<String, ()> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map_err(|_| ())?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && !p.is_empty() {
        Ok(p)
    } else {
        Err(())
    }
}

fn send(sock: &Path, bytes: &[u8]) {
    let c = UnixDatagram::unbound().expect("socket");
    c.send_to(bytes, sock).expect("send datagram");
}

#[test]
fn odd_datagrams_are_kept_as_documented() {
    let (m, dgram, _) = with_syslog(&["-max-line-len", "2000"]);
    // Not syslog at all: kept whole under source `syslog`.
    send(&dgram, b"no priority here");
    // Trailing NUL and newlines stripped; an inner NUL kept.
    send(&dgram, b"<13>Nov 21 12:00:00 nul: a\0b\n\n\0");
    // Oversized: cut at -max-line-len and marked.
    let mut big = b"<14>big: ".to_vec();
    big.extend(std::iter::repeat_n(b'x', 100_000));
    send(&dgram, &big);
    // Invalid UTF-8 survives as valid JSON.
    send(&dgram, b"<14>bad: \xff\xfe ok");
    let r = m.wait_msg("syslog", "no priority here");
    assert_eq!((r.severity, r.facility), (None, None));
    assert_eq!(m.wait_msg("nul", "a\0b").severity, Some(5));
    let b = m.wait_record("the oversized one", |r| r.source == "big");
    assert_eq!(b.msg.len(), 2000);
    assert!(b.truncated);
    m.wait_msg("bad", "\u{fffd}\u{fffd} ok");
    m.assert_serves();
}

#[test]
fn syslog_socket_is_writable_by_everyone_and_removed_at_exit() {
    let (mut m, dgram, stream) = with_syslog(&[]);
    for p in [&dgram, &stream] {
        let mode = std::fs::metadata(p)
            .expect("socket exists")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o666, "{}", p.display());
    }
    m.signal(libc::SIGTERM);
    assert!(m.wait_exit().success());
    assert!(
        !dgram.exists() && !stream.exists(),
        "syslog sockets removed on exit"
    );
}

/// The trusted credentials of a service's socketpair: the process that
/// created it (SO_PEERCRED), not anything the service writes.
#[test]
fn fd_inputs_that_are_sockets_carry_peer_credentials() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("svc");
    std::io::Write::write_all(&mut w, b"pid=1 uid=0 (a claim, not a fact)\n").expect("write");
    let r: Record = m.wait_msg("svc", "pid=1 uid=0 (a claim, not a fact)");
    assert_eq!(r.pid, Some(std::process::id()));
    assert_eq!(r.uid, Some(nix::unistd::geteuid().as_raw()));
    assert_eq!(r.gid, Some(nix::unistd::getegid().as_raw()));
}

/// `-syslog-stream` sockets are open to everyone (mode 0666): their
/// connections have their own limit (`-max-syslog-conns`, 64) instead of
/// taking `-max-inputs` slots, so idle connections from anyone cannot
/// stop the init system from handing memlogd a service's output. Over the
/// limit a connection is accepted and closed at once, and counted.
#[test]
fn idle_stream_connections_cannot_take_the_init_systems_input_slots() {
    memlog_tests::raise_fd_limit();
    let (m, _, stream) = with_syslog(&[]);
    let conns: Vec<std::os::unix::net::UnixStream> = (0..1100)
        .map(|_| std::os::unix::net::UnixStream::connect(&stream).expect("connect"))
        .collect();
    memlog_tests::wait_until("every connection accepted or refused", || {
        let s = m.stats();
        let get = |k: &str| s.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        get("syslog_conns") == Some(64) && get("syslog_conns_refused") == Some(1100 - 64)
    });
    // The next service the init system hands over is logged.
    let mut svc = m.writer("svc");
    std::io::Write::write_all(&mut svc, b"a service after 1100 idle connections\n").expect("write");
    m.wait_msg("svc", "a service after 1100 idle connections");
    assert_eq!(m.stat("inputs_refused"), 0);
    // The first 64 are served; the others were closed at once.
    let mut first = &conns[0];
    std::io::Write::write_all(&mut first, b"<13>early: still served\n").expect("write");
    m.wait_msg("early", "still served");
    let mut last = &conns[1099];
    last.set_read_timeout(Some(T)).expect("timeout");
    let mut buf = [0u8; 16];
    assert_eq!(
        std::io::Read::read(&mut last, &mut buf).expect("EOF, not a timeout"),
        0
    );
    m.wait_self_record(&["syslog stream", "-max-syslog-conns 64"]);
}

/// A child process running as `uid` that holds `n` connections to the
/// stream socket at `path` until dropped.
struct HeldAs {
    pid: libc::pid_t,
    release: std::os::fd::OwnedFd,
}

impl HeldAs {
    /// Forks the child and waits until it holds its connections (or failed).
    fn connect(uid: u32, path: &Path, n: usize) -> HeldAs {
        use std::os::fd::AsRawFd;
        let (addr, len) = memlog_tests::sockaddr_un(path);
        let (ready_r, ready_w) = nix::unistd::pipe().expect("pipe");
        let (release_r, release_w) = nix::unistd::pipe().expect("pipe");
        let (rw, rr) = (ready_w.as_raw_fd(), release_r.as_raw_fd());
        // SAFETY: the child makes only async-signal-safe system calls
        // (close, setgroups, setgid, setuid, socket, connect, write, read,
        // _exit) on memory made before the fork, and never returns.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            // SAFETY: see above.
            unsafe {
                libc::close(release_w.as_raw_fd());
                libc::close(ready_r.as_raw_fd());
                if !memlog_tests::become_uid_in_child(uid) {
                    libc::_exit(2);
                }
                let sa = (&addr as *const libc::sockaddr_un).cast::<libc::sockaddr>();
                let mut ok: u8 = 1;
                for _ in 0..n {
                    let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                    if fd < 0 || libc::connect(fd, sa, len) != 0 {
                        ok = 0;
                        break;
                    }
                }
                let _ = libc::write(rw, (&ok as *const u8).cast(), 1);
                let mut b = 0u8;
                let _ = libc::read(rr, (&mut b as *mut u8).cast(), 1);
                libc::_exit(0);
            }
        }
        drop((ready_w, release_r));
        let mut ready = std::fs::File::from(ready_r);
        let mut b = [0u8; 1];
        std::io::Read::read_exact(&mut ready, &mut b).expect("the child says how it went");
        assert_eq!(b[0], 1, "uid {uid} could not open {n} connections");
        HeldAs {
            pid,
            release: release_w,
        }
    }
}

impl Drop for HeldAs {
    fn drop(&mut self) {
        let _ = nix::unistd::write(&self.release, b"x");
        let mut status = 0;
        // SAFETY: waitpid writes one int we own; the child exits once released.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
    }
}

/// The same from an unprivileged user: uid 65534 holding 1100 idle
/// connections cannot stop the init system either, and gets only a
/// quarter of the connections: other users can still connect.
#[test]
fn an_unprivileged_user_holding_idle_connections_cannot_take_input_slots() {
    if !nix::unistd::geteuid().is_root() {
        memlog_tests::skip("needs root to act as uid 65534 (CI runs as root)");
        return;
    }
    memlog_tests::raise_fd_limit();
    let (m, _, stream) = with_syslog(&[]);
    std::fs::set_permissions(m.dir().path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let held = HeldAs::connect(65534, &stream, 1100);
    memlog_tests::wait_until("every connection accepted or refused", || {
        m.stat("syslog_conns_refused") == 1100 - 16
    });
    assert_eq!(m.stat("syslog_conns"), 16);
    // Another user (root here) still gets in and logs.
    let mut other = std::os::unix::net::UnixStream::connect(&stream).expect("connect");
    std::io::Write::write_all(&mut other, b"<13>other: still served\n").expect("write");
    m.wait_msg("other", "still served");
    let mut svc = m.writer("svc");
    std::io::Write::write_all(
        &mut svc,
        b"logged despite uid 65534
",
    )
    .expect("write");
    m.wait_msg("svc", "logged despite uid 65534");
    let r = m.wait_self_record(&["syslog stream connection from uid 65534"]);
    assert!(r.msg.contains("a quarter of -max-syslog-conns 64"), "{r:?}");
    drop((held, other));
    memlog_tests::wait_until("the connections to close", || m.stat("syslog_conns") == 0);
}

/// A stream connection that sends nothing for `-syslog-idle-timeout` is
/// closed, and its unfinished frame is stored as at any close.
#[test]
fn an_idle_stream_connection_is_closed_and_its_unfinished_frame_stored() {
    let (m, _, stream) = with_syslog(&["-syslog-idle-timeout", "1s"]);
    let mut c = std::os::unix::net::UnixStream::connect(&stream).expect("connect");
    std::io::Write::write_all(&mut c, b"<13>idle: an unfinished frame").expect("write");
    // Closed by memlogd within a bounded wait (the check runs every second).
    c.set_read_timeout(Some(T)).expect("timeout");
    let mut buf = [0u8; 16];
    assert_eq!(std::io::Read::read(&mut c, &mut buf).expect("EOF"), 0);
    m.wait_msg("idle", "an unfinished frame");
    assert_eq!(m.stat("syslog_conns_idle_closed"), 1);
    assert_eq!(m.stat("syslog_conns"), 0);
}

/// A sender that trickles one byte of a frame now and then is never idle,
/// but its frame must end within `-syslog-idle-timeout` too: it is closed,
/// and what it sent is stored.
#[test]
fn a_frame_trickled_forever_is_closed_after_the_timeout() {
    let (m, _, stream) = with_syslog(&["-syslog-idle-timeout", "2s"]);
    let mut c = std::os::unix::net::UnixStream::connect(&stream).expect("connect");
    std::io::Write::write_all(&mut c, b"<13>trickle: a").expect("write");
    c.set_nonblocking(true).expect("nonblocking");
    let mut closed = false;
    // 10 s of one byte every 200 ms: far more than the 2 s allowed.
    for _ in 0..50 {
        if std::io::Write::write_all(&mut c, b"a").is_err()
            || matches!(std::io::Read::read(&mut c, &mut [0u8; 8]), Ok(0))
        {
            closed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(closed, "a trickled frame held its connection");
    let r = m.wait_record("the trickled frame", |r| r.source == "trickle");
    assert!(r.msg.starts_with("aa"), "{r:?}");
    assert_eq!(m.stat("syslog_conns_idle_closed"), 1);
}
