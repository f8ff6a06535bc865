//! logwrite forwarding over TLS (`tls://`, RFC 5425) to a real rsyslogd
//! (Debian's rsyslog with rsyslog-gnutls: imtcp with the gtls stream
//! driver) on loopback, with certificates the test makes with openssl:
//! every record once and in order across restarts of rsyslog and a kill -9
//! of logwrite; a server from another CA, for another name or with an
//! expired certificate refused with nothing marked delivered; mutual TLS with `x509/certvalid`; pinning.

use memlog_tests::logwrite::{
    have_rsyslogd, numbered, remote_state_file, saved_position, write_lines, Logwrite, Rsyslog,
};
use memlog_tests::pki::{have_openssl, Cert, Pki};
use memlog_tests::{Memlogd, TempDir};

fn skip() -> bool {
    if !have_rsyslogd() {
        memlog_tests::skip("rsyslogd is not installed (.ci/run installs Debian's rsyslog)");
        return true;
    }
    if !std::path::Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists()
        && !std::path::Path::new("/usr/lib/rsyslog/lmnsd_gtls.so").exists()
    {
        memlog_tests::skip("rsyslog-gnutls is not installed (.ci/run installs it)");
        return true;
    }
    if !have_openssl() {
        memlog_tests::skip("openssl is not installed (.ci/run installs it)");
        return true;
    }
    false
}

/// A CA and a server certificate for localhost and 127.0.0.1.
fn pki() -> (Pki, Cert, Cert) {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let server = pki.issue(&ca, "server", "DNS:localhost,IP:127.0.0.1");
    (pki, ca, server)
}

fn start_lw(m: &Memlogd, logs: &TempDir, errs: &TempDir, url: &str) -> Logwrite {
    Logwrite::start(
        m.query_socket(),
        logs.path(),
        errs,
        &[
            "-no-files",
            "-remote",
            url,
            "-hostname",
            "testbox",
            "-max-backoff",
            "500ms",
        ],
    )
}

#[test]
fn tls_every_record_once_in_order_across_restarts() {
    if skip() {
        return;
    }
    let (_pki, ca, server) = pki();
    let mut rs = Rsyslog::start_tls(&ca, &server, "anon");
    let m = Memlogd::start(&["-max-lines", "100000"]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let url = format!(
        "tls://127.0.0.1:{}?ca={}&exclude=noise*",
        rs.tcp_port,
        ca.cert.display()
    );
    let mut lw = start_lw(&m, &logs, &errs, &url);
    let mut want = Vec::new();
    let batch = |from: usize, to: usize, want: &mut Vec<String>| {
        let b = numbered("fwd", from..to, 0);
        write_lines(&m, "fwd", &b);
        write_lines(&m, "noise.x", &[format!("noise {from}")]);
        want.extend(b);
    };
    batch(0, 100, &mut want);
    assert_eq!(rs.wait_count("fwd", want.len(), &lw), want);

    // rsyslog stops; records keep coming; it starts again on the same port.
    rs.stop();
    batch(100, 200, &mut want);
    rs.restart();
    batch(200, 300, &mut want);
    rs.wait_count("fwd", want.len(), &lw);
    // Restarted while records flow.
    batch(300, 400, &mut want);
    rs.restart();
    batch(400, 500, &mut want);
    rs.wait_count("fwd", want.len(), &lw);
    // logwrite killed and restarted: it resumes from its saved position.
    lw.kill9();
    batch(500, 600, &mut want);
    lw.restart(&errs);
    batch(600, 700, &mut want);
    write_lines(&m, "fwd", &["the end".to_string()]);
    want.push("the end".into());
    let got = rs.wait_count("fwd", want.len(), &lw);
    assert!(
        got == want,
        "{} received, {} sent; first difference at {:?}; logwrite: {}",
        got.len(),
        want.len(),
        got.iter().zip(&want).position(|(a, b)| a != b),
        lw.stderr()
    );
    assert!(rs.msgs_from("noise.x").is_empty());
    let recs = rs.received();
    assert!(
        recs.iter().all(|r| r.0 == "14" && r.2 == "testbox"),
        "{:?}",
        recs[0]
    );
}

/// Starts logwrite on `url`, writes records, and checks that rsyslog gets
/// none, that stderr says `why`, and that nothing is marked delivered.
fn refused(rs: &Rsyslog, url: &str, why: &str) {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let lw = start_lw(&m, &logs, &errs, url);
    write_lines(&m, "fwd", &numbered("fwd", 0..20, 0));
    let said = memlog_tests::wait_for(|| lw.stderr().contains(why), memlog_tests::TIMEOUT);
    assert!(
        said,
        "logwrite never said {why:?}: {}; rsyslogd: {}; received: {:?}",
        lw.stderr(),
        rs.log(),
        rs.received()
    );
    // It keeps trying (the same failure, counted), and keeps running.
    memlog_tests::logwrite::pause(1500);
    assert!(rs.msgs_from("fwd").is_empty(), "{:?}", rs.received());
    let name = url.split('?').next().expect("name");
    assert_eq!(
        saved_position(logs.path(), &remote_state_file(name)),
        None,
        "marked delivered: {}",
        lw.stderr()
    );
    let err = lw.stderr();
    assert!(err.contains("retrying with backoff"), "{err}");
    assert_eq!(err.matches(why).count(), 1, "said more than once: {err}");
}

#[test]
fn tls_refuses_another_ca_and_another_name() {
    if skip() {
        return;
    }
    let (pki, ca, server) = pki();
    let other_ca = pki.ca("other-ca");
    let stranger = pki.issue(&other_ca, "stranger", "DNS:localhost,IP:127.0.0.1");
    // A server whose certificate another CA signed.
    let rs = Rsyslog::start_tls(&other_ca, &stranger, "anon");
    let url = format!("tls://127.0.0.1:{}?ca={}", rs.tcp_port, ca.cert.display());
    refused(&rs, &url, "UnknownIssuer");
    drop(rs);
    // A server with a good certificate, for another name.
    let rs = Rsyslog::start_tls(&ca, &server, "anon");
    let url = format!(
        "tls://127.0.0.1:{}?ca={}&name=logs.example.com",
        rs.tcp_port,
        ca.cert.display()
    );
    refused(
        &rs,
        &url,
        "certificate not valid for name \"logs.example.com\"",
    );
    drop(rs);
    // A server whose certificate expired (signed by the right CA, right name).
    let expired = pki.issue_for_days(&ca, "expired", "DNS:localhost,IP:127.0.0.1", -1);
    let rs = Rsyslog::start_tls(&ca, &expired, "anon");
    let url = format!("tls://127.0.0.1:{}?ca={}", rs.tcp_port, ca.cert.display());
    refused(&rs, &url, "invalid peer certificate: Expired");
    drop(rs);
    let rs = Rsyslog::start_tls(&ca, &server, "anon");
    // The system's roots (no ca=) do not hold the test's CA.
    let url = format!("tls://127.0.0.1:{}", rs.tcp_port);
    if std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").is_file() {
        refused(&rs, &url, "UnknownIssuer");
    }
    // An unreadable CA file: a clear error, retried.
    let url = format!("tls://127.0.0.1:{}?ca=/nonexistent/ca.pem", rs.tcp_port);
    refused(&rs, &url, "ca /nonexistent/ca.pem: No such file");
}

