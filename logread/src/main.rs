//! logread: print the memlogd buffer, or follow it (see `lib.rs`).

fn main() -> std::process::ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    logread::run(&argv)
}
