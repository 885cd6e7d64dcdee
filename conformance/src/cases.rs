//! The cases: each observable MUST/SHOULD of the runtime spec that a CLI run
//! can show, with the section it comes from.

use std::fs;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Check, Ctx, cgroup_file, ensure};

pub struct Case {
    pub name: &'static str,
    pub section: &'static str,
    pub run: fn(&Ctx) -> Check,
}

const SEC: Duration = Duration::from_secs(5);

/// Runs the checker's `facts` in a container whose config `patch` adjusts.
fn facts(ctx: &Ctx, patch: impl FnOnce(&mut Value)) -> Result<Value, String> {
    let mut b = ctx.bundle(&["/bin/oci-check", "facts"]);
    patch(&mut b.config);
    b.run_checker()
}

/// Runs the checker with `args` and returns its JSON.
fn check(ctx: &Ctx, args: &[&str], patch: impl FnOnce(&mut Value)) -> Result<Value, String> {
    let mut full = vec!["/bin/oci-check"];
    full.extend_from_slice(args);
    let mut b = ctx.bundle(&full);
    patch(&mut b.config);
    b.run_checker()
}

fn add_ns(c: &mut Value, t: &str) {
    if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
        a.retain(|n| n["type"] != t);
        a.push(json!({"type": t}));
    }
}

fn remove_ns(c: &mut Value, t: &str) {
    if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
        a.retain(|n| n["type"] != t);
    }
}

fn push_mount(c: &mut Value, m: Value) {
    if let Some(a) = c["mounts"].as_array_mut() {
        a.push(m);
    }
}

fn mount_line<'a>(f: &'a Value, dest: &str) -> Option<&'a str> {
    f["mountinfo"]
        .as_str()?
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(dest))
}

// ---- lifecycle (runtime.md) ----

fn state_after_create(ctx: &Ctx) -> Check {
    let b = ctx.bundle(&["/bin/oci-check", "sleep", "30"]);
    b.create()?;
    let s = b.state()?;
    ensure!(
        s["status"] == "created",
        "status {} after create",
        s["status"]
    );
    ensure!(s["id"] == json!(b.id), "id {}", s["id"]);
    ensure!(s["pid"].as_i64().unwrap_or(0) > 0, "pid {}", s["pid"]);
    ensure!(s["bundle"] == json!(b.dir), "bundle {}", s["bundle"]);
    ensure!(s["ociVersion"].is_string(), "no ociVersion");
    Ok(())
}

fn args_applied_only_on_start(ctx: &Ctx) -> Check {
    let b = ctx.bundle(&["/bin/oci-check", "facts"]);
    b.create()?;
    std::thread::sleep(Duration::from_millis(200));
    ensure!(
        b.output().is_empty(),
        "the process ran before start: {:?}",
        b.output()
    );
    b.start()?;
    b.wait_json(SEC)?;
    Ok(())
}

fn status_running_then_stopped(ctx: &Ctx) -> Check {
    let b = ctx.bundle(&["/bin/oci-check", "wait-signal"]);
    b.create()?;
    b.start()?;
    ensure!(b.status()? == "running", "not running after start");
    b.wait_json(SEC)?;
    let o = b.cmd(&["kill", &b.id, "KILL"]);
    ensure!(o.status.success(), "kill failed");
    b.wait_status("stopped", SEC)
}

fn start_not_created_fails(ctx: &Ctx) -> Check {
    let b = ctx.bundle(&["/bin/oci-check", "facts"]);
    b.create()?;
    b.start()?;
    b.wait_status("stopped", SEC)?;
    let o = b.cmd(&["start", &b.id]);
    ensure!(
        !o.status.success(),
        "start of a stopped container succeeded"
    );
    Ok(())
}

