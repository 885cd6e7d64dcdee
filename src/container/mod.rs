//! The container lifecycle (runtime.md, Operations): one file per operation.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod kill;
pub mod list;
pub mod making;
pub mod pause;
pub mod ps;
pub mod run;
pub mod start;
pub mod state;
pub mod update;

use std::path::Path;

pub use state::{ContainerDir, State, StateError, Status};

/// Errors of lifecycle operations. Messages keep runc's wording where engines
/// match on it ("container does not exist", "container not running").
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error("invalid config: {0}")]
    Plan(#[from] crate::plan::PlanError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    SelfExe(#[from] crate::process::selfexe::SelfExeError),
    #[error("{0}")]
    Config(String),
    #[error("{0}: {1}")]
    Os(String, nix::errno::Errno),
    #[error("unable to start container process: {0}")]
    Init(String),
    #[error("container not running: {0:?}")]
    NotRunning(String),
    #[error("cannot start a container that has stopped: {0:?}")]
    StartStopped(String),
    #[error("cannot start an already {status} container: {id:?}")]
    StartNotCreated { id: String, status: Status },
    #[error("cannot delete container {id:?} that is not stopped: {status}")]
    DeleteNotStopped { id: String, status: Status },
}

/// Loads a container's directory and state.
pub fn load(root: &Path, id: &str) -> Result<(ContainerDir, State), Error> {
    let dir = ContainerDir::new(root, id)?;
    let st = dir.load()?;
    Ok((dir, st))
}

/// The OCI state as `state` prints it (runc's fields and names).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateOutput<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub annotations: &'a std::collections::HashMap<String, String>,
    pub owner: String,
}

impl<'a> StateOutput<'a> {
    pub fn new(dir: &ContainerDir, st: &'a State) -> StateOutput<'a> {
        let status = st.status(dir);
        StateOutput {
            oci_version: &st.oci_version,
            id: &st.id,
            // A stopped container has no process: runc reports 0, not a stale pid.
            pid: if status == Status::Stopped { 0 } else { st.pid },
            status,
            bundle: &st.bundle,
            rootfs: &st.rootfs,
            created: &st.created,
            annotations: &st.annotations,
            owner: dir.owner(),
        }
    }
}
