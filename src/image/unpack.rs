//! Applying one layer (image-spec layer.md) to a rootfs being made. Every
//! path in the tar is cleaned lexically (`..` clamped at the root) and its
//! parent resolved inside the rootfs with openat2(RESOLVE_IN_ROOT), so no
//! entry, symlink from an earlier layer, hardlink or whiteout reaches outside.
//! Entries are made with the *at calls on that parent without following a
//! final symlink. Whiteouts (`.wh.NAME`, `.wh..wh..opq`) remove what lower
//! layers made.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{CString, OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use super::{Descriptor, ImageError, Verified};
use crate::rootfs::resolve::{Kind, create_in_root, open_in_root_flags};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// The entry's path, cleaned: no root, no `.`, `..` clamped at the root.
pub fn clean(p: &Path) -> PathBuf {
    let abs = crate::plan::clean_container_path(p);
    abs.strip_prefix("/").unwrap_or(&abs).to_path_buf()
}

fn err(layer: &Descriptor, path: &Path, what: &str, e: impl std::fmt::Display) -> ImageError {
    ImageError::Blob {
        digest: layer.digest.clone(),
        msg: format!("{}: {what}: {e}", path.display()),
    }
}

/// The decompressed tar stream of a layer, by media type.
fn decompress<'a>(
    layer: &Descriptor,
    r: &'a mut Verified,
) -> Result<Box<dyn Read + 'a>, ImageError> {
    let m = layer.media_type.as_str();
    Ok(match m {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Box::new(r),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            Box::new(flate2::read::GzDecoder::new(r))
        }
        "application/vnd.oci.image.layer.v1.tar+zstd" => Box::new(
            zstd::stream::read::Decoder::new(r).map_err(|e| ImageError::Blob {
                digest: layer.digest.clone(),
                msg: format!("zstd: {e}"),
            })?,
        ),
        _ => {
            return Err(ImageError::Blob {
                digest: layer.digest.clone(),
                msg: format!("unsupported layer media type {m:?}"),
            });
        }
    })
}

/// What whiteouts become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Applied: what lower layers made is removed (a flat rootfs).
    Apply,
    /// Overlay's own: a 0:0 char device, `trusted.overlay.opaque` (a layer
    /// directory used as an overlay lowerdir).
    Overlay,
}

/// What a layer has expanded to so far, against its bound: the bytes of the
/// uncompressed tar plus the holes of its sparse entries (which the tar does
/// not hold but reading them takes time).
#[derive(Clone)]
struct Budget {
    used: Rc<Cell<u64>>,
    limit: u64,
}

impl Budget {
    /// Counts `n` more bytes; false once past the bound.
    fn take(&self, n: u64) -> bool {
        let u = self.used.get().saturating_add(n);
        self.used.set(u);
        u <= self.limit
    }

    fn over(&self) -> bool {
        self.used.get() > self.limit
    }
}

/// The uncompressed stream, hashed as it is read (the layer's diff id), and
/// counted against the layer's bound: reading stops once past it.
struct DiffHash<R> {
    inner: R,
    hash: sha2::Sha256,
    budget: Budget,
}

impl<R: Read> Read for DiffHash<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hash, &buf[..n]);
        if !self.budget.take(n as u64) {
            return Err(std::io::Error::other("past the layer's size bound"));
        }
        Ok(n)
    }
}

/// Whether a block is all zeros (in 64-byte strides the compiler vectorizes,
/// stopping at the first that is not).
fn is_zero(block: &[u8]) -> bool {
    block
        .chunks(64)
        .all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
}

/// Copies `r` into the new, empty file `f`, leaving every 4 KiB block of
/// zeros as a hole: a sparse entry stays sparse, and a layer of zeros takes
/// no disk. Returns the file's length.
fn copy_sparse(r: &mut impl Read, f: &mut std::fs::File) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom, Write};
    const BLOCK: usize = 4096;
    let mut buf = vec![0u8; 32 * BLOCK];
    let mut len = 0u64;
    let mut hole = 0u64; // zeros not yet skipped over
    loop {
        // Whole buffers, so blocks stay aligned to the file's offsets.
        let mut n = 0;
        while n < buf.len() {
            match r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if n == 0 {
            break;
        }
        len += n as u64;
        for block in buf[..n].chunks(BLOCK) {
            if is_zero(block) {
                hole += block.len() as u64;
                continue;
            }
            if hole > 0 {
                f.seek(SeekFrom::Current(hole as i64))?;
                hole = 0;
            }
            f.write_all(block)?;
        }
        if n < buf.len() {
            break;
        }
    }
    if hole > 0 {
        f.set_len(len)?;
    }
    Ok(len)
}

