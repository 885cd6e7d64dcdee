//! The known escapes from OCI runtimes, each built as the attacker would build
//! it and run with husk; each test checks that the host is untouched. The CVE
//! each one comes from is in the test's name or its first comment.

mod common;

use std::fs;
use std::os::fd::AsRawFd;

use common::*;
use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use serde_json::json;

/// The config's mounts without the one at `dest`.
fn drop_mount(b: &mut Bundle, dest: &str) {
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != dest);
}

fn set_namespace(b: &mut Bundle, kind: &str, path: &str) {
    for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == kind {
            *ns = json!({"type": kind, "path": path});
        }
    }
}

// ---- CVE-2019-5736: overwriting the runtime binary through /proc/PID/exe ----

#[test]
fn cve_2019_5736_init_exe_is_read_only_even_to_host_root() {
    // The attack: hold /proc/PID/exe of the init (the husk binary while husk
    // code runs in the container) and reopen it for writing once the init is
    // gone and the binary is no longer busy. Even the host's root, who passes
    // every permission check, must get EROFS.
    let before = fs::read(husk_bin()).unwrap();
    let b = Bundle::new(&["sleep", "30"]);
    let c = b.create("exe5736");
    let exe = open(
        format!("/proc/{}/exe", c.pid()).as_str(),
        OFlag::O_PATH,
        Mode::empty(),
    )
    .unwrap();
    let reopen = format!("/proc/self/fd/{}", exe.as_raw_fd());
    let e = open(reopen.as_str(), OFlag::O_WRONLY, Mode::empty()).unwrap_err();
    assert!(matches!(e, Errno::ETXTBSY | Errno::EROFS), "{e}");
    // The file is reached through a read-only mount: once no husk is running
    // from it (other tests run husk concurrently), the answer is EROFS.
    let st = nix::sys::statvfs::fstatvfs(&exe).unwrap();
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    c.ok(&["delete", "--force"]);
    reap(c.init);
    let e = open(reopen.as_str(), OFlag::O_WRONLY, Mode::empty()).unwrap_err();
    assert!(matches!(e, Errno::ETXTBSY | Errno::EROFS), "{e}");
    assert!(
        fs::read(husk_bin()).unwrap() == before,
        "the husk binary changed"
    );
}

#[test]
fn cve_2019_5736_container_cannot_open_the_init_exe() {
    // A second container in the pid namespace of one still in `created`
    // (its init is running husk code, waiting for start) goes for /proc/1/exe.
    let a = Bundle::new(&["true"]);
    let ca = a.create("exeinit");
    let ns = format!("/proc/{}/ns/pid", ca.pid());

    // As root with the default capabilities: the init is not dumpable.
    let mut b = Bundle::sh("probe open-path /proc/1/exe; probe open-write /proc/1/exe; true");
    set_namespace(&mut b, "pid", &ns);
    assert_eq!(
        run_ok(&b, "exeattack"),
        "error EACCES\nerror EACCES\n",
        "the container reached the husk binary"
    );
    // With CAP_SYS_PTRACE, which gets past dumpability: the file is still
    // not writable.
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = json!(["CAP_SYS_PTRACE"]);
    }
    let out = run_ok(&b, "exeattack2");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "opened", "{out}");
    assert!(
        lines[1] == "error ETXTBSY" || lines[1] == "error EROFS",
        "{out}"
    );
    // The init never became anything else: start still runs `true`.
    ca.ok(&["start"]);
    ca.wait_stopped();
}

#[test]
fn cve_2019_5736_process_running_proc_self_exe_runs_a_read_only_husk() {
    // `process.args` naming /proc/self/exe makes the container run the
    // runtime binary itself; what it runs must be the read-only view.
    let b = Bundle::new(&["/proc/self/exe", "--version"]);
    let out = run_ok(&b, "selfexe");
    assert!(out.starts_with("husk version"), "{out}");
    // And what it ran from is mounted read-only: a husk started by the init
    // reports its own exe's mount flags through /proc/self/mountinfo-free
    // statvfs, seen here from the host on the init of a created container.
    let b = Bundle::new(&["/proc/self/exe", "--version"]);
    let c = b.create("selfexe2");
    let st = nix::sys::statvfs::statvfs(format!("/proc/{}/exe", c.pid()).as_str()).unwrap();
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    c.ok(&["start"]);
    c.wait_stopped();
    assert!(c.output().starts_with("husk version"), "{}", c.output());
}

