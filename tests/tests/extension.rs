//! memlog's protocol extension end to end: exact resume after a position
//! (same instance, overwritten position, another instance), the server-side
//! source filter, and the console echo that never stalls the daemon.

use memlog::proto::{Line, Mode, Position, Request};
use memlog_tests::{records, wait_for, Memlogd, TempDir};
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

fn lines(m: &Memlogd, req: &Request) -> Vec<Line> {
    let mut c = m.query(req);
    let mut v = Vec::new();
    while let Some(l) = c.next_line().expect("read") {
        v.push(l);
    }
    v
}

fn hello(lines: &[Line]) -> (u64, u64, u64) {
    match lines.first() {
        Some(Line::Hello {
            instance,
            first,
            next,
        }) => (*instance, *first, *next),
        other => panic!("no hello line: {other:?}"),
    }
}

fn write_lines(
    m: &Memlogd,
    w: &mut std::os::unix::net::UnixStream,
    source: &str,
    range: std::ops::Range<u32>,
) {
    for i in range.clone() {
        w.write_all(format!("line {i}\n").as_bytes())
            .expect("write");
    }
    m.wait_msg(source, &format!("line {}", range.end - 1));
}

#[test]
fn resume_after_a_position_gives_exactly_the_records_after_it() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("svc");
    write_lines(&m, &mut w, "svc", 0..10);
    let all = lines(&m, &Request::new(Mode::Dump));
    let (instance, _, _) = hello(&all);
    let recs = records(&all);
    let fifth = recs.iter().find(|r| r.msg == "line 4").expect("line 4");
    let mut req = Request::new(Mode::Dump);
    req.after = Some(Position {
        instance,
        seq: fifth.seq.expect("seq"),
    });
    let got: Vec<String> = records(&lines(&m, &req))
        .into_iter()
        .filter(|r| r.source == "svc")
        .map(|r| r.msg)
        .collect();
    assert_eq!(
        got,
        (5..10).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    // Resuming after the newest record gives nothing (and does not hang).
    req.after = Some(Position {
        instance,
        seq: recs.last().and_then(|r| r.seq).expect("seq"),
    });
    assert!(records(&lines(&m, &req)).is_empty());
}

#[test]
fn resume_after_an_overwritten_position_reports_the_exact_gap() {
    let m = Memlogd::start(&["-max-lines", "10"]);
    let mut w = m.writer("svc");
    write_lines(&m, &mut w, "svc", 0..5);
    let all = lines(&m, &Request::new(Mode::Dump));
    let (instance, _, _) = hello(&all);
    let pos = records(&all)
        .iter()
        .find(|r| r.msg == "line 1")
        .and_then(|r| r.seq)
        .expect("seq of line 1");
    write_lines(&m, &mut w, "svc", 5..40);
    let mut req = Request::new(Mode::Dump);
    req.after = Some(Position { instance, seq: pos });
    let got = lines(&m, &req);
    let (_, first, next) = hello(&got);
    assert_eq!(next - first, 10);
    match &got[1] {
        Line::Lost { count, next } => {
            assert_eq!(
                *count,
                first - (pos + 1),
                "records between the position and the oldest kept"
            );
            assert_eq!(*next, Some(first));
        }
        other => panic!("expected a lost notice first, got {other:?}"),
    }
    let recs = records(&got);
    assert_eq!(recs.len(), 10);
    assert_eq!(recs[0].seq, Some(first));
    assert_eq!(m.stat("reader_records_lost"), first - (pos + 1));
}

#[test]
fn a_position_from_another_instance_starts_from_the_oldest_record() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("svc");
    write_lines(&m, &mut w, "svc", 0..3);
    let (instance, first, _) = hello(&lines(&m, &Request::new(Mode::Dump)));
    let mut req = Request::new(Mode::Dump);
    req.after = Some(Position {
        instance: instance ^ 1,
        seq: 1,
    });
    let got = lines(&m, &req);
    assert_eq!(
        hello(&got).0,
        instance,
        "the hello tells the client which instance answers"
    );
    let recs = records(&got);
    assert_eq!(recs[0].seq, Some(first));
    assert_eq!(recs.iter().filter(|r| r.source == "svc").count(), 3);
}

#[test]
fn source_filter_runs_in_the_daemon_for_dumps_and_follows() {
    let m = Memlogd::start(&[]);
    let (mut a, mut b, mut c) = (m.writer("a"), m.writer("b"), m.writer("c;odd name"));
    for i in 0..3 {
        a.write_all(format!("a{i}\n").as_bytes()).expect("w");
        b.write_all(format!("b{i}\n").as_bytes()).expect("w");
        c.write_all(format!("c{i}\n").as_bytes()).expect("w");
    }
    m.wait_msg("c;odd name", "c2");
    m.wait_msg("a", "a2");
    m.wait_msg("b", "b2");
    let mut req = Request::new(Mode::Dump);
    req.sources = vec![b"a".to_vec(), b"c;odd name".to_vec()];
    let got = records(&lines(&m, &req));
    assert!(
        got.iter()
            .all(|r| r.source == "a" || r.source == "c;odd name"),
        "{got:#?}"
    );
    assert_eq!(got.len(), 6);
    // Following one quiet source: only its records arrive.
    let mut freq = Request::new(Mode::Follow);
    freq.sources = vec![b"b".to_vec()];
    let mut f = m.query(&freq);
    assert!(matches!(
        f.next_line().expect("hello"),
        Some(Line::Hello { .. })
    ));
    for i in 0..100 {
        a.write_all(format!("noise {i}\n").as_bytes()).expect("w");
    }
    b.write_all(b"wanted\n").expect("w");
    match f.next_line().expect("record") {
        Some(Line::Record(r)) => assert_eq!((r.source.as_str(), r.msg.as_str()), ("b", "wanted")),
        other => panic!("expected b's record, got {other:?}"),
    }
}

#[test]
fn echo_to_a_console_that_never_reads_never_stalls_the_daemon() {
    let dir = TempDir::new("echo");
    let (log, query) = (dir.join("log.sock"), dir.join("q.sock"));
    let mut cmd = Memlogd::command(&dir);
    cmd.arg("-socket-log")
        .arg(&log)
        .arg("-socket-query")
        .arg(&query)
        .args(["-echo", "-rate-limit-burst", "0", "-max-lines", "1000"]);
    // A pipe nobody reads: it fills after 64 KiB.
    cmd.stdout(Stdio::piped());
    let m = Memlogd::spawn(dir, cmd, log, query);
    let mut w = m.writer("chatty");
    let n = 200_000u64;
    let chunk: String = (0..1000)
        .map(|i| format!("a line of chatter number {i:>6}\n"))
        .collect();
    let before = m.stat("next");
    for _ in 0..n / 1000 {
        w.write_all(chunk.as_bytes())
            .expect("the writer is never blocked for good");
    }
    assert!(
        wait_for(|| m.stat("next") >= before + n, Duration::from_secs(60)),
        "memlogd stored every line"
    );
    assert!(
        m.stat("echo_dropped") > 0,
        "the echo dropped lines instead of blocking"
    );
    m.assert_serves();
}
