//! `tmpcopyup`: a tmpfs mounted over a directory of the image starts with a
//! copy of what that directory held (podman's `--read-only` puts such
//! tmpfs mounts on /run, /tmp and /var/tmp). The directory is image
//! content: everything is read and made through directory descriptors, no
//! symlink is followed (links are copied as links), and the depth is bounded.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, fstatat};

/// Directories deeper than this are not copied further.
const MAX_DEPTH: usize = 32;

/// A readable descriptor of the directory `name` in `dir` (`.` for itself),
/// not following a symlink.
pub fn open_dir(dir: &impl AsFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Copies the entries of `src` into `dst`, keeping types, modes, owners
/// and symlink targets.
pub fn copy_tree(src: &OwnedFd, dst: &OwnedFd) -> Result<(), Errno> {
    copy_at(src, dst, 0)
}

fn copy_at(src: &OwnedFd, dst: &OwnedFd, depth: usize) -> Result<(), Errno> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let names: Vec<OsString> = nix::dir::Dir::from_fd(src.try_clone().map_err(|_| Errno::EBADF)?)?
        .iter()
        .flatten()
        .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
        .filter(|n| n != "." && n != "..")
        .collect();
    for name in names {
        let st = fstatat(src, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let cname = CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                nix::sys::stat::mkdirat(dst, name.as_os_str(), mode)?;
                let (s, d) = (
                    open_dir(src, name.as_os_str())?,
                    open_dir(dst, name.as_os_str())?,
                );
                copy_at(&s, &d, depth + 1)?;
                nix::unistd::fchown(&d, Some(st.st_uid.into()), Some(st.st_gid.into()))?;
                nix::sys::stat::fchmod(&d, mode)?;
            }
            libc::S_IFREG => {
                let from = openat(
                    src,
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                let to = openat(
                    dst,
                    name.as_os_str(),
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )?;
                let (mut f, mut t) = (std::fs::File::from(from), std::fs::File::from(to));
                std::io::copy(&mut f, &mut t)
                    .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
                // Owner first: chown clears the setuid and setgid bits.
                nix::unistd::fchown(&t, Some(st.st_uid.into()), Some(st.st_gid.into()))?;
                nix::sys::stat::fchmod(&t, mode)?;
            }
            libc::S_IFLNK => {
                let target = nix::fcntl::readlinkat(src, name.as_os_str())?;
                nix::unistd::symlinkat(target.as_os_str(), dst, name.as_os_str())?;
                nix::unistd::fchownat(
                    dst,
                    name.as_os_str(),
                    Some(st.st_uid.into()),
                    Some(st.st_gid.into()),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )?;
            }
            kind => {
                // Devices, fifos, sockets: the node itself, as cp -a makes it.
                // SAFETY: mknodat with a directory descriptor and a C name.
                let r = unsafe {
                    libc::mknodat(
                        dst.as_raw_fd(),
                        cname.as_ptr(),
                        kind | mode.bits(),
                        st.st_rdev,
                    )
                };
                if r != 0 {
                    return Err(Errno::last());
                }
            }
        }
    }
    Ok(())
}
