//! memlogd: parse flags, bind, optionally daemonize, run the loop.

use memlog::daemon::config::{Args, Config, SPEC};
use memlog::daemon::{self, sockets::Bound, Daemon};
use memlog::{goflags, sys};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let args: Args = goflags::parse_or_exit("memlogd", &argv, &SPEC);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: a stderr that is gone (init-shim start closes
            // its end once memlogd serves) must not turn an exit into a panic.
            let _ = writeln!(std::io::stderr(), "memlogd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let cfg = Config::from_args(args)?;
    let (log, query) = daemon::bind(&cfg).map_err(|e| e.to_string())?;
    if args.daemonize {
        return spawn_background(args, log, query);
    }
    let d = Daemon::new(cfg, log, query).map_err(|e| e.to_string())?;
    d.run().map_err(|e| e.to_string())
}

/// `-daemonize`: both sockets are bound (they exist on disk now); start a
/// copy of this program in its own session with them as fds 3 and 4, and
/// return so the parent exits 0. The child removes the paths when it stops.
fn spawn_background(args: &Args, log: Bound, query: Bound) -> Result<(), String> {
    // The background child owns the sockets (and removes the paths) now.
    let (
        Bound {
            fd: log_fd,
            path: log_path,
        },
        Bound {
            fd: query_fd,
            path: query_path,
        },
    ) = (log, query);
    let (log_fd, query_fd): (OwnedFd, OwnedFd) = (log_fd, query_fd);
    // Move both out of the way of 3 and 4 first, then onto them.
    let log_fd =
        sys::dup_to(log_fd, 100).map_err(|e| format!("cannot pass the log socket: {e}"))?;
    let query_fd =
        sys::dup_to(query_fd, 101).map_err(|e| format!("cannot pass the query socket: {e}"))?;
    let fd3 = sys::dup_to(log_fd, 3).map_err(|e| format!("cannot pass the log socket: {e}"))?;
    let fd4 = sys::dup_to(query_fd, 4).map_err(|e| format!("cannot pass the query socket: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["-fd-log", "3", "-fd-query", "4", "-remove-sockets"])
        .arg("-socket-log")
        .arg(goflags::os(&args.socket_log))
        .arg("-socket-query")
        .arg(goflags::os(&args.socket_query))
        .args([
            "-max-lines",
            &args.max_lines.to_string(),
            "-max-line-len",
            &args.max_line_len.to_string(),
        ])
        .args([
            "-buffer-size",
            &args.buffer_size.to_string(),
            "-max-name-len",
            &args.max_name_len.to_string(),
        ])
        .args([
            "-max-inputs",
            &args.max_inputs.to_string(),
            "-max-readers",
            &args.max_readers.to_string(),
        ])
        .args(["-reader-buffer", &args.reader_buffer.to_string()])
        .stdin(Stdio::null())
        .stdout(if args.echo {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::null())
        .process_group(0);
    if args.echo {
        cmd.arg("-echo");
    }
    // The child binds the syslog sockets itself (the parent bound the others).
    cmd.args(["-syslog-mode", &format!("{:o}", args.syslog_mode)]);
    if let Some(g) = args.socket_group {
        cmd.args(["-socket-group", &g.to_string()]);
    }
    for p in &args.syslog {
        cmd.arg("-syslog").arg(goflags::os(p));
    }
    for p in &args.syslog_stream {
        cmd.arg("-syslog-stream").arg(goflags::os(p));
    }
    cmd.args(["-max-syslog-conns", &args.max_syslog_conns.to_string()]);
    cmd.args([
        "-syslog-idle-timeout",
        &format!("{}ms", args.syslog_idle_timeout.as_millis()),
    ]);
    if let Some(p) = &args.kmsg_file {
        cmd.arg("-kmsg-file").arg(goflags::os(p));
    } else if args.kmsg {
        cmd.arg("-kmsg");
    }
    cmd.args([
        "-rate-limit-interval",
        &format!("{}ms", args.rate_limit_interval.as_millis()),
    ]);
    cmd.args(["-rate-limit-burst", &args.rate_limit_burst.to_string()]);
    cmd.spawn()
        .map_err(|e| format!("cannot start the background daemon: {e}"))?;
    log_path.disarm();
    query_path.disarm();
    drop((fd3, fd4));
    Ok(())
}
