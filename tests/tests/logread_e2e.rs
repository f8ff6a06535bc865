//! logread, as LinuxKit users run it: against memlogd, against a server
//! that speaks only LinuxKit's protocol, in a pipeline, and with no server.

use memlog_tests::{
    is_rfc3339_nano_utc, logread, run_with_timeout, wait_child, Memlogd, OutputLines, Running,
    TempDir, TIMEOUT,
};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Runs `logread ARGS` to completion (bounded); returns its stdout lines.
fn logread_dump(args: &[&str], socket: &Path) -> Vec<String> {
    let out = run_with_timeout(logread(args).arg("-socket").arg(socket), TIMEOUT);
    assert!(
        out.status.success(),
        "logread failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Splits `TIME;SOURCE;MSG` (SOURCE with `\;` escapes) and checks TIME.
fn split_text(line: &str) -> (String, String) {
    let (time, rest) = line.split_once(';').expect("TIME;");
    assert!(is_rfc3339_nano_utc(time), "time in {line:?}");
    let mut source = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if rest[i + 1..].starts_with(';') => {
                source.push(';');
                chars.next();
            }
            ';' => return (source, rest[i + 1..].to_owned()),
            c => source.push(c),
        }
    }
    panic!("no ;MSG in {line:?}");
}

/// `logread -f`/`-F` with stdout read line by line.
fn logread_follow(flag: &str, socket: &Path) -> (Running, OutputLines) {
    let mut p = Running::spawn(
        logread([flag, "-socket"])
            .arg(socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let lines = OutputLines::spawn(p.child.stdout.take().expect("stdout"));
    (p, lines)
}

#[test]
fn dump_prints_time_source_msg_with_escaped_source() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("svc;with;semicolons");
    w.write_all(b"msg; keeps its ; as is\n").expect("write");
    m.wait_msg("svc;with;semicolons", "msg; keeps its ; as is");
    let lines = logread_dump(&[], m.query_socket());
    assert_eq!(split_text(&lines[0]).1, "memlogd started");
    let ours: Vec<&String> = lines.iter().filter(|l| l.contains("semicolons")).collect();
    assert_eq!(ours.len(), 1, "{lines:?}");
    assert!(
        ours[0].ends_with(";svc\\;with\\;semicolons;msg; keeps its ; as is"),
        "{ours:?}"
    );
    let (source, msg) = split_text(ours[0]);
    assert_eq!(
        (source.as_str(), msg.as_str()),
        ("svc;with;semicolons", "msg; keeps its ; as is")
    );
    assert_eq!(lines.len(), m.records().len());
}

#[test]
fn socket_flag_in_all_four_spellings() {
    let m = Memlogd::start(&[]);
    let q = m.query_socket().to_str().expect("utf-8 path").to_owned();
    for args in [
        vec!["-socket".to_owned(), q.clone()],
        vec!["--socket".to_owned(), q.clone()],
        vec![format!("-socket={q}")],
        vec![format!("--socket={q}")],
    ] {
        let out = run_with_timeout(&mut logread(&args), TIMEOUT);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(";memlogd;memlogd started\n"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn follow_prints_only_new_records() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("app");
    w.write_all(b"before\n").expect("write");
    m.wait_msg("app", "before");
    let (_p, out) = logread_follow("-f", m.query_socket());
    let early = m.sync_follower(|t| out.next(t));
    assert!(!early.iter().any(|l| l.contains("before")), "{early:?}");
    w.write_all(b"after\n").expect("write");
    let seen = out.until(";app;after");
    assert!(!seen.iter().any(|l| l.contains("before")), "{seen:?}");
}

#[test]
fn dump_then_follow_prints_old_then_new() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("app");
    w.write_all(b"before\n").expect("write");
    m.wait_msg("app", "before");
    let (_p, out) = logread_follow("-F", m.query_socket());
    let first = out.expect();
    assert!(first.ends_with(";memlogd;memlogd started"), "{first}");
    out.until(";app;before");
    w.write_all(b"after\n").expect("write");
    out.until(";app;after");
}

/// A pipe: (read end, write end), close-on-exec so that no other test's
/// child inherits an end (the child's stdout is a dup without the flag).
fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe")
}

#[test]
fn closed_stdout_pipe_ends_logread_quietly() {
    // `logread -f | head -n 1`
    let m = Memlogd::start(&[]);
    let (rd, wr) = pipe();
    let mut p = Running::spawn(
        logread(["-f", "-socket"])
            .arg(m.query_socket())
            .stdout(Stdio::from(wr))
            .stderr(Stdio::piped()),
    );
    let mut stderr = p.child.stderr.take().expect("stderr");
    let err_text = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // Keep records coming until logread is gone.
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let stop = stop.clone();
        let mut w = m.writer("ticker");
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if w.write_all(format!("tick {i}\n").as_bytes()).is_err() {
                    return;
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // `head -n 1`: read one line, then close the pipe.
    let mut pfd = [nix::poll::PollFd::new(
        rd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let n = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(20_000u16)).expect("poll");
    assert_eq!(n, 1, "logread -f printed nothing");
    let mut first = [0u8; 512];
    let got = nix::unistd::read(&rd, &mut first).expect("read");
    assert!(
        got > 0 && first[..got].starts_with(b"20"),
        "{:?}",
        &first[..got]
    );
    drop(rd);
    let status = wait_child(&mut p.child, TIMEOUT).expect("logread exits after its stdout closes");
    stop.store(true, Ordering::Relaxed);
    ticker.join().expect("ticker");
    let err = err_text.join().expect("stderr");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err, "", "quiet on a closed pipe (status {status})");
}

/// A server that speaks only LinuxKit's protocol: reads exactly one byte,
/// sends `lines`, then closes (or, with `keep_open`, waits until told).
struct FakeLinuxKit {
    socket: std::path::PathBuf,
    mode: mpsc::Receiver<u8>,
    release: mpsc::Sender<()>,
    _dir: TempDir,
}

impl FakeLinuxKit {
    fn start(lines: &'static str, keep_open: bool) -> FakeLinuxKit {
        let dir = TempDir::new("fake");
        let socket = dir.join("fake.sock");
        let l = UnixListener::bind(&socket).expect("bind");
        let (mode_tx, mode) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut b = [0u8; 1];
            s.read_exact(&mut b).expect("mode byte");
            let _ = mode_tx.send(b[0]);
            s.write_all(lines.as_bytes()).expect("write");
            if keep_open {
                let _ = release_rx.recv_timeout(TIMEOUT);
            }
        });
        FakeLinuxKit {
            socket,
            mode,
            release,
            _dir: dir,
        }
    }

    fn mode(&self) -> u8 {
        self.mode.recv_timeout(TIMEOUT).expect("a request")
    }
}

