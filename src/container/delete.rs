//! `delete`: remove a stopped container's resources (runtime.md, Operations:
//! delete); `--force` kills a running one first. Poststop hooks run last.

use std::os::fd::AsFd;
use std::path::Path;

use super::{ContainerDir, Error, State, StateError, Status};
use crate::hooks::{self, HookState};
use crate::process::clone::{pidfd_open, pidfd_wait_exit};

/// Deletes the container; returns warnings (failed poststop hooks) to log.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<Vec<String>, Error> {
    let dir = ContainerDir::new(root, id)?;
    let _lock = match dir.lock() {
        Ok(l) => l,
        Err(StateError::NotExist(_)) if force => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    let st = match dir.load() {
        Ok(st) => st,
        // Another user's state is not ours to act on, nor to remove.
        Err(e @ StateError::NotPrivate { .. }) => return Err(e.into()),
        // A directory without a readable state is what a create that died
        // leaves (its lock, now ours, was free): --force takes back all its
        // record names (super::making).
        Err(_) if force => {
            dir.take_back()?;
            return Ok(vec![]);
        }
        Err(e) => return Err(e.into()),
    };
    match st.status(&dir) {
        Status::Stopped => {}
        // As runc: a created container never ran the user's process, so
        // deleting it just ends the waiting init.
        Status::Created => stop(&st)?,
        _ if force => stop(&st)?,
        status => {
            return Err(Error::DeleteNotStopped {
                id: id.to_string(),
                status,
            });
        }
    }
    destroy(&dir, &st)
}

/// Kills the container and waits until its init has exited.
fn stop(st: &State) -> Result<(), Error> {
    let pidfd = pidfd_open(st.pid).ok();
    match st.procs_cgroup() {
        Some(cg) => {
            crate::cgroups::signal_all(cg, libc::SIGKILL)?;
            st.thaw_now();
        }
        None => {
            let _ = super::kill::signal_init(st, libc::SIGKILL);
        }
    }
    if let Some(fd) = pidfd {
        pidfd_wait_exit(fd.as_fd(), 10_000);
    }
    Ok(())
}

/// Removes what create made, then runs the poststop hooks.
pub fn destroy(dir: &ContainerDir, st: &State) -> Result<Vec<String>, Error> {
    if st.shared_pid_ns
        && let Some(cg) = st.procs_cgroup()
    {
        // Without a pid namespace the init's death does not end the rest.
        crate::cgroups::signal_all(cg, libc::SIGKILL)?;
        st.thaw_now();
    }
    // The systemd driver's scope: systemd removes its cgroup when the unit
    // stops. Should systemd not answer, the cgroup is still removed below
    // and the error reported after the rest is done.
    let unit_stopped = match &st.systemd_unit {
        Some(unit) => crate::cgroups::systemd::stop(unit, st.cgroup.as_deref()),
        None => Ok(()),
    };
    if let Some(cg) = &st.cgroup
        && st.cgroup_owned
    {
        crate::cgroups::remove(cg)?;
        if let Some(top) = &st.cgroup_made_from {
            crate::cgroups::remove_made_parents(cg, top);
        }
    }
    crate::cgroups::v1::remove(&st.cgroup_v1);
    if let Some(below) = st.shared_mounts_above {
        crate::rootfs::detach_shared_rootfs(&st.rootfs, Some(below));
    }
    dir.remove()?;
    unit_stopped?;
    let hs = HookState {
        oci_version: &st.oci_version,
        id: &st.id,
        status: "stopped",
        pid: 0,
        bundle: &st.bundle,
        annotations: &st.annotations,
    };
    Ok(hooks::run_all("poststop", &st.poststop, &hs)
        .into_iter()
        .map(|e| e.to_string())
        .collect())
}
