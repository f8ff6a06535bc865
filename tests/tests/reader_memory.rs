//! Per-reader memory is bounded by `-reader-buffer` plus a small constant
//! (README, `-reader-buffer`), whatever `-max-line-len` and however many
//! records a `last=N` asks for: readers that never read cost no more, and a
//! reader that reads gets every long line byte for byte.

use memlog::json;
use memlog::proto::{Line, Mode, Request};
use memlog_tests::{decode, wait_until, LineReader, Memlogd, TIMEOUT};
use std::io::Write;
use std::os::unix::net::UnixStream;

/// The slack per reader the daemon documents (`READER_SLACK`), rounded up.
const SLACK: u64 = 32 << 10;

/// The most memory `pid` ever had resident, in bytes (`VmHWM`): a peak
/// between two looks counts too.
fn peak_rss(pid: u32) -> u64 {
    memlog_tests::peak_rss_kib(pid) << 10
}

/// One line of exactly `len` bytes whose JSON is up to 6 times as long:
/// control characters, multi-byte characters, invalid UTF-8 (alone and as
/// cut sequences), quotes and backslashes, at every offset against any
/// piece boundary.
fn long_line(k: usize, len: usize) -> Vec<u8> {
    let unit: &[u8] = "\x01é€😀\"\\\t\x7f".as_bytes();
    let odd: [&[u8]; 4] = [b"\xff", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3"];
    let mut v = Vec::with_capacity(len + 16);
    let mut i = k;
    while v.len() < len {
        v.extend_from_slice(unit);
        v.extend_from_slice(odd[i % 4]);
        v.extend(std::iter::repeat(b'\x02').take(i % 7));
        i += 1;
    }
    v.truncate(len);
    // No newline inside the line.
    for b in &mut v {
        if *b == b'\n' {
            *b = b'n';
        }
    }
    v
}

fn connect_mode(m: &Memlogd, req: &[u8]) -> UnixStream {
    let mut s = m.connect();
    s.write_all(req).expect("request");
    s
}

#[test]
fn readers_that_never_read_cost_only_their_buffer_however_long_the_lines() {
    const READERS: u64 = 200;
    const LINES: usize = 6;
    let max_line = 1usize << 20;
    let (buffer, reader_buffer) = (16u64 << 20, 64u64 << 10);
    let m = Memlogd::start(&[
        "-max-line-len",
        "1048576",
        "-buffer-size",
        "16M",
        "-reader-buffer",
        "64k",
        "-max-readers",
        "300",
        "-rate-limit-burst",
        "0",
    ]);
    // Dump+follow readers that never read: LinuxKit's and extended ones.
    let ext_req = Request::new(Mode::DumpFollow).encode();
    let stuck: Vec<UnixStream> = (0..READERS)
        .map(|i| connect_mode(&m, if i % 2 == 0 { &[2u8][..] } else { &ext_req }))
        .collect();
    // Readers that read everything, raw lines: one extended, one LinuxKit.
    let mut ext = LineReader::new(connect_mode(&m, &ext_req));
    let mut legacy = LineReader::new(connect_mode(&m, &[1]));
    assert!(matches!(decode(&ext.expect_line()), Line::Hello { .. }));
    m.sync_follower(|t| match ext.next_line(t).expect("read") {
        memlog_tests::Got::Line(l) => match decode(&l) {
            Line::Record(r) => Some(r.msg),
            _ => None,
        },
        _ => None,
    });
    m.sync_follower(|t| match legacy.next_line(t).expect("read") {
        memlog_tests::Got::Line(l) => Some(memlog_tests::decode_record(&l).msg),
        _ => None,
    });
    wait_until("every reader registered", || {
        m.stat("readers") >= READERS + 2
    });

    let lines: Vec<Vec<u8>> = (0..LINES).map(|k| long_line(k, max_line)).collect();
    let mut w = m.writer("long");
    let writer = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for l in &lines {
                w.write_all(l).expect("write");
                w.write_all(b"\n").expect("write");
            }
        })
    };
    for (name, r) in [("extended", &mut ext), ("linuxkit", &mut legacy)] {
        for (k, want) in lines.iter().enumerate() {
            let raw = loop {
                let l = r.expect_line();
                if memlog_tests::decode_record(&l).source == "long" {
                    break l;
                }
            };
            // Exactly the bytes of the one-shot encoding.
            let mut msg = Vec::new();
            json::write_str(&mut msg, want);
            let mut field = b",\"msg\":".to_vec();
            field.extend_from_slice(&msg);
            let at = raw
                .windows(7)
                .position(|w| w == b",\"msg\":")
                .expect("a msg key");
            let after = raw.get(at + field.len()).copied();
            assert!(
                raw[at..].starts_with(&field) && matches!(after, Some(b'}' | b',')),
                "{name} reader: line {k} differs from the one-shot encoding"
            );
            let rec = memlog_tests::decode_record(&raw);
            assert!(!rec.truncated, "{name} line {k}");
        }
    }
    writer.join().expect("writer");
    m.assert_serves();
    let rss = peak_rss(m.pid());
    let bound = buffer + READERS * (reader_buffer + SLACK) + (16 << 20);
    eprintln!(
        "VmHWM {} KiB with {READERS} stuck readers and {LINES} lines of {max_line} bytes (bound {} KiB)",
        rss >> 10,
        bound >> 10
    );
    assert!(
        rss < bound,
        "VmHWM {} MiB with {READERS} stuck readers; bound {} MiB",
        rss >> 20,
        bound >> 20
    );
    drop(stuck);
}

