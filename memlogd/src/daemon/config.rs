//! memlogd's command line: LinuxKit's flags (in all four Go spellings) plus
//! memlog's limits, and the validated [`Config`] the daemon runs with.

use super::sockets::Access;
use crate::goflags::{self, Spec};
use crate::proto;
use argh::FromArgs;
use std::path::PathBuf;
use std::time::Duration;

/// Go-style names of every flag, for [`goflags::normalize`].
pub const SPEC: Spec = Spec {
    switches: &["daemonize", "echo", "remove-sockets", "kmsg"],
    options: &[
        "socket-log",
        "socket-query",
        "fd-log",
        "fd-query",
        "max-lines",
        "max-line-len",
        "buffer-size",
        "max-name-len",
        "max-inputs",
        "max-readers",
        "reader-buffer",
        "syslog",
        "syslog-stream",
        "max-syslog-conns",
        "syslog-idle-timeout",
        "kmsg-file",
        "rate-limit-interval",
        "rate-limit-burst",
        "socket-log-mode",
        "socket-query-mode",
        "syslog-mode",
        "socket-group",
        "ring-compress",
    ],
    bytes: &[
        "socket-log",
        "socket-query",
        "syslog",
        "syslog-stream",
        "kmsg-file",
    ],
    bytes_positionals: false,
};

fn size(s: &str) -> Result<usize, String> {
    goflags::parse_size(s)
}

fn duration(s: &str) -> Result<Duration, String> {
    goflags::parse_duration(s)
}

fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" | "on" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "off" => Ok(false),
        _ => Err(format!("invalid boolean value {s:?} (true or false)")),
    }
}

fn mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("invalid file mode {s:?} (octal, e.g. 0660)"))
}

fn group(s: &str) -> Result<u32, String> {
    if let Ok(gid) = s.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(s) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(format!("unknown group {s:?}")),
    }
}

