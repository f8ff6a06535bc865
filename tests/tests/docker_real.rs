//! The Docker logging driver under a real Docker engine: Debian's
//! `docker.io` dockerd started here in private directories (vfs storage,
//! no iptables, no bridge), an image imported from a BusyBox root
//! filesystem (`busybox-static`; nothing is pulled), memlogd, and
//! `memlog-docker-logdriver` started after dockerd as the legacy socket
//! plugin `/run/docker/plugins/memlogd-tPID.sock` (dockerd only looks
//! there; the name is unique to this run).
//!
//! One test, in steps, because a dockerd takes seconds to start: output
//! of every kind reaches memlogd and comes back through `docker logs`
//! (`--tail`, `--since`, `-f`), a container restarted and removed, memlogd
//! restarted under a running container, the driver crashed and started
//! again while dockerd retries it.
//!
//! Without dockerd (or root, or a dockerd that starts) it says SKIP and
//! why, except in CI (`CI=true`), where that is a failure (`.ci/run`
//! installs docker.io and busybox-static).

use memlog::proto::Record;
use memlog_tests::docker::{dockerd_missing, Dockerd, Driver};
use memlog_tests::{skip, wait_for, wait_until, Memlogd, TempDir, TIMEOUT};

use std::path::{Path, PathBuf};
use std::time::Duration;

const IMAGE: &str = "memlog-bb:1";

fn of_source(m: &Memlogd, source: &str) -> Vec<Record> {
    m.records()
        .into_iter()
        .filter(|r| r.source == source)
        .collect()
}

/// memlogd at fixed socket paths, so it can be restarted in place.
fn memlogd_at(log: &Path, query: &Path) -> Memlogd {
    let dir = TempDir::new("docker-real-memlogd");
    let mut cmd = Memlogd::command(&dir);
    cmd.arg("-socket-log")
        .arg(log)
        .arg("-socket-query")
        .arg(query)
        .args(["-max-line-len", "65536"]);
    Memlogd::spawn(dir, cmd, log.to_path_buf(), query.to_path_buf())
}

