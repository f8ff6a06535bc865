//! The image, built for real: `packaging/Dockerfile.host` (the Dockerfile's
//! final stage, from `scripts/build-static`'s binaries instead of the
//! rust:alpine builder, which needs a registry) built by a real dockerd,
//! then `docker run --rm IMAGE /usr/bin/memlogd -help`, and `init-shim
//! start` plus a logging `init-shim run` in one container, the record read
//! back with the image's `logread` (a BusyBox shell is bound in to run the
//! three: the image is `FROM scratch`).
//!
//! Without dockerd (or root) it says SKIP, except in CI (`CI=true`), where
//! that is a failure.

use memlog_tests::docker::{dockerd_missing, Dockerd};
use memlog_tests::{skip, workspace_dir, TempDir};
use std::process::{Command, Stdio};

const BINARIES: [&str; 5] = [
    "memlogd",
    "logread",
    "logwrite",
    "init-shim",
    "memlog-docker-logdriver",
];

#[test]
fn the_image_builds_and_runs() {
    if let Some(why) = dockerd_missing() {
        return skip(&why);
    }
    let ctx = TempDir::new("image-ctx");
    let bin = ctx.join("bin");
    let res = Command::new(workspace_dir().join("scripts/build-static"))
        .arg(&bin)
        .stdin(Stdio::null())
        .output()
        .expect("scripts/build-static");
    assert!(
        res.status.success(),
        "scripts/build-static failed:\n{}\n{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    for b in BINARIES {
        assert!(bin.join(b).is_file(), "build-static made no {b}");
    }
    std::fs::copy(
        workspace_dir().join("packaging/Dockerfile.host"),
        ctx.join("Dockerfile"),
    )
    .expect("Dockerfile");
    std::fs::create_dir_all(ctx.join("packaging/etc/init.d")).expect("mkdir");
    std::fs::copy(
        workspace_dir().join("packaging/etc/init.d/002-memlogd"),
        ctx.join("packaging/etc/init.d/002-memlogd"),
    )
    .expect("init.d script");
    let dockerd = match Dockerd::start() {
        Ok(d) => d,
        Err(e) => return skip(&e),
    };
    let image = "memlog/memlog:test";
    let out = dockerd
        .command(&[
            "build",
            "--build-arg",
            "BIN_DIR=bin",
            "-t",
            image,
            &ctx.path().display().to_string(),
        ])
        // The engine's own builder (the CLI has no buildx plugin here).
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    assert!(
        out.status.success(),
        "docker build: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let help = dockerd.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "/usr/bin/memlogd",
        "-help",
    ]);
    let text =
        String::from_utf8_lossy(&help.stdout).into_owned() + &String::from_utf8_lossy(&help.stderr);
    assert!(help.status.success(), "memlogd -help in the image: {text}");
    assert!(text.contains("-max-line-len"), "{text}");
    // init-shim start, a logging init-shim run, logread: in one container.
    let bb = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("busybox");
    let script = "/bin/busybox mkdir -p /var/run \
        && /usr/bin/init-shim start \
        && /usr/bin/init-shim run -n svc -- /bin/busybox echo hello from the image \
        && /usr/bin/logread";
    let o = dockerd.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{bb}:/bin/busybox:ro"),
        image,
        "/bin/busybox",
        "sh",
        "-c",
        script,
    ]);
    let o = String::from_utf8_lossy(&o);
    assert!(
        o.lines()
            .any(|l| l.ends_with(";svc.out;hello from the image")),
        "logread in the image: {o}"
    );
}
