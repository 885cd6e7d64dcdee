//! The container's init: the steps the cloned process runs inside its new
//! namespaces, top to bottom, before it becomes the user's process. It only
//! executes the plan; every decision was made in the parent.

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;

use crate::hooks::{self, HookState};
use crate::plan::Plan;
use crate::process::exec;
use crate::process::sync::{Channel, Msg};
use crate::rootfs;

pub mod join;
pub mod reaper;

/// What the parent prepared for the init besides the plan: descriptors opened
/// before clone, inherited by the child.
pub struct Prepared {
    /// Namespaces to join, opened by the parent, in join order.
    pub join: Vec<(CloneFlags, OwnedFd)>,
    /// The exec fifo, open read-write: `start` writes one byte to it.
    pub fifo: OwnedFd,
    /// The engine's console socket, when the process has a terminal.
    pub console: Option<OwnedFd>,
    /// For each mount, the user namespace of its id mapping, if it has one.
    pub idmap_userns: Vec<Option<OwnedFd>>,
    /// Namespaces the init must unshare itself, after joining a user namespace.
    pub unshare: CloneFlags,
    /// Where `create`'s command line and environment are, to wipe.
    pub traces: crate::process::hide::Traces,
    /// The container's cgroup directory as the host sees it: a cgroup mount
    /// without a cgroup namespace shows only this.
    pub own_cgroup: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error("{step}: {errno}")]
    Step { step: String, errno: Errno },
    #[error("sync with parent: {0}")]
    Sync(String),
    #[error(transparent)]
    Lsm(#[from] crate::lsm::LsmError),
}

pub(crate) fn step(s: impl Into<String>) -> impl FnOnce(Errno) -> InitError {
    let step = s.into();
    move |errno| InitError::Step { step, errno }
}

/// Runs the init and never returns: it execs the user process, or reports the
/// failed step to the parent and exits.
pub fn run(plan: &Plan, chan: Channel, prep: Prepared) -> ! {
    let err = match steps(plan, &chan, prep) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    report(&chan, &err.to_string());
    // SAFETY: _exit skips destructors and atexit handlers that belong to the
    // parent's copy of this process.
    unsafe { libc::_exit(1) }
}

/// Reports a failed step to the parent; once the parent is gone (exec failed
/// after `start`), on the process's stderr, which is where the engine looks.
pub(crate) fn report(chan: &Channel, msg: &str) {
    if chan.send(&Msg::Error(msg.to_string())).is_err() {
        let line = format!("husk: unable to start container process: {msg}\n");
        let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
    }
}

