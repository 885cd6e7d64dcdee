//! cgroup v1 hierarchies, on v1 and hybrid hosts: the container is placed
//! in every mounted v1 hierarchy at its cgroups path (as runc places it),
//! limits are written there, and delete removes the directories. On a
//! hybrid host the unified hierarchy keeps holding the container too (for
//! membership, freezing and the device program): the v1 ones are where the
//! resource controllers are.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::CgroupError;
use super::resources::Write;

/// One mounted v1 hierarchy: where, and the controllers it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount: PathBuf,
    pub controllers: Vec<String>,
}

/// The v1 hierarchies this process sees (`cgroup` mounts in mountinfo),
/// each with the controllers of its super options (`name=systemd` too).
pub fn hierarchies() -> Vec<Hierarchy> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mountinfo(&info)
}

fn parse_mountinfo(info: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        if post.next() != Some("cgroup") {
            continue;
        }
        let Some(mount) = pre.split(' ').nth(4) else {
            continue;
        };
        let supers = post.nth(1).unwrap_or("");
        let controllers: Vec<String> = supers
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
            .filter(|o| !["noprefix", "clone_children", "xattr", "cpuset_v2_mode"].contains(o))
            .map(str::to_string)
            .collect();
        if controllers.is_empty() || out.iter().any(|h| h.controllers == controllers) {
            continue;
        }
        out.push(Hierarchy {
            mount: PathBuf::from(mount.replace("\\040", " ")),
            controllers,
        });
    }
    out
}

/// The container's directory in each hierarchy, and the topmost one
/// `create` made there (removed again on delete, as far as empty).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Placed {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_from: Option<PathBuf>,
    /// Whether create made the directory itself.
    #[serde(default)]
    pub created: bool,
    /// The controllers of its hierarchy.
    #[serde(default)]
    pub controllers: Vec<String>,
}

fn io(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { path, op, source }
}

/// The container's directory in every hierarchy, and what `make` will make
/// there, from what exists now, without making anything (create records it
/// first).
pub fn intent(hs: &[Hierarchy], rel: &Path) -> Vec<Placed> {
    hs.iter()
        .map(|h| {
            let path = h.mount.join(rel);
            let mut top = None;
            let mut p = path.as_path();
            while !p.exists() {
                top = Some(p);
                match p.parent() {
                    Some(parent) if parent.starts_with(&h.mount) => p = parent,
                    _ => break,
                }
            }
            Placed {
                made_from: top.filter(|t| *t != path).map(Path::to_path_buf),
                created: top.is_some(),
                path,
                controllers: h.controllers.clone(),
            }
        })
        .collect()
}

/// Makes the directories, a cpuset's with the cpus and mems of its parents
/// (a new v1 cpuset has none, and takes no process until it has some).
pub fn make(placed: &[Placed]) -> Result<(), CgroupError> {
    for p in placed {
        let cpuset = p.controllers.iter().any(|c| c == "cpuset");
        if !p.created {
            if cpuset {
                inherit_cpuset(&p.path)?;
            }
            continue;
        }
        // What is missing is read again here, not taken from the intent: a
        // parent that was there then (husk's shared default parent) may
        // have been removed since by another container's delete, and is
        // made again (a few times, should that race repeat).
        let mut tries = 0;
        while !make_missing(&p.path, cpuset, tries == 5)? {
            tries += 1;
        }
    }
    Ok(())
}

/// Makes `path` and its missing parents, top first, each cpuset filled
/// from its parent. False when a parent went away meanwhile (an error
/// instead when `last`).
fn make_missing(path: &Path, cpuset: bool, last: bool) -> Result<bool, CgroupError> {
    // The usual case, a parent that is there, in one mkdir; the missing
    // parents are looked for only when it is not.
    let missing: Vec<&Path> = match fs::create_dir(path) {
        Ok(()) => vec![],
        Err(e) if e.kind() == ErrorKind::AlreadyExists => vec![],
        Err(e) if e.kind() == ErrorKind::NotFound => {
            path.ancestors().take_while(|a| !a.exists()).collect()
        }
        Err(e) => return Err(io(path, "mkdir")(e)),
    };
    if missing.is_empty() && cpuset {
        inherit_cpuset(path)?;
    }
    for dir in missing.iter().rev() {
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == ErrorKind::NotFound && !last => return Ok(false),
            Err(e) => return Err(io(dir, "mkdir")(e)),
        }
        if cpuset {
            inherit_cpuset(dir)?;
        }
    }
    Ok(true)
}

