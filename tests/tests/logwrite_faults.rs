//! logwrite under real faults: a full filesystem (a small tmpfs), a
//! read-only bind mount, permission denied (logwrite run as an unprivileged
//! user), and the log directory removed while it runs. Each time it must
//! keep running, report, retry, and when the fault is gone write everything
//! the ring still holds, counting the rest as lost.
//!
//! Also one source's file that cannot be written (a directory or a
//! symbolic link at its name, past the file size limit): the others go on.
//!
//! Mounting needs root (CI runs as root); without it these tests print why
//! and return.

use memlog_tests::logwrite::{
    lines, mount, msgs, numbered, wait_msgs, write_lines, Logwrite, Mounted,
};
use memlog_tests::{wait_for, wait_until, Memlogd, TempDir, TIMEOUT};
use std::os::unix::process::CommandExt;
use std::path::Path;

/// Mounts a tmpfs of `size` at `path`, or says why not.
fn tmpfs(path: &Path, size: &str) -> Option<Mounted> {
    std::fs::create_dir_all(path).expect("mkdir");
    match mount(&[
        "-t",
        "tmpfs",
        "-o",
        &format!("size={size}"),
        "tmpfs",
        &path.display().to_string(),
    ]) {
        Ok(()) => Some(Mounted {
            path: path.to_path_buf(),
        }),
        Err(e) => {
            memlog_tests::skip(&format!("cannot mount a tmpfs ({e}); this test needs root"));
            None
        }
    }
}

fn remount(path: &Path, opts: &str) {
    mount(&["-o", opts, &path.display().to_string()]).expect("remount");
}

#[test]
fn disk_full_then_room_again_writes_everything() {
    let root = TempDir::new("lw-full");
    let logs = root.join("logs");
    let Some(_mnt) = tmpfs(&logs, "64k") else {
        return;
    };
    let m = Memlogd::start(&["-max-lines", "100000", "-buffer-size", "16M"]);
    let errs = TempDir::new("lw-err");
    let mut lw = Logwrite::start(m.query_socket(), &logs, &errs, &["-max-log-size", "10M"]);
    let want = numbered("big", 0..1500, 100);
    write_lines(&m, "big", &want);
    lw.wait_stderr("No space left");
    assert!(lw.alive(), "logwrite died: {}", lw.stderr());
    assert!(msgs(&logs, "big.log").len() < want.len());
    remount(&logs, "remount,size=4m");
    wait_msgs(&logs, "big.log", &want, &lw);
    lw.wait_stderr("writing again");
    assert!(lw.alive());
    // No lost-records note: the ring held everything.
    assert!(!msgs(&logs, "memlogd.log")
        .iter()
        .any(|l| l.contains("records lost")));
}

#[test]
fn disk_full_while_the_ring_overruns_counts_the_lost() {
    let root = TempDir::new("lw-full2");
    let logs = root.join("logs");
    let Some(_mnt) = tmpfs(&logs, "32k") else {
        return;
    };
    let m = Memlogd::start(&["-max-lines", "300"]);
    let errs = TempDir::new("lw-err");
    let lw = Logwrite::start(m.query_socket(), &logs, &errs, &["-max-log-size", "10M"]);
    let mut want = numbered("big", 0..2000, 100);
    // logwrite is following before the flood (so everything counts).
    want[0] = "first".into();
    write_lines(&m, "big", &want[..1]);
    wait_msgs(&logs, "big.log", &want[..1], &lw);
    write_lines(&m, "big", &want[1..]);
    lw.wait_stderr("No space left");
    remount(&logs, "remount,size=4m");
    // The ring's last record ends up written.
    wait_until("the last record", || {
        msgs(&logs, "big.log").last() == want.last()
    });
    let got = msgs(&logs, "big.log");
    // In order, no duplicates, a gap in the middle.
    let idx: Vec<usize> = got
        .iter()
        .map(|l| {
            want.iter()
                .position(|w| w == l)
                .unwrap_or_else(|| panic!("not a line written: {l:?}"))
        })
        .collect();
    assert!(idx.windows(2).all(|w| w[0] < w[1]), "out of order or twice");
    assert!(got.len() < want.len());
    // The lost count is exact: every record memlogd ever had is either in a
    // file or counted as lost (the note may land a moment after big.log).
    let total = m.stat("next");
    let count = || {
        let mem = msgs(&logs, "memlogd.log");
        let notes: Vec<u64> = mem
            .iter()
            .filter_map(|l| l.split_once(" records lost"))
            .map(|(n, _)| n.parse().expect("a count"))
            .collect();
        let memlogd_written = mem.iter().filter(|l| !l.contains("records lost")).count() as u64;
        (notes, msgs(&logs, "big.log").len() as u64 + memlogd_written)
    };
    let mut last = (Vec::new(), 0);
    let ok = wait_for(
        || {
            last = count();
            last.0.iter().sum::<u64>() + last.1 == total
        },
        TIMEOUT,
    );
    assert!(
        ok && !last.0.is_empty(),
        "lost {:?} + written {} != {total}; {}",
        last.0,
        last.1,
        lw.stderr()
    );
    lw.wait_stderr("records lost");
}

