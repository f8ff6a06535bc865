//! `-remote exec:CMD`: a program started by logwrite and fed records on its
//! stdin, one per line (syslog-ng's `program()`, LinuxKit's "pipe to
//! oklog"). [`ExecStream`] is the [`ByteStream`] of such a destination:
//! [`crate::remote::Remote`] writes, saves positions and resends exactly
//! as it does over TCP, with the pipe in the place of the socket.
//!
//! Delivery. A record counts as delivered once its bytes were written to
//! the pipe (the kernel holds them for the program even if logwrite dies);
//! that is the position saved. When the program exits (or closes its
//! stdin), what it had not read yet is still in the pipe, and the kernel
//! says how much (`FIONREAD`, which Linux answers on the write end too,
//! also after the reader is gone): those records are fed again, in order,
//! to the program started next. At stop, logwrite waits (up to
//! [`STOP_GRACE`]) for the program to read the pipe empty, saves the
//! position of what it read, then closes its stdin.
//!
//! Never stuck. The pipe is non-blocking; a write that finds it full waits
//! for room in short polls that look at logwrite's [`Stop`], so SIGTERM
//! stops logwrite whatever the program does, and a program that does not
//! read blocks only its own destination (each destination runs on its own
//! thread). A slow program is never restarted for being slow.
//!
//! The program runs without a shell (words split by [`crate::argv::split`]),
//! in its own process group, with logwrite's stdout and stderr, signals at
//! their defaults, and `LOGWRITE_DESTINATION=exec:CMD` in its environment.
//! When it is ended (restart, stop), its stdin is closed first; if it has
//! not exited within the grace period its group gets SIGTERM, a second
//! later SIGKILL, and it is always reaped.

use crate::follow::Stop;
use crate::remote::ByteStream;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At stop: longest wait for the program to read what it was sent and to
/// exit after its stdin closed, together.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// After a failure (it exited, or closed its stdin): longest wait for it
/// to exit before its group is signalled.
pub const FAIL_GRACE: Duration = Duration::from_secs(1);
/// Between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);
/// A write to a full pipe looks at [`Stop`] this often.
const POLL_SLICE: Duration = Duration::from_millis(100);

/// A started program, the write end of its stdin pipe first: fields drop
/// in order, so the pipe is closed before [`Program`]'s drop waits.
pub struct ExecStream {
    pipe: OwnedFd,
    program: Program,
    stop: Arc<Stop>,
    /// Set while logwrite stops: writes and the program's exit may take
    /// until then (they do not give up at once because [`Stop`] is set).
    deadline: Option<Instant>,
}

/// The child process, ended and reaped on drop.
struct Program {
    /// `exec:CMD`, for messages.
    name: String,
    /// argv[0], for messages.
    program: String,
    pid: Pid,
    /// `None` once reaped.
    child: Option<Child>,
    /// Until when its exit is waited for before it is signalled.
    deadline: Option<Instant>,
}

