//! Fault: file-descriptor exhaustion. memlogd runs with `RLIMIT_NOFILE` 256
//! (soft and hard, so it cannot raise it) while 10,000 writers hand it their
//! fds at once. The kernel drops the fds memlogd has no room for; memlogd
//! counts each such datagram (`fds_dropped`), says so in its own records,
//! never crashes, and keeps serving the writers and readers it holds. Out of
//! fds, `accept()` fails (`accept_errors`): memlogd pauses accepting and
//! resumes once an fd is free, and the waiting readers are served.

use memlog::proto::Mode;
use memlog_tests::{
    decode_record, limit_fds, process_alive, wait_for, wait_until, Got, LineReader, Memlogd,
    TempDir, TIMEOUT,
};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// Writers handing memlogd an fd each, all open at the same time.
const WRITERS: usize = 10_000;
/// Fds per datagram (at most 253, the kernel's `SCM_MAX_FD`).
const BATCH: usize = 250;
/// memlogd's fd limit.
const MEMLOGD_FDS: libc::rlim_t = 256;
/// Alive writers closed to give memlogd room again.
const CLOSED: usize = 16;

/// Raises this process's fd limit so it can hold `want` fds: the soft limit
/// to the hard one, and as root the hard one too if needed. Returns the
/// soft limit in force.
fn fd_limit_for(want: libc::rlim_t) -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct that we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_max < want {
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: want,
        };
        // SAFETY: setrlimit reads one rlimit struct that we own. Raising the
        // hard limit needs root; without it this fails and changes nothing.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return want;
        }
    }
    memlog_tests::raise_fd_limit()
}

/// Which of `socks` have their peer closed (`POLLHUP`), right now.
fn hung_up(socks: &[UnixStream]) -> Vec<bool> {
    let mut fds: Vec<PollFd> = socks
        .iter()
        .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
        .collect();
    poll(&mut fds, PollTimeout::ZERO).expect("poll");
    fds.iter()
        .map(|p| p.revents().is_some_and(|r| r.contains(PollFlags::POLLHUP)))
        .collect()
}

/// Reads the follower until a record satisfies `want`; returns the messages
/// of the records read on the way (that one included).
fn follow_until(r: &mut LineReader, what: &str, want: impl Fn(&str, &str) -> bool) -> Vec<String> {
    let end = Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match r.next_line(left).expect("read follower") {
            Got::Line(l) => {
                let rec = decode_record(&l);
                let done = want(&rec.source, &rec.msg);
                seen.push(format!("{}: {}", rec.source, rec.msg));
                if done {
                    return seen;
                }
            }
            other => panic!("follower: {other:?} before {what}; saw {seen:?}"),
        }
    }
}

