//! The checker placed in every conformance container's rootfs (statically
//! linked, so it needs nothing from the image). It reports what the container
//! sees as JSON on stdout; the runner compares that with the config.
//!
//! Usage: oci-check facts | stat PATH | write PATH | read PATH | mkdir PATH |
//!        wait-signal | sleep SECS

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use serde_json::{Value, json};

fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM".into(),
        Some(libc::EACCES) => "EACCES".into(),
        Some(libc::EROFS) => "EROFS".into(),
        Some(libc::ENOENT) => "ENOENT".into(),
        Some(libc::ENOSYS) => "ENOSYS".into(),
        Some(libc::EEXIST) => "EEXIST".into(),
        Some(n) => format!("errno {n}"),
        None => e.to_string(),
    }
}

fn status_field(status: &str, key: &str) -> Value {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| json!(v.trim())))
        .unwrap_or(Value::Null)
}

fn rlimits() -> Value {
    let names = [
        ("RLIMIT_CPU", libc::RLIMIT_CPU),
        ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
        ("RLIMIT_DATA", libc::RLIMIT_DATA),
        ("RLIMIT_STACK", libc::RLIMIT_STACK),
        ("RLIMIT_CORE", libc::RLIMIT_CORE),
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
        ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
        ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
        ("RLIMIT_AS", libc::RLIMIT_AS),
        ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ];
    let mut m = serde_json::Map::new();
    for (name, r) in names {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit struct.
        unsafe { libc::getrlimit(r, &mut l) };
        m.insert(name.into(), json!([l.rlim_cur, l.rlim_max]));
    }
    Value::Object(m)
}

fn facts() -> Value {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    // SAFETY: umask has no failure mode; it is set back at once.
    let umask = unsafe {
        let m = libc::umask(0);
        libc::umask(m);
        m
    };
    // SAFETY: getgroups with a correctly sized buffer.
    let groups: Vec<u32> = unsafe {
        let n = libc::getgroups(0, std::ptr::null_mut());
        let mut v = vec![0 as libc::gid_t; n.max(0) as usize];
        let n = libc::getgroups(n, v.as_mut_ptr());
        v.truncate(n.max(0) as usize);
        v
    };
    let mut ns = serde_json::Map::new();
    for t in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        let link = fs::read_link(format!("/proc/self/ns/{t}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        ns.insert(t.into(), json!(link));
    }
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills the struct.
    unsafe { libc::uname(&mut uts) };
    let cstr = |a: &[libc::c_char]| {
        // SAFETY: utsname fields are NUL-terminated.
        unsafe { std::ffi::CStr::from_ptr(a.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    json!({
        "pid": std::process::id(),
        // SAFETY: these getters cannot fail.
        "uid": unsafe { libc::getuid() },
        "gid": unsafe { libc::getgid() },
        "groups": groups,
        "umask": umask,
        "cwd": std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
        "env": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "hostname": cstr(&uts.nodename),
        "domainname": cstr(&uts.domainname),
        "machine": cstr(&uts.machine),
        "caps": {
            "inheritable": status_field(&status, "CapInh:"),
            "permitted": status_field(&status, "CapPrm:"),
            "effective": status_field(&status, "CapEff:"),
            "bounding": status_field(&status, "CapBnd:"),
            "ambient": status_field(&status, "CapAmb:"),
        },
        "no_new_privs": status_field(&status, "NoNewPrivs:"),
        "seccomp": status_field(&status, "Seccomp:"),
        "oom_score_adj": fs::read_to_string("/proc/self/oom_score_adj").unwrap_or_default().trim(),
        "rlimits": rlimits(),
        "ns": ns,
        "uid_map": fs::read_to_string("/proc/self/uid_map").unwrap_or_default(),
        "gid_map": fs::read_to_string("/proc/self/gid_map").unwrap_or_default(),
        "cgroup": fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        "mountinfo": fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
        "isatty": unsafe { libc::isatty(0) } == 1,
        "fds": fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
    })
}

fn stat(path: &str) -> Value {
    match fs::symlink_metadata(path) {
        Err(e) => json!({"error": errno_name(&e)}),
        Ok(m) => {
            let t = m.file_type();
            let kind = if t.is_symlink() {
                "symlink"
            } else if t.is_dir() {
                "dir"
            } else if t.is_char_device() {
                "char"
            } else if t.is_block_device() {
                "block"
            } else if t.is_fifo() {
                "fifo"
            } else {
                "file"
            };
            let rdev = m.rdev();
            json!({
                "type": kind,
                "mode": m.mode() & 0o7777,
                "uid": m.uid(),
                "gid": m.gid(),
                "major": libc::major(rdev),
                "minor": libc::minor(rdev),
                "size": m.size(),
                "link": fs::read_link(path).map(|p| p.display().to_string()).ok(),
            })
        }
    }
}

static GOT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    GOT.store(sig, std::sync::atomic::Ordering::SeqCst);
}

fn wait_signal() -> Value {
    for sig in 1..32 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || sig == libc::SIGCHLD {
            continue;
        }
        // SAFETY: installing a handler that only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    println!("{}", json!({"ready": true}));
    loop {
        // SAFETY: pause just waits for a signal.
        unsafe { libc::pause() };
        let s = GOT.load(std::sync::atomic::Ordering::SeqCst);
        if s != 0 {
            return json!({"signal": s});
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let out = match arg(1).as_str() {
        "facts" => facts(),
        "stat" => stat(&arg(2)),
        "write" => match fs::write(arg(2), "x") {
            Ok(()) => json!({"ok": true}),
            Err(e) => json!({"error": errno_name(&e)}),
        },
        "read" => match fs::read(arg(2)) {
            Ok(b) => json!({"ok": true, "len": b.len(), "text": String::from_utf8_lossy(&b)}),
            Err(e) => json!({"error": errno_name(&e)}),
        },
        "mkdir" => {
            let c = CString::new(arg(2)).unwrap_or_default();
            // SAFETY: mkdir with a valid C string.
            if unsafe { libc::mkdir(c.as_ptr(), 0o755) } == 0 {
                json!({"ok": true})
            } else {
                json!({"error": errno_name(&std::io::Error::last_os_error())})
            }
        }
        "wait-signal" => wait_signal(),
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(arg(2).parse().unwrap_or(60)));
            json!({"slept": true})
        }
        other => {
            eprintln!("oci-check: unknown command {other:?}");
            std::process::exit(2);
        }
    };
    println!("{out}");
}
