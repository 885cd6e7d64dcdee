//! What the container sees: isolation, process attributes and the root
//! filesystem, observed from inside the container.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::path::Path;
use std::process::Command;

#[test]
fn hostname_and_pid_1() {
    let mut b = Bundle::sh("hostname; echo pid=$$; cat /proc/sys/kernel/domainname");
    b.config["hostname"] = json!("box1");
    b.config["domainname"] = json!("example.test");
    assert_eq!(run_ok(&b, "host"), "box1\npid=1\nexample.test\n");
}

#[test]
fn capabilities_and_no_new_privs() {
    let mut b = Bundle::sh("grep -E '^(Cap|NoNewPrivs)' /proc/self/status");
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"]
    });
    b.config["process"]["noNewPrivileges"] = json!(true);
    let out = run_ok(&b, "caps");
    // CAP_CHOWN=0, CAP_KILL=5, CAP_NET_BIND_SERVICE=10
    assert!(out.contains("CapInh:\t0000000000000020"), "{out}");
    assert!(out.contains("CapPrm:\t0000000000000420"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000420"), "{out}");
    assert!(out.contains("CapBnd:\t0000000000000421"), "{out}");
    assert!(out.contains("CapAmb:\t0000000000000020"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    b.config["process"]["noNewPrivileges"] = json!(false);
    assert!(run_ok(&b, "caps2").contains("NoNewPrivs:\t0"));
}

#[test]
fn rlimits_applied() {
    let mut b = Bundle::sh("ulimit -n; ulimit -Hn; ulimit -c");
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    ]);
    assert_eq!(run_ok(&b, "rlim"), "123\n456\n0\n");
}

#[test]
fn rlimit_above_hard_limit_is_a_clear_error() {
    let mut b = Bundle::sh("true");
    // Above the host's nr_open: setrlimit fails even for root.
    b.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": 1u64 << 40, "hard": 1u64 << 40}]);
    let o = b.run("rlimbad");
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("process.rlimits[0]") && e.contains("RLIMIT_NOFILE"),
        "{e}"
    );
    assert!(!b.root.join("rlimbad").exists());
}

#[test]
fn user_groups_env_cwd_umask() {
    let mut b = Bundle::sh("id; echo \"$FOO\"; pwd; umask");
    b.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 7], "umask": 23});
    b.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
    b.config["process"]["cwd"] = json!("/tmp");
    let out = run_ok(&b, "user");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("uid=1000(user) gid=1000(user) groups="),
        "{out}"
    );
    assert!(lines[0].contains("5") && lines[0].contains("7"), "{out}");
    assert_eq!(&lines[1..], ["bar baz", "/tmp", "0027"]);
}

#[test]
fn cwd_created_when_missing() {
    let mut b = Bundle::sh("pwd");
    b.config["process"]["cwd"] = json!("/tmp/new/dir");
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/tmp/new/dir", "type": "tmpfs", "source": "tmpfs"}));
    assert_eq!(run_ok(&b, "cwd"), "/tmp/new/dir\n");
}

#[test]
fn readonly_root_and_readonly_bind() {
    let mut b = Bundle::sh(
        "touch /rootfile 2>/dev/null && echo root-writable; touch /ro/x 2>/dev/null && echo ro-writable; touch /tmp/x && echo tmp-ok",
    );
    let host = b.dir.parent().unwrap().join("rodata");
    fs::create_dir_all(&host).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/ro", "type": "bind", "source": host, "options": ["rbind", "ro"]}),
    );
    b.config["root"]["readonly"] = json!(true);
    assert_eq!(run_ok(&b, "ro"), "tmp-ok\n");
    assert!(fs::read_dir(&host).unwrap().next().is_none());
}

