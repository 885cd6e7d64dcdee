//! The plan: everything about a container that can be decided before clone,
//! computed from the bundle in the parent and executed step by step by the
//! container's init. Pure: no syscalls beyond reading files of the bundle.

use std::collections::HashMap;
use std::ffi::CString;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use oci_spec::runtime::{
    Hooks, LinuxDeviceType, LinuxIdMapping, LinuxNamespaceType, PosixRlimitType, Spec,
};

use crate::rootfs::options::{self, MountOptions};

/// An invalid or unsupported configuration, naming the JSON path of the field.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {msg}")]
pub struct PlanError {
    pub field: String,
    pub msg: String,
}

fn err<T>(field: impl Into<String>, msg: impl Into<String>) -> Result<T, PlanError> {
    Err(PlanError {
        field: field.into(),
        msg: msg.into(),
    })
}

/// Options from the command line that shape the plan.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub console_socket: bool,
    /// Socket-activation descriptors (systemd's LISTEN_FDS) passed on to the
    /// container after the preserved ones, as runc does.
    pub listen_fds: u32,
    /// The LSMs the host runs (crate::lsm): a profile or process label it
    /// cannot apply is refused; a mount label without SELinux is ignored, as
    /// crun ignores it.
    pub lsm: crate::lsm::HostLsm,
    /// Who runs husk (rootless mode: crate::rootless).
    pub caller: crate::rootless::Caller,
}

/// A namespace to join by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsJoin {
    pub kind: CloneFlags,
    pub path: PathBuf,
    pub field: String,
}

#[derive(Debug, Clone)]
pub struct NamespacePlan {
    /// Namespaces to create.
    pub new: CloneFlags,
    /// Namespaces to join, in the order they must be joined (user first).
    pub join: Vec<NsJoin>,
}

impl Default for NamespacePlan {
    fn default() -> Self {
        NamespacePlan {
            new: CloneFlags::empty(),
            join: Vec::new(),
        }
    }
}

impl NamespacePlan {
    /// Whether new namespaces must be made inside a joined user namespace: then
    /// the init joins it first and unshares them itself (clone3 would make them
    /// belong to the host's user namespace).
    pub fn new_inside_joined_user(&self) -> bool {
        !self.new.is_empty()
            && self
                .join
                .iter()
                .any(|j| j.kind == CloneFlags::CLONE_NEWUSER)
    }

    /// Whether the container has the namespace, new or joined.
    pub fn has(&self, kind: CloneFlags) -> bool {
        self.new.contains(kind) || self.join.iter().any(|j| j.kind == kind)
    }
}

/// One mount to make inside the rootfs.
#[derive(Debug, Clone)]
pub struct MountPlan {
    /// JSON path of the entry, for errors (`mounts[3]`).
    pub field: String,
    /// Absolute source for binds; the filesystem's source string otherwise.
    pub source: Option<PathBuf>,
    /// Destination inside the container, absolute and normalised.
    pub destination: PathBuf,
    pub fstype: String,
    pub options: MountOptions,
    /// Id mappings for an idmapped mount (the mount's own, else the container's).
    pub uid_mappings: Vec<LinuxIdMapping>,
    pub gid_mappings: Vec<LinuxIdMapping>,
}

/// A device node to make in the container's /dev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlan {
    pub path: PathBuf,
    /// S_IFCHR, S_IFBLK or S_IFIFO.
    pub kind: u32,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone)]
pub struct RlimitPlan {
    pub field: String,
    pub name: String,
    pub resource: libc::__rlimit_resource_t,
    pub soft: u64,
    pub hard: u64,
}

/// The five capability sets, as bitmasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    /// Only what the kernel lets be raised: ambient capabilities must be
    /// permitted and inheritable too.
    pub ambient: u64,
    /// Ambient capabilities the config asked for that are not both
    /// permitted and inheritable: not raised, with a warning, as runc does
    /// (`runc spec` writes ambient without inheritable).
    pub ambient_dropped: u64,
}

impl CapSets {
    /// Names of the capabilities in `mask` (`CAP_KILL`, …).
    pub fn names(mask: u64) -> Vec<String> {
        caps::all()
            .into_iter()
            .filter(|c| mask & c.bitmask() != 0)
            .map(|c| c.to_string())
            .collect()
    }
}

/// The user process of the container (or of an exec).
#[derive(Debug, Clone)]
pub struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// PATH from env, for finding args[0].
    pub path: String,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub caps: Option<CapSets>,
    pub rlimits: Vec<RlimitPlan>,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    /// ioprio_set value (class << 13 | level).
    pub io_priority: Option<i32>,
    /// The AppArmor profile the program runs under (crate::lsm).
    pub apparmor: Option<String>,
    /// The SELinux label the program runs with, also its keys' label.
    pub selinux_label: Option<String>,
}

/// Everything the container's init does, decided in advance.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub caller: crate::rootless::Caller,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub root_readonly: bool,
    /// An overlay mounted as the rootfs (a `mounts` entry at `/`, as
    /// husk-image writes it), mounted inside the container's own mount
    /// namespace in place of the bind of root.path onto itself.
    pub root_mount: Option<MountPlan>,
    pub ns: NamespacePlan,
    pub uid_map: Option<String>,
    pub gid_map: Option<String>,
    pub time_offsets: Option<String>,
    pub rootfs_propagation: Option<MsFlags>,
    pub mounts: Vec<MountPlan>,
    pub devices: Vec<DevicePlan>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// (path under /proc/sys, value)
    pub sysctl: Vec<(PathBuf, String)>,
    pub personality: Option<u64>,
    pub process: ProcessPlan,
    pub hooks: Hooks,
    pub cgroups_path: Option<PathBuf>,
    /// Files to write in the container's cgroup (from `linux.resources`), on
    /// cgroup v2; or why the resources cannot be expressed there.
    pub cgroup_writes: Vec<crate::cgroups::resources::Write>,
    pub cgroup_v2_error: Option<PlanError>,
    /// The same resources as cgroup v1 writes (v1 and hybrid hosts); or why
    /// they cannot be expressed there. Which applies is decided at create,
    /// by the host's hierarchies.
    pub cgroup_v1_writes: Vec<crate::cgroups::resources::Write>,
    pub cgroup_v1_error: Option<PlanError>,
    /// The device program's default verdict and exceptions, if any device is
    /// restricted.
    pub device_rules: Option<(bool, Vec<crate::cgroups::devices::Rule>)>,
    /// The config lists device rules (`linux.resources.devices`): without a
    /// cgroup to hold them, create must fail rather than ignore them.
    pub devices_asked: bool,
    /// The seccomp filter, compiled.
    pub seccomp: Option<crate::seccomp::Compiled>,
    pub annotations: HashMap<String, String>,
    /// husk's PID 1 (annotation `run.husk.init`): `Some(process_group)`.
    pub pid1: Option<bool>,
    pub oci_version: String,
    pub no_pivot: bool,
    pub new_keyring: bool,
    pub preserve_fds: u32,
}

