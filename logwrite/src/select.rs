//! Which records an output takes: include and exclude lists of source names
//! (exact, or globs with `*`, `?` and `[...]`), and a minimum severity.

use memlog::filter::glob_match;
#[cfg(test)]
use memlog::proto::Record;
use memlog::proto::{self, RecordRef, Request};

/// The regular expressions of `match=` and `-match`: logread `-e`'s engine.
pub type Regex = regex_lite::Regex;

/// A selection of records for one output. Every part must hold.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Source globs to take; empty means every source.
    pub include: Vec<String>,
    /// Source globs to leave out (wins over `include`).
    pub exclude: Vec<String>,
    /// Least severe level taken (0 emerg ..= 7 debug); `None` takes all.
    pub min_severity: Option<u8>,
    /// Messages to take: any of these matches (as `logread -e`, on the
    /// message's text); empty means every message.
    pub matching: Vec<Regex>,
    /// Messages to leave out: any of these matches.
    pub not_matching: Vec<Regex>,
    /// The last source looked at and whether its name is taken: records
    /// come in runs of one source, so the globs run once a run.
    pub last_source: std::cell::RefCell<Option<(Vec<u8>, bool)>>,
}

impl Selector {
    /// Does this output take `r`? Globs match the source's exact bytes
    /// (`?` is one byte, even of a name that is not UTF-8). Records without
    /// a severity count as [`proto::DEFAULT_SEVERITY`].
    pub fn matches(&self, r: &RecordRef<'_>) -> bool {
        let src = r.source_bytes();
        if let Some(min) = self.min_severity {
            if r.severity.unwrap_or(proto::DEFAULT_SEVERITY) > min {
                return false;
            }
        }
        if !(self.include.is_empty() && self.exclude.is_empty()) {
            let mut last = self.last_source.borrow_mut();
            let taken = match &*last {
                Some((name, taken)) if name.as_slice() == src => *taken,
                _ => {
                    let taken = self.source_taken(src);
                    *last = Some((src.to_vec(), taken));
                    taken
                }
            };
            if !taken {
                return false;
            }
        }
        if !self.matching.is_empty() && !self.matching.iter().any(|re| re.is_match(&r.msg)) {
            return false;
        }
        !self.not_matching.iter().any(|re| re.is_match(&r.msg))
    }

    /// The source globs alone: `include` (if any) and not `exclude`.
    fn source_taken(&self, src: &[u8]) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| glob_match(g.as_bytes(), src)))
            && !self.exclude.iter().any(|g| glob_match(g.as_bytes(), src))
    }

    /// Compiles `re` for `what` (`match=`, `-exclude-match`...), with an
    /// error that says which.
    pub fn regex(re: &str, what: &str) -> Result<Regex, String> {
        Regex::new(re).map_err(|e| {
            let e = e.to_string().replace('\n', " ");
            format!("invalid regular expression {re:?} for {what}: {e}")
        })
    }

    /// Asks memlogd for only what this selects by source and severity (its
    /// `source-glob=`, `exclude-glob=` and `min-severity=`), so an output
    /// that takes a few sources does not decode the whole stream. The
    /// regular expressions stay here: memlogd never runs a user's regex.
    pub fn narrow(&self, req: &mut Request) {
        req.source_globs = self.include.iter().map(|g| g.as_bytes().to_vec()).collect();
        req.exclude_globs = self.exclude.iter().map(|g| g.as_bytes().to_vec()).collect();
        req.min_severity = self.min_severity;
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
        assert!(all.matches(&rec("x", Some(7)).as_ref()));
        let s = Selector {
            include: vec!["onboot.*".into(), "sshd".into()],
            exclude: vec!["*.out".into()],
            min_severity: Some(4),
            ..Selector::default()
        };
        assert!(s.matches(&rec("sshd", Some(3)).as_ref()));
        assert!(s.matches(&rec("onboot.net", Some(4)).as_ref()));
        assert!(!s.matches(&rec("onboot.net.out", Some(0)).as_ref()));
        assert!(!s.matches(&rec("other", Some(0)).as_ref()));
        assert!(!s.matches(&rec("sshd", Some(6)).as_ref()));
        // Runs of one source and sources taking turns: the same answers.
        for name in [
            "sshd",
            "sshd",
            "other",
            "other",
            "sshd",
            "onboot.net.out",
            "onboot.net",
        ] {
            let fresh = Selector {
                include: s.include.clone(),
                exclude: s.exclude.clone(),
                min_severity: s.min_severity,
                ..Selector::default()
            };
            let r = rec(name, Some(3));
            assert_eq!(s.matches(&r.as_ref()), fresh.matches(&r.as_ref()), "{name}");
        }
        // No severity counts as info.
        assert!(!s.matches(&rec("sshd", None).as_ref()));
        let info = Selector {
            min_severity: Some(6),
            ..Selector::default()
        };
        assert!(info.matches(&rec("x", None).as_ref()));
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
        assert!(two.matches(&r.as_ref()));
        let lossy = Selector {
            include: vec!["\u{fffd}*".into()],
            ..Selector::default()
        };
        assert!(!lossy.matches(&r.as_ref()));
    }
}
