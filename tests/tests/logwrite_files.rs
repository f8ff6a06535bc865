//! logwrite's file output against the real memlogd: LinuxKit's format and
//! rotation (also with 100,000 rotated files allowed), hostile source
//! names, compression and the per-source cap, exact resume after kill -9
//! (with compression under the kills, and the crashed state of an
//! interrupted compression), the overrun gap line, memlogd restarting,
//! memlogd absent at start, selection, and LinuxKit's memlogd.

use memlog_tests::logwrite::{
    lines, msgs, numbered, saved_position, wait_msgs, write_lines, Logwrite,
};
use memlog_tests::{wait_for, wait_until, Memlogd, TempDir, TIMEOUT};
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The messages of `stem`'s files, oldest first: `.log.N` .. `.log.0`, then
/// `.log` (gzipped ones decompressed with `gzip -dc`).
fn all_msgs(dir: &Path, stem: &str) -> Vec<String> {
    let mut out = Vec::new();
    for i in (0..1000).rev() {
        for (name, gz) in [
            (format!("{stem}.log.{i}"), false),
            (format!("{stem}.log.{i}.gz"), true),
        ] {
            let p = dir.join(&name);
            if !p.exists() {
                continue;
            }
            // Rotation may rename a file away meanwhile (or compress it:
            // then it may be read twice): that snapshot is then wrong, and
            // callers wait for the files to be complete and still.
            let text = if gz {
                // Opened here, so gzip reads this file even if it is
                // renamed meanwhile (a .gz is renamed into place whole).
                let Ok(f) = std::fs::File::open(&p) else {
                    continue;
                };
                let o = Command::new("gzip")
                    .arg("-dc")
                    .stdin(f)
                    .output()
                    .expect("gzip");
                assert!(o.status.success(), "{} is not valid gzip", p.display());
                String::from_utf8(o.stdout).expect("utf8")
            } else {
                std::fs::read_to_string(&p).unwrap_or_default()
            };
            out.extend(
                text.lines()
                    .map(|l| l.splitn(3, ' ').nth(2).unwrap_or("").to_owned()),
            );
        }
    }
    out.extend(msgs(dir, &format!("{stem}.log")));
    out
}

fn is_rfc3339_secs_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19].contains(&i) || c.is_ascii_digit())
}

#[test]
fn linuxkit_format_and_rotation() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    // Go-style spellings, as LinuxKit's test runs it.
    let lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &["-max-log-size", "1024", "--max-log-files=3"],
    );
    let want = numbered("hello", 0..100, 40);
    write_lines(&m, "fill-the-logs.out", &want);
    write_lines(&m, "logwrite", &["my own output".to_string()]);
    write_lines(&m, "logwrite.out", &["my own stdout".to_string()]);
    wait_until("fill-the-logs.out.log.0", || {
        logs.join("fill-the-logs.out.log.0").exists()
    });
    // Wait for the last line, then check what was kept.
    wait_until("the last line", || {
        msgs(logs.path(), "fill-the-logs.out.log").last() == want.last()
    });
    let got = all_msgs(logs.path(), "fill-the-logs.out");
    // Rotated files .0 .. .2 are kept, the oldest dropped: what is left is
    // the tail of what was written, in order, each line once.
    assert!(got.len() < want.len(), "nothing was rotated away");
    assert_eq!(got, want[want.len() - got.len()..], "{}", lw.stderr());
    assert!(!logs.join("fill-the-logs.out.log.3").exists());
    for i in 0..3 {
        let n = format!("fill-the-logs.out.log.{i}");
        let size = std::fs::metadata(logs.join(&n)).expect(&n).len();
        assert!(size <= 1024, "{n} is {size} bytes");
    }
    for l in lines(logs.path(), "fill-the-logs.out.log") {
        let f: Vec<&str> = l.splitn(3, ' ').collect();
        assert!(is_rfc3339_secs_utc(f[0]), "{l}");
        assert_eq!(f[1], "fill-the-logs.out");
    }
    // memlogd's own records have their file; logwrite's own output has none.
    wait_until("memlogd.log", || {
        msgs(logs.path(), "memlogd.log").contains(&"memlogd started".to_string())
    });
    let names: Vec<String> = std::fs::read_dir(logs.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("logwrite")),
        "{names:?}"
    );
}

