//! `events`: runc's event stream from the container's cgroup — `stats`
//! events (cpu, memory, pids, blkio, hugetlb) every interval, and an `oom`
//! event whenever `memory.events` counts a new OOM kill. `--stats` prints one
//! stats event and exits.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use serde_json::{Map, Value, json};

use super::{Error, Status, load};
use crate::cgroups::v1::{self, Placed};

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

/// The stats of a container placed in v1 hierarchies (v1 and hybrid hosts),
/// in the same shape, from the v1 files runc reads.
pub fn stats_v1(placed: &[Placed]) -> Value {
    let none = Path::new("/nonexistent");
    let dir = |c: &str| v1::dir_for(placed, c).unwrap_or(none);
    let (cpu, acct, mem, pids, blkio) = (
        dir("cpu"),
        dir("cpuacct"),
        dir("memory"),
        dir("pids"),
        dir("blkio"),
    );
    // cpuacct.stat counts USER_HZ ticks (100 a second): 10 ms each.
    let ticks = keyed(acct, "cpuacct.stat");
    let tick_ns = |k: &str| ticks.get(k).copied().unwrap_or(0) * 10_000_000;
    let throttle = keyed(cpu, "cpu.stat");
    let mut data = Map::new();
    data.insert(
        "cpu".into(),
        json!({
            "usage": {"total": value(acct, "cpuacct.usage").unwrap_or(0),
                      "kernel": tick_ns("system"), "user": tick_ns("user")},
            "throttling": {
                "periods": throttle.get("nr_periods").copied().unwrap_or(0),
                "throttledPeriods": throttle.get("nr_throttled").copied().unwrap_or(0),
                "throttledTime": throttle.get("throttled_time").copied().unwrap_or(0),
            }
        }),
    );
    let mem_stat = keyed(mem, "memory.stat");
    data.insert(
        "memory".into(),
        json!({
            "cache": mem_stat.get("cache").copied().unwrap_or(0),
            "usage": {
                "limit": value(mem, "memory.limit_in_bytes").unwrap_or(u64::MAX),
                "usage": value(mem, "memory.usage_in_bytes").unwrap_or(0),
                "max": value(mem, "memory.max_usage_in_bytes").unwrap_or(0),
                "failcnt": value(mem, "memory.failcnt").unwrap_or(0),
            },
            "swap": {
                "limit": value(mem, "memory.memsw.limit_in_bytes").unwrap_or(u64::MAX),
                "usage": value(mem, "memory.memsw.usage_in_bytes").unwrap_or(0),
                "failcnt": value(mem, "memory.memsw.failcnt").unwrap_or(0),
            },
            "raw": mem_stat,
        }),
    );
    data.insert(
        "pids".into(),
        json!({"current": value(pids, "pids.current").unwrap_or(0),
               "limit": value(pids, "pids.max").unwrap_or(0)}),
    );
    // "8:0 Read 4096" lines (and a "Total N" line, skipped).
    let entries = |file: &str| -> Vec<Value> {
        read(blkio, file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (dev, op, v) = (f.next()?, f.next()?, f.next()?);
                let (major, minor) = dev.split_once(':')?;
                Some(
                    json!({"major": major.parse::<u64>().ok()?, "minor": minor.parse::<u64>().ok()?,
                            "op": op, "value": v.parse::<u64>().ok()?}),
                )
            })
            .collect()
    };
    data.insert(
        "blkio".into(),
        json!({"ioServiceBytesRecursive": entries("blkio.throttle.io_service_bytes_recursive"),
               "ioServicedRecursive": entries("blkio.throttle.io_serviced_recursive")}),
    );
    let huge = dir("hugetlb");
    let mut hugetlb = Map::new();
    for e in fs::read_dir(huge).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|n| n.strip_suffix(".usage_in_bytes"))
        {
            hugetlb.insert(
                size.to_string(),
                json!({
                    "usage": value(huge, &name).unwrap_or(0),
                    "failcnt": value(huge, &format!("hugetlb.{size}.failcnt")).unwrap_or(0),
                }),
            );
        }
    }
    data.insert("hugetlb".into(), Value::Object(hugetlb));
    Value::Object(data)
}

/// OOM kills in the v1 memory hierarchy (`oom_kill` of memory.oom_control).
fn oom_kills_v1(placed: &[Placed]) -> u64 {
    v1::dir_for(placed, "memory")
        .map(|d| keyed(d, "memory.oom_control"))
        .and_then(|k| k.get("oom_kill").copied())
        .unwrap_or(0)
}

/// The container's stats and OOM kill count, from where its limits are.
fn stats_of(st: &super::State, cg: &Path) -> Value {
    if st.cgroup_v1.is_empty() {
        stats(cg)
    } else {
        stats_v1(&st.cgroup_v1)
    }
}

fn oom_kills_of(st: &super::State, cg: &Path) -> u64 {
    if st.cgroup_v1.is_empty() {
        oom_kills(cg)
    } else {
        oom_kills_v1(&st.cgroup_v1)
    }
}

