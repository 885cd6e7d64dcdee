//! cgroup v2: finding the unified hierarchy, making the container's cgroup,
//! applying its resources, freezing, killing and removing it.

pub mod devices;
pub mod resources;
pub mod systemd;
pub mod v1;
pub mod v1_resources;

use std::fs;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("linux.cgroupsPath: {path:?}: {msg}")]
    BadPath { path: PathBuf, msg: &'static str },
    #[error(
        "linux.cgroupsPath: {0:?} is a systemd path (slice:prefix:name): it needs --systemd-cgroup"
    )]
    SystemdPath(PathBuf),
    #[error("systemd unit {unit}: {op}: {msg}")]
    Systemd {
        unit: String,
        op: &'static str,
        msg: String,
    },
    #[error("cgroup {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("cgroup {path}: still has processes after {secs}s")]
    Busy { path: PathBuf, secs: u64 },
    #[error(transparent)]
    Resource(#[from] resources::ResourceError),
    #[error(
        "{field}: the {controller} controller is not available in {mount} (cgroup.controllers)"
    )]
    NoController {
        field: String,
        controller: String,
        mount: PathBuf,
    },
    #[error("{field}: cannot set {file} to {value:?} in {path}: {source}")]
    Apply {
        field: String,
        file: String,
        value: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("linux.resources: cgroup resources need cgroup v2, and this host has none")]
    NoV2,
    #[error(
        "linux.resources: rootless: limits need a cgroup you may write, and {path} is not writable (give linux.cgroupsPath inside a cgroup delegated to you, as systemd delegates user@UID.service)"
    )]
    RootlessNotDelegated { path: PathBuf },
    #[error(
        "--systemd-cgroup: rootless: husk drives the system instance of systemd only; use the cgroupfs driver with a delegated linux.cgroupsPath"
    )]
    RootlessSystemd,
    #[error("cgroup {path}: timed out waiting for {what}")]
    Timeout { path: PathBuf, what: &'static str },
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Where the unified (v2) hierarchy is mounted: `/sys/fs/cgroup` on a pure v2
/// host, `/sys/fs/cgroup/unified` on a hybrid one, none on a v1-only host.
pub fn unified_mount() -> Option<PathBuf> {
    for p in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        if let Ok(st) = nix::sys::statfs::statfs(p)
            && st.filesystem_type().0 == CGROUP2_SUPER_MAGIC
        {
            return Some(PathBuf::from(p));
        }
    }
    None
}

/// Whether this process may make (or enter) the cgroup at `path`: write
/// access to its `cgroup.procs` when it exists, or to the nearest directory
/// above it that does (a subtree delegated to a user is chowned to them).
pub fn may_make(path: &Path) -> bool {
    let eaccess = |p: &Path| {
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
            return false;
        };
        // SAFETY: faccessat with a C path and integer flags.
        unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) == 0 }
    };
    if path.is_dir() {
        return eaccess(&path.join("cgroup.procs"));
    }
    path.ancestors()
        .skip(1)
        .find(|a| a.is_dir())
        .is_some_and(eaccess)
}

/// A rootless caller's cgroup when `linux.cgroupsPath` is not absolute: beside
/// the caller's own cgroup on the unified hierarchy, named by the relative
/// path or else by the id, as runc places it. A subtree delegated to the user
/// (systemd's `user@UID.service`, whose sessions hold the user's processes)
/// is then where the container goes; anywhere else the caller may not make
/// it, and there is no cgroup (or an error when limits are asked).
pub fn rootless_relative_path(
    own: &Path,
    cgroups_path: Option<&Path>,
    id: &str,
) -> Result<PathBuf, CgroupError> {
    let given = cgroups_path.filter(|p| !p.as_os_str().is_empty());
    if given.is_some_and(|p| p.is_absolute()) {
        return relative_path(given, id);
    }
    let inner = match given {
        Some(p) => {
            let under = relative_path(Some(p), id)?;
            under
                .strip_prefix(DEFAULT_PARENT)
                .map(Path::to_path_buf)
                .unwrap_or(under)
        }
        None => PathBuf::from(id),
    };
    let parent = own.parent().unwrap_or(Path::new("/"));
    Ok(parent.strip_prefix("/").unwrap_or(parent).join(inner))
}

/// The caller's cgroup on the unified hierarchy, from `/proc/self/cgroup`'s
/// text (its `0::PATH` line).
pub fn own_unified(proc_self_cgroup: &str) -> Option<PathBuf> {
    proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| PathBuf::from(p.trim_end()))
}

