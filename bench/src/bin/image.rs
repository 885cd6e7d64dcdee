//! image-bench: husk-image against `tar -x` of the same layers, interleaved.
//!
//!   image-bench --husk-image PATH [--rounds N] [DIR…]
//!
//! Builds an OCI image of one gzip layer per DIR (default /usr/include,
//! /usr/lib/python3, /usr/share/doc: a few hundred MB of Debian files), then
//! per round, in rotating order: `husk-image unpack --flat`, `tar -xzf` of
//! every layer into one directory, and an overlay unpack into a fresh store;
//! and once the store is warm, a second overlay bundle. Prints medians and
//! the husk-image/tar ratio.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::json;
use sha2::Digest;

fn digest(data: &[u8]) -> String {
    let h = sha2::Sha256::digest(data);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn blob(layout: &Path, data: &[u8]) -> String {
    let d = digest(data);
    fs::write(layout.join("blobs/sha256").join(&d[7..]), data).unwrap();
    d
}

/// The image; returns the layer blob files (for tar) and the total bytes.
fn build(layout: &Path, dirs: &[PathBuf]) -> (Vec<PathBuf>, u64) {
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let (mut layers, mut diff_ids, mut files, mut total) = (vec![], vec![], vec![], 0u64);
    for dir in dirs {
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        let name = dir.strip_prefix("/").unwrap_or(dir);
        b.append_dir_all(name, dir).unwrap();
        let tar = b.into_inner().unwrap();
        total += tar.len() as u64;
        diff_ids.push(digest(&tar));
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&tar).unwrap();
        let gz = e.finish().unwrap();
        let d = blob(layout, &gz);
        files.push(layout.join("blobs/sha256").join(&d[7..]));
        layers.push(
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": d, "size": gz.len()}),
        );
    }
    let c = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["true"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
    .unwrap();
    let cd = blob(layout, &c);
    let m = serde_json::to_vec(&json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": c.len()},
        "layers": layers}))
    .unwrap();
    let md = blob(layout, &m);
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": m.len(),
            "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}))
        .unwrap(),
    )
    .unwrap();
    (files, total)
}

fn timed(mut c: Command) -> f64 {
    let t = Instant::now();
    let st = c.status().unwrap();
    assert!(st.success(), "{c:?} failed");
    t.elapsed().as_secs_f64() * 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let husk_image = PathBuf::from(arg("--husk-image").expect("--husk-image PATH"));
    let rounds: usize = arg("--rounds").and_then(|r| r.parse().ok()).unwrap_or(5);
    let mut dirs: Vec<PathBuf> = args
        .iter()
        .skip(1)
        .filter(|a| a.starts_with('/') && Path::new(a).is_dir() && !a.contains("husk-image"))
        .map(PathBuf::from)
        .collect();
    if dirs.is_empty() {
        dirs = ["/usr/include", "/usr/lib/python3", "/usr/share/doc"]
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .collect();
    }
    let work = std::env::temp_dir().join(format!("husk-image-bench.{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    let layout = work.join("layout");
    let (files, total) = build(&layout, &dirs);
    eprintln!(
        "image-bench: {} layers, {:.0} MB uncompressed, {rounds} rounds",
        files.len(),
        total as f64 / 1e6
    );
    let src = format!("oci:{}:bench", layout.display());
    let (mut flat, mut tar, mut cold, mut warm) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let out = work.join(format!("r{round}"));
        for step in 0..3 {
            match (step + round) % 3 {
                0 => {
                    let mut c = Command::new(&husk_image);
                    c.args(["unpack", "--flat", "--quiet", &src])
                        .arg(out.join("flat"));
                    flat.push(timed(c));
                }
                1 => {
                    let dest = out.join("tar");
                    fs::create_dir_all(&dest).unwrap();
                    let mut c = Command::new("sh");
                    c.arg("-c").arg(
                        files
                            .iter()
                            .map(|f| format!("tar -xzf {} -C {}", f.display(), dest.display()))
                            .collect::<Vec<_>>()
                            .join(" && "),
                    );
                    tar.push(timed(c));
                }
                _ => {
                    let mut c = Command::new(&husk_image);
                    c.args(["unpack", "--quiet", "--store"])
                        .arg(out.join("store"))
                        .arg(&src)
                        .arg(out.join("overlay"));
                    cold.push(timed(c));
                    let mut c = Command::new(&husk_image);
                    c.args(["unpack", "--quiet", "--store"])
                        .arg(out.join("store"))
                        .arg(&src)
                        .arg(out.join("overlay2"));
                    warm.push(timed(c));
                }
            }
        }
        let _ = fs::remove_dir_all(&out);
    }
    let _ = fs::remove_dir_all(&work);
    let (f, t, c, w) = (
        median(&mut flat),
        median(&mut tar),
        median(&mut cold),
        median(&mut warm),
    );
    println!("| metric | husk-image | tar -x | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| flat unpack, {:.0} MB in {} gzip layers (ms) | {f:.0} | {t:.0} | {:.2} |",
        total as f64 / 1e6,
        files.len(),
        f / t
    );
    println!(
        "| overlay unpack, empty store (ms) | {c:.0} | {t:.0} | {:.2} |",
        c / t
    );
    println!("| second overlay bundle, layers stored (ms) | {w:.1} | n/a | n/a |");
}