/// Applies the layer to `rootfs`; returns the blob reader, so the caller can
/// check its digest once the whole stream is read, and the diff id
/// (`sha256:` of the uncompressed tar). A layer that expands past `limit`
/// bytes is refused as soon as it does.
pub fn apply_layer(
    rootfs: &Path,
    layer: &Descriptor,
    mut blob: Verified,
    whiteouts: Whiteouts,
    limit: u64,
) -> Result<(Verified, String), ImageError> {
    let budget = Budget {
        used: Rc::new(Cell::new(0)),
        limit,
    };
    let r = apply(rootfs, layer, &mut blob, whiteouts, budget.clone());
    if budget.over() {
        return Err(ImageError::Blob {
            digest: layer.digest.clone(),
            msg: format!(
                "expands to more than --max-layer-size {} (raise it for an image you trust)",
                super::show_size(limit)
            ),
        });
    }
    Ok((blob, r?))
}

fn apply(
    rootfs: &Path,
    layer: &Descriptor,
    blob: &mut Verified,
    whiteouts: Whiteouts,
    budget: Budget,
) -> Result<String, ImageError> {
    let root = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(layer, rootfs, "open", e))?;
    let diff;
    {
        let stream = DiffHash {
            inner: decompress(layer, blob)?,
            hash: <sha2::Sha256 as sha2::Digest>::new(),
            budget: budget.clone(),
        };
        let mut archive = tar::Archive::new(stream);
        let mut made: HashSet<PathBuf> = HashSet::new();
        let mut dirs: Vec<(PathBuf, u64)> = Vec::new();
        let entries = archive
            .entries()
            .map_err(|e| err(layer, Path::new(""), "read", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| err(layer, Path::new(""), "read", e))?;
            let raw = entry
                .path()
                .map_err(|e| err(layer, Path::new(""), "entry path", e))?
                .into_owned();
            let path = clean(&raw);
            let Some(name) = path.file_name().map(OsStr::to_os_string) else {
                continue; // the root itself
            };
            let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
            let n = name.as_bytes();
            if n == OPAQUE.as_bytes() {
                let dir = create_in_root(&root, &parent, Kind::Dir)
                    .map_err(|e| err(layer, &path, "opaque directory", e))?;
                match whiteouts {
                    Whiteouts::Apply => clear_dir(&dir, &parent, &made),
                    Whiteouts::Overlay => mark_opaque(&dir),
                }
                .map_err(|e| err(layer, &path, "opaque", e))?;
                continue;
            }
            if let Some(target) = n.strip_prefix(WHITEOUT.as_bytes()) {
                let target = OsStr::from_bytes(target);
                let victim = parent.join(target);
                // `.wh.` names are single components; anything else is refused.
                if target.is_empty() || clean(Path::new(target)) != Path::new(target) {
                    return Err(err(layer, &raw, "whiteout", "not a plain name"));
                }
                if whiteouts == Whiteouts::Overlay {
                    let dir = create_in_root(&root, &parent, Kind::Dir)
                        .map_err(|e| err(layer, &path, "parent directory", e))?;
                    remove(&dir, target).map_err(|e| err(layer, &victim, "whiteout", e))?;
                    nix::sys::stat::mknodat(
                        &dir,
                        target,
                        nix::sys::stat::SFlag::S_IFCHR,
                        Mode::empty(),
                        0,
                    )
                    .map_err(|e| err(layer, &victim, "whiteout", e))?;
                    continue;
                }
                if !made.contains(&victim)
                    && let Ok(dir) =
                        open_in_root_flags(&root, &parent, OFlag::O_PATH | OFlag::O_DIRECTORY)
                {
                    remove(&dir, target).map_err(|e| err(layer, &victim, "whiteout", e))?;
                }
                continue;
            }
            let dir = create_in_root(&root, &parent, Kind::Dir)
                .map_err(|e| err(layer, &path, "parent directory", e))?;
            let h = entry.header().clone();
            let mode = h.mode().unwrap_or(0o644) & 0o7777;
            let uid = h.uid().unwrap_or(0) as u32;
            let gid = h.gid().unwrap_or(0) as u32;
            let mtime = h.mtime().unwrap_or(0);
            let kind = h.entry_type();
            let cname = CString::new(name.as_bytes()).map_err(|e| err(layer, &path, "name", e))?;
            use tar::EntryType as T;
            match kind {
                T::Directory => {
                    make_dir(&dir, &name).map_err(|e| err(layer, &path, "mkdir", e))?;
                    dirs.push((path.clone(), mtime));
                }
                T::Regular | T::Continuous | T::GNUSparse => {
                    // A sparse entry's holes count before any is read.
                    let holes = entry.size().saturating_sub(h.entry_size().unwrap_or(0));
                    if !budget.take(holes) {
                        return Err(err(layer, &path, "sparse file", "too large"));
                    }
                    remove(&dir, &name).map_err(|e| err(layer, &path, "replace", e))?;
                    let fd = nix::fcntl::openat(
                        &dir,
                        cname.as_c_str(),
                        OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_WRONLY
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o600),
                    )
                    .map_err(|e| err(layer, &path, "create", e))?;
                    let mut f = std::fs::File::from(fd);
                    copy_sparse(&mut entry, &mut f).map_err(|e| err(layer, &path, "write", e))?;
                    // Owner first: chown clears the setuid and setgid bits.
                    nix::unistd::fchown(&f, Some(uid.into()), Some(gid.into()))
                        .map_err(|e| err(layer, &path, "chown", e))?;
                    nix::sys::stat::fchmod(&f, Mode::from_bits_truncate(mode))
                        .map_err(|e| err(layer, &path, "chmod", e))?;
                    set_xattrs(&f, &mut entry).map_err(|e| err(layer, &path, "xattr", e))?;
                    let t = nix::sys::time::TimeSpec::new(mtime as i64, 0);
                    nix::sys::stat::futimens(&f, &t, &t)
                        .map_err(|e| err(layer, &path, "mtime", e))?;
                }
                T::Symlink => {
                    let target = h
                        .link_name()
                        .map_err(|e| err(layer, &path, "link target", e))?
                        .ok_or_else(|| err(layer, &path, "symlink", "no target"))?;
                    remove(&dir, &name).map_err(|e| err(layer, &path, "replace", e))?;
                    nix::unistd::symlinkat(target.as_os_str(), &dir, cname.as_c_str())
                        .map_err(|e| err(layer, &path, "symlink", e))?;
                    chown_nofollow(&dir, &cname, uid, gid)
                        .map_err(|e| err(layer, &path, "chown", e))?;
                }
                T::Link => {
                    let target = h
                        .link_name()
                        .map_err(|e| err(layer, &path, "link target", e))?
                        .ok_or_else(|| err(layer, &path, "hardlink", "no target"))?;
                    let target = clean(&target);
                    // The target, inside the rootfs, not following a final symlink.
                    let src = open_in_root_flags(&root, &target, OFlag::O_PATH | OFlag::O_NOFOLLOW)
                        .map_err(|e| {
                            err(
                                layer,
                                &path,
                                &format!("hardlink to {}", target.display()),
                                e,
                            )
                        })?;
                    remove(&dir, &name).map_err(|e| err(layer, &path, "replace", e))?;
                    nix::unistd::linkat(&src, c"", &dir, cname.as_c_str(), AtFlags::AT_EMPTY_PATH)
                        .map_err(|e| err(layer, &path, "hardlink", e))?;
                }
                T::Char | T::Block | T::Fifo => {
                    let kind_bits = match kind {
                        T::Char => libc::S_IFCHR,
                        T::Block => libc::S_IFBLK,
                        _ => libc::S_IFIFO,
                    };
                    let dev = libc::makedev(
                        h.device_major().ok().flatten().unwrap_or(0),
                        h.device_minor().ok().flatten().unwrap_or(0),
                    );
                    remove(&dir, &name).map_err(|e| err(layer, &path, "replace", e))?;
                    // SAFETY: mknodat with a directory fd and a C name.
                    let r = unsafe {
                        libc::mknodat(dir.as_raw_fd(), cname.as_ptr(), kind_bits | mode, dev)
                    };
                    if r != 0 {
                        return Err(err(layer, &path, "mknod", Errno::last()));
                    }
                    chown_nofollow(&dir, &cname, uid, gid)
                        .map_err(|e| err(layer, &path, "chown", e))?;
                }
                // pax and GNU headers are consumed by the tar crate; anything
                // else is not a file.
                other => {
                    return Err(err(
                        layer,
                        &path,
                        "entry type",
                        format!("{other:?} unsupported"),
                    ));
                }
            }
            made.insert(path.clone());
            if kind == T::Directory {
                let fd = open_in_root_flags(
                    &root,
                    &path,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                )
                .map_err(|e| err(layer, &path, "open directory", e))?;
                nix::unistd::fchown(&fd, Some(uid.into()), Some(gid.into()))
                    .map_err(|e| err(layer, &path, "chown", e))?;
                nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))
                    .map_err(|e| err(layer, &path, "chmod", e))?;
                set_xattrs(&fd, &mut entry).map_err(|e| err(layer, &path, "xattr", e))?;
            }
        }
        // The rest of the stream (tar's end blocks), so the diff id covers it all.
        let mut stream = archive.into_inner();
        std::io::copy(&mut stream, &mut std::io::sink())
            .map_err(|e| err(layer, Path::new(""), "read", e))?;
        let hex: String = sha2::Digest::finalize(stream.hash)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        diff = format!("sha256:{hex}");
        // Directory times last: making their entries changed them.
        for (path, mtime) in dirs.iter().rev() {
            if let Ok(fd) = open_in_root_flags(
                &root,
                path,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
            ) {
                let t = nix::sys::time::TimeSpec::new(*mtime as i64, 0);
                let _ = nix::sys::stat::futimens(&fd, &t, &t);
            }
        }
    }
    Ok(diff)
}

