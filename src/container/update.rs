//! `update`: change a running container's resources — the OCI resources JSON
//! engines send (`--resources FILE|-`) or runc's flags — through the same
//! mapping `create` uses.

use std::path::Path;

use oci_spec::runtime::LinuxResources;
use serde_json::{Value, json};

use super::{Error, Status, load};
use crate::cgroups::{self, resources};

/// runc's `update` flags; each is merged into the resources JSON.
#[derive(Debug, Default, clap::Args)]
pub struct UpdateFlags {
    /// OCI LinuxResources JSON, from a file or `-` for stdin.
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    #[arg(long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
}

/// A size as runc's flags take it: bytes, or a number with k, m, g or t
/// (powers of 1024), or -1.
pub fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim();
    if s == "-1" {
        return Some(-1);
    }
    let lower = s.to_ascii_lowercase();
    let t = lower.trim_end_matches('b');
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1i64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.trim().parse::<i64>().ok()?.checked_mul(mult)
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// The resources an update asks for, from the JSON and the flags.
pub fn requested(f: &UpdateFlags, stdin: &mut dyn std::io::Read) -> Result<LinuxResources, Error> {
    let mut v = match f.resources.as_deref() {
        None => json!({}),
        Some("-") => {
            let mut s = String::new();
            stdin
                .read_to_string(&mut s)
                .map_err(|e| Error::Config(format!("--resources -: {e}")))?;
            serde_json::from_str(&s)
                .map_err(|e| Error::Config(format!("--resources: invalid JSON: {e}")))?
        }
        Some(p) => {
            let s = std::fs::read_to_string(p)
                .map_err(|e| Error::Config(format!("--resources {p}: {e}")))?;
            serde_json::from_str(&s)
                .map_err(|e| Error::Config(format!("--resources {p}: invalid JSON: {e}")))?
        }
    };
    let size = |flag: &str, s: &Option<String>| -> Result<Option<i64>, Error> {
        s.as_deref()
            .map(|s| {
                parse_size(s).ok_or_else(|| Error::Config(format!("--{flag}: invalid size {s:?}")))
            })
            .transpose()
    };
    let mut patch = json!({});
    if let Some(m) = size("memory", &f.memory)? {
        patch["memory"]["limit"] = json!(m);
    }
    if let Some(m) = size("memory-swap", &f.memory_swap)? {
        patch["memory"]["swap"] = json!(m);
    }
    if let Some(m) = size("memory-reservation", &f.memory_reservation)? {
        patch["memory"]["reservation"] = json!(m);
    }
    let cpu = [
        ("shares", f.cpu_shares.map(|v| json!(v))),
        ("quota", f.cpu_quota.map(|v| json!(v))),
        ("period", f.cpu_period.map(|v| json!(v))),
        ("burst", f.cpu_burst.map(|v| json!(v))),
        ("cpus", f.cpuset_cpus.clone().map(|v| json!(v))),
        ("mems", f.cpuset_mems.clone().map(|v| json!(v))),
        ("realtimePeriod", f.cpu_rt_period.map(|v| json!(v))),
        ("realtimeRuntime", f.cpu_rt_runtime.map(|v| json!(v))),
    ];
    for (k, val) in cpu {
        if let Some(val) = val {
            patch["cpu"][k] = val;
        }
    }
    if let Some(p) = f.pids_limit {
        patch["pids"]["limit"] = json!(p);
    }
    if let Some(w) = f.blkio_weight {
        patch["blockIO"]["weight"] = json!(w);
    }
    merge(&mut v, patch);
    serde_json::from_value(v).map_err(|e| Error::Config(format!("--resources: {e}")))
}

