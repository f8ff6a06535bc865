//! The plugin's methods: `Plugin.Activate`, `LogDriver.Capabilities`,
//! `StartLogging` (open the container's FIFO, hand its read end to memlogd
//! marked Docker-framed), `StopLogging` (return once memlogd has read the
//! FIFO empty), `ReadLogs` (in [`crate::readlogs`]).
//!
//! The driver keeps its own read end of each FIFO, which it never reads:
//! it is how StopLogging sees the FIFO drained (`FIONREAD`), and how a
//! memlogd that restarted gets the FIFO again (the watcher notices the new
//! instance and hands every open FIFO over once more).

use crate::tag::Info;
use memlog::dockerlog::{self, Handover};
use memlog::handover::{LogSocket, Outcome};
use memlog::json::{self, Value};
use memlog::proto::{Line, Mode, Request};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where the driver finds memlogd, and how long StopLogging waits.
#[derive(Debug, Clone)]
pub struct Settings {
    pub log_socket: PathBuf,
    pub query_socket: PathBuf,
    pub drain_timeout: Duration,
}

/// One container's FIFO.
struct Stream {
    fd: OwnedFd,
    handover: Handover,
    /// The memlogd instance that has it (`None`: not known).
    instance: Option<u64>,
}

/// The driver's state, shared by the connection threads.
pub struct Driver {
    pub settings: Settings,
    streams: Mutex<HashMap<String, Stream>>,
    log: Mutex<Option<LogSocket>>,
}

/// A method's answer: the JSON body, or the error for dockerd (`{"Err":..}`).
pub type Answer = Result<Vec<u8>, String>;

fn err_body(e: &str) -> Vec<u8> {
    let mut b = b"{\"Err\":".to_vec();
    json::write_str(&mut b, e.as_bytes());
    b.push(b'}');
    b
}

/// The body dockerd gets for an error.
pub fn error_json(e: &str) -> Vec<u8> {
    err_body(e)
}

fn ok_body() -> Vec<u8> {
    b"{\"Err\":\"\"}".to_vec()
}

/// The string `key` of a JSON object, or why not.
fn string_field(body: &[u8], key: &str) -> Result<String, String> {
    let obj = json::parse_object(body).map_err(|e| format!("request body: {e}"))?;
    match json::get(&obj, key) {
        Some(Value::Str(s)) => Ok(s.to_string()),
        _ => Err(format!("request body has no string {key:?}")),
    }
}

/// The raw value of `key` (an object) in a JSON object.
pub fn object_field<'a>(body: &'a [u8], keys: &[&str]) -> Result<Option<&'a [u8]>, String> {
    let fields = json::parse_object_spans(body).map_err(|e| format!("request body: {e}"))?;
    Ok(fields
        .into_iter()
        .find(|(k, v, _)| keys.contains(&k.as_ref()) && *v == Value::Other)
        .map(|(_, _, raw)| raw))
}

/// Bytes in a pipe not read yet.
fn unread(fd: &OwnedFd) -> std::io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int to the pointer, which points to `n`;
    // the fd is open (borrowed from an OwnedFd for the call's duration).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n.max(0) as usize)
}

impl Driver {
    pub fn new(settings: Settings) -> Driver {
        Driver {
            settings,
            streams: Mutex::new(HashMap::new()),
            log: Mutex::new(None),
        }
    }

    /// `Plugin.Activate`.
    pub fn activate(&self) -> Answer {
        Ok(b"{\"Implements\":[\"LogDriver\"]}".to_vec())
    }

    /// `LogDriver.Capabilities`.
    pub fn capabilities(&self) -> Answer {
        Ok(b"{\"Cap\":{\"ReadLogs\":true},\"Err\":\"\"}".to_vec())
    }

    /// Hands `fd` to memlogd as a Docker-framed input (one try, then one
    /// more on a fresh connection: memlogd may have restarted).
    fn hand_over(&self, h: &Handover, fd: &OwnedFd) -> Result<(), String> {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let payload = h.encode();
        let mut last = String::new();
        for _ in 0..2 {
            if log.is_none() {
                match LogSocket::connect(&self.settings.log_socket) {
                    Ok(s) => *log = Some(s),
                    Err(e) => {
                        last = format!(
                            "cannot reach memlogd at {}: {e}",
                            self.settings.log_socket.display()
                        );
                        continue;
                    }
                }
            }
            let Some(sock) = log.as_mut() else { continue };
            match sock.hand_over(&payload, &[fd.as_fd()]) {
                Ok(Outcome::Taken)
                    if sock
                        .last_reply()
                        .is_some_and(|r| r.split(' ').any(|w| w == dockerlog::REPLY_WORD)) =>
                {
                    return Ok(())
                }
                Ok(Outcome::Taken | Outcome::Unconfirmed) => {
                    return Err(format!(
                        "memlogd at {} took the FIFO but does not say it reads Docker's framing (LinuxKit's memlogd, or an older memlog): it would store frames as text",
                        self.settings.log_socket.display()
                    ))
                }
                Ok(Outcome::Refused(why)) => return Err(format!("memlogd refused the FIFO: {why}")),
                Err(e) => {
                    last = format!("handing the FIFO to memlogd failed: {e}");
                    *log = None;
                }
            }
        }
        Err(last)
    }

