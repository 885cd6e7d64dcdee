//! What a `create` in progress may have made, recorded in the container's
//! directory (`creating.json`) *before* it is made: the cgroup directories
//! (with the parents it will make), the mount it will put on a shared
//! rootfs, the init by pid and start time. Whatever instant create dies at
//! (SIGKILL runs no undo), the record names all of it, and `delete --force
//! ID`, or the next `create` of that id, takes it back. runc and crun leak
//! cgroups in that case.
//!
//! The record is appended to, a whole JSON line per step (one small write
//! each, so a kill leaves whole lines; the last line that parses is the
//! record), and stays until delete removes the directory.
//!
//! Create holds the container directory's lock for its whole life, so a
//! directory with no state whose lock is free is one whose create is gone.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::state::process_start;
use crate::cgroups::{self, v1::Placed};
use crate::process::clone::{pidfd_open, pidfd_send_signal, pidfd_wait_exit};

/// The record; every field is "made, or about to be".
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Making {
    /// The container's cgroup in the unified hierarchy, when create makes it
    /// (one that was there already is not create's to remove).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
    /// Its topmost parent that create makes too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_made_from: Option<PathBuf>,
    /// The container's directories in the v1 hierarchies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroup_v1: Vec<Placed>,
    /// The systemd driver's scope (its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// The init: pid and start time (a reused pid is not taken for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<(i32, u64)>,
    /// A rootfs in the runtime's mount namespace, and the mount id found
    /// there before create mounted on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_rootfs: Option<(PathBuf, Option<u64>)>,
}

impl Making {
    /// Takes back everything recorded, as far as it exists: the init (killed
    /// through a pidfd, `pidfd` when the caller holds one), then the
    /// systemd scope and the cgroups (any process still in one create made is killed: it can only
    /// be the container's), then the rootfs mount.
    pub fn undo(&self, pidfd: Option<BorrowedFd<'_>>) {
        let opened;
        let fd = match (pidfd, self.child) {
            (Some(fd), _) => Some(fd),
            (None, Some((pid, start))) => {
                let same = || process_start(pid).is_some_and(|(s, _)| s == start);
                // Checked again once the pidfd pins the process.
                opened = pidfd_open(pid).ok().filter(|_| same());
                opened.as_ref().map(|f| f.as_fd())
            }
            (None, None) => None,
        };
        if let Some(fd) = fd {
            let _ = pidfd_send_signal(fd, libc::SIGKILL);
            pidfd_wait_exit(fd, 10_000);
        }
        if let Some(unit) = &self.systemd_unit {
            let _ = cgroups::systemd::stop(unit, self.cgroup.as_deref());
        }
        if let Some(cg) = &self.cgroup
            && cgroups::remove(cg).is_ok()
            && let Some(top) = &self.cgroup_made_from
        {
            cgroups::remove_made_parents(cg, top);
        }
        cgroups::v1::remove(&self.cgroup_v1);
        if let Some((rootfs, below)) = &self.shared_rootfs {
            crate::rootfs::detach_shared_rootfs(rootfs, *below);
        }
    }
}
