//! `LogDriver.ReadLogs` (`docker logs`): the container's records from
//! memlogd's ring, selected by memlogd itself (`container=ID`, `since=`,
//! `until=`, `last=`; PROTOCOL.md), sent back as dockerd's frames.
//!
//! The request is `{"Info": {...}, "Config": {"Since", "Until", "Tail",
//! "Follow"}}` (moby's proxy.go; its documentation says `ReadConfig`, which
//! is taken too). Each record becomes one `LogEntry` with the stream it came
//! from and dockerd's own time of the line (`time_nano`, kept beside
//! memlogd's receive time). Records the ring overwrote are not there.

use crate::driver::{error_json, object_field, Driver};
use crate::http::{self, Chunked};
use crate::tag::Info;
use memlog::client::Client;
use memlog::dockerlog::{self, Entry};
use memlog::json::{self, Value};
use memlog::proto::{Line, Mode, Record, Request};
use memlog::timefmt;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// How often a follow looks whether dockerd hung up while nothing came.
const HANGUP_CHECK: Duration = Duration::from_millis(250);

/// What `docker logs` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadConfig {
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
    /// `None`: all (`Tail` -1).
    pub tail: Option<u64>,
    pub follow: bool,
}

/// Go's `time.Time` in JSON; its zero value means "not set".
fn go_time(v: &Value) -> Result<Option<i64>, String> {
    let Some(s) = v.as_str() else {
        return Err(format!("a time is not a string: {v:?}"));
    };
    if s.starts_with("0001-01-01T00:00:00") {
        return Ok(None);
    }
    timefmt::parse_rfc3339(s)
        .map(Some)
        .ok_or_else(|| format!("bad time {s:?}"))
}

impl ReadConfig {
    pub fn parse(raw: Option<&[u8]>) -> Result<ReadConfig, String> {
        let mut c = ReadConfig::default();
        let Some(raw) = raw else {
            return Ok(c);
        };
        let obj = json::parse_object(raw).map_err(|e| format!("Config: {e}"))?;
        for (k, v) in &obj {
            match k.as_ref() {
                "Since" => c.since_ns = go_time(v)?,
                "Until" => c.until_ns = go_time(v)?,
                "Tail" => {
                    let n = v.as_i64().ok_or("Tail is not an integer")?;
                    c.tail = u64::try_from(n).ok();
                }
                "Follow" => c.follow = v.as_bool().ok_or("Follow is not a boolean")?,
                _ => {}
            }
        }
        Ok(c)
    }

    /// The query for memlogd. `until` is widened by a second: memlogd
    /// selects by its receive time, dockerd by its own (a little earlier),
    /// and dockerd ends the stream at the first entry after `Until` itself.
    pub fn request(&self, container: &str) -> Request {
        let mut req = Request::new(if self.follow {
            Mode::DumpFollow
        } else {
            Mode::Dump
        });
        req.containers = vec![container.as_bytes().to_vec()];
        req.since_ns = self.since_ns;
        req.until_ns = self.until_ns.map(|u| u.saturating_add(1_000_000_000));
        req.last = self.tail;
        req
    }
}

/// The frame of one record.
pub fn encode(out: &mut Vec<u8>, r: &Record) {
    let time_nano = r
        .time_nano
        .and_then(|t| i64::try_from(t).ok())
        .or_else(|| r.time_ns())
        .unwrap_or(0);
    let source: &[u8] = match r.stream.as_deref() {
        Some("stderr") => b"stderr",
        _ => b"stdout",
    };
    // Docker's own drivers hand `docker logs` each line with its newline,
    // except a last line whose end never came.
    let mut line = r.msg_bytes().to_vec();
    if !r.unterminated {
        line.push(b'\n');
    }
    dockerlog::encode_frame(
        out,
        &Entry {
            source,
            time_nano,
            line: &line,
            ..Entry::default()
        },
    );
}

