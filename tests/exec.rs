//! `husk exec`: another process in a running container, as engines start it.

mod common;

use std::fs;
use std::process::{Output, Stdio};

use common::*;
use serde_json::json;

/// `husk exec ID ARGS…` with its own stdio captured.
fn exec(c: &Container<'_>, flags: &[&str], args: &[&str]) -> Output {
    c.bundle
        .husk()
        .arg("exec")
        .args(flags)
        .arg(&c.id)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn running<'a>(b: &'a Bundle, id: &str) -> Container<'a> {
    let c = b.create(id);
    c.ok(&["start"]);
    c
}

fn ns_of(pid: i32) -> Vec<String> {
    ["pid", "net", "mnt", "uts", "ipc", "cgroup", "user"]
        .iter()
        .map(|n| {
            fs::read_link(format!("/proc/{pid}/ns/{n}"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect()
}

#[test]
fn exec_joins_every_namespace_and_returns_the_status() {
    let mut b = Bundle::new(&["sleep", "30"]);
    // A user namespace too: it must be joined first for the others to work.
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let c = running(&b, "exns");
    let o = exec(
        &c,
        &[],
        &[
            "sh",
            "-c",
            "for n in pid net mnt uts ipc cgroup user; do readlink /proc/self/ns/$n; done; \
             hostname; id -u; cat /proc/self/uid_map | tr -s ' '; exit 7",
        ],
    );
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..7], ns_of(c.pid()), "{out}");
    assert_eq!(lines[7], "husk");
    assert_eq!(lines[8], "0");
    assert_eq!(lines[9].trim(), "0 100000 65536");
    // In the container's cgroup, at the root of its cgroup namespace.
    let o = exec(&c, &[], &["cat", "/proc/self/cgroup"]);
    assert_eq!(stdout(&o).lines().last(), Some("0::/"), "{}", stderr(&o));
}

#[test]
fn exec_flags_override_the_process_as_runc_does() {
    let b = Bundle::new(&["sleep", "30"]);
    let c = running(&b, "exflags");
    let o = exec(
        &c,
        &[
            "-u",
            "1000:1000",
            "-g",
            "5",
            "--cwd",
            "/tmp",
            "-e",
            "X=5",
            "--cap",
            "CAP_NET_RAW",
            "--no-new-privs",
        ],
        &[
            "sh",
            "-c",
            "id; pwd; echo $X; grep -E 'CapBnd|NoNewPrivs' /proc/self/status",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("uid=1000(user) gid=1000(user) groups=5\n/tmp\n5\n"),
        "{out}"
    );
    // The default three plus NET_RAW (13).
    let bnd = (1u64 << 29) | (1 << 5) | (1 << 10) | (1 << 13);
    assert!(out.contains(&format!("CapBnd:\t{bnd:016x}")), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
}

#[test]
fn exec_process_file_detached_with_pid_file() {
    let b = Bundle::new(&["sleep", "30"]);
    let c = running(&b, "exproc");
    let process = b.dir.join("process.json");
    fs::write(
        &process,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "echo from-process-file $GREETING; sleep 5"],
            "env": ["PATH=/bin", "GREETING=hello"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "terminal": false
        }))
        .unwrap(),
    )
    .unwrap();
    let pid_file = b.dir.join("exec.pid");
    let out_file = b.dir.join("exec.out");
    let st = c
        .bundle
        .husk()
        .args(["exec", "--process"])
        .arg(&process)
        .arg("--detach")
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&c.id)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_file).unwrap())
        .stderr(fs::File::create(b.dir.join("exec.err")).unwrap())
        .status()
        .unwrap();
    // Detached: husk returned while the process runs (its stdio are files, so
    // nothing waits for them to close).
    assert!(
        st.success(),
        "{}",
        fs::read_to_string(b.dir.join("exec.err")).unwrap()
    );
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Running, in the container's cgroup, listed by ps.
    let ps = c.cmd(&["ps", "--format", "json"]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(pids.contains(&pid), "{pids:?} lacks {pid}");
    assert_eq!(ns_of(pid), ns_of(c.pid()));
    for _ in 0..200 {
        if fs::read_to_string(&out_file)
            .unwrap_or_default()
            .contains("hello")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        fs::read_to_string(&out_file).unwrap(),
        "from-process-file hello\n"
    );
    // A bad process file is refused with the field.
    fs::write(&process, r#"{"args": "sh", "cwd": "/"}"#).unwrap();
    let o = c.cmd(&["exec", "--process", process.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("args"), "{}", stderr(&o));
}

#[test]
fn exec_into_paused_or_stopped_container_fails() {
    let b = Bundle::new(&["sleep", "30"]);
    let c = running(&b, "expause");
    c.ok(&["pause"]);
    let o = exec(&c, &[], &["true"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("paused"), "{}", stderr(&o));
    c.ok(&["resume"]);
    assert!(exec(&c, &[], &["true"]).status.success());
    c.ok(&["kill", "KILL"]);
    c.wait_stopped();
    let o = exec(&c, &[], &["true"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not running"), "{}", stderr(&o));
}

#[test]
fn exec_gets_the_containers_seccomp_filter() {
    let mut b = Bundle::new(&["sleep", "30"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    let c = running(&b, "exsecc");
    let o = exec(
        &c,
        &[],
        &[
            "sh",
            "-c",
            "mkdir /tmp/x 2>&1; grep Seccomp: /proc/self/status",
        ],
    );
    let out = stdout(&o);
    assert!(out.contains("Permission denied"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
}

#[test]
fn exec_with_a_terminal() {
    let b = Bundle::new(&["sleep", "30"]);
    let c = running(&b, "extty");
    let o = exec(&c, &["-t"], &["sh", "-c", "tty; exit 4"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stdout(&o).contains("/dev/pts/"), "{:?}", stdout(&o));
    assert!(stdout(&o).ends_with("\r\n"), "{:?}", stdout(&o));
}

#[test]
fn exec_forwards_signals_to_the_process() {
    let b = Bundle::new(&["sleep", "30"]);
    let c = running(&b, "exsig");
    let mut child = c
        .bundle
        .husk()
        .args([
            "exec",
            &c.id,
            "sh",
            "-c",
            "trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(3));
}

#[test]
fn exec_process_reaches_neither_host_fds_nor_a_writable_husk() {
    let b = Bundle::new(&["sleep", "30"]);
    let c = running(&b, "exsafe");
    // A descriptor leaked to husk exec does not cross.
    let leak = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    // SAFETY: clearing FD_CLOEXEC on a descriptor this test owns.
    unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&leak), libc::F_SETFD, 0) };
    let o = exec(
        &c,
        &[],
        &["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"],
    );
    drop(leak);
    assert_eq!(stdout(&o), "0 1 2 3 ", "{}", stderr(&o));
    // A cwd through a magic link is refused (CVE-2024-21626, runc exec).
    for n in 3..8 {
        let o = exec(&c, &["--cwd", &format!("/proc/self/fd/{n}")], &["pwd"]);
        assert!(!o.status.success(), "ran in {}", stdout(&o));
        assert!(stderr(&o).contains("process.cwd"), "{}", stderr(&o));
    }
    // Running /proc/self/exe runs the read-only husk (CVE-2019-5736 by exec).
    let o = exec(
        &c,
        &[],
        &[
            "sh",
            "-c",
            "/proc/self/exe >/dev/null 2>&1; probe open-write /proc/self/exe; true",
        ],
    );
    assert_eq!(stdout(&o), "error ETXTBSY\n");
    let o = exec(&c, &[], &["/proc/self/exe", "--version"]);
    assert!(stdout(&o).starts_with("husk version"), "{}", stdout(&o));
    // A long-running husk started that way (its own PID 1 mode, around a
    // sleep) runs from a read-only mount: seen from the host, its exe cannot
    // be written whatever the permissions.
    let pid_file = b.dir.join("selfexe.pid");
    // Detached, with stdio that nothing waits on.
    let st = c
        .bundle
        .husk()
        .args(["exec", "-d", "--pid-file"])
        .arg(&pid_file)
        .args([&c.id, "/proc/self/exe", "init", "--", "sleep", "5"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let pid = fs::read_to_string(&pid_file).unwrap();
    let st = nix::sys::statvfs::statvfs(format!("/proc/{}/exe", pid.trim()).as_str()).unwrap();
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    // It was reparented to this (subreaper) test: end and reap it by pid.
    let pid = nix::unistd::Pid::from_raw(pid.trim().parse().unwrap());
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
}

#[test]
fn exec_process_gets_its_oom_score_adj_rlimits_and_user() {
    // What engines put in an exec's process file and the process itself must
    // show: each is set by husk before the process is in the container.
    let b = Bundle::new(&["sleep", "30"]);
    let c = running(&b, "exattrs");
    let process = b.dir.join("attrs.json");
    fs::write(
        &process,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "cat /proc/self/oom_score_adj; ulimit -n; id -u; id -g; pwd"],
            "env": ["PATH=/bin"],
            "cwd": "/tmp",
            "user": {"uid": 1000, "gid": 1000},
            "oomScoreAdj": 321,
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 77, "hard": 77}]
        }))
        .unwrap(),
    )
    .unwrap();
    let o = exec(&c, &["--process", process.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "321\n77\n1000\n1000\n/tmp\n");
}

#[test]
fn exec_into_a_container_made_before_husk_kept_its_config_uses_its_bundle() {
    // Engines upgrade the runtime under running containers: one created by a
    // husk that kept no config in its state is exec'd with its bundle's process.
    let mut b = Bundle::new(&["sleep", "30"]);
    b.config["process"]["env"] = json!(["PATH=/bin", "FROM=bundle"]);
    let c = running(&b, "exold");
    fs::remove_file(b.root.join("exold/config.json")).unwrap();
    let o = exec(&c, &[], &["sh", "-c", "echo $FROM"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "bundle\n");
}
