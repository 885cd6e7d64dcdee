//! The lifecycle as engines drive it: create, state, start, kill, delete, run,
//! list — observed through the CLI and from the host.

mod common;

use common::*;
use serde_json::json;
use std::fs;

#[test]
fn run_reports_exit_status() {
    let b = Bundle::sh("exit 3");
    let o = b.run("exit3");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn run_exit_status_of_killed_container_is_128_plus_signal() {
    let b = Bundle::new(&["sleep", "60"]);
    b.write();
    let mut child = b
        .husk()
        .args(["run", "-b"])
        .arg(&b.dir)
        .arg("sig")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let c = Container::new(&b, "sig");
    for _ in 0..300 {
        let o = b.cmd(&["state", "sig"]);
        if o.status.success() && stdout(&o).contains("\"running\"") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    c.ok(&["kill", "KILL"]);
    assert_eq!(child.wait().unwrap().code(), Some(128 + libc::SIGKILL));
}

#[test]
fn status_goes_created_running_stopped() {
    let mut b = Bundle::sh("read x < /share/go; echo done");
    let share = b.share("/share");
    nix::unistd::mkfifo(
        &share.join("go"),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    )
    .unwrap();
    let c = b.create("states");
    let st = c.state();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], "states");
    assert!(st["pid"].as_i64().unwrap() > 0);
    assert_eq!(st["bundle"], json!(b.dir));
    assert_eq!(st["rootfs"], json!(rootfs()));
    assert_eq!(st["owner"], "root");
    assert!(st["created"].as_str().unwrap().ends_with('Z'));
    assert!(st["ociVersion"].as_str().unwrap().starts_with("1."));
    // The user process has not run yet (runtime.md: args are applied on start).
    assert_eq!(c.output(), "");
    c.ok(&["start"]);
    assert_eq!(c.status(), "running");
    fs::write(share.join("go"), "go\n").unwrap();
    c.wait_stopped();
    let st = c.state();
    assert_eq!(st["status"], "stopped");
    // No stale pid once stopped.
    assert_eq!(st["pid"], 0);
    assert_eq!(c.output(), "done\n");
    c.delete();
    assert!(!b.root.join("states").exists());
}

