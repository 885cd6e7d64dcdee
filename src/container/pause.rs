//! `pause` and `resume`: freeze and thaw every process of the container
//! through `cgroup.freeze`, waiting until `cgroup.events` confirms.

use std::path::Path;

use super::{Error, Status, load};

pub fn pause(root: &Path, id: &str) -> Result<(), Error> {
    let (dir, st) = load(root, id)?;
    let _lock = dir.lock()?;
    match st.status(&dir) {
        Status::Running | Status::Created => {}
        Status::Paused => return Err(Error::Config(format!("container {id:?} is already paused"))),
        _ => return Err(Error::NotRunning(id.to_string())),
    }
    let cg = st
        .cgroup
        .as_ref()
        .ok_or_else(|| Error::Config(format!("container {id:?} has no cgroup to freeze")))?;
    crate::cgroups::freeze(cg, true)?;
    Ok(())
}

pub fn resume(root: &Path, id: &str) -> Result<(), Error> {
    let (dir, st) = load(root, id)?;
    let _lock = dir.lock()?;
    if st.status(&dir) != Status::Paused {
        return Err(Error::Config(format!("container {id:?} is not paused")));
    }
    let cg = st
        .cgroup
        .as_ref()
        .ok_or_else(|| Error::Config(format!("container {id:?} has no cgroup")))?;
    crate::cgroups::freeze(cg, false)?;
    Ok(())
}
