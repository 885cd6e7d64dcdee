//! Loading a bundle: `config.json` read into the OCI types, with errors that name
//! the JSON path of what is wrong (bundle.md, config.md).

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

/// Errors from reading a bundle's configuration.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {path}: {source}")]
    Bundle {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot read config.json: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid config.json at {json_path}: {msg}")]
    Parse {
        path: PathBuf,
        json_path: String,
        msg: String,
    },
    #[error("{path}: {field}: {msg}")]
    Invalid {
        path: PathBuf,
        field: String,
        msg: String,
    },
}

/// The versions of the runtime spec whose configs husk understands (config.md: ociVersion).
pub const SPEC_VERSION: &str = "1.2.1";

/// A bundle directory and its parsed configuration.
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    pub spec: Spec,
    /// config.json as read, for `create` to keep in its private state.
    pub raw: Vec<u8>,
}

impl Bundle {
    /// Reads `DIR/config.json`. The directory is made absolute, since the state
    /// records it and hooks receive it.
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let dir = std::path::absolute(dir).map_err(|source| BundleError::Bundle {
            path: dir.to_path_buf(),
            source,
        })?;
        let meta = std::fs::metadata(&dir).map_err(|source| BundleError::Bundle {
            path: dir.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(BundleError::Bundle {
                path: dir,
                source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
            });
        }
        let path = dir.join("config.json");
        let raw = std::fs::read(&path).map_err(|source| BundleError::Read {
            path: path.clone(),
            source,
        })?;
        let spec = parse(&raw[..]).map_err(|(json_path, msg)| BundleError::Parse {
            path: path.clone(),
            json_path,
            msg,
        })?;
        check_version(spec.version()).map_err(|msg| BundleError::Invalid {
            path,
            field: "ociVersion".into(),
            msg,
        })?;
        Ok(Bundle { dir, spec, raw })
    }
}

/// Parses a config, returning the JSON path and message of the first error.
pub fn parse<R: std::io::Read>(reader: R) -> Result<Spec, (String, String)> {
    let de = &mut serde_json::Deserializer::from_reader(reader);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let p = e.path().to_string();
        let json_path = if p == "." {
            "(top level)".to_string()
        } else {
            p
        };
        (json_path, e.into_inner().to_string())
    })
}

/// Accepts any 1.x version (the spec keeps 1.x backwards compatible), and refuses
/// anything else with a reason.
pub fn check_version(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("missing; this runtime supports 1.0.0 up to ".to_string() + SPEC_VERSION);
    }
    let major = v.split('.').next().unwrap_or("");
    if major != "1" {
        return Err(format!(
            "unsupported version {v:?}; this runtime supports 1.0.0 up to {SPEC_VERSION}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_names_json_path() {
        let json = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":"zero","gid":0}}}"#;
        let (path, _msg) = parse(json.as_bytes()).expect_err("must fail");
        assert_eq!(path, "process.user.uid");
    }

    #[test]
    fn versions() {
        assert!(check_version("1.0.2-dev").is_ok());
        assert!(check_version("1.2.1").is_ok());
        assert!(check_version("2.0.0").is_err());
        assert!(check_version("0.1.0").is_err());
        assert!(check_version("").is_err());
    }
}
