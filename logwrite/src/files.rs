//! The file output: one file per source, `STEM.log` (see [`crate::names`]),
//! each line `TIME SOURCE MSG` as LinuxKit's logwrite writes it, rotated by
//! size (`STEM.log` -> `STEM.log.0` -> ... -> `STEM.log.(N-1)`, see
//! [`crate::rotate`]), optionally gzipped and capped in total bytes per
//! source.
//!
//! Exact resume: the state file `.logwrite.state` holds the position of the
//! last record written *and the size of every file being written at that
//! point*. Data reaches the files before the state names it; on start (and
//! after a failure) every file is cut back to the size the state gives, so
//! records written after the last saved state are removed and fetched again
//! from memlogd: a crash anywhere (kill -9 between a write and the state's
//! rename included) gives no duplicate and no gap. A file is added to the
//! state before its first write, and renames for rotation happen only right
//! after a save, so the sizes always describe the files that exist. Without
//! a usable state, memlogd's buffer is matched against the files instead
//! ([`crate::reconcile`]).
//!
//! Only logwrite's own files are written: `STEM.log` must be a regular file
//! with one link, else it is replaced by a new one ([`Dir::open_log`]).
//! Trouble of one file (see [`Fault`]) puts that source aside
//! ([`crate::aside`]); trouble of the directory or the disk fails the whole
//! output, which retries from the last commit.

use crate::aside::Asides;
use crate::dir::{Dir, Fault, State};
use crate::follow::{Sink, Wake};
use crate::hooks::{Hooks, Job, Reason};
use crate::names;
use crate::reconcile::Reconcile;
use crate::report::{say, LostCounter};
use crate::rotate::{self, Naming, Policy};
use crate::select::Selector;
use crate::syncer::Syncer;
use crate::trigger::{Armed, Trigger};
use memlog::proto::{Position, Record, RecordRef, Request};
use memlog::{escape, timefmt};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The file output's state file in the log directory.
pub const STATE_FILE: &str = ".logwrite.state";
/// Most files kept open at once; past this all are closed (after a commit).
const MAX_OPEN: usize = 256;
/// Most triggers armed at once (each is a line of the saved state, which
/// is read back bounded: [`crate::dir::MAX_STATE`]); a source arming one
/// past this is said and not armed.
const MAX_ARMED: usize = 1024;
/// Buffered bytes per file before they are written out.
const BUF: usize = 64 * 1024;

/// Errors opening `STEM.log` that are that file's trouble; `EACCES` and
/// `EPERM` are too when the file exists (else they are the directory's).
const OPEN_ERRORS: &[i32] = &[
    libc::EISDIR,
    libc::ELOOP,
    libc::ENOTDIR,
    libc::ENAMETOOLONG,
    libc::EFBIG,
    libc::EOVERFLOW,
    libc::EEXIST,
    libc::ENXIO,
    libc::ETXTBSY,
    libc::EINVAL,
    libc::EILSEQ,
    libc::EOPNOTSUPP,
];
/// Errors writing `STEM.log` that are that file's trouble.
const WRITE_ERRORS: &[i32] = &[libc::EFBIG];

/// How the file output is set up.
#[derive(Debug, Clone)]
pub struct FileConfig {
    pub dir: PathBuf,
    pub max_size: u64,
    pub max_files: u32,
    pub compress: bool,
    /// `-rotated-names`.
    pub naming: Naming,
    /// `-trigger` (see [`crate::trigger`]).
    pub triggers: Vec<Trigger>,
    /// Most bytes kept per source (current and rotated files together).
    pub max_source_bytes: Option<u64>,
    /// fsync at least this often while there is unsynced data.
    pub fsync_interval: Option<Duration>,
    /// fsync at the end of a batch holding a record this severe or more.
    pub fsync_severity: Option<u8>,
    pub select: Selector,
    /// memlogd's query socket (matching a buffer against the files reads
    /// it once more: see [`crate::reconcile`]).
    pub socket: PathBuf,
}

#[derive(Debug)]
struct Open {
    file: File,
    /// Bytes in the file.
    written: u64,
    /// Its size in the saved state.
    saved: u64,
    buf: Vec<u8>,
    /// Records in `buf`.
    buf_records: u64,
    unsynced: bool,
    /// The time of its last record (for time-named rotation), if known.
    last_ns: Option<i64>,
    /// The source's exact name (for the hook), once a record came.
    source: Vec<u8>,
}