#[test]
fn docker_run_and_docker_logs_through_memlogd() {
    if let Some(why) = dockerd_missing() {
        return skip(&why);
    }
    let socks = TempDir::new("docker-real");
    let (log, query): (PathBuf, PathBuf) = (socks.join("log.sock"), socks.join("q.sock"));
    let m = memlogd_at(&log, &query);
    let dockerd = match Dockerd::start() {
        Ok(d) => d,
        Err(e) => return skip(&e),
    };
    dockerd.import_busybox(IMAGE);
    // The driver comes up after dockerd: dockerd finds it when a container
    // asks for it.
    let name = format!("memlogd-t{}", std::process::id());
    let driver = Driver::start(Path::new("/run/docker/plugins"), &name, &log, &query, &[]);

    // Every kind of output: stdout, stderr, a 40 KiB line (dockerd cuts it
    // into 16 KiB partial entries), invalid UTF-8, a last line without \n.
    let script = r"printf 'out 1\n'; printf 'err 1\n' >&2; head -c 40960 /dev/zero | tr '\000' x; echo; printf '\377\376bad\n'; printf 'final'";
    dockerd.ok(&[
        "run",
        "--name",
        "c1",
        "--network",
        "none",
        "--log-driver",
        &name,
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    let long = "x".repeat(40960);
    m.wait_msg("c1.out", "final");
    let out = of_source(&m, "c1.out");
    let msgs: Vec<&[u8]> = out.iter().map(|r| r.msg_bytes()).collect();
    assert_eq!(
        msgs.len(),
        4,
        "{:?}",
        out.iter().map(|r| r.msg.len()).collect::<Vec<_>>()
    );
    assert_eq!(msgs[0], b"out 1");
    assert!(msgs[1] == long.as_bytes(), "the 40 KiB line is whole");
    assert_eq!(msgs[2], b"\xff\xfebad");
    assert_eq!(msgs[3], b"final");
    assert!(out.iter().all(|r| !r.truncated));
    let err = of_source(&m, "c1");
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].msg, "err 1");
    assert_eq!(err[0].stream.as_deref(), Some("stderr"));
    let id = String::from_utf8(dockerd.ok(&["inspect", "-f", "{{.Id}}", "c1"])).expect("id");
    assert_eq!(out[0].container_id.as_deref(), Some(id.trim()));
    assert_eq!(out[0].container_name.as_deref(), Some("c1"));
    assert_eq!(out[0].image.as_deref(), Some(IMAGE));
    assert_eq!(out[0].stream.as_deref(), Some("stdout"));

    // docker logs prints the same lines (from memlogd, through ReadLogs).
    let o = dockerd.docker(&["logs", "c1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = format!("out 1\n{long}\n");
    let mut want = want.into_bytes();
    want.extend_from_slice(b"\xff\xfebad\nfinal");
    assert!(
        o.stdout == want,
        "docker logs stdout: {} bytes",
        o.stdout.len()
    );
    assert_eq!(o.stderr, b"err 1\n");
    let o = dockerd.docker(&["logs", "--tail", "3", "c1"]);
    let mut all = o.stdout.clone();
    all.extend_from_slice(&o.stderr);
    let lines = all.iter().filter(|&&c| c == b'\n').count() + 1;
    assert_eq!(
        lines,
        3,
        "--tail 3: {:?}",
        String::from_utf8_lossy(&all[..all.len().min(200)])
    );
    assert!(o.stdout.ends_with(b"\xff\xfebad\nfinal"));
    let o = dockerd.docker(&["logs", "--timestamps", "--tail", "1", "c1"]);
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    let (stamp, line) = t.split_once(' ').expect("a timestamp");
    assert_eq!(line, "final");
    assert!(memlog::timefmt::parse_rfc3339(stamp).is_some(), "{t}");

    // -f follows a running container and ends when it stops; --since.
    dockerd.ok(&[
        "run",
        "-d",
        "--name",
        "c2",
        "--network",
        "none",
        "--log-driver",
        &name,
        IMAGE,
        "sh",
        "-c",
        "echo early; sleep 2; echo late; sleep 1; echo done",
    ]);
    let early = m.wait_msg("c2.out", "early");
    let mut follow = dockerd.command(&["logs", "-f", "c2"]);
    follow.stdout(std::process::Stdio::piped());
    let mut follow = follow.spawn().expect("docker logs -f");
    let mut stdout = follow.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).expect("read");
        s
    });
    assert!(
        memlog_tests::wait_child(&mut follow, TIMEOUT).is_some(),
        "docker logs -f did not end when the container stopped"
    );
    assert_eq!(reader.join().expect("reader"), "early\nlate\ndone\n");
    let since = early.time_ns().expect("time") + 1_000_000;
    let since = memlog::timefmt::rfc3339_nano(since);
    let o = dockerd.ok(&["logs", "--since", &since, "c2"]);
    assert_eq!(String::from_utf8_lossy(&o), "late\ndone\n");

    // A restarted container logs again under the same id; docker logs has both runs.
    dockerd.ok(&["start", "-a", "c2"]);
    let o = dockerd.ok(&["logs", "c2"]);
    assert_eq!(String::from_utf8_lossy(&o), "early\nlate\ndone\n".repeat(2));

    // The driver crashes (its socket stays, nobody listens): a container
    // started now waits, as dockerd retries the plugin, until a new driver
    // serves the same socket.
    let mut driver = driver;
    driver.crash();
    let runner = {
        let mut c = dockerd.command(&[
            "run",
            "--name",
            "c4",
            "--network",
            "none",
            "--log-driver",
            &name,
            IMAGE,
            "sh",
            "-c",
            "echo retried",
        ]);
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        c.spawn().expect("docker run c4")
    };
    std::thread::sleep(Duration::from_secs(2));
    let driver = Driver::start(Path::new("/run/docker/plugins"), &name, &log, &query, &[]);
    let out = runner.wait_with_output().expect("docker run c4");
    assert!(
        out.status.success(),
        "docker run with the driver back: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    m.wait_msg("c4.out", "retried");

    // A removed container's records stay in the ring.
    dockerd.ok(&["rm", "c1"]);
    assert_eq!(of_source(&m, "c1.out").len(), 4);

    // memlogd restarts under a running container: the driver hands the
    // FIFO to the new memlogd and the container never notices.
    dockerd.ok(&[
        "run",
        "-d",
        "--name",
        "c3",
        "--network",
        "none",
        "--log-driver",
        &name,
        "--log-opt",
        "tag={{.Name}}-{{.ImageName}}",
        IMAGE,
        "sh",
        "-c",
        "i=0; while [ $i -lt 600 ]; do echo tick $i; i=$((i+1)); sleep 0.05; done",
    ]);
    let src = format!("c3-{IMAGE}.out");
    wait_until("c3 ticks", || !of_source(&m, &src).is_empty());
    drop(m);
    let m = memlogd_at(&log, &query);
    wait_until("c3 ticks in the new memlogd", || {
        of_source(&m, &src).len() >= 3
    });
    dockerd.ok(&["rm", "-f", "c3"]);
    assert!(wait_for(
        || driver.stderr().contains("restarted"),
        Duration::from_secs(5)
    ));
    drop(driver);
    drop(dockerd);
    drop(m);
}
