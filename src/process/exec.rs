//! The last steps of a container process before exec, in order: limits, then
//! privileges (bounding set, user and groups, capability sets), then the
//! working directory, the executable, the descriptors, and exec itself.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::plan::{CapSets, ProcessPlan};

/// A failed process step, naming the field or path and the OS error.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{field} ({name} soft={soft} hard={hard}): setrlimit: {errno}")]
    Rlimit {
        field: String,
        name: String,
        soft: u64,
        hard: u64,
        errno: Errno,
    },
    #[error("{field}: {}", go_errno(*errno))]
    Step { field: &'static str, errno: Errno },
    #[error("process.user: uid {uid} gid {gid} groups {groups:?}: {errno}")]
    User {
        uid: u32,
        gid: u32,
        groups: Vec<u32>,
        errno: Errno,
    },
    #[error("process.cwd: chdir to {cwd}: {errno}")]
    Cwd { cwd: PathBuf, errno: Errno },
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    /// runc's wording (Go's), which engines match: Docker maps "no such file
    /// or directory" to exit 127 and "permission denied" to 126.
    #[error("exec: {path:?}: {}", go_errno(*errno))]
    Exec { path: String, errno: Errno },
    #[error("exec: {path:?}: stat {path}: {}", go_errno(*errno))]
    Stat { path: String, errno: Errno },
}

/// An errno as Go prints it (and so runc): strerror with a lowercase first
/// letter, "no such file or directory", "permission denied".
pub fn go_errno(e: Errno) -> String {
    let d = e.desc();
    let mut c = d.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => format!("errno {}", e as i32),
    }
}

type Result<T> = std::result::Result<T, ExecError>;

fn step(field: &'static str) -> impl FnOnce(Errno) -> ExecError {
    move |errno| ExecError::Step { field, errno }
}

/// Applies `process.rlimits`.
pub fn set_rlimits(p: &ProcessPlan) -> Result<()> {
    for r in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: a valid rlimit struct for the call.
        if unsafe { libc::setrlimit(r.resource, &lim) } != 0 {
            return Err(ExecError::Rlimit {
                field: r.field.clone(),
                name: r.name.clone(),
                soft: r.soft,
                hard: r.hard,
                errno: Errno::last(),
            });
        }
    }
    Ok(())
}

/// oomScoreAdj, through a /proc that shows this process: the host's for an
/// exec'd process (before it joins the container's mount namespace; the value
/// is inherited by its child), the container's for the init.
pub fn set_oom_score_adj(p: &ProcessPlan) -> Result<()> {
    if let Some(adj) = p.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
            ExecError::Step {
                field: "process.oomScoreAdj",
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            }
        })?;
    }
    Ok(())
}

/// ioPriority and umask: per-process settings that need no privilege beyond
/// what the init still has.
pub fn set_process_attrs(p: &ProcessPlan) -> Result<()> {
    if let Some(prio) = p.io_priority {
        const IOPRIO_WHO_PROCESS: i32 = 1;
        // SAFETY: ioprio_set takes integers only.
        if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) } != 0 {
            return Err(step("process.ioPriority")(Errno::last()));
        }
    }
    // 0022 when the config sets none, as runc does.
    let mask = p.umask.unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask & 0o777));
    Ok(())
}

/// Drops every capability not in the bounding set (needs CAP_SETPCAP, so it
/// comes before the user change).
pub fn drop_bounding(caps: &CapSets) -> Result<()> {
    for cap in 0..64u64 {
        if caps.bounding & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if r != 0 {
            match Errno::last() {
                // Past the last capability this kernel knows.
                Errno::EINVAL => break,
                e => return Err(step("process.capabilities.bounding")(e)),
            }
        }
    }
    Ok(())
}

