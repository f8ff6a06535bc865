//! JSON for the query socket: a string encoder that yields valid JSON for any
//! bytes, and a small parser for the flat objects memlogd sends.
//!
//! Why not serde_json: the wire objects are flat (strings, integers,
//! booleans), the encoder is on memlogd's hot path, and every client binary
//! should stay a few hundred KiB. Nested values are parsed and skipped, so a
//! newer server may add them without breaking older clients.

use std::borrow::Cow;
use std::fmt;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// For each ASCII byte: 0 = copy as is, b'u' = `\u00XX`, other = `\` + that byte.
static ESCAPE: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[0x7f] = b'u';
    t
};

/// True if any byte of `w` needs a look: a control character, `"`, `\\`,
/// DEL, or a non-ASCII byte (SWAR: eight bytes per step).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (below_space
        | has_zero(w ^ (ONES * u64::from(b'"')))
        | has_zero(w ^ (ONES * u64::from(b'\\')))
        | has_zero(w ^ (ONES * 0x7f))
        | (w & HIGH))
        != 0
}

/// Length of the prefix of `s` that needs no escaping, found 8 bytes at a time.
#[inline]
fn plain_prefix(s: &[u8]) -> usize {
    let mut i = 0;
    while i + 8 <= s.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        if word_needs_escape(u64::from_le_bytes(w)) {
            break;
        }
        i += 8;
    }
    i
}

fn write_valid_utf8(out: &mut Vec<u8>, s: &[u8]) {
    let skip = plain_prefix(s);
    if skip == s.len() {
        out.extend_from_slice(s);
        return;
    }
    let mut start = 0;
    for (i, &c) in s.iter().enumerate().skip(skip) {
        if c >= 0x80 {
            continue;
        }
        let e = ESCAPE[c as usize];
        if e == 0 {
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        if e == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 15) as usize]);
        } else {
            out.push(b'\\');
            out.push(e);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

/// Appends `s` as a quoted JSON string. Invalid UTF-8 becomes one U+FFFD per
/// offending byte (as Go's encoder does); control characters are escaped.
/// Returns true if `s` was not valid UTF-8 (the string is then lossy: see
/// [`write_raw`] for the exact bytes).
pub fn write_str(out: &mut Vec<u8>, s: &[u8]) -> bool {
    out.push(b'"');
    let mut lossy = false;
    if s.is_ascii() {
        write_valid_utf8(out, s);
    } else {
        for chunk in s.utf8_chunks() {
            write_valid_utf8(out, chunk.valid().as_bytes());
            for _ in chunk.invalid() {
                lossy = true;
                out.extend_from_slice(b"\\ufffd");
            }
        }
    }
    out.push(b'"');
    lossy
}

/// Appends bytes that are not valid UTF-8 as a JSON string that keeps them
/// exactly: valid characters as they are (JSON-escaped), `%` as `%25`, and
/// each byte of an invalid sequence as `%XX`. [`decode_raw`] reverses it.
pub fn write_raw(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    write_raw_part(out, s, 0, usize::MAX);
    out.push(b'"');
}

/// [`write_raw`]'s string content from byte `from` of `s` on, stopping
/// once `out` holds `limit` bytes, as [`write_str_part`] does (cut only
/// between whole units; at least one unit written if any is left; returns
/// where it stopped). The pieces, end to end, are the one-shot bytes.
pub fn write_raw_part(out: &mut Vec<u8>, s: &[u8], from: usize, limit: usize) -> usize {
    let mut pos = from;
    for chunk in s[from..].utf8_chunks() {
        let valid = chunk.valid();
        for c in valid.chars() {
            if out.len() >= limit && pos > from {
                return pos;
            }
            let mut b = [0u8; 4];
            let enc = c.encode_utf8(&mut b).as_bytes();
            if c == '%' {
                out.extend_from_slice(b"%25");
            } else {
                write_valid_utf8(out, enc);
            }
            pos += enc.len();
        }
        for &b in chunk.invalid() {
            if out.len() >= limit && pos > from {
                return pos;
            }
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            pos += 1;
        }
    }
    pos
}

/// The bytes a [`write_raw`] string stands for; `None` if it is malformed.
pub fn decode_raw(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1..i + 3)?;
            if !h.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Most bytes one unit of a string encodes to: a control character
/// (`\u00XX`) or an invalid byte (`\ufffd`).
pub const MAX_UNIT: usize = 6;

/// [`write_str`] in pieces: appends the encoding of `s[from..]` (without
/// the quotes) as `write_str` encodes it, and stops between two units (a
/// character, or one invalid byte) once `out` holds `limit` bytes or more.
/// At least one unit is written if any is left, so `out` ends at most
/// [`MAX_UNIT`] - 1 bytes past `limit`. Returns where in `s` it stopped
/// (`s.len()` when done); give that back as `from` to go on. The pieces,
/// end to end, are exactly the bytes of the one-shot encoding, whatever
/// the limits (`from` must be 0 or a value this returned for `s`).
pub fn write_str_part(out: &mut Vec<u8>, s: &[u8], from: usize, limit: usize) -> usize {
    let mut pos = from;
    for chunk in s[from..].utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut i = 0;
        while i < valid.len() {
            if out.len() >= limit && pos > from {
                return pos;
            }
            // Each input byte encodes to at most MAX_UNIT bytes: a run of
            // room / MAX_UNIT bytes stays within the limit (at least one
            // character).
            let take = (limit.saturating_sub(out.len()) / MAX_UNIT).max(1);
            let mut end = (i + take).min(valid.len());
            while end < valid.len() && (valid[end] & 0xc0) == 0x80 {
                end += 1;
            }
            write_valid_utf8(out, &valid[i..end]);
            pos += end - i;
            i = end;
        }
        for _ in chunk.invalid() {
            if out.len() >= limit && pos > from {
                return pos;
            }
            out.extend_from_slice(b"\\ufffd");
            pos += 1;
        }
    }
    pos
}

