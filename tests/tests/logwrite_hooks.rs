//! logwrite's hooks and the fast track (issue 12): `-on-rotate` with its
//! environment, limits and reports; `-rotated-names time`; SIGHUP and
//! SIGUSR1 rotating every file; `-trigger` in the shape of the syslog-ng
//! seed (a burst of HTTP 5xx lines uploaded once, with its context),
//! including after a kill -9 in the quiet period. Real memlogd and
//! logwrite binaries over real sockets; hooks are real shell scripts.

use memlog_tests::logwrite::{msgs, numbered, write_lines, Logwrite};
use memlog_tests::{wait_for, wait_until, Memlogd, TempDir, TIMEOUT};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes an executable `sh` script `name` in `dir`.
fn script(dir: &TempDir, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

/// The upload hook of the seed: copies the rotated file into `up` and
/// notes `REASON SOURCE FILE ARG` in `up/../hook.log`.
fn upload_hook(tools: &TempDir, up: &Path) -> PathBuf {
    std::fs::create_dir_all(up).expect("mkdir upload");
    script(
        tools,
        "upload.sh",
        &format!(
            "set -e\ncp \"$1\" '{up}/'\ngrep -E '^Sig(Blk|Ign)' /proc/self/status > '{up}/../signals.txt'\necho \"$LOGWRITE_REASON $LOGWRITE_SOURCE $LOGWRITE_FILE $1\" >> '{up}/../hook.log'",
            up = up.display()
        ),
    )
}

/// memlogd, a log directory and logwrite running with the upload hook
/// and `extra` flags.
struct Setup {
    m: Memlogd,
    logs: TempDir,
    errs: TempDir,
    _tools: TempDir,
    /// Where the hook copies the rotated files.
    up: PathBuf,
    lw: Logwrite,
}

fn with_upload_hook(tag: &str, extra: &[&str]) -> Setup {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new(tag);
    let errs = TempDir::new("lw-err");
    let tools = TempDir::new("lw-tools");
    let up = tools.join("upload");
    let hook = upload_hook(&tools, &up).display().to_string();
    let mut args = extra.to_vec();
    args.extend(["-on-rotate", &hook]);
    let lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &args);
    Setup {
        m,
        logs,
        errs,
        _tools: tools,
        up,
        lw,
    }
}

