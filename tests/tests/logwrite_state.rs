//! logwrite without a usable saved position: the state file deleted
//! between two runs, damaged, or naming a record this memlogd has not
//! reached. The file output matches memlogd's buffer against the files
//! (no line twice, none missing); a remote starts from memlogd's oldest
//! record; both say so on stderr.

use memlog::proto::Line;
use memlog_tests::logwrite::{
    msgs, numbered, saved_position, wait_msgs, write_lines, Logwrite, TcpSink,
};
use memlog_tests::{wait_until, Memlogd, TempDir};

/// The instance id of a running memlogd (from a dump's hello).
fn instance(m: &Memlogd) -> u64 {
    match m.dump().first() {
        Some(Line::Hello { instance, .. }) => *instance,
        other => panic!("no hello: {other:?}"),
    }
}

/// Runs logwrite over sources a and b, stops it (kill -9 once it wrote
/// everything), lets `spoil` change the state, writes more to a and to a
/// new source c, starts logwrite again and checks every file holds each
/// of its lines once. Returns the second logwrite.
fn second_run(tag: &str, spoil: impl FnOnce(&Memlogd, &TempDir)) -> Run {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new(tag);
    let errs = TempDir::new("lw-err");
    let mut lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &[]);
    let mut a = numbered("a", 0..20, 0);
    let b = numbered("b", 0..5, 0);
    write_lines(&m, "a", &a);
    write_lines(&m, "b", &b);
    wait_msgs(logs.path(), "a.log", &a, &lw);
    wait_msgs(logs.path(), "b.log", &b, &lw);
    wait_until("memlogd.log", || {
        !msgs(logs.path(), "memlogd.log").is_empty()
    });
    wait_until("a saved position", || {
        saved_position(logs.path(), ".logwrite.state").is_some()
    });
    lw.kill9();
    spoil(&m, &logs);
    let a2 = numbered("a", 20..30, 0);
    let c = numbered("c", 0..3, 0);
    write_lines(&m, "a", &a2);
    write_lines(&m, "c", &c);
    a.extend(a2);
    lw.restart(&errs);
    wait_msgs(logs.path(), "a.log", &a, &lw);
    wait_msgs(logs.path(), "c.log", &c, &lw);
    // Nothing more comes: a last line after everything, and each file once.
    write_lines(&m, "b", &["last".to_string()]);
    let mut b2 = b.clone();
    b2.push("last".into());
    wait_msgs(logs.path(), "b.log", &b2, &lw);
    assert_eq!(msgs(logs.path(), "a.log"), a);
    let started = msgs(logs.path(), "memlogd.log")
        .iter()
        .filter(|l| *l == "memlogd started")
        .count();
    assert_eq!(
        started,
        1,
        "memlogd.log: {:?}",
        msgs(logs.path(), "memlogd.log")
    );
    Run {
        lw,
        _dirs: (logs, errs),
    }
}

/// The second logwrite, and the directories it uses.
struct Run {
    lw: Logwrite,
    _dirs: (TempDir, TempDir),
}

#[test]
fn a_deleted_state_is_matched_against_the_files() {
    let run = second_run("lw-nostate", |_, logs| {
        std::fs::remove_file(logs.join(".logwrite.state")).expect("rm state");
    });
    // a's 20 lines, b's 5, memlogd's start: in the files already.
    run.lw.wait_stderr(
        "(there is none): matched memlogd's buffer against the last lines of each file, 26 records taken as written",
    );
}

#[test]
fn a_damaged_state_is_matched_against_the_files() {
    let run = second_run("lw-badstate", |_, logs| {
        std::fs::write(logs.join(".logwrite.state"), "garbage\n").expect("write");
    });
    run.lw.wait_stderr("state does not start with");
    run.lw.wait_stderr("26 records taken as written");
}

#[test]
fn a_position_ahead_of_memlogd_skips_nothing() {
    let run = second_run("lw-ahead", |m, logs| {
        let state = format!(
            "logwrite-state 1\nposition {:016x}:999999999\n",
            instance(m)
        );
        std::fs::write(logs.join(".logwrite.state"), state).expect("write");
    });
    run.lw
        .wait_stderr("(it names record 999999999 of this memlogd, which has only reached record");
    run.lw.wait_stderr("26 records taken as written");
}

#[test]
fn a_remote_whose_position_is_ahead_starts_from_the_oldest_record() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-rahead");
    let errs = TempDir::new("lw-err");
    let sink = TcpSink::start();
    let state = format!(
        "logwrite-state 1\nposition {:016x}:999999999\n",
        instance(&m)
    );
    std::fs::write(logs.join(sink.state_file()), state).expect("write");
    let want = numbered("fwd", 0..5, 0);
    write_lines(&m, "fwd", &want);
    let url = sink.url();
    let lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &["-no-files", "-remote", &url],
    );
    wait_until("forwarding", || sink.text().contains(&want[4]));
    lw.wait_stderr("(it names record 999999999 of this memlogd");
    lw.wait_stderr("forwarding from memlogd's oldest record (the server may get records twice)");
    for w in &want {
        assert_eq!(sink.text().matches(&format!(" {w}")).count(), 1, "{w}");
    }
}

/// Matching is by content, not by clock: a file from an earlier boot whose
/// lines carry later times than this boot's records (a machine without a
/// real-time clock comes up with its time behind) gets every record.
#[test]
fn records_older_than_a_files_end_are_written_when_not_in_it() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-clock");
    let errs = TempDir::new("lw-err");
    std::fs::write(
        logs.join("a.log"),
        "2099-01-01T00:00:00Z a from an earlier boot\n",
    )
    .expect("write");
    let a = numbered("a", 0..10, 0);
    write_lines(&m, "a", &a);
    m.wait_msg("a", &a[9]);
    let lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &[]);
    let mut want = vec!["from an earlier boot".to_string()];
    want.extend(a);
    wait_msgs(logs.path(), "a.log", &want, &lw);
    lw.wait_stderr("0 records taken as written; 1 files did not end in a record memlogd holds");
    assert_eq!(msgs(logs.path(), "a.log"), want);
}