#[test]
fn hostile_names_stay_inside_and_apart() {
    let m = Memlogd::start(&[]);
    let root = TempDir::new("lw-hostile");
    let logs = root.join("var/log");
    let errs = TempDir::new("lw-err");
    let lw = Logwrite::start(m.query_socket(), &logs, &errs, &[]);
    let long_a = "x".repeat(250);
    let long_b = format!("{}y", "x".repeat(249));
    let names: Vec<String> = [
        "../../escape",
        "/etc/passwd-x",
        "..",
        ".",
        ".hidden",
        "a/b",
        "a%2fb",
        "a%b",
        "tab\tname",
        "new\rline",
        "nul\0byte",
        "caf\u{e9}",
        "",
        "sp ace",
        &long_a,
        &long_b,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (i, n) in names.iter().enumerate() {
        let mut w = m.writer(n);
        w.write_all(format!("from source {i}\n").as_bytes())
            .expect("write");
    }
    let files = || -> Vec<String> {
        std::fs::read_dir(&logs)
            .map(|d| {
                d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".log") && n != "memlogd.log")
                    .collect()
            })
            .unwrap_or_default()
    };
    // Files are created before their first line is written out.
    let ok = wait_for(
        || {
            let fs = files();
            fs.len() == names.len() && fs.iter().all(|f| !lines(&logs, f).is_empty())
        },
        TIMEOUT,
    );
    assert!(ok, "files: {:?}; stderr: {}", files(), lw.stderr());
    // One file per source, each holding exactly that source's line.
    let mut seen = vec![false; names.len()];
    for f in files() {
        assert!(!f.starts_with('.'), "{f:?}");
        assert!(f.len() <= 255, "{f:?}");
        assert!(f.bytes().all(|b| b.is_ascii_graphic()), "{f:?}");
        let ls = msgs(&logs, &f);
        assert_eq!(ls.len(), 1, "{f}: {ls:?}");
        let i: usize = lines(&logs, &f)[0]
            .split_once("from source ")
            .and_then(|(_, s)| s.parse().ok())
            .expect("a test line");
        assert!(!seen[i], "two files for source {i}");
        seen[i] = true;
    }
    // Nothing outside the log directory.
    let mut outside: Vec<String> = Vec::new();
    for d in [root.path().to_path_buf(), root.join("var")] {
        for e in std::fs::read_dir(&d).expect("ls") {
            outside.push(e.expect("entry").file_name().to_string_lossy().into_owned());
        }
    }
    outside.sort();
    assert_eq!(outside, vec!["log", "var"]);
    assert!(!Path::new("/etc/passwd-x.log").exists());
}

#[test]
fn compress_and_per_source_cap() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &[
            "-max-log-size",
            "1k",
            "-max-log-files",
            "50",
            "-compress",
            "-max-source-bytes",
            "3k",
        ],
    );
    let want = numbered("line", 0..400, 60);
    write_lines(&m, "svc", &want);
    wait_until("the last line", || {
        msgs(logs.path(), "svc.log").last() == want.last()
    });
    assert!(logs.join("svc.log.0.gz").exists(), "{}", lw.stderr());
    assert!(!logs.join("svc.log.0").exists());
    let total: u64 = std::fs::read_dir(logs.path())
        .expect("ls")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name().to_string_lossy().starts_with("svc.log"))
        .map(|e| e.metadata().expect("stat").len())
        .sum();
    assert!(total <= 3 * 1024, "svc's files hold {total} bytes");
    let got = all_msgs(logs.path(), "svc");
    assert!(got.len() < want.len());
    assert_eq!(got, want[want.len() - got.len()..]);
}

