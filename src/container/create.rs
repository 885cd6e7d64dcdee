//! `create`: plan in the parent, clone the init into its namespaces and cgroup,
//! serve its requests (id maps, runtime hooks) until it is set up and waiting
//! for `start`, then record the state. Any failure undoes everything.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use super::Error;
use super::making::Making;
use super::state::{ContainerDir, State, process_start, write_atomic};
use crate::bundle::Bundle;
use crate::cgroups::{self, Cgroup};
use crate::hooks::{self, HookState};
use crate::init::{self, Prepared};
use crate::plan::{CapSets, CreateOptions, Plan};
use crate::process::clone::{Forked, clone3};
use crate::process::sync::{self, Msg};

/// What `create` (and `run`) were asked for.
pub struct CreateArgs<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub pid_file: Option<&'a Path>,
    pub console_socket: Option<&'a Path>,
    /// A connected socket to send the pty master over, instead of a path
    /// (`run` in the foreground serves the terminal itself).
    pub console_fd: Option<&'a OwnedFd>,
    pub opts: CreateOptions,
    pub systemd_cgroup: bool,
}

/// A created container, as its creator sees it.
pub struct Created {
    pub state: State,
    /// Whether the process has a terminal (its master was sent to the console socket).
    pub terminal: bool,
    /// Things worth a warning in the log (seccomp syscalls this libseccomp
    /// does not know, skipped as runc skips them).
    pub warnings: Vec<String>,
    /// A pidfd of the init (the creator is its parent).
    pub pidfd: OwnedFd,
}

/// Everything a failed create must take back: the record (kept on disk
/// too, before each thing is made, for a create that is killed), the init's
/// pidfd, and the directory's lock.
struct Undo<'a> {
    dir: &'a ContainerDir,
    made: Making,
    /// A pidfd of the init (a child of this process until it forks into
    /// its pid namespace).
    child: Option<OwnedFd>,
    lock: Option<std::fs::File>,
    /// The record on disk, opened at the first step.
    journal: Option<std::fs::File>,
}

impl Undo<'_> {
    /// Writes the record before what it names is made.
    fn record(&mut self) -> Result<(), Error> {
        let f = match &mut self.journal {
            Some(f) => f,
            None => self.journal.insert(self.dir.open_making()?),
        };
        Ok(self.dir.append_making(f, &self.made)?)
    }

    fn run(&mut self) {
        if let Some(pidfd) = self.child.take() {
            self.made.undo(Some(pidfd.as_fd()));
            if let Some((pid, _)) = self.made.child {
                // Reaped when it is this process's child (not the init
                // forked into its pid namespace by the intermediate).
                let _ = nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                );
            }
        } else {
            self.made.undo(None);
        }
        let _ = self.dir.remove();
    }
}

pub fn create(root: &Path, args: &CreateArgs<'_>) -> Result<Created, Error> {
    let dir = ContainerDir::new(root, args.id)?;
    let bundle = Bundle::load(args.bundle)?;
    let mut opts = args.opts.clone();
    opts.console_socket = args.console_socket.is_some() || args.console_fd.is_some();
    let plan = Plan::new(args.id, &bundle.dir, &bundle.spec, &opts)?;
    if !plan.rootfs.is_dir() {
        return Err(Error::Config(format!(
            "root.path: {}: not a directory or does not exist",
            plan.rootfs.display()
        )));
    }
    // As runc: the rootfs is taken by its real path only, so what the
    // engine named is what gets mounted.
    match std::fs::canonicalize(&plan.rootfs) {
        Ok(real) if real == plan.rootfs => {}
        Ok(real) => {
            return Err(Error::Config(format!(
                "root.path: {}: not an absolute path, or a symlink (it resolves to {})",
                plan.rootfs.display(),
                real.display()
            )));
        }
        Err(e) => {
            return Err(Error::Config(format!(
                "root.path: {}: {e}",
                plan.rootfs.display()
            )));
        }
    }
    // Resolved before anything is made, so a bad path leaves nothing behind.
    let pid_file = args
        .pid_file
        .map(std::path::absolute)
        .transpose()
        .map_err(|e| Error::Config(format!("--pid-file: {e}")))?;
    let lock = dir.claim()?;
    let mut undo = Undo {
        dir: &dir,
        made: Making {
            shared_rootfs: plan
                .shares_mount_ns()
                .then(|| (plan.rootfs.clone(), crate::rootfs::mount_id(&plan.rootfs))),
            ..Making::default()
        },
        child: None,
        lock: Some(lock),
        journal: None,
    };
    match create_in(
        &dir,
        &plan,
        &bundle.raw,
        args,
        pid_file.as_deref(),
        &mut undo,
    ) {
        Ok(c) => Ok(c),
        Err(e) => {
            undo.run();
            Err(e)
        }
    }
}

