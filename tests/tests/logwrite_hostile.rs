//! logwrite against a hostile local user: source names that are not UTF-8,
//! messages that try to forge lines or drive a terminal, links planted in
//! the log directory (at the old fixed temporary names, or as a source's
//! file), and state files that are huge, FIFOs or devices.

use memlog_tests::logwrite::{
    lines, msgs, numbered, peak_rss_kib, saved_position, wait_msgs, write_lines, Logwrite, TcpSink,
};
use memlog_tests::{wait_until, Memlogd, TempDir};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;

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

#[test]
fn links_planted_at_the_old_temporary_names_are_not_written_through() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-planted");
    let victims = TempDir::new("lw-victims");
    let errs = TempDir::new("lw-err");
    let sink = TcpSink::start();
    // The names logwrite used to write its temporaries under: a hard link
    // there to a file of someone else's used to be truncated and written.
    let victim = victims.join("victim");
    std::fs::write(&victim, "precious").expect("write");
    for name in [".logwrite.state.tmp", "svc.log.0.gz.tmp"] {
        std::fs::hard_link(&victim, logs.join(name)).expect("link");
    }
    // A symbolic link there used to stop the saves (ELOOP) for good.
    let sym = victims.join("symlinked");
    std::fs::write(&sym, "precious too").expect("write");
    let remote_tmp = format!("{}.tmp", sink.state_file());
    std::os::unix::fs::symlink(&sym, logs.join(remote_tmp)).expect("symlink");
    // Temporaries a killed logwrite left (older than a minute) go at start.
    let stale = [
        "..logwrite.state.00112233445566aa.tmp".to_string(),
        format!(".{}.8899aabbccddeeff.tmp", sink.state_file()),
    ];
    for name in &stale {
        let f = std::fs::File::create(logs.join(name)).expect("create");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        f.set_modified(old).expect("mtime");
    }
    let url = sink.url();
    let lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &["-max-log-size", "1k", "-compress", "-remote", &url],
    );
    let want = numbered("line", 0..100, 60);
    write_lines(&m, "svc", &want);
    wait_until("two compressed rotations", || {
        logs.join("svc.log.1.gz").exists()
    });
    wait_until("the last line", || {
        msgs(logs.path(), "svc.log").last() == want.last()
    });
    wait_until("both positions", || {
        saved_position(logs.path(), ".logwrite.state").is_some()
            && saved_position(logs.path(), &sink.state_file()).is_some()
    });
    wait_until("the last line forwarded", || {
        sink.text().contains(want.last().expect("lines"))
    });
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read"),
        "precious",
        "{}",
        lw.stderr()
    );
    assert_eq!(std::fs::read_to_string(&sym).expect("read"), "precious too");
    for name in &stale {
        assert!(!logs.join(name).exists(), "{name} is still there");
    }
    // The state files are logwrite's own (not a link to anything).
    use std::os::unix::fs::MetadataExt;
    for name in [".logwrite.state".to_string(), sink.state_file()] {
        let md = std::fs::symlink_metadata(logs.join(&name)).expect(&name);
        assert!(md.is_file() && md.nlink() == 1, "{name}");
    }
}

/// Plants a bad state file with `plant` (given its path) for the file
/// output and for a remote, starts logwrite, writes a few lines and checks
/// they are written and forwarded, that stderr says why each state was
/// refused, and that logwrite's memory never grew with the state's size.
fn refused_state(tag: &str, why: &str, plant: impl Fn(&Path)) {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new(tag);
    let errs = TempDir::new("lw-err");
    let sink = TcpSink::start();
    plant(&logs.join(".logwrite.state"));
    plant(&logs.join(sink.state_file()));
    let url = sink.url();
    let lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &["-remote", &url]);
    let want = numbered("after a bad state", 0..5, 0);
    write_lines(&m, "svc", &want);
    wait_msgs(logs.path(), "svc.log", &want, &lw);
    wait_until("forwarding", || sink.text().contains(&want[4]));
    for name in [".logwrite.state".to_string(), sink.state_file()] {
        lw.wait_stderr(&format!("{name} ({why}"));
    }
    let peak = peak_rss_kib(lw.pid());
    assert!(peak < 64 * 1024, "logwrite's peak RSS is {peak} KiB");
}

#[test]
fn a_huge_state_file_is_refused_without_reading_it() {
    refused_state("lw-huge", "it is larger than", |p| {
        // Sparse: no disk used, but 300 MB to read.
        let f = std::fs::File::create(p).expect("create");
        f.set_len(300 << 20).expect("set_len");
    });
}

#[test]
fn a_fifo_as_the_state_file_is_refused_without_hanging() {
    refused_state("lw-fifo", "it is not a regular file", |p| {
        nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    });
}

#[test]
fn dev_zero_as_the_state_file_is_refused() {
    refused_state("lw-zero", "it is a symbolic link", |p| {
        std::os::unix::fs::symlink("/dev/zero", p).expect("symlink");
    });
}

#[test]
fn a_hard_link_or_a_fifo_as_a_sources_file_is_replaced_not_written_through() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-hardlink");
    let errs = TempDir::new("lw-err");
    // A file someone else owns, hard-linked as svc.log before logwrite
    // writes svc's records; a FIFO as fifo.log (opening it used to hang).
    let precious = logs.join("precious");
    std::fs::write(&precious, "precious\n").expect("write");
    std::fs::hard_link(&precious, logs.join("svc.log")).expect("link");
    nix::unistd::mkfifo(
        &logs.join("fifo.log"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("mkfifo");
    let lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &[]);
    let want = numbered("svc", 0..3, 0);
    write_lines(&m, "svc", &want);
    write_lines(&m, "fifo", &["into the fifo".to_string()]);
    wait_msgs(logs.path(), "svc.log", &want, &lw);
    wait_msgs(logs.path(), "fifo.log", &["into the fifo".into()], &lw);
    assert_eq!(
        std::fs::read_to_string(&precious).expect("read"),
        "precious\n"
    );
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(logs.join("svc.log")).expect("stat");
    assert!(md.is_file() && md.nlink() == 1);
    lw.wait_stderr("svc.log had 2 links");
    lw.wait_stderr("fifo.log was a FIFO, not a regular file: replaced it with a new file");
}
