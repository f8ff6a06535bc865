//! init-shim: the glue an init system needs around memlogd. `start` starts
//! memlogd with its sockets already bound, `run` runs a command with its
//! output logged to memlogd, `fifo` makes a FIFO for a container runtime and
//! hands it to memlogd, `dump` prints one source's records. Every verb that
//! needs memlogd falls back to plain files in a log directory when it is
//! absent, and says so once on stderr.

mod dump;
mod fifo;
mod names;
mod probe;
mod run;
mod start;

use std::process::ExitCode;

const USAGE: &str = "\
Usage: init-shim COMMAND [FLAGS] [ARGS]

Glue between an init system and memlogd (LinuxKit compatible).

Commands:
  start [MEMLOGD FLAGS]          bind memlogd's sockets, start memlogd with them
                                 as fds 3 and 4, return once it serves
  run [-n NAME] [-tee] -- CMD..  run CMD with stdout logged as NAME.out and
                                 stderr as NAME; exit with CMD's status
  fifo NAME                      create a FIFO for a container runtime (its path
                                 is printed) and hand its read end to memlogd
  dump NAME...                   print the records of these sources

Flags may be written -name value, --name value, -name=value or --name=value.
`run` and `fifo` take -socket PATH (memlogd's log socket, default
/var/run/linuxkit-external-logging.sock); `dump` takes -socket PATH (the
query socket, default /var/run/memlogdq.sock), as logread does.
See `init-shim COMMAND -help` for each command's flags.
";

fn main() -> ExitCode {
    let mut argv = std::env::args_os().skip(1);
    let verb = argv.next();
    let rest: Vec<std::ffi::OsString> = argv.collect();
    let verb = verb.map(|v| v.to_string_lossy().into_owned());
    let status = match verb.as_deref() {
        Some("start") => start::main(&rest),
        Some("run") => run::main(&rest),
        Some("fifo") => fifo::main(&rest),
        Some("dump") => dump::main(&rest),
        Some("help" | "-h" | "-help" | "--help") => {
            print!("{USAGE}");
            0
        }
        Some(other) => {
            eprintln!("init-shim: unknown command {other:?} (see init-shim -help)");
            2
        }
        None => {
            eprint!("{USAGE}");
            2
        }
    };
    ExitCode::from(status)
}
