//! Command-line arguments that are not UTF-8: paths and a command's
//! arguments are bytes and work as given; a flag that must be text is a
//! clear error with exit status 2. No binary may abort on one.

use memlog::proto::{Line, Mode, Request};
use memlog_tests::{bin, records, run_with_timeout, Memlogd, TempDir, TIMEOUT};
use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Output};

fn raw(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

fn run(cmd: &mut Command) -> Output {
    run_with_timeout(cmd, TIMEOUT)
}

/// Exit status 2 (not a crash) and a message that says what is wrong.
fn assert_usage_error(out: &Output, what: &str, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: {:?}, stderr {err}",
        out.status
    );
    assert!(err.contains(says), "{what}: stderr {err}");
}

#[test]
fn init_shim_run_passes_non_utf8_arguments_to_the_command() {
    // Without memlogd: the command runs and its output is in the fallback file.
    let dir = TempDir::new("argv-run");
    let out = run(Command::new(bin("init-shim"))
        .arg("run")
        .arg("-socket")
        .arg(dir.join("absent.sock"))
        .arg("-log-dir")
        .arg(dir.path())
        .arg("-n")
        .arg("echo")
        .arg("--")
        .arg("/bin/echo")
        .arg(raw(b"a\xffb")));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read(dir.join("echo.out.log")).expect("fallback file"),
        b"a\xffb\n"
    );
    // With memlogd: the exact bytes reach the ring (and the JSON's msg_raw).
    let m = Memlogd::start(&[]);
    let out = run(Command::new(bin("init-shim"))
        .arg("run")
        .arg("-socket")
        .arg(m.log_socket())
        .arg("-n")
        .arg("echo")
        .arg("--")
        .arg("/bin/echo")
        .arg(raw(b"c\xfed")));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let r = m.wait_record("the echoed bytes", |r| r.source == "echo.out");
    assert_eq!(r.msg_bytes(), b"c\xfed");
}

#[test]
fn memlogd_binds_a_non_utf8_path() {
    let dir = TempDir::new("argv-memlogd");
    let log = PathBuf::from(OsStr::from_bytes(
        &[dir.path().as_os_str().as_bytes(), b"/log\xff.sock"].concat(),
    ));
    let query = dir.join("q.sock");
    let mut cmd = Memlogd::command(&dir);
    cmd.arg("-socket-log")
        .arg(&log)
        .arg("-socket-query")
        .arg(&query);
    let m = Memlogd::spawn(dir, cmd, log.clone(), query);
    assert!(log.exists());
    let mut w = m.writer("svc");
    std::io::Write::write_all(&mut w, b"hello\n").expect("write");
    m.wait_msg("svc", "hello");
}

#[test]
fn logread_selects_a_source_given_as_bytes() {
    let m = Memlogd::start(&[]);
    let (mut a, ra) = UnixStream::pair().expect("pair");
    m.send_fds(b"\xff\xfe", &[ra.as_fd()]).expect("send");
    drop(ra);
    let mut b = m.writer("other");
    std::io::Write::write_all(&mut a, b"from-ff\n").expect("write");
    std::io::Write::write_all(&mut b, b"from-other\n").expect("write");
    m.wait_msg("other", "from-other");
    m.wait_record("the \\xff\\xfe record", |r| r.source_bytes() == b"\xff\xfe");
    let out = run(Command::new(bin("logread"))
        .arg("-socket")
        .arg(m.query_socket())
        .arg("-s")
        .arg(raw(b"\xff\xfe"))
        .args(["-o", "cat"]));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-ff\n");
    // The source prints with its bytes escaped, never raw.
    let out = run(Command::new(bin("logread"))
        .arg("-socket")
        .arg(m.query_socket())
        .arg("-s")
        .arg(raw(b"\xff*")));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("escaped output is UTF-8");
    assert!(text.ends_with(";\\xff\\xfe;from-ff\n"), "{text}");
}

#[test]
fn logwrite_writes_into_a_non_utf8_directory() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("svc");
    std::io::Write::write_all(&mut w, b"kept\n").expect("write");
    m.wait_msg("svc", "kept");
    let logdir = PathBuf::from(OsStr::from_bytes(
        &[m.dir().path().as_os_str().as_bytes(), b"/logs\xff"].concat(),
    ));
    let mut child = Command::new(bin("logwrite"))
        .arg("-socket")
        .arg(m.query_socket())
        .arg("-log-dir")
        .arg(&logdir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn logwrite");
    let file = logdir.join("svc.log");
    let ok = memlog_tests::wait_for(
        || std::fs::read_to_string(&file).is_ok_and(|s| s.contains(" svc kept")),
        TIMEOUT,
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "{} never held the record", file.display());
}

#[test]
fn text_values_that_are_not_utf8_are_usage_errors() {
    let m = Memlogd::start(&[]);
    let dir = TempDir::new("argv-text");
    let cases: Vec<(&str, Command)> = vec![
        ("logread -e", {
            let mut c = Command::new(bin("logread"));
            c.arg("-socket")
                .arg(m.query_socket())
                .arg("-e")
                .arg(raw(b"\xff"));
            c
        }),
        ("memlogd -max-lines", {
            let mut c = Command::new(bin("memlogd"));
            c.arg("-max-lines").arg(raw(b"\xff"));
            c
        }),
        ("logwrite -remote", {
            let mut c = Command::new(bin("logwrite"));
            c.arg("-log-dir")
                .arg(dir.path())
                .arg("-remote")
                .arg(raw(b"tcp://\xff:1"));
            c
        }),
        ("init-shim dump NAME", {
            let mut c = Command::new(bin("init-shim"));
            c.arg("dump")
                .arg("-socket")
                .arg(m.query_socket())
                .arg(raw(b"\xff"));
            c
        }),
        ("init-shim fifo NAME", {
            let mut c = Command::new(bin("init-shim"));
            c.arg("fifo")
                .arg("-socket")
                .arg(m.log_socket())
                .arg(raw(b"\xff"));
            c
        }),
        ("init-shim run -n", {
            let mut c = Command::new(bin("init-shim"));
            c.arg("run")
                .arg("-n")
                .arg(raw(b"\xff"))
                .arg("--")
                .arg("/bin/true");
            c
        }),
        ("a flag name", {
            let mut c = Command::new(bin("logread"));
            c.arg(raw(b"-\xff"));
            c
        }),
    ];
    for (what, mut cmd) in cases {
        let out = run(&mut cmd);
        let says = if what == "a flag name" {
            "not defined: -\\xff"
        } else {
            "UTF-8"
        };
        assert_usage_error(&out, what, says);
    }
    // The daemon was never disturbed.
    let mut c = m.query(&Request::new(Mode::Dump));
    assert!(matches!(c.next_line(), Ok(Some(Line::Hello { .. }))));
    assert!(!records(&m.dump()).is_empty());
}
