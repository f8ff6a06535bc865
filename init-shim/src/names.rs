//! Log names and the files they become. A name given to `run`, `fifo` or
//! `dump` is a memlogd source and also a file name (fallback files, FIFOs),
//! so it is checked once, here, before it is used for either.

use memlog::safefs;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// Longest name accepted: `NAME.out.log` must stay a valid file name (255
/// bytes) and `NAME.out` within memlogd's default `-max-name-len` (256).
pub const MAX_NAME: usize = 200;

/// Checks that `name` can be a source and a file name in a log directory:
/// not empty, not `.` or `..`, no `/`, no control characters, not too long.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a log name must not be empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "log name of {} bytes is too long (at most {MAX_NAME})",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid log name"));
    }
    if name.contains('/') {
        return Err(format!(
            "log name {name:?} must not contain '/' (it becomes a file name)"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "log name {name:?} must not contain control characters"
        ));
    }
    Ok(())
}

/// The default name for a command: its base name, as LinuxKit's wrapper uses.
pub fn default_for(cmd: &Path) -> String {
    cmd.file_name()
        .unwrap_or(cmd.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// `DIR/SOURCE.log`: where LinuxKit's init (without memlogd) and logwrite
/// (with it) keep the records of `source`.
pub fn log_file(dir: &Path, source: &str) -> PathBuf {
    dir.join(format!("{source}.log"))
}

/// Opens `DIR/SOURCE.log` for appending (creating the directory and the
/// file as needed). As logwrite does, it appends only to a regular file
/// with one link: a hard link to another file, or a FIFO, planted at the
/// name is replaced by a new file (said on stderr), and a symlink is
/// refused (`memlog::safefs::open_log`).
pub fn open_log_file(dir: &Path, source: &str) -> io::Result<File> {
    std::fs::create_dir_all(dir)?;
    let d = safefs::open_dir(dir)?;
    let name = format!("{source}.log");
    let lf = safefs::open_log(d.as_fd(), std::ffi::OsStr::new(&name), 0o644)?;
    if let Some(why) = &lf.replaced {
        eprintln!(
            "init-shim: {} {why}: replaced it with a new file",
            log_file(dir, source).display()
        );
    }
    Ok(lf.file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_leave_the_directory_are_refused() {
        for bad in ["", ".", "..", "a/b", "../x", "a\nb", "a\0b"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert!(check(&"x".repeat(MAX_NAME + 1)).is_err());
        for good in ["onboot.001-dhcpcd", "getty", "a;b", "x..y", ".hidden"] {
            assert_eq!(check(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn default_name_is_the_base_name() {
        assert_eq!(default_for(Path::new("/sbin/dhcpcd")), "dhcpcd");
        assert_eq!(default_for(Path::new("echo")), "echo");
        assert_eq!(default_for(Path::new("/")), "/");
    }

    #[test]
    fn log_files_append() {
        let dir = std::env::temp_dir().join(format!("init-shim-names-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for line in ["one\n", "two\n"] {
            let mut f = open_log_file(&dir.join("sub"), "svc.out").expect("open");
            io::Write::write_all(&mut f, line.as_bytes()).expect("write");
        }
        let got = std::fs::read_to_string(dir.join("sub/svc.out.log")).expect("read");
        assert_eq!(got, "one\ntwo\n");
        // A hard link to another file at the name is never written through.
        std::fs::write(dir.join("victim"), "precious").expect("write");
        std::fs::hard_link(dir.join("victim"), dir.join("sub/x.log")).expect("link");
        let mut f = open_log_file(&dir.join("sub"), "x").expect("open");
        io::Write::write_all(&mut f, b"mine\n").expect("write");
        assert_eq!(
            std::fs::read_to_string(dir.join("victim")).expect("read"),
            "precious"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("sub/x.log")).expect("read"),
            "mine\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
