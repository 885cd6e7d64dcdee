//! Kubernetes' path on this (hybrid, cgroup v1) host: containerd's CRI
//! plugin, with husk as a runtime handler through the runc v2 shim, driven by
//! crictl (built from ../shared/third_party's cri-tools, as the CRI suite is)
//! as the kubelet drives it. A pod sandbox gets containerd's `cpu.shares: 2`,
//! a container the limits a pod spec asks for; both must land in the v1
//! hierarchies, and the statistics containerd reports must be the
//! container's own (before: the sandbox was refused, and the stats were
//! those of containerd's own cgroups).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const IMAGE: &str = "docker.io/library/husk-busybox:latest";
/// containerd 1.6's default sandbox image.
const PAUSE: &str = "registry.k8s.io/pause:3.6";

/// crictl, built from the cri-tools tarball kept beside the repository.
fn crictl() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/cri-tools");
    let tarball = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/third_party/cri-tools-v1.26.1.tar.gz");
    if !dir.join("crictl").exists() {
        assert!(
            tarball.exists(),
            "{} is missing: the CRI tests build crictl from it",
            tarball.display()
        );
        let st = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/critest-build.sh"))
            .arg(&tarball)
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "building crictl failed");
    }
    dir.join("crictl")
}

/// A containerd of the test's own with the CRI plugin on, in a network
/// namespace of its own (pods use the host network: nothing here needs CNI,
/// and nothing reaches the machine's network). On drop every pod is removed,
/// the daemon stopped by pid, and the cgroup parent checked gone.
struct Cri {
    dir: PathBuf,
    daemon: std::process::Child,
    crictl: PathBuf,
    /// The pods' cgroup parent, `/husk-cri-PID`, in every hierarchy.
    parent: String,
}

impl Cri {
    fn start() -> Cri {
        rootfs();
        let crictl = crictl();
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cri-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("cni-conf")).unwrap();
        let wrapper = logging_wrapper(&dir);
        let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             [grpc]\n  address = \"{d}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
             [{cri}]\n  sandbox_image = \"{PAUSE}\"\n  restrict_oom_score_adj = true\n\
             [{cri}.containerd]\n  default_runtime_name = \"husk\"\n\
             [{cri}.containerd.runtimes.husk]\n  runtime_type = \"io.containerd.runc.v2\"\n\
             [{cri}.containerd.runtimes.husk.options]\n  BinaryName = \"{w}\"\n\
             [{cri}.cni]\n  bin_dir = \"/usr/lib/cni\"\n  conf_dir = \"{d}/cni-conf\"\n",
            d = dir.display(),
            w = wrapper.display(),
        );
        fs::write(dir.join("config.toml"), config).unwrap();
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        let daemon = Command::new("unshare")
            .args(["--net", "containerd", "--config"])
            .arg(dir.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("unshare or containerd is missing: run the README's test command");
        let c = Cri {
            dir,
            daemon,
            crictl,
            parent: format!("husk-cri-{}", std::process::id()),
        };
        let t = Instant::now();
        while !c.crictl(&["version"]).status.success() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "containerd did not come up: {}",
                fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        for (name, config) in [
            (IMAGE, json!({"Cmd": ["sh"]})),
            (PAUSE, json!({"Entrypoint": ["sleep", "1000000"]})),
        ] {
            let archive = build_image(&c.dir, name, &config);
            let o = Command::new("ctr")
                .arg("--address")
                .arg(c.dir.join("containerd.sock"))
                .args(["-n", "k8s.io", "images", "import"])
                .arg(&archive)
                .output()
                .unwrap();
            assert!(o.status.success(), "import {name}: {}", stderr(&o));
        }
        c
    }

    fn crictl(&self, args: &[&str]) -> Output {
        let sock = format!("unix://{}", self.dir.join("containerd.sock").display());
        Command::new(&self.crictl)
            .args([
                "--runtime-endpoint",
                &sock,
                "--image-endpoint",
                &sock,
                "--timeout",
                "30s",
            ])
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.crictl(args);
        assert!(
            o.status.success(),
            "crictl {args:?}: {}{}\ncontainerd: {}",
            stderr(&o),
            stdout(&o),
            tail(&fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default())
        );
        stdout(&o).trim().to_string()
    }

    fn write(&self, name: &str, v: &Value) -> String {
        let p = self.dir.join(name);
        fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        p.display().to_string()
    }

    /// Directories under the pods' cgroup parent, in any hierarchy.
    fn cgroups_left(&self) -> Vec<PathBuf> {
        let mut left = Vec::new();
        for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let p = h.path().join(&self.parent);
            if p.is_dir() && !h.path().is_symlink() {
                left.push(p);
            }
        }
        left
    }
}

