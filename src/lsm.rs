//! AppArmor and SELinux, as runc applies them: the profile or label takes
//! effect at the process's execve (`/proc/thread-self/attr/…/exec`), the
//! key label before the session keyring is made, and the mount label as a
//! `context=` option of the mounts that take one. Which LSM the host runs is
//! a fact read once in the parent ([`HostLsm::detect`]); the plan refuses a
//! profile or label the host cannot apply, naming the field.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};

/// The LSMs the host has enabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostLsm {
    pub apparmor: bool,
    pub selinux: bool,
}

impl HostLsm {
    /// AppArmor: its securityfs directory and the module's `enabled`
    /// parameter (runc's test). SELinux: selinuxfs mounted with its
    /// `enforce` file (enforcing or permissive).
    pub fn detect() -> HostLsm {
        let apparmor = Path::new("/sys/kernel/security/apparmor").is_dir()
            && std::fs::read("/sys/module/apparmor/parameters/enabled")
                .is_ok_and(|b| b.first() == Some(&b'Y'));
        HostLsm {
            apparmor,
            selinux: Path::new("/sys/fs/selinux/enforce").exists(),
        }
    }
}

/// Why a profile or label could not be set.
#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error("{field}: {what} {path}: {errno}")]
    Write {
        field: &'static str,
        what: &'static str,
        path: String,
        errno: Errno,
    },
    #[error("process.apparmorProfile: profile {0:?} is not loaded")]
    NotLoaded(String),
}

/// `/proc/thread-self/attr/SUB` of the real procfs, for writing: /proc must
/// be a procfs, and nothing on the way may be another mount (a container
/// that mounted over part of its /proc would otherwise take the write, and
/// its next process would run unconfined).
fn open_attr(sub: &str) -> Result<OwnedFd, Errno> {
    let proc = nix::fcntl::open(
        "/proc",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    is_procfs(&proc)?;
    let how = OpenHow::new()
        .flags(OFlag::O_WRONLY | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_XDEV
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    let f = nix::fcntl::openat2(
        proc.as_fd(),
        format!("thread-self/attr/{sub}").as_str(),
        how,
    )?;
    is_procfs(&f)?;
    Ok(f)
}

fn is_procfs(fd: &OwnedFd) -> Result<(), Errno> {
    match nix::sys::statfs::fstatfs(fd)?.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC {
        true => Ok(()),
        false => Err(Errno::EXDEV),
    }
}

fn write_attr(field: &'static str, sub: &str, value: &str) -> Result<(), LsmError> {
    let fail = |what, errno| LsmError::Write {
        field,
        what,
        path: format!("/proc/thread-self/attr/{sub}"),
        errno,
    };
    let f = open_attr(sub).map_err(|e| fail("open", e))?;
    nix::unistd::write(&f, value.as_bytes()).map_err(|e| fail("write", e))?;
    Ok(())
}

/// Confines the process's next program to `profile` (aa_change_onexec):
/// `attr/apparmor/exec`, or `attr/exec` on kernels before 5.8.
pub fn apparmor_on_exec(profile: &str) -> Result<(), LsmError> {
    let sub = match open_attr("apparmor/exec") {
        Err(Errno::ENOENT) => "exec",
        _ => "apparmor/exec",
    };
    match write_attr("process.apparmorProfile", sub, &format!("exec {profile}")) {
        // ENOENT from the write is AppArmor saying the profile is unknown.
        Err(LsmError::Write {
            what: "write",
            errno: Errno::ENOENT,
            ..
        }) => Err(LsmError::NotLoaded(profile.to_string())),
        r => r,
    }
}

/// The SELinux label the process's next program runs with.
pub fn selinux_on_exec(label: &str) -> Result<(), LsmError> {
    write_attr("process.selinuxLabel", "exec", label)
}

/// The SELinux label of keys the process makes (its session keyring).
pub fn selinux_key_label(label: &str) -> Result<(), LsmError> {
    write_attr("process.selinuxLabel", "keycreate", label)
}

/// The mount label as a mount option: `context="LABEL"` after the mount's
/// own data (go-selinux's FormatMountLabel).
pub fn with_mount_label(data: Option<&str>, label: &str) -> String {
    match data.filter(|d| !d.is_empty()) {
        Some(d) => format!("{d},context=\"{label}\""),
        None => format!("context=\"{label}\""),
    }
}

/// Filesystems that take a mount label: those the runtime mounts fresh for
/// the container whose files SELinux labels from the mount (runc labels the
/// same: tmpfs, devpts, mqueue and other new mounts, never procfs, sysfs,
/// cgroup hierarchies or binds).
pub fn takes_mount_label(fstype: &str) -> bool {
    matches!(fstype, "tmpfs" | "devpts" | "mqueue" | "shm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_label_follows_the_mounts_data() {
        assert_eq!(
            with_mount_label(None, "system_u:object_r:container_file_t:s0:c1,c2"),
            "context=\"system_u:object_r:container_file_t:s0:c1,c2\""
        );
        assert_eq!(
            with_mount_label(Some("mode=755,size=65536k"), "u:object_r:t"),
            "mode=755,size=65536k,context=\"u:object_r:t\""
        );
        assert_eq!(with_mount_label(Some(""), "u:r:t"), "context=\"u:r:t\"");
        assert!(takes_mount_label("tmpfs") && takes_mount_label("devpts"));
        assert!(!takes_mount_label("proc") && !takes_mount_label("bind"));
    }
}
