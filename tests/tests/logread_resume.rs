//! logread over time: `--cursor-file` across runs (no duplicates, no gaps,
//! gaps reported with their size), lost records, tails while following,
//! SIGINT/SIGTERM, memlogd going away (with and without `--retry`), help
//! and usage errors.

use memlog::proto::{Line, Position, Record};
use memlog_tests::{
    logread, run_with_timeout, wait_child, Memlogd, OutputLines, Running, TempDir, TIMEOUT,
};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn run(socket: &Path, args: &[&str]) -> Output {
    run_with_timeout(logread(args).arg("-socket").arg(socket), TIMEOUT)
}

/// stdout and stderr of a run that must succeed.
fn ok(socket: &Path, args: &[&str]) -> (String, String) {
    let out = run(socket, args);
    let (so, se) = (
        String::from_utf8(out.stdout).expect("utf-8"),
        String::from_utf8(out.stderr).expect("utf-8"),
    );
    assert!(
        out.status.success(),
        "logread {args:?}: {}: {se}",
        out.status
    );
    (so, se)
}

fn lines(prefix: &str, range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("{prefix}{i}\n")).collect()
}

fn write_lines(w: &mut impl Write, prefix: &str, range: std::ops::Range<usize>) {
    w.write_all(lines(prefix, range).as_bytes()).expect("write");
}

fn instance(m: &Memlogd) -> u64 {
    match m.dump().first() {
        Some(Line::Hello { instance, .. }) => *instance,
        other => panic!("no hello: {other:?}"),
    }
}

fn cursor_at(path: &Path) -> Position {
    std::fs::read_to_string(path)
        .expect("cursor file")
        .parse()
        .expect("INSTANCE:SEQ")
}