/// A readable descriptor of the directory `dir` refers to (an O_PATH one
/// cannot list or take xattrs).
fn readable(dir: &OwnedFd) -> Result<OwnedFd, Errno> {
    nix::fcntl::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Marks a layer directory opaque for overlayfs.
fn mark_opaque(dir: &OwnedFd) -> Result<(), Errno> {
    let fd = readable(dir)?;
    // SAFETY: fsetxattr with a C name and a one-byte value.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    if r != 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Owner of `name` in `dir`, not following a symlink.
fn chown_nofollow(dir: &OwnedFd, name: &CString, uid: u32, gid: u32) -> Result<(), Errno> {
    nix::unistd::fchownat(
        dir,
        name.as_c_str(),
        Some(uid.into()),
        Some(gid.into()),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

/// Makes a directory, replacing a non-directory of that name.
fn make_dir(dir: &OwnedFd, name: &OsStr) -> Result<(), Errno> {
    match nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o755)) {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) => {
            let st = nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                return Ok(());
            }
            nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir)?;
            nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o755))
        }
        Err(e) => Err(e),
    }
}

/// Removes `name` in `dir`, recursively, never following symlinks.
pub(crate) fn remove(dir: &OwnedFd, name: &OsStr) -> Result<(), Errno> {
    let st = match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => return Ok(()),
        r => r?,
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let sub = nix::fcntl::openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        clear_dir(&sub, Path::new(""), &HashSet::new())?;
        nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::RemoveDir)
    } else {
        nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
    }
}

