//! The runtime's own boundaries, attacked: what a process in a container can
//! take from husk's processes while they set it up (`exec`, an init in a
//! joined pid namespace), what another local user can do with husk's state
//! and the files it writes, and whether a container's policy can be changed
//! after `create` by editing its bundle. SECURITY.md maps each to its test.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A process of the container that may ptrace any process it sees: the
/// capability debuggers and profilers are given (`--cap-add SYS_PTRACE`).
fn with_sys_ptrace(b: &mut Bundle) {
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYS_PTRACE"));
    }
}

/// A host directory holding a file whose content is `needle`: what the
/// container must never read.
fn host_secret(b: &Bundle, needle: &str) -> (PathBuf, PathBuf) {
    let dir = b.dir.parent().unwrap().join("hostonly");
    fs::create_dir_all(&dir).unwrap();
    let marker = dir.join(format!("secret-{needle}"));
    fs::write(&marker, needle).unwrap();
    (dir, marker)
}

/// A bundle whose process, with CAP_SYS_PTRACE, watches for `secs` seconds
/// (`probe watch`) for a host file and a needle in other processes; returned
/// with the host directory holding the file, and the needle.
fn watcher(secs: u32) -> (Bundle, PathBuf, String) {
    let needle = format!("needle{}", std::process::id());
    let mut b = Bundle::new(&[]);
    let (dir, marker) = host_secret(&b, &needle);
    b.config["process"]["args"] = json!(["probe", "watch", secs.to_string(), marker, needle]);
    with_sys_ptrace(&mut b);
    (b, dir, needle)
}

/// Creates and starts the watcher; returns once it watches.
fn start_watching<'a>(b: &'a Bundle, id: &str) -> Container<'a> {
    let c = b.create(id);
    c.ok(&["start"]);
    let t = Instant::now();
    while !c.output().contains("watching") {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", c.output());
        std::thread::sleep(Duration::from_millis(10));
    }
    c
}

