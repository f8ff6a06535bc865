//! The kernel log input (fed recorded kernel output through a file and a
//! FIFO) and per-source rate limits.

use memlog_tests::{msgs_from, wait_for, Memlogd, TempDir};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Recorded /dev/kmsg output: continuation lines, escapes, and a sequence
/// gap (5 -> 9: three records the kernel overwrote).
const RECORDED: &[u8] = b"6,1,0,-;Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org)
5,2,512000,-;SCSI subsystem initialized
6,3,1200000,-;NET: Registered PF_INET6 protocol family
 SUBSYSTEM=net
 DEVICE=+net:lo
4,4,1300000,-;caf\\xc3\\xa9 \\x5c backslash and a tab\\x09here
3,5,1400000,-;usb 1-1: device descriptor read/64, error -71
6,9,2000000,-;after the gap
14,10,2100000,-;a message userspace wrote to /dev/kmsg
";

fn check_recorded(m: &Memlogd) {
    let last = m.wait_msg("kmsg", "a message userspace wrote to /dev/kmsg");
    assert_eq!((last.facility, last.severity), (Some(1), Some(6)));
    let recs = m.records();
    let k: Vec<_> = recs.iter().filter(|r| r.source == "kmsg").collect();
    assert_eq!(k.len(), 7, "{k:#?}");
    assert_eq!(k[1].msg, "SCSI subsystem initialized");
    assert_eq!(
        (k[1].facility, k[1].severity, k[1].kseq, k[1].ktime_us),
        (Some(0), Some(5), Some(2), Some(512_000))
    );
    assert_eq!(k[2].kv, vec!["SUBSYSTEM=net", "DEVICE=+net:lo"]);
    assert_eq!(k[3].msg, "café \\ backslash and a tab\there");
    assert_eq!(k[4].severity, Some(3));
    let gap = m.wait_self_record(&["kmsg", "3 kernel messages lost"]);
    assert!(
        gap.seq < k[5].seq,
        "the gap is recorded before the record after it"
    );
    assert_eq!(m.stat("kmsg_lost"), 3);
    // Kernel timestamps count from boot: a record from 2 s after boot is
    // older than one from 0.5 s... and none claims to be from the future.
    assert!(k[1].time_ns() < k[5].time_ns());
    assert!(k
        .iter()
        .all(|r| r.time_ns() <= last.time_ns().map(|t| t + 1_000_000_000)));
}

#[test]
fn recorded_kernel_log_from_a_file() {
    let dir = TempDir::new("kmsg");
    let f = dir.join("kmsg.txt");
    std::fs::write(&f, RECORDED).expect("write");
    let m = Memlogd::start_in(dir, &["-kmsg-file", f.to_str().expect("utf8")]);
    check_recorded(&m);
}

