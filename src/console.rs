//! The container's terminal: a pty made in the container's own devpts, its
//! master sent to the engine over `--console-socket` (SCM_RIGHTS, as runc
//! does), its slave the process's stdio and controlling terminal.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

#[derive(Debug, thiserror::Error)]
#[error("console: {step}: {errno}")]
pub struct ConsoleError {
    step: &'static str,
    errno: Errno,
}

fn fail(step: &'static str) -> impl FnOnce(Errno) -> ConsoleError {
    move |errno| ConsoleError { step, errno }
}

/// Makes the pty, sends its master over `socket`, and makes the slave the
/// caller's stdio and controlling terminal. Runs after pivot_root, so /dev/ptmx
/// is the container's.
/// `dev_console`: bind the slave to /dev/console (the container's init does;
/// an exec'd process does not touch the container's /dev).
pub fn setup(
    socket: &OwnedFd,
    size: Option<(u16, u16)>,
    dev_console: bool,
) -> Result<(), ConsoleError> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(fail("open /dev/ptmx"))?;
    // The container's /dev may be of its own making: only the real pty
    // multiplexer will do (CVE-2025-52565).
    let st = nix::sys::stat::fstat(&master).map_err(fail("stat /dev/ptmx"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(5, 2) {
        return Err(fail("/dev/ptmx is not the pty multiplexer (char 5:2)")(
            Errno::EPERM,
        ));
    }
    grantpt(&master).map_err(fail("grantpt"))?;
    unlockpt(&master).map_err(fail("unlockpt"))?;
    let name = ptsname_r(&master).map_err(fail("ptsname"))?;
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
        if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
            return Err(fail("set window size")(Errno::last()));
        }
    }
    // The slave straight from the master, never by a name the container could
    // have swapped for a symlink to some other file.
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let raw = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(fail("open pty slave (TIOCGPTPEER)")(Errno::last()));
    }
    // SAFETY: the ioctl returned a new descriptor that nothing else owns.
    let slave: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) };
    if dev_console {
        bind_console(&slave)?;
    }
    let fds = [master.as_raw_fd()];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(fail("send master over console socket"))?;
    drop(master);
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which the process owns.
        if unsafe { libc::dup2(slave.as_fd().as_raw_fd(), target) } < 0 {
            return Err(fail("dup2 pty slave")(Errno::last()));
        }
    }
    // SAFETY: TIOCSCTTY with argument 0 on our own session's terminal.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(fail("set controlling terminal")(Errno::last()));
    }
    Ok(())
}

/// /dev/console is the container's terminal (runtime-linux.md, /dev/console).
fn bind_console(pts: &OwnedFd) -> Result<(), ConsoleError> {
    let root = crate::rootfs::open_root(Path::new("/")).map_err(|e| ConsoleError {
        step: "open /",
        errno: e.errno,
    })?;
    // A /dev/console that is a symlink (to a procfs file, say) would have the
    // pty mounted wherever it points (CVE-2025-52565): only a plain file or
    // device, or nothing, will do.
    let p = Path::new("/dev/console");
    match crate::rootfs::stat_no_symlinks(&root, p) {
        Ok(Some(st)) if !matches!(st.st_mode & libc::S_IFMT, libc::S_IFREG | libc::S_IFCHR) => {
            return Err(fail("/dev/console is not a file or device")(Errno::EPERM));
        }
        Ok(_) => {}
        Err(e) => return Err(fail("/dev/console (it must not be a symlink)")(e)),
    }
    let target = crate::rootfs::resolve::create_in_root(
        &root,
        Path::new("/dev/console"),
        crate::rootfs::resolve::Kind::File,
    )
    .map_err(fail("create /dev/console"))?;
    mount(
        Some(&crate::rootfs::resolve::proc_fd_path(pts)),
        &crate::rootfs::resolve::proc_fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(fail("bind /dev/console"))
}

/// Receives a pty master sent with SCM_RIGHTS (the other end of [`setup`]).
pub fn recv_master(socket: &OwnedFd) -> Result<OwnedFd, ConsoleError> {
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(fail("receive pty master"))?;
    for c in msg.cmsgs().map_err(fail("receive pty master"))? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just installed this descriptor for us.
            return Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) });
        }
    }
    Err(fail("receive pty master")(Errno::EBADMSG))
}

/// Puts a terminal in raw mode until dropped, so keys reach the container as typed.
pub struct RawMode {
    fd: std::os::fd::RawFd,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    /// Raw mode on `fd` if it is a terminal; `None` otherwise.
    pub fn enable(fd: std::os::fd::BorrowedFd<'_>) -> Option<RawMode> {
        let saved = nix::sys::termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the descriptor is one of our standard ones, open for our lifetime.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        let _ = nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

/// Copies the window size of terminal `from` to `to` (a no-op if `from` is not one).
pub fn copy_winsize(from: std::os::fd::RawFd, to: std::os::fd::RawFd) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize; TIOCSWINSZ reads one.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}
