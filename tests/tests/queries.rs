//! Readers: LinuxKit's one-byte requests and memlog's extended request, in
//! all three modes; slow readers; a consumer written in another language.

use memlog::json;
use memlog::proto::{Line, Mode, Record};
use memlog_tests::{
    decode_record, is_rfc3339_nano_utc, msgs_from, run_with_timeout, Got, LineReader, Memlogd,
    TIMEOUT,
};
use std::io::Write;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// Checks one line of a LinuxKit reply: exactly LinuxKit's keys, a Go
/// RFC3339Nano UTC time, and returns it as a record.
fn legacy_record(line: &[u8]) -> Record {
    let obj = json::parse_object(line)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(line)));
    let mut keys: Vec<&str> = obj.iter().map(|(k, _)| k.as_ref()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["msg", "source", "time"],
        "{:?}",
        String::from_utf8_lossy(line)
    );
    let r = decode_record(line);
    assert!(is_rfc3339_nano_utc(&r.time), "time {:?}", r.time);
    r
}

/// The next record of a LinuxKit reply, waiting at most `t`.
fn next_legacy(r: &mut LineReader, t: Duration) -> Option<Record> {
    match r.next_line(t).expect("read") {
        Got::Line(l) => Some(legacy_record(&l)),
        Got::Timeout => None,
        Got::Eof => panic!("memlogd closed a follow connection"),
    }
}

/// Reads a LinuxKit reply until a record from `source` with message `msg`.
fn legacy_until(r: &mut LineReader, source: &str, msg: &str) -> Vec<Record> {
    let mut v = Vec::new();
    loop {
        let rec = next_legacy(r, TIMEOUT)
            .unwrap_or_else(|| panic!("{source}: {msg:?} not received; got {v:#?}"));
        let done = rec.source == source && rec.msg == msg;
        v.push(rec);
        if done {
            return v;
        }
    }
}

/// The next line of an extended reply (the client has a read timeout).
fn next_ext(c: &mut memlog::client::Client) -> Line {
    c.next_line().expect("read").expect("connection open")
}

fn assert_consecutive(recs: &[Record], from: u64) {
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.seq, Some(from + i as u64), "record {i}: {r:?}");
    }
}

#[test]
fn first_record_is_memlogd_started() {
    let m = Memlogd::start(&[]);
    let recs = m.records();
    let first = recs.first().expect("a record");
    assert_eq!(
        (first.source.as_str(), first.msg.as_str()),
        ("memlogd", "memlogd started")
    );
}

#[test]
fn legacy_dump_sends_every_record_with_linuxkit_keys_then_closes() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("app");
    w.write_all(b"one\ntwo \"quoted\"\n").expect("write");
    m.wait_msg("app", "two \"quoted\"");
    let lines = m.legacy(0).read_to_eof();
    let recs: Vec<Record> = lines.iter().map(|l| legacy_record(l)).collect();
    assert_eq!(
        (recs[0].source.as_str(), recs[0].msg.as_str()),
        ("memlogd", "memlogd started")
    );
    assert_eq!(msgs_from(&recs, "app"), ["one", "two \"quoted\""]);
    assert!(recs.iter().all(|r| r.seq.is_none()));
}

#[test]
fn legacy_follow_sends_only_new_records_and_stays_open() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("app");
    w.write_all(b"before\n").expect("write");
    m.wait_msg("app", "before");
    let mut r = m.legacy(1);
    let early = m.sync_follower(|t| next_legacy(&mut r, t).map(|rec| rec.msg));
    assert!(
        !early.iter().any(|m| m == "before"),
        "follow sent old records: {early:?}"
    );
    w.write_all(b"after 1\nafter 2\n").expect("write");
    let got = legacy_until(&mut r, "app", "after 2");
    assert_eq!(msgs_from(&got, "app"), ["after 1", "after 2"]);
    // Nothing more, and the connection stays open.
    assert_eq!(
        r.next_line(Duration::from_millis(200)).expect("read"),
        Got::Timeout
    );
}

#[test]
fn legacy_dump_then_follow_sends_old_then_new() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("app");
    w.write_all(b"before\n").expect("write");
    m.wait_msg("app", "before");
    let mut r = m.legacy(2);
    let old = legacy_until(&mut r, "app", "before");
    assert_eq!(
        (old[0].source.as_str(), old[0].msg.as_str()),
        ("memlogd", "memlogd started")
    );
    w.write_all(b"after\n").expect("write");
    let new = legacy_until(&mut r, "app", "after");
    assert_eq!(msgs_from(&new, "app"), ["after"]);
}

