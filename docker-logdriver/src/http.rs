//! The HTTP/1.1 subset dockerd's plugin client speaks: `POST /Method` with
//! a JSON body (`Content-Length`, or chunked), keep-alive, and answers with
//! a JSON body or (ReadLogs) a chunked stream.
//!
//! Why not a crate: the server side needed is a request line, three
//! headers and two body framings, about 200 lines with its bounds and
//! tests; hyper or tiny_http would bring a general server (threads, timers,
//! or an async runtime) several times this binary's size, and httparse
//! alone would still leave body framing and every limit here to us. Every
//! bound is explicit: the head is at most [`MAX_HEAD`] bytes in at most
//! [`MAX_HEADERS`] lines, a body at most [`MAX_BODY`]; anything else is a
//! 400 and the connection is closed.

use std::fmt;
use std::io::{self, BufRead, Read, Write};

/// Request line and headers, in bytes.
pub const MAX_HEAD: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 100;
/// A request body (StartLogging's `Info` carries the container's
/// environment and labels, so it is not tiny).
pub const MAX_BODY: usize = 4 << 20;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    /// The client asked to close after this request (or speaks HTTP/1.0).
    pub close: bool,
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum HttpError {
    Io(io::Error),
    /// Malformed or over a limit: answered with 400, then closed.
    Bad(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Io(e) => write!(f, "{e}"),
            HttpError::Bad(s) => f.write_str(s),
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

fn bad<T>(s: impl Into<String>) -> Result<T, HttpError> {
    Err(HttpError::Bad(s.into()))
}

/// Reads one line ending in `\n` (without it, and without a `\r` before
/// it), counting it against `budget`.
fn line(r: &mut impl BufRead, budget: &mut usize) -> Result<Option<String>, HttpError> {
    let mut buf = Vec::new();
    let n = r.take(*budget as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return if n > *budget {
            bad(format!("request head longer than {MAX_HEAD} bytes"))
        } else {
            bad("connection closed inside the request head")
        };
    }
    *budget -= n;
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .or_else(|_| bad("request head is not UTF-8"))
}

/// Reads the next request; `None` when the client closed between requests.
pub fn read_request(r: &mut impl BufRead) -> Result<Option<Request>, HttpError> {
    let mut budget = MAX_HEAD;
    // Blank lines before a request are allowed (RFC 9112 section 2.2).
    let first = loop {
        match line(r, &mut budget)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut parts = first.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad(format!("malformed request line {first:?}"));
    };
    let mut close = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return bad(format!("unsupported HTTP version {version:?}")),
    };
    if method.is_empty() || !method.bytes().all(|c| c.is_ascii_uppercase()) {
        return bad(format!("malformed method {method:?}"));
    }
    if !path.starts_with('/') {
        return bad(format!("malformed path {path:?}"));
    }
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for n in 0.. {
        let Some(h) = line(r, &mut budget)? else {
            return bad("connection closed inside the request head");
        };
        if h.is_empty() {
            break;
        }
        if n >= MAX_HEADERS {
            return bad(format!("more than {MAX_HEADERS} header lines"));
        }
        let Some((name, value)) = h.split_once(':') else {
            return bad(format!("malformed header line {h:?}"));
        };
        if name.is_empty() || name.contains([' ', '\t']) {
            return bad(format!("malformed header name {name:?}"));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            let Ok(v) = value.parse::<usize>() else {
                return bad(format!("bad Content-Length {value:?}"));
            };
            if length.is_some_and(|l| l != v) {
                return bad("two different Content-Length headers");
            }
            length = Some(v);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return bad(format!("unsupported Transfer-Encoding {value:?}"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            close |= value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"));
        } else if name.eq_ignore_ascii_case("expect") {
            return bad("Expect is not supported");
        }
    }
    let body = match (length, chunked) {
        (Some(_), true) => return bad("both Content-Length and chunked"),
        (Some(n), false) if n > MAX_BODY => {
            return bad(format!("body of {n} bytes is over {MAX_BODY}"))
        }
        (Some(n), false) => {
            let mut b = vec![0; n];
            r.read_exact(&mut b)?;
            b
        }
        (None, true) => read_chunked(r)?,
        (None, false) => Vec::new(),
    };
    Ok(Some(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        body,
        close,
    }))
}

fn read_chunked(r: &mut impl BufRead) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD;
    loop {
        let Some(size) = line(r, &mut budget)? else {
            return bad("connection closed inside a chunked body");
        };
        let hex = size.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(hex, 16) else {
            return bad(format!("bad chunk size {size:?}"));
        };
        if n > MAX_BODY - body.len() {
            return bad(format!("body over {MAX_BODY} bytes"));
        }
        if n == 0 {
            // Trailers, up to the blank line.
            loop {
                match line(r, &mut budget)? {
                    Some(l) if l.is_empty() => return Ok(body),
                    Some(_) => {}
                    None => return bad("connection closed inside chunk trailers"),
                }
            }
        }
        let at = body.len();
        body.resize(at + n, 0);
        r.read_exact(&mut body[at..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return bad("chunk not followed by CRLF");
        }
    }
}

/// The plugin protocol's content type.
pub const PLUGIN_JSON: &str = "application/vnd.docker.plugins.v1+json";

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Writes a whole response with a body.
pub fn respond(w: &mut impl Write, status: u16, body: &[u8], close: bool) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {PLUGIN_JSON}\r\nContent-Length: {}\r\n{}\r\n",
        reason(status),
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

/// A chunked response body (ReadLogs' stream of frames).
pub struct Chunked<W: Write> {
    w: W,
}

impl<W: Write> Chunked<W> {
    /// Writes the head of a 200 response whose body follows in chunks.
    pub fn start(mut w: W, content_type: &str) -> io::Result<Chunked<W>> {
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )?;
        w.flush()?;
        Ok(Chunked { w })
    }

    /// Sends `data` as one chunk (nothing for empty data: that would end it).
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        self.w.write_all(&out)?;
        self.w.flush()
    }

    /// Ends the body.
    pub fn finish(mut self) -> io::Result<()> {
        self.w.write_all(b"0\r\n\r\n")?;
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn parse(b: &[u8]) -> Result<Option<Request>, HttpError> {
        read_request(&mut BufReader::new(b))
    }

    #[test]
    fn what_go_sends() {
        let raw = b"POST /LogDriver.StartLogging HTTP/1.1\r\nHost: plugin\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 13\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n{\"File\":\"x\"}\nPOST /Plugin.Activate HTTP/1.1\r\nConnection: close\r\n\r\n";
        let mut r = BufReader::new(&raw[..]);
        let a = read_request(&mut r).expect("ok").expect("one");
        assert_eq!(a.method, "POST");
        assert_eq!(a.path, "/LogDriver.StartLogging");
        assert_eq!(a.body, b"{\"File\":\"x\"}\n");
        assert!(!a.close);
        let b = read_request(&mut r).expect("ok").expect("two");
        assert_eq!(
            (b.path.as_str(), b.body.len(), b.close),
            ("/Plugin.Activate", 0, true)
        );
        assert!(read_request(&mut r).expect("eof").is_none());
    }

    #[test]
    fn chunked_bodies() {
        let raw = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(parse(raw).expect("ok").expect("req").body, b"abcde");
    }

    #[test]
    fn bad_requests_are_refused() {
        let big = format!("POST /x HTTP/1.1\r\nA: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let many = format!(
            "POST /x HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        let huge = format!(
            "POST /x HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        for raw in [
            &b"GET\r\n\r\n"[..],
            b"POST /x HTTP/2\r\n\r\n",
            b"post /x HTTP/1.1\r\n\r\n",
            b"POST x HTTP/1.1\r\n\r\n",
            b"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
            b"POST /x HTTP/1.1\r\nNo colon\r\n\r\n",
            b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"POST /x HTTP/1.1\r\nHost: a",
            b"POST /x HTTP/1.1\r\n\xff: a\r\n\r\n",
            big.as_bytes(),
            many.as_bytes(),
            huge.as_bytes(),
        ] {
            assert!(
                matches!(parse(raw), Err(HttpError::Bad(_))),
                "{:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(80)])
            );
        }
        // A body shorter than its length is an I/O error (the peer went).
        assert!(matches!(
            parse(b"POST /x HTTP/1.1\r\nContent-Length: 9\r\n\r\nab"),
            Err(HttpError::Io(_))
        ));
    }

    #[test]
    fn responses() {
        let mut out = Vec::new();
        respond(&mut out, 200, b"{}", false).expect("w");
        assert_eq!(
            out,
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {PLUGIN_JSON}\r\nContent-Length: 2\r\n\r\n{{}}"
            )
            .as_bytes()
        );
        let mut out = Vec::new();
        let mut c = Chunked::start(&mut out, "application/octet-stream").expect("w");
        c.send(b"hello").expect("w");
        c.send(b"").expect("w");
        c.finish().expect("w");
        let s = String::from_utf8(out).expect("utf8");
        assert!(s.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), "{s:?}");
    }
}
