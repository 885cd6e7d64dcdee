//! `linux.seccomp` (config-linux.md, Seccomp): the profile is compiled with
//! libseccomp in the parent, before clone, into a BPF program; the init only
//! hands that program to seccomp(2) as its last privileged step.

use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::errno::Errno;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompFilterFlag};

/// An invalid or unsupported profile, naming the JSON path.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {msg}")]
pub struct SeccompError {
    pub field: String,
    pub msg: String,
}

fn bad<T>(field: impl Into<String>, msg: impl Into<String>) -> Result<T, SeccompError> {
    Err(SeccompError {
        field: field.into(),
        msg: msg.into(),
    })
}

/// A compiled filter, ready for seccomp(2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// struct sock_filter instructions, as bytes.
    pub bpf: Vec<u8>,
    /// SECCOMP_FILTER_FLAG_* bits.
    pub flags: u32,
    /// Syscall names libseccomp does not know, skipped as runc skips them.
    pub skipped: Vec<String>,
    /// Where the listener fd goes, when a rule is SCMP_ACT_NOTIFY.
    pub listener: Option<Listener>,
}

/// The seccomp agent of `linux.seccomp.listenerPath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub path: std::path::PathBuf,
    pub metadata: Option<String>,
}

const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;
const FLAG_NEW_LISTENER: u32 = 8;
const FLAG_WAIT_KILLABLE_RECV: u32 = 32;
const EPERM: u32 = 1;

/// The spec's name of an enum value (what serde writes, e.g. SCMP_ARCH_X86_64).
fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action(
    a: &oci_spec::runtime::LinuxSeccompAction,
    errno: Option<u32>,
    field: &str,
) -> Result<ScmpAction, SeccompError> {
    let n = name(a);
    let val = match n.as_str() {
        "SCMP_ACT_ERRNO" => Some(errno.unwrap_or(EPERM) as i32),
        "SCMP_ACT_TRACE" => Some(errno.unwrap_or(EPERM) as i32),
        _ => None,
    };
    ScmpAction::from_str(&n, val).or_else(|e| bad(field, format!("{n}: {e}")))
}

