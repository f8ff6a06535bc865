//! logwrite's RELP client against servers that misbehave (a stand-in
//! server in the test, on loopback): garbage, an `rsp` for a TXNR never
//! sent, an absurd DATALEN, a refusal (`500`), and a server that never
//! answers. Each is reported, nothing is marked delivered that the server
//! did not acknowledge, nothing is skipped, and a stalled destination
//! holds back neither the files nor logwrite.

use memlog_tests::logwrite::{
    msgs, numbered, remote_state_file, saved_position, wait_msgs, write_lines, Logwrite,
};
use memlog_tests::{wait_for, Memlogd, TempDir, TIMEOUT};
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One frame a client sent.
struct Frame {
    txnr: u64,
    command: String,
    data: Vec<u8>,
}

fn read_frame(r: &mut BufReader<TcpStream>) -> Option<Frame> {
    let mut head = Vec::new();
    // TXNR SP COMMAND SP DATALEN, then SP DATA LF or LF.
    let mut fields = Vec::new();
    while fields.len() < 3 {
        let mut b = [0u8; 1];
        r.read_exact(&mut b).ok()?;
        match b[0] {
            b' ' | b'\n' => {
                fields.push(String::from_utf8(std::mem::take(&mut head)).ok()?);
                if b[0] == b'\n' && fields.len() == 3 {
                    return Some(Frame {
                        txnr: fields[0].parse().ok()?,
                        command: fields[1].clone(),
                        data: Vec::new(),
                    });
                }
            }
            c => head.push(c),
        }
    }
    let len: usize = fields[2].parse().ok()?;
    let mut data = vec![0u8; len + 1];
    r.read_exact(&mut data).ok()?;
    assert_eq!(data.pop(), Some(b'\n'), "frame not ended by LF");
    Some(Frame {
        txnr: fields[0].parse().ok()?,
        command: fields[1].clone(),
        data,
    })
}

fn send(w: &mut TcpStream, txnr: u64, command: &str, data: &str) {
    let f = if data.is_empty() {
        format!("{txnr} {command} 0\n")
    } else {
        format!("{txnr} {command} {} {data}\n", data.len())
    };
    let _ = w.write_all(f.as_bytes());
}

/// Answers the session open like librelp.
fn open(r: &mut BufReader<TcpStream>, w: &mut TcpStream) -> bool {
    match read_frame(r) {
        Some(f) if f.command == "open" => {
            let offer = String::from_utf8_lossy(&f.data).into_owned();
            assert!(offer.contains("relp_version=0"), "{offer}");
            assert!(offer.contains("commands=syslog"), "{offer}");
            send(
                w,
                f.txnr,
                "rsp",
                "200 OK\nrelp_version=0\nrelp_software=fake\ncommands=syslog",
            );
            true
        }
        _ => false,
    }
}

/// A stand-in RELP server: `serve(connection number, reader, writer,
/// messages)` runs for each connection; the messages of `syslog` frames
/// it acknowledged go in `messages`.
struct Fake {
    port: u16,
    got: Arc<Mutex<Vec<String>>>,
}

type Serve = fn(usize, &mut BufReader<TcpStream>, &mut TcpStream, &Mutex<Vec<String>>);

impl Fake {
    fn start(serve: Serve) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = Arc::clone(&got);
        std::thread::spawn(move || {
            for (i, c) in l.incoming().enumerate() {
                let Ok(c) = c else { return };
                let g = Arc::clone(&g);
                std::thread::spawn(move || {
                    let mut w = c.try_clone().expect("clone");
                    let mut r = BufReader::new(c);
                    serve(i, &mut r, &mut w, &g);
                });
            }
        });
        Fake { port, got }
    }

    fn url(&self) -> String {
        format!("relp://127.0.0.1:{}", self.port)
    }

    /// [`Fake::url`], forwarding only source `app` (not memlogd's own).
    fn app_url(&self) -> String {
        format!("{}?include=app", self.url())
    }

    fn messages(&self) -> Vec<String> {
        self.got.lock().expect("lock").clone()
    }
}

/// The MSG of an RFC 5424 message (after the 7 header fields).
fn msg_of(data: &[u8]) -> String {
    let s = String::from_utf8_lossy(data);
    s.splitn(8, ' ').nth(7).unwrap_or("").to_owned()
}

/// Acknowledges every syslog frame with 200 OK.
fn ack_all(r: &mut BufReader<TcpStream>, w: &mut TcpStream, got: &Mutex<Vec<String>>) {
    while let Some(f) = read_frame(r) {
        match f.command.as_str() {
            "syslog" => {
                got.lock().expect("lock").push(msg_of(&f.data));
                send(w, f.txnr, "rsp", "200 OK");
            }
            "close" => {
                send(w, f.txnr, "rsp", "200 OK");
                return;
            }
            _ => return,
        }
    }
}

fn start_lw(m: &Memlogd, logs: &TempDir, errs: &TempDir, remote: &str, files: bool) -> Logwrite {
    let mut args = vec!["-remote", remote, "-hostname", "h", "-max-backoff", "300ms"];
    if !files {
        args.push("-no-files");
    }
    Logwrite::start(m.query_socket(), logs.path(), errs, &args)
}