/// Waits for the watcher to finish; returns what it reported.
fn watch_report(c: &Container<'_>) -> String {
    let t = Instant::now();
    while !c.output().contains("watched") {
        assert!(t.elapsed() < Duration::from_secs(30), "{}", c.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    c.output()
}

/// Runs a husk command whose container may outlive it: stdio goes to files
/// (a pipe would stay open in the container), stderr is read back.
fn detached(b: &Bundle, cmd: &mut Command) -> std::process::Output {
    let err = b
        .dir
        .join(format!("husk-err.{}", SEQ.fetch_add(1, Ordering::SeqCst)));
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    std::process::Output {
        status,
        stdout: vec![],
        stderr: fs::read(&err).unwrap_or_default(),
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

// ---- The container-to-runtime boundary while husk works inside it ----

#[test]
fn exec_never_shows_a_process_holding_the_host_to_the_container() {
    // The attack: a container with CAP_SYS_PTRACE watches every pid it is
    // about to see while an engine runs `exec`. A process of husk's that is
    // already in the container's pid namespace but still has the host's
    // mount namespace, cwd or environment hands them over through
    // /proc/PID/root, /proc/PID/cwd and /proc/PID/environ.
    let (b, dir, needle) = watcher(6);
    let c = start_watching(&b, "exptrace");
    let process = dir.join("process.json");
    fs::write(
        &process,
        serde_json::to_vec(&json!({"args": ["true"], "cwd": "/", "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0}}))
        .unwrap(),
    )
    .unwrap();
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_secs(4) {
        // As engines call it: runc's flags, and a --process file.
        let mut cmd = b.husk();
        cmd.arg("exec");
        if n % 2 == 0 {
            cmd.args([&c.id, "true"]);
        } else {
            cmd.arg("--process").arg(&process).arg(&c.id);
        }
        let o = cmd
            .current_dir(&dir)
            .env("HUSK_TEST_SECRET", &needle)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "exec: {}", stderr(&o));
        n += 1;
    }
    let report = watch_report(&c);
    assert!(!report.contains("found"), "after {n} execs: {report}");
}

#[test]
fn init_joining_a_pid_namespace_never_shows_the_host_to_it() {
    // The same attack on `create`: the init of a container that joins another
    // container's pid namespace (a Kubernetes pod sharing its process
    // namespace) sets up its rootfs with the host's mounts at hand; a
    // CAP_SYS_PTRACE process in that namespace must never see it do so, nor
    // the engine's environment. (The container's /proc must still show the
    // joined namespace: tests/escapes.rs checks /proc/1 is the other init.)
    let (a, dir, needle) = watcher(5);
    let watcher = start_watching(&a, "pidwatch");
    let mut b = Bundle::new(&["sleep", "30"]);
    for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "pid" {
            *ns = json!({"type": "pid", "path": format!("/proc/{}/ns/pid", watcher.pid())});
        }
    }
    b.write();
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_secs(3) {
        let id = format!("pidjoin{n}");
        let o = detached(
            &b,
            b.husk()
                .args(["create", "-b"])
                .arg(&b.dir)
                .arg(&id)
                .current_dir(&dir)
                .env("HUSK_TEST_SECRET", &needle),
        );
        assert!(o.status.success(), "create: {}", stderr(&o));
        let c = Container::new(&b, &id);
        // The init is a child of `create`, whatever forks it took to get
        // into the joined namespace.
        assert_eq!(c.status(), "created");
        c.ok(&["delete", "--force"]);
        n += 1;
    }
    let report = watch_report(&watcher);
    assert!(report.contains("watched"), "{report}");
    assert!(!report.contains("found"), "after {n} creates: {report}");
}

// ---- The local-user-to-state boundary ----

/// Every file and directory from `root` down, with its mode.
fn modes_under(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = vec![];
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        out.push((p.clone(), m.mode() & 0o7777));
        if m.is_dir() {
            todo.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

#[test]
fn state_is_private_whatever_the_umask_and_only_husk_starts() {
    let b = Bundle::new(&["echo", "started"]);
    b.write();
    // An engine with umask 000.
    let o = detached(
        &b,
        Command::new("sh")
            .arg("-c")
            .arg(r#"umask 000; exec "$@""#)
            .arg("sh")
            .arg(husk_bin())
            .arg("--root")
            .arg(&b.root)
            .args(["create", "-b"])
            .arg(&b.dir)
            .arg("private"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let c = Container::new(&b, "private");
    for (p, mode) in modes_under(&b.root) {
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
    }
    // Another user tries to start it through the fifo.
    let fifo = b.root.join("private/exec.fifo");
    let o = Command::new("/bin/busybox")
        .args(["sh", "-c", r#"printf x > "$1""#, "sh"])
        .arg(&fifo)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!o.status.success(), "user 65534 wrote the exec fifo");
    assert!(stderr(&o).contains("denied"), "{}", stderr(&o));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.status(), "created");
    c.ok(&["start"]);
    c.wait_stopped();
}

#[test]
fn state_others_could_have_planted_is_refused() {
    // A --root others can write: anyone could plant a container there.
    let b = Bundle::new(&["true"]);
    b.write();
    let open_root = b.dir.parent().unwrap().join("open-root");
    fs::create_dir_all(&open_root).unwrap();
    fs::set_permissions(&open_root, fs::Permissions::from_mode(0o1777)).unwrap();
    let o = Command::new(husk_bin())
        .arg("--root")
        .arg(&open_root)
        .args(["list"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "list in a world-writable root worked");
    assert!(stderr(&o).contains("writable by others"), "{}", stderr(&o));
    // A container directory of another user's, with a poststop hook and a
    // host pid (this test's own) in its state.
    let c = b.create("planted");
    let stamp = b.dir.join("hook-ran");
    let state_file = b.root.join("planted/state.json");
    let mut st: serde_json::Value =
        serde_json::from_slice(&fs::read(&state_file).unwrap()).unwrap();
    st["poststop"] = json!([{"path": "/bin/busybox", "args": ["touch", "touch", &stamp]}]);
    fs::write(&state_file, serde_json::to_vec(&st).unwrap()).unwrap();
    /// Gives the state back to root when the test ends, passed or not.
    struct GiveBack<'a>(&'a Path, &'a Path);
    impl Drop for GiveBack<'_> {
        fn drop(&mut self) {
            let _ = std::os::unix::fs::chown(self.0, Some(0), Some(0));
            let _ = std::os::unix::fs::chown(self.1, Some(0), Some(0));
            if let Ok(data) = fs::read(self.1) {
                let mut st: serde_json::Value = serde_json::from_slice(&data).unwrap();
                st["poststop"] = json!([]);
                let _ = fs::write(self.1, serde_json::to_vec(&st).unwrap());
            }
        }
    }
    let dir = b.root.join("planted");
    let give_back = GiveBack(&dir, &state_file);
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(&state_file, Some(65534), Some(65534)).unwrap();
    for args in [
        &["state", "planted"][..],
        &["kill", "planted", "KILL"],
        &["delete", "--force", "planted"],
    ] {
        let o = b.cmd(args);
        assert!(!o.status.success(), "{args:?} trusted another user's state");
        assert!(
            stderr(&o).contains("owned by uid 65534"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    assert!(!stamp.exists(), "the planted poststop hook ran");
    // Given back, the container is the caller's again and goes away.
    drop(give_back);
    c.ok(&["delete", "--force"]);
}

#[test]
fn a_state_file_that_is_a_fifo_does_not_hang_list() {
    let b = Bundle::new(&["true"]);
    let dir = b.root.join("fifo");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&b.root, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    nix::unistd::mkfifo(
        &dir.join("state.json"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let mut child = b
        .husk()
        .args(["list", "-q"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("list hung on a fifo state.json");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
    let o = b.cmd(&["state", "fifo"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
}

// ---- Files husk writes where others can write ----

#[test]
fn pid_file_never_follows_a_planted_symlink() {
    // A user who can write the pid file's directory plants symlinks for the
    // temporary names of the next pids, aimed at a root-owned file.
    let b = Bundle::new(&["sleep", "30"]);
    b.write();
    let open_dir = b.dir.parent().unwrap().join("pids");
    fs::create_dir_all(&open_dir).unwrap();
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = b.dir.parent().unwrap().join("victim");
    fs::write(&victim, "root's data\n").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    let next: i32 = fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for pid in next..next + 400 {
        let _ = std::os::unix::fs::symlink(&victim, open_dir.join(format!(".pid.{pid}")));
    }
    let pid_file = open_dir.join("pid");
    let o = detached(
        &b,
        b.husk()
            .args(["create", "--pid-file"])
            .arg(&pid_file)
            .arg("-b")
            .arg(&b.dir)
            .arg("pidfile"),
    );
    let c = Container::new(&b, "pidfile");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's data\n");
    assert_eq!(fs::read_to_string(&pid_file).unwrap(), c.pid().to_string());
    assert!(!fs::symlink_metadata(&pid_file).unwrap().is_symlink());
    // A symlink planted at the pid file's own name is replaced, not followed.
    fs::remove_file(&pid_file).unwrap();
    std::os::unix::fs::symlink(&victim, &pid_file).unwrap();
    let o = detached(
        &b,
        b.husk()
            .args(["exec", "-d", "--pid-file"])
            .arg(&pid_file)
            .args(["pidfile", "true"]),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's data\n");
    assert!(!fs::symlink_metadata(&pid_file).unwrap().is_symlink());
    // Nothing of husk's temporaries is left.
    let left: Vec<_> = fs::read_dir(&open_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with(".pid."))
        .collect();
    assert_eq!(left, ["pid"]);
}

// ---- The policy is fixed at create ----

#[test]
fn exec_keeps_the_seccomp_filter_of_create_whatever_the_bundle_says_later() {
    let mut b = Bundle::new(&["sleep", "30"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let c = b.create("scfixed");
    c.ok(&["start"]);
    let mkdir = |flags: &[&str]| {
        let o = b
            .husk()
            .arg("exec")
            .args(flags)
            .args([&c.id, "mkdir", "/tmp/d"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!o.status.success(), "mkdir was allowed ({flags:?})");
        assert!(stderr(&o).contains("not permitted"), "{}", stderr(&o));
    };
    mkdir(&[]);
    // The bundle's config loses its filter, then the bundle its config.
    let mut edited = b.config.clone();
    edited["linux"].as_object_mut().unwrap().remove("seccomp");
    edited["process"]["capabilities"]["bounding"] = json!(["CAP_SYS_ADMIN"]);
    fs::write(
        b.dir.join("config.json"),
        serde_json::to_vec(&edited).unwrap(),
    )
    .unwrap();
    mkdir(&[]);
    let process = b.dir.join("process.json");
    fs::write(
        &process,
        serde_json::to_vec(&json!({"args": ["mkdir", "/tmp/d"], "cwd": "/",
            "user": {"uid": 0, "gid": 0}}))
        .unwrap(),
    )
    .unwrap();
    mkdir(&["--process", process.to_str().unwrap()]);
    fs::remove_file(b.dir.join("config.json")).unwrap();
    mkdir(&[]);
    // The container's own process (the base of a runc-style exec) is the
    // one of create too: its bounding set, not the edited one.
    let o = b
        .husk()
        .args(["exec", &c.id, "grep", "CapBnd", "/proc/self/status"])
        .output()
        .unwrap();
    let bits = (1u64 << 29) | (1 << 5) | (1 << 10);
    assert_eq!(
        stdout(&o),
        format!("CapBnd:\t{bits:016x}\n"),
        "{}",
        stderr(&o)
    );
}

// ---- Smaller ----

#[test]
fn a_rootfs_that_is_a_symlink_is_refused() {
    let mut b = Bundle::new(&["true"]);
    let link = b.dir.join("rootfs-link");
    std::os::unix::fs::symlink(rootfs(), &link).unwrap();
    b.config["root"]["path"] = json!(link);
    assert_run_refused(&b, "rootlink", "root.path");
    let o = b.run("rootlink2");
    assert!(stderr(&o).contains("symlink"), "{}", stderr(&o));
}

#[test]
fn an_exec_failure_after_start_is_reported_not_silent() {
    // 100 MB of arguments: execve fails with E2BIG only after start, when
    // `create` is gone; the error must reach the container's stderr.
    let b = Bundle::new(&["echo", &"x".repeat(100 << 20)]);
    let o = b.run("e2big");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).to_lowercase().contains("argument list too long"),
        "{:?}",
        stderr(&o)
    );
}

#[test]
fn log_and_spec_files_never_follow_a_planted_symlink() {
    let b = Bundle::new(&["true"]);
    let open_dir = b.dir.parent().unwrap().join("logs");
    fs::create_dir_all(&open_dir).unwrap();
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = b.dir.parent().unwrap().join("victim");
    fs::write(&victim, "root's data\n").unwrap();
    // --log: husk appends to it; a link planted at its name is not followed.
    let log = open_dir.join("husk.log");
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    let o = b
        .husk()
        .arg("--log")
        .arg(&log)
        .args(["state", "ghost"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's data\n");
    // spec: a dangling link planted as config.json does not make husk write
    // where it points.
    let target = b.dir.parent().unwrap().join("made-by-spec");
    let spec_dir = open_dir.join("bundle");
    fs::create_dir_all(&spec_dir).unwrap();
    std::os::unix::fs::symlink(&target, spec_dir.join("config.json")).unwrap();
    let o = Command::new(husk_bin())
        .args(["spec", "-b"])
        .arg(&spec_dir)
        .output()
        .unwrap();
    assert!(!o.status.success(), "spec wrote through a dangling link");
    assert!(!target.exists());
}

// ---- Image content → the runtime's device policy ----

#[test]
fn a_device_node_in_the_image_does_not_open_a_host_device() {
    // An untrusted image carries nodes of host devices; its config, like
    // husk-image's and `husk spec`'s, lists no device rules. runc starts from
    // deny-all plus its default list whatever the config says, and so must
    // husk. (/dev/kmsg reads and writes the host kernel's log, /dev/kvm makes
    // virtual machines; a block device of the host's disk is the same case,
    // but this sandbox refuses raw disks even to the host's root.) The
    // host's console (c 5:1: its input and output) is not on runc's default
    // list either: a container's own console is a pty (136:N).
    let mut b = Bundle::sh(
        "probe open-write /data/kmsg; probe open-write /data/kvm; \
         mknod /dev/hostconsole c 5 1 && probe open-write /dev/hostconsole; \
         probe open-write /dev/null; mknod /dev/tuntest c 10 200 && probe open-write /dev/tuntest",
    );
    let rootfs = b.own_rootfs();
    for (name, major, minor) in [("kmsg", 1, 11), ("kvm", 10, 232)] {
        nix::sys::stat::mknod(
            &rootfs.join("data").join(name),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(major, minor),
        )
        .unwrap();
    }
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    assert!(b.config["linux"]["resources"]["devices"].is_null());
    let out = run_ok(&b, "hostdev");
    // The standard nodes work, and /dev/net/tun and mknod of any node are
    // allowed as runc allows them (`c *:* m`, `b *:* m`, `c 10:200 rwm`).
    assert_eq!(
        out,
        "error EPERM\nerror EPERM\nerror EPERM\nopened for writing\nopened for writing\n"
    );
}

#[test]
fn a_bind_under_proc_in_a_joined_pid_namespace_stays_visible() {
    // The case the late entry cannot serve (an lxcfs-style file bound over a
    // /proc file needs /proc mounted first): the init is then cloned into
    // the namespace as before, and both the bind and the joined namespace's
    // /proc must show.
    let a = Bundle::new(&["sleep", "30"]);
    let other = a.create("procbindpeer");
    let mut b = Bundle::sh("cat /proc/uptime; cat /proc/1/cmdline | tr '\\0' ' '");
    // A rootfs of its own: were /proc not mounted first, the mount point
    // would be made in the rootfs, and other tests share the common one.
    let rootfs = b.own_rootfs();
    let fake = b.dir.join("uptime");
    fs::write(&fake, "42.00 42.00\n").unwrap();
    for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "pid" {
            *ns = json!({"type": "pid", "path": format!("/proc/{}/ns/pid", other.pid())});
        }
    }
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/proc/uptime", "type": "bind", "source": fake, "options": ["bind", "ro"]}));
    let o = b.run_timeout("procbind", 20).expect("run hung");
    let out = stdout(&o);
    assert!(o.status.success(), "{}{out}", stderr(&o));
    assert!(
        fs::read_dir(rootfs.join("proc")).unwrap().next().is_none(),
        "a mount point was made in the rootfs's own /proc"
    );
    assert!(
        out.starts_with("42.00 42.00\n"),
        "the bind under /proc was covered: {out}"
    );
    // /proc is the joined namespace's: its pid 1 is the other container's
    // init (husk's, waiting for start).
    assert!(
        out.lines().nth(1).is_some_and(|l| l.contains("husk")),
        "{out}"
    );
}
