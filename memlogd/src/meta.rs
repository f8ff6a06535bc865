//! Per-record metadata stored in the ring beside a record: the sender's
//! kernel-reported credentials, syslog header fields, kernel-log fields.
//!
//! Encoding: a sequence of `key u8 | len u16 LE | value` entries. Numbers
//! are `u32`/`u64` little endian, text is raw bytes. Most records carry none.

/// Sender's pid as the kernel reported it (u32).
pub const PID: u8 = 1;
/// Sender's uid as the kernel reported it (u32).
pub const UID: u8 = 2;
/// Sender's gid as the kernel reported it (u32).
pub const GID: u8 = 3;
/// pid, uid, gid as the kernel reported them (3 × u32), the compact form.
pub const CREDS: u8 = 4;
/// Syslog tag / RFC 5424 APP-NAME (text).
pub const APP: u8 = 10;
/// Process id the sender claimed in its syslog header (text).
pub const PROCID: u8 = 11;
/// RFC 5424 MSGID (text).
pub const MSGID: u8 = 12;
/// RFC 5424 STRUCTURED-DATA, as sent (text).
pub const SD: u8 = 13;
/// The sender's own timestamp, as sent (text).
pub const STIME: u8 = 14;
/// The HOSTNAME field, when the sender included one (text).
pub const HOST: u8 = 15;
/// Kernel log sequence number (u64).
pub const KSEQ: u8 = 20;
/// Kernel log timestamp, microseconds since boot (u64).
pub const KTIME: u8 = 21;
/// A kernel continuation line `KEY=value` (text, repeatable).
pub const KV: u8 = 22;
/// Docker: the container's full id (text).
pub const CONTAINER_ID: u8 = 30;
/// Docker: the container's name, without its leading `/` (text).
pub const CONTAINER_NAME: u8 = 31;
/// Docker: the container's image, as it was named (text).
pub const IMAGE: u8 = 32;
/// Docker: the stream, `stdout` or `stderr` (text).
pub const STREAM: u8 = 33;
/// Docker: the entry's `time_nano` (when dockerd read the line), ns since
/// the epoch (u64; only stored when not negative).
pub const TIME_NANO: u8 = 34;
/// Docker: the line's end never came (the stream ended inside the line;
/// empty value). `docker logs` prints such a line without a newline.
pub const UNTERMINATED: u8 = 35;

/// Builds the metadata of one record.
#[derive(Debug, Default, Clone)]
pub struct MetaBuf(Vec<u8>);

impl MetaBuf {
    pub fn clear(&mut self) {
        self.0.clear();
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Adds a text value (cut at 65535 bytes).
    pub fn text(&mut self, key: u8, v: &[u8]) -> &mut Self {
        let v = &v[..v.len().min(u16::MAX as usize)];
        self.0.push(key);
        self.0.extend_from_slice(&(v.len() as u16).to_le_bytes());
        self.0.extend_from_slice(v);
        self
    }
    pub fn u32(&mut self, key: u8, v: u32) -> &mut Self {
        self.text(key, &v.to_le_bytes())
    }
    pub fn u64(&mut self, key: u8, v: u64) -> &mut Self {
        self.text(key, &v.to_le_bytes())
    }
    /// Adds the sender's kernel-reported credentials.
    pub fn creds(&mut self, c: crate::sys::Creds) -> &mut Self {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&c.pid.to_le_bytes());
        b[4..8].copy_from_slice(&c.uid.to_le_bytes());
        b[8..12].copy_from_slice(&c.gid.to_le_bytes());
        self.text(CREDS, &b)
    }
}

/// Iterates over the entries of encoded metadata; stops at malformed bytes.
pub fn entries(mut b: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 3 {
            return None;
        }
        let key = b[0];
        let len = u16::from_le_bytes([b[1], b[2]]) as usize;
        let v = b.get(3..3 + len)?;
        b = &b[3 + len..];
        Some((key, v))
    })
}

/// The first value stored under `key`, if any.
pub fn find(m: &[u8], key: u8) -> Option<&[u8]> {
    entries(m).find(|&(k, _)| k == key).map(|(_, v)| v)
}

/// The (pid, uid, gid) of a [`CREDS`] entry.
pub fn creds(v: &[u8]) -> Option<(u32, u32, u32)> {
    if v.len() != 12 {
        return None;
    }
    let n = |i: usize| u32::from_le_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
    Some((n(0), n(4), n(8)))
}

/// A number stored with [`MetaBuf::u32`] or [`MetaBuf::u64`].
pub fn number(v: &[u8]) -> Option<u64> {
    match v.len() {
        4 => Some(u64::from(u32::from_le_bytes([v[0], v[1], v[2], v[3]]))),
        8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(v);
            Some(u64::from_le_bytes(a))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut m = MetaBuf::default();
        m.u32(PID, 42)
            .text(APP, b"sshd")
            .u64(KSEQ, 1 << 40)
            .text(KV, b"SUBSYSTEM=pci");
        let got: Vec<(u8, Vec<u8>)> = entries(m.as_bytes())
            .map(|(k, v)| (k, v.to_vec()))
            .collect();
        assert_eq!(got.len(), 4);
        assert_eq!(number(&got[0].1), Some(42));
        assert_eq!(got[1], (APP, b"sshd".to_vec()));
        assert_eq!(number(&got[2].1), Some(1 << 40));
        assert_eq!(got[3].1, b"SUBSYSTEM=pci");
        let mut c = MetaBuf::default();
        c.creds(crate::sys::Creds {
            pid: 1,
            uid: 2,
            gid: 3,
        });
        let (k, v) = entries(c.as_bytes()).next().expect("entry");
        assert_eq!((k, creds(v)), (CREDS, Some((1, 2, 3))));
        // Truncated input ends the iteration instead of panicking.
        assert_eq!(entries(&m.as_bytes()[..5]).count(), 0);
    }
}