#[test]
fn extended_dump_has_hello_and_consecutive_seqs_then_closes() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("app");
    w.write_all(b"a\nb\nc\n").expect("write");
    m.wait_msg("app", "c");
    let lines = m.dump();
    let Some(Line::Hello { first, next, .. }) = lines.first() else {
        panic!("no hello: {lines:?}");
    };
    let recs = memlog_tests::records(&lines[1..]);
    assert_eq!(recs.len(), lines.len() - 1, "only records after the hello");
    assert_consecutive(&recs, *first);
    assert_eq!(recs.last().and_then(|r| r.seq), Some(next - 1));
    assert_eq!(msgs_from(&recs, "app"), ["a", "b", "c"]);
    assert!(recs.iter().all(|r| is_rfc3339_nano_utc(&r.time)));
}

#[test]
fn extended_follow_starts_at_next() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("app");
    w.write_all(b"before\n").expect("write");
    m.wait_msg("app", "before");
    let (mut c, hello) = m.follow(Mode::Follow);
    let Line::Hello { next, .. } = hello else {
        unreachable!()
    };
    w.write_all(b"after 1\nafter 2\n").expect("write");
    let mut recs = Vec::new();
    while recs.last().map(|r: &Record| r.msg.as_str()) != Some("after 2") {
        match next_ext(&mut c) {
            Line::Record(r) => recs.push(r),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_consecutive(&recs, next);
    assert_eq!(msgs_from(&recs, "app"), ["after 1", "after 2"]);
}

#[test]
fn extended_dump_then_follow_is_one_consecutive_stream() {
    let m = Memlogd::start(&[]);
    let mut w = m.writer("app");
    w.write_all(b"before\n").expect("write");
    m.wait_msg("app", "before");
    let (mut c, hello) = m.follow(Mode::DumpFollow);
    let Line::Hello { first, .. } = hello else {
        unreachable!()
    };
    let mut recs = Vec::new();
    let mut wrote = false;
    while recs.last().map(|r: &Record| r.msg.as_str()) != Some("after") {
        match next_ext(&mut c) {
            Line::Record(r) => recs.push(r),
            other => panic!("unexpected {other:?}"),
        }
        if !wrote && recs.last().map(|r| r.msg.as_str()) == Some("before") {
            w.write_all(b"after\n").expect("write");
            wrote = true;
        }
    }
    assert_consecutive(&recs, first);
    assert_eq!(msgs_from(&recs, "memlogd")[0], "memlogd started");
    assert_eq!(msgs_from(&recs, "app"), ["before", "after"]);
}

/// Writes `n` lines `bulk I` from a new input on another thread and waits
/// (bounded, generously) until the writer has finished: memlogd must keep
/// reading whatever its readers do.
fn write_bulk(m: &Memlogd, n: usize) {
    let mut w = m.writer("bulk");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::with_capacity(64 * 1024);
        for i in 0..n {
            buf.extend_from_slice(format!("bulk {i}\n").as_bytes());
            if buf.len() > 60_000 {
                w.write_all(&buf).expect("write");
                buf.clear();
            }
        }
        w.write_all(&buf).expect("write");
        let _ = tx.send(w);
    });
    // Keep the input open until the test ends (no "closed" events).
    let w = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the writer was blocked: memlogd stopped reading it");
    std::mem::forget(w);
}

fn bulk_index(r: &Record) -> Option<u64> {
    (r.source == "bulk").then(|| {
        r.msg
            .strip_prefix("bulk ")
            .expect("bulk line")
            .parse()
            .expect("index")
    })
}

const BULK: usize = 200_000;
/// A small ring, and no per-source rate limit: these tests flood from one
/// source on purpose, to overrun a stalled reader.
const SMALL: &[&str] = &[
    "-buffer-size",
    "64k",
    "-max-lines",
    "1000000",
    "-rate-limit-burst",
    "0",
];

/// What a stalled follower received, checked as it arrives: the writer's
/// lines come in order, and every one of them that is missing was reported
/// lost before the next one arrived. memlogd's own records (about the loss)
/// may come in between; they are counted too.
#[derive(Default)]
struct Tally {
    bulk: u64,
    own: u64,
    lost: u64,
    lost_since_last_bulk: u64,
    next_bulk: u64,
}

impl Tally {
    fn lost(&mut self, n: u64) {
        assert!(n > 0, "a lost notice for 0 records");
        self.lost += n;
        self.lost_since_last_bulk += n;
    }

    /// Takes a record; true when it is the writer's last line.
    fn record(&mut self, r: &Record) -> bool {
        let Some(i) = bulk_index(r) else {
            assert_eq!(r.source, "memlogd", "nobody else writes: {r:?}");
            self.own += 1;
            return false;
        };
        assert!(i >= self.next_bulk, "out of order: {r:?}");
        let missing = i - self.next_bulk;
        assert!(
            missing <= self.lost_since_last_bulk,
            "bulk {}..{i} missing but only {} records reported lost",
            self.next_bulk,
            self.lost_since_last_bulk
        );
        self.lost_since_last_bulk = 0;
        self.next_bulk = i + 1;
        self.bulk += 1;
        i == BULK as u64 - 1
    }

