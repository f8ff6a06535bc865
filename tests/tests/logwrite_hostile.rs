//! logwrite against a hostile local user: source names that are not UTF-8,
//! messages that try to forge lines or drive a terminal, links planted in
//! the log directory (at the old fixed temporary names, or as a source's
//! file), and state files that are huge, FIFOs or devices.

use memlog_tests::logwrite::{lines, wait_msgs, Logwrite};
use memlog_tests::{wait_until, Memlogd, TempDir};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixStream};

/// A new memlogd input whose name is the raw bytes `name`.
fn writer_raw(m: &Memlogd, name: &[u8]) -> UnixStream {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    m.send_fds(name, &[theirs.as_fd()]).expect("send fd");
    ours
}

#[test]
fn names_that_are_not_utf8_get_files_of_their_own() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-raw");
    let errs = TempDir::new("lw-err");
    let lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &[]);
    // Both names are two invalid bytes: a lossy transport maps both to
    // U+FFFD U+FFFD, and so to one file.
    let mut a = writer_raw(&m, b"\xff\xfe");
    a.write_all(b"from ff fe\n").expect("write");
    let mut b = writer_raw(&m, b"\xfd\xfc");
    b.write_all(b"from fd fc\n").expect("write");
    drop((a, b));
    wait_msgs(logs.path(), "%ff%fe.log", &["from ff fe".into()], &lw);
    wait_msgs(logs.path(), "%fd%fc.log", &["from fd fc".into()], &lw);
    assert!(!logs.join("%ef%bf%bd%ef%bf%bd.log").exists());
    // A selection glob matches the bytes too: `??` is two bytes (the
    // lossy name, two U+FFFD, is six).
    let sel = TempDir::new("lw-raw-sel");
    let lw2 = Logwrite::start(m.query_socket(), sel.path(), &errs, &["-include", "??"]);
    wait_msgs(sel.path(), "%ff%fe.log", &["from ff fe".into()], &lw2);
    wait_msgs(sel.path(), "%fd%fc.log", &["from fd fc".into()], &lw2);
}

#[test]
fn a_message_cannot_forge_a_line_or_drive_a_terminal() {
    let dir = TempDir::new("lw-forge-m");
    let devlog = dir.join("devlog");
    let m = Memlogd::start_in(dir, &["-syslog", devlog.to_str().expect("utf-8")]);
    let logs = TempDir::new("lw-forge");
    let errs = TempDir::new("lw-err");
    let lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &[]);
    // Any local user may put any bytes in a syslog message: a newline and a
    // whole sshd line, terminal escapes, bytes that are not UTF-8.
    let forged: &[u8] =
        b"<13>app: ok\nNov 21 12:00:00 sshd[1]: forged\r\x1b]0;owned\x07\x1b[2J\xff\xfe end";
    UnixDatagram::unbound()
        .expect("socket")
        .send_to(forged, &devlog)
        .expect("send");
    // The source name too (a socket name is bytes).
    let mut w = writer_raw(&m, b"sshd\n\x1b[31m");
    w.write_all(b"second\n").expect("write");
    drop(w);
    wait_until("app.log", || !lines(logs.path(), "app.log").is_empty());
    let want = "ok\\nNov 21 12:00:00 sshd[1]: forged\\r\\x1b]0;owned\\x07\\x1b[2J\\xff\\xfe end";
    let got = std::fs::read(logs.join("app.log")).expect("read");
    let text = String::from_utf8(got).expect("the file is UTF-8");
    assert_eq!(text.matches('\n').count(), 1, "{text:?}");
    assert!(text.ends_with(&format!(" app {want}\n")), "{text:?}");
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    let stem = "sshd%0a%1b[31m.log";
    wait_until(stem, || !lines(logs.path(), stem).is_empty());
    let l = lines(logs.path(), stem);
    assert_eq!(l.len(), 1, "{l:?}; {}", lw.stderr());
    assert!(l[0].ends_with(" sshd\\n\\x1b[31m second"), "{l:?}");
}
