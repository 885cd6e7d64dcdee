//! husk-bench: husk against runc and crun on the same busybox bundle, the
//! runtimes interleaved in every round so machine noise hits them alike.
//! Prints a markdown table of medians and the ratios husk/crun and husk/runc.
//!
//!   husk-bench --husk PATH --runc PATH --crun PATH --floor PATH [--rounds N] [--quick]
//!
//! cgroups: every container gets `cgroupsPath` /husk-bench/ID. husk places it in
//! the cgroup2 hierarchy (here the unified mount of a hybrid host); runc and
//! crun use the v1 controllers. crun 1.8.1 refuses a hybrid host, so it runs in
//! a private mount namespace with an empty tmpfs over /sys/fs/cgroup/unified,
//! entered with setns just before exec (no wrapper process is timed).

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Runtime {
    name: &'static str,
    bin: PathBuf,
    /// A mount namespace to run the runtime in (crun on a hybrid host).
    mntns: Option<OwnedFd>,
}

/// One command's cost: wall time and the peak RSS of the runtime process.
#[derive(Clone, Copy)]
struct Cost {
    time: Duration,
    maxrss_kb: i64,
    ok: bool,
}

fn spawn_wait(cmd: Command, mntns: Option<&OwnedFd>) -> Cost {
    spawn_wait_as(cmd, mntns, None)
}

/// Runs `cmd` (in `mntns`, as `user` when given: the mount namespace is
/// entered first, while root) and measures it.
fn spawn_wait_as(mut cmd: Command, mntns: Option<&OwnedFd>, user: Option<(u32, u32)>) -> Cost {
    let fd = mntns.map(|ns| ns.as_raw_fd());
    if fd.is_some() || user.is_some() {
        // SAFETY: setns, setgroups and setres[ug]id in the forked child
        // before exec; no allocation.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = fd
                    && libc::setns(fd, libc::CLONE_NEWNS) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some((uid, gid)) = user
                    && (libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setresgid(gid, gid, gid) != 0
                        || libc::setresuid(uid, uid, uid) != 0)
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let start = Instant::now();
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(_) => {
            return Cost {
                time: start.elapsed(),
                maxrss_kb: 0,
                ok: false,
            };
        }
    };
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child by pid.
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    Cost {
        time: start.elapsed(),
        maxrss_kb: ru.ru_maxrss,
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

impl Runtime {
    fn cmd(&self, root: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(root).args(args);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    fn run(&self, root: &Path, args: &[&str]) -> Cost {
        spawn_wait(self.cmd(root, args), self.mntns.as_ref())
    }

    /// Output of a command (state, list), untimed.
    fn output(&self, root: &Path, args: &[&str]) -> Vec<u8> {
        let mut c = self.cmd(root, args);
        c.stdout(Stdio::piped());
        if let Some(ns) = &self.mntns {
            let fd = ns.as_raw_fd();
            // SAFETY: as in spawn_wait.
            unsafe {
                c.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNS) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        c.output().map(|o| o.stdout).unwrap_or_default()
    }

    fn wait_stopped(&self, root: &Path, id: &str) {
        for _ in 0..2000 {
            let out = self.output(root, &["state", id]);
            let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
            if v["status"] == "stopped" || v.is_null() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A mount namespace where /sys/fs/cgroup/unified is an empty tmpfs: made by a
/// short-lived child, kept as a descriptor.
fn crun_mount_ns() -> Option<OwnedFd> {
    let (mut r, mut w) = (0, 0);
    let mut fds = [0; 2];
    // SAFETY: pipe, fork and the child's syscalls; the child only unshares,
    // mounts, signals and waits to be killed.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return None;
        }
        std::mem::swap(&mut r, &mut fds[0]);
        std::mem::swap(&mut w, &mut fds[1]);
        let pid = libc::fork();
        if pid == 0 {
            libc::unshare(libc::CLONE_NEWNS);
            libc::mount(
                c"".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_PRIVATE | libc::MS_REC,
                std::ptr::null(),
            );
            libc::mount(
                c"none".as_ptr(),
                c"/sys/fs/cgroup/unified".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            );
            libc::write(w, b"x".as_ptr().cast(), 1);
            loop {
                libc::pause();
            }
        }
        let mut b = [0u8; 1];
        libc::read(r, b.as_mut_ptr().cast(), 1);
        let path = std::ffi::CString::new(format!("/proc/{pid}/ns/mnt")).ok()?;
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        libc::close(r);
        libc::close(w);
        (fd >= 0).then(|| OwnedFd::from_raw_fd(fd))
    }
}

fn reap_all() {
    // SAFETY: waitpid with a null status.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Bench {
    work: PathBuf,
    rootfs: PathBuf,
    seq: u32,
}

impl Bench {
    /// A bundle for one container: its own config with its own cgroupsPath.
    fn bundle(&mut self, args: &[&str], seccomp: Option<&Value>) -> (PathBuf, String) {
        self.seq += 1;
        let id = format!("hb-{}-{}", std::process::id(), self.seq);
        let dir = self.work.join("bundles").join(&id);
        let _ = fs::create_dir_all(&dir);
        let mut config = json!({
            "ociVersion": "1.0.2",
            "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": args,
                "env": ["PATH=/bin"], "cwd": "/",
                "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
                "noNewPrivileges": true},
            "root": {"path": self.rootfs, "readonly": true},
            "hostname": "bench",
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
                "cgroupsPath": format!("/husk-bench/{id}"),
                "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
                "maskedPaths": ["/proc/keys", "/proc/timer_list", "/sys/firmware"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"]
            }
        });
        if let Some(s) = seccomp {
            config["linux"]["seccomp"] = s.clone();
        }
        let _ = fs::write(
            dir.join("config.json"),
            serde_json::to_vec(&config).unwrap_or_default(),
        );
        (dir, id)
    }
}

/// The same container as `husk spec --rootless` and `runc spec --rootless`
/// shape it for an unprivileged user: a user namespace mapping root to the
/// user, no network namespace, /sys bound from the host, no cgroupsPath.
fn rootless(config: &mut Value, uid: u32, gid: u32) {
    config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}
    ]);
    if let Some(l) = config["linux"].as_object_mut() {
        l.remove("cgroupsPath");
    }
    if let Some(mounts) = config["mounts"].as_array_mut() {
        for m in mounts.iter_mut().filter(|m| m["destination"] == "/sys") {
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
    }
}

fn build_rootfs(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
        fs::create_dir_all(dir.join(d)).expect("rootfs dir");
    }
    fs::copy("/bin/busybox", dir.join("bin/busybox")).expect("busybox-static is needed");
    for a in ["true", "sleep", "sh"] {
        let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(a));
    }
    let _ = fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777));
}

