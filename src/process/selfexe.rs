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
    match read_only_view(&exe) {
        Ok(view) => reexec(&view),
        // No CAP_SYS_ADMIN over this mount namespace: a rootless caller.
        Err(e) if e.errno == Errno::EPERM => rootless(&exe),
        Err(e) => Err(e),
    }
}

/// A rootless caller cannot make mounts. Its containers' root is the caller
/// itself (or ids subordinate to it), so the binary is at risk only when the
/// caller could write it: owned by the caller (who may chmod it), or
/// writable through its mode. Then husk re-executes from a sealed in-memory
/// copy, as runc does when it cannot mount (`memfd` with write, grow and
/// shrink sealed); a root-owned install needs nothing, since the kernel
/// refuses the write anyway.
fn rootless(exe: &OwnedFd) -> Result<(), SelfExeError> {
    let file = nix::fcntl::open(
        "/proc/self/exe",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(fail("open /proc/self/exe"))?;
    if is_sealed(&file) {
        // Already the copy.
        return Ok(());
    }
    let st = nix::sys::stat::fstat(exe).map_err(fail("stat /proc/self/exe"))?;
    // SAFETY: faccessat with a C path and integer flags.
    let writable = st.st_uid == nix::unistd::geteuid().as_raw()
        || unsafe {
            libc::faccessat(
                libc::AT_FDCWD,
                c"/proc/self/exe".as_ptr(),
                libc::W_OK,
                libc::AT_EACCESS,
            )
        } == 0;
    if !writable {
        return Ok(());
    }
    let copy = sealed_copy(&file, st.st_size)?;
    reexec(&copy)
}

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

fn is_sealed(file: &OwnedFd) -> bool {
    // SAFETY: fcntl with an integer command on a valid descriptor; a file
    // that is not a memfd answers EINVAL.
    let seals = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & libc::F_SEAL_WRITE != 0
}

/// A memfd holding the binary, sealed against every change.
fn sealed_copy(file: &OwnedFd, size: i64) -> Result<OwnedFd, SelfExeError> {
    // SAFETY: memfd_create with a C name and integer flags; the result is a
    // new descriptor this function owns.
    let fd = unsafe {
        libc::memfd_create(
            c"husk".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(fail("memfd_create")(Errno::last()));
    }
    // SAFETY: fd was just returned by memfd_create and is owned by no one else.
    let copy = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // std's copy between files is copy_file_range/sendfile: no user-space
    // buffer.
    let dup = |fd: &OwnedFd| fd.try_clone().map(std::fs::File::from);
    let copied = dup(file).and_then(|mut src| {
        let mut dst = dup(&copy)?;
        std::io::copy(&mut src, &mut dst)
    });
    match copied {
        Ok(n) if n as i64 == size => {}
        Ok(_) => return Err(fail("copy the binary to a memfd")(Errno::EIO)),
        Err(e) => {
            return Err(fail("copy the binary to a memfd")(Errno::from_raw(
                e.raw_os_error().unwrap_or(libc::EIO),
            )));
        }
    }
    // SAFETY: fcntl with integer arguments on a valid descriptor.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(fail("seal the memfd")(Errno::last()));
    }
    Ok(copy)
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
