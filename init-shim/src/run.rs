//! `init-shim run`: run a command with its stdout logged to memlogd as
//! `NAME.out` and its stderr as `NAME`, as LinuxKit's init and its wrapper
//! do, and exit with the command's status (128+N when a signal N ended it).
//!
//! With memlogd there, the command's stdout and stderr are one end of two
//! socketpairs whose other ends memlogd reads: no copy, and background
//! processes the command leaves behind keep logging after it exits. With
//! memlogd absent or its socket stale, they are `LOGDIR/NAME.out.log` and
//! `LOGDIR/NAME.log` (the files LinuxKit's init writes without memlogd), and
//! init-shim says so once on stderr: the command always runs, and nothing it
//! prints is lost. With `-tee`, init-shim relays the output itself, to the
//! log and to its own stdout and stderr; if memlogd goes away meanwhile, the
//! relay goes on into the fallback files.
//!
//! Signals sent to init-shim (TERM, INT, HUP, QUIT, USR1, USR2) are passed
//! to the command, except those the kernel sent (a terminal's Ctrl-C reaches
//! the command directly already).

use argh::FromArgs;
use memlog::goflags::{self, Spec};
use memlog::handover::{LogSocket, Outcome};
use memlog::{proto, sys};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};

use crate::{names, probe};

const SPEC: Spec = Spec {
    switches: &["tee"],
    options: &["socket", "n", "name", "log-dir"],
    bytes: &["socket", "log-dir"],
    bytes_positionals: true,
};

/// Run a command with its stdout logged to memlogd as NAME.out and its stderr
/// as NAME; exit with its status (128+N if signal N ended it). Without
/// memlogd, or with a stale socket, the output goes to LOGDIR/NAME.out.log
/// and LOGDIR/NAME.log instead (said once on stderr).
/// Flags may be written -name value, --name value, -name=value or --name=value.
///
/// Example: `init-shim run -n onboot.001-dhcpcd -- /sbin/dhcpcd -1`
#[derive(FromArgs, Debug)]
struct Args {
    /// memlogd's log socket (default /var/run/linuxkit-external-logging.sock)
    #[argh(option, default = "proto::DEFAULT_LOG_SOCKET.into()")]
    socket: String,
    /// log name (default: the command's base name): stdout is NAME.out, stderr NAME
    #[argh(option, short = 'n')]
    name: Option<String>,
    /// also copy the output to init-shim's own stdout and stderr (the console)
    #[argh(switch)]
    tee: bool,
    /// directory of the fallback files when memlogd is absent (default /var/log)
    #[argh(option, default = "\"/var/log\".into()")]
    log_dir: String,
    /// the command and its arguments (put -- before it if it starts with -)
    #[argh(positional, greedy)]
    command: Vec<String>,
}

/// Where one of the command's streams goes.
enum Sink {
    /// Our end of a socketpair whose other end memlogd reads.
    Memlogd(UnixStream),
    /// A fallback file, appended to.
    File(File),
    /// init-shim's own stdout or stderr (when not even a file could be opened).
    Console,
}

/// One of the command's two streams.
struct Stream {
    /// memlogd source: `NAME.out` or `NAME`.
    source: String,
    sink: Sink,
    /// stdout (false) or stderr (true) of init-shim, for -tee and Console.
    is_err: bool,
}

/// Everything run needs to know.
struct Run {
    name: String,
    log_dir: PathBuf,
    tee: bool,
    /// The fallback notice has been printed.
    told: bool,
    /// The notice that memlogd went away (with -tee) has been printed.
    gone_told: bool,
}

impl Run {
    fn notice(&mut self, msg: &str) {
        if !self.told {
            self.told = true;
            eprintln!("init-shim: {msg}");
        }
    }

    fn fallback_text(&self) -> String {
        format!(
            "logging {} to {} (stdout) and {} (stderr)",
            self.name,
            names::log_file(&self.log_dir, &format!("{}.out", self.name)).display(),
            names::log_file(&self.log_dir, &self.name).display()
        )
    }

