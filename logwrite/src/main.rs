//! logwrite: follow the memlogd buffer and persist it to rotated files, one
//! per source, as LinuxKit's logwrite does; resume exactly after a restart;
//! optionally forward to syslog servers. See README.md, section logwrite.

mod argv;
mod aside;
mod dir;
mod exec;
mod files;
mod follow;
mod hooks;
mod names;
mod reconcile;
mod relp;
mod relpframe;
mod remote;
mod report;
mod rotate;
mod select;
mod syncer;
mod syslog;
mod tls;
#[cfg(feature = "tls")]
mod tlsconn;
mod trigger;

use argh::FromArgs;
use files::{FileConfig, Files};
use follow::{Sink, Stop};
use memlog::goflags::{self, Spec};
use memlog::proto;
use nix::sys::signal::{SigSet, Signal};
use remote::{Proto, Remote, RemoteConfig};
use rotate::Naming;
use select::Selector;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const SPEC: Spec = Spec {
    switches: &["compress", "no-files"],
    options: &[
        "socket",
        "log-dir",
        "max-log-files",
        "max-log-size",
        "max-source-bytes",
        "fsync-interval",
        "fsync-severity",
        "include",
        "exclude",
        "min-severity",
        "match",
        "exclude-match",
        "remote",
        "hostname",
        "max-backoff",
        "on-rotate",
        "on-rotate-jobs",
        "on-rotate-timeout",
        "rotated-names",
        "trigger",
    ],
    bytes: &["socket", "log-dir"],
    bytes_positionals: false,
};

