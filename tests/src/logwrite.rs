//! Helpers for the logwrite tests and benchmark: run `logwrite` against a
//! test memlogd, read the files it writes, run a real rsyslogd on loopback.

use crate::{bin, process_alive, signal, wait_for, Memlogd, TempDir, TIMEOUT};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `logwrite`, killed on drop. Its stderr goes to a file outside
/// the log directory (which tests remove or make read-only).
pub struct Logwrite {
    child: Option<Child>,
    stderr: PathBuf,
    args: Vec<String>,
}

/// `-socket SOCKET -log-dir LOGDIR EXTRA...`.
fn base_args(socket: &Path, log_dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "-socket".to_string(),
        socket.display().to_string(),
        "-log-dir".to_string(),
        log_dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

impl Logwrite {
    /// Starts `logwrite -socket SOCKET -log-dir LOGDIR EXTRA...`; stderr goes
    /// to `err_dir/logwrite-N.err`.
    pub fn start(socket: &Path, log_dir: &Path, err_dir: &TempDir, extra: &[&str]) -> Logwrite {
        let args = base_args(socket, log_dir, extra);
        Self::start_args(err_dir, args)
    }

    /// Starts `logwrite ARGS...`.
    pub fn start_args(err_dir: &TempDir, args: Vec<String>) -> Logwrite {
        Self::start_with(err_dir, args, |_| {})
    }

    /// Like [`Logwrite::start_args`], letting `setup` change the command first.
    pub fn start_with(
        err_dir: &TempDir,
        args: Vec<String>,
        setup: impl FnOnce(&mut Command),
    ) -> Logwrite {
        Self::start_program(&bin("logwrite"), err_dir, args, setup)
    }

    /// Like [`Logwrite::start`], running the logwrite binary at `program`
    /// (a benchmark comparing two builds).
    pub fn start_bin(
        program: &Path,
        socket: &Path,
        log_dir: &Path,
        err_dir: &TempDir,
        extra: &[&str],
    ) -> Logwrite {
        let args = base_args(socket, log_dir, extra);
        Self::start_program(program, err_dir, args, |_| {})
    }

    fn start_program(
        program: &Path,
        err_dir: &TempDir,
        args: Vec<String>,
        setup: impl FnOnce(&mut Command),
    ) -> Logwrite {
        let n = std::fs::read_dir(err_dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let stderr = err_dir.join(format!("logwrite-{n}.err"));
        let mut cmd = Command::new(program);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        setup(&mut cmd);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Logwrite {
            child: Some(child),
            stderr,
            args,
        }
    }

    /// Starts another logwrite with the same arguments (after this one was killed).
    pub fn restart(&mut self, err_dir: &TempDir) {
        self.kill9();
        let l = Self::start_args(err_dir, self.args.clone());
        *self = l;
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// True while it runs.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)) && process_alive(c.id()),
            None => false,
        }
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = signal(c.id(), libc::SIGKILL);
            let _ = c.wait();
        }
    }

    /// Sends it `sig`.
    pub fn signal(&self, sig: libc::c_int) {
        signal(self.pid(), sig).expect("kill");
    }

    /// Waits (bounded) for it to exit; its status (panics if it runs on).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let c = self.child.as_mut().expect("running");
        let st = crate::wait_child(c, TIMEOUT);
        let st = st.unwrap_or_else(|| panic!("logwrite still runs: {}", self.stderr()));
        self.child = None;
        st
    }

    /// Starts it again with the same arguments (after it exited).
    pub fn start_again(&mut self, err_dir: &TempDir) {
        assert!(self.child.is_none(), "still running");
        *self = Self::start_args(err_dir, self.args.clone());
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until stderr contains `needle` (case-insensitive).
    pub fn wait_stderr(&self, needle: &str) {
        let n = needle.to_lowercase();
        assert!(
            wait_for(|| self.stderr().to_lowercase().contains(&n), TIMEOUT),
            "logwrite's stderr never mentioned {needle:?}: {}",
            self.stderr()
        );
    }

    /// CPU time used so far (user + system), in clock ticks (`/proc/PID/stat`).
    pub fn cpu_ticks(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        let rest = s.rsplit_once(')').expect("comm").1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 of the whole line are 12 and 13 after the state.
        f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
    }
}