fn kill_delivers_signal(ctx: &Ctx) -> Check {
    let b = ctx.bundle(&["/bin/oci-check", "wait-signal"]);
    b.create()?;
    b.start()?;
    b.wait_json(SEC)?;
    let o = b.cmd(&["kill", &b.id, "USR1"]);
    ensure!(
        o.status.success(),
        "kill USR1 failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    b.wait_status("stopped", SEC)?;
    let v = b.wait_json(SEC)?;
    ensure!(v["signal"] == libc::SIGUSR1, "got {v}");
    Ok(())
}

fn kill_stopped_fails(ctx: &Ctx) -> Check {
    let b = ctx.bundle(&["/bin/oci-check", "facts"]);
    b.create()?;
    b.start()?;
    b.wait_status("stopped", SEC)?;
    let o = b.cmd(&["kill", &b.id, "TERM"]);
    ensure!(!o.status.success(), "kill of a stopped container succeeded");
    Ok(())
}

fn delete_running_fails(ctx: &Ctx) -> Check {
    let b = ctx.bundle(&["/bin/oci-check", "sleep", "30"]);
    b.create()?;
    b.start()?;
    let o = b.cmd(&["delete", &b.id]);
    ensure!(
        !o.status.success(),
        "delete of a running container succeeded"
    );
    ensure!(b.status()? == "running", "delete changed the container");
    Ok(())
}

fn delete_removes_container(ctx: &Ctx) -> Check {
    let b = ctx.bundle(&["/bin/oci-check", "facts"]);
    b.create()?;
    b.start()?;
    b.wait_status("stopped", SEC)?;
    b.delete()?;
    let o = b.cmd(&["state", &b.id]);
    ensure!(!o.status.success(), "state still answers after delete");
    Ok(())
}

fn create_duplicate_id_fails(ctx: &Ctx) -> Check {
    let b = ctx.bundle(&["/bin/oci-check", "sleep", "30"]);
    b.create()?;
    let o = b.cmd(&["create", "--bundle", b.dir.to_str().unwrap_or("."), &b.id]);
    ensure!(
        !o.status.success(),
        "a second create with the same id succeeded"
    );
    ensure!(
        b.status()? == "created",
        "the first container was disturbed"
    );
    Ok(())
}

fn state_unknown_fails(ctx: &Ctx) -> Check {
    let b = ctx.bundle(&["true"]);
    let o = b.cmd(&["state", "no-such-container"]);
    ensure!(!o.status.success(), "state of an unknown id succeeded");
    Ok(())
}

// ---- process (config.md, Process) ----

fn process_args(ctx: &Ctx) -> Check {
    let v = check(ctx, &["read", "/proc/self/cmdline"], |_| {})?;
    let t = v["text"].as_str().unwrap_or("");
    ensure!(
        t == "/bin/oci-check\0read\0/proc/self/cmdline\0",
        "cmdline {t:?}"
    );
    Ok(())
}

fn process_env(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| {
        c["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"])
    })?;
    let env: Vec<&str> = f["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str())
        .collect();
    ensure!(
        env.contains(&"FOO=bar baz") && env.contains(&"PATH=/bin"),
        "env {env:?}"
    );
    Ok(())
}

fn process_cwd(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| c["process"]["cwd"] = json!("/tmp"))?;
    ensure!(f["cwd"] == "/tmp", "cwd {}", f["cwd"]);
    Ok(())
}

fn process_user(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 7]});
    })?;
    ensure!(
        f["uid"] == 1000 && f["gid"] == 1000,
        "uid {} gid {}",
        f["uid"],
        f["gid"]
    );
    let groups = f["groups"].as_array().cloned().unwrap_or_default();
    ensure!(
        groups.contains(&json!(5)) && groups.contains(&json!(7)),
        "groups {groups:?}"
    );
    Ok(())
}

fn process_umask(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| c["process"]["user"]["umask"] = json!(0o027))?;
    ensure!(f["umask"] == 0o027, "umask {}", f["umask"]);
    Ok(())
}

fn process_capabilities(ctx: &Ctx) -> Check {
    // As a non-root user: root would regain its whole bounding set at exec.
    let f = facts(ctx, |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]});
        c["process"]["noNewPrivileges"] = json!(false);
    })?;
    let caps = &f["caps"];
    ensure!(
        caps["bounding"] == "0000000000000021",
        "bounding {}",
        caps["bounding"]
    );
    ensure!(
        caps["effective"] == "0000000000000020",
        "effective {}",
        caps["effective"]
    );
    ensure!(
        caps["permitted"] == "0000000000000020",
        "permitted {}",
        caps["permitted"]
    );
    ensure!(
        caps["inheritable"] == "0000000000000020",
        "inheritable {}",
        caps["inheritable"]
    );
    ensure!(
        caps["ambient"] == "0000000000000020",
        "ambient {}",
        caps["ambient"]
    );
    Ok(())
}

