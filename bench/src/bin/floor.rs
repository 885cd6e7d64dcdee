//! The floor: only the kernel work that running the benchmark's bundle cannot
//! avoid — new namespaces, the same mounts, device nodes, masked and read-only
//! paths, pivot_root, exec — with no runtime logic around it. The report puts
//! every runtime against this.
//!
//! Usage: bench-floor ROOTFS PROGRAM

use std::ffi::CString;

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

fn check(r: libc::c_int, what: &str) {
    if r < 0 {
        eprintln!("bench-floor: {what}: {}", std::io::Error::last_os_error());
        // SAFETY: exiting without running destructors is fine in this tool.
        unsafe { libc::_exit(1) };
    }
}

fn mount(src: &str, dst: &str, fstype: &str, flags: libc::c_ulong, data: &str) {
    let (s, d, t, o) = (c(src), c(dst), c(fstype), c(data));
    // SAFETY: valid C strings for the call's duration.
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            d.as_ptr(),
            if fstype.is_empty() {
                std::ptr::null()
            } else {
                t.as_ptr()
            },
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                o.as_ptr().cast()
            },
        )
    };
    check(r, &format!("mount {dst}"));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (rootfs, program) = match (args.get(1), args.get(2)) {
        (Some(r), Some(p)) => (r.clone(), p.clone()),
        _ => {
            eprintln!("usage: bench-floor ROOTFS PROGRAM");
            std::process::exit(2);
        }
    };
    let ns = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    // SAFETY: plain syscalls on this single-threaded process.
    unsafe {
        check(libc::unshare(ns), "unshare");
        let pid = libc::fork();
        check(pid, "fork");
        if pid > 0 {
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            std::process::exit(libc::WEXITSTATUS(status));
        }
    }
    let (nosuid, nodev, noexec) = (libc::MS_NOSUID, libc::MS_NODEV, libc::MS_NOEXEC);
    mount("", "/", "", libc::MS_SLAVE | libc::MS_REC, "");
    mount(&rootfs, &rootfs, "", libc::MS_BIND | libc::MS_REC, "");
    let at = |p: &str| format!("{rootfs}{p}");
    mount("proc", &at("/proc"), "proc", 0, "");
    mount(
        "tmpfs",
        &at("/dev"),
        "tmpfs",
        nosuid | libc::MS_STRICTATIME,
        "mode=755,size=65536k",
    );
    for d in ["/dev/pts", "/dev/shm", "/dev/mqueue"] {
        let p = c(&at(d));
        // SAFETY: a valid C string.
        unsafe { libc::mkdir(p.as_ptr(), 0o755) };
    }
    mount(
        "devpts",
        &at("/dev/pts"),
        "devpts",
        nosuid | noexec,
        "newinstance,ptmxmode=0666,mode=0620",
    );
    mount(
        "shm",
        &at("/dev/shm"),
        "tmpfs",
        nosuid | noexec | nodev,
        "mode=1777,size=65536k",
    );
    mount(
        "mqueue",
        &at("/dev/mqueue"),
        "mqueue",
        nosuid | noexec | nodev,
        "",
    );
    mount(
        "sysfs",
        &at("/sys"),
        "sysfs",
        nosuid | noexec | nodev | libc::MS_RDONLY,
        "",
    );
    mount("tmpfs", &at("/tmp"), "tmpfs", nosuid | nodev, "");
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = c(&at(&format!("/dev/{name}")));
        // SAFETY: a valid C string.
        check(
            unsafe {
                libc::mknod(
                    p.as_ptr(),
                    libc::S_IFCHR | 0o666,
                    libc::makedev(major, minor),
                )
            },
            "mknod",
        );
    }
    let r = c(&rootfs);
    // SAFETY: valid C strings; pivot_root(".", ".") as runtimes do it.
    unsafe {
        check(libc::chdir(r.as_ptr()), "chdir");
        check(
            libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as i32,
            "pivot_root",
        );
        mount("", ".", "", libc::MS_SLAVE | libc::MS_REC, "");
        check(
            libc::umount2(c".".as_ptr(), libc::MNT_DETACH),
            "umount old root",
        );
        check(libc::chdir(c"/".as_ptr()), "chdir /");
    }
    for p in ["/proc/keys", "/proc/timer_list"] {
        mount("/dev/null", p, "", libc::MS_BIND, "");
    }
    mount("tmpfs", "/sys/firmware", "tmpfs", libc::MS_RDONLY, "");
    for p in ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"] {
        mount(p, p, "", libc::MS_BIND | libc::MS_REC, "");
        mount(
            "",
            p,
            "",
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | nosuid | nodev | noexec,
            "",
        );
    }
    mount(
        "",
        "/",
        "",
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
        "",
    );
    let prog = c(&program);
    let argv = [prog.as_ptr(), std::ptr::null()];
    let envp = [c"PATH=/bin".as_ptr(), std::ptr::null()];
    // SAFETY: NULL-terminated argument and environment arrays.
    unsafe { libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    check(-1, "execve");
}