const LINUXKIT_LINES: &str = concat!(
    r#"{"time":"2018-07-08T09:16:53.123456789Z","source":"memlogd","msg":"memlogd started"}"#,
    "\n",
    r#"{"time":"2018-07-08T09:16:54Z","source":"onboot.001-dhcpcd.out","msg":"eth0: waiting for carrier"}"#,
    "\n",
    r#"{"time":"2018-07-08T09:16:55.5Z","source":"a;b","msg":"semi;colon \"quoted\" \u00e9"}"#,
    "\n",
);

const LINUXKIT_TEXT: [&str; 3] = [
    "2018-07-08T09:16:53.123456789Z;memlogd;memlogd started",
    "2018-07-08T09:16:54Z;onboot.001-dhcpcd.out;eth0: waiting for carrier",
    "2018-07-08T09:16:55.5Z;a\\;b;semi;colon \"quoted\" \u{e9}",
];

#[test]
fn dump_from_a_linuxkit_memlogd_ends_when_it_closes() {
    let fake = FakeLinuxKit::start(LINUXKIT_LINES, false);
    let lines = logread_dump(&[], &fake.socket);
    assert_eq!(fake.mode(), 0);
    assert_eq!(lines, LINUXKIT_TEXT);
}

#[test]
fn empty_dump_from_a_linuxkit_memlogd_prints_nothing() {
    let fake = FakeLinuxKit::start("", false);
    let lines = logread_dump(&[], &fake.socket);
    assert_eq!(fake.mode(), 0);
    assert!(lines.is_empty(), "{lines:?}");
}

#[test]
fn dump_then_follow_from_a_linuxkit_memlogd_prints_without_waiting() {
    for (flag, mode) in [("-F", 2u8), ("-f", 1)] {
        let fake = FakeLinuxKit::start(LINUXKIT_LINES, true);
        let (mut p, out) = logread_follow(flag, &fake.socket);
        assert_eq!(fake.mode(), mode);
        let got: Vec<String> = (0..3).map(|_| out.expect()).collect();
        assert_eq!(got, LINUXKIT_TEXT, "{flag}");
        assert!(
            p.child.try_wait().expect("try_wait").is_none(),
            "still following"
        );
        // The server goes away: logread ends instead of hanging.
        fake.release.send(()).expect("release");
        wait_child(&mut p.child, TIMEOUT).expect("logread ends when the server closes");
    }
}

#[test]
fn missing_socket_is_a_one_line_error() {
    let dir = TempDir::new("nosock");
    let missing = dir.join("nothing-here.sock");
    let out = run_with_timeout(
        Command::new(memlog_tests::bin("logread"))
            .arg("-socket")
            .arg(&missing),
        TIMEOUT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("nothing-here.sock"), "{err:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn refused_over_max_readers_is_never_an_empty_success() {
    // With every reader slot taken, `logread` must either print memlogd's
    // refusal record or fail with a message: a silent, empty, successful
    // dump would look like an empty buffer. Several tries, because memlogd
    // may refuse before or after logread has written its request.
    let m = Memlogd::start(&["-max-readers", "1"]);
    let (_p, out) = logread_follow("-f", m.query_socket());
    m.sync_follower(|t| out.next(t));
    for attempt in 0..10 {
        let res = run_with_timeout(logread(["-socket"]).arg(m.query_socket()), TIMEOUT);
        let stdout = String::from_utf8_lossy(&res.stdout);
        let stderr = String::from_utf8_lossy(&res.stderr);
        let told = stdout.contains(";memlogd;refused a reader")
            || (!res.status.success() && !stderr.trim().is_empty());
        assert!(
            told,
            "attempt {attempt}: exit {}, stdout {stdout:?}, stderr {stderr:?}",
            res.status
        );
    }
}
