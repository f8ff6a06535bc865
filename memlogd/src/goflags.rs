//! Go-style command lines on top of argh.
//!
//! LinuxKit's tools use Go's `flag` package, which accepts `-name value`,
//! `--name value`, `-name=value` and `--name=value` (and `-flag=false` for
//! booleans). argh accepts only `--name value` and `-x`. [`normalize`]
//! rewrites the first form into the second, given the program's flag names,
//! so that every binary keeps argh's derive, help text and type checks.

use std::fmt;

/// The flags a program declares: boolean switches and flags that take a value.
/// Names are given without dashes; one-letter names map to argh's `short`.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub switches: &'static [&'static str],
    pub options: &'static [&'static str],
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

/// Rewrites Go-style flags in `args` (without the program name) to argh's
/// form. Parsing stops at `--` or at the first argument that is not a flag,
/// as Go's does; the rest is passed through untouched.
pub fn normalize(args: &[String], spec: &Spec) -> Result<Vec<String>, FlagError> {
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" || !a.starts_with('-') || a == "-" {
            out.push(a.clone());
            out.extend(args[i..].iter().cloned());
            break;
        }
        let body = a.strip_prefix("--").unwrap_or(&a[1..]);
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        if name == "h" || name == "help" {
            out.push("--help".into());
        } else if spec.switches.contains(&name) {
            let on = match value {
                None => true,
                Some(v) => parse_bool(v)
                    .ok_or_else(|| FlagError(format!("invalid boolean value {v:?} for -{name}")))?,
            };
            if on {
                out.push(dashed(name));
            }
        } else if spec.options.contains(&name) {
            let v = match value {
                Some(v) => v.to_owned(),
                None => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| FlagError(format!("flag needs an argument: -{name}")))?;
                    i += 1;
                    v.clone()
                }
            };
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
pub fn parse_or_exit<T: argh::FromArgs>(cmd: &str, args: &[String], spec: &Spec) -> T {
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
}