// ---- CVE-2024-21626: a leaked host descriptor as the working directory ----

#[test]
fn cve_2024_21626_cwd_through_proc_self_fd_is_refused() {
    // Whatever descriptor husk might hold at that point, a cwd of
    // /proc/self/fd/N is a magic link out of the rootfs: refused.
    let mut b = Bundle::sh("pwd; ls");
    for n in 3..12 {
        let id = format!("cwdfd{n}");
        b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        let o = b.run(&id);
        assert!(!o.status.success(), "fd {n}: ran with cwd {}", stdout(&o));
        assert!(stderr(&o).contains("process.cwd"), "{}", stderr(&o));
        assert!(!b.root.join(&id).exists());
    }
}

#[test]
fn cve_2024_21626_leaked_host_directory_fd_does_not_cross() {
    // The engine leaks a descriptor of the host's / (no CLOEXEC); the
    // container looks for it among its descriptors.
    let b = Bundle::sh(
        "ls /proc/self/fd | sort -n | tr '\\n' ' '; \
         for n in 3 4 5 6 7 8 9; do [ -e /proc/self/fd/$n/etc/hostname ] && echo reached-host-via-$n; done; true",
    );
    b.write();
    let leak = open("/", OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
    // SAFETY: clearing FD_CLOEXEC on a descriptor this test owns.
    unsafe { libc::fcntl(leak.as_raw_fd(), libc::F_SETFD, 0) };
    let o = b
        .husk()
        .args(["run", "-b"])
        .arg(&b.dir)
        .arg("leakdir")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    drop(leak);
    assert!(o.status.success(), "{}", stderr(&o));
    // ls opens one descriptor (3) for the directory it lists.
    assert_eq!(stdout(&o), "0 1 2 3 ", "{}", stderr(&o));
}

// ---- CVE-2021-30465: mount destinations swapped to symlinks during set-up ----

#[test]
fn cve_2021_30465_mount_destination_swapped_to_symlink_stays_inside() {
    // While containers are created, the host side keeps exchanging a directory
    // and a symlink pointing out of the rootfs (renameat2 RENAME_EXCHANGE), the
    // race runc lost. Whatever husk sees, its mount must land in the rootfs.
    let mut b = Bundle::sh("touch /data/x/proof 2>/dev/null; true");
    let rootfs = b.own_rootfs();
    let outside = b.dir.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::create_dir(rootfs.join("data/x")).unwrap();
    // Relative and absolute: inside the rootfs either resolves under its /.
    std::os::unix::fs::symlink(
        format!("../../../../../../../../..{}", outside.display()),
        rootfs.join("data/y"),
    )
    .unwrap();
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/data/x", "type": "tmpfs", "source": "tmpfs"}));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let data = rootfs.join("data");
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &data.join("x"),
                    nix::fcntl::AT_FDCWD,
                    &data.join("y"),
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                );
                swaps += 1;
            }
            swaps
        })
    };
    for i in 0..40 {
        // A failed create is fine (the swap may leave a symlink where a
        // directory is expected); an escape is not.
        let _ = b.run(&format!("race{i}"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(swapper.join().unwrap() > 100, "the race never ran");
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "a file was written outside the rootfs"
    );
    assert!(
        !host_mounts_mention(&outside.display().to_string()),
        "a mount landed outside the rootfs"
    );
}

// ---- CVE-2019-19921: /proc mounted through a symlink ----

#[test]
fn cve_2019_19921_proc_mount_target_symlink_is_refused() {
    // With /proc a symlink to a directory of the image's, the container's
    // /proc would be the attacker's files, and husk's later /proc writes
    // (sysctls, masks) would land there.
    let mut b = Bundle::sh("true");
    let rootfs = b.own_rootfs();
    fs::remove_dir(rootfs.join("proc")).unwrap();
    fs::create_dir(rootfs.join("fakeproc")).unwrap();
    std::os::unix::fs::symlink("fakeproc", rootfs.join("proc")).unwrap();
    let (_c, o) = b.try_create("procsym");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("mounts[0]") && err.contains("ordinary directory"),
        "{err}"
    );
    assert!(
        fs::read_dir(rootfs.join("fakeproc"))
            .unwrap()
            .next()
            .is_none()
    );
}

