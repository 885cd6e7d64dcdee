//! Rootless mode: husk run by an unprivileged user (`huskrootless`, made by
//! scripts/setup.sh with /etc/subuid and /etc/subgid ranges), with configs
//! from `husk spec --rootless` and `runc spec --rootless` generated as that
//! user, the state under `$XDG_RUNTIME_DIR/husk`, and runc beside husk on the
//! same bundle where the outcome can be compared.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{husk_bin, stderr, stdout};
use serde_json::{Value, json};

const USER: &str = "huskrootless";

fn ids() -> (u32, u32) {
    let id = |flag| {
        let o = Command::new("id").args([flag, USER]).output().unwrap();
        assert!(
            o.status.success(),
            "user {USER} is missing: run scripts/setup.sh (the README's test command does)"
        );
        stdout(&o).trim().parse::<u32>().unwrap()
    };
    (id("-u"), id("-g"))
}

/// A directory of the user's: a busybox rootfs, the husk binary (root's, or
/// the user's own copy), and an XDG_RUNTIME_DIR. Removed on drop, with any
/// container left in it.
struct Home {
    dir: PathBuf,
    uid: u32,
    gid: u32,
    husk: PathBuf,
    xdg: PathBuf,
}

impl Home {
    fn new(name: &str) -> Home {
        let (uid, gid) = ids();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("rootless-{name}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        // The binary as root installs it: root's, mode 755.
        let husk = dir.join("bin/husk");
        fs::copy(husk_bin(), &husk).unwrap();
        for sub in ["b", "home"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
            chown(dir.join(sub), Some(uid), Some(gid)).unwrap();
        }
        // XDG_RUNTIME_DIR, short: podman's rootlessport binds a socket a few
        // levels down, and a socket's path has at most 107 bytes.
        let xdg = PathBuf::from(format!("/tmp/hrl-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&xdg);
        fs::create_dir(&xdg).unwrap();
        chown(&xdg, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).unwrap();
        let rootfs = dir.join("b/rootfs");
        fs::create_dir_all(rootfs.join("bin")).unwrap();
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        fs::copy(common::probe(), rootfs.join("bin/probe")).unwrap();
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for a in String::from_utf8_lossy(&list.stdout).lines() {
            if a != "busybox" {
                std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
            }
        }
        for d in ["proc", "sys", "dev", "tmp", "etc", "data"] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        Home {
            dir,
            uid,
            gid,
            husk,
            xdg,
        }
    }

    fn bundle(&self) -> PathBuf {
        self.dir.join("b")
    }

    fn xdg(&self) -> PathBuf {
        self.xdg.clone()
    }

    /// PROG ARGS… as the user, in the bundle, with a login's environment.
    /// The container's init keeps create's stdout and stderr: for create
    /// they are files, read back once it returns.
    fn run(&self, prog: &Path, args: &[&str]) -> Output {
        if args.first() == Some(&"create") {
            let out = self.dir.join("create.out");
            let err = self.dir.join("create.err");
            let status = self
                .command(prog, args)
                .stdin(std::process::Stdio::null())
                .stdout(fs::File::create(&out).unwrap())
                .stderr(fs::File::create(&err).unwrap())
                .status()
                .unwrap();
            return Output {
                status,
                stdout: fs::read(&out).unwrap(),
                stderr: fs::read(&err).unwrap(),
            };
        }
        self.command(prog, args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    fn command(&self, prog: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={}", self.uid),
            &format!("--regid={}", self.gid),
            "--init-groups",
            "--",
        ])
        .arg(prog)
        .args(args)
        .current_dir(self.bundle())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", self.dir.join("home"))
        .env("USER", USER)
        .env("XDG_RUNTIME_DIR", self.xdg());
        cmd
    }

    fn husk(&self, args: &[&str]) -> Output {
        self.run(&self.husk, args)
    }

    fn husk_ok(&self, args: &[&str]) -> String {
        let o = self.husk(args);
        assert!(
            o.status.success(),
            "husk {args:?}: {}{}",
            stderr(&o),
            stdout(&o)
        );
        stdout(&o)
    }

    /// The config a tool writes with `spec --rootless`, as the user, with
    /// the process's arguments replaced and no terminal.
    fn spec(&self, tool: &Path, args: &[&str]) -> Value {
        let _ = fs::remove_file(self.bundle().join("config.json"));
        let o = self.run(tool, &["spec", "--rootless"]);
        assert!(
            o.status.success(),
            "{tool:?} spec --rootless: {}",
            stderr(&o)
        );
        let mut c: Value =
            serde_json::from_slice(&fs::read(self.bundle().join("config.json")).unwrap()).unwrap();
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!(args);
        c
    }

    fn write(&self, config: &Value) {
        let path = self.bundle().join("config.json");
        fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        chown(&path, Some(self.uid), Some(self.gid)).unwrap();
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let root = self.xdg().join("husk");
        for e in fs::read_dir(&root).into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let _ = self.husk(&["delete", "--force", &id]);
        }
        let runc = self.xdg().join("runc");
        for e in fs::read_dir(&runc).into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let _ = self.run(Path::new("/usr/sbin/runc"), &["delete", "--force", &id]);
        }
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_dir_all(&self.xdg);
    }
}

fn runc() -> &'static Path {
    Path::new("/usr/sbin/runc")
}

