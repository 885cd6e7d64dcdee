//! The channel between `husk create` and the container's init: a SOCK_SEQPACKET
//! socket pair, one message per step, so a dead peer reads as end-of-file.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};

/// Messages between parent and init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// parent → init: uid/gid maps are written (or were not needed).
    MapsDone,
    /// init → parent: the container's environment exists; run the hooks that
    /// run in the runtime namespace (prestart, createRuntime).
    RuntimeHooks,
    /// parent → init: those hooks succeeded.
    HooksDone,
    /// init → parent: everything is set up; waiting for `start`.
    Ready,
    /// init → parent: a step failed.
    Error(String),
    /// intermediate → parent: the init is this (host) pid; the intermediate
    /// process that made it exits.
    Pid(i32),
    /// parent → exec'd process: it was moved into the container's cgroup (for
    /// kernels where clone3 could not place it).
    Placed,
    /// init → parent, with a descriptor: the seccomp listener fd, for the
    /// parent to hand to the seccomp agent at `linux.seccomp.listenerPath`.
    SeccompFd,
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        match self {
            Msg::MapsDone => vec![b'M'],
            Msg::RuntimeHooks => vec![b'H'],
            Msg::HooksDone => vec![b'D'],
            Msg::Ready => vec![b'R'],
            Msg::SeccompFd => vec![b'S'],
            Msg::Placed => vec![b'C'],
            Msg::Pid(p) => {
                let mut v = vec![b'P'];
                v.extend_from_slice(&p.to_le_bytes());
                v
            }
            Msg::Error(s) => {
                let mut v = vec![b'E'];
                v.extend_from_slice(s.as_bytes());
                v
            }
        }
    }

    fn decode(b: &[u8]) -> Option<Msg> {
        Some(match b.first()? {
            b'M' => Msg::MapsDone,
            b'H' => Msg::RuntimeHooks,
            b'D' => Msg::HooksDone,
            b'R' => Msg::Ready,
            b'S' => Msg::SeccompFd,
            b'C' => Msg::Placed,
            b'E' => Msg::Error(String::from_utf8_lossy(&b[1..]).into_owned()),
            b'P' => Msg::Pid(i32::from_le_bytes(b.get(1..5)?.try_into().ok()?)),
            _ => return None,
        })
    }
}

/// One end of the channel.
pub struct Channel(OwnedFd);

/// Errors on the channel.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync socket: {0}")]
    Os(#[from] Errno),
    #[error("the container's init exited during set-up")]
    Closed,
    #[error("unexpected message on the sync socket: {0:?}")]
    Unexpected(Msg),
    #[error("garbled message on the sync socket")]
    Garbled,
}

pub fn pair() -> Result<(Channel, Channel), SyncError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel(a), Channel(b)))
}

impl AsFd for Channel {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Channel {
    pub fn send(&self, m: &Msg) -> Result<(), SyncError> {
        let buf = m.encode();
        loop {
            match nix::unistd::write(self.0.as_fd(), &buf) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// Sends `m` with a descriptor attached (SCM_RIGHTS).
    pub fn send_fd(&self, m: &Msg, fd: &OwnedFd) -> Result<(), SyncError> {
        let buf = m.encode();
        let fds = [fd.as_raw_fd()];
        loop {
            match sendmsg::<()>(
                self.0.as_raw_fd(),
                &[IoSlice::new(&buf)],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::empty(),
                None,
            ) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => return Ok(()),
            }
        }
    }

    pub fn recv(&self) -> Result<Msg, SyncError> {
        self.recv_fd().map(|(m, _)| m)
    }

    /// Receives a message and the descriptor sent with it, if any.
    pub fn recv_fd(&self) -> Result<(Msg, Option<OwnedFd>), SyncError> {
        // Messages are small (a tag, or an error line): a stack buffer is enough
        // and costs no allocation.
        let mut buf = [0u8; 4096];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let (n, fd) = match recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(msg) => {
                    let mut fd = None;
                    for c in msg.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for raw in fds {
                                // SAFETY: the kernel just installed this
                                // descriptor for us; we own it from here.
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    (msg.bytes, fd)
                }
            };
            if n == 0 {
                return Err(SyncError::Closed);
            }
            let m = Msg::decode(&buf[..n]).ok_or(SyncError::Garbled)?;
            return Ok((m, fd));
        }
    }

    /// Receives and checks that it is `want`; an `Error` from the peer becomes
    /// `Err(Ok(msg))` so the caller can report the peer's own words.
    pub fn expect(&self, want: Msg) -> Result<(), Result<String, SyncError>> {
        match self.recv() {
            Ok(m) if m == want => Ok(()),
            Ok(Msg::Error(s)) => Err(Ok(s)),
            Ok(m) => Err(Err(SyncError::Unexpected(m))),
            Err(e) => Err(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_eof() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::Error("boom: x".into())).unwrap();
        a.send(&Msg::Ready).unwrap();
        a.send(&Msg::Pid(123456)).unwrap();
        assert_eq!(b.recv().unwrap(), Msg::Error("boom: x".into()));
        assert!(b.expect(Msg::Ready).is_ok());
        assert_eq!(b.recv().unwrap(), Msg::Pid(123456));
        let (x, _) = pair().unwrap();
        a.send_fd(&Msg::SeccompFd, &x.0).unwrap();
        let (m, fd) = b.recv_fd().unwrap();
        assert_eq!(m, Msg::SeccompFd);
        assert!(fd.is_some());
        drop(a);
        assert!(matches!(b.recv(), Err(SyncError::Closed)));
    }
}
