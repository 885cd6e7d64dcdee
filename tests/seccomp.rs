//! seccomp profiles enforced on real containers.

mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use common::*;
use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use serde_json::{Value, json};

#[test]
fn errno_rule_fails_the_call_with_the_configured_errno() {
    let mut b = Bundle::sh("mkdir /tmp/x 2>&1; mkdir /tmp/x && echo made; true");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        // Every flag the kernel takes; WAIT_KILLABLE_RECV means nothing without
        // a listener and must not make the load fail.
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                  "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"],
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
fn docker_like_profile_runs_a_shell_and_refuses_unshare_mount_and_keyctl() {
    let names: Vec<&str> = include_str!("../bench/src/syscalls.txt")
        .split_whitespace()
        .collect();
    let mut b = Bundle::sh(
        "echo shell-ok; ls / > /dev/null && echo ls-ok; \
         unshare -m true 2>/dev/null && echo unshare-allowed; \
         mount -t tmpfs t /tmp 2>/dev/null && echo mount-allowed; probe keyctl; \
         probe syscall 500; echo done",
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
    // keyctl is older than the profile's newest syscall: the default errno.
    // A syscall numbered above every one the profile names (500, newer than
    // any kernel here) looks absent: ENOSYS, so programs fall back.
    assert_eq!(out, "shell-ok\nls-ok\nerror EPERM\nerror ENOSYS\ndone\n");
    // The control: without the profile, the same capabilities allow both.
    b.config["linux"]["seccomp"] = serde_json::Value::Null;
    let out = run_ok(&b, "scnone");
    assert!(
        out.contains("unshare-allowed")
            && out.contains("mount-allowed")
            && out.contains("keyctl allowed")
            && out.contains("error ENOSYS"),
        "{out}"
    );
}

/// A seccomp agent: accepts one connection at `sock`, checks the container
/// process state it is sent, then answers every notified mkdir with success
/// without making anything, until the filter's last user is gone.
fn agent(listener: UnixListener) -> std::thread::JoinHandle<(Value, Vec<String>)> {
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 65536];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        let mut fd = None;
        for c in msg.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: installed for us by the kernel just now.
                fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
            }
        }
        let n = msg.bytes;
        let mut body = buf[..n].to_vec();
        // The state may come in several sends; the connection closes after it.
        let mut rest = Vec::new();
        (&conn).read_to_end(&mut rest).unwrap();
        body.extend(rest);
        let state: Value = serde_json::from_slice(&body).unwrap();
        let fd = fd.expect("no fd sent with the state");
        let mut seen = Vec::new();
        // Ends when the container is gone: receive then fails.
        while let Ok(req) = ScmpNotifReq::receive(fd.as_raw_fd()) {
            seen.push(req.data.syscall.get_name().unwrap_or_default());
            let _ = ScmpNotifResp::new_val(req.id, 0, ScmpNotifRespFlags::empty())
                .respond(fd.as_raw_fd());
        }
        (state, seen)
    })
}

#[test]
fn notify_rule_is_answered_by_the_agent_at_listener_path() {
    // With and without no_new_privileges (the filter is loaded at different steps).
    for nnp in [true, false] {
        let id = format!("scnotify{nnp}");
        let mut b =
            Bundle::sh("mkdir /tmp/n && echo made; [ -d /tmp/n ] && echo exists || echo absent");
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        let sock = b.dir.join("agent.sock");
        let agent = agent(UnixListener::bind(&sock).unwrap());
        b.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "listenerMetadata": "hello-agent",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                      "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
        b.config["annotations"] = json!({"org.test": "x"});
        let c = b.create(&id);
        let pid = c.pid();
        c.ok(&["start"]);
        c.wait_stopped();
        // The agent said yes, and nothing was made: the kernel never ran it.
        assert_eq!(c.output(), "made\nabsent\n");
        c.delete();
        let (state, seen) = agent.join().unwrap();
        assert_eq!(seen, ["mkdir"]);
        assert_eq!(state["fds"], json!(["seccompFd"]));
        assert_eq!(state["metadata"], "hello-agent");
        assert_eq!(state["pid"], pid);
        assert_eq!(state["state"]["id"], id.as_str());
        assert_eq!(state["state"]["status"], "creating");
        assert_eq!(state["state"]["pid"], pid);
        assert_eq!(state["state"]["annotations"]["org.test"], "x");
        assert!(state["ociVersion"].is_string());
    }
}

#[test]
fn notify_without_a_listener_fails_create_and_leaves_nothing() {
    let mut b = Bundle::sh("true");
    let sock = b.dir.join("nobody.sock");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let (_c, o) = b.try_create("scnolistener");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("linux.seccomp.listenerPath") && err.contains("nobody.sock"),
        "{err}"
    );
    assert!(!b.root.join("scnolistener").exists());
    let o = b.cmd(&["state", "scnolistener"]);
    assert!(!o.status.success());
}

#[test]
fn notify_without_listener_path_is_refused_with_the_field() {
    let mut b = Bundle::sh("true");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    });
    assert_run_refused(&b, "scnotify", "linux.seccomp.syscalls[0].action");
}

#[test]
fn a_filter_loaded_early_need_not_allow_what_husk_does_after_it() {
    // Without no_new_privs the filter goes on before the user change; a
    // profile that refuses openat2 (older profiles do not name it) must not
    // break husk's own steps after it (the working directory).
    let mut b = Bundle::sh("pwd");
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["process"]["cwd"] = json!("/tmp");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["openat2"], "action": "SCMP_ACT_ERRNO"}]
    });
    assert_eq!(run_ok(&b, "scearly"), "/tmp\n");
}
