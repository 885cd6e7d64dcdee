//! What a process of husk's must shed before a container can see it. A
//! process in the container's pid namespace is open, through /proc/PID, to
//! any process there that may ptrace it (CAP_SYS_PTRACE, which debuggers and
//! profilers are given): its root, cwd, descriptors and environment. So
//! husk's processes enter a container's pid namespace only after joining
//! every other namespace (root and cwd become the container's), closing
//! every descriptor of the host's and wiping the caller's command line and
//! environment from memory. runc orders its exec the same way.

use std::os::fd::RawFd;

use nix::errno::Errno;

/// Where the kernel shows this process's command line and environment from
/// (/proc/PID/cmdline and /proc/PID/environ read these bytes of memory).
#[derive(Debug, Clone, Copy, Default)]
pub struct Traces {
    arg: (usize, usize),
    env: (usize, usize),
}

impl Traces {
    /// Reads the ranges from /proc/self/stat (fields 48 to 51); read before
    /// the host's /proc is out of reach.
    pub fn of_self() -> Traces {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields follow the command name's closing parenthesis; field 3 is
        // the first after it.
        let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
        let f: Vec<usize> = rest
            .split_whitespace()
            .skip(45)
            .take(4)
            .filter_map(|v| v.parse().ok())
            .collect();
        match f[..] {
            [a0, a1, e0, e1] if a0 <= a1 && e0 <= e1 => Traces {
                arg: (a0, a1),
                env: (e0, e1),
            },
            _ => Traces::default(),
        }
    }

    /// Overwrites the environment with zeros and the command line with
    /// `husk NAME`. Nothing in this process reads either again: a program
    /// gets the environment of its plan, hooks their own.
    pub fn wipe(&self, name: &str) {
        self.wipe_env();
        self.wipe_args(name);
    }

    /// Overwrites the environment with zeros.
    pub fn wipe_env(&self) {
        zero(self.env);
    }

    /// Overwrites the command line with `husk NAME`.
    pub fn wipe_args(&self, name: &str) {
        zero(self.arg);
        let (start, end) = self.arg;
        let title = format!("husk\0{name}\0");
        if start != 0 && end - start > title.len() {
            // SAFETY: as in zero(); the title fits in the range.
            unsafe { std::ptr::copy_nonoverlapping(title.as_ptr(), start as *mut u8, title.len()) };
        }
    }
}

fn zero((start, end): (usize, usize)) {
    if start != 0 && end > start {
        // SAFETY: the kernel's own record of this process's argv or environ
        // strings: mapped read-write at the top of its stack and never
        // borrowed by Rust code (std keeps raw pointers).
        unsafe { std::ptr::write_bytes(start as *mut u8, 0, end - start) };
    }
}

/// Closes every descriptor from 3 + `preserve` upwards except `keep`: what
/// the caller (an engine) and husk had open stays on the host's side.
pub fn close_except(preserve: u32, keep: &[RawFd]) -> Result<(), Errno> {
    let first = preserve.saturating_add(3);
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd >= first)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = first;
    for k in keep.into_iter().chain([u32::MAX]) {
        if k > from {
            // SAFETY: close_range with integer arguments. Rust objects of
            // this process that own descriptors in the range are never
            // dropped: the process execs or exits.
            if unsafe { libc::syscall(libc::SYS_close_range, from, k - 1, 0) } != 0 {
                return Err(Errno::last());
            }
        }
        from = k.saturating_add(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_traces_cover_the_environment() {
        let t = Traces::of_self();
        assert!(t.arg.0 > 0 && t.arg.1 > t.arg.0, "{t:?}");
        assert!(t.env.0 >= t.arg.1 && t.env.1 >= t.env.0, "{t:?}");
    }

    #[test]
    fn close_except_keeps_only_what_is_named() {
        // In a child, so the test process's own descriptors are not touched.
        let (a, b) = nix::unistd::pipe().unwrap();
        let (c, d) = nix::unistd::pipe().unwrap();
        use std::os::fd::AsRawFd;
        let (ra, rb, rc, rd) = (a.as_raw_fd(), b.as_raw_fd(), c.as_raw_fd(), d.as_raw_fd());
        // SAFETY: the child only makes raw syscalls and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let ok = close_except(0, &[rb, rd]).is_ok();
                let open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
                let code = if ok && !open(ra) && open(rb) && !open(rc) && open(rd) {
                    0
                } else {
                    1
                };
                // SAFETY: _exit in a forked child.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
