//! `linux.resources.devices` on cgroup v2: an eBPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE, built from the rules and attached to the
//! container's cgroup. The rules keep the v1 semantics engines rely on: a
//! wildcard `a *:* rwm` rule resets the default (allow or deny), every other
//! rule is an exception, and the last matching rule wins. The default devices
//! (and those in `linux.devices`) are always allowed, as runc does.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// One rule, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// BPF_DEVCG_DEV_CHAR (2), BPF_DEVCG_DEV_BLOCK (1), or None for both.
    pub kind: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// BPF_DEVCG_ACC_MKNOD (1) | READ (2) | WRITE (4).
    pub access: u32,
}

pub const CHAR: u32 = 2;
pub const BLOCK: u32 = 1;
const ALL_ACCESS: u32 = 7;

impl Rule {
    fn is_wildcard_all(&self) -> bool {
        self.kind.is_none()
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ALL_ACCESS
    }
}

fn access_bits(s: &str) -> Option<u32> {
    let mut bits = 0;
    for c in s.chars() {
        bits |= match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => return None,
        };
    }
    Some(bits)
}

/// Validates the spec's rules; `field` names each for errors.
pub fn rules(list: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>, (String, String)> {
    let mut out = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        let kind = match d.typ() {
            None | Some(LinuxDeviceType::A) => None,
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(CHAR),
            Some(LinuxDeviceType::B) => Some(BLOCK),
            Some(LinuxDeviceType::P) => {
                return Err((
                    format!("{field}.type"),
                    "fifos are not subject to device rules".into(),
                ));
            }
        };
        let num = |v: Option<i64>, name: &str| -> Result<Option<u32>, (String, String)> {
            match v {
                None | Some(-1) => Ok(None),
                Some(n) if (0..=u32::MAX as i64).contains(&n) => Ok(Some(n as u32)),
                Some(n) => Err((format!("{field}.{name}"), format!("invalid number {n}"))),
            }
        };
        let access = match d.access().as_deref() {
            None | Some("") => ALL_ACCESS,
            Some(a) => access_bits(a).ok_or_else(|| {
                (
                    format!("{field}.access"),
                    format!("{a:?}: only r, w and m are allowed"),
                )
            })?,
        };
        out.push(Rule {
            allow: d.allow(),
            kind,
            major: num(d.major(), "major")?,
            minor: num(d.minor(), "minor")?,
            access,
        });
    }
    Ok(out)
}

/// The devices every container may use (runc's allowed devices), as rules:
/// mknod of any node (opening one is what the rules guard), the standard
/// nodes, ptys, /dev/net/tun, and the config's own `linux.devices`.
pub fn default_allowed(extra: &[(u32, u64, u64)]) -> Vec<Rule> {
    let r = |kind, major, minor| Rule {
        allow: true,
        kind: Some(kind),
        major: Some(major),
        minor,
        access: ALL_ACCESS,
    };
    let mknod = |kind| Rule {
        allow: true,
        kind: Some(kind),
        major: None,
        minor: None,
        access: 1,
    };
    let mut v = vec![
        mknod(CHAR),
        mknod(BLOCK),
        r(CHAR, 10, Some(200)), // net/tun
        r(CHAR, 1, Some(3)),    // null
        r(CHAR, 1, Some(5)),    // zero
        r(CHAR, 1, Some(7)),    // full
        r(CHAR, 1, Some(8)),    // random
        r(CHAR, 1, Some(9)),    // urandom
        r(CHAR, 5, Some(0)),    // tty
        r(CHAR, 5, Some(2)),    // ptmx
        r(CHAR, 136, None),     // pts/*
    ];
    for &(kind, major, minor) in extra {
        let kind = if kind == libc::S_IFBLK { BLOCK } else { CHAR };
        v.push(r(kind, major as u32, Some(minor as u32)));
    }
    v
}

/// The default action and the exceptions after applying `rules` in order to
/// a container's cgroup, which starts from deny-all as runc's does: a config
/// that lists no rule gets only the default devices, not the host's.
pub fn effective(rules: &[Rule]) -> (bool, Vec<Rule>) {
    let mut default = false;
    let mut exceptions = Vec::new();
    for r in rules {
        if r.is_wildcard_all() {
            default = r.allow;
            exceptions.clear();
        } else {
            exceptions.push(*r);
        }
    }
    (default, exceptions)
}

