//! Bad input and vanishing clients: each is refused or absorbed, said so in
//! a `memlogd` record and counted, and memlogd goes on serving everybody else.

use memlog::proto::{Line, Mode};
use memlog_tests::{decode_record, wait_until, Got, Memlogd, TIMEOUT};
use std::io::{ErrorKind, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

/// Sends `name` with a fresh socketpair end; returns our end.
fn send_pair(m: &Memlogd, name: &[u8]) -> UnixStream {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    m.send_fds(name, &[theirs.as_fd()]).expect("send");
    ours
}

/// Waits until memlogd has closed its copy of the peer of `ours` (writes
/// then fail), i.e. it did not keep a refused fd.
fn assert_peer_closed(ours: &mut UnixStream) {
    wait_until("memlogd to close the refused fd", || {
        match ours.write_all(b"anyone there?\n") {
            Err(e) => e.kind() == ErrorKind::BrokenPipe,
            Ok(()) => false,
        }
    });
}

#[test]
fn datagram_without_fds_is_ignored_logged_and_counted() {
    let m = Memlogd::start(&[]);
    m.send_fds(b"lonely", &[]).expect("send");
    let r = m.wait_self_record(&["without fds"]);
    assert!(r.msg.contains("lonely"), "{r:?}");
    assert_eq!(m.stat("datagrams_without_fds"), 1);
    assert!(m.records().iter().all(|r| r.source != "lonely"));
    m.assert_serves();
}

#[test]
fn directory_fd_is_refused() {
    let m = Memlogd::start(&[]);
    let dir = std::fs::File::open(m.dir().path()).expect("open dir");
    m.send_fds(b"a-dir", &[dir.as_fd()]).expect("send");
    let r = m.wait_self_record(&["directory"]);
    assert!(r.msg.contains("a-dir"), "{r:?}");
    assert_eq!(m.stat("inputs_refused"), 1);
    m.assert_serves();
}

#[test]
fn regular_file_fd_is_refused_and_not_read() {
    let m = Memlogd::start(&[]);
    let path = m.dir().join("plain.txt");
    std::fs::write(&path, "file contents\n").expect("write file");
    let f = std::fs::File::open(&path).expect("open file");
    m.send_fds(b"a-file", &[f.as_fd()]).expect("send");
    let r = m.wait_self_record(&["regular file"]);
    assert!(r.msg.contains("a-file"), "{r:?}");
    assert_eq!(m.stat("inputs_refused"), 1);
    assert!(m.records().iter().all(|r| r.source != "a-file"));
    m.assert_serves();
}

#[test]
fn overlong_name_is_refused_and_its_fd_closed() {
    let m = Memlogd::start(&[]);
    let mut ours = send_pair(&m, &[b'n'; 10 * 1024]);
    let r = m.wait_self_record(&["name", "-max-name-len"]);
    assert!(r.msg.contains("10240"), "says how long: {r:?}");
    assert_peer_closed(&mut ours);
    let stats = m.stats();
    let get = |k: &str| stats.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    assert_eq!(get("names_refused"), Some(1), "{stats:?}");
    assert!(m.records().iter().all(|r| !r.source.starts_with("nnn")));
    m.assert_serves();
}

#[test]
fn name_of_exactly_max_name_len_is_accepted() {
    let m = Memlogd::start(&["-max-name-len", "16"]);
    let mut w = send_pair(&m, b"sixteen-bytes-ok");
    w.write_all(b"fits\n").expect("write");
    m.wait_msg("sixteen-bytes-ok", "fits");
    let mut ours = send_pair(&m, b"seventeen-bytes!!");
    m.wait_self_record(&["-max-name-len 16"]);
    assert_peer_closed(&mut ours);
    assert_eq!(m.stat("names_refused"), 1);
}

#[test]
fn reader_that_connects_and_closes_at_once() {
    let m = Memlogd::start(&[]);
    for _ in 0..5 {
        drop(m.connect());
    }
    m.assert_serves();
}

#[test]
fn readers_that_close_mid_follow_and_mid_dump() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("chatty");
    // An extended follower that reads a little, then goes.
    let (mut c, _) = m.follow(Mode::Follow);
    w.write_all(b"first\n").expect("write");
    assert!(matches!(
        c.next_line().expect("read"),
        Some(Line::Record(_))
    ));
    drop(c);
    // A LinuxKit follower that goes without reading.
    drop(m.legacy(1));
    // Lots of output for readers that are gone: memlogd must not die of SIGPIPE.
    let line = format!("{}\n", "x".repeat(200));
    for _ in 0..5000 {
        w.write_all(line.as_bytes()).expect("write");
    }
    w.write_all(b"done\n").expect("write");
    m.wait_msg("chatty", "done");
    // A dump reader that reads one line of a long dump and goes.
    let mut r = m.legacy(0);
    r.expect_line();
    drop(r);
    m.assert_serves();
}

