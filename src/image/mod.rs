//! OCI images to bundles (`husk-image`). An image is read from an OCI layout
//! directory or an OCI archive (image-spec image-layout.md); every blob is
//! checked against its descriptor's digest and size before it is used; the
//! layers are applied in order into a new rootfs, and config.json is made
//! from the image config (image-spec conversion.md). Image content is
//! untrusted: nothing it names can reach outside the rootfs being made.

pub mod config;
pub mod docker;
pub mod store;
pub mod unpack;

use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use serde_json::Value;
use sha2::Digest;

/// An error, naming the image part (blob digest, file, field) involved.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    Source(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("blob {digest}: {msg}")]
    Blob { digest: String, msg: String },
    #[error("{0}")]
    Bad(String),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Io { what, source }
}

/// Opens `rel` beneath `base` as image content is read: no symlink on the
/// way (a layout or an unpacked archive is image content, and a link there
/// could name a host file or a device), and only a regular file, so a read
/// is bounded by its size and never hangs on a device or fifo.
pub(crate) fn open_member(base: &Path, rel: &Path) -> std::io::Result<fs::File> {
    use nix::fcntl::{OpenHow, ResolveFlag};
    let dir = nix::fcntl::open(
        base,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    let fd = loop {
        match nix::fcntl::openat2(&dir, rel, how) {
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ELOOP | nix::errno::Errno::EXDEV) => {
                return Err(std::io::Error::other(
                    "a symlink (image content is read from regular files only)",
                ));
            }
            r => break r?,
        }
    };
    let st = nix::sys::stat::fstat(&fd)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(std::io::Error::other(
            "not a regular file (image content is read from regular files only)",
        ));
    }
    Ok(fs::File::from(fd))
}

/// Reads a small file of image content (a manifest, an index), at most `max` bytes.
pub(crate) fn read_member(base: &Path, rel: &Path, max: u64) -> Result<Vec<u8>, ImageError> {
    let what = || base.join(rel).display().to_string();
    let f = open_member(base, rel).map_err(io(what()))?;
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf).map_err(io(what()))?;
    if buf.len() as u64 > max {
        return Err(ImageError::Bad(format!("{}: over {max} bytes", what())));
    }
    Ok(buf)
}

/// The most a JSON file of an image (index, manifest, config) may hold.
const MAX_JSON: u64 = 16 << 20;

