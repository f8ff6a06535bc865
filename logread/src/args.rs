//! The command line: LinuxKit's flags (`-socket`, `-f`, `-F`) unchanged, plus
//! selection, output and resume flags. Parsed Go-style (all four spellings,
//! see `memlog::goflags`), then checked into [`Options`]; every bad value is
//! one line and exit status 2.

use crate::format::Format;
use crate::when;
use argh::FromArgs;
use memlog::filter::{Filter, Pattern};
use memlog::goflags::{self, Spec};
use memlog::proto::{self, Mode};
use std::path::PathBuf;

/// The regular expression engine for `-e`: regex-lite, for size (see the
/// README, "logread binary size").
pub type Regex = regex_lite::Regex;

/// Flag names for `goflags` (one-letter names are argh's short forms).
pub const SPEC: Spec = Spec {
    switches: &[
        "f",
        "F",
        "fixed-strings",
        "show-lost",
        "retry",
        "client-filter",
    ],
    options: &[
        "socket",
        "n",
        "lines",
        "l",
        "last",
        "s",
        "source",
        "x",
        "exclude",
        "e",
        "regex",
        "p",
        "priority",
        "since",
        "until",
        "o",
        "output",
        "cursor-file",
        "color",
    ],
    bytes: &["socket", "s", "source", "x", "exclude", "cursor-file"],
    bytes_positionals: false,
};

/// Print the memlogd log buffer (dump by default), or follow it, with
/// LinuxKit's flags and output: each record as TIME;SOURCE;MSG.
/// Flags may be written -name value, --name value, -name=value or
/// --name=value. Filters run in memlogd when it can (so following one quiet
/// source does not ship the whole buffer), otherwise here; the result is
/// the same. Regular expressions (-e) always run here. Records lost (this
/// reader overtaken, memlogd restarted) are reported on stderr.
#[derive(FromArgs, Debug, Default)]
#[argh(
    example = "logread                          dump the buffer",
    example = "logread -F                       dump, then follow",
    example = "logread -f -n 20 -s 'onboot.*'   last 20 from onboot services, then follow",
    example = "logread -p warning --since 10m   warnings and worse of the last 10 minutes",
    example = "logread -x memlogd -e 'eth[0-9]: (up|down)' -o short",
    example = "logread --cursor-file /var/run/logread.cursor -o json   new records since the last run",
    note = "Exit status: 0 done (also on SIGINT/SIGTERM, or when the output pipe closes), 1 error (memlogd unreachable or gone while following without --retry), 2 bad flags."
)]
pub struct Args {
    /// memlogd query socket (default /var/run/memlogdq.sock), e.g. -socket /tmp/memlogdq.sock
    #[argh(
        option,
        default = "proto::DEFAULT_QUERY_SOCKET.into()",
        arg_name = "PATH"
    )]
    pub socket: String,
    /// follow: print records as they arrive (with -n N, the last N first), e.g. -f -s sshd
    #[argh(switch, short = 'f')]
    pub follow: bool,
    /// dump the buffer, then follow, e.g. -F -n 50
    #[argh(switch, short = 'F')]
    pub dump_follow: bool,
    /// only the last N selected records of the buffer, e.g. -n 20
    #[argh(option, short = 'n', arg_name = "N")]
    pub lines: Option<u64>,
    /// same as -n (OpenWrt's spelling), e.g. -l 20
    #[argh(option, short = 'l', arg_name = "N")]
    pub last: Option<u64>,
    /// only this source: an exact name, or a glob with * ? [..] (\ escapes); repeatable, any matches; e.g. -s sshd -s 'onboot.*'
    #[argh(option, short = 's', arg_name = "PATTERN")]
    pub source: Vec<String>,
    /// never this source (name or glob as for -s); repeatable, e.g. -x memlogd -x '*.out'
    #[argh(option, short = 'x', arg_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// only messages matching this regular expression (runs in logread); repeatable, any matches; e.g. -e 'error|fail'
    #[argh(option, short = 'e', arg_name = "REGEX")]
    pub regex: Vec<String>,
    /// take the -e patterns as fixed strings (runs in memlogd), e.g. --fixed-strings -e 'a.b'
    #[argh(switch)]
    pub fixed_strings: bool,
    /// only records this severe or more: 0-7 or emerg, alert, crit, err, warning, notice, info, debug (records without one count as info), e.g. -p warning
    #[argh(option, short = 'p', arg_name = "LEVEL")]
    pub priority: Option<String>,
    /// only records received at or after TIME: RFC 3339 (2026-11-21T12:00:00Z), local "2026-11-21 12:00[:00]", 2026-11-21, today, yesterday, now, or an age (30s, 10m, 2h, 1d, 1h30m); e.g. --since 10m
    #[argh(option, arg_name = "TIME")]
    pub since: Option<String>,
    /// only records received at or before TIME (as --since), e.g. --until 2026-11-21T12:30:00Z
    #[argh(option, arg_name = "TIME")]
    pub until: Option<String>,
    /// output format: linuxkit (TIME;SOURCE;MSG, the default), short (syslog-like local time, source, message), precise (short with microseconds), iso, iso-precise, kmsg (TIME,SOURCE;MSG), json (one object per record), cat (message only); e.g. -o short
    #[argh(option, short = 'o', arg_name = "FORMAT")]
    pub output: Option<String>,
    /// resume: print the records after the position saved in FILE and save the new position there as it goes (a gap is reported on stderr), e.g. --cursor-file /var/run/logread.cursor
    #[argh(option, arg_name = "FILE")]
    pub cursor_file: Option<String>,
    /// print notices of lost records on stdout, in line with the records, instead of on stderr, e.g. --show-lost -o json
    #[argh(switch)]
    pub show_lost: bool,
    /// colour by severity: never, always or auto (on a terminal, unless NO_COLOR is set), e.g. --color=never
    #[argh(option, arg_name = "WHEN")]
    pub color: Option<String>,
    /// when memlogd is not there or goes away, reconnect and go on after the last record seen (nothing twice), e.g. -f --retry
    #[argh(switch)]
    pub retry: bool,
    /// apply every filter in logread, never in memlogd (for checking; the output is the same), e.g. --client-filter -s 'onboot.*'
    #[argh(switch)]
    pub client_filter: bool,
}