/// The parent of containers without a `linux.cgroupsPath`.
pub const DEFAULT_PARENT: &str = "husk";

/// The container's cgroup path relative to the hierarchy's root (config-linux.md,
/// Control groups): absolute paths are taken from the root, relative ones under
/// husk's default parent. (With `--systemd-cgroup`, [`systemd::Unit`] reads
/// it instead.)
pub fn relative_path(cgroups_path: Option<&Path>, id: &str) -> Result<PathBuf, CgroupError> {
    let Some(p) = cgroups_path.filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(PathBuf::from(DEFAULT_PARENT).join(id));
    };
    if !p.is_absolute() && p.to_string_lossy().matches(':').count() == 2 {
        return Err(CgroupError::SystemdPath(p.to_path_buf()));
    }
    let mut out = if p.is_absolute() {
        PathBuf::new()
    } else {
        PathBuf::from(DEFAULT_PARENT)
    };
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(CgroupError::BadPath {
                    path: p.to_path_buf(),
                    msg: "must not contain '..'",
                });
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(CgroupError::BadPath {
            path: p.to_path_buf(),
            msg: "names the root cgroup",
        });
    }
    Ok(out)
}

/// `made_from` (the topmost directory a create makes for `path`) without
/// husk's default parent: that one is shared by every container, and a
/// delete removing it could pull it from under another create's mkdir.
pub fn below_default_parent(made_from: Option<PathBuf>, path: &Path) -> Option<PathBuf> {
    let top = made_from?;
    if top.file_name().is_none_or(|n| n != DEFAULT_PARENT) || !path.starts_with(&top) {
        return Some(top);
    }
    let first = path.strip_prefix(&top).ok()?.components().next()?;
    let next = top.join(first);
    (next != path).then_some(next)
}

/// A container's cgroup directory in the unified hierarchy.
pub struct Cgroup {
    pub path: PathBuf,
    /// Whether this call made the directory (and so a failed create removes it).
    pub created: bool,
    /// The topmost directory this call made, when it made parents of the
    /// cgroup too (`a/b/c` where `a` was missing: `a`). Delete removes them
    /// again, as far as they are empty; runc leaves them behind.
    pub made_from: Option<PathBuf>,
}

impl Cgroup {
    /// A cgroup directory that is there already (a container's, for exec or update).
    pub fn existing(path: &Path) -> Cgroup {
        Cgroup {
            path: path.to_path_buf(),
            created: false,
            made_from: None,
        }
    }

    /// What `make` will make, from what exists now, without making
    /// anything: create records it first, so that a create killed while
    /// making it leaves a record of all it may have made.
    pub fn intent(mount: &Path, rel: &Path) -> Cgroup {
        let path = mount.join(rel);
        let created = !path.exists();
        // The first missing ancestor is the top of what is made.
        let mut top = path.as_path();
        while let Some(parent) = top.parent() {
            if parent == mount || parent.exists() {
                break;
            }
            top = parent;
        }
        let made_from = (created && top != path).then(|| top.to_path_buf());
        Cgroup {
            path,
            created,
            made_from,
        }
    }

    /// Makes the directory and its missing parents (there already is fine).
    pub fn make(&self) -> Result<(), CgroupError> {
        fs::create_dir_all(&self.path).map_err(|source| CgroupError::Io {
            path: self.path.clone(),
            op: "mkdir",
            source,
        })
    }

    /// A descriptor of the directory, for clone3's CLONE_INTO_CGROUP.
    pub fn open(&self) -> Result<OwnedFd, CgroupError> {
        open(
            &self.path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| CgroupError::Io {
            path: self.path.clone(),
            op: "open",
            source: e.into(),
        })
    }

    /// Moves a process in (the fallback when clone3 could not place it).
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        let f = self.path.join("cgroup.procs");
        fs::write(&f, pid.to_string()).map_err(|source| CgroupError::Io {
            path: f,
            op: "write",
            source,
        })
    }
}

/// Enables the controllers `writes` need in every ancestor's
/// `cgroup.subtree_control`, from the hierarchy's root down to the container's
/// parent, so the container's cgroup gets their files.
/// The writes worth making on the hierarchy at `mount`: a setting that asks
/// for the default (ctr always sends cpu shares 1024, v1's default) is
/// dropped when its controller is not available, since it asks for nothing
/// a plain cgroup does not have; any other setting stays, and an unavailable
/// controller is then an error in [`enable_controllers`].
pub fn effective_writes(mount: &Path, writes: &[resources::Write]) -> Vec<resources::Write> {
    if writes.iter().all(|w| !w.is_default) {
        return writes.to_vec();
    }
    let available = fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    writes
        .iter()
        .filter(|w| {
            !w.is_default
                || w.controller
                    .is_none_or(|c| available.split_whitespace().any(|a| a == c))
        })
        .cloned()
        .collect()
}