/// memlogd: an in-memory ring buffer of log records (LinuxKit compatible).
/// Writers pass fds on the log socket; readers query the query socket.
/// Flags may be written -name value, --name value, -name=value or --name=value.
#[derive(FromArgs, Debug, PartialEq, Eq)]
#[argh(
    note = "Signals: TERM, INT and QUIT stop memlogd cleanly (exit 0, socket paths removed). HUP is noted (nothing to reload: every setting is a flag), USR1 records the stats counters as one memlogd record, USR2 is noted. ALRM, VTALRM, PROF, IO, PWR, STKFLT, XCPU, XFSZ, PIPE, TTOU and the real-time signals are ignored."
)]
pub struct Args {
    /// log socket path (SOCK_DGRAM, fds passed with SCM_RIGHTS); default /var/run/linuxkit-external-logging.sock
    #[argh(option, default = "proto::DEFAULT_LOG_SOCKET.into()")]
    pub socket_log: String,
    /// query socket path (SOCK_STREAM); default /var/run/memlogdq.sock
    #[argh(option, default = "proto::DEFAULT_QUERY_SOCKET.into()")]
    pub socket_query: String,
    /// use this inherited, bound SOCK_DGRAM fd instead of -socket-log (e.g. -fd-log 3)
    #[argh(option, default = "-1")]
    pub fd_log: i32,
    /// use this inherited, listening SOCK_STREAM fd instead of -socket-query (e.g. -fd-query 4)
    #[argh(option, default = "-1")]
    pub fd_query: i32,
    /// most records kept in memory (default 5000)
    #[argh(option, default = "5000")]
    pub max_lines: u64,
    /// longest line kept, in bytes; the rest of a longer line is dropped (default 1024)
    #[argh(option, default = "1024")]
    pub max_line_len: usize,
    /// bind both sockets, then continue in the background with them as fds 3 and 4
    #[argh(switch)]
    pub daemonize: bool,
    /// ring size in bytes, suffixes k, M, G (default 2M); e.g. -buffer-size 16M
    #[argh(option, default = "2 << 20", from_str_fn(size))]
    pub buffer_size: usize,
    /// compress the ring: the newest records raw, older ones in LZ4-compressed chunks, some 5 times the records of real log text in -buffer-size (default true; -ring-compress=false keeps every record raw, as memlogd did before)
    #[argh(option, default = "true", from_str_fn(boolean))]
    pub ring_compress: bool,
    /// longest log name accepted on the log socket (default 256)
    #[argh(option, default = "256")]
    pub max_name_len: usize,
    /// most input fds open at once (default 1024)
    #[argh(option, default = "1024")]
    pub max_inputs: usize,
    /// most dumps and follows at once (default 256); one connection more is accepted so that stats are answered when all are in use
    #[argh(option, default = "256")]
    pub max_readers: usize,
    /// output buffer per reader, suffixes k, M (default 64k); memory per reader is at most this + 25k, however long the lines (a longer record is sent in pieces)
    #[argh(option, default = "64 << 10", from_str_fn(size))]
    pub reader_buffer: usize,
    /// print every record to stdout as TIME;SOURCE;MSG (never blocks the daemon: lines are dropped and counted when stdout is slow)
    #[argh(switch)]
    pub echo: bool,
    /// with -fd-log/-fd-query: remove -socket-log/-socket-query on exit (set by -daemonize for its child)
    #[argh(switch)]
    pub remove_sockets: bool,
    /// take syslog messages on this SOCK_DGRAM socket, e.g. -syslog /dev/log (repeatable; off unless given)
    #[argh(option)]
    pub syslog: Vec<String>,
    /// take syslog messages on this SOCK_STREAM socket (repeatable; for C libraries that fall back to a stream)
    #[argh(option)]
    pub syslog_stream: Vec<String>,
    /// most -syslog-stream connections at once (default 64), apart from -max-inputs: those sockets are open to every local user (mode 0666), so their connections must not take the slots the init system needs; more are accepted and closed at once; a non-root uid may hold a quarter of them
    #[argh(option, default = "64")]
    pub max_syslog_conns: usize,
    /// close a -syslog-stream connection that sent nothing, or kept a frame unfinished, for this long (default 60s; 0 never), e.g. -syslog-idle-timeout 5m; its unfinished frame is stored
    #[argh(option, default = "Duration::from_secs(60)", from_str_fn(duration))]
    pub syslog_idle_timeout: Duration,
    /// read the kernel log from /dev/kmsg (source kmsg)
    #[argh(switch)]
    pub kmsg: bool,
    /// read kernel log records from this file or FIFO instead of /dev/kmsg (implies -kmsg); a FIFO is opened again after each writer closes it
    #[argh(option)]
    pub kmsg_file: Option<String>,
    /// rate-limit window (default 30s; 0 disables), e.g. -rate-limit-interval 10s
    #[argh(option, default = "Duration::from_secs(30)", from_str_fn(duration))]
    pub rate_limit_interval: Duration,
    /// records a source may store per window (default 10000; 0 disables); syslog from a non-root sender is limited per uid, whatever its tags and priorities; emergencies from the kernel, fds and root are exempt
    #[argh(option, default = "10000")]
    pub rate_limit_burst: u32,
    /// mode of the log socket file memlogd binds (default 0660: owner and group may log fds)
    #[argh(option, default = "0o660", from_str_fn(mode))]
    pub socket_log_mode: u32,
    /// mode of the query socket file (default 0660: owner and group may read the logs)
    #[argh(option, default = "0o660", from_str_fn(mode))]
    pub socket_query_mode: u32,
    /// mode of -syslog and -syslog-stream socket files (default 0666: anyone may log, as /dev/log)
    #[argh(option, default = "0o666", from_str_fn(mode))]
    pub syslog_mode: u32,
    /// group owning the socket files memlogd binds, a name or gid (default: memlogd's group), e.g. -socket-group adm
    #[argh(option, from_str_fn(group))]
    pub socket_group: Option<u32>,
}

/// Where a socket comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketSource {
    /// Bind this path (and remove it on exit).
    Path(PathBuf),
    /// Use this inherited fd; remove this path on exit (`-remove-sockets`).
    Fd { fd: i32, remove: Option<PathBuf> },
}

/// Validated settings the daemon runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub log: SocketSource,
    pub query: SocketSource,
    pub max_lines: u64,
    pub max_line_len: usize,
    pub buffer_size: usize,
    pub ring_compress: bool,
    pub max_name_len: usize,
    pub max_inputs: usize,
    pub max_readers: usize,
    pub reader_buffer: usize,
    pub echo: bool,
    pub syslog_dgram: Vec<PathBuf>,
    pub syslog_stream: Vec<PathBuf>,
    pub max_syslog_conns: usize,
    /// Zero: never.
    pub syslog_idle_timeout: Duration,
    pub kmsg: Option<PathBuf>,
    pub rate_interval: Duration,
    pub rate_burst: u32,
    pub log_access: Access,
    pub query_access: Access,
    pub syslog_access: Access,
}