/// Write the memlogd buffer to files in a log directory, one per source
/// (SOURCE.log, each line `TIME SOURCE MSG`), rotated by size, and/or forward
/// it to syslog servers. Resumes exactly where it stopped after a restart.
/// Flags may be written -name value, --name value, -name=value or --name=value.
///
/// Sources starting with `logwrite` (its own output) are never written to
/// files. Selection: -include and -exclude take a source name or a glob
/// (`*`, `?`, `[a-z]`) and may be repeated; a record is taken if it matches
/// an -include (or none is given), matches no -exclude, is at least as
/// severe as -min-severity (records without a severity count as info), and
/// its message matches a -match (or none is given) and no -exclude-match
/// (regular expressions as logread -e's, run in logwrite, never in memlogd).
///
/// -remote URL (repeatable): tcp://HOST:PORT (RFC 5424, RFC 6587 octet
/// counting), tls://HOST:PORT (the same over TLS, RFC 5425), relp://HOST:PORT
/// and relp+tls://HOST:PORT (RELP: delivered once the server acknowledged),
/// or udp://HOST:PORT (one datagram per message), with options after `?`,
/// joined by `&`: format=rfc5424|rfc3164, framing=octet|lf (tcp, tls;
/// rfc3164 defaults to lf), include=GLOB, exclude=GLOB, match=REGEX,
/// exclude-match=REGEX (repeatable), min-severity=LEVEL; TLS: ca=FILE (default: the system's roots),
/// cert=FILE and key=FILE (client certificate), name=DNSNAME (the name to
/// verify), fingerprint=SHA256:HEX (pin the server's certificate); RELP:
/// window=N (default 128). Values may use %XX escapes (write & as %26). Example:
/// -remote 'tcp://10.0.0.1:514?min-severity=warning&exclude=debug.*'
///
/// -remote exec:CMD[?OPTIONS]: start CMD (no shell: words split on spaces,
/// with '...', "..." and \ quoting; %XX escapes, ? as %3F, % as %25) and
/// feed it the selected records on its stdin, one per line:
/// format=linuxkit (the file line, default), json (logread -o json's) or
/// rfc5424|rfc3164; selection options as above. A record counts as delivered
/// once written to the pipe; when CMD exits it is started again with
/// backoff and fed what it had not read. Example:
/// -remote "exec:sh -c 'gzip -c >> /var/log/all.gz'"
///
/// Lines escape control characters and invalid UTF-8 (\n, \r, \xNN). Only
/// a regular SOURCE.log with one link is appended to (anything else that
/// can be opened is replaced by a new file); a source whose file cannot be
/// written (a directory or symlink at its name, EFBIG...) is skipped,
/// counted and tried again after 5 s, while the others go on. Without a
/// usable saved position, memlogd's buffer is matched against the end of
/// each file (nothing written twice). A -compress interrupted by a kill is
/// finished at the next start.
///
/// -on-rotate CMD: after a file is rotated (and compressed), run CMD
/// with the rotated file's path as its last argument and LOGWRITE_SOURCE,
/// LOGWRITE_FILE and LOGWRITE_REASON (size, trigger or signal) in its
/// environment. No shell: CMD is split into words at spaces and tabs,
/// '...' and "..." quote (\" and \\ inside "..."), \ escapes one
/// character; write sh -c '...' for a shell. At most -on-rotate-jobs run at
/// once; one still running after -on-rotate-timeout is killed. Its exit
/// status and last stderr line are said on logwrite's stderr.
///
/// -trigger 'match=REGEX&quiet=30s[&source=GLOB][&min-severity=LEVEL][&max-wait=5m]'
/// (repeatable): a matching record arms the trigger for its source; when
/// no further match came for quiet (or max-wait after it armed), that
/// source's file is rotated (reason trigger) and the hook runs. While
/// armed, a file is rotated for size only at twice -max-log-size.
///
/// SIGTERM, SIGINT and SIGQUIT: write and fsync what was taken, save every position,
/// exit 0. SIGHUP and SIGUSR1: rotate every file of this logwrite that is
/// not empty (reason signal). SIGUSR2 is ignored.
#[derive(FromArgs, Debug)]
struct Args {
    /// memlogd query socket (default /var/run/memlogdq.sock)
    #[argh(option, default = "proto::DEFAULT_QUERY_SOCKET.into()")]
    socket: String,
    /// directory for the log files and logwrite's saved positions (default /var/log)
    #[argh(option, default = "\"/var/log\".into()")]
    log_dir: String,
    /// rotated files kept per source: SOURCE.log.0 .. SOURCE.log.(N-1) (default 10)
    #[argh(option, default = "10")]
    max_log_files: u32,
    /// size at which SOURCE.log is rotated, bytes or with k/M/G (default 1048576)
    #[argh(option, default = "1 << 20", from_str_fn(size))]
    max_log_size: u64,
    /// gzip rotated files (SOURCE.log.N.gz)
    #[argh(switch)]
    compress: bool,
    /// most bytes kept per source, current and rotated files together; the
    /// oldest rotated files are removed (default 0: no limit)
    #[argh(option, default = "0", from_str_fn(size))]
    max_source_bytes: u64,
    /// fsync written files (and the saved position) at least this often
    /// while there is unsynced data, e.g. 5s, 500ms; 0 only on rotation and
    /// -fsync-severity (default 5s)
    #[argh(option, default = "Duration::from_secs(5)", from_str_fn(duration))]
    fsync_interval: Duration,
    /// fsync at the end of a batch that holds a record this severe or more
    /// (emerg .. debug, or none) (default err)
    #[argh(option, default = "Some(3)", from_str_fn(severity_or_none))]
    fsync_severity: Option<u8>,
    /// write only sources matching this name or glob (repeatable)
    #[argh(option)]
    include: Vec<String>,
    /// do not write sources matching this name or glob (repeatable)
    #[argh(option)]
    exclude: Vec<String>,
    /// write only records at least this severe (emerg .. debug)
    #[argh(option, from_str_fn(severity))]
    min_severity: Option<u8>,
    /// write only messages matching this regular expression (logread -e's
    /// syntax; repeatable, any may match)
    #[argh(option, long = "match")]
    match_: Vec<String>,
    /// do not write messages matching this regular expression (repeatable)
    #[argh(option)]
    exclude_match: Vec<String>,
    /// write no files (only forward); positions are still kept in -log-dir
    #[argh(switch)]
    no_files: bool,
    /// forward to a syslog server (tcp://, tls://, relp://, relp+tls:// or
    /// udp://HOST:PORT) or feed a program (exec:CMD), with ?options (see
    /// above) (repeatable)
    #[argh(option)]
    remote: Vec<String>,
    /// HOSTNAME in forwarded messages (default: this machine's host name)
    #[argh(option)]
    hostname: Option<String>,
    /// longest wait between retries when memlogd or an output is down (default 5s)
    #[argh(option, default = "Duration::from_secs(5)", from_str_fn(duration))]
    max_backoff: Duration,
    /// run this command after each rotation, the rotated file's path last
    /// (see above)
    #[argh(option)]
    on_rotate: Option<String>,
    /// most -on-rotate commands running at once (default 2)
    #[argh(option, default = "2")]
    on_rotate_jobs: usize,
    /// kill an -on-rotate command still running after this long (default 5m)
    #[argh(option, default = "Duration::from_secs(300)", from_str_fn(duration))]
    on_rotate_timeout: Duration,
    /// names of rotated files: index (SOURCE.log.0 newest, as LinuxKit)
    /// or time (SOURCE.log.20261201T221500Z, the UTC time of its last
    /// record; -max-log-files and -max-source-bytes keep the newest) (default index)
    #[argh(option, default = "Naming::Index", from_str_fn(naming))]
    rotated_names: Naming,
    /// rotate a source's file once matching records stopped (see above)
    /// (repeatable)
    #[argh(option)]
    trigger: Vec<String>,
}

