//! logread: print the memlogd buffer, or follow it. LinuxKit's flags and
//! output unchanged (`TIME;SOURCE;MSG`), plus selection, formats, resume
//! and reconnection. `main.rs` only maps [`run`]'s result to an exit status.

pub mod args;
pub mod cursor;
pub mod format;
pub mod session;
pub mod signals;
pub mod when;

use std::process::ExitCode;

/// Runs logread with `argv` (without the program name).
pub fn run(argv: &[std::ffi::OsString]) -> ExitCode {
    let a: args::Args = memlog::goflags::parse_or_exit("logread", argv, &args::SPEC);
    let opts = match args::check(a, memlog::timefmt::now_ns()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("logread: {e} (see logread -help)");
            return ExitCode::from(2);
        }
    };
    signals::install();
    let mut s = match session::Session::new(opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("logread: {e}");
            return ExitCode::FAILURE;
        }
    };
    match s.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(session::Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(session::Error::Output(e)) => {
            eprintln!("logread: cannot write the output: {e}");
            ExitCode::FAILURE
        }
        Err(session::Error::Msg(m)) => {
            eprintln!("logread: {m}");
            ExitCode::FAILURE
        }
    }
}
