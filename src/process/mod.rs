//! Processes: creating the container process, its namespaces' id maps, the sync
//! channel with its parent, and the last steps before exec.

pub mod clone;
pub mod exec;
pub mod idmap;
pub mod selfexe;
pub mod sync;