/// The files in `dir`, sorted by name.
fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The hook's notes: one `REASON SOURCE FILE ARG` per run.
fn hook_log(up: &Path) -> Vec<String> {
    std::fs::read_to_string(up.join("../hook.log"))
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn access(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| format!(r#"10.0.0.{} - - "GET /page/{i} HTTP/1.1" 200 512"#, i % 250))
        .collect()
}

fn errors(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| format!(r#"10.0.0.9 - - "GET /api/{i} HTTP/1.1" 503 0"#))
        .collect()
}

const TRIGGER: &str = r#"match=HTTP/1\.1"\s5\d\d\s&source=web&quiet=3s"#;

/// A time-named rotated file of `web`.
fn is_time_named(name: &str) -> bool {
    let Some(t) = name.strip_prefix("web.log.") else {
        return false;
    };
    let b = t.as_bytes();
    b.len() >= 16 && b[8] == b'T' && b[15] == b'Z' && b[..8].iter().all(u8::is_ascii_digit)
}

#[test]
fn the_fast_track_uploads_each_burst_once_with_its_context() {
    // Every field bound: one left to `..` would be dropped (its directory
    // removed) at once.
    let Setup {
        m,
        logs,
        errs: _errs,
        _tools: _t,
        up,
        lw,
    } = with_upload_hook("lw-fast", &["-rotated-names", "time", "-trigger", TRIGGER]);
    // Access lines, a burst of 503s, more access lines (within the quiet
    // period): all of it is the context of the burst.
    let mut want = access(0..30);
    write_lines(&m, "web", &want);
    write_lines(&m, "web", &errors(0..12));
    want.extend(errors(0..12));
    write_lines(&m, "web", &access(30..40));
    want.extend(access(30..40));
    // Another source's lines never arm web's trigger nor go into its file.
    write_lines(&m, "db", &errors(100..105));
    wait_until("one upload", || !ls(&up).is_empty());
    let uploaded = ls(&up);
    assert_eq!(uploaded.len(), 1, "{uploaded:?}; {}", lw.stderr());
    assert!(is_time_named(&uploaded[0]), "{uploaded:?}");
    assert_eq!(msgs(&up, &uploaded[0]), want, "{}", lw.stderr());
    let notes = hook_log(&up);
    let rotated = logs.join(&uploaded[0]);
    assert_eq!(
        notes,
        [format!(
            "trigger web {} {}",
            rotated.display(),
            rotated.display()
        )]
    );
    // The rest goes on into the new file; no second upload without a
    // second burst.
    let later = access(40..50);
    write_lines(&m, "web", &later);
    wait_until("web.log holds the later lines", || {
        msgs(logs.path(), "web.log") == later
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(ls(&up).len(), 1, "{:?}", ls(&up));
    // A second burst: a second upload, holding only what came since.
    write_lines(&m, "web", &errors(12..20));
    wait_until("a second upload", || ls(&up).len() == 2);
    let second = ls(&up)[1].clone();
    let mut want2 = later;
    want2.extend(errors(12..20));
    assert_eq!(msgs(&up, &second), want2);
    assert!(
        second > uploaded[0],
        "names sort as made: {second} after {uploaded:?}"
    );
    // db's 503s never fired anything; its file is whole.
    assert_eq!(msgs(logs.path(), "db.log"), errors(100..105));
    assert!(
        lw.stderr().contains("exited with status 0"),
        "the hook's status is said: {}",
        lw.stderr()
    );
}

#[test]
fn a_trigger_armed_before_a_kill9_fires_after_the_restart() {
    let Setup {
        m,
        logs,
        errs,
        up,
        mut lw,
        _tools: _t,
    } = with_upload_hook(
        "lw-fast9",
        &[
            "-rotated-names",
            "time",
            "-trigger",
            r#"match=HTTP/1\.1"\s5\d\d\s&source=web&quiet=4s"#,
        ],
    );
    let mut want = access(0..20);
    want.extend(errors(0..10));
    write_lines(&m, "web", &want);
    // The armed trigger is in the saved state: then kill -9, in the middle
    // of the quiet period.
    wait_until("the armed trigger saved", || {
        std::fs::read_to_string(logs.join(".logwrite.state")).is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("armed ") && l.ends_with(" web"))
        }) && msgs(logs.path(), "web.log") == want
    });
    lw.kill9();
    assert!(ls(&up).is_empty(), "fired before its time");
    // Lines that came while logwrite was down are written at the restart.
    let during = access(20..25);
    write_lines(&m, "web", &during);
    lw.start_again(&errs);
    wait_until("the upload after the restart", || !ls(&up).is_empty());
    std::thread::sleep(Duration::from_secs(5));
    let uploaded = ls(&up);
    assert_eq!(uploaded.len(), 1, "exactly one upload: {uploaded:?}");
    let got = msgs(&up, &uploaded[0]);
    // The burst and the lines before it, whole, and nothing twice; the
    // lines written at the restart are either in it (the trigger fired
    // after they were written) or in the new file.
    assert!(got.starts_with(&want), "{got:?}");
    let mut all = got.clone();
    all.extend(msgs(logs.path(), "web.log"));
    let mut every = want.clone();
    every.extend(during);
    assert_eq!(all, every, "{}", lw.stderr());
    assert_eq!(hook_log(&up).len(), 1);
    assert!(hook_log(&up)[0].starts_with("trigger web "));
}

#[test]
fn sighup_and_sigusr1_rotate_every_file_that_is_not_empty() {
    // Every field bound: one left to `..` would be dropped (its directory
    // removed) at once.
    let Setup {
        m,
        logs,
        errs: _errs,
        _tools: _t,
        up,
        lw,
    } = with_upload_hook("lw-hup", &[]);
    let a = numbered("a", 0..10, 20);
    let b = numbered("b", 0..10, 20);
    write_lines(&m, "a", &a);
    write_lines(&m, "b", &b);
    wait_until("both written", || {
        msgs(logs.path(), "a.log") == a && msgs(logs.path(), "b.log") == b
    });
    lw.signal(libc::SIGHUP);
    wait_until("both rotated", || {
        msgs(logs.path(), "a.log.0") == a && msgs(logs.path(), "b.log.0") == b
    });
    // memlogd's own file (its start-up lines) is rotated too; a and b are
    // what this test wrote.
    let ours = |up: &Path| -> Vec<String> {
        hook_log(up)
            .into_iter()
            .filter(|l| !l.starts_with("signal memlogd "))
            .collect()
    };
    wait_until("two hooks", || ours(&up).len() >= 2);
    let mut notes = ours(&up);
    notes.sort();
    assert_eq!(
        notes,
        [
            format!(
                "signal a {} {}",
                logs.join("a.log.0").display(),
                logs.join("a.log.0").display()
            ),
            format!(
                "signal b {} {}",
                logs.join("b.log.0").display(),
                logs.join("b.log.0").display()
            ),
        ]
    );
    // Only a has new lines: SIGUSR1 rotates a, and leaves b (empty) be.
    let a2 = numbered("a", 10..15, 20);
    write_lines(&m, "a", &a2);
    wait_until("a written", || msgs(logs.path(), "a.log") == a2);
    lw.signal(libc::SIGUSR1);
    wait_until("a rotated again", || {
        msgs(logs.path(), "a.log.0") == a2 && msgs(logs.path(), "a.log.1") == a
    });
    wait_until("three hooks", || ours(&up).len() >= 3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ours(&up).len(), 3, "{:?}", hook_log(&up));
    assert!(!logs.join("b.log.1").exists());
    assert_eq!(msgs(logs.path(), "b.log.0"), b);
    // The hook starts with no signal blocked or ignored (logwrite blocks
    // its own and ignores stray ones: neither is the hook's business). Read
    // by grep of its own status (the waiting shell blocks all for a while).
    let sigs = std::fs::read_to_string(up.join("../signals.txt")).expect("signals.txt");
    let mask = |name: &str| {
        let l = sigs.lines().find(|l| l.starts_with(name)).expect(name);
        u64::from_str_radix(l.split_whitespace().nth(1).unwrap_or("?"), 16).expect("hex")
    };
    assert_eq!(mask("SigBlk:"), 0, "{sigs}");
    for sig in [
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGXFSZ,
        libc::SIGRTMIN() + 1,
    ] {
        assert_eq!(
            mask("SigIgn:") & (1 << (sig - 1)),
            0,
            "signal {sig}: {sigs}"
        );
    }
}

#[test]
fn hooks_never_hold_up_writing_and_are_reported() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-hookslow");
    let errs = TempDir::new("lw-err");
    let tools = TempDir::new("lw-tools");
    let marks = tools.join("marks");
    std::fs::create_dir_all(&marks).expect("mkdir");
    // Hangs (until killed at the timeout), after saying why on stderr and
    // leaving a mark per run.
    let hook = script(
        &tools,
        "slow.sh",
        &format!(
            "touch '{}'/\"$(basename \"$1\")\"\necho \"stuck on $LOGWRITE_REASON\" >&2\nexec sleep 20",
            marks.display()
        ),
    );
    let lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &[
            "-max-log-size",
            "2k",
            "-max-log-files",
            "50",
            "-on-rotate",
            &hook.display().to_string(),
            "-on-rotate-jobs",
            "1",
            "-on-rotate-timeout",
            "2s",
        ],
    );
    // 40 KiB: some 20 rotations while at most one hook runs, each hung.
    let lines = numbered("line", 0..800, 50);
    write_lines(&m, "svc", &lines);
    wait_until("every line written", || {
        let mut all = Vec::new();
        for i in (0..50).rev() {
            all.extend(msgs(logs.path(), &format!("svc.log.{i}")));
        }
        all.extend(msgs(logs.path(), "svc.log"));
        all == lines
    });
    // Writing did not wait for them: at most the first few ran by now.
    assert!(ls(&marks).len() < 10, "{:?}", ls(&marks));
    lw.wait_stderr("killed");
    lw.wait_stderr("stderr: stuck on size");
    // Bad commands are refused at start.
    for bad in [
        &["-on-rotate", "'unterminated"][..],
        &["-rotated-names", "sometimes"],
        &["-trigger", "match=x"],
        &["-trigger", "quiet=1s&match=("],
        &[
            "-no-files",
            "-remote",
            "udp://127.0.0.1:9",
            "-on-rotate",
            "true",
        ],
    ] {
        let mut l = Logwrite::start(m.query_socket(), logs.path(), &errs, bad);
        let st = l.wait_exit();
        assert_eq!(st.code(), Some(2), "{bad:?}: {}", l.stderr());
        assert!(l.stderr().contains("logwrite:"), "{bad:?}: {}", l.stderr());
    }
}

