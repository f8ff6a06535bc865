//! `-on-rotate CMD`: a program run after a file is rotated (and
//! compressed), with the rotated file's path as its last argument and
//! `LOGWRITE_SOURCE`, `LOGWRITE_FILE` and `LOGWRITE_REASON` (`size`,
//! `trigger`, `signal`) in its environment.
//!
//! Never in the way of writing: the file output only queues a job (at most
//! [`MAX_PENDING`] wait; past that a job is dropped, counted and said).
//! `-on-rotate-jobs` workers run them, each one at a time, without a shell
//! ([`crate::argv::split`]), in its own process group, stdin from
//! /dev/null, stdout logwrite's, stderr read by logwrite. A hook still
//! running after `-on-rotate-timeout` is killed (its whole group) and
//! counted. Its exit status and the last line of its stderr are said on
//! logwrite's stderr (`logwrite: hook: ...`; under init that reaches
//! memlogd as a source starting with `logwrite`, which is never written
//! back to a file).
//!
//! Waiting is event-driven: a pidfd and the stderr pipe in one `poll`, no
//! sleep loop (a kernel without pidfds falls back to polling every 50 ms).
//!
//! At exit, logwrite gives queued and running hooks [`EXIT_GRACE`] to
//! finish; a hook still running then is left running (it has its own
//! process group and is not killed), and a job not started is said.

use crate::report::say;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most jobs waiting for a worker.
pub const MAX_PENDING: usize = 1024;
/// How long logwrite waits for hooks at exit.
pub const EXIT_GRACE: Duration = Duration::from_secs(10);
/// Most bytes kept of a hook's last stderr line.
const LAST_LINE_MAX: usize = 512;

/// Why a file was rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Size,
    Trigger,
    Signal,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Size => "size",
            Reason::Trigger => "trigger",
            Reason::Signal => "signal",
        }
    }
}

/// `-on-rotate`, `-on-rotate-jobs`, `-on-rotate-timeout`.
#[derive(Debug, Clone)]
pub struct HookConfig {
    pub argv: Vec<String>,
    pub jobs: usize,
    pub timeout: Duration,
}

/// One rotated file to hand to the hook.
#[derive(Debug, Clone)]
pub struct Job {
    pub path: PathBuf,
    pub source: OsString,
    pub reason: Reason,
    /// With index naming: (stem, its rotation count, gzipped, -max-log-files)
    /// from [`Hooks::rotated`]. Later rotations of the source rename
    /// `STEM.log.0` up while the job waits, so the path is worked out again
    /// when the hook starts.
    pub index: Option<(String, u64, bool, u32)>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    running: usize,
    closed: bool,
    dropped: u64,
    timeouts: u64,
}

struct Shared {
    cfg: HookConfig,
    /// Rotations so far, by stem (index naming).
    gens: Mutex<std::collections::HashMap<String, u64>>,
    q: Mutex<Queue>,
    /// Wakes workers (a job, or closing) and the exit wait (a job done).
    cv: Condvar,
}

/// The hook runner (see the module documentation).
pub struct Hooks {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Hooks {
    pub fn new(cfg: HookConfig) -> Hooks {
        let jobs = cfg.jobs.max(1);
        let shared = Arc::new(Shared {
            cfg,
            gens: Mutex::new(std::collections::HashMap::new()),
            q: Mutex::new(Queue::default()),
            cv: Condvar::new(),
        });
        let workers = (0..jobs)
            .map(|_| {
                let s = Arc::clone(&shared);
                std::thread::spawn(move || worker(&s))
            })
            .collect();
        Hooks { shared, workers }
    }

