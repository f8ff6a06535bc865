//! Docker helpers: frames as dockerd writes them, a FIFO made as dockerd
//! makes it, `memlog-docker-logdriver` run in a test directory, a small
//! HTTP client that speaks to it as dockerd's plugin client does, and a
//! real dockerd started in private directories (tests/tests/docker_real.rs).

use crate::{bin, wait_for, TempDir, TIMEOUT};
use memlog::dockerlog::{self, Entry, PartialMeta};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One frame of a whole line.
pub fn frame(source: &str, line: &[u8], time_nano: i64) -> Vec<u8> {
    let mut out = Vec::new();
    dockerlog::encode_frame(
        &mut out,
        &Entry {
            source: source.as_bytes(),
            time_nano,
            line,
            ..Entry::default()
        },
    );
    out
}

/// The frames of a line as dockerd's copier cuts it: pieces of `piece`
/// bytes, each partial with metadata, the last one marked last (`ended`:
/// the line's newline came; otherwise the stream ended inside it and no
/// piece is last).
pub fn partial_frames(source: &str, line: &[u8], piece: usize, id: &str, ended: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let pieces: Vec<&[u8]> = line.chunks(piece).collect();
    for (i, p) in pieces.iter().enumerate() {
        let last = ended && i + 1 == pieces.len();
        dockerlog::encode_frame(
            &mut out,
            &Entry {
                source: source.as_bytes(),
                time_nano: 1_000 + i as i64,
                line: p,
                partial: true,
                partial_meta: Some(PartialMeta {
                    last,
                    id: id.as_bytes(),
                    ordinal: i as i32 + 1,
                }),
            },
        );
    }
    out
}

/// Reads the frames of a ReadLogs body: (stream, line) each.
pub fn read_frames(mut b: &[u8]) -> Vec<(String, Vec<u8>, i64)> {
    let mut out = Vec::new();
    while let dockerlog::Frame::Whole(body, n) = dockerlog::split(b) {
        let e = dockerlog::decode(body).expect("a frame from the driver decodes");
        out.push((
            String::from_utf8_lossy(e.source).into_owned(),
            e.line.to_vec(),
            e.time_nano,
        ));
        b = &b[n..];
    }
    assert!(b.is_empty(), "bytes after the last frame: {b:?}");
    out
}

/// A FIFO as dockerd makes it: created, and its write end opened
/// `O_RDWR|O_NONBLOCK` (so it never waits for a reader), then made blocking.
pub fn dockerd_fifo(path: &Path) -> std::fs::File {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o700)).expect("mkfifo");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .expect("open fifo");
    memlog::sys::set_nonblocking(std::os::fd::AsFd::as_fd(&f), false).expect("blocking");
    f
}

/// A running `memlog-docker-logdriver`, killed on drop; its stderr goes to
/// `driver.txt` in its directory.
pub struct Driver {
    child: Child,
    pub socket: PathBuf,
    /// Holds its stderr (`driver.txt`), apart from the plugin directory.
    out: TempDir,
    /// Leave the socket file when dropped (a crashed driver's).
    keep_socket: bool,
}

impl Driver {
    /// Starts the driver named `name` with its socket in `plugin_dir`,
    /// for the memlogd at `log` and `query`, and waits until it answers.
    pub fn start(
        plugin_dir: &Path,
        name: &str,
        log: &Path,
        query: &Path,
        extra: &[&str],
    ) -> Driver {
        let out = TempDir::new("driver");
        let errs = std::fs::File::create(out.join("driver.txt")).expect("driver output file");
        let child = Command::new(bin("memlog-docker-logdriver"))
            .arg("-name")
            .arg(name)
            .arg("-plugin-dir")
            .arg(plugin_dir)
            .arg("-socket-log")
            .arg(log)
            .arg("-socket-query")
            .arg(query)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errs)
            .spawn()
            .expect("spawn memlog-docker-logdriver");
        let d = Driver {
            child,
            socket: plugin_dir.join(format!("{name}.sock")),
            out,
            keep_socket: false,
        };
        assert!(
            wait_for(
                || d.post("/Plugin.Activate", b"").is_ok_and(|(s, _)| s == 200),
                TIMEOUT
            ),
            "the driver did not answer on {}",
            d.socket.display()
        );
        d
    }

    /// What the driver wrote on stderr.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.out.join("driver.txt")).unwrap_or_default()
    }

    /// One request as dockerd's plugin client sends it; (status, body).
    pub fn post(&self, method: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(TIMEOUT))?;
        send(&s, method, body)?;
        let mut r = BufReader::new(s);
        read_response(&mut r)
    }

    /// Starts a request whose answer is a stream (ReadLogs): the reader is
    /// after the head; returns the status too.
    pub fn stream(&self, method: &str, body: &[u8]) -> (u16, BufReader<UnixStream>) {
        let s = UnixStream::connect(&self.socket).expect("connect to the driver");
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        send(&s, method, body).expect("send");
        let mut r = BufReader::new(s);
        let (status, chunked, _) = read_head(&mut r).expect("head");
        assert!(chunked || status != 200, "a 200 stream is chunked");
        (status, r)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the driver as a crash would (SIGKILL), leaving its socket
    /// file behind with nobody listening.
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.keep_socket = true;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_socket {
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

fn send(mut s: &UnixStream, method: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "POST {method} HTTP/1.1\r\nHost: plugin\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Type: application/json\r\n\r\n",
        body.len()
    );
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    s.write_all(&all)
}

/// The status line and headers: (status, chunked, content length).
fn read_head(r: &mut impl BufRead) -> std::io::Result<(u16, bool, Option<usize>)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let (mut chunked, mut len) = (false, None);
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            return Ok((status, chunked, len));
        }
        let (k, v) = h.split_once(':').unwrap_or((h, ""));
        if k.eq_ignore_ascii_case("transfer-encoding") && v.trim() == "chunked" {
            chunked = true;
        }
        if k.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().ok();
        }
    }
}

