//! memlog-demo: runs memlogd and a few logging services in a temporary
//! directory (no root needed) and follows the buffer with logread, so a
//! newcomer sees logs flow. `cargo run -p memlog-tests --bin memlog-demo [SECONDS]`

use memlog::sys;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
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
    Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(out_w)))
        .stderr(Stdio::from(std::os::fd::OwnedFd::from(err_w)))
        .spawn()
}

fn io_ctx(e: std::io::Error, p: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

fn main() -> std::io::Result<()> {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = std::env::temp_dir().join(format!("memlog-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (log, query) = (dir.join("log.sock"), dir.join("memlogdq.sock"));
    let mut memlogd = Command::new(bin("memlogd"))
        .arg("-socket-log")
        .arg(&log)
        .arg("-socket-query")
        .arg(&query)
        .spawn()
        .map_err(|e| io_ctx(e, &bin("memlogd")))?;
    let start = Instant::now();
    while !(log.exists() && query.exists()) {
        if start.elapsed() > Duration::from_secs(5) {
            let _ = memlogd.kill();
            return Err(std::io::Error::other("memlogd did not create its sockets"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "memlogd is running in {} (log socket log.sock, query socket memlogdq.sock)",
        dir.display()
    );
    println!(
        "following with: logread -socket {} -F   (for {secs} s; Ctrl-C stops)\n",
        query.display()
    );
    let mut services = vec![
        service(&log, "onboot.001-hello", "echo 'hello from an onboot service'; echo 'and a warning on stderr' >&2")?,
        service(&log, "ticker", "i=0; while true; do i=$((i+1)); echo \"tick $i\"; [ $((i % 3)) -eq 0 ] && echo \"tick $i is a multiple of 3\" >&2; sleep 1; done")?,
    ];
    let mut reader = Command::new(bin("logread"))
        .arg("-socket")
        .arg(&query)
        .arg("-F")
        .spawn()?;
    std::thread::sleep(Duration::from_secs(secs));
    for s in &mut services {
        let _ = s.kill();
        let _ = s.wait();
    }
    let _ = reader.kill();
    let _ = reader.wait();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(memlogd.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = memlogd.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!("\nstopped memlogd; removed {}", dir.display());
    Ok(())
}
