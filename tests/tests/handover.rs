//! Handing memlogd fds, and learning whether it took them: memlogd answers
//! a bound sender (`memlog/1 accepted A of N[: why]`), never an unbound one
//! (LinuxKit's senders), and init-shim falls back to files for what memlogd
//! refused instead of handing a command a dead end (SIGPIPE on its first
//! write) or printing a FIFO nobody reads (a service blocked forever).

use memlog::handover::{LogSocket, Outcome};
use memlog_tests::{bin, run_with_timeout, wait_for, Memlogd, TempDir, TIMEOUT};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::{Command, Output};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn shim(args: &[&std::ffi::OsStr]) -> Output {
    run_with_timeout(Command::new(bin("init-shim")).args(args), TIMEOUT)
}

/// `init-shim run -socket SOCK -log-dir LOGS -n NAME -- sh -c SCRIPT`.
fn run_sh(sock: &Path, logs: &Path, name: &str, script: &str) -> Output {
    let mut c = Command::new(bin("init-shim"));
    c.arg("run")
        .arg("-socket")
        .arg(sock)
        .arg("-log-dir")
        .arg(logs)
        .args(["-n", name, "--", "sh", "-c", script]);
    run_with_timeout(&mut c, TIMEOUT)
}

#[test]
fn memlogd_tells_a_bound_sender_what_it_took() {
    let m = Memlogd::start(&["-max-inputs", "2", "-max-name-len", "16"]);
    let mut s = LogSocket::connect(m.log_socket()).expect("connect");
    let (mut w1, r1) = UnixStream::pair().expect("pair");
    assert_eq!(
        s.hand_over(b"one", &[r1.as_fd()]).expect("send"),
        Outcome::Taken
    );
    drop(r1);
    w1.write_all(b"taken\n").expect("write");
    m.wait_msg("one", "taken");
    // Two fds with one slot left: one taken, one refused.
    let (_w2, r2) = UnixStream::pair().expect("pair");
    let (_w3, r3) = UnixStream::pair().expect("pair");
    match s
        .hand_over(b"two", &[r2.as_fd(), r3.as_fd()])
        .expect("send")
    {
        Outcome::Refused(why) => assert!(why.contains("-max-inputs 2"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Full: refused, and the name too long: refused, each saying why.
    let (_w4, r4) = UnixStream::pair().expect("pair");
    match s.hand_over(b"three", &[r4.as_fd()]).expect("send") {
        Outcome::Refused(why) => assert!(why.contains("-max-inputs"), "{why}"),
        other => panic!("{other:?}"),
    }
    match s.hand_over(&[b'n'; 40], &[r4.as_fd()]).expect("send") {
        Outcome::Refused(why) => assert!(why.contains("-max-name-len 16"), "{why}"),
        other => panic!("{other:?}"),
    }
    // LinuxKit's way (an unbound socket) still works, and gets no answer.
    drop(w1);
    assert!(wait_for(|| m.stat("inputs") < 2, TIMEOUT));
    let plain = UnixDatagram::unbound().expect("socket");
    plain.connect(m.log_socket()).expect("connect");
    let (mut w5, r5) = UnixStream::pair().expect("pair");
    memlog::sys::send_with_fds(plain.as_fd(), b"plain", &[r5.as_fd()]).expect("send");
    drop(r5);
    w5.write_all(b"linuxkit style\n").expect("write");
    m.wait_msg("plain", "linuxkit style");
    plain.set_nonblocking(true).expect("nonblocking");
    assert!(
        plain.recv(&mut [0u8; 64]).is_err(),
        "an unbound sender got an answer"
    );
    assert_eq!(m.stat("replies_failed"), 0);
}

/// A memlogd whose every input slot is taken: returns it and the held input.
fn full() -> (Memlogd, UnixStream) {
    let m = Memlogd::start(&["-max-inputs", "1"]);
    let w = m.writer("holder");
    assert!(wait_for(|| m.stat("inputs") == 1, TIMEOUT));
    (m, w)
}

#[test]
fn run_falls_back_to_files_when_memlogd_refuses_the_output() {
    let (m, _hold) = full();
    let logs = TempDir::new("handover-run");
    let out = run_sh(
        m.log_socket(),
        logs.path(),
        "svc",
        "echo out; echo err >&2; echo more",
    );
    // Not killed by SIGPIPE (141): it ran to the end and lost nothing.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(logs.join("svc.out.log")).expect("stdout file"),
        "out\nmore\n"
    );
    assert_eq!(
        std::fs::read_to_string(logs.join("svc.log")).expect("stderr file"),
        "err\n"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("memlogd refused svc.out") && err.contains("-max-inputs 1"),
        "{err}"
    );
}

#[test]
fn run_keeps_what_memlogd_took_and_falls_back_for_the_rest() {
    let m = Memlogd::start(&["-max-inputs", "2"]);
    let _hold = m.writer("holder");
    assert!(wait_for(|| m.stat("inputs") == 1, TIMEOUT));
    let logs = TempDir::new("handover-half");
    let out = run_sh(
        m.log_socket(),
        logs.path(),
        "half",
        "echo to-memlogd; echo to-file >&2",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    m.wait_msg("half.out", "to-memlogd");
    assert_eq!(
        std::fs::read_to_string(logs.join("half.log")).expect("stderr file"),
        "to-file\n"
    );
    assert!(!logs.join("half.out.log").exists());
}

#[test]
fn fifo_refused_by_memlogd_gives_a_plain_file_and_no_dead_fifo() {
    let (m, _hold) = full();
    let run = TempDir::new("handover-fifo-run");
    let logs = TempDir::new("handover-fifo-logs");
    let out = shim(&[
        "fifo".as_ref(),
        "-socket".as_ref(),
        m.log_socket().as_os_str(),
        "-dir".as_ref(),
        run.path().as_os_str(),
        "-log-dir".as_ref(),
        logs.path().as_os_str(),
        "getty.out".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout).trim().to_owned();
    assert_eq!(Path::new(&printed), logs.join("getty.out.log"));
    assert!(
        !run.join("getty.out.log").exists(),
        "the refused FIFO is gone"
    );
    let ft = std::fs::metadata(&printed).expect("file").file_type();
    assert!(ft.is_file() && !ft.is_fifo());
    assert!(
        text(&out.stderr).contains("refused"),
        "{}",
        text(&out.stderr)
    );
    // A service opening it for writing does not block.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&printed)
        .and_then(|mut f| f.write_all(b"service output\n"))
        .expect("write");
}

#[test]
fn run_against_a_memlogd_that_never_answers_logs_there_as_before() {
    // LinuxKit's memlogd: reads the datagram, takes the fd, says nothing.
    let dir = TempDir::new("handover-lk");
    let path = dir.join("log.sock");
    let server = UnixDatagram::bind(&path).expect("bind");
    let reader = std::thread::spawn(move || {
        let mut name = [0u8; 256];
        let mut got = Vec::new();
        while got.len() < 2 {
            let mut fds = Vec::new();
            match memlog::sys::recv_msg(server.as_fd(), &mut name, &mut fds) {
                Ok(_) => got.extend(fds),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        let mut out = String::new();
        std::fs::File::from(got.remove(0))
            .read_to_string(&mut out)
            .expect("read");
        out
    });
    let logs = TempDir::new("handover-lk-logs");
    let out = run_sh(&path, logs.path(), "lk", "echo to linuxkit");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(reader.join().expect("reader"), "to linuxkit\n");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    assert!(!logs.join("lk.out.log").exists());
}
