//! logwrite's `-remote exec:CMD` with real programs: `gzip -c > FILE`, a
//! script that exits after N lines (restarted; every record once, in
//! order), one that never reads (the files go on; SIGTERM still stops
//! logwrite, and the program is killed), a kill -9 of logwrite, the JSON
//! (logread's) and RFC 5424 formats, and bad URLs.

use memlog_tests::logwrite::{lines, numbered, saved_position, wait_msgs, write_lines, Logwrite};
use memlog_tests::{logread, process_alive, run_with_timeout, wait_for, Memlogd, TempDir, TIMEOUT};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The state file of the (only) exec: destination in `dir`.
fn exec_state(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        (n.starts_with(".logwrite-remote-exec:") && n.ends_with(".state")).then(|| e.path())
    })
}

/// The sequence number saved for the exec: destination in `dir`.
fn exec_saved_seq(dir: &Path) -> Option<u64> {
    let p = exec_state(dir)?;
    let name = p.file_name()?.to_str()?.to_owned();
    saved_position(dir, &name).map(|(_, seq)| seq)
}

/// The message of a `TIME SOURCE MSG` line.
fn msg_of(line: &str) -> String {
    line.splitn(3, ' ').nth(2).unwrap_or("").to_owned()
}

/// A shell script in `dir` called `name`.
fn script(dir: &TempDir, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
    p
}

/// The zombies among `pid`'s children.
fn zombie_children(pid: u32) -> Vec<u32> {
    let mut z = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 1 && f[1] == pid.to_string() && f[0] == "Z" {
            z.extend(p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()));
        }
    }
    z
}

/// Kills a program of the test's on drop (if an assertion failed before
/// logwrite did).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.0)).unwrap_or_default();
        // Still that program (not a pid used again since).
        if process_alive(self.0) && cmdline.starts_with(b"sleep\x001000") {
            let _ = memlog_tests::signal(self.0, libc::SIGKILL);
        }
    }
}

/// Waits until `path` holds at least `n` lines; its lines.
fn wait_lines(path: &Path, n: usize, lw: &Logwrite) -> Vec<String> {
    let dir = path.parent().expect("parent");
    let name = path.file_name().and_then(|n| n.to_str()).expect("name");
    let mut got = Vec::new();
    let ok = wait_for(
        || {
            got = lines(dir, name);
            got.len() >= n
        },
        TIMEOUT,
    );
    assert!(
        ok,
        "{} has {} lines, want {n}; logwrite: {}",
        path.display(),
        got.len(),
        lw.stderr()
    );
    got
}