fn steps(plan: &Plan, chan: &Channel, prep: Prepared) -> Result<Infallible, InitError> {
    // Non-dumpable while husk's code runs here: other processes in the container
    // cannot open /proc/PID/exe (the husk binary) or our descriptors. In a new
    // user namespace, only once the maps are written: a non-dumpable
    // process's /proc files belong to root, and a rootless parent could not
    // write them (runc does the same). No process of the container exists yet.
    let new_userns = plan.ns.new.contains(CloneFlags::CLONE_NEWUSER);
    if !new_userns {
        nix::sys::prctl::set_dumpable(false).map_err(step("prctl(PR_SET_DUMPABLE)"))?;
    }
    // The init waits for `start` in sight of processes exec'd into the
    // container (and of a pid namespace it joins): `create`'s command line is
    // not theirs to read (its environment was wiped before clone).
    prep.traces.wipe_args("init");
    // Modes of what the init makes (mount points, device nodes) are exact; the
    // process's own umask is set just before exec.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    // `run` blocks signals in the parent before clone, and husk ignores
    // SIGPIPE; the container must inherit neither across exec.
    crate::process::reset_signals().map_err(step("sigprocmask, signal(SIGPIPE)"))?;
    // husk's own PID 1 is exec'd from the binary this process runs (the
    // read-only view), opened while the host's /proc is still at hand.
    let pid1_exe = match plan.pid1 {
        Some(_) => Some(
            nix::fcntl::open(
                "/proc/self/exe",
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(step("annotations.run.husk.init: open /proc/self/exe"))?,
        ),
        None => None,
    };
    if new_userns {
        chan.expect(Msg::MapsDone).map_err(sync_err)?;
        nix::sys::prctl::set_dumpable(false).map_err(step("prctl(PR_SET_DUMPABLE)"))?;
        become_root_in_userns()?;
    }
    // In a user namespace: a new or joined one, or husk's caller's own when
    // that does not map every id (root under rootless podman): device nodes
    // are bound, sysfs and cgroup hierarchies fall back to binds.
    let joins_userns = plan
        .ns
        .join
        .iter()
        .any(|j| j.kind == CloneFlags::CLONE_NEWUSER);
    let in_userns = new_userns || joins_userns || !plan.caller.all_ids_mapped;
    // A joined pid namespace the init enters late (Plan::init_joins_pid_late,
    // the decision `create` made too; otherwise it cloned this process into
    // it): joined now for children, while the host's privileges are at hand,
    // and entered after pivot_root.
    // A rootless caller has no privilege of its own to enter a pid namespace:
    // only that of the joined user namespace (its own, or one it owns), so
    // that is joined first. Nor can it mount procfs once pivot_root has taken
    // the host's /proc out of its mount namespace (the kernel wants one
    // fully visible), so it enters the pid namespace at once, before any
    // mount. Processes already there still cannot reach it: it is not
    // dumpable, and its memory belongs to the initial user namespace, in
    // which they have no CAP_SYS_PTRACE.
    let late_pid = plan.init_joins_pid_late();
    let user_first = late_pid && joins_userns && plan.caller.rootless();
    if user_first {
        join_namespaces(&prep.join, |k| k == CloneFlags::CLONE_NEWUSER)?;
    }
    if late_pid {
        let pid_ns = prep
            .join
            .iter()
            .find(|(k, _)| *k == CloneFlags::CLONE_NEWPID);
        if let Some((kind, fd)) = pid_ns {
            nix::sched::setns(fd.as_fd(), *kind).map_err(step("setns pid (for children)"))?;
        }
    }
    join_namespaces(&prep.join, |k| {
        !(user_first && k == CloneFlags::CLONE_NEWUSER)
    })?;
    if joins_userns && !new_userns {
        become_root_in_userns()?;
    }
    if !prep.unshare.is_empty() {
        unshare_in_joined_user(prep.unshare, chan)?;
    }
    // (fork_into_pid_namespace makes the session.)
    let late_pid = late_pid && !user_first;
    if user_first {
        fork_into_pid_namespace(chan)?;
    } else {
        nix::unistd::setsid().map_err(step("setsid"))?;
    }
    if plan.new_keyring {
        // The keyring is labelled as the process will be.
        if let Some(label) = &plan.process.selinux_label {
            crate::lsm::selinux_key_label(label)?;
        }
        join_session_keyring(&plan.id)?;
    }

    // The rootfs is set up in a new or a joined mount namespace (as runc
    // does), and in the runtime's own (Plan::shares_mount_ns) inside the
    // rootfs only.
    let shared_mount_ns = plan.shares_mount_ns();
    rootfs::prepare(plan)?;
    let root = rootfs::open_root(&plan.rootfs)?;
    let deferred_proc = rootfs::mount_all(
        plan,
        &root,
        rootfs::MountCtx {
            in_userns,
            idmap_userns: &prep.idmap_userns,
            own_cgroup: prep.own_cgroup.as_deref(),
        },
        late_pid,
    )?;
    rootfs::create_devices(&plan.devices, &root, in_userns)?;
    rootfs::dev_symlinks(&root)?;
    drop(root);
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h).map_err(step("hostname"))?;
    }
    if let Some(d) = &plan.domainname {
        // SAFETY: setdomainname reads `len` bytes from the pointer.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(step("domainname")(Errno::last()));
        }
    }

    let state = |status| HookState {
        oci_version: &plan.oci_version,
        id: &plan.id,
        status,
        pid: std::process::id() as i32,
        bundle: &plan.bundle,
        annotations: &plan.annotations,
    };
    #[allow(deprecated)]
    let runtime_hooks = plan.hooks.prestart().is_some() || plan.hooks.create_runtime().is_some();
    if runtime_hooks {
        chan.send(&Msg::RuntimeHooks)
            .map_err(|e| InitError::Sync(e.to_string()))?;
        chan.expect(Msg::HooksDone).map_err(sync_err)?;
    }
    let create_container = plan.hooks.create_container().clone().unwrap_or_default();
    hooks::run("createContainer", &create_container, &state("created"))?;

    if shared_mount_ns {
        rootfs::chroot_into(&plan.rootfs)?;
    } else if plan.no_pivot {
        rootfs::move_root(&plan.rootfs)?;
    } else {
        rootfs::pivot(&plan.rootfs)?;
    }
    if let Some(p) = plan.rootfs_propagation.filter(|_| !shared_mount_ns) {
        nix::mount::mount(None::<&str>, "/", None::<&str>, p, None::<&str>)
            .map_err(step("linux.rootfsPropagation"))?;
    }
    if late_pid {
        // Root and cwd are the container's now; the namespace and id-map
        // descriptors go, and only then does the init appear in the joined
        // pid namespace, where it mounts /proc.
        drop(prep.join);
        drop(prep.idmap_userns);
        fork_into_pid_namespace(chan)?;
        rootfs::mount_deferred_proc(plan, deferred_proc)?;
    }
    if let Some(sock) = &prep.console {
        crate::console::setup(sock, plan.process.console_size, true)?;
    }
    drop(prep.console);
    rootfs::write_sysctls(&plan.sysctl)?;
    rootfs::readonly_paths(&plan.readonly_paths)?;
    rootfs::mask_paths(&plan.masked_paths)?;
    if plan.root_readonly {
        rootfs::readonly_root()?;
    }
    if let Some(p) = plan.personality {
        // SAFETY: personality takes an integer.
        if unsafe { libc::personality(p as libc::c_ulong) } < 0 {
            return Err(step("linux.personality")(Errno::last()));
        }
    }

    let p = &plan.process;
    exec::set_oom_score_adj(p)?;
    // Through the container's /proc, mounted by this process (lsm::open_attr
    // checks it is procfs with no other mount on the way).
    apply_lsm(p)?;
    let path = become_the_process(p, plan.seccomp.as_ref(), chan, plan.preserve_fds)?;

    // With no_new_privs the filter goes on as late as possible, so it need not
    // allow what husk itself does before exec; but a notifying filter must be
    // loaded while `create` is still here to hand its fd to the agent.
    let late_seccomp = plan.seccomp.as_ref().filter(|_| p.no_new_privileges);
    if let Some(sc) = late_seccomp.filter(|sc| sc.listener.is_some()) {
        load_seccomp(sc, chan)?;
    }
    chan.send(&Msg::Ready)
        .map_err(|e| InitError::Sync(e.to_string()))?;
    wait_for_start(&prep.fifo)?;
    if let Some(sc) = late_seccomp.filter(|sc| sc.listener.is_none()) {
        load_seccomp(sc, chan)?;
    }
    // The fifo stays open (close-on-exec) until exec: `start` waits for it to
    // close, so poststart hooks run only once the user's process is running.

    let start_container = plan.hooks.start_container().clone().unwrap_or_default();
    hooks::run("startContainer", &start_container, &state("created"))?;
    if let (Some(exe), Some(group)) = (&pid1_exe, plan.pid1) {
        return Err(exec_reaper(exe, &path, p, group));
    }
    Err(exec::exec(&path, p).into())
}

