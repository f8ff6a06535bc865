//! Log text for people: every text output (logread's formats, logwrite's
//! files, init-shim dump, memlogd -echo) writes messages and source names
//! through here, so that a logged message can neither forge a line nor
//! drive the operator's terminal.
//!
//! Any local user can put any bytes into a syslog message. Written raw, a
//! `\n` followed by `Nov 21 12:00:00 sshd[1]: Accepted password for root`
//! is a forged `sshd` line in a file, and `ESC ]` or `ESC [` sequences are
//! commands to the terminal that shows it. The ring and the JSON output keep
//! the exact bytes (JSON escapes them); text is escaped as journalctl and
//! systemd do (C-style escapes):
//!
//! - `\n` and `\r` are written `\n` and `\r`;
//! - every other C0 control character (0x00-0x1f) except TAB, DEL (0x7f),
//!   and the C1 control characters U+0080-U+009F (which some terminals read
//!   as ESC sequences: U+009B is CSI) are written `\xNN`, byte by byte;
//! - bytes that are not valid UTF-8 are written `\xNN`, so nothing is lost
//!   for a reader who needs to know what was sent;
//! - TAB and every other character (printable ASCII, valid UTF-8) are
//!   written as they are, and so is `\` itself: a line without control
//!   characters prints exactly as LinuxKit's tools print it. The escaping
//!   is for safety, not a reversible encoding; `-o json` gives the bytes.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// True if `b` is written as it is (fast path: printable ASCII and TAB).
#[inline]
fn plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) || b == b'\t'
}

/// Every byte of `s` is [`plain`]: 32 bytes at a time without an early
/// exit inside a block, which the compiler turns into vector compares.
fn all_plain(s: &[u8]) -> bool {
    let mut blocks = s.chunks_exact(32);
    for b in &mut blocks {
        if !b.iter().fold(true, |ok, &c| ok & plain(c)) {
            return false;
        }
    }
    blocks.remainder().iter().all(|&c| plain(c))
}

fn hex(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(&[
        b'\\',
        b'x',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 15)],
    ]);
}

fn control(out: &mut Vec<u8>, b: u8) {
    match b {
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        _ => hex(out, b),
    }
}

/// Appends `s` with control characters and invalid UTF-8 escaped (see the
/// module documentation). `also` is a byte escaped as `\` + itself (`;` in
/// LinuxKit's `TIME;SOURCE;MSG` source names), or `None`.
pub fn write_with(out: &mut Vec<u8>, s: &[u8], also: Option<u8>) {
    if also.is_none() && all_plain(s) {
        out.extend_from_slice(s);
        return;
    }
    for chunk in s.utf8_chunks() {
        let valid = chunk.valid();
        let mut start = 0;
        for (i, c) in valid.char_indices() {
            let u = c as u32;
            let esc = (u < 0x20 && c != '\t')
                || (0x7f..=0x9f).contains(&u)
                || Some(u) == also.map(u32::from);
            if !esc {
                continue;
            }
            out.extend_from_slice(&valid.as_bytes()[start..i]);
            if Some(u) == also.map(u32::from) {
                out.push(b'\\');
                out.push(u as u8);
            } else if u < 0x80 {
                control(out, u as u8);
            } else {
                for &b in c.encode_utf8(&mut [0u8; 4]).as_bytes() {
                    hex(out, b);
                }
            }
            start = i + c.len_utf8();
        }
        out.extend_from_slice(&valid.as_bytes()[start..]);
        for &b in chunk.invalid() {
            hex(out, b);
        }
    }
}

/// Appends a message (or any text) escaped for display.
pub fn write(out: &mut Vec<u8>, s: &[u8]) {
    write_with(out, s, None)
}

/// `s` escaped for display, as a `String` (for messages on stderr).
pub fn display(s: &[u8]) -> String {
    let mut v = Vec::with_capacity(s.len());
    write(&mut v, s);
    // Every byte written is ASCII or part of a valid UTF-8 character.
    String::from_utf8(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &[u8]) -> String {
        display(s)
    }

    #[test]
    fn plain_text_is_unchanged() {
        for s in [
            "",
            "hello world",
            "a\tb",
            "C:\\dir\\file",
            "caf\u{e9} \u{65e5}\u{672c}",
            "x;y",
        ] {
            assert_eq!(e(s.as_bytes()), s);
        }
    }

    #[test]
    fn a_forged_line_stays_on_one_line() {
        let forged = b"ok\nNov 21 12:00:00 sshd[1]: Accepted password for root\r\n";
        let out = e(forged);
        assert!(!out.contains('\n') && !out.contains('\r'), "{out}");
        assert_eq!(
            out,
            "ok\\nNov 21 12:00:00 sshd[1]: Accepted password for root\\r\\n"
        );
    }

    #[test]
    fn terminal_controls_are_escaped() {
        assert_eq!(e(b"\x1b]0;owned\x07"), "\\x1b]0;owned\\x07");
        assert_eq!(e(b"\x1b[2J"), "\\x1b[2J");
        assert_eq!(e(b"a\x00b\x7fc"), "a\\x00b\\x7fc");
        // C1 CSI (U+009B) in UTF-8, and NEL (U+0085).
        assert_eq!(e("x\u{9b}31m\u{85}".as_bytes()), "x\\xc2\\x9b31m\\xc2\\x85");
        // U+00A0 and above are printable.
        assert_eq!(e("\u{a0}".as_bytes()), "\u{a0}");
    }

    #[test]
    fn invalid_utf8_is_kept_as_hex() {
        assert_eq!(e(b"\xff\xfe"), "\\xff\\xfe");
        assert_eq!(e(b"a\xe2\x82b"), "a\\xe2\\x82b");
        assert_ne!(e(b"\xff\xfe"), e(b"\xfd\xfc"));
        // The output is always valid UTF-8 without control characters.
        let all: Vec<u8> = (0..=255u8).collect();
        let out = e(&all);
        assert!(out.chars().all(|c| c == '\t' || !c.is_control()), "{out}");
    }

    #[test]
    fn extra_byte_is_backslashed() {
        let mut v = Vec::new();
        write_with(&mut v, b"a;b\n", Some(b';'));
        assert_eq!(v, b"a\\;b\\n");
    }
}
