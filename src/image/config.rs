//! config.json from an image config (image-spec conversion.md): the process
//! from Entrypoint + Cmd, Env, WorkingDir and User (names looked up in the
//! image's own /etc/passwd and /etc/group, read inside the rootfs), Labels,
//! ExposedPorts and StopSignal as annotations; the rest is husk's default spec.

use std::io::Read;
use std::path::Path;

use nix::fcntl::OFlag;
use serde_json::{Value, json};

use super::ImageError;
use crate::rootfs::resolve::open_in_root_flags;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a file of the image (resolved inside `rootfs`); empty if absent.
fn image_file(rootfs: &Path, path: &str) -> String {
    let Ok(root) = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) else {
        return String::new();
    };
    let Ok(fd) = open_in_root_flags(&root, Path::new(path), OFlag::O_RDONLY) else {
        return String::new();
    };
    let mut s = String::new();
    let _ = std::fs::File::from(fd).take(4 << 20).read_to_string(&mut s);
    s
}

/// Looks `name` up in an /etc/passwd- or /etc/group-shaped file: (id, gid).
fn lookup(db: &str, name: &str) -> Option<(u32, Option<u32>)> {
    db.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name)
            .then(|| (f[2].parse().ok(), f.get(3).and_then(|g| g.parse().ok())))
            .and_then(|(id, gid)| id.map(|id| (id, gid)))
    })
}

/// The OCI user of the image's `User` (user, uid, user:group, uid:gid).
pub fn user(rootfs: &Path, spec: &str) -> Result<(u32, u32), ImageError> {
    if spec.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = image_file(rootfs, "/etc/passwd");
    let (uid, primary) = match u.parse::<u32>() {
        // A numeric user still takes its primary group from /etc/passwd.
        Ok(n) => (
            n,
            passwd.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 4 && f[2] == u)
                    .then(|| f[3].parse().ok())
                    .flatten()
            }),
        ),
        Err(_) => lookup(&passwd, u).ok_or_else(|| {
            ImageError::Bad(format!(
                "config.User {spec:?}: no user {u:?} in the image's /etc/passwd"
            ))
        })?,
    };
    let gid = match g {
        None => primary.unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(&image_file(rootfs, "/etc/group"), g)
                .map(|(id, _)| id)
                .ok_or_else(|| {
                    ImageError::Bad(format!(
                        "config.User {spec:?}: no group {g:?} in the image's /etc/group"
                    ))
                })?,
        },
    };
    Ok((uid, gid))
}

/// The bundle's config.json for this image.
pub fn spec(
    image: &Value,
    rootfs: &Path,
    entrypoint: Option<&[String]>,
    args: &[String],
) -> Result<Value, ImageError> {
    let c = &image["config"];
    let mut process_args = match entrypoint {
        Some(e) => e.to_vec(),
        None => strings(&c["Entrypoint"]),
    };
    // Arguments given replace Cmd; a new entrypoint drops the image's Cmd too.
    if !args.is_empty() {
        process_args.extend(args.iter().cloned());
    } else if entrypoint.is_none() {
        process_args.extend(strings(&c["Cmd"]));
    }
    if process_args.is_empty() {
        return Err(ImageError::Bad(
            "the image has no Entrypoint or Cmd: give a command".into(),
        ));
    }
    let mut env = strings(&c["Env"]);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    let cwd = c["WorkingDir"]
        .as_str()
        .filter(|w| !w.is_empty())
        .unwrap_or("/");
    let (uid, gid) = user(rootfs, c["User"].as_str().unwrap_or(""))?;

    let mut spec = crate::spec::default_spec(false);
    spec["root"] = json!({"path": "rootfs", "readonly": false});
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!(process_args);
    spec["process"]["env"] = json!(env);
    spec["process"]["cwd"] = json!(cwd);
    spec["process"]["user"] = json!({"uid": uid, "gid": gid});
    let mut ann = serde_json::Map::new();
    if let Some(labels) = c["Labels"].as_object() {
        for (k, v) in labels {
            // Annotations a runtime acts on (husk's PID 1 mode, crun's
            // run.oci.*) come from the engine or the user, never the image.
            if RUNTIME_PREFIXES.iter().any(|p| k.starts_with(p)) {
                continue;
            }
            if let Some(v) = v.as_str() {
                ann.insert(k.clone(), json!(v));
            }
        }
    }
    if let Some(ports) = c["ExposedPorts"].as_object() {
        let list: Vec<&str> = ports.keys().map(String::as_str).collect();
        ann.insert(
            "org.opencontainers.image.exposedPorts".into(),
            json!(list.join(",")),
        );
    }
    if let Some(s) = c["StopSignal"].as_str() {
        ann.insert("org.opencontainers.image.stopSignal".into(), json!(s));
    }
    for (key, field) in [
        ("org.opencontainers.image.os", "os"),
        ("org.opencontainers.image.architecture", "architecture"),
        ("org.opencontainers.image.author", "author"),
        ("org.opencontainers.image.created", "created"),
    ] {
        if let Some(v) = image[field].as_str() {
            ann.insert(key.into(), json!(v));
        }
    }
    spec["annotations"] = Value::Object(ann);
    Ok(spec)
}

/// Annotation namespaces that steer OCI runtimes.
const RUNTIME_PREFIXES: [&str; 2] = ["run.husk.", "run.oci."];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_cmd_and_overrides() {
        let img = json!({"os": "linux", "config": {"Entrypoint": ["/bin/echo"], "Cmd": ["hi"],
            "Env": ["A=1"], "WorkingDir": "/w", "ExposedPorts": {"80/tcp": {}},
            "StopSignal": "SIGQUIT", "Labels": {"l": "v"}}});
        let root = Path::new("/nonexistent");
        let s = spec(&img, root, None, &[]).unwrap();
        assert_eq!(s["process"]["args"], json!(["/bin/echo", "hi"]));
        assert_eq!(s["process"]["cwd"], "/w");
        assert_eq!(s["process"]["env"][1], "A=1");
        assert_eq!(
            s["annotations"]["org.opencontainers.image.exposedPorts"],
            "80/tcp"
        );
        assert_eq!(
            s["annotations"]["org.opencontainers.image.stopSignal"],
            "SIGQUIT"
        );
        assert_eq!(s["annotations"]["l"], "v");
        let s = spec(&img, root, None, &["bye".into()]).unwrap();
        assert_eq!(s["process"]["args"], json!(["/bin/echo", "bye"]));
        let s = spec(&img, root, Some(&["/bin/sh".into()]), &[]).unwrap();
        assert_eq!(s["process"]["args"], json!(["/bin/sh"]));
        assert!(spec(&json!({"config": {}}), root, None, &[]).is_err());
    }

    #[test]
    fn users_resolve_through_the_images_files() {
        let dir = std::env::temp_dir().join(format!("husk-imguser-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1001:1002::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        assert_eq!(user(&dir, "app").unwrap(), (1001, 1002));
        assert_eq!(user(&dir, "app:staff").unwrap(), (1001, 50));
        assert_eq!(user(&dir, "7:8").unwrap(), (7, 8));
        assert_eq!(user(&dir, "1001").unwrap(), (1001, 1002));
        assert_eq!(user(&dir, "4242").unwrap(), (4242, 0));
        assert!(
            user(&dir, "nobody")
                .unwrap_err()
                .to_string()
                .contains("nobody")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
