//! Helpers for integration tests: a busybox rootfs, bundles made from husk's own
//! default spec, and containers that are deleted (and reaped) even when a test
//! fails. Tests drive the real `husk` binary, as an engine would.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};

pub fn husk_bin() -> &'static str {
    env!("CARGO_BIN_EXE_husk")
}

/// Tests need root, namespaces and busybox-static; the README's test command
/// sets them up. Fail loudly rather than skip when they are missing.
fn require_env() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "integration tests run containers and need root"
    );
    assert!(
        Path::new("/bin/busybox").exists(),
        "busybox-static is missing: run the README's test command, which installs it"
    );
}

/// The shared busybox rootfs (read-only in containers; tests that write use tmpfs).
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        require_env();
        // Orphaned container inits are reparented to this test process, which
        // reaps them after delete; otherwise they would stay zombies.
        nix::sys::prctl::set_child_subreaper(true).expect("subreaper");
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = base.join("rootfs");
        if dir.join(".complete").exists() {
            // A probe rebuilt since the rootfs was made replaces the old one
            // (by rename, so a running copy is not disturbed).
            if fs::read(probe()).ok() != fs::read(dir.join("bin/probe")).ok() {
                let tmp = dir.join(format!("bin/.probe.{}", std::process::id()));
                fs::copy(probe(), &tmp).unwrap();
                fs::rename(&tmp, dir.join("bin/probe")).unwrap();
            }
            return dir;
        }
        // Built beside and renamed into place, so a half-built rootfs is never used.
        let tmp = base.join(format!("rootfs.{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        build_rootfs(&tmp);
        fs::write(tmp.join(".complete"), "").unwrap();
        if fs::rename(&tmp, &dir).is_err() {
            // Another test binary won the race.
            let _ = fs::remove_dir_all(&tmp);
        }
        dir
    })
}

fn build_rootfs(dir: &Path) {
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "data"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    let out = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n",
    )
    .unwrap();
    fs::write(dir.join("etc/group"), "root:x:0:\nuser:x:1000:\n").unwrap();
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(probe(), dir.join("bin/probe")).unwrap();
}

/// `tests/probe/probe.c` built static, for the calls busybox has no applet for.
pub fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let out = base.join("probe");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probe/probe.c");
        let fresh = |o: &Path| {
            let m = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
            o.exists() && m(o) >= m(&src)
        };
        if fresh(&out) {
            return out;
        }
        let tmp = base.join(format!("probe.{}", std::process::id()));
        let st = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status()
            .expect("cc (gcc) is missing: run the README's test command, which installs it");
        assert!(st.success(), "building tests/probe/probe.c failed");
        fs::rename(&tmp, &out).unwrap();
        out
    })
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A bundle and a state root of a test's own, removed on drop.
pub struct Bundle {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub config: Value,
}

impl Bundle {
    /// A bundle running `args`, from `husk spec` with a read-only shared rootfs,
    /// no terminal, and a tmpfs on /tmp.
    pub fn new(args: &[&str]) -> Bundle {
        let rootfs = rootfs();
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("t-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let dir = base.join("bundle");
        let root = base.join("state");
        fs::create_dir_all(&dir).unwrap();
        let out = Command::new(husk_bin())
            .args(["spec", "-b"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "husk spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config: Value =
            serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
        config["root"]["path"] = json!(rootfs);
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}));
        Bundle { dir, root, config }
    }