#[test]
fn lifecycle_as_an_unprivileged_user() {
    let h = Home::new("lifecycle");
    let c = h.spec(
        &h.husk,
        &["sh", "-c", "id; cat /proc/self/uid_map; sleep 30"],
    );
    h.write(&c);
    h.husk_ok(&["create", "life"]);
    // No --root: the state is in $XDG_RUNTIME_DIR/husk, the user's.
    let state: Value = serde_json::from_str(&h.husk_ok(&["state", "life"])).unwrap();
    assert_eq!(state["status"], "created");
    assert!(h.xdg().join("husk/life").is_dir());
    h.husk_ok(&["start", "life"]);
    let state: Value = serde_json::from_str(&h.husk_ok(&["state", "life"])).unwrap();
    assert_eq!(state["status"], "running");
    let pid = state["pid"].as_i64().unwrap();
    // The init runs as the user on the host.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.contains(&h.uid.to_string()), "{uid_line}");
    // exec and ps.
    let out = h.husk_ok(&["exec", "life", "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"));
    let map: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", &h.uid.to_string(), "1"]);
    let ps = h.husk_ok(&["ps", "life"]);
    assert!(ps.contains("sleep"), "{ps}");
    h.husk_ok(&["kill", "life", "KILL"]);
    for _ in 0..100 {
        let s: Value = serde_json::from_str(&h.husk_ok(&["state", "life"])).unwrap();
        if s["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    h.husk_ok(&["delete", "life"]);
    assert!(!h.xdg().join("husk/life").exists(), "state left");
    assert_eq!(h.husk_ok(&["list", "-q"]), "");
}

#[test]
fn husk_and_runc_agree_on_their_own_rootless_configs() {
    // Each tool's `spec --rootless`, run by both: the container sees the same.
    let h = Home::new("specs");
    let script = "id; cat /proc/self/uid_map /proc/self/gid_map; \
                  touch /x 2>&1 | head -1; ls /sys/fs/cgroup >/dev/null && echo cgroup-ok; \
                  echo hello > /dev/shm/t && cat /dev/shm/t";
    for tool in [h.husk.clone(), runc().to_path_buf()] {
        let c = h.spec(&tool, &["sh", "-c", script]);
        h.write(&c);
        let husk = h.husk(&["run", "spec-h"]);
        let runc = h.run(runc(), &["run", "spec-r"]);
        assert!(
            husk.status.success(),
            "{tool:?}'s config under husk: {}",
            stderr(&husk)
        );
        assert!(
            runc.status.success(),
            "{tool:?}'s config under runc: {}",
            stderr(&runc)
        );
        assert_eq!(stdout(&husk), stdout(&runc), "{tool:?}'s config");
    }
}

#[test]
fn ranges_from_etc_subuid_are_mapped_through_newuidmap() {
    let h = Home::new("ranges");
    let sub = |file: &str| -> u32 {
        let text = fs::read_to_string(file).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{USER}:")))
            .unwrap();
        line.split(':').nth(1).unwrap().parse().unwrap()
    };
    let (subuid, subgid) = (sub("/etc/subuid"), sub("/etc/subgid"));
    let mut c = h.spec(
        &h.husk,
        &["sh", "-c", "id -u; id -g; cat /proc/self/uid_map"],
    );
    c["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": h.uid, "size": 1},
        {"containerID": 1, "hostID": subuid, "size": 65536}
    ]);
    c["linux"]["gidMappings"] = json!([
        {"containerID": 0, "hostID": h.gid, "size": 1},
        {"containerID": 1, "hostID": subgid, "size": 65536}
    ]);
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    h.write(&c);
    let out = h.husk_ok(&["run", "ranges"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], ["1000", "1000"], "{out}");
    assert_eq!(lines.len(), 4, "{out}");
    let second: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(second, ["1", &subuid.to_string(), "65536"]);
    // A range that is not the user's is refused by newuidmap, and said so.
    c["linux"]["uidMappings"][1]["hostID"] = json!(1);
    h.write(&c);
    let o = h.husk(&["run", "ranges2"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("newuidmap") && err.contains("linux.uidMappings"),
        "{err}"
    );
    assert!(!h.xdg().join("husk/ranges2").exists(), "state left");
}

#[test]
fn limits_without_a_delegated_cgroup_are_refused_naming_the_field() {
    let h = Home::new("limits");
    let mut c = h.spec(&h.husk, &["true"]);
    c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 10}});
    h.write(&c);
    let o = h.husk(&["run", "limits"]);
    assert!(!o.status.success(), "limits accepted without a cgroup");
    let err = stderr(&o);
    assert!(
        err.contains("linux.resources") && err.contains("rootless"),
        "{err}"
    );
    assert!(!h.xdg().join("husk/limits").exists(), "state left");
    // Without limits the same container runs, in no cgroup of its own.
    c["linux"]["resources"] = json!({});
    c["process"]["args"] = json!(["cat", "/proc/self/cgroup"]);
    h.write(&c);
    let out = h.husk_ok(&["run", "nolimits"]);
    assert!(!out.contains("husk/nolimits"), "{out}");
}

