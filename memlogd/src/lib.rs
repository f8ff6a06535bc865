//! memlog: the memlogd daemon's library and the protocol code every client shares.
//!
//! Shared by all binaries: [`proto`] (query requests and JSON lines),
//! [`client`] (a reader that works against memlogd and LinuxKit's memlogd),
//! [`filter`] (record selection, the same on both sides), [`sys`] (fd
//! passing), [`goflags`] (Go-style flags), [`timefmt`], [`json`],
//! [`escape`] (control characters in text output), [`safefs`] (state and
//! cursor files), [`dockerlog`] (Docker's framed log entries).
//! The daemon itself: [`ring`] and [`daemon`].

pub mod client;
pub mod daemon;
pub mod dockerlog;
pub mod escape;
pub mod filter;
pub mod goflags;
pub mod handover;
pub mod json;
pub mod kmsg;
pub mod meta;
pub mod proto;
pub mod ring;
pub mod safefs;
pub mod sys;
pub mod syslog;
pub mod timefmt;
