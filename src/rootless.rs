//! Rootless mode, as runc and crun detect it: husk runs as an unprivileged
//! user, or as root inside a user namespace that does not map every id (under
//! rootless podman). Then husk cannot make cgroups outside a subtree delegated
//! to it, write id maps other than its own id (newuidmap/newgidmap do that),
//! make device nodes, or mount a cgroup hierarchy; each step that differs asks
//! [`Caller`].

use std::path::PathBuf;

/// Who runs husk: its effective ids and the user namespace it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub euid: u32,
    pub egid: u32,
    /// The user namespace maps every uid (the initial one, or one made to
    /// look like it): `/proc/self/uid_map` is `0 0 4294967295`.
    pub all_ids_mapped: bool,
}

/// Root of every id: what a plan assumes unless told otherwise.
impl Default for Caller {
    fn default() -> Caller {
        Caller {
            euid: 0,
            egid: 0,
            all_ids_mapped: true,
        }
    }
}

impl Caller {
    /// This process.
    pub fn current() -> Caller {
        let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        Caller {
            euid: nix::unistd::geteuid().as_raw(),
            egid: nix::unistd::getegid().as_raw(),
            all_ids_mapped: maps_all_ids(&map),
        }
    }

    /// Not root of the whole id space: the cases runc and crun call rootless.
    pub fn rootless(&self) -> bool {
        self.euid != 0 || !self.all_ids_mapped
    }
}

/// Whether a uid_map's text maps the whole 32-bit id space onto itself.
pub fn maps_all_ids(uid_map: &str) -> bool {
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// The state directory when `--root` is not given: `/run/husk` for root, and
/// `$XDG_RUNTIME_DIR/husk` for a rootless caller, since `/run` is not theirs to
/// write. runc's rule (`shouldHonorXDGRuntimeDir`): an unprivileged user, or
/// root of a partial user namespace (rootless podman, `podman unshare`)
/// unless `$USER` is `root`.
pub fn default_root(
    caller: &Caller,
    xdg_runtime_dir: Option<&std::ffi::OsStr>,
    user: Option<&std::ffi::OsStr>,
) -> PathBuf {
    let honor = caller.euid != 0 || (!caller.all_ids_mapped && user.is_none_or(|u| u != "root"));
    match xdg_runtime_dir.filter(|d| !d.is_empty() && honor) {
        Some(dir) => PathBuf::from(dir).join("husk"),
        None => PathBuf::from("/run/husk"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_namespace_maps_every_id() {
        assert!(maps_all_ids("         0          0 4294967295\n"));
        assert!(!maps_all_ids("         0       1000          1\n"));
        assert!(!maps_all_ids(
            "0 1000 1\n1 100000 65536\n" // podman's rootless namespace
        ));
        assert!(!maps_all_ids(""));
    }

    #[test]
    fn rootless_is_an_unprivileged_user_or_root_of_a_partial_namespace() {
        let root = Caller {
            euid: 0,
            egid: 0,
            all_ids_mapped: true,
        };
        assert!(!root.rootless());
        assert!(
            Caller {
                euid: 1000,
                egid: 1000,
                ..root
            }
            .rootless()
        );
        assert!(
            Caller {
                all_ids_mapped: false,
                ..root
            }
            .rootless()
        );
    }

    #[test]
    fn the_default_root_follows_runc() {
        let user = Caller {
            euid: 1000,
            egid: 1000,
            all_ids_mapped: true,
        };
        let xdg = Some(std::ffi::OsStr::new("/run/user/1000"));
        let name = |n| Some(std::ffi::OsStr::new(n));
        let under = PathBuf::from("/run/user/1000/husk");
        let run = PathBuf::from("/run/husk");
        assert_eq!(default_root(&user, xdg, name("alice")), under);
        assert_eq!(default_root(&user, None, name("alice")), run);
        let root = Caller { euid: 0, ..user };
        assert_eq!(default_root(&root, xdg, name("root")), run);
        // root of rootless podman's namespace, as the user who ran podman.
        let podman = Caller {
            euid: 0,
            egid: 0,
            all_ids_mapped: false,
        };
        assert_eq!(default_root(&podman, xdg, name("alice")), under);
        assert_eq!(default_root(&podman, xdg, None), under);
        assert_eq!(default_root(&podman, xdg, name("root")), run);
    }
}