/// A mount at `/` is the rootfs itself: only an overlay, only one, only with
/// a mount namespace; relative lowerdir/upperdir/workdir are the bundle's.
fn take_root_mount(
    mounts: &mut Vec<MountPlan>,
    bundle: &Path,
    ns: &NamespacePlan,
) -> Result<Option<MountPlan>, PlanError> {
    let at_root: Vec<usize> = (0..mounts.len())
        .filter(|i| mounts[*i].destination == Path::new("/"))
        .collect();
    let i = match at_root.as_slice() {
        [] => return Ok(None),
        [i] => *i,
        [_, j, ..] => {
            return err(
                format!("{}.destination", mounts[*j].field),
                "a second mount at /",
            );
        }
    };
    let mut m = mounts.remove(i);
    if m.fstype != "overlay" {
        return err(
            format!("{}.type", m.field),
            "only an overlay can be mounted at / (as the rootfs)",
        );
    }
    if !ns.new.contains(CloneFlags::CLONE_NEWNS) {
        return err(
            format!("{}.destination", m.field),
            "an overlay rootfs needs a new mount namespace",
        );
    }
    let abs = |p: &str| -> String {
        if p.starts_with('/') {
            p.to_string()
        } else {
            bundle.join(p).display().to_string()
        }
    };
    m.options.data = m
        .options
        .data
        .split(',')
        .map(|kv| match kv.split_once('=') {
            Some((k @ ("upperdir" | "workdir"), v)) => format!("{k}={}", abs(v)),
            Some(("lowerdir", v)) => {
                let dirs: Vec<String> = v.split(':').map(abs).collect();
                format!("lowerdir={}", dirs.join(":"))
            }
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    Ok(Some(m))
}

/// The `run.husk.init` annotations: "true" or "false", anything else refused.
fn pid1_mode(a: Option<&HashMap<String, String>>) -> Result<Option<bool>, PlanError> {
    use crate::init::reaper::{ANNOTATION, ANNOTATION_GROUP};
    let flag = |key: &str| match a.and_then(|a| a.get(key)).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => err(
            format!("annotations.{key}"),
            format!("{v:?}: expected \"true\" or \"false\""),
        ),
    };
    Ok(flag(ANNOTATION)?.then_some(flag(ANNOTATION_GROUP)?))
}

/// Normalises an absolute path inside the container: `.` dropped, `..` resolved
/// lexically and clamped at `/`. Symlinks are resolved later, inside the rootfs.
pub fn clean_container_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Plan {
    /// Whether the init joins the config's pid namespace itself, after
    /// pivot_root, instead of being cloned into it: then no process of that
    /// namespace ever sees the init with the host's mounts as its root
    /// (SECURITY.md). procfs shows the pid namespace of the process that
    /// mounts it, so the proc mounts wait until then, which a mount nested
    /// under one cannot. An init in a new user namespace could no longer
    /// join a pid namespace of the host's.
    pub fn init_joins_pid_late(&self) -> bool {
        let joins_pid = self
            .ns
            .join
            .iter()
            .any(|j| j.kind == CloneFlags::CLONE_NEWPID);
        let procs: Vec<&Path> = self
            .mounts
            .iter()
            .filter(|m| m.fstype == "proc")
            .map(|m| m.destination.as_path())
            .collect();
        let nested = self.mounts.iter().any(|m| {
            procs
                .iter()
                .any(|p| m.destination != *p && m.destination.starts_with(p))
        });
        joins_pid && !self.ns.new.contains(CloneFlags::CLONE_NEWUSER) && !nested
    }

    /// Whether the container shares the runtime's mount namespace: the config
    /// names none (config-linux.md, Namespaces: "the container inherits the
    /// runtime namespace"). Its mounts are then made inside the rootfs in
    /// this namespace, nothing outside the rootfs changes (no propagation of
    /// the host's), it is entered with chroot, and `delete` takes the mounts
    /// away again. runc does the same but makes the host's `/` a slave and
    /// leaves every mount behind.
    pub fn shares_mount_ns(&self) -> bool {
        !self.ns.has(CloneFlags::CLONE_NEWNS)
    }

    /// Builds the plan for `id` from a loaded bundle.
    pub fn new(
        id: &str,
        bundle: &Path,
        spec: &Spec,
        opts: &CreateOptions,
    ) -> Result<Plan, PlanError> {
        let root = match spec.root() {
            Some(r) => r,
            None => return err("root", "missing: the bundle must name its root filesystem"),
        };
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            bundle.join(root.path())
        };
        let linux = spec.linux().clone().unwrap_or_default();
        let ns = namespaces(&linux)?;
        let (uid_map, gid_map) = id_maps(&linux, &ns)?;

        let process = match spec.process() {
            Some(p) => {
                let mut pp = process_plan(p, "process", opts.lsm)?;
                if opts.listen_fds > 0 {
                    pp.env.retain(|e| {
                        let b = e.as_bytes();
                        !b.starts_with(b"LISTEN_FDS=") && !b.starts_with(b"LISTEN_PID=")
                    });
                    pp.env.push(cstring(
                        &format!("LISTEN_FDS={}", opts.listen_fds),
                        "LISTEN_FDS",
                    )?);
                    pp.env.push(cstring("LISTEN_PID=1", "LISTEN_PID")?);
                }
                pp
            }
            None => return err("process", "missing: the container needs a process to run"),
        };
        if process.terminal && !opts.console_socket {
            return err(
                "process.terminal",
                "a terminal was requested but no --console-socket was given",
            );
        }

        let mut mounts = Vec::new();
        for (i, m) in spec.mounts().iter().flatten().enumerate() {
            let field = format!("mounts[{i}]");
            let dest = m.destination();
            if dest.as_os_str().is_empty() {
                return err(format!("{field}.destination"), "empty destination");
            }
            let options = options::parse(m.options().as_deref().unwrap_or(&[]));
            let fstype = m.typ().clone().unwrap_or_default();
            let source = m.source().as_ref().map(|s| {
                if options.is_bind() && s.is_relative() {
                    bundle.join(s)
                } else {
                    s.clone()
                }
            });
            if options.is_bind() && source.is_none() {
                return err(format!("{field}.source"), "a bind mount needs a source");
            }
            if !options.is_bind() && fstype.is_empty() {
                return err(format!("{field}.type"), "missing filesystem type");
            }
            let (uid_mappings, gid_mappings) = if options.idmap.is_some() {
                let u = m
                    .uid_mappings()
                    .clone()
                    .or_else(|| linux.uid_mappings().clone())
                    .unwrap_or_default();
                let g = m
                    .gid_mappings()
                    .clone()
                    .or_else(|| linux.gid_mappings().clone())
                    .unwrap_or_default();
                if u.is_empty() || g.is_empty() {
                    return err(
                        format!("{field}.options"),
                        "idmap needs uidMappings and gidMappings (on the mount or in linux)",
                    );
                }
                (u, g)
            } else {
                (vec![], vec![])
            };
            mounts.push(MountPlan {
                field,
                source,
                destination: clean_container_path(&Path::new("/").join(dest)),
                fstype,
                options,
                uid_mappings,
                gid_mappings,
            });
        }

        let root_mount = take_root_mount(&mut mounts, bundle, &ns)?;

        let mut devices = default_devices();
        for (i, d) in linux.devices().iter().flatten().enumerate() {
            let field = format!("linux.devices[{i}]");
            if !d.path().is_absolute() {
                return err(format!("{field}.path"), "must be an absolute path");
            }
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
                LinuxDeviceType::B => libc::S_IFBLK,
                LinuxDeviceType::P => libc::S_IFIFO,
                LinuxDeviceType::A => {
                    return err(
                        format!("{field}.type"),
                        "type 'a' is only valid in cgroup rules",
                    );
                }
            };
            if d.major() < 0 || d.minor() < 0 {
                return err(field, "major and minor must not be negative");
            }
            let dev = DevicePlan {
                path: clean_container_path(d.path()),
                kind,
                major: d.major() as u64,
                minor: d.minor() as u64,
                mode: d.file_mode().unwrap_or(0o666) & 0o7777,
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
            };
            devices.retain(|x| x.path != dev.path);
            devices.push(dev);
        }

        let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
        let domainname = spec.domainname().clone().filter(|h| !h.is_empty());
        if (hostname.is_some() || domainname.is_some()) && !ns.has(CloneFlags::CLONE_NEWUTS) {
            let field = if hostname.is_some() {
                "hostname"
            } else {
                "domainname"
            };
            return err(field, "setting it needs a UTS namespace (linux.namespaces)");
        }

        let mut sysctl = Vec::new();
        let mut keys: Vec<_> = linux.sysctl().iter().flatten().collect();
        keys.sort();
        for (k, v) in keys {
            sysctl.push((sysctl_path(k, &ns)?, v.clone()));
        }

        let rootfs_propagation = match linux.rootfs_propagation().as_deref() {
            None | Some("") => None,
            Some(p) => match options::propagation(p) {
                Some(f) => Some(f),
                None => {
                    return err(
                        "linux.rootfsPropagation",
                        format!("unknown propagation {p:?}"),
                    );
                }
            },
        };

        let personality = match linux.personality() {
            None => None,
            Some(p) => {
                use oci_spec::runtime::LinuxPersonalityDomain as D;
                let base = match p.domain() {
                    D::PerLinux => 0,
                    D::PerLinux32 => 0x0008,
                };
                if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
                    return err(
                        "linux.personality.flags",
                        "personality flags are not supported",
                    );
                }
                Some(base)
            }
        };

        let time_offsets = time_offsets(&linux, &ns)?;

        let cgroups_path = linux.cgroups_path().clone();
        let (cgroup_writes, cgroup_v2_error) = match linux.resources() {
            Some(res) => split(crate::cgroups::resources::writes(res)),
            None => (Vec::new(), None),
        };
        let (cgroup_v1_writes, cgroup_v1_error) = match linux.resources() {
            Some(res) => split(crate::cgroups::v1_resources::writes(res)),
            None => (Vec::new(), None),
        };
        // Refused only when neither kind of host could take them.
        if let (Some(e), Some(_)) = (&cgroup_v2_error, &cgroup_v1_error) {
            return Err(e.clone());
        }
        let device_list = linux
            .resources()
            .as_ref()
            .and_then(|r| r.devices().clone())
            .unwrap_or_default();
        let devices_asked = !device_list.is_empty();
        let device_rules = device_rules(&device_list, &devices)?;
        let seccomp = match linux.seccomp() {
            Some(sc) => Some(crate::seccomp::compile(sc).map_err(|e| PlanError {
                field: e.field,
                msg: e.msg,
            })?),
            None => None,
        };
        if linux.intel_rdt().is_some() {
            return err("linux.intelRdt", "Intel RDT is not supported");
        }
        let mount_label = linux
            .mount_label()
            .clone()
            .filter(|l| !l.is_empty() && opts.lsm.selinux);
        if mount_label.as_ref().is_some_and(|l| l.contains('"')) {
            // It goes into mount options as context="LABEL".
            return err("linux.mountLabel", "must not contain a double quote");
        }
        if let Some(l) = &mount_label {
            for m in mounts
                .iter_mut()
                .filter(|m| crate::lsm::takes_mount_label(&m.fstype))
            {
                m.options.data = crate::lsm::with_mount_label(Some(&m.options.data), l);
            }
        }

        let mut masked_paths = Vec::new();
        for (i, p) in linux.masked_paths().iter().flatten().enumerate() {
            if !p.starts_with('/') {
                return err(
                    format!("linux.maskedPaths[{i}]"),
                    "must be an absolute path",
                );
            }
            masked_paths.push(clean_container_path(Path::new(p)));
        }
        let mut readonly_paths = Vec::new();
        for (i, p) in linux.readonly_paths().iter().flatten().enumerate() {
            if !p.starts_with('/') {
                return err(
                    format!("linux.readonlyPaths[{i}]"),
                    "must be an absolute path",
                );
            }
            readonly_paths.push(clean_container_path(Path::new(p)));
        }

        Ok(Plan {
            id: id.to_string(),
            caller: opts.caller,
            bundle: bundle.to_path_buf(),
            rootfs,
            root_readonly: root.readonly().unwrap_or(false),
            root_mount,
            ns,
            uid_map,
            gid_map,
            time_offsets,
            rootfs_propagation,
            mounts,
            devices,
            masked_paths,
            readonly_paths,
            hostname,
            domainname,
            sysctl,
            personality,
            process,
            hooks: spec.hooks().clone().unwrap_or_default(),
            cgroups_path,
            cgroup_writes,
            cgroup_v2_error,
            cgroup_v1_writes,
            cgroup_v1_error,
            device_rules,
            devices_asked,
            seccomp,
            pid1: pid1_mode(spec.annotations().as_ref())?,
            annotations: spec.annotations().clone().unwrap_or_default(),
            oci_version: spec.version().clone(),
            no_pivot: opts.no_pivot,
            new_keyring: !opts.no_new_keyring,
            preserve_fds: opts.preserve_fds.saturating_add(opts.listen_fds),
        })
    }
}