// ---- CVE-2025-31133: /dev/null replaced, so masking binds something else ----

#[test]
fn cve_2025_31133_dev_null_symlink_is_not_used_to_mask() {
    // With no /dev tmpfs, /dev comes from the image, whose /dev/null points
    // at a writable procfs file. Masking binds /dev/null over each masked
    // path: a runtime that follows the link makes that procfs file writable
    // at /proc/kcore. (kernel.domainname is per UTS namespace, so even a
    // vulnerable runtime changes nothing on the host.)
    let mut b = Bundle::sh("echo evil > /proc/kcore 2>/dev/null; cat /proc/sys/kernel/domainname");
    let rootfs = b.own_rootfs();
    drop_mount(&mut b, "/dev");
    drop_mount(&mut b, "/dev/pts");
    drop_mount(&mut b, "/dev/shm");
    drop_mount(&mut b, "/dev/mqueue");
    std::os::unix::fs::symlink("../proc/sys/kernel/domainname", rootfs.join("dev/null")).unwrap();
    b.config["linux"]["readonlyPaths"] = json!([]);
    let o = b.run("devnull");
    if o.status.success() {
        assert_eq!(stdout(&o), "(none)\n", "the write landed in procfs");
    } else {
        assert!(stderr(&o).contains("/dev/null"), "{}", stderr(&o));
    }
}

// ---- CVE-2025-52565: /dev/console redirected to a procfs file ----

#[test]
fn cve_2025_52565_dev_console_symlink_is_refused() {
    let mut b = Bundle::sh("echo evil > /dev/console; cat /proc/sys/kernel/domainname");
    let rootfs = b.own_rootfs();
    drop_mount(&mut b, "/dev");
    drop_mount(&mut b, "/dev/shm");
    drop_mount(&mut b, "/dev/mqueue");
    fs::create_dir_all(rootfs.join("dev/pts")).unwrap();
    std::os::unix::fs::symlink("../proc/sys/kernel/domainname", rootfs.join("dev/console"))
        .unwrap();
    b.config["process"]["terminal"] = json!(true);
    let o = b
        .run_timeout("consym", 10)
        .expect("husk ran the container on the planted console and hung");
    assert!(!o.status.success(), "ran: {}", stdout(&o));
    assert!(stderr(&o).contains("/dev/console"), "{}", stderr(&o));
    assert!(!b.root.join("consym").exists());
}

// ---- CVE-2025-52881: procfs writes redirected by a mount ----

#[test]
fn cve_2025_52881_sysctl_write_cannot_be_redirected_by_a_mount() {
    // The config bind-mounts a file of the attacker's over the sysctl husk
    // will write: the write must not follow the mount.
    let mut b = Bundle::sh("true");
    let decoy = b.dir.join("decoy");
    fs::write(&decoy, "untouched\n").unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/proc/sys/net/ipv4/ip_forward", "type": "bind",
        "source": decoy, "options": ["bind", "rw"]}));
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    assert_run_refused(&b, "sysredir", "ip_forward");
    assert_eq!(fs::read_to_string(&decoy).unwrap(), "untouched\n");
}

#[test]
fn sysctl_key_climbing_out_of_proc_sys_is_refused() {
    let mut b = Bundle::sh("true");
    b.config["linux"]["sysctl"] = json!({"net/../../../sysrq-trigger": "b"});
    assert_run_refused(&b, "sysdotdot", "linux.sysctl.net/../../../sysrq-trigger");
}