#[test]
fn masked_and_readonly_paths() {
    let script = "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; \
                  touch /tmp/x 2>/dev/null && echo tmp-writable; echo done";
    // Without masking, the files have content and /tmp is writable (the
    // control for the assertions below).
    let mut b = Bundle::sh(script);
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    let out = run_ok(&b, "nomask");
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_ne!(words[0], "0", "{out}");
    assert!(out.contains("tmp-writable"), "{out}");

    b.config["linux"]["maskedPaths"] =
        json!(["/proc/timer_list", "/sys/firmware", "/does/not/exist"]);
    b.config["linux"]["readonlyPaths"] = json!(["/tmp", "/nope"]);
    let out = run_ok(&b, "mask");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "done"],
        "{out}"
    );
}

#[test]
fn bind_mount_sees_host_data_and_writes_back() {
    let mut b = Bundle::sh("cat /data/in; echo out > /data/out");
    let share = b.share("/data");
    fs::write(share.join("in"), "from-host\n").unwrap();
    assert_eq!(run_ok(&b, "bind"), "from-host\n");
    assert_eq!(fs::read_to_string(share.join("out")).unwrap(), "out\n");
}

#[test]
fn mounts_stay_in_container() {
    let mut b =
        Bundle::sh("mount -t tmpfs t /tmp && echo mounted; grep -c ' / ' /proc/self/mountinfo");
    b.config["process"]["capabilities"]["bounding"] = json!(["CAP_SYS_ADMIN"]);
    b.config["process"]["capabilities"]["effective"] = json!(["CAP_SYS_ADMIN"]);
    b.config["process"]["capabilities"]["permitted"] = json!(["CAP_SYS_ADMIN"]);
    let before = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let out = run_ok(&b, "mnt");
    assert!(out.starts_with("mounted\n"), "{out}");
    let after = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    assert_eq!(before, after, "a mount leaked to the host");
}

#[test]
fn default_devices_and_extra_device() {
    let mut b = Bundle::sh(
        "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/mydev | awk '{print $1, $5, $6, $NF}'; readlink /dev/ptmx; readlink /dev/fd; echo x > /dev/null && echo null-ok",
    );
    b.config["linux"]["devices"] = json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640, "uid": 0, "gid": 0}]);
    let out = run_ok(&b, "dev");
    assert!(out.contains("crw-rw-rw- 1, 3 /dev/null"), "{out}");
    assert!(out.contains("crw-r----- 1, 5 /dev/mydev"), "{out}");
    assert!(out.contains("crw-rw-rw- 5, 0 /dev/tty"), "{out}");
    assert!(out.contains("pts/ptmx\n/proc/self/fd\n"), "{out}");
    assert!(out.ends_with("null-ok\n"), "{out}");
}

#[test]
fn only_stdio_reaches_the_container() {
    // A descriptor the caller leaks without CLOEXEC must not cross.
    let b = Bundle::sh("ls /proc/self/fd | sort -n | tr '\\n' ' '");
    b.write();
    let leak = fs::File::open("/etc/hostname").unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&leak);
    // SAFETY: clearing FD_CLOEXEC on a descriptor this test owns.
    unsafe { libc::fcntl(raw, libc::F_SETFD, 0) };
    let o = b
        .husk()
        .args(["run", "-b"])
        .arg(&b.dir)
        .arg("fds")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    drop(leak);
    // ls itself opens one descriptor (3) for the directory it lists.
    assert_eq!(stdout(&o), "0 1 2 3 ", "{}", stderr(&o));
}

