//! `kill`: send a signal to the container's init, or with `--all` to every
//! process in its cgroup (runtime.md, Operations: kill).

use std::os::fd::AsFd;
use std::path::Path;

use super::{Error, State, Status, load};
use crate::process::clone::{pidfd_open, pidfd_send_signal};

pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<(), Error> {
    let (dir, st) = load(root, id)?;
    let status = st.status(&dir);
    if status == Status::Stopped {
        // As runc: `kill --all` of a stopped container succeeds (containerd's
        // shim sends it on every stop, the process may be gone already),
        // still signalling whatever is left in its cgroup.
        if all {
            if let Some(cg) = st.procs_cgroup() {
                crate::cgroups::signal_all(cg, sig)?;
            }
            return Ok(());
        }
        return Err(Error::NotRunning(id.to_string()));
    }
    if all && let Some(cg) = st.procs_cgroup() {
        crate::cgroups::signal_all(cg, sig)?;
        if status == Status::Paused && sig == libc::SIGKILL {
            // Frozen processes only die once thawed.
            st.thaw_now();
        }
        return Ok(());
    }
    signal_init(&st, sig)
}

/// Signals the init through a pidfd, after checking the pid still belongs to
/// the container: a pid reused by another process is never signalled.
pub fn signal_init(st: &State, sig: i32) -> Result<(), Error> {
    let pidfd = pidfd_open(st.pid).map_err(|_| Error::NotRunning(st.id.clone()))?;
    // Checked after the pidfd is held, so the pid cannot be reused in between.
    if !st.init_alive() {
        return Err(Error::NotRunning(st.id.clone()));
    }
    pidfd_send_signal(pidfd.as_fd(), sig).map_err(|e| match e {
        nix::errno::Errno::ESRCH => Error::NotRunning(st.id.clone()),
        e => Error::Os(format!("kill {}", st.pid), e),
    })
}

/// Parses a signal as runc does: a number, or a name with or without "SIG".
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rt) = name.strip_prefix("RTMIN") {
        // An offset past the range (or signed: "RTMIN+-1") is no signal.
        let off: u8 = if rt.is_empty() {
            0
        } else {
            rt.strip_prefix('+')?.parse().ok()?
        };
        let n = libc::SIGRTMIN() + i32::from(off);
        return (n <= libc::SIGRTMAX()).then_some(n);
    }
    if let Some(rt) = name.strip_prefix("RTMAX") {
        let off: u8 = if rt.is_empty() {
            0
        } else {
            rt.strip_prefix('-')?.parse().ok()?
        };
        let n = libc::SIGRTMAX() - i32::from(off);
        return (n >= libc::SIGRTMIN()).then_some(n);
    }
    format!("SIG{name}")
        .parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL"), Some(9));
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("10"), Some(10));
        assert_eq!(parse_signal("USR1"), Some(libc::SIGUSR1));
        assert_eq!(parse_signal("RTMIN+1"), Some(libc::SIGRTMIN() + 1));
        for bad in [
            "RTMIN+-5",
            "RTMAX--5",
            "RTMIN+2147483647",
            "RTMAX-99999999999",
            "RTMIN+40",
        ] {
            assert_eq!(parse_signal(bad), None, "{bad}");
        }
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("99"), None);
    }
}
