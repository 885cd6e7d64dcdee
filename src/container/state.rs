//! A container's persisted state (`ROOT/ID/state.json`), its status derived from
//! the real process, and the per-container lock.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Hook;
use serde::{Deserialize, Serialize};

/// Errors about a container's state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container does not exist: {0:?}")]
    NotExist(String),
    #[error("container with id {0:?} already exists")]
    Exists(String),
    #[error("invalid container id {id:?}: {why}")]
    InvalidId { id: String, why: &'static str },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}: husk's state must be private to its owner (uid {euid})")]
    NotPrivate {
        path: PathBuf,
        why: String,
        euid: u32,
    },
    #[error("{path}: corrupt state: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Status values of the OCI state (runtime.md, State).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What husk records about a container: enough to answer every command without
/// reading the bundle again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// Host pid of the container's init.
    pub pid: i32,
    /// Start time of the init (field 22 of /proc/PID/stat), so a reused pid is
    /// not taken for the container.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Absolute path of the container's cgroup directory, if it has one.
    pub cgroup: Option<PathBuf>,
    /// Whether husk created the cgroup (and so removes it on delete).
    #[serde(default)]
    pub cgroup_owned: bool,
    /// The topmost parent directory of the cgroup that create made (removed
    /// on delete too, as far as empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_made_from: Option<PathBuf>,
    /// The container's directories in the v1 hierarchies (v1 and hybrid
    /// hosts), where its resource limits are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroup_v1: Vec<crate::cgroups::v1::Placed>,
    /// The systemd driver's scope (`--systemd-cgroup`): delete stops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// Whether the init shares the host's pid namespace (then delete must kill
    /// every process of the container, not only the init).
    #[serde(default)]
    pub shared_pid_ns: bool,
    /// For a container sharing the runtime's mount namespace: the mount id
    /// at the rootfs before create mounted anything there (delete takes
    /// away what is on top of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_mounts_above: Option<u64>,
    #[serde(default)]
    pub poststop: Vec<Hook>,
    #[serde(default)]
    pub poststart: Vec<Hook>,
}

