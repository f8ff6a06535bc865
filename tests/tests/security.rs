//! Who may do what (SECURITY.md): the modes and group of the socket files
//! memlogd binds, checked on the files and by an unprivileged user for real.

use memlog_tests::{bin, run_with_timeout, Memlogd, TempDir};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const NOBODY: u32 = 65534;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("socket file").mode() & 0o7777
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs `args` as uid/gid 65534 with no supplementary groups.
fn as_nobody(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        &NOBODY.to_string(),
        "--regid",
        &NOBODY.to_string(),
        "--clear-groups",
        "--",
    ])
    .args(args);
    run_with_timeout(&mut cmd, Duration::from_secs(20))
}

#[test]
fn sockets_default_to_owner_and_group_and_syslog_to_everyone() {
    let dir = TempDir::new("sec-default");
    let devlog = dir.join("devlog");
    let m = Memlogd::start_in(dir, &["-syslog", devlog.to_str().expect("utf8")]);
    assert_eq!(mode(m.log_socket()), 0o660);
    assert_eq!(mode(m.query_socket()), 0o660);
    assert_eq!(mode(&devlog), 0o666);
    let me = nix::unistd::getegid().as_raw();
    assert_eq!(std::fs::metadata(m.query_socket()).expect("meta").gid(), me);
}

#[test]
fn modes_and_group_follow_the_flags() {
    if !is_root() {
        memlog_tests::skip("chown to another group needs root (CI runs as root)");
        return;
    }
    let dir = TempDir::new("sec-flags");
    let devlog = dir.join("devlog");
    let m = Memlogd::start_in(
        dir,
        &[
            "-socket-log-mode",
            "0600",
            "-socket-query-mode",
            "0640",
            "-syslog-mode",
            "0620",
            "-socket-group",
            &NOBODY.to_string(),
            "-syslog",
            devlog.to_str().expect("utf8"),
        ],
    );
    assert_eq!(mode(m.log_socket()), 0o600);
    assert_eq!(mode(m.query_socket()), 0o640);
    assert_eq!(mode(&devlog), 0o620);
    for p in [m.log_socket(), m.query_socket(), devlog.as_path()] {
        assert_eq!(
            std::fs::metadata(p).expect("meta").gid(),
            NOBODY,
            "{}",
            p.display()
        );
    }
}

#[test]
fn an_unprivileged_user_may_log_to_syslog_but_not_read_unless_in_the_group() {
    if !is_root() {
        memlog_tests::skip("needs root to act as another user (CI runs as root)");
        return;
    }
    let logread = bin("logread");
    let logread = logread.to_str().expect("utf8");
    // The temp dir must be reachable by uid 65534.
    let dir = TempDir::new("sec-user");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let devlog = dir.join("devlog");
    let m = Memlogd::start_in(dir, &["-syslog", devlog.to_str().expect("utf8")]);
    let q = m.query_socket().to_str().expect("utf8").to_owned();

    // Logging through /dev/log is open to everyone, and memlogd records who it was.
    let out = as_nobody(&[
        "logger",
        "-u",
        devlog.to_str().expect("utf8"),
        "-t",
        "nobody-app",
        "from an unprivileged user",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = m.wait_msg("nobody-app", "from an unprivileged user");
    assert_eq!(
        (r.uid, r.gid),
        (Some(NOBODY), Some(NOBODY)),
        "the kernel-reported sender"
    );

    // Reading the logs is not: the query socket is 0660, root's group.
    let out = as_nobody(&[logread, "-socket", &q]);
    assert!(
        !out.status.success(),
        "nobody read the logs: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nor sending anything to the log socket (where fds are handed over).
    let log = m.log_socket().to_str().expect("utf8").to_owned();
    let out = as_nobody(&["logger", "--socket-errors=on", "-u", &log, "x"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(m);

    // With -socket-group, members of that group may read.
    let dir = TempDir::new("sec-group");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let m = Memlogd::start_in(dir, &["-socket-group", &NOBODY.to_string()]);
    let q = m.query_socket().to_str().expect("utf8").to_owned();
    let out = as_nobody(&[logread, "-socket", &q]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("memlogd started"));
}