/// Compiles the profile for the native architecture plus those it lists.
pub fn compile(s: &LinuxSeccomp) -> Result<Compiled, SeccompError> {
    let default = action(
        &s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    if default == ScmpAction::Notify {
        // Every syscall would wait for an agent that does not have the fd yet.
        return bad(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action",
        );
    }
    if s.listener_metadata().is_some() && s.listener_path().is_none() {
        return bad(
            "linux.seccomp.listenerMetadata",
            "set without linux.seccomp.listenerPath",
        );
    }
    let mut notify = false;
    let mut ctx =
        ScmpFilterContext::new(default).or_else(|e| bad("linux.seccomp", e.to_string()))?;
    // no_new_privs is the config's business (process.noNewPrivileges), not the filter's.
    ctx.set_ctl_nnp(false)
        .or_else(|e| bad("linux.seccomp", e.to_string()))?;
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.architectures[{i}]");
        let arch = ScmpArch::from_str(&name(a)).or_else(|e| bad(&field, e.to_string()))?;
        if !ctx.is_arch_present(arch).unwrap_or(false) {
            ctx.add_arch(arch).or_else(|e| bad(&field, e.to_string()))?;
        }
    }
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
            // The container's init is single-threaded: there is nothing to sync.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
        };
    }
    let mut skipped = Vec::new();
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(&rule.action(), rule.errno_ret(), &format!("{field}.action"))?;
        if act == ScmpAction::Notify {
            if s.listener_path().is_none() {
                return bad(
                    format!("{field}.action"),
                    "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath",
                );
            }
            // The init hands the listener fd to its parent with sendmsg: a
            // notified sendmsg would wait for an agent that cannot have it yet.
            if rule.names().iter().any(|n| n == "sendmsg") {
                return bad(
                    format!("{field}.names"),
                    "SCMP_ACT_NOTIFY cannot be used for sendmsg (the runtime needs it to pass the listener fd)",
                );
            }
            notify = true;
        }
        if act == default {
            // libseccomp refuses a rule that repeats the default; it changes nothing.
            continue;
        }
        let mut conds = Vec::new();
        for (j, a) in rule.args().iter().flatten().enumerate() {
            let afield = format!("{field}.args[{j}]");
            let op = match ScmpCompareOp::from_str(&name(&a.op())) {
                Ok(ScmpCompareOp::MaskedEqual(_)) => ScmpCompareOp::MaskedEqual(a.value()),
                Ok(op) => op,
                Err(e) => return bad(format!("{afield}.op"), e.to_string()),
            };
            let datum = match op {
                ScmpCompareOp::MaskedEqual(_) => a.value_two().unwrap_or(0),
                _ => a.value(),
            };
            if a.index() > 5 {
                return bad(
                    format!("{afield}.index"),
                    "syscalls have at most 6 arguments",
                );
            }
            conds.push(ScmpArgCompare::new(a.index() as u32, op, datum));
        }
        for sys in rule.names() {
            let Ok(nr) = ScmpSyscall::from_name(sys) else {
                skipped.push(sys.clone());
                continue;
            };
            let r = if conds.is_empty() {
                ctx.add_rule(act, nr)
            } else {
                ctx.add_rule_conditional(act, nr, &conds)
            };
            r.or_else(|e| bad(format!("{field}.names ({sys})"), e.to_string()))?;
        }
    }
    // Exported through an anonymous file: the program is plain bytes from here on.
    let mem =
        nix::sys::memfd::memfd_create(c"husk-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .or_else(|e| bad("linux.seccomp", format!("memfd: {e}")))?;
    ctx.export_bpf(&mem)
        .or_else(|e| bad("linux.seccomp", format!("export: {e}")))?;
    let mut file = std::fs::File::from(mem);
    let mut bpf = Vec::new();
    std::io::Seek::rewind(&mut file)
        .and_then(|_| std::io::Read::read_to_end(&mut file, &mut bpf))
        .or_else(|e| bad("linux.seccomp", format!("read the exported filter: {e}")))?;
    if !notify {
        // The kernel refuses WAIT_KILLABLE_RECV without a listener; it only
        // changes how a notified process waits, so without one it means nothing.
        flags &= !FLAG_WAIT_KILLABLE_RECV;
    }
    let listener = match (notify, s.listener_path()) {
        (true, Some(path)) => {
            flags |= FLAG_NEW_LISTENER;
            Some(Listener {
                path: path.clone(),
                metadata: s.listener_metadata().clone(),
            })
        }
        _ => None,
    };
    if !matches!(
        default,
        ScmpAction::Allow | ScmpAction::Log | ScmpAction::Notify
    ) {
        let mut arches = vec![ScmpArch::native()];
        for a in s.architectures().iter().flatten() {
            if let Ok(arch) = ScmpArch::from_str(&name(a)) {
                arches.push(arch);
            }
        }
        let names: Vec<&String> = s
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names())
            .collect();
        let mut maxima = Vec::new();
        for arch in arches {
            let Some(token) = audit_arch(arch) else {
                continue;
            };
            let max = names
                .iter()
                .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
                .map(i32::from)
                .filter(|nr| *nr >= 0)
                .max();
            if let Some(max) = max
                && !maxima.iter().any(|(t, _)| *t == token)
            {
                maxima.push((token, max as u32));
            }
        }
        if !maxima.is_empty() {
            bpf = enosys_stub(&maxima).into_iter().chain(bpf).collect();
        }
    }
    Ok(Compiled {
        bpf,
        flags,
        skipped,
        listener,
    })
}

/// AUDIT_ARCH_* of the architectures whose syscall numbers the stub checks.
fn audit_arch(a: ScmpArch) -> Option<u32> {
    match a {
        ScmpArch::X8664 => Some(0xc000_003e),
        ScmpArch::X86 => Some(0x4000_0003),
        // x32 shares x86_64's token; its numbers carry bit 30 and are left
        // to the filter.
        _ => None,
    }
}

