//! `run`: create and start in one call; in the foreground, forward signals to
//! the container, wait for it, delete it and exit with its status.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::signal::{SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::create::{CreateArgs, create};
use super::{ContainerDir, Error};
use crate::process::clone::pidfd_send_signal;

/// Runs the container; returns the exit code `husk run` should exit with.
pub fn run(root: &Path, args: &CreateArgs<'_>, detach: bool, keep: bool) -> Result<i32, Error> {
    if detach {
        create(root, args)?;
        return start_or_destroy(root, args.id).map(|_| 0);
    }
    let sfd = block_signals()?;
    // Orphans of the container (without a pid namespace) come back to us to reap.
    let _ = nix::sys::prctl::set_child_subreaper(true);

    // Without --console-socket, a terminal is served here: the master comes
    // back over a socket pair and is copied to and from our own stdio.
    let pair = match args.console_socket {
        None => Some(console_pair()?),
        Some(_) => None,
    };
    let local = CreateArgs {
        id: args.id,
        bundle: args.bundle,
        pid_file: args.pid_file,
        console_socket: args.console_socket,
        console_fd: pair.as_ref().map(|p| &p.1),
        opts: args.opts.clone(),
        systemd_cgroup: args.systemd_cgroup,
    };
    let created = create(root, &local)?;
    let master = match (&pair, created.terminal) {
        (Some((ours, _)), true) => match crate::console::recv_master(ours) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = super::delete::delete(root, args.id, true);
                return Err(Error::Init(e.to_string()));
            }
        },
        _ => None,
    };
    drop(pair);
    start_or_destroy(root, args.id)?;
    let (pid, pidfd) = (created.state.pid, &created.pidfd);
    let code = match master {
        Some(m) => serve_terminal(&sfd, pid, pidfd, m)?,
        None => wait_forwarding(&sfd, pid, pidfd)?,
    };
    if !keep {
        let dir = ContainerDir::new(root, args.id)?;
        let _lock = dir.lock()?;
        let _ = super::delete::destroy(&dir, &created.state)?;
    }
    Ok(code)
}

/// Blocks every signal but the synchronous ones and returns a signalfd for
/// them: done before the process exists, so neither its exit (SIGCHLD) nor a
/// signal meant for it can arrive before we listen.
pub(super) fn block_signals() -> Result<SignalFd, Error> {
    let mask = crate::process::forwardable_signals();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(|e| Error::Os("sigprocmask".into(), e))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(|e| Error::Os("signalfd".into(), e))
}

/// A socket pair over which the process's pty master comes back, for a
/// terminal served by husk itself.
pub(super) fn console_pair() -> Result<(OwnedFd, OwnedFd), Error> {
    nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::Os("socketpair".into(), e))
}

/// Waits for the process `pid` to exit, forwarding every other signal to it.
pub(super) fn wait_forwarding(sfd: &SignalFd, pid: i32, pidfd: &OwnedFd) -> Result<i32, Error> {
    loop {
        let info = match sfd.read_signal() {
            Ok(Some(i)) => i,
            Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::Os("read signalfd".into(), e)),
        };
        if info.ssi_signo == Signal::SIGCHLD as u32 {
            if let Some(code) = reap(pid) {
                return Ok(code);
            }
        } else {
            let _ = pidfd_send_signal(pidfd.as_fd(), info.ssi_signo as i32);
        }
    }
}

/// As [`wait_forwarding`], while copying our stdin to the pty master and the
/// master to our stdout, with our terminal (if any) in raw mode and its window
/// size passed on.
pub(super) fn serve_terminal(
    sfd: &SignalFd,
    pid: i32,
    pidfd: &OwnedFd,
    master: OwnedFd,
) -> Result<i32, Error> {
    use std::io::Write;
    let stdin = std::io::stdin();
    let _raw = crate::console::RawMode::enable(stdin.as_fd());
    crate::console::copy_winsize(0, master.as_raw_fd());
    let mut stdin_open = true;
    let mut master_open = true;
    let mut code = None;
    let mut buf = [0u8; 8192];
    let mut out = std::io::stdout().lock();
    while code.is_none() || master_open {
        let mut fds = [
            libc::pollfd {
                fd: sfd.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if master_open { master.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open && code.is_none() { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Once the init has exited, only drain what the pty still holds.
        let timeout = if code.is_some() { 100 } else { -1 };
        // SAFETY: three valid pollfd structs for the call's duration.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout) };
        if n < 0 {
            if nix::errno::Errno::last() == nix::errno::Errno::EINTR {
                continue;
            }
            return Err(Error::Os("poll".into(), nix::errno::Errno::last()));
        }
        if n == 0 {
            break;
        }
        if fds[0].revents != 0
            && let Ok(Some(info)) = sfd.read_signal()
        {
            match info.ssi_signo as i32 {
                libc::SIGCHLD => code = code.or(reap(pid)),
                libc::SIGWINCH => crate::console::copy_winsize(0, master.as_raw_fd()),
                sig => {
                    let _ = pidfd_send_signal(pidfd.as_fd(), sig);
                }
            }
        }
        if fds[1].revents != 0 {
            match nix::unistd::read(master.as_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => master_open = false,
                Ok(n) => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => master_open = false,
            }
        }
        if fds[2].revents != 0 {
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let _ = nix::unistd::write(&master, &buf[..n]);
                }
            }
        }
    }
    match code {
        Some(c) => Ok(c),
        // The pty closed before the exit was seen: wait for it now.
        None => wait_forwarding(sfd, pid, pidfd),
    }
}

/// Reaps every exited child; returns the init's exit code once it has exited.
fn reap(init: i32) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, c)) if pid.as_raw() == init => code = Some(c),
            Ok(WaitStatus::Signaled(pid, s, _)) if pid.as_raw() == init => {
                code = Some(128 + s as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => {}
        }
    }
}

fn start_or_destroy(root: &Path, id: &str) -> Result<(), Error> {
    if let Err(e) = super::start::start(root, id) {
        let _ = super::delete::delete(root, id, true);
        return Err(e);
    }
    Ok(())
}
