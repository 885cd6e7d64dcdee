//! Mount options from config.json turned into mount(2) flags, propagation
//! changes, recursive attributes (mount_setattr) and filesystem data, as runc and
//! crun read them (config.md, Mounts; config-linux.md, Mount Propagation).

use nix::mount::MsFlags;

/// mount_setattr(2) attribute bits (linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
pub const MOUNT_ATTR__ATIME: u64 = 0x0000_0070;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0000_0000;
pub const MOUNT_ATTR_NOATIME: u64 = 0x0000_0010;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x0000_0020;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x0000_0080;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// What the options of one mount ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for mount(2).
    pub flags: MsFlags,
    /// Propagation changes applied after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes to set and clear with mount_setattr(AT_RECURSIVE).
    pub rec_set: u64,
    pub rec_clear: u64,
    /// `idmap` / `ridmap`: an id-mapped mount (recursive for `ridmap`).
    pub idmap: Option<bool>,
    /// `tmpcopyup` (runc's and crun's extension, which podman writes for
    /// `--read-only`'s tmpfs mounts): the new tmpfs starts with a copy of
    /// what the directory it covers held.
    pub copy_up: bool,
    /// Options that are not flags, joined with commas, for the filesystem.
    pub data: String,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            rec_set: 0,
            rec_clear: 0,
            idmap: None,
            copy_up: false,
            data: String::new(),
        }
    }
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// Every option name this runtime understands as a flag (the `features` command lists them).
pub const KNOWN: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "unbindable",
];

/// Parses one mount's option list.
pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let opt = opt.as_str();
        if let Some((set, clear)) = flag(opt) {
            o.flags.remove(clear);
            o.flags.insert(set);
        } else if let Some(p) = propagation(opt) {
            o.propagation.push(p);
        } else if let Some((set, clear)) = recursive_attr(opt) {
            o.rec_set = (o.rec_set & !clear) | set;
            o.rec_clear = (o.rec_clear & !set) | clear;
        } else if opt == "idmap" {
            o.idmap = Some(false);
        } else if opt == "ridmap" {
            o.idmap = Some(true);
        } else if opt == "tmpcopyup" {
            o.copy_up = true;
        } else {
            data.push(opt);
        }
    }
    o.data = data.join(",");
    o
}

/// (flags to set, flags to clear) for a plain flag option.
fn flag(opt: &str) -> Option<(MsFlags, MsFlags)> {
    let e = MsFlags::empty();
    Some(match opt {
        "async" => (e, MsFlags::MS_SYNCHRONOUS),
        "atime" => (e, MsFlags::MS_NOATIME),
        "bind" => (MsFlags::MS_BIND, e),
        "defaults" => (e, e),
        "dev" => (e, MsFlags::MS_NODEV),
        "diratime" => (e, MsFlags::MS_NODIRATIME),
        "dirsync" => (MsFlags::MS_DIRSYNC, e),
        "exec" => (e, MsFlags::MS_NOEXEC),
        "iversion" => (MsFlags::MS_I_VERSION, e),
        "lazytime" => (MsFlags::MS_LAZYTIME, e),
        "loud" => (e, MsFlags::MS_SILENT),
        "mand" => (MsFlags::MS_MANDLOCK, e),
        "noatime" => (MsFlags::MS_NOATIME, e),
        "nodev" => (MsFlags::MS_NODEV, e),
        "nodiratime" => (MsFlags::MS_NODIRATIME, e),
        "noexec" => (MsFlags::MS_NOEXEC, e),
        "noiversion" => (e, MsFlags::MS_I_VERSION),
        "nolazytime" => (e, MsFlags::MS_LAZYTIME),
        "nomand" => (e, MsFlags::MS_MANDLOCK),
        "norelatime" => (e, MsFlags::MS_RELATIME),
        "nostrictatime" => (e, MsFlags::MS_STRICTATIME),
        "nosuid" => (MsFlags::MS_NOSUID, e),
        "nosymfollow" => (MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW), e),
        "symfollow" => (e, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, e),
        "relatime" => (MsFlags::MS_RELATIME, e),
        "remount" => (MsFlags::MS_REMOUNT, e),
        "ro" => (MsFlags::MS_RDONLY, e),
        "rw" => (e, MsFlags::MS_RDONLY),
        "silent" => (MsFlags::MS_SILENT, e),
        "strictatime" => (MsFlags::MS_STRICTATIME, e),
        "suid" => (e, MsFlags::MS_NOSUID),
        "sync" => (MsFlags::MS_SYNCHRONOUS, e),
        _ => return None,
    })
}

/// A propagation option's flags.
pub fn propagation(opt: &str) -> Option<MsFlags> {
    Some(match opt {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// (attributes to set, attributes to clear) for a recursive option.
fn recursive_attr(opt: &str) -> Option<(u64, u64)> {
    Some(match opt {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
        "rnorelatime" => (0, MOUNT_ATTR__ATIME),
        "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
        "ratime" => (0, MOUNT_ATTR__ATIME),
        "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
        "rnostrictatime" => (0, MOUNT_ATTR__ATIME),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> MountOptions {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(!o.is_bind());
    }

    #[test]
    fn later_option_wins() {
        let o = opts(&["ro", "rw", "nodev", "dev"]);
        assert_eq!(o.flags, MsFlags::empty());
    }

    #[test]
    fn bind_and_propagation() {
        let o = opts(&["rbind", "ro", "rslave", "private"]);
        assert!(o.is_bind());
        assert!(o.flags.contains(MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert_eq!(
            o.propagation,
            vec![MsFlags::MS_SLAVE | MsFlags::MS_REC, MsFlags::MS_PRIVATE]
        );
        assert_eq!(o.data, "");
    }

    #[test]
    fn recursive_attributes() {
        let o = opts(&["rbind", "rro", "rnosuid", "rnoatime"]);
        assert_eq!(
            o.rec_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.rec_clear, MOUNT_ATTR__ATIME);
        let o = opts(&["rro", "rrw"]);
        assert_eq!(o.rec_set, 0);
        assert_eq!(o.rec_clear, MOUNT_ATTR_RDONLY);
    }

    #[test]
    fn every_known_option_is_understood() {
        for name in KNOWN {
            let o = opts(&[name]);
            assert_eq!(o.data, "", "{name} fell through to data");
        }
    }
}