/// A BPF prologue that answers ENOSYS for any syscall numbered above the
/// highest the profile names on that architecture: a syscall newer than the
/// profile then looks absent, and programs fall back to an older one (as
/// runc and crun do), instead of failing with the default errno. The filter
/// libseccomp made follows unchanged (its jumps are relative, and it loads
/// what it needs itself).
fn enosys_stub(maxima: &[(u32, u32)]) -> Vec<u8> {
    const LD_ABS_W: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const JGT_K: u16 = 0x25;
    const JGE_K: u16 = 0x35;
    const RET_K: u16 = 0x06;
    const X32_BIT: u32 = 0x4000_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let mut prog: Vec<(u16, u8, u8, u32)> = Vec::new();
    // Each block: ld arch; jeq token; ld nr; [jge x32 bit]; jgt max.
    let block_len = |token: u32| if token == 0xc000_003e { 5 } else { 4 };
    let total: usize = maxima.iter().map(|(t, _)| block_len(*t)).sum();
    // Index of the `ret ENOSYS`; the original program starts right after it.
    let enosys = total;
    for (token, max) in maxima {
        let start = prog.len();
        let end = start + block_len(*token);
        let next = end; // the next block, or the ret ENOSYS when last
        let jump = |from: usize, to: usize| (to - from - 1) as u8;
        prog.push((LD_ABS_W, 0, 0, 4));
        let at = prog.len();
        // Not this arch: the next block; if it is the last, skip the ret.
        let other = if next == enosys { enosys + 1 } else { next };
        prog.push((JEQ_K, 0, jump(at, other), *token));
        prog.push((LD_ABS_W, 0, 0, 0));
        if *token == 0xc000_003e {
            let at = prog.len();
            prog.push((JGE_K, jump(at, enosys + 1), 0, X32_BIT));
        }
        let at = prog.len();
        prog.push((JGT_K, jump(at, enosys), jump(at, enosys + 1), *max));
    }
    prog.push((RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32));
    let mut out = Vec::with_capacity(prog.len() * 8);
    for (code, jt, jf, k) in prog {
        out.extend_from_slice(&code.to_ne_bytes());
        out.push(jt);
        out.push(jf);
        out.extend_from_slice(&k.to_ne_bytes());
    }
    out
}

/// Hands the listener fd to the seccomp agent (config-linux.md, The Container
/// Process State): one connection, one JSON state with the fd as SCM_RIGHTS,
/// then closed.
pub fn send_to_listener(
    l: &Listener,
    state: &crate::hooks::HookState<'_>,
    fd: &std::os::fd::OwnedFd,
) -> Result<(), SeccompError> {
    use std::os::fd::AsRawFd;
    let field = "linux.seccomp.listenerPath";
    let msg = serde_json::json!({
        "ociVersion": state.oci_version,
        "fds": ["seccompFd"],
        "pid": state.pid,
        "metadata": l.metadata.as_deref().unwrap_or(""),
        "state": state,
    });
    let body = msg.to_string();
    let sock = std::os::unix::net::UnixStream::connect(&l.path)
        .or_else(|e| bad(field, format!("{}: connect: {e}", l.path.display())))?;
    let fds = [fd.as_raw_fd()];
    let mut sent = nix::sys::socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &[std::io::IoSlice::new(body.as_bytes())],
        &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .or_else(|e| bad(field, format!("{}: send: {e}", l.path.display())))?;
    // The rest, if the first call was short, goes without the fd (as the spec allows).
    while sent < body.len() {
        sent += nix::sys::socket::send(
            sock.as_raw_fd(),
            &body.as_bytes()[sent..],
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        )
        .or_else(|e| bad(field, format!("{}: send: {e}", l.path.display())))?;
    }
    Ok(())
}

