//! Client side of the query socket, shared by every reader binary.
//!
//! A client always sends an extended request. memlogd answers with a hello
//! line first; LinuxKit's memlogd reads only the mode byte and answers with
//! plain records (or closes, for an empty dump), so the first line tells
//! which server this is: no timeout, no second connection, never a hang.
//! Against LinuxKit the request's selection ([`Filter`]) is applied here
//! instead, with the same code memlogd runs, so the records are the same.

use crate::filter::Filter;
use crate::proto::{self, Line, LineRef, Reply, Request};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Bytes asked of the socket per read (at least).
const READ: usize = 128 * 1024;

/// Which daemon answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// Nothing received yet.
    Unknown,
    /// memlogd speaking the extension, with its instance id.
    Memlog { instance: u64 },
    /// A server that knows only LinuxKit's modes 0 to 2.
    LinuxKit,
}

/// An open query.
pub struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    /// Unread bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    server: Server,
    filter: Filter,
    /// Apply `filter` here whatever the server (it was not sent).
    local: bool,
    eof: bool,
    /// Where a newline in `buf[pos..end]` was found by [`Client::ready`]
    /// (`usize::MAX`: not known), so the next line is not searched twice.
    nl: std::cell::Cell<usize>,
}

/// Error for a line that is not valid protocol.
fn bad(e: proto::DecodeError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad reply from memlogd: {e}"),
    )
}

impl Client {
    /// Connects to the query socket at `path` and sends `req`.
    pub fn connect(path: &Path, req: &Request) -> io::Result<Client> {
        let stream = UnixStream::connect(path)?;
        Self::start(stream, req)
    }

    /// Sends `req` on an already connected stream.
    pub fn start(stream: UnixStream, req: &Request) -> io::Result<Client> {
        Self::begin(stream, req, false)
    }

    /// Sends `req` without its selection fields ([`Request::unfiltered`])
    /// and applies the selection here instead: for a memlogd too old to
    /// know a field, or to compare with the daemon's own filtering.
    /// (`last=` is not applied: the caller keeps the tail.)
    pub fn start_local(stream: UnixStream, req: &Request) -> io::Result<Client> {
        Self::begin(stream, req, true)
    }

    fn begin(mut stream: UnixStream, req: &Request, local: bool) -> io::Result<Client> {
        let sent = if local { req.unfiltered() } else { req.clone() };
        match stream.write_all(&sent.encode()) {
            // The server may answer and close before reading the request
            // (memlogd refusing a reader over its limit): read its answer.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) => {}
            other => other?,
        }
        Ok(Client {
            stream,
            buf: vec![0; READ],
            pos: 0,
            end: 0,
            server: Server::Unknown,
            filter: Filter::from_request(req),
            local,
            eof: false,
            nl: std::cell::Cell::new(usize::MAX),
        })
    }

    /// The connection (to wait on it with other things).
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Which server answered (known after the first line).
    pub fn server(&self) -> Server {
        self.server
    }

    /// True when the next call to [`Client::next_line`] will not block (a whole
    /// line is buffered, or the stream ended). Callers flush their output
    /// before a call that may block.
    pub fn ready(&self) -> bool {
        if self.eof || self.known_nl().is_some() {
            return true;
        }
        match memchr::memchr(b'\n', &self.buf[self.pos..self.end]) {
            Some(i) => {
                self.nl.set(self.pos + i);
                true
            }
            None => false,
        }
    }

    /// The newline [`Client::ready`] found, if it is still ahead.
    fn known_nl(&self) -> Option<usize> {
        let nl = self.nl.get();
        (nl >= self.pos && nl < self.end).then_some(nl)
    }