#[test]
fn kernel_log_from_a_fifo_in_pieces() {
    let dir = TempDir::new("kmsg-fifo");
    let f = dir.join("kmsg.fifo");
    nix::unistd::mkfifo(&f, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let path = f.clone();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open fifo");
        // Cut in the middle of a record and between a record and its
        // continuation lines.
        for chunk in [
            &RECORDED[..40],
            &RECORDED[40..120],
            &RECORDED[120..150],
            &RECORDED[150..],
        ] {
            w.write_all(chunk).expect("write");
            w.flush().expect("flush");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let m = Memlogd::start_in(dir, &["-kmsg-file", f.to_str().expect("utf8")]);
    writer.join().expect("writer");
    check_recorded(&m);
}

/// A service that restarts opens the kernel-log FIFO anew: memlogd reads
/// the second writer too (it opens the FIFO again at each EOF), and each
/// writer's unfinished last record is stored when it closes.
#[test]
fn kernel_log_fifo_is_read_again_after_its_writer_closes() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = TempDir::new("kmsg-fifo2");
    let f = dir.join("kmsg.fifo");
    nix::unistd::mkfifo(&f, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let m = Memlogd::start_in(dir, &["-kmsg-file", f.to_str().expect("utf8")]);
    // A non-blocking open for writing fails (ENXIO) while no one reads.
    let open_writer = || {
        let mut w = None;
        memlog_tests::wait_until("a reader on the kernel-log FIFO", || {
            w = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&f)
                .ok();
            w.is_some()
        });
        w.expect("writer")
    };
    for (k, round) in [(1u64, "first"), (3, "second"), (5, "third")] {
        let mut w = open_writer();
        let text = format!(
            "6,{k},0,-;{round} writer\n6,{},1,-;{round} writer's last",
            k + 1
        );
        w.write_all(text.as_bytes()).expect("write");
        drop(w);
        m.wait_msg("kmsg", &format!("{round} writer's last"));
    }
    let recs = m.records();
    assert_eq!(
        msgs_from(&recs, "kmsg"),
        [
            "first writer",
            "first writer's last",
            "second writer",
            "second writer's last",
            "third writer",
            "third writer's last"
        ]
    );
    m.assert_serves();
}

#[test]
fn missing_kernel_log_is_a_clear_start_error() {
    let dir = TempDir::new("kmsg-missing");
    let out = memlog_tests::run_with_timeout(
        std::process::Command::new(memlog_tests::bin("memlogd"))
            .arg("-socket-log")
            .arg(dir.join("l.sock"))
            .arg("-socket-query")
            .arg(dir.join("q.sock"))
            .args(["-kmsg-file", "/nonexistent/kmsg"]),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/kmsg"), "{err}");
    assert!(!dir.join("l.sock").exists() && !dir.join("q.sock").exists());
}

#[test]
fn a_flooding_source_is_limited_and_summarised_others_are_not() {
    let dir = TempDir::new("rate");
    let sys = dir.join("devlog");
    let m = Memlogd::start_in(
        dir,
        &[
            "-rate-limit-burst",
            "50",
            "-rate-limit-interval",
            "2s",
            "-syslog",
            sys.to_str().expect("utf8"),
        ],
    );
    let mut quiet = m.writer("quiet");
    quiet.write_all(b"q1\n").expect("write");
    let mut flood = m.writer("flood");
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!("flood {i}\n"));
    }
    flood.write_all(text.as_bytes()).expect("write");
    // An emergency from the flooding source is never limited.
    UnixDatagram::unbound()
        .expect("socket")
        .send_to(b"<0>flood: the sky is falling", &sys)
        .expect("send");
    quiet.write_all(b"q2\n").expect("write");
    m.wait_msg("quiet", "q2");
    m.wait_msg("flood", "the sky is falling");
    let summary = m.wait_self_record(&["suppressed", "messages from flood"]);
    assert!(
        summary.msg.contains("suppressed 950 messages from flood"),
        "{}",
        summary.msg
    );
    let recs = m.records();
    let flood_recs = msgs_from(&recs, "flood");
    assert_eq!(flood_recs.len(), 51, "50 in the window plus the emergency");
    // The window's budget went to the first 50 lines, in order (the
    // emergency came on another socket, so its place among them varies).
    let lines: Vec<&String> = flood_recs
        .iter()
        .filter(|m| m.starts_with("flood "))
        .collect();
    assert_eq!(
        lines,
        (0..50)
            .map(|i| format!("flood {i}"))
            .collect::<Vec<_>>()
            .iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(msgs_from(&recs, "quiet"), ["q1", "q2"]);
    assert_eq!(m.stat("rate_limited"), 950);
    // The next window has a fresh budget.
    flood.write_all(b"after the window\n").expect("write");
    m.wait_msg("flood", "after the window");
}

#[test]
fn a_flood_cannot_push_other_sources_out_of_the_ring() {
    // 100 records fit; each source may store 40 per window of 60 s.
    let m = Memlogd::start(&[
        "-max-lines",
        "100",
        "-rate-limit-burst",
        "40",
        "-rate-limit-interval",
        "60s",
    ]);
    let mut keep = m.writer("important");
    for i in 0..40 {
        keep.write_all(format!("important {i}\n").as_bytes())
            .expect("write");
    }
    m.wait_msg("important", "important 39");
    let mut flood = m.writer("flood");
    for _ in 0..100 {
        flood
            .write_all("spam\n".repeat(1000).as_bytes())
            .expect("write");
    }
    drop(flood);
    assert!(wait_for(
        || m.stat("rate_limited") >= 100 * 1000 - 40,
        Duration::from_secs(30)
    ));
    let recs = m.records();
    assert_eq!(msgs_from(&recs, "flood").len(), 40);
    // 40 important + 40 flood + memlogd's own fit in 100: without the limit
    // the flood's 100,000 lines would have overwritten every one of them.
    let kept = msgs_from(&recs, "important");
    assert_eq!(
        kept.len(),
        40,
        "important records were pushed out: {kept:?}"
    );
}

/// Sends each of `msgs` as one datagram to `path` from a child process
/// running as `uid` (and gid `uid`, no supplementary groups), so that the
/// kernel reports that uid with them (SCM_CREDENTIALS).
fn send_as(uid: u32, path: &std::path::Path, msgs: &[Vec<u8>]) {
    // Everything the child needs is made before the fork: after it, the
    // child only makes system calls (this process has other threads).
    let (addr, len) = memlog_tests::sockaddr_un(path);
    // SAFETY: the child calls only async-signal-safe functions (setgroups,
    // setgid, setuid, socket, sendto, _exit) on memory made before the
    // fork, and never returns into Rust code.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            if !memlog_tests::become_uid_in_child(uid) {
                libc::_exit(2);
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
            if fd < 0 {
                libc::_exit(3);
            }
            for m in msgs {
                let sa = (&addr as *const libc::sockaddr_un).cast::<libc::sockaddr>();
                if libc::sendto(fd, m.as_ptr().cast(), m.len(), 0, sa, len) < 0 {
                    libc::_exit(4);
                }
            }
            libc::_exit(0);
        }
    }
    let mut status = 0;
    let done = wait_for(
        || {
            // SAFETY: waitpid writes one int that we own; WNOHANG never blocks.
            unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == pid }
        },
        Duration::from_secs(60),
    );
    assert!(done, "the sender as uid {uid} did not finish");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the sender as uid {uid} failed: status {status:#x}"
    );
}