fn naming(s: &str) -> Result<Naming, String> {
    match s {
        "index" => Ok(Naming::Index),
        "time" => Ok(Naming::Time),
        _ => Err(format!("invalid -rotated-names {s:?} (index or time)")),
    }
}

fn regexes(res: &[String], what: &str) -> Result<Vec<select::Regex>, String> {
    res.iter().map(|r| Selector::regex(r, what)).collect()
}

fn size(s: &str) -> Result<u64, String> {
    goflags::parse_size(s).map(|v| v as u64)
}

fn severity(s: &str) -> Result<u8, String> {
    Selector::parse_severity(s)
}

fn severity_or_none(s: &str) -> Result<Option<u8>, String> {
    if s == "none" {
        Ok(None)
    } else {
        Selector::parse_severity(s).map(Some)
    }
}

/// `5s`, `500ms`, `2m`, `1h`, or a number of seconds.
fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let mult = match unit {
        "" | "s" => 1000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m or h)"
            ))
        }
    };
    Ok(Duration::from_millis(n.saturating_mul(mult)))
}

fn main() -> ExitCode {
    // A dead TCP peer is an error on write, not a signal (ignore_signals).
    // A file past RLIMIT_FSIZE is an error (EFBIG) for that file, not the
    // end of every output; a stray ALRM, IO or real-time signal is nothing.
    // (SIGTERM, SIGINT and SIGQUIT stop it cleanly: see run.)
    let _ = memlog::sys::ignore_signals();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let args: Args = goflags::parse_or_exit("logwrite", &argv, &SPEC);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logwrite: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let dir = goflags::path(&args.log_dir);
    let stop = Arc::new(Stop::default());
    let mut sinks: Vec<Box<dyn Sink + Send>> = Vec::new();
    let triggers = args
        .trigger
        .iter()
        .map(|t| trigger::Trigger::parse(t, duration))
        .collect::<Result<Vec<_>, _>>()?;
    let hook_argv = match &args.on_rotate {
        Some(cmd) => Some(argv::split(cmd).map_err(|e| format!("-on-rotate: {e}"))?),
        None => None,
    };
    if args.no_files && (hook_argv.is_some() || !triggers.is_empty()) {
        return Err("-on-rotate and -trigger act on files: not with -no-files".into());
    }
    let hooks = hook_argv.map(|argv| {
        Arc::new(hooks::Hooks::new(hooks::HookConfig {
            argv,
            jobs: args.on_rotate_jobs.max(1),
            timeout: args.on_rotate_timeout.max(Duration::from_millis(1)),
        }))
    });
    let rotate_all =
        Arc::new(follow::Wake::new().map_err(|e| format!("cannot make a socket pair: {e}"))?);
    if !args.no_files {
        let files = Files::new(FileConfig {
            dir: dir.clone(),
            max_size: args.max_log_size.max(1),
            max_files: args.max_log_files,
            compress: args.compress,
            max_source_bytes: (args.max_source_bytes > 0).then_some(args.max_source_bytes),
            fsync_interval: (!args.fsync_interval.is_zero()).then_some(args.fsync_interval),
            fsync_severity: args.fsync_severity,
            select: Selector {
                include: args.include.clone(),
                exclude: args.exclude.clone(),
                min_severity: args.min_severity,
                matching: regexes(&args.match_, "-match")?,
                not_matching: regexes(&args.exclude_match, "-exclude-match")?,
                ..Selector::default()
            },
            socket: goflags::path(&args.socket),
            naming: args.rotated_names,
            triggers,
        })
        .with_rotate_all(Arc::clone(&rotate_all));
        let files = match &hooks {
            Some(h) => files.with_hooks(Arc::clone(h)),
            None => files,
        };
        sinks.push(Box::new(files));
    }
    let hostname = args
        .hostname
        .as_deref()
        .map(|h| syslog::sanitize(h, syslog::HOSTNAME_MAX, b""))
        .unwrap_or_else(syslog::hostname);
    let mut names = Vec::new();
    for url in &args.remote {
        let cfg = RemoteConfig::parse(url, dir.clone())?;
        if names.contains(&cfg.name) {
            return Err(format!("-remote {} given twice", cfg.name));
        }
        names.push(cfg.name.clone());
        if cfg.proto == Proto::Relp {
            sinks.push(Box::new(relp::Relp::new(
                cfg,
                hostname.clone(),
                Arc::clone(&stop),
            )));
        } else {
            sinks.push(Box::new(Remote::new(
                cfg,
                hostname.clone(),
                Arc::clone(&stop),
            )));
        }
    }
    if sinks.is_empty() {
        return Err("nothing to do: -no-files and no -remote".into());
    }
    let socket = goflags::path(&args.socket);
    let max_backoff = args.max_backoff.max(Duration::from_millis(100));
    // Signals are blocked here, before any output thread exists (each
    // inherits the mask), and taken by sigwait below: SIGTERM, SIGINT and SIGQUIT
    // stop every output cleanly; SIGHUP and SIGUSR1 rotate every file;
    // SIGUSR2 is ignored.
    let mut mask = SigSet::empty();
    for s in STOP_SIGNALS
        .iter()
        .chain(ROTATE_SIGNALS)
        .chain(IGNORED_SIGNALS)
    {
        mask.add(*s);
    }
    mask.thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))?;
    let threads: Vec<_> = sinks
        .into_iter()
        .map(|mut sink| {
            let socket = socket.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                follow::run(sink.as_mut(), Path::new(&socket), max_backoff, &stop)
            })
        })
        .collect();
    loop {
        match mask.wait() {
            Ok(s) if STOP_SIGNALS.contains(&s) => break,
            Ok(s) if ROTATE_SIGNALS.contains(&s) => rotate_all.request(),
            Ok(_) => {}
            Err(e) => return Err(format!("waiting for signals: {e}")),
        }
    }
    stop.stop();
    for t in threads {
        let _ = t.join();
    }
    if let Some(h) = hooks.and_then(Arc::into_inner) {
        h.finish(hooks::EXIT_GRACE);
    }
    Ok(())
}

/// Signals that make logwrite write what it took, save its positions and
/// exit 0.
const STOP_SIGNALS: &[Signal] = &[Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT];
/// Signals that rotate every file (reason `signal`).
const ROTATE_SIGNALS: &[Signal] = &[Signal::SIGHUP, Signal::SIGUSR1];
/// Signals that do nothing, rather than kill logwrite.
const IGNORED_SIGNALS: &[Signal] = &[Signal::SIGUSR2];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
        assert!(duration("x").is_err());
        assert!(duration("5d").is_err());
    }

    #[test]
    fn flags_in_go_spellings() {
        for argv in [
            &["-log-dir", "/tmp/x", "-max-log-size", "1024"][..],
            &["--log-dir=/tmp/x", "--max-log-size=1k"],
        ] {
            let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
            let norm = goflags::normalize(&argv, &SPEC).expect("normalizes");
            let refs: Vec<&str> = norm.iter().map(String::as_str).collect();
            let a = Args::from_args(&["logwrite"], &refs).expect("parses");
            assert_eq!(
                (a.log_dir.as_str(), a.max_log_size, a.max_log_files),
                ("/tmp/x", 1024, 10)
            );
        }
    }
}