fn process_rlimits(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                                          {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]);
    })?;
    ensure!(
        f["rlimits"]["RLIMIT_NOFILE"] == json!([123, 456]),
        "nofile {}",
        f["rlimits"]["RLIMIT_NOFILE"]
    );
    ensure!(
        f["rlimits"]["RLIMIT_CORE"] == json!([0, 0]),
        "core {}",
        f["rlimits"]["RLIMIT_CORE"]
    );
    Ok(())
}

fn process_no_new_privileges(ctx: &Ctx) -> Check {
    let on = facts(ctx, |c| c["process"]["noNewPrivileges"] = json!(true))?;
    let off = facts(ctx, |c| c["process"]["noNewPrivileges"] = json!(false))?;
    ensure!(
        on["no_new_privs"] == "1" && off["no_new_privs"] == "0",
        "on {} off {}",
        on["no_new_privs"],
        off["no_new_privs"]
    );
    Ok(())
}

fn process_oom_score_adj(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| c["process"]["oomScoreAdj"] = json!(321))?;
    ensure!(
        f["oom_score_adj"] == "321",
        "oom_score_adj {}",
        f["oom_score_adj"]
    );
    Ok(())
}

fn process_terminal(ctx: &Ctx) -> Check {
    use std::os::unix::net::UnixListener;
    let mut b = ctx.bundle(&["/bin/oci-check", "facts"]);
    b.config["process"]["terminal"] = json!(true);
    let sock = b.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).map_err(|e| e.to_string())?;
    b.write();
    let reader = std::thread::spawn(move || crate::console::receive_and_read(listener));
    let o = b.cmd(&[
        "create",
        "--bundle",
        b.dir.to_str().unwrap_or("."),
        "--console-socket",
        sock.to_str().unwrap_or(""),
        &b.id,
    ]);
    ensure!(
        o.status.success(),
        "create failed: {}",
        String::from_utf8_lossy(&o.stderr).trim()
    );
    b.start()?;
    b.wait_status("stopped", SEC)?;
    let text = reader
        .join()
        .map_err(|_| "console reader panicked".to_string())??;
    let v: Value = text
        .lines()
        .find_map(|l| serde_json::from_str(l.trim()).ok())
        .ok_or_else(|| format!("no JSON on the terminal: {text:?}"))?;
    ensure!(v["isatty"] == true, "stdin is not a terminal");
    Ok(())
}

// ---- root and mounts (config.md, Root and Mounts) ----

fn root_readonly(ctx: &Ctx) -> Check {
    let v = check(ctx, &["write", "/newfile"], |c| {
        c["root"]["readonly"] = json!(true)
    })?;
    ensure!(v["error"] == "EROFS", "write to a read-only root: {v}");
    Ok(())
}

fn root_path_relative_to_bundle(ctx: &Ctx) -> Check {
    let mut b = ctx.bundle(&["/bin/oci-check", "facts"]);
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&ctx.rootfs)
        .arg(b.dir.join("rootfs"))
        .status()
        .map_err(|e| e.to_string())?;
    ensure!(st.success(), "copying the rootfs failed");
    b.config["root"]["path"] = json!("rootfs");
    b.run_checker().map(|_| ())
}

fn mount_tmpfs_options(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| {
        push_mount(
            c,
            json!({"destination": "/data/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=700"]}),
        )
    })?;
    let line = mount_line(&f, "/data/t").ok_or("no mount at /data/t")?;
    ensure!(
        line.contains("nosuid") && line.contains("nodev") && line.contains("noexec"),
        "{line}"
    );
    ensure!(
        line.contains("size=1024k") && line.contains("mode=700"),
        "{line}"
    );
    Ok(())
}

fn mount_bind_readonly(ctx: &Ctx) -> Check {
    let host = ctx.work.join(format!("bind-src-{}", std::process::id()));
    fs::create_dir_all(&host).map_err(|e| e.to_string())?;
    let v = check(ctx, &["write", "/data/b/file"], |c| {
        push_mount(
            c,
            json!({"destination": "/data/b", "type": "bind", "source": host, "options": ["rbind", "ro"]}),
        )
    });
    let empty = fs::read_dir(&host)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    let _ = fs::remove_dir_all(&host);
    let v = v?;
    ensure!(v["error"] == "EROFS", "write through a read-only bind: {v}");
    ensure!(empty, "the host directory was written");
    Ok(())
}