impl Drop for Logwrite {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The lines of `dir/name` (empty if it does not exist).
pub fn lines(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(name))
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The messages of the lines of `dir/name` (`TIME SOURCE MSG`, where the
/// source is known to have no space).
pub fn msgs(dir: &Path, name: &str) -> Vec<String> {
    lines(dir, name)
        .iter()
        .map(|l| l.splitn(3, ' ').nth(2).unwrap_or("").to_owned())
        .collect()
}

/// Waits until `dir/name` holds exactly `want` (as messages), panicking
/// with what it holds after [`TIMEOUT`].
pub fn wait_msgs(dir: &Path, name: &str, want: &[String], lw: &Logwrite) {
    let mut got = Vec::new();
    let ok = wait_for(
        || {
            got = msgs(dir, name);
            got.len() >= want.len()
        },
        TIMEOUT,
    );
    assert!(
        ok && got == want,
        "{} holds {} lines, want {}; first difference at {:?}; logwrite stderr: {}",
        dir.join(name).display(),
        got.len(),
        want.len(),
        got.iter().zip(want).position(|(a, b)| a != b),
        lw.stderr()
    );
}

/// Writes `msgs` as lines to a new memlogd input called `source` and waits
/// until memlogd holds the last one.
pub fn write_lines(m: &Memlogd, source: &str, msgs: &[String]) {
    use std::io::Write;
    let mut w = m.writer(source);
    let mut buf = Vec::new();
    for l in msgs {
        buf.extend_from_slice(l.as_bytes());
        buf.push(b'\n');
    }
    w.write_all(&buf).expect("write lines");
    drop(w);
    if let Some(last) = msgs.last() {
        m.wait_msg(source, last);
    }
}

/// `prefix 0` .. `prefix n-1`, padded to `pad` bytes.
pub fn numbered(prefix: &str, range: std::ops::Range<usize>, pad: usize) -> Vec<String> {
    range
        .map(|i| {
            let mut s = format!("{prefix} {i:06}");
            while s.len() < pad {
                s.push('.');
            }
            s
        })
        .collect()
}

/// The position logwrite saved in `dir/name`, as (instance, seq).
pub fn saved_position(dir: &Path, name: &str) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(dir.join(name)).ok()?;
    let p = s.lines().find_map(|l| l.strip_prefix("position "))?;
    let (i, q) = p.split_once(':')?;
    Some((u64::from_str_radix(i, 16).ok()?, q.parse().ok()?))
}

/// A free port on 127.0.0.1 for TCP and UDP (as far as one can tell).
pub fn free_port() -> u16 {
    loop {
        let t = TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = t.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// True if `rsyslogd` is installed.
pub fn have_rsyslogd() -> bool {
    rsyslogd_path().is_some()
}

fn rsyslogd_path() -> Option<PathBuf> {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd", "/usr/bin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A real rsyslogd on 127.0.0.1 (imtcp and imudp), writing every message it
/// gets to `out.log` as `PRI APP-NAME HOSTNAME PROCID MSG`. Killed on drop.
pub struct Rsyslog {
    pub dir: TempDir,
    pub tcp_port: u16,
    pub udp_port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    /// Starts rsyslogd (panics if it is not installed) and waits until it
    /// accepts TCP connections.
    pub fn start() -> Rsyslog {
        Self::start_with("", |tcp, udp| {
            format!(
                "module(load=\"imtcp\")\n\
                 module(load=\"imudp\")\n\
                 input(type=\"imtcp\" port=\"{tcp}\" address=\"127.0.0.1\")\n\
                 input(type=\"imudp\" port=\"{udp}\" address=\"127.0.0.1\")\n"
            )
        })
    }

    /// Starts rsyslogd with `global_params` added to its `global()` and the
    /// modules and inputs `inputs(tcp_port, udp_port)` returns (the test
    /// waits for `tcp_port` to accept connections), writing every message
    /// to `out.log` as [`Rsyslog::start`] does.
    pub fn start_with(global_params: &str, inputs: impl FnOnce(u16, u16) -> String) -> Rsyslog {
        let dir = TempDir::new("rsyslog");
        std::fs::create_dir_all(dir.join("work")).expect("work dir");
        let mut r = Rsyslog {
            tcp_port: free_port(),
            udp_port: free_port(),
            dir,
            child: None,
        };
        let conf = format!(
            "global(workDirectory=\"{work}\" {global_params})\n\
             {inputs}\
             template(name=\"t\" type=\"string\" string=\"%pri% %app-name% %hostname% %procid% %msg%\\n\")\n\
             *.* action(type=\"omfile\" file=\"{out}\" template=\"t\")\n",
            work = r.dir.join("work").display(),
            inputs = inputs(r.tcp_port, r.udp_port),
            out = r.dir.join("out.log").display(),
        );
        std::fs::write(r.dir.join("rsyslog.conf"), conf).expect("write config");
        r.spawn();
        r
    }

    /// Sends it `sig` (SIGSTOP: it hangs, and the kernel still takes TCP
    /// data for it, up to its socket buffers).
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            let _ = signal(c.id(), sig);
        }
    }

    /// Kills it with SIGKILL (what it had taken and not written is lost).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again after [`Rsyslog::kill9`] or [`Rsyslog::stop`].
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        let _ = std::fs::remove_file(self.dir.join("rsyslogd.pid"));
        self.spawn();
    }

    fn spawn(&mut self) {
        let path = rsyslogd_path().expect("rsyslogd is installed");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("rsyslogd.out"))
            .expect("output file");
        let child = Command::new(path)
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn rsyslogd");
        self.child = Some(child);
        let port = self.tcp_port;
        let ok = wait_for(
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            TIMEOUT,
        );
        assert!(ok, "rsyslogd did not listen on {port}: {}", self.log());
    }

