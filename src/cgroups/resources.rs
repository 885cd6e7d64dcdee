//! `linux.resources` turned into cgroup v2 file writes, converted as runc and
//! crun convert them (cpu shares to cpu.weight, swap to memory.swap.max minus
//! the limit, …). Pure: the writes are computed here and applied elsewhere, so
//! `create` and `update` share one mapping and it is tested without root.

use std::collections::BTreeSet;

use oci_spec::runtime::LinuxResources;

/// One file to write in the container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// JSON path of the setting, for errors.
    pub field: String,
    /// The controller it needs enabled in the parent (`memory`, `cpu`, …);
    /// `None` for core files.
    pub controller: Option<&'static str>,
    pub file: String,
    pub value: String,
    /// The request is the default a new cgroup has anyway (cpu shares 1024,
    /// "max" limits): harmless to drop where the controller is missing.
    pub is_default: bool,
}

/// A setting that cannot be expressed on cgroup v2, or a bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {msg}")]
pub struct ResourceError {
    pub field: String,
    pub msg: String,
}

fn bad<T>(field: &str, msg: impl Into<String>) -> Result<T, ResourceError> {
    Err(ResourceError {
        field: field.to_string(),
        msg: msg.into(),
    })
}

fn w(out: &mut Vec<Write>, field: &str, controller: &'static str, file: &str, value: String) {
    let is_default = value == "max" || value == "max 100000";
    out.push(Write {
        field: field.to_string(),
        controller: Some(controller),
        file: file.to_string(),
        value,
        is_default,
    });
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// cpu.shares held to the range the v1 kernel keeps them in (2..262144).
pub fn shares_in_range(shares: u64) -> u64 {
    shares.clamp(2, 262_144)
}

/// cpu.shares to cpu.weight (1..10000), as runc converts it. Shares are
/// first held to v1's own range, 2..262144, as the v1 kernel holds them (runc's
/// arithmetic wraps past it and writes a weight the kernel refuses).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares_in_range(shares);
    1 + ((shares - 2) * 9999) / 262_142
}

/// blkio weight (10..1000) to io.weight (1..10000), as runc converts it.
pub fn blkio_weight_to_io(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10) * 9999) / 990
}

/// memory.swap.max from the spec's swap (memory+swap) and limit, as runc does.
pub fn swap_to_v2(swap: i64, limit: i64) -> Result<Option<i64>, String> {
    if limit == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    if swap == -1 {
        return Ok(Some(-1));
    }
    if swap == 0 {
        return Ok(None);
    }
    if limit == 0 || limit == -1 {
        return Err("a swap limit needs a memory limit".into());
    }
    if swap < limit {
        return Err(format!(
            "memory+swap ({swap}) must be at least the memory limit ({limit})"
        ));
    }
    Ok(Some(swap - limit))
}

