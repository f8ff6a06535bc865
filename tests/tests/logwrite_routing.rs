//! Routing by content, in the shape of the syslog seed ("send the lines
//! that mention this to that server"): a web service logs a mix of lines
//! over /dev/log; one real rsyslogd gets only the server errors
//! (`match=HTTP/.{3,20}\s5\d\d\s`), another everything of severity warning
//! and above, the files get everything; each destination keeps its own
//! position, exact across a kill -9 of logwrite.

use memlog_tests::logwrite::{have_rsyslogd, msgs, saved_position, Logwrite, Rsyslog};
use memlog_tests::{wait_for, Memlogd, TempDir};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// One line the service logs: its syslog priority and message.
struct Line {
    pri: u8,
    msg: String,
}

/// Line `i` of the service's log: mostly access lines (info), every 7th a
/// 503, every 11th a warning, every 29th an error, and a few lines that
/// look like errors to a careless pattern but are not (a 5xx size, a
/// path with 500 in it).
fn line(i: usize) -> Line {
    let access = |status: u32, path: &str, size: u32| {
        format!(
            "10.0.0.{} - - \"GET {path} HTTP/1.1\" {status} {size} #{i}",
            i % 250
        )
    };
    if i % 29 == 0 {
        Line {
            pri: 8 + 3, // user.err
            msg: format!("upstream connect failed #{i}"),
        }
    } else if i % 11 == 0 {
        Line {
            pri: 8 + 4, // user.warning
            msg: format!("slow request took 2.{i}s #{i}"),
        }
    } else if i % 7 == 0 {
        Line {
            pri: 8 + 6,
            msg: access(503, "/api/orders", 0),
        }
    } else if i % 13 == 0 {
        Line {
            pri: 8 + 6,
            msg: access(200, "/error/500.html", 5030),
        }
    } else {
        Line {
            pri: 8 + 6,
            msg: access(200, "/index.html", 5120),
        }
    }
}

fn send(devlog: &Path, range: std::ops::Range<usize>) {
    let s = UnixDatagram::unbound().expect("socket");
    for i in range {
        let l = line(i);
        let d = format!("<{}>web: {}", l.pri, l.msg);
        s.send_to(d.as_bytes(), devlog).expect("send to /dev/log");
    }
}

fn server_errors(range: std::ops::Range<usize>) -> Vec<String> {
    let re = regex_lite::Regex::new(r"HTTP/.{3,20}\s5\d\d\s").expect("regex");
    range
        .map(line)
        .filter(|l| re.is_match(&l.msg))
        .map(|l| l.msg)
        .collect()
}

fn warnings(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(line)
        .filter(|l| l.pri & 7 <= 4)
        .map(|l| l.msg)
        .collect()
}

fn everything(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| line(i).msg).collect()
}

/// Waits until `got()` equals `want`; panics with both if it never does.
fn wait_equal(what: &str, want: &[String], mut got: impl FnMut() -> Vec<String>, lw: &Logwrite) {
    let mut last = Vec::new();
    let ok = wait_for(
        || {
            last = got();
            last == want
        },
        TIMEOUT,
    );
    assert!(
        ok,
        "{what}: got {} lines, want {} (first difference at {:?}); logwrite: {}",
        last.len(),
        want.len(),
        last.iter().zip(want).position(|(a, b)| a != b),
        lw.stderr()
    );
}