/// Removes the children of `dir` (at `path` in the rootfs) that this layer
/// did not make.
fn clear_dir(dir: &OwnedFd, path: &Path, made: &HashSet<PathBuf>) -> Result<(), Errno> {
    let fd = readable(dir)?;
    let names: Vec<OsString> = nix::dir::Dir::from_fd(fd)?
        .iter()
        .flatten()
        .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
        .filter(|n| n != "." && n != "..")
        .collect();
    let me = nix::fcntl::openat(
        dir,
        ".",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    for n in names {
        if made.contains(&path.join(&n)) {
            continue;
        }
        remove(&me, &n)?;
    }
    Ok(())
}

/// Sets the entry's xattrs (pax SCHILY.xattr.*), `security.capability` included.
fn set_xattrs<R: Read>(fd: &impl AsFd, entry: &mut tar::Entry<'_, R>) -> Result<(), Errno> {
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return Ok(());
    };
    for ext in exts.flatten() {
        let Some(key) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
            continue;
        };
        let key = CString::new(key).map_err(|_| Errno::EINVAL)?;
        let value = ext.value_bytes();
        // SAFETY: fsetxattr reads `value.len()` bytes and a C name.
        let r = unsafe {
            libc::fsetxattr(
                fd.as_fd().as_raw_fd(),
                key.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if r != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_blocks_become_holes_and_data_is_kept() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("husk-sparse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Data, 1 MiB of zeros, data that is not block-aligned, zeros at the end.
        let mut data = vec![1u8; 5000];
        data.extend(vec![0u8; 1 << 20]);
        data.extend(b"tail");
        data.extend(vec![0u8; 300_000]);
        let path = dir.join("f");
        let mut f = std::fs::File::create(&path).unwrap();
        let n = copy_sparse(&mut &data[..], &mut f).unwrap();
        drop(f);
        assert_eq!(n, data.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        let on_disk = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(on_disk < 64 << 10, "{on_disk} bytes on disk");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paths_are_cleaned_and_clamped() {
        assert_eq!(clean(Path::new("/etc/passwd")), Path::new("etc/passwd"));
        assert_eq!(clean(Path::new("../../x")), Path::new("x"));
        assert_eq!(clean(Path::new("./a/../../b/./c")), Path::new("b/c"));
        assert_eq!(clean(Path::new("./")), Path::new(""));
    }
}
