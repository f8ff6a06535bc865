//! memlog-docker-logdriver: a Docker logging driver for memlogd, as a
//! legacy socket plugin (`docker.logdriver/1.0`): dockerd finds it as
//! `/run/docker/plugins/NAME.sock` (`docker run --log-driver NAME`), no
//! `docker plugin install`, no registry. Container output never passes
//! through this process: each container's FIFO is handed to memlogd, which
//! decodes dockerd's frames itself (PROTOCOL.md, "Docker-framed inputs").

mod driver;
mod http;
mod readlogs;
mod tag;

use argh::FromArgs;
use driver::{Driver, Settings};
use memlog::goflags::{self, Spec};
use std::io::{BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SPEC: Spec = Spec {
    switches: &[],
    options: &[
        "name",
        "plugin-dir",
        "socket-log",
        "socket-query",
        "drain-timeout",
        "max-conns",
    ],
    bytes: &["plugin-dir", "socket-log", "socket-query"],
    bytes_positionals: false,
};

/// Docker logging driver for memlogd (a legacy socket plugin).
#[derive(FromArgs)]
struct Args {
    /// the driver's name, as `docker run --log-driver NAME` says it; the
    /// socket is PLUGIN-DIR/NAME.sock
    #[argh(option, default = "String::from(\"memlogd\")")]
    name: String,
    /// where dockerd looks for plugin sockets
    #[argh(option, default = "String::from(\"/run/docker/plugins\")")]
    plugin_dir: String,
    /// memlogd's log socket
    #[argh(
        option,
        default = "String::from(\"/var/run/linuxkit-external-logging.sock\")"
    )]
    socket_log: String,
    /// memlogd's query socket
    #[argh(option, default = "String::from(\"/var/run/memlogdq.sock\")")]
    socket_query: String,
    /// how long StopLogging waits for memlogd to read a FIFO empty, e.g. 10s
    #[argh(option, default = "String::from(\"10s\")")]
    drain_timeout: String,
    /// connections from dockerd served at once (each `docker logs -f` holds one)
    #[argh(option, default = "256")]
    max_conns: usize,
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let args: Args = goflags::parse_or_exit("memlog-docker-logdriver", &argv, &SPEC);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "memlog-docker-logdriver: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds `path`, replacing a socket nobody listens on (a driver that died).
fn bind(path: &Path) -> Result<UnixListener, String> {
    match UnixListener::bind(path) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return Err(format!("{} is served by another process", path.display()));
            }
            let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(format!("{} exists and is not a socket", path.display()));
            }
            std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            UnixListener::bind(path).map_err(|e| format!("cannot bind {}: {e}", path.display()))
        }
        Err(e) => Err(format!("cannot bind {}: {e}", path.display())),
    }
}

fn run(a: &Args) -> Result<(), String> {
    if a.name.is_empty() || a.name.contains('/') || a.name.starts_with('.') {
        return Err(format!("-name {:?} is not a plugin name", a.name));
    }
    let drain_timeout = goflags::parse_duration(&a.drain_timeout)?;
    memlog::sys::ignore_sigpipe();
    let dir = goflags::path(&a.plugin_dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path: PathBuf = dir.join(format!("{}.sock", a.name));
    let listener = bind(&path)?;
    // dockerd runs as root; nobody else needs to talk to the driver.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let d = Arc::new(Driver::new(Settings {
        log_socket: goflags::path(&a.socket_log),
        query_socket: goflags::path(&a.socket_query),
        drain_timeout,
    }));
    let w = Arc::clone(&d);
    std::thread::spawn(move || w.watch());
    let conns = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                eprintln!("memlog-docker-logdriver: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if conns.fetch_add(1, Ordering::SeqCst) >= a.max_conns {
            conns.fetch_sub(1, Ordering::SeqCst);
            let mut c = &conn;
            let _ = http::respond(
                &mut c,
                503,
                &driver::error_json(&format!("more than -max-conns {} connections", a.max_conns)),
                true,
            );
            continue;
        }
        let (d, n) = (Arc::clone(&d), Arc::clone(&conns));
        std::thread::spawn(move || {
            serve(&d, conn);
            n.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(())
}

/// Serves one connection's requests until it closes.
fn serve(d: &Driver, conn: UnixStream) {
    // A connection that sends nothing for this long between requests is
    // closed (dockerd opens a new one); a stalled request head too.
    let _ = conn.set_read_timeout(Some(Duration::from_secs(300)));
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(read_half);
    loop {
        let req = match http::read_request(&mut r) {
            Ok(Some(req)) => req,
            Ok(None) | Err(http::HttpError::Io(_)) => return,
            Err(http::HttpError::Bad(e)) => {
                let mut w = &conn;
                let _ = http::respond(&mut w, 400, &driver::error_json(&e), true);
                return;
            }
        };
        let answer = match req.path.as_str() {
            "/Plugin.Activate" => d.activate(),
            "/LogDriver.Capabilities" => d.capabilities(),
            "/LogDriver.StartLogging" => d.start_logging(&req.body),
            "/LogDriver.StopLogging" => d.stop_logging(&req.body),
            "/LogDriver.ReadLogs" => {
                if let Err(e) = readlogs::serve(d, &req.body, &conn) {
                    if e.kind() != std::io::ErrorKind::BrokenPipe {
                        eprintln!("memlog-docker-logdriver: ReadLogs: {e}");
                    }
                }
                return;
            }
            other => {
                let mut w = &conn;
                let e = format!("unknown method {other:?}");
                if http::respond(&mut w, 404, &driver::error_json(&e), req.close).is_err()
                    || req.close
                {
                    return;
                }
                continue;
            }
        };
        let (status, body) = match answer {
            Ok(b) => (200, b),
            Err(e) => {
                eprintln!("memlog-docker-logdriver: {}: {e}", &req.path[1..]);
                (500, driver::error_json(&e))
            }
        };
        let mut w = &conn;
        if http::respond(&mut w, status, &body, req.close).is_err() || req.close {
            return;
        }
    }
}
