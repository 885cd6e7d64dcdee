//! Files husk writes where others may write too: a pid file's directory, a
//! bundle directory, husk-image's store. Nothing is made at a name another
//! user could have guessed beforehand, and nothing planted there is followed.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A hidden temporary name for `what`, with 64 random bits in it.
fn temp_name(what: &str) -> std::io::Result<String> {
    let mut rnd = [0u8; 8];
    // SAFETY: getrandom writes at most the buffer's length.
    if unsafe { libc::getrandom(rnd.as_mut_ptr().cast(), rnd.len(), 0) } != rnd.len() as isize {
        return Err(std::io::Error::last_os_error());
    }
    Ok(format!(".{what}.{:016x}", u64::from_ne_bytes(rnd)))
}

/// Makes a new directory for `what` in `beside`, at an unpredictable name,
/// with `mode` (less the umask). mkdir never follows a link at the name, and
/// fails if anything is already there.
pub fn temp_dir(beside: &Path, what: &str, mode: u32) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let p = beside.join(temp_name(what)?);
    std::fs::DirBuilder::new().mode(mode).create(&p)?;
    Ok(p)
}

/// Writes a file by writing a temporary one beside it and renaming it over.
/// The directory may be writable by others (a pid file's often is): the
/// temporary file has an unpredictable name and is made through the
/// directory's descriptor with O_EXCL|O_NOFOLLOW, so no name planted there
/// is followed; the rename replaces a planted link instead of following it.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use nix::fcntl::{OFlag, openat, renameat};
    use nix::sys::stat::Mode;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EISDIR))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = nix::fcntl::open(
        parent,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let tmp = temp_name(&name.to_string_lossy())?;
    let fd = openat(
        &dir,
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )?;
    let mut f = File::from(fd);
    let res = f
        .write_all(data)
        .and_then(|_| Ok(renameat(&dir, tmp.as_str(), &dir, name)?));
    if res.is_err() {
        let _ = nix::unistd::unlinkat(&dir, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
    res
}
