//! `run`: create and start in one call; in the foreground, forward signals to
//! the container, wait for it, delete it and exit with its status.

use std::os::fd::AsFd;
use std::path::Path;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::create::{CreateArgs, create};
use super::{ContainerDir, Error};
use crate::process::clone::pidfd_send_signal;

/// Signals that describe a fault of this thread: never blocked or forwarded.
const SYNCHRONOUS: [Signal; 6] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// Runs the container; returns the exit code `husk run` should exit with.
pub fn run(root: &Path, args: &CreateArgs<'_>, detach: bool, keep: bool) -> Result<i32, Error> {
    if detach {
        create(root, args)?;
        return start_or_destroy(root, args.id).map(|_| 0);
    }
    // Blocked before the container exists, so neither its exit (SIGCHLD) nor a
    // signal meant for it can arrive before we listen.
    let mut mask = SigSet::all();
    for s in SYNCHRONOUS {
        mask.remove(s);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(|e| Error::Os("sigprocmask".into(), e))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Error::Os("signalfd".into(), e))?;
    // Orphans of the container (without a pid namespace) come back to us to reap.
    let _ = nix::sys::prctl::set_child_subreaper(true);

    let created = create(root, args)?;
    start_or_destroy(root, args.id)?;
    let init = created.state.pid;
    let code = loop {
        let info = match sfd.read_signal() {
            Ok(Some(i)) => i,
            Ok(None) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::Os("read signalfd".into(), e)),
        };
        if info.ssi_signo == Signal::SIGCHLD as u32 {
            if let Some(code) = reap(init) {
                break code;
            }
        } else {
            let _ = pidfd_send_signal(created.pidfd.as_fd(), info.ssi_signo as i32);
        }
    };
    if !keep {
        let dir = ContainerDir::new(root, args.id)?;
        let _lock = dir.lock()?;
        let _ = super::delete::destroy(&dir, &created.state)?;
    }
    Ok(code)
}

/// Reaps every exited child; returns the init's exit code once it has exited.
fn reap(init: i32) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, c)) if pid.as_raw() == init => code = Some(c),
            Ok(WaitStatus::Signaled(pid, s, _)) if pid.as_raw() == init => {
                code = Some(128 + s as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => {}
        }
    }
}

fn start_or_destroy(root: &Path, id: &str) -> Result<(), Error> {
    if let Err(e) = super::start::start(root, id) {
        let _ = super::delete::delete(root, id, true);
        return Err(e);
    }
    Ok(())
}
