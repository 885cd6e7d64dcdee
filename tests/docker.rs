//! Docker (Debian's docker.io) drives husk end to end, as it drives runc:
//! a dockerd of the test's own, in mount and network namespaces of its own
//! (nothing reaches the machine's network or its docker), with husk and runc
//! both registered. Every case runs under runc and under husk, and what the
//! user sees (output, exit status) must be the same: runc is the reference.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER: &str = "/usr/bin/docker";

struct Dockerd {
    dir: PathBuf,
    child: Child,
    cgroup_parent: String,
}

impl Dockerd {
    fn start() -> Dockerd {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("docker-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let cgroup_parent = format!("husk-docker-test-{}", std::process::id());
        let config = serde_json::json!({
            "runtimes": {"husk": {"path": husk_bin()}},
            "storage-driver": "overlay2",
            "cgroup-parent": format!("/{cgroup_parent}"),
            "log-level": "warn",
        });
        fs::write(dir.join("daemon.json"), config.to_string()).unwrap();
        let script = format!(
            "ip link set lo up && exec {DOCKERD} --config-file {d}/daemon.json --data-root {d}/data \
             --exec-root {d}/exec --pidfile {d}/pid -H unix://{d}/sock",
            d = dir.display()
        );
        let child = Command::new("unshare")
            .args([
                "-m",
                "-n",
                "--propagation",
                "private",
                "--fork",
                "--kill-child=SIGTERM",
            ])
            .args(["sh", "-c", &script])
            .stdout(fs::File::create(dir.join("log")).unwrap())
            .stderr(fs::File::create(dir.join("log.err")).unwrap())
            .spawn()
            .unwrap();
        let d = Dockerd {
            dir,
            child,
            cgroup_parent,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.docker(&["info"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up: {}",
                fs::read_to_string(d.dir.join("log.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // An image of the test rootfs (there is no registry to pull from).
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs())
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let st = d
            .docker_cmd(&["import", "-", "bb:husk"])
            .stdin(tar.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(
            tar.wait().unwrap().success() && st.success(),
            "docker import"
        );
        d
    }

    fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(DOCKER);
        c.env("DOCKER_CONFIG", self.dir.join("client"))
            .arg("-H")
            .arg(format!("unix://{}/sock", self.dir.display()))
            .args(args);
        c
    }

    fn docker(&self, args: &[&str]) -> Output {
        let o = self.docker_cmd(args).stdin(Stdio::null()).output().unwrap();
        reap_orphans();
        o
    }

    /// A shell command in dockerd's network namespace (to reach published
    /// ports on its loopback).
    fn in_netns(&self, script: &str) -> Output {
        let pid = fs::read_to_string(self.dir.join("pid")).unwrap();
        Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", pid.trim()))
            .args(["sh", "-c", script])
            .output()
            .unwrap()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        let pid = fs::read_to_string(self.dir.join("pid")).unwrap_or_default();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // dockerd shuts down on SIGTERM (--kill-child): wait for it by pid.
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
            {
                reap_orphans();
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        reap_orphans();
        // The cgroup parent of the test's containers, in every hierarchy
        // (runc leaves it; husk removes what it made).
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                let _ = fs::remove_dir(h.path().join(&self.cgroup_parent));
            }
        }
        let _ = fs::remove_dir(cgroup_root().join(&self.cgroup_parent));
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What `docker ARGS` shows a user: exit status, stdout, and the error's
/// gist (the part after the runtime's name, which differs).
fn seen(o: &Output) -> (Option<i32>, String, String) {
    let err = stderr(o);
    // The first line only: the client sometimes adds "error waiting for
    // container: context canceled" (its own race, with either runtime).
    let gist = err
        .split("unable to start container process: ")
        .nth(1)
        .and_then(|g| g.lines().next())
        .unwrap_or("")
        .to_string();
    (o.status.code(), stdout(o), gist)
}

#[test]
fn docker_runs_husk_containers_as_it_runs_runc_ones() {
    let d = Dockerd::start();
    let run = |rt: &str, extra: &[&str], cmd: &[&str]| -> Output {
        let mut a = vec!["run", "--rm", "--runtime", rt];
        a.extend_from_slice(extra);
        a.push("bb:husk");
        a.extend_from_slice(cmd);
        d.docker(&a)
    };
    fs::create_dir_all(d.dir.join("vol")).unwrap();
    fs::write(d.dir.join("vol/f"), "volfile\n").unwrap();
    let vol = format!("{}:/vol", d.dir.join("vol").display());
    let seccomp = d.dir.join("seccomp.json");
    fs::write(
        &seccomp,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let sec = format!("seccomp={}", seccomp.display());
    let probe = "id; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status; ls /dev | sort | tr '\\n' ' '";
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        ("a plain container", vec![], vec!["sh", "-c", probe]),
        ("exit status 3", vec![], vec!["sh", "-c", "exit 3"]),
        ("a missing program (127)", vec![], vec!["/nonexistent"]),
        ("a program not in PATH (127)", vec![], vec!["nosuchcmd"]),
        (
            "a file that is not executable (126)",
            vec![],
            vec!["/etc/passwd"],
        ),
        (
            "an unknown flag (125)",
            vec!["--memory", "lots"],
            vec!["true"],
        ),
        (
            "--init",
            vec!["--init"],
            vec!["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"],
        ),
        (
            "--read-only, --tmpfs, -v",
            vec!["--read-only", "--tmpfs", "/scratch", "-v", &vol],
            vec![
                "sh",
                "-c",
                "cat /vol/f; touch /x 2>&1; touch /scratch/y && echo tmpfs-ok",
            ],
        ),
        (
            "--cap-add NET_ADMIN and /dev/net/tun",
            vec!["--cap-add", "NET_ADMIN"],
            vec![
                "sh",
                "-c",
                "mkdir -p /dev/net && mknod /dev/net/tun c 10 200 && ls -l /dev/net/tun | cut -c1-10; \
                 grep CapEff /proc/self/status",
            ],
        ),
        (
            "--device",
            vec!["--device", "/dev/fuse"],
            vec!["sh", "-c", "ls -l /dev/fuse | cut -c1-10"],
        ),
        ("--privileged", vec!["--privileged"], vec!["true"]),
        (
            "--security-opt seccomp=FILE",
            vec!["--security-opt", &sec],
            vec!["sh", "-c", "mkdir /tmp/zz 2>&1"],
        ),
        (
            "--user and --workdir",
            vec!["--user", "1000:1000", "--workdir", "/tmp"],
            vec!["sh", "-c", "id; pwd"],
        ),
    ];
    for (name, extra, cmd) in &cases {
        let (rs, rout, rerr) = seen(&run("runc", extra, cmd));
        let (hs, hout, herr) = seen(&run("husk", extra, cmd));
        assert_eq!(
            (hs, &hout),
            (rs, &rout),
            "{name}: husk (left) and runc (right) differ"
        );
        // husk's error may name the config field before runc's words.
        assert!(
            herr.ends_with(&rerr),
            "{name}: husk said {herr:?}, runc {rerr:?}"
        );
    }

    // Detached containers: exec, exec -it, top, pause and unpause, stop
    // (TERM, then KILL after the timeout), stats.
    for rt in ["runc", "husk"] {
        let name = format!("d-{rt}");
        // PID 1 ignores a signal it has no handler for: this one exits 7 on TERM.
        let o = d.docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--runtime",
            rt,
            "bb:husk",
            "sh",
            "-c",
            "trap 'exit 7' TERM; sleep 300 & wait",
        ]);
        assert!(o.status.success(), "{rt}: run -d: {}", stderr(&o));
        let o = d.docker(&["exec", &name, "echo", "in-exec"]);
        assert_eq!(stdout(&o), "in-exec\n", "{rt}: exec: {}", stderr(&o));
        let o = d.docker(&["exec", &name, "/nonexistent"]);
        assert_eq!(
            o.status.code(),
            Some(126),
            "{rt}: exec of a missing program"
        );
        // exec -it, with a terminal from script(1).
        let cmd = format!(
            "DOCKER_CONFIG={c} {DOCKER} -H unix://{s}/sock exec -it {name} sh -c 'tty; echo tty-ok'",
            c = d.dir.join("client").display(),
            s = d.dir.display()
        );
        let o = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let out = stdout(&o).replace('\r', "");
        assert!(
            out.contains("/dev/pts/") && out.contains("tty-ok"),
            "{rt}: exec -it: {out}"
        );
        let o = d.docker(&["top", &name]);
        assert!(
            stdout(&o).contains("sleep 300"),
            "{rt}: top: {}{}",
            stdout(&o),
            stderr(&o)
        );
        for (cmd, status) in [("pause", "paused"), ("unpause", "running")] {
            assert!(d.docker(&[cmd, &name]).status.success(), "{rt}: {cmd}");
            let o = d.docker(&["inspect", "-f", "{{.State.Status}}", &name]);
            assert_eq!(stdout(&o).trim(), status, "{rt}: after {cmd}");
        }
        // stats reads the container's own cgroups (the v1 ones on this
        // hybrid host): its two processes, the shell and sleep.
        let o = d.docker(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}}",
            &name,
        ]);
        assert_eq!(
            stdout(&o).trim(),
            format!("{name} 2"),
            "{rt}: stats: {}",
            stderr(&o)
        );
        // TERM ends it at once; a process ignoring TERM needs the KILL after
        // the timeout.
        let start = Instant::now();
        assert!(d.docker(&["stop", "-t", "10", &name]).status.success());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{rt}: stop waited for the timeout"
        );
        let o = d.docker(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
        assert_eq!(stdout(&o).trim(), "7", "{rt}: exit code after TERM");
        let _ = d.docker(&["rm", "-f", &name]);
        let stubborn = format!("s-{rt}");
        let o = d.docker(&[
            "run",
            "-d",
            "--name",
            &stubborn,
            "--runtime",
            rt,
            "bb:husk",
            "sh",
            "-c",
            "trap '' TERM; while :; do sleep 1; done",
        ]);
        assert!(o.status.success(), "{rt}: {}", stderr(&o));
        let start = Instant::now();
        assert!(d.docker(&["stop", "-t", "1", &stubborn]).status.success());
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(8),
            "{rt}: stop of a process ignoring TERM took {took:?}"
        );
        let o = d.docker(&["inspect", "-f", "{{.State.ExitCode}}", &stubborn]);
        assert_eq!(stdout(&o).trim(), "137", "{rt}: exit code after KILL");
        let _ = d.docker(&["rm", "-f", &stubborn]);
    }

    // A user-defined network: containers reach each other by name, and a
    // published port is reached on dockerd's own loopback.
    for (rt, port) in [("runc", "8081"), ("husk", "8082")] {
        let net = format!("net-{rt}");
        let web = format!("web-{rt}");
        assert!(d.docker(&["network", "create", &net]).status.success());
        let o = d.docker(&[
            "run",
            "-d",
            "--name",
            &web,
            "--network",
            &net,
            "-p",
            &format!("{port}:80"),
            "--runtime",
            rt,
            "bb:husk",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        ]);
        assert!(o.status.success(), "{rt}: {}", stderr(&o));
        let url = format!("http://{web}/group");
        let o = run(rt, &["--network", &net], &["wget", "-q", "-O", "-", &url]);
        assert!(
            stdout(&o).starts_with("root:x:0:"),
            "{rt}: by name: {}",
            stderr(&o)
        );
        let o = d.in_netns(&format!("wget -q -O - http://127.0.0.1:{port}/group"));
        assert!(
            stdout(&o).starts_with("root:x:0:"),
            "{rt}: -p: {}",
            stderr(&o)
        );
        let _ = d.docker(&["rm", "-f", &web]);
        let _ = d.docker(&["network", "rm", &net]);
    }
}