#[test]
fn a_husk_binary_the_user_owns_is_not_writable_through_the_init() {
    // The user's own copy of husk (in ~/bin, say): the container's root is
    // that user, so a container process that reached the binary through
    // /proc/PID/exe could rewrite it (runc CVE-2019-5736). husk runs from a
    // sealed copy instead: even the host's root cannot write what the init's
    // exe is.
    let mut h = Home::new("ownbinary");
    let own = h.dir.join("bin/husk-own");
    fs::copy(husk_bin(), &own).unwrap();
    chown(&own, Some(h.uid), Some(h.gid)).unwrap();
    h.husk = own.clone();
    let before = fs::read(&own).unwrap();
    let c = h.spec(&h.husk, &["sleep", "30"]);
    h.write(&c);
    h.husk_ok(&["create", "own"]);
    let state: Value = serde_json::from_str(&h.husk_ok(&["state", "own"])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let exe = fs::File::open(format!("/proc/{pid}/exe")).unwrap();
    let meta = exe.metadata().unwrap();
    let own_meta = fs::metadata(&own).unwrap();
    assert!(
        !(std::os::unix::fs::MetadataExt::ino(&meta)
            == std::os::unix::fs::MetadataExt::ino(&own_meta)
            && std::os::unix::fs::MetadataExt::dev(&meta)
                == std::os::unix::fs::MetadataExt::dev(&own_meta)),
        "the init runs the user's file itself"
    );
    h.husk_ok(&["delete", "--force", "own"]);
    // Once nothing runs from it, a write through the init's exe fails.
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&exe));
    let w = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"owned"));
    assert!(w.is_err(), "the init's exe was writable");
    assert!(fs::read(&own).unwrap() == before, "the user's husk changed");
    // A root-owned install is run as it is: the kernel refuses the user.
    let h = Home::new("rootbinary");
    let c = h.spec(&h.husk, &["sleep", "30"]);
    h.write(&c);
    h.husk_ok(&["create", "rootown"]);
    let state: Value = serde_json::from_str(&h.husk_ok(&["state", "rootown"])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let o = h.run(
        Path::new("/bin/sh"),
        &["-c", &format!("echo x >> /proc/{pid}/exe")],
    );
    assert!(!o.status.success(), "the user wrote the init's exe");
    h.husk_ok(&["delete", "--force", "rootown"]);
}

