//! `memlog-logwrite-bench`: records per second the release `logwrite`
//! writes to files and forwards over TCP, each side by side with a bare
//! baseline in the same run:
//!
//! - files: logwrite (default flags: 1 MiB rotation, state saved per batch,
//!   fsync on rotation) against (a) an in-process reader of the same memlogd
//!   that formats the same `TIME SOURCE MSG` lines into one 64 KiB-buffered
//!   file, and (b) plain buffered writes of those same bytes from memory;
//! - many sources: the same number of records from 200 sources, written in
//!   rounds of 8 lines each so the ring holds them interleaved (a boot's
//!   shape), written by logwrite to one file per source, against the
//!   one-source rate;
//! - TCP: logwrite forwarding RFC 5424 octet-counted frames to a local sink
//!   against plain 64 KiB writes of the very same frames to the same sink;
//! - the ceiling of both: reading the same dump through the shared `Client`
//!   (every line decoded) and writing nothing, which no output that reads
//!   memlogd can pass.
//!
//! ```text
//! cargo build --release --workspace
//! cargo run --release -p memlog-tests --bin memlog-logwrite-bench [-- [--json FILE] RECORDS REPS [LOGWRITE FLAGS...]]
//! ```
//!
//! Medians of REPS runs (default 200000 records of 100 bytes, 5 reps).
//! `--json FILE` (before RECORDS) also writes every run's rate as JSON.
//! `--compare PATH` (before RECORDS) also runs the logwrite binary at PATH
//! (another build) on the files, alternating run by run with this one, and
//! adds its row: e.g. before and after a change, with
//! `-max-log-files 100000 -max-log-size 4k` as LOGWRITE FLAGS.
//! Every wait is bounded; the processes are killed at the end.

use memlog::client::Client;
use memlog::proto::{Mode, Reply, Request};
use memlog::timefmt;
use memlog_tests::bench::{flag_value, median, split_flag};
use memlog_tests::logwrite::{saved_position, Logwrite};
use memlog_tests::{wait_for, workspace_dir, Memlogd, TempDir};
use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(300);
/// Sources of the many-sources case.
const SOURCES: usize = 200;

