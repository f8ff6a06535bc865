//! The Docker logging path without dockerd: Docker-framed FIFOs handed to
//! memlogd (PROTOCOL.md, "Docker-framed inputs"), then
//! `memlog-docker-logdriver` spoken to over its socket exactly as dockerd's
//! plugin client speaks (HTTP/1.1 POST, JSON, a FIFO made as dockerd makes
//! it). tests/tests/docker_real.rs runs the same path under a real dockerd.

use memlog::dockerlog::Handover;
use memlog::handover::{LogSocket, Outcome};
use memlog::proto::{Line, Mode, Record, Request};
use memlog_tests::docker::{self, dockerd_fifo, frame, info_json, partial_frames, Driver};
use memlog_tests::{wait_until, Memlogd, TempDir};
use std::io::Write;
use std::os::fd::AsFd;
use std::time::Duration;

const ID: &str = "4b1d0c0ffee0123456789abcdef0123456789abcdef0123456789abcdef01234";

fn handover(source: &str, id: &str) -> Handover {
    Handover {
        source: source.into(),
        id: id.into(),
        name: "web".into(),
        image: "bb:1".into(),
    }
}

/// A FIFO whose read end memlogd now reads as Docker frames; the write end.
fn framed_input(m: &Memlogd, dir: &TempDir, source: &str, id: &str) -> std::fs::File {
    let path = dir.join(format!("{source}.fifo"));
    let w = dockerd_fifo(&path);
    let r = std::fs::OpenOptions::new()
        .read(true)
        .open(&path)
        .expect("read end");
    let mut s = LogSocket::connect(m.log_socket()).expect("log socket");
    let got = s
        .hand_over(&handover(source, id).encode(), &[r.as_fd()])
        .expect("hand over");
    assert_eq!(got, Outcome::Taken);
    assert_eq!(
        s.last_reply(),
        Some("memlog/1 accepted 1 of 1 docker-framed")
    );
    w
}

fn of_source(m: &Memlogd, source: &str) -> Vec<Record> {
    m.records()
        .into_iter()
        .filter(|r| r.source == source)
        .collect()
}