fn create_in(
    dir: &ContainerDir,
    plan: &Plan,
    raw_config: &[u8],
    args: &CreateArgs<'_>,
    pid_file: Option<&Path>,
    undo: &mut Undo<'_>,
) -> Result<Created, Error> {
    // On a v1 or hybrid host the resource controllers are in the v1
    // hierarchies: the limits go there (as runc puts them), and the unified
    // hierarchy, where there is one, holds the container for membership,
    // freezing and the device program. On a pure v2 host, all is there.
    let v1 = cgroups::v1::hierarchies();
    let v1_mode = !v1.is_empty();
    if let Some(e) = if v1_mode {
        &plan.cgroup_v1_error
    } else {
        &plan.cgroup_v2_error
    } {
        return Err(e.clone().into());
    }
    // The systemd driver: the container's cgroup is a transient scope that
    // systemd makes (in slices it makes), found at the same place in every
    // hierarchy.
    let unit = match args.systemd_cgroup {
        true => Some(cgroups::systemd::Unit::for_container(
            plan.cgroups_path.as_deref(),
            &plan.id,
        )?),
        false => None,
    };
    // A rootless caller's container goes beside its own cgroup (where a
    // delegated subtree is) unless the config names an absolute path.
    let own = match plan.caller.rootless() {
        true => std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|t| cgroups::own_unified(&t)),
        false => None,
    };
    let rel = match (&unit, &own) {
        (Some(u), _) => u.rel.clone(),
        (None, Some(own)) => {
            cgroups::rootless_relative_path(own, plan.cgroups_path.as_deref(), &plan.id)?
        }
        (None, None) => cgroups::relative_path(plan.cgroups_path.as_deref(), &plan.id)?,
    };
    // Parents made for the config's own cgroupsPath go again with the
    // container. husk's default parent (`husk/`) is shared by every
    // container: it is not recorded as made, so it stays in the v1
    // hierarchies (as runc's parents do) instead of going and coming back
    // with every container; on the unified hierarchy `cgroups::remove`
    // takes it when it is empty, as it always has. systemd's slices are
    // systemd's.
    let own_parents = plan.cgroups_path.is_some() && unit.is_none();
    let mut unified = cgroups::unified_mount();
    let mut v1 = v1;
    let mut v1_mode = v1_mode;
    let mut without_cgroup = false;
    // Rootless (crate::rootless): a cgroup only where the caller may make
    // one (a delegated subtree); elsewhere none at all, as runc and crun do,
    // unless the config asks for limits.
    if plan.caller.rootless() {
        if unit.is_some() {
            return Err(cgroups::CgroupError::RootlessSystemd.into());
        }
        let targets: Vec<PathBuf> = unified
            .iter()
            .map(|m| m.join(&rel))
            .chain(v1.iter().map(|h| h.mount.join(&rel)))
            .collect();
        if let Some(denied) = targets.iter().find(|p| !cgroups::may_make(p)) {
            let limits = match v1_mode {
                true => !plan.cgroup_v1_writes.is_empty(),
                false => !plan.cgroup_writes.is_empty(),
            };
            if limits {
                return Err(cgroups::CgroupError::RootlessNotDelegated {
                    path: denied.clone(),
                }
                .into());
            }
            unified = None;
            v1.clear();
            v1_mode = false;
            without_cgroup = true;
        }
    }
    let cgroup = unified.as_ref().map(|mount| {
        let mut cg = Cgroup::intent(mount, &rel);
        cg.made_from = match own_parents {
            true => cgroups::below_default_parent(cg.made_from, &cg.path),
            false => None,
        };
        cg
    });
    if let Some(cg) = cgroup.as_ref().filter(|c| c.created) {
        undo.made.cgroup = Some(cg.path.clone());
        undo.made.cgroup_made_from = cg.made_from.clone();
    }
    undo.made.systemd_unit = unit.as_ref().map(|u| u.name.clone());
    if v1_mode {
        undo.made.cgroup_v1 = cgroups::v1::intent(&v1, &rel);
        for p in &mut undo.made.cgroup_v1 {
            p.made_from = match own_parents {
                true => cgroups::below_default_parent(p.made_from.take(), &p.path),
                false => None,
            };
        }
    }
    // Recorded before made: a create killed from here on leaves a record
    // of everything it may have made.
    undo.record()?;
    let v2_writes = match (&unified, v1_mode) {
        (Some(mount), false) => cgroups::effective_writes(mount, &plan.cgroup_writes),
        _ => Vec::new(),
    };
    // Holds the scope until the init is in it.
    let placeholder = match &unit {
        Some(u) => {
            let mut props = cgroups::systemd::resource_props(match v1_mode {
                true => &plan.cgroup_v1_writes,
                false => &v2_writes,
            });
            if let Some((default, exceptions)) = &plan.device_rules {
                let proc_devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
                props.extend(cgroups::systemd::device_props(
                    *default,
                    exceptions,
                    &proc_devices,
                ));
            }
            Some(cgroups::systemd::start(u, &plan.id, &props)?)
        }
        None => None,
    };
    let cgroup = match (unified, cgroup) {
        (Some(mount), Some(cg)) => {
            if unit.is_none() {
                cg.make()?;
            }
            // Limits are in place before the process exists.
            if !v1_mode {
                cgroups::enable_controllers(&mount, &rel, &v2_writes)?;
                cgroups::apply(&cg.path, &v2_writes)?;
            }
            Some(cg)
        }
        _ if !without_cgroup
            && !v1_mode
            && (!plan.cgroup_writes.is_empty() || plan.devices_asked) =>
        {
            return Err(cgroups::CgroupError::NoV2.into());
        }
        _ => None,
    };
    if v1_mode {
        cgroups::v1::make(&undo.made.cgroup_v1)?;
        cgroups::v1::apply(&undo.made.cgroup_v1, &plan.cgroup_v1_writes)?;
        // The unified hierarchy's device program enforces the policy on a
        // hybrid host too (the kernel checks both); the v1 lists are written
        // as well when the config lists rules (engines and the OCI suite
        // read devices.list), when there is no unified hierarchy, or when
        // the v1 list is not open (a directory there already, or one that
        // inherited a restricted parent's list: it would deny the
        // container's own devices, and runc rewrites it).
        if let Some((default, exceptions)) = &plan.device_rules
            && !plan.caller.rootless()
            && (plan.devices_asked
                || cgroup.is_none()
                || !cgroups::v1::devices_open(&undo.made.cgroup_v1))
        {
            let lines = cgroups::devices::v1_lines(*default, exceptions);
            cgroups::v1::apply_devices(&undo.made.cgroup_v1, &lines)?;
        }
    }
    let cgroup_fd = cgroup.as_ref().map(|c| c.open()).transpose()?;
    // A rootless caller cannot load a device program (it takes
    // CAP_SYS_ADMIN), and needs none: in its user namespace no device node
    // can be made, only the host's bound in.
    let device_rules = plan
        .device_rules
        .as_ref()
        .filter(|_| !plan.caller.rootless());
    if let (Some((default, exceptions)), Some(fd)) = (device_rules, &cgroup_fd) {
        let prog = cgroups::devices::program(*default, exceptions);
        cgroups::devices::attach(fd.as_fd(), &prog).map_err(|e| {
            Error::Os(
                "linux.resources.devices: load and attach the device eBPF program".into(),
                e,
            )
        })?;
    }

    let fifo_path = dir.fifo();
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o600))
        .map_err(|e| Error::Os(format!("mkfifo {}", fifo_path.display()), e))?;
    // Read-write: opening never blocks, and the init's read blocks until
    // `start` writes.
    let fifo = open(&fifo_path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::Os(format!("open {}", fifo_path.display()), e))?;

    let console = match (args.console_socket, args.console_fd) {
        _ if !plan.process.terminal => None,
        (Some(p), _) => {
            let s = UnixStream::connect(p)
                .map_err(|e| Error::Config(format!("--console-socket {}: {e}", p.display())))?;
            Some(OwnedFd::from(s))
        }
        (None, Some(fd)) => Some(dup_fd(fd)?),
        (None, None) => None,
    };

    let mut join = Vec::new();
    for j in &plan.ns.join {
        let fd = open(&j.path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::Config(format!("{}: {}: {e}", j.field, j.path.display())))?;
        join.push((j.kind, fd));
    }

    // pid and time namespaces take effect for children: enter (or make) them
    // here, clone into them, and come back.
    let late_pid = plan.init_joins_pid_late();
    let mut restore = Vec::new();
    let mut flags = plan.ns.new;
    for (kind, fd) in &join {
        if *kind == CloneFlags::CLONE_NEWPID && late_pid {
            // The init enters it itself once its rootfs is set up.
            continue;
        }
        if *kind == CloneFlags::CLONE_NEWPID || kind.bits() == libc::CLONE_NEWTIME {
            restore.push(for_children_ns(*kind)?);
            nix::sched::setns(fd.as_fd(), *kind)
                .map_err(|e| Error::Os(format!("setns {kind:?}"), e))?;
        }
    }
    if let Some(offsets) = &plan.time_offsets {
        let time = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
        restore.push(for_children_ns(time)?);
        nix::sched::unshare(time).map_err(|e| Error::Os("unshare time namespace".into(), e))?;
        std::fs::write("/proc/self/timens_offsets", offsets)
            .map_err(|e| Error::Config(format!("linux.timeOffsets: {e}")))?;
        flags.remove(time);
    }

    let mut idmap_userns = Vec::with_capacity(plan.mounts.len());
    for m in &plan.mounts {
        idmap_userns.push(match m.options.idmap {
            Some(_) => Some(
                crate::process::idmap::mapped_userns(&m.uid_mappings, &m.gid_mappings)
                    .map_err(|e| Error::Os(format!("{}: user namespace for idmap", m.field), e))?,
            ),
            None => None,
        });
    }

    // Nothing in `create` reads its environment again; the init must not be
    // born with it (crate::process::hide).
    let traces = crate::process::hide::Traces::of_self();
    traces.wipe_env();
    let (parent_chan, child_chan) = sync::pair().map_err(|e| Error::Init(e.to_string()))?;
    // New namespaces inside a joined user namespace are made by the init itself.
    let (clone_flags, unshare) = if plan.ns.new_inside_joined_user() {
        (CloneFlags::empty(), flags)
    } else {
        (flags, CloneFlags::empty())
    };
    let prep = Prepared {
        join,
        fifo,
        console,
        idmap_userns,
        unshare,
        traces,
        own_cgroup: cgroup.as_ref().map(|c| c.path.clone()),
    };
    let cloned = clone3(
        clone_flags.bits() as u64,
        cgroup_fd.as_ref().map(|f| f.as_fd()),
    );
    if let Ok((Forked::Child, _)) = cloned {
        // The init keeps only what it needs: a host directory fd left open
        // could become the container's cwd (CVE-2024-21626).
        drop(cgroup_fd);
        drop(parent_chan);
        drop(restore);
        // The lock must end with create, not with an init left waiting.
        drop(undo.lock.take());
        drop(undo.journal.take());
        init::run(plan, child_chan, prep)
    }
    // Only the parent goes back: setns to a time namespace would move the
    // child itself out of its new one.
    for (kind, fd) in restore {
        let _ = nix::sched::setns(fd.as_fd(), kind);
    }
    let (mut pid, mut pidfd, placed) = match cloned.map_err(|e| Error::Os("clone3".into(), e))? {
        (Forked::Parent { pid, pidfd }, placed) => (pid, pidfd, placed),
        (Forked::Child, _) => unreachable!("the child never returns from init::run"),
    };
    drop(child_chan);
    drop(prep);
    // Before this the init ends by itself if create dies: its channel to
    // create closes.
    adopt_init(undo, pid, &pidfd, cgroup.as_ref(), placed)?;
    // The init holds the scope now.
    drop(placeholder);

    if let (Some(u), Some(g)) = (&plan.uid_map, &plan.gid_map) {
        crate::process::idmap::write_maps_as(&plan.caller, pid, u, g)
            .map_err(|e| Error::Config(format!("linux.uidMappings/gidMappings: {e}")))?;
        parent_chan
            .send(&Msg::MapsDone)
            .map_err(|e| Error::Init(e.to_string()))?;
    }

    loop {
        // runtime.md: hooks are steps 3-5 of the lifecycle, after the
        // environment is made (step 2), when the status is `created`; the
        // seccomp agent, told during step 2, sees `creating`. runc gives
        // `creating` to the hooks too; crun and the OCI suite, `created`.
        let hook_state = HookState {
            oci_version: &plan.oci_version,
            id: &plan.id,
            status: "created",
            pid,
            bundle: &plan.bundle,
            annotations: &plan.annotations,
        };
        let (msg, fd) = match parent_chan.recv_fd() {
            Ok((m, fd)) => (Ok(m), fd),
            Err(e) => (Err(e), None),
        };
        match msg {
            Ok(Msg::Ready) => break,
            Ok(Msg::SeccompFd) => {
                let (Some(fd), Some(l)) =
                    (fd, plan.seccomp.as_ref().and_then(|s| s.listener.as_ref()))
                else {
                    return Err(Error::Init(
                        "seccomp listener fd: missing or not asked for".into(),
                    ));
                };
                let agent_state = HookState {
                    status: "creating",
                    ..hook_state
                };
                crate::seccomp::send_to_listener(l, &agent_state, &fd)
                    .map_err(|e| Error::Config(e.to_string()))?;
            }
            Ok(Msg::Pid(init)) => {
                // The intermediate forked the init into its new pid namespace and
                // exits: reap it and follow the init instead.
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                pid = init;
                pidfd = match fd {
                    Some(fd) => fd,
                    None => crate::process::clone::pidfd_open(pid)
                        .map_err(|e| Error::Os(format!("pidfd_open {pid}"), e))?,
                };
                // The intermediate may have forked it before it was itself
                // moved into the v1 hierarchies (or, without clone3's
                // placement, the unified one): the init goes there itself.
                adopt_init(undo, pid, &pidfd, cgroup.as_ref(), placed)?;
            }
            Ok(Msg::RuntimeHooks) => {
                #[allow(deprecated)]
                let prestart = plan.hooks.prestart().clone().unwrap_or_default();
                hooks::run("prestart", &prestart, &hook_state)?;
                let create_runtime = plan.hooks.create_runtime().clone().unwrap_or_default();
                hooks::run("createRuntime", &create_runtime, &hook_state)?;
                parent_chan
                    .send(&Msg::HooksDone)
                    .map_err(|e| Error::Init(e.to_string()))?;
            }
            Ok(Msg::Error(msg)) => return Err(Error::Init(msg)),
            Ok(m) => return Err(Error::Init(format!("unexpected message {m:?}"))),
            Err(e) => return Err(Error::Init(e.to_string())),
        }
    }

    // Read when the init was adopted.
    let pid_start = undo.made.child.map_or(0, |(_, start)| start);
    let state = State {
        oci_version: plan.oci_version.clone(),
        id: plan.id.clone(),
        pid,
        pid_start,
        bundle: plan.bundle.clone(),
        rootfs: plan.rootfs.clone(),
        created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        annotations: plan.annotations.clone(),
        cgroup: cgroup.as_ref().map(|c| c.path.clone()),
        cgroup_owned: cgroup.as_ref().is_some_and(|c| c.created),
        cgroup_made_from: cgroup.as_ref().and_then(|c| c.made_from.clone()),
        cgroup_v1: undo.made.cgroup_v1.clone(),
        systemd_unit: unit.map(|u| u.name),
        shared_pid_ns: !plan.ns.has(CloneFlags::CLONE_NEWPID),
        shared_mounts_above: undo
            .made
            .shared_rootfs
            .as_ref()
            .map(|(_, below)| below.unwrap_or(0)),
        poststop: plan.hooks.poststop().clone().unwrap_or_default(),
        poststart: plan.hooks.poststart().clone().unwrap_or_default(),
    };
    dir.save_config(raw_config)?;
    dir.save(&state)?;
    if let Some(p) = pid_file {
        write_atomic(p, pid.to_string().as_bytes(), 0o644)
            .map_err(|e| Error::Config(format!("--pid-file {}: {e}", p.display())))?;
    }
    // The record stays until delete removes the directory: with the state
    // written it is never read (one file freed fewer on create's path).
    undo.child = None;
    undo.made = Making::default();
    Ok(Created {
        state,
        terminal: plan.process.terminal,
        warnings: plan
            .seccomp
            .iter()
            .flat_map(|s| &s.skipped)
            .map(|n| format!("linux.seccomp: unknown syscall {n:?} skipped"))
            .chain(plan.process.caps.iter().filter(|c| c.ambient_dropped != 0).map(|c| {
                format!(
                    "process.capabilities.ambient: {} not raised: an ambient capability must be \
                     permitted and inheritable too",
                    CapSets::names(c.ambient_dropped).join(", ")
                )
            }))
            .collect(),
        pidfd,
    })
}