/// The same policy as cgroup v1 `devices.deny` / `devices.allow` writes, in
/// order: the default first (`a`, all devices), then each exception.
pub fn v1_lines(default: bool, exceptions: &[Rule]) -> Vec<(&'static str, String)> {
    let file = |allow: bool| {
        if allow {
            "devices.allow"
        } else {
            "devices.deny"
        }
    };
    let mut out = vec![(file(default), "a".to_string())];
    for r in exceptions {
        let kind = match r.kind {
            Some(CHAR) => "c",
            Some(BLOCK) => "b",
            _ => "a",
        };
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let access: String = [(1, 'm'), (2, 'r'), (4, 'w')]
            .iter()
            .filter(|(bit, _)| r.access & bit != 0)
            .map(|(_, c)| *c)
            .collect();
        let order = ['r', 'w', 'm'];
        let access: String = order.iter().filter(|c| access.contains(**c)).collect();
        out.push((
            file(r.allow),
            format!("{kind} {}:{} {access}", num(r.major), num(r.minor)),
        ));
    }
    out
}

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV64_X: u8 = 0xbf;
const MOV64_K: u8 = 0xb7;
const AND64_K: u8 = 0x57;
const RSH64_K: u8 = 0x77;
const JNE_K: u8 = 0x55;
const EXIT: u8 = 0x95;