/// A profile in the shape of Docker's default: an allow list of ~300 syscalls,
/// clone and socket argument rules, three architectures, ERRNO by default.
fn docker_like_seccomp() -> Value {
    let names = include_str!("syscalls.txt")
        .split_whitespace()
        .collect::<Vec<_>>();
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288u64, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 0}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}
        ]
    })
}

fn arg(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds: usize = arg(&args, "--rounds")
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 5 } else { 30 });
    let husk = PathBuf::from(
        arg(&args, "--husk")
            .unwrap_or_else(|| "target/x86_64-unknown-linux-gnu/release/husk".into()),
    );
    let floor = PathBuf::from(
        arg(&args, "--floor")
            .unwrap_or_else(|| "target/x86_64-unknown-linux-gnu/release/bench-floor".into()),
    );
    let runc = PathBuf::from(arg(&args, "--runc").unwrap_or_else(|| "/usr/sbin/runc".into()));
    let crun = PathBuf::from(arg(&args, "--crun").unwrap_or_else(|| "/usr/bin/crun".into()));
    let work = PathBuf::from(format!("/tmp/husk-bench-{}", std::process::id()));
    let _ = fs::create_dir_all(&work);
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    let hybrid = Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists();
    let runtimes = [
        Runtime {
            name: "runc",
            bin: runc,
            mntns: None,
        },
        Runtime {
            name: "crun",
            bin: crun,
            mntns: if hybrid { crun_mount_ns() } else { None },
        },
        Runtime {
            name: "husk",
            bin: husk,
            mntns: None,
        },
    ];
    let mut b = Bench {
        work: work.clone(),
        rootfs: work.join("rootfs"),
        seq: 0,
    };
    build_rootfs(&b.rootfs);
    let root = |rt: &Runtime| work.join(format!("root-{}", rt.name));

    // results[metric][runtime] = samples (ms or KiB)
    let mut rows: Vec<(String, Vec<Vec<f64>>)> = Vec::new();
    let add = |rows: &mut Vec<(String, Vec<Vec<f64>>)>, name: &str, ri: usize, v: f64| {
        if let Some(r) = rows.iter_mut().find(|r| r.0 == name) {
            r.1[ri].push(v);
        } else {
            let mut cols = vec![Vec::new(), Vec::new(), Vec::new(), Vec::new()];
            cols[ri].push(v);
            rows.push((name.to_string(), cols));
        }
    };
    const FLOOR: usize = 3;

    eprintln!("husk-bench: {rounds} rounds, runtimes interleaved");
    for round in 0..rounds {
        // Rotate the order every round.
        for k in 0..3 {
            let ri = (round + k) % 3;
            let rt = &runtimes[ri];
            let r = root(rt);
            // run /bin/true: create + start + wait + delete in one command.
            let (dir, id) = b.bundle(&["/bin/true"], None);
            let c = rt.run(&r, &["run", "--bundle", dir.to_str().unwrap_or("."), &id]);
            reap_all();
            if c.ok {
                add(&mut rows, "run /bin/true (ms)", ri, ms(c.time));
            }
            // Each step of the lifecycle on a long-running container.
            let (dir, id) = b.bundle(&["/bin/sleep", "1000"], None);
            let create = rt.run(
                &r,
                &["create", "--bundle", dir.to_str().unwrap_or("."), &id],
            );
            let start = rt.run(&r, &["start", &id]);
            // exec as engines use it, in the foreground until the process exits.
            let exec = rt.run(&r, &["exec", &id, "/bin/true"]);
            let state = rt.run(&r, &["state", &id]);
            let kill = rt.run(&r, &["kill", &id, "KILL"]);
            rt.wait_stopped(&r, &id);
            let delete = rt.run(&r, &["delete", &id]);
            reap_all();
            if create.ok && start.ok && exec.ok && state.ok && kill.ok && delete.ok {
                add(&mut rows, "create (ms)", ri, ms(create.time));
                add(&mut rows, "start (ms)", ri, ms(start.time));
                add(&mut rows, "exec /bin/true (ms)", ri, ms(exec.time));
                add(&mut rows, "state (ms)", ri, ms(state.time));
                add(&mut rows, "kill (ms)", ri, ms(kill.time));
                add(&mut rows, "delete (ms)", ri, ms(delete.time));
                add(
                    &mut rows,
                    "peak RSS of create (KiB)",
                    ri,
                    create.maxrss_kb as f64,
                );
            } else {
                let _ = rt.run(&r, &["delete", "--force", &id]);
                reap_all();
                eprintln!("husk-bench: {} lifecycle failed in round {round}", rt.name);
            }
            // create with limits, as engines ask for them: the cgroups are
            // written (on this hybrid host, in the v1 hierarchies).
            let (dir, id) = b.bundle(&["/bin/sleep", "1000"], None);
            let path = dir.join("config.json");
            if let Ok(Ok(mut c)) = fs::read(&path).map(|t| serde_json::from_slice::<Value>(&t)) {
                c["linux"]["resources"] =
                    json!({"memory": {"limit": 67108864}, "pids": {"limit": 100}});
                let _ = fs::write(&path, serde_json::to_vec(&c).unwrap_or_default());
            }
            let create = rt.run(
                &r,
                &["create", "--bundle", dir.to_str().unwrap_or("."), &id],
            );
            let _ = rt.run(&r, &["delete", "--force", &id]);
            reap_all();
            if create.ok {
                add(
                    &mut rows,
                    "create with memory and pids limits (ms)",
                    ri,
                    ms(create.time),
                );
            } else {
                eprintln!("husk-bench: {} create with limits failed", rt.name);
            }
        }
        // The floor, in the same rounds.
        let c = spawn_wait(
            {
                let mut c = Command::new(&floor);
                c.arg(&b.rootfs).arg("/bin/true").stdout(Stdio::null());
                c
            },
            None,
        );
        if c.ok {
            add(&mut rows, "run /bin/true (ms)", FLOOR, ms(c.time));
        }
    }

    // 100 runs in sequence, per runtime (interleaved by runtime per block of 10).
    let seq_runs = if quick { 20 } else { 100 };
    let mut totals = [Duration::ZERO; 3];
    for block in 0..seq_runs / 10 {
        for k in 0..3 {
            let ri = (block + k) % 3;
            let rt = &runtimes[ri];
            let r = root(rt);
            for _ in 0..10 {
                let (dir, id) = b.bundle(&["/bin/true"], None);
                totals[ri] += rt
                    .run(&r, &["run", "--bundle", dir.to_str().unwrap_or("."), &id])
                    .time;
                reap_all();
            }
        }
    }
    for (ri, t) in totals.iter().enumerate() {
        add(
            &mut rows,
            &format!("{seq_runs} × run in sequence (ms)"),
            ri,
            ms(*t),
        );
    }

    // Seccomp: the same run with a Docker-shaped profile.
    let profile = docker_like_seccomp();
    for round in 0..rounds.min(10) {
        for k in 0..3 {
            let ri = (round + k) % 3;
            let rt = &runtimes[ri];
            let (dir, id) = b.bundle(&["/bin/true"], Some(&profile));
            let c = rt.run(
                &root(rt),
                &["run", "--bundle", dir.to_str().unwrap_or("."), &id],
            );
            let _ = rt.run(&root(rt), &["delete", "--force", &id]);
            reap_all();
            if c.ok {
                add(
                    &mut rows,
                    "run with Docker-like seccomp (ms)",
                    ri,
                    ms(c.time),
                );
            }
        }
    }

    // Create latency with other containers present, and list with the most.
    let sizes: &[usize] = if quick { &[0, 20] } else { &[0, 100, 500] };
    for (ri, rt) in runtimes.iter().enumerate() {
        let r = work.join(format!("scale-{}", rt.name));
        let mut existing = Vec::new();
        for &n in sizes {
            while existing.len() < n {
                let (dir, id) = b.bundle(&["/bin/sleep", "1000"], None);
                if rt
                    .run(
                        &r,
                        &["create", "--bundle", dir.to_str().unwrap_or("."), &id],
                    )
                    .ok
                {
                    existing.push(id);
                } else {
                    break;
                }
            }
            let mut samples = Vec::new();
            for _ in 0..rounds.min(10) {
                let (dir, id) = b.bundle(&["/bin/sleep", "1000"], None);
                let c = rt.run(
                    &r,
                    &["create", "--bundle", dir.to_str().unwrap_or("."), &id],
                );
                let _ = rt.run(&r, &["delete", "--force", &id]);
                reap_all();
                if c.ok {
                    samples.push(ms(c.time));
                }
            }
            for s in samples {
                add(&mut rows, &format!("create with {n} others (ms)"), ri, s);
            }
        }
        let n = existing.len();
        for _ in 0..5 {
            let c = rt.run(&r, &["list"]);
            add(
                &mut rows,
                &format!("list with {n} containers (ms)"),
                ri,
                ms(c.time),
            );
        }
        for id in &existing {
            let _ = rt.run(&r, &["delete", "--force", id]);
        }
        reap_all();
    }

    // Two parallel create/start/delete loops.
    let per_loop = if quick { 10 } else { 50 };
    for (ri, rt) in runtimes.iter().enumerate() {
        let r = work.join(format!("par-{}", rt.name));
        let mut bundles = Vec::new();
        for _ in 0..2 * per_loop {
            bundles.push(b.bundle(&["/bin/true"], None));
        }
        let start = Instant::now();
        std::thread::scope(|s| {
            for chunk in bundles.chunks(per_loop) {
                let r = &r;
                s.spawn(move || {
                    for (dir, id) in chunk {
                        rt.run(r, &["create", "--bundle", dir.to_str().unwrap_or("."), id]);
                        rt.run(r, &["start", id]);
                        rt.run(r, &["delete", "--force", id]);
                    }
                });
            }
        });
        let secs = start.elapsed().as_secs_f64();
        reap_all();
        add(
            &mut rows,
            "2 parallel create/start/delete loops (containers/s)",
            ri,
            (2 * per_loop) as f64 / secs,
        );
    }

    // Rootless: `run /bin/true` as an unprivileged user (--rootless-user,
    // default huskrootless, made by scripts/setup.sh), each runtime with a
    // state root of the user's; husk from a root-owned copy the user can
    // reach, as a system install is.
    let user = arg(&args, "--rootless-user").unwrap_or_else(|| "huskrootless".into());
    match nix::unistd::User::from_name(&user).ok().flatten() {
        None => eprintln!("husk-bench: no user {user}: no rootless row"),
        Some(u) => {
            let (uid, gid) = (u.uid.as_raw(), u.gid.as_raw());
            let rl = work.join("rootless");
            let _ = fs::create_dir_all(rl.join("bin"));
            let husk_copy = rl.join("bin/husk");
            let _ = fs::copy(&runtimes[2].bin, &husk_copy);
            let bins = [runtimes[0].bin.clone(), runtimes[1].bin.clone(), husk_copy];
            let roots: Vec<PathBuf> = runtimes
                .iter()
                .map(|rt| rl.join(format!("root-{}", rt.name)))
                .collect();
            for r in &roots {
                let _ = fs::create_dir_all(r);
                let _ = std::os::unix::fs::chown(r, Some(uid), Some(gid));
            }
            for round in 0..rounds {
                for k in 0..3 {
                    let ri = (round + k) % 3;
                    let (dir, id) = b.bundle(&["/bin/true"], None);
                    let path = dir.join("config.json");
                    if let Ok(Ok(mut c)) =
                        fs::read(&path).map(|t| serde_json::from_slice::<Value>(&t))
                    {
                        rootless(&mut c, uid, gid);
                        let _ = fs::write(&path, serde_json::to_vec(&c).unwrap_or_default());
                    }
                    let mut cmd = Command::new(&bins[ri]);
                    cmd.arg("--root")
                        .arg(&roots[ri])
                        .args(["run", "--bundle", dir.to_str().unwrap_or("."), &id])
                        .env_clear()
                        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
                        .env("HOME", &rl)
                        .env("XDG_RUNTIME_DIR", &roots[ri])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null());
                    let c = spawn_wait_as(cmd, runtimes[ri].mntns.as_ref(), Some((uid, gid)));
                    reap_all();
                    if c.ok {
                        add(&mut rows, "rootless run /bin/true (ms)", ri, ms(c.time));
                    } else if round == 0 {
                        eprintln!("husk-bench: {} rootless run failed", runtimes[ri].name);
                    }
                }
            }
        }
    }

    // Binary sizes.
    for (ri, rt) in runtimes.iter().enumerate() {
        let size = fs::metadata(&rt.bin).map(|m| m.len()).unwrap_or(0);
        add(&mut rows, "binary size (KiB)", ri, size as f64 / 1024.0);
    }

    // Clean up: bench cgroups, state roots, bundles.
    for hierarchy in fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = fs::remove_dir(hierarchy.path().join("husk-bench"));
    }
    let _ = fs::remove_dir_all(&work);

    println!("| metric | runc | crun | husk | floor | husk/crun | husk/runc |");
    println!("|---|---|---|---|---|---|---|");
    for (name, mut cols) in rows {
        let m: Vec<f64> = cols.iter_mut().map(|c| median(c)).collect();
        let fmt = |v: f64| {
            if v.is_nan() {
                "n/a".to_string()
            } else if v >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        };
        let ratio = |a: f64, b: f64| {
            if a.is_nan() || b.is_nan() || b == 0.0 {
                "n/a".to_string()
            } else {
                format!("{:.2}", a / b)
            }
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            fmt(m[0]),
            fmt(m[1]),
            fmt(m[2]),
            fmt(m[3]),
            ratio(m[2], m[1]),
            ratio(m[2], m[0])
        );
    }
}