#[test]
fn start_twice_and_start_stopped_fail() {
    let b = Bundle::sh("sleep 60");
    let c = b.create("start2");
    c.ok(&["start"]);
    let o = c.cmd(&["start"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("running"), "{}", stderr(&o));
    c.ok(&["kill", "KILL"]);
    c.wait_stopped();
    let o = c.cmd(&["start"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("stopped"), "{}", stderr(&o));
}

#[test]
fn kill_delivers_named_signal() {
    let mut b =
        Bundle::sh("trap 'echo got-usr1 > /share/sig; exit 0' USR1; while :; do sleep 0.05; done");
    let share = b.share("/share");
    let c = b.create("killsig");
    c.ok(&["start"]);
    // The shell installs its trap after start; give it a moment, then signal by name.
    std::thread::sleep(std::time::Duration::from_millis(200));
    c.ok(&["kill", "SIGUSR1"]);
    c.wait_stopped();
    assert_eq!(fs::read_to_string(share.join("sig")).unwrap(), "got-usr1\n");
}

#[test]
fn kill_by_number_and_default_term() {
    let b = Bundle::sh("trap 'exit 7' TERM; while :; do sleep 0.05; done");
    let c = b.create("killterm");
    c.ok(&["start"]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    c.ok(&["kill"]);
    c.wait_stopped();
    let b2 = Bundle::new(&["sleep", "60"]);
    let c2 = b2.create("kill9");
    c2.ok(&["start"]);
    c2.ok(&["kill", "9"]);
    c2.wait_stopped();
}

#[test]
fn kill_stopped_container_fails() {
    let b = Bundle::sh("true");
    let c = b.create("killdead");
    c.ok(&["start"]);
    c.wait_stopped();
    let o = c.cmd(&["kill", "KILL"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("container not running"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn kill_all_reaches_every_process() {
    // No pid namespace: the init's death alone would not end the children.
    let mut b = Bundle::sh("sleep 60 & sleep 60 & echo $! > /share/child; wait");
    let share = b.share("/share");
    b.config["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "uts"}, {"type": "ipc"}]);
    let c = b.create("killall");
    c.ok(&["start"]);
    let child_file = share.join("child");
    for _ in 0..200 {
        if child_file.exists() && !fs::read_to_string(&child_file).unwrap().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let child: i32 = fs::read_to_string(&child_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    c.ok(&["kill", "--all", "KILL"]);
    c.wait_stopped();
    for _ in 0..200 {
        if !std::path::Path::new(&format!("/proc/{child}")).exists() {
            break;
        }
        reap(child);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{child}/cmdline")).exists() || {
            let st = fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            st.contains(") Z")
        }
    );
}

#[test]
fn delete_running_refuses_then_force_kills() {
    let b = Bundle::new(&["sleep", "60"]);
    let c = b.create("delrun");
    c.ok(&["start"]);
    let pid = c.pid();
    let o = c.cmd(&["delete"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not stopped"), "{}", stderr(&o));
    assert_eq!(c.status(), "running");
    c.ok(&["delete", "--force"]);
    reap(pid);
    assert!(!b.root.join("delrun").exists());
    let o = c.cmd(&["state"]);
    assert!(!o.status.success());
}

#[test]
fn delete_leaves_no_trace() {
    let b = Bundle::new(&["sleep", "60"]);
    let c = b.create("notrace");
    let cg = cgroup_root().join("husk/notrace");
    assert!(cg.is_dir(), "cgroup {} missing", cg.display());
    let pid = c.pid();
    let procs = fs::read_to_string(cg.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "init not in its cgroup: {procs}"
    );
    c.ok(&["start"]);
    c.ok(&["delete", "--force"]);
    reap(pid);
    assert!(!cg.exists(), "cgroup left behind");
    assert!(!b.root.join("notrace").exists(), "state left behind");
    assert!(
        !host_mounts_mention(rootfs().to_str().unwrap()),
        "mount left on the host"
    );
}

#[test]
fn delete_created_container() {
    let b = Bundle::new(&["sleep", "60"]);
    let c = b.create("delcreated");
    let pid = c.pid();
    c.ok(&["delete"]);
    reap(pid);
    assert!(!b.root.join("delcreated").exists());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists() || {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
        }
    );
}

#[test]
fn delete_force_of_missing_container_succeeds() {
    let b = Bundle::sh("true");
    let o = b.cmd(&["delete", "--force", "nosuch"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = b.cmd(&["delete", "nosuch"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not exist"));
}

#[test]
fn pid_file_written_before_create_returns() {
    let b = Bundle::new(&["sleep", "60"]);
    b.write();
    let pid_file = b.dir.join("init.pid");
    let o = b
        .husk()
        .args(["create", "--bundle"])
        .arg(&b.dir)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("pidfile")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .status()
        .unwrap();
    let c = Container::new(&b, "pidfile");
    assert!(o.success());
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, c.pid());
}

#[test]
fn list_shows_containers() {
    let b = Bundle::new(&["sleep", "60"]);
    let _c1 = b.create("list-a");
    let _c2 = b.create("list-b");
    let o = b.cmd(&["list", "--format", "json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["list-a", "list-b"]);
    assert_eq!(v[0]["status"], "created");
    let o = b.cmd(&["list", "-q"]);
    assert_eq!(stdout(&o), "list-a\nlist-b\n");
    let o = b.cmd(&["list"]);
    let table = stdout(&o);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.lines().nth(1).unwrap().contains("created"), "{table}");
}

#[test]
fn run_detach_then_delete() {
    let b = Bundle::new(&["sleep", "60"]);
    b.write();
    let o = b
        .husk()
        .args(["run", "-d", "-b"])
        .arg(&b.dir)
        .arg("detached")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    let c = Container::new(&b, "detached");
    assert!(o.success());
    assert_eq!(c.status(), "running");
}

#[test]
fn run_forwards_signals_to_container() {
    let b = Bundle::sh("trap 'exit 42' TERM; while :; do sleep 0.05; done");
    b.write();
    let mut child = b
        .husk()
        .args(["run", "-b"])
        .arg(&b.dir)
        .arg("fwd")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state_ok = || {
        b.cmd(&["state", "fwd"]).status.success() && {
            let v: serde_json::Value =
                serde_json::from_slice(&b.cmd(&["state", "fwd"]).stdout).unwrap();
            v["status"] == "running"
        }
    };
    for _ in 0..300 {
        if state_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(42));
    // run deletes the container after it exits.
    assert!(!b.root.join("fwd").exists());
}

#[test]
fn hooks_run_in_order_with_state() {
    let mut b = Bundle::new(&["true"]);
    let share = b.share("/hooklog");
    let log = share.join("log");
    let host_hook = |name: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("read -r s; echo \"{name} $s\" >> {}", log.display())]})
    };
    // startContainer runs inside the container: its path and output are the container's.
    let in_container = json!({"path": "/bin/sh", "args": ["sh", "-c", "read -r s; echo \"startContainer $s\" >> /hooklog/log"]});
    b.config["hooks"] = json!({
        "createRuntime": [host_hook("createRuntime")],
        "createContainer": [host_hook("createContainer")],
        "startContainer": [in_container],
        "poststart": [host_hook("poststart")],
        "poststop": [host_hook("poststop")],
    });
    let c = b.create("hooks");
    let pid = c.pid();
    c.ok(&["start"]);
    c.wait_stopped();
    c.delete();
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let names: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    for l in &lines {
        let st: serde_json::Value = serde_json::from_str(l.split_once(' ').unwrap().1).unwrap();
        assert_eq!(st["id"], "hooks");
        assert_eq!(st["bundle"], json!(b.dir));
    }
    let st = |i: usize| -> serde_json::Value {
        serde_json::from_str(lines[i].split_once(' ').unwrap().1).unwrap()
    };
    // runtime.md, Lifecycle: the create hooks are steps 3-5, after the
    // environment is created (step 2), so the status is `created` (as crun
    // and the OCI suite have it; runc says `creating`).
    assert_eq!(st(0)["status"], "created");
    // Hooks in the container namespace see the pid as the container does (config.md, POSIX-platform Hooks).
    assert_eq!(st(1)["status"], "created");
    assert_eq!(st(1)["pid"], 1);
    assert_eq!(st(2)["status"], "created");
    assert_eq!(st(2)["pid"], 1);
    assert_eq!(st(0)["pid"], pid);
    assert_eq!(st(3)["status"], "running");
    assert_eq!(st(4)["status"], "stopped");
}

#[test]
fn failing_create_hook_fails_create_and_cleans_up() {
    let mut b = Bundle::new(&["true"]);
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-broke >&2; exit 4"]}]});
    let (_c, o) = b.try_create("badhook");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("hooks.createRuntime[0]") && err.contains("hook-broke"),
        "{err}"
    );
    assert!(!b.root.join("badhook").exists());
    assert!(!cgroup_root().join("husk/badhook").exists());
}
