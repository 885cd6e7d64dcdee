//! `events`: runc's event stream from the container's cgroup — `stats`
//! events (cpu, memory, pids, blkio, hugetlb) every interval, and an `oom`
//! event whenever `memory.events` counts a new OOM kill. `--stats` prints one
//! stats event and exits.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Error, Status, load};

fn read(cg: &Path, file: &str) -> Option<String> {
    fs::read_to_string(cg.join(file)).ok()
}

/// A single-value file; "max" reads as u64::MAX, as runc reports it.
fn value(cg: &Path, file: &str) -> Option<u64> {
    let s = read(cg, file)?;
    let s = s.trim();
    if s == "max" {
        Some(u64::MAX)
    } else {
        s.parse().ok()
    }
}

/// A flat-keyed file (`key value` lines).
fn keyed(cg: &Path, file: &str) -> BTreeMap<String, u64> {
    read(cg, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((p.next()?.to_string(), p.next()?.parse().ok()?))
        })
        .collect()
}

/// The stats of a cgroup in runc's `events` data shape.
pub fn stats(cg: &Path) -> Value {
    let cpu = keyed(cg, "cpu.stat");
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0) * 1000;
    let mut data = Map::new();
    data.insert(
        "cpu".into(),
        json!({
            "usage": {"total": us("usage_usec"), "kernel": us("system_usec"), "user": us("user_usec")},
            "throttling": {
                "periods": cpu.get("nr_periods").copied().unwrap_or(0),
                "throttledPeriods": cpu.get("nr_throttled").copied().unwrap_or(0),
                "throttledTime": us("throttled_usec"),
            }
        }),
    );
    let mem_stat = keyed(cg, "memory.stat");
    let mem_events = keyed(cg, "memory.events");
    data.insert(
        "memory".into(),
        json!({
            "cache": mem_stat.get("file").copied().unwrap_or(0),
            "usage": {
                "limit": value(cg, "memory.max").unwrap_or(u64::MAX),
                "usage": value(cg, "memory.current").unwrap_or(0),
                "max": value(cg, "memory.peak").unwrap_or(0),
                "failcnt": mem_events.get("max").copied().unwrap_or(0),
            },
            "swap": {
                "limit": value(cg, "memory.swap.max").unwrap_or(u64::MAX),
                "usage": value(cg, "memory.swap.current").unwrap_or(0),
                "failcnt": 0,
            },
            "raw": mem_stat,
        }),
    );
    data.insert(
        "pids".into(),
        json!({"current": value(cg, "pids.current").unwrap_or(0), "limit": value(cg, "pids.max").unwrap_or(0)}),
    );
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for line in read(cg, "io.stat").unwrap_or_default().lines() {
        let mut parts = line.split_whitespace();
        let Some((major, minor)) = parts.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (major, minor): (u64, u64) = (major.parse().unwrap_or(0), minor.parse().unwrap_or(0));
        for kv in parts {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let v: u64 = v.parse().unwrap_or(0);
            let entry = |op: &str| json!({"major": major, "minor": minor, "op": op, "value": v});
            match k {
                "rbytes" => bytes.push(entry("Read")),
                "wbytes" => bytes.push(entry("Write")),
                "rios" => ios.push(entry("Read")),
                "wios" => ios.push(entry("Write")),
                _ => {}
            }
        }
    }
    data.insert(
        "blkio".into(),
        json!({"ioServiceBytesRecursive": bytes, "ioServicedRecursive": ios}),
    );
    let mut hugetlb = Map::new();
    for e in fs::read_dir(cg).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|n| n.strip_suffix(".current"))
        {
            let events = keyed(cg, &format!("hugetlb.{size}.events"));
            hugetlb.insert(
                size.to_string(),
                json!({
                    "usage": value(cg, &name).unwrap_or(0),
                    "failcnt": events.get("max").copied().unwrap_or(0),
                }),
            );
        }
    }
    data.insert("hugetlb".into(), Value::Object(hugetlb));
    Value::Object(data)
}

fn oom_kills(cg: &Path) -> u64 {
    keyed(cg, "memory.events")
        .get("oom_kill")
        .copied()
        .unwrap_or(0)
}

/// Prints events until the container stops (or once, with `--stats`).
pub fn events(
    root: &Path,
    id: &str,
    once: bool,
    interval: Duration,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let (dir, st) = load(root, id)?;
    let cg = st
        .cgroup
        .clone()
        .ok_or_else(|| Error::Config(format!("container {id:?} has no cgroup")))?;
    let io = |e: std::io::Error| Error::Config(format!("events: {e}"));
    let emit = |out: &mut dyn Write, v: Value| -> Result<(), Error> {
        writeln!(out, "{v}").map_err(io)?;
        out.flush().map_err(io)
    };
    if once {
        if st.status(&dir) == Status::Stopped {
            return Err(Error::NotRunning(id.to_string()));
        }
        return emit(out, json!({"type": "stats", "id": id, "data": stats(&cg)}));
    }
    // OOM kills are checked often; stats go out every interval.
    let tick = Duration::from_millis(100).min(interval);
    let mut seen_ooms = oom_kills(&cg);
    let mut since_stats = interval;
    loop {
        let ooms = oom_kills(&cg);
        if ooms > seen_ooms {
            seen_ooms = ooms;
            emit(out, json!({"type": "oom", "id": id}))?;
        }
        if st.status(&dir) == Status::Stopped {
            return Ok(());
        }
        if since_stats >= interval {
            since_stats = Duration::ZERO;
            emit(out, json!({"type": "stats", "id": id, "data": stats(&cg)}))?;
        }
        std::thread::sleep(tick);
        since_stats += tick;
    }
}