fn ns_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The order namespaces are joined in: user first (it decides what the others may
/// do), mount last (it changes how later paths resolve).
const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Mount,
];

fn namespaces(linux: &oci_spec::runtime::Linux) -> Result<NamespacePlan, PlanError> {
    let mut plan = NamespacePlan::default();
    let mut seen = CloneFlags::empty();
    let list = linux.namespaces().clone().unwrap_or_default();
    for (i, n) in list.iter().enumerate() {
        let flag = ns_flag(n.typ());
        if seen.contains(flag) {
            return err(
                format!("linux.namespaces[{i}].type"),
                format!("namespace {:?} listed twice", n.typ()),
            );
        }
        seen |= flag;
        match n.path() {
            Some(p) if !p.as_os_str().is_empty() => {
                if !p.is_absolute() {
                    return err(
                        format!("linux.namespaces[{i}].path"),
                        format!("{} is not an absolute path", p.display()),
                    );
                }
            }
            _ => plan.new |= flag,
        }
    }
    for t in JOIN_ORDER {
        if let Some((i, n)) = list.iter().enumerate().find(|(_, n)| {
            n.typ() == t && n.path().as_ref().is_some_and(|p| !p.as_os_str().is_empty())
        }) {
            plan.join.push(NsJoin {
                kind: ns_flag(t),
                path: n.path().clone().unwrap_or_default(),
                field: format!("linux.namespaces[{i}].path"),
            });
        }
    }
    Ok(plan)
}

