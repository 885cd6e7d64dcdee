//! The systemd cgroup driver (`--systemd-cgroup`), as runc's: a
//! `linux.cgroupsPath` of the form `slice:prefix:name` names the transient
//! scope `prefix-name.scope` in `slice`, which systemd makes over D-Bus
//! (StartTransientUnit, `Delegate=yes`) with the resource properties it
//! knows. husk then writes the cgroup files as the cgroupfs driver does, so
//! what systemd has no property for still applies and every value is exact;
//! from there on the scope's cgroup is handled like any other (pause, kill,
//! stats), and delete stops the unit.
//!
//! A scope must hold a process when it starts, and husk places the
//! container's init by cloning it straight into its cgroup. So a placeholder
//! process, forked before the init, starts the scope for itself and stays
//! until the init is there. The placeholder is also where D-Bus runs for
//! `create`: zbus starts threads, and `create` must stay a single thread to
//! clone the init safely.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};

use super::CgroupError;
use super::resources::Write;

/// The slice of a container whose cgroupsPath leaves it out (runc's).
pub const DEFAULT_SLICE: &str = "system.slice";
/// The scope prefix of a container without a cgroupsPath.
pub const DEFAULT_PREFIX: &str = "husk";
/// How long systemd has to start or stop a unit.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// A container's scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The slice it is in (`system.slice`, `kubepods-besteffort.slice`).
    pub slice: String,
    /// The unit's name (`cri-containerd-ID.scope`).
    pub name: String,
    /// Its cgroup, relative to the hierarchy's root
    /// (`kubepods.slice/kubepods-besteffort.slice/cri-containerd-ID.scope`).
    pub rel: PathBuf,
}

fn bad(p: &str, msg: &'static str) -> CgroupError {
    CgroupError::BadPath {
        path: PathBuf::from(p),
        msg,
    }
}

/// The characters systemd allows in a unit name.
fn unit_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@\\".contains(&b))
}

impl Unit {
    /// The scope for a container: `slice:prefix:name` as runc reads it (an
    /// empty slice is `system.slice`), or `system.slice` and `husk-ID.scope`
    /// without a cgroupsPath.
    pub fn for_container(cgroups_path: Option<&Path>, id: &str) -> Result<Unit, CgroupError> {
        let given = cgroups_path.filter(|p| !p.as_os_str().is_empty());
        let text = match given {
            None => format!("{DEFAULT_SLICE}:{DEFAULT_PREFIX}:{id}"),
            Some(p) => p
                .to_str()
                .ok_or_else(|| bad(&p.to_string_lossy(), "is not UTF-8"))?
                .to_string(),
        };
        let parts: Vec<&str> = text.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(bad(
                &text,
                "expected the form slice:prefix:name for systemd cgroups",
            ));
        };
        if name.is_empty() {
            return Err(bad(&text, "the name (slice:prefix:name) is empty"));
        }
        if name.ends_with(".slice") {
            return Err(bad(
                &text,
                "names a slice: a container's unit is a scope, which holds its processes",
            ));
        }
        let slice = if slice.is_empty() {
            DEFAULT_SLICE
        } else {
            slice
        };
        let name = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        if !unit_name_ok(&name) {
            return Err(bad(
                &text,
                "the scope's name may hold only letters, digits and - _ . @ \\",
            ));
        }
        let parents = expand_slice(slice).map_err(|msg| bad(&text, msg))?;
        Ok(Unit {
            slice: slice.to_string(),
            rel: parents.join(&name),
            name,
        })
    }
}

/// A slice's cgroup path, as systemd nests slices: `a-b.slice` is
/// `a.slice/a-b.slice`; `-.slice` is the root.
pub fn expand_slice(slice: &str) -> Result<PathBuf, &'static str> {
    let Some(base) = slice.strip_suffix(".slice") else {
        return Err("the slice must end in .slice");
    };
    if !unit_name_ok(slice) {
        return Err("the slice's name may hold only letters, digits and - _ . @ \\");
    }
    if base == "-" {
        return Ok(PathBuf::new());
    }
    let mut path = PathBuf::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        if part.is_empty() {
            return Err("the slice's name has an empty part (a leading, trailing or double -)");
        }
        path.push(format!("{prefix}{part}.slice"));
        prefix.push_str(part);
        prefix.push('-');
    }
    Ok(path)
}