#[test]
fn kill9_and_restart_resume_exactly() {
    // One source writes 30,000 to 90,000 lines: no per-source rate limit
    // here, and a ring that holds them all.
    const MIN: usize = 30_000;
    const MAX: usize = 90_000;
    const CHUNK: usize = 100;
    let m = Memlogd::start(&[
        "-max-lines",
        "100000",
        "-buffer-size",
        "64M",
        "-rate-limit-burst",
        "0",
    ]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let mut lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        // Rotation and compression happen under the kills too (every few
        // hundred lines); nothing is rotated away.
        &["-max-log-size", "16k", "-max-log-files", "999", "-compress"],
    );
    // A writer streams while logwrite is killed and restarted under it: it
    // writes at least MIN lines, and goes on until the kills are over
    // (slower after MIN, so that the ring holds everything however long the
    // kills take).
    let mut w = m.writer("stream");
    let kills_over = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (kills_over, written) = (Arc::clone(&kills_over), Arc::clone(&written));
        std::thread::spawn(move || {
            let mut n = 0;
            while n < MAX && (n < MIN || !kills_over.load(Ordering::SeqCst)) {
                let mut buf = String::new();
                for l in numbered("rec", n..n + CHUNK, 50) {
                    buf.push_str(&l);
                    buf.push('\n');
                }
                w.write_all(buf.as_bytes()).expect("write");
                n += CHUNK;
                written.store(n, Ordering::SeqCst);
                let pause = if n < MIN { 2 } else { 20 };
                std::thread::sleep(Duration::from_millis(pause));
            }
            n
        })
    };
    let mut while_streaming = 0;
    for round in 0..6 {
        // Let it write something, then kill it wherever it is.
        let before = all_msgs(logs.path(), "stream").len();
        wait_for(|| all_msgs(logs.path(), "stream").len() > before, TIMEOUT);
        lw.kill9();
        let at_kill = written.load(Ordering::SeqCst);
        if round % 2 == 1 {
            std::thread::sleep(Duration::from_millis(20));
        }
        lw.restart(&errs);
        // Lines were written after logwrite died: the kill was mid-stream.
        wait_for(|| written.load(Ordering::SeqCst) > at_kill, TIMEOUT);
        while_streaming += usize::from(!writer.is_finished());
    }
    kills_over.store(true, Ordering::SeqCst);
    let total = writer.join().expect("writer");
    assert_eq!(
        while_streaming, 6,
        "the writer stopped before the kills did"
    );
    println!("6 kills while {total} lines streamed in");
    let want = numbered("rec", 0..total, 50);
    // Once the state names the last record, the files hold everything and
    // no longer change.
    let last = m.wait_source_msg("stream", want.last().expect("lines"));
    let last_seq = last.seq.expect("a seq");
    let caught_up = wait_for(
        || saved_position(logs.path(), ".logwrite.state").is_some_and(|(_, s)| s >= last_seq),
        TIMEOUT,
    );
    assert!(caught_up, "stderr: {}", lw.stderr());
    let got = all_msgs(logs.path(), "stream");
    assert_eq!(got.len(), want.len(), "stderr: {}", lw.stderr());
    assert!(got == want, "duplicates or gaps after kill -9 and restarts");
    // The last start finished any compression a kill interrupted: no plain
    // rotated file beside its .gz, no compression temporary left.
    let names: Vec<String> = std::fs::read_dir(logs.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(".gz")), "{names:?}");
    for n in &names {
        assert!(
            !(n.starts_with(".stream.log.") && n.ends_with(".tmp")),
            "{n} left behind"
        );
        if n.starts_with("stream.log.") && !n.ends_with(".gz") {
            assert!(!names.contains(&format!("{n}.gz")), "{n} and its .gz");
        }
    }
}

#[test]
fn compression_interrupted_by_a_kill_is_finished_at_start() {
    // What a kill -9 in the middle of -compress leaves: the .gz of
    // svc.log.0 renamed into place but the plain file not yet removed, and
    // a half-written temporary; svc.log.1 and .2 are plain (written by a
    // run without -compress): start-up does not compress a backlog.
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-gzcrash");
    let errs = TempDir::new("lw-err");
    let line = |i: usize| format!("2026-11-21T12:00:{i:02}Z svc line {i}\n");
    let text = |r: std::ops::Range<usize>| r.map(line).collect::<String>();
    std::fs::write(logs.join("svc.log.2"), text(0..3)).expect("write");
    std::fs::write(logs.join("svc.log.1"), text(3..6)).expect("write");
    std::fs::write(logs.join("svc.log.0"), text(6..9)).expect("write");
    let gz = Command::new("gzip")
        .arg("-c")
        .arg(logs.join("svc.log.0"))
        .output()
        .expect("gzip");
    std::fs::write(logs.join("svc.log.0.gz"), gz.stdout).expect("write");
    std::fs::write(logs.join(".svc.log.1.gz.00112233445566ff.tmp"), "half").expect("write");
    std::fs::write(logs.join("svc.log"), text(9..10)).expect("write");
    let lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &["-compress"]);
    lw.wait_stderr("finished what a stopped logwrite left");
    let want: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
    assert_eq!(all_msgs(logs.path(), "svc"), want, "{}", lw.stderr());
    let mut names: Vec<String> = std::fs::read_dir(logs.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("svc") || n.ends_with(".tmp"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["svc.log", "svc.log.0.gz", "svc.log.1", "svc.log.2"],
        "{}",
        lw.stderr()
    );
}