fn ctx(e: io::Error, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// What loading the state gave.
enum Loaded {
    Usable,
    Missing,
    Unusable(String),
}

/// The file output.
pub struct Files {
    cfg: FileConfig,
    policy: Policy,
    dir: Option<Dir>,
    loaded: bool,
    open: names::StemMap<Open>,
    /// The last source written and its stem (records come in runs).
    last_stem: (Vec<u8>, String),
    committed: Option<Position>,
    taken: Option<Position>,
    sync_due: bool,
    last_sync: Instant,
    lost: LostCounter,
    line: Vec<u8>,
    /// Files a failure could not cut back to their saved size yet.
    cut: Vec<(String, u64)>,
    aside: Asides,
    /// Lines written since the last commit.
    lines: u64,
    /// Matching memlogd's buffer against the files (no usable state).
    reconcile: Option<Reconcile>,
    /// `-on-rotate`.
    hooks: Option<Arc<Hooks>>,
    /// SIGHUP and SIGUSR1: rotate every file (set by the main thread).
    rotate_all: Option<Arc<Wake>>,
    /// Armed triggers, by stem.
    armed: names::StemMap<Armed>,
    /// Records that would have armed a trigger past [`MAX_ARMED`].
    armed_over: u64,
    /// Stems of this output's files: opened, or named in the saved state
    /// (what a SIGHUP rotates).
    known: std::collections::BTreeSet<String>,
    /// The time of the record being written.
    line_ns: i64,
    /// Fsyncs rotated files and the directory off this thread (started
    /// at the first rotation).
    syncer: Option<Syncer>,
    /// The last second's text, for the next line's time.
    secs: timefmt::SecsWriter,
}

impl Files {
    pub fn new(cfg: FileConfig) -> Files {
        let policy = Policy {
            max_files: cfg.max_files,
            naming: cfg.naming,
            compress: cfg.compress,
            max_size: cfg.max_size,
            cap: cfg.max_source_bytes,
        };
        Files {
            aside: Asides::new(cfg.dir.clone()),
            cfg,
            policy,
            dir: None,
            loaded: false,
            open: names::StemMap::default(),
            last_stem: (Vec::new(), String::new()),
            committed: None,
            taken: None,
            sync_due: false,
            last_sync: Instant::now(),
            lost: LostCounter::new("files"),
            line: Vec::with_capacity(2048),
            cut: Vec::new(),
            lines: 0,
            reconcile: None,
            hooks: None,
            rotate_all: None,
            armed: names::StemMap::default(),
            armed_over: 0,
            known: std::collections::BTreeSet::new(),
            line_ns: 0,
            syncer: None,
            secs: timefmt::SecsWriter::default(),
        }
    }

    /// Runs `-on-rotate` through `hooks` after each rotation.
    pub fn with_hooks(mut self, hooks: Arc<Hooks>) -> Files {
        self.hooks = Some(hooks);
        self
    }

    /// Rotates every file when `wake` is requested (SIGHUP, SIGUSR1).
    pub fn with_rotate_all(mut self, wake: Arc<Wake>) -> Files {
        self.rotate_all = Some(wake);
        self
    }

    fn new_reconcile(&self, reason: String) -> Reconcile {
        let mut rc = Reconcile::new(reason);
        rc.naming = self.cfg.naming;
        rc
    }

    fn dir(&self) -> io::Result<&Dir> {
        self.dir
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "log directory not open"))
    }

    fn where_(&self, name: &str) -> String {
        self.cfg.dir.join(name).display().to_string()
    }

    /// Saves the state: `pos` and, for each open file, its size (the
    /// current size with `current`, else the saved one).
    fn save_state(&self, pos: Option<Position>, current: bool, sync: bool) -> io::Result<()> {
        let mut files: Vec<(String, u64)> = self
            .open
            .iter()
            .map(|(stem, o)| {
                (
                    format!("{stem}.log"),
                    if current { o.written } else { o.saved },
                )
            })
            .collect();
        files.sort();
        let mut armed: Vec<_> = self.armed.iter().map(|(stem, a)| a.save(stem)).collect();
        armed.sort_by(|a, b| a.stem.cmp(&b.stem));
        let st = State {
            position: pos,
            files,
            sent: None,
            armed,
        };
        self.dir()?
            .write_atomic(STATE_FILE, &st.encode(), sync)
            .map_err(|e| ctx(e, format!("saving {}", self.where_(STATE_FILE))))
    }

    /// Cuts `name` back to `size` if it is longer (and logwrite's own: a
    /// file that is not is replaced when it is opened).
    fn cut_back(&self, dir: &Dir, name: &str, size: u64) -> io::Result<()> {
        let what = || format!("cutting {} back to the saved size", self.where_(name));
        if let Some(f) = dir.open_own(name, true).map_err(|e| ctx(e, what()))? {
            if f.metadata().map_err(|e| ctx(e, what()))?.len() > size {
                f.set_len(size).map_err(|e| ctx(e, what()))?;
            }
        }
        Ok(())
    }

    /// Loads the saved state and cuts every file back to its saved size.
    fn load(&mut self, dir: &Dir) -> io::Result<Loaded> {
        dir.remove_stale_temps(STATE_FILE);
        let st = match dir.read_state(STATE_FILE) {
            Ok(None) => return Ok(Loaded::Missing),
            Ok(Some(data)) => State::decode(&data),
            Err(e) => Err(e.to_string()),
        };
        let st = match st {
            Ok(st) => st,
            Err(why) => return Ok(Loaded::Unusable(why)),
        };
        for (name, size) in &st.files {
            self.cut_back(dir, name, *size)?;
            if let Some(stem) = name.strip_suffix(".log") {
                self.known.insert(stem.to_owned());
            }
        }
        for a in &st.armed {
            self.armed.insert(a.stem.clone(), Armed::load(a));
        }
        self.committed = st.position;
        self.taken = st.position;
        Ok(Loaded::Usable)
    }

    /// The first open: puts the rotated files right, loads the state, and
    /// without a usable one starts matching against the files.
    fn start(&mut self, dir: &Dir) -> io::Result<()> {
        let rec = rotate::recover(dir).map_err(|e| {
            ctx(
                e,
                format!("checking the rotated files in {}", self.cfg.dir.display()),
            )
        })?;
        if rec.twins + rec.temps > 0 {
            say(
                "files",
                &format!(
                    "finished what a stopped logwrite left: removed {} rotated files whose .gz was complete \
                     and {} compression temporaries",
                    rec.twins, rec.temps
                ),
            );
        }
        let reason = match self.load(dir)? {
            Loaded::Usable => return Ok(()),
            Loaded::Missing if !rec.has_logs => return Ok(()),
            Loaded::Missing => "there is none".to_owned(),
            Loaded::Unusable(why) if !rec.has_logs => {
                say(
                    "files",
                    &format!(
                        "no usable saved position in {} ({why}), and no log files to match memlogd's \
                         buffer against: writing it from its oldest record",
                        self.where_(STATE_FILE)
                    ),
                );
                return Ok(());
            }
            Loaded::Unusable(why) => why,
        };
        self.reconcile = Some(self.new_reconcile(reason));
        Ok(())
    }

    /// After a successful commit.
    fn committed_now(&mut self) {
        self.lines = 0;
        self.aside.commit();
        if self.reconcile.as_mut().is_some_and(Reconcile::commit) {
            if let Some(rc) = self.reconcile.take() {
                say(
                    "files",
                    &format!(
                        "no usable saved position in {} ({}): matched memlogd's buffer against the last \
                         lines of each file, {} records taken as written{}",
                        self.where_(STATE_FILE),
                        rc.reason(),
                        rc.count(),
                        match rc.unmatched() {
                            0 => String::new(),
                            n => format!(
                                "; {n} files did not end in a record memlogd holds: all of their records written"
                            ),
                        }
                    ),
                );
            }
        }
    }

    /// Writes out `stem`'s buffer. A failure of that file alone drops what
    /// was buffered (cutting off what part of it reached the file) and
    /// gives the number of records dropped.
    fn write_out(&mut self, stem: &str) -> Result<(), (Fault, u64)> {
        let path = self.where_(&format!("{stem}.log"));
        let Some(o) = self.open.get_mut(stem) else {
            return Ok(());
        };
        if o.buf.is_empty() {
            return Ok(());
        }
        match o.file.write_all(&o.buf) {
            Ok(()) => {
                o.written += o.buf.len() as u64;
                o.buf.clear();
                o.buf_records = 0;
                o.unsynced = true;
                Ok(())
            }
            Err(e) => match Fault::of(e, WRITE_ERRORS) {
                Fault::File(e) => {
                    if let Err(e2) = o.file.set_len(o.written) {
                        let e2 = ctx(e2, format!("cutting {path} back after {e}"));
                        return Err((Fault::Output(e2), 0));
                    }
                    let n = o.buf_records;
                    o.buf.clear();
                    o.buf_records = 0;
                    self.lines = self.lines.saturating_sub(n);
                    Err((Fault::File(ctx(e, "writing it")), n))
                }
                Fault::Output(e) => Err((Fault::Output(ctx(e, format!("writing {path}"))), 0)),
            },
        }
    }

    /// Writes out the buffers of every open file.
    fn flush_all(&mut self) -> io::Result<()> {
        let stems: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| !o.buf.is_empty())
            .map(|(s, _)| s.clone())
            .collect();
        for stem in stems {
            match self.write_out(&stem) {
                Ok(()) => {}
                Err((Fault::File(e), n)) => self.aside.put(&stem, e.to_string(), n),
                Err((Fault::Output(e), _)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Flushes, saves the state with the position of the last record taken,
    /// and fsyncs if asked or due. True if lines were written since the
    /// last commit.
    fn commit_now(&mut self, force_sync: bool) -> io::Result<bool> {
        self.flush_all()?;
        let wrote = self.lines > 0;
        let due = self
            .cfg
            .fsync_interval
            .is_some_and(|i| self.last_sync.elapsed() >= i);
        let unsynced = self.open.values().any(|o| o.unsynced);
        let sync = force_sync || self.sync_due || (due && unsynced);
        let changed =
            self.taken != self.committed || self.open.values().any(|o| o.written != o.saved);
        if !changed && !sync {
            self.committed_now();
            return Ok(wrote);
        }
        if sync {
            // Rotated files first: data, then the state naming it.
            if let Some(sy) = &self.syncer {
                sy.drain();
            }
            for (stem, o) in &mut self.open {
                if o.unsynced {
                    o.file.sync_data().map_err(|e| {
                        ctx(
                            e,
                            format!(
                                "fsync {}",
                                self.cfg.dir.join(format!("{stem}.log")).display()
                            ),
                        )
                    })?;
                    o.unsynced = false;
                }
            }
        }
        // Against a server without sequence numbers there is no position,
        // but the sizes still matter to a later run.
        self.save_state(self.taken, true, sync)?;
        for o in self.open.values_mut() {
            o.saved = o.written;
        }
        self.committed = self.taken;
        if sync {
            self.sync_due = false;
            self.last_sync = Instant::now();
        }
        self.committed_now();
        Ok(wrote)
    }

    /// The fault of opening `name` failing with `e`.
    fn open_fault(&self, dir: &Dir, name: &str, e: io::Error) -> Fault {
        let file = match e.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => dir.kind(name).is_ok_and(|k| k.is_some()),
            Some(c) => OPEN_ERRORS.contains(&c),
            None => false,
        };
        if file {
            Fault::File(ctx(e, "opening it"))
        } else {
            Fault::Output(ctx(e, format!("opening {}", self.where_(name))))
        }
    }

    /// Makes sure `stem`'s file is open (and named in the state).
    fn ensure_open(&mut self, stem: &str) -> Result<(), Fault> {
        if self.open.contains_key(stem) {
            return Ok(());
        }
        if self.open.len() >= MAX_OPEN {
            self.commit_now(false).map_err(Fault::Output)?;
            self.open.clear();
        }
        let name = format!("{stem}.log");
        let dir = self.dir.as_ref().ok_or_else(|| {
            Fault::Output(io::Error::new(
                io::ErrorKind::NotFound,
                "log directory not open",
            ))
        })?;
        if let Some(rc) = &mut self.reconcile {
            // Its end is read before anything is written to it.
            rc.prepare(dir, stem)
                .map_err(|e| Fault::Output(ctx(e, format!("reading {}", self.where_(&name)))))?;
        }
        let lf = match dir.open_log(&name) {
            Ok(lf) => lf,
            Err(e) => return Err(self.open_fault(dir, &name, e)),
        };
        if let Some(why) = &lf.replaced {
            say(
                "files",
                &format!(
                    "{} {why}: replaced it with a new file (the other name keeps its content)",
                    self.where_(&name)
                ),
            );
        }
        self.open.insert(
            stem.to_owned(),
            Open {
                file: lf.file,
                written: lf.size,
                saved: lf.size,
                buf: Vec::with_capacity(4096),
                buf_records: 0,
                unsynced: false,
                last_ns: None,
                source: Vec::new(),
            },
        );
        if !self.known.contains(stem) {
            self.known.insert(stem.to_owned());
        }
        // Named in the state before anything is written to it.
        self.save_state(self.committed, false, false)
            .map_err(Fault::Output)
    }

    /// Rotates `stem`'s file for `reason`, then queues the hook. Everything
    /// taken so far is written, synced and committed first, so the renames
    /// never race the state. A trigger or signal rotation disarms the
    /// source's trigger (saved at once, so a restart does not fire it again).
    fn rotate(&mut self, stem: &str, reason: Reason) -> Result<(), Fault> {
        let (last_ns, source) = match self.open.get_mut(stem) {
            Some(o) => (o.last_ns, std::mem::take(&mut o.source)),
            None => (None, Vec::new()),
        };
        // Written and committed (the state saved, as after any batch); the
        // fsyncs are the syncer's, after the renames.
        self.commit_now(false).map_err(Fault::Output)?;
        let file = self.open.remove(stem).map(|o| o.file);
        let path = self.where_(&format!("{stem}.log"));
        if self.syncer.is_none() {
            self.syncer = Some(
                Syncer::new("files")
                    .map_err(|e| Fault::Output(ctx(e, "starting the fsync thread")))?,
            );
        }
        let dir = self.dir().map_err(Fault::Output)?;
        let dir_fd = dir
            .fd()
            .try_clone_to_owned()
            .map_err(|e| Fault::Output(ctx(e, "dup of the log directory")))?;
        let last_ns = match (last_ns, self.cfg.naming) {
            (Some(ns), _) => ns,
            (None, Naming::Time) => {
                last_line_time(dir, &format!("{stem}.log")).unwrap_or_else(timefmt::now_ns)
            }
            (None, Naming::Index) => 0,
        };
        let res = rotate::rotate(dir, stem, &self.policy, last_ns);
        // Whatever was renamed (all, some, or none), fsynced in the
        // background: the rotated file, then the directory.
        if let Some(sy) = &self.syncer {
            sy.sync(file, dir_fd, path.clone());
        }
        let done = res.map_err(|f| match f {
            Fault::File(e) => Fault::File(ctx(e, "rotating it")),
            Fault::Output(e) => Fault::Output(ctx(e, format!("rotating {path}"))),
        })?;
        if reason != Reason::Size && self.armed.remove(stem).is_some() {
            self.save_state(self.committed, false, false)
                .map_err(Fault::Output)?;
        }
        if let (Some(h), Some(name)) = (&self.hooks, done) {
            let index = (self.cfg.naming == Naming::Index).then(|| {
                let gz = name.ends_with(".gz");
                (stem.to_owned(), h.rotated(stem), gz, self.cfg.max_files)
            });
            h.run(Job {
                path: self.cfg.dir.join(name),
                source: source_env(&source, stem),
                reason,
                index,
            });
        }
        Ok(())
    }

    /// Bytes in `stem`'s file (written and buffered), if it exists.
    fn size_of(&self, stem: &str) -> u64 {
        match self.open.get(stem) {
            Some(o) => o.written + o.buf.len() as u64,
            None => self
                .dir
                .as_ref()
                .and_then(|d| d.kind(&format!("{stem}.log")).ok().flatten())
                .map_or(0, |k| match k {
                    crate::dir::Kind::Regular { size, .. } => size,
                    _ => 0,
                }),
        }
    }

    /// Rotates `stem`'s file for `reason` if it holds anything; a fault of
    /// that file puts it aside. Errors only for trouble of the whole output.
    fn rotate_if_any(&mut self, stem: &str, reason: Reason) -> io::Result<()> {
        if self.aside.skip(stem) || self.size_of(stem) == 0 {
            if self.armed.remove(stem).is_some() {
                self.save_state(self.committed, false, false)?;
            }
            return Ok(());
        }
        match self.rotate(stem, reason) {
            Ok(()) => Ok(()),
            Err(Fault::File(e)) => {
                if self.armed.remove(stem).is_some() {
                    self.save_state(self.committed, false, false)?;
                }
                self.aside.put(stem, e.to_string(), 0);
                Ok(())
            }
            Err(Fault::Output(e)) => Err(e),
        }
    }

    /// Fires the triggers that are due and, when asked (SIGHUP, SIGUSR1),
    /// rotates every file.
    fn run_timers(&mut self) -> io::Result<()> {
        if self.dir.is_none() {
            return Ok(());
        }
        if self.rotate_all.as_ref().is_some_and(|w| w.take()) {
            let stems: Vec<String> = self.known.iter().cloned().collect();
            for stem in stems {
                self.rotate_if_any(&stem, Reason::Signal)?;
            }
        }
        let now = Instant::now();
        let due: Vec<String> = self
            .armed
            .iter()
            .filter(|(_, a)| a.deadline() <= now)
            .map(|(s, _)| s.clone())
            .collect();
        for stem in due {
            self.rotate_if_any(&stem, Reason::Trigger)?;
            // Whatever happened, it is no longer armed.
            self.armed.remove(&stem);
        }
        Ok(())
    }

    /// Arms (or re-arms) `stem`'s trigger if `r` matches one.
    fn check_triggers(&mut self, stem: &str, r: &RecordRef<'_>) {
        let Some(t) = self.cfg.triggers.iter().find(|t| t.fires_on(r)) else {
            return;
        };
        if let Some(a) = self.armed.get_mut(stem) {
            a.again(t);
        } else if self.armed.len() >= MAX_ARMED {
            self.armed_over += 1;
            if self.armed_over == 1 || self.armed_over % 1000 == 0 {
                say(
                    "files",
                    &format!(
                        "{MAX_ARMED} triggers are armed already: not arming one for {stem} \
                         ({} such records so far)",
                        self.armed_over
                    ),
                );
            }
        } else {
            self.armed.insert(stem.to_owned(), Armed::new(t));
        }
    }

    /// Appends `self.line` to `stem`'s file, rotating first if it would
    /// pass the size limit. On a fault of that file, the number of its
    /// records lost with it.
    fn append(&mut self, stem: &str) -> Result<(), (Fault, u64)> {
        // The common case, one lookup: the file is open, no trigger is
        // armed, and the line fits.
        if self.armed.is_empty() {
            if let Some(o) = self.open.get_mut(stem) {
                let size = o.written + o.buf.len() as u64;
                if size + self.line.len() as u64 <= self.cfg.max_size {
                    let full = push_line(o, &self.line, self.line_ns);
                    self.lines += 1;
                    if full {
                        self.write_out(stem)?;
                    }
                    return Ok(());
                }
            }
        }
        self.ensure_open(stem).map_err(|f| (f, 1))?;
        let len = self.line.len() as u64;
        let size = self
            .open
            .get(stem)
            .map_or(0, |o| o.written + o.buf.len() as u64);
        // While a trigger is armed, the context stays in one file up to
        // twice the size.
        let max = if self.armed.contains_key(stem) {
            self.cfg.max_size.saturating_mul(2)
        } else {
            self.cfg.max_size
        };
        if size > 0 && size + len > max {
            self.rotate(stem, Reason::Size).map_err(|f| (f, 1))?;
            self.ensure_open(stem).map_err(|f| (f, 1))?;
        }
        let o = self
            .open
            .get_mut(stem)
            .ok_or_else(|| (Fault::Output(io::Error::other("file not open")), 0))?;
        let full = push_line(o, &self.line, self.line_ns);
        self.lines += 1;
        if full {
            self.write_out(stem)?;
        }
        Ok(())
    }

    /// Writes `self.line` to `stem`'s file, or skips it while that file is
    /// put aside. Errors only for trouble of the whole output.
    fn write_line(&mut self, stem: &str) -> io::Result<()> {
        if self.aside.skip(stem) {
            return Ok(());
        }
        match self.append(stem) {
            Ok(()) => {
                self.aside.written(stem);
                Ok(())
            }
            Err((Fault::File(e), n)) => {
                self.aside.put(stem, e.to_string(), n);
                Ok(())
            }
            Err((Fault::Output(e), _)) => Err(e),
        }
    }

    /// `TIME SOURCE MSG\n` into `self.line`. The source and the message
    /// are their exact bytes with control characters and invalid UTF-8
    /// escaped ([`memlog::escape`]): a message cannot end its line and
    /// forge another, nor carry terminal escapes into the file.
    fn format_line(&mut self, r: &RecordRef<'_>, ns: Option<i64>) {
        self.line.clear();
        line_at(&mut self.line, r, ns, &mut self.secs);
    }

    /// Writes `self.line` for `stem` (record `seq`), unless matching finds
    /// it already in the file.
    fn take_line(&mut self, stem: &str, seq: Option<u64>) -> io::Result<()> {
        if let Some(rc) = &mut self.reconcile {
            if rc.written(stem, seq) {
                return Ok(());
            }
        }
        self.write_line(stem)
    }

    fn took(&mut self, pos: Option<Position>) {
        if pos.is_some() {
            self.taken = pos;
        }
        if let Some(rc) = &mut self.reconcile {
            rc.taken(pos);
        }
    }
}

/// Buffers `line` (of a record at `ns`) for `o`'s file; true once the
/// buffer is due to be written out.
fn push_line(o: &mut Open, line: &[u8], ns: i64) -> bool {
    o.buf.extend_from_slice(line);
    o.buf_records += 1;
    o.last_ns = Some(ns);
    o.buf.len() >= BUF
}

/// Appends `r` as its line in a file: `TIME SOURCE MSG\n`, TIME in RFC 3339
/// seconds (as sent if it cannot be read), SOURCE and MSG their exact bytes
/// with control characters and invalid UTF-8 escaped ([`memlog::escape`]):
/// a message cannot end its line and forge another, nor carry terminal
/// escapes into the file.
pub fn line_of(out: &mut Vec<u8>, r: &RecordRef<'_>, secs: &mut timefmt::SecsWriter) {
    line_at(out, r, r.time_ns(), secs);
}

/// [`line_of`] with `r`'s time already parsed (`ns`).
fn line_at(out: &mut Vec<u8>, r: &RecordRef<'_>, ns: Option<i64>, secs: &mut timefmt::SecsWriter) {
    match ns {
        Some(ns) => secs.write(out, ns),
        None => escape::write(out, r.time.as_bytes()),
    }
    out.push(b' ');
    escape::write(out, r.source_bytes());
    out.push(b' ');
    escape::write(out, r.msg_bytes());
    out.push(b'\n');
}

/// The time at the start of the last line of the file `name` (for naming a
/// file rotated before any record of this run reached it).
fn last_line_time(dir: &Dir, name: &str) -> Option<i64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = dir.open_own(name, false).ok()??;
    let len = f.metadata().ok()?.len();
    let from = len.saturating_sub(8192);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut buf = Vec::new();
    f.take(8192).read_to_end(&mut buf).ok()?;
    let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let line = &body[start..];
    let end = line.iter().position(|&b| b == b' ')?;
    timefmt::parse_rfc3339(std::str::from_utf8(&line[..end]).ok()?)
}