    /// The fallback for one stream: its file, or else the console.
    fn fallback_sink(&mut self, source: &str) -> Sink {
        match names::open_log_file(&self.log_dir, source) {
            Ok(f) => Sink::File(f),
            Err(e) => {
                eprintln!(
                    "init-shim: cannot open {}: {e}; {source} goes to the console",
                    names::log_file(&self.log_dir, source).display()
                );
                Sink::Console
            }
        }
    }

    /// Hands memlogd both streams, or opens the fallback files: both when
    /// memlogd is not there, one when memlogd refused that one (say its
    /// inputs are full), so the command never writes into a dead end.
    fn sinks(&mut self, socket: &Path) -> (Stream, Stream) {
        let (out, err) = (format!("{}.out", self.name), self.name.clone());
        let mut sock = match probe::log_socket(socket) {
            Ok(s) => s,
            Err(down) => {
                let text = format!("{down}; {}", self.fallback_text());
                self.notice(&text);
                let (o, e) = (self.fallback_sink(&out), self.fallback_sink(&err));
                return (
                    Stream {
                        source: out,
                        sink: o,
                        is_err: false,
                    },
                    Stream {
                        source: err,
                        sink: e,
                        is_err: true,
                    },
                );
            }
        };
        let mut stream = |run: &mut Run, source: String, is_err: bool| {
            let sink = match pair_for(&mut sock, &source) {
                Ok(s) => Sink::Memlogd(s),
                Err(why) => {
                    eprintln!(
                        "init-shim: {why} (memlogd at {}); logging {source} to {}",
                        socket.display(),
                        names::log_file(&run.log_dir, &source).display()
                    );
                    run.told = true;
                    run.fallback_sink(&source)
                }
            };
            Stream {
                source,
                sink,
                is_err,
            }
        };
        let o = stream(self, out, false);
        let e = stream(self, err, true);
        (o, e)
    }

    /// Writes relayed bytes (-tee) to a stream's sink and to the console. A
    /// memlogd sink that fails (memlogd went away) is replaced by its
    /// fallback file, said once; a file that fails, by the console.
    fn relay(&mut self, s: &mut Stream, data: &[u8]) {
        let failed = match &mut s.sink {
            Sink::Memlogd(w) => w.write_all(data).err(),
            Sink::File(f) => f.write_all(data).err(),
            Sink::Console => None,
        };
        if let Some(e) = failed {
            if matches!(s.sink, Sink::Memlogd(_)) {
                if !self.gone_told {
                    self.gone_told = true;
                    eprintln!(
                        "init-shim: writing {} to memlogd failed: {e}; {}",
                        s.source,
                        self.fallback_text()
                    );
                }
                s.sink = self.fallback_sink(&s.source.clone());
                if let Sink::File(f) = &mut s.sink {
                    let _ = f.write_all(data);
                }
            } else {
                eprintln!(
                    "init-shim: writing {} failed: {e}; it goes to the console",
                    names::log_file(&self.log_dir, &s.source).display()
                );
                s.sink = Sink::Console;
            }
        }
        if self.tee || matches!(s.sink, Sink::Console) {
            // The console going away must not stop the command or its logs.
            let _ = if s.is_err {
                io::stderr().write_all(data)
            } else {
                let mut o = io::stdout().lock();
                o.write_all(data).and_then(|_| o.flush())
            };
        }
    }
}

/// A socketpair whose other end memlogd now reads as `source`, or why not.
fn pair_for(sock: &mut LogSocket, source: &str) -> Result<UnixStream, String> {
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| format!("cannot make a socketpair for {source}: {e}"))?;
    match sock.hand_over(source.as_bytes(), &[theirs.as_fd()]) {
        Ok(Outcome::Taken | Outcome::Unconfirmed) => Ok(ours),
        Ok(Outcome::Refused(why)) => Err(format!("memlogd refused {source}: {why}")),
        Err(e) => Err(format!("cannot hand memlogd {source}: {e}")),
    }
}

