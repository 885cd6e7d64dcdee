//! husk-image: images built here (with the tar crate), unpacked into bundles
//! and run with husk; crafted layers that try to write outside the rootfs.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};
use sha2::Digest;

fn husk_image() -> &'static str {
    env!("CARGO_BIN_EXE_husk-image")
}

fn digest(data: &[u8]) -> String {
    let h = sha2::Sha256::digest(data);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An OCI layout under construction.
struct Image {
    dir: PathBuf,
    layers: Vec<Value>,
    diff_ids: Vec<String>,
}

/// A tar layer built entry by entry.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        h
    }

    fn dir(mut self, path: &str) -> Layer {
        let mut h = Layer::header(tar::EntryType::Directory, 0o755);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn file(mut self, path: &str, data: &[u8], mode: u32) -> Layer {
        let mut h = Layer::header(tar::EntryType::Regular, mode);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    /// A regular file whose name is written raw (the tar crate refuses `..`
    /// and absolute names through its safe API, as an attacker would not).
    fn raw_file(mut self, name: &str, data: &[u8]) -> Layer {
        let mut h = Layer::header(tar::EntryType::Regular, 0o644);
        h.set_size(data.len() as u64);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Layer {
        let mut h = Layer::header(kind, 0o777);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..path.len()].copy_from_slice(path.as_bytes());
        gnu.linkname[..target.len()].copy_from_slice(target.as_bytes());
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }

    /// A pax header for the next entry, with one record.
    fn pax(mut self, key: &str, value: &[u8]) -> Layer {
        let body = |n: usize| {
            let mut r = format!("{n} {key}=").into_bytes();
            r.extend_from_slice(value);
            r.push(b'\n');
            r
        };
        let mut n = body(0).len();
        while body(n).len() != n {
            n = body(n).len();
        }
        let data = body(n);
        let mut h = Layer::header(tar::EntryType::XHeader, 0o644);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, "PaxHeader", &data[..]).unwrap();
        self
    }

    /// An entry of any kind with owner, mode and, for devices, numbers.
    fn special(
        mut self,
        kind: tar::EntryType,
        path: &str,
        (uid, gid, mode): (u64, u64, u32),
        dev: (u32, u32),
        data: &[u8],
    ) -> Layer {
        let mut h = Layer::header(kind, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_234_567_890);
        h.set_size(data.len() as u64);
        h.set_device_major(dev.0).unwrap();
        h.set_device_minor(dev.1).unwrap();
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

impl Image {
    fn new(dir: &Path) -> Image {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Image {
            dir: dir.to_path_buf(),
            layers: vec![],
            diff_ids: vec![],
        }
    }

    fn blob(&self, data: &[u8]) -> String {
        let d = digest(data);
        fs::write(self.dir.join("blobs/sha256").join(&d[7..]), data).unwrap();
        d
    }

    /// Adds a layer, compressed as `how` ("", "gzip", "zstd").
    fn layer(&mut self, tar: Vec<u8>, how: &str) -> &mut Image {
        self.diff_ids.push(digest(&tar));
        let (data, media) = match how {
            "gzip" => (gzip(&tar), "application/vnd.oci.image.layer.v1.tar+gzip"),
            "zstd" => (
                zstd::encode_all(&tar[..], 3).unwrap(),
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
            _ => (tar, "application/vnd.oci.image.layer.v1.tar"),
        };
        let d = self.blob(&data);
        self.layers
            .push(json!({"mediaType": media, "digest": d, "size": data.len()}));
        self
    }

    /// Adds a layer blob as given (its digest matches it; its content may be
    /// anything), declared with `media` and `diff_id`.
    fn raw_layer(&mut self, data: &[u8], media: &str, diff_id: &str) -> &mut Image {
        self.diff_ids.push(diff_id.to_string());
        let d = self.blob(data);
        self.layers
            .push(json!({"mediaType": media, "digest": d, "size": data.len()}));
        self
    }

    /// Writes config, manifest and index; returns `oci:DIR:latest`.
    fn finish(&self, config: Value) -> String {
        let mut cfg = json!({"architecture": "amd64", "os": "linux", "config": config,
            "rootfs": {"type": "layers", "diff_ids": self.diff_ids}});
        cfg["created"] = json!("2026-01-01T00:00:00Z");
        let c = serde_json::to_vec(&cfg).unwrap();
        let cd = self.blob(&c);
        let m = serde_json::to_vec(&json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": c.len()},
            "layers": self.layers}))
        .unwrap();
        let md = self.blob(&m);
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": md, "size": m.len(),
                "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
            .unwrap(),
        )
        .unwrap();
        format!("oci:{}:latest", self.dir.display())
    }
}

/// Deletes app/doomed, makes app/old opaque and adds app/old/b.
fn whiteout_layer() -> Vec<u8> {
    Layer::new()
        .file("app/.wh.doomed", b"", 0o644)
        .file("app/old/.wh..wh..opq", b"", 0o644)
        .file("app/old/b", b"b\n", 0o644)
        .bytes()
}

/// Layer directories in a store (its `.refs` aside).
fn stored_layers(store: &Path) -> usize {
    fs::read_dir(store)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count()
}

/// `tar -C dir -cf archive .`
fn tar_dir(dir: &Path, archive: &Path) {
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
}