/// A unit property's value, as systemd's D-Bus API types it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    U64(u64),
    /// A CPU or memory node bitmask (`ay`: bit n of byte n/8 is cpu n).
    Mask(Vec<u8>),
    Str(&'static str),
    /// DeviceAllow's `a(ss)`: a device specifier and its access.
    Devices(Vec<(String, String)>),
}

/// The device policy for systemd, from the container's rules (as runc
/// gives it): `DevicePolicy=strict` and an allow list. Without it systemd
/// writes `devices.allow a` to a v1 scope whenever it applies the unit
/// again (a daemon-reload), opening every device. A policy that allows all
/// but some devices cannot be told to systemd (it has no deny list): its
/// default stays, and husk's rules and program hold. Deny exceptions are
/// left out of the list (systemd may then allow more on a reload than
/// husk's own rules, which still apply on v2 and hybrid hosts).
/// `proc_devices` is /proc/devices, for a major with any minor.
pub fn device_props(
    default: bool,
    exceptions: &[super::devices::Rule],
    proc_devices: &str,
) -> Vec<(&'static str, Prop)> {
    use super::devices::{BLOCK, CHAR};
    if default {
        return Vec::new();
    }
    let mut allow = Vec::new();
    for r in exceptions.iter().filter(|r| r.allow) {
        let access: String = [(2, 'r'), (4, 'w'), (1, 'm')]
            .iter()
            .filter(|(bit, _)| r.access & bit != 0)
            .map(|(_, c)| *c)
            .collect();
        let kinds: &[&str] = match r.kind {
            Some(CHAR) => &["char"],
            Some(BLOCK) => &["block"],
            _ => &["char", "block"],
        };
        for kind in kinds {
            let spec = match (r.major, r.minor) {
                (None, _) => format!("{kind}-*"),
                (Some(major), None) => match device_group(proc_devices, kind, major) {
                    Some(g) => format!("{kind}-{g}"),
                    None => continue,
                },
                (Some(major), Some(minor)) => format!("/dev/{kind}/{major}:{minor}"),
            };
            allow.push((spec, access.clone()));
        }
    }
    vec![
        ("DevicePolicy", Prop::Str("strict")),
        ("DeviceAllow", Prop::Devices(allow)),
    ]
}

/// The name /proc/devices gives a major number (`pts` for char 136).
fn device_group(proc_devices: &str, kind: &str, major: u32) -> Option<String> {
    let header = if kind == "char" {
        "Character devices:"
    } else {
        "Block devices:"
    };
    proc_devices
        .lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            let (n, name) = l.trim().split_once(' ')?;
            (n.parse() == Ok(major)).then(|| name.trim().to_string())
        })
}

fn limit(v: &str) -> Option<u64> {
    match v.trim() {
        "max" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// A v1 limit: -1 (or anything negative) is none.
fn v1_limit(v: &str) -> Option<u64> {
    let n: i64 = v.trim().parse().ok()?;
    Some(u64::try_from(n).unwrap_or(u64::MAX))
}

/// systemd keeps a cpu quota as a percentage of a second: rounded up to
/// 10 ms (1%), so the cgroup gets at least the quota asked for (as runc).
fn quota_per_sec(quota: u64, period: Option<u64>) -> u64 {
    let per_sec = quota.saturating_mul(1_000_000) / period.unwrap_or(100_000).max(1);
    per_sec.div_ceil(10_000).saturating_mul(10_000)
}

/// `0-3,6` as systemd's bitmask.
fn mask(list: &str) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>().ok()?, b.trim().parse().ok()?),
            None => {
                let n = part.trim().parse().ok()?;
                (n, n)
            }
        };
        if a > b || b >= 8192 {
            return None;
        }
        for n in a..=b {
            if out.len() <= n / 8 {
                out.resize(n / 8 + 1, 0);
            }
            out[n / 8] |= 1 << (n % 8);
        }
    }
    Some(out)
}

