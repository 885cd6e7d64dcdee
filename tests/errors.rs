//! Bad input: each gets one clear error naming the field, path or id, a
//! non-zero exit, and leaves nothing behind.

mod common;

use common::*;
use serde_json::json;
use std::fs;

/// Creates with the bundle as is and returns stderr, asserting failure and
/// that no state, cgroup or stray mount was left.
fn create_fails(b: &Bundle, id: &str) -> String {
    let (_c, o) = b.try_create(id);
    assert!(!o.status.success(), "create {id} unexpectedly succeeded");
    assert!(!b.root.join(id).exists(), "state left for {id}");
    assert!(
        !cgroup_root().join("husk").join(id).exists(),
        "cgroup left for {id}"
    );
    stderr(&o)
}

#[test]
fn unknown_id() {
    let b = Bundle::sh("true");
    for cmd in ["state", "start", "kill", "delete"] {
        let o = b.cmd(&[cmd, "ghost"]);
        assert!(!o.status.success(), "{cmd}");
        assert!(
            stderr(&o).contains("container does not exist") && stderr(&o).contains("ghost"),
            "{cmd}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn commands_without_id_fail() {
    let b = Bundle::sh("true");
    for cmd in ["state", "start", "kill", "delete", "create"] {
        let o = b.cmd(&[cmd]);
        assert!(!o.status.success(), "{cmd} without an id succeeded");
    }
}

#[test]
fn invalid_ids() {
    let b = Bundle::sh("true");
    for id in ["../escape", "a/b", ".."] {
        let o = b.cmd(&["state", id]);
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("invalid container id"),
            "{id}: {}",
            stderr(&o)
        );
    }
    let (_c, o) = b.try_create("..");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid container id"),
        "{}",
        stderr(&o)
    );
    std::mem::forget(_c);
    // Nothing was made beside the state root either.
    assert!(!b.root.exists() || fs::read_dir(&b.root).unwrap().next().is_none());
}

#[test]
fn duplicate_id() {
    let b = Bundle::new(&["sleep", "60"]);
    let _c = b.create("dup");
    let (_c2, o) = b.try_create("dup");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    // The first container is untouched.
    assert_eq!(_c.status(), "created");
    std::mem::forget(_c2);
}

#[test]
fn missing_bundle_and_config() {
    let b = Bundle::sh("true");
    let o = b.cmd(&["create", "--bundle", "/nonexistent/bundle", "nob"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/bundle"), "{}", stderr(&o));
    fs::remove_file(b.dir.join("config.json")).ok();
    let o = b
        .husk()
        .args(["create", "-b"])
        .arg(&b.dir)
        .arg("nocfg")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("config.json"), "{}", stderr(&o));
    assert!(!b.root.join("nocfg").exists());
}

#[test]
fn invalid_json_names_the_path() {
    let mut b = Bundle::sh("true");
    b.config["process"]["user"]["uid"] = json!("root");
    let e = create_fails(&b, "badjson");
    assert!(e.contains("process.user.uid"), "{e}");
    b.write();
    fs::write(b.dir.join("config.json"), "{ not json").unwrap();
    let o = b
        .husk()
        .args(["create", "-b"])
        .arg(&b.dir)
        .arg("garbage")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("config.json"), "{}", stderr(&o));
}

#[test]
fn unsupported_version() {
    let mut b = Bundle::sh("true");
    b.config["ociVersion"] = json!("2.0.0");
    let e = create_fails(&b, "ver");
    assert!(e.contains("ociVersion") && e.contains("2.0.0"), "{e}");
}

#[test]
fn relative_cwd() {
    let mut b = Bundle::sh("true");
    b.config["process"]["cwd"] = json!("relative/dir");
    let e = create_fails(&b, "relcwd");
    assert!(e.contains("process.cwd"), "{e}");
}

