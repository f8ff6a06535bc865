//! A flood on `/dev/log` does not stall anything else memlogd serves:
//! while flooders keep the datagram socket's queue full (and a stream
//! connection's buffer too), a line written to an fd input reaches a
//! follower within a bound, every time, an unfiltered follower keeps
//! receiving, and a stats query is answered. memlogd reads a bounded
//! number of datagrams per loop turn; a loop that drained the socket before
//! serving anything else would never get to the others while the
//! flooders keep up.

use memlog::proto::{Line, Mode, Request};
use memlog_tests::Memlogd;
use std::io::{ErrorKind, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// Datagram flooder threads.
const FLOODERS: usize = 4;
/// Lines written to the fd input during the flood, one at a time.
const PROBES: usize = 20;
/// Longest a probe may take to reach the follower, and a stats query to be
/// answered, during the flood. Generous (a debug build on a loaded
/// 2-CPU machine takes milliseconds), so that only a stall fails it.
const BOUND: Duration = Duration::from_secs(5);

/// A syslog message of about 100 bytes, as glibc's `syslog(3)` sends it.
fn flood_msg(t: usize, i: u64) -> Vec<u8> {
    format!("<14>Dec  2 06:00:00 flood{t}[{}]: flood message {i:012} lorem ipsum dolor sit amet, consectetur", 100 + t).into_bytes()
}

/// Threads sending to `dgram` (blocking `send`, as fast as the queue
/// takes them) and writing NUL-terminated messages to `stream`, until
/// `stop`. Returns the messages sent so far, shared.
fn flood(
    dgram: PathBuf,
    stream: PathBuf,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, Vec<thread::JoinHandle<()>>) {
    let sent = Arc::new(AtomicU64::new(0));
    let mut hs = Vec::new();
    for t in 0..FLOODERS {
        let (dgram, stop, sent) = (dgram.clone(), stop.clone(), sent.clone());
        hs.push(thread::spawn(move || {
            let s = UnixDatagram::unbound().expect("socket");
            s.connect(&dgram).expect("connect /dev/log");
            // Bounded, so that the stop flag is seen while the queue is full.
            s.set_write_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match s.send(&flood_msg(t, i)) {
                    Ok(_) => {
                        i += 1;
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) => panic!("flooder {t}: send: {e}"),
                }
            }
        }));
    }
    let (stop, sent2) = (stop.clone(), sent.clone());
    hs.push(thread::spawn(move || {
        let mut s = UnixStream::connect(&stream).expect("connect stream /dev/log");
        s.set_write_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let mut i = 0u64;
        let mut buf = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            buf.clear();
            for _ in 0..64 {
                buf.extend_from_slice(&flood_msg(FLOODERS, i));
                buf.push(0);
                i += 1;
            }
            match s.write_all(&buf) {
                Ok(()) => {
                    sent2.fetch_add(64, Ordering::Relaxed);
                }
                // A write cut by the timeout leaves a partial frame: the
                // next one completes it (as one longer message); fine here.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("stream flooder: write: {e}"),
            }
        }
    }));
    (sent, hs)
}

/// A follower on its own thread: sends (message, when) for every record of
/// source `probe`, and reports the longest time without any line at all.
fn follower(
    m: &Memlogd,
    sources: &[&str],
    stop: Arc<AtomicBool>,
) -> (
    mpsc::Receiver<(String, Instant)>,
    thread::JoinHandle<Duration>,
) {
    let mut req = Request::new(Mode::Follow);
    req.sources = sources.iter().map(|s| s.as_bytes().to_vec()).collect();
    let s = UnixStream::connect(m.query_socket()).expect("connect query socket");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut c = memlog::client::Client::start(s, &req).expect("request");
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        let mut last = Instant::now();
        let mut longest = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            match c.next_line() {
                Ok(Some(l)) => {
                    let now = Instant::now();
                    longest = longest.max(now - last);
                    last = now;
                    if let Line::Record(r) = l {
                        if r.source == "probe" {
                            let _ = tx.send((r.msg, now));
                        }
                    }
                }
                Ok(None) => panic!("memlogd closed a follower"),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("follower: {e}"),
            }
        }
        longest
    });
    (rx, h)
}

fn wait_probe(rx: &mpsc::Receiver<(String, Instant)>, want: &str, who: &str) -> Instant {
    let end = Instant::now() + BOUND;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((msg, at)) if msg == want => return at,
            Ok(_) => {}
            Err(_) => {
                panic!("{who} did not get {want:?} within {BOUND:?} during the /dev/log flood")
            }
        }
    }
}

fn records_stored(m: &Memlogd) -> u64 {
    m.stat("next")
}

