//! Writers: every kind of fd LinuxKit hands memlogd becomes records, line by
//! line, with the name it was sent with.

use memlog_tests::{msgs_from, raise_fd_limit, wait_until, Memlogd};
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;

#[test]
fn socketpair_lines_become_records_with_the_name() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("onboot.001-dhcpcd.out");
    w.write_all(b"eth0: waiting for carrier\neth0: carrier acquired\n")
        .expect("write");
    m.wait_msg("onboot.001-dhcpcd.out", "eth0: carrier acquired");
    let recs = m.records();
    assert_eq!(
        msgs_from(&recs, "onboot.001-dhcpcd.out"),
        ["eth0: waiting for carrier", "eth0: carrier acquired"]
    );
}

/// A new FIFO at `path`: its read end (opened without blocking) and its
/// write end.
fn fifo(path: &std::path::Path) -> (std::fs::File, std::fs::File) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let rd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .expect("open fifo read end");
    let wr = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open fifo write end");
    (rd, wr)
}

#[test]
fn fifo_read_end_is_an_input() {
    let m = Memlogd::start(&[]);
    let path = m.dir().join("svc.fifo");
    // As LinuxKit init does for containerd services: open the read end
    // without blocking, then the write end, and hand memlogd the read end.
    let (rd, mut wr) = fifo(&path);
    m.send_fds(b"svc.out", &[rd.as_fd()]).expect("send fifo");
    drop(rd);
    wr.write_all(b"from a fifo\nsecond line\n").expect("write");
    m.wait_msg("svc.out", "second line");
    wr.write_all(b"after a pause\n").expect("write");
    m.wait_msg("svc.out", "after a pause");
    drop(wr);
    assert_eq!(
        msgs_from(&m.records(), "svc.out"),
        ["from a fifo", "second line", "after a pause"]
    );
    m.assert_serves();
}

#[test]
fn several_fds_in_one_datagram_are_separate_streams() {
    let m = Memlogd::start(&[]);
    let pairs: Vec<(UnixStream, UnixStream)> = (0..3)
        .map(|_| UnixStream::pair().expect("socketpair"))
        .collect();
    let theirs: Vec<_> = pairs.iter().map(|(_, t)| t.as_fd()).collect();
    m.send_fds(b"multi", &theirs).expect("send 3 fds");
    let mut ours: Vec<UnixStream> = pairs.into_iter().map(|(o, _)| o).collect();
    // Interleave partial lines: each fd must assemble its own lines.
    ours[0].write_all(b"A-start").expect("write");
    ours[1].write_all(b"B-whole\n").expect("write");
    m.wait_msg("multi", "B-whole");
    ours[2].write_all(b"C-start").expect("write");
    ours[0].write_all(b"-A-end\n").expect("write");
    m.wait_msg("multi", "A-start-A-end");
    ours[2].write_all(b"-C-end\n").expect("write");
    m.wait_msg("multi", "C-start-C-end");
    let mut got = msgs_from(&m.records(), "multi");
    got.sort();
    assert_eq!(got, ["A-start-A-end", "B-whole", "C-start-C-end"]);
}

#[test]
fn a_thousand_writers_at_once_lose_nothing() {
    const WRITERS: usize = 1000;
    const LINES: usize = 5;
    assert!(
        raise_fd_limit() >= (2 * WRITERS + 100) as libc::rlim_t,
        "RLIMIT_NOFILE hard limit too low for this test"
    );
    let m = Memlogd::start(&["-max-inputs", "2000", "-max-lines", "100000"]);
    let mut ws: Vec<UnixStream> = (0..WRITERS).map(|i| m.writer(&format!("w{i}"))).collect();
    for j in 0..LINES {
        for (i, w) in ws.iter_mut().enumerate() {
            w.write_all(format!("w{i} line {j}\n").as_bytes())
                .expect("write");
        }
    }
    let mut per: HashMap<String, Vec<String>> = HashMap::new();
    wait_until("every line of every writer", || {
        per.clear();
        for r in m.records() {
            if r.source.starts_with('w') {
                per.entry(r.source).or_default().push(r.msg);
            }
        }
        per.values().map(Vec::len).sum::<usize>() >= WRITERS * LINES
    });
    assert_eq!(per.len(), WRITERS);
    for (i, _) in ws.iter().enumerate() {
        let want: Vec<String> = (0..LINES).map(|j| format!("w{i} line {j}")).collect();
        assert_eq!(per[&format!("w{i}")], want, "writer w{i}");
    }
    drop(ws);
    m.assert_serves();
}

