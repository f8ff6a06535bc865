//! `init-shim start`: bind memlogd's log and query sockets, start memlogd
//! with them as inherited fds 3 and 4, and return only once it serves (it
//! answered a `stats` request). This replaces LinuxKit's `002-logging`
//! (`memlogd -daemonize`) and `startmemlogd`.
//!
//! The flags are memlogd's own (parsed and checked here with memlogd's
//! parser, so a bad flag fails before anything is bound), plus `-memlogd`
//! and `-timeout`. `-syslog PATH` sockets are bound by memlogd itself, before
//! its loop starts: once it answers, they exist too.

use argh::FromArgs;
use memlog::client::Client;
use memlog::daemon::config::{self, Args as MemlogdArgs, Config, SocketSource};
use memlog::daemon::sockets::Bound;
use memlog::goflags::{self, Spec};
use memlog::proto::{Line, Mode, Request};
use memlog::sys;
use std::fmt;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::probe;

const HELP: &str = "\
Usage: init-shim start [-memlogd PATH] [-timeout D] [MEMLOGD FLAGS]

Binds memlogd's log and query sockets (-socket-log, -socket-query; LinuxKit's
paths by default), starts memlogd in a session of its own with them as fds 3
and 4 (-fd-log 3 -fd-query 4 -remove-sockets), and returns once memlogd has
answered a stats request. Every other memlogd flag is passed on, e.g.
-syslog /dev/log (memlogd binds it before it serves), -kmsg, -max-lines N.
Refused when a memlogd already answers on either socket; a stale socket file
(left by a daemon that died) is replaced. memlogd does not keep this
command's stdout or stderr open (so x=$(init-shim start) returns): its
stdout is /dev/null, or with -echo this command's stdout (the console); a
message from a memlogd that fails before it serves is printed on stderr.
On success one line with memlogd's pid is printed.

Flags:
  -memlogd PATH   memlogd binary (default: memlogd beside init-shim if it
                  exists, else /usr/bin/memlogd)
  -timeout D      how long to wait for memlogd to serve (default 10s)
  -help           this text (memlogd -help lists memlogd's flags)

Example (LinuxKit's init.d, before any onboot container):
  init-shim start -syslog /dev/log -kmsg
";

/// Flags of init-shim start itself.
const OWN: &[&str] = &["memlogd", "timeout"];
/// memlogd flags that init-shim start sets itself.
const RESERVED: &[&str] = &["fd-log", "fd-query", "daemonize", "remove-sockets"];
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the command line asks for.
#[derive(Debug)]
pub struct Opts {
    memlogd: PathBuf,
    timeout: Duration,
    cfg: Config,
    /// memlogd flags to pass on (normalized), without the socket paths.
    forward: Vec<String>,
}

/// A command line that is not valid.
#[derive(Debug, PartialEq, Eq)]
pub enum Usage {
    Help,
    Bad(String),
}

fn spec() -> Spec {
    let options: Vec<&'static str> = config::SPEC.options.iter().chain(OWN).copied().collect();
    let bytes: Vec<&'static str> = config::SPEC
        .bytes
        .iter()
        .chain(&["memlogd"])
        .copied()
        .collect();
    Spec {
        switches: config::SPEC.switches,
        // Two small allocations for the life of the process.
        options: Box::leak(options.into_boxed_slice()),
        bytes: Box::leak(bytes.into_boxed_slice()),
        bytes_positionals: false,
    }
}

fn default_memlogd() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.join("memlogd")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/memlogd"))
}

/// Parses `argv` (after `start`).
pub fn parse<S: AsRef<std::ffi::OsStr>>(argv: &[S]) -> Result<Opts, Usage> {
    let spec = spec();
    let norm = goflags::normalize(argv, &spec).map_err(|e| Usage::Bad(e.0))?;
    let (mut memlogd, mut timeout) = (None, DEFAULT_TIMEOUT);
    let (mut rest, mut forward) = (Vec::new(), Vec::new());
    let mut it = norm.into_iter();
    while let Some(a) = it.next() {
        if a == "--help" {
            return Err(Usage::Help);
        }
        let name = match a.strip_prefix("--") {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => {
                return Err(Usage::Bad(format!(
                    "unexpected argument {a:?}: start takes only flags"
                )))
            }
        };
        if RESERVED.contains(&name.as_str()) {
            return Err(Usage::Bad(format!(
                "-{name} is set by init-shim start itself (it passes the sockets as fds 3 and 4)"
            )));
        }
        let value = if spec.options.contains(&name.as_str()) {
            // normalize() guarantees that an option is followed by its value.
            Some(it.next().unwrap_or_default())
        } else {
            None
        };
        match (name.as_str(), value) {
            ("memlogd", Some(v)) => memlogd = Some(goflags::path(&v)),
            ("timeout", Some(v)) => {
                timeout =
                    goflags::parse_duration(&v).map_err(|e| Usage::Bad(format!("-timeout: {e}")))?
            }
            (n, v) => {
                let is_path = n == "socket-log" || n == "socket-query";
                for part in std::iter::once(a.clone()).chain(v) {
                    if !is_path {
                        forward.push(part.clone());
                    }
                    rest.push(part);
                }
            }
        }
    }
    let refs: Vec<&str> = rest.iter().map(String::as_str).collect();
    let margs = MemlogdArgs::from_args(&["memlogd"], &refs).map_err(|e| {
        Usage::Bad(
            e.output
                .lines()
                .next()
                .unwrap_or("invalid memlogd flags")
                .to_owned(),
        )
    })?;
    let cfg = Config::from_args(&margs).map_err(Usage::Bad)?;
    Ok(Opts {
        memlogd: memlogd.unwrap_or_else(default_memlogd),
        timeout,
        cfg,
        forward,
    })
}

/// Why memlogd was not started.
#[derive(Debug)]
pub enum Error {
    /// A memlogd already answers on this socket.
    Running(PathBuf),
    /// The sockets could not be bound.
    Bind(String),
    /// The sockets could not be handed to the child as fds 3 and 4.
    PassFds(io::Error),
    Spawn(PathBuf, io::Error),
    /// memlogd exited before it served.
    Exited(PathBuf, ExitStatus),
    /// memlogd did not serve in time (it was killed).
    Timeout(PathBuf, Duration),
    Wait(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Running(p) => write!(
                f,
                "memlogd is already running ({} answers); not starting another",
                p.display()
            ),
            Error::Bind(e) => f.write_str(e),
            Error::PassFds(e) => write!(f, "cannot pass the sockets to memlogd: {e}"),
            Error::Spawn(p, e) => write!(f, "cannot start {}: {e}", p.display()),
            Error::Exited(p, st) => write!(
                f,
                "{} exited before it served ({st}); its message, if any, is above",
                p.display()
            ),
            Error::Timeout(p, d) => {
                write!(f, "{} did not answer within {d:?}; killed it", p.display())
            }
            Error::Wait(e) => write!(f, "cannot wait for memlogd: {e}"),
        }
    }
}

