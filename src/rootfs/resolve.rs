//! Resolving paths inside the container's root without ever leaving it:
//! openat2(RESOLVE_IN_ROOT) treats the root as `/` for every symlink and `..`,
//! and the returned descriptor pins what was resolved, so a later swap of a
//! path component for a symlink cannot redirect a mount (CVE-2021-30465).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, mkdirat};

/// What to create at the end of a path that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// Opens `path` (relative to `root`, leading `/` ignored) as an O_PATH
/// descriptor, resolved inside `root`. Magic links (/proc/PID/fd/…) are refused.
pub fn open_in_root(root: impl AsFd, path: &Path) -> Result<OwnedFd, Errno> {
    open_in_root_flags(root, path, OFlag::O_PATH)
}

/// As [`open_in_root`], with other open flags.
pub fn open_in_root_flags(root: impl AsFd, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let rel = relative(path);
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    loop {
        match openat2(root.as_fd(), rel.as_path(), how) {
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            r => return r,
        }
    }
}

fn relative(path: &Path) -> PathBuf {
    let p: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect();
    if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p
    }
}

/// Opens `path` inside `root`, creating what is missing: directories on the
/// way, and a directory or an empty file at the end. Each component is created
/// inside the descriptor of its already-resolved parent, so nothing can be made
/// outside the root.
pub fn create_in_root(root: impl AsFd, path: &Path, last: Kind) -> Result<OwnedFd, Errno> {
    create_in_root_depth(root.as_fd(), path, last, 0)
}

/// Symlinks followed while creating one path, as the kernel's own limit.
const MAX_LINKS: u32 = 40;

fn create_in_root_depth(
    root: BorrowedFd<'_>,
    path: &Path,
    last: Kind,
    depth: u32,
) -> Result<OwnedFd, Errno> {
    if depth > MAX_LINKS {
        return Err(Errno::ELOOP);
    }
    match open_in_root(root.as_fd(), path) {
        Err(Errno::ENOENT) => {}
        r => return r,
    }
    let rel = relative(path);
    let comps: Vec<_> = rel.components().collect();
    let mut prefix = PathBuf::new();
    let mut parent = open_in_root(root.as_fd(), Path::new("."))?;
    for (i, c) in comps.iter().enumerate() {
        prefix.push(c);
        match open_in_root(root.as_fd(), &prefix) {
            Ok(fd) => {
                parent = fd;
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let is_last = i + 1 == comps.len();
        let r = if is_last && last == Kind::File {
            // SAFETY: openat with a valid directory descriptor and a C string
            // that lives for the call; the new descriptor is closed right away.
            let name = std::ffi::CString::new(c.as_os_str().as_encoded_bytes())
                .map_err(|_| Errno::EINVAL)?;
            let fd = unsafe {
                libc::openat(
                    parent.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC
                        | libc::O_WRONLY,
                    0o644,
                )
            };
            if fd < 0 {
                Err(Errno::last())
            } else {
                // SAFETY: fd was just returned to us.
                unsafe { libc::close(fd) };
                Ok(())
            }
        } else {
            mkdirat(
                parent.as_fd(),
                c.as_os_str(),
                Mode::from_bits_truncate(0o755),
            )
        };
        match r {
            Ok(()) => {}
            // A dangling symlink: make what it points to, read as if the root
            // were `/`, then the rest of the path beyond it.
            Err(Errno::EEXIST) => {
                // Made meanwhile by someone else: use it.
                if let Ok(fd) = open_in_root(root.as_fd(), &prefix) {
                    parent = fd;
                    continue;
                }
                let target = nix::fcntl::readlinkat(parent.as_fd(), c.as_os_str())?;
                let mut next = if Path::new(&target).is_absolute() {
                    PathBuf::from(&target)
                } else {
                    prefix.parent().unwrap_or(Path::new("")).join(&target)
                };
                for rest in &comps[i + 1..] {
                    next.push(rest);
                }
                return create_in_root_depth(root, &next, last, depth + 1);
            }
            Err(e) => return Err(e),
        }
        parent = open_in_root(root.as_fd(), &prefix)?;
    }
    Ok(parent)
}

/// The magic-link path through which a mount syscall reaches what `fd` resolved.
pub fn proc_fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("husk-resolve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn root_fd(p: &Path) -> OwnedFd {
        nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap()
    }

    #[test]
    fn symlinks_stay_inside_root() {
        let base = tmpdir("sym");
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // An absolute symlink and a ../ symlink that both point out of the root.
        symlink(&outside, root.join("abs")).unwrap();
        symlink("../../outside", root.join("rel")).unwrap();
        let fd = root_fd(&root);
        create_in_root(&fd, Path::new("/abs/made"), Kind::Dir).unwrap();
        create_in_root(&fd, Path::new("/rel/file"), Kind::File).unwrap();
        create_in_root(&fd, Path::new("/../../x"), Kind::Dir).unwrap();
        assert!(
            std::fs::read_dir(&outside).unwrap().next().is_none(),
            "escaped the root"
        );
        // What was made is inside the root, where the symlink points when / is the root.
        assert!(
            root.join(outside.strip_prefix("/").unwrap())
                .join("made")
                .is_dir()
        );
        assert!(root.join("x").is_dir());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn existing_path_is_opened() {
        let base = tmpdir("exist");
        std::fs::create_dir_all(base.join("a/b")).unwrap();
        let fd = root_fd(&base);
        let b = create_in_root(&fd, Path::new("a/b"), Kind::Dir).unwrap();
        let st = nix::sys::stat::fstat(&b).unwrap();
        let want = std::fs::metadata(base.join("a/b")).unwrap();
        assert_eq!(st.st_ino, std::os::unix::fs::MetadataExt::ino(&want));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
