//! logwrite forwarding over RELP (`relp://`, `relp+tls://`) to a real
//! rsyslogd (Debian's rsyslog-relp: imrelp) on loopback: every record
//! arrives at least once and in order of first arrival when rsyslog or
//! logwrite is killed -9 mid-stream, every duplicate within the count
//! logwrite reports (`possibly duplicated`), none when rsyslog stops
//! cleanly; beside `tcp://` under the same kills, which loses records.
//! Then servers that misbehave (tests/tests/logwrite_relp_hostile.rs).

use memlog_tests::logwrite::{
    have_rsyslogd, numbered, remote_state_file, saved_position, write_lines, Logwrite, Rsyslog,
};
use memlog_tests::{Memlogd, TempDir};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn skip() -> bool {
    if !have_rsyslogd() {
        memlog_tests::skip("rsyslogd is not installed (.ci/run installs Debian's rsyslog)");
        return true;
    }
    if ![
        "/usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so",
        "/usr/lib/rsyslog/imrelp.so",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
    {
        memlog_tests::skip("rsyslog-relp is not installed (.ci/run installs it)");
        return true;
    }
    false
}

fn start_lw(m: &Memlogd, logs: &TempDir, errs: &TempDir, remotes: &[String]) -> Logwrite {
    let mut args = vec!["-no-files", "-hostname", "testbox", "-max-backoff", "300ms"];
    for r in remotes {
        args.push("-remote");
        args.push(r);
    }
    Logwrite::start(m.query_socket(), logs.path(), errs, &args)
}

/// Writes `PREFIX 000000`, `PREFIX 000001`... to memlogd as source
/// `prefix` until stopped; the number written.
struct Streamer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Streamer {
    fn start(m: &Memlogd, prefix: &'static str, burst: usize) -> Streamer {
        let mut w = m.writer(prefix);
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while !s.load(Ordering::Relaxed) {
                // Bursts of `burst` records every 2 ms.
                let mut buf = Vec::new();
                for _ in 0..burst {
                    buf.extend_from_slice(format!("{prefix} {n:06}\n").as_bytes());
                    n += 1;
                }
                w.write_all(&buf).expect("write");
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        });
        Streamer {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().expect("thread").join().expect("join")
    }
}

/// What arrived of `want`: (records never arrived, records out of order
/// at their first arrival, duplicates).
fn tally(got: &[String], want: &[String]) -> (usize, bool, usize) {
    let mut seen = std::collections::HashSet::new();
    let mut first = Vec::new();
    for g in got {
        if seen.insert(g.clone()) {
            first.push(g.clone());
        }
    }
    let missing = want.iter().filter(|w| !seen.contains(*w)).count();
    let ordered = first.iter().zip(want).all(|(a, b)| a == b);
    (missing, ordered, got.len() - first.len())
}

/// The last `N possibly duplicated in total` logwrite said (0 if none).
fn reported_dups(stderr: &str) -> usize {
    stderr
        .lines()
        .filter_map(|l| l.rsplit(": ").next())
        .filter_map(|l| l.strip_suffix(" possibly duplicated in total"))
        .filter_map(|n| n.parse().ok())
        .next_back()
        .unwrap_or(0)
}

#[test]
fn relp_every_record_once_in_order_and_clean_restarts_duplicate_nothing() {
    if skip() {
        return;
    }
    let mut rs = Rsyslog::start_relp("");
    let m = Memlogd::start(&["-max-lines", "100000"]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let url = format!("relp://127.0.0.1:{}?exclude=noise*", rs.tcp_port);
    let mut lw = start_lw(&m, &logs, &errs, std::slice::from_ref(&url));
    let mut want = numbered("fwd", 0..300, 0);
    write_lines(&m, "fwd", &want);
    write_lines(&m, "noise", &["not forwarded".to_string()]);
    assert_eq!(rs.wait_count("fwd", want.len(), &lw), want);
    // Every record acknowledged: the saved position is the last record it
    // asked memlogd for (the exclusion is sent with the request, so the
    // noise record after it is never read).
    let state = remote_state_file(url.split('?').next().expect("name"));
    let noise = m.wait_msg("noise", "not forwarded").seq.expect("seq");
    let last = m
        .wait_msg("fwd", want.last().expect("a record"))
        .seq
        .expect("seq");
    assert!(last < noise);
    assert!(
        memlog_tests::wait_for(
            || saved_position(logs.path(), &state).map(|p| p.1) == Some(last),
            memlog_tests::TIMEOUT
        ),
        "saved {:?}, want record {last}",
        saved_position(logs.path(), &state)
    );
    // Clean restarts of rsyslog, while records flow: nothing lost, nothing twice.
    for round in 0..3 {
        let b = numbered("fwd", 300 + round * 100..400 + round * 100, 0);
        write_lines(&m, "fwd", &b[..50]);
        rs.restart();
        write_lines(&m, "fwd", &b[50..]);
        want.extend(b);
        rs.wait_count("fwd", want.len(), &lw);
    }
    lw.signal(libc::SIGTERM);
    assert!(lw.wait_exit().success());
    let got = rs.msgs_from("fwd");
    assert_eq!(tally(&got, &want), (0, true, 0), "{}", lw.stderr());
    assert_eq!(got, want);
    assert_eq!(reported_dups(&lw.stderr()), 0, "{}", lw.stderr());
    assert!(rs.msgs_from("noise").is_empty());
}

#[test]
fn relp_survives_kill9_of_rsyslog_where_tcp_loses_records() {
    if skip() {
        return;
    }
    let mut rs = Rsyslog::start_relp("");
    let m = Memlogd::start(&[
        "-max-lines",
        "1000000",
        "-buffer-size",
        "128M",
        "-rate-limit-burst",
        "0",
    ]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let relp = format!("relp://127.0.0.1:{}?include=rel", rs.tcp_port);
    // rsyslog's plain imtcp port (in the udp_port slot).
    let tcp = format!("tcp://127.0.0.1:{}?include=tcp", rs.udp_port);
    let mut lw = start_lw(&m, &logs, &errs, &[relp, tcp]);
    let rel = Streamer::start(&m, "rel", 20);
    // TCP faster, so that rsyslog has a backlog when it is killed.
    let tcps = Streamer::start(&m, "tcp", 50);
    // Four times: rsyslog hangs for 300 ms (its kernel still takes TCP
    // data), then is killed -9 and started again.
    for _ in 0..4 {
        memlog_tests::logwrite::pause(700);
        rs.signal(libc::SIGSTOP);
        memlog_tests::logwrite::pause(300);
        rs.kill9();
        memlog_tests::logwrite::pause(300);
        rs.start_again();
    }
    memlog_tests::logwrite::pause(500);
    let n_rel = rel.finish();
    let n_tcp = tcps.finish();
    let want_rel = numbered("rel", 0..n_rel, 0);
    let want_tcp = numbered("tcp", 0..n_tcp, 0);
    // rsyslog works through the TCP backlog too: a longer wait than usual.
    memlog_tests::wait_for(
        || rs.msgs_from("rel").len() >= n_rel,
        Duration::from_secs(90),
    );
    // Every RELP record arrived; TCP had its chance to catch up too.
    write_lines(&m, "tcp", &["tcp the end".to_string()]);
    let ok = memlog_tests::wait_for(
        || rs.msgs_from("tcp").last().map(String::as_str) == Some("tcp the end"),
        memlog_tests::TIMEOUT,
    );
    assert!(ok, "tcp never caught up: {}", lw.stderr());
    lw.signal(libc::SIGTERM);
    assert!(lw.wait_exit().success());
    let err = lw.stderr();
    let (missing, ordered, dups) = tally(&rs.msgs_from("rel"), &want_rel);
    let reported = reported_dups(&err);
    eprintln!(
        "relp: {n_rel} written, {missing} lost, {dups} duplicated, {reported} reported possibly duplicated"
    );
    assert_eq!(missing, 0, "RELP lost records: {err}");
    assert!(ordered, "RELP out of order: {err}");
    assert!(
        dups <= reported,
        "{dups} duplicates, {reported} reported: {err}"
    );
    let mut got_tcp = rs.msgs_from("tcp");
    got_tcp.pop();
    let (tcp_missing, _, tcp_dups) = tally(&got_tcp, &want_tcp);
    eprintln!("tcp: {n_tcp} written, {tcp_missing} lost, {tcp_dups} duplicated");
    // The kills did hurt: what rsyslog's kernel took and rsyslog never
    // read is lost to plain TCP (RFC 6587 has no acknowledgement).
    assert!(tcp_missing > 0, "tcp lost nothing: the test did not test");
}

#[test]
fn relp_survives_kill9_of_logwrite() {
    if skip() {
        return;
    }
    let rs = Rsyslog::start_relp("");
    let m = Memlogd::start(&[
        "-max-lines",
        "1000000",
        "-buffer-size",
        "128M",
        "-rate-limit-burst",
        "0",
    ]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let url = format!("relp://127.0.0.1:{}", rs.tcp_port);
    let mut lw = start_lw(&m, &logs, &errs, &[url]);
    let rel = Streamer::start(&m, "rel", 40);
    let mut stderr = String::new();
    for _ in 0..4 {
        memlog_tests::logwrite::pause(600);
        lw.kill9();
        stderr.push_str(&lw.stderr());
        lw.start_again(&errs);
    }
    memlog_tests::logwrite::pause(500);
    let n = rel.finish();
    let want = numbered("rel", 0..n, 0);
    rs.wait_count("rel", n, &lw);
    lw.signal(libc::SIGTERM);
    assert!(lw.wait_exit().success());
    // Each logwrite reports its own count.
    let mut reported = 0;
    for f in std::fs::read_dir(errs.path()).expect("errs") {
        let s = std::fs::read_to_string(f.expect("entry").path()).expect("read");
        reported += reported_dups(&s);
    }
    let (missing, ordered, dups) = tally(&rs.msgs_from("rel"), &want);
    eprintln!("relp, logwrite killed: {n} written, {missing} lost, {dups} duplicated, {reported} reported");
    assert_eq!((missing, ordered), (0, true), "{}", lw.stderr());
    assert!(
        dups <= reported,
        "{dups} duplicates, {reported} reported: {}",
        lw.stderr()
    );
}

#[test]
fn relp_maximal_messages_fit_the_servers_frame_limit() {
    if skip() {
        return;
    }
    // rsyslog takes frames of up to 128 KiB (librelp's default).
    let rs = Rsyslog::start_relp("");
    // memlogd's largest line limit, 1 MiB: far over a RELP frame.
    let m = Memlogd::start(&["-max-line-len", "1048576", "-buffer-size", "16M"]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let url = format!("relp://127.0.0.1:{}?include=big", rs.tcp_port);
    let lw = start_lw(&m, &logs, &errs, &[url]);
    let huge = "x".repeat(1 << 20);
    let large = "y".repeat(100 * 1024);
    let lines = vec![huge, large.clone(), "after".to_string()];
    write_lines(&m, "big", &lines);
    let got = rs.wait_count("big", 3, &lw);
    // The 1 MiB one was cut to fit (and said so), the others are whole,
    // in order; the session went on (no frame the server refused).
    assert!(
        got[0].len() > 120 * 1024 && got[0].bytes().all(|b| b == b'x'),
        "{}",
        got[0].len()
    );
    assert_eq!(&got[1..], &[large, "after".to_string()]);
    lw.wait_stderr("1 messages longer than RELP's 131072-byte frame limit cut to fit");
    assert!(!lw.stderr().contains("cannot write"), "{}", lw.stderr());
    assert!(!rs.log().contains("too long"), "{}", rs.log());
}

#[test]
fn relp_over_tls_with_client_certificates() {
    if skip() {
        return;
    }
    if !memlog_tests::pki::have_openssl() {
        memlog_tests::skip("openssl is not installed (.ci/run installs it)");
        return;
    }
    let pki = memlog_tests::pki::Pki::new();
    let ca = pki.ca("ca");
    let server = pki.issue(&ca, "server", "DNS:localhost,IP:127.0.0.1");
    let client = pki.issue(&ca, "client", "DNS:client.test");
    let tls = format!(
        "tls=\"on\" tls.caCert=\"{}\" tls.myCert=\"{}\" tls.myPrivKey=\"{}\" tls.authMode=\"certvalid\"",
        ca.cert.display(),
        server.cert.display(),
        server.key.display()
    );
    let mut rs = Rsyslog::start_relp(&tls);
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let url = format!(
        "relp+tls://127.0.0.1:{}?ca={}&cert={}&key={}&include=sec",
        rs.tcp_port,
        ca.cert.display(),
        client.cert.display(),
        client.key.display()
    );
    let mut lw = start_lw(&m, &logs, &errs, std::slice::from_ref(&url));
    let mut want = numbered("sec", 0..200, 0);
    write_lines(&m, "sec", &want);
    assert_eq!(rs.wait_count("sec", want.len(), &lw), want);
    rs.restart();
    let more = numbered("sec", 200..300, 0);
    write_lines(&m, "sec", &more);
    want.extend(more);
    rs.wait_count("sec", want.len(), &lw);
    lw.signal(libc::SIGTERM);
    assert!(lw.wait_exit().success());
    assert_eq!(rs.msgs_from("sec"), want, "{}", lw.stderr());
    // Every record acknowledged: the position is the last one.
    let state = remote_state_file(url.split('?').next().expect("name"));
    let last = m.wait_msg("sec", "sec 000299").seq.expect("seq");
    assert_eq!(saved_position(logs.path(), &state).map(|p| p.1), Some(last));

    // A server certificate from another CA is refused: nothing delivered.
    let other = pki.ca("other");
    let m2 = Memlogd::start(&[]);
    let logs2 = TempDir::new("lw-logs");
    let url2 = format!(
        "relp+tls://127.0.0.1:{}?ca={}&cert={}&key={}&include=sec",
        rs.tcp_port,
        other.cert.display(),
        client.cert.display(),
        client.key.display()
    );
    let lw2 = start_lw(&m2, &logs2, &errs, &[url2]);
    write_lines(&m2, "sec", &["never".to_string()]);
    lw2.wait_stderr("UnknownIssuer");
    assert!(!rs.msgs_from("sec").contains(&"never".to_string()));
    assert_eq!(saved_position(logs2.path(), &state), None);
}
