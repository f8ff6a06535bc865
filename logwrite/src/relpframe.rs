//! RELP frames (`TXNR SP COMMAND SP DATALEN [SP DATA] LF`): the parser
//! for what a server sends, the writer for what logwrite sends, and the
//! reply code of an `rsp`. No I/O, no other module of logwrite (the fuzz
//! target compiles this file on its own).

/// Largest DATA of a frame, either way (librelp's default `maxDataSize`).
pub const MAX_DATA: usize = 128 * 1024;
/// Longest COMMAND read.
pub const MAX_COMMAND: usize = 32;

/// One frame read from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub txnr: u32,
    pub command: String,
    pub data: Vec<u8>,
}

/// Parses one frame at the start of `buf`: the frame and the bytes it
/// took, `None` if more bytes are needed, or why `buf` is no RELP frame.
/// Each header byte is checked as it arrives, so garbage is refused at
/// once, and DATALEN is bounded by [`MAX_DATA`].
pub fn parse_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    let show = |b: &[u8]| {
        let mut s = Vec::new();
        memlog::escape::write(&mut s, &b[..b.len().min(40)]);
        String::from_utf8_lossy(&s).into_owned()
    };
    // TXNR
    let mut i = 0;
    while i < buf.len() && buf[i].is_ascii_digit() {
        i += 1;
        if i > 9 {
            return Err(format!("TXNR longer than 9 digits in {:?}", show(buf)));
        }
    }
    if i == buf.len() {
        return Ok(None);
    }
    if i == 0 || buf[i] != b' ' {
        return Err(format!("not a RELP frame: {:?}", show(buf)));
    }
    let txnr: u32 = std::str::from_utf8(&buf[..i])
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("bad TXNR in {:?}", show(buf)))?;
    // COMMAND
    let c0 = i + 1;
    let mut j = c0;
    while j < buf.len() && buf[j].is_ascii_alphabetic() {
        j += 1;
        if j - c0 > MAX_COMMAND {
            return Err(format!(
                "command longer than {MAX_COMMAND} bytes in {:?}",
                show(buf)
            ));
        }
    }
    if j == buf.len() {
        return Ok(None);
    }
    if j == c0 || buf[j] != b' ' {
        return Err(format!("bad command in {:?}", show(buf)));
    }
    let command = String::from_utf8_lossy(&buf[c0..j]).into_owned();
    // DATALEN
    let d0 = j + 1;
    let mut k = d0;
    while k < buf.len() && buf[k].is_ascii_digit() {
        k += 1;
        if k - d0 > 9 {
            return Err(format!("DATALEN longer than 9 digits in {:?}", show(buf)));
        }
    }
    if k == buf.len() {
        return Ok(None);
    }
    if k == d0 {
        return Err(format!("bad DATALEN in {:?}", show(buf)));
    }
    let len: usize = std::str::from_utf8(&buf[d0..k])
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("bad DATALEN in {:?}", show(buf)))?;
    if len > MAX_DATA {
        return Err(format!(
            "DATALEN {len} is over the {MAX_DATA}-byte limit in {:?}",
            show(buf)
        ));
    }
    // [SP DATA] LF; with DATALEN 0 the SP may be there or not.
    let mut p = k;
    if buf[p] == b' ' {
        p += 1;
    } else if len > 0 || buf[p] != b'\n' {
        return Err(format!("bad frame after DATALEN in {:?}", show(buf)));
    }
    if buf.len() < p + len + 1 {
        return Ok(None);
    }
    if buf[p + len] != b'\n' {
        return Err(format!(
            "frame TXNR {txnr} does not end with LF after its {len} bytes of data"
        ));
    }
    let data = buf[p..p + len].to_vec();
    Ok(Some((
        Frame {
            txnr,
            command,
            data,
        },
        p + len + 1,
    )))
}

