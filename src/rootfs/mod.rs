//! The container's root filesystem, built inside its new mount namespace: the
//! rootfs bound onto itself, every configured mount at a path resolved inside
//! it, device nodes, pivot_root, then masked and read-only paths.

pub mod copyup;
pub mod options;
pub mod resolve;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, fstat, makedev, mknodat};
use nix::unistd::{chdir, fchdir, pivot_root};

use crate::plan::{DevicePlan, MountPlan, Plan};
use resolve::{Kind, create_in_root, open_in_root, proc_fd_path};

/// A failed rootfs step: which step, on which path, with which OS error.
#[derive(Debug, thiserror::Error)]
#[error("{step} {path}: {errno}")]
pub struct RootfsError {
    pub step: String,
    pub path: PathBuf,
    pub errno: Errno,
}

fn fail(step: impl Into<String>, path: &Path) -> impl FnOnce(Errno) -> RootfsError {
    let step = step.into();
    let path = path.to_path_buf();
    move |errno| RootfsError { step, path, errno }
}

type Result<T> = std::result::Result<T, RootfsError>;

/// Makes the host's mounts invisible to changes made here, and the rootfs a
/// mount point of its own (pivot_root needs both).
pub fn prepare(plan: &Plan) -> Result<()> {
    if plan.shares_mount_ns() {
        // The host's own namespace: its propagation is not ours to change.
        // The rootfs mount made here is made private instead, so nothing
        // mounted under it reaches the host's other namespaces.
        mount_rootfs(plan)?;
        return mount(
            None::<&str>,
            &plan.rootfs,
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(fail("make the rootfs mount private", &plan.rootfs));
    }
    // Slave, not private, by default: host mounts still propagate in (as runc
    // does), while nothing done here propagates out to the host. An
    // unbindable root could not be bound here: it is made so after
    // pivot_root, and private until then.
    let flags = match plan.rootfs_propagation {
        Some(p) if p.contains(MsFlags::MS_UNBINDABLE) => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        Some(p) => p,
        None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .map_err(fail("make / rslave", Path::new("/")))?;
    if flags.contains(MsFlags::MS_SHARED) {
        // Only a shared parent mount stops pivot_root; reading mountinfo to find
        // it is costly, so it is done only when / was made shared.
        make_parent_private(&plan.rootfs)?;
    }
    mount_rootfs(plan)
}

/// The rootfs as a mount point of its own: the image's overlay, or a bind
/// of the directory onto itself.
fn mount_rootfs(plan: &Plan) -> Result<()> {
    if let Some(m) = &plan.root_mount {
        // The image's layers and the bundle's upper directory, mounted here in
        // the container's namespace: the mount dies with it.
        let data = (!m.options.data.is_empty()).then_some(m.options.data.as_str());
        return mount(
            Some("overlay"),
            &plan.rootfs,
            Some("overlay"),
            m.options.flags & !MsFlags::MS_REMOUNT,
            data,
        )
        .map_err(fail(
            format!("{}: mount overlay rootfs", m.field),
            &plan.rootfs,
        ));
    }
    // A bind of the rootfs onto itself makes it a mount point even when it is a
    // plain directory, which pivot_root(2) requires.
    mount(
        Some(&plan.rootfs),
        &plan.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(fail("bind rootfs", &plan.rootfs))
}

/// pivot_root(2) refuses a new root whose parent mount is shared: find the
/// mount the rootfs lives on and make it private in this namespace.
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: Option<&str> = None;
    for line in info.lines() {
        if let Some(mp) = line.split(' ').nth(4) {
            let mp_path = Path::new(mp);
            if rootfs.starts_with(mp_path) && best.is_none_or(|b| mp.len() > b.len()) {
                best = Some(mp);
            }
        }
    }
    let mp = best.unwrap_or("/");
    mount(
        None::<&str>,
        mp,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(fail("make rootfs parent mount private", Path::new(mp)))
}

/// Opens the rootfs as the anchor every later path is resolved in.
pub fn open_root(rootfs: &Path) -> Result<OwnedFd> {
    open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail("open rootfs", rootfs))
}

/// What the mounts need to know beyond the plan.
#[derive(Clone, Copy)]
pub struct MountCtx<'a> {
    pub in_userns: bool,
    /// For mount i, the user namespace of its id mapping, if it is
    /// id-mapped (made by the parent, which sees the host's pids).
    pub idmap_userns: &'a [Option<OwnedFd>],
    /// The container's cgroup directory on the host.
    pub own_cgroup: Option<&'a Path>,
}

/// Makes every configured mount, in order.
pub fn mount_all(
    plan: &Plan,
    root: &OwnedFd,
    ctx: MountCtx<'_>,
    defer_proc: bool,
) -> Result<Vec<DeferredProc>> {
    let mut deferred = Vec::new();
    for (i, m) in plan.mounts.iter().enumerate() {
        if defer_proc && m.fstype == "proc" {
            deferred.push(DeferredProc {
                index: i,
                target: plain_mount_point(m, root)?,
            });
            continue;
        }
        let userns = ctx.idmap_userns.get(i).and_then(|u| u.as_ref());
        mount_one(m, root, ctx, &plan.ns, userns)?;
    }
    Ok(deferred)
}

/// A procfs mount left for later: procfs shows the pid namespace of the
/// process that mounts it, and an init that joins a pid namespace enters it
/// only after pivot_root (crate::init). Its mount point was resolved, checked
/// and made with the others.
pub struct DeferredProc {
    index: usize,
    target: OwnedFd,
}

/// Mounts the deferred procfs instances, after pivot_root, from the process
/// that is in the container's pid namespace. Each goes on the directory
/// resolved before (entered by its descriptor: no path is looked up again).
pub fn mount_deferred_proc(plan: &Plan, deferred: Vec<DeferredProc>) -> Result<()> {
    for d in deferred {
        let m = &plan.mounts[d.index];
        let step = |what: &str| format!("{}: {what}", m.field);
        fchdir(&d.target).map_err(fail(step("enter mount point"), &m.destination))?;
        let (source, fstype, flags, data) = fs_mount_args(m);
        mount(Some(source.as_os_str()), ".", Some(fstype), flags, data)
            .map_err(fail(step("mount proc"), &m.destination))?;
        if needs_finish(m) {
            let root = open_root(Path::new("/"))?;
            let target = open_in_root(&root, &m.destination)
                .map_err(fail(step("reopen"), &m.destination))?;
            finish_mount(m, &target, &step, None)?;
        }
    }
    chdir("/").map_err(fail("chdir", Path::new("/")))
}

/// procfs and sysfs go on a directory reached without any symlink (see
/// `check_plain_dir`); returns the mount point, made if missing.
fn plain_mount_point(m: &MountPlan, root: &OwnedFd) -> Result<OwnedFd> {
    let step = |what: &str| format!("{}: {what}", m.field);
    check_plain_dir(root, &m.destination).map_err(|e| RootfsError {
        step: step(&format!(
            "{} must be mounted on an ordinary directory, not through a symlink",
            m.fstype
        )),
        ..e
    })?;
    create_in_root(root, &m.destination, Kind::Dir)
        .map_err(fail(step("create mount point"), &m.destination))
}

/// What mount(2) takes for a filesystem (not a bind) mount.
fn fs_mount_args(m: &MountPlan) -> (std::ffi::OsString, &str, MsFlags, Option<&str>) {
    let mut fstype = m.fstype.as_str();
    if fstype == "cgroup" {
        // husk manages cgroup v2 only: the container sees the unified hierarchy.
        fstype = "cgroup2";
    }
    let source = m
        .source
        .as_ref()
        .map(|s| s.as_os_str().to_owned())
        .unwrap_or_else(|| fstype.into());
    let data = (!m.options.data.is_empty()).then_some(m.options.data.as_str());
    (source, fstype, m.options.flags & !MsFlags::MS_REMOUNT, data)
}

fn mount_one(
    m: &MountPlan,
    root: &OwnedFd,
    ctx: MountCtx<'_>,
    ns: &crate::plan::NamespacePlan,
    userns: Option<&OwnedFd>,
) -> Result<()> {
    let in_userns = ctx.in_userns;
    let step = |what: &str| format!("{}: {what}", m.field);
    let o = &m.options;
    // A cgroup mount without a cgroup namespace: a fresh cgroup2 would show
    // every other container's cgroup; the container gets its own directory
    // only, as runc binds its own cgroups.
    if (m.fstype == "cgroup" || m.fstype == "cgroup2")
        && !ns.has(nix::sched::CloneFlags::CLONE_NEWCGROUP)
        && let Some(own) = ctx.own_cgroup.filter(|p| p.is_dir())
    {
        let target = create_in_root(root, &m.destination, Kind::Dir)
            .map_err(fail(step("create mount point"), &m.destination))?;
        mount(
            Some(own),
            &proc_fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(fail(step("bind the container's cgroup"), &m.destination))?;
        let target =
            open_in_root(root, &m.destination).map_err(fail(step("reopen"), &m.destination))?;
        let flags = o.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        return remount_bind(&proc_fd_path(&target), flags)
            .map_err(fail(step("remount the cgroup bind"), &m.destination));
    }
    if o.is_bind() {
        let src = m.source.as_deref().unwrap_or(Path::new(""));
        let src_meta = std::fs::metadata(src).map_err(|e| RootfsError {
            step: step("bind source"),
            path: src.to_path_buf(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
        let kind = if src_meta.is_dir() {
            Kind::Dir
        } else {
            Kind::File
        };
        let target = create_in_root(root, &m.destination, kind)
            .map_err(fail(step("create mount point"), &m.destination))?;
        let tpath = proc_fd_path(&target);
        let bind = o.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
        mount(Some(src), &tpath, None::<&str>, bind, None::<&str>)
            .map_err(fail(step("bind mount"), &m.destination))?;
        // A bind mount ignores other flags: they need a remount.
        let extra = o.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() || needs_finish(m) {
            // Re-opened: the descriptor still points at what is now covered.
            let target =
                open_in_root(root, &m.destination).map_err(fail(step("reopen"), &m.destination))?;
            if !extra.is_empty() {
                remount_bind(&proc_fd_path(&target), extra)
                    .map_err(fail(step("remount bind"), &m.destination))?;
            }
            finish_mount(m, &target, &step, userns)?;
        }
        return Ok(());
    }

    let target = if m.fstype == "proc" || m.fstype == "sysfs" {
        plain_mount_point(m, root)?
    } else {
        create_in_root(root, &m.destination, Kind::Dir)
            .map_err(fail(step("create mount point"), &m.destination))?
    };
    let tpath = proc_fd_path(&target);
    // What the mount will cover, still reachable through this descriptor.
    let covered = match o.copy_up {
        true => Some(
            copyup::open_dir(&target, std::ffi::OsStr::new("."))
                .map_err(fail(step("open the directory to copy up"), &m.destination))?,
        ),
        false => None,
    };
    let (source, fstype, flags, data) = fs_mount_args(m);
    let r = mount(Some(source.as_os_str()), &tpath, Some(fstype), flags, data);
    match r {
        Ok(()) => {}
        // sysfs can only be mounted by the owner of the network namespace; in a
        // user namespace without its own, bind the host's read-only, as runc does.
        Err(Errno::EPERM | Errno::EBUSY)
            if fstype == "sysfs"
                && (in_userns || !ns.has(nix::sched::CloneFlags::CLONE_NEWNET)) =>
        {
            mount(
                Some("/sys"),
                &tpath,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(fail(step("bind /sys"), &m.destination))?;
            let t =
                open_in_root(root, &m.destination).map_err(fail(step("reopen"), &m.destination))?;
            remount_bind(&proc_fd_path(&t), flags | MsFlags::MS_RDONLY)
                .map_err(fail(step("remount /sys"), &m.destination))?;
        }
        // A cgroup hierarchy can only be mounted by the owner of the cgroup
        // namespace: a rootless container without one (`runc spec
        // --rootless`) sees the host's, read-only as asked, as runc does.
        Err(Errno::EPERM) if fstype == "cgroup2" && in_userns => {
            mount(
                Some("/sys/fs/cgroup"),
                &tpath,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(fail(step("bind /sys/fs/cgroup"), &m.destination))?;
            let t =
                open_in_root(root, &m.destination).map_err(fail(step("reopen"), &m.destination))?;
            let mut set =
                libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC;
            if flags.contains(MsFlags::MS_RDONLY) {
                set |= libc::MOUNT_ATTR_RDONLY;
            }
            // Every hierarchy under it too (a hybrid host's v1 mounts).
            mount_setattr(&t, true, set, 0, None).map_err(fail(
                step("make the /sys/fs/cgroup bind read-only"),
                &m.destination,
            ))?;
        }
        Err(e) => return Err(fail(step(&format!("mount {fstype}")), &m.destination)(e)),
    }
    if let Some(covered) = covered {
        let mounted = open_in_root(root, &m.destination)
            .and_then(|t| copyup::open_dir(&t, std::ffi::OsStr::new(".")))
            .map_err(fail(step("reopen"), &m.destination))?;
        copyup::copy_tree(&covered, &mounted).map_err(fail(
            step("tmpcopyup: copy what the mount covers"),
            &m.destination,
        ))?;
    }
    if !needs_finish(m) {
        return Ok(());
    }
    let target =
        open_in_root(root, &m.destination).map_err(fail(step("reopen"), &m.destination))?;
    finish_mount(m, &target, &step, userns)
}

/// procfs and sysfs go on a directory reached without any symlink: were /proc a
/// link to somewhere else in the rootfs, the container's /proc would be a
/// directory of its own making, and husk's later writes to /proc files would
/// land in it (runc CVE-2019-19921). A missing mount point is fine; it is made.
fn check_plain_dir(root: &OwnedFd, dest: &Path) -> Result<()> {
    match stat_no_symlinks(root, dest) {
        Ok(Some(st)) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => {
            Err(fail("not a directory", dest)(Errno::ENOTDIR))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(fail("resolve", dest)(e)),
    }
}

/// Stats `path` in `root` if it can be reached without following any symlink
/// (ELOOP if not); `None` if it does not exist.
pub(crate) fn stat_no_symlinks(
    root: &OwnedFd,
    path: &Path,
) -> std::result::Result<Option<libc::stat>, Errno> {
    let how = nix::fcntl::OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(
            nix::fcntl::ResolveFlag::RESOLVE_IN_ROOT | nix::fcntl::ResolveFlag::RESOLVE_NO_SYMLINKS,
        );
    let rel = path.strip_prefix("/").unwrap_or(path);
    match nix::fcntl::openat2(root.as_fd(), rel, how) {
        Ok(fd) => fstat(&fd).map(Some),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a mount has anything left to apply once mounted.
fn needs_finish(m: &MountPlan) -> bool {
    let o = &m.options;
    !o.propagation.is_empty() || o.rec_set != 0 || o.rec_clear != 0 || o.idmap.is_some()
}

/// Propagation and recursive attributes, applied to the new mount.
fn finish_mount(
    m: &MountPlan,
    target: &OwnedFd,
    step: &dyn Fn(&str) -> String,
    userns: Option<&OwnedFd>,
) -> Result<()> {
    let tpath = proc_fd_path(target);
    for p in &m.options.propagation {
        mount(None::<&str>, &tpath, None::<&str>, *p, None::<&str>)
            .map_err(fail(step("set propagation"), &m.destination))?;
    }
    if m.options.rec_set != 0 || m.options.rec_clear != 0 {
        mount_setattr(target, true, m.options.rec_set, m.options.rec_clear, None)
            .map_err(fail(step("mount_setattr"), &m.destination))?;
    }
    if let (Some(recursive), Some(userns)) = (m.options.idmap, userns) {
        idmap_mount(m, target, recursive, step, userns)?;
    }
    Ok(())
}

/// Remounts a bind mount with `flags`. In a user namespace the flags the
/// source mount was locked with (nosuid, nodev, noexec, atime) cannot be
/// cleared, so they are kept.
fn remount_bind(target: &Path, flags: MsFlags) -> std::result::Result<(), Errno> {
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    match mount(
        None::<&str>,
        target,
        None::<&str>,
        base | flags,
        None::<&str>,
    ) {
        Err(Errno::EPERM) => {
            let st = nix::sys::statvfs::statvfs(target)?;
            let locked = locked_flags(st.flags());
            mount(
                None::<&str>,
                target,
                None::<&str>,
                base | flags | locked,
                None::<&str>,
            )
        }
        r => r,
    }
}

fn locked_flags(f: nix::sys::statvfs::FsFlags) -> MsFlags {
    use nix::sys::statvfs::FsFlags as F;
    let mut m = MsFlags::empty();
    for (a, b) in [
        (F::ST_NOSUID, MsFlags::MS_NOSUID),
        (F::ST_NODEV, MsFlags::MS_NODEV),
        (F::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (F::ST_RDONLY, MsFlags::MS_RDONLY),
        (F::ST_NOATIME, MsFlags::MS_NOATIME),
        (F::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (F::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(a) {
            m |= b;
        }
    }
    m
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) on the mount `target` refers to.
pub(crate) fn mount_setattr(
    target: &OwnedFd,
    recursive: bool,
    set: u64,
    clear: u64,
    userns: Option<i32>,
) -> std::result::Result<(), Errno> {
    let mut attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: userns.unwrap_or(0) as u64,
    };
    let mut flags = libc::AT_EMPTY_PATH as u64;
    if recursive {
        flags |= libc::AT_RECURSIVE as u64;
    }
    // SAFETY: `attr` is a valid mount_attr of the size passed; the path is an
    // empty C string and the descriptor is valid for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &mut attr as *mut MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// open_tree(OPEN_TREE_CLONE): a detached copy of the mount (or file) `target`
/// refers to, which no mount namespace can see.
pub(crate) fn clone_tree(target: &OwnedFd, recursive: bool) -> std::result::Result<OwnedFd, Errno> {
    let mut flags =
        (libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC) as u64 | libc::AT_EMPTY_PATH as u64;
    if recursive {
        flags |= libc::AT_RECURSIVE as u64;
    }
    // SAFETY: open_tree with a valid descriptor and an empty C path.
    let tree =
        unsafe { libc::syscall(libc::SYS_open_tree, target.as_raw_fd(), c"".as_ptr(), flags) };
    if tree < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a new descriptor that we now own.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(tree as i32) })
}

/// Makes an id-mapped copy of the mount at `target` and puts it in its place:
/// open_tree(OPEN_TREE_CLONE), mount_setattr(MOUNT_ATTR_IDMAP) with a user
/// namespace carrying the mount's mappings, then move_mount over the original.
fn idmap_mount(
    m: &MountPlan,
    target: &OwnedFd,
    recursive: bool,
    step: &dyn Fn(&str) -> String,
    userns: &OwnedFd,
) -> Result<()> {
    let tree = clone_tree(target, recursive).map_err(fail(step("open_tree"), &m.destination))?;
    mount_setattr(
        &tree,
        recursive,
        crate::rootfs::options::MOUNT_ATTR_IDMAP,
        0,
        Some(userns.as_raw_fd()),
    )
    .map_err(fail(step("idmap"), &m.destination))?;
    // SAFETY: both descriptors are valid; empty C paths with MOVE_MOUNT_*_EMPTY_PATH.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            (libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH) as u64,
        )
    };
    if r < 0 {
        return Err(fail(step("move_mount"), &m.destination)(Errno::last()));
    }
    Ok(())
}

/// Makes the device nodes: mknod where allowed; inside a user namespace, where
/// mknod is refused, a bind mount of the host's node onto an empty file.
pub fn create_devices(devices: &[DevicePlan], root: &OwnedFd, in_userns: bool) -> Result<()> {
    // Most devices share /dev: resolve each parent directory once.
    let mut parent_fd: Option<(PathBuf, OwnedFd)> = None;
    for d in devices {
        let parent = d.path.parent().unwrap_or(Path::new("/"));
        let name = d.path.file_name().unwrap_or_default();
        if parent_fd.as_ref().is_none_or(|(p, _)| p != parent) {
            let fd = create_in_root(root, parent, Kind::Dir)
                .map_err(fail("create device dir", parent))?;
            parent_fd = Some((parent.to_path_buf(), fd));
        }
        let Some((_, pfd)) = parent_fd.as_ref() else {
            continue;
        };
        if in_userns {
            // The host node must be the device the plan names, not whatever
            // happens to be at that path on the host.
            let host = open(
                &d.path,
                OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                Mode::empty(),
            )
            .map_err(fail("open host device", &d.path))?;
            let st = fstat(&host).map_err(fail("stat host device", &d.path))?;
            if st.st_rdev != makedev(d.major, d.minor) || (st.st_mode & libc::S_IFMT) != d.kind {
                return Err(fail("host device differs", &d.path)(Errno::ENODEV));
            }
            let target = create_in_root(root, &d.path, Kind::File)
                .map_err(fail("create device file", &d.path))?;
            mount(
                Some(&proc_fd_path(&host)),
                &proc_fd_path(&target),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(fail("bind device", &d.path))?;
            continue;
        }
        // The init runs with umask 0, so the mode is exact.
        let kind = SFlag::from_bits_truncate(d.kind);
        let mode = Mode::from_bits_truncate(d.mode);
        let dev = makedev(d.major, d.minor);
        match mknodat(pfd, name, kind, mode, dev) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                nix::unistd::unlinkat(pfd, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                    .map_err(fail("remove old device", &d.path))?;
                mknodat(pfd, name, kind, mode, dev).map_err(fail("mknod", &d.path))?;
            }
            Err(e) => return Err(fail("mknod", &d.path)(e)),
        }
        if d.uid != 0 || d.gid != 0 {
            nix::unistd::fchownat(
                pfd,
                name,
                Some(d.uid.into()),
                Some(d.gid.into()),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(fail("chown device", &d.path))?;
        }
    }
    Ok(())
}

/// The symlinks every container's /dev has (runtime-linux.md, Dev symbolic links).
pub fn dev_symlinks(root: &OwnedFd) -> Result<()> {
    let dev = match open_in_root(root, Path::new("/dev")) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(fail("open /dev", Path::new("/dev"))(e)),
    };
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        match nix::unistd::symlinkat(target, &dev, link) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(fail("symlink", &Path::new("/dev").join(link))(e)),
        }
    }
    // /dev/ptmx must be the link into the container's own devpts, not a host node.
    if let Ok(fd) = open_in_root(&dev, Path::new("pts/ptmx")) {
        drop(fd);
        if let Ok(st) =
            nix::sys::stat::fstatat(&dev, "ptmx", nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            && (st.st_mode & libc::S_IFMT) != libc::S_IFLNK
        {
            let _ = nix::unistd::unlinkat(&dev, "ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir);
            nix::unistd::symlinkat("pts/ptmx", &dev, "ptmx")
                .map_err(fail("symlink", Path::new("/dev/ptmx")))?;
        }
    }
    Ok(())
}

/// Makes the rootfs the root: pivot_root(2) with the old root stacked under the
/// new one and then detached, so no path to the host's filesystem remains.
pub fn pivot(rootfs: &Path) -> Result<()> {
    let new_root = open(
        rootfs,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail("open rootfs", rootfs))?;
    let old_root = open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail("open old root", Path::new("/")))?;
    fchdir(&new_root).map_err(fail("chdir", rootfs))?;
    // pivot_root(".", ".") puts the old root on top of the new one at "/"
    // without needing a directory for it inside the container.
    pivot_root(".", ".").map_err(fail("pivot_root", rootfs))?;
    // "." is still the new root here: made a slave, every volume of the
    // container would be one, and an `rshared` volume would no longer
    // propagate to the host. The old root, entered by its descriptor, is
    // what is made a slave (so unmounting it does not reach the host) and
    // unmounted, as runc does.
    fchdir(&old_root).map_err(fail("chdir to the old root", Path::new("/")))?;
    drop(old_root);
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(fail("make old root rslave", Path::new("/")))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(fail("unmount old root", Path::new("/")))?;
    chdir("/").map_err(fail("chdir", Path::new("/")))
}

/// A container that shares the runtime's mount namespace is entered with
/// chroot: there is no namespace of its own to pivot. Not a boundary against
/// a process with CAP_SYS_CHROOT, as with runc in this case.
pub fn chroot_into(rootfs: &Path) -> Result<()> {
    chdir(rootfs).map_err(fail("chdir", rootfs))?;
    nix::unistd::chroot(".").map_err(fail("chroot", rootfs))?;
    chdir("/").map_err(fail("chdir", Path::new("/")))
}

/// The mount id of what is at `path` (not following a final symlink).
pub fn mount_id(path: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: an all-zero statx is a valid value to be overwritten.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx writes into the struct given; the path is a C string.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    (r == 0 && stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id)
}

/// Takes away the mounts a container sharing the runtime's mount namespace
/// made at its rootfs (they are all under the one rootfs mount), if the
/// mount there is not the one found before create (`below`).
pub fn detach_shared_rootfs(rootfs: &Path, below: Option<u64>) {
    if mount_id(rootfs).is_some_and(|now| Some(now) != below) {
        let _ = umount2(rootfs, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
    }
}

/// `--no-pivot`: move the rootfs over / and chroot into it (for ramdisk roots
/// where pivot_root is refused). Weaker: the old root stays reachable to a
/// process that can escape a chroot.
pub fn move_root(rootfs: &Path) -> Result<()> {
    chdir(rootfs).map_err(fail("chdir", rootfs))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(fail("move rootfs", rootfs))?;
    nix::unistd::chroot(".").map_err(fail("chroot", rootfs))?;
    chdir("/").map_err(fail("chdir", Path::new("/")))
}

/// Covers a masked path: /dev/null over a file, an empty read-only tmpfs over a
/// directory. The /dev/null bound is checked to be the real null device, so a
/// container cannot make husk bind something else (CVE-2025-31133).
pub fn mask_paths(paths: &[PathBuf]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let root = open_root(Path::new("/"))?;
    let null = open_in_root_checked_null(&root)?;
    for p in paths {
        let fd = match open_in_root(&root, p) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(fail("masked path", p)(e)),
        };
        let st = fstat(&fd).map_err(fail("masked path stat", p))?;
        let target = proc_fd_path(&fd);
        if (st.st_mode & libc::S_IFMT) == libc::S_IFDIR {
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(fail("mask directory", p))?;
        } else {
            mount(
                Some(&proc_fd_path(&null)),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(fail("mask file", p))?;
        }
    }
    Ok(())
}

fn open_in_root_checked_null(root: &OwnedFd) -> Result<OwnedFd> {
    let p = Path::new("/dev/null");
    let fd = open_in_root(root, p).map_err(fail("open", p))?;
    let st = fstat(&fd).map_err(fail("stat", p))?;
    if (st.st_mode & libc::S_IFMT) != libc::S_IFCHR || st.st_rdev != makedev(1, 3) {
        return Err(fail("not the null device", p)(Errno::ENODEV));
    }
    Ok(fd)
}

/// Makes each path a read-only bind of itself.
pub fn readonly_paths(paths: &[PathBuf]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let root = open_root(Path::new("/"))?;
    for p in paths {
        let fd = match open_in_root(&root, p) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(fail("readonly path", p)(e)),
        };
        let target = proc_fd_path(&fd);
        mount(
            Some(&target),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(fail("bind readonly path", p))?;
        let fd = open_in_root(&root, p).map_err(fail("readonly path", p))?;
        remount_bind(
            &proc_fd_path(&fd),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        )
        .map_err(fail("remount readonly path", p))?;
    }
    Ok(())
}

/// Remounts / read-only (`root.readonly`).
pub fn readonly_root() -> Result<()> {
    remount_bind(Path::new("/"), MsFlags::MS_RDONLY)
        .map_err(fail("remount / read-only", Path::new("/")))
}

/// Writes sysctls through /proc/sys, refusing anything that does not resolve to
/// a file of the real procfs under it.
pub fn write_sysctls(sysctl: &[(PathBuf, String)]) -> Result<()> {
    if sysctl.is_empty() {
        return Ok(());
    }
    let procsys = Path::new("/proc/sys");
    let dir = open(
        procsys,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail("open", procsys))?;
    check_procfs(&dir, procsys)?;
    for (key, value) in sysctl {
        let path = procsys.join(key);
        let how = nix::fcntl::OpenHow::new()
            .flags(OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_TRUNC)
            .resolve(
                nix::fcntl::ResolveFlag::RESOLVE_BENEATH
                    | nix::fcntl::ResolveFlag::RESOLVE_NO_SYMLINKS
                    | nix::fcntl::ResolveFlag::RESOLVE_NO_XDEV,
            );
        let f = nix::fcntl::openat2(dir.as_fd(), key.as_path(), how)
            .map_err(fail("open sysctl", &path))?;
        nix::unistd::write(&f, value.as_bytes()).map_err(fail("write sysctl", &path))?;
    }
    Ok(())
}

fn check_procfs(fd: &OwnedFd, path: &Path) -> Result<()> {
    let st = nix::sys::statfs::fstatfs(fd).map_err(fail("statfs", path))?;
    if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(fail("not procfs", path)(Errno::EXDEV));
    }
    Ok(())
}