/// Waits for `pred`, looking every 500 µs: the run's end is seen within
/// that, where the shared `wait_for`'s growing pauses (up to 50 ms) would
/// add up to a third of a 150 ms run to logwrite's time.
fn wait_close(mut pred: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + TIMEOUT;
    while Instant::now() < end {
        if pred() {
            return true;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    pred()
}

const USAGE: &str = "usage: memlog-logwrite-bench [--json FILE] [--compare LOGWRITE] [RECORDS REPS [LOGWRITE FLAGS...]]

Records/s the release logwrite writes to files and forwards over TCP, each
beside a bare baseline in the same run (medians of REPS; default 200000
records of 100 bytes, 5 reps). LOGWRITE FLAGS go to logwrite for the file
runs, e.g. -max-log-files 100000 -max-log-size 4k.

  --json FILE         also write every run's rate as JSON
  --compare LOGWRITE  also run the logwrite binary at LOGWRITE (another build)
                      on the files, alternating runs with this one
";

/// A JSON string.
fn json_str(v: &str) -> String {
    let mut b = Vec::new();
    memlog::json::write_str(&mut b, v.as_bytes());
    String::from_utf8_lossy(&b).into_owned()
}

/// One row of `--json`: its key, what it is, and the records/s of each run.
fn json_row(key: &str, what: &str, runs: &[f64]) -> String {
    let each: Vec<String> = runs.iter().map(|r| format!("{r}")).collect();
    format!(
        "{{\"key\":{},\"what\":{},\"median\":{},\"runs\":[{}]}}",
        json_str(key),
        json_str(what),
        median(runs),
        each.join(",")
    )
}

/// A sink that accepts one connection, reads octet-counted frames and
/// reports (elapsed since accept-ready, bytes) once `want` frames arrived.
fn sink(want: usize, keep: bool) -> (u16, mpsc::Receiver<(Instant, Vec<u8>)>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().expect("accept");
        let mut buf = vec![0u8; 256 * 1024];
        let mut kept = Vec::new();
        let (mut frames, mut need, mut len_acc) = (0usize, 0usize, 0usize);
        loop {
            let n = match c.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if keep {
                kept.extend_from_slice(&buf[..n]);
            }
            let mut i = 0;
            while i < n {
                if need > 0 {
                    let take = need.min(n - i);
                    need -= take;
                    i += take;
                    if need == 0 {
                        frames += 1;
                        if frames == want {
                            let _ = tx.send((Instant::now(), std::mem::take(&mut kept)));
                            return;
                        }
                    }
                } else if buf[i] == b' ' {
                    need = len_acc;
                    len_acc = 0;
                    i += 1;
                } else {
                    len_acc = len_acc * 10 + usize::from(buf[i] - b'0');
                    i += 1;
                }
            }
        }
    });
    (port, rx)
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let mut json = None;
    let mut compare: Option<std::path::PathBuf> = None;
    // Options come first: what follows RECORDS REPS is logwrite's.
    let mut i = 0;
    while let Some(a) = all.get(i).filter(|a| a.starts_with('-')) {
        i += 1;
        let (flag, inline) = split_flag(a);
        if matches!(flag, "h" | "help") {
            print!("{USAGE}");
            return;
        }
        let val = flag_value(&all, &mut i, a, inline, USAGE).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
        match flag {
            "json" => json = Some(val),
            "compare" => compare = Some(val.into()),
            _ => {
                eprintln!("unknown option {a}\n\n{USAGE}");
                std::process::exit(2)
            }
        }
    }
    let args = &all[i..];
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let reps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    // Anything after RECORDS REPS is passed to logwrite for the file runs.
    let extra: Vec<&str> = args.iter().skip(2).map(String::as_str).collect();
    if std::env::var_os("MEMLOG_BIN_DIR").is_none() {
        std::env::set_var("MEMLOG_BIN_DIR", workspace_dir().join("target/release"));
    }
    eprintln!("filling memlogd with {n} records of 100 bytes");
    let m = Memlogd::start(&[
        "-max-lines",
        &(n + 1000).to_string(),
        "-buffer-size",
        "512M",
        // One source writes every record: no per-source rate limit.
        "-rate-limit-burst",
        "0",
    ]);
    {
        let mut w = m.writer("bench");
        let mut chunk = Vec::with_capacity(65_536);
        for i in 0..n {
            chunk.extend_from_slice(format!("{i:09} ").as_bytes());
            chunk.resize(chunk.len() + 89, b'x');
            chunk.push(b'\n');
            if chunk.len() > 60_000 {
                w.write_all(&chunk).expect("write");
                chunk.clear();
            }
        }
        w.write_all(&chunk).expect("write");
    }
    let last = format!("{:09} {}", n - 1, "x".repeat(89));
    m.wait_msg("bench", &last);
    let last_seq = m.stat("next") - 1;
    let errs = TempDir::new("bench-err");

    // Files: logwrite (and the build to compare with, alternating).
    let files_run = |program: Option<&std::path::Path>| -> f64 {
        let logs = TempDir::new("bench-logs");
        let t0 = Instant::now();
        let mut lw = match program {
            Some(p) => Logwrite::start_bin(p, m.query_socket(), logs.path(), &errs, &extra),
            None => Logwrite::start(m.query_socket(), logs.path(), &errs, &extra),
        };
        let ok = wait_close(|| {
            saved_position(logs.path(), ".logwrite.state").is_some_and(|(_, s)| s >= last_seq)
        });
        let dt = t0.elapsed().as_secs_f64();
        assert!(ok, "logwrite did not finish: {}", lw.stderr());
        lw.kill9();
        n as f64 / dt
    };
    let mut lw_files = Vec::new();
    let mut lw_compare = Vec::new();
    for r in 0..reps {
        lw_files.push(files_run(None));
        eprintln!("files rep {r}: logwrite {:.0} records/s", lw_files[r]);
        if let Some(p) = &compare {
            lw_compare.push(files_run(Some(p)));
            eprintln!(
                "files rep {r}: {} {:.0} records/s",
                p.display(),
                lw_compare[r]
            );
        }
    }
    // Files: 200 sources interleaved (the shape of a boot), one file each,
    // the same number of records, in a memlogd of their own.
    let many = Memlogd::start(&[
        "-max-lines",
        &(n + 1000).to_string(),
        "-buffer-size",
        "512M",
        "-rate-limit-burst",
        "0",
    ]);
    let many_last_seq = {
        let before = many.stat("next");
        let mut ws: Vec<_> = (0..SOURCES)
            .map(|s| many.writer(&format!("svc{s:03}")))
            .collect();
        // Rounds of a few lines per source, so the ring holds them
        // interleaved (as memlogd reads them), not source after source.
        let per_round = 8;
        let mut i = 0;
        let mut chunk = Vec::with_capacity(4096);
        while i < n {
            for w in ws.iter_mut() {
                chunk.clear();
                for _ in 0..per_round.min(n - i) {
                    chunk.extend_from_slice(format!("{i:09} ").as_bytes());
                    chunk.resize(chunk.len() + 89, b'x');
                    chunk.push(b'\n');
                    i += 1;
                }
                w.write_all(&chunk).expect("write");
                if i == n {
                    break;
                }
            }
        }
        drop(ws);
        let want = before + n as u64;
        assert!(
            wait_for(|| many.stat("next") >= want, TIMEOUT),
            "memlogd did not store the {n} records of {SOURCES} sources"
        );
        many.stat("next") - 1
    };
    let mut lw_many = Vec::new();
    for r in 0..reps {
        let logs = TempDir::new("bench-many");
        let t0 = Instant::now();
        let mut lw = Logwrite::start(many.query_socket(), logs.path(), &errs, &extra);
        let ok = wait_close(|| {
            saved_position(logs.path(), ".logwrite.state").is_some_and(|(_, s)| s >= many_last_seq)
        });
        let dt = t0.elapsed().as_secs_f64();
        assert!(ok, "logwrite did not finish: {}", lw.stderr());
        lw.kill9();
        let files = std::fs::read_dir(logs.path())
            .expect("log dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("svc"))
            })
            .count();
        assert!(files >= SOURCES, "{files} files for {SOURCES} sources");
        lw_many.push(n as f64 / dt);
        eprintln!(
            "files rep {r}: logwrite, {SOURCES} sources, {:.0} records/s",
            lw_many[r]
        );
    }
    drop(many);

    // Files: baseline (a), read the same memlogd and write the same lines.
    let mut base_read = Vec::new();
    let mut bytes = Vec::new();
    for _ in 0..reps {
        let logs = TempDir::new("bench-base");
        let t0 = Instant::now();
        let f = std::fs::File::create(logs.join("bench.log")).expect("create");
        let mut out = BufWriter::with_capacity(64 * 1024, f);
        let mut c = Client::connect(m.query_socket(), &Request::new(Mode::Dump)).expect("connect");
        let mut line = Vec::with_capacity(256);
        let mut count = 0;
        bytes.clear();
        while let Some(l) = c.next_ref().expect("read") {
            if let Reply::Record(r) = l {
                if r.source != "bench" {
                    continue;
                }
                line.clear();
                timefmt::write_rfc3339_secs(&mut line, r.time_ns().unwrap_or(0));
                line.push(b' ');
                line.extend_from_slice(r.source.as_bytes());
                line.push(b' ');
                line.extend_from_slice(r.msg.as_bytes());
                line.push(b'\n');
                out.write_all(&line).expect("write");
                bytes.extend_from_slice(&line);
                count += 1;
            }
        }
        out.flush().expect("flush");
        let dt = t0.elapsed().as_secs_f64();
        assert_eq!(count, n);
        base_read.push(n as f64 / dt);
    }
    // What reading memlogd alone allows: the same dump through the shared
    // `Client`, every line decoded, nothing written (a ceiling for any
    // output of logwrite, which must read memlogd first).
    let mut read_only = Vec::new();
    for _ in 0..reps {
        let t0 = Instant::now();
        let mut c = Client::connect(m.query_socket(), &Request::new(Mode::Dump)).expect("connect");
        let mut count = 0;
        let mut len = 0;
        while let Some(l) = c.next_ref().expect("read") {
            if let Reply::Record(r) = l {
                if r.source == "bench" {
                    len += r.msg.len();
                    count += 1;
                }
            }
        }
        assert_eq!(count, n);
        assert!(len >= n * 99);
        read_only.push(n as f64 / t0.elapsed().as_secs_f64());
    }
    // Files: baseline (b), plain buffered writes of the same bytes.
    let mut base_write = Vec::new();
    for _ in 0..reps {
        let logs = TempDir::new("bench-base");
        let t0 = Instant::now();
        let f = std::fs::File::create(logs.join("bench.log")).expect("create");
        let mut out = BufWriter::with_capacity(64 * 1024, f);
        for l in bytes.split_inclusive(|&b| b == b'\n') {
            out.write_all(l).expect("write");
        }
        out.flush().expect("flush");
        base_write.push(n as f64 / t0.elapsed().as_secs_f64());
    }

    // TCP: logwrite forwarding.
    let mut lw_tcp = Vec::new();
    let mut frames = Vec::new();
    for r in 0..reps {
        let (port, rx) = sink(n, r == 0);
        let logs = TempDir::new("bench-tcp");
        let remote = format!("tcp://127.0.0.1:{port}?include=bench");
        let t0 = Instant::now();
        let lw = Logwrite::start(
            m.query_socket(),
            logs.path(),
            &errs,
            &["-no-files", "-remote", &remote],
        );
        let (t1, kept) = rx
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("sink did not get {n} frames: {}", lw.stderr()));
        let dt = (t1 - t0).as_secs_f64();
        if r == 0 {
            frames = kept;
        }
        eprintln!("tcp rep {r}: logwrite {:.0} records/s", n as f64 / dt);
        lw_tcp.push(n as f64 / dt);
    }
    // TCP: baseline, the same frames in 64 KiB writes.
    let mut base_tcp = Vec::new();
    for _ in 0..reps {
        let (port, rx) = sink(n, false);
        let t0 = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        for c in frames.chunks(64 * 1024) {
            s.write_all(c).expect("write");
        }
        let (t1, _) = rx.recv_timeout(TIMEOUT).expect("baseline sink");
        base_tcp.push(n as f64 / (t1 - t0).as_secs_f64());
    }

    if let Some(p) = &json {
        let mut rows = vec![
            json_row("files_logwrite", "files: logwrite", &lw_files),
            json_row(
                "files_logwrite_many",
                &format!("files: logwrite, {SOURCES} sources interleaved, one file each"),
                &lw_many,
            ),
            json_row(
                "files_base_read",
                "files: baseline, read memlogd + buffered write, one file",
                &base_read,
            ),
            json_row(
                "files_base_write",
                "files: baseline, buffered write of the same bytes",
                &base_write,
            ),
            json_row(
                "read_only",
                "reading memlogd alone: the same dump decoded by Client, no output",
                &read_only,
            ),
            json_row(
                "tcp_logwrite",
                "tcp: logwrite, RFC 5424 octet counting",
                &lw_tcp,
            ),
            json_row(
                "tcp_base",
                "tcp: baseline, the same frames in 64 KiB writes",
                &base_tcp,
            ),
        ];
        if let Some(p) = &compare {
            rows.push(json_row(
                "files_logwrite_compare",
                &format!("files: logwrite at {}", p.display()),
                &lw_compare,
            ));
        }
        let out = format!(
            "{{\"records\":{n},\"record_len\":100,\"reps\":{reps},\"logwrite_flags\":[{}],\"rows\":[{}]}}\n",
            extra.iter().map(|f| json_str(f)).collect::<Vec<_>>().join(","),
            rows.join(",")
        );
        std::fs::write(p, out).unwrap_or_else(|e| panic!("writing {p}: {e}"));
    }
    let (a, b, c) = (median(&lw_files), median(&base_read), median(&base_write));
    let (d, e) = (median(&lw_tcp), median(&base_tcp));
    println!("## logwrite benchmark ({n} records of 100 bytes, median of {reps})\n");
    println!("| what | records/s | logwrite / baseline |");
    println!("| --- | ---: | ---: |");
    let flags = if extra.is_empty() {
        "1 MiB rotation, state per batch".to_string()
    } else {
        extra.join(" ")
    };
    println!("| files: logwrite ({flags}) | {a:.0} | |");
    if let Some(p) = &compare {
        let x = median(&lw_compare);
        println!(
            "| files: logwrite at {} (same flags, alternating runs) | {x:.0} | this build / it: {:.2} |",
            p.display(),
            a / x
        );
    }
    let m = median(&lw_many);
    println!(
        "| files: logwrite, {SOURCES} sources interleaved, one file each | {m:.0} | {SOURCES} sources / one source: {:.2} |",
        m / a
    );
    println!(
        "| files: baseline, read memlogd + buffered write, one file | {b:.0} | {:.2} |",
        a / b
    );
    println!(
        "| files: baseline, buffered write of the same bytes | {c:.0} | {:.2} |",
        a / c
    );
    let ro = median(&read_only);
    println!(
        "| reading memlogd alone (the same dump decoded by Client, no output) | {ro:.0} | files: {:.2}, tcp: {:.2} |",
        a / ro,
        d / ro
    );
    println!("| tcp: logwrite, RFC 5424 octet counting | {d:.0} | |");
    println!(
        "| tcp: baseline, the same frames in 64 KiB writes | {e:.0} | {:.2} |",
        d / e
    );
}