#[test]
fn gzip_gets_every_record_in_order_and_finishes_its_file_at_sigterm() {
    let m = Memlogd::start(&["-max-lines", "100000"]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let out = TempDir::new("exec-out");
    let gz = out.join("all.gz");
    let url = format!("exec:sh -c 'gzip -c > {}'?include=web", gz.display());
    let mut lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &["-remote", &url]);
    // Hostile records too: a newline cannot forge a line, bad UTF-8 is escaped.
    let mut want = numbered("gz", 0..3000, 120);
    write_lines(&m, "web", &want);
    let mut w = m.writer("web");
    std::io::Write::write_all(&mut w, b"evil \x1b[31m\xff end\n").expect("write");
    drop(w);
    let last = m.wait_record("the evil line", |r| {
        r.source == "web" && r.msg.starts_with("evil")
    });
    want.push("evil \\x1b[31m\\xff end".into());
    let seq = last.seq.expect("seq");
    assert!(
        wait_for(|| exec_saved_seq(logs.path()) == Some(seq), TIMEOUT),
        "the exec: position never reached {seq}: {}",
        lw.stderr()
    );
    lw.signal(libc::SIGTERM);
    let st = lw.wait_exit();
    assert!(st.success(), "{st:?}: {}", lw.stderr());
    let o = run_with_timeout(
        std::process::Command::new("gunzip").arg("-c").arg(&gz),
        TIMEOUT,
    );
    assert!(
        o.status.success(),
        "gunzip: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8(o.stdout).expect("escaped lines are UTF-8");
    let got: Vec<String> = text.lines().map(msg_of).collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    assert!(text.lines().all(|l| l.split(' ').nth(1) == Some("web")));
}

#[test]
fn a_program_that_exits_after_n_lines_is_restarted_and_resumes_exactly() {
    let m = Memlogd::start(&["-max-lines", "100000"]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let out = TempDir::new("exec-out");
    let got_file = out.join("got");
    // `read` takes a pipe byte by byte: nothing past line 7 is consumed.
    let s = script(
        &out,
        "seven.sh",
        "n=0\nwhile [ $n -lt 7 ] && IFS= read -r l; do printf '%s\\n' \"$l\" >> \"$1\"; n=$((n+1)); done\nexit 3",
    );
    let url = format!("exec:sh {} {}?include=svc", s.display(), got_file.display());
    let lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &["-no-files", "-remote", &url, "-max-backoff", "300ms"],
    );
    let want = numbered("svc", 0..60, 0);
    write_lines(&m, "svc", &want[..30]);
    write_lines(&m, "other", &numbered("other", 0..5, 0));
    write_lines(&m, "svc", &want[30..]);
    let got: Vec<String> = wait_lines(&got_file, want.len(), &lw)
        .iter()
        .map(|l| msg_of(l))
        .collect();
    // Give it time to (wrongly) feed something twice.
    std::thread::sleep(Duration::from_millis(500));
    let again: Vec<String> = lines(out.path(), "got").iter().map(|l| msg_of(l)).collect();
    assert_eq!(got, want, "{}", lw.stderr());
    assert_eq!(again, want, "{}", lw.stderr());
    let err = lw.stderr();
    assert!(
        err.contains("exited with status 3") && err.contains("starting it again"),
        "{err}"
    );
    assert!(
        zombie_children(lw.pid()).is_empty(),
        "zombies: {:?}",
        zombie_children(lw.pid())
    );
}

#[test]
fn a_program_that_never_reads_blocks_nothing_and_is_killed_at_stop() {
    let m = Memlogd::start(&["-max-lines", "100000"]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let out = TempDir::new("exec-out");
    let pidfile = out.join("pid");
    let url = format!(
        "exec:sh -c 'echo $$ > {}; exec sleep 1000'",
        pidfile.display()
    );
    let mut lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &["-remote", &url, "-max-log-size", "64M"],
    );
    // Far more than the pipe (64 KiB) and a batch (256 KiB) hold.
    let want = numbered("stuck", 0..6000, 150);
    write_lines(&m, "svc", &want);
    wait_msgs(logs.path(), "svc.log", &want, &lw);
    let mut pid = None;
    assert!(
        wait_for(
            || {
                pid = std::fs::read_to_string(&pidfile)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                pid.is_some()
            },
            TIMEOUT
        ),
        "the program never started: {}",
        lw.stderr()
    );
    let pid = pid.expect("pid");
    let _cleanup = KillOnDrop(pid);
    assert!(process_alive(pid));
    // Its own process group, no signal blocked, and none ignored that
    // logwrite ignores itself (only what logwrite inherited from us).
    let mask = |pid: &str, key: &str| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .expect(key)
            .trim()
            .to_owned();
        u64::from_str_radix(&v, 16).expect("hex")
    };
    let p = pid.to_string();
    assert_eq!(mask(&p, "SigBlk:"), 0, "signals blocked in the program");
    let extra = mask(&p, "SigIgn:") & !mask("self", "SigIgn:");
    assert_eq!(extra, 0, "signals ignored in the program: {extra:x}");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let pgrp = stat
        .rsplit_once(')')
        .expect("comm")
        .1
        .split_whitespace()
        .nth(2);
    assert_eq!(
        pgrp,
        Some(pid.to_string().as_str()),
        "its own process group"
    );
    let t = Instant::now();
    lw.signal(libc::SIGTERM);
    let st = lw.wait_exit();
    let took = t.elapsed();
    assert!(st.success(), "{st:?}: {}", lw.stderr());
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    assert!(!process_alive(pid), "the program still runs");
    let err = lw.stderr();
    assert!(err.contains("sent SIGTERM to its process group"), "{err}");
    // Nothing was read: the position saved is still before the first record.
    assert_eq!(exec_saved_seq(logs.path()), None, "{err}");
}

