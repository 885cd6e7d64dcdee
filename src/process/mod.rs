//! Processes: creating the container process, its namespaces' id maps, the sync
//! channel with its parent, and the last steps before exec.

pub mod clone;
pub mod exec;
pub mod hide;
pub mod idmap;
pub mod selfexe;
pub mod sync;

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};

/// Every signal but those that describe a fault of the receiving thread
/// (SEGV, BUS, ILL, FPE, TRAP, SYS): what a process that forwards signals
/// (`run` in the foreground, `exec`, husk's PID 1) blocks and reads from a
/// signalfd.
pub fn forwardable_signals() -> SigSet {
    let mut mask = SigSet::all();
    for s in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGTRAP,
        Signal::SIGSYS,
    ] {
        mask.remove(s);
    }
    mask
}

/// The signal state a container process starts with, as under runc: nothing
/// blocked (`run` and `exec` block signals before clone) and SIGPIPE at its
/// default (Rust's runtime ignores it in husk, and an ignored signal stays
/// ignored across exec, so `yes | head` would never end by SIGPIPE).
pub fn reset_signals() -> nix::Result<()> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    // SAFETY: setting a default disposition installs no handler.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.map(drop)
}
