//! A bounded soak: steady writers, one writer over its rate limit, two
//! extended followers (one reading as fast as it can, one slowly) and
//! readers that come and go in every way (dumps, tails, follows, half
//! requests, nothing at all) for `MEMLOG_SOAK_SECS` seconds (default 60;
//! set it higher for a longer run). Then:
//!
//! - memlogd's resident memory at the end is within a small margin of what
//!   it was after the warm-up (the ring's bytes are filled first, with lines
//!   that do not compress, so its pages count from the start);
//! - nothing was lost uncounted: for each follower, every sequence number
//!   from its start to the end marker was either received or reported lost
//!   (lost notices say exactly where the stream goes on);
//! - the writers' lines are accounted for: each steady writer's lines are
//!   stored once each, in order; the noisy writer's lines are stored or
//!   counted as `rate_limited`, matching memlogd's "suppressed N messages"
//!   records; lines cut at `-max-line-len` are counted as `lines_truncated`.

use memlog::proto::{Line, Mode, Request};
use memlog_tests::{noise_line, rss_kib, wait_until, Memlogd, TIMEOUT};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Growth of memlogd's resident memory allowed from the end of the warm-up
/// to the end of the soak.
const RSS_MARGIN_KIB: u64 = 2048;
const STEADY: usize = 3;
/// Lines per turn of a steady writer (one turn per 5 ms at most: at most
/// 1,000 lines a second, far enough under the rate limit below that even
/// what its socket buffers while memlogd is busy stays under it).
const STEADY_PER_TURN: usize = 5;
/// Lines per turn of the noisy writer (one turn per 10 ms: up to 10,000 a
/// second, over the limit).
const NOISY_PER_TURN: usize = 100;
/// Records per source per second.
const RATE_BURST: &str = "5000";
const MAX_LINE: usize = 512;

fn soak_secs() -> u64 {
    match std::env::var("MEMLOG_SOAK_SECS") {
        Ok(v) => v
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("MEMLOG_SOAK_SECS={v:?} is not a number of seconds"))
            .max(10),
        Err(_) => 60,
    }
}

fn steady_line(k: usize, i: u64) -> String {
    let mut s = format!("w{k} {i:08} ");
    // Every 50th line is longer than -max-line-len.
    let len = if i % 50 == 49 { 700 } else { 80 };
    while s.len() < len {
        s.push('.');
    }
    s
}

/// A writer thread: `lines(i)` for i = 0.. in turns of `per_turn`, one
/// turn per `pause`, until `stop`. Returns how many lines it wrote.
fn writer(
    m: &Memlogd,
    name: &str,
    per_turn: usize,
    pause: Duration,
    line: impl Fn(u64) -> String + Send + 'static,
    stop: Arc<AtomicBool>,
) -> JoinHandle<u64> {
    let mut w = m.writer(name);
    // A writer memlogd stopped reading would fail here, not hang.
    w.set_write_timeout(Some(TIMEOUT)).expect("timeout");
    std::thread::spawn(move || {
        let mut i = 0u64;
        let mut buf = String::new();
        while !stop.load(Ordering::Relaxed) {
            buf.clear();
            for _ in 0..per_turn {
                buf.push_str(&line(i));
                buf.push('\n');
                i += 1;
            }
            w.write_all(buf.as_bytes()).expect("write");
            std::thread::sleep(pause);
        }
        i
    })
}

fn get_stat(stats: &[(String, u64)], k: &str) -> u64 {
    stats
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {k} in {stats:?}"))
}

/// What an extended follower saw.
#[derive(Debug, Default)]
struct Tally {
    /// Sequence number of the first record expected (the hello's `next`).
    start: u64,
    /// The next sequence number expected.
    next: u64,
    received: u64,
    lost: u64,
    lost_notices: u64,
    /// Records per source.
    per_source: HashMap<String, u64>,
    /// Truncated records received.
    truncated: u64,
    /// Sum of memlogd's "suppressed N messages from soak-noisy".
    suppressed_noisy: u64,
    /// Steady writers' lines out of order or twice.
    disorder: Vec<String>,
    /// Next line number expected per steady writer.
    steady_next: [u64; STEADY],
    /// Sequence number of the end marker, once seen.
    end: Option<u64>,
}