/// When to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Never,
    Always,
    Auto,
}

/// A checked command line.
#[derive(Debug)]
pub struct Options {
    pub socket: PathBuf,
    pub mode: Mode,
    /// `-n`/`-l`.
    pub tail: Option<u64>,
    /// Everything memlogd can select by.
    pub filter: Filter,
    /// `-e` patterns to run here (not with `--fixed-strings`).
    pub regex: Vec<Regex>,
    pub format: Format,
    pub color: Color,
    pub cursor_file: Option<PathBuf>,
    pub show_lost: bool,
    pub retry: bool,
    pub client_filter: bool,
}

/// Checks the flags' values. `now_ns` anchors relative times.
pub fn check(a: Args, now_ns: i64) -> Result<Options, String> {
    let tail = match (a.lines, a.last) {
        (Some(n), Some(l)) if n != l => return Err("-n and -l disagree: give one".into()),
        (n, l) => n.or(l),
    };
    let min_severity = match &a.priority {
        None => None,
        Some(p) => Some(proto::parse_severity(p).ok_or_else(|| {
            format!(
                "invalid level {p:?} for -p (0-7 or {})",
                proto::SEVERITIES.join(", ")
            )
        })?),
    };
    let time = |flag: &str, v: &Option<String>| -> Result<Option<i64>, String> {
        v.as_deref()
            .map(|s| when::parse(s, now_ns).map_err(|e| format!("invalid time for --{flag}: {e}")))
            .transpose()
    };
    let since_ns = time("since", &a.since)?;
    let until_ns = time("until", &a.until)?;
    if let (Some(s), Some(u)) = (since_ns, until_ns) {
        if s > u {
            return Err("--since is later than --until".into());
        }
    }
    for p in a.source.iter().chain(&a.exclude) {
        if goflags::bytes(p).is_empty() {
            return Err("empty source pattern for -s/-x".into());
        }
    }
    let (grep, regex) = if a.fixed_strings {
        (
            a.regex.iter().map(|s| s.as_bytes().to_vec()).collect(),
            vec![],
        )
    } else {
        let res = a
            .regex
            .iter()
            .map(|r| {
                Regex::new(r).map_err(|e| {
                    let e = e.to_string().replace('\n', " ");
                    format!("invalid regular expression {r:?} for -e: {e}")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        (vec![], res)
    };
    if a.fixed_strings && grep.is_empty() {
        return Err("--fixed-strings needs at least one -e STRING".into());
    }
    let format = match &a.output {
        None => Format::LinuxKit,
        Some(o) => Format::parse(o).ok_or_else(|| {
            format!(
                "invalid output format {o:?} for -o (one of {})",
                Format::NAMES.join(", ")
            )
        })?,
    };
    let color = match a.color.as_deref() {
        None | Some("auto") => Color::Auto,
        Some("never") => Color::Never,
        Some("always") => Color::Always,
        Some(c) => {
            return Err(format!(
                "invalid value {c:?} for --color (never, always, auto)"
            ))
        }
    };
    let mode = match (a.dump_follow, a.follow) {
        (true, _) => Mode::DumpFollow,
        (false, true) => Mode::Follow,
        _ => Mode::Dump,
    };
    Ok(Options {
        socket: goflags::path(&a.socket),
        mode,
        tail,
        filter: Filter {
            include: a
                .source
                .iter()
                .map(|s| Pattern::parse(goflags::bytes(s)))
                .collect(),
            exclude: a
                .exclude
                .iter()
                .map(|s| Pattern::parse(goflags::bytes(s)))
                .collect(),
            min_severity,
            since_ns,
            until_ns,
            grep,
            containers: Vec::new(),
        },
        regex,
        format,
        color,
        cursor_file: a.cursor_file.as_deref().map(goflags::path),
        show_lost: a.show_lost,
        retry: a.retry,
        client_filter: a.client_filter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let norm = memlog::goflags::normalize(&argv, &SPEC).map_err(|e| e.to_string())?;
        let refs: Vec<&str> = norm.iter().map(String::as_str).collect();
        let a = Args::from_args(&["logread"], &refs).map_err(|e| e.output)?;
        check(a, 1_000_000_000_000)
    }

    #[test]
    fn linuxkit_flags_and_defaults() {
        let o = parse(&[]).expect("ok");
        assert_eq!(o.mode, Mode::Dump);
        assert_eq!(o.socket, PathBuf::from(proto::DEFAULT_QUERY_SOCKET));
        assert!(o.filter.is_empty());
        assert_eq!(o.format, Format::LinuxKit);
        assert_eq!(parse(&["-f"]).expect("ok").mode, Mode::Follow);
        assert_eq!(parse(&["--F"]).expect("ok").mode, Mode::DumpFollow);
        assert_eq!(
            parse(&["-socket=/x"]).expect("ok").socket,
            PathBuf::from("/x")
        );
    }

    #[test]
    fn selection_flags() {
        let o = parse(&[
            "-n",
            "5",
            "-s",
            "a",
            "--source=b*",
            "-x",
            "c",
            "-p",
            "warn",
            "--since",
            "10s",
            "-e",
            "x+",
        ])
        .expect("ok");
        assert_eq!(o.tail, Some(5));
        assert_eq!(
            o.filter.include,
            vec![Pattern::Exact(b"a".to_vec()), Pattern::Glob(b"b*".to_vec())]
        );
        assert_eq!(o.filter.exclude, vec![Pattern::Exact(b"c".to_vec())]);
        assert_eq!(o.filter.min_severity, Some(4));
        assert_eq!(o.filter.since_ns, Some(1_000_000_000_000 - 10_000_000_000));
        assert_eq!(o.regex.len(), 1);
        assert!(o.regex[0].is_match("axxb"));
        assert!(o.filter.grep.is_empty());
        let f = parse(&["--fixed-strings", "-e", "a.b", "-l", "3"]).expect("ok");
        assert_eq!(f.filter.grep, vec![b"a.b".to_vec()]);
        assert!(f.regex.is_empty());
        assert_eq!(f.tail, Some(3));
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            &["-p", "loud"][..],
            &["-n", "x"],
            &["-n", "1", "-l", "2"],
            &["--since", "yesteryear"],
            &["--since", "1m", "--until", "2m"],
            &["-o", "xml"],
            &["--color=sometimes"],
            &["--fixed-strings"],
            &["-s", ""],
            &["-e", "("],
            &["-nope"],
            &["extra"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