#[test]
fn preserve_fds_passes_extra_descriptors() {
    let b = Bundle::sh("cat <&3");
    b.write();
    let f = fs::File::open(b.dir.join("config.json")).unwrap();
    let mut cmd = b.husk();
    cmd.args(["run", "--preserve-fds", "1", "-b"])
        .arg(&b.dir)
        .arg("pfd")
        .stdin(std::process::Stdio::null());
    let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
    // SAFETY: in the forked child before exec, dup2 onto fd 3 only.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if raw != 3 && libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // dup2 onto itself keeps FD_CLOEXEC: clear it either way.
            libc::fcntl(3, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    assert!(stdout(&o).contains("\"ociVersion\""), "{}", stderr(&o));
}

#[test]
fn joined_network_namespace_is_shared() {
    let b1 = Bundle::new(&["sleep", "60"]);
    let c1 = b1.create("netowner");
    let pid = c1.pid();
    let ns_path = format!("/proc/{pid}/ns/net");
    let want = fs::read_link(&ns_path).unwrap();
    let host = fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(
        want, host,
        "the first container has its own network namespace"
    );
    let mut b2 = Bundle::sh("readlink /proc/self/ns/net");
    let mut ns = b2.config["linux"]["namespaces"].as_array().unwrap().clone();
    ns.retain(|n| n["type"] != "network");
    ns.push(json!({"type": "network", "path": ns_path}));
    b2.config["linux"]["namespaces"] = json!(ns);
    assert_eq!(run_ok(&b2, "netjoin").trim(), want.to_str().unwrap());
}

#[test]
fn sysctl_written_in_container_namespace() {
    let mut b = Bundle::sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni");
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
    assert_eq!(run_ok(&b, "sysctl"), "1\n1234\n");
    // The host's value is untouched.
    let host = fs::read_to_string("/proc/sys/kernel/shmmni").unwrap();
    assert_ne!(host.trim(), "1234");
}

#[test]
fn user_namespace_maps_ids() {
    let mut b = Bundle::sh("id -u; cat /proc/self/uid_map /proc/self/gid_map | tr -s ' '");
    let mut ns = b.config["linux"]["namespaces"].as_array().unwrap().clone();
    ns.push(json!({"type": "user"}));
    b.config["linux"]["namespaces"] = json!(ns);
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let out = run_ok(&b, "userns");
    let norm: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(norm, ["0", "0 100000 65536", "0 100000 65536"], "{out}");
}

#[test]
fn no_pivot_moves_root() {
    let b = Bundle::sh("ls /bin/busybox && echo ok");
    b.write();
    let o = b
        .husk()
        .args(["run", "--no-pivot", "-b"])
        .arg(&b.dir)
        .arg("nopivot")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "/bin/busybox\nok\n", "{}", stderr(&o));
}

#[test]
fn time_namespace_offsets() {
    let mut b = Bundle::sh("cut -d. -f1 /proc/uptime");
    let mut ns = b.config["linux"]["namespaces"].as_array().unwrap().clone();
    ns.push(json!({"type": "time"}));
    b.config["linux"]["namespaces"] = json!(ns);
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400 * 365}});
    let up: u64 = run_ok(&b, "timens").trim().parse().unwrap();
    assert!(up >= 86400 * 365, "uptime {up}");
}

#[test]
fn console_socket_receives_pty_master() {
    use std::io::Read;
    use std::os::unix::net::UnixListener;
    let mut b = Bundle::sh("tty; echo on-the-pty");
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    b.write();
    let sock = b.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            std::os::fd::AsRawFd::as_raw_fd(&conn),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        let mut fd = None;
        for c in msg.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                fd = Some(fds[0]);
            }
        }
        // SAFETY: the descriptor was just received and is owned by nobody else.
        let mut master = unsafe {
            <fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd.expect("no fd received"))
        };
        let mut out = Vec::new();
        let mut chunk = [0u8; 1024];
        // Reading the master ends with EIO once the container's side closes.
        while let Ok(n) = master.read(&mut chunk) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    let o = b
        .husk()
        .args(["run", "-b"])
        .arg(&b.dir)
        .arg("--console-socket")
        .arg(&sock)
        .arg("tty")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = receiver.join().unwrap();
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("on-the-pty"), "{text:?}");
}

