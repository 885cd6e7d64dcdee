//! A minimal PID 1 (`husk init -- CMD…`, or the `run.husk.init` annotation):
//! it starts CMD as its child, forwards every catchable signal to it (or to
//! its process group with `-g`), reaps every zombie that reaches it, and exits
//! with CMD's status (128+N when CMD was killed by signal N), as tini and
//! catatonit do. It runs with the container process's own identity: it is
//! exec'd as the last step, after the user, capabilities and seccomp filter
//! are in place.

use std::ffi::CString;

use nix::errno::Errno;
use nix::sys::signal::{SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

/// The annotation that makes the container's first process husk's init.
pub const ANNOTATION: &str = "run.husk.init";
/// With it also "true", signals go to CMD's process group.
pub const ANNOTATION_GROUP: &str = "run.husk.init.process-group";

/// Runs CMD under the reaper; returns the exit code (only on set-up errors
/// before CMD exists is it an error).
pub fn run(cmd: &[String], group: bool) -> Result<i32, String> {
    // Not dumpable: other processes of the container cannot open /proc/1/exe
    // or read its memory.
    let _ = nix::sys::prctl::set_dumpable(false);
    if cmd.is_empty() {
        return Err("husk init: a command to run is required (husk init -- CMD…)".into());
    }
    let args: Vec<CString> = cmd
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| format!("{a:?}: contains NUL")))
        .collect::<Result<_, _>>()?;
    let mask = crate::process::forwardable_signals();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(|e| format!("sigprocmask: {e}"))?;
    let sfd =
        SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(|e| format!("signalfd: {e}"))?;
    // Without a pid namespace of its own, orphans come to us only as subreaper.
    if std::process::id() != 1 {
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    // SAFETY: this process is single-threaded; the child only calls
    // async-signal-safe functions before exec.
    let child = match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            if group {
                let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
                // SAFETY: tcsetpgrp on stdin; fails harmlessly without a tty.
                unsafe {
                    libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                    libc::tcsetpgrp(0, libc::getpgrp());
                    libc::signal(libc::SIGTTOU, libc::SIG_DFL);
                }
            }
            // CMD starts as it would without an init: nothing blocked (husk's
            // handoff blocks signals across exec, and so do we) and SIGPIPE
            // at its default, not ignored as in husk.
            let _ = crate::process::reset_signals();
            let e = nix::unistd::execvp(&args[0], &args).unwrap_err();
            eprintln!("husk init: exec {}: {e}", cmd[0]);
            // SAFETY: _exit in the forked child.
            unsafe { libc::_exit(if e == Errno::ENOENT { 127 } else { 126 }) }
        }
        ForkResult::Parent { child } => child,
    };
    let target = if group {
        Pid::from_raw(-child.as_raw())
    } else {
        child
    };
    loop {
        let info = match sfd.read_signal() {
            Ok(Some(i)) => i,
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("read signalfd: {e}")),
        };
        if info.ssi_signo == Signal::SIGCHLD as u32 {
            if let Some(code) = reap_all(child) {
                return Ok(code);
            }
        } else if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
            let _ = kill(target, sig);
        } else {
            // Real-time signals, which nix's Signal does not name.
            // SAFETY: kill with a pid and a signal number.
            unsafe { libc::kill(target.as_raw(), info.ssi_signo as i32) };
        }
    }
}

/// Reaps every exited child; returns CMD's exit code once it has exited.
fn reap_all(child: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, c)) if pid == child => code = Some(c),
            Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => code = Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => {}
        }
    }
}