/// Takes `pid` as the container's init: a pidfd to end it with, the record
/// (with its start time: a pid alone could be reused), and its place in the
/// cgroups (clone3 placed the first process in the unified one when it
/// could; the v1 hierarchies are joined by writing the pid).
fn adopt_init(
    undo: &mut Undo<'_>,
    pid: i32,
    pidfd: &OwnedFd,
    cgroup: Option<&Cgroup>,
    placed: bool,
) -> Result<(), Error> {
    undo.child = Some(dup_fd(pidfd)?);
    let start = process_start(pid)
        .map(|(s, _)| s)
        .ok_or_else(|| Error::Init("the container's init exited during set-up".into()))?;
    undo.made.child = Some((pid, start));
    undo.record()?;
    if let (Some(cg), false) = (cgroup, placed) {
        cg.add(pid)?;
    }
    Ok(cgroups::v1::add(&undo.made.cgroup_v1, pid)?)
}

fn dup_fd(fd: &OwnedFd) -> Result<OwnedFd, Error> {
    fd.try_clone().map_err(|e| {
        Error::Os(
            "dup".into(),
            nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)),
        )
    })
}

/// A descriptor of this process's current namespace for children of `kind`,
/// to return to after clone.
fn for_children_ns(kind: CloneFlags) -> Result<(CloneFlags, OwnedFd), Error> {
    let name = if kind == CloneFlags::CLONE_NEWPID {
        "pid_for_children"
    } else {
        "time_for_children"
    };
    let path = format!("/proc/self/ns/{name}");
    let fd = open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Os(format!("open {path}"), e))?;
    Ok((kind, fd))
}