#[test]
fn frames_become_records_with_container_metadata() {
    let m = Memlogd::start(&["-max-line-len", "65536"]);
    let dir = TempDir::new("docker-frames");
    let mut w = framed_input(&m, &dir, "web", ID);
    let long: Vec<u8> = (0..40 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let mut b = frame("stdout", b"hello", 1_764_000_000_000_000_001);
    b.extend(frame("stderr", b"oops", 7));
    b.extend(frame("stdout", &[0xff, b'x', 0xfe], 8));
    // A 40 KiB line, as dockerd cuts it (16 KiB pieces), with a stderr
    // line between its pieces: lines are joined per stream.
    let pieces = partial_frames("stdout", &long, 16 * 1024, "p1", true);
    let first = match memlog::dockerlog::split(&pieces) {
        memlog::dockerlog::Frame::Whole(_, n) => n,
        other => panic!("{other:?}"),
    };
    b.extend_from_slice(&pieces[..first]);
    b.extend(frame("stderr", b"between", 9));
    b.extend_from_slice(&pieces[first..]);
    // Old dockerd's partial flag without metadata: joined up to a whole entry.
    let mut old = Vec::new();
    memlog::dockerlog::encode_frame(
        &mut old,
        &memlog::dockerlog::Entry {
            source: b"stdout",
            line: b"old-",
            partial: true,
            ..Default::default()
        },
    );
    b.extend(old);
    b.extend(frame("stdout", b"style", 10));
    // A last line without its newline: the stream ends inside it.
    b.extend(partial_frames("stdout", b"final", 16 * 1024, "p2", false));
    // Written in odd pieces: frames cross reads.
    for c in b.chunks(777) {
        w.write_all(c).expect("write");
    }
    drop(w);
    m.wait_msg("web.out", "final");
    let out = of_source(&m, "web.out");
    let msgs: Vec<&[u8]> = out.iter().map(|r| r.msg_bytes()).collect();
    let want: Vec<&[u8]> = vec![
        &b"hello"[..],
        &[0xff, b'x', 0xfe][..],
        &long[..],
        b"old-style",
        b"final",
    ];
    let short = |v: &[&[u8]]| -> Vec<String> {
        v.iter()
            .map(|m| format!("{} bytes {:?}", m.len(), &m[..m.len().min(12)]))
            .collect()
    };
    assert!(msgs == want, "{:?} != {:?}", short(&msgs), short(&want));
    assert!(out.iter().all(|r| !r.truncated));
    let errs: Vec<String> = of_source(&m, "web").into_iter().map(|r| r.msg).collect();
    assert_eq!(errs, ["oops", "between"]);
    let r = &out[0];
    assert_eq!(r.container_id.as_deref(), Some(ID));
    assert_eq!(r.container_name.as_deref(), Some("web"));
    assert_eq!(r.image.as_deref(), Some("bb:1"));
    assert_eq!(r.stream.as_deref(), Some("stdout"));
    assert_eq!(r.time_nano, Some(1_764_000_000_000_000_001));
    assert!(!r.unterminated && out[4].unterminated);
    assert_eq!(of_source(&m, "web")[0].stream.as_deref(), Some("stderr"));
    // logread -o json shows the metadata.
    let o = memlog_tests::run_with_timeout(
        &mut memlog_tests::logread([
            "-socket".as_ref(),
            m.query_socket().as_os_str(),
            "-o".as_ref(),
            "json".as_ref(),
        ]),
        memlog_tests::TIMEOUT,
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("\"hello\""))
        .expect("hello");
    for key in [
        format!("\"container_id\":\"{ID}\""),
        "\"container_name\":\"web\"".into(),
        "\"image\":\"bb:1\"".into(),
        "\"stream\":\"stdout\"".into(),
        "\"time_nano\":1764000000000000001".into(),
    ] {
        assert!(line.contains(&key), "{key} in {line}");
    }
    // memlogd selects by container: another container's records are not sent.
    let mut w2 = framed_input(&m, &dir, "db", "ffff");
    w2.write_all(&frame("stdout", b"db line", 1))
        .expect("write");
    m.wait_msg("db.out", "db line");
    let mut req = Request::new(Mode::Dump);
    req.containers = vec![ID.as_bytes().to_vec()];
    let mut c = m.query(&req);
    let mut got = Vec::new();
    while let Some(l) = c.next_line().expect("dump") {
        if let Line::Record(r) = l {
            got.push(r.msg);
        }
    }
    assert_eq!(got.len(), 7, "{got:?}");
    assert!(got.iter().all(|m| m != "db line"));
}

#[test]
fn long_lines_are_cut_at_max_line_len_and_marked() {
    let m = Memlogd::start(&["-max-line-len", "1000"]);
    let dir = TempDir::new("docker-cut");
    let mut w = framed_input(&m, &dir, "cut", ID);
    let long = vec![b'z'; 40 * 1024];
    let mut b = partial_frames("stdout", &long, 16 * 1024, "p", true);
    b.extend(frame("stdout", &vec![b'y'; 3000], 1));
    b.extend(frame("stdout", b"after", 2));
    w.write_all(&b).expect("write");
    m.wait_msg("cut.out", "after");
    let out = of_source(&m, "cut.out");
    assert_eq!(out.len(), 3, "{out:#?}");
    assert_eq!((out[0].msg.len(), out[0].truncated), (1000, true));
    assert!(out[0].msg.bytes().all(|c| c == b'z'));
    assert_eq!((out[1].msg.len(), out[1].truncated), (1000, true));
    assert!(!out[2].truncated);
    assert_eq!(m.stat("lines_truncated"), 2);
}

#[test]
fn garbage_frames_cost_only_themselves() {
    let m = Memlogd::start(&[]);
    let dir = TempDir::new("docker-bad");
    let mut w = framed_input(&m, &dir, "bad", ID);
    let other = m.writer("bystander");
    // A truncated protobuf inside a correct length, then a good frame.
    let mut b = vec![0, 0, 0, 5, 0x0a, 0x09, b's', b't', b'd'];
    b.extend(frame("stdout", b"one", 1));
    // Plain text where frames belong (a length of 1.8 GB), then a good frame.
    b.extend_from_slice(b"this is not a frame\n");
    b.extend(frame("stdout", b"two", 2));
    // A 100 MB length with nothing behind it, then a good frame.
    b.extend_from_slice(&100_000_000u32.to_be_bytes());
    b.extend(frame("stderr", b"three", 3));
    w.write_all(&b).expect("write");
    m.wait_msg("bad", "three");
    let msgs: Vec<String> = of_source(&m, "bad.out")
        .into_iter()
        .map(|r| r.msg)
        .collect();
    assert_eq!(msgs, ["one", "two"]);
    assert!(m.stat("docker_frames_bad") >= 3, "{:?}", m.stats());
    m.wait_self_record(&["does not decode"]);
    m.wait_self_record(&["frame length of 100000000 bytes"]);
    // A frame cut by the end of the stream is said too.
    w.write_all(&frame("stdout", b"cut short", 4)[..8])
        .expect("write");
    drop(w);
    m.wait_self_record(&["ended inside a frame"]);
    // Nothing else was affected.
    let mut other = other;
    other.write_all(b"still here\n").expect("write");
    m.wait_msg("bystander", "still here");
    m.assert_serves();
}

#[test]
fn bad_handovers_are_refused_with_a_reason() {
    let m = Memlogd::start(&[]);
    let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
    let mut s = LogSocket::connect(m.log_socket()).expect("log socket");
    // Not a FIFO.
    let got = s
        .hand_over(&handover("x", ID).encode(), &[a.as_fd()])
        .expect("answer");
    assert!(
        matches!(&got, Outcome::Refused(w) if w.contains("FIFO")),
        "{got:?}"
    );
    // Malformed fields.
    for payload in [
        &b"\0memlog/1 docker id=1"[..],
        b"\0memlog/1 docker source=a bogus=1",
        b"\0memlog/1 docker source=%zz",
        b"\0memlog/1 dockerish",
    ] {
        let got = s.hand_over(payload, &[a.as_fd()]).expect("answer");
        assert!(
            matches!(&got, Outcome::Refused(w) if w.contains("docker handover")),
            "{payload:?}: {got:?}"
        );
    }
    // A source that would be over -max-name-len with `.out`.
    let long = "n".repeat(254);
    let got = s
        .hand_over(&handover(&long, ID).encode(), &[a.as_fd()])
        .expect("answer");
    assert!(
        matches!(&got, Outcome::Refused(w) if w.contains("-max-name-len")),
        "{got:?}"
    );
    m.assert_serves();
}

#[test]
fn a_flooding_container_is_rate_limited_alone() {
    let m = Memlogd::start(&["-rate-limit-burst", "50", "-rate-limit-interval", "60s"]);
    let dir = TempDir::new("docker-flood");
    let mut w = framed_input(&m, &dir, "flood", ID);
    let mut b = Vec::new();
    for i in 0..500 {
        b.extend(frame("stdout", format!("line {i}").as_bytes(), i));
    }
    w.write_all(&b).expect("write");
    let mut quiet = m.writer("quiet");
    quiet.write_all(b"not limited\n").expect("write");
    m.wait_msg("quiet", "not limited");
    wait_until("the flood counted", || m.stat("rate_limited") >= 450);
    assert_eq!(of_source(&m, "flood.out").len(), 50);
}

// ---- the driver, spoken to as dockerd does ----

struct Setup {
    m: Memlogd,
    d: Driver,
    dir: TempDir,
}

fn setup(extra: &[&str]) -> Setup {
    setup_with(extra, &[])
}

fn setup_with(extra: &[&str], driver: &[&str]) -> Setup {
    let m = Memlogd::start(extra);
    let dir = TempDir::new("docker-plugins");
    let d = Driver::start(
        dir.path(),
        "memlogd-test",
        m.log_socket(),
        m.query_socket(),
        driver,
    );
    Setup { m, d, dir }
}

fn ok(d: &Driver, method: &str, body: &str) -> String {
    let (status, b) = d.post(method, body.as_bytes()).expect("request");
    let b = String::from_utf8_lossy(&b).into_owned();
    assert_eq!(status, 200, "{method}: {b}");
    b
}

fn start_logging(s: &Setup, file: &str, id: &str, tag: Option<&str>) -> std::fs::File {
    let w = dockerd_fifo(&s.dir.join(file));
    let body = format!(
        r#"{{"File":"{}","Info":{}}}"#,
        s.dir.join(file).display(),
        info_json(id, "web", "bb:1", tag)
    );
    assert_eq!(ok(&s.d, "/LogDriver.StartLogging", &body), r#"{"Err":""}"#);
    w
}

fn stop_logging(s: &Setup, file: &str) {
    let body = format!(r#"{{"File":"{}"}}"#, s.dir.join(file).display());
    assert_eq!(ok(&s.d, "/LogDriver.StopLogging", &body), r#"{"Err":""}"#);
}

fn read_logs(s: &Setup, id: &str, config: &str) -> Vec<(String, Vec<u8>, i64)> {
    let body = format!(
        r#"{{"Info":{},"Config":{config}}}"#,
        info_json(id, "web", "bb:1", None)
    );
    let (status, b) =
        s.d.post("/LogDriver.ReadLogs", body.as_bytes())
            .expect("ReadLogs");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&b));
    docker::read_frames(&b)
}

#[test]
fn plugin_handshake_and_capabilities() {
    let s = setup(&[]);
    assert_eq!(
        ok(&s.d, "/Plugin.Activate", ""),
        r#"{"Implements":["LogDriver"]}"#
    );
    assert!(ok(&s.d, "/LogDriver.Capabilities", "").contains(r#""Cap":{"ReadLogs":true}"#));
    let (status, body) = s.d.post("/LogDriver.Nope", b"{}").expect("request");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn start_logging_stop_after_drain_and_read_logs() {
    let s = setup(&[]);
    let mut w = start_logging(&s, "c1", ID, None);
    let mut b = Vec::new();
    for i in 0..2000 {
        b.extend(frame("stdout", format!("line {i}").as_bytes(), 1_000 + i));
    }
    b.extend(frame("stderr", b"to stderr", 5_000));
    b.extend(partial_frames("stdout", b"no newline", 4, "p", false));
    w.write_all(&b).expect("write");
    // As dockerd: StopLogging once the output ended, before closing the FIFO.
    stop_logging(&s, "c1");
    // It returned after memlogd read the FIFO empty: every line is there.
    let recs = s.m.records();
    let n = recs.iter().filter(|r| r.source == "web.out").count();
    assert!(n >= 2000, "{n} records of web.out right after StopLogging");
    drop(w);
    s.m.wait_msg("web.out", "no newline");
    // docker logs: every line, with its stream, newline and dockerd's time.
    let all = read_logs(
        &s,
        ID,
        r#"{"Since":"0001-01-01T00:00:00Z","Until":"0001-01-01T00:00:00Z","Tail":-1,"Follow":false}"#,
    );
    assert_eq!(all.len(), 2002);
    assert_eq!(all[0], ("stdout".into(), b"line 0\n".to_vec(), 1_000));
    assert_eq!(all[2000], ("stderr".into(), b"to stderr\n".to_vec(), 5_000));
    assert_eq!(all[2001].1, b"no newline", "unterminated: no newline added");
    // --tail 3 (ReadConfig, the key the documentation uses, works too).
    let body = format!(
        r#"{{"Info":{},"ReadConfig":{{"Tail":3}}}}"#,
        info_json(ID, "web", "bb:1", None)
    );
    let (status, tail) =
        s.d.post("/LogDriver.ReadLogs", body.as_bytes())
            .expect("tail");
    assert_eq!(status, 200);
    let tail: Vec<Vec<u8>> = docker::read_frames(&tail)
        .into_iter()
        .map(|f| f.1)
        .collect();
    assert_eq!(tail, [&b"line 1999\n"[..], b"to stderr\n", b"no newline"]);
    // --since: by memlogd's receive time (a little after dockerd's).
    let later = memlog::timefmt::rfc3339_nano(memlog::timefmt::now_ns());
    assert!(read_logs(&s, ID, &format!(r#"{{"Since":"{later}"}}"#)).is_empty());
    // Another container's id selects nothing.
    assert!(read_logs(&s, "0000", "{}").is_empty());
}

#[test]
fn follow_streams_until_logging_stops() {
    let s = setup(&[]);
    let mut w = start_logging(&s, "c2", ID, Some("{{.ImageName}}-{{.Name}}"));
    w.write_all(&frame("stdout", b"before", 1)).expect("write");
    s.m.wait_msg("bb:1-web.out", "before");
    let body = format!(
        r#"{{"Info":{},"Config":{{"Tail":-1,"Follow":true}}}}"#,
        info_json(ID, "web", "bb:1", None)
    );
    let (status, mut r) = s.d.stream("/LogDriver.ReadLogs", body.as_bytes());
    assert_eq!(status, 200);
    let mut got = Vec::new();
    let mut next = |got: &mut Vec<(String, Vec<u8>, i64)>| {
        let c = docker::read_chunk(&mut r).expect("chunk");
        if let Some(c) = &c {
            got.extend(docker::read_frames(c));
        }
        c.is_some()
    };
    while got.is_empty() {
        assert!(next(&mut got));
    }
    assert_eq!(got[0].1, b"before\n");
    w.write_all(&frame("stderr", b"live", 2)).expect("write");
    while got.len() < 2 {
        assert!(next(&mut got));
    }
    assert_eq!(got[1], ("stderr".into(), b"live\n".to_vec(), 2));
    // The container stops: StopLogging, then the follow ends by itself.
    stop_logging(&s, "c2");
    let t = std::time::Instant::now();
    while next(&mut got) {}
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(got.len(), 2);
}

#[test]
fn start_logging_errors_reach_dockerd() {
    let s = setup(&[]);
    let info = info_json(ID, "web", "bb:1", None);
    let regular = s.dir.join("regular");
    std::fs::write(&regular, b"").expect("file");
    for (body, why) in [
        (
            format!(
                r#"{{"File":"{}","Info":{info}}}"#,
                s.dir.join("nope").display()
            ),
            "No such file",
        ),
        (
            format!(r#"{{"File":"{}","Info":{info}}}"#, regular.display()),
            "not a FIFO",
        ),
        (r#"{"File":"/x"}"#.to_string(), "no Info"),
        ("{not json".to_string(), "request body"),
        (
            format!(
                r#"{{"File":"/x","Info":{}}}"#,
                info_json(ID, "web", "bb:1", Some("{{.Labels}}"))
            ),
            "not supported",
        ),
    ] {
        let (status, b) =
            s.d.post("/LogDriver.StartLogging", body.as_bytes())
                .expect("answer");
        let b = String::from_utf8_lossy(&b);
        assert_eq!(status, 500, "{body}: {b}");
        assert!(b.contains("\"Err\":") && b.contains(why), "{why} in {b}");
    }
    // Malformed HTTP gets 400 and a closed connection; the driver goes on.
    let mut c = std::os::unix::net::UnixStream::connect(&s.d.socket).expect("connect");
    c.write_all(b"POST /x HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n")
        .expect("write");
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut c, &mut reply).expect("read");
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(ok(&s.d, "/Plugin.Activate", "").contains("LogDriver"));
}

#[test]
fn memlogd_restart_gets_the_fifo_again() {
    let dir = TempDir::new("docker-restart");
    let (log, query) = (dir.join("log.sock"), dir.join("q.sock"));
    let start = |d: TempDir| {
        let mut cmd = Memlogd::command(&d);
        cmd.arg("-socket-log")
            .arg(&log)
            .arg("-socket-query")
            .arg(&query);
        Memlogd::spawn(d, cmd, log.clone(), query.clone())
    };
    let m = start(TempDir::new("docker-restart-m1"));
    let plugins = TempDir::new("docker-restart-plugins");
    let d = Driver::start(plugins.path(), "memlogd-test", &log, &query, &[]);
    let s = Setup { m, d, dir: plugins };
    let mut w = start_logging(&s, "c3", ID, None);
    w.write_all(&frame("stdout", b"first life", 1))
        .expect("write");
    s.m.wait_msg("web.out", "first life");
    let Setup { m, d, dir: plugins } = s;
    drop(m);
    let m2 = start(TempDir::new("docker-restart-m2"));
    // The driver sees the new instance and hands the FIFO over again.
    w.write_all(&frame("stdout", b"second life", 2))
        .expect("write");
    m2.wait_msg("web.out", "second life");
    assert!(d.stderr().contains("restarted"));
    let s = Setup {
        m: m2,
        d,
        dir: plugins,
    };
    stop_logging(&s, "c3");
    drop(dir);
}

#[test]
fn stop_logging_says_so_when_memlogd_does_not_drain() {
    let s = setup_with(&[], &["-drain-timeout", "300ms"]);
    let mut w = start_logging(&s, "c4", ID, None);
    // memlogd stopped: nothing reads the FIFO.
    s.m.signal(libc::SIGSTOP);
    w.write_all(&frame("stdout", b"unread", 1)).expect("write");
    let body = format!(r#"{{"File":"{}"}}"#, s.dir.join("c4").display());
    let t = std::time::Instant::now();
    let (status, b) =
        s.d.post("/LogDriver.StopLogging", body.as_bytes())
            .expect("answer");
    let b = String::from_utf8_lossy(&b).into_owned();
    s.m.signal(libc::SIGCONT);
    assert_eq!(status, 500, "{b}");
    assert!(b.contains("still unread by memlogd"), "{b}");
    assert!(t.elapsed() >= Duration::from_millis(300));
    // memlogd goes on and still reads what was there.
    s.m.wait_msg("web.out", "unread");
}