/// The process's identity and limits, in the order that works with and
/// without no_new_privs; shared by the init and an exec'd process.
fn become_the_process(
    p: &crate::plan::ProcessPlan,
    seccomp: Option<&crate::seccomp::Compiled>,
    chan: &Channel,
    preserve_fds: u32,
) -> Result<std::ffi::CString, InitError> {
    let id = take_identity(p, seccomp, preserve_fds)?;
    finish_identity(p, seccomp, chan, id)
}

/// The process's AppArmor profile and SELinux label, taking effect at its
/// execve (and kept across fork). Set before no_new_privs, which would
/// restrict the transition to them, as runc orders it.
pub(crate) fn apply_lsm(p: &crate::plan::ProcessPlan) -> Result<(), InitError> {
    if let Some(profile) = &p.apparmor {
        crate::lsm::apparmor_on_exec(profile)?;
    }
    if let Some(label) = &p.selinux_label {
        crate::lsm::selinux_on_exec(label)?;
    }
    Ok(())
}

/// What `take_identity` left for `finish_identity`.
struct Identity {
    /// The working directory could only be entered as the user.
    cwd_as_user: bool,
    /// The filter still needs CAP_SYS_ADMIN to load (no no_new_privs): the
    /// process kept it beyond its own capabilities, or is still root.
    filter_needs_admin: bool,
}

const CAP_SYS_ADMIN: u64 = 21;

