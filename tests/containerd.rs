//! containerd end to end: a containerd of the test's own (root, state and
//! socket under the test's directory, never the system's), an OCI image built
//! here from busybox-static and imported, and `ctr` driving husk through the
//! real `io.containerd.runc.v2` shim with `--runc-binary`. husk is reached
//! through a wrapper that logs every call the shim makes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const NS: &str = "husk-e2e";
const IMAGE: &str = "docker.io/library/husk-busybox:latest";

/// The daemon and its directory; on drop, every container the test made is
/// removed, the daemon stopped (by pid) and its mounts checked gone.
struct Containerd {
    dir: PathBuf,
    daemon: std::process::Child,
    wrapper: PathBuf,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Containerd {
    fn start() -> Containerd {
        rootfs();
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ctd-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
             [debug]\n  address = \"{d}/debug.sock\"\n",
            d = dir.display()
        );
        fs::write(dir.join("config.toml"), config).unwrap();
        let wrapper = logging_wrapper(&dir);
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd is missing: run the README's test command, which installs it");
        let c = Containerd {
            dir,
            daemon,
            wrapper,
            ids: Default::default(),
        };
        let t = Instant::now();
        while !c.ctr(&["version"]).status.success() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "containerd did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn ctr_cmd(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.dir.join("containerd.sock"))
            .args(["--namespace", NS]);
        cmd
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `ctr run` with husk as the runtime binary.
    fn run(&self, flags: &[&str], id: &str, cmd: &[&str]) -> Output {
        let wrapper = self.wrapper.to_str().unwrap().to_string();
        self.run_with(&wrapper, flags, id, cmd)
    }

    /// `ctr run` with `binary` as the runtime.
    fn run_with(&self, binary: &str, flags: &[&str], id: &str, cmd: &[&str]) -> Output {
        self.ids.borrow_mut().push(id.to_string());
        let mut args = vec!["run", "--runc-binary", binary];
        args.extend_from_slice(flags);
        args.push(IMAGE);
        args.push(id);
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }

    fn calls(&self) -> String {
        fs::read_to_string(self.dir.join("calls.log")).unwrap_or_default()
    }

    fn task_status(&self, id: &str) -> String {
        let o = self.ctr(&["task", "ls"]);
        stdout(&o)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_string()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", id]);
            let _ = self.ctr(&["task", "rm", "-f", id]);
            let _ = self.ctr(&["container", "rm", id]);
        }
        // SAFETY: kill by the pid of the daemon this test started.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        let _ = self.daemon.wait();
        reap_orphans();
        // What the namespace left: husk's --root for it, and the parent cgroup
        // of containerd's default cgroupsPath (/NS/ID) in every hierarchy;
        // all empty by now.
        let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(NS));
        for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let _ = fs::remove_dir(h.path().join(NS));
        }
        let _ = fs::remove_dir(cgroup_root().join(NS));
        // Its root, state and image store (15 MB a run); nothing in it is
        // mounted once the daemon has stopped and the tasks are gone.
        if !host_mounts_mention(&self.dir.to_string_lossy()) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn out_ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({:?}): {}{}",
        o.status,
        stderr(o),
        stdout(o)
    );
    stdout(o)
}

