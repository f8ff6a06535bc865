//! The fsync of each rotation, off the output's thread.
//!
//! A rotation used to stop the file output for four fsyncs in a row (the
//! file, the state, the directory twice) while memlogd could only fill the
//! socket's few hundred KiB: 40% of logwrite's time at the default 1 MiB
//! rotation. Now the output writes what it took, saves the state (as after
//! any batch), renames, and hands the rotated file and the directory to
//! this thread, which fdatasyncs the file and then fsyncs the directory.
//! Rotation still always fsyncs; the output just does not wait for it.
//!
//! What that changes, on a power loss only (a crash of logwrite loses
//! nothing either way: the kernel holds what was written): the few
//! milliseconds after a rotation are covered as any other moment between
//! two fsyncs is, by `-fsync-interval`. The queue is bounded
//! ([`QUEUE`] rotations): a disk slower than the rotations makes the
//! output wait, as it did before, instead of piling up descriptors.
//! [`Syncer::drain`] waits for everything queued (at exit, and before an
//! interval or severity fsync, so the order "data, then the state naming
//! it" holds at every sync point). A failed fsync is said (at most once
//! per 10 s, with a count), naming the file; the data may then not be on
//! disk, which is all an fsync error can tell.

use crate::report::Episode;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};

/// Rotations queued at most before a rotation waits.
pub const QUEUE: usize = 16;

enum Job {
    /// fdatasync `file` (if any, named `what`), then fsync `dir`.
    Sync {
        file: Option<File>,
        dir: OwnedFd,
        what: String,
    },
    /// Answer once everything before it is done.
    Barrier(SyncSender<()>),
}

/// The fsync thread of one file output.
pub struct Syncer {
    tx: SyncSender<Job>,
    trouble: Arc<Mutex<Episode>>,
}

impl Syncer {
    /// Starts the thread (it ends when the `Syncer` is dropped).
    pub fn new(name: &str) -> std::io::Result<Syncer> {
        let (tx, rx) = sync_channel(QUEUE);
        let trouble = Arc::new(Mutex::new(Episode::new(
            name,
            "cannot fsync a rotated file",
        )));
        let t = Arc::clone(&trouble);
        std::thread::Builder::new()
            .name("logwrite-fsync".into())
            .spawn(move || run(&rx, &t))?;
        Ok(Syncer { tx, trouble })
    }

    /// Queues the fsync of a rotated `file` (`what`: its path, for a
    /// message) and then of `dir`; waits only while [`QUEUE`] are queued.
    pub fn sync(&self, file: Option<File>, dir: OwnedFd, what: String) {
        if let Err(e) = self.tx.send(Job::Sync { file, dir, what }) {
            // The thread is gone (it never is while the Syncer lives): do
            // it here.
            if let Job::Sync { file, dir, what } = e.0 {
                do_sync(file.as_ref(), &dir, &what, &self.trouble);
            }
        }
    }

    /// Waits until everything queued so far is fsynced.
    pub fn drain(&self) {
        let (tx, rx) = sync_channel(1);
        if self.tx.send(Job::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

fn do_sync(file: Option<&File>, dir: &OwnedFd, what: &str, trouble: &Mutex<Episode>) {
    let r = match file {
        Some(f) => f
            .sync_data()
            .map_err(|e| format!("fsync {what}: {e}; its records may not be on disk")),
        None => Ok(()),
    }
    .and_then(|()| {
        nix::unistd::fsync(dir)
            .map_err(|e| format!("fsync of the log directory after rotating {what}: {e}"))
    });
    let mut t = trouble.lock().unwrap_or_else(PoisonError::into_inner);
    match r {
        Ok(()) => t.recover("fsync works again"),
        Err(why) => t.fail(&why),
    }
}

fn run(rx: &Receiver<Job>, trouble: &Mutex<Episode>) {
    while let Ok(job) = rx.recv() {
        match job {
            Job::Sync { file, dir, what } => do_sync(file.as_ref(), &dir, &what, trouble),
            Job::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn queued_syncs_are_done_by_drain_and_files_stay_intact() {
        let d = std::env::temp_dir().join(format!("logwrite-syncer-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        let s = Syncer::new("files").expect("syncer");
        for i in 0..(QUEUE * 3) {
            let p = d.join(format!("f{i}"));
            let mut f = File::create(&p).expect("create");
            f.write_all(b"line\n").expect("write");
            let dir = OwnedFd::from(File::open(&d).expect("open dir"));
            s.sync(Some(f), dir, p.display().to_string());
        }
        s.drain();
        for i in 0..(QUEUE * 3) {
            assert_eq!(
                std::fs::read(d.join(format!("f{i}"))).expect("read"),
                b"line\n"
            );
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
