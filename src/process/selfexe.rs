//! The husk binary, as the container can see it. The init runs husk's code
//! inside the container, so its /proc/PID/exe is the husk binary; a container
//! process that opens it (or that runs it, through `/proc/self/exe` as its
//! command or as a script's interpreter) and reopens it for writing once it has
//! exited would overwrite the runtime on the host (runc CVE-2019-5736).
//!
//! Before making a container process, husk re-executes itself from a read-only
//! view of its own binary: a private, detached bind mount of the file, made
//! read-only. Writes through any path the container can reach then fail with
//! EROFS, the binary's page cache is shared (nothing is copied), and the mount
//! goes away with the last process executing from it. runc ≥ 1.2 does the same
//! with a private overlayfs mount.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

/// Why the binary could not be re-executed read-only.
#[derive(Debug, thiserror::Error)]
#[error("protect the husk binary from the container: {step}: {errno}")]
pub struct SelfExeError {
    pub step: &'static str,
    pub errno: Errno,
}

fn fail(step: &'static str) -> impl FnOnce(Errno) -> SelfExeError {
    move |errno| SelfExeError { step, errno }
}

/// Returns when this process already runs from a read-only mount; otherwise
/// re-executes it (same arguments and environment) from one, and does not
/// return.
pub fn ensure_read_only() -> Result<(), SelfExeError> {
    let exe = nix::fcntl::open(
        "/proc/self/exe",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(fail("open /proc/self/exe"))?;
    let fs = nix::sys::statvfs::fstatvfs(&exe).map_err(fail("statvfs /proc/self/exe"))?;
    if fs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        // Installed on a read-only filesystem, or already re-executed.
        return Ok(());
    }
    let view = read_only_view(&exe)?;
    reexec(&view)
}

/// A detached bind mount of the file `exe` refers to, made read-only.
fn read_only_view(exe: &OwnedFd) -> Result<OwnedFd, SelfExeError> {
    use crate::rootfs::{clone_tree, mount_setattr};
    let view = clone_tree(exe, false).map_err(fail("open_tree"))?;
    let ro = libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NODEV;
    mount_setattr(&view, false, ro, 0, None).map_err(fail("mount_setattr(MOUNT_ATTR_RDONLY)"))?;
    Ok(view)
}

/// execveat(view, "", argv, envp, AT_EMPTY_PATH) with this process's own
/// arguments and environment.
fn reexec(view: &OwnedFd) -> Result<(), SelfExeError> {
    let to_c = |s: &std::ffi::OsStr| CString::new(s.as_bytes()).ok();
    let args: Vec<CString> = std::env::args_os().filter_map(|a| to_c(&a)).collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of C strings that live
    // across the call; on success it does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            view.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(fail("execveat")(Errno::last()))
}