/// Bounds on container ids: the id names a directory, so it must be one path
/// component, and it must not be able to address anything else.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let bad = |why| {
        Err(StateError::InvalidId {
            id: id.to_string(),
            why,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        return bad("not a name");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
    {
        return bad("only letters, digits, '_', '+', '-' and '.' are allowed");
    }
    Ok(())
}

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
pub const CONFIG_FILE: &str = "config.json";
/// The record of a create in progress (super::making).
pub const MAKING_FILE: &str = "creating.json";

/// The directory of one container under the runtime's root.
pub struct ContainerDir {
    pub dir: PathBuf,
    pub id: String,
}

impl ContainerDir {
    pub fn new(root: &Path, id: &str) -> Result<ContainerDir, StateError> {
        validate_id(id)?;
        Ok(ContainerDir {
            dir: root.join(id),
            id: id.to_string(),
        })
    }

    /// Makes the directory; its existence is what makes an id taken, so two
    /// concurrent creates of one id cannot both succeed. Directories are
    /// 0700 and files 0600 whatever the umask (a umask only takes bits away).
    pub fn create(&self) -> Result<(), StateError> {
        if let Some(parent) = self.dir.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io(parent))?;
            check_root(parent)?;
        }
        match fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StateError::Exists(self.id.clone()))
            }
            Err(e) => Err(io(&self.dir)(e)),
        }
    }

    /// Claims the id for a create: makes the directory and takes its lock,
    /// held until the returned file is dropped. A directory left by a create
    /// that died (no state, lock free) is taken back first, with all its
    /// record names; one with a state, or whose create is alive, is an
    /// existing container.
    pub fn claim(&self) -> Result<File, StateError> {
        for first in [true, false] {
            match self.create() {
                Ok(()) => {
                    let lock = self.try_lock()?;
                    // A cleaner that found it before we locked it may have
                    // removed it: then this create lost the race.
                    let here = fs::symlink_metadata(&self.dir).map_err(io(&self.dir))?;
                    let locked = lock.metadata().map_err(io(&self.dir))?;
                    if (here.dev(), here.ino()) != (locked.dev(), locked.ino()) {
                        return Err(StateError::Exists(self.id.clone()));
                    }
                    return Ok(lock);
                }
                Err(StateError::Exists(_)) if first => {
                    let lock = self.try_lock()?;
                    let m = fs::symlink_metadata(&self.dir).map_err(io(&self.dir))?;
                    check_private(&self.dir, &m, true)?;
                    if self.dir.join(STATE_FILE).exists() {
                        return Err(StateError::Exists(self.id.clone()));
                    }
                    self.take_back()?;
                    drop(lock);
                }
                Err(e) => return Err(e),
            }
        }
        Err(StateError::Exists(self.id.clone()))
    }

    /// The lock without waiting: held by someone else means a command (or a
    /// create) is at work on the id.
    fn try_lock(&self) -> Result<File, StateError> {
        self.flock(libc::LOCK_EX | libc::LOCK_NB)
            .map_err(|e| match e {
                StateError::Io { source, .. }
                    if source.raw_os_error() == Some(libc::EWOULDBLOCK) =>
                {
                    StateError::Exists(self.id.clone())
                }
                e => e,
            })
    }

    /// Opens the record of a create in progress, to append to (one small
    /// write per step: a process killed mid-way leaves whole lines).
    pub fn open_making(&self) -> Result<File, StateError> {
        let path = self.dir.join(MAKING_FILE);
        fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io(&path))
    }

    /// Appends the whole record so far as one line; the last whole line is
    /// the record.
    pub fn append_making(&self, f: &mut File, m: &super::making::Making) -> Result<(), StateError> {
        let path = self.dir.join(MAKING_FILE);
        let mut line = serde_json::to_vec(m).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        line.push(b'\n');
        std::io::Write::write_all(f, &line).map_err(io(&path))
    }

    /// The directory of a create that died (the caller holds the lock and
    /// found no state): takes back what its record names, then removes it.
    pub fn take_back(&self) -> Result<(), StateError> {
        let path = self.dir.join(MAKING_FILE);
        match read_private(&path) {
            // The last line that parses (a line cut short by a kill does
            // not); none names nothing to act on.
            Ok(data) => {
                if let Some(m) = data
                    .split(|b| *b == b'\n')
                    .rev()
                    .find_map(|l| serde_json::from_slice::<super::making::Making>(l).ok())
                {
                    m.undo(None);
                }
            }
            Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            }
            Err(e) => return Err(e),
        }
        self.remove()
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    /// Takes the container's lock (flock on its directory), held until the
    /// returned file is dropped, so commands on one id do not interleave.
    pub fn lock(&self) -> Result<File, StateError> {
        self.flock(libc::LOCK_EX)
    }

    fn flock(&self, op: libc::c_int) -> Result<File, StateError> {
        let f = File::open(&self.dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StateError::NotExist(self.id.clone())
            } else {
                io(&self.dir)(e)
            }
        })?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
            return Err(io(&self.dir)(std::io::Error::last_os_error()));
        }
        Ok(f)
    }

    /// Loads the state, trusting only what the caller made: the root, the
    /// container's directory and its state file must be the caller's and
    /// writable by nobody else (another user could otherwise plant a
    /// container whose pid husk signals and whose poststop hooks it runs).
    pub fn load(&self) -> Result<State, StateError> {
        if let Some(root) = self.dir.parent() {
            check_root(root).map_err(|e| match e {
                StateError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    StateError::NotExist(self.id.clone())
                }
                e => e,
            })?;
        }
        self.load_in_checked_root()
    }

    /// `load` for a caller that has checked the root already (`list`, once
    /// for all its containers).
    pub fn load_in_checked_root(&self) -> Result<State, StateError> {
        let path = self.dir.join(STATE_FILE);
        let not_exist = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StateError::NotExist(self.id.clone())
            } else {
                io(&path)(e)
            }
        };
        let m = fs::symlink_metadata(&self.dir).map_err(not_exist)?;
        check_private(&self.dir, &m, true)?;
        let data = read_private(&path).map_err(|e| match e {
            StateError::Io { source, .. } => not_exist(source),
            e => e,
        })?;
        serde_json::from_slice(&data).map_err(|source| StateError::Corrupt { path, source })
    }

    /// Keeps the config as `create` read it: what `exec` takes from it (the
    /// base process, the seccomp filter) is fixed at create, whatever becomes
    /// of the bundle. runc keeps its config in its state for the same reason.
    pub fn save_config(&self, raw: &[u8]) -> Result<(), StateError> {
        let path = self.dir.join(CONFIG_FILE);
        write_atomic(&path, raw, 0o600).map_err(io(&path))
    }

    /// The config saved by `create` (after `load`, which checked the directory).
    pub fn load_config(&self) -> Result<Vec<u8>, StateError> {
        read_private(&self.dir.join(CONFIG_FILE))
    }

    /// Writes the state atomically: a reader sees the old or the new state, never
    /// half of one.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let path = self.dir.join(STATE_FILE);
        let data = serde_json::to_vec(state).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &data, 0o600).map_err(io(&path))
    }

    /// Owner of the container: the user owning its state directory.
    pub fn owner(&self) -> String {
        match fs::metadata(&self.dir) {
            Ok(m) => user_name(m.uid()),
            Err(_) => String::new(),
        }
    }

    pub fn remove(&self) -> Result<(), StateError> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&self.dir)(e)),
        }
    }
}

