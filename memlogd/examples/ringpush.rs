//! Ring cost alone: pushes 20M 100-byte records through a ring of the given
//! size (default 64 MiB) and prints ns per push. `cargo run --release -p memlogd --example ringpush -- 2097152`
fn main() {
    let cap: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(64 << 20);
    let n: u64 = 20_000_000;
    let mut r = memlog::ring::Ring::new(cap, u64::MAX);
    let msg = [b'x'; 99];
    for _ in 0..(cap / 100) as u64 {
        r.push(0, b"w1", &msg, 0);
    }
    let t = std::time::Instant::now();
    for i in 0..n {
        r.push(i as i64, b"w1", &msg, 0);
    }
    let e = t.elapsed();
    println!(
        "cap {} MiB: {:.1} ns/push, {:.1} M/s",
        cap >> 20,
        e.as_nanos() as f64 / n as f64,
        n as f64 / e.as_secs_f64() / 1e6
    );
}