#[test]
fn a_terminal_a_bind_of_the_users_directory_and_a_network_of_its_own() {
    let h = Home::new("tty");
    let data = h.dir.join("home/data");
    fs::create_dir_all(&data).unwrap();
    chown(&data, Some(h.uid), Some(h.gid)).unwrap();
    let mut c = h.spec(
        &h.husk,
        &[
            "sh",
            "-c",
            "tty; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; \
             echo from-container > /data/out; touch /rootfs-write 2>/dev/null || echo ro; exit 4",
        ],
    );
    c["process"]["terminal"] = json!(true);
    let mut ns = c["linux"]["namespaces"].as_array().unwrap().clone();
    ns.push(json!({"type": "network"}));
    c["linux"]["namespaces"] = json!(ns);
    let mut mounts = c["mounts"].as_array().unwrap().clone();
    mounts.push(
        json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]}),
    );
    c["mounts"] = json!(mounts);
    h.write(&c);
    // In the foreground husk serves the terminal itself, as a pty.
    let o = h.husk(&["run", "tty"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(lines, ["/dev/pts/0", "lo", "ro"], "{out:?}");
    assert!(out.contains("\r\n"), "not through a pty: {out:?}");
    // The file the container's root wrote is the user's on the host.
    let meta = fs::metadata(data.join("out")).unwrap();
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&meta),
            std::os::unix::fs::MetadataExt::gid(&meta)
        ),
        (h.uid, h.gid)
    );
    assert_eq!(
        fs::read_to_string(data.join("out")).unwrap(),
        "from-container\n"
    );
    assert!(!h.xdg().join("husk/tty").exists(), "state left");
}

/// Rootless podman (slirp4netns, its own user namespace from /etc/subuid)
/// with husk as its runtime: podman runs husk as root of a namespace that
/// does not map every id, with no user namespace in the config.
struct Podman<'a> {
    home: &'a Home,
}