#[test]
fn unknown_namespace_type() {
    let mut b = Bundle::sh("true");
    b.config["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "bogus"}]);
    let e = create_fails(&b, "badns");
    assert!(e.contains("linux.namespaces[1]"), "{e}");
}

#[test]
fn missing_rootfs() {
    let mut b = Bundle::sh("true");
    b.config["root"]["path"] = json!("/nonexistent/rootfs");
    let e = create_fails(&b, "noroot");
    assert!(
        e.contains("root.path") && e.contains("/nonexistent/rootfs"),
        "{e}"
    );
}

#[test]
fn namespace_path_that_does_not_exist() {
    let mut b = Bundle::sh("true");
    b.config["linux"]["namespaces"] =
        json!([{"type": "mount"}, {"type": "uts"}, {"type": "network", "path": "/nonexistent/ns"}]);
    let e = create_fails(&b, "nsmissing");
    assert!(
        e.contains("linux.namespaces[2].path") && e.contains("/nonexistent/ns"),
        "{e}"
    );
}

#[test]
fn unsupported_resources_are_refused() {
    // memory+swap below the memory limit, which neither cgroup v1 nor v2 can
    // express: refused with the field, on any host.
    let mut b = Bundle::sh("true");
    b.config["linux"]["resources"] = json!({"memory": {"limit": 33554432, "swap": 16777216}});
    let e = create_fails(&b, "mem");
    assert!(e.contains("linux.resources.memory.swap"), "{e}");
}

#[test]
fn failure_inside_init_is_reported_with_step() {
    // A mount of an unknown filesystem type fails after clone, inside the init.
    let mut b = Bundle::sh("true");
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/x", "type": "nosuchfs", "source": "none"}));
    let e = create_fails(&b, "badmount");
    assert!(
        e.contains("mounts[") && e.contains("nosuchfs") && e.contains("ENODEV"),
        "{e}"
    );
    assert!(!host_mounts_mention(rootfs().to_str().unwrap()));
}

#[test]
fn json_log_for_engines() {
    let b = Bundle::sh("true");
    let log = b.dir.join("log.json");
    let o = b
        .husk()
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "state", "ghost"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let text = fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"]
            .as_str()
            .unwrap()
            .contains("container does not exist")
    );
    assert!(last["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn spec_refuses_to_overwrite_and_features_is_json() {
    let b = Bundle::sh("true");
    b.write();
    let o = b.cmd(&["spec", "--bundle", b.dir.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("exists"));
    let o = b.cmd(&["features"]);
    let f: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(f["linux"]["cgroup"]["v2"], true);
    assert!(
        f["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "user")
    );
}

/// A profile or label the host cannot apply (this machine's kernel runs no
/// LSM) is refused naming the field, as runc refuses it at create; a mount
/// label without SELinux means nothing and is ignored, as crun ignores it.
#[test]
fn lsm_profile_and_label_without_the_lsm_are_refused() {
    for (field, value, needle) in [
        (
            "apparmorProfile",
            "docker-default",
            "AppArmor is not enabled",
        ),
        (
            "selinuxLabel",
            "system_u:system_r:container_t:s0:c1,c2",
            "selinux label is specified in config, but selinux is disabled or not supported",
        ),
    ] {
        let mut b = Bundle::sh("true");
        b.config["process"][field] = json!(value);
        b.write();
        let err = create_fails(&b, "lsm");
        assert!(
            err.contains(&format!("process.{field}")) && err.contains(needle),
            "{err}"
        );
        // exec's flags too.
        let b = Bundle::new(&["sleep", "30"]);
        let c = b.create("lsmexec");
        let flag = match field {
            "apparmorProfile" => "--apparmor",
            _ => "--process-label",
        };
        let o = b.cmd(&["exec", flag, value, "lsmexec", "true"]);
        assert!(!o.status.success(), "exec {flag} accepted");
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
        c.delete();
    }
    let mut b = Bundle::sh("grep -c context= /proc/self/mounts || true");
    b.config["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
    assert_eq!(run_ok(&b, "mountlabel"), "0\n");
}
