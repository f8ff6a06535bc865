//! The sender's side of the log socket: hand memlogd fds under a name, and
//! learn whether it took them (PROTOCOL.md, "Replies").
//!
//! The datagram is exactly LinuxKit's (the name, the fds), so LinuxKit's
//! memlogd takes it as always. Our socket is bound to an abstract name the
//! kernel picks and connected to memlogd's log socket, so memlogd can
//! answer it (`memlog/1 accepted A of N[: why]`) and nobody else can (a
//! connected datagram socket only receives from its peer). LinuxKit's
//! memlogd never answers, and a sender must not wait for that. Our memlogd
//! answers *before* it takes the datagram off its queue (it peeks, hands
//! the fds over, answers, then reads it), so the order tells, not a clock:
//! the sender watches its own send queue (`SIOCOUTQ`); once the datagram
//! was read, an answer is already there from our memlogd, and its absence
//! means LinuxKit's (the fds then count as taken, as they always did;
//! [`LATE`] is only a margin for the two queues' views on another CPU). A
//! memlogd that does not read the datagram within [`TAKE_TIMEOUT`] (hung,
//! stopped) is reported as an error, so the caller logs elsewhere.

use crate::{proto, sys};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long memlogd may take to read a datagram (and a send to a full queue
/// may block) before the sender gives up.
pub const TAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the sender still looks for an answer once memlogd read the
/// datagram (our memlogd queued it before that: this is only a margin).
pub const LATE: Duration = Duration::from_millis(20);

/// What became of the fds handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// memlogd took every fd.
    Taken,
    /// memlogd refused some or all of them (and closed those): why.
    Refused(String),
    /// memlogd read the datagram but does not answer (LinuxKit's): as before
    /// replies existed, the fds count as taken.
    Unconfirmed,
}

/// A connection to memlogd's log socket.
#[derive(Debug)]
pub struct LogSocket {
    sock: UnixDatagram,
    /// Whether this memlogd answers (`None` until known).
    answers: Option<bool>,
    /// The answer to the last datagram, as memlogd wrote it.
    last_reply: Option<String>,
}

impl LogSocket {
    /// Connects to the log socket at `path`.
    pub fn connect(path: &Path) -> io::Result<LogSocket> {
        let sock = UnixDatagram::from(sys::autobound_datagram()?);
        sock.connect(path)?;
        sock.set_write_timeout(Some(TAKE_TIMEOUT))?;
        Ok(LogSocket {
            sock,
            answers: None,
            last_reply: None,
        })
    }