impl Podman<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        // Bounded: a podman that hangs fails the test instead of the suite.
        let mut c = self
            .home
            .command(Path::new("/usr/bin/timeout"), &["120", "/usr/bin/podman"]);
        c.env("CONTAINERS_CONF", self.home.dir.join("containers.conf"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .args(args)
            .stdin(std::process::Stdio::null());
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args).output().unwrap();
        assert!(o.status.success(), "podman {args:?}: {}", stderr(&o));
        stdout(&o)
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        let _ = self
            .cmd(&["rm", "--all", "--force", "--time", "0"])
            .output();
        // podman's pause process, which holds its user namespace: by pid.
        let pidfile = self.home.xdg().join("libpod/tmp/pause.pid");
        if let Some(pid) = fs::read_to_string(pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[test]
fn rootless_podman_runs_husk() {
    let h = Home::new("podman");
    fs::write(
        h.dir.join("containers.conf"),
        format!(
            "[engine]\nruntime = \"husk\"\n[engine.runtimes]\nhusk = [\"{}\"]\nrunc = [\"/usr/sbin/runc\"]\n",
            h.husk.display()
        ),
    )
    .unwrap();
    let p = Podman { home: &h };
    // The image: the test's busybox rootfs, as the user's file.
    let tar = h.dir.join("home/bb.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(h.bundle().join("rootfs"))
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    chown(&tar, Some(h.uid), Some(h.gid)).unwrap();
    p.ok(&[
        "import",
        "--change",
        "ENV PATH=/bin",
        tar.to_str().unwrap(),
        "localhost/rl-bb",
    ]);

    // The exit status and output come back through conmon and podman.
    let o = p
        .cmd(&[
            "run",
            "--rm",
            "localhost/rl-bb",
            "sh",
            "-c",
            "echo hello; exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(
        (o.status.code(), stdout(&o).trim().to_string()),
        (Some(3), "hello".into()),
        "{}",
        stderr(&o)
    );

    // podman's config runs under husk as under runc: the same ids,
    // capabilities, devices and mounts, bar the cgroup hierarchy (runc makes
    // a tmpfs of v1 binds on this hybrid host, husk binds the host's
    // read-only) and husk's masks being nosuid,nodev,noexec as well as ro.
    let probe = "id; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status; \
        ls -l /dev | awk '{print $1, $3, $4, $NF}' | sort | tr '\\n' ' '; echo; \
        awk '{print $2, $3, $4}' /proc/self/mounts | grep -v '^/sys/fs/cgroup\\|^/ ' | \
        sed 's/,size=[0-9k]*//; s/,nr_inodes=[0-9]*//; s/^\\(.* tmpfs ro\\),nosuid,nodev,noexec/\\1/' | sort; \
        cat /proc/self/uid_map; ls /sys/fs/cgroup >/dev/null && echo cgroup-readable";
    for flags in [
        &[][..],
        &["--read-only", "--cap-drop", "ALL"][..],
        &["--user", "1000:1000", "--tmpfs", "/scratch"][..],
    ] {
        let run = |runtime: &str| {
            let mut args = vec!["run", "--rm", "--network", "none", "--runtime", runtime];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["localhost/rl-bb", "sh", "-c", probe]);
            p.cmd(&args).output().unwrap()
        };
        let (r, k) = (run("runc"), run("husk"));
        assert_eq!(
            (k.status.code(), stdout(&k)),
            (r.status.code(), stdout(&r)),
            "podman run {flags:?}: husk (left) and runc (right) differ: {}{}",
            stderr(&k),
            stderr(&r)
        );
    }

    // -d with a web server published on the host's port, through
    // slirp4netns and podman's rootlessport.
    let port = 18391;
    let id = p.ok(&[
        "run", "-d", "--name", "web", "-p", &format!("{port}:80"), "localhost/rl-bb", "sh", "-c",
        "mkdir -p /tmp/www && echo rootless-page > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www",
    ]);
    assert!(!id.trim().is_empty());
    let get = || -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .ok()?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    };
    let mut page = None;
    for _ in 0..50 {
        page = get().filter(|b| b.contains("rootless-page"));
        if page.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(page.is_some(), "no page through the published port");
    // exec joins it; the server is PID 1 there.
    let out = p.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; id -u",
    ]);
    assert!(out.starts_with("httpd -f -p 80"), "{out}");
    assert!(out.ends_with("0\n"), "{out}");
    // stop (httpd as PID 1 ignores SIGTERM: podman kills it after the
    // timeout), then rm: nothing of husk's is left.
    p.ok(&["stop", "--time", "1", "web"]);
    let state = p.ok(&["inspect", "web", "--format", "{{.State.Status}}"]);
    assert_eq!(state.trim(), "exited");
    p.ok(&["rm", "web"]);
    assert_eq!(p.ok(&["ps", "--all", "--quiet"]), "");
    let left: Vec<_> = fs::read_dir(h.xdg().join("husk"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "husk state left: {left:?}");
    assert!(get().is_none(), "the port is still published");
}

// ---- The escapes of tests/escapes.rs that apply to a rootless container ----

#[test]
fn a_leaked_host_descriptor_does_not_cross_rootless() {
    // The caller leaks a descriptor of the host's / (no CLOEXEC); the
    // container looks for it among its own (CVE-2024-21626's way out).
    let h = Home::new("fdleak");
    let c = h.spec(
        &h.husk,
        &[
            "sh",
            "-c",
            "ls /proc/self/fd | sort -n | tr '\\n' ' '; \
             for n in 3 4 5 6 7 8 9; do [ -e /proc/self/fd/$n/etc/hostname ] && echo reached-host-via-$n; done; true",
        ],
    );
    h.write(&c);
    let leak = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    // SAFETY: clearing FD_CLOEXEC on a descriptor this test owns.
    unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&leak), libc::F_SETFD, 0) };
    let o = h.husk(&["run", "fdleak"]);
    drop(leak);
    assert!(o.status.success(), "{}", stderr(&o));
    // ls opens one descriptor (3) for the directory it lists.
    assert_eq!(stdout(&o), "0 1 2 3 ", "{}", stderr(&o));
    // And a working directory through a descriptor is refused outright.
    let mut c = h.spec(&h.husk, &["pwd"]);
    for n in 3..8 {
        c["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        h.write(&c);
        let o = h.husk(&["run", "fdcwd"]);
        assert!(!o.status.success(), "fd {n}: ran in {}", stdout(&o));
        assert!(stderr(&o).contains("process.cwd"), "{}", stderr(&o));
    }
}