#[test]
fn a_kill9_of_logwrite_skips_nothing() {
    let m = Memlogd::start(&["-max-lines", "100000", "-buffer-size", "16M"]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let out = TempDir::new("exec-out");
    let got_file = out.join("got");
    let pids = out.join("pids");
    let s = script(
        &out,
        "append.sh",
        "echo $$ >> \"$2\"\nwhile IFS= read -r l; do printf '%s\\n' \"$l\" >> \"$1\"; done",
    );
    let url = format!(
        "exec:sh {} {} {}?include=svc",
        s.display(),
        got_file.display(),
        pids.display()
    );
    let mut lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &["-no-files", "-remote", &url, "-max-backoff", "300ms"],
    );
    let running = || -> Vec<u32> {
        std::fs::read_to_string(&pids)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|&p| process_alive(p))
            .collect()
    };
    // Once read and saved, a kill -9 repeats nothing.
    let mut want = numbered("k", 0..100, 0);
    write_lines(&m, "svc", &want);
    let seq = m.wait_msg("svc", &want[99]).seq.expect("seq");
    wait_lines(&got_file, 100, &lw);
    assert!(wait_for(
        || exec_saved_seq(logs.path()) == Some(seq),
        TIMEOUT
    ));
    lw.kill9();
    // The program sees the end of its stdin and exits by itself.
    assert!(wait_for(|| running().is_empty(), TIMEOUT));
    want.extend(numbered("k", 100..200, 0));
    write_lines(&m, "svc", &want[100..]);
    lw.restart(&errs);
    let got: Vec<String> = wait_lines(&got_file, 200, &lw)
        .iter()
        .map(|l| msg_of(l))
        .collect();
    assert_eq!(got, want);

    // Killed mid-stream: nothing is skipped; what was written to the pipe
    // after the last save comes again (one overlap, in order).
    let burst = numbered("k", 200..8_000, 60);
    write_lines(&m, "svc", &burst);
    lw.kill9();
    assert!(wait_for(|| running().is_empty(), TIMEOUT));
    want.extend(burst);
    lw.restart(&errs);
    let last = want.last().expect("last").clone();
    assert!(
        wait_for(
            || lines(out.path(), "got").last().map(|l| msg_of(l)) == Some(last.clone()),
            TIMEOUT
        ),
        "{}",
        lw.stderr()
    );
    let got: Vec<String> = lines(out.path(), "got").iter().map(|l| msg_of(l)).collect();
    // got = want[..k] ++ want[j..] with j <= k.
    let k = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
    let rest = &got[k..];
    let j = want.len() - rest.len();
    assert!(j <= k, "records skipped: {k} then from {j}");
    assert_eq!(rest, &want[j..], "not in order after the overlap");
    eprintln!("fed again after kill -9: {} records", k - j);
}

/// Runs logwrite with one exec: destination in `format` (`cat > FILE`)
/// over the records of `m` from source `src`; the lines the program got.
fn formatted(m: &Memlogd, src: &str, format: &str, n: usize) -> Vec<String> {
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let out = TempDir::new("exec-out");
    let file = out.join("got");
    let url = format!(
        "exec:sh -c 'cat > {}'?format={format}&include={src}",
        file.display()
    );
    let lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &["-no-files", "-remote", &url, "-hostname", "box"],
    );
    wait_lines(&file, n, &lw)
}

