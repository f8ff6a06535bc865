//! `init-shim dump NAME...`: print the records of some sources, as LinuxKit
//! init means to after each onboot container (its own dump still parses the
//! old text format and prints nothing since memlogd answers in JSON).
//!
//! It asks memlogd for those sources only (the client library filters
//! itself against LinuxKit's memlogd, which does not know the request), and
//! prints LinuxKit's `TIME;SOURCE;MSG`, the message alone, or JSON with
//! every field memlogd keeps (severity, facility, sequence number, sender).
//! Without memlogd it prints the fallback files `LOGDIR/NAME.log` that
//! `init-shim run` and LinuxKit's init write then.

use argh::FromArgs;
use memlog::client::Client;
use memlog::goflags::{self, Spec};
use memlog::proto::{self, Line, Mode, Record, Request};
use memlog::{escape, json};
use std::io::{self, Write};
use std::path::Path;

use crate::{names, probe};

const SPEC: Spec = Spec {
    switches: &[],
    options: &["socket", "o", "format", "log-dir"],
    bytes: &["socket", "log-dir"],
    bytes_positionals: false,
};

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// LinuxKit's logread: `TIME;SOURCE;MSG`.
    Text,
    /// The message only.
    Plain,
    /// One JSON object per record.
    Json,
}

fn format(s: &str) -> Result<Format, String> {
    match s {
        "text" => Ok(Format::Text),
        "plain" => Ok(Format::Plain),
        "json" => Ok(Format::Json),
        _ => Err(format!("unknown format {s:?} (use text, plain or json)")),
    }
}

/// Print the records of the given sources (e.g. onboot.001-dhcpcd.out and
/// onboot.001-dhcpcd), oldest first, then exit. Against memlogd or
/// LinuxKit's memlogd; without either, print LOGDIR/NAME.log instead.
/// Flags may be written -name value, --name value, -name=value or --name=value.
///
/// Example: `init-shim dump -o json onboot.001-dhcpcd.out onboot.001-dhcpcd`
#[derive(FromArgs, Debug)]
struct Args {
    /// memlogd's query socket (default /var/run/memlogdq.sock), as logread's -socket
    #[argh(option, default = "proto::DEFAULT_QUERY_SOCKET.into()")]
    socket: String,
    /// text (TIME;SOURCE;MSG, LinuxKit's logread; the default), plain (the
    /// message only) or json (seq, time, source, msg, and severity,
    /// facility, pid, uid, gid, truncated when known)
    #[argh(option, short = 'o', default = "Format::Text", from_str_fn(format))]
    format: Format,
    /// directory of the fallback files when memlogd is absent (default /var/log)
    #[argh(option, default = "\"/var/log\".into()")]
    log_dir: String,
    /// the sources to print
    #[argh(positional)]
    names: Vec<String>,
}

/// Appends `r` in format `f`.
fn write_record(out: &mut Vec<u8>, r: &Record, f: Format) {
    match f {
        Format::Text => r.write_text(out),
        Format::Plain => {
            escape::write(out, r.msg_bytes());
            out.push(b'\n');
        }
        Format::Json => {
            out.push(b'{');
            if let Some(seq) = r.seq {
                out.extend_from_slice(b"\"seq\":");
                json::write_u64(out, seq);
                out.push(b',');
            }
            for (k, v) in [("time", &r.time), ("source", &r.source), ("msg", &r.msg)] {
                if k != "time" {
                    out.push(b',');
                }
                json::write_str(out, k.as_bytes());
                out.push(b':');
                json::write_str(out, v.as_bytes());
            }
            // Bytes that are not UTF-8, exactly (as memlogd sends them).
            for (k, v) in [("source_raw", &r.source_raw), ("msg_raw", &r.msg_raw)] {
                if let Some(v) = v {
                    out.push(b',');
                    json::write_str(out, k.as_bytes());
                    out.push(b':');
                    json::write_raw(out, v);
                }
            }
            let nums = [
                ("severity", r.severity.map(u64::from)),
                ("facility", r.facility.map(u64::from)),
                ("pid", r.pid.map(u64::from)),
                ("uid", r.uid.map(u64::from)),
                ("gid", r.gid.map(u64::from)),
            ];
            for (k, v) in nums {
                if let Some(v) = v {
                    out.push(b',');
                    json::write_str(out, k.as_bytes());
                    out.push(b':');
                    json::write_u64(out, v);
                }
            }
            if r.truncated {
                out.extend_from_slice(b",\"truncated\":true");
            }
            out.extend_from_slice(b"}\n");
        }
    }
}

/// Why a dump failed.
enum Error {
    /// Our stdout failed (a closed pipe is a quiet end).
    Stdout(io::Error),
    Memlogd(String),
}

fn dump(client: &mut Client, f: Format) -> Result<(), Error> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        if buf.len() >= 32 * 1024 || !client.ready() {
            out.write_all(&buf).map_err(Error::Stdout)?;
            buf.clear();
        }
        match client.next_line() {
            Ok(None) => break,
            Ok(Some(Line::Record(r))) => write_record(&mut buf, &r, f),
            Ok(Some(Line::Lost { count, .. })) => eprintln!(
                "init-shim dump: {count} records lost: memlogd overwrote them before they were sent"
            ),
            Ok(Some(Line::Error(e))) => {
                return Err(Error::Memlogd(format!("memlogd refused the request: {e}")))
            }
            Ok(Some(Line::Hello { .. } | Line::Stats(_))) => {}
            Err(e) => return Err(Error::Memlogd(format!("reading from memlogd: {e}"))),
        }
    }
    out.write_all(&buf).map_err(Error::Stdout)?;
    out.flush().map_err(Error::Stdout)
}

