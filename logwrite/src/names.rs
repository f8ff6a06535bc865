//! Safe file names: any source name maps to one plain file name inside the
//! log directory, and two different sources never map to the same name.
//!
//! LinuxKit's logwrite joins the log directory and the source name as given
//! by any local writer, so `../../etc/x` escapes `/var/log`. Here every byte
//! that could change the meaning of a path, or hide, or confuse a terminal,
//! is written `%XX`:
//!
//! - `/` (a directory separator), NUL, control characters and space, DEL,
//!   bytes outside ASCII, and `%` itself (so the mapping stays one-to-one);
//! - a leading `.` (so `.`, `..` and hidden names cannot occur, and no source
//!   file can be mistaken for logwrite's own `.logwrite*` state files).
//!
//! The empty name becomes `%` (a lone `%` cannot come out of escaping).
//! Names longer than [`MAX_STEM`] bytes after escaping keep a readable prefix
//! and end with `%~` and 32 hex digits of the SHA-256 of the whole name: `%~`
//! never comes out of escaping either, so a shortened name cannot equal an
//! escaped one, and two shortened names are equal only if their SHA-256
//! prefixes (128 bits) are. Names LinuxKit uses (`onboot.001-dhcpcd.out`)
//! map to themselves, so files keep LinuxKit's names.

use sha2::{Digest, Sha256};

/// Longest stem (file name before `.log`): leaves room for
/// `.log.NNNNN.gz.tmp` within the 255 bytes of `NAME_MAX`.
pub const MAX_STEM: usize = 200;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// FNV-1a: the hash of the file output's small maps keyed by stem, looked
/// up several times per record. Not keyed, so only for maps whose size is
/// bounded (the open files: at most 256), where colliding names cost at
/// most a scan of that bound.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A map keyed by stem with [`Fnv`].
pub type StemMap<V> = std::collections::HashMap<String, V, std::hash::BuildHasherDefault<Fnv>>;

fn keep(b: u8) -> bool {
    b.is_ascii_graphic() && b != b'/' && b != b'%'
}

/// The file stem for `source`, its exact bytes (the file is `STEM.log`).
/// Bytes that are not UTF-8 are escaped one by one, so `\xff\xfe` is
/// `%ff%fe` and never shares a file with another name.
pub fn stem(source: &[u8]) -> String {
    let src = source;
    if src.is_empty() {
        return "%".to_owned();
    }
    let mut out = Vec::with_capacity(src.len());
    for (i, &b) in src.iter().enumerate() {
        if keep(b) && !(i == 0 && b == b'.') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
    if out.len() > MAX_STEM {
        let digest = Sha256::digest(src);
        // 2 for "%~", 32 hex digits.
        let mut cut = MAX_STEM - 34;
        // Never cut inside a %XX escape.
        while cut > 0 && out[cut.saturating_sub(2)..cut].contains(&b'%') {
            cut -= 1;
        }
        out.truncate(cut);
        out.extend_from_slice(b"%~");
        for b in &digest[..16] {
            out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
    // Every byte pushed is ASCII.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn linuxkit_names_are_unchanged() {
        for n in [
            "onboot.001-dhcpcd.out",
            "memlogd",
            "kmsg",
            "sshd.out",
            "a_b-c+d@e:f=g",
        ] {
            assert_eq!(stem(n.as_bytes()), n);
        }
    }

    #[test]
    fn hostile_names_stay_inside_and_plain() {
        for n in [
            "..",
            ".",
            "../../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            ".hidden",
            "a\0b",
            "tab\there",
            "new\nline",
            "\u{7f}",
            "caf\u{e9}",
            "",
            "%",
            "%2e",
            " ",
        ] {
            let s = stem(n.as_bytes());
            assert!(
                !s.is_empty() && !s.contains('/') && !s.starts_with('.'),
                "{n:?} -> {s:?}"
            );
            assert!(s.bytes().all(|b| b.is_ascii_graphic()), "{n:?} -> {s:?}");
            assert!(s.len() <= MAX_STEM);
        }
        assert_eq!(stem(b".."), "%2e.");
        assert_eq!(stem(b"a/b"), "a%2fb");
        assert_eq!(stem(b"%"), "%25");
        assert_eq!(stem(b""), "%");
    }

    #[test]
    fn distinct_names_never_collide() {
        let long_a = "x".repeat(300);
        let mut long_b = "x".repeat(299);
        long_b.push('y');
        let long_c = format!("{}%", "x".repeat(250));
        let names: Vec<String> = [
            "a/b",
            "a%2fb",
            "a%b",
            "%",
            "",
            ".x",
            "%2ex",
            "..",
            "%2e.",
            "a b",
            "a%20b",
            "\0",
            "%00",
            "caf\u{e9}",
            "caf%c3%a9",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([long_a.clone(), long_b, long_c, format!("{long_a}/")])
        .collect();
        let stems: HashSet<String> = names.iter().map(|n| stem(n.as_bytes())).collect();
        assert_eq!(stems.len(), names.len(), "{stems:?}");
    }

    #[test]
    fn long_names_are_capped_with_a_hash() {
        let s = stem("/".repeat(1000).as_bytes());
        assert!(s.len() <= MAX_STEM && s.contains("%~"), "{s}");
        let e = stem("é".repeat(200).as_bytes());
        assert!(e.len() <= MAX_STEM, "{e}");
        // The prefix never ends inside an escape.
        let prefix = &e[..e.find("%~").expect("hash marker")];
        assert!(prefix.len() % 3 == 0, "{prefix}");
    }

    #[test]
    fn bytes_that_are_not_utf8_stay_apart() {
        assert_eq!(stem(b"\xff\xfe"), "%ff%fe");
        assert_eq!(stem(b"\xfd\xfc"), "%fd%fc");
        assert_eq!(stem(b"a\xe2\x82"), "a%e2%82");
        // Not the lossy U+FFFD's bytes.
        assert_ne!(stem(b"\xff"), stem("\u{fffd}".as_bytes()));
    }
}