    /// Stops it with SIGTERM and waits until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = signal(c.id(), libc::SIGTERM);
            if crate::wait_child(&mut c, TIMEOUT).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Starts it again on the same ports, appending to the same file.
    pub fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(self.dir.join("rsyslogd.pid"));
        self.spawn();
    }

    /// rsyslogd's own output.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.out")).unwrap_or_default()
    }

    /// Lines received so far: (pri, app-name, hostname, procid, msg).
    pub fn received(&self) -> Vec<(String, String, String, String, String)> {
        std::fs::read_to_string(self.dir.join("out.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(5, ' ');
                Some((
                    f.next()?.to_owned(),
                    f.next()?.to_owned(),
                    f.next()?.to_owned(),
                    f.next()?.to_owned(),
                    f.next().unwrap_or("").trim().to_owned(),
                ))
            })
            .collect()
    }

    /// Messages received from app-name `app`, in order.
    pub fn msgs_from(&self, app: &str) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|r| r.1 == app)
            .map(|r| r.4)
            .collect()
    }

    /// Waits until at least `n` messages from `app` arrived; returns them.
    pub fn wait_count(&self, app: &str, n: usize, lw: &Logwrite) -> Vec<String> {
        let mut got = Vec::new();
        let ok = wait_for(
            || {
                got = self.msgs_from(app);
                got.len() >= n
            },
            TIMEOUT,
        );
        assert!(
            ok,
            "rsyslog got {} messages from {app}, want {n} (first {:?}, last {:?}); logwrite: {}; rsyslogd: {}",
            got.len(),
            got.first(),
            got.last(),
            lw.stderr(),
            self.log()
        );
        got
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `mount ARGS`; `Err` with its message if it fails.
pub fn mount(args: &[&str]) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Unmounts `path` (lazily, so a test never hangs on a busy mount).
pub fn umount(path: &Path) {
    let _ = Command::new("umount")
        .arg("-l")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A mount point that is unmounted on drop (before its directory goes).
pub struct Mounted {
    pub path: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        umount(&self.path);
    }
}

/// Pause used only to let a background process run a little between two
/// steps of a test (never to decide a result).
pub fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

pub use crate::peak_rss_kib;

/// A TCP server on 127.0.0.1 that takes any number of connections and
/// keeps every byte it reads (a stand-in for a syslog server when only the
/// bytes matter).
pub struct TcpSink {
    pub port: u16,
    data: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl TcpSink {
    pub fn start() -> TcpSink {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let data = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let d = std::sync::Arc::clone(&data);
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { return };
                let d = std::sync::Arc::clone(&d);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = std::io::Read::read(&mut c, &mut buf) {
                        if n == 0 {
                            return;
                        }
                        d.lock().expect("lock").extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        TcpSink { port, data }
    }

    /// `tcp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Everything received so far, lossy as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data.lock().expect("lock")).into_owned()
    }

    /// The name logwrite gives this remote's state file.
    pub fn state_file(&self) -> String {
        format!(".logwrite-remote-tcp:%2f%2f127.0.0.1:{}.state", self.port)
    }
}

/// The name of the state file logwrite keeps for remote `name`
/// (`tls://127.0.0.1:6514`).
pub fn remote_state_file(name: &str) -> String {
    format!(".logwrite-remote-{}.state", name.replace('/', "%2f"))
}

/// rsyslogd's main queue made direct: a message is written to `out.log`
/// before the input takes the next (so before imrelp acknowledges it, and
/// so a kill -9 loses only what its inputs had not handled).
pub const DIRECT_QUEUE: &str = "main_queue(queue.type=\"Direct\")\n";

impl Rsyslog {
    /// rsyslogd with imtcp over TLS (gtls, `StreamDriver.Mode="1"`) on its
    /// `tcp_port`, presenting `server` (signed by `ca`), with `auth_mode`
    /// (`anon`, `x509/certvalid`...) for clients.
    pub fn start_tls(ca: &crate::pki::Cert, server: &crate::pki::Cert, auth_mode: &str) -> Rsyslog {
        let globals = format!(
            "DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{}\" \
             DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
            ca.cert.display(),
            server.cert.display(),
            server.key.display()
        );
        Self::start_with(&globals, |tcp, _| {
            format!(
                "{DIRECT_QUEUE}module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" \
                 StreamDriver.AuthMode=\"{auth_mode}\")\n\
                 input(type=\"imtcp\" port=\"{tcp}\" address=\"127.0.0.1\")\n"
            )
        })
    }

    /// rsyslogd with imrelp on its `tcp_port` and plain imtcp on its
    /// `udp_port` number (for comparisons), frames up to 128 KiB, main
    /// queue direct. `tls`: extra imrelp parameters (`tls="on" ...`).
    pub fn start_relp(tls: &str) -> Rsyslog {
        Self::start_with("maxMessageSize=\"128k\"", |relp, tcp| {
            format!(
                "{DIRECT_QUEUE}module(load=\"imrelp\")\nmodule(load=\"imtcp\")\n\
                 input(type=\"imrelp\" port=\"{relp}\" address=\"127.0.0.1\" maxDataSize=\"131072\" {tls})\n\
                 input(type=\"imtcp\" port=\"{tcp}\" address=\"127.0.0.1\")\n"
            )
        })
    }
}
