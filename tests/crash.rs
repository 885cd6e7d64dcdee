//! A `create` killed at any instant (SIGKILL: no undo runs) leaves nothing
//! that `delete --force ID`, or a later `create` of the same id, does not
//! take away: cgroups in every hierarchy, the init, the state directory.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Every cgroup hierarchy's mount point: the v1 ones and the unified one.
fn hierarchies() -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mount = pre.split(' ').nth(4)?;
            matches!(fstype, "cgroup" | "cgroup2").then(|| PathBuf::from(mount))
        })
        .collect()
}

/// The directories named `top` in any hierarchy.
fn cgroups_named(top: &str) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .map(|h| h.join(top))
        .filter(|p| p.exists())
        .collect()
}

/// Removes whatever is left under `top` when the test ends, passed or
/// failed: the processes in those cgroups (all this test's), then the
/// directories, deepest first.
struct Sweep(String);

impl Drop for Sweep {
    fn drop(&mut self) {
        for dir in cgroups_named(&self.0) {
            let mut dirs = Vec::new();
            let mut stack = vec![dir];
            while let Some(d) = stack.pop() {
                if let Ok(rd) = fs::read_dir(&d) {
                    stack.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
                }
                let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                    if pid > 1 {
                        sigkill(pid);
                    }
                }
                dirs.push(d);
            }
            for d in dirs.iter().rev() {
                for _ in 0..100 {
                    if fs::remove_dir(d).is_ok() || !d.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}

/// A bundle whose cgroup is `/TOP/ID` in every hierarchy, so what is left
/// is easy to find.
fn bundle(top: &str, id: &str, script: &str) -> Bundle {
    let mut b = Bundle::sh(script);
    b.config["linux"]["cgroupsPath"] = json!(format!("/{top}/{id}"));
    b.config["linux"]["resources"] = json!({"pids": {"limit": 100}, "memory": {"limit": 67108864}});
    b
}

fn spawn_create(b: &Bundle, id: &str) -> Child {
    b.write();
    b.husk()
        .args(["create", "-b"])
        .arg(&b.dir)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn sigkill(pid: i32) {
    // SAFETY: kill with a pid this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Asserts that nothing of the container is left: no cgroup under `top`
/// in any hierarchy, no state directory, no process in those cgroups.
fn assert_nothing_left(b: &Bundle, top: &str, id: &str, when: &str) {
    let left = cgroups_named(top);
    assert!(left.is_empty(), "{when}: cgroups left: {left:?}");
    assert!(
        !b.root.join(id).exists(),
        "{when}: state directory {} left",
        b.root.join(id).display()
    );
}

/// Waits for `path` to exist.
fn wait_for(path: &Path) {
    let t = Instant::now();
    while !path.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_create_killed_during_its_hooks_is_deleted_whole() {
    let top = format!("husk-crash-hook-{}", std::process::id());
    let _sweep = Sweep(top.clone());
    let mut b = bundle(&top, "c", "sleep 30");
    let mark = b.dir.join("hook.pid");
    b.config["hooks"] = json!({"createRuntime": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo $$ > {}.tmp; mv {0}.tmp {0}; sleep 30", mark.display())]
    }]});
    let mut create = spawn_create(&b, "c");
    wait_for(&mark);
    // The cgroups exist while the hook runs; create dies without a word.
    assert!(!cgroups_named(&top).is_empty());
    sigkill(create.id() as i32);
    let _ = create.wait();
    let hook: i32 = fs::read_to_string(&mark).unwrap().trim().parse().unwrap();
    sigkill(hook);
    let o = b.cmd(&["delete", "--force", "c"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_nothing_left(&b, &top, "c", "delete --force after a killed create");

    // A later create of the same id takes the leftovers away and succeeds.
    fs::remove_file(&mark).unwrap();
    let mut create = spawn_create(&b, "c");
    wait_for(&mark);
    sigkill(create.id() as i32);
    let _ = create.wait();
    sigkill(fs::read_to_string(&mark).unwrap().trim().parse().unwrap());
    b.config["hooks"] = json!({});
    let c = b.create("c");
    assert_eq!(c.status(), "created");
    c.delete();
    assert_nothing_left(&b, &top, "c", "create over a killed create, then delete");
}

#[test]
fn a_create_killed_at_any_instant_is_deleted_whole() {
    // From the first instruction to the last: SIGKILL after 0, 1, 2… ms
    // until create finishes on its own.
    let top = format!("husk-crash-any-{}", std::process::id());
    let _sweep = Sweep(top.clone());
    let b = bundle(&top, "c", "sleep 30");
    let mut finished = 0;
    let mut round = 0u64;
    while finished < 3 {
        assert!(round < 400, "create never finished");
        let mut create = spawn_create(&b, "c");
        std::thread::sleep(Duration::from_micros(round * 500));
        if let Some(status) = create.try_wait().unwrap() {
            assert!(status.success(), "round {round}: create failed on its own");
            finished += 1;
        }
        sigkill(create.id() as i32);
        let _ = create.wait();
        // Either a whole container or a half-made one: delete --force takes
        // away both (a created one's init is ended too).
        let o = b.cmd(&["delete", "--force", "c"]);
        assert!(o.status.success(), "round {round}: {}", stderr(&o));
        assert_nothing_left(
            &b,
            &top,
            "c",
            &format!("round {round} ({} µs)", round * 500),
        );
        round += 1;
    }
    // Kills fell all along create's way, not only before or after it.
    assert!(round > 5, "create finished within {} µs", round * 500);
}

#[test]
fn creates_of_one_id_at_once_make_one_container() {
    // The id is claimed by the directory and its lock: of eight creates at
    // once, one makes the container, the others fail with "already
    // exists" and take nothing of it away.
    let top = format!("husk-crash-race-{}", std::process::id());
    let _sweep = Sweep(top.clone());
    let b = bundle(&top, "c", "sleep 30");
    b.write();
    for round in 0..5 {
        // Each create's stderr in a file: the winner's container keeps its
        // stdio open.
        let err = |i: usize| b.dir.join(format!("race{i}.err"));
        let creates: Vec<Child> = (0..8)
            .map(|i| {
                b.husk()
                    .args(["create", "-b"])
                    .arg(&b.dir)
                    .arg("c")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(fs::File::create(err(i)).unwrap())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let codes: Vec<_> = creates.into_iter().map(|mut c| c.wait().unwrap()).collect();
        let won = codes.iter().filter(|c| c.success()).count();
        assert_eq!(won, 1, "round {round}: {won} creates succeeded");
        for (i, _) in codes.iter().enumerate().filter(|(_, c)| !c.success()) {
            let text = fs::read_to_string(err(i)).unwrap();
            assert!(text.contains("already exists"), "round {round}: {text}");
        }
        let st = b.cmd(&["state", "c"]);
        assert!(st.status.success(), "round {round}: {}", stderr(&st));
        assert!(stdout(&st).contains("\"created\""), "round {round}");
        let o = b.cmd(&["delete", "--force", "c"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_nothing_left(&b, &top, "c", &format!("round {round}"));
    }
}