#[test]
fn rotation_with_many_max_log_files_keeps_the_order() {
    // -max-log-files 100000: each rotation renames only the files that
    // exist (README, "Rotation"), and .0 is always the newest.
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-many");
    let errs = TempDir::new("lw-err");
    let lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &["-max-log-size", "1k", "-max-log-files", "100000"],
    );
    let want = numbered("line", 0..300, 60);
    write_lines(&m, "svc", &want);
    wait_until("the last line", || {
        msgs(logs.path(), "svc.log").last() == want.last()
    });
    assert_eq!(all_msgs(logs.path(), "svc"), want, "{}", lw.stderr());
    let rotated: Vec<usize> = std::fs::read_dir(logs.path())
        .expect("ls")
        .filter_map(|e| {
            let n = e.expect("entry").file_name().to_string_lossy().into_owned();
            n.strip_prefix("svc.log.").and_then(|i| i.parse().ok())
        })
        .collect();
    let n = rotated.len();
    assert!(n > 10, "only {n} rotations");
    // Exactly .0 .. .(n-1): no gap, nothing past them.
    assert!((0..n).all(|i| rotated.contains(&i)), "{rotated:?}");
    // .0 ends right before svc.log starts.
    let zero = msgs(logs.path(), "svc.log.0");
    let cur = msgs(logs.path(), "svc.log");
    let at = want
        .iter()
        .position(|w| *w == cur[0])
        .expect("svc.log's first line");
    assert_eq!(zero.last(), Some(&want[at - 1]));
}

#[test]
fn overrun_between_runs_is_one_line_with_the_count() {
    let m = Memlogd::start(&["-max-lines", "50"]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let mut lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &[]);
    let first = numbered("early", 0..10, 0);
    write_lines(&m, "src", &first);
    wait_msgs(logs.path(), "src.log", &first, &lw);
    wait_until("the position of the last line", || {
        saved_position(logs.path(), ".logwrite.state").is_some()
    });
    lw.kill9();
    let (_, saved) = saved_position(logs.path(), ".logwrite.state").expect("position");
    let late = numbered("late", 0..200, 0);
    write_lines(&m, "src", &late);
    let first_held = match m.dump().first() {
        Some(memlog::proto::Line::Hello { first, .. }) => *first,
        other => panic!("no hello: {other:?}"),
    };
    let expect_lost = first_held - saved - 1;
    lw.restart(&errs);
    let want_late: Vec<String> = late[late.len() - 50..].to_vec();
    let mut want = first.clone();
    want.extend(want_late);
    wait_msgs(logs.path(), "src.log", &want, &lw);
    let notes: Vec<String> = msgs(logs.path(), "memlogd.log")
        .into_iter()
        .filter(|l| l.contains("records lost"))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with(&format!("{expect_lost} records lost")),
        "{notes:?}, want {expect_lost}"
    );
    lw.wait_stderr("records lost");
}

/// memlogd at fixed socket paths, so it can be restarted where logwrite looks.
fn memlogd_at(socks: &TempDir, extra: &[&str]) -> Memlogd {
    let d = TempDir::new("memlogd-at");
    let (log, query) = (socks.join("log.sock"), socks.join("q.sock"));
    let mut cmd = Memlogd::command(&d);
    cmd.arg("-socket-log")
        .arg(&log)
        .arg("-socket-query")
        .arg(&query)
        .args(extra);
    Memlogd::spawn(d, cmd, log, query)
}