    /// A writable copy of the shared rootfs of this bundle's own (for tests
    /// that plant files, symlinks or setuid binaries in it); the config uses it.
    pub fn own_rootfs(&mut self) -> PathBuf {
        let dir = self.dir.join("rootfs");
        let st = Command::new("cp")
            .arg("-a")
            .arg(rootfs())
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "copy rootfs");
        self.config["root"]["path"] = json!(dir);
        dir
    }

    /// A bundle running a shell script.
    pub fn sh(script: &str) -> Bundle {
        Bundle::new(&["sh", "-c", script])
    }

    pub fn write(&self) {
        fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// A directory of the test's own, bind-mounted read-write at `dest`.
    pub fn share(&mut self, dest: &str) -> PathBuf {
        let host = self
            .dir
            .parent()
            .unwrap()
            .join(format!("share{}", dest.replace('/', "_")));
        fs::create_dir_all(&host).unwrap();
        fs::set_permissions(&host, fs::Permissions::from_mode(0o777)).unwrap();
        self.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": dest, "type": "bind", "source": host, "options": ["rbind", "rw"]}));
        host
    }

    pub fn husk(&self) -> Command {
        let mut c = Command::new(husk_bin());
        c.arg("--root").arg(&self.root);
        c
    }

    /// `husk ARGS…` with this bundle's root; stdio captured.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.husk()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `husk run` in the foreground; returns the output.
    pub fn run(&self, id: &str) -> Output {
        self.write();
        self.husk()
            .args(["run", "-b"])
            .arg(&self.dir)
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `husk run` in the foreground, given `secs` to finish: a regression that
    /// hangs fails the test instead of the whole suite. On timeout husk is
    /// killed (by pid), the container force-deleted, and `None` returned.
    pub fn run_timeout(&self, id: &str, secs: u64) -> Option<Output> {
        self.write();
        let child = self
            .husk()
            .args(["run", "-b"])
            .arg(&self.dir)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_within(child, secs);
        if out.is_none() {
            let _ = self.cmd(&["delete", "--force", id]);
            reap_orphans();
        }
        out
    }

    /// `husk create` with the container's stdio on files in the bundle, so the
    /// caller does not wait for the container to close them.
    pub fn create(&self, id: &str) -> Container<'_> {
        let c = self.try_create(id);
        assert!(
            c.1.status.success(),
            "create failed: {}",
            String::from_utf8_lossy(&c.1.stderr)
        );
        c.0
    }

    pub fn try_create(&self, id: &str) -> (Container<'_>, Output) {
        self.write();
        let out_file = fs::File::create(self.dir.join(format!("{id}.out"))).unwrap();
        let stderr_file = self.dir.join(format!("{id}.husk-err"));
        let out = self
            .husk()
            .args(["create", "-b"])
            .arg(&self.dir)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out_file.try_clone().unwrap())
            .stderr(fs::File::create(&stderr_file).unwrap())
            .status()
            .unwrap();
        let output = Output {
            status: out,
            stdout: vec![],
            stderr: fs::read(&stderr_file).unwrap_or_default(),
        };
        (Container::new(self, id), output)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        reap_orphans();
        let _ = fs::remove_dir_all(self.dir.parent().unwrap());
    }
}

/// A created container; `delete --force` and reaped on drop.
pub struct Container<'a> {
    pub bundle: &'a Bundle,
    pub id: String,
    /// The init's pid while it existed, to reap it once it is gone.
    pub init: i32,
}

impl<'a> Container<'a> {
    /// Wraps a container made by the caller, remembering its init's pid.
    pub fn new(bundle: &'a Bundle, id: &str) -> Container<'a> {
        let o = bundle.cmd(&["state", id]);
        let init = serde_json::from_slice::<Value>(&o.stdout)
            .ok()
            .and_then(|v| v["pid"].as_i64())
            .unwrap_or(0) as i32;
        Container {
            bundle,
            id: id.to_string(),
            init,
        }
    }

    /// `husk ARGS… ID`; for `kill`, the id goes before the signal, as runc wants.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let mut full: Vec<&str> = args.to_vec();
        if args.first() == Some(&"kill") && args.len() > 1 && !args[args.len() - 1].starts_with('-')
        {
            full.insert(args.len() - 1, &self.id);
        } else {
            full.push(&self.id);
        }
        self.bundle.cmd(&full)
    }