fn start() -> (Memlogd, PathBuf, PathBuf) {
    let dir = memlog_tests::TempDir::new("syslog-flood");
    let (dgram, stream) = (dir.join("devlog"), dir.join("devlog-stream"));
    let args = [
        "-syslog",
        dgram.to_str().expect("utf8"),
        "-syslog-stream",
        stream.to_str().expect("utf8"),
        // Every flood message is stored: the most work per datagram.
        "-rate-limit-burst",
        "0",
    ];
    let m = Memlogd::start_in(dir, &args);
    (m, dgram, stream)
}

#[test]
fn a_flood_on_dev_log_stalls_neither_a_follower_nor_an_fd_writer() {
    let (m, dgram, stream) = start();
    let stop = Arc::new(AtomicBool::new(false));
    let (probe_rx, probe_follower) = follower(&m, &["probe"], stop.clone());
    let (all_rx, all_follower) = follower(&m, &[], stop.clone());
    let mut w = m.writer("probe");
    let (sent, flooders) = flood(dgram, stream, stop.clone());

    // The flood is on: memlogd is storing it.
    let before = records_stored(&m);
    memlog_tests::wait_until("the flood to be stored", || {
        records_stored(&m) > before + 20_000
    });
    let (sent0, stored0) = (sent.load(Ordering::Relaxed), records_stored(&m));

    let mut worst = Duration::ZERO;
    for k in 0..PROBES {
        let want = format!("probe {k} during the flood");
        let t0 = Instant::now();
        w.write_all(format!("{want}\n").as_bytes())
            .expect("write probe");
        let at = wait_probe(&probe_rx, &want, "the filtered follower");
        worst = worst.max(at - t0);
        let t = Instant::now();
        let stats = m.stats();
        assert!(
            t.elapsed() < BOUND,
            "a stats query took {:?} during the flood",
            t.elapsed()
        );
        assert!(stats.iter().any(|(k, _)| k == "next"));
        thread::sleep(Duration::from_millis(20));
    }
    // The flood went on the whole time: the probes were served while
    // memlogd had datagrams waiting, not in a lull.
    let (sent1, stored1) = (sent.load(Ordering::Relaxed), records_stored(&m));
    stop.store(true, Ordering::Relaxed);
    for h in flooders {
        h.join().expect("flooder");
    }
    assert!(
        sent1 - sent0 > 10_000 && stored1 - stored0 > 10_000,
        "the flood did not go on during the probes: {} sent, {} stored",
        sent1 - sent0,
        stored1 - stored0
    );
    // The unfiltered follower, which has the flood to read as well, was
    // never left without a line for long (records, or a count of records
    // it was too slow for).
    let longest = all_follower.join().expect("follower");
    assert!(
        longest < BOUND,
        "the unfiltered follower waited {longest:?} for a line"
    );
    drop(all_rx);
    probe_follower.join().expect("follower");
    eprintln!(
        "worst probe delay {worst:?} with {} datagrams and stream messages sent during the probes",
        sent1 - sent0
    );
    m.assert_serves();
}

/// Long datagrams, batch after batch: each is stored whole up to 64 KiB and
/// cut (marked) beyond, with its own bytes: the slots a batch reuses after
/// their pages were given back hold the new datagram, never zeros or an
/// older one.
#[test]
fn long_datagrams_in_a_row_are_each_stored_whole_or_cut_at_64_kib() {
    let dir = memlog_tests::TempDir::new("syslog-long");
    let dgram = dir.join("devlog");
    let m = Memlogd::start_in(
        dir,
        &[
            "-syslog",
            dgram.to_str().expect("utf8"),
            "-max-line-len",
            "1048576",
            "-buffer-size",
            "32M",
            "-rate-limit-burst",
            "0",
        ],
    );
    let s = UnixDatagram::unbound().expect("socket");
    s.connect(&dgram).expect("connect");
    let head = |k: usize| format!("<14>long{k}: ");
    let sizes = [60_000usize, 70_000, 5_000, 65_536, 100, 64_000];
    let mut want = Vec::new();
    for round in 0..4 {
        for (j, &size) in sizes.iter().enumerate() {
            let k = round * sizes.len() + j;
            let mut d = head(k).into_bytes();
            let fill = b'a' + (k % 26) as u8;
            d.resize(size.max(d.len() + 1), fill);
            s.send(&d).expect("send");
            let kept = d.len().min(64 * 1024) - head(k).len();
            want.push((format!("long{k}"), fill, kept, d.len() > 64 * 1024));
        }
    }
    for (source, fill, kept, cut) in want {
        let r = m.wait_record(&source, |r| r.source == source);
        assert_eq!(r.msg.len(), kept, "{source}");
        assert!(
            r.msg.bytes().all(|b| b == fill),
            "{source}: not its own bytes"
        );
        assert_eq!(r.truncated, cut, "{source}");
    }
    m.assert_serves();
}