fn path_of(s: &SocketSource) -> &Path {
    match s {
        SocketSource::Path(p) => p,
        // parse() refuses -fd-log and -fd-query.
        SocketSource::Fd { remove, .. } => remove.as_deref().unwrap_or(Path::new("")),
    }
}

/// A running memlogd that serves.
pub struct Started {
    pub pid: u32,
    pub log: PathBuf,
    pub query: PathBuf,
}

/// Binds, starts memlogd, waits until it serves.
pub fn start(o: &Opts) -> Result<Started, Error> {
    let (log_path, query_path) = (
        path_of(&o.cfg.log).to_owned(),
        path_of(&o.cfg.query).to_owned(),
    );
    if probe::log_socket(&log_path).is_ok() {
        return Err(Error::Running(log_path));
    }
    if probe::query_socket(&query_path).is_ok() {
        return Err(Error::Running(query_path));
    }
    // Removes stale socket files, binds both, listens. On any error below
    // the guards in `log` and `query` remove the paths again.
    let (log, query) = memlog::daemon::bind(&o.cfg).map_err(|e| Error::Bind(e.to_string()))?;
    let Bound {
        fd: log_fd,
        path: log_guard,
    } = log;
    let Bound {
        fd: query_fd,
        path: query_guard,
    } = query;
    // Out of the way of 3 and 4 first, then onto them (not close-on-exec).
    let log_fd = sys::dup_to(log_fd, 100).map_err(Error::PassFds)?;
    let query_fd = sys::dup_to(query_fd, 101).map_err(Error::PassFds)?;
    let fd3 = sys::dup_to(log_fd, 3).map_err(Error::PassFds)?;
    let fd4 = sys::dup_to(query_fd, 4).map_err(Error::PassFds)?;
    let mut cmd = Command::new(&o.memlogd);
    cmd.args(["-fd-log", "3", "-fd-query", "4", "-remove-sockets"])
        .arg("-socket-log")
        .arg(&log_path)
        .arg("-socket-query")
        .arg(&query_path)
        .args(o.forward.iter().map(|a| goflags::os(a)))
        .stdin(Stdio::null());
    // memlogd must not hold this command's stdout or stderr open after it
    // returns: `x=$(init-shim start)` would wait for it forever. stdout is
    // /dev/null (the console's, with -echo: echo is what it is for);
    // stderr is a pipe read here until memlogd serves (a message from a
    // memlogd that fails at start is relayed), then closed.
    let (err_r, err_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::PassFds(e.into()))?;
    cmd.stdout(if o.cfg.echo {
        Stdio::inherit()
    } else {
        Stdio::null()
    })
    .stderr(Stdio::from(err_w));
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setsid(2), which is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(io::Error::from));
    }
    let spawned = cmd.spawn();
    // Our copies: the write end of the pipe too, so that it ends with memlogd.
    drop((fd3, fd4, cmd));
    let mut child = spawned.map_err(|e| Error::Spawn(o.memlogd.clone(), e))?;
    let mut errors = std::fs::File::from(err_r);
    match wait_serving(&mut child, &query_path, o.timeout) {
        Ok(()) => {}
        Err(NotServing::Exited(st)) => {
            relay(&mut errors);
            return Err(Error::Exited(o.memlogd.clone(), st));
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            relay(&mut errors);
            return Err(match e {
                NotServing::Wait(e) => Error::Wait(e),
                _ => Error::Timeout(o.memlogd.clone(), o.timeout),
            });
        }
    }
    // memlogd owns the paths now (it removes them when it stops).
    log_guard.disarm();
    query_guard.disarm();
    Ok(Started {
        pid: child.id(),
        log: log_path,
        query: query_path,
    })
}