#[test]
fn last_n_on_a_big_ring_costs_no_memory_per_record() {
    const READERS: u64 = 8;
    let m = Memlogd::start(&[
        "-buffer-size",
        "32M",
        "-max-lines",
        "10000000",
        "-rate-limit-burst",
        "0",
    ]);
    let mut w = m.writer("t");
    for _ in 0..8 {
        w.write_all(&b"x\n".repeat(100_000)).expect("write");
    }
    w.write_all(b"last\n").expect("write");
    m.wait_source_msg("t", "last");
    let held = m.stat("records");
    assert!(held > 400_000, "{held} records");
    let before = peak_rss(m.pid());
    // Each asks for nearly every record held, with a filter (so memlogd
    // must find where the last N matches start), then reads only a little.
    let mut req = Request::new(Mode::Dump);
    req.grep = vec![b"x".to_vec()];
    req.last = Some(held - 10);
    let mut readers: Vec<LineReader> = (0..READERS)
        .map(|_| LineReader::new(connect_mode(&m, &req.encode())))
        .collect();
    for r in &mut readers {
        assert!(matches!(decode(&r.expect_line()), Line::Hello { .. }));
        // The first record: the scan for the start is over.
        match r.next_line(TIMEOUT).expect("read") {
            memlog_tests::Got::Line(l) => assert_eq!(memlog_tests::decode_record(&l).msg, "x"),
            other => panic!("{other:?}"),
        }
    }
    let after = peak_rss(m.pid());
    let bound = READERS * ((64 << 10) + SLACK) + (4 << 20);
    eprintln!(
        "VmHWM {} KiB before, {} KiB after {READERS} last={} readers (bound +{} KiB)",
        before >> 10,
        after >> 10,
        held - 10,
        bound >> 10
    );
    assert!(
        after.saturating_sub(before) < bound,
        "VmHWM grew by {} KiB for {READERS} last={} readers; bound {} KiB",
        after.saturating_sub(before) >> 10,
        held - 10,
        bound >> 10
    );
    // And the selection is right: the dump holds exactly held - 10 records.
    let mut c = m.query(&req);
    let mut n = 0u64;
    while let Some(l) = c.next_line().expect("read") {
        if let Line::Record(r) = l {
            assert_eq!(r.msg, "x");
            n += 1;
        }
    }
    assert_eq!(n, held - 10);
}

/// A record being sent in pieces is overwritten before its line is
/// complete: the reader gets the line ended as valid JSON (an extended
/// reader sees `"truncated":true`), then the lost notice counting it.
#[test]
fn a_record_overwritten_while_half_sent_ends_as_valid_json_then_lost() {
    let m = Memlogd::start(&[
        "-max-line-len",
        "100000",
        "-buffer-size",
        "512k",
        "-reader-buffer",
        "4k",
        "-rate-limit-burst",
        "0",
    ]);
    let ext_req = Request::new(Mode::Follow).encode();
    let mut ext = LineReader::new(connect_mode(&m, &ext_req));
    let mut legacy = LineReader::new(connect_mode(&m, &[1]));
    assert!(matches!(decode(&ext.expect_line()), Line::Hello { .. }));
    wait_until("both followers registered", || m.stat("readers") >= 3);
    // 600 KB of JSON: more than the socket and the reader's buffer hold.
    let long = vec![b'\x01'; 100_000];
    let mut w = m.writer("long");
    w.write_all(&long).expect("write");
    w.write_all(b"\n").expect("write");
    wait_until("both readers stuck in the long line", || {
        m.stat("readers_blocked") >= 2
    });
    let mut other = m.writer("other");
    for i in 0..20_000 {
        other
            .write_all(format!("overwriting {i}\n").as_bytes())
            .expect("write");
    }
    m.wait_source_msg("other", "overwriting 19999");
    let first = m.stat("first");
    let got = |r: &mut LineReader| -> (memlog::proto::Record, Line) {
        let cut = loop {
            let l = r.expect_line();
            let rec = memlog_tests::decode_record(&l);
            if rec.source == "long" {
                break rec;
            }
        };
        (cut, decode(&r.expect_line()))
    };
    let (cut, next) = got(&mut ext);
    assert!(
        cut.truncated,
        "the extended reader is told the line was cut"
    );
    assert!(cut.seq.is_some_and(|s| s < first));
    assert!(!cut.msg.is_empty() && cut.msg.len() < long.len());
    assert!(cut.msg.bytes().all(|b| b == 1));
    // The cut line is the record's (not counted lost): the notice counts
    // the records after it, and says where the stream goes on.
    let Line::Lost { count, next } = next else {
        panic!("{next:?}")
    };
    let cut_seq = cut.seq.expect("seq");
    assert_eq!(
        next,
        Some(cut_seq + 1 + count),
        "lost {count} after {cut_seq}"
    );
    let (cut, next) = got(&mut legacy);
    assert!(!cut.msg.is_empty() && cut.msg.len() < long.len());
    assert!(cut.msg.bytes().all(|b| b == 1));
    match next {
        Line::Record(r) => assert!(
            r.source == "memlogd" && r.msg.contains("records lost"),
            "{r:?}"
        ),
        other => panic!("{other:?}"),
    }
}