fn follow(socket: &Path, args: &[&str]) -> (Running, OutputLines, OutputLines) {
    let mut p = Running::spawn(
        logread(args)
            .arg("-socket")
            .arg(socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let out = OutputLines::spawn(p.child.stdout.take().expect("stdout"));
    let err = OutputLines::spawn(p.child.stderr.take().expect("stderr"));
    (p, out, err)
}

/// Sends `sig` and waits for the exit code (it must be a normal exit).
fn stop(p: &mut Running, sig: libc::c_int) -> i32 {
    memlog_tests::signal(p.child.id(), sig).expect("kill");
    let st = wait_child(&mut p.child, TIMEOUT).expect("logread exits");
    st.code()
        .unwrap_or_else(|| panic!("killed by a signal: {st}"))
}

/// Everything a finished process printed on one of its streams.
fn drain(lines: &OutputLines) -> Vec<String> {
    let mut v = Vec::new();
    while let Some(l) = lines.next(std::time::Duration::from_millis(200)) {
        v.push(l);
    }
    v
}

#[test]
fn cursor_file_across_runs_prints_every_record_exactly_once() {
    let m = Memlogd::start(&[]);
    let dir = TempDir::new("lrcursor");
    let cf = dir.join("cursor");
    let cfs = cf.to_str().expect("utf-8");
    let q = m.query_socket();
    let args = ["--cursor-file", cfs, "-s", "app", "-o", "cat"];
    let mut w = m.writer("app");
    let mut printed = String::new();

    // Run 1: no cursor yet, the whole buffer.
    write_lines(&mut w, "a", 0..3);
    m.wait_msg("app", "a2");
    let (out, err) = ok(q, &args);
    assert_eq!(
        (out.as_str(), err.as_str()),
        (lines("a", 0..3).as_str(), "")
    );
    printed += &out;
    // The position is the end of what the dump covered.
    let last = m.records().last().and_then(|r| r.seq).expect("seq");
    let p = cursor_at(&cf);
    assert_eq!((p.instance, p.seq), (instance(&m), last));

    // Run 2: only what came since.
    write_lines(&mut w, "b", 0..2);
    m.wait_msg("app", "b1");
    let (out, err) = ok(q, &args);
    assert_eq!(
        (out.as_str(), err.as_str()),
        (lines("b", 0..2).as_str(), "")
    );
    printed += &out;

    // Run 3: following, saving the position as it goes; SIGINT ends it.
    write_lines(&mut w, "c", 0..2);
    m.wait_msg("app", "c1");
    let mut fargs = args.to_vec();
    fargs.push("-f");
    let (mut p, out, _err) = follow(q, &fargs);
    let mut got = out.until("c1");
    write_lines(&mut w, "d", 0..2);
    got.extend(out.until("d1"));
    // The position reaches d1 once it is printed.
    let d1 = m.wait_msg("app", "d1").seq.expect("seq");
    memlog_tests::wait_until("the cursor file to reach d1", || cursor_at(&cf).seq == d1);
    assert_eq!(stop(&mut p, libc::SIGINT), 0);
    let got: String = got.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(got, lines("c", 0..2) + &lines("d", 0..2));
    printed += &got;

    // Run 4: the rest, then nothing.
    write_lines(&mut w, "e", 0..1);
    m.wait_msg("app", "e0");
    let (out, _) = ok(q, &args);
    assert_eq!(out, "e0\n");
    printed += &out;
    assert_eq!(ok(q, &args), (String::new(), String::new()));

    let all: String = m
        .records()
        .iter()
        .filter(|r| r.source == "app")
        .map(|r| format!("{}\n", r.msg))
        .collect();
    assert_eq!(printed, all, "every record once, in order");
    // No temporary files left beside the cursor.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("cursor")]);
}

#[test]
fn cursor_gap_after_an_overrun_is_reported_with_its_size() {
    let m = Memlogd::start(&["-max-lines", "8"]);
    let dir = TempDir::new("lrgap");
    let cf = dir.join("cursor");
    let cfs = cf.to_str().expect("utf-8");
    let q = m.query_socket();
    let mut w = m.writer("app");
    write_lines(&mut w, "x", 0..3);
    m.wait_msg("app", "x2");
    let (out, err) = ok(q, &["--cursor-file", cfs, "-s", "app", "-o", "cat"]);
    assert_eq!(
        (out.as_str(), err.as_str()),
        (lines("x", 0..3).as_str(), "")
    );
    let saved = cursor_at(&cf);

    // 20 more records overrun the 8-record buffer.
    write_lines(&mut w, "y", 0..20);
    m.wait_msg("app", "y19");
    let held = m.records();
    let first = held[0].seq.expect("seq");
    let lost = first - saved.seq - 1;
    assert!(lost > 0);
    let want: String = held
        .iter()
        .filter(|r| r.source == "app")
        .map(|r| format!("{}\n", r.msg))
        .collect();
    let (out, err) = ok(q, &["--cursor-file", cfs, "-s", "app", "-o", "cat"]);
    assert_eq!(out, want);
    assert_eq!(
        err,
        format!(
            "logread: {lost} records lost since the position in {cfs}: memlogd's buffer overwrote them\n"
        )
    );

    // With --show-lost the notice is on stdout instead, in line.
    std::fs::write(&cf, format!("{saved}\n")).expect("rewind the cursor");
    let (out, err) = ok(
        q,
        &[
            "--cursor-file",
            cfs,
            "-s",
            "app",
            "-o",
            "json",
            "--show-lost",
        ],
    );
    assert_eq!(err, "");
    let first_line = out.lines().next().expect("a line");
    assert_eq!(first_line, format!("{{\"lost\":{lost}}}"));
    assert_eq!(out.lines().count(), 1 + want.lines().count());
}

#[test]
fn cursor_from_another_memlogd_instance_starts_from_its_oldest_record() {
    let m1 = Memlogd::start(&[]);
    let dir = TempDir::new("lrinst");
    let cf = dir.join("cursor");
    let cfs = cf.to_str().expect("utf-8");
    let (_, err) = ok(m1.query_socket(), &["--cursor-file", cfs]);
    assert_eq!(err, "");
    let old = cursor_at(&cf);
    drop(m1);
    // A new memlogd (a restart): the saved position is of another instance.
    let m2 = Memlogd::start(&[]);
    let mut w = m2.writer("app");
    write_lines(&mut w, "n", 0..2);
    m2.wait_msg("app", "n1");
    let (out, err) = ok(m2.query_socket(), &["--cursor-file", cfs, "-o", "cat"]);
    let all: String = m2
        .records()
        .iter()
        .map(|r| format!("{}\n", r.msg))
        .collect();
    assert_eq!(out, all, "everything the new instance holds");
    assert_eq!(
        err,
        format!(
            "logread: memlogd restarted since the position in {cfs} (instance {:016x}, now {:016x}): printing from its oldest record\n",
            old.instance,
            instance(&m2)
        )
    );
    assert_eq!(cursor_at(&cf).instance, instance(&m2));
}

/// A LinuxKit-style server: each connection gets `lines` for its mode
/// byte (0, 1 or 2), then is closed.
struct Fake {
    socket: PathBuf,
    modes: std::sync::mpsc::Receiver<u8>,
    _dir: TempDir,
}

fn fake(dump: &'static str, follow: &'static str) -> Fake {
    let dir = TempDir::new("lrfake");
    let socket = dir.join("fake.sock");
    let l = UnixListener::bind(&socket).expect("bind");
    let (tx, modes) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut b = [0u8; 1];
            if s.read_exact(&mut b).is_err() {
                continue;
            }
            let _ = tx.send(b[0]);
            let _ = s.write_all(if b[0] == 1 { follow } else { dump }.as_bytes());
        }
    });
    Fake {
        socket,
        modes,
        _dir: dir,
    }
}