pub fn enable_controllers(
    mount: &Path,
    rel: &Path,
    writes: &[resources::Write],
) -> Result<(), CgroupError> {
    let needed = resources::controllers(writes);
    if needed.is_empty() {
        return Ok(());
    }
    let available = fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    for c in &needed {
        if !available.split_whitespace().any(|a| a == *c) {
            let field = writes
                .iter()
                .find(|w| w.controller == Some(c))
                .map(|w| w.field.clone())
                .unwrap_or_default();
            return Err(CgroupError::NoController {
                field,
                controller: c.to_string(),
                mount: mount.to_path_buf(),
            });
        }
    }
    let mut dir = mount.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for (i, comp) in comps.iter().enumerate() {
        let ctl = dir.join("cgroup.subtree_control");
        let enabled = fs::read_to_string(&ctl).unwrap_or_default();
        let missing: Vec<String> = needed
            .iter()
            .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if !missing.is_empty() {
            fs::write(&ctl, missing.join(" ")).map_err(|source| CgroupError::Io {
                path: ctl.clone(),
                op: "enable controllers",
                source,
            })?;
        }
        if i + 1 < comps.len() {
            dir.push(comp);
        }
    }
    Ok(())
}

/// Writes each setting into the cgroup at `path`.
pub fn apply(path: &Path, writes: &[resources::Write]) -> Result<(), CgroupError> {
    for w in writes {
        let file = path.join(&w.file);
        if let Err(source) = fs::write(&file, &w.value) {
            return Err(CgroupError::Apply {
                field: w.field.clone(),
                file: w.file.clone(),
                value: w.value.clone(),
                path: path.to_path_buf(),
                source,
            });
        }
    }
    Ok(())
}

