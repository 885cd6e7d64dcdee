//! The engine's side of `--console-socket`: accept one connection, take the
//! pty master it carries (SCM_RIGHTS), and read the terminal until it closes.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixListener;

pub fn receive_and_read(listener: UnixListener) -> Result<String, String> {
    let (conn, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let mut buf = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one descriptor's control message.
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain data; the pointers below stay valid for recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: a valid socket and msghdr.
    if unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, 0) } < 0 {
        return Err(format!("recvmsg: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: walking the control messages recvmsg filled in.
    let fd = unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return Err("no descriptor received on the console socket".into());
        }
        std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const i32)
    };
    // SAFETY: the descriptor was just received and belongs to us alone.
    let mut master = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    // The master reads EIO once the container's side is closed.
    while let Ok(n) = master.read(&mut chunk) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
