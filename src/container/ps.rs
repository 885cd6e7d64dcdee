//! `ps`: the container's processes, from its cgroup (and its sub-cgroups).

use std::io::Write;
use std::path::Path;

use super::{Error, Status, load};

/// Every pid in the cgroup tree at `path`.
pub fn all_pids(path: &Path) -> Vec<i32> {
    let mut pids = crate::cgroups::pids(path);
    for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            pids.extend(all_pids(&e.path()));
        }
    }
    pids
}

pub fn ps(root: &Path, id: &str, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let (dir, st) = load(root, id)?;
    if st.status(&dir) == Status::Stopped {
        return Err(Error::NotRunning(id.to_string()));
    }
    let pids = match st.procs_cgroup() {
        Some(cg) => all_pids(cg),
        None => vec![st.pid],
    };
    let io = |e: std::io::Error| Error::Config(format!("ps: {e}"));
    if json {
        // runc prints a JSON array of host pids.
        writeln!(out, "{}", serde_json::to_string(&pids).unwrap_or_default()).map_err(io)?;
        return Ok(());
    }
    writeln!(out, "{:<8} {:<8} {:<5} CMD", "PID", "PPID", "STAT").map_err(io)?;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
        let mut f = after.split(' ');
        let (state, ppid) = (f.next().unwrap_or("?"), f.next().unwrap_or("?"));
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        writeln!(out, "{pid:<8} {ppid:<8} {state:<5} {cmd}").map_err(io)?;
    }
    Ok(())
}