#[test]
fn time_named_rotation_resumes_exactly_after_kill9() {
    let m = Memlogd::start(&[
        "-max-lines",
        "100000",
        "-buffer-size",
        "16M",
        "-rate-limit-burst",
        "0",
    ]);
    let logs = TempDir::new("lw-time9");
    let errs = TempDir::new("lw-err");
    let lines = numbered("rec", 0..20_000, 60);
    write_lines(&m, "svc", &lines);
    let args = [
        "-rotated-names",
        "time",
        "-max-log-size",
        "16k",
        "-max-log-files",
        "1000",
    ];
    let mut lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &args);
    let all = |logs: &TempDir| {
        let mut v = Vec::new();
        for n in ls(logs.path()) {
            if n.starts_with("svc.log.") {
                v.extend(msgs(logs.path(), &n));
            }
        }
        v.extend(msgs(logs.path(), "svc.log"));
        v
    };
    // Killed three times while it writes.
    for wait_ms in [30, 80, 150] {
        std::thread::sleep(Duration::from_millis(wait_ms));
        lw.kill9();
        lw.start_again(&errs);
    }
    assert!(
        wait_for(|| all(&logs).len() >= lines.len(), TIMEOUT),
        "{} of {} lines; {}",
        all(&logs).len(),
        lines.len(),
        lw.stderr()
    );
    let got = all(&logs);
    assert_eq!(got.len(), lines.len());
    assert!(
        got == lines,
        "first difference at {:?}",
        got.iter().zip(&lines).position(|(a, b)| a != b)
    );
    assert!(
        ls(logs.path())
            .iter()
            .filter(|n| n.starts_with("svc.log."))
            .count()
            > 50,
        "{:?}",
        ls(logs.path())
    );
}