/// The first half: rlimits, attributes, the working directory (as root, so
/// before a filter that need not allow the openat2 it takes), no_new_privs,
/// the bounding set, the user and the capability sets, and every descriptor
/// but stdio and the preserved ones made close-on-exec. Only what the filter
/// needs to load is kept: CAP_SYS_ADMIN without no_new_privs. An exec'd
/// process does this before it enters the container's pid namespace, so what
/// the container can see of it holds no more than the process will.
fn take_identity(
    p: &crate::plan::ProcessPlan,
    seccomp: Option<&crate::seccomp::Compiled>,
    preserve_fds: u32,
) -> Result<Identity, InitError> {
    exec::set_rlimits(p)?;
    exec::set_process_attrs(p)?;
    let cwd_as_user = match exec::chdir_cwd(p) {
        Ok(()) => false,
        Err(exec::ExecError::Cwd {
            errno: Errno::EACCES | Errno::EPERM,
            ..
        }) => true,
        Err(e) => return Err(e.into()),
    };
    if p.no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(step("process.noNewPrivileges"))?;
    }
    let filter_needs_admin = seccomp.is_some() && !p.no_new_privileges;
    let id = Identity {
        cwd_as_user,
        filter_needs_admin,
    };
    exec::close_fds(preserve_fds)?;
    let Some(caps) = &p.caps else {
        // No capability sets: with a filter to load the user change waits
        // for it (as root), as runc orders it.
        if !filter_needs_admin {
            change_user(p, &id)?;
        }
        return Ok(id);
    };
    exec::drop_bounding(caps)?;
    exec::change_user(p)?;
    if filter_needs_admin {
        let mut with_admin = *caps;
        with_admin.effective |= 1 << CAP_SYS_ADMIN;
        with_admin.permitted |= 1 << CAP_SYS_ADMIN;
        with_admin.ambient = 0;
        exec::set_caps(&with_admin)?;
    } else {
        exec::set_caps(caps)?;
    }
    if id.cwd_as_user {
        exec::chdir_cwd(p)?;
    }
    Ok(id)
}

fn change_user(p: &crate::plan::ProcessPlan, id: &Identity) -> Result<(), InitError> {
    exec::change_user(p)?;
    if id.cwd_as_user {
        exec::chdir_cwd(p)?;
    }
    Ok(())
}

/// The second half: without no_new_privs the filter is loaded now, with the
/// CAP_SYS_ADMIN that needs, and the process then drops to its own sets
/// (or, with no sets in the config, changes user as runc does after it).
/// Then the executable is looked up, as the user and where the program will
/// run (a path under /proc/self means the process itself). Returns it.
fn finish_identity(
    p: &crate::plan::ProcessPlan,
    seccomp: Option<&crate::seccomp::Compiled>,
    chan: &Channel,
    id: Identity,
) -> Result<std::ffi::CString, InitError> {
    if let (Some(sc), true) = (seccomp, id.filter_needs_admin) {
        load_seccomp(sc, chan)?;
        match &p.caps {
            Some(caps) => exec::set_caps(caps)?,
            None => change_user(p, &id)?,
        }
    }
    Ok(exec::find_executable(p)?)
}

/// Loads the seccomp filter; a listener fd goes to the parent (which hands it
/// to the agent) and is closed here, so it never reaches the container.
fn load_seccomp(sc: &crate::seccomp::Compiled, chan: &Channel) -> Result<(), InitError> {
    let listener = crate::seccomp::load(sc).map_err(step("linux.seccomp: load the filter"))?;
    if let Some(fd) = listener {
        chan.send_fd(&Msg::SeccompFd, &fd)
            .map_err(|e| InitError::Sync(e.to_string()))?;
    }
    Ok(())
}

/// Execs `husk init [-g] -- PATH ARGS…` from `exe`, with the process's
/// environment: the reaper then starts the program as its child.
fn exec_reaper(
    exe: &OwnedFd,
    path: &std::ffi::CStr,
    p: &crate::plan::ProcessPlan,
    group: bool,
) -> InitError {
    let mut argv: Vec<&std::ffi::CStr> = vec![c"husk", c"init"];
    if group {
        argv.push(c"-g");
    }
    argv.push(c"--");
    argv.push(path);
    argv.extend(p.args.iter().skip(1).map(|a| a.as_c_str()));
    // `start` returns once this exec happens, before the init has set up its
    // forwarding; a signal sent then to a PID 1 with no handler would be
    // dropped. Blocked, it stays pending across exec for the init to read.
    if let Err(e) = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&crate::process::forwardable_signals()),
        None,
    ) {
        return step("annotations.run.husk.init: sigprocmask")(e);
    }
    let errno = nix::unistd::execveat(exe, c"", &argv, &p.env, nix::fcntl::AtFlags::AT_EMPTY_PATH)
        .err()
        .unwrap_or(Errno::EINVAL);
    step("annotations.run.husk.init: exec husk init")(errno)
}