/// `LOGWRITE_SOURCE` for a hook: the source's name, or (not known, or
/// holding a NUL, which the environment cannot) the file's stem.
fn source_env(source: &[u8], stem: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStrExt;
    if source.is_empty() || source.contains(&0) {
        stem.into()
    } else {
        std::ffi::OsStr::from_bytes(source).to_owned()
    }
}

/// Is `source` logwrite's own output (never written back: no loops)?
pub fn is_own(source: &[u8]) -> bool {
    source.starts_with(b"logwrite")
}

impl Sink for Files {
    fn name(&self) -> &str {
        "files"
    }

    fn open(&mut self) -> io::Result<()> {
        if self.dir.is_some() {
            return Ok(());
        }
        let dir = Dir::open(&self.cfg.dir).map_err(|e| {
            ctx(
                e,
                format!("opening log directory {}", self.cfg.dir.display()),
            )
        })?;
        if !self.loaded {
            self.start(&dir)?;
            self.loaded = true;
        }
        // What the last failure wrote past the saved state, and could not
        // remove then, goes now (before it would be written again).
        while let Some((name, size)) = self.cut.last() {
            self.cut_back(&dir, name, *size)?;
            self.cut.pop();
        }
        self.dir = Some(dir);
        // A rotation asked for, or a trigger due, while memlogd was away.
        self.run_timers()
    }