#[test]
fn read_only_filesystem_then_writable() {
    let root = TempDir::new("lw-ro");
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let p = logs.display().to_string();
    if let Err(e) = mount(&["--bind", &p, &p]) {
        memlog_tests::skip(&format!("cannot bind-mount ({e}); this test needs root"));
        return;
    }
    let _mnt = Mounted { path: logs.clone() };
    remount(&logs, "remount,bind,ro");
    let m = Memlogd::start(&[]);
    let errs = TempDir::new("lw-err");
    let lw = Logwrite::start(m.query_socket(), &logs, &errs, &[]);
    let want = numbered("ro", 0..50, 0);
    write_lines(&m, "svc", &want);
    lw.wait_stderr("Read-only file system");
    remount(&logs, "remount,bind,rw");
    wait_msgs(&logs, "svc.log", &want, &lw);
    lw.wait_stderr("writing again");
}

#[test]
fn permission_denied_then_granted() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        memlog_tests::skip("needs root to run logwrite as another user");
        return;
    }
    let root = TempDir::new("lw-perm");
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    use std::os::unix::fs::PermissionsExt;
    let m = Memlogd::start(&[]);
    // The unprivileged user must reach the socket.
    for p in [m.dir().path(), root.path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(m.query_socket(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod socket");
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let errs = TempDir::new("lw-err");
    let args = vec![
        "-socket".to_string(),
        m.query_socket().display().to_string(),
        "-log-dir".to_string(),
        logs.display().to_string(),
    ];
    let lw = Logwrite::start_with(&errs, args, |cmd| {
        cmd.uid(65534).gid(65534);
    });
    let want = numbered("perm", 0..30, 0);
    write_lines(&m, "svc", &want);
    lw.wait_stderr("Permission denied");
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    wait_msgs(&logs, "svc.log", &want, &lw);
}

#[test]
fn log_directory_removed_while_running() {
    let root = TempDir::new("lw-gone");
    let logs = root.join("logs");
    let m = Memlogd::start(&[]);
    let errs = TempDir::new("lw-err");
    let mut lw = Logwrite::start(m.query_socket(), &logs, &errs, &[]);
    let a = numbered("before", 0..20, 0);
    write_lines(&m, "svc", &a);
    wait_msgs(&logs, "svc.log", &a, &lw);
    // logwrite may be saving its state right then: retry until gone.
    let gone = wait_for(|| std::fs::remove_dir_all(&logs).is_ok(), TIMEOUT);
    assert!(gone, "cannot remove {}", logs.display());
    // Noticed by the periodic check ("was removed") or by the next save
    // of the state (ENOENT), whichever comes first.
    assert!(
        memlog_tests::wait_for(
            || {
                let e = lw.stderr();
                e.contains("was removed") || e.contains("No such file or directory")
            },
            memlog_tests::TIMEOUT
        ),
        "logwrite did not notice: {}",
        lw.stderr()
    );
    let b = numbered("after", 0..20, 0);
    write_lines(&m, "svc", &b);
    // The directory comes back with what came after, each line once.
    let ok = wait_for(|| msgs(&logs, "svc.log").len() >= b.len(), TIMEOUT);
    assert!(ok, "stderr: {}", lw.stderr());
    assert_eq!(msgs(&logs, "svc.log"), b, "{:?}", lines(&logs, "svc.log"));
    assert!(lw.alive());
}

#[test]
fn one_bad_file_does_not_stop_the_others() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-bad");
    let errs = TempDir::new("lw-err");
    // svc.log is a directory, bad.log a dangling symbolic link.
    std::fs::create_dir(logs.join("svc.log")).expect("mkdir");
    std::os::unix::fs::symlink("nowhere", logs.join("bad.log")).expect("symlink");
    let mut lw = Logwrite::start(m.query_socket(), logs.path(), &errs, &[]);
    write_lines(&m, "svc", &numbered("svc", 0..3, 0));
    write_lines(&m, "bad", &numbered("bad", 0..2, 0));
    let other = numbered("other", 0..5, 0);
    write_lines(&m, "other", &other);
    wait_msgs(logs.path(), "other.log", &other, &lw);
    lw.wait_stderr("svc.log: opening it: Is a directory");
    lw.wait_stderr("bad.log: opening it: Too many levels of symbolic links");
    lw.wait_stderr("skipping its records (");
    // Nothing failed as a whole, so nothing was "written again".
    assert!(!lw.stderr().contains("again"), "{}", lw.stderr());
    // The directory goes: svc's file is tried again, and written.
    std::fs::remove_dir(logs.join("svc.log")).expect("rmdir");
    let mut i = 0;
    let resumed = wait_for(
        || {
            write_lines(&m, "svc", &[format!("resumed {i:03}")]);
            i += 1;
            !msgs(logs.path(), "svc.log").is_empty()
        },
        TIMEOUT,
    );
    assert!(resumed, "svc.log never written: {}", lw.stderr());
    lw.wait_stderr("svc.log again");
    // What was skipped is not there; what came after is, each once.
    let n = i;
    wait_until("the last resumed line", || {
        msgs(logs.path(), "svc.log").last() == Some(&format!("resumed {:03}", n - 1))
    });
    let got = msgs(logs.path(), "svc.log");
    let first: usize = got[0]["resumed ".len()..].parse().expect("a number");
    let want: Vec<String> = (first..n).map(|k| format!("resumed {k:03}")).collect();
    assert_eq!(got, want);
    // The link was not written through, nor replaced.
    assert!(std::fs::symlink_metadata(logs.join("bad.log"))
        .expect("stat")
        .file_type()
        .is_symlink());
    assert!(!logs.join("nowhere").exists());
    assert!(lw.alive());
}

#[test]
fn a_file_past_the_size_limit_is_put_aside() {
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-fsize");
    let errs = TempDir::new("lw-err");
    // big.log is already past the file size limit logwrite runs under.
    let mut line = vec![b'x'; 1023];
    line.push(b'\n');
    std::fs::write(logs.join("big.log"), line.repeat(70)).expect("write");
    let args = vec![
        "-socket".to_string(),
        m.query_socket().display().to_string(),
        "-log-dir".to_string(),
        logs.path().display().to_string(),
        "-max-log-size".to_string(),
        "10M".to_string(),
    ];
    let mut lw = Logwrite::start_with(&errs, args, |cmd| {
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 64 * 1024,
                    rlim_max: 64 * 1024,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    });
    write_lines(&m, "big", &numbered("big", 0..3, 0));
    let small = numbered("small", 0..5, 0);
    write_lines(&m, "small", &small);
    wait_msgs(logs.path(), "small.log", &small, &lw);
    lw.wait_stderr("big.log: writing it: File too large");
    assert_eq!(
        std::fs::metadata(logs.join("big.log")).expect("stat").len(),
        70 * 1024
    );
    assert!(lw.alive());
}