/// Every write that `res` asks for, in a fixed order. Device rules are not
/// file writes (they are an eBPF program) and are handled by the caller.
pub fn writes(res: &LinuxResources) -> Result<Vec<Write>, ResourceError> {
    let mut out = Vec::new();
    if let Some(m) = res.memory() {
        let limit = m.limit().unwrap_or(0);
        if let Some(l) = m.limit()
            && l != 0
        {
            if l < -1 {
                return bad("linux.resources.memory.limit", format!("invalid value {l}"));
            }
            w(
                &mut out,
                "linux.resources.memory.limit",
                "memory",
                "memory.max",
                max_or(l),
            );
        }
        if let Some(r) = m.reservation()
            && r != 0
        {
            w(
                &mut out,
                "linux.resources.memory.reservation",
                "memory",
                "memory.low",
                max_or(r),
            );
        }
        if let Some(s) = m.swap() {
            match swap_to_v2(s, limit) {
                Ok(Some(v)) => w(
                    &mut out,
                    "linux.resources.memory.swap",
                    "memory",
                    "memory.swap.max",
                    max_or(v),
                ),
                Ok(None) => {}
                Err(e) => return bad("linux.resources.memory.swap", e),
            }
        }
        if m.swappiness().is_some() {
            return bad(
                "linux.resources.memory.swappiness",
                "cgroup v2 has no per-cgroup swappiness",
            );
        }
        if m.disable_oom_killer() == Some(true) {
            return bad(
                "linux.resources.memory.disableOOMKiller",
                "cgroup v2 cannot disable the OOM killer",
            );
        }
        if m.kernel_tcp().is_some_and(|k| k != 0) {
            return bad(
                "linux.resources.memory.kernelTCP",
                "not available on cgroup v2",
            );
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(s) = c.shares()
            && s != 0
        {
            w(
                &mut out,
                "linux.resources.cpu.shares",
                "cpu",
                "cpu.weight",
                shares_to_weight(s).to_string(),
            );
            // 1024 is cgroup v1's default share, which engines send unasked.
            if let Some(last) = out.last_mut() {
                last.is_default = s == 1024;
            }
        }
        let quota = c.quota().unwrap_or(0);
        let period = c.period().unwrap_or(0);
        if quota != 0 || period != 0 {
            let q = if quota > 0 {
                quota.to_string()
            } else {
                "max".to_string()
            };
            let p = if period > 0 { period } else { 100_000 };
            w(
                &mut out,
                "linux.resources.cpu.quota",
                "cpu",
                "cpu.max",
                format!("{q} {p}"),
            );
        }
        if let Some(b) = c.burst() {
            w(
                &mut out,
                "linux.resources.cpu.burst",
                "cpu",
                "cpu.max.burst",
                b.to_string(),
            );
        }
        if let Some(i) = c.idle() {
            w(
                &mut out,
                "linux.resources.cpu.idle",
                "cpu",
                "cpu.idle",
                i.to_string(),
            );
        }
        if c.realtime_runtime().is_some_and(|v| v != 0)
            || c.realtime_period().is_some_and(|v| v != 0)
        {
            return bad(
                "linux.resources.cpu.realtimeRuntime",
                "real-time scheduling limits are not available on cgroup v2",
            );
        }
        cpuset_writes(c, &mut out);
    }
    if let Some(p) = res.pids()
        && p.limit() != 0
    {
        w(
            &mut out,
            "linux.resources.pids.limit",
            "pids",
            "pids.max",
            max_or(p.limit()),
        );
    }
    if let Some(b) = res.block_io() {
        if let Some(weight) = b.weight()
            && weight != 0
        {
            w(
                &mut out,
                "linux.resources.blockIO.weight",
                "io",
                "io.weight",
                format!("default {}", blkio_weight_to_io(weight)),
            );
        }
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            if let Some(weight) = d.weight() {
                w(
                    &mut out,
                    &format!("linux.resources.blockIO.weightDevice[{i}]"),
                    "io",
                    "io.weight",
                    format!("{}:{} {}", d.major(), d.minor(), blkio_weight_to_io(weight)),
                );
            }
        }
        let throttles = [
            (
                "throttleReadBpsDevice",
                "rbps",
                b.throttle_read_bps_device(),
            ),
            (
                "throttleWriteBpsDevice",
                "wbps",
                b.throttle_write_bps_device(),
            ),
            (
                "throttleReadIOPSDevice",
                "riops",
                b.throttle_read_iops_device(),
            ),
            (
                "throttleWriteIOPSDevice",
                "wiops",
                b.throttle_write_iops_device(),
            ),
        ];
        for (name, key, list) in throttles {
            for (i, d) in list.iter().flatten().enumerate() {
                w(
                    &mut out,
                    &format!("linux.resources.blockIO.{name}[{i}]"),
                    "io",
                    "io.max",
                    format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
                );
            }
        }
    }
    for (i, h) in res.hugepage_limits().iter().flatten().enumerate() {
        let size = page_size(i, h.page_size())?;
        w(
            &mut out,
            &format!("linux.resources.hugepageLimits[{i}]"),
            "hugetlb",
            &format!("hugetlb.{size}.max"),
            max_or(h.limit()),
        );
    }
    for (field, value) in rdma_limits(res) {
        w(&mut out, &field, "rdma", "rdma.max", value);
    }
    if res.network().is_some() {
        return bad(
            "linux.resources.network",
            "network classes and priorities are cgroup v1 only",
        );
    }
    let mut unified: Vec<_> = res.unified().iter().flatten().collect();
    unified.sort();
    for (key, value) in unified {
        let field = format!("linux.resources.unified.{key}");
        if key.is_empty() || key.contains('/') || key.contains("..") || key.starts_with('.') {
            return bad(&field, "not a cgroup file name");
        }
        let controller = key.split('.').next().unwrap_or("");
        out.push(Write {
            field,
            controller: known_controller(controller),
            file: key.clone(),
            value: value.clone(),
            is_default: false,
        });
    }
    Ok(out)
}

/// cpuset.cpus and cpuset.mems: the same files on cgroup v1 and v2.
pub(crate) fn cpuset_writes(c: &oci_spec::runtime::LinuxCpu, out: &mut Vec<Write>) {
    for (field, file, v) in [
        ("cpus", "cpuset.cpus", c.cpus()),
        ("mems", "cpuset.mems", c.mems()),
    ] {
        if let Some(v) = v.as_ref().filter(|s| !s.is_empty()) {
            w(
                out,
                &format!("linux.resources.cpu.{field}"),
                "cpuset",
                file,
                v.clone(),
            );
        }
    }
}

/// A hugepage size as the file names take it (`2MB`, `1GB`), checked.
pub(crate) fn page_size(i: usize, size: &str) -> Result<&str, ResourceError> {
    if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
        return bad(
            &format!("linux.resources.hugepageLimits[{i}].pageSize"),
            format!("invalid page size {size:?}"),
        );
    }
    Ok(size)
}