fn id_maps(
    linux: &oci_spec::runtime::Linux,
    ns: &NamespacePlan,
) -> Result<(Option<String>, Option<String>), PlanError> {
    let uids = linux.uid_mappings().clone().unwrap_or_default();
    let gids = linux.gid_mappings().clone().unwrap_or_default();
    if ns.new.contains(CloneFlags::CLONE_NEWUSER) {
        if uids.is_empty() {
            return err(
                "linux.uidMappings",
                "a new user namespace needs uid mappings",
            );
        }
        if gids.is_empty() {
            return err(
                "linux.gidMappings",
                "a new user namespace needs gid mappings",
            );
        }
        for (field, maps) in [("linux.uidMappings", &uids), ("linux.gidMappings", &gids)] {
            for (i, m) in maps.iter().enumerate() {
                if m.size() == 0 {
                    return err(format!("{field}[{i}].size"), "must be greater than 0");
                }
            }
        }
        Ok((
            Some(crate::process::idmap::lines(&uids)),
            Some(crate::process::idmap::lines(&gids)),
        ))
    } else {
        if !uids.is_empty() || !gids.is_empty() {
            let field = if uids.is_empty() {
                "linux.gidMappings"
            } else {
                "linux.uidMappings"
            };
            return err(
                field,
                "id mappings need a new user namespace in linux.namespaces",
            );
        }
        Ok((None, None))
    }
}

