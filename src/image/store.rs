//! The layer store: one directory per layer, named by the hex of its diff id,
//! shared by overlay bundles. Each bundle made from it leaves a reference
//! (`.refs/<hash of the bundle path>.json`: the bundle and the layers it
//! uses), so `gc` can tell which layers no bundle needs any more.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use sha2::Digest;

use super::{ImageError, io};

/// A reference this young to a bundle directory without config.json yet
/// counts as live: an unpack may be running.
const GRACE: Duration = Duration::from_secs(3600);

fn refs(store: &Path) -> PathBuf {
    store.join(".refs")
}

/// Records that `bundle` uses `layers` (hex names), before they are stored.
pub fn add_ref(store: &Path, bundle: &Path, layers: &[String]) -> Result<(), ImageError> {
    let bundle = std::path::absolute(bundle).map_err(io(bundle.display().to_string()))?;
    let dir = refs(store);
    fs::create_dir_all(&dir).map_err(io(dir.display().to_string()))?;
    let key: String = sha2::Sha256::digest(bundle.as_os_str().as_encoded_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let body = json!({"bundle": bundle, "layers": layers}).to_string();
    let path = dir.join(format!("{key}.json"));
    crate::files::write_atomic(&path, body.as_bytes(), 0o644)
        .map_err(io(path.display().to_string()))
}

/// One stored layer: its name, size on disk, and the live bundles using it.
pub struct LayerInfo {
    pub hex: String,
    pub bytes: u64,
    pub bundles: Vec<PathBuf>,
}

fn live_refs(store: &Path) -> Vec<(PathBuf, PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(refs(store)) else {
        return out;
    };
    for e in rd.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(v) = fs::read(&path).map(|t| serde_json::from_slice::<Value>(&t)) else {
            continue;
        };
        let Ok(v) = v else { continue };
        let bundle = PathBuf::from(v["bundle"].as_str().unwrap_or_default());
        let young = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < GRACE);
        // Live: the bundle is there, or it is being made (its directory
        // exists, config.json not yet) and the reference is recent.
        if bundle.join("config.json").exists() || (bundle.is_dir() && young) {
            let layers = v["layers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            out.push((path, bundle, layers));
        }
    }
    out
}

fn du(p: &Path) -> u64 {
    let Ok(m) = fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}

fn is_layer(name: &str) -> bool {
    (name.len() == 64 || name.len() == 128) && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The stored layers, with the bundles that still use them.
pub fn list(store: &Path) -> Result<Vec<LayerInfo>, ImageError> {
    let live = live_refs(store);
    let mut out = Vec::new();
    let rd = match fs::read_dir(store) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(store.display().to_string())(e)),
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_layer(&name) {
            continue;
        }
        let bundles = live
            .iter()
            .filter(|(_, _, l)| l.contains(&name))
            .map(|(_, b, _)| b.clone())
            .collect();
        out.push(LayerInfo {
            bytes: du(&e.path()),
            hex: name,
            bundles,
        });
    }
    out.sort_by(|a, b| a.hex.cmp(&b.hex));
    Ok(out)
}

/// Removes the layers no live bundle uses, and the references of bundles
/// that are gone; returns the removed layers.
pub fn gc(store: &Path) -> Result<Vec<String>, ImageError> {
    // Killed unpacks' temporaries: layer directories, reference files.
    super::sweep(store, &[super::LAYER_TEMP]);
    super::sweep(&refs(store), &["."]);
    let live = live_refs(store);
    if let Ok(rd) = fs::read_dir(refs(store)) {
        for e in rd.flatten() {
            if !live.iter().any(|(p, _, _)| *p == e.path()) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    let mut removed = Vec::new();
    for l in list(store)? {
        if l.bundles.is_empty() {
            let p = store.join(&l.hex);
            fs::remove_dir_all(&p).map_err(io(p.display().to_string()))?;
            removed.push(l.hex);
        }
    }
    Ok(removed)
}