/// The program: r2 = type, r3 = access, r4 = major, r5 = minor; then each
/// exception, last first, returns its verdict on a match; else the default.
pub fn program(default: bool, exceptions: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0), // r2 = ctx->access_type
        insn(MOV64_X, 3, 2, 0, 0),
        insn(AND64_K, 2, 0, 0, 0xffff), // r2 = device type
        insn(RSH64_K, 3, 0, 0, 16),     // r3 = access
        insn(LDX_W, 4, 1, 4, 0),        // r4 = major
        insn(LDX_W, 5, 1, 8, 0),        // r5 = minor
    ];
    for r in exceptions.iter().rev() {
        // Each check jumps past the rest of this rule's block when it fails.
        let mut checks: Vec<(u8, u8, i32, bool)> = Vec::new(); // (reg, _, value, needs_mask)
        if let Some(k) = r.kind {
            checks.push((2, 0, k as i32, false));
        }
        if r.access != ALL_ACCESS {
            checks.push((3, 0, !r.access as i32 & ALL_ACCESS as i32, true));
        }
        if let Some(m) = r.major {
            checks.push((4, 0, m as i32, false));
        }
        if let Some(m) = r.minor {
            checks.push((5, 0, m as i32, false));
        }
        let mut block = Vec::new();
        for (reg, _, value, mask) in &checks {
            if *mask {
                // The requested access must be within the rule's: (r3 & ~rule) == 0.
                block.push((insn(MOV64_X, 6, *reg, 0, 0), false));
                block.push((insn(AND64_K, 6, 0, 0, *value), false));
                block.push((insn(JNE_K, 6, 0, 0, 0), true));
            } else {
                block.push((insn(JNE_K, *reg, 0, 0, *value), true));
            }
        }
        block.push((insn(MOV64_K, 0, 0, 0, r.allow as i32), false));
        block.push((insn(EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        for (i, (mut ins, is_jump)) in block.into_iter().enumerate() {
            if is_jump {
                ins.off = (len - i - 1) as i16;
            }
            p.push(ins);
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, default as i32));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> Result<i64, Errno> {
    // SAFETY: the attribute buffer is larger than any union member used here
    // and zero where unused, as bpf(2) requires.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 { Err(Errno::last()) } else { Ok(r) }
}

fn put32(a: &mut [u8; 128], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8; 128], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Loads the program and attaches it to the cgroup, then detaches any
/// device program attached before (on update), so exactly the new rules hold.
pub fn attach(cgroup: BorrowedFd<'_>, prog: &[Insn]) -> Result<(), Errno> {
    let license = c"Apache-2.0";
    let mut a = [0u8; 128];
    put32(&mut a, 0, BPF_PROG_TYPE_CGROUP_DEVICE);
    put32(&mut a, 4, prog.len() as u32);
    put64(&mut a, 8, prog.as_ptr() as u64);
    put64(&mut a, 16, license.as_ptr() as u64);
    put32(&mut a, 68, BPF_CGROUP_DEVICE); // expected_attach_type
    let fd = bpf(BPF_PROG_LOAD, &mut a)?;
    // SAFETY: bpf returned a new descriptor that we own.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };

    let old = attached(cgroup).unwrap_or_default();
    let mut a = [0u8; 128];
    put32(&mut a, 0, cgroup.as_raw_fd() as u32);
    put32(&mut a, 4, prog_fd.as_raw_fd() as u32);
    put32(&mut a, 8, BPF_CGROUP_DEVICE);
    put32(&mut a, 12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut a)?;
    for id in old {
        let mut a = [0u8; 128];
        put32(&mut a, 0, id);
        if let Ok(fd) = bpf(BPF_PROG_GET_FD_BY_ID, &mut a) {
            // SAFETY: a new descriptor that we own.
            let old_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            let mut a = [0u8; 128];
            put32(&mut a, 0, cgroup.as_raw_fd() as u32);
            put32(&mut a, 4, old_fd.as_raw_fd() as u32);
            put32(&mut a, 8, BPF_CGROUP_DEVICE);
            bpf(BPF_PROG_DETACH, &mut a)?;
        }
    }
    Ok(())
}

/// Ids of the device programs attached to the cgroup.
fn attached(cgroup: BorrowedFd<'_>) -> Result<Vec<u32>, Errno> {
    let mut ids = [0u32; 64];
    let mut a = [0u8; 128];
    put32(&mut a, 0, cgroup.as_raw_fd() as u32); // target_fd
    put32(&mut a, 4, BPF_CGROUP_DEVICE); // attach_type
    put64(&mut a, 16, ids.as_mut_ptr() as u64); // prog_ids
    put32(&mut a, 24, ids.len() as u32); // prog_cnt
    bpf(BPF_PROG_QUERY, &mut a)?;
    let n = u32::from_ne_bytes([a[24], a[25], a[26], a[27]]) as usize;
    Ok(ids[..n.min(ids.len())].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on one device access, as the kernel would.
    fn run(p: &[Insn], kind: u32, access: u32, major: u32, minor: u32) -> bool {
        let ctx = [(access << 16) | kind, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = ctx[(i.off / 4) as usize] as u64,
                MOV64_X => r[dst] = r[src],
                MOV64_K => r[dst] = i.imm as u64,
                AND64_K => r[dst] &= i.imm as u64,
                RSH64_K => r[dst] >>= i.imm,
                JNE_K => {
                    if r[dst] != i.imm as u64 {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0] == 1,
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    fn spec_rules(json: serde_json::Value) -> Vec<Rule> {
        let list: Vec<LinuxDeviceCgroup> = serde_json::from_value(json).unwrap();
        rules(&list).unwrap()
    }

    #[test]
    fn deny_all_then_defaults() {
        let mut rs = spec_rules(serde_json::json!([{"allow": false, "access": "rwm"}]));
        rs.extend(default_allowed(&[]));
        let (default, ex) = effective(&rs);
        assert!(!default);
        let p = program(default, &ex);
        assert!(run(&p, CHAR, 2 | 4, 1, 3), "read/write /dev/null");
        assert!(run(&p, CHAR, 1, 1, 9), "mknod /dev/urandom");
        assert!(run(&p, CHAR, 2, 136, 7), "pts");
        assert!(!run(&p, CHAR, 2, 1, 1), "/dev/mem");
        assert!(!run(&p, BLOCK, 2, 8, 0), "a disk");
    }

    #[test]
    fn last_rule_wins_and_access_is_checked() {
        let rs = spec_rules(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"},
            {"allow": true, "type": "b", "major": 8, "access": "r"},
            {"allow": false, "type": "b", "major": 8, "minor": 1, "access": "r"}
        ]));
        let (default, ex) = effective(&rs);
        let p = program(default, &ex);
        assert!(run(&p, CHAR, 2 | 4, 10, 229));
        assert!(!run(&p, CHAR, 1, 10, 229), "mknod not granted");
        assert!(run(&p, BLOCK, 2, 8, 0));
        assert!(!run(&p, BLOCK, 4, 8, 0), "write not granted");
        assert!(!run(&p, BLOCK, 2, 8, 1), "a later deny wins");
    }

    #[test]
    fn rules_start_from_deny_all_as_runcs() {
        // A lone deny changes nothing on deny-all: nothing is allowed.
        let rs = spec_rules(
            serde_json::json!([{"allow": false, "type": "c", "major": 1, "minor": 1, "access": "rwm"}]),
        );
        let (default, ex) = effective(&rs);
        assert!(!default);
        let p = program(default, &ex);
        assert!(!run(&p, CHAR, 2, 1, 1));
        assert!(!run(&p, CHAR, 2, 1, 3));
        // Allow-all first (a privileged config), then the deny.
        let rs = spec_rules(serde_json::json!([
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 1, "access": "rwm"}
        ]));
        let (default, ex) = effective(&rs);
        assert!(default);
        let p = program(default, &ex);
        assert!(!run(&p, CHAR, 2, 1, 1));
        assert!(run(&p, CHAR, 2, 1, 3));
        // No rules at all: runc's default list only. mknod of anything,
        // opening the standard nodes and /dev/net/tun, nothing else.
        let (default, ex) = effective(&default_allowed(&[]));
        let p = program(default, &ex);
        assert!(run(&p, BLOCK, 1, 8, 0));
        assert!(run(&p, CHAR, 1, 1, 11));
        assert!(!run(&p, CHAR, 2, 1, 11)); // /dev/kmsg
        assert!(!run(&p, BLOCK, 2, 8, 0)); // a disk
        assert!(run(&p, CHAR, 6, 10, 200)); // /dev/net/tun
        assert!(run(&p, CHAR, 6, 1, 3)); // /dev/null
        assert!(run(&p, CHAR, 6, 136, 4)); // a pty
    }

    #[test]
    fn bad_access_is_an_error() {
        let list: Vec<LinuxDeviceCgroup> =
            serde_json::from_value(serde_json::json!([{"allow": true, "access": "rwx"}])).unwrap();
        assert_eq!(
            rules(&list).unwrap_err().0,
            "linux.resources.devices[0].access"
        );
    }
}