/// rdma.max lines (`DEV hca_handle=N hca_object=M`), by device, with their fields.
pub(crate) fn rdma_limits(res: &LinuxResources) -> Vec<(String, String)> {
    let mut rdma: Vec<_> = res.rdma().iter().flatten().collect();
    rdma.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for (dev, r) in rdma {
        let mut parts = Vec::new();
        if let Some(h) = r.hca_handles() {
            parts.push(format!("hca_handle={h}"));
        }
        if let Some(o) = r.hca_objects() {
            parts.push(format!("hca_object={o}"));
        }
        if !parts.is_empty() {
            out.push((
                format!("linux.resources.rdma.{dev}"),
                format!("{dev} {}", parts.join(" ")),
            ));
        }
    }
    out
}

/// The controller a file prefix names, if it is a controller (not `cgroup.`).
fn known_controller(prefix: &str) -> Option<&'static str> {
    [
        "cpu", "cpuset", "io", "memory", "hugetlb", "pids", "rdma", "misc",
    ]
    .into_iter()
    .find(|c| *c == prefix)
}

/// The controllers a set of writes needs.
pub fn controllers(writes: &[Write]) -> BTreeSet<&'static str> {
    writes.iter().filter_map(|w| w.controller).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: serde_json::Value) -> LinuxResources {
        serde_json::from_value(json).unwrap()
    }

    fn files(r: &LinuxResources) -> Vec<(String, String)> {
        writes(r)
            .unwrap()
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect()
    }

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(shares_to_weight(u64::MAX), 10000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(blkio_weight_to_io(10), 1);
        assert_eq!(blkio_weight_to_io(1000), 10000);
        assert_eq!(blkio_weight_to_io(500), 4950);
    }

    #[test]
    fn memory() {
        let r = res(
            serde_json::json!({"memory": {"limit": 33554432, "reservation": 1048576, "swap": 67108864}}),
        );
        assert_eq!(
            files(&r),
            [
                ("memory.max".into(), "33554432".into()),
                ("memory.low".into(), "1048576".into()),
                ("memory.swap.max".into(), "33554432".into())
            ]
        );
        let r = res(serde_json::json!({"memory": {"limit": -1, "swap": -1}}));
        assert_eq!(
            files(&r),
            [
                ("memory.max".into(), "max".into()),
                ("memory.swap.max".into(), "max".into())
            ]
        );
        let e = writes(&res(
            serde_json::json!({"memory": {"limit": 100, "swap": 50}}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "linux.resources.memory.swap");
        let e = writes(&res(serde_json::json!({"memory": {"swappiness": 10}}))).unwrap_err();
        assert_eq!(e.field, "linux.resources.memory.swappiness");
    }

    #[test]
    fn cpu() {
        let r = res(
            serde_json::json!({"cpu": {"shares": 1024, "quota": 20000, "period": 100000, "burst": 1000, "cpus": "0-1", "mems": "0"}}),
        );
        assert_eq!(
            files(&r),
            [
                ("cpu.weight".into(), "39".into()),
                ("cpu.max".into(), "20000 100000".into()),
                ("cpu.max.burst".into(), "1000".into()),
                ("cpuset.cpus".into(), "0-1".into()),
                ("cpuset.mems".into(), "0".into())
            ]
        );
        let r = res(serde_json::json!({"cpu": {"period": 50000}}));
        assert_eq!(files(&r), [("cpu.max".into(), "max 50000".into())]);
        assert!(writes(&res(serde_json::json!({"cpu": {"realtimeRuntime": 5}}))).is_err());
    }

    #[test]
    fn pids_io_hugetlb_rdma() {
        let r = res(serde_json::json!({
            "pids": {"limit": 20},
            "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}
        }));
        assert_eq!(
            files(&r),
            [
                ("pids.max".into(), "20".into()),
                ("io.weight".into(), "default 4950".into()),
                ("io.max".into(), "8:0 rbps=1048576".into()),
                ("io.max".into(), "8:0 wiops=100".into()),
                ("hugetlb.2MB.max".into(), "4194304".into()),
                (
                    "rdma.max".into(),
                    "mlx5_1 hca_handle=3 hca_object=10000".into()
                )
            ]
        );
        let c = controllers(&writes(&r).unwrap());
        assert_eq!(
            c.into_iter().collect::<Vec<_>>(),
            ["hugetlb", "io", "pids", "rdma"]
        );
    }

    #[test]
    fn unified_keys_are_checked() {
        let r =
            res(serde_json::json!({"unified": {"memory.high": "1000000", "cgroup.freeze": "0"}}));
        let ws = writes(&r).unwrap();
        assert_eq!(ws[0].file, "cgroup.freeze");
        assert_eq!(ws[0].controller, None);
        assert_eq!(ws[1].controller, Some("memory"));
        for key in ["../x", "a/b", "", ".hidden"] {
            let r = res(serde_json::json!({"unified": {key: "1"}}));
            assert!(writes(&r).is_err(), "{key:?} accepted");
        }
    }

    #[test]
    fn network_is_refused() {
        let e = writes(&res(serde_json::json!({"network": {"classID": 1}}))).unwrap_err();
        assert_eq!(e.field, "linux.resources.network");
    }
}
