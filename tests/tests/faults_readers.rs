//! Fault: hostile and careless readers. Readers that connect and never
//! read, thousands that connect and vanish (before, during and after their
//! request), and half-written requests (a mode byte and part of a
//! `memlog/1` line, then silence) all at once, while a writer writes a
//! bounded amount. The writer completes and every one of its lines is
//! stored; memlogd's resident memory does not grow with the abuse (the ring
//! is filled first, so its pages are counted from the start); the silent
//! half-requests are closed and counted; memlogd serves on.

use memlog::proto::{Line, Mode, Request};
use memlog_tests::{noise_line, rss_kib, wait_for, Got, LineReader, Memlogd, TIMEOUT};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Lines the writer writes while the readers misbehave.
const LINES: usize = 100_000;
/// Pieces the writer writes them in.
const CHUNKS: usize = 100;
/// Readers that connect and vanish.
const CHURN: usize = 5_000;
/// Readers that send half a request and then nothing.
const HALF: usize = 50;
/// Readers that send a request and never read.
const STUCK: usize = 8;
/// Allowed growth of memlogd's resident memory over the test.
const RSS_MARGIN_KIB: u64 = 2048;

fn get(stats: &[(String, u64)], k: &str) -> u64 {
    stats
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {k} in {stats:?}"))
}

fn line(i: usize) -> String {
    format!("steady writer line {i:07}")
}

/// One reader that connects and goes, in one of several ways.
fn vanish(query: &Path, k: usize) {
    let Ok(mut s) = UnixStream::connect(query) else {
        // Over -max-readers memlogd closes at once; the backlog may be
        // full for a moment too. Either way this reader is gone.
        return;
    };
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    // Writes may fail: memlogd may already have closed its side.
    match k % 6 {
        // Connects and closes before any request.
        0 => {}
        // A LinuxKit dump, not read.
        1 => {
            let _ = s.write_all(&[0]);
        }
        // A LinuxKit dump and follow, not read.
        2 => {
            let _ = s.write_all(&[2]);
        }
        // An extended dump and follow: reads the hello and a little.
        3 => {
            let _ = s.write_all(&Request::new(Mode::DumpFollow).encode());
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
        }
        // Half a request, then gone.
        4 => {
            let _ = s.write_all(b"\x02memlog/1 after=0123");
        }
        // A stats request, read to the end.
        _ => {
            let mut req = Request::new(Mode::Dump);
            req.stats = true;
            let _ = s.write_all(&req.encode());
            let mut v = Vec::new();
            let _ = s.read_to_end(&mut v);
        }
    }
}