    pub fn ok(&self, args: &[&str]) {
        let o = self.cmd(args);
        assert!(
            o.status.success(),
            "husk {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    pub fn state(&self) -> Value {
        let o = self.cmd(&["state"]);
        assert!(
            o.status.success(),
            "state failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap().to_string()
    }

    pub fn pid(&self) -> i32 {
        self.state()["pid"].as_i64().unwrap() as i32
    }

    /// Waits (up to 10 s) for the container to stop and reaps its init.
    pub fn wait_stopped(&self) {
        let pid = self.pid();
        for _ in 0..1000 {
            if self.status() == "stopped" {
                reap(pid);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {} did not stop", self.id);
    }

    /// What the container wrote to stdout and stderr.
    pub fn output(&self) -> String {
        fs::read_to_string(self.bundle.dir.join(format!("{}.out", self.id))).unwrap_or_default()
    }

    pub fn delete(&self) {
        let pid = self.state()["pid"].as_i64().unwrap_or(0) as i32;
        self.ok(&["delete"]);
        reap(pid);
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.bundle.cmd(&["delete", "--force", &self.id]);
        reap(self.init);
        reap_orphans();
    }
}

/// Reaps a container init that was reparented to this (subreaper) process.
pub fn reap(pid: i32) {
    if pid > 0 {
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
    }
}

/// Reaps zombie children that are container processes (reparented here when
/// their parents died), leaving alone the commands that other test threads
/// still wait for.
pub fn reap_orphans() {
    let me = std::process::id().to_string();
    // Only processes of a deeper pid namespace (containers') are reaped:
    // a zombie of our own depth is a command another test thread spawned
    // and is about to wait for; reaping it makes that wait fail (ECHILD).
    let depth = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .map_or(0, |v| v.split_whitespace().count())
    };
    let mine = depth(&fs::read_to_string("/proc/self/status").unwrap_or_default());
    let Ok(rd) = fs::read_dir("/proc") else {
        return;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut rest = stat[close + 2..].split(' ');
        let (state, ppid) = (rest.next(), rest.next());
        if state == Some("Z")
            && ppid == Some(me.as_str())
            && depth(&fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()) > mine
        {
            reap(pid);
        }
    }
}

/// Waits `secs` for a spawned command (stdout and stderr piped): its output,
/// or `None` once it is killed (by pid) for taking longer, so a regression
/// that hangs fails its test instead of the whole suite.
pub fn wait_within(mut child: std::process::Child, secs: u64) -> Option<Output> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that `husk run` of the bundle fails, with `needle` in its message.
pub fn assert_run_refused(b: &Bundle, id: &str, needle: &str) {
    let o = b.run(id);
    assert!(!o.status.success(), "{id} ran: {}", stdout(&o));
    assert!(stderr(&o).contains(needle), "{}", stderr(&o));
}

/// Asserts that `husk run` succeeded and returns its stdout.
pub fn run_ok(b: &Bundle, id: &str) -> String {
    let o = b.run(id);
    assert!(
        o.status.success(),
        "run failed ({:?}): {}{}",
        o.status,
        stderr(&o),
        stdout(&o)
    );
    stdout(&o)
}

/// Whether any mount on the host mentions `needle`.
pub fn host_mounts_mention(needle: &str) -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(needle)
}

/// The host's unified cgroup hierarchy.
pub fn cgroup_root() -> PathBuf {
    for p in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        if Path::new(p).join("cgroup.controllers").exists() {
            return PathBuf::from(p);
        }
    }
    panic!("no cgroup2 hierarchy on this host")
}

fn sha256(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Writes `data` as a blob of the layout; returns its descriptor.
fn blob(layout: &Path, media: &str, data: &[u8]) -> serde_json::Value {
    let tmp = layout.join("blob.tmp");
    fs::write(&tmp, data).unwrap();
    let digest = sha256(&tmp);
    fs::rename(&tmp, layout.join("blobs/sha256").join(&digest)).unwrap();
    json!({"mediaType": media, "digest": format!("sha256:{digest}"), "size": data.len()})
}

/// An OCI image archive of one layer, the busybox rootfs the other tests
/// use, named `name`, with `config` (Cmd, Entrypoint…) over PATH=/bin and
/// WorkingDir /: for `ctr images import`.
pub fn build_image(dir: &Path, name: &str, config: &Value) -> PathBuf {
    let layout = dir.join(format!("layout-{}", name.replace(['/', ':'], "_")));
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let layer = layout.join("layer.tar");
    let st = Command::new("tar")
        .args(["--exclude=./.complete", "-C"])
        .arg(rootfs())
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let layer_desc = blob(
        &layout,
        "application/vnd.oci.image.layer.v1.tar",
        &fs::read(&layer).unwrap(),
    );
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": merge(json!({"Env": ["PATH=/bin"], "WorkingDir": "/"}), config),
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}
    });
    let config_desc = blob(
        &layout,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc, "layers": [layer_desc]
    });
    let mut manifest_desc = blob(
        &layout,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    manifest_desc["platform"] = json!({"architecture": "amd64", "os": "linux"});
    manifest_desc["annotations"] = json!({
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": "latest"
    });
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [manifest_desc]})).unwrap(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let archive = layout.with_extension("tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .args(["oci-layout", "index.json", "blobs"])
        .status()
        .unwrap();
    assert!(st.success());
    archive
}

fn merge(mut base: Value, over: &Value) -> Value {
    if let (Some(b), Some(o)) = (base.as_object_mut(), over.as_object()) {
        for (k, v) in o {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// A script in `dir` that appends its arguments to `dir/calls.log` and
/// execs husk with them: the runtime binary an engine is given, so a test
/// sees every call the engine makes.
pub fn logging_wrapper(dir: &Path) -> PathBuf {
    let wrapper = dir.join("husk-logged");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}/calls.log\nexec {} \"$@\"\n",
            dir.display(),
            husk_bin()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}