#[test]
fn missing_executable_fails_create_and_leaves_nothing() {
    let b = Bundle::new(&["/bin/does-not-exist"]);
    let (_c, o) = b.try_create("noexe");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does-not-exist"), "{}", stderr(&o));
    let b2 = Bundle::new(&["nosuchprog"]);
    let (_c2, o2) = b2.try_create("noexe2");
    assert!(
        stderr(&o2).contains("executable file not found in $PATH"),
        "{}",
        stderr(&o2)
    );
    assert!(!b.root.join("noexe").exists());
    assert!(!b2.root.join("noexe2").exists());
    assert!(!cgroup_root().join("husk/noexe").exists());
    assert!(!cgroup_root().join("husk/noexe2").exists());
}

#[test]
fn idmapped_bind_mount_shows_mapped_owner() {
    let mut b =
        Bundle::sh("ls -ln /m/f | awk '{print $3, $4}'; ls -ln /plain/f | awk '{print $3, $4}'");
    let host = b.dir.parent().unwrap().join("idmapped");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("f"), "x").unwrap();
    std::os::unix::fs::chown(host.join("f"), Some(0), Some(0)).unwrap();
    let maps = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/m", "type": "bind", "source": host,
        "options": ["rbind", "idmap"], "uidMappings": maps, "gidMappings": maps}));
    mounts.push(
        json!({"destination": "/plain", "type": "bind", "source": host, "options": ["rbind"]}),
    );
    // A file owned by 0 on disk is seen through the mapping; the plain bind is unchanged.
    assert_eq!(run_ok(&b, "idmap"), "100000 100000\n0 0\n");
}

#[test]
fn oom_score_adj_and_personality() {
    let mut b = Bundle::sh("cat /proc/self/oom_score_adj; uname -m");
    b.config["process"]["oomScoreAdj"] = json!(500);
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    assert_eq!(run_ok(&b, "oomp"), "500\ni686\n");
}

#[test]
fn mount_destination_symlink_stays_in_rootfs() {
    // Mount destinations that are symlinks pointing out of the rootfs, absolute
    // and by `..`: the mounts must land inside the rootfs, where the links
    // resolve with the rootfs as /, and nothing may appear on the host.
    let mut b = Bundle::sh("touch /data/abs/proof /data/rel/proof");
    let rootfs_copy = b.own_rootfs();
    let name = format!("husk-escape-{}", std::process::id());
    let host_target = Path::new("/").join(&name);
    assert!(!host_target.exists());
    std::os::unix::fs::symlink(&host_target, rootfs_copy.join("data/abs")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../../../../../../../{name}-rel"),
        rootfs_copy.join("data/rel"),
    )
    .unwrap();
    b.config["root"]["readonly"] = json!(false);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/data/abs", "type": "tmpfs", "source": "tmpfs"}));
    mounts.push(json!({"destination": "/data/rel", "type": "tmpfs", "source": "tmpfs"}));
    let o = b.run("symdest");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !host_target.exists(),
        "{} was created on the host",
        host_target.display()
    );
    assert!(!Path::new("/").join(format!("{name}-rel")).exists());
    assert!(
        rootfs_copy.join(&name).is_dir(),
        "not created inside the rootfs"
    );
    assert!(
        rootfs_copy.join(format!("{name}-rel")).is_dir(),
        "not created inside the rootfs"
    );
}

#[test]
fn foreground_run_serves_the_terminal_itself() {
    let mut b = Bundle::sh("tty; echo on-tty; exit 5");
    b.config["process"]["terminal"] = json!(true);
    let o = b.run("fgtty");
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let out = stdout(&o);
    // Through a pty: the container sees a terminal and lines end in CRLF.
    assert!(out.contains("/dev/pts/0\r\n"), "{out:?}");
    assert!(out.contains("on-tty\r\n"), "{out:?}");
    assert!(!b.root.join("fgtty").exists());
}