/// Appends an unsigned integer in decimal.
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A scalar value of a flat JSON object. Nested values are reported as
/// `Other`. Strings and numbers borrow the parsed line where they can (a
/// string without escapes is a slice of it).
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Str(Cow<'a, str>),
    /// A number, as its JSON text.
    Num(&'a str),
    Bool(bool),
    Null,
    /// An object or array (skipped, not kept).
    Other,
}

impl<'a> Value<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Num(n) => n.parse().ok(),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Num(n) => n.parse().ok(),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// Why a line is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for JsonError {}

/// A parsed flat JSON object: its keys and values in order.
pub type Object<'a> = Vec<(Cow<'a, str>, Value<'a>)>;

/// A parsed object with the bytes of each value ([`parse_object_spans`]).
pub type Spans<'a> = Vec<(Cow<'a, str>, Value<'a>, &'a [u8])>;

/// Looks up `key` in a parsed object.
pub fn get<'o, 'a>(obj: &'o Object<'a>, key: &str) -> Option<&'o Value<'a>> {
    obj.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

struct Parser<'a> {
    b: &'a [u8],
    /// The whole line as text, when it is valid UTF-8 (memlogd's always
    /// are): strings without escapes are then slices of it, validated once.
    text: Option<&'a str>,
    i: usize,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, what: &'static str) -> Result<T, JsonError> {
        Err(JsonError {
            offset: self.i,
            what,
        })
    }
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> Result<(), JsonError> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            self.err("unexpected character")
        }
    }
    fn hex4(&mut self) -> Result<u32, JsonError> {
        let h = self.b.get(self.i..self.i + 4).ok_or(JsonError {
            offset: self.i,
            what: "short \\u escape",
        })?;
        let s = std::str::from_utf8(h).map_err(|_| JsonError {
            offset: self.i,
            what: "bad \\u escape",
        })?;
        let v = u32::from_str_radix(s, 16).map_err(|_| JsonError {
            offset: self.i,
            what: "bad \\u escape",
        })?;
        self.i += 4;
        Ok(v)
    }
    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.eat(b'"')?;
        // The common case: no escape before the closing quote, and valid
        // UTF-8 (what memlogd writes): a slice of the line, no copy.
        let b: &'a [u8] = self.b;
        let start = self.i;
        if let Some(n) = memchr::memchr2(b'"', b'\\', &b[start..]) {
            if b[start + n] == b'"' {
                // Both ends are next to an ASCII quote: char boundaries.
                let s = match self.text {
                    Some(t) => t.get(start..start + n),
                    None => std::str::from_utf8(&b[start..start + n]).ok(),
                };
                if let Some(s) = s {
                    self.i = start + n + 1;
                    return Ok(Cow::Borrowed(s));
                }
            }
        }
        let mut out = Vec::new();
        loop {
            let start = self.i;
            while self.i < self.b.len() && self.b[self.i] != b'"' && self.b[self.i] != b'\\' {
                self.i += 1;
            }
            out.extend_from_slice(&self.b[start..self.i]);
            match self.b.get(self.i) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(_) => {
                    self.i += 1;
                    let c = *self.b.get(self.i).ok_or(JsonError {
                        offset: self.i,
                        what: "short escape",
                    })?;
                    self.i += 1;
                    let ch = match c {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi)
                                && self.b.get(self.i..self.i + 2) == Some(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                        .unwrap_or('\u{fffd}')
                                } else {
                                    self.i = save;
                                    '\u{fffd}'
                                }
                            } else {
                                char::from_u32(hi).unwrap_or('\u{fffd}')
                            }
                        }
                        _ => return self.err("unknown escape"),
                    };
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                }
            }
        }
        Ok(Cow::Owned(match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }))
    }
    fn value(&mut self, depth: u32) -> Result<Value<'a>, JsonError> {
        if depth > 64 {
            return self.err("nested too deep");
        }
        self.ws();
        match self.b.get(self.i) {
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Value::Other);
                }
                loop {
                    self.string()?;
                    self.eat(b':')?;
                    self.value(depth + 1)?;
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Value::Other);
                        }
                        _ => return self.err("expected , or }"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Value::Other);
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::Other);
                        }
                        _ => return self.err("expected , or ]"),
                    }
                }
            }
            Some(b't') if self.b[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Value::Bool(true))
            }
            Some(b'f') if self.b[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Value::Bool(false))
            }
            Some(b'n') if self.b[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(Value::Null)
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                self.i += 1;
                while self.i < self.b.len()
                    && matches!(
                        self.b[self.i],
                        b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'
                    )
                {
                    self.i += 1;
                }
                let b: &'a [u8] = self.b;
                let text = std::str::from_utf8(&b[start..self.i]).unwrap_or("0");
                // Plain integers (every number memlogd writes) need no
                // float parse to be known valid.
                let digits = text.strip_prefix('-').unwrap_or(text);
                let plain = !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit());
                if !plain && text.parse::<f64>().is_err() {
                    return self.err("bad number");
                }
                Ok(Value::Num(text))
            }
            _ => self.err("expected a value"),
        }
    }
}