/// The systemd properties for the cgroup writes (v2, or v1 on a hybrid or
/// legacy host) it has properties for (the set runc gives it): told to
/// systemd, they stay when systemd applies its unit's settings again (a
/// daemon-reload), where a value written only to the file would be undone
/// (on v1, a memory limit reset to none). The files are written as well.
pub fn resource_props(writes: &[Write]) -> Vec<(&'static str, Prop)> {
    let mut out = Vec::new();
    // v1 keeps quota and period in two files.
    let v1_period = writes
        .iter()
        .find(|w| w.file == "cpu.cfs_period_us")
        .and_then(|w| w.value.trim().parse::<u64>().ok())
        .filter(|p| *p > 0);
    for w in writes {
        let v = w.value.as_str();
        let prop = match w.file.as_str() {
            "memory.max" => limit(v).map(|n| ("MemoryMax", Prop::U64(n))),
            "memory.low" => limit(v).map(|n| ("MemoryLow", Prop::U64(n))),
            "memory.high" => limit(v).map(|n| ("MemoryHigh", Prop::U64(n))),
            "memory.swap.max" => limit(v).map(|n| ("MemorySwapMax", Prop::U64(n))),
            "pids.max" => limit(v).map(|n| ("TasksMax", Prop::U64(n))),
            "cpu.weight" => v.trim().parse().ok().map(|n| ("CPUWeight", Prop::U64(n))),
            "cpuset.cpus" => mask(v).map(|m| ("AllowedCPUs", Prop::Mask(m))),
            "cpuset.mems" => mask(v).map(|m| ("AllowedMemoryNodes", Prop::Mask(m))),
            // cgroup v1 (systemd's legacy names where they differ).
            "memory.limit_in_bytes" => v1_limit(v).map(|n| ("MemoryLimit", Prop::U64(n))),
            "cpu.shares" => v.trim().parse().ok().map(|n| ("CPUShares", Prop::U64(n))),
            "blkio.weight" => v
                .trim()
                .parse()
                .ok()
                .map(|n| ("BlockIOWeight", Prop::U64(n))),
            "cpu.cfs_period_us" => v1_period.map(|p| ("CPUQuotaPeriodUSec", Prop::U64(p))),
            "cpu.cfs_quota_us" => v.trim().parse::<i64>().ok().map(|q| match q {
                q if q < 0 => ("CPUQuotaPerSecUSec", Prop::U64(u64::MAX)),
                q => (
                    "CPUQuotaPerSecUSec",
                    Prop::U64(quota_per_sec(q as u64, v1_period)),
                ),
            }),
            "cpu.max" => {
                let mut it = v.split_whitespace();
                let quota = it.next();
                let period = it.next().and_then(|p| p.parse::<u64>().ok());
                if let Some(period) = period.filter(|p| *p > 0) {
                    out.push(("CPUQuotaPeriodUSec", Prop::U64(period)));
                }
                match quota {
                    Some("max") => Some(("CPUQuotaPerSecUSec", Prop::U64(u64::MAX))),
                    Some(q) => q
                        .parse::<u64>()
                        .ok()
                        .map(|q| ("CPUQuotaPerSecUSec", Prop::U64(quota_per_sec(q, period)))),
                    None => None,
                }
            }
            _ => None,
        };
        out.extend(prop);
    }
    out
}

/// The D-Bus side, through zbus, on the system bus (as runc: systemd's
/// private socket sends messages whose sender is not a unique name, which
/// zbus refuses).
mod bus {
    use zbus::blocking::{Connection, Proxy};
    use zbus::zvariant::{OwnedObjectPath, Value};

    use super::Prop;

    const DEST: &str = "org.freedesktop.systemd1";
    const PATH: &str = "/org/freedesktop/systemd1";
    const MANAGER: &str = "org.freedesktop.systemd1.Manager";
    const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

    fn connect() -> zbus::Result<Connection> {
        let c = Connection::system()?;
        // systemd sends job signals on the bus only to subscribers.
        let _ = c.call_method(Some(DEST), PATH, Some(MANAGER), "Subscribe", &());
        Ok(c)
    }

