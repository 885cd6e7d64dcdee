//! husk's PID 1 (`run.husk.init` annotation, or `husk init -- CMD…`): reaps
//! orphans, forwards signals, exits with the program's status.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn with_init(b: &mut Bundle) {
    b.config["annotations"] = json!({"run.husk.init": "true"});
}

/// Leaves 100 orphans that exit (their parent subshell is gone at once), then
/// counts zombies.
const ORPHANS: &str = "for i in $(seq 1 100); do (sleep 0.01 &); done; sleep 0.5; \
                       ps -o stat | grep -c '^Z'; exit 5";

/// Orphans made by an exec'd process go to the container's PID 1.
fn zombies_after_exec_orphans(b: &Bundle, id: &str) -> u32 {
    let c = b.create(id);
    c.ok(&["start"]);
    let o = b
        .husk()
        .args(["exec", id, "sh", "-c"])
        .arg("for i in $(seq 1 100); do (sleep 0.01 &); done; sleep 0.5; ps -o stat | grep -c '^Z'; true")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().parse().unwrap()
}

#[test]
fn orphans_are_reaped_and_the_status_is_the_programs() {
    // The control: `sleep` as PID 1 never reaps the orphans it inherits.
    let b = Bundle::new(&["sleep", "30"]);
    let zombies = zombies_after_exec_orphans(&b, "noinit");
    assert!(
        zombies >= 100,
        "expected zombies without an init: {zombies}"
    );

    let mut b = Bundle::new(&["sleep", "30"]);
    with_init(&mut b);
    assert_eq!(zombies_after_exec_orphans(&b, "withinit"), 0);

    // And in the container's own process tree, with the program's status.
    let mut b = Bundle::sh(ORPHANS);
    with_init(&mut b);
    let o = b.run("withinit2");
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "0");
}

fn wait_stopped_within(c: &Container<'_>, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if c.status() == "stopped" {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn term_reaches_the_application() {
    // The control: `sleep` as PID 1 has no handler, so TERM does nothing.
    let b = Bundle::new(&["sleep", "30"]);
    let c = b.create("termplain");
    c.ok(&["start"]);
    c.ok(&["kill", "TERM"]);
    assert!(!wait_stopped_within(&c, Duration::from_millis(300)));
    drop(c);

    let mut b = Bundle::new(&["sleep", "30"]);
    with_init(&mut b);
    let c = b.create("terminit");
    c.ok(&["start"]);
    // Both listed while running: the init and the application, once the
    // init has forked it.
    let t = Instant::now();
    let pids = loop {
        let ps = c.cmd(&["ps", "--format", "json"]);
        let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
        if pids.len() >= 2 || t.elapsed() > Duration::from_secs(5) {
            break pids;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_eq!(c.status(), "running");
    c.ok(&["kill", "TERM"]);
    assert!(wait_stopped_within(&c, Duration::from_secs(5)));
    c.delete();

    // A TERM sent the moment `start` returns is not lost, although the
    // init may not have set up its forwarding yet: it stays pending.
    for i in 0..20 {
        let c = b.create(&format!("termearly{i}"));
        let pid = c.pid();
        c.ok(&["start"]);
        // SAFETY: kill with the container init's pid, as `husk kill` sends.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        assert!(
            wait_stopped_within(&c, Duration::from_secs(5)),
            "round {i}: TERM right after start was lost"
        );
        c.delete();
    }

    // And the status is reported: a foreground run ends with 128+15.
    b.write();
    let mut child = b
        .husk()
        .args(["run", "-b"])
        .arg(&b.dir)
        .arg("termcode")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    // Two processes: husk's init has forked the application (before that,
    // the init ignores TERM as any PID 1 without a handler does).
    let count = || {
        serde_json::from_slice::<Vec<i32>>(&b.cmd(&["ps", "--format", "json", "termcode"]).stdout)
            .map(|v| v.len())
            .unwrap_or(0)
    };
    while count() < 2 {
        assert!(t.elapsed() < Duration::from_secs(5), "never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = b.cmd(&["kill", "termcode", "TERM"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(child.wait().unwrap().code(), Some(143));
}

#[test]
fn foreground_run_reports_death_by_signal() {
    let mut b = Bundle::sh("echo $$; sleep 30");
    with_init(&mut b);
    b.write();
    let mut child = b
        .husk()
        .args(["run", "-b"])
        .arg(&b.dir)
        .arg("sigkill")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut line = [0u8; 2];
    std::io::Read::read_exact(&mut out, &mut line).unwrap();
    // The application is pid 2 in the container, under the init.
    assert_eq!(&line, b"2\n");
    let ps = b.cmd(&["ps", "--format", "json", "sigkill"]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&b.cmd(&["state", "sigkill"]).stdout).unwrap();
    let init = state["pid"].as_i64().unwrap() as i32;
    let app = *pids.iter().find(|p| **p != init).unwrap();
    // SIGKILL of the application ends the container with 128+9.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(app), nix::sys::signal::SIGKILL).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(137));
}

#[test]
fn the_init_holds_no_more_privilege_than_the_process() {
    let mut b = Bundle::sh(
        "grep -E '^(Uid|CapEff|NoNewPrivs|Seccomp):' /proc/1/status | tr -s '\\t' ' '; \
         grep -E '^(Uid|CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t' ' '",
    );
    with_init(&mut b);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}]});
    let out = run_ok(&b, "pid1priv");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "{out}");
    assert_eq!(lines[..4], lines[4..], "{out}");
    assert!(lines[0].starts_with("Uid: 1000 1000"), "{out}");
    assert!(lines.contains(&"Seccomp: 2"), "{out}");
}

