//! The compressed ring (the default, `-ring-compress=true`) end to end: the same
//! answers as the raw ring (`-ring-compress=false`) to dumps, `after=`
//! resumes, `last=`, server-side filters and lost counts, several times the
//! records in the same `-buffer-size`, and `stats` saying raw and stored
//! bytes.

use memlog::proto::{Line, Mode, Position, Request};
use memlog_tests::{records, wait_for, wait_until, Memlogd};
use std::io::Write;
use std::time::Duration;

const LINES: u64 = 40_000;

/// A line of log-like text, unique by its number.
fn line(i: u64) -> String {
    let pkg = ["libc6", "openssl", "systemd", "libssl3", "tzdata", "bash"][(i % 6) as usize];
    let state = ["unpacked", "half-configured", "installed"][(i % 3) as usize];
    format!(
        "2026-12-02 06:{:02}:{:02} status {state} {pkg}:amd64 n={i}",
        i / 60 % 60,
        i % 60
    )
}

fn lines(m: &Memlogd, req: &Request) -> Vec<Line> {
    let mut c = m.query(req);
    let mut v = Vec::new();
    while let Some(l) = c.next_line().expect("read") {
        v.push(l);
    }
    v
}

/// memlogd with a 256 KiB ring bounded by bytes, fed `LINES` lines from
/// source `pkg`.
fn filled(compress: bool) -> Memlogd {
    let flag = format!("-ring-compress={compress}");
    let m = Memlogd::start(&[
        "-buffer-size",
        "256k",
        "-max-lines",
        "10000000",
        "-rate-limit-burst",
        "0",
        &flag,
    ]);
    let mut w = m.writer("pkg");
    let before = m.stat("next");
    // In pieces with pauses: compression may take 40% of memlogd's time,
    // and a flood faster than that keeps chunks uncompressed.
    for part in 0..40 {
        let mut text = String::new();
        for i in part * LINES / 40..(part + 1) * LINES / 40 {
            text.push_str(&line(i));
            text.push('\n');
        }
        w.write_all(text.as_bytes()).expect("write lines");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        wait_for(|| m.stat("next") >= before + LINES, Duration::from_secs(20)),
        "memlogd did not store {LINES} lines"
    );
    drop(w);
    m
}

/// The records of source `pkg` held: every one the line it was, its
/// sequence numbers consecutive; returns (first seq, first line number).
fn check_suffix(m: &Memlogd) -> (u64, u64, usize) {
    let recs: Vec<_> = m
        .records()
        .into_iter()
        .filter(|r| r.source == "pkg")
        .collect();
    assert!(!recs.is_empty());
    let n0: u64 = recs[0].msg.rsplit("n=").next().unwrap().parse().unwrap();
    for (k, r) in recs.iter().enumerate() {
        assert_eq!(r.msg, line(n0 + k as u64), "record {k}");
        assert_eq!(r.seq, Some(recs[0].seq.unwrap() + k as u64));
    }
    assert_eq!(n0 + recs.len() as u64, LINES, "the newest are held");
    (recs[0].seq.unwrap(), n0, recs.len())
}

