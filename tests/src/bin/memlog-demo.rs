//! memlog-demo: runs memlogd, two logging services, logread following the
//! buffer and logwrite writing it to files, in a temporary directory (no
//! root needed), so a newcomer sees logs flow.
//! `cargo build --workspace && ./target/debug/memlog-demo [SECONDS]`
//!
//! It stops after SECONDS (default 10) or on Ctrl-C (SIGINT), SIGTERM or
//! SIGHUP, whichever comes first, and then always stops what it started,
//! shows what logwrite wrote, and removes its directory.

use memlog::sys;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin(name: &str) -> PathBuf {
    // The demo binary sits next to memlogd and logread in target/<profile>/.
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Starts `sh -c script` with stdout logged as `NAME.out` and stderr as `NAME`,
/// the way LinuxKit's init names service logs.
fn service(log_sock: &Path, name: &str, script: &str) -> std::io::Result<Child> {
    let dgram = UnixDatagram::unbound()?;
    dgram.connect(log_sock).map_err(|e| io_ctx(e, log_sock))?;
    let (out_w, out_r) = UnixStream::pair()?;
    let (err_w, err_r) = UnixStream::pair()?;
    sys::send_with_fds(
        dgram.as_fd(),
        format!("{name}.out").as_bytes(),
        &[out_r.as_fd()],
    )
    .map_err(|e| io_ctx(e, log_sock))?;
    sys::send_with_fds(dgram.as_fd(), name.as_bytes(), &[err_r.as_fd()])
        .map_err(|e| io_ctx(e, log_sock))?;
    own_group(Command::new("sh").args(["-c", script]))
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(out_w)))
        .stderr(Stdio::from(std::os::fd::OwnedFd::from(err_w)))
        .spawn()
}

/// Children get a process group of their own, so that a Ctrl-C reaches the
/// demo only, and the demo stops them in order; and no blocked signal (the
/// demo blocks the ones it waits for, and a mask survives exec).
fn own_group(cmd: &mut Command) -> &mut Command {
    sys::unblock_signals_in_child(cmd);
    cmd.process_group(0)
}

fn io_ctx(e: std::io::Error, p: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

/// Everything the demo started, stopped (and its directory removed) on drop,
/// however the demo ends.
struct Demo {
    dir: PathBuf,
    services: Vec<Child>,
    reader: Option<Child>,
    writer: Option<Child>,
    memlogd: Option<Child>,
}

fn term(c: &mut Child) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), Signal::SIGTERM);
    let _ = c.wait();
}

impl Demo {
    fn stop(&mut self) {
        for s in &mut self.services {
            // The whole group: the shell and what it runs (its `sleep`).
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(s.id() as i32),
                Signal::SIGKILL,
            );
            let _ = s.wait();
        }
        self.services.clear();
        // Give the reader and the writer a moment for the last lines.
        std::thread::sleep(Duration::from_millis(200));
        for c in [&mut self.reader, &mut self.writer, &mut self.memlogd]
            .into_iter()
            .flatten()
        {
            term(c);
        }
        (self.reader, self.writer, self.memlogd) = (None, None, None);
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What logwrite wrote, briefly.
fn show_files(logs: &Path) {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return;
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (!name.starts_with('.'))
                .then(|| Some((name, std::fs::read(e.path()).ok()?)))
                .flatten()
        })
        .collect();
    files.sort();
    println!(
        "\nlogwrite wrote one file per source in {}:",
        logs.display()
    );
    for (name, data) in &files {
        let lines = data.iter().filter(|&&b| b == b'\n').count();
        println!("  {name}: {lines} lines");
    }
    if let Some((name, data)) = files.iter().find(|(n, _)| n == "ticker.out.log") {
        println!("the first lines of {name} (TIME SOURCE MSG, as LinuxKit's logwrite writes):");
        for l in String::from_utf8_lossy(data).lines().take(3) {
            println!("  {l}");
        }
    }
}

fn main() -> std::io::Result<()> {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    // Ctrl-C, SIGTERM and SIGHUP end the wait below instead of the demo.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        mask.add(s);
    }
    mask.thread_block().map_err(std::io::Error::from)?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)?;
    let dir = std::env::temp_dir().join(format!("memlog-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut demo = Demo {
        dir: dir.clone(),
        services: Vec::new(),
        reader: None,
        writer: None,
        memlogd: None,
    };
    let (log, query, logs) = (
        dir.join("log.sock"),
        dir.join("memlogdq.sock"),
        dir.join("logs"),
    );
    demo.memlogd = Some(
        own_group(
            Command::new(bin("memlogd"))
                .arg("-socket-log")
                .arg(&log)
                .arg("-socket-query")
                .arg(&query),
        )
        .spawn()
        .map_err(|e| io_ctx(e, &bin("memlogd")))?,
    );
    let start = Instant::now();
    while !(log.exists() && query.exists()) {
        if start.elapsed() > Duration::from_secs(5) {
            return Err(std::io::Error::other("memlogd did not create its sockets"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "memlogd is running in {} (log socket log.sock, query socket memlogdq.sock)",
        dir.display()
    );
    println!(
        "services: onboot.001-hello and ticker; each one's stdout is the source NAME.out, its stderr NAME"
    );
    println!(
        "logwrite writes the buffer to {}, one file per source",
        logs.display()
    );
    println!(
        "following with: {} -socket {} -F   (for {secs} s; Ctrl-C stops)\n",
        bin("logread").display(),
        query.display()
    );
    demo.services.push(service(
        &log,
        "onboot.001-hello",
        "echo 'hello from an onboot service'; echo 'and a warning on stderr' >&2",
    )?);
    demo.services.push(service(
        &log,
        "ticker",
        "i=0; while true; do i=$((i+1)); echo \"tick $i\"; [ $((i % 3)) -eq 0 ] && echo \"tick $i is a multiple of 3\" >&2; sleep 1; done",
    )?);
    demo.writer = Some(
        own_group(
            Command::new(bin("logwrite"))
                .arg("-socket")
                .arg(&query)
                .arg("-log-dir")
                .arg(&logs)
                .stdin(Stdio::null()),
        )
        .spawn()
        .map_err(|e| io_ctx(e, &bin("logwrite")))?,
    );
    demo.reader = Some(
        own_group(
            Command::new(bin("logread"))
                .arg("-socket")
                .arg(&query)
                .arg("-F")
                .stdin(Stdio::null()),
        )
        .spawn()?,
    );
    // Wait for the time to pass or a signal, whichever comes first.
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut why = format!("{secs} s passed");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let ms = u16::try_from(left.as_millis().min(10_000)).unwrap_or(10_000);
        let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => {
                if let Ok(Some(si)) = signals.read_signal() {
                    let name = Signal::try_from(si.ssi_signo as i32)
                        .map(|s| s.as_str())
                        .unwrap_or("a signal");
                    why = format!("{name} received");
                }
                break;
            }
            _ => {}
        }
    }
    demo.stop();
    show_files(&logs);
    drop(demo);
    println!(
        "\n{why}: stopped memlogd, logread and logwrite; removed {}",
        dir.display()
    );
    Ok(())
}
