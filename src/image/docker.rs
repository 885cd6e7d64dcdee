//! `docker save` / `podman save` archives (docker-archive): a manifest.json
//! naming, per image, the config file and the layer tars. There are no
//! descriptors: the config is checked against its file name when that is a
//! digest, and every layer against the config's diff ids once extracted.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::Digest;

use super::unpack::clean;
use super::{Descriptor, ImageError, MAX_JSON, io, open_member, read_member};

fn sha256_file(dir: &Path, rel: &Path) -> Result<(String, u64), ImageError> {
    let path = &dir.join(rel);
    let mut f = open_member(dir, rel).map_err(io(path.display().to_string()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path.display().to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((format!("sha256:{hex}"), size))
}

/// The media type a layer file has, by its first bytes.
fn media_type(dir: &Path, rel: &Path) -> Result<&'static str, ImageError> {
    let mut magic = [0u8; 4];
    let path = &dir.join(rel);
    let mut f = open_member(dir, rel).map_err(io(path.display().to_string()))?;
    let n = f.read(&mut magic).map_err(io(path.display().to_string()))?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => "application/vnd.oci.image.layer.v1.tar+gzip",
        [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd",
        _ => "application/vnd.oci.image.layer.v1.tar",
    })
}

/// A file the manifest names, relative to the unpacked archive.
fn member(name: &Value, field: &str) -> Result<PathBuf, ImageError> {
    let name = name
        .as_str()
        .ok_or_else(|| ImageError::Bad(format!("manifest.json: {field} missing")))?;
    Ok(clean(Path::new(name)))
}

/// Whether a RepoTags entry is what the user named.
fn tag_matches(tag: &str, want: &str) -> bool {
    let with_latest = if want.contains(':') {
        want.to_string()
    } else {
        format!("{want}:latest")
    };
    tag == want || tag == with_latest || tag.ends_with(&format!("/{with_latest}"))
}

/// The chosen image's config and its layers (descriptor, file relative to `dir`).
pub fn open(
    dir: &Path,
    reference: Option<&str>,
) -> Result<(Value, Vec<(Descriptor, PathBuf)>), ImageError> {
    let text = read_member(dir, Path::new("manifest.json"), MAX_JSON)
        .map_err(|e| ImageError::Bad(format!("manifest.json: {e} (is this a docker-archive?)")))?;
    let manifest: Value = serde_json::from_slice(&text)
        .map_err(|e| ImageError::Bad(format!("manifest.json: {e}")))?;
    let images = manifest
        .as_array()
        .ok_or_else(|| ImageError::Bad("manifest.json: not a list".into()))?;
    let chosen: Vec<&Value> = match reference {
        None => images.iter().collect(),
        Some(r) => images
            .iter()
            .filter(|i| {
                i["RepoTags"].as_array().is_some_and(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .any(|t| tag_matches(t, r))
                })
            })
            .collect(),
    };
    let image = match chosen.as_slice() {
        [i] => *i,
        [] => {
            return Err(ImageError::Source(format!(
                "docker-archive: no image{}",
                reference
                    .map(|r| format!(" tagged {r:?}"))
                    .unwrap_or_default()
            )));
        }
        _ => {
            return Err(ImageError::Source(format!(
                "docker-archive: {} images; name one (docker-archive:FILE:NAME:TAG)",
                chosen.len()
            )));
        }
    };
    let config_path = member(&image["Config"], "Config")?;
    let (digest, _) = sha256_file(dir, &config_path)?;
    // Legacy archives name the config by its digest: hold it to that.
    let stem = config_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()) && digest[7..] != *stem {
        return Err(ImageError::Blob {
            digest: format!("sha256:{stem}"),
            msg: format!("config content hashes to {digest}"),
        });
    }
    let config: Value = serde_json::from_slice(&read_member(dir, &config_path, MAX_JSON)?)
        .map_err(|e| ImageError::Bad(format!("{}: {e}", config_path.display())))?;
    let mut layers = Vec::new();
    for (i, l) in image["Layers"]
        .as_array()
        .ok_or_else(|| ImageError::Bad("manifest.json: Layers missing".into()))?
        .iter()
        .enumerate()
    {
        let p = member(l, &format!("Layers[{i}]"))?;
        let (digest, size) = sha256_file(dir, &p)?;
        layers.push((
            Descriptor {
                media_type: media_type(dir, &p)?.to_string(),
                digest,
                size,
                annotations: Default::default(),
                platform: None,
            },
            p,
        ));
    }
    Ok((config, layers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_match_as_users_write_them() {
        assert!(tag_matches("busybox:latest", "busybox"));
        assert!(tag_matches("docker.io/library/busybox:latest", "busybox"));
        assert!(tag_matches("localhost/app:1.0", "localhost/app:1.0"));
        assert!(!tag_matches("busybox:1.36", "busybox"));
    }
}
