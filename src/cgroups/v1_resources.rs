//! `linux.resources` as cgroup v1 file writes, mapped as runc maps them
//! (libcontainer/cgroups/fs). Pure, like the v2 mapping: `Write.controller`
//! names the v1 hierarchy (`memory`, `cpu`, `cpuset`, `pids`, `blkio`,
//! `hugetlb`, `net_cls`, `net_prio`, `rdma`) and the writes go to the
//! container's directory in it, in this order.

use oci_spec::runtime::LinuxResources;

use super::resources::{
    ResourceError, Write, cpuset_writes, page_size, rdma_limits, shares_in_range,
};

fn w(out: &mut Vec<Write>, field: &str, controller: &'static str, file: &str, value: String) {
    out.push(Write {
        field: field.to_string(),
        controller: Some(controller),
        file: file.to_string(),
        value,
        is_default: false,
    });
}

fn bad<T>(field: &str, msg: impl Into<String>) -> Result<T, ResourceError> {
    Err(ResourceError {
        field: field.to_string(),
        msg: msg.into(),
    })
}

/// Every v1 write that `res` asks for. Device rules are written by the
/// caller (devices.deny / devices.allow), `unified` is refused: it names
/// cgroup v2 files.
pub fn writes(res: &LinuxResources) -> Result<Vec<Write>, ResourceError> {
    let mut out = Vec::new();
    if let Some(m) = res.memory() {
        let limit = m.limit().unwrap_or(0);
        for (field, v) in [
            ("limit", m.limit()),
            ("reservation", m.reservation()),
            ("swap", m.swap()),
        ] {
            if let Some(v) = v
                && v < -1
            {
                return bad(
                    &format!("linux.resources.memory.{field}"),
                    format!("invalid value {v}"),
                );
            }
        }
        // memsw first: a new cgroup's limit is unlimited, and memsw may never
        // be below the limit (runc orders them the same way).
        if let Some(s) = m.swap().filter(|s| *s != 0) {
            if limit > 0 && s > 0 && s < limit {
                return bad(
                    "linux.resources.memory.swap",
                    format!("{s} is below the memory limit {limit} (swap is memory+swap)"),
                );
            }
            w(
                &mut out,
                "linux.resources.memory.swap",
                "memory",
                "memory.memsw.limit_in_bytes",
                s.to_string(),
            );
        }
        if limit != 0 {
            w(
                &mut out,
                "linux.resources.memory.limit",
                "memory",
                "memory.limit_in_bytes",
                limit.to_string(),
            );
        }
        if let Some(r) = m.reservation().filter(|r| *r != 0) {
            w(
                &mut out,
                "linux.resources.memory.reservation",
                "memory",
                "memory.soft_limit_in_bytes",
                r.to_string(),
            );
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return bad(
                    "linux.resources.memory.swappiness",
                    format!("{s} is not within 0-100"),
                );
            }
            w(
                &mut out,
                "linux.resources.memory.swappiness",
                "memory",
                "memory.swappiness",
                s.to_string(),
            );
        }
        // Kernel memory limits are gone from recent kernels; runc ignores
        // `kernel` as crun does. TCP buffer memory still has its v1 file.
        if let Some(k) = m.kernel_tcp().filter(|k| *k != 0) {
            w(
                &mut out,
                "linux.resources.memory.kernelTCP",
                "memory",
                "memory.kmem.tcp.limit_in_bytes",
                k.to_string(),
            );
        }
        if m.disable_oom_killer() == Some(true) {
            w(
                &mut out,
                "linux.resources.memory.disableOOMKiller",
                "memory",
                "memory.oom_control",
                "1".into(),
            );
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            w(
                &mut out,
                "linux.resources.cpu.shares",
                "cpu",
                "cpu.shares",
                shares_in_range(s).to_string(),
            );
        }
        // The period before the quota: a quota must fit the period in force.
        if let Some(p) = c.period().filter(|p| *p != 0) {
            w(
                &mut out,
                "linux.resources.cpu.period",
                "cpu",
                "cpu.cfs_period_us",
                p.to_string(),
            );
        }
        if let Some(q) = c.quota().filter(|q| *q != 0) {
            w(
                &mut out,
                "linux.resources.cpu.quota",
                "cpu",
                "cpu.cfs_quota_us",
                q.to_string(),
            );
        }
        if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
            w(
                &mut out,
                "linux.resources.cpu.realtimePeriod",
                "cpu",
                "cpu.rt_period_us",
                p.to_string(),
            );
        }
        if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
            w(
                &mut out,
                "linux.resources.cpu.realtimeRuntime",
                "cpu",
                "cpu.rt_runtime_us",
                r.to_string(),
            );
        }
        cpuset_writes(c, &mut out);
        if c.burst().is_some() || c.idle().is_some() {
            return bad(
                "linux.resources.cpu.burst",
                "cpu burst and idle are cgroup v2 only",
            );
        }
    }
    if let Some(p) = res.pids().filter(|p| p.limit() != 0) {
        let v = if p.limit() < 0 {
            "max".to_string()
        } else {
            p.limit().to_string()
        };
        w(
            &mut out,
            "linux.resources.pids.limit",
            "pids",
            "pids.max",
            v,
        );
    }
    if let Some(b) = res.block_io() {
        if let Some(weight) = b.weight().filter(|w| *w != 0) {
            w(
                &mut out,
                "linux.resources.blockIO.weight",
                "blkio",
                "blkio.weight",
                weight.to_string(),
            );
        }
        if let Some(weight) = b.leaf_weight().filter(|w| *w != 0) {
            w(
                &mut out,
                "linux.resources.blockIO.leafWeight",
                "blkio",
                "blkio.leaf_weight",
                weight.to_string(),
            );
        }
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            if let Some(weight) = d.weight() {
                w(
                    &mut out,
                    &format!("linux.resources.blockIO.weightDevice[{i}]"),
                    "blkio",
                    "blkio.weight_device",
                    format!("{}:{} {weight}", d.major(), d.minor()),
                );
            }
        }
        let throttles = [
            (
                "throttleReadBpsDevice",
                "read_bps_device",
                b.throttle_read_bps_device(),
            ),
            (
                "throttleWriteBpsDevice",
                "write_bps_device",
                b.throttle_write_bps_device(),
            ),
            (
                "throttleReadIOPSDevice",
                "read_iops_device",
                b.throttle_read_iops_device(),
            ),
            (
                "throttleWriteIOPSDevice",
                "write_iops_device",
                b.throttle_write_iops_device(),
            ),
        ];
        for (name, file, list) in throttles {
            for (i, d) in list.iter().flatten().enumerate() {
                w(
                    &mut out,
                    &format!("linux.resources.blockIO.{name}[{i}]"),
                    "blkio",
                    &format!("blkio.throttle.{file}"),
                    format!("{}:{} {}", d.major(), d.minor(), d.rate()),
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
            &format!("hugetlb.{size}.limit_in_bytes"),
            h.limit().to_string(),
        );
    }
    if let Some(n) = res.network() {
        if let Some(id) = n.class_id() {
            w(
                &mut out,
                "linux.resources.network.classID",
                "net_cls",
                "net_cls.classid",
                id.to_string(),
            );
        }
        for (i, p) in n.priorities().iter().flatten().enumerate() {
            let name = p.name();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return bad(
                    &format!("linux.resources.network.priorities[{i}].name"),
                    format!("{name:?} is not an interface name"),
                );
            }
            w(
                &mut out,
                &format!("linux.resources.network.priorities[{i}]"),
                "net_prio",
                "net_prio.ifpriomap",
                format!("{name} {}", p.priority()),
            );
        }
    }
    for (field, value) in rdma_limits(res) {
        w(&mut out, &field, "rdma", "rdma.max", value);
    }
    if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return bad(
            "linux.resources.unified",
            "names cgroup v2 files; this host's controllers are cgroup v1",
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn files(r: &[Write]) -> Vec<(String, String)> {
        r.iter()
            .map(|w| (w.file.clone(), w.value.clone()))
            .collect()
    }

    #[test]
    fn runc_s_v1_files_and_order() {
        let r = writes(&res(serde_json::json!({
            "memory": {"limit": 1048576, "swap": 2097152, "reservation": 524288, "swappiness": 10},
            "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 32},
            "blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]}
        })))
        .unwrap();
        let f = files(&r);
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            f,
            vec![
                s("memory.memsw.limit_in_bytes", "2097152"),
                s("memory.limit_in_bytes", "1048576"),
                s("memory.soft_limit_in_bytes", "524288"),
                s("memory.swappiness", "10"),
                s("cpu.shares", "512"),
                s("cpu.cfs_period_us", "100000"),
                s("cpu.cfs_quota_us", "20000"),
                s("cpuset.cpus", "0"),
                s("cpuset.mems", "0"),
                s("pids.max", "32"),
                s("blkio.weight", "300"),
                s("blkio.throttle.read_bps_device", "8:0 1000"),
                s("hugetlb.2MB.limit_in_bytes", "4194304"),
                s("net_cls.classid", "1048577"),
                s("net_prio.ifpriomap", "eth0 5"),
            ]
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let e = writes(&res(
            serde_json::json!({"memory": {"limit": 2097152, "swap": 1048576}}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "linux.resources.memory.swap");
        let e = writes(&res(serde_json::json!({"unified": {"memory.high": "1"}}))).unwrap_err();
        assert_eq!(e.field, "linux.resources.unified");
        let e = writes(&res(serde_json::json!({"memory": {"swappiness": 200}}))).unwrap_err();
        assert_eq!(e.field, "linux.resources.memory.swappiness");
        assert_eq!(
            files(&writes(&res(serde_json::json!({"cpu": {"shares": u64::MAX}}))).unwrap()),
            vec![("cpu.shares".to_string(), "262144".to_string())]
        );
    }
}