#[test]
fn json_is_logreads_and_rfc5424_is_one_line_each() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("fmt");
    std::io::Write::write_all(
        &mut w,
        b"plain\nquote \" and \\ back\nbad \xff\xfe utf8\nesc \x1b[2J\n",
    )
    .expect("write");
    drop(w);
    m.wait_record("the last line", |r| {
        r.source == "fmt" && r.msg.starts_with("esc")
    });
    let json = formatted(&m, "fmt", "json", 4);
    let o = run_with_timeout(
        &mut logread([
            "-socket",
            m.query_socket().to_str().expect("utf8"),
            "-o",
            "json",
            "-s",
            "fmt",
        ]),
        TIMEOUT,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let from_logread: Vec<String> = String::from_utf8(o.stdout)
        .expect("utf8")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(json, from_logread);
    for l in &json {
        let v = memlog::json::parse_object(l.as_bytes()).expect("JSON");
        let msg = memlog::json::get(&v, "msg").and_then(|m| m.as_str().map(str::to_owned));
        assert!(msg.is_some(), "no msg in {l}");
    }

    let rfc = formatted(&m, "fmt", "rfc5424", 4);
    assert_eq!(rfc.len(), 4, "{rfc:?}");
    for l in &rfc {
        assert!(l.starts_with("<14>1 ") && l.contains(" box fmt "), "{l}");
    }
    assert!(rfc[3].ends_with("esc \\x1b[2J"), "{}", rfc[3]);
    let lk = formatted(&m, "fmt", "linuxkit", 4);
    assert_eq!(
        lk.iter().map(|l| msg_of(l)).collect::<Vec<_>>(),
        [
            "plain",
            "quote \" and \\ back",
            "bad \\xff\\xfe utf8",
            "esc \\x1b[2J"
        ]
    );
}

#[test]
fn bad_exec_urls_exit_2_with_a_clear_message() {
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    for (url, says) in [
        ("exec:", "empty command"),
        ("exec:?format=json", "empty command"),
        ("exec:sh -c 'echo", "unterminated '"),
        (
            "exec:cat?format=xml",
            "format is linuxkit, json, rfc5424 or rfc3164",
        ),
        ("exec:cat?framing=lf", "no framing"),
    ] {
        let mut lw = Logwrite::start(
            Path::new("/nonexistent.sock"),
            logs.path(),
            &errs,
            &["-remote", url],
        );
        let st = lw.wait_exit();
        assert_eq!(st.code(), Some(2), "{url}: {}", lw.stderr());
        assert!(lw.stderr().contains(says), "{url}: {}", lw.stderr());
    }
}

#[test]
fn a_program_that_cannot_start_is_retried_and_said() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let mut lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &[
            "-remote",
            "exec:/nonexistent/prog --x",
            "-max-backoff",
            "200ms",
        ],
    );
    lw.wait_stderr("cannot start \"/nonexistent/prog\"");
    // The files go on meanwhile; logwrite does not exit.
    let want = numbered("f", 0..10, 0);
    write_lines(&m, "svc", &want);
    wait_msgs(logs.path(), "svc.log", &want, &lw);
    // A cheap retry: at most a few per second.
    let t0 = lw.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        lw.cpu_ticks() - t0 < 50,
        "logwrite spins: {}",
        lw.cpu_ticks() - t0
    );
    assert!(lw.alive());
    lw.signal(libc::SIGTERM);
    assert!(lw.wait_exit().success());
}

#[test]
fn a_program_that_exits_at_once_is_restarted_with_backoff_not_spinning() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let out = TempDir::new("exec-out");
    let starts = out.join("starts");
    let url = format!(
        "exec:sh -c 'echo \"$LOGWRITE_DESTINATION\" >> {}; exec 0<&-; exit 0'",
        starts.display()
    );
    let mut lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &["-remote", &url, "-max-backoff", "1s"],
    );
    write_lines(&m, "svc", &numbered("q", 0..10, 0));
    let t0 = lw.cpu_ticks();
    std::thread::sleep(Duration::from_secs(4));
    let started = lines(out.path(), "starts");
    let n = started.len();
    assert!((1..=20).contains(&n), "started {n} times in 4 s");
    assert!(
        started.iter().all(|l| l.starts_with("exec:sh -c 'echo ")),
        "{started:?}"
    );
    assert!(lw.cpu_ticks() - t0 < 100, "logwrite spins");
    wait_msgs(logs.path(), "svc.log", &numbered("q", 0..10, 0), &lw);
    lw.signal(libc::SIGTERM);
    assert!(lw.wait_exit().success(), "{}", lw.stderr());
}
