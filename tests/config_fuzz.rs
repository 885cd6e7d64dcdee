//! Property tests over config parsing and planning: any config, however
//! mangled, either becomes a plan or is refused with an error naming where;
//! nothing panics. Configs start from `husk spec` and take random edits at
//! random places (values of every JSON type, the spec's own key names, the
//! strings attacks are made of). No root needed: nothing is created.

use std::path::Path;

#[path = "fuzz/mutate.rs"]
mod mutate;

use husk::plan::{CreateOptions, Plan};
use mutate::{apply, edit};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Key names the spec uses, so edits reach deep into the known structure.
const KEYS: &[&str] = &[
    "ociVersion",
    "process",
    "root",
    "mounts",
    "hooks",
    "linux",
    "annotations",
    "hostname",
    "domainname",
    "args",
    "env",
    "cwd",
    "user",
    "uid",
    "gid",
    "umask",
    "additionalGids",
    "capabilities",
    "bounding",
    "effective",
    "permitted",
    "inheritable",
    "ambient",
    "rlimits",
    "type",
    "hard",
    "soft",
    "noNewPrivileges",
    "oomScoreAdj",
    "terminal",
    "consoleSize",
    "height",
    "width",
    "path",
    "readonly",
    "destination",
    "source",
    "options",
    "namespaces",
    "uidMappings",
    "gidMappings",
    "containerID",
    "hostID",
    "size",
    "devices",
    "major",
    "minor",
    "fileMode",
    "resources",
    "memory",
    "limit",
    "swap",
    "cpu",
    "shares",
    "quota",
    "period",
    "cpus",
    "mems",
    "pids",
    "blockIO",
    "weight",
    "unified",
    "cgroupsPath",
    "sysctl",
    "seccomp",
    "defaultAction",
    "defaultErrnoRet",
    "architectures",
    "flags",
    "syscalls",
    "names",
    "action",
    "errnoRet",
    "args",
    "index",
    "value",
    "valueTwo",
    "op",
    "listenerPath",
    "listenerMetadata",
    "maskedPaths",
    "readonlyPaths",
    "rootfsPropagation",
    "personality",
    "domain",
    "timeOffsets",
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
    "timeout",
    "ioPriority",
    "class",
    "priority",
    "uidMappings",
    "allow",
    "access",
];

/// Strings that mean something to a runtime.
const STRINGS: &[&str] = &[
    "",
    "/",
    "..",
    "../../../etc/passwd",
    "/proc/self/fd/3",
    "/proc/self/exe",
    "\u{0}",
    "a\u{0}b",
    "rbind",
    "ro",
    "rw",
    "rprivate",
    "shared",
    "idmap",
    "nosuid",
    "bind",
    "tmpfs",
    "proc",
    "sysfs",
    "overlay",
    "cgroup",
    "pid",
    "network",
    "mount",
    "user",
    "uts",
    "ipc",
    "time",
    "cgroup",
    "CAP_SYS_ADMIN",
    "CAP_NOPE",
    "RLIMIT_NOFILE",
    "RLIMIT_NOPE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_KILL",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_NOPE",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NOPE",
    "mkdir",
    "no_such_syscall",
    "net.ipv4.ip_forward",
    "kernel.domainname",
    "net/../../kernel/x",
    "1.2.1",
    "2.0.0",
    "1.0.0-rc1",
    "c",
    "b",
    "p",
    "u",
    "a",
    "rwm",
    "LINUX32",
    "IOPRIO_CLASS_RT",
    "max",
    "-1",
    "0-1",
    "a=b",
    "=",
    "PATH=",
    "memory.max",
    "../cgroup.procs",
    "husk/x",
    "/sys/fs/cgroup",
    "unbindable",
    "slave",
];

/// What `create` does before it touches the system.
fn plan(config: &Value) -> Result<Plan, String> {
    let text = serde_json::to_vec(config).unwrap();
    let spec = husk::bundle::parse(&text[..]).map_err(|(path, msg)| format!("{path}: {msg}"))?;
    husk::bundle::check_version(spec.version())?;
    let opts = CreateOptions::default();
    Plan::new("fuzz", Path::new("/nonexistent-bundle"), &spec, &opts).map_err(|e| e.to_string())
}

fn base() -> Value {
    let mut c = husk::spec::default_spec(false);
    // Reach the parts the default leaves out.
    c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]});
    c["linux"]["resources"] = json!({"memory": {"limit": 1048576, "swap": 2097152},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 10}, "devices": [{"allow": false, "access": "rwm"}],
        "unified": {"memory.high": "max"}});
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    c["linux"]["sysctl"] = json!({"kernel.domainname": "x"});
    c["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]);
    c["process"]["terminal"] = json!(false);
    c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]);
    c["hooks"] = json!({"prestart": [{"path": "/bin/true", "args": ["true"], "timeout": 1}]});
    c
}

proptest! {
    // Bounded so the suite stays fast: a few thousand configs in a few seconds.
    #![proptest_config(mutate::config(3000))]

    #[test]
    fn any_config_plans_or_is_refused_without_panic(edits in proptest::collection::vec(edit(KEYS, STRINGS), 1..6)) {
        let mut c = base();
        for e in &edits {
            apply(&mut c, e);
        }
        if let Err(msg) = plan(&c) {
            // A refusal says something: the field, the path, or the reason.
            prop_assert!(!msg.trim().is_empty());
        }
    }
}

#[test]
fn the_base_config_plans() {
    // The starting point is valid, so the edits are what the property tests.
    plan(&base()).unwrap();
}
