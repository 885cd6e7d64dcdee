//! User namespace id mappings: writing a new container's maps from the parent,
//! and making a mapped user namespace for id-mapped mounts.

use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxIdMapping;

/// Writes `/proc/PID/uid_map` and `gid_map` for a child in a new user namespace.
pub fn write_maps(pid: i32, uid_map: &str, gid_map: &str) -> std::io::Result<()> {
    write_map(pid, "uid_map", uid_map)?;
    write_map(pid, "gid_map", gid_map)
}

fn write_map(pid: i32, file: &str, map: &str) -> std::io::Result<()> {
    let path = format!("/proc/{pid}/{file}");
    // The map must arrive in one write(2).
    std::fs::write(&path, map.as_bytes())
        .map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))
}

/// Mappings as the lines /proc/PID/uid_map and gid_map take.
pub fn lines(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// A user namespace with the given mappings, as a descriptor: made by a
/// short-lived child that unshares it and is killed once it is opened.
pub fn mapped_userns(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<OwnedFd, Errno> {
    let (forked, _) = super::clone::clone3(libc::CLONE_NEWUSER as u64, None)?;
    let (pid, pidfd) = match forked {
        super::clone::Forked::Child => loop {
            // Wait to be killed; nothing of the parent's state is touched.
            nix::unistd::pause();
        },
        super::clone::Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    let res = (|| {
        write_maps(pid, &lines(uids), &lines(gids))
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        open(
            format!("/proc/{pid}/ns/user").as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    })();
    let _ = super::clone::pidfd_send_signal(std::os::fd::AsFd::as_fd(&pidfd), libc::SIGKILL);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    res
}