fn mounts_in_order(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| {
        push_mount(
            c,
            json!({"destination": "/data/o", "type": "tmpfs", "source": "first", "options": ["size=1m"]}),
        );
        push_mount(
            c,
            json!({"destination": "/data/o", "type": "tmpfs", "source": "second", "options": ["size=2m"]}),
        );
    })?;
    let line = mount_line(&f, "/data/o").ok_or("no mount at /data/o")?;
    ensure!(
        line.contains(" second "),
        "the last mount listed is not on top: {line}"
    );
    Ok(())
}

fn mount_destination_created(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| {
        push_mount(
            c,
            json!({"destination": "/made/by/runtime", "type": "tmpfs", "source": "tmpfs"}),
        )
    })?;
    ensure!(
        mount_line(&f, "/made/by/runtime").is_some(),
        "no mount at a missing destination"
    );
    Ok(())
}

// ---- hostname (config.md) ----

fn hostname(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| c["hostname"] = json!("conf-host"))?;
    ensure!(f["hostname"] == "conf-host", "hostname {}", f["hostname"]);
    Ok(())
}

fn domainname(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| c["domainname"] = json!("conf.example"))?;
    ensure!(
        f["domainname"] == "conf.example",
        "domainname {}",
        f["domainname"]
    );
    Ok(())
}

// ---- namespaces (config-linux.md, Namespaces) ----

fn host_ns(t: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{t}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn ns_new(ctx: &Ctx, spec_type: &str, proc_name: &str) -> Check {
    let f = facts(ctx, |c| {
        add_ns(c, spec_type);
        if spec_type == "user" {
            c["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        }
    })?;
    let inside = f["ns"][proc_name].as_str().unwrap_or("");
    ensure!(
        !inside.is_empty() && inside != host_ns(proc_name),
        "{proc_name} namespace is the host's ({inside})"
    );
    Ok(())
}

fn ns_pid(ctx: &Ctx) -> Check {
    ns_new(ctx, "pid", "pid")?;
    let f = facts(ctx, |_| {})?;
    ensure!(f["pid"] == 1, "pid {} in a new pid namespace", f["pid"]);
    Ok(())
}
fn ns_network(ctx: &Ctx) -> Check {
    ns_new(ctx, "network", "net")
}
fn ns_ipc(ctx: &Ctx) -> Check {
    ns_new(ctx, "ipc", "ipc")
}
fn ns_uts(ctx: &Ctx) -> Check {
    ns_new(ctx, "uts", "uts")
}
fn ns_mount(ctx: &Ctx) -> Check {
    ns_new(ctx, "mount", "mnt")
}
fn ns_cgroup(ctx: &Ctx) -> Check {
    ns_new(ctx, "cgroup", "cgroup")
}
fn ns_user(ctx: &Ctx) -> Check {
    ns_new(ctx, "user", "user")
}
fn ns_time(ctx: &Ctx) -> Check {
    ns_new(ctx, "time", "time")
}

fn ns_absent_shares_runtime(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| remove_ns(c, "network"))?;
    ensure!(
        f["ns"]["net"] == json!(host_ns("net")),
        "without a network entry the namespace must be the runtime's"
    );
    Ok(())
}

fn ns_join_by_path(ctx: &Ctx) -> Check {
    let owner = ctx.bundle(&["/bin/oci-check", "sleep", "30"]);
    owner.create()?;
    let pid = owner.state()?["pid"].as_i64().unwrap_or(0);
    let path = format!("/proc/{pid}/ns/net");
    let want = fs::read_link(&path)
        .map_err(|e| e.to_string())?
        .display()
        .to_string();
    let f = facts(ctx, |c| {
        remove_ns(c, "network");
        if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
            a.push(json!({"type": "network", "path": path}));
        }
    })?;
    ensure!(
        f["ns"]["net"] == json!(want),
        "joined {} instead of {want}",
        f["ns"]["net"]
    );
    Ok(())
}

fn user_ns_mappings(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| {
        add_ns(c, "user");
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 1000}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 1000}]);
    })?;
    let norm = |v: &Value| {
        v.as_str()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    ensure!(
        norm(&f["uid_map"]) == "0 100000 1000",
        "uid_map {}",
        f["uid_map"]
    );
    ensure!(
        norm(&f["gid_map"]) == "0 200000 1000",
        "gid_map {}",
        f["gid_map"]
    );
    ensure!(f["uid"] == 0, "uid {} in the user namespace", f["uid"]);
    Ok(())
}