fn lk(i: usize) -> String {
    format!("{{\"time\":\"2018-07-08T09:16:5{i}Z\",\"source\":\"s\",\"msg\":\"r{i}\"}}\n")
}

#[test]
fn cursor_file_against_linuxkit_is_a_clear_error() {
    let f = fake(
        "{\"time\":\"2018-07-08T09:16:53Z\",\"source\":\"s\",\"msg\":\"m\"}\n",
        "",
    );
    let dir = TempDir::new("lrlk");
    let cf = dir.join("cursor");
    let out = run(&f.socket, &["--cursor-file", cf.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--cursor-file") && err.contains("LinuxKit"),
        "{err}"
    );
    assert!(!cf.exists());
}

#[test]
fn tail_then_follow_against_memlogd_server_and_client_side() {
    for extra in [
        &["-s", "app"][..],
        &["-e", "^a"],
        &["-s", "app", "--client-filter"],
    ] {
        for flag in ["-f", "-F"] {
            let m = Memlogd::start(&[]);
            let mut w = m.writer("app");
            let mut other = m.writer("other");
            write_lines(&mut w, "a", 0..5);
            m.wait_msg("app", "a4");
            let mut args = vec![flag, "-n", "2", "-o", "cat"];
            args.extend_from_slice(extra);
            let (mut p, out, err) = follow(m.query_socket(), &args);
            assert_eq!(
                (out.expect(), out.expect()),
                ("a3".into(), "a4".into()),
                "{args:?}"
            );
            // New records follow, each once; others stay out.
            other.write_all(b"zzz\n").expect("write");
            write_lines(&mut w, "a", 5..7);
            assert_eq!(
                (out.expect(), out.expect()),
                ("a5".into(), "a6".into()),
                "{args:?}"
            );
            assert_eq!(stop(&mut p, libc::SIGTERM), 0);
            assert!(drain(&out).is_empty(), "{args:?}");
            assert!(drain(&err).is_empty(), "{args:?}");
        }
    }
}

#[test]
fn tail_then_follow_against_linuxkit_uses_a_follow_then_a_dump() {
    // r0..r4 are in the dump; r4 arrived after the follow connection
    // started, so the follow stream has it too, then r5 and r6.
    let dump: &'static str = Box::leak((0..5).map(lk).collect::<String>().into_boxed_str());
    let fol: &'static str = Box::leak((4..7).map(lk).collect::<String>().into_boxed_str());
    let f = fake(dump, fol);
    let out = run(&f.socket, &["-f", "-n", "2", "-o", "cat"]);
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(so, "r3\nr4\nr5\nr6\n", "stderr: {se}");
    // The fake closes the follow connection: logread says so and fails.
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(se.lines().count(), 1, "{se}");
    assert!(se.contains("closed the connection while following"), "{se}");
    // First the one-connection request (memlogd would have kept the tail),
    // then follow and dump.
    let modes: Vec<u8> = f.modes.try_iter().collect();
    assert_eq!(modes, [2, 1, 0]);
}

#[test]
fn sigint_and_sigterm_end_follow_with_status_0() {
    let m = Memlogd::start(&[]);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (mut p, out, err) = follow(m.query_socket(), &["-F"]);
        out.until(";memlogd;memlogd started");
        m.sync_follower(|t| out.next(t));
        assert_eq!(stop(&mut p, sig), 0, "signal {sig}");
        assert!(drain(&err).is_empty());
    }
}