    /// Counts a rotation of `stem` (index naming); its number, for
    /// [`Job::index`].
    pub fn rotated(&self, stem: &str) -> u64 {
        let mut g = self
            .shared
            .gens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = g.entry(stem.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    /// Queues `job`; never blocks.
    pub fn run(&self, job: Job) {
        let mut q = self.shared.lock();
        if q.jobs.len() >= MAX_PENDING {
            q.dropped += 1;
            let n = q.dropped;
            drop(q);
            say(
                "hook",
                &format!(
                    "{} hooks already wait: not run for {} ({n} dropped so far)",
                    MAX_PENDING,
                    job.path.display()
                ),
            );
            return;
        }
        q.jobs.push_back(job);
        drop(q);
        self.shared.cv.notify_all();
    }

    /// At exit: waits at most `grace` for the queued and running hooks.
    pub fn finish(self, grace: Duration) {
        let end = Instant::now() + grace;
        let mut q = self.shared.lock();
        while (!q.jobs.is_empty() || q.running > 0) && Instant::now() < end {
            q = self
                .shared
                .cv
                .wait_timeout(q, end.saturating_duration_since(Instant::now()))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        q.closed = true;
        let left: Vec<Job> = q.jobs.drain(..).collect();
        let running = q.running;
        drop(q);
        self.shared.cv.notify_all();
        for j in &left {
            say(
                "hook",
                &format!(
                    "logwrite is stopping: the hook was not run for {}",
                    j.path.display()
                ),
            );
        }
        if running > 0 {
            say(
                "hook",
                &format!("logwrite is stopping: {running} hooks left running"),
            );
            return;
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

impl Shared {
    /// `job` with the rotated file's name as it is now (index naming: the
    /// rotations since moved it up), or `None` if it was rotated away.
    fn current(&self, mut job: Job) -> Option<Job> {
        let Some((stem, gen, gz, max_files)) = job.index.clone() else {
            if std::fs::symlink_metadata(&job.path).is_err() {
                say(
                    "hook",
                    &format!(
                        "{}: gone (removed by -max-log-files or -max-source-bytes?) before its hook could run",
                        job.path.display()
                    ),
                );
                return None;
            }
            return Some(job);
        };
        let now = *self
            .gens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&stem)
            .unwrap_or(&gen);
        let i = now.saturating_sub(gen);
        if i >= u64::from(max_files) {
            say(
                "hook",
                &format!(
                    "{}: rotated away (-max-log-files {max_files}) before its hook could run",
                    job.path.display()
                ),
            );
            return None;
        }
        let name = format!("{stem}.log.{i}{}", if gz { ".gz" } else { "" });
        job.path = job.path.with_file_name(name);
        Some(job)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn worker(s: &Shared) {
    loop {
        let mut q = s.lock();
        let job = loop {
            if q.closed {
                return;
            }
            if let Some(j) = q.jobs.pop_front() {
                break j;
            }
            q = s.cv.wait(q).unwrap_or_else(PoisonError::into_inner);
        };
        q.running += 1;
        drop(q);
        let job = s.current(job);
        let timed_out = job.as_ref().is_some_and(|j| run_one(&s.cfg, j));
        let mut q = s.lock();
        q.running -= 1;
        if timed_out {
            q.timeouts += 1;
            let n = q.timeouts;
            drop(q);
            say(
                "hook",
                &format!(
                    "{} {}: still running after {:?}: killed ({n} hooks killed so far)",
                    s.cfg.argv.join(" "),
                    job.as_ref()
                        .map_or_else(String::new, |j| j.path.display().to_string()),
                    s.cfg.timeout
                ),
            );
        } else {
            drop(q);
        }
        s.cv.notify_all();
    }
}

/// A pidfd for `pid` (readable once it exits), if the kernel has them.
fn pidfd(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
    // it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a successful pidfd_open returned a new fd that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Runs the hook for `job`; true if it was killed for running too long.
fn run_one(cfg: &HookConfig, job: &Job) -> bool {
    let what = format!("{} {}", cfg.argv.join(" "), job.path.display());
    let mut cmd = Command::new(&cfg.argv[0]);
    cmd.args(&cfg.argv[1..])
        .arg(&job.path)
        .env("LOGWRITE_SOURCE", &job.source)
        .env("LOGWRITE_FILE", &job.path)
        .env("LOGWRITE_REASON", job.reason.as_str())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    memlog::sys::default_signals_in_child(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            say("hook", &format!("{what}: cannot start it: {e}"));
            return false;
        }
    };
    let (last, timed_out) = wait(&mut child, cfg.timeout);
    let status = match child.wait() {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => st.to_string(),
        },
        Err(e) => format!("cannot be waited for: {e}"),
    };
    let tail = if last.is_empty() {
        String::new()
    } else {
        format!("; stderr: {last}")
    };
    if !timed_out || !tail.is_empty() {
        say("hook", &format!("{what}: {status}{tail}"));
    }
    timed_out
}

/// Reads `child`'s stderr (keeping its last non-empty line) until it
/// exits, or kills its group after `timeout`. (last line, timed out).
fn wait(child: &mut Child, timeout: Duration) -> (String, bool) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let end = Instant::now() + timeout;
    let pid = child.id();
    let pfd = pidfd(pid);
    let mut err = child.stderr.take();
    let mut line: Vec<u8> = Vec::new();
    let mut last: Vec<u8> = Vec::new();
    let mut exited = false;
    let mut timed_out = false;
    while !exited {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // Its whole group: a `sh -c` and what it started.
            // SAFETY: kill takes a (negative: group) pid and a signal; no memory.
            unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
            timed_out = true;
            break;
        }
        let ms = if pfd.is_some() {
            left.as_millis().min(60_000) as i32
        } else {
            50
        };
        let mut fds: Vec<PollFd> = Vec::with_capacity(2);
        if let Some(e) = &err {
            fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
        }
        if let Some(p) = &pfd {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        let t = PollTimeout::try_from(ms).unwrap_or(PollTimeout::ZERO);
        let n = if fds.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
            0
        } else {
            poll(&mut fds, t).unwrap_or(0)
        };
        let err_ready = err.is_some()
            && fds
                .first()
                .and_then(PollFd::revents)
                .is_some_and(|r| !r.is_empty());
        drop(fds);
        if n > 0 && err_ready {
            let mut buf = [0u8; 4096];
            let got = err.as_mut().map(|e| e.read(&mut buf));
            match got {
                Some(Ok(0)) | Some(Err(_)) | None => err = None,
                Some(Ok(k)) => take_lines(&buf[..k], &mut line, &mut last),
            }
        }
        // Exited (pidfd readable, or no pidfd and try_wait says so).
        exited = matches!(child.try_wait(), Ok(Some(_)));
    }
    if exited {
        // What it wrote just before exiting (its stderr may be held open
        // by something it left running: read what is there, no more).
        if let Some(e) = &mut err {
            let _ = nix::fcntl::fcntl(
                e.as_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            let mut buf = [0u8; 4096];
            for _ in 0..16 {
                match e.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => take_lines(&buf[..k], &mut line, &mut last),
                }
            }
        }
    }
    if !line.is_empty() {
        last = std::mem::take(&mut line);
    }
    let mut out = Vec::new();
    memlog::escape::write(&mut out, &last);
    (String::from_utf8_lossy(&out).into_owned(), timed_out)
}

/// Splits `chunk` into lines: `line` is the one being read, `last` the
/// last complete non-empty one (each at most [`LAST_LINE_MAX`] bytes).
fn take_lines(chunk: &[u8], line: &mut Vec<u8>, last: &mut Vec<u8>) {
    for &b in chunk {
        if b == b'\n' {
            if !line.is_empty() {
                *last = std::mem::take(line);
            }
        } else if line.len() < LAST_LINE_MAX {
            line.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_is_kept_and_bounded() {
        let (mut line, mut last) = (Vec::new(), Vec::new());
        take_lines(b"one\ntwo\n\nthr", &mut line, &mut last);
        assert_eq!(
            (line.as_slice(), last.as_slice()),
            (&b"thr"[..], &b"two"[..])
        );
        take_lines(b"ee\n", &mut line, &mut last);
        assert_eq!(last, b"three");
        take_lines(&[b'x'; 2000], &mut line, &mut last);
        assert_eq!(line.len(), LAST_LINE_MAX);
    }

    #[test]
    fn a_hook_runs_with_its_environment_and_a_slow_one_is_killed() {
        let dir = std::env::temp_dir().join(format!("logwrite-hooks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let out = dir.join("out");
        let hooks = Hooks::new(HookConfig {
            argv: vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "echo \"$LOGWRITE_SOURCE $LOGWRITE_REASON $LOGWRITE_FILE $1\" >> {}; echo bye >&2",
                    out.display()
                ),
                "hook".into(),
            ],
            jobs: 2,
            timeout: Duration::from_secs(30),
        });
        std::fs::write(dir.join("a.log.0"), "x\n").expect("write");
        hooks.run(Job {
            path: dir.join("a.log.0"),
            source: "a".into(),
            reason: Reason::Size,
            index: None,
        });
        hooks.finish(Duration::from_secs(20));
        let got = std::fs::read_to_string(&out).expect("hook output");
        let p = dir.join("a.log.0");
        assert_eq!(got, format!("a size {} {}\n", p.display(), p.display()));
        let slow = HookConfig {
            argv: vec!["sh".into(), "-c".into(), "sleep 30".into()],
            jobs: 1,
            timeout: Duration::from_millis(200),
        };
        let t = Instant::now();
        assert!(run_one(
            &slow,
            &Job {
                path: "x".into(),
                source: "x".into(),
                reason: Reason::Signal,
                index: None,
            }
        ));
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