#[test]
fn writer_that_closes_without_newline() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("abrupt");
    w.write_all(b"half a li").expect("write");
    drop(w);
    m.wait_msg("abrupt", "half a li");
    m.assert_serves();
}

#[test]
fn unknown_mode_byte_gets_one_record_and_is_closed() {
    let m = Memlogd::start(&[]);
    let lines = m.legacy(7).read_to_eof();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let r = decode_record(&lines[0]);
    assert_eq!(r.source, "memlogd");
    assert!(r.msg.contains("mode"), "{r:?}");
    m.assert_serves();
}

/// PROTOCOL.md: an unknown mode byte gets one `memlogd` record, whatever
/// follows it; an error object is only for a real extended request (a valid
/// mode byte and `memlog/1`).
#[test]
fn garbage_after_an_unknown_mode_byte_gets_a_record_not_an_error_object() {
    let m = Memlogd::start(&[]);
    for garbage in [&b"\x07abc"[..], b"\x07memlog/1 stats\n", b"\xffxyz\n\n"] {
        let mut s = m.connect();
        s.write_all(garbage).expect("write");
        let lines = memlog_tests::LineReader::new(s).read_to_eof();
        assert_eq!(lines.len(), 1, "{garbage:?}: {lines:?}");
        let r = decode_record(&lines[0]);
        assert_eq!(r.source, "memlogd", "{garbage:?}");
        assert!(r.msg.contains("unknown query mode"), "{garbage:?}: {r:?}");
    }
    m.assert_serves();
}

#[test]
fn bad_extended_request_gets_an_error_and_is_closed() {
    let m = Memlogd::start(&[]);
    let mut s = m.connect();
    s.write_all(b"\x00memlog/1 frobnicate\n").expect("write");
    let lines = memlog_tests::LineReader::new(s).read_to_eof();
    assert_eq!(lines.len(), 1, "{lines:?}");
    match memlog_tests::decode(&lines[0]) {
        Line::Error(e) => assert!(e.contains("frobnicate"), "{e}"),
        other => panic!("expected an error line, got {other:?}"),
    }
    m.assert_serves();
}

#[test]
fn max_readers_refuses_the_next_reader_and_keeps_the_others() {
    let m = Memlogd::start(&["-max-readers", "2"]);
    let (mut f1, _) = m.follow(Mode::Follow);
    let mut f2 = m.legacy(1);
    m.sync_follower(|t| match f2.next_line(t).expect("read") {
        Got::Line(l) => Some(decode_record(&l).msg),
        Got::Timeout => None,
        Got::Eof => panic!("follower closed"),
    });
    // The third gets exactly one record, then EOF. memlogd may refuse and
    // close before the mode byte is even written (the write then fails
    // with EPIPE); what was sent is still there to read.
    let mut third = m.connect();
    let _ = third.write_all(&[1]);
    let lines = memlog_tests::LineReader::new(third).read_to_eof();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let refusal = decode_record(&lines[0]);
    assert_eq!(refusal.source, "memlogd");
    assert!(
        refusal.msg.contains("refused") && refusal.msg.contains("-max-readers 2"),
        "{refusal:?}"
    );
    // The first two still get new records.
    let mut w = m.writer("app");
    w.write_all(b"for both\n").expect("write");
    loop {
        match f1.next_line().expect("read").expect("open") {
            Line::Record(r) if r.msg == "for both" => break,
            _ => {}
        }
    }
    loop {
        match f2.next_line(TIMEOUT).expect("read") {
            Got::Line(l) if decode_record(&l).msg == "for both" => break,
            Got::Line(_) => {}
            other => panic!("second follower: {other:?}"),
        }
    }
    // Free a slot, then read the counters (retrying while the daemon has not
    // yet noticed the slot is free: each refused try is counted too).
    drop(f1);
    let mut refused_tries = 0;
    let mut stats = None;
    wait_until("a free reader slot", || {
        stats = m.try_stats();
        refused_tries += u64::from(stats.is_none());
        stats.is_some()
    });
    let stats = stats.expect("stats");
    let get = |k: &str| stats.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    assert_eq!(get("readers_refused"), Some(1 + refused_tries), "{stats:?}");
    m.wait_self_record(&["refused a reader", "-max-readers 2"]);
}

