//! The steps of an `exec`'d process: cloned by `husk exec` into the container's
//! cgroup (and, through the parent, its pid namespace), it joins the rest of the
//! container's namespaces, takes on the process's identity and limits, and
//! execs. It runs husk's code inside the container, so it is non-dumpable from
//! its first step, and no descriptor but stdio and the preserved ones reaches
//! the program.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;

use super::{InitError, step};
use crate::plan::ProcessPlan;
use crate::process::exec;
use crate::process::sync::{Channel, Msg};

/// What the exec'd process needs, decided by `husk exec` before clone.
pub struct JoinPlan<'a> {
    pub process: &'a ProcessPlan,
    pub seccomp: Option<&'a crate::seccomp::Compiled>,
    /// The container's init, whose namespaces are joined.
    pub init: &'a OwnedFd,
    /// The namespaces to join (those that differ from husk's own; pid was
    /// joined by the parent for its children).
    pub ns: CloneFlags,
    /// The engine's console socket, when the process has a terminal.
    pub console: Option<&'a OwnedFd>,
    pub preserve_fds: u32,
}

/// Runs the steps and never returns: it execs, or reports the failed step to
/// the parent and exits.
pub fn run(plan: &JoinPlan<'_>, chan: Channel) -> ! {
    let err = match steps(plan, &chan) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = chan.send(&Msg::Error(err.to_string()));
    // SAFETY: _exit skips destructors that belong to the parent's copy.
    unsafe { libc::_exit(1) }
}

fn steps(plan: &JoinPlan<'_>, chan: &Channel) -> Result<Infallible, InitError> {
    nix::sys::prctl::set_dumpable(false).map_err(step("prctl(PR_SET_DUMPABLE)"))?;
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .map_err(step("sigprocmask"))?;
    if !plan.ns.is_empty() {
        // One setns through the init's pidfd joins them all at once, the user
        // namespace first, as the kernel orders them.
        // SAFETY: setns takes a descriptor and flags.
        if unsafe { libc::setns(plan.init.as_raw_fd(), plan.ns.bits()) } != 0 {
            return Err(step(format!(
                "join the container's namespaces {:?}",
                plan.ns
            ))(Errno::last()));
        }
    }
    let p = plan.process;
    if let Some(sock) = plan.console {
        nix::unistd::setsid().map_err(step("setsid"))?;
        crate::console::setup(sock, p.console_size, false)?;
    }
    let path = super::become_the_process(p, plan.seccomp, chan, plan.preserve_fds)?;
    if let (Some(sc), true) = (plan.seccomp, p.no_new_privileges) {
        super::load_seccomp(sc, chan)?;
    }
    // The channel is close-on-exec: the parent reads end-of-file once the
    // program runs.
    Err(exec::exec(&path, p).into())
}