impl Config {
    /// Checks the limits against each other.
    pub fn from_args(a: &Args) -> Result<Config, String> {
        if a.max_lines == 0 {
            return Err("-max-lines must be at least 1".into());
        }
        if a.max_line_len == 0 || a.max_line_len > 1 << 20 {
            return Err("-max-line-len must be between 1 and 1048576".into());
        }
        if a.max_name_len == 0 || a.max_name_len > 4096 {
            return Err("-max-name-len must be between 1 and 4096".into());
        }
        let biggest = crate::ring::record_size(a.max_name_len, a.max_line_len);
        if a.buffer_size < 4 * biggest {
            return Err(format!(
                "-buffer-size {} is too small: it must hold at least 4 records of -max-name-len + -max-line-len ({} bytes)",
                a.buffer_size,
                4 * biggest
            ));
        }
        if a.max_readers == 0 || a.max_inputs == 0 {
            return Err("-max-readers and -max-inputs must be at least 1".into());
        }
        if a.max_syslog_conns > 1 << 16 {
            return Err("-max-syslog-conns must be at most 65536".into());
        }
        if a.reader_buffer < 4096 {
            return Err("-reader-buffer must be at least 4k".into());
        }
        let src = |fd: i32, path: &str| {
            if fd >= 0 {
                SocketSource::Fd {
                    fd,
                    remove: a.remove_sockets.then(|| goflags::path(path)),
                }
            } else {
                SocketSource::Path(goflags::path(path))
            }
        };
        Ok(Config {
            log: src(a.fd_log, &a.socket_log),
            query: src(a.fd_query, &a.socket_query),
            max_lines: a.max_lines,
            max_line_len: a.max_line_len,
            buffer_size: a.buffer_size,
            ring_compress: a.ring_compress,
            max_name_len: a.max_name_len,
            max_inputs: a.max_inputs,
            max_readers: a.max_readers,
            reader_buffer: a.reader_buffer,
            echo: a.echo,
            syslog_dgram: a.syslog.iter().map(|p| goflags::path(p)).collect(),
            syslog_stream: a.syslog_stream.iter().map(|p| goflags::path(p)).collect(),
            max_syslog_conns: a.max_syslog_conns,
            syslog_idle_timeout: a.syslog_idle_timeout,
            kmsg: match (&a.kmsg_file, a.kmsg) {
                (Some(p), _) => Some(goflags::path(p)),
                (None, true) => Some(PathBuf::from("/dev/kmsg")),
                (None, false) => None,
            },
            rate_interval: a.rate_limit_interval,
            rate_burst: a.rate_limit_burst,
            log_access: Access {
                mode: a.socket_log_mode,
                group: a.socket_group,
            },
            query_access: Access {
                mode: a.socket_query_mode,
                group: a.socket_group,
            },
            syslog_access: Access {
                mode: a.syslog_mode,
                group: a.socket_group,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let norm = goflags::normalize(&owned, &SPEC).map_err(|e| e.0)?;
        let refs: Vec<&str> = norm.iter().map(String::as_str).collect();
        Args::from_args(&["memlogd"], &refs).map_err(|e| e.output)
    }

    #[test]
    fn defaults_match_linuxkit() {
        let a = parse(&[]).expect("no flags");
        assert_eq!(a.socket_log, "/var/run/linuxkit-external-logging.sock");
        assert_eq!(a.socket_query, "/var/run/memlogdq.sock");
        assert_eq!(
            (
                a.fd_log,
                a.fd_query,
                a.max_lines,
                a.max_line_len,
                a.daemonize
            ),
            (-1, -1, 5000, 1024, false)
        );
    }

    #[test]
    fn every_flag_in_four_spellings() {
        let cases: &[(&str, &str)] = &[
            ("socket-log", "/x/l.sock"),
            ("socket-query", "/x/q.sock"),
            ("fd-log", "3"),
            ("fd-query", "4"),
            ("max-lines", "77"),
            ("max-line-len", "99"),
            ("buffer-size", "1M"),
            ("max-name-len", "12"),
            ("max-inputs", "5"),
            ("max-readers", "6"),
            ("reader-buffer", "8k"),
            ("syslog", "/x/log"),
            ("syslog-stream", "/x/slog"),
            ("max-syslog-conns", "5"),
            ("syslog-idle-timeout", "5s"),
            ("kmsg-file", "/x/kmsg"),
            ("rate-limit-interval", "5s"),
            ("rate-limit-burst", "9"),
            ("socket-log-mode", "0600"),
            ("socket-query-mode", "0640"),
            ("syslog-mode", "0622"),
            ("socket-group", "0"),
        ];
        for (name, val) in cases {
            let spellings = [
                vec![format!("-{name}"), val.to_string()],
                vec![format!("--{name}"), val.to_string()],
                vec![format!("-{name}={val}")],
                vec![format!("--{name}={val}")],
            ];
            let parsed: Vec<Args> = spellings
                .iter()
                .map(|s| {
                    parse(&s.iter().map(String::as_str).collect::<Vec<_>>())
                        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
                })
                .collect();
            assert!(parsed.windows(2).all(|w| w[0] == w[1]), "{name}");
            assert_ne!(
                parsed[0],
                parse(&[]).expect("defaults"),
                "{name} changed nothing"
            );
        }
        let a = parse(&["-syslog", "/a", "--syslog=/b", "-kmsg"]).expect("repeatable");
        assert_eq!(a.syslog, vec!["/a", "/b"]);
        assert_eq!(
            Config::from_args(&a).expect("valid").kmsg,
            Some(PathBuf::from("/dev/kmsg"))
        );
        for sw in ["daemonize", "echo"] {
            for s in [
                format!("-{sw}"),
                format!("--{sw}"),
                format!("-{sw}=true"),
                format!("--{sw}=1"),
            ] {
                let a = parse(&[&s]).expect("switch");
                assert!(if sw == "echo" { a.echo } else { a.daemonize }, "{s}");
            }
        }
        let a = parse(&[
            "-max-lines",
            "9",
            "-fd-log=3",
            "--max-line-len=50",
            "--buffer-size",
            "64k",
        ])
        .expect("mixed");
        assert_eq!(
            (a.max_lines, a.fd_log, a.max_line_len, a.buffer_size),
            (9, 3, 50, 65536)
        );
    }

    #[test]
    fn socket_modes_default_to_least_privilege() {
        let c = Config::from_args(&parse(&[]).expect("defaults")).expect("valid");
        assert_eq!(
            (c.log_access.mode, c.query_access.mode, c.syslog_access.mode),
            (0o660, 0o660, 0o666)
        );
        assert_eq!(c.query_access.group, None);
        let a = parse(&["-socket-query-mode", "0640", "-socket-group", "root"]).expect("flags");
        assert_eq!((a.socket_query_mode, a.socket_group), (0o640, Some(0)));
        assert!(parse(&["-socket-log-mode", "999"]).is_err());
        assert!(parse(&["-socket-group", "no-such-group-here"]).is_err());
    }

    #[test]
    fn ring_compress_is_on_unless_turned_off() {
        assert!(parse(&[]).expect("defaults").ring_compress);
        for off in [
            "-ring-compress=false",
            "--ring-compress=0",
            "-ring-compress=off",
        ] {
            assert!(!parse(&[off]).expect(off).ring_compress, "{off}");
        }
        assert!(
            !parse(&["-ring-compress", "false"])
                .expect("spaced")
                .ring_compress
        );
        assert!(parse(&["-ring-compress=true"]).expect("on").ring_compress);
        assert!(parse(&["-ring-compress=maybe"]).is_err());
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(parse(&["-max-lines", "x"]).is_err());
        assert!(parse(&["-buffer-size", "12Q"]).is_err());
        assert!(parse(&["-bogus"]).is_err());
        let mut a = parse(&[]).expect("defaults");
        a.buffer_size = 1000;
        assert!(Config::from_args(&a).is_err());
        a.buffer_size = 2 << 20;
        a.max_lines = 0;
        assert!(Config::from_args(&a).is_err());
        a.max_lines = 10;
        a.max_syslog_conns = 1 << 20;
        assert!(Config::from_args(&a).is_err());
        let d = Config::from_args(&parse(&[]).expect("defaults")).expect("valid");
        assert_eq!(
            (d.max_syslog_conns, d.syslog_idle_timeout),
            (64, std::time::Duration::from_secs(60))
        );
        let off = parse(&["-syslog-idle-timeout", "0"]).expect("0 disables");
        assert!(off.syslog_idle_timeout.is_zero());
    }

    #[test]
    fn fds_override_paths() {
        let a = parse(&[
            "-fd-log",
            "3",
            "-fd-query",
            "4",
            "-remove-sockets",
            "-socket-log",
            "/l",
        ])
        .expect("fds");
        let c = Config::from_args(&a).expect("valid");
        assert_eq!(
            c.log,
            SocketSource::Fd {
                fd: 3,
                remove: Some("/l".into())
            }
        );
        assert_eq!(
            c.query,
            SocketSource::Fd {
                fd: 4,
                remove: Some(proto::DEFAULT_QUERY_SOCKET.into())
            }
        );
        let a = parse(&["-fd-log", "3"]).expect("fds");
        assert_eq!(
            Config::from_args(&a).expect("valid").log,
            SocketSource::Fd {
                fd: 3,
                remove: None
            }
        );
    }
}