/// The times the OOM killer was invoked in a v2 cgroup (`oom` of
/// memory.events; none on v1, where notifications say it).
fn oom_invoked(st: &super::State, cg: &Path) -> u64 {
    match st.cgroup_v1.is_empty() {
        true => keyed(cg, "memory.events").get("oom").copied().unwrap_or(0),
        false => 0,
    }
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
        .procs_cgroup()
        .map(Path::to_path_buf)
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
        return emit(
            out,
            json!({"type": "stats", "id": id, "data": stats_of(&st, &cg)}),
        );
    }
    // OOM kills are checked often; stats go out every interval. On the
    // unified hierarchy a change of memory.events wakes the loop at once:
    // the systemd driver's scope (and its memory.events) is gone soon after
    // the OOM-killed init, often before a 100 ms tick would have read it.
    let tick = Duration::from_millis(100).min(interval);
    // On v1 the memory cgroup's OOM notifications do the same.
    let watch = match st.cgroup_v1.is_empty() {
        true => watch_file(&cg.join("memory.events")),
        false => v1::dir_for(&st.cgroup_v1, "memory").and_then(v1_oom_watch),
    };
    // An event per OOM kill counted. v1 notifies many times per OOM, and
    // before the kill is counted: a notification is held until the count
    // rises, or reported by itself if the cgroup is gone first.
    // On v2 the same hold is taken when memory.events counts an OOM (its
    // `oom`, which rises before the kill and so well before the cgroup can
    // go): the kill's own count may be read too late.
    let mut seen_ooms = oom_kills_of(&st, &cg);
    let mut seen_invoked = oom_invoked(&st, &cg);
    let mut notified = false;
    let mut last_stats: Option<Instant> = None;
    loop {
        let invoked = oom_invoked(&st, &cg);
        if invoked > seen_invoked {
            seen_invoked = invoked;
            notified = true;
        }
        let ooms = oom_kills_of(&st, &cg);
        if ooms > seen_ooms || (notified && watch.as_ref().is_some_and(Watch::gone)) {
            seen_ooms = seen_ooms.max(ooms);
            notified = false;
            emit(out, json!({"type": "oom", "id": id}))?;
        }
        if st.status(&dir) == Status::Stopped {
            return Ok(());
        }
        if last_stats.is_none_or(|t| t.elapsed() >= interval) {
            last_stats = Some(Instant::now());
            emit(
                out,
                json!({"type": "stats", "id": id, "data": stats_of(&st, &cg)}),
            )?;
        }
        match &watch {
            Some(w) => notified |= w.wait(tick),
            None => std::thread::sleep(tick),
        }
    }
}

/// What wakes the events loop before its tick.
enum Watch {
    /// Changes of a v2 cgroup's memory.events (in `dir`).
    Events { inotify: Inotify, dir: PathBuf },
    /// A v1 memory cgroup's OOM notifications: an eventfd registered in
    /// cgroup.event_control with memory.oom_control (as runc's
    /// notifyOnOOM). It also fires once when the cgroup is removed.
    V1Oom {
        efd: OwnedFd,
        _oom_control: fs::File,
        dir: PathBuf,
    },
}

impl Watch {
    /// Whether the watched cgroup is gone.
    fn gone(&self) -> bool {
        match self {
            Watch::Events { dir, .. } | Watch::V1Oom { dir, .. } => !dir.exists(),
        }
    }

    /// Waits for a change or `timeout`; true for an OOM notification.
    fn wait(&self, timeout: Duration) -> bool {
        let fd = match self {
            Watch::Events { inotify, .. } => inotify.as_fd(),
            Watch::V1Oom { efd, .. } => efd.as_fd(),
        };
        let ms = PollTimeout::try_from(timeout.as_millis().min(60_000) as i32)
            .unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        if !poll(&mut fds, ms).is_ok_and(|n| n > 0) {
            return false;
        }
        match self {
            Watch::Events { inotify, .. } => {
                // Drained: one read takes every pending event.
                let _ = inotify.read_events();
                false
            }
            Watch::V1Oom { efd, dir, .. } => {
                let mut n = [0u8; 8];
                if nix::unistd::read(efd, &mut n).is_err() {
                    return false;
                }
                // The removal of the cgroup notifies once: with the cgroup
                // gone, only a count above one holds an OOM as well.
                let count = u64::from_ne_bytes(n);
                count >= 2 || (count == 1 && dir.exists())
            }
        }
    }
}

/// An inotify watch for changes of `file` (None where it cannot be made:
/// the loop then just ticks).
fn watch_file(file: &Path) -> Option<Watch> {
    let i = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
    i.add_watch(file, AddWatchFlags::IN_MODIFY).ok()?;
    Some(Watch::Events {
        inotify: i,
        dir: file.parent()?.to_path_buf(),
    })
}

/// OOM notifications of the v1 memory cgroup `dir` (None where they cannot
/// be had: the loop then reads memory.oom_control every tick).
fn v1_oom_watch(dir: &Path) -> Option<Watch> {
    let oom_control = fs::File::open(dir.join("memory.oom_control")).ok()?;
    // SAFETY: eventfd(2) takes plain integers; a non-negative result is a
    // new descriptor that nothing else owns.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` was just opened above and is owned here alone.
    let efd = unsafe { OwnedFd::from_raw_fd(raw) };
    let line = format!("{} {}", efd.as_raw_fd(), oom_control.as_raw_fd());
    fs::write(dir.join("cgroup.event_control"), line).ok()?;
    Some(Watch::V1Oom {
        efd,
        _oom_control: oom_control,
        dir: dir.to_path_buf(),
    })
}
