//! logwrite against a hostile local user: source names that are not UTF-8,
//! messages that try to forge lines or drive a terminal, links planted in
//! the log directory (at the old fixed temporary names, or as a source's
//! file), and state files that are huge, FIFOs or devices.

use memlog_tests::logwrite::{wait_msgs, Logwrite};
use memlog_tests::{Memlogd, TempDir};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

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
