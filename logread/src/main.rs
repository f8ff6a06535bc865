//! logread: print the memlogd buffer, or follow it, as LinuxKit's logread does
//! (`TIME;SOURCE;MSG`, `;` in SOURCE escaped as `\;`).

use argh::FromArgs;
use memlog::client::{Client, Server};
use memlog::goflags::{self, Spec};
use memlog::proto::{self, Line, Mode, Request};
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

const SPEC: Spec = Spec {
    switches: &["f", "F"],
    options: &["socket"],
};

/// Print the memlogd log buffer (dump by default), or follow it.
/// Flags may be written -name value, --name value, -name=value or --name=value.
///
/// Examples: `logread`, `logread -F`, `logread -socket /tmp/memlogdq.sock -f`.
#[derive(FromArgs, Debug)]
struct Args {
    /// memlogd query socket (default /var/run/memlogdq.sock)
    #[argh(option, default = "proto::DEFAULT_QUERY_SOCKET.into()")]
    socket: String,
    /// follow: print records as they arrive
    #[argh(switch, short = 'f')]
    follow: bool,
    /// dump the buffer, then follow
    #[argh(switch, short = 'F')]
    dump_follow: bool,
}

fn main() -> ExitCode {
    // `logread | head`: end quietly when the reader of our output goes away.
    memlog::sys::default_sigpipe();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args: Args = goflags::parse_or_exit("logread", &argv, &SPEC);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        // Only our own stdout closing is a quiet end (`logread | head`).
        Err(Error::Stdout(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Error::Stdout(e)) => {
            eprintln!("logread: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
        Err(Error::Memlogd(e)) => {
            eprintln!("logread: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Error {
    /// Writing our output failed.
    Stdout(io::Error),
    /// Talking to memlogd failed.
    Memlogd(io::Error),
}

fn run(args: &Args) -> Result<(), Error> {
    let mode = match (args.dump_follow, args.follow) {
        (true, _) => Mode::DumpFollow,
        (false, true) => Mode::Follow,
        _ => Mode::Dump,
    };
    let mut client =
        Client::connect(Path::new(&args.socket), &Request::new(mode)).map_err(|e| {
            Error::Memlogd(io::Error::new(
                e.kind(),
                format!("cannot connect to {}: {e}", args.socket),
            ))
        })?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        if !client.ready() || buf.len() >= 32 * 1024 {
            out.write_all(&buf).map_err(Error::Stdout)?;
            out.flush().map_err(Error::Stdout)?;
            buf.clear();
        }
        match client.next_line().map_err(Error::Memlogd)? {
            None => break,
            Some(Line::Record(r)) => r.write_text(&mut buf),
            Some(Line::Lost { count, .. }) => {
                out.write_all(&buf).map_err(Error::Stdout)?;
                buf.clear();
                out.flush().map_err(Error::Stdout)?;
                eprintln!("logread: {count} records lost: this reader fell behind and the buffer overwrote them");
            }
            Some(Line::Error(e)) => {
                return Err(Error::Memlogd(io::Error::other(format!(
                    "memlogd refused the request: {e}"
                ))))
            }
            Some(Line::Hello { .. } | Line::Stats(_)) => {}
        }
    }
    out.write_all(&buf).map_err(Error::Stdout)?;
    out.flush().map_err(Error::Stdout)?;
    if mode != Mode::Dump && client.server() != Server::Unknown {
        return Err(Error::Memlogd(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "memlogd closed the connection",
        )));
    }
    Ok(())
}
