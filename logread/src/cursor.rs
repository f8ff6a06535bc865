//! `--cursor-file`: the position of the last record handled, as
//! `INSTANCE:SEQ` (memlogd's instance id in hex, a sequence number), read at
//! start and replaced as records are printed: written to a temporary file
//! beside it, then renamed over it, so a reader of the file (or a logread
//! killed at any moment) sees the old position or the new one, never half.
//! It is written only after the records up to it reached stdout: a crash
//! may print a record again, never skip one.

use memlog::proto::Position;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The cursor file of one run.
#[derive(Debug)]
pub struct CursorFile {
    path: PathBuf,
    tmp: PathBuf,
    written: Option<Position>,
}

impl CursorFile {
    pub fn new(path: &Path) -> CursorFile {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        CursorFile {
            path: path.to_path_buf(),
            tmp: PathBuf::from(tmp),
            written: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved position; `None` if the file does not exist or is empty.
    pub fn load(&mut self) -> Result<Option<Position>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        if text.trim().is_empty() {
            return Ok(None);
        }
        let p: Position = text
            .parse()
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.written = Some(p);
        Ok(Some(p))
    }

    /// Saves `p` unless it is what the file already holds.
    pub fn save(&mut self, p: Position) -> io::Result<()> {
        if self.written == Some(p) {
            return Ok(());
        }
        let res = (|| {
            let mut f = std::fs::File::create(&self.tmp)?;
            f.write_all(format!("{p}\n").as_bytes())?;
            drop(f);
            std::fs::rename(&self.tmp, &self.path)
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(io::Error::new(
                e.kind(),
                format!("cannot save the position in {}: {e}", self.path.display()),
            ));
        }
        self.written = Some(p);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load() {
        let dir = std::env::temp_dir().join(format!("logread-cursor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c");
        let _ = std::fs::remove_file(&path);
        let mut c = CursorFile::new(&path);
        assert_eq!(c.load(), Ok(None));
        let p = Position {
            instance: 0xab,
            seq: 9,
        };
        c.save(p).expect("save");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "00000000000000ab:9\n"
        );
        assert_eq!(CursorFile::new(&path).load(), Ok(Some(p)));
        std::fs::write(&path, "garbage").expect("write");
        assert!(CursorFile::new(&path).load().is_err());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&dir).expect("ls").flatten().collect();
        assert_eq!(names.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