/// With -max-readers streaming, a `stats` request is still answered (one
/// connection more is accepted for it), and any other request is refused
/// with the same record as before.
#[test]
fn stats_are_answered_while_max_readers_are_streaming() {
    let m = Memlogd::start(&["-max-readers", "2"]);
    let (_f1, _) = m.follow(Mode::Follow);
    let mut f2 = m.legacy(1);
    m.sync_follower(|t| match f2.next_line(t).expect("read") {
        Got::Line(l) => Some(decode_record(&l).msg),
        Got::Timeout => None,
        Got::Eof => panic!("follower closed"),
    });
    let stats = m.stats();
    let get = |k: &str| stats.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    assert_eq!(get("readers_refused"), Some(0), "{stats:?}");
    // A third reader of either kind is refused with one record.
    for req in [
        &[2u8][..],
        &memlog::proto::Request::new(Mode::Dump).encode(),
    ] {
        let mut third = m.connect();
        let _ = third.write_all(req);
        let lines = memlog_tests::LineReader::new(third).read_to_eof();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let refusal = decode_record(&lines[0]);
        assert_eq!(refusal.source, "memlogd");
        assert!(
            refusal
                .msg
                .contains("refused a reader: -max-readers 2 reached"),
            "{refusal:?}"
        );
    }
    assert_eq!(m.stat("readers_refused"), 2);
    assert_eq!(m.stat("readers"), 3, "the two followers and this request");
}

#[test]
fn max_inputs_refuses_the_next_fd() {
    let m = Memlogd::start(&["-max-inputs", "3"]);
    let mut ws: Vec<UnixStream> = (0..3).map(|i| m.writer(&format!("in{i}"))).collect();
    for (i, w) in ws.iter_mut().enumerate() {
        w.write_all(format!("hello from {i}\n").as_bytes())
            .expect("write");
        m.wait_msg(&format!("in{i}"), &format!("hello from {i}"));
    }
    let mut fourth = m.writer("in3");
    let r = m.wait_self_record(&["refused", "-max-inputs 3"]);
    assert!(r.msg.contains("in3"), "{r:?}");
    assert_peer_closed(&mut fourth);
    assert_eq!(m.stat("inputs_refused"), 1);
    // The three inputs and the readers still work.
    ws[0].write_all(b"still served\n").expect("write");
    m.wait_msg("in0", "still served");
    assert!(m.records().iter().all(|r| r.source != "in3"));
    // Once one input closes, a new one is accepted again.
    drop(ws.pop());
    wait_until("the closed input to be released", || {
        m.stats().iter().any(|(k, v)| k == "inputs" && *v == 2)
    });
    let mut again = m.writer("in4");
    again.write_all(b"accepted\n").expect("write");
    m.wait_msg("in4", "accepted");
}

#[test]
fn counters_survive_a_burst_of_refusals() {
    // More refusals than memlogd logs per second: every one is counted,
    // the records about them are rate limited, and the daemon serves on.
    let m = Memlogd::start(&[]);
    for _ in 0..100 {
        m.send_fds(b"burst", &[]).expect("send");
    }
    wait_until("100 counted datagrams", || {
        m.stat("datagrams_without_fds") == 100
    });
    let noted = m
        .records()
        .iter()
        .filter(|r| r.source == "memlogd" && r.msg.contains("without fds"))
        .count() as u64;
    assert!(noted >= 1, "at least the first refusal is logged");
    let suppressed = m.stat("selflog_suppressed");
    assert_eq!(noted + suppressed, 100);
    // What was suppressed is summed up in memlogd's own records.
    wait_until("the suppressed messages to be summed up", || {
        let summed: u64 = m
            .records()
            .iter()
            .filter(|r| r.source == "memlogd")
            .filter_map(|r| r.msg.strip_prefix("suppressed "))
            .filter_map(|rest| rest.split_once(' ')?.0.parse::<u64>().ok())
            .sum();
        summed == suppressed
    });
    m.assert_serves();
}
