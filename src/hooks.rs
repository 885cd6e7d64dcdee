//! Lifecycle hooks (config.md, POSIX-platform Hooks): each runs with the
//! container's state JSON on stdin, its own args and env, and an optional
//! timeout; its output is kept for the error message if it fails.

use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

use oci_spec::runtime::Hook;
use serde::Serialize;

use crate::process::clone::{pidfd_open, pidfd_wait_exit};

/// The state a hook receives (runtime.md, State).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: &'a str,
    pub pid: i32,
    pub bundle: &'a std::path::Path,
    pub annotations: &'a std::collections::HashMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hooks.{phase}[{index}]: {path}: {msg}")]
    Failed {
        phase: &'static str,
        index: usize,
        path: String,
        msg: String,
    },
}

/// Runs the hooks of one phase in order; the first failure stops the rest.
pub fn run(phase: &'static str, hooks: &[Hook], state: &HookState<'_>) -> Result<(), HookError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec(state).unwrap_or_default();
    for (index, h) in hooks.iter().enumerate() {
        run_one(h, &json).map_err(|msg| HookError::Failed {
            phase,
            index,
            path: h.path().display().to_string(),
            msg,
        })?;
    }
    Ok(())
}

/// Runs every hook of a phase, even after a failure (poststop: the spec says to
/// warn and go on); returns the failures.
pub fn run_all(phase: &'static str, hooks: &[Hook], state: &HookState<'_>) -> Vec<HookError> {
    let json = serde_json::to_vec(state).unwrap_or_default();
    hooks
        .iter()
        .enumerate()
        .filter_map(|(index, h)| {
            run_one(h, &json).err().map(|msg| HookError::Failed {
                phase,
                index,
                path: h.path().display().to_string(),
                msg,
            })
        })
        .collect()
}

fn run_one(h: &Hook, state: &[u8]) -> Result<(), String> {
    let args = h.args().clone().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1));
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    // Output goes to an anonymous file rather than a pipe: no reader thread,
    // and a chatty hook cannot block on a full pipe.
    let out = memfd().map_err(|e| format!("memfd: {e}"))?;
    cmd.stdin(Stdio::piped())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(out.try_clone().map_err(|e| e.to_string())?);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state);
    }
    if let Some(t) = h.timeout() {
        if t <= 0 {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timeout must be greater than zero, got {t}"));
        }
        let pidfd = pidfd_open(child.id() as i32).map_err(|e| format!("pidfd_open: {e}"))?;
        let ms = i32::try_from(t.saturating_mul(1000)).unwrap_or(i32::MAX);
        if !pidfd_wait_exit(pidfd.as_fd(), ms) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {t}s"));
        }
    }
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let mut output = String::new();
    let mut f = out;
    let _ = f.rewind();
    let _ = f.take(4096).read_to_string(&mut output);
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".to_string(),
    };
    let output = output.trim();
    if output.is_empty() {
        Err(how)
    } else {
        Err(format!("{how}: {output}"))
    }
}

fn memfd() -> std::io::Result<std::fs::File> {
    let fd = nix::sys::memfd::memfd_create(c"husk-hook", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    Ok(std::fs::File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::HookBuilder;
    use std::collections::HashMap;

    fn state<'a>(a: &'a HashMap<String, String>) -> HookState<'a> {
        HookState {
            oci_version: "1.0.2",
            id: "c1",
            status: "creating",
            pid: 42,
            bundle: std::path::Path::new("/b"),
            annotations: a,
        }
    }

    fn hook(args: &[&str], timeout: Option<i64>) -> Hook {
        let mut b = HookBuilder::default()
            .path("/bin/sh")
            .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .env(vec!["FOO=bar".to_string()]);
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b.build().unwrap()
    }

    #[test]
    fn hook_gets_state_env_and_args() {
        let a = HashMap::new();
        let dir = std::env::temp_dir().join(format!("husk-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let script = format!(
            "cat > {}; echo \"$FOO $0 $1\" >> {}",
            out.display(),
            out.display()
        );
        run(
            "createRuntime",
            &[hook(&["sh", "-c", &script, "zero", "one"], None)],
            &state(&a),
        )
        .unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        assert!(got.contains("\"pid\":42"), "{got}");
        assert!(got.contains("\"status\":\"creating\""), "{got}");
        assert!(got.trim_end().ends_with("bar zero one"), "{got}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failing_hook_reports_status_and_output() {
        let a = HashMap::new();
        let e = run(
            "prestart",
            &[hook(&["sh", "-c", "echo nope >&2; exit 3"], None)],
            &state(&a),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("hooks.prestart[0]"), "{e}");
        assert!(e.contains("status 3"), "{e}");
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn timeout_kills_hook() {
        let a = HashMap::new();
        let t = std::time::Instant::now();
        let e = run(
            "poststart",
            &[hook(&["sh", "-c", "sleep 10"], Some(1))],
            &state(&a),
        )
        .unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn run_all_continues_after_failure() {
        let a = HashMap::new();
        let errs = run_all(
            "poststop",
            &[
                hook(&["sh", "-c", "exit 1"], None),
                hook(&["sh", "-c", "exit 0"], None),
                hook(&["sh", "-c", "exit 2"], None),
            ],
            &state(&a),
        );
        assert_eq!(errs.len(), 2);
    }
}