/// Switches to the process's uid, gid and supplementary groups, keeping the
/// permitted capabilities across the uid change so they can be set after.
pub fn change_user(p: &ProcessPlan) -> Result<()> {
    let err = |errno| ExecError::User {
        uid: p.uid,
        gid: p.gid,
        groups: p.additional_gids.clone(),
        errno,
    };
    nix::sys::prctl::set_keepcaps(true).map_err(step("prctl(PR_SET_KEEPCAPS)"))?;
    let groups: Vec<nix::unistd::Gid> = p.additional_gids.iter().map(|g| (*g).into()).collect();
    // A user namespace whose gid map an unprivileged caller wrote itself
    // refuses setgroups (`deny` in its setgroups file), the only EPERM a
    // process with CAP_SETGID in its namespace gets: with no group asked the
    // process keeps none of its own to set, and goes on as runc does.
    match nix::unistd::setgroups(&groups) {
        Ok(()) => {}
        Err(Errno::EPERM) if groups.is_empty() => {}
        Err(Errno::EPERM) => {
            return Err(step(
                "process.user.additionalGids: setgroups is denied in this user namespace (a gid map of one id, written without newgidmap)",
            )(Errno::EPERM));
        }
        Err(e) => return Err(err(e)),
    }
    nix::unistd::setresgid(p.gid.into(), p.gid.into(), p.gid.into()).map_err(err)?;
    nix::unistd::setresuid(p.uid.into(), p.uid.into(), p.uid.into()).map_err(err)?;
    nix::sys::prctl::set_keepcaps(false).map_err(step("prctl(PR_SET_KEEPCAPS)"))?;
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// Sets effective, permitted and inheritable in one capset(2), then the ambient set.
pub fn set_caps(caps: &CapSets) -> Result<()> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: caps.effective as u32,
            permitted: caps.permitted as u32,
            inheritable: caps.inheritable as u32,
        },
        CapData {
            effective: (caps.effective >> 32) as u32,
            permitted: (caps.permitted >> 32) as u32,
            inheritable: (caps.inheritable >> 32) as u32,
        },
    ];
    // SAFETY: a v3 header and two data elements, as capset(2) requires.
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) } != 0 {
        return Err(step("process.capabilities: unable to apply caps")(
            Errno::last(),
        ));
    }
    // SAFETY: prctl with integer arguments.
    if unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    } != 0
    {
        return Err(step("process.capabilities.ambient")(Errno::last()));
    }
    for cap in 0..64u64 {
        if caps.ambient & (1 << cap) != 0 {
            // SAFETY: as above.
            let r =
                unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, cap, 0, 0) };
            if r != 0 {
                return Err(step("process.capabilities.ambient")(Errno::last()));
            }
        }
    }
    Ok(())
}

/// Changes to the process's working directory.
/// Changes to `process.cwd`, resolved inside the container's root: symlinks
/// cannot lead out of it, and magic links (`/proc/self/fd/N`, which could name
/// a descriptor of husk's, CVE-2024-21626) are refused.
pub fn chdir_cwd(p: &ProcessPlan) -> Result<()> {
    let err = |errno| ExecError::Cwd {
        cwd: p.cwd.clone(),
        errno,
    };
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    let dir = crate::rootfs::resolve::open_in_root_flags(
        &root,
        &p.cwd,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
    )
    .map_err(err)?;
    nix::unistd::fchdir(&dir).map_err(err)
}

/// Whether `path` is a file this process may execute: not a directory, and
/// execute permission for the process's ids (access(2), which also sees a
/// noexec mount), as runc checks at create. The ids are the process's own
/// by now (real and effective alike), and access(2) is the faccessat that
/// older seccomp profiles allow (Docker's before 20.10 lack faccessat2,
/// which AT_EACCESS needs).
fn is_executable(path: &Path) -> std::result::Result<(), Errno> {
    let m = nix::sys::stat::stat(path)?;
    if m.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Err(Errno::EACCES);
    }
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK)
}

/// Finds args[0] as exec(3p) with PATH would, from the process's own PATH,
/// and checks it can be executed, so a missing or non-executable program
/// fails `create` (where engines read the error), not the container after
/// `start`. The errors are runc's.
pub fn find_executable(p: &ProcessPlan) -> Result<CString> {
    let arg0 = OsStr::from_bytes(p.args[0].to_bytes());
    let name = arg0.to_string_lossy().into_owned();
    if arg0.as_bytes().contains(&b'/') {
        let path = Path::new(arg0);
        let full = if path.is_absolute() {
            path.to_path_buf()
        } else {
            p.cwd.join(path)
        };
        return match is_executable(&full) {
            Ok(()) => Ok(p.args[0].clone()),
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => Err(ExecError::Stat {
                path: name,
                errno: Errno::ENOENT,
            }),
            Err(errno) => Err(ExecError::Exec { path: name, errno }),
        };
    }
    for dir in p.path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        if is_executable(&cand).is_ok() {
            return CString::new(cand.as_os_str().as_bytes())
                .map_err(|_| ExecError::NotFound(name.clone()));
        }
    }
    Err(ExecError::NotFound(name))
}

/// Marks every descriptor from 3 + `preserve` upwards close-on-exec, so nothing
/// of the runtime's or the caller's crosses into the container.
pub fn close_fds(preserve: u32) -> Result<()> {
    let first = preserve.saturating_add(3);
    // SAFETY: close_range with integer arguments; CLOSE_RANGE_CLOEXEC only
    // flags the descriptors, it closes none that Rust code still owns.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r != 0 {
        return Err(step("close_range")(Errno::last()));
    }
    // Preserved descriptors must survive exec.
    for fd in 3..first {
        // SAFETY: fcntl on an integer descriptor; a closed one just fails.
        unsafe { libc::fcntl(fd as i32, libc::F_SETFD, 0) };
    }
    Ok(())
}

/// Replaces the process image. Returns only on failure.
pub fn exec(path: &CString, p: &ProcessPlan) -> ExecError {
    let errno = nix::unistd::execve(path, &p.args, &p.env)
        .err()
        .unwrap_or(Errno::EINVAL);
    ExecError::Exec {
        path: path.to_string_lossy().into_owned(),
        errno,
    }
}
