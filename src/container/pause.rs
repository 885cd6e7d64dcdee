//! `pause` and `resume`: freeze and thaw every process of the container
//! through `cgroup.freeze` (or, without a unified hierarchy, the v1
//! freezer), waiting until the kernel confirms.

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
    if st.procs_cgroup().is_none() {
        return Err(Error::Config(format!(
            "container {id:?} has no cgroup to freeze"
        )));
    }
    st.freeze(true)?;
    Ok(())
}

pub fn resume(root: &Path, id: &str) -> Result<(), Error> {
    let (dir, st) = load(root, id)?;
    let _lock = dir.lock()?;
    if st.status(&dir) != Status::Paused {
        return Err(Error::Config(format!("container {id:?} is not paused")));
    }
    st.freeze(false)?;
    Ok(())
}