/// Reads a state file of the caller's: never a fifo to hang on, nor a link
/// to follow, nor anything another user could have written.
fn read_private(path: &Path) -> Result<Vec<u8>, StateError> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io(path))?;
    check_private(path, &f.metadata().map_err(io(path))?, false)?;
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut data).map_err(io(path))?;
    Ok(data)
}

/// Checks that `root` (husk's --root) is a directory of the caller's that
/// nobody else can write.
pub fn check_root(root: &Path) -> Result<(), StateError> {
    let m = fs::metadata(root).map_err(io(root))?;
    check_private(root, &m, true)
}

fn check_private(path: &Path, m: &fs::Metadata, dir: bool) -> Result<(), StateError> {
    let euid = nix::unistd::geteuid().as_raw();
    let why = if dir && !m.is_dir() {
        "not a directory".to_string()
    } else if !dir && !m.is_file() {
        "not a regular file".to_string()
    } else if m.uid() != euid {
        format!("owned by uid {}", m.uid())
    } else if m.mode() & 0o022 != 0 {
        format!("writable by others (mode {:o})", m.mode() & 0o7777)
    } else {
        return Ok(());
    };
    Err(StateError::NotPrivate {
        path: path.to_path_buf(),
        why,
        euid,
    })
}

pub use crate::files::write_atomic;

/// The name of a uid, from /etc/passwd; the number when it has none.
pub fn user_name(uid: u32) -> String {
    if uid == 0 {
        return "root".into();
    }
    if let Ok(passwd) = fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let mut f = line.split(':');
            if let (Some(name), _, Some(id)) = (f.next(), f.next(), f.next())
                && id.parse() == Ok(uid)
            {
                return name.to_string();
            }
        }
    }
    format!("#{uid}")
}

/// A process's start time and whether it is still alive (not a zombie), from
/// /proc/PID/stat.
pub fn process_start(pid: i32) -> Option<(u64, bool)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, !matches!(state, "Z" | "X")))
}

/// The container's cgroups, whichever hierarchies hold them: the unified
/// one where there is one (membership, freezing), else the v1 ones.
impl State {
    /// A cgroup whose `cgroup.procs` lists every process of the container:
    /// the unified one, or on a host without one any v1 one (each lists the
    /// same processes).
    pub fn procs_cgroup(&self) -> Option<&Path> {
        self.cgroup
            .as_deref()
            .or_else(|| self.cgroup_v1.first().map(|p| p.path.as_path()))
    }

    /// Freezes or thaws the container (`cgroup.freeze`, or the v1 freezer).
    pub fn freeze(&self, frozen: bool) -> Result<(), crate::cgroups::CgroupError> {
        match &self.cgroup {
            Some(cg) => crate::cgroups::freeze(cg, frozen),
            None => crate::cgroups::v1::freeze(&self.cgroup_v1, frozen),
        }
    }

    pub fn is_frozen(&self) -> bool {
        match &self.cgroup {
            Some(cg) => crate::cgroups::is_frozen(cg),
            None => crate::cgroups::v1::is_frozen(&self.cgroup_v1),
        }
    }

    /// Thaws without waiting: frozen processes a SIGKILL was sent to die
    /// only once thawed.
    pub fn thaw_now(&self) {
        match &self.cgroup {
            Some(cg) => {
                let _ = std::fs::write(cg.join("cgroup.freeze"), "0");
            }
            None => {
                if let Some(d) = crate::cgroups::v1::dir_for(&self.cgroup_v1, "freezer") {
                    let _ = std::fs::write(d.join("freezer.state"), "THAWED");
                }
            }
        }
    }

    /// Whether the recorded init is still the live process with that pid.
    pub fn init_alive(&self) -> bool {
        self.pid > 0
            && matches!(process_start(self.pid), Some((start, alive)) if start == self.pid_start && alive)
    }