#[test]
fn a_hook_may_take_the_rotated_file_away() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-hookrm");
    let errs = TempDir::new("lw-err");
    let tools = TempDir::new("lw-tools");
    let all = tools.join("all.txt");
    // Quoted for logwrite's own word splitting (no shell of logwrite's):
    // the shell is the user's, the file is its $1. Time names: a name
    // never changes under a hook (index names move up at each rotation).
    let hook = format!(
        r#"sh -c 'gunzip -c "$1" >> "{}" && rm "$1"' hook"#,
        all.display()
    );
    let lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &[
            "-compress",
            "-rotated-names",
            "time",
            "-max-log-size",
            "1k",
            "-max-log-files",
            "1000",
            "-on-rotate",
            &hook,
            "-on-rotate-jobs",
            "1",
        ],
    );
    let lines = numbered("line", 0..300, 40);
    write_lines(&m, "svc", &lines);
    let got = || {
        let mut v: Vec<String> = std::fs::read_to_string(&all)
            .unwrap_or_default()
            .lines()
            .map(|l| l.splitn(3, ' ').nth(2).unwrap_or("").to_owned())
            .collect();
        v.extend(msgs(logs.path(), "svc.log"));
        v
    };
    assert!(
        wait_for(|| got().len() >= lines.len(), TIMEOUT),
        "{} of {} lines handed to the hook or in svc.log; {}",
        got().len(),
        lines.len(),
        lw.stderr()
    );
    // Every rotated file went through the hook once, in order, and is gone;
    // rotation and retention went on over the holes.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(got(), lines, "{}", lw.stderr());
    let left: Vec<String> = ls(logs.path())
        .into_iter()
        .filter(|n| n.starts_with("svc.log."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!lw.stderr().contains("cannot"), "{}", lw.stderr());
    assert!(
        lw.stderr().contains("exited with status 0"),
        "{}",
        lw.stderr()
    );
}