#[test]
fn memlogd_going_away_during_follow_is_an_error_without_retry() {
    let mut m = Memlogd::start(&[]);
    let (mut p, out, err) = follow(m.query_socket(), &["-f"]);
    m.sync_follower(|t| out.next(t));
    m.signal(libc::SIGTERM);
    assert!(m.wait_exit().success());
    let st = wait_child(&mut p.child, TIMEOUT).expect("logread exits");
    assert_eq!(st.code(), Some(1));
    let e = drain(&err);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        e[0],
        "logread: memlogd closed the connection while following (memlogd stopped?); --retry reconnects"
    );
}

/// A memlogd serving `dir/log.sock` and `dir/q.sock` (paths that outlive it).
fn memlogd_at(dir: &Path) -> Memlogd {
    let (log, q) = (dir.join("log.sock"), dir.join("q.sock"));
    let own = TempDir::new("lrretry-d");
    let mut cmd = Memlogd::command(&own);
    cmd.arg("-socket-log")
        .arg(&log)
        .arg("-socket-query")
        .arg(&q);
    Memlogd::spawn(own, cmd, log, q)
}

#[test]
fn retry_waits_for_memlogd_and_reconnects_without_printing_twice() {
    let socks = TempDir::new("lrretry");
    let q = socks.join("q.sock");
    // Started before memlogd: it waits.
    let (mut p, out, err) = follow(&q, &["-F", "--retry", "-s", "app", "-o", "cat"]);
    assert!(err.expect().starts_with("logread: cannot connect to "));
    let mut m1 = memlogd_at(socks.path());
    let mut w = m1.writer("app");
    write_lines(&mut w, "a", 0..3);
    assert_eq!(
        (out.expect(), out.expect(), out.expect()),
        ("a0".into(), "a1".into(), "a2".into())
    );
    assert_eq!(
        err.expect(),
        format!("logread: connected to {}", q.display())
    );
    // memlogd restarts.
    m1.signal(libc::SIGTERM);
    assert!(m1.wait_exit().success());
    assert_eq!(
        err.expect(),
        "logread: memlogd closed the connection; reconnecting (--retry)"
    );
    let m2 = memlogd_at(socks.path());
    let mut w2 = m2.writer("app");
    write_lines(&mut w2, "b", 0..2);
    assert_eq!((out.expect(), out.expect()), ("b0".into(), "b1".into()));
    let notes: Vec<String> =
        std::iter::from_fn(|| err.next(std::time::Duration::from_millis(300))).collect();
    assert!(
        notes
            .iter()
            .any(|l| l.starts_with("logread: memlogd restarted since the last record seen")),
        "{notes:?}"
    );
    assert_eq!(stop(&mut p, libc::SIGINT), 0);
    assert!(drain(&out).is_empty(), "nothing printed twice");
}