fn tail(s: &str) -> String {
    s.lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for Cri {
    fn drop(&mut self) {
        let _ = self.crictl(&["rmp", "-fa"]);
        // SAFETY: kill by the pid of the process this test started.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        let _ = self.daemon.wait();
        reap_orphans();
        for p in self.cgroups_left() {
            let _ = fs::remove_dir(&p);
        }
        let _ = fs::remove_dir(Path::new("/run/containerd/runc/k8s.io"));
        if !host_mounts_mention(&self.dir.to_string_lossy()) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A key of a `cgroup.procs`-style file of the v1 hierarchy holding
/// `controller`, for the process `pid`.
fn v1_file(pid: i32, controller: &str, file: &str) -> String {
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let dir = own
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls.split(',').any(|c| c == controller).then(|| {
                Path::new("/sys/fs/cgroup")
                    .join(ctrls)
                    .join(path.trim_start_matches('/'))
            })
        })
        .unwrap_or_else(|| panic!("pid {pid} has no {controller} cgroup: {own}"));
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

#[test]
fn a_pod_runs_with_containerds_limits_and_reports_its_own_stats() {
    assert!(
        Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists(),
        "this test is for a host with cgroup v1 controllers (hybrid or v1)"
    );
    let c = Cri::start();
    let pod = c.write(
        "pod.json",
        &json!({
            "metadata": {"name": "huskpod", "namespace": "default", "uid": "husk-pod-1", "attempt": 0},
            "log_directory": c.dir.join("logs").display().to_string(),
            "linux": {
                "cgroup_parent": format!("/{}", c.parent),
                "security_context": {"namespace_options": {"network": 2}}
            }
        }),
    );
    // The sandbox: containerd gives it cpu.shares 2 (refused before).
    let pod_id = c.ok(&["runp", &pod]);
    let info: Value = serde_json::from_str(&c.ok(&["inspectp", &pod_id])).unwrap();
    let pause_pid = info["info"]["pid"].as_i64().unwrap() as i32;
    assert_eq!(v1_file(pause_pid, "cpu", "cpu.shares"), "2");
    assert!(c.ok(&["pods"]).contains("Ready"));

    // A container with a pod spec's limits, allocating 8 MB then idling.
    let ctr = c.write(
        "ctr.json",
        &json!({
            "metadata": {"name": "work"},
            "image": {"image": IMAGE},
            "command": ["sh", "-c", "x=$(head -c 8000000 /dev/zero | tr '\\0' a); sleep 1000"],
            "log_path": "work.log",
            "linux": {"resources": {
                "memory_limit_in_bytes": 67108864,
                "cpu_period": 100000, "cpu_quota": 50000, "cpu_shares": 512
            }}
        }),
    );
    let ctr_id = c.ok(&["create", &pod_id, &ctr, &pod]);
    c.ok(&["start", &ctr_id]);
    let info: Value = serde_json::from_str(&c.ok(&["inspect", &ctr_id])).unwrap();
    let pid = info["info"]["pid"].as_i64().unwrap() as i32;
    let bundle = c
        .dir
        .join("state/io.containerd.runtime.v2.task/k8s.io")
        .join(&ctr_id);
    let spec: Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let res = &spec["linux"]["resources"];
    assert_eq!(
        res["memory"]["limit"], 67108864,
        "containerd's config: {res}"
    );
    assert_eq!(
        v1_file(pid, "memory", "memory.limit_in_bytes"),
        "67108864",
        "the container's init (pid {pid}, in the pod's pid namespace) is in {}",
        fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
    );
    assert_eq!(v1_file(pid, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(v1_file(pid, "cpu", "cpu.shares"), "512");
    assert_eq!(
        c.ok(&["exec", "-s", &ctr_id, "echo", "in-pod"]),
        "in-pod",
        "exec through the CRI"
    );

    // The stats containerd reports are the container's own cgroup's: a few
    // MB of memory (it held 8 MB once) and well under a second of CPU, as
    // the kernel counts them there.
    std::thread::sleep(Duration::from_millis(1500));
    let stats: Value = serde_json::from_str(&c.ok(&["stats", "-o", "json", &ctr_id])).unwrap();
    let s = &stats["stats"][0];
    let mem: u64 = s["memory"]["workingSetBytes"]["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no memory stats: {stats}"));
    let cpu: u64 = s["cpu"]["usageCoreNanoSeconds"]["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no cpu stats: {stats}"));
    let kernel_mem: u64 = v1_file(pid, "memory", "memory.usage_in_bytes")
        .parse()
        .unwrap();
    assert!(
        mem > 0 && mem <= kernel_mem && kernel_mem < 67108864,
        "working set {mem}, the container's memory cgroup {kernel_mem}: {stats}"
    );
    assert!(cpu > 0 && cpu < 5_000_000_000, "cpu {cpu} ns: {stats}");

    // Stop and remove as the kubelet does; nothing is left in any hierarchy.
    c.ok(&["stop", &ctr_id]);
    c.ok(&["rm", &ctr_id]);
    c.ok(&["stopp", &pod_id]);
    c.ok(&["rmp", &pod_id]);
    let calls = fs::read_to_string(c.dir.join("calls.log")).unwrap_or_default();
    assert!(
        calls.contains("create"),
        "husk was not the runtime: {calls}"
    );
    let t = Instant::now();
    while !c.cgroups_left().is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The parent is containerd's (the pod's cgroup_parent) and stays, as it
    // does with runc; below it nothing may be left.
    for p in c.cgroups_left() {
        let children: Vec<_> = fs::read_dir(&p)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.path())
            .collect();
        assert!(
            children.is_empty(),
            "left under {}: {children:?}",
            p.display()
        );
    }
}
