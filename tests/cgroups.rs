//! cgroup v2 behaviour that needs only the unified hierarchy, so it runs on a
//! hybrid host too: membership, freeze (pause/resume), ps, kill --all through
//! cgroup.kill, stats, and refusing limits a controller-less hierarchy cannot
//! enforce. Resource limits themselves are tested in the cgroup v2 guest
//! (tests/vm/).

mod common;

use common::*;
use serde_json::{Value, json};
use std::fs;
use std::time::Duration;

fn counter(b: &Bundle) -> u64 {
    let share = b.dir.parent().unwrap().join("share_count");
    fs::read_to_string(share.join("n"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn pause_stops_and_resume_continues_a_counting_loop() {
    // Written with a rename, so a reader never sees a half-written counter.
    let mut b = Bundle::sh(
        "i=0; while :; do i=$((i+1)); echo $i > /count/n.new; mv /count/n.new /count/n; sleep 0.01; done",
    );
    b.share("/count");
    let c = b.create("pause");
    c.ok(&["start"]);
    std::thread::sleep(Duration::from_millis(300));
    c.ok(&["pause"]);
    assert_eq!(c.status(), "paused");
    let frozen_at = counter(&b);
    assert!(frozen_at > 0, "the loop never ran");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(&b), frozen_at, "the counter moved while paused");
    let o = c.cmd(&["pause"]);
    assert!(!o.status.success(), "pausing twice succeeded");
    c.ok(&["resume"]);
    assert_eq!(c.status(), "running");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        counter(&b) > frozen_at,
        "the counter did not move after resume"
    );
    let o = c.cmd(&["resume"]);
    assert!(
        !o.status.success(),
        "resuming a running container succeeded"
    );
}

#[test]
fn delete_force_of_a_paused_container() {
    let b = Bundle::new(&["sleep", "60"]);
    let c = b.create("pausedel");
    c.ok(&["start"]);
    c.ok(&["pause"]);
    c.ok(&["delete", "--force"]);
    reap(c.init);
    assert!(!cgroup_root().join("husk/pausedel").exists());
}

#[test]
fn ps_lists_every_process_of_the_container() {
    let mut b = Bundle::sh("sleep 60 & sleep 60 & echo ready > /s/r; wait");
    let share = b.share("/s");
    let c = b.create("ps");
    c.ok(&["start"]);
    for _ in 0..200 {
        if share.join("r").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = c.cmd(&["ps", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pids: Vec<i64> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.contains(&(c.pid() as i64)));
    let o = c.cmd(&["ps"]);
    let table = stdout(&o);
    assert!(table.starts_with("PID"), "{table}");
    assert_eq!(
        table.lines().filter(|l| l.ends_with(" sleep 60")).count(),
        2,
        "{table}"
    );
}

#[test]
fn stats_come_from_the_cgroup() {
    let b = Bundle::sh("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 60");
    let c = b.create("stats");
    c.ok(&["start"]);
    std::thread::sleep(Duration::from_millis(300));
    let o = c.cmd(&["events", "--stats"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], "stats");
    assert!(
        v["data"]["cpu"]["usage"]["total"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert!(
        v["data"]["memory"].is_object() && v["data"]["pids"].is_object(),
        "{v}"
    );
}

#[test]
fn events_stream_ends_when_the_container_stops() {
    let b = Bundle::sh("sleep 0.5");
    let c = b.create("evstream");
    c.ok(&["start"]);
    let o = b
        .husk()
        .args(["events", "--interval", "100ms", "evstream"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{lines:?}");
    assert!(lines.iter().all(|l| l["type"] == "stats"));
}

#[test]
fn events_reports_an_oom_kill_once() {
    // Wherever the memory controller is: memory.events watched on v2, the
    // v1 memory cgroup's OOM notification (an eventfd) on v1 and hybrid
    // hosts such as this one.
    let mut b = Bundle::sh("sleep 0.5; x=$(head -c 200000000 /dev/zero | tr '\\0' a)");
    b.config["linux"]["resources"] = json!({"memory": {"limit": 33554432, "swap": 33554432}});
    b.write();
    let c = b.create("evoom");
    let events = b
        .husk()
        .args(["events", "--interval", "10s", "evoom"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.ok(&["start"]);
    let o = events.wait_with_output().unwrap();
    let types: Vec<String> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].to_string())
        .collect();
    assert_eq!(
        types.iter().filter(|t| *t == "\"oom\"").count(),
        1,
        "{types:?}"
    );
}

/// The container's directory in the v1 hierarchy holding `controller`, if
/// this host has one (v1 and hybrid hosts), from /proc/PID/cgroup.
fn v1_dir(pid: i32, controller: &str) -> Option<std::path::PathBuf> {
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    own.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        ctrls.split(',').any(|c| c == controller).then(|| {
            std::path::Path::new("/sys/fs/cgroup")
                .join(ctrls)
                .join(path.trim_start_matches('/'))
        })
    })
}

fn has_v1(controller: &str) -> bool {
    std::path::Path::new("/sys/fs/cgroup")
        .join(controller)
        .join("cgroup.procs")
        .exists()
}

#[test]
fn limits_go_where_the_controller_is() {
    // A pure v2 host applies a pids limit in the unified hierarchy; a v1 or
    // hybrid host (this one) in the v1 pids hierarchy, as runc does. Never
    // silently dropped.
    let controllers = fs::read_to_string(cgroup_root().join("cgroup.controllers")).unwrap();
    let mut b = Bundle::sh("sleep 30");
    b.config["linux"]["resources"] = json!({"pids": {"limit": 10}, "memory": {"limit": 67108864}});
    let c = b.create("limits");
    if has_v1("pids") {
        let pids = v1_dir(c.pid(), "pids").expect("not in the v1 pids hierarchy");
        assert_eq!(
            fs::read_to_string(pids.join("pids.max")).unwrap().trim(),
            "10"
        );
        let mem = v1_dir(c.pid(), "memory").expect("not in the v1 memory hierarchy");
        assert_eq!(
            fs::read_to_string(mem.join("memory.limit_in_bytes"))
                .unwrap()
                .trim(),
            "67108864"
        );
        c.delete();
        assert!(
            !pids.exists() && !mem.exists(),
            "delete left the v1 cgroups"
        );
    } else if controllers.split_whitespace().any(|c| c == "pids") {
        assert_eq!(
            fs::read_to_string(cgroup_root().join("husk/limits/pids.max"))
                .unwrap()
                .trim(),
            "10"
        );
        c.delete();
    }
}

#[test]
fn update_applies_where_the_controller_is() {
    let controllers = fs::read_to_string(cgroup_root().join("cgroup.controllers")).unwrap();
    let b = Bundle::new(&["sleep", "60"]);
    let c = b.create("upd");
    c.ok(&["start"]);
    let o = c.cmd(&["update", "--memory", "64m", "--pids-limit", "20"]);
    assert!(o.status.success(), "{}", stderr(&o));
    if has_v1("memory") {
        let mem = v1_dir(c.pid(), "memory").unwrap();
        let max = fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap();
        assert_eq!(max.trim(), "67108864");
        let pids = v1_dir(c.pid(), "pids").unwrap();
        assert_eq!(
            fs::read_to_string(pids.join("pids.max")).unwrap().trim(),
            "20"
        );
    } else if controllers.split_whitespace().any(|c| c == "memory") {
        let max = fs::read_to_string(cgroup_root().join("husk/upd/memory.max")).unwrap();
        assert_eq!(max.trim(), "67108864");
    }
    assert_eq!(c.status(), "running");
}

#[test]
fn device_program_denies_unlisted_devices_and_allows_defaults() {
    // The eBPF device program works on any cgroup2 hierarchy, this hybrid
    // host's unified one included. Nodes are made in /dev (the test's /tmp is
    // nodev); making one is always allowed, as runc allows it (`c *:* m`):
    // opening it is what the rules guard.
    let script = "mknod /dev/kmsg2 c 1 11 && probe open-write /dev/kmsg2; \
                  probe open-write /dev/null; \
                  head -c 1 /dev/zero | wc -c; \
                  mknod /dev/fuse2 c 10 229 && probe open-write /dev/fuse2; true";
    let bundle = |devices: Option<serde_json::Value>| {
        let mut b = Bundle::sh(script);
        for set in ["bounding", "effective", "permitted"] {
            b.config["process"]["capabilities"][set] = json!(["CAP_MKNOD"]);
        }
        if let Some(d) = devices {
            b.config["linux"]["resources"] = json!({ "devices": d });
        }
        b
    };
    const OPENED: &str = "opened for writing";
    const REFUSED: &str = "error EPERM";
    // A privileged config allows every device (the control).
    let out = run_ok(
        &bundle(Some(json!([{"allow": true, "access": "rwm"}]))),
        "devall",
    );
    assert_eq!(out, format!("{OPENED}\n{OPENED}\n1\n{OPENED}\n"));
    // No rules: runc's default list only.
    let out = run_ok(&bundle(None), "devnone");
    assert_eq!(out, format!("{REFUSED}\n{OPENED}\n1\n{REFUSED}\n"));
    // Deny-all and one device allowed: it and the defaults.
    let out = run_ok(
        &bundle(Some(json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}
        ]))),
        "devrules",
    );
    assert_eq!(out, format!("{REFUSED}\n{OPENED}\n1\n{OPENED}\n"));
}

#[test]
fn update_replaces_the_device_program() {
    // The container keeps trying to open a node of 10:229, which its rules
    // deny, until an update allows it.
    let mut b = Bundle::sh(
        "mknod /dev/f c 10 229; while :; do probe open-write /dev/f | grep -q opened \
         && echo made > /share/r && exit 0; sleep 0.05; done",
    );
    let share = b.share("/share");
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = json!(["CAP_MKNOD"]);
    }
    b.config["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    let c = b.create("devupd");
    c.ok(&["start"]);
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        !share.join("r").exists(),
        "the node was opened before the update allowed it"
    );
    let rules = b.dir.join("res.json");
    fs::write(
        &rules,
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":10,"minor":229,"access":"rw"}]}"#,
    )
    .unwrap();
    let o = c.cmd(&["update", "--resources", rules.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for _ in 0..200 {
        if share.join("r").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        fs::read_to_string(share.join("r")).unwrap_or_default(),
        "made\n",
        "the update did not take effect"
    );
}

#[test]
fn delete_removes_the_parent_cgroups_create_made() {
    // A relative cgroupsPath whose parents do not exist (the OCI suite's
    // `testdir/cgrouptest/container`): create makes them, and delete takes
    // them away again as far as they are empty. runc leaves the parents.
    let top = format!("husk-test-parents-{}", std::process::id());
    let path = |leaf: &str| format!("{top}/mid/{leaf}");
    let mut a = Bundle::sh("sleep 30");
    a.config["linux"]["cgroupsPath"] = json!(path("a"));
    a.write();
    let mut b = Bundle::sh("sleep 30");
    b.config["linux"]["cgroupsPath"] = json!(path("b"));
    b.write();
    let ca = a.create("parents-a");
    let cb = b.create("parents-b");
    let cg = |rel: &str| -> std::path::PathBuf {
        let own = fs::read_to_string(format!("/proc/{}/cgroup", ca.pid())).unwrap();
        let rel_a = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap()
            .to_string();
        // The container's cgroup ends in TOP/mid/a: the rest is where husk
        // puts relative paths.
        let base = rel_a.strip_suffix(&path("a")).unwrap().to_string();
        cgroup_root().join(base.trim_start_matches('/')).join(rel)
    };
    let top_dir = cg(&top);
    assert!(top_dir.join("mid/a").is_dir() && top_dir.join("mid/b").is_dir());
    // a made the parents; b's cgroup is still in them: they stay.
    ca.delete();
    assert!(top_dir.join("mid/b").is_dir());
    assert!(!top_dir.join("mid/a").exists());
    cb.delete();
    // b made no parent (a had): they are left, but empty, and removable.
    assert!(!top_dir.join("mid/b").exists());
    // In every hierarchy: the v1 ones hold the same parents.
    let rel = top_dir.strip_prefix(cgroup_root()).unwrap().to_path_buf();
    for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = fs::remove_dir(h.path().join(&rel).join("mid"));
        let _ = fs::remove_dir(h.path().join(&rel));
    }
    // Alone, a container's parents go with it.
    let mut c = Bundle::sh("sleep 30");
    c.config["linux"]["cgroupsPath"] = json!(path("c"));
    c.write();
    let cc = c.create("parents-c");
    assert!(top_dir.join("mid/c").is_dir());
    cc.delete();
    assert!(!top_dir.exists(), "delete left {}", top_dir.display());
}

#[test]
fn memory_and_pids_limits_are_enforced() {
    // Wherever the controllers are (the v1 hierarchies on this hybrid host):
    // an allocation past the memory limit is OOM-killed, and a fork loop
    // stops at the pids limit.
    let mut b = Bundle::sh("x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived");
    b.config["linux"]["resources"] = json!({"memory": {"limit": 33554432, "swap": 33554432}});
    b.write();
    let o = b.run("oom");
    assert!(
        !stdout(&o).contains("survived"),
        "the allocation was not stopped"
    );
    // Killed by the OOM killer (SIGKILL: 128 + 9), not refused at create.
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    // Each fork that works prints its number (echo is a builtin); busybox sh
    // gives up at the first fork the limit refuses.
    let mut b = Bundle::sh("i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i + 1)); echo $i; done");
    b.config["linux"]["resources"] = json!({"pids": {"limit": 10}});
    b.write();
    let o = b.run("pidsmax");
    let forked = stdout(&o).lines().count();
    // The shell and its sleeps: at most the limit, and the loop did fork.
    assert!(
        (1..10).contains(&forked),
        "{forked} forks under a limit of 10: {}",
        stderr(&o)
    );
}

#[test]
fn stats_come_from_where_the_limits_are() {
    // events --stats reads the container's own memory and pids accounting
    // wherever its limits are (the v1 hierarchies on this hybrid host): its
    // limits come back, and what it holds is counted.
    let mut b = Bundle::sh("x=$(head -c 8000000 /dev/zero | tr '\\0' a); sleep 30");
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 20}});
    b.write();
    let c = b.create("v1stats");
    c.ok(&["start"]);
    std::thread::sleep(Duration::from_millis(800));
    let o = c.cmd(&["events", "--stats"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &v["data"];
    assert_eq!(d["memory"]["usage"]["limit"], 67108864, "{v}");
    // The shell's 8 MB string came and went: the peak holds it.
    let usage = d["memory"]["usage"]["usage"].as_u64().unwrap();
    let peak = d["memory"]["usage"]["max"].as_u64().unwrap();
    assert!(usage > 0 && usage <= 67108864, "memory usage {usage}: {v}");
    assert!(
        (8_000_000..=67108864).contains(&peak),
        "memory peak {peak}: {v}"
    );
    assert_eq!(d["pids"]["limit"], 20, "{v}");
    let procs = d["pids"]["current"].as_u64().unwrap();
    assert!((1..20).contains(&procs), "pids {procs}: {v}");
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{v}");
}

#[test]
fn a_cpu_quota_holds_a_busy_loop_to_its_share() {
    // cpu.quota 20000 of a 100000 period: a busy loop gets about 20% of a
    // CPU, by the container's own cpu accounting (the v1 cpuacct hierarchy
    // here, cpu.stat on a v2 host).
    let mut b = Bundle::sh("while :; do :; done");
    b.config["linux"]["resources"] = json!({"cpu": {"quota": 20000, "period": 100000}});
    b.write();
    let c = b.create("cpuquota");
    c.ok(&["start"]);
    let used_ns = || -> u64 {
        let o = c.cmd(&["events", "--stats"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["data"]["cpu"]["usage"]["total"].as_u64().unwrap()
    };
    std::thread::sleep(Duration::from_millis(500));
    let (u1, t1) = (used_ns(), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let (u2, t2) = (used_ns(), std::time::Instant::now());
    let pct = (u2 - u1) as f64 / (t2 - t1).as_nanos() as f64 * 100.0;
    // The quota is a ceiling: the bound that matters is the upper one (the
    // lower one only says the loop ran; other tests share these CPUs).
    assert!(
        (2.0..=30.0).contains(&pct),
        "the loop used {pct:.1}% of a CPU"
    );
    let v: Value = serde_json::from_slice(&c.cmd(&["events", "--stats"]).stdout).unwrap();
    assert!(
        v["data"]["cpu"]["throttling"]["throttledPeriods"]
            .as_u64()
            .unwrap()
            > 0,
        "never throttled: {v}"
    );
}

#[test]
fn a_container_joining_a_pid_namespace_is_in_its_own_v1_cgroups() {
    // Every container of a Kubernetes pod with a shared process namespace,
    // and Docker's --pid container:X: the init is forked into the joined pid
    // namespace by an intermediate process. It must land in the container's
    // cgroups with its limits, like any init, not stay in its creator's.
    // Whether the intermediate forks before create has placed it is a race
    // this test may not lose; tests/cri.rs, whose pods join the sandbox's
    // pid namespace, lost it on every run of the code before the fix.
    if !has_v1("memory") {
        return;
    }
    let a = Bundle::sh("sleep 30");
    let ca = a.create("pidns-owner");
    ca.ok(&["start"]);
    let mut b = Bundle::sh("sleep 30");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "pid", "path": format!("/proc/{}/ns/pid", ca.pid())}));
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 20}});
    b.write();
    let cb = b.create("pidns-joiner");
    let dir = v1_dir(cb.pid(), "memory").unwrap();
    assert_eq!(
        fs::read_to_string(dir.join("memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        "67108864",
        "the joiner's init is in {}",
        dir.display()
    );
    let pids = v1_dir(cb.pid(), "pids").unwrap();
    assert_eq!(
        fs::read_to_string(pids.join("pids.max")).unwrap().trim(),
        "20"
    );
}

#[test]
fn a_v1_cgroup_that_is_there_already_with_a_restricted_device_list_is_rewritten() {
    // A cgroup left by an earlier container (or a parent made by an engine)
    // whose devices list denies everything: the container is placed there,
    // and must still reach its own /dev/null, as under runc.
    if !has_v1("devices") {
        return;
    }
    let top = format!("husk-test-devlist-{}", std::process::id());
    let dir = std::path::Path::new("/sys/fs/cgroup/devices").join(&top);
    fs::create_dir_all(dir.join("c")).unwrap();
    fs::write(dir.join("c/devices.deny"), "a").unwrap();
    let mut b = Bundle::sh("echo ok > /dev/null && echo reached");
    b.config["linux"]["cgroupsPath"] = json!(format!("/{top}/c"));
    let o = b.run("devlist");
    let _ = fs::remove_dir(dir.join("c"));
    let _ = fs::remove_dir(&dir);
    for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = h.path().join(&top);
        let _ = fs::remove_dir(p.join("c"));
        let _ = fs::remove_dir(p);
    }
    assert_eq!(stdout(&o).trim(), "reached", "{}", stderr(&o));
}
