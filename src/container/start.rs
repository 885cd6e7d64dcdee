//! `start`: release a created container's init to exec the user process
//! (runtime.md, Operations: start), then run the poststart hooks.

use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

use super::{Error, Status, load};
use crate::hooks::{self, HookState};

/// Waits until the init has exec'd the user process (or died): its end of the
/// fifo is close-on-exec, and a pipe's writer sees POLLERR once no reader is left.
fn wait_for_exec(fd: &std::os::fd::OwnedFd) {
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(fd),
        events: 0,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the call's duration.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        return;
    }
}

pub fn start(root: &Path, id: &str) -> Result<(), Error> {
    let (dir, st) = load(root, id)?;
    let _lock = dir.lock()?;
    match st.status(&dir) {
        Status::Created => {}
        Status::Stopped => return Err(Error::StartStopped(id.to_string())),
        status => {
            return Err(Error::StartNotCreated {
                id: id.to_string(),
                status,
            });
        }
    }
    let fifo = dir.fifo();
    // Non-blocking: if the init is gone there is no reader and this fails at
    // once with ENXIO instead of hanging.
    let fd = match open(
        &fifo,
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENXIO | Errno::ENOENT) => return Err(Error::StartStopped(id.to_string())),
        Err(e) => return Err(Error::Os(format!("open {}", fifo.display()), e)),
    };
    nix::unistd::write(&fd, b"0").map_err(|e| Error::Os(format!("write {}", fifo.display()), e))?;
    wait_for_exec(&fd);
    drop(fd);
    let _ = std::fs::remove_file(&fifo);

    if !st.poststart.is_empty() {
        let hs = HookState {
            oci_version: &st.oci_version,
            id: &st.id,
            status: "running",
            pid: st.pid,
            bundle: &st.bundle,
            annotations: &st.annotations,
        };
        if let Err(e) = hooks::run("poststart", &st.poststart, &hs) {
            // runtime.md, Lifecycle step 9: a failing poststart hook stops the container.
            super::kill::signal_init(&st, libc::SIGKILL).ok();
            return Err(e.into());
        }
    }
    Ok(())
}