/// The syslog rate limit is keyed by what the sender cannot choose: all
/// the tags of one unprivileged uid share one budget, so a fresh tag per
/// message buys nothing (the kernel reports the uid, SCM_CREDENTIALS), and
/// the flood cannot push other sources out of the ring. Root keeps one
/// budget per tag.
#[test]
fn fresh_tags_from_one_unprivileged_uid_share_one_budget() {
    if !nix::unistd::geteuid().is_root() {
        memlog_tests::skip("needs root to send as uid 65534 (CI runs as root)");
        return;
    }
    let dir = TempDir::new("rate-uid");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let sys = dir.join("devlog");
    let m = Memlogd::start_in(
        dir,
        &[
            "-rate-limit-burst",
            "100",
            "-rate-limit-interval",
            "60s",
            "-max-lines",
            "1000",
            "-syslog",
            sys.to_str().expect("utf8"),
        ],
    );
    let mut keep = m.writer("important");
    for i in 0..50 {
        keep.write_all(format!("important {i}\n").as_bytes())
            .expect("write");
    }
    m.wait_msg("important", "important 49");
    // 5000 datagrams, each with a tag of its own, from uid 65534; half of
    // them claim to be emergencies (`<8>`, user.emerg): the sender picks
    // the priority too, so that buys nothing either.
    let msgs: Vec<Vec<u8>> = (0..5000)
        .map(|i| format!("<{}>fresh{i}: flood {i}", if i % 2 == 0 { 14 } else { 8 }).into_bytes())
        .collect();
    send_as(65534, &sys, &msgs);
    // The socket's queue is in order: once this is stored, so are they.
    let c = UnixDatagram::unbound().expect("socket");
    c.send_to(b"<14>marker: after the flood", &sys)
        .expect("send");
    m.wait_msg("marker", "after the flood");
    let recs = m.records();
    let flood: Vec<_> = recs
        .iter()
        .filter(|r| r.source.starts_with("fresh"))
        .collect();
    assert_eq!(flood.len(), 100, "one budget for every tag of uid 65534");
    assert!(flood.iter().all(|r| r.uid == Some(65534)));
    assert_eq!(m.stat("rate_limited"), 4900);
    assert!(flood.iter().any(|r| r.severity == Some(0)));
    let kept = msgs_from(&recs, "important");
    assert_eq!(kept.len(), 50, "other sources were pushed out: {kept:?}");
    // Root (trusted) keeps one budget per tag: 150 tags, all stored.
    for i in 0..150 {
        c.send_to(format!("<14>roottag{i}: fine {i}").as_bytes(), &sys)
            .expect("send");
    }
    m.wait_msg("roottag149", "fine 149");
    let recs = m.records();
    assert_eq!(
        recs.iter()
            .filter(|r| r.source.starts_with("roottag"))
            .count(),
        150
    );
    assert_eq!(m.stat("rate_limited"), 4900);
}