    fn value(p: &Prop) -> Value<'static> {
        match p {
            Prop::U64(n) => Value::from(*n),
            Prop::Mask(m) => Value::from(m.clone()),
            Prop::Str(s) => Value::from(*s),
            Prop::Devices(d) => Value::from(d.clone()),
        }
    }

    /// Starts `unit` as a transient scope holding `pid`, and waits for the
    /// job's end.
    pub fn start(
        unit: &super::Unit,
        description: &str,
        pid: u32,
        resources: &[(&'static str, Prop)],
    ) -> Result<(), String> {
        let conn = connect().map_err(|e| format!("connect to systemd: {e}"))?;
        let proxy = Proxy::new(&conn, DEST, PATH, MANAGER).map_err(|e| e.to_string())?;
        let jobs = proxy
            .receive_signal("JobRemoved")
            .map_err(|e| format!("subscribe to JobRemoved: {e}"))?;
        let mut props: Vec<(&str, Value<'_>)> = vec![
            ("Description", Value::from(description)),
            ("Slice", Value::from(unit.slice.as_str())),
            ("Delegate", Value::from(true)),
            ("PIDs", Value::from(vec![pid])),
            ("MemoryAccounting", Value::from(true)),
            ("CPUAccounting", Value::from(true)),
            ("IOAccounting", Value::from(true)),
            ("TasksAccounting", Value::from(true)),
            ("DefaultDependencies", Value::from(false)),
        ];
        props.extend(resources.iter().map(|(k, p)| (*k, value(p))));
        let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
        let reply = proxy
            .call_method(
                "StartTransientUnit",
                &(unit.name.as_str(), "replace", props, aux),
            )
            .map_err(|e| format!("StartTransientUnit: {e}"))?;
        let job: OwnedObjectPath = reply
            .body()
            .deserialize()
            .map_err(|e| format!("StartTransientUnit's reply: {e}"))?;
        for msg in jobs {
            let Ok((_, path, _, result)) = msg
                .body()
                .deserialize::<(u32, OwnedObjectPath, String, String)>()
            else {
                continue;
            };
            if path == job {
                return match result.as_str() {
                    "done" => Ok(()),
                    r => Err(format!("systemd ended the start job with {r:?}")),
                };
            }
        }
        Err("the connection to systemd closed before the start job ended".into())
    }

    /// Sets properties of a running unit (for the runtime only, as runc).
    pub fn set(name: &str, resources: &[(&'static str, Prop)]) -> Result<(), String> {
        let conn = connect().map_err(|e| format!("connect to systemd: {e}"))?;
        let props: Vec<(&str, Value<'_>)> = resources.iter().map(|(k, p)| (*k, value(p))).collect();
        conn.call_method(
            Some(DEST),
            PATH,
            Some(MANAGER),
            "SetUnitProperties",
            &(name, true, props),
        )
        .map(|_| ())
        .map_err(|e| format!("SetUnitProperties: {e}"))
    }

    /// Asks systemd to stop the unit (a unit already gone is fine) and to
    /// forget it if it failed. Returns whether a stop job was queued.
    pub fn stop(name: &str) -> Result<bool, String> {
        let conn = connect().map_err(|e| format!("connect to systemd: {e}"))?;
        let queued = match conn.call_method(
            Some(DEST),
            PATH,
            Some(MANAGER),
            "StopUnit",
            &(name, "replace"),
        ) {
            Ok(_) => true,
            Err(zbus::Error::MethodError(n, _, _)) if n.as_str() == NO_SUCH_UNIT => false,
            Err(e) => return Err(format!("StopUnit: {e}")),
        };
        let _ = conn.call_method(Some(DEST), PATH, Some(MANAGER), "ResetFailedUnit", &(name,));
        Ok(queued)
    }
}

/// The placeholder that holds the scope until the init is in it: ended
/// (SIGKILL) and reaped when dropped. It dies with `create` too
/// (PR_SET_PDEATHSIG), and the scope, empty then, goes with it.
pub struct Placeholder {
    pid: Pid,
}

impl Drop for Placeholder {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.pid, None);
    }
}

fn sd_err(unit: &str, op: &'static str, msg: String) -> CgroupError {
    CgroupError::Systemd {
        unit: unit.to_string(),
        op,
        msg,
    }
}

/// Starts the container's scope with a placeholder process in it, and
/// returns once systemd has made it (its cgroup is then `unit.rel`).
pub fn start(
    unit: &Unit,
    id: &str,
    resources: &[(&'static str, Prop)],
) -> Result<Placeholder, CgroupError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| sd_err(&unit.name, "pipe", e.to_string()))?;
    let parent = getpid();
    // SAFETY: create is a single thread here (zbus runs only in the child,
    // which ends by SIGKILL, never returning into create's code).
    match unsafe { fork() }.map_err(|e| sd_err(&unit.name, "fork", e.to_string()))? {
        ForkResult::Child => {
            drop(r);
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            if getppid() != parent {
                // SAFETY: _exit ends the process without running any of
                // create's destructors or exit handlers.
                unsafe { libc::_exit(1) };
            }
            let me = getpid().as_raw() as u32;
            let msg = match bus::start(unit, &format!("husk container {id}"), me, resources) {
                Ok(()) => "ok".to_string(),
                Err(e) => e,
            };
            let _ = nix::unistd::write(&w, msg.as_bytes());
            drop(w);
            loop {
                // Waits for create's SIGKILL (or its death's).
                nix::unistd::pause();
            }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let holder = Placeholder { pid: child };
            let msg = read_answer(r, JOB_TIMEOUT)
                .map_err(|e| sd_err(&unit.name, "start the transient scope", e))?;
            if msg != "ok" {
                return Err(sd_err(&unit.name, "start the transient scope", msg));
            }
            Ok(holder)
        }
    }
}

/// The placeholder's one message, waited for at most `timeout`.
fn read_answer(r: OwnedFd, timeout: Duration) -> Result<String, String> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "systemd did not answer within {} s",
                timeout.as_secs()
            ));
        }
        let ms =
            PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => break,
            Err(e) => return Err(format!("poll: {e}")),
        }
    }
    let mut buf = String::new();
    std::fs::File::from(r)
        .take(64 * 1024)
        .read_to_string(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.is_empty() {
        return Err("the placeholder process died before it said how the start went".into());
    }
    Ok(buf)
}