#[test]
fn joined_user_namespace_owns_the_new_namespaces() {
    let userns = |b: &mut Bundle| {
        let mut ns = b.config["linux"]["namespaces"].as_array().unwrap().clone();
        ns.push(json!({"type": "user"}));
        b.config["linux"]["namespaces"] = json!(ns);
        b.config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        b.config["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    };
    let mut b1 = Bundle::new(&["sleep", "60"]);
    userns(&mut b1);
    let c1 = b1.create("userowner");
    let user_path = format!("/proc/{}/ns/user", c1.pid());
    let want = fs::read_link(&user_path).unwrap();

    // Joins the first container's user namespace and makes all others anew in it.
    let mut b2 = Bundle::sh(
        "readlink /proc/self/ns/user; echo pid=$$; id -u; tr -s ' ' < /proc/self/uid_map; hostname",
    );
    let mut ns = b2.config["linux"]["namespaces"].as_array().unwrap().clone();
    ns.push(json!({"type": "user", "path": user_path}));
    b2.config["linux"]["namespaces"] = json!(ns);
    b2.config["hostname"] = json!("joined");
    let out = run_ok(&b2, "userjoin");
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        [
            want.to_str().unwrap(),
            "pid=1",
            "0",
            "0 200000 65536",
            "joined"
        ],
        "{out}"
    );
}

#[test]
fn default_umask_is_0022() {
    // The init works with umask 0 for exact modes; the process gets runc's default.
    let b = Bundle::sh("umask");
    assert_eq!(run_ok(&b, "umask"), "0022\n");
}

#[test]
fn without_a_mount_namespace_the_container_shares_the_runtimes_and_leaves_nothing() {
    // config-linux.md: a namespace type not listed is inherited from the
    // runtime. The container then sees the runtime's mount namespace, its
    // own rootfs (entered by chroot, exec too) with its mounts, and delete
    // takes every mount away. runc does this too, but makes the runtime's
    // `/` a slave and leaves all the mounts behind. Run in a namespace of
    // the test's own whose `/` is shared, to see that husk leaves it so.
    let mut b = Bundle::sh(
        "readlink /proc/self/ns/mnt; cat /marker; ls /proc/self/fd >/dev/null && sleep 30",
    );
    let rootfs = b.own_rootfs();
    fs::write(rootfs.join("marker"), "container root\n").unwrap();
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "mount");
    b.write();
    let husk = format!("{} --root {}", husk_bin(), b.root.display());
    let script = format!(
        r#"set -e
mount --make-rshared /
before=$(awk '$5 == "/" {{print $7}}' /proc/self/mountinfo)
readlink /proc/self/ns/mnt > {dir}/host-mnt
{husk} create -b {bundle} nomnt > {dir}/out 2>&1
{husk} start nomnt
grep -c " {rootfs}" /proc/self/mountinfo > {dir}/mounts-while-running
{husk} exec nomnt cat /marker > {dir}/exec-out
{husk} kill nomnt KILL
sleep 0.3
{husk} delete -f nomnt
grep -c " {rootfs}" /proc/self/mountinfo > {dir}/mounts-after || true
after=$(awk '$5 == "/" {{print $7}}' /proc/self/mountinfo)
echo "$before" > {dir}/prop-before
echo "$after" > {dir}/prop-after
"#,
        dir = b.dir.display(),
        bundle = b.dir.display(),
        rootfs = rootfs.display(),
    );
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "unchanged", "sh", "-c", &script])
        .output()
        .unwrap();
    reap_orphans();
    let read = |n: &str| fs::read_to_string(b.dir.join(n)).unwrap_or_default();
    assert!(o.status.success(), "{}{}", stderr(&o), read("out"));
    let out = read("out");
    assert!(
        out.contains(read("host-mnt").trim()) && out.contains("container root"),
        "the container is not in the runtime's mount namespace, or not in its root: {out}"
    );
    assert_eq!(
        read("exec-out"),
        "container root\n",
        "exec did not enter the container's root"
    );
    let running: u32 = read("mounts-while-running").trim().parse().unwrap();
    assert!(
        running >= 3,
        "the container's mounts were not made in the shared namespace"
    );
    assert_eq!(
        read("mounts-after").trim(),
        "0",
        "delete left mounts behind"
    );
    assert!(
        read("prop-before").starts_with("shared:"),
        "{}",
        read("prop-before")
    );
    assert_eq!(
        read("prop-before"),
        read("prop-after"),
        "the runtime's / changed propagation"
    );
}