pub fn update(root: &Path, id: &str, res: &LinuxResources) -> Result<(), Error> {
    let (dir, st) = load(root, id)?;
    let _lock = dir.lock()?;
    if st.status(&dir) == Status::Stopped {
        return Err(Error::NotRunning(id.to_string()));
    }
    // On a v1 or hybrid host the limits are in the v1 hierarchies.
    let v1 = !st.cgroup_v1.is_empty();
    let writes = if v1 {
        Vec::new()
    } else {
        resources::writes(res).map_err(cgroups::CgroupError::from)?
    };
    let v1_writes = if v1 {
        cgroups::v1_resources::writes(res).map_err(cgroups::CgroupError::from)?
    } else {
        Vec::new()
    };
    if st.procs_cgroup().is_none() {
        return Err(cgroups::CgroupError::NoV2.into());
    }
    if let Some(list) = res.devices().as_ref().filter(|d| !d.is_empty()) {
        // The new program replaces the old one; the default devices stay allowed.
        let mut rules =
            cgroups::devices::rules(list).map_err(|(f, m)| Error::Config(format!("{f}: {m}")))?;
        rules.extend(cgroups::devices::default_allowed(&[]));
        let (default, exceptions) = cgroups::devices::effective(&rules);
        if let Some(unit) = &st.systemd_unit {
            let proc_devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
            let props = cgroups::systemd::device_props(default, &exceptions, &proc_devices);
            cgroups::systemd::set(unit, &props)?;
        }
        cgroups::v1::apply_devices(
            &st.cgroup_v1,
            &cgroups::devices::v1_lines(default, &exceptions),
        )?;
        if let Some(cg) = &st.cgroup {
            let prog = cgroups::devices::program(default, &exceptions);
            let fd = cgroups::Cgroup::existing(cg).open()?;
            cgroups::devices::attach(std::os::fd::AsFd::as_fd(&fd), &prog).map_err(|e| {
                Error::Os(
                    "linux.resources.devices: attach the device eBPF program".into(),
                    e,
                )
            })?;
        }
    }
    if res.memory().as_ref().and_then(|m| m.check_before_update()) == Some(true)
        && let Some(limit) = res
            .memory()
            .as_ref()
            .and_then(|m| m.limit())
            .filter(|l| *l > 0)
    {
        let usage = match (v1, &st.cgroup) {
            (true, _) => cgroups::v1::dir_for(&st.cgroup_v1, "memory")
                .map(|d| d.join("memory.usage_in_bytes")),
            (false, Some(cg)) => Some(cg.join("memory.current")),
            (false, None) => None,
        };
        let current: i64 = usage
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if current > limit {
            return Err(Error::Config(format!(
                "linux.resources.memory.limit: {limit} is below the current usage {current} (checkBeforeUpdate)"
            )));
        }
    }
    if let (false, Some(cg)) = (v1, &st.cgroup) {
        let mount = cgroups::unified_mount().ok_or(cgroups::CgroupError::NoV2)?;
        let rel = cg.strip_prefix(&mount).unwrap_or(cg);
        cgroups::enable_controllers(&mount, rel, &writes)?;
        // systemd keeps what it knows of (as runc, SetUnitProperties and
        // then the files): a later daemon-reload does not undo the update.
        if let Some(unit) = &st.systemd_unit {
            cgroups::systemd::set(unit, &cgroups::systemd::resource_props(&writes))?;
        }
        cgroups::apply(cg, &writes)?;
    }
    if let (true, Some(unit)) = (v1, &st.systemd_unit) {
        cgroups::systemd::set(unit, &cgroups::systemd::resource_props(&v1_writes))?;
    }
    cgroups::v1::apply(&st.cgroup_v1, &v1_writes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("-1"), Some(-1));
        assert_eq!(parse_size("12kb"), Some(12 << 10));
        assert_eq!(parse_size("lots"), None);
    }

    #[test]
    fn flags_merge_over_json() {
        let f = UpdateFlags {
            resources: Some("-".into()),
            memory: Some("64m".into()),
            pids_limit: Some(30),
            ..Default::default()
        };
        let mut input = r#"{"memory":{"limit":1,"reservation":2},"cpu":{"shares":512}}"#.as_bytes();
        let r = requested(&f, &mut input).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.memory().as_ref().unwrap().reservation(), Some(2));
        assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(512));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 30);
    }
}
