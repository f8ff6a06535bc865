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
