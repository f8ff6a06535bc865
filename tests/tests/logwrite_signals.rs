//! logwrite and signals: SIGTERM, SIGINT and SIGQUIT make it write what it took,
//! save its positions and exit 0 (files and forwarding to a real rsyslogd,
//! when installed); a restart then writes nothing twice. SIGHUP, SIGUSR1
//! and SIGUSR2 leave it running (the first two rotate every file: see
//! logwrite_hooks.rs).

use memlog::proto::Record;
use memlog_tests::logwrite::{
    have_rsyslogd, msgs, numbered, saved_position, write_lines, Logwrite, Rsyslog,
};
use memlog_tests::{wait_for, wait_until, Memlogd, TempDir, TIMEOUT};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The messages of `source`'s records up to sequence number `upto`.
fn upto(recs: &[Record], source: &str, upto: u64) -> Vec<String> {
    recs.iter()
        .filter(|r| r.source == source && r.seq.is_some_and(|s| s <= upto))
        .map(|r| r.msg.clone())
        .collect()
}

/// The messages of `stem`'s files, oldest first (no -compress).
fn all_msgs(dir: &std::path::Path, stem: &str) -> Vec<String> {
    let mut all = Vec::new();
    for i in (0..100).rev() {
        all.extend(msgs(dir, &format!("{stem}.log.{i}")));
    }
    all.extend(msgs(dir, &format!("{stem}.log")));
    all
}

fn stop_mid_stream(sig: libc::c_int) {
    // A ring that holds every record the writer can send: the check below
    // compares the files with memlogd's dump.
    let m = Memlogd::start(&[
        "-max-lines",
        "200000",
        "-buffer-size",
        "64M",
        "-rate-limit-burst",
        "0",
    ]);
    let logs = TempDir::new("lw-term");
    let errs = TempDir::new("lw-err");
    let rs = have_rsyslogd().then(Rsyslog::start);
    // Rotated often, and kept: every record the writer can send (100,000
    // lines of 69 bytes) fits in the 100 files all_msgs reads, however long
    // the stop takes on a loaded machine.
    let mut args: Vec<String> = ["-max-log-size", "128k", "-max-log-files", "99"]
        .map(String::from)
        .to_vec();
    if let Some(rs) = &rs {
        args.extend(["-remote".into(), format!("tcp://127.0.0.1:{}", rs.tcp_port)]);
    } else {
        println!("rsyslogd is not installed: files only");
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &refs);
    // A writer streams until told to stop; logwrite is stopped under it.
    let done = Arc::new(AtomicBool::new(false));
    let mut w = m.writer("stream");
    let writer = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::SeqCst) && n < 100_000 {
                let mut buf = String::new();
                for l in numbered("rec", n..n + 100, 40) {
                    buf.push_str(&l);
                    buf.push('\n');
                }
                w.write_all(buf.as_bytes()).expect("write");
                n += 100;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            n
        })
    };
    wait_until("some lines written", || {
        all_msgs(logs.path(), "stream").len() > 3000
    });
    lw.signal(sig);
    let st = lw.wait_exit();
    done.store(true, Ordering::SeqCst);
    let total = writer.join().expect("writer");
    assert_eq!(st.code(), Some(0), "{st:?}; stderr: {}", lw.stderr());
    // Every record taken is in the files and the state names the last one:
    // the file holds exactly the stream's records up to the saved position.
    let (_, seq) = saved_position(logs.path(), ".logwrite.state").expect("a position");
    let recs = m.records();
    let all_files = all_msgs(logs.path(), "stream");
    assert_eq!(all_files, upto(&recs, "stream", seq), "{}", lw.stderr());
    assert!(all_files.len() < total, "stopped after the stream ended");
    if let Some(rs) = &rs {
        let state = format!(".logwrite-remote-tcp:%2f%2f127.0.0.1:{}.state", rs.tcp_port);
        let (_, rseq) = saved_position(logs.path(), &state).expect("a remote position");
        let want = upto(&recs, "stream", rseq);
        let got = rs.wait_count("stream", want.len(), &lw);
        assert_eq!(got, want, "forwarded up to the saved position");
    }
    // A restart writes the rest, nothing twice.
    lw.start_again(&errs);
    let want = numbered("rec", 0..total, 40);
    let ok = wait_for(|| all_msgs(logs.path(), "stream") == want, TIMEOUT);
    assert!(ok, "after the restart: {}", lw.stderr());
    if let Some(rs) = &rs {
        let got = rs.wait_count("stream", want.len(), &lw);
        assert_eq!(got, want, "forwarded once each");
    }
}

#[test]
fn sigterm_writes_what_was_taken_and_exits_0() {
    stop_mid_stream(libc::SIGTERM);
}

#[test]
fn sigint_writes_what_was_taken_and_exits_0() {
    stop_mid_stream(libc::SIGINT);
}

#[test]
fn sigquit_writes_what_was_taken_and_exits_0() {
    // Ctrl-\ stops memlogd cleanly too; its default would dump core.
    stop_mid_stream(libc::SIGQUIT);
}

#[test]
fn sighup_sigusr1_sigusr2_leave_it_running() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-hup");
    let errs = TempDir::new("lw-err");
    let mut lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &[]);
    // Running (and so handling signals) once it wrote memlogd's first record.
    wait_until("memlogd.log", || {
        !msgs(logs.path(), "memlogd.log").is_empty()
    });
    let mut want = Vec::new();
    for (i, sig) in [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2]
        .into_iter()
        .enumerate()
    {
        lw.signal(sig);
        let line = format!("after signal {i}");
        write_lines(&m, "svc", std::slice::from_ref(&line));
        want.push(line);
        // SIGHUP and SIGUSR1 rotated svc.log: every line is in one of them.
        wait_until("every line in svc's files", || {
            all_msgs(logs.path(), "svc") == want
        });
        assert!(lw.alive(), "signal {sig} killed logwrite");
    }
}