/// Where the image comes from, in skopeo's transport syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `oci:DIR[:REF]`
    Layout {
        dir: PathBuf,
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`
    Archive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// `docker-archive:FILE[:REF]` (`docker save`, `podman save`)
    Docker {
        file: PathBuf,
        reference: Option<String>,
    },
}

impl Source {
    pub fn parse(s: &str) -> Result<Source, ImageError> {
        let (transport, rest) = s.split_once(':').ok_or_else(|| {
            ImageError::Source(format!(
                "{s:?}: expected oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF]"
            ))
        })?;
        let (path, reference) = match rest.split_once(':') {
            Some((p, r)) if !r.is_empty() => (p, Some(r.to_string())),
            Some((p, _)) => (p, None),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(ImageError::Source(format!("{s:?}: no path")));
        }
        match transport {
            "oci" => Ok(Source::Layout {
                dir: path.into(),
                reference,
            }),
            "oci-archive" => Ok(Source::Archive {
                file: path.into(),
                reference,
            }),
            "docker-archive" => Ok(Source::Docker {
                file: path.into(),
                reference,
            }),
            t => Err(ImageError::Source(format!(
                "{s:?}: unknown transport {t:?} (oci, oci-archive, docker-archive)"
            ))),
        }
    }
}

/// A content descriptor (image-spec descriptor.md), the parts used here.
#[derive(Debug, Clone)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub annotations: serde_json::Map<String, Value>,
    pub platform: Option<(String, String)>,
}

impl Descriptor {
    fn from_json(v: &Value, field: &str) -> Result<Descriptor, ImageError> {
        let bad = |m: &str| ImageError::Bad(format!("{field}: {m}"));
        Ok(Descriptor {
            media_type: v["mediaType"].as_str().unwrap_or_default().to_string(),
            digest: v["digest"]
                .as_str()
                .ok_or_else(|| bad("digest missing"))?
                .to_string(),
            size: v["size"].as_u64().ok_or_else(|| bad("size missing"))?,
            annotations: v["annotations"].as_object().cloned().unwrap_or_default(),
            platform: v["platform"].as_object().map(|p| {
                (
                    p.get("os")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    p.get("architecture")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                )
            }),
        })
    }
}

/// A hash being computed over what is read through it.
pub(crate) enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn for_digest(digest: &str) -> Result<(Hasher, String), ImageError> {
        let bad = |m: &str| ImageError::Blob {
            digest: digest.to_string(),
            msg: m.to_string(),
        };
        let (alg, hex) = digest.split_once(':').ok_or_else(|| bad("not ALG:HEX"))?;
        let (h, len) = match alg {
            "sha256" => (Hasher::Sha256(sha2::Sha256::new()), 64),
            "sha512" => (Hasher::Sha512(sha2::Sha512::new()), 128),
            a => return Err(bad(&format!("unsupported digest algorithm {a:?}"))),
        };
        if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("malformed digest"));
        }
        Ok((h, hex.to_string()))
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }

    fn hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Reads a blob while hashing it; [`Verified::finish`] checks digest and size.
pub struct Verified {
    file: fs::File,
    hasher: Hasher,
    want: String,
    desc: Descriptor,
    read: u64,
    /// A label to show progress under, on a terminal; and when it was last shown.
    progress: Option<(String, u64)>,
}

impl Read for Verified {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Never more than the descriptor says: a longer blob is wrong anyway.
        let left = self.desc.size.saturating_sub(self.read);
        let cap = buf.len().min(left.min(usize::MAX as u64) as usize);
        if cap == 0 {
            return Ok(0);
        }
        let n = self.file.read(&mut buf[..cap])?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if let Some((label, shown)) = &mut self.progress
            && (self.read - *shown >= 1 << 20 || self.read == self.desc.size)
        {
            *shown = self.read;
            eprint!(
                "\r{label}: {:.1} of {:.1} MB",
                self.read as f64 / 1e6,
                self.desc.size as f64 / 1e6
            );
        }
        Ok(n)
    }
}

impl Verified {
    /// Opens the blob at `rel` beneath `base` (see [`open_member`]), to be
    /// checked against `desc`.
    pub fn open(base: &Path, rel: &Path, desc: &Descriptor) -> Result<Verified, ImageError> {
        let (hasher, want) = Hasher::for_digest(&desc.digest)?;
        let file = open_member(base, rel).map_err(|e| ImageError::Blob {
            digest: desc.digest.clone(),
            msg: format!("{}: {e}", base.join(rel).display()),
        })?;
        Ok(Verified {
            file,
            hasher,
            want,
            desc: desc.clone(),
            read: 0,
            progress: None,
        })
    }

    /// Shows bytes read of the blob's size on stderr as it is read, when
    /// stderr is a terminal.
    pub fn show_progress(mut self, label: String) -> Verified {
        if nix::unistd::isatty(std::io::stderr()).unwrap_or(false) {
            self.progress = Some((label, 0));
        }
        self
    }

    /// Reads what is left, then checks size and digest.
    pub fn finish(mut self) -> Result<(), ImageError> {
        std::io::copy(&mut self, &mut std::io::sink()).map_err(io(&self.desc.digest))?;
        if self.progress.is_some() {
            eprintln!();
        }
        let mut extra = [0u8; 1];
        let longer = self.file.read(&mut extra).map(|n| n > 0).unwrap_or(false);
        if self.read != self.desc.size || longer {
            return Err(ImageError::Blob {
                digest: self.desc.digest.clone(),
                msg: format!("size differs from the descriptor's {}", self.desc.size),
            });
        }
        let got = self.hasher.hex();
        if got != self.want {
            return Err(ImageError::Blob {
                digest: self.desc.digest.clone(),
                msg: format!("content does not match its digest (it hashes to {got})"),
            });
        }
        Ok(())
    }
}

/// An OCI image layout on disk.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    /// Where a blob lives in the layout, relative to it.
    pub fn path(&self, desc: &Descriptor) -> Result<PathBuf, ImageError> {
        let (_, hex) = Hasher::for_digest(&desc.digest)?;
        let (alg, _) = desc.digest.split_once(':').unwrap_or_default();
        Ok(Path::new("blobs").join(alg).join(hex))
    }

    /// A small JSON blob, verified.
    pub fn json(&self, desc: &Descriptor) -> Result<Value, ImageError> {
        if desc.size > MAX_JSON {
            return Err(ImageError::Blob {
                digest: desc.digest.clone(),
                msg: "a JSON blob over 16 MiB".into(),
            });
        }
        let mut r = Verified::open(&self.dir, &self.path(desc)?, desc)?;
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).map_err(io(&desc.digest))?;
        r.finish()?;
        serde_json::from_slice(&buf).map_err(|e| ImageError::Blob {
            digest: desc.digest.clone(),
            msg: format!("not JSON: {e}"),
        })
    }

    /// The manifest for `reference` (a ref name or a digest; the only image
    /// when none), for `platform` (os, architecture) when an index is met.
    pub fn manifest(
        &self,
        reference: Option<&str>,
        platform: (&str, &str),
    ) -> Result<(Descriptor, Value), ImageError> {
        let path = self.dir.join("index.json");
        let text = read_member(&self.dir, Path::new("index.json"), MAX_JSON)?;
        let index: Value = serde_json::from_slice(&text)
            .map_err(|e| ImageError::Bad(format!("{}: {e}", path.display())))?;
        let layout = self.dir.join("oci-layout");
        if !layout.exists() {
            return Err(ImageError::Bad(format!(
                "{}: missing: not an OCI image layout",
                layout.display()
            )));
        }
        let descs = descriptors(&index, "index.json")?;
        let chosen: Vec<&Descriptor> = match reference {
            Some(r) if r.contains(':') && r.len() > 70 => {
                descs.iter().filter(|d| d.digest == r).collect()
            }
            Some(r) => descs
                .iter()
                .filter(|d| {
                    d.annotations
                        .get("org.opencontainers.image.ref.name")
                        .and_then(Value::as_str)
                        == Some(r)
                })
                .collect(),
            None => descs.iter().collect(),
        };
        let desc = match chosen.as_slice() {
            [d] => (*d).clone(),
            [] => {
                return Err(ImageError::Source(format!(
                    "{}: no image {}",
                    self.dir.display(),
                    reference
                        .map(|r| format!("named {r:?}"))
                        .unwrap_or_default()
                )));
            }
            _ => {
                return Err(ImageError::Source(format!(
                    "{}: {} images; name one (oci:DIR:REF)",
                    self.dir.display(),
                    chosen.len()
                )));
            }
        };
        self.resolve(desc, platform, 0)
    }

    fn resolve(
        &self,
        desc: Descriptor,
        platform: (&str, &str),
        depth: u32,
    ) -> Result<(Descriptor, Value), ImageError> {
        const INDEX: &str = "application/vnd.oci.image.index.v1+json";
        const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
        if depth > 4 {
            return Err(ImageError::Bad("indexes nested too deep".into()));
        }
        let v = self.json(&desc)?;
        let media = if desc.media_type.is_empty() {
            v["mediaType"].as_str().unwrap_or_default().to_string()
        } else {
            desc.media_type.clone()
        };
        match media.as_str() {
            MANIFEST => Ok((desc, v)),
            INDEX => {
                let descs = descriptors(&v, &desc.digest)?;
                let d = descs
                    .into_iter()
                    .find(|d| {
                        d.platform
                            .as_ref()
                            .is_some_and(|(os, arch)| os == platform.0 && arch == platform.1)
                    })
                    .ok_or_else(|| {
                        ImageError::Source(format!(
                            "index {}: no manifest for {}/{}",
                            desc.digest, platform.0, platform.1
                        ))
                    })?;
                self.resolve(d, platform, depth + 1)
            }
            m => Err(ImageError::Blob {
                digest: desc.digest,
                msg: format!("unknown media type {m:?} for a manifest"),
            }),
        }
    }
}

fn descriptors(v: &Value, field: &str) -> Result<Vec<Descriptor>, ImageError> {
    v["manifests"]
        .as_array()
        .ok_or_else(|| ImageError::Bad(format!("{field}: no manifests")))?
        .iter()
        .enumerate()
        .map(|(i, d)| Descriptor::from_json(d, &format!("{field}: manifests[{i}]")))
        .collect()
}

/// The host's platform in OCI terms.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    ("linux", arch)
}

/// What `husk-image unpack` was asked for.
pub struct UnpackArgs<'a> {
    pub source: &'a Source,
    pub bundle: &'a Path,
    pub platform: (&'a str, &'a str),
    pub entrypoint: Option<Vec<String>>,
    pub args: Vec<String>,
    /// No progress output even on a terminal.
    pub quiet: bool,
    /// A network namespace for the container to join (e.g. one husk-net
    /// attached), instead of a new empty one.
    pub netns: Option<&'a Path>,
    /// The most one layer may expand to, in bytes (u64::MAX: no bound).
    pub max_layer_size: u64,
}

/// Reads a size as `--max-layer-size` takes it: bytes, or a number with
/// K, M, G or T (powers of 1024, an optional `iB` or `B` after); 0 is no bound.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return None,
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    match n.checked_mul(1u64 << shift)? {
        0 => Some(u64::MAX),
        v => Some(v),
    }
}

/// A size as a person reads it: the largest unit it is a whole number of.
pub fn show_size(n: u64) -> String {
    if n == u64::MAX {
        return "no bound".into();
    }
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n}")
}

/// The spec's network namespace becomes the one at `path`.
fn join_netns(spec: &mut Value, path: Option<&Path>) {
    let Some(path) = path else { return };
    if let Some(nss) = spec["linux"]["namespaces"].as_array_mut() {
        nss.retain(|n| n["type"] != "network");
        nss.push(serde_json::json!({"type": "network", "path": path}));
    }
}

/// Unpacks an oci-archive or docker-archive into `dir`, keeping only what a
/// member can be: regular files and directories. Devices, fifos and hard
/// links are refused. A symlink (docker save links a layer saved twice to
/// the first copy) is resolved inside the archive, clamped to it, and
/// replaced by a hard link to the regular file it names, or dropped. So
/// every member read later by name is a regular file of the archive's own,
/// never a host file or device it points at.
fn unpack_archive(file: &Path, dir: &Path) -> Result<(), ImageError> {
    use tar::EntryType;
    let what = |e: &dyn std::fmt::Display| {
        ImageError::Source(format!("{}: unpack archive: {e}", file.display()))
    };
    let f = fs::File::open(file).map_err(io(file.display().to_string()))?;
    let mut archive = tar::Archive::new(f);
    let mut links = Vec::new();
    for entry in archive.entries().map_err(|e| what(&e))? {
        let mut entry = entry.map_err(|e| what(&e))?;
        let path = unpack::clean(&entry.path().map_err(|e| what(&e))?);
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous | EntryType::Directory => {
                entry.unpack_in(dir).map_err(|e| what(&e))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| what(&e))?
                    .ok_or_else(|| what(&format!("{}: a link without a target", path.display())))?;
                links.push((path, target.into_owned()));
            }
            EntryType::XGlobalHeader | EntryType::XHeader => {}
            other => {
                return Err(what(&format!(
                    "{}: a member of type {other:?} (only files, directories and links inside the archive are read)",
                    path.display()
                )));
            }
        }
    }
    let root = crate::rootfs::open_root(dir).map_err(|e| what(&e))?;
    // Where the links may land, as /proc/self/fd shows paths (absolute).
    let inside = fs::canonicalize(dir).map_err(io(dir.display().to_string()))?;
    for (path, target) in links {
        let at = path.parent().unwrap_or(Path::new("")).join(&target);
        let Ok(fd) = crate::rootfs::resolve::open_in_root_flags(
            &root,
            &at,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK,
        ) else {
            continue;
        };
        let regular =
            nix::sys::stat::fstat(&fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG);
        let Ok(real) = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
            continue;
        };
        if !regular || !real.starts_with(&inside) {
            continue;
        }
        let name = dir.join(&path);
        if let Some(parent) = name.parent() {
            fs::create_dir_all(parent).map_err(io(parent.display().to_string()))?;
        }
        fs::hard_link(&real, &name).map_err(io(name.display().to_string()))?;
    }
    Ok(())
}

/// An image ready to unpack: its config and its layers (each blob's
/// descriptor and file, relative to `base`), and the temporary directory an
/// archive was unpacked into.
struct Opened {
    _tmp: Option<TempDir>,
    base: PathBuf,
    config: Value,
    layers: Vec<(Descriptor, PathBuf)>,
    diff_ids: Vec<String>,
}

fn open_image(a: &UnpackArgs<'_>) -> Result<Opened, ImageError> {
    let (dir, reference, tmp) = match a.source {
        Source::Layout { dir, reference } => (dir.clone(), reference, None),
        Source::Archive { file, reference } | Source::Docker { file, reference } => {
            let tmp = TempDir::new(a.bundle, "archive")?;
            unpack_archive(file, &tmp.0)?;
            (tmp.0.clone(), reference, Some(tmp))
        }
    };
    let base = dir.clone();
    let (config, layers) = match a.source {
        Source::Docker { .. } => docker::open(&dir, reference.as_deref())?,
        _ => {
            let layout = Layout { dir };
            let (mdesc, manifest) = layout.manifest(reference.as_deref(), a.platform)?;
            let m = &mdesc.digest;
            let cdesc = Descriptor::from_json(&manifest["config"], &format!("{m}: config"))?;
            let config = layout.json(&cdesc)?;
            let mut layers = Vec::new();
            for (i, l) in manifest["layers"]
                .as_array()
                .ok_or_else(|| ImageError::Bad(format!("manifest {m}: no layers")))?
                .iter()
                .enumerate()
            {
                let d = Descriptor::from_json(l, &format!("{m}: layers[{i}]"))?;
                let path = layout.path(&d)?;
                layers.push((d, path));
            }
            (config, layers)
        }
    };
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != layers.len() {
        return Err(ImageError::Bad(format!(
            "image config: {} diff_ids for {} layers",
            diff_ids.len(),
            layers.len()
        )));
    }
    Ok(Opened {
        _tmp: tmp,
        base,
        config,
        layers,
        diff_ids,
    })
}

/// "layer 2/5 sha256:0123456789ab"
fn layer_label(i: usize, n: usize, d: &Descriptor) -> String {
    let short = d.digest.get(..19).unwrap_or(&d.digest);
    format!("layer {}/{n} {short}", i + 1)
}

/// Applies one layer into `dir` and checks both its blob digest and its
/// diff id.
fn extract(
    dir: &Path,
    img: &Opened,
    (d, path): &(Descriptor, PathBuf),
    diff_id: &str,
    how: (unpack::Whiteouts, u64),
    progress: Option<String>,
) -> Result<(), ImageError> {
    let mut blob = Verified::open(&img.base, path, d)?;
    if let Some(label) = progress {
        blob = blob.show_progress(label);
    }
    let (blob, got) = unpack::apply_layer(dir, d, blob, how.0, how.1)?;
    blob.finish()?;
    if got != diff_id {
        return Err(ImageError::Blob {
            digest: d.digest.clone(),
            msg: format!("uncompressed it is {got}, not the config's diff id {diff_id}"),
        });
    }
    Ok(())
}

/// The bundle directory of an unpack under way: made if it did not exist,
/// and then removed again unless the unpack succeeds, so a failed unpack
/// leaves nothing behind.
struct BundleDir<'a> {
    path: &'a Path,
    made: bool,
    done: std::cell::Cell<bool>,
}

impl<'a> BundleDir<'a> {
    fn prepare(bundle: &'a Path) -> Result<BundleDir<'a>, ImageError> {
        if bundle.join("rootfs").exists() || bundle.join("config.json").exists() {
            return Err(ImageError::Source(format!(
                "{}: already holds a rootfs or config.json",
                bundle.display()
            )));
        }
        let made = !bundle.exists();
        fs::create_dir_all(bundle).map_err(io(bundle.display().to_string()))?;
        sweep(bundle, BUNDLE_TEMPS);
        Ok(BundleDir {
            path: bundle,
            made,
            done: std::cell::Cell::new(false),
        })
    }

    fn done(&self) {
        self.done.set(true);
    }
}

impl Drop for BundleDir<'_> {
    fn drop(&mut self) {
        if self.made && !self.done.get() {
            let _ = fs::remove_dir_all(self.path);
        }
    }
}

/// Writes BUNDLE/config.json through a temporary file no one could have
/// planted anything at (the bundle's directory may be writable by others).
fn write_config(bundle: &Path, spec: &Value) -> Result<(), ImageError> {
    let text = serde_json::to_vec_pretty(spec).map_err(|e| ImageError::Bad(e.to_string()))?;
    let path = bundle.join("config.json");
    crate::files::write_atomic(&path, &text, 0o644).map_err(io(path.display().to_string()))
}

/// Makes BUNDLE/rootfs (all layers applied) and BUNDLE/config.json. Built
/// beside and renamed into place: on any error nothing is left at BUNDLE
/// that was not there before.
pub fn unpack_flat(a: &UnpackArgs<'_>) -> Result<(), ImageError> {
    let bundle = BundleDir::prepare(a.bundle)?;
    let img = open_image(a)?;
    let rootfs = a.bundle.join("rootfs");
    let tmp = TempDir::new(a.bundle, "rootfs")?;
    let n = img.layers.len();
    for (i, (layer, diff_id)) in img.layers.iter().zip(&img.diff_ids).enumerate() {
        let label = (!a.quiet).then(|| layer_label(i, n, &layer.0));
        let how = (unpack::Whiteouts::Apply, a.max_layer_size);
        extract(&tmp.0, &img, layer, diff_id, how, label)?;
    }
    let mut spec = config::spec(&img.config, &tmp.0, a.entrypoint.as_deref(), &a.args)?;
    join_netns(&mut spec, a.netns);
    fs::rename(&tmp.0, &rootfs).map_err(io(rootfs.display().to_string()))?;
    tmp.keep();
    write_config(a.bundle, &spec)?;
    bundle.done();
    Ok(())
}

/// Makes a bundle whose rootfs is an overlay of the image's layers, each
/// extracted once into `store` (named by its diff id, checked) and shared by
/// every bundle; the bundle has its own upper and work directories, and
/// config.json mounts the overlay at `/` (husk does so inside the
/// container's mount namespace). A layer already in the store is not read
/// again.
pub fn unpack_overlay(a: &UnpackArgs<'_>, store: &Path) -> Result<(), ImageError> {
    let bundle = BundleDir::prepare(a.bundle)?;
    fs::create_dir_all(store).map_err(io(store.display().to_string()))?;
    sweep(store, &[LAYER_TEMP]);
    let img = open_image(a)?;
    // Recorded first, so a gc running meanwhile keeps these layers.
    let hexes = img
        .diff_ids
        .iter()
        .map(|d| Hasher::for_digest(d).map(|(_, h)| h))
        .collect::<Result<Vec<_>, _>>()?;
    store::add_ref(store, a.bundle, &hexes)?;
    let mut dirs = Vec::new();
    let n = img.layers.len();
    for (i, (layer, diff_id)) in img.layers.iter().zip(&img.diff_ids).enumerate() {
        let (_, hex) = Hasher::for_digest(diff_id)?;
        let dir = store.join(&hex);
        if !dir.exists() {
            let tmp = TempDir::new(store, &format!("layer-{hex}"))?;
            let label = (!a.quiet).then(|| layer_label(i, n, &layer.0));
            let how = (unpack::Whiteouts::Overlay, a.max_layer_size);
            extract(&tmp.0, &img, layer, diff_id, how, label)?;
            match fs::rename(&tmp.0, &dir) {
                Ok(()) => tmp.keep(),
                // Another unpack stored it first: theirs is as good.
                Err(_) if dir.exists() => {}
                Err(e) => return Err(io(dir.display().to_string())(e)),
            }
        }
        dirs.push(dir);
    }
    // Names are looked up in the topmost layer that has the files.
    let files = dirs
        .iter()
        .rev()
        .find(|d| d.join("etc/passwd").exists())
        .or(dirs.first())
        .cloned()
        .unwrap_or_default();
    let mut spec = config::spec(&img.config, &files, a.entrypoint.as_deref(), &a.args)?;
    join_netns(&mut spec, a.netns);
    for sub in ["rootfs", "upper", "work"] {
        let p = a.bundle.join(sub);
        fs::create_dir_all(&p).map_err(io(p.display().to_string()))?;
    }
    let lower: Vec<String> = dirs.iter().rev().map(|d| d.display().to_string()).collect();
    let root_mount = serde_json::json!({
        "destination": "/", "type": "overlay", "source": "overlay",
        "options": [format!("lowerdir={}", lower.join(":")), "upperdir=upper", "workdir=work"]
    });
    if let Some(m) = spec["mounts"].as_array_mut() {
        m.insert(0, root_mount);
    }
    write_config(a.bundle, &spec)?;
    bundle.done();
    Ok(())
}

/// The temporaries husk-image makes in a bundle (`.NAME.RANDOM`).
const BUNDLE_TEMPS: &[&str] = &[".rootfs.", ".archive.", ".config.json."];
/// The temporaries it makes in a layer store (`.layer-HEX.RANDOM`).
const LAYER_TEMP: &str = ".layer-";
/// A temporary untouched this long, and not held, belongs to no live unpack.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the temporaries earlier husk-image runs left in `dir` when they
/// were killed (names starting with one of `prefixes`): only ones this user
/// owns, untouched for a minute, and, for a directory, not locked by the
/// unpack that made it ([`TempDir`] holds a lock for its whole life). A
/// link planted at such a name is removed, never followed. Best effort:
/// what cannot be removed is left for the next run.
pub(crate) fn sweep(dir: &Path, prefixes: &[&str]) {
    use nix::fcntl::{FlockArg, openat};
    use nix::sys::stat::{Mode, fstatat};
    use nix::unistd::UnlinkatFlags;
    use std::os::unix::ffi::OsStrExt;
    let Ok(fd) = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let Ok(me) = fd.try_clone() else { return };
    let Ok(listing) = nix::dir::Dir::from_fd(fd) else {
        return;
    };
    let now = std::time::SystemTime::now();
    let names: Vec<std::ffi::OsString> = listing
        .into_iter()
        .flatten()
        .map(|e| std::ffi::OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
        .filter(|n| n != "." && n != "..")
        .filter(|n| {
            prefixes
                .iter()
                .any(|p| n.as_bytes().starts_with(p.as_bytes()))
        })
        .collect();
    for name in names {
        let Ok(st) = fstatat(
            &me,
            name.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) else {
            continue;
        };
        let touched = std::time::UNIX_EPOCH
            + std::time::Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec as u32);
        let old = now.duration_since(touched).is_ok_and(|a| a >= STALE_AFTER);
        if st.st_uid != nix::unistd::geteuid().as_raw() || !old {
            continue;
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            let _ = nix::unistd::unlinkat(&me, name.as_os_str(), UnlinkatFlags::NoRemoveDir);
            continue;
        }
        let Ok(sub) = openat(
            &me,
            name.as_os_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        // Held while it is removed, so no one can take it meanwhile.
        let Ok(_held) = nix::fcntl::Flock::lock(sub, FlockArg::LockExclusiveNonblock) else {
            continue; // a running unpack's
        };
        let _ = unpack::remove(&me, &name);
    }
}

/// A directory removed on drop unless kept, locked for as long as this
/// process has it (so [`sweep`] can tell it from a killed run's).
struct TempDir(
    PathBuf,
    std::cell::Cell<bool>,
    #[allow(dead_code)] Option<nix::fcntl::Flock<fs::File>>,
);

impl TempDir {
    fn new(beside: &Path, what: &str) -> Result<TempDir, ImageError> {
        fs::create_dir_all(beside).map_err(io(beside.display().to_string()))?;
        // 0755 as a rootfs or a stored layer must be (an image's own "./"
        // entry sets the rootfs's mode when it has one).
        let p = crate::files::temp_dir(beside, what, 0o755)
            .map_err(io(beside.display().to_string()))?;
        let lock = fs::File::open(&p)
            .ok()
            .and_then(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).ok());
        Ok(TempDir(p, std::cell::Cell::new(false), lock))
    }

    fn keep(&self) {
        self.1.set(true);
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.1.get() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_as_skopeo_writes_them() {
        assert_eq!(
            Source::parse("oci:/x/y:latest").unwrap(),
            Source::Layout {
                dir: "/x/y".into(),
                reference: Some("latest".into())
            }
        );
        assert_eq!(
            Source::parse("oci-archive:img.tar").unwrap(),
            Source::Archive {
                file: "img.tar".into(),
                reference: None
            }
        );
        assert!(Source::parse("docker://busybox").is_err());
        assert!(Source::parse("oci:").is_err());
    }

    #[test]
    fn sizes_read_as_users_write_them() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("32GiB"), Some(32 << 30));
        assert_eq!(parse_size("1kB"), Some(1024));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0"), Some(u64::MAX));
        for bad in ["", "M", "12Q", "-1", "1.5G", "99999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(show_size(64 << 20), "64M");
        assert_eq!(show_size(32 << 30), "32G");
        assert_eq!(show_size(1000), "1000");
    }

    #[test]
    fn digests_are_checked_for_form() {
        assert!(Hasher::for_digest("sha256:abc").is_err());
        assert!(Hasher::for_digest("md5:00").is_err());
        assert!(Hasher::for_digest(&format!("sha512:{}", "a".repeat(128))).is_ok());
    }
}
