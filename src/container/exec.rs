//! `exec`: run another process in a running container. The process comes from
//! `--process` (the OCI Process JSON engines write) or from the container's
//! own `process` with runc's overrides. It is cloned into the container's
//! cgroup and pid namespace, joins every other namespace of the init, gets
//! the process's user, capabilities, rlimits, no_new_privs and the container's
//! seccomp filter, and execs. In the foreground, `exec` forwards signals and
//! exits with the process's status; with `--detach` it returns once the
//! program runs.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::Process;

use super::state::{Status, write_atomic};
use super::{Error, load};
use crate::hooks::HookState;
use crate::init::join::{self, JoinPlan};
use crate::process::clone::{Forked, clone3, pidfd_open};
use crate::process::hide::Traces;
use crate::process::sync::{self, Msg, SyncError};

/// What `exec` was asked for (runc's flags).
#[derive(Debug, Default)]
pub struct ExecArgs<'a> {
    pub id: &'a str,
    pub process: Option<&'a Path>,
    pub args: &'a [String],
    pub tty: bool,
    pub console_socket: Option<&'a Path>,
    pub detach: bool,
    pub pid_file: Option<&'a Path>,
    pub cwd: Option<&'a Path>,
    pub env: &'a [String],
    pub user: Option<&'a str>,
    pub additional_gids: &'a [u32],
    pub caps: &'a [String],
    pub no_new_privs: bool,
    pub preserve_fds: u32,
    /// `--apparmor`: the process's profile instead of the container's.
    pub apparmor: Option<&'a str>,
    /// `--process-label`: its SELinux label instead of the container's.
    pub process_label: Option<&'a str>,
}

/// The process to run: the `--process` file, or the container's own process
/// with the command line's overrides (as runc builds it).
pub fn process(a: &ExecArgs<'_>, base: Option<&Process>) -> Result<Process, Error> {
    if let Some(f) = a.process {
        let text = std::fs::read(f)
            .map_err(|e| Error::Config(format!("--process {}: {e}", f.display())))?;
        let de = &mut serde_json::Deserializer::from_slice(&text);
        return serde_path_to_error::deserialize(de).map_err(|e| {
            Error::Config(format!(
                "--process {}: {}: {}",
                f.display(),
                e.path(),
                e.inner()
            ))
        });
    }
    if a.args.is_empty() {
        return Err(Error::Config(
            "exec: a command to run is required (or --process)".into(),
        ));
    }
    let mut p = base.cloned().unwrap_or_default();
    p.set_args(Some(a.args.to_vec()));
    p.set_terminal(Some(a.tty));
    if let Some(cwd) = a.cwd {
        p.set_cwd(cwd.to_path_buf());
    }
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for e in a.env {
            let key = e.split('=').next().unwrap_or_default();
            env.retain(|old| old.split('=').next() != Some(key));
            env.push(e.clone());
        }
        p.set_env(Some(env));
    }
    if let Some(profile) = a.apparmor {
        p.set_apparmor_profile(Some(profile.to_string()));
    }
    if let Some(label) = a.process_label {
        p.set_selinux_label(Some(label.to_string()));
    }
    if let Some(u) = a.user {
        let (uid, gid) = parse_user(u)?;
        let mut user = p.user().clone();
        user.set_uid(uid);
        if let Some(g) = gid {
            user.set_gid(g);
        }
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.to_vec()));
        p.set_user(user);
    }
    if !a.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let mut added = Vec::new();
        for c in a.caps {
            let name = if c.starts_with("CAP_") {
                c.clone()
            } else {
                format!("CAP_{}", c.to_uppercase())
            };
            let cap: oci_spec::runtime::Capability = serde_json::from_value(name.clone().into())
                .map_err(|_| Error::Config(format!("--cap {c}: unknown capability")))?;
            added.push(cap);
        }
        let with = |set: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = set.clone().unwrap_or_default();
            s.extend(added.iter().copied());
            Some(s)
        };
        caps.set_bounding(with(caps.bounding()));
        caps.set_effective(with(caps.effective()));
        caps.set_permitted(with(caps.permitted()));
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// runc's `--user UID[:GID]`, numeric.
fn parse_user(u: &str) -> Result<(u32, Option<u32>), Error> {
    let bad = || Error::Config(format!("--user {u:?}: expected UID[:GID], numeric"));
    let (uid, gid) = match u.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (u, None),
    };
    let uid = uid.parse().map_err(|_| bad())?;
    let gid = gid.map(|g| g.parse().map_err(|_| bad())).transpose()?;
    Ok((uid, gid))
}