#[test]
fn tls_mutual_with_certvalid() {
    if skip() {
        return;
    }
    let (pki, ca, server) = pki();
    let client = pki.issue(&ca, "client", "DNS:client.test");
    let rs = Rsyslog::start_tls(&ca, &server, "x509/certvalid");
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let url = format!(
        "tls://127.0.0.1:{}?ca={}&cert={}&key={}",
        rs.tcp_port,
        ca.cert.display(),
        client.cert.display(),
        client.key.display()
    );
    let lw = start_lw(&m, &logs, &errs, &url);
    let want = numbered("fwd", 0..50, 0);
    write_lines(&m, "fwd", &want);
    assert_eq!(rs.wait_count("fwd", want.len(), &lw), want);
    assert!(!lw.stderr().contains("mode"), "{}", lw.stderr());
    drop(lw);
    // Without a client certificate rsyslog takes nothing.
    let m2 = Memlogd::start(&[]);
    let logs2 = TempDir::new("lw-logs");
    let url = format!("tls://127.0.0.1:{}?ca={}", rs.tcp_port, ca.cert.display());
    let lw = start_lw(&m2, &logs2, &errs, &url);
    write_lines(&m2, "nocert", &numbered("nocert", 0..20, 0));
    memlog_tests::logwrite::pause(2000);
    assert!(rs.msgs_from("nocert").is_empty(), "{:?}", rs.received());
    drop(lw);
    // A key readable by everyone is said (once); forwarding goes on.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&client.key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let m3 = Memlogd::start(&[]);
    let logs3 = TempDir::new("lw-logs");
    let url = format!(
        "tls://127.0.0.1:{}?ca={}&cert={}&key={}",
        rs.tcp_port,
        ca.cert.display(),
        client.cert.display(),
        client.key.display()
    );
    let lw = start_lw(&m3, &logs3, &errs, &url);
    write_lines(&m3, "lax", &["a lax key".to_string()]);
    rs.wait_count("lax", 1, &lw);
    lw.wait_stderr("has mode 0644");
}

#[test]
fn tls_fingerprint_pinning() {
    if skip() {
        return;
    }
    let pki = Pki::new();
    // A certificate no CA the client knows signed: only the pin can trust it.
    let own_ca = pki.ca("own-ca");
    let server = pki.issue(&own_ca, "server", "DNS:localhost");
    let rs = Rsyslog::start_tls(&own_ca, &server, "anon");
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let url = format!(
        "tls://127.0.0.1:{}?fingerprint={}",
        rs.tcp_port,
        server.fingerprint()
    );
    let lw = start_lw(&m, &logs, &errs, &url);
    let want = numbered("fwd", 0..30, 0);
    write_lines(&m, "fwd", &want);
    assert_eq!(rs.wait_count("fwd", want.len(), &lw), want);
    drop(lw);
    // A wrong pin (another certificate's) is refused.
    let other = pki.issue(&own_ca, "other", "DNS:localhost");
    let url = format!(
        "tls://127.0.0.1:{}?fingerprint={}",
        rs.tcp_port,
        other.fingerprint()
    );
    let rs2 = Rsyslog::start_tls(&own_ca, &server, "anon");
    let url2 = url.replace(&rs.tcp_port.to_string(), &rs2.tcp_port.to_string());
    refused(&rs2, &url2, "not the pinned");
}
