//! seccomp profiles enforced on real containers.

mod common;

use common::*;
use serde_json::json;

#[test]
fn errno_rule_fails_the_call_with_the_configured_errno() {
    let mut b = Bundle::sh("mkdir /tmp/x 2>&1; mkdir /tmp/x && echo made; true");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    let out = run_ok(&b, "scerrno");
    assert!(out.contains("Permission denied"), "{out}");
    assert!(!out.contains("made"), "{out}");
}

#[test]
fn kill_rule_kills_with_sigsys() {
    let mut b = Bundle::new(&["uname"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]
    });
    let o = b.run("sckill");
    assert_eq!(o.status.code(), Some(128 + libc::SIGSYS), "{}", stderr(&o));
}

#[test]
fn argument_rule_filters_only_the_matching_call() {
    // personality(PER_LINUX32) is refused; the query personality(0xffffffff) is not.
    let mut b = Bundle::sh("linux32 uname -m 2>&1; uname -m");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]
    });
    let out = run_ok(&b, "scarg");
    let lines: Vec<&str> = out.lines().collect();
    assert!(!lines[0].contains("i686"), "linux32 was allowed: {out}");
    assert_eq!(lines.last(), Some(&"x86_64"), "{out}");
}

#[test]
fn docker_like_profile_runs_a_shell_and_refuses_unshare_and_mount() {
    let names: Vec<&str> = include_str!("../bench/src/syscalls.txt")
        .split_whitespace()
        .collect();
    let mut b = Bundle::sh(
        "echo shell-ok; ls / > /dev/null && echo ls-ok; \
         unshare -m true 2>/dev/null && echo unshare-allowed; \
         mount -t tmpfs t /tmp 2>/dev/null && echo mount-allowed; echo done",
    );
    // Give the process the capabilities, so only seccomp can refuse.
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = json!(["CAP_SYS_ADMIN"]);
    }
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}
        ]
    });
    let out = run_ok(&b, "scdocker");
    assert_eq!(out, "shell-ok\nls-ok\ndone\n");
    // The control: without the profile, the same capabilities allow both.
    b.config["linux"]["seccomp"] = serde_json::Value::Null;
    let out = run_ok(&b, "scnone");
    assert!(
        out.contains("unshare-allowed") && out.contains("mount-allowed"),
        "{out}"
    );
}

#[test]
fn notify_is_refused_with_the_field() {
    let mut b = Bundle::sh("true");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let o = b.run("scnotify");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("linux.seccomp.syscalls[0].action"),
        "{}",
        stderr(&o)
    );
}
