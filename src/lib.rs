//! husk: a small, fast OCI container runtime, driven like runc.
//!
//! Data flows one way: the CLI loads the bundle ([`bundle`]), computes a
//! [`plan::Plan`] in the parent, clones the init ([`process`]), which runs the
//! steps in [`init`] inside the new namespaces and execs the user process.

pub mod bundle;
pub mod cgroups;
pub mod cli;
pub mod console;
pub mod container;
pub mod files;
pub mod hooks;
pub mod image;
pub mod init;
pub mod log;
pub mod lsm;
pub mod netns;
pub mod plan;
pub mod process;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod spec;