    /// Sends `name` and `fds` in one datagram and waits (bounded) for the
    /// answer. The fds stay ours; the caller closes its copies after.
    pub fn hand_over(&mut self, name: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<Outcome> {
        // An answer to an earlier datagram that came too late is not ours.
        self.drain();
        self.last_reply = None;
        sys::send_with_fds(self.sock.as_fd(), name, fds)?;
        if self.answers == Some(false) {
            return Ok(Outcome::Unconfirmed);
        }
        let start = Instant::now();
        let mut read_at = None;
        loop {
            if let Some(reply) = self.try_reply()? {
                self.answers = Some(true);
                self.last_reply = Some(String::from_utf8_lossy(&reply).trim_end().to_owned());
                return Ok(parse(&reply, fds.len()));
            }
            let now = Instant::now();
            if read_at.is_none() && sys::unread_sent_bytes(self.sock.as_fd())? == 0 {
                read_at = Some(now);
            }
            match read_at {
                Some(t) if now.duration_since(t) >= LATE => {
                    self.answers = Some(false);
                    return Ok(Outcome::Unconfirmed);
                }
                None if now.duration_since(start) >= TAKE_TIMEOUT => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "memlogd did not take the fds within {} s",
                            TAKE_TIMEOUT.as_secs()
                        ),
                    ))
                }
                _ => {}
            }
            let mut pfd = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            match poll(&mut pfd, PollTimeout::from(10u8)) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// memlogd's answer to the last datagram (`None`: none came), e.g.
    /// `memlog/1 accepted 1 of 1 docker-framed`.
    pub fn last_reply(&self) -> Option<&str> {
        self.last_reply.as_deref()
    }

    /// Reads one answer if one is queued (never blocks).
    fn try_reply(&self) -> io::Result<Option<Vec<u8>>> {
        let mut pfd = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
        match poll(&mut pfd, PollTimeout::ZERO) {
            Ok(0) | Err(nix::Error::EINTR) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let mut buf = [0u8; 1024];
        match self.sock.recv(&mut buf) {
            Ok(n) if buf[..n].starts_with(proto::EXT_MAGIC) => Ok(Some(buf[..n].to_vec())),
            // Not an answer: ignore it.
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn drain(&self) {
        while let Ok(Some(_)) = self.try_reply() {}
    }
}

/// Reads `memlog/1 accepted A of N[: why]` for a datagram of `sent` fds.
fn parse(reply: &[u8], sent: usize) -> Outcome {
    let text = String::from_utf8_lossy(reply);
    let rest = text
        .trim_end()
        .strip_prefix(proto::EXT_MAGIC_STR)
        .unwrap_or("")
        .trim_start();
    let (counts, why) = rest.split_once(": ").unwrap_or((rest, ""));
    let accepted = counts
        .strip_prefix("accepted ")
        .and_then(|c| c.split_once(" of "))
        .and_then(|(a, _)| a.parse::<usize>().ok());
    match accepted {
        Some(a) if a >= sent => Outcome::Taken,
        Some(a) => Outcome::Refused(if why.is_empty() {
            format!("memlogd took {a} of {sent} fds")
        } else {
            why.to_owned()
        }),
        None => Outcome::Refused(format!("unexpected answer from memlogd: {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn answers_are_read() {
        assert_eq!(parse(b"memlog/1 accepted 1 of 1\n", 1), Outcome::Taken);
        assert_eq!(
            parse(b"memlog/1 accepted 0 of 1: -max-inputs 2 reached\n", 1),
            Outcome::Refused("-max-inputs 2 reached".into())
        );
        assert_eq!(
            parse(b"memlog/1 accepted 0 of 0: the kernel dropped fds\n", 1),
            Outcome::Refused("the kernel dropped fds".into())
        );
        assert!(matches!(parse(b"memlog/1 what\n", 1), Outcome::Refused(_)));
    }

    /// A server socket in a fresh directory, a sender connected to it, and
    /// a socketpair whose end `.3` is handed over.
    fn setup(
        tag: &str,
    ) -> (
        std::path::PathBuf,
        UnixDatagram,
        LogSocket,
        UnixStream,
        UnixStream,
    ) {
        let dir =
            std::env::temp_dir().join(format!("memlog-handover-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("log.sock");
        let server = UnixDatagram::bind(&path).expect("bind");
        let c = LogSocket::connect(&path).expect("connect");
        let (a, b) = UnixStream::pair().expect("pair");
        (dir, server, c, a, b)
    }

    #[test]
    fn a_server_that_never_answers_is_unconfirmed_quickly() {
        let (dir, server, mut c, _a, b) = setup("silent");
        // A reader that takes the datagram and says nothing (LinuxKit's).
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut fds = Vec::new();
            while sys::recv_msg(server.as_fd(), &mut buf, &mut fds).is_err() {
                std::thread::sleep(Duration::from_millis(5));
            }
            server
        });
        // Read but not answered: unconfirmed (not the timeout's error).
        assert_eq!(
            c.hand_over(b"svc", &[b.as_fd()]).expect("sent"),
            Outcome::Unconfirmed
        );
        let server = t.join().expect("thread");
        // A second datagram does not wait again: this server never answers.
        assert_eq!(c.answers, Some(false));
        assert_eq!(
            c.hand_over(b"svc", &[b.as_fd()]).expect("sent"),
            Outcome::Unconfirmed
        );
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_slow_answer_is_still_read_because_it_comes_before_the_read() {
        let (dir, server, mut c, _a, b) = setup("slow");
        // As memlogd: peek, think for much longer than LATE, answer, read.
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let got = loop {
                match sys::peek_msg(server.as_fd(), &mut buf, &mut Vec::new()) {
                    Ok(g) => break g,
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            };
            std::thread::sleep(LATE * 10);
            let peer = got.peer.expect("a bound sender");
            sys::reply_to(server.as_fd(), &peer, b"memlog/1 accepted 0 of 1: busy\n")
                .expect("reply");
            sys::recv_msg(server.as_fd(), &mut buf, &mut Vec::new()).expect("read");
            server
        });
        assert_eq!(
            c.hand_over(b"svc", &[b.as_fd()]).expect("sent"),
            Outcome::Refused("busy".into())
        );
        drop(t.join().expect("thread"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_server_that_reads_nothing_is_an_error() {
        let (dir, _server, mut c, _a, b) = setup("deaf");
        let e = c.hand_over(b"svc", &[b.as_fd()]).expect_err("nobody reads");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