/// Whether dockerd closed its side (it does when `docker logs -f` ends).
fn hung_up(s: &UnixStream) -> bool {
    let mut p = [PollFd::new(
        s.as_fd(),
        PollFlags::from_bits_retain(libc::POLLRDHUP) | PollFlags::POLLHUP | PollFlags::POLLERR,
    )];
    matches!(poll(&mut p, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Answers one ReadLogs request on `conn` (the connection is closed after).
pub fn serve(d: &Driver, body: &[u8], conn: &UnixStream) -> io::Result<()> {
    let fail = |conn: &UnixStream, status: u16, e: String| {
        let mut w = conn;
        http::respond(&mut w, status, &error_json(&e), true)
    };
    let parsed = object_field(body, &["Info"]).and_then(|info| {
        let info = Info::parse(info.ok_or("request body has no Info object")?)?;
        let cfg = ReadConfig::parse(object_field(body, &["Config", "ReadConfig"])?)?;
        Ok((info, cfg))
    });
    let (info, mut cfg) = match parsed {
        Ok(p) => p,
        Err(e) => return fail(conn, 400, e),
    };
    // A container that is not running has nothing more to follow.
    cfg.follow &= d.logging_container(&info.id);
    let live = || !cfg.follow || d.logging_container(&info.id);
    let q = match UnixStream::connect(&d.settings.query_socket) {
        Ok(q) => q,
        Err(e) => {
            let e = format!(
                "cannot reach memlogd at {}: {e}",
                d.settings.query_socket.display()
            );
            return fail(conn, 500, e);
        }
    };
    q.set_read_timeout(Some(HANGUP_CHECK))?;
    let mut c = Client::start(q, &cfg.request(&info.id))?;
    // The first line says whether memlogd selects for us.
    match next(&mut c, conn, &live)? {
        Some(Line::Hello { .. }) => {}
        Some(Line::Error(e)) => return fail(conn, 500, format!("memlogd refused the query: {e}")),
        _ => {
            let e =
                "memlogd did not answer with memlog/1 (LinuxKit's memlogd keeps no container ids)";
            return fail(conn, 500, e.into());
        }
    }
    let mut out = Chunked::start(conn, "application/octet-stream")?;
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        if !c.ready() || batch.len() >= 60 * 1024 {
            out.send(&batch)?;
            batch.clear();
        }
        match next(&mut c, conn, &live)? {
            Some(Line::Record(r)) => encode(&mut batch, &r),
            // Lost notices and the like have no place in dockerd's stream.
            Some(_) => {}
            None => break,
        }
    }
    out.send(&batch)?;
    out.finish()?;
    let mut w = conn;
    w.flush()
}

/// The next line from memlogd; while none comes, looks every
/// [`HANGUP_CHECK`] whether dockerd went away (then the answer ends with an
/// error) or the followed container stopped logging (`live` false: then
/// it ends as a dump does, everything memlogd had being sent).
fn next(c: &mut Client, conn: &UnixStream, live: &dyn Fn() -> bool) -> io::Result<Option<Line>> {
    loop {
        match c.next_line() {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if !live() {
                    return Ok(None);
                }
                if hung_up(conn) {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "dockerd closed the ReadLogs stream",
                    ));
                }
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs() {
        let c = ReadConfig::parse(Some(br#"{"Since":"0001-01-01T00:00:00Z","Until":"2026-12-02T06:27:09.5+01:00","Tail":3,"Follow":true}"#)).expect("parses");
        assert_eq!(c.since_ns, None);
        assert_eq!(c.until_ns, timefmt::parse_rfc3339("2026-12-02T05:27:09.5Z"));
        assert_eq!((c.tail, c.follow), (Some(3), true));
        let all = ReadConfig::parse(Some(br#"{"Tail":-1}"#)).expect("parses");
        assert_eq!(all.tail, None);
        assert_eq!(ReadConfig::parse(None), Ok(ReadConfig::default()));
        assert!(ReadConfig::parse(Some(br#"{"Since":"yesterday"}"#)).is_err());
        assert!(ReadConfig::parse(Some(br#"{"Tail":"3"}"#)).is_err());
        let req = c.request("abc");
        assert_eq!(req.mode, Mode::DumpFollow);
        assert_eq!(req.containers, vec![b"abc".to_vec()]);
        assert_eq!(req.last, Some(3));
    }

    #[test]
    fn records_become_entries() {
        let r = Record {
            msg: "\u{fffd}x".into(),
            msg_raw: Some(vec![0xff, b'x']),
            stream: Some("stderr".into()),
            time_nano: Some(42),
            time: "2026-12-02T06:27:09Z".into(),
            ..Record::default()
        };
        let mut out = Vec::new();
        encode(&mut out, &r);
        let dockerlog::Frame::Whole(body, _) = dockerlog::split(&out) else {
            panic!("frame")
        };
        let e = dockerlog::decode(body).expect("decodes");
        assert_eq!(
            (e.source, e.time_nano, e.line),
            (&b"stderr"[..], 42, &[0xff, b'x', b'\n'][..])
        );
    }
}
