//! Property tests over config parsing and planning: any config, however
//! mangled, either becomes a plan or is refused with an error naming where;
//! nothing panics. Configs start from `husk spec` and take random edits at
//! random places (values of every JSON type, the spec's own key names, the
//! strings attacks are made of). No root needed: nothing is created.

use std::path::Path;

use husk::plan::{CreateOptions, Plan};
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

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(4096),
            Just(u32::MAX as i64 + 1)
        ]
        .prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        proptest::sample::select(STRINGS).prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..4).prop_map(
                |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            ),
        ]
    })
}

/// One edit: which node (by its index in a walk of the tree), what to do there.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, Value),
    Insert(usize, &'static str, Value),
    Remove(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), value()).prop_map(|(i, v)| Edit::Replace(i, v)),
        (any::<usize>(), proptest::sample::select(KEYS), value())
            .prop_map(|(i, k, v)| Edit::Insert(i, k, v)),
        any::<usize>().prop_map(Edit::Remove),
    ]
}

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// The `n`th node in a pre-order walk.
fn nth(v: &mut Value, n: usize) -> &mut Value {
    fn go<'a>(v: &'a mut Value, n: &mut usize) -> Option<&'a mut Value> {
        if *n == 0 {
            return Some(v);
        }
        *n -= 1;
        match v {
            Value::Array(a) => a.iter_mut().find_map(|c| go(c, n)),
            Value::Object(o) => o.values_mut().find_map(|c| go(c, n)),
            _ => None,
        }
    }
    let mut k = n;
    go(v, &mut k).expect("n is below the node count")
}

fn apply(config: &mut Value, e: &Edit) {
    let n = count(config);
    match e {
        Edit::Replace(i, v) => *nth(config, i % n) = v.clone(),
        Edit::Insert(i, k, v) => {
            if let Value::Object(o) = nth(config, i % n) {
                o.insert(k.to_string(), v.clone());
            }
        }
        Edit::Remove(i) => match nth(config, i % n) {
            Value::Object(o) if !o.is_empty() => {
                let k = o.keys().nth(i % o.len()).unwrap().clone();
                o.remove(&k);
            }
            Value::Array(a) if !a.is_empty() => {
                let len = a.len();
                a.remove(i % len);
            }
            _ => {}
        },
    }
}

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
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_config_plans_or_is_refused_without_panic(edits in proptest::collection::vec(edit(), 1..6)) {
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