fn read_response(r: &mut impl BufRead) -> std::io::Result<(u16, Vec<u8>)> {
    let (status, chunked, len) = read_head(r)?;
    let mut body = Vec::new();
    if chunked {
        while let Some(c) = read_chunk(r)? {
            body.extend_from_slice(&c);
        }
    } else {
        body.resize(len.unwrap_or(0), 0);
        r.read_exact(&mut body)?;
    }
    Ok((status, body))
}

/// The next chunk of a chunked body; `None` at its end.
pub fn read_chunk(r: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut size = String::new();
    if r.read_line(&mut size)? == 0 {
        return Err(std::io::Error::other(
            "the stream ended without its last chunk",
        ));
    }
    let n = usize::from_str_radix(size.trim(), 16)
        .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
    if n == 0 {
        let mut end = String::new();
        r.read_line(&mut end)?;
        return Ok(None);
    }
    let mut c = vec![0; n + 2];
    r.read_exact(&mut c)?;
    c.truncate(n);
    Ok(Some(c))
}

/// The `Info` dockerd sends for a container.
pub fn info_json(id: &str, name: &str, image: &str, tag: Option<&str>) -> String {
    let cfg = match tag {
        Some(t) => format!("{{\"tag\":\"{t}\"}}"),
        None => "{}".into(),
    };
    format!(
        r#"{{"Config":{cfg},"ContainerID":"{id}","ContainerName":"/{name}","ContainerEntrypoint":"/bin/sh","ContainerArgs":["-c","x"],"ContainerImageID":"sha256:0123456789abcdef","ContainerImageName":"{image}","ContainerCreated":"2026-12-02T06:00:00.000000001Z","ContainerEnv":["PATH=/bin"],"ContainerLabels":{{}},"LogPath":"","DaemonName":"docker"}}"#
    )
}

/// A real dockerd in private directories (its own data root, exec root,
/// pid file and API socket), stopped and cleaned up on drop.
pub struct Dockerd {
    child: Child,
    pub dir: TempDir,
    pub host: String,
}

/// Why dockerd cannot run here, if it cannot (no binary, not root).
pub fn dockerd_missing() -> Option<String> {
    for tool in ["dockerd", "docker", "busybox"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            return Some(format!(
                "{tool} is not installed (apt-get install docker.io busybox-static)"
            ));
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("dockerd needs root".into());
    }
    None
}

impl Dockerd {
    /// Starts dockerd and waits until its API answers (`Err`: it did not
    /// start; the error has the end of its log).
    pub fn start() -> Result<Dockerd, String> {
        let dir = TempDir::new("dockerd");
        let sock = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).map_err(|e| e.to_string())?;
        let child = Command::new("dockerd")
            .arg("--storage-driver=vfs")
            .arg("--iptables=false")
            .arg("--ip-masq=false")
            .arg("--bridge=none")
            .arg("--userland-proxy=false")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn dockerd: {e}"))?;
        let d = Dockerd {
            child,
            host: format!("unix://{}", sock.display()),
            dir,
        };
        let up = wait_for(
            || {
                d.docker(&["version", "--format", "{{.Server.Version}}"])
                    .status
                    .success()
            },
            Duration::from_secs(60),
        );
        if !up {
            return Err(format!("dockerd did not start:\n{}", d.log_tail()));
        }
        Ok(d)
    }

    /// The end of dockerd's log.
    pub fn log_tail(&self) -> String {
        let l = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = l.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// A `docker` command for this daemon.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.dir.join("cli"))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs `docker ARGS` to its end (at most a minute).
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        crate::run_with_timeout(&mut self.command(args), Duration::from_secs(60))
    }

    /// `docker ARGS`, which must succeed: its stdout.
    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed: {}\n{}\n--- dockerd ---\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            self.log_tail()
        );
        o.stdout
    }

    /// Imports a BusyBox root filesystem as image `name`.
    pub fn import_busybox(&self, name: &str) {
        let root = self.dir.join("rootfs");
        std::fs::create_dir_all(root.join("bin")).expect("mkdir rootfs");
        let bb = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("busybox");
        std::fs::copy(bb, root.join("bin/busybox")).expect("copy busybox");
        for app in [
            "sh", "echo", "printf", "cat", "sleep", "head", "seq", "yes", "tr", "dd",
        ] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(app)).expect("symlink");
        }
        let tar = self.dir.join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success(), "tar of the root filesystem");
        self.ok(&["import", &tar.display().to_string(), name]);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Containers first (their shims would outlive dockerd), then dockerd.
        let ids = self.docker(&["ps", "-aq"]).stdout;
        let ids = String::from_utf8_lossy(&ids).into_owned();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.docker(&args);
        }
        let _ = crate::signal(self.child.id(), libc::SIGTERM);
        if crate::wait_child(&mut self.child, Duration::from_secs(30)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // vfs layers and containerd's state: unmounted by dockerd; what is
        // left is plain files, removed with the TempDir.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("exec"))
            .stderr(Stdio::null())
            .status();
    }
}