// ---- devices (config-linux.md, Devices and Default Devices) ----

fn default_devices(ctx: &Ctx) -> Check {
    for (path, major, minor) in [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ] {
        let v = check(ctx, &["stat", path], |_| {})?;
        ensure!(
            v["type"] == "char" && v["major"] == major && v["minor"] == minor,
            "{path}: {v}"
        );
    }
    let v = check(ctx, &["stat", "/dev/ptmx"], |_| {})?;
    ensure!(
        v["type"] == "symlink" || v["type"] == "char",
        "/dev/ptmx: {v}"
    );
    Ok(())
}

fn dev_symlinks(ctx: &Ctx) -> Check {
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let v = check(ctx, &["stat", link], |_| {})?;
        ensure!(v["link"] == target, "{link}: {v}");
    }
    Ok(())
}

fn linux_devices(ctx: &Ctx) -> Check {
    let v = check(ctx, &["stat", "/dev/conf0"], |c| {
        c["linux"]["devices"] = json!([{"path": "/dev/conf0", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640, "uid": 1000, "gid": 1000}]);
    })?;
    ensure!(
        v["type"] == "char" && v["major"] == 1 && v["minor"] == 5,
        "{v}"
    );
    ensure!(
        v["mode"] == 0o640 && v["uid"] == 1000 && v["gid"] == 1000,
        "{v}"
    );
    Ok(())
}

// ---- masked and read-only paths (config-linux.md) ----

fn masked_paths(ctx: &Ctx) -> Check {
    let v = check(ctx, &["read", "/proc/timer_list"], |c| {
        c["linux"]["maskedPaths"] = json!(["/proc/timer_list"])
    })?;
    ensure!(v["len"] == 0, "masked file readable: {} bytes", v["len"]);
    let v = check(ctx, &["read", "/sys/kernel/uevent_seqnum"], |c| {
        c["linux"]["maskedPaths"] = json!(["/sys/kernel"])
    })?;
    ensure!(
        v["error"] == "ENOENT",
        "masked directory still shows its files: {v}"
    );
    Ok(())
}

fn readonly_paths(ctx: &Ctx) -> Check {
    let v = check(ctx, &["write", "/tmp/x"], |c| {
        c["linux"]["readonlyPaths"] = json!(["/tmp"])
    })?;
    ensure!(v["error"] == "EROFS", "write to a read-only path: {v}");
    Ok(())
}

// ---- sysctl, propagation (config-linux.md) ----

fn sysctl(ctx: &Ctx) -> Check {
    let v = check(ctx, &["read", "/proc/sys/net/ipv4/ip_forward"], |c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"})
    })?;
    ensure!(
        v["text"].as_str().map(str::trim) == Some("1"),
        "ip_forward {}",
        v["text"]
    );
    Ok(())
}

fn rootfs_propagation(ctx: &Ctx) -> Check {
    let f = facts(ctx, |c| c["linux"]["rootfsPropagation"] = json!("shared"))?;
    let line = mount_line(&f, "/").ok_or("no / in mountinfo")?;
    ensure!(line.contains(" shared:"), "/ is not shared: {line}");
    let f = facts(ctx, |c| c["linux"]["rootfsPropagation"] = json!("private"))?;
    let line = mount_line(&f, "/").ok_or("no / in mountinfo")?;
    ensure!(
        !line.contains(" shared:") && !line.contains(" master:"),
        "/ is not private: {line}"
    );
    Ok(())
}

// ---- hooks (config.md, POSIX-platform Hooks) ----

fn hook(log: &std::path::Path, name: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read -r s; echo \"{name} $s\" >> {}", log.display())]})
}