/// logwrite against a server that does `serve`: stderr says `why`,
/// nothing is marked delivered, logwrite keeps running.
fn refused(serve: Serve, why: &str) {
    let fake = Fake::start(serve);
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let mut lw = start_lw(&m, &logs, &errs, &fake.url(), false);
    write_lines(&m, "app", &numbered("app", 0..10, 0));
    lw.wait_stderr(why);
    memlog_tests::logwrite::pause(500);
    assert!(lw.alive(), "{}", lw.stderr());
    assert_eq!(
        saved_position(logs.path(), &remote_state_file(&fake.url())),
        None,
        "marked delivered: {}",
        lw.stderr()
    );
    assert!(
        lw.stderr().contains("retrying with backoff"),
        "{}",
        lw.stderr()
    );
}

#[test]
fn relp_garbage_from_the_server() {
    refused(
        |_, r, w, _| {
            let _ = read_frame(r);
            let _ = w.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            memlog_tests::logwrite::pause(200);
        },
        "the server broke the protocol: not a RELP frame",
    );
}

#[test]
fn relp_rsp_for_a_txnr_never_sent() {
    refused(
        |_, r, w, _| {
            if open(r, w) {
                let _ = read_frame(r);
                send(w, 77, "rsp", "200 OK");
                memlog_tests::logwrite::pause(200);
            }
        },
        "rsp for TXNR 77, which is not waiting for one",
    );
}

#[test]
fn relp_absurd_datalen() {
    refused(
        |_, r, w, _| {
            if open(r, w) {
                let f = read_frame(r).expect("a syslog frame");
                let _ = w.write_all(format!("{} rsp 999999999 200 OK", f.txnr).as_bytes());
                memlog_tests::logwrite::pause(200);
            }
        },
        "DATALEN 999999999 is over the 131072-byte limit",
    );
}

#[test]
fn relp_refused_session() {
    refused(
        |_, r, w, _| {
            if let Some(f) = read_frame(r) {
                send(w, f.txnr, "rsp", "500 not today");
                memlog_tests::logwrite::pause(200);
            }
        },
        "the server refused the session: \"500 not today\"",
    );
}

#[test]
fn relp_non_200_is_reported_and_retried_never_skipped() {
    // The first connection takes 5 records, then refuses the 6th; the
    // next ones take everything.
    let fake = Fake::start(|i, r, w, got| {
        if !open(r, w) {
            return;
        }
        if i == 0 {
            let mut n = 0;
            while let Some(f) = read_frame(r) {
                if n == 5 {
                    send(w, f.txnr, "rsp", "500 queue full, try later");
                    // Keeps reading; logwrite closes.
                    while read_frame(r).is_some() {}
                    return;
                }
                got.lock().expect("lock").push(msg_of(&f.data));
                send(w, f.txnr, "rsp", "200 OK");
                n += 1;
            }
        } else {
            ack_all(r, w, got);
        }
    });
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let lw = start_lw(&m, &logs, &errs, &fake.app_url(), false);
    let want = numbered("app", 0..40, 0);
    write_lines(&m, "app", &want);
    lw.wait_stderr("the server refused a record (TXNR 7): \"500 queue full, try later\"");
    let ok = wait_for(|| fake.messages().len() >= want.len(), TIMEOUT);
    assert!(ok, "{:?}; {}", fake.messages(), lw.stderr());
    // In order, nothing skipped; the refused one and those after it again.
    let got = fake.messages();
    assert_eq!(got, want, "{}", lw.stderr());
}

#[test]
fn relp_stalled_server_holds_back_neither_files_nor_other_remotes() {
    // Answers the open, then reads and never answers.
    let fake = Fake::start(|_, r, w, _| {
        if open(r, w) {
            while read_frame(r).is_some() {}
        }
    });
    let good = Fake::start(|_, r, w, got| {
        if open(r, w) {
            ack_all(r, w, got)
        }
    });
    let m = Memlogd::start(&[]);
    let logs = TempDir::new("lw-logs");
    let errs = TempDir::new("lw-err");
    let stalled = format!("{}?window=8", fake.url());
    let lw = Logwrite::start(
        m.query_socket(),
        logs.path(),
        &errs,
        &[
            "-remote",
            &stalled,
            "-remote",
            &good.app_url(),
            "-hostname",
            "h",
        ],
    );
    let first = numbered("app", 0..20, 0);
    write_lines(&m, "app", &first);
    wait_msgs(logs.path(), "app.log", &first, &lw);
    lw.wait_stderr("stalled: the server has acknowledged none of the 8 records in flight");
    assert!(
        lw.stderr().contains("(the window of 8 is full)"),
        "{}",
        lw.stderr()
    );
    // Files and the other remote go on meanwhile.
    let more = numbered("app", 20..40, 0);
    write_lines(&m, "app", &more);
    let all: Vec<String> = first.iter().chain(&more).cloned().collect();
    wait_msgs(logs.path(), "app.log", &all, &lw);
    assert!(
        wait_for(|| good.messages() == all, TIMEOUT),
        "{:?}",
        good.messages()
    );
    // The stalled one kept its position: before the first record it sent.
    let first_seq = m.wait_msg("app", "app 000000").seq.expect("seq");
    let saved = saved_position(logs.path(), &remote_state_file(&fake.url()));
    assert!(
        saved.map_or(true, |p| p.1 < first_seq),
        "{saved:?} {first_seq}"
    );
    eprintln!("saved {saved:?}, first app record {first_seq}");
    assert_eq!(msgs(logs.path(), "app.log").len(), 40);
    // And logwrite still stops at once.
    let mut lw = lw;
    lw.signal(libc::SIGTERM);
    assert!(lw.wait_exit().success(), "{}", lw.stderr());
}