#[test]
fn partial_last_line_is_a_record() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("partial");
    w.write_all(b"complete\nno newline at the end")
        .expect("write");
    drop(w);
    m.wait_msg("partial", "no newline at the end");
    assert_eq!(
        msgs_from(&m.records(), "partial"),
        ["complete", "no newline at the end"]
    );
}

#[test]
fn long_line_is_cut_at_max_line_len_and_marked() {
    let m = Memlogd::start(&["-max-line-len", "100"]);
    let mut w = m.writer("long");
    let mut data = Vec::new();
    data.extend_from_slice(&[b'x'; 250]);
    data.extend_from_slice(b"\n");
    data.extend_from_slice(&[b'y'; 100]);
    data.extend_from_slice(b"\nnext line intact\n");
    w.write_all(&data).expect("write");
    // A long line arriving in pieces is cut the same way.
    for _ in 0..3 {
        w.write_all(&[b'z'; 60]).expect("write");
    }
    w.write_all(b"\nlast\n").expect("write");
    m.wait_msg("long", "last");
    let recs: Vec<_> = m
        .records()
        .into_iter()
        .filter(|r| r.source == "long")
        .collect();
    let got: Vec<(String, bool)> = recs.iter().map(|r| (r.msg.clone(), r.truncated)).collect();
    assert_eq!(
        got,
        [
            ("x".repeat(100), true),
            ("y".repeat(100), false),
            ("next line intact".to_owned(), false),
            ("z".repeat(100), true),
            ("last".to_owned(), false),
        ]
    );
    // A long last line without `\n` is cut once, not stored twice.
    let mut w2 = m.writer("long-unterminated");
    w2.write_all(&[b'q'; 250]).expect("write");
    drop(w2);
    m.wait_msg("long-unterminated", &"q".repeat(100));
    m.assert_serves();
    let got: Vec<(String, bool)> = m
        .records()
        .into_iter()
        .filter(|r| r.source == "long-unterminated")
        .map(|r| (r.msg, r.truncated))
        .collect();
    assert_eq!(got, [("q".repeat(100), true)]);
}

/// LinuxKit reads lines with Go's `bufio.Reader.ReadLine`, which drops
/// `"\r\n"` as it drops `"\n"`: so does memlogd, and the `\r` does not count
/// toward `-max-line-len`. A `\r` elsewhere, and a final one at EOF, is kept.
#[test]
fn crlf_line_endings_are_dropped_as_linuxkit_drops_them() {
    let m = Memlogd::start(&["-max-line-len", "10"]);
    let mut w = m.writer("dos");
    w.write_all(b"windows\r\nunix\n\r\nin\rside\n")
        .expect("write");
    // Exactly -max-line-len bytes, then `\r`, with the `\n` in a later write.
    w.write_all(b"0123456789\r").expect("write");
    m.wait_msg("dos", "in\rside");
    w.write_all(b"\n0123456789\rX\nlast\r").expect("write");
    drop(w);
    m.wait_msg("dos", "last\r");
    let got: Vec<(String, bool)> = m
        .records()
        .into_iter()
        .filter(|r| r.source == "dos")
        .map(|r| (r.msg, r.truncated))
        .collect();
    let want: Vec<(String, bool)> = [
        ("windows", false),
        ("unix", false),
        ("", false),
        ("in\rside", false),
        ("0123456789", false),
        ("0123456789", true),
        ("last\r", false),
    ]
    .iter()
    .map(|&(s, t)| (s.to_owned(), t))
    .collect();
    assert_eq!(got, want);
}