#[test]
fn server_errors_to_one_server_warnings_to_another_everything_to_files() {
    if !have_rsyslogd() {
        memlog_tests::skip("rsyslogd is not installed (.ci/run installs Debian's rsyslog)");
        return;
    }
    // The regex's own sanity: what it takes and what it leaves.
    let seen = server_errors(0..200);
    assert!(seen.iter().all(|m| m.contains("\" 503 ")), "{seen:?}");
    assert!(!seen.is_empty() && seen.len() < 40);

    let errors_srv = Rsyslog::start();
    let warn_srv = Rsyslog::start();
    let dir = TempDir::new("lw-route-m");
    let devlog = dir.join("devlog");
    let m = Memlogd::start_in(
        dir,
        &[
            "-syslog",
            devlog.to_str().expect("utf-8"),
            "-rate-limit-burst",
            "0",
            "-max-lines",
            "100000",
        ],
    );
    let logs = TempDir::new("lw-route");
    let errs = TempDir::new("lw-err");
    let to_errors = format!(
        "tcp://127.0.0.1:{}?match=HTTP/.{{3,20}}\\s5\\d\\d\\s",
        errors_srv.tcp_port
    );
    let to_warn = format!("tcp://127.0.0.1:{}?min-severity=warning", warn_srv.tcp_port);
    let args = [
        "-remote",
        &to_errors,
        "-remote",
        &to_warn,
        "-hostname",
        "web1",
        "-max-backoff",
        "200ms",
    ];
    let mut lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &args);

    // Phase 1: everything arrives where it belongs.
    send(&devlog, 0..600);
    wait_equal(
        "server errors",
        &server_errors(0..600),
        || errors_srv.msgs_from("web"),
        &lw,
    );
    wait_equal(
        "warnings",
        &warnings(0..600),
        || warn_srv.msgs_from("web"),
        &lw,
    );
    wait_equal(
        "files",
        &everything(0..600),
        || msgs(logs.path(), "web.log"),
        &lw,
    );

    // Each destination's position is its own: the files and the regex
    // destination (which reads every record) stand at the last record; the
    // warning destination, which asked memlogd for warnings only, at the
    // last warning.
    let recs = m.records();
    let web: Vec<_> = recs.iter().filter(|r| r.source == "web").collect();
    let last = web.last().and_then(|r| r.seq).expect("seq");
    let last_warning = web
        .iter()
        .rev()
        .find(|r| r.severity.is_some_and(|s| s <= 4))
        .and_then(|r| r.seq)
        .expect("a warning");
    assert!(last_warning < last);
    let state = |port: u16| format!(".logwrite-remote-tcp:%2f%2f127.0.0.1:{port}.state");
    let ok = wait_for(
        || {
            saved_position(logs.path(), ".logwrite.state").map(|p| p.1) == Some(last)
                && saved_position(logs.path(), &state(errors_srv.tcp_port)).map(|p| p.1)
                    == Some(last)
                && saved_position(logs.path(), &state(warn_srv.tcp_port)).map(|p| p.1)
                    == Some(last_warning)
        },
        TIMEOUT,
    );
    assert!(
        ok,
        "positions: files {:?}, errors {:?}, warnings {:?}; want {last}, {last}, {last_warning}",
        saved_position(logs.path(), ".logwrite.state"),
        saved_position(logs.path(), &state(errors_srv.tcp_port)),
        saved_position(logs.path(), &state(warn_srv.tcp_port)),
    );

    // Phase 2: killed with -9 while idle (everything taken is saved),
    // more lines while it is down, started again: every destination ends
    // with exactly its lines, once each, in order.
    lw.kill9();
    send(&devlog, 600..1200);
    lw.start_again(&errs);
    wait_equal(
        "server errors after kill -9",
        &server_errors(0..1200),
        || errors_srv.msgs_from("web"),
        &lw,
    );
    wait_equal(
        "warnings after kill -9",
        &warnings(0..1200),
        || warn_srv.msgs_from("web"),
        &lw,
    );
    wait_equal(
        "files after kill -9",
        &everything(0..1200),
        || msgs(logs.path(), "web.log"),
        &lw,
    );

    // Phase 3: killed with -9 in the middle of a burst. The files are
    // exact (cut back to the saved sizes); a server may get again what the
    // kernel had taken after the last save (RFC 6587 has no
    // acknowledgement), but nothing is lost or reordered.
    send(&devlog, 1200..4000);
    lw.kill9();
    send(&devlog, 4000..4600);
    lw.start_again(&errs);
    wait_equal(
        "files after kill -9 mid-burst",
        &everything(0..4600),
        || msgs(logs.path(), "web.log"),
        &lw,
    );
    for (what, srv, want) in [
        ("server errors", &errors_srv, server_errors(0..4600)),
        ("warnings", &warn_srv, warnings(0..4600)),
    ] {
        wait_equal(what, &want, || once_each(srv.msgs_from("web")), &lw);
        // What came twice was sent after the last save before the kill:
        // lines of phase 3 only, and fewer than the burst.
        let got = srv.msgs_from("web");
        let mut seen = std::collections::HashSet::new();
        let again: Vec<&String> = got.iter().filter(|m| !seen.insert(*m)).collect();
        let number = |m: &str| -> usize {
            m.rsplit('#')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("numbered")
        };
        assert!(
            again.iter().all(|m| number(m) >= 1200) && again.len() < want.len() / 2,
            "{what}: {} lines again: {again:?}",
            again.len()
        );
        if !again.is_empty() {
            println!("{what}: {} lines sent again after the kill -9", again.len());
        }
    }
}

/// `v` with every line after its first occurrence left out (every line the
/// service logs is unique: it ends in its number).
fn once_each(v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.into_iter().filter(|m| seen.insert(m.clone())).collect()
}

#[test]
fn files_take_match_and_exclude_match() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-route-files");
    let errs = TempDir::new("lw-err");
    let lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &[
            "-match",
            r"HTTP/.{3,20}\s5\d\d\s",
            "-match",
            "^panic",
            "-exclude-match",
            "/health",
        ],
    );
    let lines: Vec<String> = [
        r#"GET /a HTTP/1.1" 200 1"#,
        r#"GET /b HTTP/1.1" 502 1"#,
        r#"GET /health HTTP/1.1" 503 1"#,
        "panic: out of memory",
        "a panic later in the line",
        r#"GET /c HTTP/2.0" 500 7"#,
    ]
    .map(String::from)
    .to_vec();
    memlog_tests::logwrite::write_lines(&m, "svc", &lines);
    let want = vec![lines[1].clone(), lines[3].clone(), lines[5].clone()];
    wait_equal("files", &want, || msgs(logs.path(), "svc.log"), &lw);
    // The rest was read, not waiting: the position is past the last line.
    let last = m.records().last().and_then(|r| r.seq).expect("seq");
    assert!(wait_for(
        || saved_position(logs.path(), ".logwrite.state").map(|p| p.1) >= Some(last),
        TIMEOUT
    ));
}

#[test]
fn a_bad_regex_is_a_clear_error_at_start() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-route-bad");
    let errs = TempDir::new("lw-err");
    for (flags, want) in [
        (
            vec!["-match", "("],
            "invalid regular expression \"(\" for -match",
        ),
        (
            vec!["-remote", "tcp://127.0.0.1:9?exclude-match=a[b"],
            "invalid regular expression \"a[b\" for exclude-match=",
        ),
    ] {
        let mut lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &flags);
        let st = lw.wait_exit();
        assert_eq!(st.code(), Some(2), "{flags:?}: {}", lw.stderr());
        assert!(lw.stderr().contains(want), "{flags:?}: {}", lw.stderr());
    }
}