/// `status 3`, `signal 9`.
fn describe(st: &WaitStatus) -> String {
    match st {
        WaitStatus::Exited(_, code) => format!("status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("signal {} ({sig})", *sig as i32),
        _ => "an unknown status".into(),
    }
}

impl Program {
    fn pid(&self) -> Pid {
        self.pid
    }

    /// How it ended, if it has (the zombie is kept, so its pid and process
    /// group id cannot be reused before it is signalled and reaped).
    fn peek(&self) -> Option<WaitStatus> {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(self.pid()), flags) {
            Ok(WaitStatus::StillAlive) => None,
            Ok(st) => Some(st),
            // ECHILD: already reaped (cannot happen: only drop reaps).
            Err(_) => Some(WaitStatus::StillAlive),
        }
    }

    /// Waits until it exited or `until`; true if it did.
    fn exited_by(&self, until: Instant) -> bool {
        loop {
            if self.peek().is_some() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let until = self.deadline.unwrap_or_else(|| Instant::now() + FAIL_GRACE);
        let mut forced = None;
        if !self.exited_by(until) {
            forced = Some(Signal::SIGTERM);
            let _ = killpg(self.pid(), Signal::SIGTERM);
            if !self.exited_by(Instant::now() + TERM_GRACE) {
                forced = Some(Signal::SIGKILL);
            }
        }
        let status = self.peek();
        // Whatever is left of its process group goes with it (the leader
        // is still a zombie here, so the group id is still its own).
        let _ = killpg(
            self.pid(),
            if forced.is_some() {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            },
        );
        if let Some(sig) = forced {
            crate::report::say(
                &self.name,
                &format!(
                    "{} (pid {}) did not exit after its stdin closed: sent {sig} to its process group",
                    self.program,
                    self.pid
                ),
            );
        } else if let Some(st) = status.filter(|st| !matches!(st, WaitStatus::Exited(_, 0))) {
            // Stopping (a failure already said how it ended).
            if self.deadline.is_some() {
                crate::report::say(
                    &self.name,
                    &format!(
                        "{} (pid {}) exited with {}",
                        self.program,
                        self.pid,
                        describe(&st)
                    ),
                );
            }
        }
        // Reaped; one stuck in the kernel (D state) is left to a thread
        // that reaps it when it goes, rather than hold this output.
        let reap_by = Instant::now() + TERM_GRACE;
        while let Some(c) = self.child.as_mut() {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= reap_by => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        if let Some(mut c) = self.child.take() {
            std::thread::spawn(move || {
                let _ = c.wait();
            });
        }
    }
}

impl ExecStream {
    /// Starts `argv` (destination `name`, `exec:CMD`) with a pipe on its
    /// stdin. An error says which program could not be started.
    pub fn spawn(name: &str, argv: &[String], stop: Arc<Stop>) -> io::Result<ExecStream> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .env("LOGWRITE_DESTINATION", name)
            .process_group(0);
        // logwrite blocks its stop signals and ignores stray ones; the
        // program starts with every signal at its default.
        memlog::sys::default_signals_in_child(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {prog:?}: {e}")))?;
        let stdin = child.stdin.take();
        let program = Program {
            name: name.to_owned(),
            program: prog.clone(),
            pid: Pid::from_raw(child.id() as i32),
            child: Some(child),
            deadline: None,
        };
        let pipe: OwnedFd = match stdin {
            Some(s) => s.into(),
            None => return Err(io::Error::other("no stdin pipe")),
        };
        nix::fcntl::fcntl(
            &pipe,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        Ok(ExecStream {
            pipe,
            program,
            stop,
            deadline: None,
        })
    }

    /// Bytes written to the pipe and not read yet (`FIONREAD`).
    fn unread(&self) -> io::Result<u64> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int, which we own, for a pipe.
        let r = unsafe {
            libc::ioctl(
                self.pipe.as_raw_fd(),
                libc::FIONREAD,
                &mut n as *mut libc::c_int,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Waits at most `timeout` for room in the pipe; true if the pipe has
    /// no reader any more.
    fn wait_room(&self, timeout: Duration) -> io::Result<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let ms = PollTimeout::try_from(timeout.as_millis() as i32).unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(self.pipe.as_fd(), PollFlags::POLLOUT)];
        match poll(&mut fds, ms) {
            Ok(_) => Ok(fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Why it cannot be written to any more, if so.
    fn ended(&self) -> Option<String> {
        let who = format!("{} (pid {})", self.program.program, self.program.pid);
        if let Some(st) = self.program.peek() {
            return Some(format!("{who} exited with {}", describe(&st)));
        }
        match self.wait_room(Duration::ZERO) {
            Ok(true) => Some(format!("{who} closed its stdin")),
            _ => None,
        }
    }

    fn ended_error(&self, why: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("{why}; starting it again"),
        )
    }
}

impl Write for ExecStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match nix::unistd::write(&self.pipe, buf) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EAGAIN) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EPIPE) => {
                    let why = self
                        .ended()
                        .unwrap_or_else(|| format!("{} closed its stdin", self.program.program));
                    return Err(self.ended_error(why));
                }
                Err(e) => return Err(e.into()),
            }
            // The pipe is full: the program reads slowly, or not at all.
            match self.deadline {
                Some(d) if Instant::now() >= d => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "{} did not read its stdin within {} s of logwrite stopping",
                            self.program.program,
                            STOP_GRACE.as_secs()
                        ),
                    ))
                }
                Some(_) => {}
                // Stopping: what is not written stays with the caller.
                None if self.stop.is_set() => return Err(io::ErrorKind::WouldBlock.into()),
                None => {}
            }
            if let Some(why) = self.ended() {
                return Err(self.ended_error(why));
            }
            self.wait_room(POLL_SLICE)?;
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for ExecStream {
    /// Nothing comes back from the program (its stdout is logwrite's).
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

impl ByteStream for ExecStream {
    /// Of the bytes written, those the program has read.
    fn acked(&mut self, taken: u64) -> io::Result<u64> {
        Ok(taken.saturating_sub(self.unread()?))
    }

    fn gone(&mut self) -> bool {
        self.ended().is_some()
    }

    fn gone_error(&mut self, _name: &str) -> io::Error {
        let why = self
            .ended()
            .unwrap_or_else(|| format!("{} stopped reading", self.program.program));
        self.ended_error(why)
    }

    fn poll_read(&mut self, _timeout: Duration) -> io::Result<bool> {
        Ok(false)
    }

    fn stopping(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
        self.program.deadline = Some(deadline);
    }

    fn drain(&mut self) {
        let until = self.deadline.unwrap_or_else(|| Instant::now() + FAIL_GRACE);
        while Instant::now() < until
            && self.program.peek().is_none()
            && self.unread().is_ok_and(|n| n > 0)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }
}