#[test]
fn compressed_ring_answers_as_the_raw_ring_and_holds_more() {
    let (raw, comp) = (filled(false), filled(true));
    let (rs, cs) = (raw.stats(), comp.stats());
    let get = |s: &[(String, u64)], k: &str| s.iter().find(|x| x.0 == k).map(|x| x.1);
    assert_eq!(get(&rs, "ring_compressed"), Some(0));
    assert_eq!(get(&cs, "ring_compressed"), Some(1));
    assert_eq!(get(&rs, "raw_bytes"), get(&rs, "stored_bytes"));
    let (raw_b, stored_b) = (
        get(&cs, "raw_bytes").unwrap(),
        get(&cs, "stored_bytes").unwrap(),
    );
    assert!(raw_b > 2 * stored_b, "raw {raw_b} stored {stored_b}");
    assert!(stored_b <= 256 << 10);
    assert!(get(&cs, "evicted").unwrap() > 0 && get(&rs, "evicted").unwrap() > 0);

    let (_, _, n_raw) = check_suffix(&raw);
    let (first, n0, n_comp) = check_suffix(&comp);
    assert!(
        n_comp as f64 > 2.5 * n_raw as f64,
        "compressed {n_comp} records, raw {n_raw}"
    );
    assert!(get(&cs, "ring_chunks_uncompressed").is_some());

    // after= a record deep in a sealed (compressed) chunk: exactly the
    // records after it.
    let all = lines(&comp, &Request::new(Mode::Dump));
    let Some(Line::Hello { instance, .. }) = all.first() else {
        panic!("no hello")
    };
    let instance = *instance;
    for k in [0u64, 1, 777, n_comp as u64 / 2, n_comp as u64 - 2] {
        let mut req = Request::new(Mode::Dump);
        req.after = Some(Position {
            instance,
            seq: first + k,
        });
        let got = records(&lines(&comp, &req));
        let pkg: Vec<_> = got.iter().filter(|r| r.source == "pkg").collect();
        assert_eq!(pkg[0].seq, Some(first + k + 1), "after {}", first + k);
        assert_eq!(pkg[0].msg, line(n0 + k + 1));
        assert_eq!(pkg.len() as u64, n_comp as u64 - k - 1);
    }

    // last=N and a server-side text filter, through compressed chunks.
    let mut req = Request::new(Mode::Dump);
    req.last = Some(300);
    req.sources = vec![b"pkg".to_vec()];
    let got = records(&lines(&comp, &req));
    assert_eq!(got.len(), 300);
    assert_eq!(got[0].msg, line(LINES - 300));
    let mut req = Request::new(Mode::Dump);
    req.grep = vec![b"tzdata".to_vec()];
    let got = records(&lines(&comp, &req));
    assert_eq!(got.len(), (n0..LINES).filter(|i| i % 6 == 4).count());
    assert!(got.iter().all(|r| r.msg.contains("tzdata")));

    // after= an evicted record: told exactly how many are gone.
    let mut req = Request::new(Mode::Dump);
    req.after = Some(Position {
        instance,
        seq: first - 11,
    });
    let got = lines(&comp, &req);
    let lost = got.iter().find_map(|l| match l {
        Line::Lost { count, .. } => Some(*count),
        _ => None,
    });
    let Some(Line::Hello { first: held, .. }) = got.first() else {
        panic!("no hello")
    };
    assert_eq!(lost, Some(held - (first - 10)));
}

#[test]
fn followers_of_a_compressed_ring_miss_nothing_while_chunks_seal() {
    let m = Memlogd::start(&[
        "-buffer-size",
        "1M",
        "-max-lines",
        "10000000",
        "-rate-limit-burst",
        "0",
        "-ring-compress=true",
    ]);
    assert_eq!(m.stat("ring_compressed"), 1);
    let (mut f, _) = m.follow(Mode::Follow);
    let mut w = m.writer("pkg");
    // Enough for many sealed chunks, written in pieces the follower reads
    // between.
    let n = 10_000;
    for part in 0..10 {
        let mut text = String::new();
        for i in part * n / 10..(part + 1) * n / 10 {
            text.push_str(&line(i));
            text.push('\n');
        }
        w.write_all(text.as_bytes()).expect("write");
    }
    let mut next = 0;
    while next < n {
        match f.next_line().expect("read").expect("a line") {
            Line::Record(r) if r.source == "pkg" => {
                assert_eq!(r.msg, line(next));
                next += 1;
            }
            Line::Lost { count, .. } => panic!("{count} lost"),
            _ => {}
        }
    }
}

#[test]
fn the_ring_is_compressed_by_default() {
    let m = Memlogd::start(&["-buffer-size", "1M"]);
    assert_eq!(m.stat("ring_compressed"), 1);
    let m = Memlogd::start(&["-buffer-size", "1M", "-ring-compress=false"]);
    assert_eq!(m.stat("ring_compressed"), 0);
}

/// A flood of writes (unpaced, from 4 writers) may leave chunks raw;
/// memlogd compresses them once it is idle. Either way the records and
/// their sequence numbers are the same before and after, and once idle the
/// chunks held take a fraction of their raw bytes.
#[test]
fn what_a_flood_left_raw_is_compressed_when_idle_and_reads_the_same() {
    let m = Memlogd::start(&[
        "-buffer-size",
        "1M",
        "-max-lines",
        "10000000",
        "-rate-limit-burst",
        "0",
    ]);
    let text: String = (0..20_000).map(|i| line(i) + "\n").collect();
    let writers: Vec<_> = (0..4)
        .map(|k| {
            let mut w = m.writer(&format!("flood{k}"));
            let text = text.clone();
            std::thread::spawn(move || {
                for _ in 0..4 {
                    w.write_all(text.as_bytes()).expect("write");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    wait_until("the flood to be stored", || m.stat("next") >= 320_000);
    let before = m.records();
    let skipped = m.stat("ring_chunks_uncompressed");
    wait_until("the ring to be compressed", || {
        m.stat("stored_bytes") * 3 < m.stat("raw_bytes")
    });
    let after = m.records();
    eprintln!(
        "{skipped} chunks kept raw by the flood; {} records held, stored {} of {} raw bytes once idle",
        after.len(),
        m.stat("stored_bytes"),
        m.stat("raw_bytes")
    );
    assert!(before.len() > 10_000);
    assert_eq!(before, after);
}