    fn deadline(&self) -> Option<Instant> {
        self.armed.values().map(Armed::deadline).min()
    }

    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        self.rotate_all.as_ref().map(|w| w.fd())
    }

    fn timers(&mut self) -> io::Result<()> {
        self.run_timers()
    }

    fn resume(&self) -> Option<Position> {
        self.committed
    }

    fn narrow(&self, req: &mut Request) {
        self.cfg.select.narrow(req);
    }

    fn hello(&mut self, server: Option<(u64, u64, u64)>) {
        let state = self.where_(STATE_FILE);
        match (server, &mut self.reconcile) {
            (Some((instance, first, next)), Some(rc)) => {
                let Some(dir) = &self.dir else { return };
                let select = &self.cfg.select;
                let mut line = |r: &RecordRef<'_>| {
                    if is_own(r.source_bytes()) || !select.matches(r) {
                        return None;
                    }
                    let mut v = Vec::new();
                    line_of(&mut v, r, &mut memlog::timefmt::SecsWriter::default());
                    Some((names::stem(r.source_bytes()), v))
                };
                rc.hello(instance, first, next, &self.cfg.socket, dir, &mut line);
            }
            (None, Some(rc)) => {
                // LinuxKit's memlogd: no positions, the buffer is written
                // whole (as its own logwrite does; said once by the loop).
                if rc.reason() != "there is none" {
                    say(
                        "files",
                        &format!("no usable saved position in {state} ({})", rc.reason()),
                    );
                }
                self.reconcile = None;
            }
            _ => {}
        }
    }

    fn position_ahead(&mut self, saved: Position, next: u64) {
        let reached = match next {
            0 => "has no record yet".to_owned(),
            n => format!("has only reached record {}", n - 1),
        };
        self.committed = None;
        self.taken = None;
        self.reconcile = Some(self.new_reconcile(format!(
            "it names record {} of this memlogd, which {reached}",
            saved.seq
        )));
    }

    fn record(&mut self, r: &RecordRef<'_>, pos: Option<Position>) -> io::Result<()> {
        if !is_own(r.source_bytes()) && self.cfg.select.matches(r) {
            if self
                .cfg
                .fsync_severity
                .is_some_and(|min| r.severity_or_default() <= min)
            {
                self.sync_due = true;
            }
            let ns = r.time_ns();
            self.format_line(r, ns);
            self.line_ns = ns.unwrap_or_else(timefmt::now_ns);
            let src = r.source_bytes();
            if self.last_stem.0 != src || self.last_stem.1.is_empty() {
                self.last_stem = (src.to_vec(), names::stem(src));
            }
            let stem = std::mem::take(&mut self.last_stem.1);
            let res = self.take_line(&stem, pos.map(|p| p.seq));
            if res.is_ok() {
                // The source's exact name, for the hook (only hooks and
                // triggers read it).
                if self.hooks.is_some() || !self.cfg.triggers.is_empty() {
                    if let Some(o) = self.open.get_mut(&stem) {
                        if o.source.is_empty() {
                            o.source = src.to_vec();
                        }
                    }
                }
                if !self.cfg.triggers.is_empty() {
                    self.check_triggers(&stem, r);
                }
            }
            self.last_stem.1 = stem;
            res?;
        }
        self.took(pos);
        Ok(())
    }

    fn lost(&mut self, count: u64, pos: Option<Position>) -> io::Result<()> {
        self.lost.add(count);
        let now = timefmt::now_ns();
        let msg = format!(
            "{count} records lost: memlogd overwrote them before logwrite wrote them to {}",
            self.cfg.dir.display()
        );
        let note = Record {
            time: timefmt::rfc3339_nano(now),
            source: "memlogd".into(),
            msg,
            ..Record::default()
        };
        self.format_line(&note.as_ref(), Some(now));
        self.line_ns = now;
        self.write_line(&names::stem(b"memlogd"))?;
        self.took(pos);
        Ok(())
    }

    fn commit(&mut self) -> io::Result<bool> {
        self.commit_now(false)
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.dir.is_none() {
            // Failed, and nothing taken since.
            return Ok(());
        }
        // Whatever the fsync policy, what is saved at exit is on disk.
        let r = self.commit_now(true);
        self.lost.flush(true);
        r.map(|_| ())
    }

    fn tick(&mut self) -> io::Result<()> {
        if let Some(d) = &self.dir {
            if !d.exists() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("log directory {} was removed", self.cfg.dir.display()),
                ));
            }
        }
        self.lost.flush(false);
        self.aside.tick();
        self.commit_now(false).map(|_| ())
    }

    fn fail(&mut self) {
        for (stem, o) in &self.open {
            // A failed write may have left part of its bytes behind.
            let size = o.file.metadata().map(|m| m.len());
            if size.map_or(true, |s| s > o.saved) && o.file.set_len(o.saved).is_err() {
                self.cut.push((format!("{stem}.log"), o.saved));
            }
        }
        self.open.clear();
        self.dir = None;
        self.taken = self.committed;
        self.sync_due = false;
        self.lines = 0;
        self.aside.fail();
        if let Some(rc) = &mut self.reconcile {
            rc.fail();
        }
    }
}
