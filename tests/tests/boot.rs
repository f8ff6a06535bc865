//! The real thing: boot Debian's kernel (`linux-image-amd64`) under
//! `qemu-system-x86_64` in software emulation, with an initramfs made here:
//! BusyBox (`busybox-static`), memlog's static release binaries (built by
//! `scripts/build-static`), and an init script that does what LinuxKit's
//! init block does: mount the file systems, start memlogd through
//! the image's `/etc/init.d/002-memlogd` (`init-shim start` with /dev/log
//! and the kernel log), run onboot
//! commands through `init-shim run`, start logwrite and a service that logs,
//! log through /dev/log with BusyBox `logger`. The guest then checks
//! itself and prints `MEMLOG-BOOT: PASS` or `MEMLOG-BOOT: FAIL: why` on the
//! serial console before powering off. This side fails on FAIL, on a
//! timeout, or without a verdict, and shows the console.
//!
//! Without qemu, a kernel or BusyBox it prints SKIP and the reason, except
//! in CI (`CI=true`), where that is a failure (`.ci/run` installs them).

use memlog_tests::{workspace_dir, TempDir};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The whole boot, from qemu's start to its exit.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const VERDICT: &str = "MEMLOG-BOOT: ";
const BINARIES: [&str; 4] = ["memlogd", "logread", "logwrite", "init-shim"];

/// The guest's /init. `wait_for` bounds every wait, so the guest always
/// reaches a verdict well within [`BOOT_TIMEOUT`].
const INIT: &str = r#"#!/bin/busybox sh
# memlog boot test: what LinuxKit's init block does, then checks.
/bin/busybox --install -s /bin
export PATH=/usr/bin:/bin
# BusyBox's shell runs its own applets before looking at PATH, and it has a
# logread of its own: ours is called by its path.
logread=/usr/bin/logread
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /var
mkdir -p /var/log
ln -s /run /var/run

say() { echo "memlog-boot: $*"; }
fail() {
    echo "MEMLOG-BOOT: FAIL: $*"
    echo "--- logread, last 40 records ---"
    $logread 2>&1 | tail -n 40
    echo "--- /var/log ---"
    ls -l /var/log 2>&1
    poweroff -f
}
# wait_for SECONDS WHAT COMMAND...: retries COMMAND every 0.1 s.
wait_for() {
    n=$(($1 * 10)); what=$2; shift 2
    while ! "$@" >/dev/null 2>&1; do
        n=$((n - 1))
        [ "$n" -gt 0 ] || fail "timed out waiting for $what"
        usleep 100000
    done
}
in_log() { $logread | grep -qF -- "$1"; }