#[test]
fn lost_records_while_following_are_counted_exactly_on_stderr() {
    let m = Memlogd::start(&[
        "-max-lines",
        "100",
        "-reader-buffer",
        "4k",
        "-rate-limit-burst",
        "0",
    ]);
    // logread's stdout is a pipe read only until its first line (so the
    // reader is registered), then not until after the flood: logread
    // blocks on it, and memlogd overwrites what it has not sent.
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let mut p = Running::spawn(
        logread(["-F", "-o", "json", "-socket"])
            .arg(m.query_socket())
            .stdout(Stdio::from(wr))
            .stderr(Stdio::piped()),
    );
    let err = OutputLines::spawn(p.child.stderr.take().expect("stderr"));
    let mut stdout = std::fs::File::from(rd);
    let mut head = Vec::new();
    while !head.contains(&b'\n') {
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&stdout),
            nix::poll::PollFlags::POLLIN,
        )];
        let n = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(20_000u16)).expect("poll");
        assert_eq!(n, 1, "logread printed nothing");
        let mut chunk = [0u8; 4096];
        let k = stdout.read(&mut chunk).expect("read");
        assert!(k > 0, "logread ended");
        head.extend_from_slice(&chunk[..k]);
    }
    let mut w = m.writer("flood");
    let pad = "p".repeat(100);
    for chunk in 0..40 {
        let text: String = (chunk * 500..(chunk + 1) * 500)
            .map(|i| format!("{i} {pad}\n"))
            .collect();
        w.write_all(text.as_bytes()).expect("write");
    }
    m.wait_record("the last flood line", |r| r.msg.starts_with("19999 "));
    let out = OutputLines::spawn(std::io::Cursor::new(head).chain(stdout));
    let printed = out.until("\"19999 ");
    assert_eq!(stop(&mut p, libc::SIGINT), 0);
    let mut lost_reported = 0;
    for l in drain(&err) {
        let n: u64 = l
            .strip_prefix("logread: ")
            .and_then(|r| {
                r.strip_suffix(" records lost: memlogd overwrote them before this reader got them")
            })
            .unwrap_or_else(|| panic!("unexpected stderr line {l:?}"))
            .parse()
            .expect("count");
        lost_reported += n;
    }
    // Every sequence number is printed or counted as lost, once.
    let seqs: Vec<u64> = printed
        .iter()
        .map(|l| match memlog_tests::decode(l.as_bytes()) {
            Line::Record(Record { seq: Some(s), .. }) => s,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs[0], 0);
    let gaps: u64 = seqs.windows(2).map(|p| p[1] - p[0] - 1).sum();
    assert!(seqs.windows(2).all(|p| p[1] > p[0]));
    assert!(lost_reported > 0, "the flood overtook the reader");
    assert_eq!(gaps, lost_reported);
}