fn hooks_order_and_state(ctx: &Ctx) -> Check {
    let mut b = ctx.bundle(&["/bin/oci-check", "facts"]);
    let log = b.dir.join("hooks.log");
    b.config["hooks"] = json!({
        "prestart": [hook(&log, "prestart")],
        "createRuntime": [hook(&log, "createRuntime")],
        "createContainer": [hook(&log, "createContainer")],
        "poststart": [hook(&log, "poststart")],
        "poststop": [hook(&log, "poststop")],
    });
    b.create()?;
    b.start()?;
    b.wait_status("stopped", SEC)?;
    b.delete()?;
    let text = fs::read_to_string(&log).unwrap_or_default();
    let names: Vec<&str> = text.lines().filter_map(|l| l.split(' ').next()).collect();
    ensure!(
        names
            == [
                "prestart",
                "createRuntime",
                "createContainer",
                "poststart",
                "poststop"
            ],
        "order {names:?}"
    );
    for l in text.lines() {
        let st: Value = serde_json::from_str(l.split_once(' ').map(|x| x.1).unwrap_or(""))
            .map_err(|e| format!("state not JSON: {e}: {l}"))?;
        ensure!(
            st["id"] == json!(b.id) && st["bundle"] == json!(b.dir),
            "state {st}"
        );
    }
    Ok(())
}

fn failing_create_runtime_hook(ctx: &Ctx) -> Check {
    let mut b = ctx.bundle(&["/bin/oci-check", "facts"]);
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    b.write();
    let o = b.cmd(&["create", "--bundle", b.dir.to_str().unwrap_or("."), &b.id]);
    ensure!(
        !o.status.success(),
        "create succeeded although a createRuntime hook failed"
    );
    std::thread::sleep(Duration::from_millis(100));
    ensure!(b.output().is_empty(), "the user process ran");
    Ok(())
}

fn failing_poststop_hook_does_not_fail_delete(ctx: &Ctx) -> Check {
    let mut b = ctx.bundle(&["/bin/oci-check", "facts"]);
    b.config["hooks"] = json!({"poststop": [{"path": "/bin/false"}]});
    b.create()?;
    b.start()?;
    b.wait_status("stopped", SEC)?;
    b.delete()
}

// ---- cgroups (config-linux.md, Control groups) ----

fn cgroup_memory_limit(ctx: &Ctx) -> Check {
    let mut b = ctx.bundle(&["/bin/oci-check", "sleep", "30"]);
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    b.create()?;
    let pid = b.state()?["pid"].as_i64().unwrap_or(0);
    let v = cgroup_file(pid, "memory.max", ("memory", "memory.limit_in_bytes"));
    ensure!(v.as_deref() == Some("67108864"), "memory limit {v:?}");
    Ok(())
}

fn cgroup_pids_limit(ctx: &Ctx) -> Check {
    let mut b = ctx.bundle(&["/bin/oci-check", "sleep", "30"]);
    b.config["linux"]["resources"] = json!({"pids": {"limit": 42}});
    b.create()?;
    let pid = b.state()?["pid"].as_i64().unwrap_or(0);
    let v = cgroup_file(pid, "pids.max", ("pids", "pids.max"));
    ensure!(v.as_deref() == Some("42"), "pids limit {v:?}");
    Ok(())
}

fn cgroups_path(ctx: &Ctx) -> Check {
    let mut b = ctx.bundle(&["/bin/oci-check", "sleep", "30"]);
    let path = format!("/conformance-{}/{}", std::process::id(), b.id);
    b.config["linux"]["cgroupsPath"] = json!(path);
    let r = (|| {
        b.create()?;
        let pid = b.state()?["pid"].as_i64().unwrap_or(0);
        let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        ensure!(
            cg.lines().any(|l| l.ends_with(&path)),
            "not in {path}: {cg}"
        );
        Ok(())
    })();
    // The runtime removes the container's cgroup, not the parent this case named.
    let _ = b.cmd(&["delete", "--force", &b.id]);
    crate::harness::reap();
    let parent = path
        .rsplit_once('/')
        .map(|p| p.0)
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    for _ in 0..50 {
        let mut left = false;
        for hierarchy in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = hierarchy.path().join(&parent);
            if dir.exists() {
                remove_empty_tree(&dir);
                left |= dir.exists();
            }
        }
        if !left {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    r
}

/// rmdir of a cgroup directory and its children, deepest first (cgroup
/// directories hold only virtual files, so rmdir works once they are empty).
fn remove_empty_tree(dir: &std::path::Path) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_tree(&e.path());
        }
    }
    let _ = fs::remove_dir(dir);
}

// ---- seccomp (config-linux.md, Seccomp) ----

fn seccomp_errno(ctx: &Ctx) -> Check {
    let v = check(ctx, &["mkdir", "/tmp/blocked"], |c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]});
    })?;
    ensure!(v["error"] == "EPERM", "mkdir under an ERRNO rule: {v}");
    Ok(())
}