#[test]
fn readonly_path_through_a_symlink_out_stays_inside() {
    // A readonlyPaths entry that is a symlink to a host path: it resolves
    // inside the container, and the host path stays writable.
    let mut b = Bundle::sh("touch /data/ro/inside 2>&1; echo done");
    let rootfs = b.own_rootfs();
    let host = b.dir.join("hostdir");
    fs::create_dir(&host).unwrap();
    std::os::unix::fs::symlink(
        format!("../../../../../..{}", host.display()),
        rootfs.join("data/ro"),
    )
    .unwrap();
    b.config["root"]["readonly"] = json!(false);
    b.config["linux"]["readonlyPaths"] = json!(["/data/ro"]);
    let out = run_ok(&b, "rosym");
    assert!(out.ends_with("done\n"), "{out}");
    fs::write(host.join("still-writable"), "x").unwrap();
    assert!(!host_mounts_mention(&host.display().to_string()));
    assert!(!host.join("inside").exists());
}

// ---- After start: no way back to privileges or to the host ----

#[test]
fn setuid_binary_cannot_regain_capabilities() {
    use std::os::unix::fs::PermissionsExt;
    let mut b = Bundle::sh("/bin/suidprobe euid");
    let rootfs = b.own_rootfs();
    fs::copy(probe(), rootfs.join("bin/suidprobe")).unwrap();
    fs::set_permissions(
        rootfs.join("bin/suidprobe"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["noNewPrivileges"] = json!(true);
    let out = run_ok(&b, "suidnnp");
    assert_eq!(out, "euid 1000\nCapEff:\t0000000000000000\n");
    // The control: without no_new_privs the setuid bit works, but gives back
    // only the bounding set (the default three), never the host's full set.
    b.config["process"]["noNewPrivileges"] = json!(false);
    let out = run_ok(&b, "suidnonnp");
    let bits = (1u64 << 29) | (1 << 5) | (1 << 10); // AUDIT_WRITE, KILL, NET_BIND_SERVICE
    assert_eq!(out, format!("euid 0\nCapEff:\t{bits:016x}\n"));
}

#[test]
fn container_sees_only_its_own_mounts() {
    let b = Bundle::sh("cat /proc/self/mountinfo");
    let out = run_ok(&b, "ownmounts");
    let c = &b.config;
    let mut allowed: Vec<String> = vec!["/".into(), "/dev/console".into()];
    for key in ["maskedPaths", "readonlyPaths"] {
        for p in c["linux"][key].as_array().unwrap() {
            allowed.push(p.as_str().unwrap().into());
        }
    }
    for m in c["mounts"].as_array().unwrap() {
        allowed.push(m["destination"].as_str().unwrap().into());
    }
    for line in out.lines() {
        let point = line.split(' ').nth(4).unwrap();
        assert!(
            allowed.iter().any(|a| a == point),
            "a mount the config did not ask for: {line}"
        );
    }
}

#[test]
fn container_cannot_signal_host_processes() {
    let mut host = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = host.id();
    let b = Bundle::sh(&format!("kill -9 {pid} 2>&1; kill -9 -1 2>&1; echo done"));
    let out = run_ok(&b, "nosignal");
    assert!(out.ends_with("done\n"), "{out}");
    let alive = host.try_wait().unwrap().is_none();
    let _ = host.kill();
    let _ = host.wait();
    assert!(alive, "the container killed a host process");
}

#[test]
fn proc_sys_and_sys_are_read_only() {
    // Default capabilities, as root: /proc/sys (readonlyPaths) and /sys
    // and its cgroup2 mount (mounted ro) refuse writes.
    let b = Bundle::sh(
        "exec 2>&1; echo x > /proc/sys/kernel/domainname; echo x > /sys/kernel/uevent_helper; \
         mkdir /sys/fs/cgroup/escape; echo done",
    );
    let out = run_ok(&b, "rosys");
    assert_eq!(
        out.matches("Read-only file system").count(),
        3,
        "a write went through: {out}"
    );
}