impl Tally {
    fn line(&mut self, l: Line) {
        match l {
            Line::Record(r) => {
                let seq = r.seq.expect("extended records have seq");
                assert_eq!(
                    seq, self.next,
                    "a record out of sequence, not reported lost"
                );
                self.next = seq + 1;
                self.received += 1;
                self.truncated += u64::from(r.truncated);
                if let Some(k) = r
                    .source
                    .strip_prefix("soak-w")
                    .and_then(|k| k.parse::<usize>().ok())
                {
                    let n: u64 = r.msg[r.msg.find(' ').expect("number") + 1..][..8]
                        .parse()
                        .expect("line number");
                    if n != self.steady_next[k] && self.disorder.len() < 10 {
                        self.disorder.push(format!(
                            "soak-w{k}: line {n} where {} was due",
                            self.steady_next[k]
                        ));
                    }
                    self.steady_next[k] = n + 1;
                    assert_eq!(r.truncated, r.msg.len() == MAX_LINE, "{r:?}");
                }
                if r.source == "memlogd" {
                    if let Some(n) = r
                        .msg
                        .strip_prefix("suppressed ")
                        .and_then(|rest| rest.strip_suffix(" messages from soak-noisy"))
                    {
                        self.suppressed_noisy += n.parse::<u64>().expect("a count");
                    }
                }
                if r.source == "soak-end" {
                    self.end = Some(seq);
                }
                *self.per_source.entry(r.source).or_default() += 1;
            }
            Line::Lost { count, next } => {
                let next = next.expect("lost notices of memlogd say where the stream goes on");
                assert_eq!(
                    self.next + count,
                    next,
                    "a lost notice that does not match the gap"
                );
                self.next = next;
                self.lost += count;
                self.lost_notices += 1;
            }
            other => panic!("unexpected line while following: {other:?}"),
        }
    }
}

/// An extended follower (mode 1) on a thread, until it reads the end
/// marker. `slow` until `hurry`: it pauses after every 100 records.
fn follower(m: &Memlogd, slow: Option<Arc<AtomicBool>>) -> (Arc<Mutex<Tally>>, JoinHandle<()>) {
    let (mut c, hello) = m.follow(Mode::Follow);
    let Line::Hello { next, .. } = hello else {
        unreachable!("follow returns the hello");
    };
    let tally = Arc::new(Mutex::new(Tally {
        start: next,
        next,
        ..Tally::default()
    }));
    let t = Arc::clone(&tally);
    let h = std::thread::spawn(move || {
        let mut n = 0u64;
        loop {
            let l = c
                .next_line()
                .expect("follower read")
                .expect("memlogd closed a follower");
            let mut t = t.lock().expect("tally");
            t.line(l);
            if t.end.is_some() {
                return;
            }
            drop(t);
            n += 1;
            if let Some(hurry) = &slow {
                if n % 100 == 0 && !hurry.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    });
    (tally, h)
}

/// Reads a reply to its end, or `limit` lines of it, and goes.
fn read_some(s: &mut UnixStream, limit: usize) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = 0;
    while lines < limit {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
        }
    }
}

/// A reader that comes, does one thing, and goes.
fn churn_once(query: &Path, k: u64) {
    let Ok(mut s) = UnixStream::connect(query) else {
        return;
    };
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let ext = |r: Request| r.encode();
    let req: Vec<u8> = match k % 10 {
        // A whole LinuxKit dump (the ring holds ~100k records): rarely.
        0 if k % 40 == 0 => vec![0],
        0 | 1 => ext({
            let mut r = Request::new(Mode::Dump);
            r.last = Some(200);
            r
        }),
        2 => ext(Request::new(Mode::Follow)),
        3 => vec![1],
        // Connects and goes.
        4 => return,
        // Half a request and goes.
        5 => {
            let _ = s.write_all(b"\x02memlog/1 source=soak");
            return;
        }
        6 => ext({
            let mut r = Request::new(Mode::Dump);
            r.stats = true;
            r
        }),
        7 => ext({
            let mut r = Request::new(Mode::DumpFollow);
            r.sources = vec![b"soak-w0".to_vec()];
            r.last = Some(50);
            r
        }),
        8 => vec![2],
        _ => ext({
            let mut r = Request::new(Mode::Dump);
            r.grep = vec![b"00000".to_vec()];
            r
        }),
    };
    if s.write_all(&req).is_err() {
        return;
    }
    read_some(&mut s, if k % 10 == 0 { usize::MAX } else { 100 });
}

