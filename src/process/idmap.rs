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

/// Writes a new container's maps as `caller` may: root (of every id, or of
/// a user namespace holding the ids) writes them itself; an unprivileged
/// caller writes a map of its own id alone itself (the gid map after
/// `setgroups` is set to `deny`, as the kernel requires), and any other
/// through the setuid helpers `newuidmap`/`newgidmap` (package uidmap),
/// which check the ranges against /etc/subuid and /etc/subgid.
pub fn write_maps_as(
    caller: &crate::rootless::Caller,
    pid: i32,
    uid_map: &str,
    gid_map: &str,
) -> std::io::Result<()> {
    if caller.euid == 0 {
        return write_maps(pid, uid_map, gid_map);
    }
    match own_id_only(uid_map, caller.euid) {
        true => write_map(pid, "uid_map", uid_map)?,
        false => helper("newuidmap", pid, uid_map)?,
    }
    match own_id_only(gid_map, caller.egid) {
        true => {
            write_map(pid, "setgroups", "deny")?;
            write_map(pid, "gid_map", gid_map)
        }
        false => helper("newgidmap", pid, gid_map),
    }
}

/// Whether a map is one line mapping `id` alone, which an unprivileged
/// process may write for its own child.
pub fn own_id_only(map: &str, id: u32) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let own = id.to_string();
    matches!(lines.as_slice(), [l] if l.len() == 3 && l[1] == own && l[2] == "1")
}

/// newuidmap/newgidmap PID CONTAINER HOST SIZE…
fn helper(prog: &str, pid: i32, map: &str) -> std::io::Result<()> {
    let out = std::process::Command::new(prog)
        .arg(pid.to_string())
        .args(map.split_whitespace())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{prog} (package uidmap), needed for ranges beyond your own id: {e}"),
            )
        })?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    Err(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "{prog} {pid} {}: {} ({})",
            map.split_whitespace().collect::<Vec<_>>().join(" "),
            why.trim(),
            out.status
        ),
    ))
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

#[cfg(test)]
mod tests {
    use super::own_id_only;

    #[test]
    fn only_a_single_map_of_ones_own_id_is_written_directly() {
        assert!(own_id_only("0 1000 1\n", 1000));
        assert!(own_id_only("5 1000 1", 1000));
        assert!(!own_id_only("0 1000 2\n", 1000));
        assert!(!own_id_only("0 1001 1\n", 1000));
        assert!(!own_id_only("0 1000 1\n1 100000 65536\n", 1000));
        assert!(!own_id_only("", 1000));
    }
}
