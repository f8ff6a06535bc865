//! Go-style command lines on top of argh.
//!
//! LinuxKit's tools use Go's `flag` package, which accepts `-name value`,
//! `--name value`, `-name=value` and `--name=value` (and `-flag=false` for
//! booleans). argh accepts only `--name value` and `-x`. [`normalize`]
//! rewrites the first form into the second, given the program's flag names,
//! so that every binary keeps argh's derive, help text and type checks.
//!
//! Arguments are bytes. argh takes `&str`, so a value that is not UTF-8
//! (a path such as `/tmp/\xff`, a command's argument) is handed to argh as
//! a placeholder, a string with a NUL byte, which no real argument can
//! contain (the kernel passes arguments as C strings), and the program gets
//! the exact bytes back with [`os`] or [`path`] where it uses the value.
//! Only the options the [`Spec`] lists in `bytes` (and, with
//! `bytes_positionals`, the positional arguments) may be bytes; any other
//! value that is not UTF-8 is an error (exit status 2), never a crash.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::Mutex;

/// The flags a program declares: boolean switches and flags that take a value.
/// Names are given without dashes; one-letter names map to argh's `short`.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub switches: &'static [&'static str],
    pub options: &'static [&'static str],
    /// Options whose value may be any bytes (paths, names): read them with
    /// [`os`], [`path`] or [`bytes`].
    pub bytes: &'static [&'static str],
    /// Positional arguments may be any bytes (a command and its arguments).
    pub bytes_positionals: bool,
}

/// A command line that is not valid for the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError(pub String);

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlagError {}

/// Arguments that were not UTF-8, by placeholder number.
static RAW: Mutex<Vec<OsString>> = Mutex::new(Vec::new());
const MARK: &str = "\0memlog-arg-";

fn placeholder(v: &OsStr) -> String {
    let mut raw = RAW.lock().unwrap_or_else(|e| e.into_inner());
    raw.push(v.to_owned());
    format!("{MARK}{}\0", raw.len() - 1)
}

/// The exact argument behind a value argh parsed: the bytes a placeholder
/// stands for, or the value itself.
pub fn os(s: &str) -> OsString {
    let idx = s
        .strip_prefix(MARK)
        .and_then(|r| r.strip_suffix('\0'))
        .and_then(|n| n.parse::<usize>().ok());
    if let Some(i) = idx {
        let raw = RAW.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = raw.get(i) {
            return v.clone();
        }
    }
    OsString::from(s)
}

/// [`os`] as a path.
pub fn path(s: &str) -> PathBuf {
    PathBuf::from(os(s))
}

/// [`os`] as bytes.
pub fn bytes(s: &str) -> Vec<u8> {
    os(s).into_vec()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn dashed(name: &str) -> String {
    if name.len() == 1 {
        format!("-{name}")
    } else {
        format!("--{name}")
    }
}

/// An argument shown in a message (not UTF-8 bytes as `\xNN`).
fn show(a: &OsStr) -> String {
    crate::escape::display(a.as_bytes())
}

/// A value as argh will see it: itself if UTF-8, a placeholder if it may be
/// bytes, else an error naming `what`.
fn value(v: &OsStr, may_be_bytes: bool, what: &str) -> Result<String, FlagError> {
    match v.to_str() {
        Some(s) => Ok(s.to_owned()),
        None if may_be_bytes => Ok(placeholder(v)),
        None => Err(FlagError(format!(
            "{what} is not valid UTF-8: {:?}",
            show(v)
        ))),
    }
}

fn positional(v: &OsStr, spec: &Spec) -> Result<String, FlagError> {
    value(v, spec.bytes_positionals, "argument")
}

/// Rewrites Go-style flags in `args` (without the program name) to argh's
/// form. Parsing stops at `--` or at the first argument that is not a flag,
/// as Go's does; the rest is passed through (as positional arguments).
pub fn normalize<S: AsRef<OsStr>>(args: &[S], spec: &Spec) -> Result<Vec<String>, FlagError> {
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_ref();
        let ab = a.as_bytes();
        i += 1;
        if ab == b"--" || !ab.starts_with(b"-") || ab == b"-" {
            out.push(positional(a, spec)?);
            for rest in &args[i..] {
                out.push(positional(rest.as_ref(), spec)?);
            }
            break;
        }
        let body = ab.strip_prefix(b"--").unwrap_or(&ab[1..]);
        let (name, val) = match body.iter().position(|&c| c == b'=') {
            Some(k) => (&body[..k], Some(OsStr::from_bytes(&body[k + 1..]))),
            None => (body, None),
        };
        let Ok(name) = std::str::from_utf8(name) else {
            return Err(FlagError(format!(
                "flag provided but not defined: {}",
                show(a)
            )));
        };
        if name == "h" || name == "help" {
            out.push("--help".into());
        } else if spec.switches.contains(&name) {
            let on = match val {
                None => true,
                Some(v) => v.to_str().and_then(parse_bool).ok_or_else(|| {
                    FlagError(format!("invalid boolean value {:?} for -{name}", show(v)))
                })?,
            };
            if on {
                out.push(dashed(name));
            }
        } else if spec.options.contains(&name) {
            let v = match val {
                Some(v) => v,
                None => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| FlagError(format!("flag needs an argument: -{name}")))?;
                    i += 1;
                    v.as_ref()
                }
            };
            let v = value(
                v,
                spec.bytes.contains(&name),
                &format!("the value of -{name}"),
            )?;
            out.push(dashed(name));
            out.push(v);
        } else {
            return Err(FlagError(format!("flag provided but not defined: -{name}")));
        }
    }
    Ok(out)
}