    /// `LogDriver.StartLogging`: `{"File": PATH, "Info": {...}}`.
    pub fn start_logging(&self, body: &[u8]) -> Answer {
        let file = string_field(body, "File")?;
        let info = object_field(body, &["Info"])?.ok_or("request body has no Info object")?;
        let info = Info::parse(info)?;
        let source = info.source()?;
        if self.lock().contains_key(&file) {
            return Err(format!("{file} is logged already"));
        }
        // O_NONBLOCK: opening a FIFO's read end never waits for a writer
        // (dockerd holds its end open already); this end is never read.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&file)
            .map_err(|e| format!("cannot open {file}: {e}"))?;
        let kind = f
            .metadata()
            .map_err(|e| format!("cannot stat {file}: {e}"))?
            .file_type();
        if !kind.is_fifo() {
            return Err(format!("{file} is not a FIFO"));
        }
        let fd = OwnedFd::from(f);
        let h = Handover {
            source: source.into_bytes(),
            id: info.id.into_bytes(),
            name: info.name.into_bytes(),
            image: info.image_name.into_bytes(),
        };
        self.hand_over(&h, &fd)?;
        let instance = self.instance();
        self.lock().insert(
            file,
            Stream {
                fd,
                handover: h,
                instance,
            },
        );
        Ok(ok_body())
    }

    /// `LogDriver.StopLogging`: `{"File": PATH}`. dockerd calls it once the
    /// container's output ended and before it closes its end of the FIFO:
    /// answer once memlogd has read what is in it (or after the drain
    /// timeout, saying so).
    pub fn stop_logging(&self, body: &[u8]) -> Answer {
        let file = string_field(body, "File")?;
        let Some(s) = self.lock().remove(&file) else {
            // dockerd retries calls; a second stop is not an error.
            return Ok(ok_body());
        };
        let deadline = Instant::now() + self.settings.drain_timeout;
        loop {
            match unread(&s.fd) {
                Ok(0) => return Ok(ok_body()),
                Ok(n) if Instant::now() >= deadline => {
                    return Err(format!(
                        "{n} bytes of {file} still unread by memlogd after {:?}",
                        self.settings.drain_timeout
                    ))
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("cannot see how much of {file} is unread: {e}")),
            }
        }
    }

    /// Whether a container's output is being logged now (its follow ends
    /// once it is not: dockerd's `docker logs -f` ends when the stream does).
    pub fn logging_container(&self, id: &str) -> bool {
        self.lock().values().any(|s| s.handover.id == id.as_bytes())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stream>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// memlogd's instance id now (a short query), if it answers.
    pub fn instance(&self) -> Option<u64> {
        let mut req = Request::new(Mode::Dump);
        req.last = Some(0);
        req.containers = vec![NOBODY.to_vec()];
        let mut c = memlog::client::Client::connect(&self.settings.query_socket, &req).ok()?;
        match c.next_line() {
            Ok(Some(Line::Hello { instance, .. })) => Some(instance),
            _ => None,
        }
    }

    /// Follows memlogd for as long as the driver runs: a connection that
    /// selects nothing, which ends when memlogd stops. When a memlogd
    /// answers whose instance is not the one a FIFO was handed to, that
    /// FIFO is handed to it (the old one's copy died with it).
    pub fn watch(&self) {
        loop {
            let mut req = Request::new(Mode::Follow);
            req.containers = vec![NOBODY.to_vec()];
            let Ok(mut c) = memlog::client::Client::connect(&self.settings.query_socket, &req)
            else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            let Ok(Some(Line::Hello { instance, .. })) = c.next_line() else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            self.rehand(instance);
            // Nothing is selected: this returns when memlogd closes.
            while let Ok(Some(_)) = c.next_line() {}
        }
    }

    fn rehand(&self, instance: u64) {
        let mut streams = self.lock();
        for (file, s) in streams.iter_mut() {
            if s.instance == Some(instance) {
                continue;
            }
            match self.hand_over(&s.handover, &s.fd) {
                Ok(()) => {
                    s.instance = Some(instance);
                    eprintln!("memlog-docker-logdriver: {file} handed to memlogd {instance:016x} (it restarted)");
                }
                Err(e) => eprintln!("memlog-docker-logdriver: {file}: {e}"),
            }
        }
    }
}

/// A container id no container has (the watcher's selection of nothing).
pub const NOBODY: &[u8] = b"\0none";