#[test]
fn memlogd_restart_starts_from_the_new_buffer() {
    let socks = TempDir::new("lw-socks");
    let mut m = memlogd_at(&socks, &[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let lw = Logwrite::start(&socks.join("q.sock"), logs.path(), &errs, &[]);
    let a = numbered("before", 0..20, 0);
    write_lines(&m, "svc", &a);
    wait_msgs(logs.path(), "svc.log", &a, &lw);
    m.signal(libc::SIGKILL);
    m.wait_exit();
    drop(m);
    let m = memlogd_at(&socks, &[]);
    let b = numbered("after", 0..20, 0);
    write_lines(&m, "svc", &b);
    let mut want = a.clone();
    want.extend(b);
    wait_msgs(logs.path(), "svc.log", &want, &lw);
    lw.wait_stderr("memlogd restarted");
    // Both daemons' start records, each once.
    wait_until("two start records", || {
        msgs(logs.path(), "memlogd.log")
            .iter()
            .filter(|l| *l == "memlogd started")
            .count()
            == 2
    });
}

#[test]
fn memlogd_absent_at_start_backs_off_without_spinning() {
    let socks = TempDir::new("lw-socks");
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let mut lw = Logwrite::start(&socks.join("q.sock"), logs.path(), &errs, &[]);
    lw.wait_stderr("cannot connect");
    let t0 = Instant::now();
    let c0 = lw.cpu_ticks();
    std::thread::sleep(Duration::from_secs(3));
    let ticks = lw.cpu_ticks() - c0;
    let wall_ticks = t0.elapsed().as_millis() as u64 / 10;
    assert!(lw.alive());
    // A spinning retry loop would burn about one tick per 10 ms.
    assert!(
        ticks * 10 < wall_ticks,
        "logwrite used {ticks} ticks of CPU in {wall_ticks} ticks while memlogd was absent"
    );
    // Reported, but not once per attempt.
    let reports = lw.stderr().matches("cannot connect").count();
    assert!(reports <= 2, "{}", lw.stderr());
    let m = memlogd_at(&socks, &[]);
    let a = numbered("late start", 0..5, 0);
    write_lines(&m, "svc", &a);
    wait_msgs(logs.path(), "svc.log", &a, &lw);
    lw.wait_stderr("connected to memlogd");
}

#[test]
fn include_and_exclude_choose_the_files() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &[
            "-include", "onboot.*", "-include", "sshd", "-exclude", "*.out",
        ],
    );
    for src in ["onboot.net", "onboot.net.out", "sshd", "sshd.out", "other"] {
        write_lines(&m, src, &[format!("line from {src}")]);
    }
    write_lines(&m, "sshd", &["last".to_string()]);
    wait_msgs(
        logs.path(),
        "sshd.log",
        &["line from sshd".to_string(), "last".to_string()],
        &lw,
    );
    assert_eq!(
        msgs(logs.path(), "onboot.net.log"),
        vec!["line from onboot.net"]
    );
    for absent in [
        "onboot.net.out.log",
        "sshd.out.log",
        "other.log",
        "memlogd.log",
    ] {
        assert!(!logs.join(absent).exists(), "{absent}");
    }
}

#[test]
fn linuxkit_memlogd_gets_dump_and_follow_without_resume() {
    let socks = TempDir::new("lw-lk");
    let path = socks.join("q.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let lw = Logwrite::start(&path, logs.path(), &errs, &[]);
    // Answer like LinuxKit's memlogd: read the mode byte, send JSON lines.
    let (mut conn, _) = listener.accept().expect("accept");
    let mut mode = [0u8; 1];
    std::io::Read::read_exact(&mut conn, &mut mode).expect("mode");
    assert_eq!(mode[0], 2, "dump and follow");
    conn.write_all(
        b"{\"time\":\"2018-07-08T09:16:53.123456789Z\",\"source\":\"memlogd\",\"msg\":\"memlogd started\"}\n\
          {\"time\":\"2018-07-08T09:16:54Z\",\"source\":\"svc\",\"msg\":\"hello\"}\n",
    )
    .expect("write");
    wait_until("svc.log", || lines(logs.path(), "svc.log").len() == 1);
    assert_eq!(
        lines(logs.path(), "svc.log"),
        vec!["2018-07-08T09:16:54Z svc hello"]
    );
    lw.wait_stderr("does not speak memlog/1");
}