say "kernel $(uname -r); init block: /etc/init.d/* (memlog's 002-memlogd runs init-shim start)"
for s in /etc/init.d/*; do
    "$s" || fail "$s failed"
done
pid=$(pidof memlogd) || fail "no memlogd running after /etc/init.d"
tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "-fd-log 3 -fd-query 4 .*syslog /dev/log --kmsg --max-lines 20000" \
    || fail "memlogd runs as: $(tr '\0' ' ' < "/proc/$pid/cmdline")"
for s in /var/run/linuxkit-external-logging.sock /var/run/memlogdq.sock /dev/log; do
    [ -S "$s" ] || fail "$s is not a socket when init-shim start returned"
done
if init-shim start -syslog /dev/log -kmsg >/dev/null 2>/tmp/again; then
    fail "a second init-shim start was not refused"
fi
grep -q "already running" /tmp/again || fail "second start said: $(cat /tmp/again)"

say "onboot, each dumped to the console after it, as LinuxKit's init means to"
init-shim run -n onboot.001-hello -- sh -c 'echo hello from onboot; echo onboot warning >&2' \
    || fail "onboot.001-hello failed"
init-shim dump onboot.001-hello.out onboot.001-hello
init-shim run -n onboot.002-uname -- uname -sr || fail "onboot.002-uname failed"
init-shim dump onboot.002-uname.out
init-shim run -n onboot.003-status -- sh -c 'exit 7'
[ $? -eq 7 ] || fail "init-shim run did not pass the exit status on"

say "services"
if [ -x /usr/bin/logwrite ]; then
    init-shim run -n logwrite -- logwrite -max-log-size 1024 -max-log-files 200 &
fi
init-shim run -n ticker -- sh -c \
    'i=0; while :; do echo "tick $i: the quick brown fox jumps over the lazy dog"; i=$((i+1)); usleep 20000; done' &
fifo=$(init-shim fifo fifosvc.out) || fail "init-shim fifo failed"
[ -p "$fifo" ] || fail "init-shim fifo gave $fifo, not a FIFO"
echo "hello through a fifo" > "$fifo"
logger -p user.warning -t bootcheck "syslog message at severity warning"

say "checks"
wait_for 30 "onboot stdout in memlogd" in_log ";onboot.001-hello.out;hello from onboot"
wait_for 10 "onboot stderr in memlogd" in_log ";onboot.001-hello;onboot warning"
wait_for 10 "onboot.002 in memlogd" in_log ";onboot.002-uname.out;Linux "
got=$(init-shim dump -o plain onboot.001-hello.out)
[ "$got" = "hello from onboot" ] || fail "init-shim dump onboot.001-hello.out printed: $got"
wait_for 10 "the FIFO service in memlogd" in_log ";fifosvc.out;hello through a fifo"
wait_for 10 "the service in memlogd" in_log ";ticker.out;tick 3:"
sev() { init-shim dump -o json bootcheck | grep -F '"msg":"syslog message at severity warning","severity":4,'; }
wait_for 10 "the syslog record with severity 4 (warning)" sev
say "syslog record: $(init-shim dump -o json bootcheck)"
wait_for 10 "the kernel log in memlogd" in_log ";kmsg;Linux version "
for s in memlogd onboot.001-hello.out onboot.001-hello onboot.002-uname.out ticker.out \
    fifosvc.out bootcheck kmsg; do
    in_log ";$s;" || fail "logread does not show source $s"
done
say "logread shows every source: $($logread | cut -d';' -f2 | sort -u | tr '\n' ' ')"
if [ -x /usr/bin/logwrite ]; then
    wait_for 60 "/var/log/ticker.out.log.0 (logwrite -max-log-size 1024)" \
        test -e /var/log/ticker.out.log.0
    wait_for 30 "/var/log/onboot.001-hello.out.log" \
        grep -q "onboot.001-hello.out hello from onboot" /var/log/onboot.001-hello.out.log
    wait_for 30 "/var/log/kmsg.log" test -e /var/log/kmsg.log
    # Rotated every 1024 bytes: the boot's first lines are in a rotated file.
    kmsg_has() { cat /var/log/kmsg.log.* /var/log/kmsg.log 2>/dev/null | grep -q "kmsg Linux version "; }
    wait_for 30 "'Linux version' in /var/log/kmsg.log and its rotations" kmsg_has
    say "$(ls /var/log | wc -l) files in /var/log, kmsg.log and $(ls /var/log/kmsg.log.* | wc -l) rotations"
    lw=yes
else
    lw="skipped (no logwrite in this build)"
fi
echo "MEMLOG-BOOT: PASS (logwrite checks: $lw)"
poweroff -f
"#;

/// A cpio archive in the "newc" format the kernel unpacks as initramfs.
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn new() -> Cpio {
        Cpio {
            out: Vec::new(),
            ino: 0,
        }
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len(),
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0
        );
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[], (0, 0));
    }

    fn file(&mut self, name: &str, data: &[u8], perm: u32) {
        self.entry(name, 0o100000 | perm, data, (0, 0));
    }

    fn char_dev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020600, &[], (major, minor));
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.out
    }
}

/// True when `path` is an ELF executable without an interpreter
/// (`PT_INTERP`): statically linked.
fn is_static_elf(path: &Path) -> Result<bool, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    if data.get(..5) != Some(b"\x7fELF\x02") {
        return Err(format!("{} is not a 64-bit ELF file", path.display()));
    }
    let bad = || format!("{}: truncated ELF header", path.display());
    let phoff = u64_at(0x20).ok_or_else(bad)? as usize;
    let phentsize = u16_at(0x36).ok_or_else(bad)? as usize;
    let phnum = u16_at(0x38).ok_or_else(bad)? as usize;
    for i in 0..phnum {
        const PT_INTERP: u32 = 3;
        if u32_at(phoff + i * phentsize).ok_or_else(bad)? == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What the boot needs from the machine.
struct Tools {
    qemu: PathBuf,
    kernel: PathBuf,
    busybox: PathBuf,
    gzip: PathBuf,
}

fn in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn find_tools() -> Result<Tools, String> {
    let qemu = in_path("qemu-system-x86_64")
        .ok_or("qemu-system-x86_64 not found (Debian package qemu-system-x86)")?;
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .map_err(|e| format!("/boot: {e} (Debian package linux-image-amd64)"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    kernels.sort();
    let kernel = kernels
        .pop()
        .ok_or("no /boot/vmlinuz-* (Debian package linux-image-amd64)")?;
    std::fs::File::open(&kernel).map_err(|e| format!("{}: {e}", kernel.display()))?;
    let busybox = PathBuf::from("/bin/busybox");
    if !is_static_elf(&busybox).map_err(|e| format!("{e} (Debian package busybox-static)"))? {
        return Err("/bin/busybox is not static (Debian package busybox-static)".into());
    }
    let gzip = in_path("gzip").ok_or("gzip not found")?;
    Ok(Tools {
        qemu,
        kernel,
        busybox,
        gzip,
    })
}

/// Builds the static binaries with the repository's own command.
fn build_static(out: &Path) -> Vec<PathBuf> {
    let script = workspace_dir().join("scripts/build-static");
    let res = Command::new(&script)
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    let report = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "scripts/build-static failed ({}):\n{report}\n{}",
        res.status,
        String::from_utf8_lossy(&res.stderr)
    );
    println!("scripts/build-static:\n{report}");
    let bins: Vec<PathBuf> = BINARIES
        .iter()
        .map(|b| out.join(b))
        .filter(|p| p.exists())
        .collect();
    for b in &bins {
        assert!(
            is_static_elf(b).expect("an ELF binary"),
            "{} is not static",
            b.display()
        );
    }
    bins
}

fn initramfs(tools: &Tools, bins: &[PathBuf], dest: &Path) {
    let mut c = Cpio::new();
    for d in [
        "bin", "usr", "usr/bin", "proc", "sys", "dev", "run", "tmp", "var", "etc", "root",
    ] {
        c.dir(d);
    }
    // The kernel opens /dev/console for init before devtmpfs is mounted.
    c.char_dev("dev/console", 5, 1);
    let busybox = std::fs::read(&tools.busybox).expect("read busybox");
    c.file("bin/busybox", &busybox, 0o755);
    for b in bins {
        let name = b.file_name().and_then(|n| n.to_str()).expect("name");
        let data = std::fs::read(b).expect("read binary");
        c.file(&format!("usr/bin/{name}"), &data, 0o755);
    }
    c.file("init", INIT.as_bytes(), 0o755);
    // The init.d script of the image (Dockerfile), with extra memlogd flags.
    let initd = std::fs::read(workspace_dir().join("packaging/etc/init.d/002-memlogd"))
        .expect("read packaging/etc/init.d/002-memlogd");
    c.dir("etc/init.d");
    c.file("etc/init.d/002-memlogd", &initd, 0o755);
    c.file("etc/memlogd.flags", b"-max-lines 20000\n", 0o644);
    let cpio = c.finish();
    let mut gz = Command::new(&tools.gzip)
        .args(["-c", "-n", "-6"])
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(dest).expect("create initramfs"))
        .spawn()
        .expect("spawn gzip");
    let mut stdin = gz.stdin.take().expect("gzip stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&cpio));
    writer.join().expect("writer").expect("write to gzip");
    assert!(gz.wait().expect("gzip").success(), "gzip failed");
}

/// Boots and returns the console text and the verdict line (if any).
fn boot(tools: &Tools, initrd: &Path) -> (String, Option<String>, bool) {
    let mut qemu = Command::new(&tools.qemu)
        .args([
            "-nographic",
            "-no-reboot",
            "-m",
            "512",
            "-accel",
            "tcg",
            "-nic",
            "none",
        ])
        .arg("-kernel")
        .arg(&tools.kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn qemu");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    for r in [
        Box::new(qemu.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        Box::new(qemu.stderr.take().expect("stderr")),
    ] {
        let tx = tx.clone();
        let mut r = r;
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut deadline = Instant::now() + BOOT_TIMEOUT;
    let mut console = Vec::new();
    let mut verdict = None;
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => {
                console.extend_from_slice(&chunk);
                if verdict.is_none() {
                    // Complete lines only: a chunk may end mid-line.
                    verdict = String::from_utf8_lossy(&console)
                        .split_inclusive('\n')
                        .find(|l| l.contains(VERDICT) && l.ends_with('\n'))
                        .map(|l| l.trim().to_owned());
                    if verdict.is_some() {
                        // poweroff -f follows at once; do not wait long for it.
                        deadline = deadline.min(Instant::now() + Duration::from_secs(30));
                    }
                }
            }
            // Both streams closed: qemu is gone.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = verdict.is_none();
                break;
            }
        }
    }
    let _ = qemu.kill();
    let _ = qemu.wait();
    let text = String::from_utf8_lossy(&console).replace('\r', "");
    (text, verdict, timed_out)
}

#[test]
fn boots_a_minimal_image_with_memlog_under_qemu() {
    let tools = match find_tools() {
        Ok(t) => t,
        Err(why) => {
            memlog_tests::skip(&why);
            return;
        }
    };
    let dir = TempDir::new("boot");
    let t0 = Instant::now();
    let bins = build_static(&dir.join("bin"));
    let with_logwrite = workspace_dir().join("logwrite/Cargo.toml").exists();
    assert_eq!(
        bins.len(),
        if with_logwrite { 4 } else { 3 },
        "binaries built: {bins:?}"
    );
    let built = t0.elapsed();
    let initrd = dir.join("initramfs.gz");
    initramfs(&tools, &bins, &initrd);
    let t1 = Instant::now();
    let (console, verdict, timed_out) = boot(&tools, &initrd);
    let booted = t1.elapsed();
    let show = format!(
        "kernel {}, {:.1?} building, {:.1?} booting\n--- console ---\n{console}--- end of console ---",
        tools.kernel.display(),
        built,
        booted
    );
    assert!(!timed_out, "no verdict within {BOOT_TIMEOUT:?}\n{show}");
    let Some(verdict) = verdict else {
        panic!("the guest gave no verdict\n{show}");
    };
    assert!(verdict.contains("MEMLOG-BOOT: PASS"), "{verdict}\n{show}");
    let want = if with_logwrite {
        "(logwrite checks: yes)"
    } else {
        "(logwrite checks: skipped (no logwrite in this build))"
    };
    assert!(verdict.ends_with(want), "{verdict}\n{show}");
    let guest: Vec<&str> = console
        .lines()
        .filter_map(|l| l.find("memlog-boot:").map(|i| &l[i..]))
        .collect();
    println!(
        "{}\n{verdict}\n{:.1?} building, {:.1?} booting",
        guest.join("\n"),
        built,
        booted
    );
}