fn time_offsets(
    linux: &oci_spec::runtime::Linux,
    ns: &NamespacePlan,
) -> Result<Option<String>, PlanError> {
    let Some(offsets) = linux.time_offsets() else {
        return Ok(None);
    };
    if offsets.is_empty() {
        return Ok(None);
    }
    if !ns
        .new
        .contains(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
    {
        return err(
            "linux.timeOffsets",
            "time offsets need a new time namespace",
        );
    }
    let mut out = String::new();
    let mut clocks: Vec<_> = offsets.iter().collect();
    clocks.sort_by(|a, b| a.0.cmp(b.0));
    for (clock, off) in clocks {
        if clock != "monotonic" && clock != "boottime" {
            return err(
                format!("linux.timeOffsets.{clock}"),
                "only monotonic and boottime clocks can be offset",
            );
        }
        out.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    Ok(Some(out))
}

/// Checks a sysctl key against the namespaces the container has (a key that
/// belongs to the host would change the host) and maps it to a /proc/sys path.
fn sysctl_path(key: &str, ns: &NamespacePlan) -> Result<PathBuf, PlanError> {
    let field = format!("linux.sysctl.{key}");
    if key.is_empty()
        || key.starts_with(['.', '/'])
        || key.split(['.', '/']).any(|c| c.is_empty() || c == "..")
    {
        return err(field, "not a valid sysctl name");
    }
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let allowed = if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        ns.has(CloneFlags::CLONE_NEWIPC)
    } else if key.starts_with("net.") {
        ns.has(CloneFlags::CLONE_NEWNET)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        ns.has(CloneFlags::CLONE_NEWUTS)
    } else {
        return err(field, "not a namespaced sysctl: it would change the host");
    };
    if !allowed {
        return err(
            field,
            "the namespace this sysctl belongs to is not the container's own",
        );
    }
    Ok(PathBuf::from(key.replace('.', "/")))
}

/// The writes, or the error naming the field.
fn split(
    r: Result<Vec<crate::cgroups::resources::Write>, crate::cgroups::resources::ResourceError>,
) -> (Vec<crate::cgroups::resources::Write>, Option<PlanError>) {
    match r {
        Ok(w) => (w, None),
        Err(e) => (
            Vec::new(),
            Some(PlanError {
                field: e.field,
                msg: e.msg,
            }),
        ),
    }
}

/// The device program's default verdict and exceptions, unless nothing is
/// restricted (a privileged config's allow-all): from deny-all, the spec's
/// rules, then the default devices and those in `linux.devices`, which are
/// always allowed. As runc, whether or not the config lists any rule: an
/// image's device nodes must not open the host's devices.
fn device_rules(
    list: &[oci_spec::runtime::LinuxDeviceCgroup],
    devices: &[DevicePlan],
) -> Result<Option<(bool, Vec<crate::cgroups::devices::Rule>)>, PlanError> {
    use crate::cgroups::devices;
    let mut rules = devices::rules(list).map_err(|(field, msg)| PlanError { field, msg })?;
    let extra: Vec<_> = devices
        .iter()
        .filter(|d| d.kind != libc::S_IFIFO)
        .map(|d| (d.kind, d.major, d.minor))
        .collect();
    rules.extend(devices::default_allowed(&extra));
    let (default, exceptions) = devices::effective(&rules);
    if default && exceptions.iter().all(|e| e.allow) {
        // Nothing is restricted: no program is needed.
        return Ok(None);
    }
    Ok(Some((default, exceptions)))
}

fn cap_mask(set: &Option<oci_spec::runtime::Capabilities>, field: &str) -> Result<u64, PlanError> {
    let mut mask = 0u64;
    for c in set.iter().flatten() {
        let name = c.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        match name.parse::<caps::Capability>() {
            Ok(cap) => mask |= cap.bitmask(),
            Err(_) => return err(field, format!("unknown capability {name}")),
        }
    }
    Ok(mask)
}

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

fn cstring(s: &str, field: &str) -> Result<CString, PlanError> {
    CString::new(s).or_else(|_| err(field, "contains a NUL byte"))
}

/// The plan of a process from an OCI `process` object; `base` is its JSON path.
pub fn process_plan(
    p: &oci_spec::runtime::Process,
    base: &str,
    lsm: crate::lsm::HostLsm,
) -> Result<ProcessPlan, PlanError> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return err(format!("{base}.args"), "must name the program to run");
    }
    let args = args
        .iter()
        .enumerate()
        .map(|(i, a)| cstring(a, &format!("{base}.args[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let env_list = p.env().clone().unwrap_or_default();
    let mut path = DEFAULT_PATH.to_string();
    let mut env = Vec::with_capacity(env_list.len());
    for (i, e) in env_list.iter().enumerate() {
        let field = format!("{base}.env[{i}]");
        if !e.contains('=') {
            return err(field, format!("{e:?} is not NAME=VALUE"));
        }
        if let Some(v) = e.strip_prefix("PATH=") {
            path = v.to_string();
        }
        env.push(cstring(e, &field)?);
    }
    if !p.cwd().is_absolute() {
        return err(
            format!("{base}.cwd"),
            format!("{:?} is not an absolute path", p.cwd()),
        );
    }
    let caps = match p.capabilities() {
        None => None,
        Some(c) => {
            let permitted = cap_mask(c.permitted(), &format!("{base}.capabilities.permitted"))?;
            let inheritable =
                cap_mask(c.inheritable(), &format!("{base}.capabilities.inheritable"))?;
            let ambient = cap_mask(c.ambient(), &format!("{base}.capabilities.ambient"))?;
            Some(CapSets {
                bounding: cap_mask(c.bounding(), &format!("{base}.capabilities.bounding"))?,
                effective: cap_mask(c.effective(), &format!("{base}.capabilities.effective"))?,
                permitted,
                inheritable,
                ambient: ambient & permitted & inheritable,
                ambient_dropped: ambient & !(permitted & inheritable),
            })
        }
    };
    let mut rlimits = Vec::new();
    let mut seen = Vec::new();
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        let field = format!("{base}.rlimits[{i}]");
        let resource = rlimit_resource(r.typ());
        if seen.contains(&resource) {
            return err(field, format!("{} listed twice", r.typ()));
        }
        seen.push(resource);
        if r.soft() > r.hard() {
            return err(
                field,
                format!(
                    "{}: soft limit {} exceeds hard limit {}",
                    r.typ(),
                    r.soft(),
                    r.hard()
                ),
            );
        }
        rlimits.push(RlimitPlan {
            field,
            name: r.typ().to_string(),
            resource,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    let io_priority = match p.io_priority() {
        None => None,
        Some(io) => {
            use oci_spec::runtime::IOPriorityClass as C;
            let class = match io.class() {
                C::IoprioClassRt => 1,
                C::IoprioClassBe => 2,
                C::IoprioClassIdle => 3,
            };
            if !(0..=7).contains(&io.priority()) {
                return err(
                    format!("{base}.ioPriority.priority"),
                    "must be between 0 and 7",
                );
            }
            Some((class << 13) | io.priority() as i32)
        }
    };
    if p.scheduler().is_some() {
        return err(
            format!("{base}.scheduler"),
            "scheduler settings are not supported yet",
        );
    }
    let apparmor = p.apparmor_profile().clone().filter(|a| !a.is_empty());
    if apparmor.is_some() && !lsm.apparmor {
        return err(
            format!("{base}.apparmorProfile"),
            "a profile is specified in config, but AppArmor is not enabled on this host",
        );
    }
    let selinux_label = p.selinux_label().clone().filter(|l| !l.is_empty());
    if selinux_label.is_some() && !lsm.selinux {
        // runc's words.
        return err(
            format!("{base}.selinuxLabel"),
            "selinux label is specified in config, but selinux is disabled or not supported",
        );
    }
    let user = p.user();
    Ok(ProcessPlan {
        args,
        env,
        path,
        cwd: clean_container_path(p.cwd()),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        caps,
        rlimits,
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        oom_score_adj: p.oom_score_adj(),
        terminal: p.terminal().unwrap_or(false),
        console_size: p
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16)),
        io_priority,
        apparmor,
        selinux_label,
    })
}

/// The devices every container gets (runtime-linux.md / config-linux.md,
/// Default Devices).
pub fn default_devices() -> Vec<DevicePlan> {
    let dev = |path: &str, major, minor| DevicePlan {
        path: PathBuf::from(path),
        kind: libc::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    };
    vec![
        dev("/dev/null", 1, 3),
        dev("/dev/zero", 1, 5),
        dev("/dev/full", 1, 7),
        dev("/dev/random", 1, 8),
        dev("/dev/urandom", 1, 9),
        dev("/dev/tty", 5, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::parse;

    fn spec(json: &str) -> Spec {
        parse(json.as_bytes()).expect("valid json")
    }

    const BASE: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
        "process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0},"env":["PATH=/bin"]},
        "hostname":"h","linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"uts"}]}}"#;

    fn plan(json: &str) -> Result<Plan, PlanError> {
        Plan::new(
            "c1",
            Path::new("/b"),
            &spec(json),
            &CreateOptions::default(),
        )
    }

    fn with(patch: serde_json::Value) -> String {
        let mut v: serde_json::Value = serde_json::from_str(BASE).unwrap();
        merge(&mut v, patch);
        v.to_string()
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    #[test]
    fn a_joined_pid_namespace_is_entered_late_unless_a_mount_needs_proc_first() {
        assert!(!plan(BASE).unwrap().init_joins_pid_late());
        let joined = |extra: serde_json::Value| {
            let mut v: serde_json::Value = serde_json::from_str(&with(extra)).unwrap();
            v["linux"]["namespaces"][0] =
                serde_json::json!({"type": "pid", "path": "/proc/1/ns/pid"});
            plan(&v.to_string()).unwrap().init_joins_pid_late()
        };
        let proc = serde_json::json!({"destination": "/proc", "type": "proc", "source": "proc"});
        assert!(joined(serde_json::json!({"mounts": [proc.clone()]})));
        // lxcfs-style: a file bound over /proc/meminfo needs /proc mounted first.
        let meminfo = serde_json::json!({"destination": "/proc/meminfo", "type": "bind",
            "source": "/proc/meminfo", "options": ["bind"]});
        assert!(!joined(
            serde_json::json!({"mounts": [proc.clone(), meminfo]})
        ));
        // A new user namespace could not join the host's pid namespace late.
        assert!(!joined(serde_json::json!({"mounts": [proc],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "user"}],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}})));
    }

    #[test]
    fn base_plan() {
        let p = plan(BASE).unwrap();
        assert_eq!(p.rootfs, PathBuf::from("/b/rootfs"));
        assert_eq!(
            p.ns.new,
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS
        );
        assert_eq!(p.process.path, "/bin");
        assert_eq!(p.hostname.as_deref(), Some("h"));
        assert_eq!(p.devices.len(), 6);
    }

    #[test]
    fn hostname_needs_uts() {
        let e = plan(&with(
            serde_json::json!({"linux":{"namespaces":[{"type":"mount"}]}}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "hostname");
    }

    #[test]
    fn duplicate_namespace() {
        let e = plan(&with(
            serde_json::json!({"linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "linux.namespaces[1].type");
    }

    #[test]
    fn joined_namespaces_ordered_user_first_mount_last() {
        let p = plan(&with(
            serde_json::json!({"hostname":"","linux":{"namespaces":[
            {"type":"mount","path":"/proc/1/ns/mnt"},
            {"type":"network","path":"/run/netns/x"},
            {"type":"user","path":"/proc/1/ns/user"}]}}),
        ))
        .unwrap();
        let kinds: Vec<_> = p.ns.join.iter().map(|j| j.kind).collect();
        assert_eq!(
            kinds,
            vec![
                CloneFlags::CLONE_NEWUSER,
                CloneFlags::CLONE_NEWNET,
                CloneFlags::CLONE_NEWNS
            ]
        );
        assert!(p.ns.new.is_empty());
    }

    #[test]
    fn relative_namespace_path() {
        let e = plan(&with(
            serde_json::json!({"linux":{"namespaces":[{"type":"mount"},{"type":"uts"},{"type":"network","path":"net"}]}}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "linux.namespaces[2].path");
    }

    #[test]
    fn user_namespace_needs_maps() {
        let e = plan(&with(
            serde_json::json!({"linux":{"namespaces":[{"type":"mount"},{"type":"uts"},{"type":"user"}]}}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "linux.uidMappings");
        let p = plan(&with(
            serde_json::json!({"linux":{"namespaces":[{"type":"mount"},{"type":"uts"},{"type":"user"}],
            "uidMappings":[{"containerID":0,"hostID":1000,"size":10}],
            "gidMappings":[{"containerID":0,"hostID":2000,"size":1}]}}),
        ))
        .unwrap();
        assert_eq!(p.uid_map.as_deref(), Some("0 1000 10\n"));
        assert_eq!(p.gid_map.as_deref(), Some("0 2000 1\n"));
    }

    #[test]
    fn relative_cwd_rejected() {
        let e = plan(&with(serde_json::json!({"process":{"cwd":"tmp"}}))).unwrap_err();
        assert_eq!(e.field, "process.cwd");
    }

    #[test]
    fn empty_args_rejected() {
        let e = plan(&with(serde_json::json!({"process":{"args":[]}}))).unwrap_err();
        assert_eq!(e.field, "process.args");
    }

    #[test]
    fn env_must_have_equals() {
        let e = plan(&with(
            serde_json::json!({"process":{"env":["PATH=/bin","BAD"]}}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "process.env[1]");
    }

    #[test]
    fn terminal_needs_console_socket() {
        let e = plan(&with(serde_json::json!({"process":{"terminal":true}}))).unwrap_err();
        assert_eq!(e.field, "process.terminal");
    }

    #[test]
    fn mounts_are_normalised_and_binds_resolved_against_bundle() {
        let p = plan(&with(serde_json::json!({"mounts":[
            {"destination":"/data/../x/./y","type":"bind","source":"data","options":["rbind","ro"]},
            {"destination":"/proc","type":"proc","source":"proc"}]})))
        .unwrap();
        assert_eq!(p.mounts[0].destination, PathBuf::from("/x/y"));
        assert_eq!(p.mounts[0].source.as_deref(), Some(Path::new("/b/data")));
        assert!(p.mounts[0].options.flags.contains(MsFlags::MS_RDONLY));
        assert_eq!(p.mounts[1].fstype, "proc");
    }

    #[test]
    fn an_overlay_at_root_becomes_the_rootfs_mount() {
        let p = plan(&with(serde_json::json!({"mounts":[
            {"destination":"/","type":"overlay","source":"overlay",
             "options":["lowerdir=/s/l2:/s/l1","upperdir=upper","workdir=work"]},
            {"destination":"/proc","type":"proc","source":"proc"}]})))
        .unwrap();
        let m = p.root_mount.unwrap();
        assert_eq!(
            m.options.data,
            "lowerdir=/s/l2:/s/l1,upperdir=/b/upper,workdir=/b/work"
        );
        assert_eq!(p.mounts.len(), 1);
        let e = plan(&with(serde_json::json!({"mounts":[
            {"destination":"/","type":"tmpfs","source":"tmpfs"}]})))
        .unwrap_err();
        assert_eq!(e.field, "mounts[0].type");
        let e = plan(&with(serde_json::json!({"mounts":[
            {"destination":"/","type":"overlay","source":"overlay"},
            {"destination":"/","type":"overlay","source":"overlay"}]})))
        .unwrap_err();
        assert_eq!(e.field, "mounts[1].destination");
    }

    #[test]
    fn bind_without_source() {
        let e = plan(&with(
            serde_json::json!({"mounts":[{"destination":"/x","options":["bind"]}]}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "mounts[0].source");
    }

    #[test]
    fn sysctl_checks_namespaces_and_names() {
        let e = plan(&with(
            serde_json::json!({"linux":{"sysctl":{"net.ipv4.ip_forward":"1"}}}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "linux.sysctl.net.ipv4.ip_forward");
        let e = plan(&with(
            serde_json::json!({"linux":{"sysctl":{"kernel.panic":"1"}}}),
        ))
        .unwrap_err();
        assert!(e.msg.contains("host"));
        let e = plan(&with(
            serde_json::json!({"linux":{"sysctl":{"net/../../kernel/x":"1"}}}),
        ))
        .unwrap_err();
        assert!(e.msg.contains("valid"));
        let p = plan(&with(serde_json::json!({"linux":{
            "namespaces":[{"type":"mount"},{"type":"uts"},{"type":"network"},{"type":"ipc"}],
            "sysctl":{"net.ipv4.ip_forward":"1","kernel.shmmax":"100"}}})))
        .unwrap();
        assert_eq!(
            p.sysctl,
            vec![
                (PathBuf::from("kernel/shmmax"), "100".to_string()),
                (PathBuf::from("net/ipv4/ip_forward"), "1".to_string())
            ]
        );
    }

    #[test]
    fn capabilities_become_masks() {
        let p = plan(&with(serde_json::json!({"process":{"capabilities":{
            "bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_KILL"]}}})))
        .unwrap();
        let c = p.process.caps.unwrap();
        assert_eq!(c.bounding, (1 << 0) | (1 << 5));
        assert_eq!(c.effective, 1 << 5); // CAP_CHOWN is 0, CAP_KILL is 5
        assert_eq!(c.ambient, 0);
    }

    #[test]
    fn rlimits_validated() {
        let e = plan(&with(serde_json::json!({"process":{"rlimits":[
            {"type":"RLIMIT_NOFILE","soft":10,"hard":5}]}})))
        .unwrap_err();
        assert_eq!(e.field, "process.rlimits[0]");
        let p = plan(&with(serde_json::json!({"process":{"rlimits":[
            {"type":"RLIMIT_NOFILE","soft":5,"hard":10}]}})))
        .unwrap();
        assert_eq!(p.process.rlimits[0].resource, libc::RLIMIT_NOFILE);
    }

    #[test]
    fn resources_become_cgroup_writes() {
        let p = plan(&with(
            serde_json::json!({"linux":{"resources":{"memory":{"limit":1000000},"pids":{"limit":20}}}}),
        ))
        .unwrap();
        let files: Vec<_> = p.cgroup_writes.iter().map(|w| w.file.as_str()).collect();
        assert_eq!(files, ["memory.max", "pids.max"]);
        let p = plan(&with(serde_json::json!({"linux":{"resources":{"devices":[
            {"allow":false,"access":"rwm"}]}}})))
        .unwrap();
        let (default, exceptions) = p.device_rules.unwrap();
        assert!(!default);
        assert!(exceptions.iter().all(|e| e.allow));
        // No rules listed: still deny-all and the default devices (runc's),
        // but nothing that makes create need a cgroup.
        for config in [
            with(serde_json::json!({"linux":{"resources":{"devices":[]}}})),
            BASE.to_string(),
        ] {
            let p = plan(&config).unwrap();
            let (default, exceptions) = p.device_rules.unwrap();
            assert!(!default);
            assert!(exceptions.iter().all(|e| e.allow));
            assert!(!p.devices_asked);
        }
        // A privileged config's allow-all needs no program.
        let p = plan(&with(serde_json::json!({"linux":{"resources":{"devices":[
            {"allow":true,"access":"rwm"}]}}})))
        .unwrap();
        assert!(p.device_rules.is_none());
        assert!(p.devices_asked);
    }

    #[test]
    fn user_devices_replace_defaults() {
        let p = plan(&with(serde_json::json!({"linux":{"devices":[
            {"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":432},
            {"path":"/dev/fuse","type":"c","major":10,"minor":229}]}})))
        .unwrap();
        assert_eq!(p.devices.len(), 7);
        assert_eq!(
            p.devices
                .iter()
                .find(|d| d.path == Path::new("/dev/null"))
                .unwrap()
                .mode,
            0o660
        );
    }

    #[test]
    fn time_offsets_need_time_namespace() {
        let e = plan(&with(
            serde_json::json!({"linux":{"timeOffsets":{"monotonic":{"secs":10}}}}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "linux.timeOffsets");
        let p = plan(&with(serde_json::json!({"linux":{
            "namespaces":[{"type":"mount"},{"type":"uts"},{"type":"time"}],
            "timeOffsets":{"monotonic":{"secs":10},"boottime":{"secs":-5,"nanosecs":7}}}})))
        .unwrap();
        assert_eq!(
            p.time_offsets.as_deref(),
            Some("boottime -5 7\nmonotonic 10 0\n")
        );
    }

    #[test]
    fn profiles_and_labels_need_their_lsm() {
        let json = with(serde_json::json!({
            "process": {"apparmorProfile": "docker-default",
                        "selinuxLabel": "system_u:system_r:container_t:s0:c1,c2"},
            "linux": {"mountLabel": "system_u:object_r:container_file_t:s0:c1,c2"},
            "mounts": [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                        "options": ["mode=1777"]},
                       {"destination": "/proc", "type": "proc", "source": "proc"}]
        }));
        let on = |apparmor, selinux| CreateOptions {
            lsm: crate::lsm::HostLsm { apparmor, selinux },
            ..Default::default()
        };
        let e = Plan::new("c1", Path::new("/b"), &spec(&json), &on(false, true)).unwrap_err();
        assert_eq!(e.field, "process.apparmorProfile");
        let e = Plan::new("c1", Path::new("/b"), &spec(&json), &on(true, false)).unwrap_err();
        assert_eq!(e.field, "process.selinuxLabel");
        let p = Plan::new("c1", Path::new("/b"), &spec(&json), &on(true, true)).unwrap();
        assert_eq!(p.process.apparmor.as_deref(), Some("docker-default"));
        assert_eq!(
            p.process.selinux_label.as_deref(),
            Some("system_u:system_r:container_t:s0:c1,c2")
        );
        // The mount label goes on the tmpfs, not on procfs.
        let data = |dest: &str| {
            p.mounts
                .iter()
                .find(|m| m.destination == Path::new(dest))
                .map(|m| m.options.data.clone())
                .unwrap()
        };
        assert_eq!(
            data("/tmp"),
            "mode=1777,context=\"system_u:object_r:container_file_t:s0:c1,c2\""
        );
        assert_eq!(data("/proc"), "");
        // Without SELinux the mount label means nothing (as crun has it).
        let json = with(serde_json::json!({
            "linux": {"mountLabel": "system_u:object_r:container_file_t:s0"},
            "mounts": [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}]
        }));
        let p = plan(&json).unwrap();
        assert_eq!(p.mounts[0].options.data, "");
        // A quote would end the context= option early.
        let json = with(serde_json::json!({"linux": {"mountLabel": "a\",nosuid"}}));
        let e = Plan::new("c1", Path::new("/b"), &spec(&json), &on(false, true)).unwrap_err();
        assert_eq!(e.field, "linux.mountLabel");
    }

    #[test]
    fn listen_fds_are_preserved_and_announced() {
        let opts = CreateOptions {
            preserve_fds: 2,
            listen_fds: 3,
            ..Default::default()
        };
        let json = with(serde_json::json!({"process":{"env":["PATH=/bin","LISTEN_FDS=9"]}}));
        let p = Plan::new("c1", Path::new("/b"), &spec(&json), &opts).unwrap();
        assert_eq!(p.preserve_fds, 5);
        let env: Vec<_> = p.process.env.iter().map(|e| e.to_str().unwrap()).collect();
        assert_eq!(env, ["PATH=/bin", "LISTEN_FDS=3", "LISTEN_PID=1"]);
    }

    #[test]
    fn clean_paths() {
        assert_eq!(
            clean_container_path(Path::new("/a/../../b")),
            PathBuf::from("/b")
        );
        assert_eq!(
            clean_container_path(Path::new("a/./b/")),
            PathBuf::from("/a/b")
        );
    }
}
