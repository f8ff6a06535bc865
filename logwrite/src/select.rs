//! Which records an output takes: include and exclude lists of source names
//! (exact, or globs with `*`, `?` and `[...]`), and a minimum severity.

use memlog::filter::glob_match;
use memlog::proto::{self, Record};

/// A selection of records for one output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Source globs to take; empty means every source.
    pub include: Vec<String>,
    /// Source globs to leave out (wins over `include`).
    pub exclude: Vec<String>,
    /// Least severe level taken (0 emerg ..= 7 debug); `None` takes all.
    pub min_severity: Option<u8>,
}

impl Selector {
    /// Does this output take `r`? Globs match the source's exact bytes
    /// (`?` is one byte, even of a name that is not UTF-8). Records without
    /// a severity count as [`proto::DEFAULT_SEVERITY`].
    pub fn matches(&self, r: &Record) -> bool {
        let src = r.source_bytes();
        if let Some(min) = self.min_severity {
            if r.severity.unwrap_or(proto::DEFAULT_SEVERITY) > min {
                return false;
            }
        }
        if !self.include.is_empty() && !self.include.iter().any(|g| glob_match(g.as_bytes(), src)) {
            return false;
        }
        !self.exclude.iter().any(|g| glob_match(g.as_bytes(), src))
    }

    /// Parses a severity for `min-severity` (a name or 0..=7).
    pub fn parse_severity(s: &str) -> Result<u8, String> {
        proto::parse_severity(s).ok_or_else(|| {
            format!(
                "invalid severity {s:?} (use 0..7 or one of {})",
                proto::SEVERITIES.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, n: &str) -> bool {
        glob_match(p.as_bytes(), n.as_bytes())
    }

    #[test]
    fn globs() {
        assert!(g("sshd", "sshd"));
        assert!(!g("sshd", "sshd.out"));
        assert!(g("onboot.*", "onboot.001-dhcpcd.out"));
        assert!(!g("onboot.*", "sshd"));
        assert!(g("*.out", "a.out"));
        assert!(g("*", ""));
        assert!(g("a*b*c", "aXXbYYc"));
        assert!(!g("a*b*c", "aXXbYY"));
        assert!(g("a?c", "abc"));
        assert!(!g("a?c", "ac"));
        assert!(g("[ab]x", "bx"));
        assert!(!g("[!ab]x", "bx"));
        assert!(g("[a-c]x", "cx"));
        assert!(g("[]]", "]"));
        assert!(g("a[", "a["));
        assert!(g("a\\*", "a*"));
        assert!(!g("a\\*", "ab"));
        assert!(g("*a*a*a*", "aaaa"));
    }

    fn rec(src: &str, sev: Option<u8>) -> Record {
        Record {
            source: src.into(),
            severity: sev,
            ..Record::default()
        }
    }

    #[test]
    fn selector() {
        let all = Selector::default();
        assert!(all.matches(&rec("x", Some(7))));
        let s = Selector {
            include: vec!["onboot.*".into(), "sshd".into()],
            exclude: vec!["*.out".into()],
            min_severity: Some(4),
        };
        assert!(s.matches(&rec("sshd", Some(3))));
        assert!(s.matches(&rec("onboot.net", Some(4))));
        assert!(!s.matches(&rec("onboot.net.out", Some(0))));
        assert!(!s.matches(&rec("other", Some(0))));
        assert!(!s.matches(&rec("sshd", Some(6))));
        // No severity counts as info.
        assert!(!s.matches(&rec("sshd", None)));
        let info = Selector {
            min_severity: Some(6),
            ..Selector::default()
        };
        assert!(info.matches(&rec("x", None)));
        assert_eq!(Selector::parse_severity("warning"), Ok(4));
        assert!(Selector::parse_severity("loud").is_err());
    }

    #[test]
    fn globs_match_the_exact_bytes() {
        let r = Record {
            source: "\u{fffd}\u{fffd}".into(),
            source_raw: Some(b"\xff\xfe".to_vec()),
            ..Record::default()
        };
        let two = Selector {
            include: vec!["??".into()],
            ..Selector::default()
        };
        assert!(two.matches(&r));
        let lossy = Selector {
            include: vec!["\u{fffd}*".into()],
            ..Selector::default()
        };
        assert!(!lossy.matches(&r));
    }
}