#[test]
fn a_rootless_container_cannot_reach_the_husk_binary() {
    // Container A runs; container B joins A's user and pid namespaces and
    // stays in `created`, its init running husk code in A's pid namespace.
    // A process of A goes for B's init's exe (CVE-2019-5736): the init is
    // not dumpable, so neither the link nor the file can be opened.
    let h = Home::new("exe");
    let c = h.spec(&h.husk, &["sleep", "30"]);
    h.write(&c);
    h.husk_ok(&["create", "exe-a"]);
    h.husk_ok(&["start", "exe-a"]);
    let state: Value = serde_json::from_str(&h.husk_ok(&["state", "exe-a"])).unwrap();
    let a = state["pid"].as_i64().unwrap();
    let mut c = h.spec(&h.husk, &["true"]);
    let mut ns: Vec<Value> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "user" && n["type"] != "pid")
        .cloned()
        .collect();
    ns.push(json!({"type": "user", "path": format!("/proc/{a}/ns/user")}));
    ns.push(json!({"type": "pid", "path": format!("/proc/{a}/ns/pid")}));
    c["linux"]["namespaces"] = json!(ns);
    c["linux"].as_object_mut().unwrap().remove("uidMappings");
    c["linux"].as_object_mut().unwrap().remove("gidMappings");
    h.write(&c);
    h.husk_ok(&["create", "exe-b"]);
    let state: Value = serde_json::from_str(&h.husk_ok(&["state", "exe-b"])).unwrap();
    let b = state["pid"].as_i64().unwrap();
    // B's init's pid as A sees it: the last of NSpid.
    let status = fs::read_to_string(format!("/proc/{b}/status")).unwrap();
    let inner = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_string();
    assert_ne!(inner, b.to_string(), "B is not in A's pid namespace");
    let out = h.husk_ok(&[
        "exec",
        "exe-a",
        "sh",
        "-c",
        &format!("probe open-path /proc/{inner}/exe; probe open-write /proc/{inner}/exe; true"),
    ]);
    assert_eq!(
        out, "error EACCES\nerror EACCES\n",
        "a container process reached the husk binary"
    );
    // B's init never became anything else: start still runs `true`.
    h.husk_ok(&["start", "exe-b"]);
    h.husk_ok(&["delete", "--force", "exe-b"]);
    h.husk_ok(&["delete", "--force", "exe-a"]);
    // `process.args` naming /proc/self/exe runs husk itself.
    let c = h.spec(&h.husk, &["/proc/self/exe", "--version"]);
    h.write(&c);
    let out = h.husk_ok(&["run", "selfexe"]);
    assert!(out.starts_with("husk version"), "{out}");
}

#[test]
fn masked_and_read_only_paths_hold_rootless() {
    let h = Home::new("masked");
    let c = h.spec(
        &h.husk,
        &[
            "sh",
            "-c",
            "wc -c < /proc/timer_list; wc -c < /proc/keys; ls /sys/firmware | wc -l; \
             echo x > /proc/sys/kernel/hostname 2>/dev/null || echo sysctl-ro; \
             echo x > /proc/sysrq-trigger 2>/dev/null || echo sysrq-ro; \
             touch /sys/kernel/x 2>/dev/null || echo sys-ro",
        ],
    );
    h.write(&c);
    let out = h.husk_ok(&["run", "masked"]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "0", "sysctl-ro", "sysrq-ro", "sys-ro"],
        "{out}"
    );
}