fn inherit_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mine = dir.join(f);
        if fs::read_to_string(&mine)
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            let theirs = fs::read_to_string(parent.join(f)).unwrap_or_default();
            fs::write(&mine, theirs.trim()).map_err(io(&mine, "write"))?;
        }
    }
    Ok(())
}

/// The container's directory in the hierarchy holding `controller`.
pub fn dir_for<'a>(placed: &'a [Placed], controller: &str) -> Option<&'a Path> {
    placed
        .iter()
        .find(|p| p.controllers.iter().any(|c| c == controller))
        .map(|p| p.path.as_path())
}

/// Whether the container's v1 devices list allows everything (`a *:*
/// rwm`, what a new cgroup under an unrestricted parent has), or there is
/// no devices hierarchy.
pub fn devices_open(placed: &[Placed]) -> bool {
    dir_for(placed, "devices").is_none_or(|d| {
        fs::read_to_string(d.join("devices.list")).is_ok_and(|l| l.trim() == "a *:* rwm")
    })
}

/// Freezes (or thaws) the container through the freezer hierarchy, as
/// `pause` does where there is no unified one, and waits until the kernel
/// reports it done. A cgroup that is still FREEZING (a process forked
/// meanwhile) is asked again, as runc asks.
pub fn freeze(placed: &[Placed], frozen: bool) -> Result<(), CgroupError> {
    let dir = dir_for(placed, "freezer").ok_or_else(|| CgroupError::NoController {
        field: "pause".into(),
        controller: "freezer".into(),
        mount: PathBuf::from("/sys/fs/cgroup"),
    })?;
    let f = dir.join("freezer.state");
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        fs::write(&f, want).map_err(io(&f, "write"))?;
        for _ in 0..10 {
            if fs::read_to_string(&f).map_err(io(&f, "read"))?.trim() == want {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if std::time::Instant::now() > deadline {
            return Err(CgroupError::Timeout {
                path: dir.to_path_buf(),
                what: if frozen { "frozen" } else { "thawed" },
            });
        }
    }
}

/// Whether the freezer hierarchy says the container is frozen.
pub fn is_frozen(placed: &[Placed]) -> bool {
    dir_for(placed, "freezer")
        .and_then(|d| fs::read_to_string(d.join("freezer.state")).ok())
        .is_some_and(|s| s.trim() == "FROZEN")
}

/// Writes each setting into the directory of the hierarchy holding its
/// controller; a controller no hierarchy holds is an error naming the field.
/// memory+swap may not be set below the memory limit in force: a write the
/// kernel refuses for that is made again once the limit is written.
pub fn apply(placed: &[Placed], writes: &[Write]) -> Result<(), CgroupError> {
    let mut again = Vec::new();
    for w in writes {
        match write_one(placed, w) {
            Err(CgroupError::Apply { source, .. })
                if w.file == "memory.memsw.limit_in_bytes"
                    && source.raw_os_error() == Some(libc::EINVAL) =>
            {
                again.push(w)
            }
            r => r?,
        }
    }
    for w in again {
        write_one(placed, w)?;
    }
    Ok(())
}

fn write_one(placed: &[Placed], w: &Write) -> Result<(), CgroupError> {
    let c = w.controller.unwrap_or("");
    let Some(dir) = dir_for(placed, c) else {
        return Err(CgroupError::NoController {
            field: w.field.clone(),
            controller: c.to_string(),
            mount: PathBuf::from("/sys/fs/cgroup"),
        });
    };
    let file = dir.join(&w.file);
    fs::write(&file, &w.value).map_err(|source| CgroupError::Apply {
        field: w.field.clone(),
        file: w.file.clone(),
        value: w.value.clone(),
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes the device policy into the devices hierarchy (`devices.deny a`
/// first, then each exception), when the host has one.
pub fn apply_devices(
    placed: &[Placed],
    lines: &[(&'static str, String)],
) -> Result<(), CgroupError> {
    let Some(dir) = dir_for(placed, "devices") else {
        return Ok(());
    };
    for (file, line) in lines {
        let f = dir.join(file);
        fs::write(&f, line).map_err(|source| CgroupError::Apply {
            field: "linux.resources.devices".into(),
            file: file.to_string(),
            value: line.clone(),
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Moves a process into every one of the container's directories.
pub fn add(placed: &[Placed], pid: i32) -> Result<(), CgroupError> {
    for p in placed {
        let f = p.path.join("cgroup.procs");
        fs::write(&f, pid.to_string()).map_err(io(&f, "write"))?;
    }
    Ok(())
}

/// Removes the directories create made (leaf first, then the parents it
/// made, as far as empty). The processes are gone by then: the unified
/// hierarchy's removal waited for them.
pub fn remove(placed: &[Placed]) {
    for p in placed {
        if !p.created {
            continue;
        }
        for i in 0..1000 {
            match fs::remove_dir(&p.path) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                Err(_) => {
                    // Still in use: by a process of the container (with the
                    // host's pid namespace, or left by a killed create), as
                    // the unified hierarchy's remove does. Directories husk
                    // did not make are never here.
                    if i == 0 {
                        for pid in super::pids(&p.path) {
                            // SAFETY: kill(2) takes plain integers.
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2))
                }
            }
        }
        if let Some(top) = &p.made_from {
            super::remove_made_parents(&p.path, top);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_names_what_make_makes_and_nothing_else() {
        let tmp = std::env::temp_dir().join(format!("husk-v1-intent-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let h = |name: &str| Hierarchy {
            mount: tmp.join(name),
            controllers: vec![],
        };
        let hs = [h("a"), h("b"), h("c")];
        for x in &hs {
            fs::create_dir_all(&x.mount).unwrap();
        }
        // a: nothing there; b: the parent there; c: the cgroup itself.
        fs::create_dir_all(tmp.join("b/top")).unwrap();
        fs::create_dir_all(tmp.join("c/top/mid/leaf")).unwrap();
        let placed = intent(&hs, Path::new("top/mid/leaf"));
        // Nothing is made by asking.
        assert!(!tmp.join("a/top").exists());
        assert_eq!(
            placed[0].made_from.as_deref(),
            Some(tmp.join("a/top").as_path())
        );
        assert!(placed[0].created);
        assert_eq!(
            placed[1].made_from.as_deref(),
            Some(tmp.join("b/top/mid").as_path())
        );
        assert!(!placed[2].created && placed[2].made_from.is_none());
        make(&placed).unwrap();
        for x in ["a", "b", "c"] {
            assert!(tmp.join(x).join("top/mid/leaf").is_dir());
        }
        // Taking back removes what was made, and only that.
        remove(&placed);
        assert!(!tmp.join("a/top").exists());
        assert!(tmp.join("b/top").is_dir() && !tmp.join("b/top/mid").exists());
        assert!(tmp.join("c/top/mid/leaf").is_dir());
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn hierarchies_from_a_hybrid_hosts_mountinfo() {
        let info = "\
25 24 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory
32 25 0:30 / /sys/fs/cgroup/cpuset rw,nosuid shared:16 - cgroup cgroup rw,cpuset,clone_children
40 30 0:28 / /run/other/cpu rw - cgroup cgroup rw,cpu,cpuacct
";
        let hs = parse_mountinfo(info);
        let names: Vec<(String, Vec<String>)> = hs
            .iter()
            .map(|h| (h.mount.display().to_string(), h.controllers.clone()))
            .collect();
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names,
            vec![
                ("/sys/fs/cgroup/systemd".into(), v(&["name=systemd"])),
                ("/sys/fs/cgroup/cpu,cpuacct".into(), v(&["cpu", "cpuacct"])),
                ("/sys/fs/cgroup/memory".into(), v(&["memory"])),
                ("/sys/fs/cgroup/cpuset".into(), v(&["cpuset"])),
            ]
        );
    }
}
