//! `memlog-docker-bench`: lines per second from a container through
//! `--log-driver memlogd` (dockerd's FIFO, decoded by memlogd) into the
//! ring, beside the same container with Docker's default `json-file`
//! driver, in the same run, alternating, so a noisy machine still gives a
//! comparable ratio.
//!
//! ```text
//! cargo build --release --workspace
//! MEMLOG_BIN_DIR=target/release cargo run --release -p memlog-tests --bin memlog-docker-bench [-- LINES ROUNDS]
//! ```
//!
//! Needs root, dockerd (`docker.io`) and BusyBox (`busybox-static`); it
//! starts its own dockerd in private directories and stops it. Each round
//! runs `yes LINE | head -n LINES` (100-byte lines) once per driver and
//! times it from `docker run -d` until every line is stored: in memlogd's
//! ring (its record count), or in json-file's log file (its line count).
//! An empty container (`true`) is timed too: the start-up both include.

use memlog_tests::bench::median;
use memlog_tests::docker::{dockerd_missing, Dockerd, Driver};
use memlog_tests::{wait_for, Memlogd};
use std::path::Path;
use std::time::{Duration, Instant};

const IMAGE: &str = "memlog-bench-bb:1";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let lines: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    if let Some(why) = dockerd_missing() {
        eprintln!("memlog-docker-bench: {why}");
        std::process::exit(2);
    }
    let m = Memlogd::start(&[
        "-buffer-size",
        "256M",
        "-max-lines",
        "4000000",
        "-rate-limit-burst",
        "0",
    ]);
    let d = Dockerd::start().unwrap_or_else(|e| {
        eprintln!("memlog-docker-bench: {e}");
        std::process::exit(2)
    });
    d.import_busybox(IMAGE);
    let name = format!("memlogd-bench{}", std::process::id());
    let _driver = Driver::start(
        Path::new("/run/docker/plugins"),
        &name,
        m.log_socket(),
        m.query_socket(),
        &[],
    );
    // 99 bytes and the newline.
    let line = "x".repeat(99);
    let script = format!("yes {line} | head -n {lines}");
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut empty: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let drivers = [name.as_str(), "json-file"];
    let mut n = 0;
    for round in 0..rounds {
        for (k, drv) in drivers.iter().enumerate() {
            for (cmd, want, out) in [
                (script.as_str(), lines, &mut times[k]),
                ("true", 0, &mut empty[k]),
            ] {
                n += 1;
                let c = format!("b{n}");
                let before = m.stat("records");
                let t = Instant::now();
                d.ok(&[
                    "run",
                    "-d",
                    "--name",
                    &c,
                    "--network",
                    "none",
                    "--log-driver",
                    drv,
                    IMAGE,
                    "sh",
                    "-c",
                    cmd,
                ]);
                d.ok(&["wait", &c]);
                let stored = if k == 0 {
                    wait_for(
                        || m.stat("records") >= before + want,
                        Duration::from_secs(300),
                    )
                } else {
                    let path =
                        String::from_utf8_lossy(&d.ok(&["inspect", "-f", "{{.LogPath}}", &c]))
                            .trim()
                            .to_owned();
                    wait_for(
                        || {
                            std::fs::read(&path)
                                .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
                                .unwrap_or(0)
                                >= want
                        },
                        Duration::from_secs(300),
                    )
                };
                let secs = t.elapsed().as_secs_f64();
                assert!(stored, "{drv}: not every line was stored");
                out.push(secs);
                eprintln!("round {round}: {drv} {cmd:.20}: {secs:.3} s");
                d.ok(&["rm", &c]);
            }
        }
    }
    let rate = |v: &[f64]| lines as f64 / median(v);
    println!("# Docker logging: {lines} lines of 100 bytes, {rounds} rounds, medians\n");
    println!("| driver | run to stored, s | empty container, s | lines/s |");
    println!("| --- | ---: | ---: | ---: |");
    for (k, drv) in ["memlogd (this driver)", "json-file"].iter().enumerate() {
        println!(
            "| {drv} | {:.3} | {:.3} | {:.0} |",
            median(&times[k]),
            median(&empty[k]),
            rate(&times[k])
        );
    }
    println!(
        "\nmemlogd / json-file lines/s: {:.2}",
        rate(&times[0]) / rate(&times[1])
    );
    println!(
        "lines/s without the container's start (run minus empty): memlogd {:.0}, json-file {:.0}",
        lines as f64 / (median(&times[0]) - median(&empty[0])).max(1e-9),
        lines as f64 / (median(&times[1]) - median(&empty[1])).max(1e-9)
    );
}