/// Prints the fallback files of `names`; false if none exists.
fn dump_files(dir: &Path, names: &[String]) -> Result<bool, Error> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut any = false;
    for n in names {
        let p = names::log_file(dir, n);
        match std::fs::read(&p) {
            Ok(data) => {
                any = true;
                // The file holds a command's raw output: one line at a time,
                // control characters escaped, as for memlogd's records.
                let mut text = Vec::with_capacity(data.len());
                for line in data.split_inclusive(|&b| b == b'\n') {
                    let (body, nl) = match line.strip_suffix(b"\n") {
                        Some(b) => (b, true),
                        None => (line, false),
                    };
                    escape::write(&mut text, body);
                    if nl {
                        text.push(b'\n');
                    }
                }
                out.write_all(&text).map_err(Error::Stdout)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Memlogd(format!("cannot read {}: {e}", p.display()))),
        }
    }
    out.flush().map_err(Error::Stdout)?;
    Ok(any)
}

fn run(a: &Args) -> Result<(), Error> {
    let socket = &goflags::path(&a.socket);
    let stream = match probe::query_socket(socket) {
        Ok(s) => s,
        Err(down) => {
            let dir = &goflags::path(&a.log_dir);
            let files: Vec<String> = a
                .names
                .iter()
                .map(|n| names::log_file(dir, n).display().to_string())
                .collect();
            eprintln!("init-shim: {down}; printing {}", files.join(" "));
            return match dump_files(dir, &a.names)? {
                true => Ok(()),
                false => Err(Error::Memlogd(format!(
                    "none of {} exists",
                    files.join(" ")
                ))),
            };
        }
    };
    let mut req = Request::new(Mode::Dump);
    req.sources = a.names.iter().map(|n| n.as_bytes().to_vec()).collect();
    let mut client = Client::start(stream, &req)
        .map_err(|e| Error::Memlogd(format!("cannot query {}: {e}", socket.display())))?;
    dump(&mut client, a.format)
}

/// `init-shim dump ARGS`: the exit status.
pub fn main(argv: &[std::ffi::OsString]) -> u8 {
    let args: Args = goflags::parse_or_exit("init-shim dump", argv, &SPEC);
    if args.names.is_empty() {
        eprintln!("init-shim dump: no source named (see init-shim dump -help)");
        return 2;
    }
    for n in &args.names {
        if let Err(e) = names::check(n) {
            eprintln!("init-shim dump: {e}");
            return 2;
        }
    }
    match run(&args) {
        Ok(()) => 0,
        Err(Error::Stdout(e)) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(Error::Stdout(e)) => {
            eprintln!("init-shim dump: cannot write to stdout: {e}");
            1
        }
        Err(Error::Memlogd(e)) => {
            eprintln!("init-shim dump: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record {
            seq: Some(7),
            time: "2024-01-02T03:04:05.5Z".into(),
            source: "a;b".into(),
            msg: "say \"hi\"".into(),
            severity: Some(4),
            facility: Some(1),
            pid: Some(42),
            ..Record::default()
        }
    }

    #[test]
    fn formats() {
        let mut v = Vec::new();
        write_record(&mut v, &rec(), Format::Text);
        assert_eq!(v, b"2024-01-02T03:04:05.5Z;a\\;b;say \"hi\"\n");
        v.clear();
        write_record(&mut v, &rec(), Format::Plain);
        assert_eq!(v, b"say \"hi\"\n");
        v.clear();
        write_record(&mut v, &rec(), Format::Json);
        assert_eq!(
            String::from_utf8(v).expect("utf8"),
            "{\"seq\":7,\"time\":\"2024-01-02T03:04:05.5Z\",\"source\":\"a;b\",\"msg\":\"say \\\"hi\\\"\",\"severity\":4,\"facility\":1,\"pid\":42}\n"
        );
        let mut v = Vec::new();
        let r = Record {
            seq: None,
            truncated: true,
            ..rec()
        };
        write_record(&mut v, &r, Format::Json);
        let line = &v[..v.len() - 1];
        let Ok(Line::Record(back)) = proto::decode_line(line) else {
            panic!("not a record: {}", String::from_utf8_lossy(line))
        };
        assert_eq!(back, r);
        // Text is one line whatever the message holds; JSON keeps the bytes.
        let r = Record {
            msg: "a\nb\u{1b}[2J".into(),
            msg_raw: Some(b"a\nb\x1b[2J\xff".to_vec()),
            ..rec()
        };
        for f in [Format::Text, Format::Plain] {
            let mut v = Vec::new();
            write_record(&mut v, &r, f);
            assert!(
                v.ends_with(b"a\\nb\\x1b[2J\\xff\n"),
                "{}",
                String::from_utf8_lossy(&v)
            );
        }
        let mut v = Vec::new();
        write_record(&mut v, &r, Format::Json);
        let Ok(Line::Record(back)) = proto::decode_line(&v[..v.len() - 1]) else {
            panic!("not a record")
        };
        assert_eq!(back.msg_bytes(), b"a\nb\x1b[2J\xff");
    }
}
