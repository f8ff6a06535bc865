//! Small helpers the benchmark binaries share: statistics and a description
//! of the machine a run was made on.

use std::process::{Command, Stdio};

/// The median of `v` (NaN for none); the mean of the middle two for an even count.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The smallest and largest of `v`.
pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

/// The value of the first `KEY: value` or `KEY=value` line of a file such as
/// /proc/cpuinfo or /etc/os-release.
pub fn read_first(path: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once([':', '=']))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg gives them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The short commit of the checkout, with `-dirty` when tracked files changed.
pub fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::null())
            .output()
            .ok()
    };
    let o = git(&["rev-parse", "--short", "HEAD"])?;
    let s = String::from_utf8(o.stdout).ok()?.trim().to_string();
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|o| !o.stdout.is_empty());
    (o.status.success() && !s.is_empty()).then(|| if dirty { s + "-dirty" } else { s })
}

/// Splits a command-line word `--flag=value` / `-flag value` into the flag
/// name without dashes and its inline value, if any.
pub fn split_flag(a: &str) -> (&str, Option<String>) {
    let (flag, inline) = match a.split_once('=') {
        Some((f, v)) if f.starts_with('-') => (f, Some(v.to_string())),
        _ => (a, None),
    };
    (flag.trim_start_matches('-'), inline)
}

/// The value of flag word `a`: its inline value, or the next argument
/// (moving `i` past it); an error naming the flag when there is none.
pub fn flag_value(
    args: &[String],
    i: &mut usize,
    a: &str,
    inline: Option<String>,
    usage: &str,
) -> Result<String, String> {
    if let Some(v) = inline {
        return Ok(v);
    }
    let v = args
        .get(*i)
        .cloned()
        .ok_or_else(|| format!("{a} needs a value\n\n{usage}"))?;
    *i += 1;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(min_max(&[2.0, -1.0, 5.0]), (-1.0, 5.0));
    }

    #[test]
    fn flags() {
        let args: Vec<String> = ["--reps=3", "-lines", "7", "--out"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut i = 0;
        let (f, inline) = split_flag(&args[0]);
        assert_eq!((f, inline.as_deref()), ("reps", Some("3")));
        i += 1;
        let (f, inline) = split_flag(&args[1]);
        i += 1;
        assert_eq!(f, "lines");
        assert_eq!(
            flag_value(&args, &mut i, &args[1], inline, "u"),
            Ok("7".into())
        );
        assert_eq!(i, 3);
        i += 1;
        assert!(flag_value(&args, &mut i, "--out", None, "u").is_err());
    }
}