/// Copies what memlogd wrote to its stderr (it has exited) to ours.
fn relay(errors: &mut std::fs::File) {
    let mut text = Vec::new();
    let _ = io::Read::read_to_end(&mut io::Read::take(errors, 64 * 1024), &mut text);
    let _ = io::stderr().write_all(&text);
}

fn stats_client(query: &Path) -> io::Result<Client> {
    let s = std::os::unix::net::UnixStream::connect(query)?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut req = Request::new(Mode::Dump);
    req.stats = true;
    Client::start(s, &req)
}

/// Why memlogd was not seen serving.
enum NotServing {
    Exited(ExitStatus),
    Timeout,
    Wait(io::Error),
}

/// Waits until memlogd answers a stats request, or exits, or `timeout` passes.
fn wait_serving(child: &mut Child, query: &Path, timeout: Duration) -> Result<(), NotServing> {
    let deadline = Instant::now() + timeout;
    let mut client: Option<Client> = None;
    loop {
        if let Some(st) = child.try_wait().map_err(NotServing::Wait)? {
            return Err(NotServing::Exited(st));
        }
        if Instant::now() >= deadline {
            return Err(NotServing::Timeout);
        }
        if client.is_none() {
            client = stats_client(query).ok();
        }
        let Some(c) = client.as_mut() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        match c.next_line() {
            Ok(Some(Line::Stats(_))) => return Ok(()),
            Ok(Some(_)) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            // Closed without counters, or failed: ask again shortly.
            Ok(None) | Err(_) => {
                client = None;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// `init-shim start ARGS`: the exit status.
pub fn main(argv: &[std::ffi::OsString]) -> u8 {
    let o = match parse(argv) {
        Ok(o) => o,
        Err(Usage::Help) => {
            print!("{HELP}");
            return 0;
        }
        Err(Usage::Bad(e)) => {
            eprintln!("init-shim start: {e} (see init-shim start -help)");
            return 2;
        }
    };
    match start(&o) {
        Ok(s) => {
            // memlogd runs whether or not this line can be printed.
            let _ = writeln!(
                io::stdout(),
                "memlogd started: pid {}, log socket {}, query socket {}",
                s.pid,
                s.log.display(),
                s.query.display()
            );
            0
        }
        Err(e) => {
            eprintln!("init-shim start: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Opts, Usage> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn memlogd_flags_pass_through_in_any_spelling() {
        let o = p(&[
            "-syslog",
            "/dev/log",
            "--kmsg",
            "-max-lines=77",
            "--socket-log",
            "/x/l.sock",
            "-socket-query=/x/q.sock",
            "-timeout",
            "3s",
            "-memlogd",
            "/opt/memlogd",
        ])
        .expect("valid");
        assert_eq!(
            o.forward,
            ["--syslog", "/dev/log", "--kmsg", "--max-lines", "77"]
        );
        assert_eq!(o.cfg.log, SocketSource::Path("/x/l.sock".into()));
        assert_eq!(o.cfg.query, SocketSource::Path("/x/q.sock".into()));
        assert_eq!(o.cfg.max_lines, 77);
        assert_eq!(o.timeout, Duration::from_secs(3));
        assert_eq!(o.memlogd, PathBuf::from("/opt/memlogd"));
    }

    #[test]
    fn defaults_are_linuxkits_paths() {
        let o = p(&[]).expect("valid");
        assert_eq!(
            o.cfg.log,
            SocketSource::Path("/var/run/linuxkit-external-logging.sock".into())
        );
        assert_eq!(
            o.cfg.query,
            SocketSource::Path("/var/run/memlogdq.sock".into())
        );
        assert!(o.forward.is_empty());
        assert_eq!(o.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn bad_command_lines_are_refused_before_anything_is_bound() {
        for args in [
            &["-fd-log", "3"][..],
            &["-daemonize"],
            &["-remove-sockets"],
            &["-nope"],
            &["-max-lines", "x"],
            &["-max-lines", "0"],
            &["-timeout", "forever"],
            &["extra"],
        ] {
            assert!(matches!(p(args), Err(Usage::Bad(_))), "{args:?} accepted");
        }
        assert_eq!(p(&["-help"]).err(), Some(Usage::Help));
    }
}
