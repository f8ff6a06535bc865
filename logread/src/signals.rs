//! Ending cleanly on SIGINT and SIGTERM (exit status 0), and quietly on
//! SIGPIPE (the default action: `logread | head` just stops).
//!
//! While logread waits for memlogd, everything it printed is flushed and
//! the cursor file is saved, so the handler may end the process at once
//! (`_exit(0)` is async-signal-safe). While it is busy printing, the
//! handler only marks the signal; the main loop sees [`pending`], finishes
//! the line at hand, flushes, and returns.

use std::sync::atomic::{AtomicBool, Ordering};

static WAITING: AtomicBool = AtomicBool::new(false);
static PENDING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    if WAITING.load(Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe and takes no pointers.
        unsafe { libc::_exit(0) };
    }
    PENDING.store(true, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT and SIGTERM, and the default action
/// for SIGPIPE.
pub fn install() {
    memlog::sys::default_sigpipe();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is plain data; zeroed is a valid start (empty
        // mask, no flags).
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: `sa` is a valid sigaction; the handler only touches
        // atomics and calls _exit; the old action is not needed.
        unsafe {
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Runs `f`, a wait for memlogd, during which a signal ends the process
/// at once. Call it only with all output flushed.
pub fn waiting<T>(f: impl FnOnce() -> T) -> T {
    // Mark first, then look: a signal between the two is seen either by the
    // handler (WAITING set) or here (PENDING set), never by neither.
    WAITING.store(true, Ordering::SeqCst);
    if PENDING.load(Ordering::SeqCst) {
        // SAFETY: as in the handler; everything was flushed by the caller.
        unsafe { libc::_exit(0) };
    }
    let r = f();
    WAITING.store(false, Ordering::SeqCst);
    r
}

/// True once SIGINT or SIGTERM arrived while logread was busy.
pub fn pending() -> bool {
    PENDING.load(Ordering::SeqCst)
}
