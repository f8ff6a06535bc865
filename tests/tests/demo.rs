//! The README's first command, `memlog-demo`: logs flow, its hints can be
//! run as printed, and Ctrl-C (SIGINT) stops everything it started,
//! removes its directory and prints its closing message.

use memlog_tests::{bin, pids_with_cmdline, signal, wait_child, OutputLines, Running, TIMEOUT};
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[test]
fn ctrl_c_stops_the_demo_cleanly() {
    let mut demo = Running::spawn(
        Command::new(bin("memlog-demo"))
            .arg("600")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let out = OutputLines::spawn(demo.child.stdout.take().expect("stdout"));
    let first = out.expect();
    let dir = PathBuf::from(
        first
            .strip_prefix("memlogd is running in ")
            .and_then(|r| r.split(" (").next())
            .unwrap_or_else(|| panic!("first line: {first}")),
    );
    assert!(dir.is_dir());
    let seen = out.until("tick 2");
    let text = seen.join("\n");
    assert!(text.contains("NAME.out, its stderr NAME"), "{text}");
    // The logread hint names the binary by its full path: it runs as printed.
    let hint = seen
        .iter()
        .find(|l| l.starts_with("following with: "))
        .expect("hint");
    let logread = hint
        .strip_prefix("following with: ")
        .and_then(|r| r.split(' ').next())
        .expect("path");
    assert_eq!(PathBuf::from(logread), bin("logread"));
    assert!(seen
        .iter()
        .any(|l| l.ends_with(";onboot.001-hello.out;hello from an onboot service")));
    signal(demo.child.id(), libc::SIGINT).expect("SIGINT");
    let st = wait_child(&mut demo.child, TIMEOUT).expect("the demo exits");
    assert!(st.success(), "{st}");
    let rest = out.until("removed");
    let tail = rest.join("\n");
    assert!(
        tail.contains("logwrite wrote one file per source"),
        "{tail}"
    );
    assert!(tail.contains("ticker.out.log: "), "{tail}");
    assert!(
        rest.last()
            .is_some_and(|l| l.starts_with("SIGINT received: stopped")),
        "{tail}"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    let d = dir.display().to_string();
    assert!(pids_with_cmdline(&d).is_empty(), "processes left running");
}