    /// The status, derived from the real process rather than trusted from disk.
    pub fn status(&self, dir: &ContainerDir) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.is_frozen() {
            return Status::Paused;
        }
        // `start` removes the exec fifo: while it exists, the init waits.
        if dir.fifo().exists() {
            Status::Created
        } else {
            Status::Running
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_3+x").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a b", "x\0y"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_id(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn own_process_start_is_readable() {
        let (start, alive) = process_start(std::process::id() as i32).unwrap();
        assert!(alive);
        assert!(start > 0);
        assert!(process_start(i32::MAX).is_none());
    }

    /// `claim` once no copy of a lock just dropped is left: another test's
    /// thread may fork meanwhile, and its child holds a copy of every
    /// descriptor until it execs.
    fn claim_settled(d: &ContainerDir) -> Result<File, StateError> {
        let t = std::time::Instant::now();
        loop {
            match d.claim() {
                Err(StateError::Exists(_)) if t.elapsed().as_secs() < 5 => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                r => return r,
            }
        }
    }

    #[test]
    fn the_record_of_a_killed_create_is_its_last_whole_line() {
        let tmp = std::env::temp_dir().join(format!("husk-making-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let d = ContainerDir::new(&tmp.join("state"), "c1").unwrap();
        let lock = d.claim().unwrap();
        // Each step's record names a directory create "made"; the last
        // append was cut short by the kill.
        let made = |n: &str| {
            let p = tmp.join(n);
            fs::create_dir_all(&p).unwrap();
            p
        };
        let (a, b) = (made("a"), made("b"));
        let mut f = d.open_making().unwrap();
        for cg in [&a, &b] {
            let m = crate::container::making::Making {
                cgroup: Some(cg.clone()),
                ..Default::default()
            };
            d.append_making(&mut f, &m).unwrap();
        }
        std::io::Write::write_all(&mut f, br#"{"cgroup":"/nonexist"#).unwrap();
        // While create lives, its id is taken.
        let other = ContainerDir::new(&tmp.join("state"), "c1").unwrap();
        assert!(matches!(other.claim(), Err(StateError::Exists(_))));
        drop(lock);
        // Once it is gone, the next claim takes back what the last whole
        // line names, and the id is free again.
        let again = claim_settled(&other).unwrap();
        assert!(a.exists(), "an earlier line was acted on");
        assert!(!b.exists(), "the last whole line was not acted on");
        drop(again);
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_record_that_is_a_link_or_writable_by_others_is_not_acted_on() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = std::env::temp_dir().join(format!("husk-making-link-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let victim = tmp.join("victim");
        fs::create_dir_all(&victim).unwrap();
        let line = format!("{{\"cgroup\":{:?}}}\n", victim);
        let d = ContainerDir::new(&tmp.join("state"), "c1").unwrap();
        // A record that is a link to one naming the victim.
        drop(claim_settled(&d).unwrap());
        fs::write(tmp.join("elsewhere.json"), &line).unwrap();
        std::os::unix::fs::symlink(tmp.join("elsewhere.json"), d.dir.join(MAKING_FILE)).unwrap();
        // Refused for what the record is, not because the id is busy.
        let e = claim_settled(&d).unwrap_err();
        assert!(!matches!(e, StateError::Exists(_)), "{e}");
        assert!(victim.is_dir(), "a linked record was acted on");
        // A record others could have written.
        fs::remove_file(d.dir.join(MAKING_FILE)).unwrap();
        fs::write(d.dir.join(MAKING_FILE), &line).unwrap();
        fs::set_permissions(d.dir.join(MAKING_FILE), fs::Permissions::from_mode(0o666)).unwrap();
        let e = claim_settled(&d).unwrap_err();
        assert!(matches!(e, StateError::NotPrivate { .. }), "{e}");
        assert!(victim.is_dir(), "a record writable by others was acted on");
        // Made private, it is the record of a create that died.
        fs::set_permissions(d.dir.join(MAKING_FILE), fs::Permissions::from_mode(0o600)).unwrap();
        drop(claim_settled(&d).unwrap());
        assert!(!victim.exists());
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn save_load_roundtrip() {
        let tmp = std::env::temp_dir().join(format!("husk-state-test-{}", std::process::id()));
        let d = ContainerDir::new(&tmp, "c1").unwrap();
        d.create().unwrap();
        assert!(matches!(d.create(), Err(StateError::Exists(_))));
        let s = State {
            oci_version: "1.0.2".into(),
            id: "c1".into(),
            pid: 1,
            pid_start: 5,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "now".into(),
            annotations: HashMap::new(),
            cgroup: None,
            cgroup_owned: false,
            cgroup_made_from: None,
            cgroup_v1: vec![],
            systemd_unit: Some("husk-c1.scope".into()),
            shared_pid_ns: false,
            shared_mounts_above: None,
            poststop: vec![],
            poststart: vec![],
        };
        d.save(&s).unwrap();
        let l = d.load().unwrap();
        assert_eq!(l.pid_start, 5);
        assert_eq!(l.systemd_unit.as_deref(), Some("husk-c1.scope"));
        assert_eq!(l.status(&d), Status::Stopped);
        d.remove().unwrap();
        fs::remove_dir_all(&tmp).unwrap();
    }
}