    /// True when more of the reply is already waiting in the socket (a
    /// read would not block): a caller may go on reading before it
    /// flushes, to write larger batches.
    pub fn more_waiting(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    fn fill(&mut self) -> io::Result<bool> {
        // `buf[pos..end]` is unread; the rest of `buf` is room, zeroed once
        // when it was allocated (not at every read).
        if self.pos > 0 {
            self.nl.set(usize::MAX);
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() - self.end < READ / 2 {
            // A line longer than the buffer: room for more of it.
            let grow = self.buf.len().max(READ);
            self.buf.resize(self.buf.len() + grow, 0);
        }
        let end = self.end;
        let r = loop {
            match self.stream.read(&mut self.buf[end..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // LinuxKit's memlogd closes with our extension bytes unread,
                // which the kernel reports as a reset after the data.
                Err(e)
                    if e.kind() == io::ErrorKind::ConnectionReset
                        && !matches!(self.server, Server::Memlog { .. }) =>
                {
                    break Ok(0)
                }
                other => break other,
            }
        };
        let n = r?;
        self.end += n;
        Ok(n > 0)
    }

    /// Where the next line is in `buf` (reading more as needed); `None` at
    /// the end of the stream.
    fn next_range(&mut self) -> io::Result<Option<std::ops::Range<usize>>> {
        loop {
            let nl = self.known_nl().or_else(|| {
                memchr::memchr(b'\n', &self.buf[self.pos..self.end]).map(|i| self.pos + i)
            });
            if let Some(nl) = nl {
                let r = self.pos..nl;
                self.pos = nl + 1;
                return Ok(Some(r));
            }
            if self.eof || !self.fill()? {
                self.eof = true;
                if self.pos < self.end {
                    let r = self.pos..self.end;
                    self.pos = self.end;
                    return Ok(Some(r));
                }
                return Ok(None);
            }
        }
    }

    /// Where the next line to hand out is: the hello line noted (see
    /// [`Client::server`]) and, where the selection is applied here,
    /// records it does not take skipped. Lines are decoded here only while
    /// the server is unknown or when filtering; otherwise the caller
    /// decodes them once.
    fn next_wanted(&mut self) -> io::Result<Option<std::ops::Range<usize>>> {
        loop {
            let Some(r) = self.next_range()? else {
                if self.server == Server::Unknown {
                    self.server = Server::LinuxKit;
                }
                return Ok(None);
            };
            let filtering = self.local || self.server == Server::LinuxKit;
            if self.server != Server::Unknown && !filtering {
                return Ok(Some(r));
            }
            let line = proto::decode_ref(&self.buf[r.clone()]).map_err(bad)?;
            match (&line, self.server) {
                (Reply::Hello { instance, .. }, Server::Unknown) => {
                    self.server = Server::Memlog {
                        instance: *instance,
                    };
                    return Ok(Some(r));
                }
                (_, Server::Unknown) => self.server = Server::LinuxKit,
                _ => {}
            }
            if let Reply::Record(rec) = &line {
                if (self.local || self.server == Server::LinuxKit) && !self.filter.matches_ref(rec)
                {
                    continue;
                }
            }
            return Ok(Some(r));
        }
    }

    /// The next line of the reply; `None` when the server closed the stream.
    /// A hello line is consumed here (see [`Client::server`]).
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        Ok(self.next_ref()?.map(|l| l.to_owned()))
    }

    /// [`Client::next_line`] without copying: the record borrows the
    /// client's read buffer (valid until the next call). This is the
    /// decoding every reader shares; an owned copy is `to_owned()` away.
    pub fn next_ref(&mut self) -> io::Result<Option<LineRef<'_>>> {
        match self.next_wanted()? {
            Some(r) => proto::decode_ref(&self.buf[r]).map(Some).map_err(bad),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Mode;

    #[test]
    fn detects_linuxkit_and_filters_client_side() {
        let (a, mut srv) = UnixStream::pair().expect("pair");
        let mut req = Request::new(Mode::Dump);
        req.sources = vec![b"b".to_vec()];
        let mut c = Client::start(a, &req).expect("start");
        let mut got = [0u8; 1];
        srv.read_exact(&mut got).expect("mode byte");
        assert_eq!(got[0], 0);
        srv.write_all(b"{\"time\":\"2020-01-01T00:00:00Z\",\"source\":\"a\",\"msg\":\"x\"}\n{\"time\":\"2020-01-01T00:00:01Z\",\"source\":\"b\",\"msg\":\"y\"}\n").expect("w");
        drop(srv);
        let Some(Line::Record(r)) = c.next_line().expect("line") else {
            panic!("record")
        };
        assert_eq!((r.source.as_str(), r.msg.as_str(), r.seq), ("b", "y", None));
        assert_eq!(c.server(), Server::LinuxKit);
        assert_eq!(c.next_line().expect("eof"), None);
    }

    #[test]
    fn empty_linuxkit_dump_ends_cleanly() {
        let (a, srv) = UnixStream::pair().expect("pair");
        let mut c = Client::start(a, &Request::new(Mode::Dump)).expect("start");
        drop(srv);
        assert_eq!(c.next_line().expect("eof"), None);
        assert_eq!(c.server(), Server::LinuxKit);
    }

    #[test]
    fn reads_an_answer_sent_before_the_request() {
        let (a, mut srv) = UnixStream::pair().expect("pair");
        srv.write_all(b"{\"time\":\"2020-01-01T00:00:00Z\",\"source\":\"memlogd\",\"msg\":\"refused a reader\"}\n").expect("w");
        drop(srv);
        crate::sys::ignore_sigpipe();
        let mut c =
            Client::start(a, &Request::new(Mode::Dump)).expect("a refused request is not an error");
        let Some(Line::Record(r)) = c.next_line().expect("line") else {
            panic!("record")
        };
        assert_eq!(r.msg, "refused a reader");
        assert_eq!(c.next_line().expect("eof"), None);
    }

    #[test]
    fn detects_memlog_by_hello() {
        let (a, mut srv) = UnixStream::pair().expect("pair");
        let mut c = Client::start(a, &Request::new(Mode::Dump)).expect("start");
        let mut out = Vec::new();
        proto::encode_hello(&mut out, 7, 0, 1);
        srv.write_all(&out).expect("w");
        drop(srv);
        assert!(matches!(
            c.next_line().expect("hello"),
            Some(Line::Hello { instance: 7, .. })
        ));
        assert_eq!(c.server(), Server::Memlog { instance: 7 });
    }
}