    /// Everything received or reported lost.
    fn total(&self) -> u64 {
        self.bulk + self.own + self.lost
    }

    fn check_end(&self) {
        assert!(self.lost > 0, "a 64k buffer cannot hold {BULK} lines");
        assert!(self.bulk > 0);
        // Every line of the writer was received or counted lost; what is
        // counted beyond that are memlogd's own records that were lost.
        assert!(self.bulk + self.lost >= BULK as u64);
    }
}

#[test]
fn stalled_extended_reader_does_not_block_writer_and_learns_what_it_lost() {
    let m = Memlogd::start(SMALL);
    let (mut c, hello) = m.follow(Mode::Follow);
    let Line::Hello { next: start, .. } = hello else {
        unreachable!()
    };
    write_bulk(&m, BULK);
    let mut t = Tally::default();
    loop {
        match next_ext(&mut c) {
            Line::Lost { count, next } => {
                // The stream goes on exactly after what was lost.
                assert_eq!(next, Some(start + t.total() + count), "lost notice");
                t.lost(count);
            }
            Line::Record(r) => {
                assert_eq!(r.seq, Some(start + t.total()), "gap without notice: {r:?}");
                if t.record(&r) {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    t.check_end();
}

#[test]
fn stalled_linuxkit_reader_does_not_block_writer_and_is_told_in_band() {
    let m = Memlogd::start(SMALL);
    let mut r = m.legacy(1);
    m.sync_follower(|t| next_legacy(&mut r, t).map(|rec| rec.msg));
    // The follower has had everything so far: it starts at `next`.
    let start = m.stat("next");
    write_bulk(&m, BULK);
    let mut t = Tally::default();
    let mut end = None;
    while !matches!(end, Some(end) if start + t.total() >= end) {
        let rec = next_legacy(&mut r, TIMEOUT).expect("a record");
        let notice = (rec.source == "memlogd")
            .then(|| rec.msg.split_once(" records lost: "))
            .flatten()
            .and_then(|(n, _)| n.parse::<u64>().ok());
        if let Some(n) = notice {
            t.lost(n);
        } else if t.record(&rec) {
            // Read on up to what the ring held at this point (memlogd may
            // have noted the loss after the writer's last line).
            end = Some(m.stat("next"));
        }
    }
    assert_eq!(
        start + t.total(),
        end.expect("end"),
        "records unaccounted for"
    );
    t.check_end();
}

#[test]
fn python_json_consumer_reads_every_record() {
    let m = Memlogd::start(&[]);
    let msgs: [&[u8]; 7] = [
        b"say \"hi\"",
        b"back\\slash \\n not a newline",
        b"ctl \x01\x02\t\x1b\x7f\x08\x0c end",
        b"bad \xff\xfe utf8 \x80 here",
        "ok \u{e9} \u{20ac} \u{1f600}".as_bytes(),
        b"cr\rin the middle",
        b"</script> & ' done",
    ];
    let mut w = m.writer("py;src");
    for msg in msgs {
        w.write_all(msg).expect("write");
        w.write_all(b"\n").expect("write");
    }
    m.wait_msg("py;src", "</script> & ' done");
    let total = m.records().len();
    // Invalid UTF-8 becomes one U+FFFD per byte (as LinuxKit's Go does).
    let expect: Vec<String> = msgs
        .iter()
        .map(|b| {
            let mut s = String::new();
            let mut rest: &[u8] = b;
            loop {
                match std::str::from_utf8(rest) {
                    Ok(v) => {
                        s.push_str(v);
                        break;
                    }
                    Err(e) => {
                        let ok = e.valid_up_to();
                        s.push_str(std::str::from_utf8(&rest[..ok]).expect("valid prefix"));
                        s.push('\u{fffd}');
                        rest = &rest[ok + 1..];
                    }
                }
            }
            s
        })
        .collect();
    assert_eq!(msgs_from(&m.records(), "py;src"), expect, "Rust client");

    let script = r#"
import json, re, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall(b"\x00")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
n = 0
for line in data.split(b"\n"):
    if not line:
        continue
    r = json.loads(line)
    assert sorted(r) == ["msg", "source", "time"], r
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$", r["time"]), r
    n += 1
    if r["source"] == sys.argv[2]:
        print("msg", r["msg"].encode("utf-8").hex())
print("records", n)
"#;
    let out = run_with_timeout(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(m.query_socket())
            .arg("py;src"),
        TIMEOUT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("msg "))
        .map(str::to_owned)
        .collect();
    let want: Vec<String> = expect
        .iter()
        .map(|s| s.bytes().map(|b| format!("{b:02x}")).collect())
        .collect();
    assert_eq!(got, want);
    let n: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("records "))
        .expect("count line")
        .parse()
        .expect("count");
    // Records may only have been added since (none are written here).
    assert_eq!(n, total);
}