fn stdio_for(s: &Stream) -> io::Result<Stdio> {
    Ok(match &s.sink {
        Sink::Memlogd(w) => Stdio::from(OwnedFd::from(w.try_clone()?)),
        Sink::File(f) => Stdio::from(f.try_clone()?),
        Sink::Console => Stdio::inherit(),
    })
}

/// The exit status init-shim reports for the command.
pub fn exit_code(st: ExitStatus) -> u8 {
    match (st.code(), st.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => (128 + sig) as u8,
        (None, None) => 1,
    }
}

/// Signals passed on to the command.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Blocks the signals init-shim handles and returns a signalfd for them.
/// The command must not inherit the mask: see [`sys::unblock_signals_in_child`].
fn signals() -> nix::Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(s);
    }
    mask.thread_block()?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// Reads from a pipe per turn, so that a command writing without pause
/// cannot keep signals from being passed on.
const READS_PER_TURN: usize = 16;

/// Relays what a pipe holds now (at most [`READS_PER_TURN`] reads); false at
/// EOF or on an error.
fn pump(r: &mut impl Read, run: &mut Run, s: &mut Stream, buf: &mut [u8]) -> bool {
    for _ in 0..READS_PER_TURN {
        match r.read(buf) {
            Ok(0) => return false,
            Ok(n) => run.relay(s, &buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    true
}

/// Waits for the command, passing signals on and (with -tee) relaying its
/// output. Returns its exit status.
fn supervise(
    child: &mut Child,
    sigs: &mut SignalFd,
    run: &mut Run,
    streams: &mut (Stream, Stream),
    mut pipes: (Option<ChildStdout>, Option<ChildStderr>),
) -> io::Result<ExitStatus> {
    let mut buf = vec![0u8; 64 * 1024];
    for fd in [
        pipes.0.as_ref().map(|p| p.as_fd()),
        pipes.1.as_ref().map(|p| p.as_fd()),
    ]
    .into_iter()
    .flatten()
    {
        sys::set_nonblocking(fd, true)?;
    }
    loop {
        let (sig_ready, out_ready, err_ready) = {
            let mut fds = vec![PollFd::new(sigs.as_fd(), PollFlags::POLLIN)];
            let out_i = pipes.0.as_ref().map(|p| {
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            let err_i = pipes.1.as_ref().map(|p| {
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready = |i: Option<usize>| {
                i.and_then(|i| fds[i].revents())
                    .is_some_and(|r| !r.is_empty())
            };
            (ready(Some(0)), ready(out_i), ready(err_i))
        };
        if out_ready {
            if let Some(p) = pipes.0.as_mut() {
                if !pump(p, run, &mut streams.0, &mut buf) {
                    pipes.0 = None;
                }
            }
        }
        if err_ready {
            if let Some(p) = pipes.1.as_mut() {
                if !pump(p, run, &mut streams.1, &mut buf) {
                    pipes.1 = None;
                }
            }
        }
        if !sig_ready {
            continue;
        }
        while let Ok(Some(si)) = sigs.read_signal() {
            let signo = si.ssi_signo as i32;
            if signo == libc::SIGCHLD {
                continue;
            }
            // Signals the kernel generated (a terminal's Ctrl-C) already
            // reached the command's process group.
            if si.ssi_code != libc::SI_KERNEL {
                if let Ok(sig) = Signal::try_from(signo) {
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
                }
            }
        }
        if let Some(st) = child.try_wait()? {
            // Relay what the command wrote before it ended: one turn
            // empties a pipe (16 reads of 64 KiB, a pipe's default size is
            // 64 KiB). Background processes it left holding the pipes are
            // not waited for.
            if let Some(p) = pipes.0.as_mut() {
                pump(p, run, &mut streams.0, &mut buf);
            }
            if let Some(p) = pipes.1.as_mut() {
                pump(p, run, &mut streams.1, &mut buf);
            }
            return Ok(st);
        }
    }
}

fn run(args: Args) -> u8 {
    let command: Vec<std::ffi::OsString> = args.command.iter().map(|a| goflags::os(a)).collect();
    let Some(cmd0) = command.first() else {
        eprintln!("init-shim run: no command given (see init-shim run -help)");
        return 2;
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| names::default_for(Path::new(cmd0)));
    if let Err(e) = names::check(&name) {
        eprintln!("init-shim run: {e}");
        return 2;
    }
    let mut r = Run {
        name,
        log_dir: goflags::path(&args.log_dir),
        tee: args.tee,
        told: false,
        gone_told: false,
    };
    // Blocked before the command starts, so that no signal is missed.
    let mut sigs = match signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("init-shim run: cannot set up signal handling: {e}");
            return 1;
        }
    };
    let mut streams = r.sinks(&goflags::path(&args.socket));
    let mut cmd = Command::new(cmd0);
    cmd.args(&command[1..]);
    let cmd0 = Path::new(cmd0).display();
    sys::unblock_signals_in_child(&mut cmd);
    if args.tee {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        match (stdio_for(&streams.0), stdio_for(&streams.1)) {
            (Ok(o), Ok(e)) => {
                cmd.stdout(o).stderr(e);
            }
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("init-shim run: cannot set up the command's output: {e}");
                return 1;
            }
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("init-shim: cannot run {cmd0}: {e}\n");
            eprint!("{msg}");
            // Into the log as well, where the command's errors would be.
            r.tee = false;
            if !matches!(streams.1.sink, Sink::Console) {
                r.relay(&mut streams.1, msg.as_bytes());
            }
            return match e.kind() {
                io::ErrorKind::NotFound => 127,
                _ => 126,
            };
        }
    };
    let pipes = (child.stdout.take(), child.stderr.take());
    if !args.tee {
        // The command holds its own copies. Ours would keep memlogd's inputs
        // open after it ends (and are never written to without -tee).
        streams.0.sink = Sink::Console;
        streams.1.sink = Sink::Console;
    }
    match supervise(&mut child, &mut sigs, &mut r, &mut streams, pipes) {
        Ok(st) => exit_code(st),
        Err(e) => {
            eprintln!("init-shim run: waiting for {cmd0}: {e}");
            // Do not leave the command running unsupervised and unreaped.
            let _ = child.wait();
            1
        }
    }
}

/// `init-shim run ARGS`: the exit status.
pub fn main(argv: &[std::ffi::OsString]) -> u8 {
    let args: Args = goflags::parse_or_exit("init-shim run", argv, &SPEC);
    run(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGTERM)), 143);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGKILL)), 137);
    }

    #[test]
    fn command_after_double_dash_keeps_its_flags() {
        let argv: Vec<String> = ["-n", "x", "--tee", "--", "sh", "-c", "echo -n"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let norm = goflags::normalize(&argv, &SPEC).expect("normalize");
        let refs: Vec<&str> = norm.iter().map(String::as_str).collect();
        let a = Args::from_args(&["init-shim run"], &refs).expect("parse");
        assert_eq!(a.name.as_deref(), Some("x"));
        assert!(a.tee);
        assert_eq!(a.command, ["sh", "-c", "echo -n"]);
        let argv: Vec<String> = ["-socket=/s", "ls", "-l"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let norm = goflags::normalize(&argv, &SPEC).expect("normalize");
        let refs: Vec<&str> = norm.iter().map(String::as_str).collect();
        let a = Args::from_args(&["init-shim run"], &refs).expect("parse");
        assert_eq!(a.socket, "/s");
        assert_eq!(a.command, ["ls", "-l"]);
    }
}