#[test]
fn containerd_runs_husk_through_the_runc_shim() {
    let c = Containerd::start();
    let archive = build_image(&c.dir, IMAGE, &json!({"Cmd": ["sh"]}));
    out_ok(
        &c.ctr(&["images", "import", archive.to_str().unwrap()]),
        "import",
    );

    // ctr run --rm: the output and the status.
    let o = c.run(&["--rm"], "hello", &["echo", "hello"]);
    assert_eq!(out_ok(&o, "ctr run --rm"), "hello\n");
    let o = c.run(&["--rm"], "status", &["sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    // Detached, then an exec with its output and status, ps, pause/resume.
    out_ok(&c.run(&["-d"], "detached", &["sleep", "60"]), "ctr run -d");
    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "x1",
        "detached",
        "sh",
        "-c",
        "echo in-exec; exit 4",
    ]);
    assert_eq!(stdout(&o), "in-exec\n", "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let ps = out_ok(&c.ctr(&["task", "ps", "detached"]), "ctr task ps");
    assert!(ps.lines().count() >= 2, "{ps}");
    assert_eq!(c.task_status("detached"), "RUNNING");
    out_ok(&c.ctr(&["task", "pause", "detached"]), "pause");
    assert_eq!(c.task_status("detached"), "PAUSED");
    out_ok(&c.ctr(&["task", "resume", "detached"]), "resume");
    assert_eq!(c.task_status("detached"), "RUNNING");
    // kill (sleep as PID 1 ignores TERM; KILL ends it), then delete.
    out_ok(&c.ctr(&["task", "kill", "-s", "KILL", "detached"]), "kill");
    let t = Instant::now();
    while c.task_status("detached") != "STOPPED" {
        assert!(t.elapsed() < Duration::from_secs(10), "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    out_ok(&c.ctr(&["task", "delete", "detached"]), "task delete");
    out_ok(
        &c.ctr(&["container", "delete", "detached"]),
        "container delete",
    );

    // With a terminal: ctr wants a console on its stdin, which script(1) makes.
    let cmd = format!(
        "ctr --address {} --namespace {NS} run -t --rm --runc-binary {} {IMAGE} tty sh -c 'tty; exit 0'",
        c.dir.join("containerd.sock").display(),
        c.wrapper.display()
    );
    c.ids.borrow_mut().push("tty".into());
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("/dev/pts/"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );

    // The config containerd writes (its defaults, and with --privileged,
    // --cap-add, --read-only, --mount, --env, --user) runs under husk as under
    // runc: the process sees the same ids, capabilities, devices and mounts
    // (bar /sys/fs/cgroup, which runc lays out for v1 on this hybrid host,
    // and the root, whose snapshot differs). husk's masks (an empty
    // read-only tmpfs) are nosuid,nodev,noexec too; runc's only ro.
    let probe = "id; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status; ls /dev | sort | tr '\\n' ' '; \
        awk '{print $2, $3, $4}' /proc/self/mounts | grep -v '^/sys/fs/cgroup\\|^/ ' | \
        sed 's/,size=[0-9k]*//; s/,nr_inodes=[0-9]*//; s/^\\(.* tmpfs ro\\),nosuid,nodev,noexec/\\1/' | \
        sort; echo \"$HELLO\"";
    let share = c.dir.join("share");
    fs::create_dir_all(&share).unwrap();
    let mount = format!(
        "type=bind,src={},dst=/share,options=rbind:ro",
        share.display()
    );
    let variants: [&[&str]; 4] = [
        &["--rm"],
        &[
            "--rm",
            "--cap-add",
            "CAP_NET_ADMIN",
            "--read-only",
            "--env",
            "HELLO=there",
        ],
        &["--rm", "--mount", &mount, "--user", "1000:1000"],
        &["--rm", "--privileged"],
    ];
    for (i, flags) in variants.iter().enumerate() {
        let runc = c.run_with(
            "/usr/sbin/runc",
            flags,
            &format!("cmp-runc-{i}"),
            &["sh", "-c", probe],
        );
        let husk = c.run(flags, &format!("cmp-husk-{i}"), &["sh", "-c", probe]);
        assert_eq!(
            (husk.status.code(), stdout(&husk)),
            (runc.status.code(), stdout(&runc)),
            "ctr run {flags:?}: husk (left) and runc (right) differ: {}{}",
            stderr(&husk),
            stderr(&runc)
        );
    }

    // A failing create reports husk's own error through containerd.
    let o = c.run(&["--rm"], "missing", &["/no/such/program"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/no/such/program"),
        "husk's message did not come through: {}",
        stderr(&o)
    );

    // Every call the shim made was one husk knows, with flags it accepts.
    let calls = c.calls();
    for sub in [
        "create", "start", "exec", "ps", "pause", "resume", "kill", "delete",
    ] {
        assert!(
            calls
                .lines()
                .any(|l| l.split_whitespace().any(|w| w == sub)),
            "the shim never called {sub}:\n{calls}"
        );
    }
    fs::write(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("containerd-calls.log"),
        &calls,
    )
    .unwrap();
    // Nothing left behind by the deleted containers: no husk state, no task
    // mounts.
    let left: Vec<_> = fs::read_dir(Path::new("/run/containerd/runc").join(NS))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "husk state left: {left:?}");
    assert!(!host_mounts_mention(&c.dir.display().to_string()));
}