#[test]
fn stuck_vanishing_and_half_written_readers_slow_no_writer_and_cost_no_memory() {
    let m = Memlogd::start(&[
        "-buffer-size",
        "16M",
        "-max-lines",
        "1000000",
        "-rate-limit-burst",
        "0",
    ]);
    // Fill the ring's bytes until it evicts: its pages are resident from
    // here on. Lines that do not compress: the compressed ring (the
    // default) would hold -max-lines of compressible ones in a corner of
    // its arena.
    let mut fill = m.writer("prefill");
    let mut x = 0x2545_f491_4f6c_dd1du64;
    while m.stat("evicted") == 0 {
        for _ in 0..2000 {
            let big = noise_line(&mut x, 1000) + "\n";
            fill.write_all(big.as_bytes()).expect("prefill");
        }
        fill.write_all(b"mark\n").expect("prefill");
        m.wait_source_msg("prefill", "mark");
    }
    drop(fill);
    let rss_before = rss_kib(m.pid());

    // Readers that ask for everything and never read a byte, held to the end.
    let stuck: Vec<UnixStream> = (0..STUCK)
        .map(|k| {
            let mut s = m.connect();
            let req = if k % 2 == 0 {
                vec![2]
            } else {
                Request::new(Mode::DumpFollow).encode()
            };
            s.write_all(&req).expect("request");
            s
        })
        .collect();
    // Half-written requests, then silence: memlogd closes them in time.
    let half: Vec<LineReader> = (0..HALF)
        .map(|k| {
            let mut s = m.connect();
            let part: &[u8] = if k % 2 == 0 {
                b"\x00memlog/1 source=sv"
            } else {
                b"\x02memlog/"
            };
            s.write_all(part).expect("half a request");
            LineReader::new(s)
        })
        .collect();

    // The writer: a bounded amount, written while the rest goes on. A write
    // that blocked for good would fail here instead of hanging the test.
    let mut w = m.writer("steady");
    w.set_write_timeout(Some(TIMEOUT)).expect("timeout");
    // Readers come and go from two threads, CHURN of them, while the
    // writer writes: it writes in CHUNKS pieces, each once the churn has
    // gone a step further (so the two overlap whatever the machine's speed).
    let churned = Arc::new(AtomicUsize::new(0));
    let progress = Arc::clone(&churned);
    let writer = std::thread::spawn(move || {
        let per = LINES / CHUNKS;
        for j in 0..CHUNKS {
            let step = j * CHURN / CHUNKS;
            assert!(
                wait_for(|| progress.load(Ordering::Relaxed) >= step, TIMEOUT),
                "the churn stalled"
            );
            let mut buf = String::new();
            for i in j * per..(j + 1) * per {
                buf.push_str(&line(i));
                buf.push('\n');
            }
            w.write_all(buf.as_bytes()).expect("the writer blocked");
        }
    });
    let query: PathBuf = m.query_socket().to_path_buf();
    let churners: Vec<_> = (0..2)
        .map(|t| {
            let q = query.clone();
            let churned = Arc::clone(&churned);
            std::thread::spawn(move || {
                for k in (t..CHURN).step_by(2) {
                    vanish(&q, k);
                    churned.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    writer.join().expect("the writer completes");
    for c in churners {
        c.join().expect("churn");
    }
    // Every line the writer wrote is stored, once, in order.
    let mut c = m.query(&{
        let mut r = Request::new(Mode::Dump);
        r.sources = vec![b"steady".to_vec()];
        r
    });
    let mut got = 0;
    while let Some(l) = c.next_line().expect("dump") {
        match l {
            Line::Hello { .. } => {}
            Line::Record(r) => {
                assert_eq!(r.msg, line(got), "record {got} of the writer");
                got += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, LINES);

    // The half-written requests are closed by memlogd, each counted.
    for (k, mut h) in half.into_iter().enumerate() {
        match h.next_line(TIMEOUT).expect("read") {
            Got::Eof => {}
            other => panic!("half request {k}: {other:?}"),
        }
    }
    m.wait_self_record(&["closed a reader that sent no request"]);
    let stats = m.stats();
    assert!(get(&stats, "readers_refused") >= HALF as u64, "{stats:?}");
    assert_eq!(get(&stats, "rate_limited"), 0, "{stats:?}");
    assert_eq!(get(&stats, "lines_truncated"), 0, "{stats:?}");
    // Accepted: everything but what the backlog turned away, plus this
    // test's own queries. The churn leaves none behind: only the stuck
    // readers (and this stats request) remain.
    assert!(
        get(&stats, "readers_total") >= (STUCK + HALF) as u64,
        "{stats:?}"
    );
    assert_eq!(get(&stats, "readers"), (STUCK + 1) as u64, "{stats:?}");
    let mut alive = m.writer("alive");
    alive.write_all(b"still here\n").expect("write");
    m.wait_source_msg("alive", "still here");

    let rss_after = rss_kib(m.pid());
    println!(
        "memlogd VmRSS: {rss_before} KiB with the ring full, {rss_after} KiB after {CHURN} vanishing, \
         {HALF} half-written and {STUCK} stuck readers and {LINES} lines"
    );
    assert!(
        rss_after <= rss_before + RSS_MARGIN_KIB,
        "memlogd grew from {rss_before} to {rss_after} KiB"
    );
    // The stuck readers were never a reason to stop: they get their data
    // once they read (here they just go).
    drop(stuck);
    let ok = wait_for(|| get(&m.stats(), "readers") == 1, TIMEOUT);
    assert!(ok, "{:?}", m.stats());
}