#[test]
fn ten_thousand_writers_against_a_low_fd_limit() {
    let limit = fd_limit_for((WRITERS + BATCH + 500) as libc::rlim_t);
    let writers = WRITERS.min((limit as usize).saturating_sub(BATCH + 500));
    assert!(
        writers >= 4 * MEMLOGD_FDS as usize,
        "RLIMIT_NOFILE {limit} is too low for this test"
    );
    if writers < WRITERS {
        println!("RLIMIT_NOFILE hard limit {limit}: {writers} writers instead of {WRITERS}");
    }
    let dir = TempDir::new("fdx");
    let (log, query) = (dir.join("log.sock"), dir.join("q.sock"));
    let mut cmd = Memlogd::command(&dir);
    cmd.arg("-socket-log")
        .arg(&log)
        .arg("-socket-query")
        .arg(&query);
    limit_fds(&mut cmd, MEMLOGD_FDS);
    let m = Memlogd::spawn(dir, cmd, log, query);

    // A reader that is there before the flood and must be served throughout.
    let mut follower = m.legacy(1);
    m.sync_follower(|t| match follower.next_line(t).expect("read") {
        Got::Line(l) => Some(decode_record(&l).msg),
        Got::Timeout => None,
        Got::Eof => panic!("follower closed"),
    });

    // The flood: each writer's line is waiting in its socket before memlogd
    // even gets the fd.
    let mut ours: Vec<UnixStream> = Vec::with_capacity(writers);
    for first in (0..writers).step_by(BATCH) {
        let mut theirs = Vec::with_capacity(BATCH);
        for i in first..(first + BATCH).min(writers) {
            let (mut o, t) = UnixStream::pair().expect("socketpair");
            o.write_all(format!("hello from w{i}\n").as_bytes())
                .expect("write");
            ours.push(o);
            theirs.push(t);
        }
        let fds: Vec<BorrowedFd<'_>> = theirs.iter().map(|t| t.as_fd()).collect();
        m.send_fds(b"fdx", &fds).expect("send fds");
    }
    // Datagrams are taken in order: once memlogd has dropped the probe (it
    // has no fd left for it), it has been through every batch before it.
    let (probe, probe_theirs) = UnixStream::pair().expect("socketpair");
    m.send_fds(b"probe", &[probe_theirs.as_fd()])
        .expect("send probe");
    drop(probe_theirs);
    wait_until("memlogd to go through every datagram", || {
        hung_up(std::slice::from_ref(&probe))[0]
    });
    let hup = hung_up(&ours);
    let alive: BTreeSet<usize> = (0..writers).filter(|&i| !hup[i]).collect();
    assert!(
        !alive.is_empty() && alive.len() < MEMLOGD_FDS as usize,
        "{} writers held with {MEMLOGD_FDS} fds",
        alive.len()
    );
    // Each datagram that lost fds is counted once, the probe's too.
    let batches_cut = (0..writers)
        .step_by(BATCH)
        .filter(|&first| hup[first..(first + BATCH).min(writers)].contains(&true))
        .count() as u64;
    println!(
        "{writers} writers: memlogd holds {}, the kernel dropped {} fds in {batches_cut} datagrams",
        alive.len(),
        writers - alive.len()
    );

    // Every writer memlogd holds was read: the follower got exactly their lines.
    let mut heard = BTreeSet::new();
    let end = Instant::now() + TIMEOUT;
    while heard.len() < alive.len() {
        let left = end.saturating_duration_since(Instant::now());
        match follower.next_line(left).expect("read follower") {
            Got::Line(l) => {
                let r = decode_record(&l);
                if r.source == "fdx" {
                    let i: usize = r
                        .msg
                        .strip_prefix("hello from w")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("{r:?}"));
                    assert!(heard.insert(i), "w{i} twice");
                }
            }
            other => panic!(
                "follower: {other:?} after {} of {} writers",
                heard.len(),
                alive.len()
            ),
        }
    }
    assert_eq!(heard, alive);

    // A reader now: memlogd cannot accept it (EMFILE), says so, and stops
    // polling the listener instead of spinning; the reader waits. (First a
    // pause past memlogd's one-second window for its own messages, which
    // the flood's notes filled, so that this one is stored, not summed up.)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let q = m.query_socket().to_path_buf();
    let asked = Instant::now();
    let waiting = std::thread::spawn(move || {
        let s = UnixStream::connect(&q).expect("connect");
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut req = memlog::proto::Request::new(Mode::Dump);
        req.stats = true;
        let mut c = memlog::client::Client::start(s, &req).expect("request");
        let mut stats = None;
        while let Some(l) = c.next_line().expect("stats reply") {
            if let memlog::proto::Line::Stats(s) = l {
                stats = Some(s);
            }
        }
        stats.expect("a stats line")
    });
    follow_until(&mut follower, "the accept failure", |src, msg| {
        src == "memlogd" && msg.contains("cannot accept a reader")
    });
    // It tries again once a second, not in a loop: a few more failures.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(process_alive(m.pid()));
    // Some writers finish: their fds are freed, memlogd accepts again and
    // the waiting reader is answered.
    let closed: Vec<usize> = alive.iter().copied().take(CLOSED).collect();
    for &i in &closed {
        let s = &ours[i];
        s.shutdown(std::net::Shutdown::Both).expect("shutdown");
    }
    let first_stats = waiting.join().expect("the waiting reader");
    let get = |s: &[(String, u64)], k: &str| {
        s.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {k} in {s:?}"))
    };
    let waited = asked.elapsed().as_secs();
    let errors = get(&first_stats, "accept_errors");
    assert!(
        (1..=waited + 2).contains(&errors),
        "{errors} accept errors in {waited} s: {first_stats:?}"
    );
    let held = (alive.len() - CLOSED) as u64;
    wait_until("memlogd to release the closed writers", || {
        get(&m.stats(), "inputs") == held
    });
    let stats = m.stats();
    // (Plus the one that synchronised the follower.)
    assert_eq!(
        get(&stats, "inputs_total"),
        alive.len() as u64 + 1,
        "{stats:?}"
    );
    assert_eq!(get(&stats, "fds_dropped"), batches_cut + 1, "{stats:?}");
    assert_eq!(get(&stats, "inputs_refused"), 0, "{stats:?}");
    m.wait_self_record(&["fd limit (256)", "fds beyond it will be refused"]);
    m.wait_self_record(&["dropped by the kernel", "out of file descriptors"]);
    m.wait_self_record(&["cannot accept a reader", "pausing accepts"]);

    // New writers and readers are served again, more readers than there
    // are free fds among them: accepting pauses and resumes as they finish.
    m.assert_serves();
    let dumps: Vec<LineReader> = (0..4 * CLOSED).map(|_| m.legacy(0)).collect();
    for (k, mut d) in dumps.into_iter().enumerate() {
        let lines = d.read_to_eof();
        let fdx = lines
            .iter()
            .filter(|l| decode_record(l).source == "fdx")
            .count();
        assert_eq!(fdx, alive.len(), "dump {k}");
    }
    // The writers it still holds are read, and the first follower is served.
    let last = *alive.iter().next_back().expect("a writer");
    ours[last]
        .write_all(b"still here after the storm\n")
        .expect("write");
    follow_until(&mut follower, "a held writer's new line", |src, msg| {
        src == "fdx" && msg == "still here after the storm"
    });
    // Every fd goes back when the writers go.
    drop(ours);
    wait_until("every input to be released", || {
        get(&m.stats(), "inputs") == 0
    });
    assert!(wait_for(|| process_alive(m.pid()), TIMEOUT));
    m.assert_serves();
}