/// Parses one JSON object (one line of the query socket). Keys of nested
/// values are kept with `Value::Other`.
pub fn parse_object(line: &[u8]) -> Result<Object<'_>, JsonError> {
    let mut obj = Vec::new();
    for_each_field(line, |k, v| obj.push((k, v)))?;
    Ok(obj)
}

/// [`parse_object`], with the bytes of each value: a nested object's
/// bytes can be parsed with [`parse_object`] in turn (the Docker log
/// driver's requests nest `Info` and its `Config` this way).
pub fn parse_object_spans(line: &[u8]) -> Result<Spans<'_>, JsonError> {
    let mut obj = Vec::new();
    fields(line, |k, v, span| obj.push((k, v, span)))?;
    Ok(obj)
}

/// Parses one JSON object as [`parse_object`] does, handing each key and
/// value to `f` in order instead of collecting them (no allocation for a
/// line without escapes). On an error, `f` may have seen some fields.
pub fn for_each_field<'a>(
    line: &'a [u8],
    mut f: impl FnMut(Cow<'a, str>, Value<'a>),
) -> Result<(), JsonError> {
    fields(line, |k, v, _| f(k, v))
}

/// [`for_each_field`], with each value's bytes.
fn fields<'a>(
    line: &'a [u8],
    mut f: impl FnMut(Cow<'a, str>, Value<'a>, &'a [u8]),
) -> Result<(), JsonError> {
    let mut p = Parser {
        b: line,
        text: std::str::from_utf8(line).ok(),
        i: 0,
    };
    p.eat(b'{')?;
    p.ws();
    if p.b.get(p.i) == Some(&b'}') {
        p.i += 1;
    } else {
        loop {
            let k = p.string()?;
            p.eat(b':')?;
            p.ws();
            let start = p.i;
            let v = p.value(0)?;
            f(k, v, &line[start..p.i]);
            p.ws();
            match p.b.get(p.i) {
                Some(b',') => p.i += 1,
                Some(b'}') => {
                    p.i += 1;
                    break;
                }
                _ => return p.err("expected , or }"),
            }
        }
    }
    p.ws();
    if p.i != p.b.len() {
        return p.err("trailing bytes after object");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &[u8]) -> String {
        let mut v = Vec::new();
        write_str(&mut v, s);
        String::from_utf8(v).expect("encoder output is UTF-8")
    }

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        assert_eq!(enc(b"plain"), r#""plain""#);
        assert_eq!(enc(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(enc(b"\n\r\t\x08\x0c"), r#""\n\r\t\b\f""#);
        assert_eq!(enc(b"\x00\x01\x1f\x7f"), r#""\u0000\u0001\u001f\u007f""#);
    }

    #[test]
    fn invalid_utf8_becomes_one_replacement_per_byte() {
        assert_eq!(enc(b"a\xffb"), r#""a\ufffdb""#);
        // A truncated 3-byte sequence: Go writes one U+FFFD per byte.
        assert_eq!(enc(b"\xe2\x82"), r#""\ufffd\ufffd""#);
        assert_eq!(enc("é€😀".as_bytes()), "\"é€😀\"");
        assert_eq!(enc(b"\xc3\xa9\xc3"), "\"é\\ufffd\"");
    }

    #[test]
    fn round_trips_every_byte_through_the_parser() {
        let all: Vec<u8> = (0u8..=255).collect();
        let mut line = b"{\"msg\":".to_vec();
        write_str(&mut line, &all);
        line.push(b'}');
        let obj = parse_object(&line).expect("parses");
        let got = get(&obj, "msg").and_then(Value::as_str).expect("msg");
        assert_eq!(
            got,
            String::from_utf8_lossy(&all[..128]).to_string() + &"\u{fffd}".repeat(128)
        );
    }

    #[test]
    fn parses_go_style_output_and_skips_nested() {
        let line = br#"{"time":"2018-07-08T09:16:53.1Z","source":"a\u003cb","msg":"\ud83d\ude00 \u00e9","seq":42,"x":{"y":[1,2,{"z":null}]},"t":true}"#;
        let o = parse_object(line).expect("parses");
        assert_eq!(get(&o, "source").and_then(Value::as_str), Some("a<b"));
        assert_eq!(get(&o, "msg").and_then(Value::as_str), Some("😀 é"));
        assert_eq!(get(&o, "seq").and_then(Value::as_u64), Some(42));
        assert_eq!(get(&o, "x"), Some(&Value::Other));
        assert_eq!(get(&o, "t").and_then(Value::as_bool), Some(true));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b""[..],
            b"[]",
            b"{",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{\"a\":\"x}",
            b"{} x",
            b"{\"a\":tru}",
        ] {
            assert!(
                parse_object(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn word_scan_agrees_with_byte_scan() {
        for b in 0u8..=255 {
            for pos in 0..8 {
                let mut w = *b"abcdefgh";
                w[pos] = b;
                let byte_says = b < 0x20 || b == b'"' || b == b'\\' || b >= 0x7f;
                assert_eq!(
                    word_needs_escape(u64::from_le_bytes(w)),
                    byte_says,
                    "byte {b:#x} at {pos}"
                );
            }
        }
        assert_eq!(plain_prefix(b"0123456789abcdef\"x"), 16);
        assert_eq!(enc(b"0123456789abcdef\"x\n"), r#""0123456789abcdef\"x\n""#);
    }

    /// Every split point, and pieces of every small size, give exactly the
    /// one-shot encoding: cuts fall only between whole units (a multi-byte
    /// character, an escape, one U+FFFD per invalid byte).
    #[test]
    fn pieces_are_exactly_the_one_shot_encoding() {
        let samples: [&[u8]; 5] = [
            "plain ascii and é€😀 and \"q\" \\ and \n\t\u{1}".as_bytes(),
            b"\xe2\x82\xac\xe2\x82 x \xf0\x9f\x98\x80\xf0\x9f\x98 \xff\xfe\xc3\xa9\xc3",
            b"\x00\x01\x1f\x7f\x80\xbf\xc0\xc1\xf5\xf8",
            b"",
            &[b'a'; 100],
        ];
        let mut all: Vec<u8> = (0u8..=255).collect();
        all.extend_from_slice("é€😀".repeat(20).as_bytes());
        for s in samples.iter().copied().chain([&all[..]]) {
            let mut whole = Vec::new();
            write_str(&mut whole, s);
            let inner = &whole[1..whole.len() - 1];
            // A stop after the first piece at every output length.
            for limit in 0..=inner.len() + 1 {
                let mut out = Vec::new();
                let at = write_str_part(&mut out, s, 0, limit);
                assert!(out.len() < limit.max(1) + MAX_UNIT, "limit {limit}");
                assert!(at == s.len() || out.len() >= limit, "stopped early");
                write_str_part(&mut out, s, at, usize::MAX);
                assert_eq!(out, inner, "split at limit {limit} (byte {at})");
            }
            // Many small pieces, each appended to a buffer that starts empty.
            for step in 1..=8 {
                let (mut pos, mut out, mut n) = (0, Vec::new(), 0);
                while pos < s.len() {
                    let mut piece = Vec::new();
                    let next = write_str_part(&mut piece, s, pos, step);
                    assert!(next > pos, "no progress");
                    assert!(piece.len() < step + MAX_UNIT);
                    out.extend_from_slice(&piece);
                    pos = next;
                    n += 1;
                }
                assert_eq!(out, inner, "pieces of {step}");
                assert!(s.is_empty() || n >= inner.len() / (step + MAX_UNIT));
            }
        }
    }

    #[test]
    fn nested_objects_can_be_read_in_turn() {
        let line = br#"{"File":"/run/x","Info":{"ContainerID":"ab","Config":{"tag":"{{.Name}}"},"ContainerArgs":["a"]}}"#;
        let top = parse_object_spans(line).expect("parses");
        assert_eq!(top[0].0, "File");
        assert_eq!(top[0].1.as_str(), Some("/run/x"));
        let info = parse_object(top[1].2).expect("nested parses");
        assert_eq!(
            get(&info, "ContainerID").and_then(Value::as_str),
            Some("ab")
        );
        let cfg = parse_object_spans(top[1].2).expect("again");
        let (_, _, raw) = cfg.iter().find(|(k, _, _)| k == "Config").expect("Config");
        let cfg = parse_object(raw).expect("Config parses");
        assert_eq!(get(&cfg, "tag").and_then(Value::as_str), Some("{{.Name}}"));
    }

    #[test]
    fn integers() {
        let mut v = Vec::new();
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            v.clear();
            write_u64(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
        }
    }
}