#[test]
fn husk_init_in_an_image_needs_nothing_else() {
    // husk copied into a bare image and used as its entrypoint.
    let mut b = Bundle::new(&["/bin/husk", "init", "--", "sh", "-c", ORPHANS]);
    let rootfs = b.own_rootfs();
    fs::copy(husk_bin(), rootfs.join("bin/husk")).unwrap();
    let o = b.run("inimage");
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "0");
    // On the host too, without a pid namespace (as a subreaper).
    let o = std::process::Command::new(husk_bin())
        .args(["init", "--", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    // Spelt without `--` it goes through the full parser: the same result.
    let o = std::process::Command::new(husk_bin())
        .args(["init", "sh", "-c", "exit 4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let o = std::process::Command::new(husk_bin())
        .args(["init", "--", "/no/such/program"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
}

#[test]
fn a_bad_annotation_value_is_refused_with_its_name() {
    let mut b = Bundle::sh("true");
    b.config["annotations"] = json!({"run.husk.init": "yes"});
    assert_run_refused(&b, "badanno", "annotations.run.husk.init");
}

#[test]
fn process_group_mode_puts_the_program_in_its_own_group() {
    // Without it the program shares the init's group (1, from setsid); with
    // it, the program leads a group of its own, which signals then reach.
    let script = "set -- $(cat /proc/$$/stat); echo $1 $5";
    let mut b = Bundle::sh(script);
    with_init(&mut b);
    assert_eq!(run_ok(&b, "nogroup"), "2 1\n");
    b.config["annotations"]["run.husk.init.process-group"] = json!("true");
    assert_eq!(run_ok(&b, "group"), "2 2\n");
}

#[test]
fn the_application_starts_with_no_signals_blocked_and_sigpipe_default() {
    // The init's handoff blocks signals across its exec, and husk (a Rust
    // program) ignores SIGPIPE; the application inherits neither, with or
    // without the init, as under runc.
    let sigpipe = 1u64 << (libc::SIGPIPE - 1);
    for init in [false, true] {
        let mut b = Bundle::sh("grep -E '^Sig(Blk|Ign)' /proc/self/status");
        if init {
            with_init(&mut b);
        }
        let o = b.run(&format!("sigmask{init}"));
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        let field = |name: &str| {
            let line = out.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line.split('\t').nth(1).unwrap().trim(), 16).unwrap()
        };
        assert_eq!(field("SigBlk:"), 0, "init {init}: {out}");
        assert_eq!(
            field("SigIgn:") & sigpipe,
            0,
            "init {init}: SIGPIPE ignored: {out}"
        );
    }
    // A process `husk exec` starts, too.
    let b = Bundle::new(&["sleep", "30"]);
    let c = b.create("sigexec");
    c.ok(&["start"]);
    let o = b.cmd(&[
        "exec",
        &c.id,
        "grep",
        "-E",
        "^Sig(Blk|Ign)",
        "/proc/self/status",
    ]);
    let out = stdout(&o);
    assert!(
        out.contains("SigBlk:\t0000000000000000"),
        "{out} {}",
        stderr(&o)
    );
    let ign = out.lines().find(|l| l.starts_with("SigIgn:")).unwrap();
    let ign = u64::from_str_radix(ign.split('\t').nth(1).unwrap().trim(), 16).unwrap();
    assert_eq!(ign & sigpipe, 0, "exec: SIGPIPE ignored: {out}");
}