/// Loads the compiled filter into the calling thread: seccomp(2) with
/// SECCOMP_SET_MODE_FILTER. Needs no_new_privs or CAP_SYS_ADMIN. Returns the
/// listener fd when the filter notifies.
pub fn load(c: &Compiled) -> Result<Option<std::os::fd::OwnedFd>, Errno> {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const u8,
    }
    let prog = SockFprog {
        len: (c.bpf.len() / 8) as u16,
        filter: c.bpf.as_ptr(),
    };
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    // SAFETY: `prog` points at the filter bytes, which outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            c.flags as libc::c_ulong,
            &prog as *const SockFprog,
        )
    };
    if r < 0 {
        let e = Errno::last();
        if e == Errno::EINVAL && c.flags & FLAG_WAIT_KILLABLE_RECV != 0 {
            // A kernel older than 5.19 does not have the flag: load without it,
            // as the profile asks for it only "where the kernel has it".
            let older = Compiled {
                flags: c.flags & !FLAG_WAIT_KILLABLE_RECV,
                ..c.clone()
            };
            return load(&older);
        }
        return Err(e);
    }
    if c.flags & FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER the result is a new fd
    // (close-on-exec) that nothing else owns.
    Ok(Some(unsafe {
        std::os::fd::FromRawFd::from_raw_fd(r as std::os::fd::RawFd)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn compiles_rules_args_and_arches() {
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["personality"], "action": "SCMP_ACT_KILL_PROCESS", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}
            ]
        })))
        .unwrap();
        assert!(!c.bpf.is_empty() && c.bpf.len().is_multiple_of(8));
        assert_eq!(c.flags, FLAG_LOG);
        assert_eq!(c.skipped, ["no_such_syscall_anywhere"]);
    }

    #[test]
    fn notify_needs_a_listener_and_asks_for_one() {
        let e = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        })))
        .unwrap_err();
        assert_eq!(e.field, "linux.seccomp.syscalls[0].action");
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "m",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        })))
        .unwrap();
        assert_eq!(c.flags & FLAG_NEW_LISTENER, FLAG_NEW_LISTENER);
        let c2 = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        })))
        .unwrap();
        assert_eq!(c2.flags, FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV);
        assert_eq!(c.listener.unwrap().metadata.as_deref(), Some("m"));
        // Without a notify rule the listener is not asked for.
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        })))
        .unwrap();
        assert_eq!((c.flags, c.listener), (0, None));
        // WAIT_KILLABLE_RECV without a listener is dropped (the kernel refuses it).
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        })))
        .unwrap();
        assert_eq!(c.flags, FLAG_SPEC_ALLOW);
    }

    #[test]
    fn notify_refusals_name_the_field() {
        for (json, field) in [
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/s"}),
                "linux.seccomp.defaultAction",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}),
                "linux.seccomp.listenerMetadata",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/s",
                    "syscalls": [{"names": ["getpid", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}),
                "linux.seccomp.syscalls[0].names",
            ),
        ] {
            assert_eq!(compile(&profile(json)).unwrap_err().field, field);
        }
    }

    /// Runs a classic BPF program (the few opcodes the stub uses) on a
    /// seccomp_data with `nr` and `arch`.
    fn run_bpf(prog: &[u8], nr: u32, arch: u32) -> u32 {
        let ins: Vec<(u16, u8, u8, u32)> = prog
            .chunks(8)
            .map(|c| {
                (
                    u16::from_ne_bytes([c[0], c[1]]),
                    c[2],
                    c[3],
                    u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
                )
            })
            .collect();
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let (code, jt, jf, k) = ins[pc];
            pc += 1;
            match code {
                0x20 => a = if k == 0 { nr } else { arch },
                0x15 | 0x25 | 0x35 => {
                    let t = match code {
                        0x15 => a == k,
                        0x25 => a > k,
                        _ => a >= k,
                    };
                    pc += if t { jt } else { jf } as usize;
                }
                0x06 => return k,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn enosys_stub_answers_only_above_each_arches_newest() {
        const ALLOW: u32 = 0x7fff_0000;
        const ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;
        let (x64, x86) = (0xc000_003e, 0x4000_0003);
        let mut prog = enosys_stub(&[(x64, 334), (x86, 400)]);
        // The filter that follows, reduced to one verdict.
        prog.extend_from_slice(&0x06u16.to_ne_bytes());
        prog.extend_from_slice(&[0, 0]);
        prog.extend_from_slice(&ALLOW.to_ne_bytes());
        assert_eq!(run_bpf(&prog, 334, x64), ALLOW);
        assert_eq!(run_bpf(&prog, 335, x64), ENOSYS);
        assert_eq!(
            run_bpf(&prog, 0x4000_0200, x64),
            ALLOW,
            "x32 is the filter's"
        );
        assert_eq!(run_bpf(&prog, 400, x86), ALLOW);
        assert_eq!(run_bpf(&prog, 401, x86), ENOSYS);
        assert_eq!(
            run_bpf(&prog, 9999, 0xc000_00b7),
            ALLOW,
            "other arches untouched"
        );
    }

    #[test]
    fn stub_only_when_the_default_refuses() {
        let allow = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        })))
        .unwrap();
        let errno = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}]
        })))
        .unwrap();
        let stub = enosys_stub(&[(0xc000_003e, 83)]);
        assert!(errno.bpf.starts_with(&stub));
        assert!(!allow.bpf.starts_with(&stub));
    }

    #[test]
    fn bad_arg_index() {
        let e = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        })))
        .unwrap_err();
        assert_eq!(e.field, "linux.seccomp.syscalls[0].args[0].index");
    }
}