#[test]
fn tmpcopyup_starts_a_tmpfs_with_what_it_covers() {
    // podman's --read-only mounts /run, /tmp and /var/tmp as tmpfs with
    // `tmpcopyup` (runc's and crun's extension): the tmpfs starts with a copy
    // of the image's directory, modes, owners and links as they were (a
    // link is copied as a link, never followed), and writes stay in it.
    let mut b = Bundle::sh(
        "stat -c '%a %u %n' /run/d /run/d/f; cat /run/d/f; readlink /run/link; \
         echo new > /run/d/g && cat /run/d/g",
    );
    let rootfs = b.own_rootfs();
    fs::create_dir_all(rootfs.join("run/d")).unwrap();
    fs::write(rootfs.join("run/d/f"), "image data\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(rootfs.join("run/d"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(rootfs.join("run/d/f"), fs::Permissions::from_mode(0o604)).unwrap();
    std::os::unix::fs::chown(rootfs.join("run/d/f"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::symlink("/etc/shadow-of-the-host", rootfs.join("run/link")).unwrap();
    b.config["root"]["readonly"] = json!(true);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/run", "type": "tmpfs", "source": "tmpfs",
        "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]}));
    b.write();
    let out = run_ok(&b, "copyup");
    assert_eq!(
        out,
        "750 0 /run/d\n604 1000 /run/d/f\nimage data\n/etc/shadow-of-the-host\nnew\n"
    );
    assert!(
        !rootfs.join("run/d/g").exists(),
        "a write reached the image"
    );
}

#[test]
fn rshared_volumes_propagate_both_ways_as_kubernetes_bidirectional_mounts_need() {
    // Kubernetes' Bidirectional mount propagation (CSI node plugins): a
    // volume with `rshared` sees mounts the host makes under it, and the
    // host sees mounts the container makes there. Made in a mount
    // namespace of the test's own, with a shared mount of its own as the
    // host's volume.
    let mut b = Bundle::new(&["sleep", "30"]);
    let vol = b.dir.parent().unwrap().join("vol");
    fs::create_dir_all(&vol).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/vol", "type": "bind", "source": vol, "options": ["rbind", "rshared"]
    }));
    b.config["linux"]["rootfsPropagation"] = json!("rshared");
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYS_ADMIN"));
    }
    b.write();
    let husk = format!("{} --root {}", husk_bin(), b.root.display());
    let script = format!(
        r#"set -e
mount --bind {vol} {vol}
mount --make-shared {vol}
{husk} create -b {bundle} prop > {dir}/out 2>&1
{husk} start prop
mkdir -p {vol}/fromhost
mount -t tmpfs tmpfs {vol}/fromhost
touch {vol}/fromhost/host-file
{husk} exec prop sh -c 'mkdir -p /vol/fromctr && mount -t tmpfs tmpfs /vol/fromctr && touch /vol/fromctr/ctr-file && ls /vol/fromhost' > {dir}/ctr-sees 2>&1
ls {vol}/fromctr > {dir}/host-sees 2>&1 || true
{husk} delete -f prop
"#,
        vol = vol.display(),
        dir = b.dir.display(),
        bundle = b.dir.display(),
    );
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    reap_orphans();
    let read = |n: &str| fs::read_to_string(b.dir.join(n)).unwrap_or_default();
    assert!(o.status.success(), "{}{}", stderr(&o), read("out"));
    assert_eq!(read("ctr-sees"), "host-file\n", "host → container");
    assert_eq!(read("host-sees"), "ctr-file\n", "container → host");
}