/// Appends `TXNR SP COMMAND SP DATALEN [SP DATA] LF`.
pub fn write_frame(out: &mut Vec<u8>, txnr: u32, command: &str, data: &[u8]) {
    out.extend_from_slice(format!("{txnr} {command} {}", data.len()).as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// The reply code of an `rsp` (`200 OK` -> 200) and its text.
pub fn rsp_code(data: &[u8]) -> (Option<u16>, String) {
    let first = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let code = first
        .get(..3)
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse().ok())
        .filter(|_| first.len() == 3 || first.get(3) == Some(&b' '));
    let mut text = Vec::new();
    memlog::escape::write(&mut text, &first[..first.len().min(200)]);
    (code, String::from_utf8_lossy(&text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(txnr: u32, command: &str, data: &[u8]) -> Frame {
        Frame {
            txnr,
            command: command.into(),
            data: data.to_vec(),
        }
    }

    #[test]
    fn frames_round_trip_and_split_anywhere() {
        let mut wire = Vec::new();
        write_frame(
            &mut wire,
            1,
            "rsp",
            b"200 OK\nrelp_version=0\ncommands=syslog",
        );
        write_frame(&mut wire, 0, "serverclose", b"");
        write_frame(&mut wire, 999_999_999, "rsp", b"500 no");
        let want = vec![
            frame(1, "rsp", b"200 OK\nrelp_version=0\ncommands=syslog"),
            frame(0, "serverclose", b""),
            frame(999_999_999, "rsp", b"500 no"),
        ];
        // Every prefix is incomplete or a whole number of frames.
        for cut in 0..wire.len() {
            let mut at = 0;
            let mut got = Vec::new();
            while let Some((f, n)) = parse_frame(&wire[at..cut]).expect("valid prefix") {
                got.push(f);
                at += n;
            }
            assert!(
                got.len() <= want.len() && want.starts_with(&got),
                "cut {cut}"
            );
        }
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((f, n)) = parse_frame(&wire[at..]).expect("valid") {
            got.push(f);
            at += n;
        }
        assert_eq!((got, at), (want, wire.len()));
        // DATALEN 0 with a space before the LF (some senders write it).
        assert_eq!(
            parse_frame(b"0 serverclose 0 \n").expect("ok"),
            Some((frame(0, "serverclose", b""), 17))
        );
    }

    #[test]
    fn garbage_is_refused_at_once() {
        for bad in [
            &b"HTTP/1.1 400 Bad Request\r\n"[..],
            b"1 rsp x",
            b"1 rsp 6 200 OKX",
            b"1234567890 rsp 0\n",
            b"1 rsp 1234567890",
            b" 1 rsp 0\n",
            b"1 r-p 0\n",
            b"1 rsp 3\n",
            b"1 rsp 6 200 OK\r",
        ] {
            assert!(
                parse_frame(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let e = parse_frame(b"1 rsp 999999999 ").expect_err("absurd DATALEN");
        assert!(e.contains("over the"), "{e}");
        assert!(parse_frame(format!("1 rsp {MAX_DATA} ").as_bytes())
            .expect("at the limit")
            .is_none());
        let long = format!("1 {} 0\n", "a".repeat(MAX_COMMAND + 1));
        assert!(parse_frame(long.as_bytes()).is_err());
    }

    #[test]
    fn reply_codes() {
        assert_eq!(rsp_code(b"200 OK"), (Some(200), "200 OK".into()));
        assert_eq!(rsp_code(b"200 OK\nrelp_version=0").0, Some(200));
        assert_eq!(rsp_code(b"500 queue full").0, Some(500));
        assert_eq!(rsp_code(b"200"), (Some(200), "200".into()));
        assert_eq!(rsp_code(b"2000 OK").0, None);
        assert_eq!(rsp_code(b"OK").0, None);
        assert_eq!(rsp_code(b"").0, None);
        assert_eq!(rsp_code(b"500 a\x1bb").1, "500 a\\x1bb");
    }
}