/// The namespace kinds in which the init differs from this process.
fn namespaces_to_join(pid: i32) -> CloneFlags {
    const KINDS: [(&str, libc::c_int); 8] = [
        ("user", libc::CLONE_NEWUSER),
        ("mnt", libc::CLONE_NEWNS),
        ("pid", libc::CLONE_NEWPID),
        ("net", libc::CLONE_NEWNET),
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("cgroup", libc::CLONE_NEWCGROUP),
        ("time", libc::CLONE_NEWTIME),
    ];
    let ino = |p: PathBuf| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    let mut flags = CloneFlags::empty();
    for (name, flag) in KINDS {
        let theirs = ino(PathBuf::from(format!("/proc/{pid}/ns/{name}")));
        let ours = ino(PathBuf::from(format!("/proc/self/ns/{name}")));
        if theirs.is_some() && theirs != ours {
            flags |= CloneFlags::from_bits_retain(flag);
        }
    }
    flags
}

/// Runs the exec; returns the exit code `husk exec` should exit with.
pub fn exec(root: &Path, a: &ExecArgs<'_>) -> Result<i32, Error> {
    let (dir, st) = load(root, a.id)?;
    match st.status(&dir) {
        Status::Created | Status::Running => {}
        Status::Paused => {
            return Err(Error::Config(format!(
                "cannot exec in a paused container {:?}: resume it first",
                a.id
            )));
        }
        _ => return Err(Error::NotRunning(a.id.to_string())),
    }
    // Fixed at create: editing the bundle later changes nothing here. A
    // container made by a husk from before it kept its config (an upgrade
    // under running containers) still has only its bundle.
    let spec = match dir.load_config() {
        Ok(raw) => crate::bundle::parse(&raw[..]).map_err(|(path, msg)| {
            Error::Config(format!(
                "{}: {path}: {msg}",
                dir.dir.join("config.json").display()
            ))
        })?,
        Err(super::StateError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            crate::bundle::Bundle::load(&st.bundle)?.spec
        }
        Err(e) => return Err(e.into()),
    };
    let process = process(a, spec.process().as_ref())?;
    let pp = crate::plan::process_plan(&process, "process", crate::lsm::HostLsm::detect())?;
    if pp.terminal && a.detach && a.console_socket.is_none() {
        return Err(Error::Config(
            "process.terminal: a detached exec with a terminal needs --console-socket".into(),
        ));
    }
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::seccomp::compile(s).map_err(|e| Error::Config(e.to_string()))?),
        None => None,
    };
    // Held before the check, so the pid cannot be reused in between.
    let init = pidfd_open(st.pid).map_err(|_| Error::NotRunning(a.id.to_string()))?;
    if !st.init_alive() {
        return Err(Error::NotRunning(a.id.to_string()));
    }
    // Every namespace, pid included, is joined by the process that execs
    // (crate::init::join): this one stays out of the container.
    let ns = namespaces_to_join(st.pid);
    // A container created without a mount namespace of its own (it shares
    // its creator's) is entered through its init's root: joining the
    // namespace brings the namespace's root, not the container's.
    let root = match st.shared_mounts_above {
        None => None,
        Some(_) => Some(
            nix::fcntl::open(
                format!("/proc/{}/root", st.pid).as_str(),
                nix::fcntl::OFlag::O_PATH
                    | nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| Error::Os(format!("open /proc/{}/root", st.pid), e))?,
        ),
    };
    let cgroup = st
        .cgroup
        .as_ref()
        .map(|p| crate::cgroups::Cgroup::existing(p).open())
        .transpose()?;

    let sfd = if a.detach {
        None
    } else {
        Some(super::run::block_signals()?)
    };
    let console: Option<OwnedFd> = match (pp.terminal, a.console_socket) {
        (false, _) => None,
        (true, Some(path)) => Some(
            UnixStream::connect(path)
                .map_err(|e| Error::Config(format!("--console-socket {}: {e}", path.display())))?
                .into(),
        ),
        (true, None) => None,
    };
    // A terminal served here, for a foreground exec without a console socket.
    let pair = match (pp.terminal, &console) {
        (true, None) => Some(super::run::console_pair()?),
        _ => None,
    };
    let (parent_chan, child_chan) = sync::pair().map_err(|e| Error::Init(e.to_string()))?;
    let plan = JoinPlan {
        process: &pp,
        seccomp: seccomp.as_ref(),
        init: &init,
        ns,
        root,
        console: console.as_ref().or(pair.as_ref().map(|p| &p.1)),
        preserve_fds: a.preserve_fds,
        traces: Traces::of_self(),
    };
    let cloned = clone3(0, cgroup.as_ref().map(|f| f.as_fd()));
    // clone3 places it in the unified hierarchy only: the v1 ones (where a
    // hybrid host's limits are) are joined before it goes on.
    let in_v1 = !st.cgroup_v1.is_empty();
    if let Ok((Forked::Child, placed)) = cloned {
        drop(parent_chan);
        // Told when it is in place unless it already is, or there is no
        // cgroup to be in (a rootless container without one): exactly when
        // the parent sends `Placed` below.
        join::run(&plan, child_chan, !in_v1 && (placed || st.cgroup.is_none()))
    }
    let (first, first_fd, placed) = match cloned.map_err(|e| Error::Os("clone3".into(), e))? {
        (Forked::Parent { pid, pidfd }, placed) => (pid, pidfd, placed),
        (Forked::Child, _) => unreachable!("the child never returns from join::run"),
    };
    drop(child_chan);
    drop(console);
    let mut procs = Procs {
        first: Some((first, first_fd)),
        process: None,
    };
    if let (Some(path), false) = (&st.cgroup, placed) {
        let file = path.join("cgroup.procs");
        std::fs::write(&file, first.to_string())
            .map_err(|e| procs.fail(Error::Config(format!("{}: {e}", file.display()))))?;
    }
    if in_v1 {
        crate::cgroups::v1::add(&st.cgroup_v1, first).map_err(|e| procs.fail(e.into()))?;
    }
    if (!placed && st.cgroup.is_some()) || in_v1 {
        parent_chan
            .send(&Msg::Placed)
            .map_err(|e| procs.fail(Error::Init(e.to_string())))?;
    }
    // Until the program runs: the pid of the process (from the first, which
    // then exits), a seccomp listener fd to pass on, or an error. The two
    // processes' messages may interleave: a listener fd waits for the pid,
    // and an error for both processes to be gone.
    let mut listener_fd = None;
    let mut failed = None;
    loop {
        match parent_chan.recv_fd() {
            Err(SyncError::Closed) => break,
            Ok((Msg::Pid(pid), Some(pidfd))) => {
                if let Some((first, _)) = procs.first.take() {
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(first), None);
                }
                procs.process = Some((pid, pidfd));
            }
            Ok((Msg::SeccompFd, Some(fd))) => listener_fd = Some(fd),
            // Read on until both processes are gone, for the pid to reap.
            Ok((Msg::Error(msg), _)) => failed = failed.or(Some(Error::Init(msg))),
            Ok((m, _)) => {
                failed = failed.or(Some(Error::Init(format!("unexpected message {m:?}"))))
            }
            Err(e) => {
                failed = failed.or(Some(Error::Init(e.to_string())));
                break;
            }
        }
        if let (Some(fd), Some((pid, _))) = (&listener_fd, &procs.process) {
            let l = seccomp.as_ref().and_then(|s| s.listener.as_ref());
            if let Some(l) = l {
                let state = HookState {
                    oci_version: &st.oci_version,
                    id: &st.id,
                    status: "running",
                    pid: *pid,
                    bundle: &st.bundle,
                    annotations: &st.annotations,
                };
                crate::seccomp::send_to_listener(l, &state, fd)
                    .map_err(|e| procs.fail(Error::Config(e.to_string())))?;
            }
            listener_fd = None;
        }
    }
    if let Some(e) = failed {
        return Err(procs.fail(e));
    }
    let Some((pid, pidfd)) = procs.process.take() else {
        return Err(procs.fail(Error::Init(
            "the exec'd process exited during set-up".into(),
        )));
    };
    let fail = |e: Error| {
        let _ = crate::process::clone::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        e
    };
    if let Some(p) = a.pid_file {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        write_atomic(&p, pid.to_string().as_bytes(), 0o644)
            .map_err(|e| Error::Config(format!("--pid-file {}: {e}", p.display())))?;
    }
    let Some(sfd) = sfd else {
        return Ok(0);
    };
    match pair {
        Some((ours, theirs)) => {
            drop(theirs);
            let master =
                crate::console::recv_master(&ours).map_err(|e| fail(Error::Init(e.to_string())))?;
            super::run::serve_terminal(&sfd, pid, &pidfd, master)
        }
        None => super::run::wait_forwarding(&sfd, pid, &pidfd),
    }
}