#[test]
fn help_documents_every_flag_and_bad_flags_exit_2() {
    let out = run_with_timeout(&mut logread(["-help"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).expect("utf-8");
    for flag in [
        "--socket",
        "-f,",
        "-F,",
        "-n,",
        "-l,",
        "-s,",
        "-x,",
        "-e,",
        "--fixed-strings",
        "-p,",
        "--since",
        "--until",
        "-o,",
        "--cursor-file",
        "--show-lost",
        "--color",
        "--retry",
        "--client-filter",
    ] {
        assert!(help.contains(&format!("  {flag}")), "{flag} in {help}");
    }
    assert!(help.contains("Examples:"), "{help}");
    for f in ["json", "short", "kmsg", "cat", "iso", "precise"] {
        assert!(help.contains(f), "{f}");
    }
    let dir = TempDir::new("lrusage");
    let q = dir.join("none.sock");
    for bad in [
        &["-nope"][..],
        &["--n", "x"],
        &["-p", "loud"],
        &["--since", "soon"],
        &["--until=later"],
        &["-o", "xml"],
        &["--color=maybe"],
        &["-e", "("],
        &["-n", "1", "-l", "2"],
        &["-f=maybe"],
        &["--fixed-strings"],
        &["-socket"],
        &["stray"],
    ] {
        let out = run_with_timeout(
            Command::new(memlog_tests::bin("logread"))
                .arg("-socket")
                .arg(&q)
                .args(bad),
            TIMEOUT,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{bad:?}: {err}");
        assert!(err.starts_with("logread: "), "{bad:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}

/// A memlogd-like server: the first connection gets a hello and records 5
/// and 6, then is closed (memlogd still running, the connection lost); the
/// next one must ask to resume after record 6 of the same instance.
#[test]
fn retry_resumes_after_the_last_record_seen_of_the_same_instance() {
    let dir = TempDir::new("lrsame");
    let socket = dir.join("q.sock");
    let l = UnixListener::bind(&socket).expect("bind");
    let (tx, requests) = std::sync::mpsc::channel::<String>();
    let (done, done_rx) = std::sync::mpsc::channel::<()>();
    let rec = |seq: u64| {
        format!("{{\"seq\":{seq},\"time\":\"2026-11-21T12:00:0{seq}Z\",\"source\":\"app\",\"msg\":\"r{seq}\"}}\n")
    };
    let server = std::thread::spawn(move || {
        let mut keep = Vec::new();
        for (i, s) in l.incoming().take(2).enumerate() {
            let mut s = s.expect("accept");
            let mut req = Vec::new();
            let mut b = [0u8; 1];
            while !req.ends_with(b"\n") && s.read_exact(&mut b).is_ok() {
                req.push(b[0]);
            }
            let _ = tx.send(format!(
                "{} {}",
                req[0],
                String::from_utf8_lossy(&req[1..]).trim_end()
            ));
            // As memlogd: `next` is after the records it holds.
            let next = if i == 0 { 7 } else { 8 };
            let hello = format!(
                "{{\"memlog\":1,\"instance\":\"00000000000000ab\",\"first\":0,\"next\":{next}}}\n"
            );
            let body = if i == 0 {
                format!("{hello}{}{}", rec(5), rec(6))
            } else {
                format!("{hello}{}", rec(7))
            };
            s.write_all(body.as_bytes()).expect("write");
            if i == 1 {
                keep.push(s);
            }
        }
        // Hold the second connection until the test is done.
        let _ = done_rx.recv_timeout(TIMEOUT);
        drop(keep);
    });
    let (mut p, out, err) = follow(&socket, &["-f", "--retry", "-o", "cat"]);
    assert_eq!(
        (out.expect(), out.expect(), out.expect()),
        ("r5".into(), "r6".into(), "r7".into())
    );
    assert_eq!(stop(&mut p, libc::SIGINT), 0);
    let _ = done.send(());
    let reqs: Vec<String> = requests.try_iter().collect();
    assert_eq!(reqs, ["1 memlog/1", "2 memlog/1 after=00000000000000ab:6"]);
    let notes = drain(&err);
    assert_eq!(
        notes,
        ["logread: memlogd closed the connection; reconnecting (--retry)"],
        "no restart note: same instance"
    );
    server.join().expect("server");
}

#[test]
fn cursor_file_ahead_of_memlogd_prints_from_the_oldest_and_says_so() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("svc");
    write_lines(&mut w, "a", 0..5);
    m.wait_msg("svc", "a4");
    let dir = TempDir::new("cursor-ahead");
    let cursor = dir.join("cursor");
    // This memlogd's instance, a sequence number it never reached.
    let ahead = Position {
        instance: instance(&m),
        seq: 1_000_000,
    };
    std::fs::write(&cursor, format!("{ahead}\n")).expect("write");
    let c = cursor.to_str().expect("utf8");
    let (out, err) = ok(
        m.query_socket(),
        &["--cursor-file", c, "-s", "svc", "-o", "cat"],
    );
    assert_eq!(out, lines("a", 0..5), "nothing skipped");
    assert!(err.contains("is ahead of memlogd's newest record"), "{err}");
    // The saved position is this memlogd's again: the next run is exact.
    assert_eq!(cursor_at(&cursor).instance, ahead.instance);
    assert!(cursor_at(&cursor).seq < 1_000_000);
    write_lines(&mut w, "b", 0..2);
    m.wait_msg("svc", "b1");
    let (out, _) = ok(
        m.query_socket(),
        &["--cursor-file", c, "-s", "svc", "-o", "cat"],
    );
    assert_eq!(out, lines("b", 0..2));
}

#[test]
fn cursor_file_that_is_not_a_small_regular_file_is_refused_at_once() {
    let m = Memlogd::start(&[]);
    let dir = TempDir::new("cursor-odd");
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let zero = dir.join("zero");
    std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
    for p in [&fifo, &zero] {
        // run() is bounded: a hang on the FIFO or an endless read of
        // /dev/zero would fail it.
        let out = run(
            m.query_socket(),
            &["--cursor-file", p.to_str().expect("utf8")],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", p.display());
        assert!(
            err.contains("not a regular file") || err.contains("symbolic link"),
            "{err}"
        );
    }
}