#[test]
fn soak_steady_writers_and_churning_readers() {
    let secs = soak_secs();
    let warm_up = Duration::from_secs(secs / 6);
    let total = Duration::from_secs(secs);
    let m = Memlogd::start(&[
        "-buffer-size",
        "16M",
        "-max-lines",
        "100000",
        "-max-line-len",
        &MAX_LINE.to_string(),
        "-rate-limit-interval",
        "1s",
        "-rate-limit-burst",
        RATE_BURST,
        "-max-readers",
        "64",
    ]);
    // Fill the ring's bytes until it evicts, so its pages are resident
    // already. The lines do not compress (the compressed ring, the
    // default, would otherwise hold -max-lines of them in a corner of its
    // arena, and the soak's own lines fill the rest afterwards). One
    // source per burst: the rate limit is per source.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = move || noise_line(&mut x, MAX_LINE - 1) + "\n";
    let mut sent = 0;
    while m.stat("evicted") == 0 {
        let mut fill = m.writer(&format!("prefill-{sent}"));
        for _ in 0..4000 {
            fill.write_all(noise().as_bytes()).expect("prefill");
        }
        sent += 4000;
        wait_until("the prefill to be stored", || m.stat("next") >= sent);
    }
    // The bytes were the bound, not -max-lines: the arena is full.
    let stored = m.stat("stored_bytes");
    assert!(
        stored >= 12 << 20,
        "the prefill left only {stored} bytes stored in a 16 MiB ring"
    );
    let before_counters = m.stats();

    let stop = Arc::new(AtomicBool::new(false));
    let hurry = Arc::new(AtomicBool::new(false));
    let (fast, fast_h) = follower(&m, None);
    let (slow, slow_h) = follower(&m, Some(Arc::clone(&hurry)));
    let steady: Vec<_> = (0..STEADY)
        .map(|k| {
            writer(
                &m,
                &format!("soak-w{k}"),
                STEADY_PER_TURN,
                Duration::from_millis(5),
                move |i| steady_line(k, i),
                Arc::clone(&stop),
            )
        })
        .collect();
    let noisy = writer(
        &m,
        "soak-noisy",
        NOISY_PER_TURN,
        Duration::from_millis(10),
        |i| format!("noisy {i:08}"),
        Arc::clone(&stop),
    );
    let query: PathBuf = m.query_socket().to_path_buf();
    let churn_stop = Arc::new(AtomicBool::new(false));
    let churners: Vec<JoinHandle<u64>> = (0..2)
        .map(|t| {
            let q = query.clone();
            let stop = Arc::clone(&churn_stop);
            std::thread::spawn(move || {
                let mut k = t;
                while !stop.load(Ordering::Relaxed) {
                    churn_once(&q, k);
                    k += 2;
                    std::thread::sleep(Duration::from_millis(5));
                }
                k / 2
            })
        })
        .collect();

    // Resident memory once a second; the reference is at the end of the warm-up.
    let t0 = Instant::now();
    let mut rss_warm = None;
    let mut rss_max = 0;
    let mut rss_end = 0;
    while t0.elapsed() < total {
        std::thread::sleep(Duration::from_secs(1));
        rss_end = rss_kib(m.pid());
        if t0.elapsed() >= warm_up {
            rss_warm.get_or_insert(rss_end);
            rss_max = rss_max.max(rss_end);
        }
    }
    let rss_warm = rss_warm.expect("measured after the warm-up");

    // Readers first: those following get their lines while the writers
    // still write.
    let wind_down = Instant::now();
    churn_stop.store(true, Ordering::Relaxed);
    let churned: u64 = churners.into_iter().map(|c| c.join().expect("churn")).sum();
    stop.store(true, Ordering::Relaxed);
    let written: Vec<u64> = steady
        .into_iter()
        .map(|w| w.join().expect("steady writer"))
        .collect();
    let noisy_written = noisy.join().expect("noisy writer");
    hurry.store(true, Ordering::Relaxed);
    // The writers closed their fds: once memlogd has read them to the end,
    // its counters are final.
    wait_until("memlogd to read every writer to the end", || {
        m.stat("inputs") == 0
    });
    let rate_limited = m.stat("rate_limited") - get_stat(&before_counters, "rate_limited");
    // memlogd notes the noisy writer's last window when it ends. (Unless
    // its own messages were over their limit of 20 a second: then that
    // note may be one of those summed up, and counted, instead.)
    let selflog_before = get_stat(&before_counters, "selflog_suppressed");
    wait_until("the last suppressed-messages record", || {
        let noted = fast.lock().expect("tally").suppressed_noisy;
        noted == rate_limited || m.stat("selflog_suppressed") > selflog_before
    });
    let mut end = m.writer("soak-end");
    end.write_all(b"end\n").expect("write");
    drop(end);
    fast_h.join().expect("fast follower");
    slow_h.join().expect("slow follower");
    let wind_down = wind_down.elapsed();
    let stats = m.stats();
    // Counters of the soak (without the prefill).
    let get = |k: &str| get_stat(&stats, k) - get_stat(&before_counters, k);
    let fast = fast.lock().expect("tally");
    let slow = slow.lock().expect("tally");
    println!(
        "soak of {secs} s: {} steady lines {written:?}, {noisy_written} noisy ({rate_limited} rate limited), \
         {churned} readers came and went; fast follower {} received, {} lost; slow follower {} received, \
         {} lost in {} notices; memlogd VmRSS {rss_warm} KiB after the warm-up, {rss_end} KiB at the end, \
         at most {rss_max} KiB; {wind_down:?} to wind down",
        written.iter().sum::<u64>(),
        fast.received,
        fast.lost,
        slow.received,
        slow.lost,
        slow.lost_notices,
    );

    // Nothing lost uncounted: every sequence number up to the end marker
    // was received or reported lost (Tally::line checked each step).
    for (who, t) in [("fast", &fast), ("slow", &slow)] {
        let end = t.end.expect("end marker");
        assert_eq!(t.received + t.lost, end + 1 - t.start, "{who} follower");
    }
    assert!(
        get("reader_records_lost") >= fast.lost + slow.lost,
        "{stats:?}"
    );
    // Every long line was cut and counted (the steady writers are never
    // rate limited, the noisy one writes short lines).
    let long: u64 = written.iter().map(|&n| n / 50).sum();
    assert_eq!(get("lines_truncated"), long, "{stats:?}");
    assert_eq!(get("rate_limited"), rate_limited);
    if fast.lost == 0 {
        // The fast follower saw every record: account for each line.
        for (k, &n) in written.iter().enumerate() {
            assert_eq!(
                fast.per_source.get(&format!("soak-w{k}")).copied(),
                Some(n),
                "soak-w{k} wrote {n} lines"
            );
        }
        assert!(fast.disorder.is_empty(), "{:?}", fast.disorder);
        assert_eq!(fast.truncated, long);
        let noisy_stored = fast.per_source.get("soak-noisy").copied().unwrap_or(0);
        assert_eq!(noisy_stored + rate_limited, noisy_written);
        if get("selflog_suppressed") == 0 {
            assert_eq!(fast.suppressed_noisy, rate_limited);
        } else {
            assert!(fast.suppressed_noisy <= rate_limited);
        }
    } else {
        // It fell more than the whole ring behind (a very loaded machine):
        // the lines are still accounted for, within what it lost.
        println!(
            "the fast follower lost {} records: per-writer counts checked within that margin",
            fast.lost
        );
        let stored: u64 = written.iter().sum::<u64>() + noisy_written - rate_limited;
        let seen: u64 = (0..STEADY)
            .map(|k| {
                fast.per_source
                    .get(&format!("soak-w{k}"))
                    .copied()
                    .unwrap_or(0)
            })
            .sum::<u64>()
            + fast.per_source.get("soak-noisy").copied().unwrap_or(0);
        assert!(seen <= stored && stored <= seen + fast.lost);
    }
    assert!(
        rss_end <= rss_warm + RSS_MARGIN_KIB,
        "memlogd grew from {rss_warm} KiB after the warm-up to {rss_end} KiB"
    );
    // Still serving: a new writer's line is stored and found.
    let mut w = m.writer("soak-after");
    w.write_all(b"still here\n").expect("write");
    m.wait_source_msg("soak-after", "still here");
}
