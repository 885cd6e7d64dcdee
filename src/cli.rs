//! The command line, flag for flag as runc's, so engines can drive husk as
//! they drive runc (shared ENGINE-CONTRACT.md).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::container::{self, Error, StateOutput, create::CreateArgs, list};
use crate::log::{self, Logger};
use crate::plan::CreateOptions;

#[derive(Parser, Debug)]
#[command(
    name = "husk",
    about = "A small, fast OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// Directory for container state (default: /run/husk; for a rootless
    /// caller, $XDG_RUNTIME_DIR/husk).
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Write logs here (engines read errors from it).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: log::Format,
    #[arg(long, global = true)]
    pub debug: bool,
    /// The systemd cgroup driver: linux.cgroupsPath is `slice:prefix:name`, and the
    /// container's cgroup a transient scope `prefix-name.scope` that systemd makes.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility; husk never uses CRIU.
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(clap::Args, Debug)]
pub struct CreateFlags {
    /// The bundle directory (default: the current directory).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's init pid here.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the terminal's master fd to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Move the root instead of pivot_root (for ramdisk roots).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Keep the caller's session keyring.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass this many extra descriptors (from 3 up) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a container from a bundle; it waits for `start`.
    Create {
        #[command(flatten)]
        flags: CreateFlags,
        id: String,
    },
    /// Run the user process of a created container.
    Start { id: String },
    /// A minimal PID 1: run CMD as a child, forward signals, reap zombies,
    /// exit with CMD's status (as tini does).
    Init {
        /// Forward signals to CMD's process group.
        #[arg(short = 'g')]
        process_group: bool,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
    /// Run another process in a running container.
    Exec {
        /// The process as OCI Process JSON (what engines pass).
        #[arg(short = 'p', long)]
        process: Option<PathBuf>,
        /// Give the process a terminal.
        #[arg(short = 't', long)]
        tty: bool,
        /// Send the terminal's master to this unix socket.
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        /// Return once the process runs.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Write the process's pid to this file.
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        /// Working directory in the container.
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Set an environment variable (NAME=VALUE); repeatable.
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        /// UID[:GID] to run as.
        #[arg(short = 'u', long)]
        user: Option<String>,
        /// Supplementary group; repeatable.
        #[arg(short = 'g', long = "additional-gids")]
        additional_gids: Vec<u32>,
        /// Add a capability; repeatable.
        #[arg(short = 'c', long = "cap")]
        cap: Vec<String>,
        /// Set no_new_privs for the process.
        #[arg(long = "no-new-privs")]
        no_new_privs: bool,
        /// Pass this many extra descriptors (from 3 up) to the process.
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: u32,
        /// The AppArmor profile of the process (instead of the container's).
        #[arg(long, default_value = "")]
        apparmor: String,
        /// The SELinux label of the process (instead of the container's).
        #[arg(long = "process-label", default_value = "")]
        process_label: String,
        id: String,
        /// The command and its arguments (unless --process).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (default TERM) to a container.
    Kill {
        /// Signal every process of the container.
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Delete a container's resources.
    Delete {
        /// Kill the container first if it is running.
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Create and start a container.
    Run {
        #[command(flatten)]
        flags: CreateFlags,
        /// Return once started, leaving the container running.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Do not delete the container after it exits.
        #[arg(long)]
        keep: bool,
        id: String,
    },
    /// List containers.
    List {
        #[arg(short = 'f', long, value_enum, default_value = "table")]
        format: list::Format,
        /// Print only the ids.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a default config.json.
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// A config for running without root (user namespace, no network namespace).
        #[arg(long)]
        rootless: bool,
    },
    /// Print what this runtime supports, as OCI features JSON.
    Features,
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// List a container's processes.
    Ps {
        #[arg(short = 'f', long, value_enum, default_value = "table")]
        format: list::Format,
        id: String,
        /// Accepted for runc compatibility (runc passes them to ps(1)).
        #[arg(trailing_var_arg = true, hide = true)]
        ps_args: Vec<String>,
    },
    /// Change a running container's resources.
    Update {
        #[command(flatten)]
        flags: container::update::UpdateFlags,
        id: String,
    },
    /// Print stats and OOM events of a container.
    Events {
        /// Print one stats event and exit.
        #[arg(long)]
        stats: bool,
        /// Time between stats events (e.g. 5s, 500ms).
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
}

/// Parses the command line, runs the command, and returns the exit code.
pub fn main() -> i32 {
    // PID 1 of a container lives as long as it does: `husk init -- CMD` skips
    // the parser (and the code and pages it would touch) when spelt exactly so.
    let argv: Vec<String> = std::env::args().collect();
    if let Some(code) = fast_init(&argv) {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let logger = Logger::new(cli.log.as_deref(), cli.log_format, cli.debug);
    if cli.version {
        println!(
            "husk version {}\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            crate::bundle::SPEC_VERSION
        );
        return 0;
    }
    let Some(cmd) = cli.cmd else {
        logger.error("no command given; see husk --help");
        return 2;
    };
    // runc's exec exits 255 on any failure of its own, so a caller can tell
    // it from the program's exit status.
    let failed = if matches!(cmd, Cmd::Exec { .. }) {
        255
    } else {
        1
    };
    let root = cli.root.clone().unwrap_or_else(|| {
        crate::rootless::default_root(
            &crate::rootless::Caller::current(),
            std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
            std::env::var_os("USER").as_deref(),
        )
    });
    match dispatch(&root, cli.systemd_cgroup, cmd, &logger) {
        Ok(code) => code,
        Err(e) => {
            logger.error(&e.to_string());
            failed
        }
    }
}

/// `husk init [-g] -- CMD…` as the runtime writes it for `run.husk.init`.
fn fast_init(argv: &[String]) -> Option<i32> {
    let rest = argv.get(1..)?;
    let (group, cmd) = match rest {
        [i, dd, cmd @ ..] if i == "init" && dd == "--" => (false, cmd),
        [i, g, dd, cmd @ ..] if i == "init" && g == "-g" && dd == "--" => (true, cmd),
        _ => return None,
    };
    match crate::init::reaper::run(cmd, group) {
        Ok(code) => Some(code),
        Err(e) => {
            eprintln!("husk: {e}");
            Some(1)
        }
    }
}

/// Fills descriptors 3..3+n that the caller did not pass with /dev/null, so
/// husk's own descriptors land above the preserved range and never reach the
/// container in its place.
fn reserve_preserved_fds(n: u32) {
    // Past the descriptor limit there are none to keep.
    let (limit, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap_or((1024, 1024));
    let end = u64::from(n)
        .saturating_add(3)
        .min(limit)
        .min(i32::MAX as u64) as i32;
    for fd in 3..end {
        // SAFETY: F_GETFD only queries; an unused descriptor fails with EBADF.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            continue;
        }
        if let Ok(null) = std::fs::File::open("/dev/null") {
            let raw = std::os::fd::IntoRawFd::into_raw_fd(null);
            if raw != fd {
                // SAFETY: dup2 onto a descriptor number nothing uses, then close
                // the temporary one we own.
                unsafe {
                    libc::dup2(raw, fd);
                    libc::close(raw);
                }
            }
        }
    }
}

fn create_args<'a>(id: &'a str, f: &'a CreateFlags, systemd: bool) -> CreateArgs<'a> {
    // systemd socket activation: LISTEN_FDS descriptors from 3 up are the
    // container's too (they come before any --preserve-fds ones in runc's count).
    let listen_fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    let passed = f.preserve_fds.saturating_add(listen_fds);
    if passed > 0 {
        reserve_preserved_fds(passed);
    }
    CreateArgs {
        id,
        bundle: &f.bundle,
        pid_file: f.pid_file.as_deref(),
        console_socket: f.console_socket.as_deref(),
        console_fd: None,
        opts: CreateOptions {
            no_pivot: f.no_pivot,
            no_new_keyring: f.no_new_keyring,
            preserve_fds: f.preserve_fds,
            listen_fds,
            lsm: crate::lsm::HostLsm::detect(),
            caller: crate::rootless::Caller::current(),
            // Set by create from the console socket it is given.
            ..Default::default()
        },
        systemd_cgroup: systemd,
    }
}

fn dispatch(root: &Path, systemd: bool, cmd: Cmd, logger: &Logger) -> Result<i32, Error> {
    match cmd {
        Cmd::Create { flags, id } => {
            crate::process::selfexe::ensure_read_only()?;
            let created = container::create::create(root, &create_args(&id, &flags, systemd))?;
            for w in &created.warnings {
                logger.warn(w);
            }
        }
        Cmd::Start { id } => container::start::start(root, &id)?,
        Cmd::Init { process_group, cmd } => {
            return crate::init::reaper::run(&cmd, process_group).map_err(Error::Config);
        }
        Cmd::Exec {
            process,
            tty,
            console_socket,
            detach,
            pid_file,
            cwd,
            env,
            user,
            additional_gids,
            cap,
            no_new_privs,
            preserve_fds,
            apparmor,
            process_label,
            id,
            args,
        } => {
            crate::process::selfexe::ensure_read_only()?;
            if preserve_fds > 0 {
                reserve_preserved_fds(preserve_fds);
            }
            let a = container::exec::ExecArgs {
                id: &id,
                process: process.as_deref(),
                args: &args,
                tty,
                console_socket: console_socket.as_deref(),
                detach,
                pid_file: pid_file.as_deref(),
                cwd: cwd.as_deref(),
                env: &env,
                user: user.as_deref(),
                additional_gids: &additional_gids,
                caps: &cap,
                no_new_privs,
                preserve_fds,
                apparmor: (!apparmor.is_empty()).then_some(apparmor.as_str()),
                process_label: (!process_label.is_empty()).then_some(process_label.as_str()),
            };
            return container::exec::exec(root, &a);
        }
        Cmd::State { id } => {
            let (dir, st) = container::load(root, &id)?;
            let out = StateOutput::new(&dir, &st);
            let json =
                serde_json::to_string_pretty(&out).map_err(|e| Error::Config(e.to_string()))?;
            println!("{json}");
        }
        Cmd::Kill { all, id, signal } => {
            let sig = container::kill::parse_signal(&signal)
                .ok_or_else(|| Error::Config(format!("unknown signal {signal:?}")))?;
            container::kill::kill(root, &id, sig, all)?;
        }
        Cmd::Delete { force, id } => {
            for w in container::delete::delete(root, &id, force)? {
                logger.warn(&w);
            }
        }
        Cmd::Run {
            flags,
            detach,
            keep,
            id,
        } => {
            crate::process::selfexe::ensure_read_only()?;
            return container::run::run(root, &create_args(&id, &flags, systemd), detach, keep);
        }
        Cmd::List { format, quiet } => {
            let stdout = std::io::stdout();
            list::list(root, format, quiet, &mut stdout.lock())
                .map_err(|e| Error::Config(format!("list {}: {e}", root.display())))?;
        }
        Cmd::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(Error::Config(format!(
                    "{}: exists; remove it first",
                    path.display()
                )));
            }
            let spec = crate::spec::default_spec(rootless);
            let text =
                serde_json::to_string_pretty(&spec).map_err(|e| Error::Config(e.to_string()))?;
            // Made new (O_EXCL): never through a link planted at the name.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, (text + "\n").as_bytes()))
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        }
        Cmd::Pause { id } => container::pause::pause(root, &id)?,
        Cmd::Resume { id } => container::pause::resume(root, &id)?,
        Cmd::Ps { format, id, .. } => {
            let stdout = std::io::stdout();
            container::ps::ps(root, &id, format == list::Format::Json, &mut stdout.lock())?;
        }
        Cmd::Update { flags, id } => {
            let res = container::update::requested(&flags, &mut std::io::stdin())?;
            container::update::update(root, &id, &res)?;
        }
        Cmd::Events {
            stats,
            interval,
            id,
        } => {
            let interval = humantime::parse_duration(&interval)
                .map_err(|e| Error::Config(format!("--interval {interval:?}: {e}")))?;
            if interval.is_zero() {
                return Err(Error::Config("--interval must be greater than zero".into()));
            }
            let stdout = std::io::stdout();
            container::events::events(root, &id, stats, interval, &mut stdout.lock())?;
        }
        Cmd::Features => {
            let json = serde_json::to_string_pretty(&crate::spec::features())
                .map_err(|e| Error::Config(e.to_string()))?;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{json}");
        }
    }
    Ok(0)
}
