//! Signals a person or an init system may send to memlogd (README,
//! "Signals"): none but SIGTERM, SIGINT and SIGQUIT stops it, and none loses
//! the buffer. SIGHUP and SIGUSR1 leave a `memlogd` record behind.

use memlog_tests::{msgs_from, process_alive, Memlogd};
use std::io::Write;

/// Every signal whose default action would end the daemon, other than the
/// three that stop it on purpose (and SIGKILL, which nothing can catch).
fn harmless() -> Vec<(libc::c_int, String)> {
    let mut v: Vec<(libc::c_int, String)> = [
        (libc::SIGHUP, "HUP"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
        (libc::SIGALRM, "ALRM"),
        (libc::SIGVTALRM, "VTALRM"),
        (libc::SIGPROF, "PROF"),
        (libc::SIGIO, "IO"),
        (libc::SIGPWR, "PWR"),
        (libc::SIGSTKFLT, "STKFLT"),
        (libc::SIGXCPU, "XCPU"),
        (libc::SIGXFSZ, "XFSZ"),
        (libc::SIGPIPE, "PIPE"),
        (libc::SIGTTOU, "TTOU"),
    ]
    .iter()
    .map(|&(s, n)| (s, n.to_owned()))
    .collect();
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    for s in [min, min + 1, min + 7, max - 1, max] {
        v.push((s, format!("RT{s}")));
    }
    v
}

#[test]
fn no_signal_but_term_int_and_quit_stops_memlogd_or_loses_its_buffer() {
    // With -echo, a second thread runs: it must not take a signal's
    // default action either.
    let m = Memlogd::start(&["-echo"]);
    let mut w = m.writer("held");
    let lines: Vec<String> = (0..50).map(|i| format!("held line {i}")).collect();
    for l in &lines {
        w.write_all(format!("{l}\n").as_bytes()).expect("write");
    }
    m.wait_msg("held", "held line 49");
    for (sig, name) in harmless() {
        m.signal(sig);
        // Each one in turn: memlogd is alive and answers a dump that still
        // holds every line it had.
        let recs = m.records();
        assert!(process_alive(m.pid()), "memlogd died of SIG{name}");
        assert_eq!(msgs_from(&recs, "held"), lines, "after SIG{name}");
    }
    m.assert_serves();
    // The same input still works after all of them.
    w.write_all(b"after the signals\n").expect("write");
    m.wait_msg("held", "after the signals");
}

#[test]
fn sighup_is_noted_and_sigusr1_records_the_counters() {
    let m = Memlogd::start(&[]);
    m.signal(libc::SIGHUP);
    let hup = m.wait_self_record(&["SIGHUP", "nothing to reload"]);
    assert!(hup.msg.contains("flags"), "{:?}", hup.msg);
    let mut w = m.writer("counted");
    w.write_all(b"one\ntwo\n").expect("write");
    m.wait_msg("counted", "two");
    m.signal(libc::SIGUSR1);
    let usr1 = m.wait_self_record(&["SIGUSR1"]);
    // The counters of a stats request, as NAME=VALUE.
    for key in ["records=", "inputs_total=1", "rate_limited=0", "readers="] {
        assert!(usr1.msg.contains(key), "{key} not in {:?}", usr1.msg);
    }
    m.signal(libc::SIGUSR2);
    m.wait_self_record(&["SIGUSR2", "ignored"]);
    assert!(process_alive(m.pid()));
}

#[test]
fn sigquit_stops_cleanly_like_sigterm() {
    let mut m = Memlogd::start(&[]);
    let (log, query) = (m.log_socket().to_owned(), m.query_socket().to_owned());
    let mut r = m.legacy(1);
    m.sync_follower(|t| match r.next_line(t).expect("read") {
        memlog_tests::Got::Line(l) => Some(memlog_tests::decode_record(&l).msg),
        memlog_tests::Got::Timeout => None,
        memlog_tests::Got::Eof => panic!("closed early"),
    });
    m.signal(libc::SIGQUIT);
    let status = m.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(!log.exists() && !query.exists(), "socket paths left behind");
    let rest: Vec<_> = r
        .read_to_eof()
        .iter()
        .map(|l| memlog_tests::decode_record(l))
        .collect();
    assert!(
        rest.iter()
            .any(|r| r.source == "memlogd" && r.msg == "memlogd stopping on SIGQUIT"),
        "{rest:?}"
    );
}
