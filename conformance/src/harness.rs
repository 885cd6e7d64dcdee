//! Driving a runtime through its CLI as engines do, with bundles made for each
//! case over a shared busybox + checker rootfs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A case's outcome: Err carries why it failed.
pub type Check = Result<(), String>;

/// Fails with a message unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}
pub(crate) use ensure;

/// The environment every case runs in.
pub struct Ctx {
    /// The runtime binary (or wrapper script) under test.
    pub runtime: PathBuf,
    /// Scratch directory of this run.
    pub work: PathBuf,
    pub rootfs: PathBuf,
    seq: std::cell::Cell<u32>,
}

impl Ctx {
    pub fn new(runtime: PathBuf, work: PathBuf, checker: &Path) -> Result<Ctx, String> {
        let rootfs = work.join("rootfs");
        build_rootfs(&rootfs, checker)?;
        Ok(Ctx {
            runtime,
            work,
            rootfs,
            seq: std::cell::Cell::new(0),
        })
    }

    /// A fresh bundle directory and state root for one case.
    pub fn bundle(&self, args: &[&str]) -> Bundle {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        let dir = self.work.join(format!("case-{n}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("bundle")).expect("bundle dir");
        Bundle {
            dir: dir.join("bundle"),
            root: dir.join("state"),
            runtime: self.runtime.clone(),
            config: base_config(&self.rootfs, args),
            id: format!("conf-{}-{n}", std::process::id()),
        }
    }
}

fn build_rootfs(dir: &Path, checker: &Path) -> Result<(), String> {
    let _ = fs::remove_dir_all(dir);
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "data"] {
        fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
    }
    fs::copy("/bin/busybox", dir.join("bin/busybox")).map_err(|e| format!("/bin/busybox: {e}"))?;
    let out = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .map_err(|e| e.to_string())?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
    }
    fs::copy(checker, dir.join("bin/oci-check"))
        .map_err(|e| format!("{}: {e}", checker.display()))?;
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n",
    )
    .map_err(|e| e.to_string())?;
    fs::write(dir.join("etc/group"), "root:x:0:\nuser:x:1000:\n").map_err(|e| e.to_string())?;
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777))
        .map_err(|e| e.to_string())
}

/// The base config: what `runc spec` writes, minus the terminal, plus a tmpfs
/// on /tmp, over the shared read-only rootfs.
fn base_config(rootfs: &Path, args: &[&str]) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": rootfs, "readonly": true},
        "hostname": "conformance",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// One case's bundle, state root and container id. Dropping it deletes the
/// container and the files.
pub struct Bundle {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub runtime: PathBuf,
    pub config: Value,
    pub id: String,
}

impl Bundle {
    pub fn write(&self) {
        let _ = fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap_or_default(),
        );
    }

    pub fn out_path(&self) -> PathBuf {
        self.dir.join("container.out")
    }

    /// `RUNTIME --root R ARGS…`, with the container's stdio (for create/run)
    /// going to a file so no pipe is held open by the container.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let out_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.out_path())
            .expect("output file");
        let err_path = self.dir.join("runtime.err");
        let err_file = fs::File::create(&err_path).expect("stderr file");
        let status = Command::new(&self.runtime)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(if matches!(args.first(), Some(&"state") | Some(&"list")) {
                Stdio::piped()
            } else {
                Stdio::from(out_file)
            })
            .stderr(Stdio::from(err_file))
            .spawn()
            .and_then(|c| c.wait_with_output());
        let mut o = status.unwrap_or_else(|e| Output {
            status: std::os::unix::process::ExitStatusExt::from_raw(127 << 8),
            stdout: vec![],
            stderr: e.to_string().into_bytes(),
        });
        o.stderr = fs::read(&err_path).unwrap_or_default();
        o
    }

    pub fn create(&self) -> Check {
        self.write();
        let o = self.cmd(&[
            "create",
            "--bundle",
            self.dir.to_str().unwrap_or("."),
            &self.id,
        ]);
        ensure!(
            o.status.success(),
            "create failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
        Ok(())
    }

    pub fn start(&self) -> Check {
        let o = self.cmd(&["start", &self.id]);
        ensure!(
            o.status.success(),
            "start failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
        Ok(())
    }

    pub fn state(&self) -> Result<Value, String> {
        let o = self.cmd(&["state", &self.id]);
        ensure!(
            o.status.success(),
            "state failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
        serde_json::from_slice(&o.stdout).map_err(|e| format!("state is not JSON: {e}"))
    }

    pub fn status(&self) -> Result<String, String> {
        Ok(self.state()?["status"].as_str().unwrap_or("").to_string())
    }

    pub fn wait_status(&self, want: &str, timeout: Duration) -> Check {
        let end = Instant::now() + timeout;
        loop {
            let s = self.status()?;
            if s == want {
                return Ok(());
            }
            ensure!(
                Instant::now() < end,
                "status stayed {s:?}, expected {want:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the container printed so far.
    pub fn output(&self) -> String {
        fs::read_to_string(self.out_path()).unwrap_or_default()
    }

    /// Waits until the container printed a line of JSON; returns the last one.
    pub fn wait_json(&self, timeout: Duration) -> Result<Value, String> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(v) = self
                .output()
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str::<Value>(l).ok())
            {
                return Ok(v);
            }
            ensure!(
                Instant::now() < end,
                "no JSON output; got {:?}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// create, start, wait until stopped; returns the checker's JSON output.
    pub fn run_checker(&self) -> Result<Value, String> {
        self.create()?;
        self.start()?;
        self.wait_status("stopped", Duration::from_secs(10))?;
        let v = self.wait_json(Duration::from_secs(2))?;
        self.delete()?;
        Ok(v)
    }

    pub fn delete(&self) -> Check {
        let o = self.cmd(&["delete", &self.id]);
        reap();
        ensure!(
            o.status.success(),
            "delete failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
        Ok(())
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = self.cmd(&["delete", "--force", &self.id]);
        reap();
        if let Some(p) = self.dir.parent() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// The runner is a child subreaper and single-threaded: every container init
/// reparented to it is reaped here.
pub fn reap() {
    loop {
        // SAFETY: waitpid with a null status pointer.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if r <= 0 {
            return;
        }
    }
}

/// The host-side cgroup files of a process, v2 or v1, for a resource file.
pub fn cgroup_file(pid: i64, v2_name: &str, v1: (&str, &str)) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        if ctrls.split(',').any(|c| c == v1.0)
            && let Ok(v) = fs::read_to_string(format!("/sys/fs/cgroup/{}{path}/{}", v1.0, v1.1))
        {
            return Some(v.trim().to_string());
        }
        if ctrls.is_empty() {
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                if let Ok(v) = fs::read_to_string(format!("{root}{path}/{v2_name}")) {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}