/// `O_NONBLOCK` of the sender's open file description.
fn nonblocking(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    let fl = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).expect("F_GETFL");
    fl & libc::O_NONBLOCK != 0
}

/// An fd handed to memlogd shares its open file description with the
/// sender's copy: memlogd must not make the sender's reads non-blocking
/// (PROTOCOL.md section 1). A pipe, a socketpair end and a FIFO that the
/// sender keeps (and could read itself) stay blocking, and are logged.
#[test]
fn received_fds_keep_the_senders_file_status_flags() {
    let m = Memlogd::start(&[]);
    // A pipe whose read end the sender keeps a dup of.
    let (rd, wr) = nix::unistd::pipe().expect("pipe");
    let kept = rd.try_clone().expect("dup");
    m.send_fds(b"piped", &[rd.as_fd()]).expect("send pipe");
    drop(rd);
    let mut wr = std::fs::File::from(wr);
    wr.write_all(b"through a pipe\n").expect("write");
    m.wait_msg("piped", "through a pipe");
    assert!(
        !nonblocking(kept.as_fd()),
        "the sender's pipe end became non-blocking"
    );
    // A socketpair end the sender also keeps.
    let (mut ours, theirs) = UnixStream::pair().expect("socketpair");
    m.send_fds(b"paired", &[theirs.as_fd()])
        .expect("send socket");
    ours.write_all(b"through a socket\n").expect("write");
    m.wait_msg("paired", "through a socket");
    assert!(
        !nonblocking(theirs.as_fd()),
        "the sender's socket became non-blocking"
    );
    // A named FIFO's read end, opened blocking (a writer was there first).
    let path = m.dir().join("kept.fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let p = path.clone();
    let opener = std::thread::spawn(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .expect("open fifo write end")
    });
    let frd = std::fs::File::open(&path).expect("open fifo read end");
    let mut fwr = opener.join().expect("opener");
    m.send_fds(b"fifo", &[frd.as_fd()]).expect("send fifo");
    fwr.write_all(b"through a fifo\n").expect("write");
    m.wait_msg("fifo", "through a fifo");
    assert!(
        !nonblocking(frd.as_fd()),
        "the sender's FIFO end became non-blocking"
    );
    // memlogd still reads each to its end.
    wr.write_all(b"pipe again\n").expect("write");
    ours.write_all(b"socket again\n").expect("write");
    fwr.write_all(b"fifo again\n").expect("write");
    drop((wr, ours, fwr));
    m.wait_msg("piped", "pipe again");
    m.wait_msg("paired", "socket again");
    m.wait_msg("fifo", "fifo again");
    wait_until("the three inputs to close", || {
        m.stats().iter().any(|(k, v)| k == "inputs" && *v == 0)
    });
}

/// A FIFO whose writer wrote and went away before memlogd got the read
/// end: what it wrote is stored, its last unfinished line too, and the
/// input ends (a fresh open of a FIFO would not see that hang-up).
#[test]
fn fifo_whose_writer_left_before_the_handover_is_read_to_its_end() {
    let m = Memlogd::start(&[]);
    let path = m.dir().join("gone.fifo");
    let (rd, mut wr) = fifo(&path);
    wr.write_all(b"written early\nunfinished").expect("write");
    drop(wr);
    m.send_fds(b"early", &[rd.as_fd()]).expect("send fifo");
    drop(rd);
    m.wait_msg("early", "unfinished");
    assert_eq!(
        msgs_from(&m.records(), "early"),
        ["written early", "unfinished"]
    );
    wait_until("the input to close", || {
        m.stats().iter().any(|(k, v)| k == "inputs" && *v == 0)
    });
}