fn sync_err(e: Result<String, crate::process::sync::SyncError>) -> InitError {
    match e {
        Ok(msg) => InitError::Sync(msg),
        Err(e) => InitError::Sync(e.to_string()),
    }
}

/// In a user namespace the init starts as the overflow id: become the
/// namespace's root so that files it makes are owned by the mapped root.
fn become_root_in_userns() -> Result<(), InitError> {
    nix::unistd::setresgid(0.into(), 0.into(), 0.into())
        .map_err(step("setresgid(0) in user namespace (is gid 0 mapped?)"))?;
    nix::unistd::setresuid(0.into(), 0.into(), 0.into())
        .map_err(step("setresuid(0) in user namespace (is uid 0 mapped?)"))?;
    Ok(())
}

/// Makes the new namespaces inside the joined user namespace. pid and time
/// namespaces only apply to children, so the init is then forked into them;
/// this process reports the init's pid and exits.
fn unshare_in_joined_user(flags: CloneFlags, chan: &Channel) -> Result<(), InitError> {
    nix::sched::unshare(flags).map_err(step(format!("unshare {flags:?}")))?;
    let for_children = CloneFlags::CLONE_NEWPID | CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
    if !flags.intersects(for_children) {
        return Ok(());
    }
    match crate::process::clone::clone3(0, None).map_err(step("fork into new pid namespace"))? {
        (crate::process::clone::Forked::Child, _) => Ok(()),
        (crate::process::clone::Forked::Parent { pid, .. }, _) => {
            // This process is in the parent's pid namespace (a pid namespace
            // cannot be both new and joined), so the pid means the same there.
            let _ = chan.send(&Msg::Pid(pid));
            // SAFETY: _exit skips destructors that belong to the init.
            unsafe { libc::_exit(0) }
        }
    }
}

/// Forks the init into the pid namespace joined for children; this process
/// hands the init's pid and a pidfd to `create` and exits. The init is
/// `create`'s own child (CLONE_PARENT), in a session of its own, and waits
/// until this process is gone, so `create` has its pid before anything else
/// the init says (its `Ready` must not overtake the pid).
fn fork_into_pid_namespace(chan: &Channel) -> Result<(), InitError> {
    use crate::process::clone::{Forked, clone_sibling};
    let (gone, alive) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(step("pipe"))?;
    match clone_sibling().map_err(step("fork into the joined pid namespace"))? {
        Forked::Child => {
            drop(alive);
            let mut b = [0u8; 1];
            while let Err(Errno::EINTR) = nix::unistd::read(&gone, &mut b) {}
            nix::unistd::setsid().map_err(step("setsid"))?;
            Ok(())
        }
        Forked::Parent { pid, pidfd } => {
            let _ = chan.send_fd(&Msg::Pid(pid), &pidfd);
            // SAFETY: _exit skips destructors that belong to the init; the
            // pipe's write end closes with it.
            unsafe { libc::_exit(0) }
        }
    }
}

fn join_namespaces(
    join: &[(CloneFlags, OwnedFd)],
    which: impl Fn(CloneFlags) -> bool,
) -> Result<(), InitError> {
    for (kind, fd) in join.iter().filter(|(k, _)| which(*k)) {
        // pid and time namespaces apply to children: the parent joined those
        // before clone.
        if *kind == CloneFlags::CLONE_NEWPID || kind.bits() == libc::CLONE_NEWTIME {
            continue;
        }
        nix::sched::setns(fd.as_fd(), *kind).map_err(step(format!("setns {kind:?}")))?;
    }
    Ok(())
}

/// A session keyring of the container's own, so keys are not shared with the
/// host's session (runc does the same unless --no-new-keyring).
fn join_session_keyring(id: &str) -> Result<(), InitError> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name = std::ffi::CString::new(format!("_ses.{id}"))
        .map_err(|_| step("keyring name")(Errno::EINVAL))?;
    // SAFETY: keyctl reads a NUL-terminated name.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if r < 0 {
        match Errno::last() {
            // Kernels without keyrings, or where the syscall is filtered.
            Errno::ENOSYS | Errno::EPERM => {}
            e => return Err(step("join session keyring")(e)),
        }
    }
    Ok(())
}

/// Blocks until `start` writes a byte to the exec fifo.
fn wait_for_start(fifo: &OwnedFd) -> Result<(), InitError> {
    let mut b = [0u8; 1];
    loop {
        match nix::unistd::read(fifo.as_fd(), &mut b) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(step("read exec fifo")(e)),
            Ok(_) => return Ok(()),
        }
    }
}
