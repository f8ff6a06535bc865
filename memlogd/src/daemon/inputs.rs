//! Writers: fds received on the log socket, and the lines read from them.

use super::lines::LineSplitter;
use super::slab::Key;
use super::{Daemon, KIND_INPUT};
use crate::ring::FLAG_TRUNCATED;
use crate::{sys, timefmt};
use nix::sys::epoll::{EpollEvent, EpollFlags};
use nix::sys::stat::{fstat, SFlag};
use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// Reads per input per loop turn, so one busy writer cannot starve others.
const READS_PER_TURN: usize = 4;
/// Datagrams taken from the log socket per loop turn.
const DATAGRAMS_PER_TURN: usize = 64;

/// One fd a writer handed over.
pub struct Input {
    fd: OwnedFd,
    name: Box<[u8]>,
    lines: LineSplitter,
}

/// A name for messages: lossy UTF-8, at most 64 characters.
pub(super) fn show(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(&name[..name.len().min(64)]);
    if name.len() > 64 {
        format!("{s:?}...")
    } else {
        format!("{s:?}")
    }
}

impl Daemon {
    /// Datagrams on the log socket: a name and fds.
    pub(super) fn on_log_socket(&mut self) {
        for _ in 0..DATAGRAMS_PER_TURN {
            let mut fds = Vec::new();
            let mut buf = std::mem::take(&mut self.name_buf);
            let r = sys::recv_with_fds(self.log_sock.fd.as_fd(), &mut buf, &mut fds);
            let res = match r {
                Ok(got) => {
                    self.on_datagram(&buf[..got.len], &got, fds);
                    true
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
                Err(e) => {
                    self.note(format!("log socket: receive failed: {e}"));
                    false
                }
            };
            self.name_buf = buf;
            if !res {
                break;
            }
        }
    }

    fn on_datagram(&mut self, name: &[u8], got: &sys::Received, fds: Vec<OwnedFd>) {
        if got.fds_truncated {
            self.counters.fds_dropped += 1;
            self.note(format!(
                "fds passed with name {} were dropped by the kernel (memlogd may be out of file descriptors)",
                show(name)
            ));
        }
        if fds.is_empty() {
            if !got.fds_truncated {
                self.counters.datagrams_without_fds += 1;
                self.note(format!(
                    "ignored a datagram without fds on the log socket (name {})",
                    show(name)
                ));
            }
            return;
        }
        if got.payload_truncated || name.len() > self.cfg.max_name_len {
            self.counters.names_refused += 1;
            self.counters.inputs_refused += fds.len() as u64;
            self.note(format!(
                "refused {} fd(s): name of {} bytes is longer than -max-name-len {}",
                fds.len(),
                got.full_len,
                self.cfg.max_name_len
            ));
            return;
        }
        for fd in fds {
            self.add_input(name, fd);
        }
    }

    fn refuse_input(&mut self, name: &[u8], why: String) {
        self.counters.inputs_refused += 1;
        self.note(format!("refused an fd for {}: {why}", show(name)));
    }

    fn add_input(&mut self, name: &[u8], fd: OwnedFd) {
        if self.inputs.len() >= self.cfg.max_inputs {
            return self.refuse_input(name, format!("-max-inputs {} reached", self.cfg.max_inputs));
        }
        match fstat(&fd) {
            Ok(st) => {
                let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
                if kind == SFlag::S_IFDIR {
                    return self.refuse_input(name, "it is a directory, not a stream".into());
                }
                if kind == SFlag::S_IFREG {
                    return self.refuse_input(
                        name,
                        "it is a regular file, not a stream (pass a pipe, FIFO or socket)".into(),
                    );
                }
            }
            Err(e) => return self.refuse_input(name, format!("fstat failed: {e}")),
        }
        if let Err(e) = sys::set_nonblocking(fd.as_fd(), true) {
            return self.refuse_input(name, format!("cannot make it non-blocking: {e}"));
        }
        let key = self.inputs.insert(Input {
            fd,
            name: name.into(),
            lines: LineSplitter::default(),
        });
        let Some(input) = self.inputs.get_mut(key) else {
            return;
        };
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, KIND_INPUT | key.to_u64());
        if let Err(e) = self.epoll.add(input.fd.as_fd(), ev) {
            self.inputs.remove(key);
            return self.refuse_input(name, format!("cannot poll it: {e}"));
        }
        self.counters.inputs_total += 1;
    }

    /// An input is readable (or hung up): read what is there.
    pub(super) fn on_input(&mut self, key: Key, _flags: EpollFlags) {
        let max = self.cfg.max_line_len;
        for _ in 0..READS_PER_TURN {
            let Some(input) = self.inputs.get_mut(key) else {
                return;
            };
            let n = match nix::unistd::read(&input.fd, &mut self.scratch) {
                Ok(n) => n,
                Err(nix::Error::EAGAIN) => return,
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    let msg = format!("input {}: read failed: {e}; closed", show(&input.name));
                    self.counters.input_errors += 1;
                    self.close_input(key);
                    self.note(msg);
                    return;
                }
            };
            if n == 0 {
                self.close_input(key);
                return;
            }
            let now = timefmt::now_ns();
            let mut lines = std::mem::take(&mut input.lines);
            let name = std::mem::take(&mut input.name);
            let scratch = std::mem::take(&mut self.scratch);
            lines.feed(&scratch[..n], max, |line, cut| {
                if cut {
                    self.counters.lines_truncated += 1;
                }
                self.store(now, &name, line, if cut { FLAG_TRUNCATED } else { 0 });
            });
            self.scratch = scratch;
            if let Some(input) = self.inputs.get_mut(key) {
                input.lines = lines;
                input.name = name;
            }
            if n < self.scratch.len() {
                return;
            }
        }
    }

    /// End of an input: its last unfinished line is still a record.
    fn close_input(&mut self, key: Key) {
        let Some(mut input) = self.inputs.remove(key) else {
            return;
        };
        let _ = self.epoll.delete(input.fd.as_fd());
        let now = timefmt::now_ns();
        let name = std::mem::take(&mut input.name);
        input
            .lines
            .finish(|line, _| self.store(now, &name, line, 0));
        if self.accept_paused {
            self.resume_accept();
        }
    }
}
