//! Log and terminal injection: any local user can send a syslog message
//! holding a newline and a forged line, or escape sequences for the
//! operator's terminal. The ring and JSON keep the exact bytes; every text
//! output (logread's formats, init-shim dump) prints one line per record
//! with control characters escaped.

use memlog_tests::{bin, logread, run_with_timeout, Memlogd, TIMEOUT};
use std::os::unix::net::UnixDatagram;
use std::process::Command;

const FORGED: &[u8] =
    b"<13>app: ok\nNov 21 12:00:00 host sshd[1]: Accepted password for root\x1b]0;pwned\x07\x1b[2J";

fn with_forged_record() -> (Memlogd, std::path::PathBuf) {
    let dir = memlog_tests::TempDir::new("inject");
    let devlog = dir.join("devlog");
    let m = Memlogd::start_in(dir, &["-syslog", devlog.to_str().expect("utf8")]);
    let c = UnixDatagram::unbound().expect("socket");
    c.send_to(FORGED, &devlog).expect("send");
    let r = m.wait_record("the forged message", |r| r.source == "app");
    // Stored exactly.
    assert_eq!(
        r.msg_bytes(),
        &b"ok\nNov 21 12:00:00 host sshd[1]: Accepted password for root\x1b]0;pwned\x07\x1b[2J"[..]
    );
    (m, devlog)
}

fn assert_one_safe_line(what: &str, out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    let mine: Vec<&str> = text.lines().filter(|l| l.contains("sshd")).collect();
    assert_eq!(mine.len(), 1, "{what}: {text}");
    assert!(mine[0].contains("ok\\nNov 21"), "{what}: {text}");
    assert!(
        !out.contains(&0x1b) && !out.contains(&0x07) && !out.contains(&b'\r'),
        "{what}: control characters reached the terminal: {text:?}"
    );
    assert!(
        mine[0].contains("\\x1b]0;pwned\\x07\\x1b[2J"),
        "{what}: {text}"
    );
}

#[test]
fn logread_text_formats_print_one_escaped_line() {
    let (m, _) = with_forged_record();
    for f in ["linuxkit", "short", "precise", "iso", "kmsg", "cat"] {
        let out = run_with_timeout(
            logread(["-o", f, "-s", "app", "-socket"]).arg(m.query_socket()),
            TIMEOUT,
        );
        assert!(out.status.success(), "{f}: {out:?}");
        assert_one_safe_line(f, &out.stdout);
    }
    // JSON keeps the bytes, escaped the JSON way.
    let out = run_with_timeout(
        logread(["-o", "json", "-s", "app", "-socket"]).arg(m.query_socket()),
        TIMEOUT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok\\nNov 21") && text.contains("\\u001b]0;pwned\\u0007"),
        "{text}"
    );
}

#[test]
fn init_shim_dump_prints_one_escaped_line() {
    let (m, _) = with_forged_record();
    for f in ["text", "plain"] {
        let out = run_with_timeout(
            Command::new(bin("init-shim"))
                .args(["dump", "-o", f, "-socket"])
                .arg(m.query_socket())
                .arg("app"),
            TIMEOUT,
        );
        assert!(out.status.success(), "{f}: {out:?}");
        assert_one_safe_line(f, &out.stdout);
    }
}