/// The busybox rootfs of the other tests, as one layer.
fn busybox_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", rootfs()).unwrap();
    b.into_inner().unwrap()
}

fn unpack(source: &str, bundle: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(husk_image())
        .args(["unpack", "--flat"])
        .arg(source)
        .arg(bundle)
        .args(extra)
        .output()
        .unwrap()
}

/// Runs the bundle made by husk-image with husk; returns stdout.
fn run_bundle(dir: &Path, id: &str) -> String {
    let root = dir.join("state");
    let o = Command::new(husk_bin())
        .arg("--root")
        .arg(&root)
        .args(["run", "-b"])
        .arg(dir.join("bundle"))
        .arg(id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    reap_orphans();
    assert!(o.status.success(), "run: {}", stderr(&o));
    stdout(&o)
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("img-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn an_image_of_three_layers_runs_with_whiteouts_applied() {
    let d = scratch("run");
    let mut img = Image::new(&d.join("layout"));
    img.layer(busybox_layer(), "gzip");
    img.layer(
        Layer::new()
            .dir("app")
            .file(
                "app/hello.sh",
                b"echo hello from $GREETING in $(pwd) as $(id -u):$(id -g)\n",
                0o755,
            )
            .file("app/doomed", b"x", 0o644)
            .dir("app/old")
            .file("app/old/a", b"a", 0o644)
            .file(
                "etc/passwd",
                b"root:x:0:0::/:/bin/sh\napp:x:1001:1002::/app:/bin/sh\n",
                0o644,
            )
            .bytes(),
        "zstd",
    );
    img.layer(whiteout_layer(), "");
    let src = img.finish(json!({"Entrypoint": ["sh"], "Cmd": ["/app/hello.sh"],
        "Env": ["GREETING=the image"], "WorkingDir": "/app", "User": "app",
        "Labels": {"org.example": "yes"}, "StopSignal": "SIGQUIT"}));
    let o = unpack(&src, &d.join("bundle"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rootfs = d.join("bundle/rootfs");
    assert!(!rootfs.join("app/doomed").exists(), "whiteout not applied");
    assert!(
        !rootfs.join("app/old/a").exists(),
        "opaque directory kept a lower file"
    );
    assert!(
        rootfs.join("app/old/b").exists(),
        "opaque removed the layer's own file"
    );
    let cfg: Value =
        serde_json::from_slice(&fs::read(d.join("bundle/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["annotations"]["org.example"], "yes");
    assert_eq!(
        cfg["annotations"]["org.opencontainers.image.stopSignal"],
        "SIGQUIT"
    );
    assert_eq!(
        run_bundle(&d, "imgrun"),
        "hello from the image in /app as 1001:1002\n"
    );
    // Arguments replace Cmd.
    let o = unpack(&src, &d.join("bundle2"), &["-c", "echo replaced"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg: Value =
        serde_json::from_slice(&fs::read(d.join("bundle2/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["args"], json!(["sh", "-c", "echo replaced"]));
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn crafted_layers_cannot_write_outside_the_rootfs() {
    let d = scratch("evil");
    let outside = d.join("outside");
    fs::create_dir(&outside).unwrap();
    let target = outside.display().to_string();
    let mut img = Image::new(&d.join("layout"));
    img.layer(
        Layer::new()
            .raw_file("../../../escape-dotdot", b"x")
            .raw_file(&format!("{target}/escape-abs"), b"x")
            // A symlink to the outside in one layer …
            .link(tar::EntryType::Symlink, "evil", &target)
            .link(
                tar::EntryType::Symlink,
                "evilrel",
                &format!("../../../../../../..{target}"),
            )
            .bytes(),
        "",
    );
    img.layer(
        Layer::new()
            // … written through in the next.
            .file("evil/through-abs", b"x", 0o644)
            .file("evilrel/through-rel", b"x", 0o644)
            .bytes(),
        "",
    );
    fs::write(outside.join("victim"), "keep").unwrap();
    let src = img.finish(json!({"Cmd": ["sh"]}));
    let o = unpack(&src, &d.join("bundle"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Everything landed inside the rootfs, where the paths resolve with the
    // rootfs as /; nothing outside changed.
    let rootfs = d.join("bundle/rootfs");
    let inside = rootfs.join(target.trim_start_matches('/'));
    for f in ["escape-abs", "through-abs", "through-rel"] {
        assert!(inside.join(f).is_file(), "{f} not contained in the rootfs");
    }
    assert!(rootfs.join("escape-dotdot").is_file());
    let listing: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(listing, ["victim"], "written outside: {listing:?}");
    assert!(!d.join("escape-dotdot").exists() && !Path::new("/escape-dotdot").exists());

    // A hardlink to a file outside resolves inside, where there is none: refused.
    let mut img = Image::new(&d.join("layout1"));
    img.layer(
        Layer::new()
            .link(tar::EntryType::Link, "hard", &format!("{target}/victim"))
            .bytes(),
        "",
    );
    let src = img.finish(json!({"Cmd": ["sh"]}));
    let o = unpack(&src, &d.join("bundle1"), &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("hardlink"), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(outside.join("victim")).unwrap(), "keep");
    assert!(!d.join("bundle1/rootfs").exists());

    // A whiteout that climbs out is refused, and leaves no bundle behind.
    let mut img = Image::new(&d.join("layout2"));
    fs::write(d.join("victim2"), "keep").unwrap();
    // `.wh.` + `..`: a whiteout whose target is the parent directory.
    img.layer(
        Layer::new()
            .dir("a")
            .file("a/x", b"x", 0o644)
            .raw_file("a/.wh...", b"")
            .bytes(),
        "",
    );
    let src = img.finish(json!({"Cmd": ["sh"]}));
    let o = unpack(&src, &d.join("bundle2"), &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("whiteout"), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(d.join("victim2")).unwrap(), "keep");
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn corrupt_or_mismatched_blobs_fail_and_leave_nothing() {
    let d = scratch("corrupt");
    let mut img = Image::new(&d.join("layout"));
    img.layer(Layer::new().file("a", b"hello", 0o644).bytes(), "gzip");
    let src = img.finish(json!({"Cmd": ["sh"]}));
    // Flip a byte in the layer blob: the digest no longer matches.
    let layer = img.layers[0]["digest"].as_str().unwrap()[7..].to_string();
    let path = d.join("layout/blobs/sha256").join(&layer);
    let mut data = fs::read(&path).unwrap();
    let n = data.len() - 5;
    data[n] ^= 0xff;
    fs::write(&path, &data).unwrap();
    let o = unpack(&src, &d.join("bundle"), &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(&layer[..12]), "{}", stderr(&o));
    // The bundle directory husk-image made is gone again; one the user made
    // is left as it was, empty.
    assert!(!d.join("bundle").exists(), "a failed unpack left BUNDLE/");
    fs::create_dir(d.join("mine")).unwrap();
    let o = unpack(&src, &d.join("mine"), &[]);
    assert!(!o.status.success());
    let leftovers: Vec<_> = fs::read_dir(d.join("mine")).unwrap().flatten().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let o = Command::new(husk_image())
        .args(["unpack", "--store"])
        .arg(d.join("store"))
        .arg(&src)
        .arg(d.join("ovl"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        !d.join("ovl").exists(),
        "a failed overlay unpack left BUNDLE/"
    );
    // A missing blob and a truncated one are clear errors too.
    fs::remove_file(&path).unwrap();
    let o = unpack(&src, &d.join("bundle"), &[]);
    assert!(stderr(&o).contains("blob sha256:"), "{}", stderr(&o));
    fs::write(&path, &data[..10]).unwrap();
    let o = unpack(&src, &d.join("bundle"), &[]);
    assert!(!o.status.success());
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn oci_archive_source_and_unknown_references() {
    let d = scratch("archive");
    let mut img = Image::new(&d.join("layout"));
    img.layer(busybox_layer(), "");
    let _ = img.finish(json!({"Cmd": ["echo", "from-archive"]}));
    tar_dir(&d.join("layout"), &d.join("img.tar"));
    let o = unpack(
        &format!("oci-archive:{}:latest", d.join("img.tar").display()),
        &d.join("bundle"),
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(run_bundle(&d, "imgarchive"), "from-archive\n");
    let o = unpack(
        &format!("oci:{}:nope", d.join("layout").display()),
        &d.join("b2"),
        &[],
    );
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
    // By digest, as skopeo writes it (oci:DIR:sha256:…).
    let index: Value =
        serde_json::from_slice(&fs::read(d.join("layout/index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"].as_str().unwrap();
    let src = format!("oci:{}:{manifest}", d.join("layout").display());
    let o = unpack(&src, &d.join("b3"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.join("b3/config.json").exists());
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn overlay_bundles_share_stored_layers_and_keep_their_writes_apart() {
    let d = scratch("overlay");
    let store = d.join("store");
    let mut img = Image::new(&d.join("layout"));
    img.layer(busybox_layer(), "gzip");
    img.layer(
        Layer::new()
            .dir("app")
            .file("app/doomed", b"x", 0o644)
            .dir("app/old")
            .file("app/old/a", b"a", 0o644)
            .bytes(),
        "",
    );
    img.layer(whiteout_layer(), "zstd");
    let src = img.finish(json!({"Cmd": ["sh", "-c",
        "[ -e /app/doomed ] && echo doomed-visible; [ -e /app/old/a ] && echo lower-visible; \
         cat /app/old/b; cat /mine 2>/dev/null || echo no-mine; echo written > /mine"]}));
    let unpack_overlay = |bundle: &Path| {
        Command::new(husk_image())
            .args(["unpack", "--store"])
            .arg(&store)
            .arg(&src)
            .arg(bundle)
            .output()
            .unwrap()
    };
    let o = unpack_overlay(&d.join("bundle"));
    assert!(o.status.success(), "{}", stderr(&o));
    // Three layers stored once each, named by diff id.
    assert_eq!(stored_layers(&store), 3);
    // A second bundle reads no layer again.
    let o = unpack_overlay(&d.join("two/bundle"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stored_layers(&store), 3);
    // Whiteouts as overlay sees them; each container's writes are its own.
    assert_eq!(run_bundle(&d, "ovl1"), "b\nno-mine\n");
    assert_eq!(run_bundle(&d, "ovl1"), "b\nwritten\n");
    assert_eq!(run_bundle(&d.join("two"), "ovl2"), "b\nno-mine\n");
    assert_eq!(
        fs::read_to_string(d.join("bundle/upper/mine")).unwrap(),
        "written\n"
    );
    // The overlay lived in the containers' mount namespaces only.
    assert!(!host_mounts_mention(&store.display().to_string()));
    let _ = fs::remove_dir_all(&d);
}

/// Runs umoci (the README's set-up installs it) in `dir`.
fn umoci(dir: &Path, args: &[&str]) {
    let o = Command::new("umoci")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("umoci is missing: run the README's test command, which installs it");
    assert!(o.status.success(), "umoci {args:?}: {}", stderr(&o));
}

#[test]
fn an_image_made_by_umoci_runs_in_both_modes() {
    // A cross-check against a real tool's output (gzip layers, its own
    // manifest and config writing).
    let d = scratch("umoci");
    umoci(&d, &["init", "--layout", "L"]);
    umoci(&d, &["new", "--image", "L:bb"]);
    umoci(&d, &["unpack", "--image", "L:bb", "S"]);
    let out = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", rootfs().display()))
        .arg(d.join("S/rootfs"))
        .status()
        .unwrap();
    assert!(out.success());
    let _ = fs::remove_file(d.join("S/rootfs/.complete"));
    umoci(&d, &["repack", "--image", "L:bb", "S"]);
    umoci(
        &d,
        &[
            "config",
            "--image",
            "L:bb",
            "--config.cmd=sh",
            "--config.cmd=-c",
            "--config.cmd=echo made by umoci",
        ],
    );
    let src = format!("oci:{}:bb", d.join("L").display());
    let o = unpack(&src, &d.join("bundle"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(run_bundle(&d, "umocif"), "made by umoci\n");
    let o = Command::new(husk_image())
        .args(["unpack", "--store"])
        .arg(d.join("store"))
        .arg(&src)
        .arg(d.join("two/bundle"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(run_bundle(&d.join("two"), "umocio"), "made by umoci\n");
    // --netns: the container joins that network namespace (one husk-net
    // would have attached) instead of a new one.
    let nsf = d.join("net.ns");
    fs::File::create(&nsf).unwrap();
    let st = Command::new("unshare")
        .arg(format!("--net={}", nsf.display()))
        .arg("true")
        .status()
        .unwrap();
    assert!(st.success());
    // Unmounted however the test ends.
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let ns_mount = Unmount(&nsf);
    let o = Command::new(husk_image())
        .args(["unpack", "--flat", "--netns"])
        .arg(&nsf)
        .arg(&src)
        .arg(d.join("three/bundle"))
        .args(["sh", "-c", "readlink /proc/self/ns/net"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let seen = run_bundle(&d.join("three"), "umocin");
    let ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&nsf).unwrap());
    assert_eq!(seen.trim(), format!("net:[{ino}]"));
    drop(ns_mount);
    let _ = fs::remove_dir_all(&d);
}

/// A `docker save`-shaped archive: manifest.json, `<digest>.json`, layer tars
/// (the second one gzip, as some tools write them).
fn docker_archive(d: &Path, layers: &[Vec<u8>], cmd: &[&str]) -> PathBuf {
    let dir = d.join("docker");
    fs::create_dir_all(&dir).unwrap();
    let mut names = vec![];
    let mut diff_ids = vec![];
    for (i, tar) in layers.iter().enumerate() {
        diff_ids.push(digest(tar));
        fs::create_dir_all(dir.join(format!("l{i}"))).unwrap();
        let data = if i == 1 { gzip(tar) } else { tar.clone() };
        fs::write(dir.join(format!("l{i}/layer.tar")), data).unwrap();
        names.push(format!("l{i}/layer.tar"));
    }
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "config": {"Cmd": cmd}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
    .unwrap();
    let cfg_name = format!("{}.json", &digest(&config)[7..]);
    fs::write(dir.join(&cfg_name), &config).unwrap();
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(
            &json!([{"Config": cfg_name, "RepoTags": ["husk/test:latest"], "Layers": names}]),
        )
        .unwrap(),
    )
    .unwrap();
    let archive = d.join("docker.tar");
    tar_dir(&dir, &archive);
    archive
}

#[test]
fn docker_archives_unpack_and_their_layers_are_held_to_the_diff_ids() {
    let d = scratch("docker");
    let extra = Layer::new()
        .file("hello.txt", b"from a docker archive\n", 0o644)
        .bytes();
    let archive = docker_archive(&d, &[busybox_layer(), extra], &["cat", "/hello.txt"]);
    let src = format!("docker-archive:{}:husk/test", archive.display());
    let o = unpack(&src, &d.join("bundle"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(run_bundle(&d, "dockerarc"), "from a docker archive\n");
    // A layer that is not what the config says: refused, nothing left.
    let d2 = scratch("docker-bad");
    let archive = docker_archive(&d2, &[busybox_layer()], &["true"]);
    let dir = d2.join("docker");
    let other = Layer::new().file("evil", b"x", 0o644).bytes();
    fs::write(dir.join("l0/layer.tar"), &other).unwrap();
    tar_dir(&dir, &archive);
    let o = unpack(
        &format!("docker-archive:{}", archive.display()),
        &d2.join("bundle"),
        &[],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("diff id"), "{}", stderr(&o));
    assert!(!d2.join("bundle/rootfs").exists());
    let _ = fs::remove_dir_all(&d);
    let _ = fs::remove_dir_all(&d2);
}

#[test]
fn progress_is_shown_on_a_terminal_only() {
    let d = scratch("progress");
    let mut img = Image::new(&d.join("layout"));
    img.layer(busybox_layer(), "gzip");
    let src = img.finish(json!({"Cmd": ["true"]}));
    // On a terminal (script(1) makes one): per layer, bytes done of total.
    let run_on_tty = |bundle: &str, extra: &str| {
        let cmd = format!(
            "{} unpack --flat {extra} {src} {}",
            husk_image(),
            d.join(bundle).display()
        );
        let o = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stdout(&o));
        stdout(&o)
    };
    let shown = run_on_tty("b1", "");
    assert!(
        shown.contains("layer 1/1 sha256:") && shown.contains(" MB"),
        "{shown:?}"
    );
    assert_eq!(run_on_tty("b2", "--quiet"), "");
    // Without a terminal: nothing but errors.
    let o = unpack(&src, &d.join("b3"), &[]);
    assert!(o.status.success());
    assert_eq!(stderr(&o), "");
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn list_and_gc_keep_what_bundles_use() {
    let d = scratch("gc");
    let store = d.join("store");
    let base = busybox_layer();
    let mut sources = vec![];
    for name in ["a", "b"] {
        let mut img = Image::new(&d.join(format!("layout-{name}")));
        img.layer(base.clone(), "");
        img.layer(Layer::new().file(name, b"x", 0o644).bytes(), "");
        sources.push(img.finish(json!({"Cmd": ["true"]})));
    }
    let husk_image_store = |args: &[&str]| {
        let o = Command::new(husk_image())
            .args(args)
            .arg("--store")
            .arg(&store)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    for (src, name) in sources.iter().zip(["a", "b"]) {
        let o = Command::new(husk_image())
            .args(["unpack", "--store"])
            .arg(&store)
            .arg(src)
            .arg(d.join(name))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // The base layer is stored once and used by both bundles.
    let listing = husk_image_store(&["list"]);
    let rows: Vec<&str> = listing.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{listing}");
    assert_eq!(
        rows.iter().filter(|r| r.contains(",")).count(),
        1,
        "{listing}"
    );
    // Nothing to collect while both bundles exist.
    assert_eq!(husk_image_store(&["gc"]), "");
    fs::remove_dir_all(d.join("a")).unwrap();
    let removed = husk_image_store(&["gc"]);
    assert_eq!(
        removed.lines().count(),
        1,
        "only a's own layer goes: {removed}"
    );
    assert_eq!(husk_image_store(&["list"]).lines().count(), 3);
    // b still runs from the store.
    let o = Command::new(husk_bin())
        .arg("--root")
        .arg(d.join("state"))
        .args(["run", "-b"])
        .arg(d.join("b"))
        .arg("gcb")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    reap_orphans();
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn ownership_modes_times_links_devices_and_xattrs_are_kept() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let d = scratch("meta");
    // security.capability v2: cap_net_bind_service permitted and effective.
    let mut cap = vec![0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0, 0];
    cap.extend_from_slice(&[0; 12]);
    let layer = Layer::new()
        .pax("SCHILY.xattr.security.capability", &cap)
        .special(
            tar::EntryType::Regular,
            "suid",
            (1000, 1001, 0o4755),
            (0, 0),
            b"#!/bin/sh\n",
        )
        .pax("SCHILY.xattr.user.note", b"kept")
        .special(
            tar::EntryType::Regular,
            "plain",
            (0, 0, 0o640),
            (0, 0),
            b"data",
        )
        .link(tar::EntryType::Link, "hard", "plain")
        .special(tar::EntryType::Char, "null", (0, 0, 0o666), (1, 3), b"")
        .special(tar::EntryType::Fifo, "fifo", (5, 6, 0o600), (0, 0), b"")
        .bytes();
    let mut img = Image::new(&d.join("layout"));
    img.layer(layer, "gzip");
    let src = img.finish(json!({"Cmd": ["true"]}));
    let o = unpack(&src, &d.join("bundle"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = d.join("bundle/rootfs");
    let m = fs::symlink_metadata(r.join("suid")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1001, 0o4755));
    assert_eq!(m.mtime(), 1_234_567_890);
    let m = fs::symlink_metadata(r.join("plain")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!(
        m.ino(),
        fs::symlink_metadata(r.join("hard")).unwrap().ino(),
        "hardlink"
    );
    let m = fs::symlink_metadata(r.join("null")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), libc::makedev(1, 3));
    let m = fs::symlink_metadata(r.join("fifo")).unwrap();
    assert!(m.file_type().is_fifo());
    assert_eq!((m.uid(), m.gid()), (5, 6));
    let xattr = |path: &Path, name: &std::ffi::CStr| {
        let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let mut buf = [0u8; 64];
        // SAFETY: getxattr writes at most buf.len() bytes.
        let n = unsafe {
            libc::getxattr(
                p.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        (n >= 0).then(|| buf[..n as usize].to_vec())
    };
    assert_eq!(xattr(&r.join("suid"), c"security.capability"), Some(cap));
    assert_eq!(
        xattr(&r.join("plain"), c"user.note"),
        Some(b"kept".to_vec())
    );
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn corrupt_streams_with_honest_digests_fail_cleanly() {
    let d = scratch("streams");
    let tar = Layer::new().file("a", &[7u8; 100_000], 0o644).bytes();
    let diff = digest(&tar);
    let mut gz = gzip(&tar);
    let n = gz.len() / 2;
    gz[n] ^= 0x55;
    let mut zst = zstd::encode_all(&tar[..], 3).unwrap();
    let n = zst.len() / 2;
    zst[n] ^= 0x55;
    let truncated = tar[..tar.len() / 2].to_vec();
    for (i, (data, media)) in [
        (gz, "application/vnd.oci.image.layer.v1.tar+gzip"),
        (zst, "application/vnd.oci.image.layer.v1.tar+zstd"),
        (truncated, "application/vnd.oci.image.layer.v1.tar"),
        (tar.clone(), "application/vnd.oci.image.layer.v1.tar+lz4"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut img = Image::new(&d.join(format!("layout{i}")));
        img.raw_layer(&data, media, &diff);
        let src = img.finish(json!({"Cmd": ["true"]}));
        let bundle = d.join(format!("bundle{i}"));
        let o = unpack(&src, &bundle, &[]);
        assert!(!o.status.success(), "{media} was accepted");
        assert!(
            stderr(&o).contains("husk-image: blob sha256:"),
            "{}",
            stderr(&o)
        );
        assert!(!bundle.join("rootfs").exists() && !bundle.join("config.json").exists());
    }
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn planted_temporary_names_are_never_written_through() {
    // A user who can write the bundle's directory (or the store) plants
    // symlinks at the names husk-image writes its temporary files under,
    // aimed at a root-owned file: the unpack must not write through them.
    use sha2::Digest;
    let d = scratch("planted");
    let mut img = Image::new(&d.join("layout"));
    img.layer(Layer::new().file("hello", b"hi", 0o644).bytes(), "");
    let src = img.finish(json!({"Cmd": ["true"]}));
    let victim = d.join("victim");
    fs::write(&victim, "root's data\n").unwrap();
    // A flat bundle: its config.json's temporary name.
    let bundle = d.join("flat");
    fs::create_dir_all(&bundle).unwrap();
    std::os::unix::fs::symlink(&victim, bundle.join(".config.json.tmp")).unwrap();
    let o = unpack(&src, &bundle, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's data\n");
    assert!(
        fs::read_to_string(bundle.join("config.json"))
            .unwrap()
            .contains("true")
    );
    // An overlay bundle: also the store's reference to it.
    let store = d.join("store");
    let bundle = d.join("ovl");
    fs::create_dir_all(&bundle).unwrap();
    std::os::unix::fs::symlink(&victim, bundle.join(".config.json.tmp")).unwrap();
    let key: String = sha2::Sha256::digest(bundle.as_os_str().as_encoded_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fs::create_dir_all(store.join(".refs")).unwrap();
    std::os::unix::fs::symlink(&victim, store.join(format!(".refs/.{key}.tmp"))).unwrap();
    let o = Command::new(husk_image())
        .args(["unpack", "--store"])
        .arg(&store)
        .arg(&src)
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's data\n");
    assert!(store.join(format!(".refs/{key}.json")).exists());
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn an_image_label_cannot_steer_the_runtime() {
    // Labels become annotations, but the ones the runtime acts on (husk's
    // PID 1 mode here) must come from the engine or the user, not the image.
    let d = scratch("labels");
    let mut img = Image::new(&d.join("layout"));
    img.layer(busybox_layer(), "");
    let src = img.finish(json!({"Cmd": ["cat", "/proc/1/cmdline"],
        "Labels": {"run.husk.init": "true", "run.oci.keep_original_groups": "1", "kept": "yes"}}));
    let o = unpack(&src, &d.join("bundle"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let config: Value =
        serde_json::from_slice(&fs::read(d.join("bundle/config.json")).unwrap()).unwrap();
    assert_eq!(config["annotations"]["kept"], "yes");
    assert!(config["annotations"]["run.husk.init"].is_null(), "{config}");
    assert!(config["annotations"]["run.oci.keep_original_groups"].is_null());
    // PID 1 is the image's program itself, not husk's init.
    assert_eq!(run_bundle(&d, "labels"), "cat\0/proc/1/cmdline\0");
    let _ = fs::remove_dir_all(&d);
}

/// husk-image with `secs` to finish: a hang fails the test instead of the suite.
fn unpack_within(source: &str, bundle: &Path, secs: u64) -> Option<std::process::Output> {
    let child = Command::new(husk_image())
        .args(["unpack", "--flat"])
        .arg(source)
        .arg(bundle)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_within(child, secs)
}

#[test]
fn archive_members_are_read_from_the_archive_only() {
    // A docker-archive whose layer member is a symlink out of the archive:
    // to a layer file on the host whose digest the attacker knows (another
    // tenant's), it must not be imported; to /dev/zero, it must not hang.
    let d = scratch("members");
    let secret = Layer::new()
        .file("secret", b"another tenant's\n", 0o644)
        .bytes();
    let host_layer = d.join("host-layer.tar");
    fs::write(&host_layer, &secret).unwrap();
    let archive = docker_archive(&d, std::slice::from_ref(&secret), &["cat", "/secret"]);
    let dir = d.join("docker");
    let src = format!("docker-archive:{}", archive.display());
    for target in [host_layer.as_path(), Path::new("/dev/zero")] {
        fs::remove_file(dir.join("l0/layer.tar")).unwrap();
        std::os::unix::fs::symlink(target, dir.join("l0/layer.tar")).unwrap();
        tar_dir(&dir, &archive);
        let bundle = d.join(format!(
            "bundle-{}",
            target.file_name().unwrap().to_string_lossy()
        ));
        let o = unpack_within(&src, &bundle, 20)
            .unwrap_or_else(|| panic!("husk-image hung on a member linked to {target:?}"));
        assert!(
            !o.status.success(),
            "{target:?} was read through the archive"
        );
        assert!(!bundle.join("rootfs/secret").exists());
    }
    // Docker's own links inside an archive (a layer saved twice is stored
    // once) still work.
    let d2 = scratch("members-ok");
    let archive = docker_archive(
        &d2,
        &[busybox_layer(), busybox_layer()],
        &["echo", "linked"],
    );
    let dir = d2.join("docker");
    fs::remove_file(dir.join("l1/layer.tar")).unwrap();
    std::os::unix::fs::symlink("../l0/layer.tar", dir.join("l1/layer.tar")).unwrap();
    tar_dir(&dir, &archive);
    // With relative paths, as a user types them.
    assert_eq!(archive, d2.join("docker.tar"));
    let o = Command::new(husk_image())
        .current_dir(&d2)
        .args(["unpack", "--flat", "docker-archive:docker.tar", "bundle"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(run_bundle(&d2, "linkedlayers"), "linked\n");
    let _ = fs::remove_dir_all(&d);
    let _ = fs::remove_dir_all(&d2);
}

/// Bytes a file really takes on disk.
fn disk_bytes(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).unwrap().blocks() * 512
}

/// `gzip -9` of `data` (the tool: much faster than a debug-built encoder).
fn gzip_tool(data: &[u8]) -> Vec<u8> {
    let mut c = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = c.stdin.take().unwrap();
    let data = data.to_vec();
    let w = std::thread::spawn(move || input.write_all(&data).unwrap());
    let o = c.wait_with_output().unwrap();
    w.join().unwrap();
    assert!(o.status.success());
    o.stdout
}

#[test]
fn layer_bombs_are_bounded_and_zeros_stay_sparse() {
    // A small gzip layer of zeros and a tiny tar with a GNU sparse entry both
    // expand to a lot: zeros must become holes, not disk blocks, and a layer
    // expanding past --max-layer-size is refused, naming layer and limit.
    let d = scratch("bombs");
    // GNU tar writes the sparse entry: 1 GiB, 4 bytes of data at its end.
    let src = d.join("sparse-src");
    fs::create_dir_all(&src).unwrap();
    let f = fs::File::create(src.join("big")).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"end\n", 1 << 30).unwrap();
    let sparse_tar = d.join("sparse.tar");
    let st = Command::new("tar")
        .args(["--sparse", "--format=gnu", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(&sparse_tar)
        .arg("big")
        .status()
        .unwrap();
    assert!(st.success());
    let sparse = fs::read(&sparse_tar).unwrap();
    assert!(sparse.len() < 64 << 10, "tar wrote {} bytes", sparse.len());
    let mut img = Image::new(&d.join("sparse"));
    img.layer(sparse.clone(), "");
    let sparse_src = img.finish(json!({"Cmd": ["true"]}));
    // 256 MiB of zeros, gzipped to a few hundred KiB.
    let zeros_tar = Layer::new()
        .file("zeros", &vec![0u8; 256 << 20], 0o644)
        .bytes();
    let zeros_gz = gzip_tool(&zeros_tar);
    assert!(zeros_gz.len() < 1 << 20);
    let mut img = Image::new(&d.join("zeros"));
    img.raw_layer(
        &zeros_gz,
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &digest(&zeros_tar),
    );
    let zeros_src = img.finish(json!({"Cmd": ["true"]}));
    let zeros_layer = digest(&zeros_gz);
    drop(zeros_tar);

    // Within the default limit: unpacked, with the zeros left as holes.
    for (src, name, size) in [
        (&sparse_src, "big", (1u64 << 30) + 4),
        (&zeros_src, "zeros", 256 << 20),
    ] {
        let bundle = d.join(format!("ok-{name}"));
        let o = unpack_within(src, &bundle, 120).expect("unpack hung");
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let file = bundle.join("rootfs").join(name);
        assert_eq!(fs::metadata(&file).unwrap().len(), size);
        let on_disk = disk_bytes(&file);
        assert!(
            on_disk < 1 << 20,
            "{name}: {on_disk} bytes written to disk for a file of holes"
        );
        if name == "big" {
            let mut end = [0u8; 4];
            fs::File::open(&file)
                .unwrap()
                .read_exact_at(&mut end, 1 << 30)
                .unwrap();
            assert_eq!(&end, b"end\n");
        }
    }

    // Past a limit: refused before it is written out, and nothing is left.
    for (src, layer, limit) in [
        (&zeros_src, zeros_layer.as_str(), "64M"),
        (&sparse_src, digest(&sparse).as_str(), "512M"),
    ] {
        let bundle = d.join(format!("refused-{limit}"));
        let o = Command::new(husk_image())
            .args(["unpack", "--flat", "--max-layer-size", limit])
            .arg(src)
            .arg(&bundle)
            .output()
            .unwrap();
        let e = stderr(&o);
        assert!(!o.status.success(), "a bomb past {limit} was unpacked");
        assert!(e.contains(layer), "the layer is not named: {e}");
        assert!(e.contains(limit) && e.contains("--max-layer-size"), "{e}");
        assert!(!bundle.exists(), "{e}");
    }
    // A limit husk-image cannot read is refused up front.
    let o = Command::new(husk_image())
        .args(["unpack", "--flat", "--max-layer-size", "12Q"])
        .arg(&zeros_src)
        .arg(d.join("badlimit2"))
        .output()
        .unwrap();
    assert!(!o.status.success() && stderr(&o).contains("--max-layer-size"));
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn temporaries_of_killed_unpacks_are_removed_and_live_ones_kept() {
    // An unpack killed half way leaves its temporary rootfs, archive or
    // layer directory behind; the next unpack into that bundle or store (and
    // gc) removes them, but never one a running unpack still holds, and
    // never follows a link planted at such a name.
    let d = scratch("stale");
    let mut img = Image::new(&d.join("layout"));
    img.layer(Layer::new().file("hello", b"hi", 0o644).bytes(), "");
    let src = img.finish(json!({"Cmd": ["true"]}));
    let victim = d.join("victim");
    fs::create_dir_all(&victim).unwrap();
    fs::write(victim.join("keep"), "root's\n").unwrap();
    let hour_ago = |p: &Path| {
        let st = Command::new("touch")
            .args(["-h", "-d", "1 hour ago"])
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success());
    };
    let plant = |dir: &Path, names: &[&str]| {
        for n in names {
            let p = dir.join(n);
            fs::create_dir_all(p.join("usr/bin")).unwrap();
            fs::write(p.join("usr/bin/data"), vec![7u8; 4096]).unwrap();
            hour_ago(&p);
        }
    };
    // A live one: an unpack still running holds a lock on its directory.
    let live = |p: &Path| {
        nix::fcntl::Flock::lock(
            fs::File::open(p).unwrap(),
            nix::fcntl::FlockArg::LockExclusive,
        )
        .unwrap()
    };
    let bundle = d.join("bundle");
    fs::create_dir_all(&bundle).unwrap();
    plant(
        &bundle,
        &[
            ".rootfs.00112233aabbccdd",
            ".archive.0123456789abcdef",
            ".rootfs.1111111111111111",
        ],
    );
    let holder = live(&bundle.join(".rootfs.1111111111111111"));
    let link = bundle.join(".rootfs.2222222222222222");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    hour_ago(&link);
    let o = unpack(&src, &bundle, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!bundle.join(".rootfs.00112233aabbccdd").exists());
    assert!(!bundle.join(".archive.0123456789abcdef").exists());
    assert!(
        bundle
            .join(".rootfs.1111111111111111/usr/bin/data")
            .exists()
    );
    assert_eq!(fs::read_to_string(victim.join("keep")).unwrap(), "root's\n");
    assert!(
        fs::symlink_metadata(&link).is_err(),
        "the planted link is left"
    );
    drop(holder);

    let store = d.join("store");
    fs::create_dir_all(&store).unwrap();
    let stale_layer = format!(".layer-{}.0123456789abcdef", "ab".repeat(32));
    let live_layer = format!(".layer-{}.fedcba9876543210", "cd".repeat(32));
    plant(&store, &[&stale_layer, &live_layer]);
    let holder = live(&store.join(&live_layer));
    let o = Command::new(husk_image())
        .args(["unpack", "--store"])
        .arg(&store)
        .arg(&src)
        .arg(d.join("ovl"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!store.join(&stale_layer).exists());
    assert!(store.join(&live_layer).exists());
    // gc too, once the holder is gone.
    drop(holder);
    let o = Command::new(husk_image())
        .args(["gc", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!store.join(&live_layer).exists());
    assert!(d.join("ovl/config.json").exists());
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn layout_blobs_are_regular_files_of_the_layout() {
    // An OCI layout directory is image content too (copied from anywhere):
    // a blob that is a symlink to a host file whose digest is known must not
    // import that file, and one to /dev/zero must not hang husk-image.
    let d = scratch("layoutblobs");
    let secret = Layer::new()
        .file("secret", b"another tenant's\n", 0o644)
        .bytes();
    let host_layer = d.join("host-layer.tar");
    fs::write(&host_layer, &secret).unwrap();
    for target in [host_layer.as_path(), Path::new("/dev/zero")] {
        let mut img = Image::new(&d.join("layout"));
        img.layer(secret.clone(), "");
        let src = img.finish(json!({"Cmd": ["cat", "/secret"]}));
        let blob = d
            .join("layout/blobs")
            .join(digest(&secret).replace(':', "/"));
        fs::remove_file(&blob).unwrap();
        std::os::unix::fs::symlink(target, &blob).unwrap();
        let bundle = d.join(format!(
            "bundle-{}",
            target.file_name().unwrap().to_string_lossy()
        ));
        let o = unpack_within(&src, &bundle, 20)
            .unwrap_or_else(|| panic!("husk-image hung on a blob linked to {target:?}"));
        assert!(!o.status.success(), "{target:?} was read as a blob");
        assert!(stderr(&o).contains(&digest(&secret)), "{}", stderr(&o));
        assert!(!bundle.join("rootfs/secret").exists());
        fs::remove_dir_all(d.join("layout")).unwrap();
    }
    let _ = fs::remove_dir_all(&d);
}
