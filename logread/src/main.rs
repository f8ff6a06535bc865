//! logread: print the memlogd buffer, or follow it (see `lib.rs`).

fn main() -> std::process::ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    logread::run(&argv)
}