/// Freezes or thaws the cgroup and waits until `cgroup.events` says so.
pub fn freeze(path: &Path, frozen: bool) -> Result<(), CgroupError> {
    let f = path.join("cgroup.freeze");
    fs::write(&f, if frozen { "1" } else { "0" }).map_err(|source| CgroupError::Io {
        path: f,
        op: "write",
        source,
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_frozen(path) != frozen {
        if Instant::now() > deadline {
            return Err(CgroupError::Timeout {
                path: path.to_path_buf(),
                what: if frozen { "frozen" } else { "thawed" },
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// The pids in a cgroup.
pub fn pids(path: &Path) -> Vec<i32> {
    fs::read_to_string(path.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Whether `cgroup.events` says the cgroup is frozen.
pub fn is_frozen(path: &Path) -> bool {
    fs::read_to_string(path.join("cgroup.events"))
        .map(|s| s.lines().any(|l| l == "frozen 1"))
        .unwrap_or(false)
}

/// Sends `sig` to every process of the cgroup. SIGKILL goes through
/// `cgroup.kill` where the kernel has it (5.14+), which cannot miss a process
/// forked meanwhile.
pub fn signal_all(path: &Path, sig: i32) -> Result<(), CgroupError> {
    // cgroup.kill is v2's (Linux 5.14); a v1 directory refuses to make it.
    if sig == libc::SIGKILL && path.join("cgroup.kill").exists() {
        match fs::write(path.join("cgroup.kill"), "1") {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CgroupError::Io {
                    path: path.join("cgroup.kill"),
                    op: "write",
                    source,
                });
            }
        }
    }
    for pid in pids(path) {
        // SAFETY: kill(2) takes plain integers.
        unsafe { libc::kill(pid, sig) };
    }
    Ok(())
}

/// Removes the parents of `path` that a create made (up to and including
/// `made_from`), leaf first, stopping at the first one that is not empty
/// (another container made its cgroup there since).
pub fn remove_made_parents(path: &Path, made_from: &Path) {
    if !path.starts_with(made_from) {
        return;
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        if !d.starts_with(made_from) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Removes the cgroup once its processes are gone, killing any that remain, and
/// then its parent if that is husk's default parent and now empty.
pub fn remove(path: &Path) -> Result<(), CgroupError> {
    if !path.exists() {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut killed = false;
    loop {
        match fs::remove_dir(path) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::NotFound => break,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if Instant::now() > deadline {
                    return Err(CgroupError::Busy {
                        path: path.to_path_buf(),
                        secs: 10,
                    });
                }
                if !killed {
                    signal_all(path, libc::SIGKILL)?;
                    killed = true;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(source) => {
                return Err(CgroupError::Io {
                    path: path.to_path_buf(),
                    op: "rmdir",
                    source,
                });
            }
        }
    }
    if let Some(parent) = path.parent()
        && parent.file_name().is_some_and(|n| n == DEFAULT_PARENT)
    {
        // Other containers may still live there: then it stays.
        let _ = fs::remove_dir(parent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_rootless_container_goes_beside_the_callers_own_cgroup() {
        let own = own_unified("12:pids:/user.slice\n0::/user.slice/user-1000.slice/user@1000.service/app.slice/sh.scope\n").unwrap();
        let svc = "user.slice/user-1000.slice/user@1000.service/app.slice";
        assert_eq!(
            rootless_relative_path(&own, None, "c1").unwrap(),
            Path::new(svc).join("c1")
        );
        assert_eq!(
            rootless_relative_path(&own, Some(Path::new("mine/c1")), "c1").unwrap(),
            Path::new(svc).join("mine/c1")
        );
        // An absolute path is taken from the root, as for root.
        assert_eq!(
            rootless_relative_path(&own, Some(Path::new("/a/b")), "c1").unwrap(),
            Path::new("a/b")
        );
        // In the root cgroup (no delegation): a child of the root, which the
        // caller may not make.
        assert_eq!(
            rootless_relative_path(Path::new("/"), None, "c1").unwrap(),
            Path::new("c1")
        );
        assert!(rootless_relative_path(&own, Some(Path::new("../x")), "c1").is_err());
        assert_eq!(own_unified("1:name=systemd:/\n"), None);
    }

    use super::*;

    #[test]
    fn default_requests_are_dropped_only_where_their_controller_is_missing() {
        let dir = std::env::temp_dir().join(format!("husk-effw-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let res: oci_spec::runtime::LinuxResources = serde_json::from_value(serde_json::json!({
            "cpu": {"shares": 1024}, "pids": {"limit": 10}
        }))
        .unwrap();
        let writes = resources::writes(&res).unwrap();
        fs::write(dir.join("cgroup.controllers"), "memory pids\n").unwrap();
        let kept: Vec<_> = effective_writes(&dir, &writes)
            .into_iter()
            .map(|w| w.file)
            .collect();
        assert_eq!(kept, ["pids.max"]);
        // With the controller there, the default is written like any value.
        fs::write(dir.join("cgroup.controllers"), "cpu pids\n").unwrap();
        assert_eq!(effective_writes(&dir, &writes).len(), 2);
        // A real limit is never dropped: enable_controllers refuses it instead.
        let res: oci_spec::runtime::LinuxResources =
            serde_json::from_value(serde_json::json!({"cpu": {"shares": 512}})).unwrap();
        fs::write(dir.join("cgroup.controllers"), "pids\n").unwrap();
        let writes = resources::writes(&res).unwrap();
        assert_eq!(effective_writes(&dir, &writes), writes);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_default_parent_is_never_made_from() {
        let m = |s: &str| Some(PathBuf::from(s));
        let p = Path::new("/cg/husk/top/mid/a");
        assert_eq!(below_default_parent(m("/cg/husk"), p), m("/cg/husk/top"));
        assert_eq!(
            below_default_parent(m("/cg/husk/top"), p),
            m("/cg/husk/top")
        );
        assert_eq!(
            below_default_parent(m("/cg/husk"), Path::new("/cg/husk/a")),
            None
        );
        assert_eq!(below_default_parent(None, p), None);
        assert_eq!(
            below_default_parent(m("/cg/k8s"), Path::new("/cg/k8s/a")),
            m("/cg/k8s")
        );
    }

    #[test]
    fn default_and_given_paths() {
        assert_eq!(relative_path(None, "c1").unwrap(), PathBuf::from("husk/c1"));
        assert_eq!(
            relative_path(Some(Path::new("/k8s/pod1/c1")), "c1").unwrap(),
            PathBuf::from("k8s/pod1/c1")
        );
        assert_eq!(
            relative_path(Some(Path::new("mine")), "c1").unwrap(),
            PathBuf::from("husk/mine")
        );
        assert!(relative_path(Some(Path::new("/a/../../b")), "c1").is_err());
        assert!(relative_path(Some(Path::new("/")), "c1").is_err());
        assert!(matches!(
            relative_path(Some(Path::new("system.slice:husk:c1")), "c1"),
            Err(CgroupError::SystemdPath(_))
        ));
    }
}