/// The processes of an exec under way: the first (until it has forked the
/// process and exited) and the process. A failed exec kills and reaps both.
struct Procs {
    first: Option<(i32, OwnedFd)>,
    process: Option<(i32, OwnedFd)>,
}

impl Procs {
    fn fail(&mut self, e: Error) -> Error {
        for (pid, fd) in [self.first.take(), self.process.take()]
            .into_iter()
            .flatten()
        {
            let _ = crate::process::clone::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_as_runc_applies_them() {
        let base: Process = serde_json::from_value(serde_json::json!({
            "args": ["sh"], "cwd": "/", "env": ["PATH=/bin", "A=1"],
            "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
        }))
        .unwrap();
        let args = ["id".to_string(), "-u".to_string()];
        let env = ["A=2".to_string(), "B=3".to_string()];
        let caps = ["net_admin".to_string()];
        let a = ExecArgs {
            id: "x",
            args: &args,
            cwd: Some(Path::new("/tmp")),
            env: &env,
            user: Some("1000:100"),
            additional_gids: &[5, 6],
            caps: &caps,
            no_new_privs: true,
            ..Default::default()
        };
        let p = process(&a, Some(&base)).unwrap();
        assert_eq!(p.args().as_deref().unwrap(), args);
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!(p.env().as_deref().unwrap(), ["PATH=/bin", "A=2", "B=3"]);
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[5, 6][..]));
        let pp = crate::plan::process_plan(&p, "process", crate::lsm::HostLsm::default()).unwrap();
        let c = pp.caps.unwrap();
        // CAP_KILL is 5, CAP_NET_ADMIN 12.
        assert_eq!(c.bounding, (1 << 5) | (1 << 12));
        assert!(pp.no_new_privileges);
    }

    #[test]
    fn bad_user_and_cap_are_named() {
        let args = ["true".to_string()];
        let a = ExecArgs {
            args: &args,
            user: Some("root"),
            ..Default::default()
        };
        assert!(
            process(&a, None)
                .unwrap_err()
                .to_string()
                .contains("--user")
        );
        let caps = ["CAP_NOPE".to_string()];
        let a = ExecArgs {
            args: &args,
            caps: &caps,
            ..Default::default()
        };
        assert!(
            process(&a, None)
                .unwrap_err()
                .to_string()
                .contains("--cap CAP_NOPE")
        );
        let a = ExecArgs::default();
        assert!(
            process(&a, None)
                .unwrap_err()
                .to_string()
                .contains("required")
        );
    }
}
