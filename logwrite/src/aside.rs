//! Sources put aside by the file output: one whose file cannot be written
//! (a directory or a symbolic link at its name, its permissions, a name
//! the filesystem refuses, past the file size limit) must not stop the
//! others. Its records are skipped and counted, the operator is told on
//! stderr (when it starts, then at most every [`INTERVAL`] while records
//! are skipped, with the count), and its file is tried again on its first
//! record after [`RETRY`]. Once a line of it is written and committed,
//! stderr says so with the number of records skipped.
//!
//! Skips since the last commit are counted apart: a failure of the whole
//! output takes those records again, and they are counted then.

use crate::report::{say, INTERVAL};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a source is put aside before its file is tried again.
pub const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Aside {
    /// What failed (`opening it: Is a directory (os error 21)`).
    error: String,
    /// Records skipped and committed.
    skipped: u64,
    /// Since the last commit.
    pending: u64,
    retry_at: Instant,
    last_said: Option<Instant>,
    /// The count in the last message.
    said: u64,
}

impl Aside {
    fn total(&self) -> u64 {
        self.skipped + self.pending
    }
}

/// The sources put aside, by file stem.
#[derive(Debug)]
pub struct Asides {
    dir: PathBuf,
    map: HashMap<String, Aside>,
    /// Written again since the last commit.
    resumed: Vec<(String, Aside)>,
}

impl Asides {
    pub fn new(dir: PathBuf) -> Asides {
        Asides {
            dir,
            map: HashMap::new(),
            resumed: Vec::new(),
        }
    }

    fn path(&self, stem: &str) -> String {
        self.dir.join(format!("{stem}.log")).display().to_string()
    }

    fn say_due(dir: &Path, stem: &str, a: &mut Aside, force: bool) {
        let due = a.last_said.map_or(true, |t| t.elapsed() >= INTERVAL);
        if (force || due) && a.total() != a.said {
            say(
                "files",
                &format!(
                    "cannot write {}: {}; skipping its records ({} so far)",
                    dir.join(format!("{stem}.log")).display(),
                    a.error,
                    a.total()
                ),
            );
            a.last_said = Some(Instant::now());
            a.said = a.total();
        }
    }

    /// True if `stem` is put aside and not due to be tried again: its
    /// record is skipped (and counted).
    pub fn skip(&mut self, stem: &str) -> bool {
        if self.map.is_empty() {
            return false;
        }
        let Some(a) = self.map.get_mut(stem) else {
            return false;
        };
        if Instant::now() >= a.retry_at {
            return false;
        }
        a.pending += 1;
        Self::say_due(&self.dir, stem, a, false);
        true
    }

    /// `stem`'s file failed with `error`; `n` of its records are lost to it.
    pub fn put(&mut self, stem: &str, error: String, n: u64) {
        let now = Instant::now();
        let a = match self.resumed.iter().position(|(s, _)| s == stem) {
            // Written again, then failed again before a commit.
            Some(i) => self.resumed.swap_remove(i).1,
            None => self.map.remove(stem).unwrap_or(Aside {
                error: String::new(),
                skipped: 0,
                pending: 0,
                retry_at: now,
                last_said: None,
                said: 0,
            }),
        };
        let mut a = Aside {
            retry_at: now + RETRY,
            pending: a.pending + n,
            ..a
        };
        let changed = a.error != error;
        a.error = error;
        Self::say_due(&self.dir, stem, &mut a, changed);
        self.map.insert(stem.to_owned(), a);
    }

    /// A line of `stem` was written (buffered).
    pub fn written(&mut self, stem: &str) {
        if self.map.is_empty() {
            return;
        }
        if let Some(a) = self.map.remove(stem) {
            self.resumed.push((stem.to_owned(), a));
        }
    }

    /// Everything taken was committed.
    pub fn commit(&mut self) {
        for a in self.map.values_mut() {
            a.skipped += a.pending;
            a.pending = 0;
        }
        for (stem, a) in std::mem::take(&mut self.resumed) {
            say(
                "files",
                &format!(
                    "writing {} again; {} of its records were skipped while it failed ({})",
                    self.path(&stem),
                    a.total(),
                    a.error
                ),
            );
        }
    }

    /// What was taken since the last commit is taken again.
    pub fn fail(&mut self) {
        for a in self.map.values_mut() {
            a.pending = 0;
        }
        for (_, a) in &mut self.resumed {
            a.pending = 0;
        }
    }

    /// Says the counts not said yet, when due.
    pub fn tick(&mut self) {
        for (stem, a) in &mut self.map {
            Self::say_due(&self.dir, stem, a, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_are_counted_and_undone_by_a_failure() {
        let mut s = Asides::new(PathBuf::from("/x"));
        assert!(!s.skip("a"));
        s.put("a", "opening it: Is a directory".into(), 1);
        assert!(s.skip("a") && s.skip("a"));
        assert_eq!(s.map["a"].total(), 3);
        s.fail();
        assert_eq!(s.map["a"].total(), 0);
        assert!(s.skip("a"));
        s.commit();
        assert_eq!((s.map["a"].skipped, s.map["a"].pending), (1, 0));
        // Due again: not skipped, and written.
        s.map.get_mut("a").expect("aside").retry_at = Instant::now();
        assert!(!s.skip("a"));
        s.written("a");
        assert!(!s.skip("a"));
        // Failing again before the commit puts it back, with its count.
        s.put("a", "writing it: File too large".into(), 2);
        assert_eq!(s.map["a"].total(), 3);
        assert!(s.resumed.is_empty());
    }
}
