//! clone3(2): the container process is created with all its new namespaces at
//! once, born inside its cgroup, with a pidfd for the parent.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// `struct clone_args` (linux/sched.h), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// What clone3 returned on each side.
pub enum Forked {
    /// In the parent: the child's pid and a pidfd for it.
    Parent {
        pid: i32,
        pidfd: OwnedFd,
    },
    Child,
}

/// Creates a child process like fork(2), in the new namespaces `ns_flags`, and in
/// the cgroup `cgroup` if given. Returns whether the cgroup placement was done,
/// so the caller can fall back to writing cgroup.procs.
///
/// The caller must be single-threaded: the child is a copy of the parent's only
/// thread and runs ordinary Rust code.
pub fn clone3(ns_flags: u64, cgroup: Option<BorrowedFd<'_>>) -> Result<(Forked, bool), Errno> {
    match raw_clone3(ns_flags, cgroup) {
        Err(Errno::EINVAL | Errno::E2BIG | Errno::EOPNOTSUPP) if cgroup.is_some() => {
            // Older kernel or a cgroup that refuses direct placement.
            Ok((raw_clone3(ns_flags, None)?, false))
        }
        r => Ok((r?, cgroup.is_some())),
    }
}

/// Forks a sibling: a child whose parent is this process's parent
/// (CLONE_PARENT), so the process that started the chain can wait for it
/// and hold a pidfd of its own child. Used to enter a pid namespace (which
/// only children do) from a process that was kept out of it.
pub fn clone_sibling() -> Result<Forked, Errno> {
    // exit_signal must be 0 with CLONE_PARENT: the child inherits ours.
    raw_clone3_args(libc::CLONE_PARENT as u64, None, 0)
}

fn raw_clone3(ns_flags: u64, cgroup: Option<BorrowedFd<'_>>) -> Result<Forked, Errno> {
    raw_clone3_args(ns_flags, cgroup, libc::SIGCHLD as u64)
}

fn raw_clone3_args(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
    exit_signal: u64,
) -> Result<Forked, Errno> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: without CLONE_VM the child gets a copy of the address space, as
    // with fork(2); `args` is a valid clone_args of the size passed, and `pidfd`
    // outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as i32,
            // SAFETY: the kernel wrote a new descriptor that nothing else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// pidfd_open(2): a descriptor that refers to one process, so later signals
/// cannot reach another process that reused the pid.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain integer arguments; a returned descriptor is new and ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        Err(Errno::last())
    } else {
        // SAFETY: as above.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// pidfd_send_signal(2).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> Result<(), Errno> {
    // SAFETY: no siginfo is passed; the descriptor is valid for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Waits until the process behind a pidfd has exited (or the timeout passes).
/// Returns whether it exited.
pub fn pidfd_wait_exit(pidfd: BorrowedFd<'_>, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the call's duration.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        return r > 0;
    }
}
