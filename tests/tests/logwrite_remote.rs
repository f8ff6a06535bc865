//! logwrite forwarding to a real rsyslogd (Debian's package) on loopback:
//! RFC 5424 over TCP with octet counting, RFC 3164 over UDP, PRI, app-name
//! and hostname, per-remote selection, and exactly-once delivery across a
//! restart of rsyslog mid-stream and a kill -9 of logwrite.

use memlog_tests::logwrite::{have_rsyslogd, numbered, write_lines, Logwrite, Rsyslog};
use memlog_tests::{wait_for, Memlogd, TempDir};
use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

fn skip() -> bool {
    if have_rsyslogd() {
        return false;
    }
    memlog_tests::skip("rsyslogd is not installed (.ci/run installs Debian's rsyslog)");
    true
}

#[test]
fn rsyslog_gets_every_record_once_in_order_across_restarts() {
    if skip() {
        return;
    }
    let mut rs = Rsyslog::start();
    let m = Memlogd::start(&["-max-lines", "100000"]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let tcp = format!(
        "tcp://127.0.0.1:{}?exclude=noise*&exclude=udp.*",
        rs.tcp_port
    );
    let udp = format!(
        "udp://127.0.0.1:{}?format=rfc3164&include=udp.*",
        rs.udp_port
    );
    let mut lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &[
            "-no-files",
            "-remote",
            &tcp,
            "--remote",
            &udp,
            "-hostname",
            "testbox",
            "-max-backoff",
            "500ms",
        ],
    );
    let mut want = Vec::new();
    let batch = |from: usize, to: usize, want: &mut Vec<String>| {
        let b = numbered("fwd", from..to, 0);
        write_lines(&m, "fwd", &b);
        write_lines(&m, "noise.x", &[format!("noise {from}")]);
        want.extend(b);
    };
    batch(0, 100, &mut want);
    let got = rs.wait_count("fwd", want.len(), &lw);
    assert_eq!(got, want);

    // rsyslog stops; records keep coming; it starts again on the same port.
    rs.stop();
    batch(100, 200, &mut want);
    rs.restart();
    batch(200, 300, &mut want);
    rs.wait_count("fwd", want.len(), &lw);

    // Restarted mid-stream while records flow, without waiting in between.
    batch(300, 400, &mut want);
    rs.restart();
    batch(400, 500, &mut want);
    rs.wait_count("fwd", want.len(), &lw);

    // logwrite killed and restarted: it resumes from its saved position.
    lw.kill9();
    batch(500, 600, &mut want);
    lw.restart(&errs);
    batch(600, 700, &mut want);
    let got = rs.wait_count("fwd", want.len(), &lw);
    assert!(
        got == want,
        "{} received, {} sent; first difference at {:?}; logwrite: {}",
        got.len(),
        want.len(),
        got.iter().zip(&want).position(|(a, b)| a != b),
        lw.stderr()
    );
    // Exactly once: nothing more arrives after a last marker.
    write_lines(&m, "fwd", &["the end".to_string()]);
    want.push("the end".into());
    let got = rs.wait_count("fwd", want.len(), &lw);
    assert_eq!(got.len(), want.len(), "duplicates");

    // Excluded sources were not forwarded; PRI user.info = 14, hostname set.
    assert!(rs.msgs_from("noise.x").is_empty());
    let recs = rs.received();
    let fwd: Vec<_> = recs.iter().filter(|r| r.1 == "fwd").collect();
    assert!(
        fwd.iter().all(|r| r.0 == "14" && r.2 == "testbox"),
        "{:?}",
        fwd[0]
    );

    // UDP, RFC 3164, only udp.* sources.
    write_lines(&m, "udp.svc", &["over udp".to_string()]);
    let ok = wait_for(
        || rs.msgs_from("udp.svc") == vec!["over udp".to_string()],
        memlog_tests::TIMEOUT,
    );
    assert!(ok, "udp: {:?}; {}", rs.received().last(), lw.stderr());
    assert_eq!(
        rs.msgs_from("udp.svc").len(),
        1,
        "udp.svc also came over TCP?"
    );
}

#[test]
fn octet_counted_frames_on_the_wire() {
    let sink = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = sink.local_addr().expect("addr").port();
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let remote = format!("tcp://127.0.0.1:{port}?include=app");
    let _lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &["-no-files", "-remote", &remote, "-hostname", "h"],
    );
    write_lines(&m, "app", &["hello world".to_string()]);
    let (mut conn, _) = sink.accept().expect("accept");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.ends_with(b"hello world") {
        let n = conn.read(&mut chunk).expect("read");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8(buf).expect("utf8");
    let (len, msg) = text.split_once(' ').expect("LEN SP MSG");
    assert_eq!(len.parse::<usize>().expect("length"), msg.len());
    assert!(msg.starts_with("<14>1 "), "{msg}");
    let f: Vec<&str> = msg.splitn(8, ' ').collect();
    assert_eq!(
        (f[2], f[3], f[4], f[5], f[6], f[7]),
        ("h", "app", "-", "-", "-", "hello world")
    );
    assert!(f[1].ends_with('Z') && f[1].contains('.'), "{}", f[1]);
}