/// Gives a running unit new resource properties.
pub fn set(name: &str, resources: &[(&'static str, Prop)]) -> Result<(), CgroupError> {
    if resources.is_empty() {
        return Ok(());
    }
    bus::set(name, resources).map_err(|e| sd_err(name, "set unit properties", e))
}

/// Stops the unit and waits (at most 30 s) until its cgroup, `cgroup` when
/// known, is gone; a unit that is gone already is fine.
pub fn stop(name: &str, cgroup: Option<&Path>) -> Result<(), CgroupError> {
    let queued = bus::stop(name).map_err(|e| sd_err(name, "stop the unit", e))?;
    if let (true, Some(cg)) = (queued, cgroup) {
        let deadline = Instant::now() + JOB_TIMEOUT;
        while cg.exists() {
            if Instant::now() > deadline {
                return Err(CgroupError::Timeout {
                    path: cg.to_path_buf(),
                    what: "systemd to stop the unit and remove its cgroup",
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(p: Option<&str>) -> Result<Unit, CgroupError> {
        Unit::for_container(p.map(Path::new), "c1")
    }

    #[test]
    fn units_as_runc_names_them() {
        let u = unit(Some("kubepods-besteffort-pod12.slice:cri-containerd:abc")).unwrap();
        assert_eq!(u.name, "cri-containerd-abc.scope");
        assert_eq!(u.slice, "kubepods-besteffort-pod12.slice");
        assert_eq!(
            u.rel,
            Path::new(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope"
            )
        );
        let u = unit(None).unwrap();
        assert_eq!(
            (u.slice.as_str(), u.name.as_str()),
            ("system.slice", "husk-c1.scope")
        );
        assert_eq!(u.rel, Path::new("system.slice/husk-c1.scope"));
        let u = unit(Some(":docker:c1")).unwrap();
        assert_eq!(u.rel, Path::new("system.slice/docker-c1.scope"));
        let u = unit(Some("-.slice::c1")).unwrap();
        assert_eq!(u.rel, Path::new("c1.scope"));
    }

    #[test]
    fn bad_paths_are_refused_with_the_reason() {
        for (p, why) in [
            ("/sys/fs/cgroup/x", "slice:prefix:name"),
            ("a.slice:b", "slice:prefix:name"),
            ("a.slice:b:", "is empty"),
            ("a.slice:b:c.slice", "scope"),
            ("a.slice:b:../../x", "letters"),
            ("a.slice:b/c:x", "letters"),
            ("a/b.slice:p:x", "letters"),
            ("nota-slice:p:x", ".slice"),
            ("a--b.slice:p:x", "empty part"),
            ("-a.slice:p:x", "empty part"),
        ] {
            let e = unit(Some(p)).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains("linux.cgroupsPath"),
                "{p}: {e}"
            );
        }
    }

    fn w(file: &str, value: &str) -> Write {
        Write {
            field: String::new(),
            controller: None,
            file: file.into(),
            value: value.into(),
            is_default: false,
        }
    }

    #[test]
    fn properties_from_the_cgroup_writes() {
        let props = resource_props(&[
            w("memory.max", "104857600"),
            w("memory.swap.max", "max"),
            w("pids.max", "64"),
            w("cpu.weight", "39"),
            w("cpu.max", "25000 100000"),
            w("cpuset.cpus", "0-2,9"),
            w("io.weight", "default 100"),
        ]);
        assert_eq!(
            props,
            vec![
                ("MemoryMax", Prop::U64(104_857_600)),
                ("MemorySwapMax", Prop::U64(u64::MAX)),
                ("TasksMax", Prop::U64(64)),
                ("CPUWeight", Prop::U64(39)),
                ("CPUQuotaPeriodUSec", Prop::U64(100_000)),
                ("CPUQuotaPerSecUSec", Prop::U64(250_000)),
                ("AllowedCPUs", Prop::Mask(vec![0b0000_0111, 0b0000_0010])),
            ]
        );
        // A fraction of a percent is rounded up, an unlimited quota is max.
        assert_eq!(
            resource_props(&[w("cpu.max", "1234 100000")])[1],
            ("CPUQuotaPerSecUSec", Prop::U64(20_000))
        );
        assert_eq!(
            resource_props(&[w("cpu.max", "max 50000")]),
            vec![
                ("CPUQuotaPeriodUSec", Prop::U64(50_000)),
                ("CPUQuotaPerSecUSec", Prop::U64(u64::MAX))
            ]
        );
        // v1 files, as systemd's legacy properties.
        assert_eq!(
            resource_props(&[
                w("memory.limit_in_bytes", "-1"),
                w("cpu.shares", "2"),
                w("cpu.cfs_period_us", "50000"),
                w("cpu.cfs_quota_us", "25000"),
                w("pids.max", "max"),
            ]),
            vec![
                ("MemoryLimit", Prop::U64(u64::MAX)),
                ("CPUShares", Prop::U64(2)),
                ("CPUQuotaPeriodUSec", Prop::U64(50_000)),
                ("CPUQuotaPerSecUSec", Prop::U64(500_000)),
                ("TasksMax", Prop::U64(u64::MAX)),
            ]
        );
        assert_eq!(mask("8"), Some(vec![0, 1]));
    }

    #[test]
    fn device_rules_as_systemd_policy() {
        use crate::cgroups::devices::{Rule, default_allowed, effective};
        let proc_devices = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  7 loop\n";
        let mut rules = vec![Rule {
            allow: true,
            kind: Some(1),
            major: Some(7),
            minor: None,
            access: 2,
        }];
        rules.extend(default_allowed(&[]));
        let (default, exceptions) = effective(&rules);
        let props = device_props(default, &exceptions, proc_devices);
        assert_eq!(props[0], ("DevicePolicy", Prop::Str("strict")));
        let Prop::Devices(allow) = &props[1].1 else {
            panic!("{props:?}")
        };
        let has = |spec: &str, access: &str| allow.contains(&(spec.into(), access.into()));
        assert!(has("block-loop", "r"), "{allow:?}");
        assert!(has("/dev/char/1:3", "rwm"), "{allow:?}");
        assert!(has("char-pts", "rwm"), "{allow:?}");
        assert!(has("char-*", "m") && has("block-*", "m"), "{allow:?}");
        // Allow-all cannot be told to systemd: nothing is.
        assert!(device_props(true, &exceptions, proc_devices).is_empty());
        assert_eq!(mask("3-1"), None);
    }
}