/// Parses a size with an optional binary suffix: `4096`, `64k`, `2M`, `1G`, `512KiB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult: usize = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("invalid size unit in {s:?} (use k, M or G)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parses a duration: `30` (seconds), `30s`, `500ms`, `5m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let ms: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m, h or d)"
            ))
        }
    };
    n.checked_mul(ms)
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("duration {s:?} is too large"))
}

/// Parses `args` (without the program name) into `T` with Go-style flags.
/// On `--help` prints the help and exits 0; on an error prints one line and
/// exits 2, as Go's flag package does.
pub fn parse_or_exit<T: argh::FromArgs, S: AsRef<OsStr>>(cmd: &str, args: &[S], spec: &Spec) -> T {
    let norm = match normalize(args, spec) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{cmd}: {e} (see {cmd} -help)");
            std::process::exit(2);
        }
    };
    let refs: Vec<&str> = norm.iter().map(String::as_str).collect();
    match T::from_args(&[cmd], &refs) {
        Ok(t) => t,
        Err(early) => match early.status {
            Ok(()) => {
                print!("{}", early.output);
                std::process::exit(0);
            }
            Err(()) => {
                let first = early.output.lines().next().unwrap_or("invalid arguments");
                eprintln!("{cmd}: {first} (see {cmd} -help)");
                std::process::exit(2);
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        switches: &["daemonize", "f"],
        options: &["max-lines", "socket-log", "fd-log"],
        bytes: &["socket-log"],
        bytes_positionals: false,
    };

    fn n(args: &[&str]) -> Result<Vec<String>, FlagError> {
        normalize(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &SPEC,
        )
    }

    #[test]
    fn four_spellings_give_the_same_result() {
        let want = vec!["--max-lines".to_string(), "7".to_string()];
        for args in [
            &["-max-lines", "7"][..],
            &["--max-lines", "7"],
            &["-max-lines=7"],
            &["--max-lines=7"],
        ] {
            assert_eq!(n(args).expect("valid"), want, "{args:?}");
        }
    }

    #[test]
    fn booleans_accept_go_values() {
        assert_eq!(n(&["-daemonize"]).expect("ok"), vec!["--daemonize"]);
        assert_eq!(n(&["--daemonize=true"]).expect("ok"), vec!["--daemonize"]);
        assert!(n(&["-daemonize=false"]).expect("ok").is_empty());
        assert_eq!(n(&["--f"]).expect("ok"), vec!["-f"]);
        assert!(n(&["-daemonize=maybe"]).is_err());
    }

    #[test]
    fn values_may_look_like_flags_and_negative_numbers() {
        assert_eq!(n(&["-fd-log", "-1"]).expect("ok"), vec!["--fd-log", "-1"]);
        assert_eq!(
            n(&["-socket-log", "-x"]).expect("ok"),
            vec!["--socket-log", "-x"]
        );
        assert_eq!(
            n(&["-socket-log=a=b"]).expect("ok"),
            vec!["--socket-log", "a=b"]
        );
    }

    #[test]
    fn unknown_and_missing_values_are_errors() {
        assert_eq!(
            n(&["-nope"]),
            Err(FlagError("flag provided but not defined: -nope".into()))
        );
        assert_eq!(
            n(&["-max-lines"]),
            Err(FlagError("flag needs an argument: -max-lines".into()))
        );
    }

    #[test]
    fn stops_at_first_positional_or_double_dash() {
        assert_eq!(
            n(&["-f", "cmd", "-nope"]).expect("ok"),
            vec!["-f", "cmd", "-nope"]
        );
        assert_eq!(n(&["--", "-nope"]).expect("ok"), vec!["--", "-nope"]);
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn arguments_that_are_not_utf8() {
        let raw = |b: &[u8]| OsString::from_vec(b.to_vec());
        // A path flag keeps its exact bytes, in every spelling.
        for args in [
            vec![OsString::from("-socket-log"), raw(b"/tmp/\xff")],
            vec![raw(b"--socket-log=/tmp/\xff")],
        ] {
            let n = normalize(&args, &SPEC).expect("bytes allowed");
            assert_eq!(n[0], "--socket-log");
            assert!(n[1].contains('\0'), "a placeholder: {:?}", n[1]);
            assert_eq!(path(&n[1]), PathBuf::from(raw(b"/tmp/\xff")));
            assert_eq!(bytes(&n[1]), b"/tmp/\xff");
        }
        // A text flag or a positional is a clear error.
        let e = normalize(&[OsString::from("-max-lines"), raw(b"\xff")], &SPEC).expect_err("text");
        assert!(e.0.contains("-max-lines") && e.0.contains("UTF-8"), "{e}");
        assert!(e.0.contains("\\xff"), "{e}");
        assert!(normalize(&[raw(b"\xfe")], &SPEC).is_err());
        assert!(normalize(&[raw(b"-\xfe")], &SPEC).is_err());
        // With bytes_positionals, commands keep their arguments.
        let spec = Spec {
            bytes_positionals: true,
            ..SPEC
        };
        let n =
            normalize(&[OsString::from("--"), raw(b"echo"), raw(b"\xff")], &spec).expect("bytes");
        assert_eq!(os(&n[2]), raw(b"\xff"));
        assert_eq!(os("plain"), OsString::from("plain"));
    }
}
