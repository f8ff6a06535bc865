//! `-trigger 'match=REGEX&quiet=30s[&source=GLOB][&min-severity=LEVEL][&max-wait=5m]'`:
//! the fast track. A record of a selected source whose message matches
//! arms the trigger for that source; once no further matching record has
//! come for `quiet`, or `max-wait` after it armed, that source's file is
//! rotated (reason `trigger`) and the `-on-rotate` hook runs. While armed,
//! the file is rotated for size only at twice `-max-log-size`, so the lines
//! before and after the match stay in one file.
//!
//! The timers are deadlines on the file output's own loop (its wait for
//! memlogd ends at the nearest one): no polling. Armed triggers are saved
//! in `.logwrite.state` with their wall-clock times, so a trigger armed
//! before a kill -9 fires after the restart (at once if its time passed).

use crate::dir::ArmedState;
use crate::remote::pct_decode;
use crate::select::Selector;
use memlog::proto::RecordRef;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Default `max-wait`.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// One `-trigger`.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// Its source glob, min-severity and regular expression.
    pub select: Selector,
    pub quiet: Duration,
    pub max_wait: Duration,
}

impl Trigger {
    /// Parses a `-trigger` value (options joined by `&`, `%XX` escapes;
    /// `+` is literal in `match=` and `source=`).
    pub fn parse(
        spec: &str,
        duration: fn(&str) -> Result<Duration, String>,
    ) -> Result<Trigger, String> {
        let err = |e: String| format!("-trigger {spec:?}: {e}");
        let mut select = Selector::default();
        let (mut quiet, mut max_wait) = (None, MAX_WAIT);
        for kv in spec.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = pct_decode(v, false).map_err(err)?;
            match k {
                "match" => select
                    .matching
                    .push(Selector::regex(&v, "-trigger match=").map_err(err)?),
                "source" => select.include.push(v),
                "min-severity" => {
                    select.min_severity = Some(Selector::parse_severity(&v).map_err(err)?)
                }
                "quiet" => quiet = Some(duration(&v).map_err(err)?),
                "max-wait" => max_wait = duration(&v).map_err(err)?,
                _ => {
                    return Err(err(format!(
                        "unknown option {k:?} (match, quiet, source, min-severity, max-wait)"
                    )))
                }
            }
        }
        if select.matching.is_empty() {
            return Err(err("match=REGEX is required".into()));
        }
        let quiet = quiet.ok_or_else(|| err("quiet=DURATION is required".into()))?;
        if quiet.is_zero() || max_wait.is_zero() {
            return Err(err("quiet and max-wait must be more than 0".into()));
        }
        Ok(Trigger {
            select,
            quiet,
            max_wait,
        })
    }

    /// Does `r` arm this trigger?
    pub fn fires_on(&self, r: &RecordRef<'_>) -> bool {
        self.select.matches(r)
    }
}

/// A trigger armed for one source.
#[derive(Debug, Clone)]
pub struct Armed {
    at: Instant,
    last: Instant,
    at_wall: u64,
    last_wall: u64,
    quiet: Duration,
    max_wait: Duration,
}

fn wall_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Armed {
    /// Armed now by `t`.
    pub fn new(t: &Trigger) -> Armed {
        let (now, wall) = (Instant::now(), wall_ms(SystemTime::now()));
        Armed {
            at: now,
            last: now,
            at_wall: wall,
            last_wall: wall,
            quiet: t.quiet,
            max_wait: t.max_wait,
        }
    }

    /// Another matching record, of `t`: the quiet period starts again (the
    /// longer quiet and max-wait of the triggers that matched hold).
    pub fn again(&mut self, t: &Trigger) {
        self.last = Instant::now();
        self.last_wall = wall_ms(SystemTime::now());
        self.quiet = self.quiet.max(t.quiet);
        self.max_wait = self.max_wait.max(t.max_wait);
    }

    /// When it fires.
    pub fn deadline(&self) -> Instant {
        (self.last + self.quiet).min(self.at + self.max_wait)
    }

    pub fn save(&self, stem: &str) -> ArmedState {
        ArmedState {
            stem: stem.to_owned(),
            at_ms: self.at_wall,
            last_ms: self.last_wall,
            quiet_ms: u64::try_from(self.quiet.as_millis()).unwrap_or(u64::MAX),
            max_wait_ms: u64::try_from(self.max_wait.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// As saved by an earlier run: its times put back on this run's clock
    /// (a time in the future, from a clock that went back, counts as now).
    pub fn load(a: &ArmedState) -> Armed {
        let (now, wall) = (Instant::now(), wall_ms(SystemTime::now()));
        let back = |ms: u64| {
            let ago = Duration::from_millis(wall.saturating_sub(ms));
            now.checked_sub(ago).unwrap_or(now)
        };
        Armed {
            at: back(a.at_ms),
            last: back(a.last_ms),
            at_wall: a.at_ms.min(wall),
            last_wall: a.last_ms.min(wall),
            quiet: Duration::from_millis(a.quiet_ms),
            max_wait: Duration::from_millis(a.max_wait_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memlog::proto::Record;

    fn dur(s: &str) -> Result<Duration, String> {
        s.strip_suffix('s')
            .and_then(|n| n.parse().ok())
            .map(Duration::from_secs)
            .ok_or_else(|| format!("bad {s}"))
    }

    #[test]
    fn specs() {
        let t = Trigger::parse(
            r#"match=HTTP/1\.1"\s5\d\d&quiet=30s&source=web*&min-severity=info"#,
            dur,
        )
        .expect("parses");
        assert_eq!((t.quiet, t.max_wait), (Duration::from_secs(30), MAX_WAIT));
        let rec = |src: &str, msg: &str| Record {
            source: src.into(),
            msg: msg.into(),
            ..Record::default()
        };
        assert!(t.fires_on(&rec("web", r#"GET / HTTP/1.1" 503 0"#).as_ref()));
        assert!(!t.fires_on(&rec("web", r#"GET / HTTP/1.1" 200 0"#).as_ref()));
        assert!(!t.fires_on(&rec("db", r#"GET / HTTP/1.1" 503 0"#).as_ref()));
        let p = Trigger::parse("match=a+b%26&quiet=1s&max-wait=5s", dur).expect("parses");
        assert!(p.fires_on(&rec("x", "aab&").as_ref()));
        assert_eq!(p.max_wait, Duration::from_secs(5));
        for bad in [
            "quiet=30s",
            "match=x",
            "match=(&quiet=1s",
            "match=x&quiet=0s",
            "match=x&quiet=1s&nope=1",
            "match=x&quiet=soon",
            "match=x&quiet=1s&min-severity=loud",
        ] {
            assert!(Trigger::parse(bad, dur).is_err(), "{bad}");
        }
    }

    #[test]
    fn deadlines_and_saving() {
        let t = Trigger::parse("match=x&quiet=30s&max-wait=60s", dur).expect("parses");
        let mut a = Armed::new(&t);
        assert_eq!(a.deadline(), a.at + Duration::from_secs(30));
        a.last = a.at + Duration::from_secs(50);
        assert_eq!(a.deadline(), a.at + Duration::from_secs(60));
        // Saved 10 s ago: it comes back 10 s in the past.
        let mut s = Armed::new(&t).save("web");
        s.at_ms -= 10_000;
        s.last_ms -= 10_000;
        let l = Armed::load(&s);
        let left = l.deadline().saturating_duration_since(Instant::now());
        assert!(
            left <= Duration::from_secs(20) && left > Duration::from_secs(18),
            "{left:?}"
        );
        assert_eq!(l.save("web").quiet_ms, 30_000);
    }
}
