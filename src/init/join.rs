//! The steps of an `exec`'d process, in two processes. The first is cloned by
//! `husk exec` into the container's cgroup but stays in the host's pid
//! namespace, where nothing in the container can see it: it joins every
//! namespace of the init (the pid namespace for its children), which makes
//! the container's root its root and cwd, closes every descriptor of the
//! host's, wipes the caller's command line and environment, and takes on the
//! process's identity and limits. Only then does it fork the second, as a
//! child of `husk exec` (CLONE_PARENT) born inside the container's pid
//! namespace, and exit. The second sets up the terminal, loads the seccomp
//! filter and execs. Both are non-dumpable from the start.

use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;

use super::{InitError, step};
use crate::plan::ProcessPlan;
use crate::process::clone::{Forked, clone_sibling};
use crate::process::exec;
use crate::process::hide::{self, Traces};
use crate::process::sync::{Channel, Msg};

/// What the exec'd process needs, decided by `husk exec` before clone.
pub struct JoinPlan<'a> {
    pub process: &'a ProcessPlan,
    pub seccomp: Option<&'a crate::seccomp::Compiled>,
    /// The container's init, whose namespaces are joined.
    pub init: &'a OwnedFd,
    /// The namespaces to join: those that differ from husk's own.
    pub ns: CloneFlags,
    /// The init's root, when the container has no mount namespace of its
    /// own (no setns brings the process there: it is entered with chroot).
    pub root: Option<OwnedFd>,
    /// The engine's console socket, when the process has a terminal.
    pub console: Option<&'a OwnedFd>,
    pub preserve_fds: u32,
    /// Where `husk exec`'s command line and environment are, to wipe.
    pub traces: Traces,
}

/// Runs the steps and never returns: it execs, or reports the failed step to
/// the parent and exits. `placed`: clone3 put this process in the cgroup
/// (otherwise the parent does and says so).
pub fn run(plan: &JoinPlan<'_>, chan: Channel, placed: bool) -> ! {
    let err = match steps(plan, &chan, placed) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    super::report(&chan, &err.to_string());
    // SAFETY: _exit skips destructors that belong to the parent's copy.
    unsafe { libc::_exit(1) }
}

fn steps(plan: &JoinPlan<'_>, chan: &Channel, placed: bool) -> Result<Infallible, InitError> {
    nix::sys::prctl::set_dumpable(false).map_err(step("prctl(PR_SET_DUMPABLE)"))?;
    crate::process::reset_signals().map_err(step("sigprocmask, signal(SIGPIPE)"))?;
    if !placed {
        chan.expect(Msg::Placed).map_err(super::sync_err)?;
    }
    // Through the host's /proc, which shows this process; the container's
    // does not (this process is never in its pid namespace).
    exec::set_oom_score_adj(plan.process)?;
    // The profile and label too: the forked process keeps them to its execve,
    // and nothing of the container's stands between this and the host's /proc.
    super::apply_lsm(plan.process)?;
    if !plan.ns.is_empty() {
        // One setns through the init's pidfd joins them all at once, the user
        // namespace first, as the kernel orders them. The mount namespace
        // brings the container's root and cwd; the pid namespace is for the
        // children.
        // SAFETY: setns takes a descriptor and flags.
        if unsafe { libc::setns(plan.init.as_raw_fd(), plan.ns.bits()) } != 0 {
            return Err(step(format!(
                "join the container's namespaces {:?}",
                plan.ns
            ))(Errno::last()));
        }
    }
    if let Some(root) = &plan.root {
        nix::unistd::fchdir(root).map_err(step("enter the container's root"))?;
        nix::unistd::chroot(".").map_err(step("chroot into the container's root"))?;
    }
    let mut keep = vec![chan.as_fd().as_raw_fd()];
    keep.extend(plan.console.map(|c| c.as_raw_fd()));
    hide::close_except(plan.preserve_fds, &keep).map_err(step("close the host's descriptors"))?;
    plan.traces.wipe("exec");
    let p = plan.process;
    let id = super::take_identity(p, plan.seccomp, plan.preserve_fds)?;
    match clone_sibling().map_err(step("fork into the container's pid namespace"))? {
        Forked::Parent { pid, pidfd } => {
            chan.send_fd(&Msg::Pid(pid), &pidfd)
                .map_err(|e| InitError::Sync(e.to_string()))?;
            // SAFETY: _exit skips destructors that belong to the parent's copy.
            unsafe { libc::_exit(0) }
        }
        Forked::Child => {}
    }
    if let Some(sock) = plan.console {
        nix::unistd::setsid().map_err(step("setsid"))?;
        crate::console::setup(sock, p.console_size, false)?;
    }
    let path = super::finish_identity(p, plan.seccomp, chan, id)?;
    if let (Some(sc), true) = (plan.seccomp, p.no_new_privileges) {
        super::load_seccomp(sc, chan)?;
    }
    // The channel is close-on-exec: the parent reads end-of-file once the
    // program runs.
    Err(exec::exec(&path, p).into())
}