pub fn all() -> Vec<Case> {
    macro_rules! case {
        ($f:ident, $sec:expr) => {
            Case {
                name: stringify!($f),
                section: $sec,
                run: $f,
            }
        };
    }
    vec![
        case!(state_after_create, "runtime.md: State, Create"),
        case!(
            args_applied_only_on_start,
            "runtime.md: Create (process.args not before start)"
        ),
        case!(status_running_then_stopped, "runtime.md: Lifecycle, State"),
        case!(start_not_created_fails, "runtime.md: Start"),
        case!(kill_delivers_signal, "runtime.md: Kill"),
        case!(kill_stopped_fails, "runtime.md: Kill"),
        case!(delete_running_fails, "runtime.md: Delete"),
        case!(delete_removes_container, "runtime.md: Delete"),
        case!(create_duplicate_id_fails, "runtime.md: Create"),
        case!(state_unknown_fails, "runtime.md: Query State"),
        case!(process_args, "config.md: Process (args)"),
        case!(process_env, "config.md: Process (env)"),
        case!(process_cwd, "config.md: Process (cwd)"),
        case!(process_user, "config.md: User (uid, gid, additionalGids)"),
        case!(process_umask, "config.md: User (umask)"),
        case!(
            process_capabilities,
            "config.md: Linux Process (capabilities)"
        ),
        case!(process_rlimits, "config.md: POSIX process (rlimits)"),
        case!(
            process_no_new_privileges,
            "config.md: Linux Process (noNewPrivileges)"
        ),
        case!(
            process_oom_score_adj,
            "config.md: Linux Process (oomScoreAdj)"
        ),
        case!(
            process_terminal,
            "config.md: Process (terminal); runtime-linux.md"
        ),
        case!(root_readonly, "config.md: Root (readonly)"),
        case!(root_path_relative_to_bundle, "config.md: Root (path)"),
        case!(mount_tmpfs_options, "config.md: Mounts (options)"),
        case!(mount_bind_readonly, "config.md: Mounts (bind, ro)"),
        case!(mounts_in_order, "config.md: Mounts (order)"),
        case!(mount_destination_created, "config.md: Mounts (destination)"),
        case!(hostname, "config.md: Hostname"),
        case!(domainname, "config.md: Domainname"),
        case!(ns_pid, "config-linux.md: Namespaces (pid)"),
        case!(ns_network, "config-linux.md: Namespaces (network)"),
        case!(ns_ipc, "config-linux.md: Namespaces (ipc)"),
        case!(ns_uts, "config-linux.md: Namespaces (uts)"),
        case!(ns_mount, "config-linux.md: Namespaces (mount)"),
        case!(ns_cgroup, "config-linux.md: Namespaces (cgroup)"),
        case!(ns_user, "config-linux.md: Namespaces (user)"),
        case!(ns_time, "config-linux.md: Namespaces (time)"),
        case!(
            ns_absent_shares_runtime,
            "config-linux.md: Namespaces (not listed)"
        ),
        case!(ns_join_by_path, "config-linux.md: Namespaces (path)"),
        case!(user_ns_mappings, "config-linux.md: User namespace mappings"),
        case!(default_devices, "config-linux.md: Default Devices"),
        case!(dev_symlinks, "runtime-linux.md: Dev symbolic links"),
        case!(linux_devices, "config-linux.md: Devices"),
        case!(masked_paths, "config-linux.md: Masked Paths"),
        case!(readonly_paths, "config-linux.md: Readonly Paths"),
        case!(sysctl, "config-linux.md: Sysctl"),
        case!(
            rootfs_propagation,
            "config-linux.md: Rootfs Mount Propagation"
        ),
        case!(hooks_order_and_state, "config.md: POSIX-platform Hooks"),
        case!(failing_create_runtime_hook, "runtime.md: Lifecycle step 4"),
        case!(
            failing_poststop_hook_does_not_fail_delete,
            "config.md: Poststop"
        ),
        case!(cgroup_memory_limit, "config-linux.md: Memory"),
        case!(cgroup_pids_limit, "config-linux.md: PIDs"),
        case!(cgroups_path, "config-linux.md: Cgroups path"),
        case!(seccomp_errno, "config-linux.md: Seccomp"),
    ]
}
