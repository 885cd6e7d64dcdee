//! husk-net: a CNI bridge plugin.
//!
//! As a CNI plugin (`CNI_COMMAND` set): the network configuration on stdin,
//! the result or the error JSON on stdout.
//!
//! Directly, for people without an engine:
//!
//!   husk-net add --netns PATH [--network NAME | --config FILE] [--publish [IP:]HOST:CONTAINER[/udp]]…
//!   husk-net del --netns PATH [--network NAME | --config FILE] [--remove-netns]
//!
//! `add` creates the namespace file PATH when it does not exist; point the
//! container's `linux.namespaces` network `path` at it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use husk::netns::config::{self, CniError, Command, invalid};
use husk::netns::plugin;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "husk-net",
    version,
    about = "A CNI bridge plugin: bridge, veth, IPAM, NAT, published ports"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Attach the network namespace at --netns to a network.
    Add(Direct),
    /// Detach it (idempotent).
    Del {
        #[command(flatten)]
        d: Direct,
        /// Also unmount and remove the namespace file.
        #[arg(long)]
        remove_netns: bool,
    },
}

#[derive(Args)]
struct Direct {
    /// The network namespace file (e.g. /run/netns/web).
    #[arg(long)]
    netns: PathBuf,
    /// The network's name: /etc/cni/net.d/NAME.conf[list], or the built-in
    /// `husk` network (bridge husk0, 10.88.0.0/16, NAT).
    #[arg(long, default_value = "husk")]
    network: String,
    /// A network configuration file instead of --network.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp].
    #[arg(long, short)]
    publish: Vec<String>,
    /// The container id (default: the namespace file's name).
    #[arg(long)]
    id: Option<String>,
    /// The interface inside the namespace.
    #[arg(long, default_value = "eth0")]
    ifname: String,
    /// State directory (ipam.dataDir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

const DEFAULT_NETWORK: &str = r#"{"cniVersion": "1.1.0", "name": "husk", "type": "husk-net",
 "bridge": "husk0", "isGateway": true, "ipMasq": true,
 "ipam": {"subnet": "10.88.0.0/16", "routes": [{"dst": "0.0.0.0/0"}]}}"#;

fn main() -> ExitCode {
    if std::env::var_os("CNI_COMMAND").is_some() {
        return cni();
    }
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Add(d) => direct(&d, Command::Add).map(|v| {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }),
        Cmd::Del { d, remove_netns } => direct(&d, Command::Del).and_then(|_| {
            if remove_netns {
                remove_ns(&d.netns)
            } else {
                Ok(())
            }
        }),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("husk-net: {}: {}", e.msg, e.details);
            ExitCode::FAILURE
        }
    }
}

/// CNI mode: errors are the spec's JSON on stdout.
fn cni() -> ExitCode {
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let version = serde_json::from_slice::<Value>(&stdin)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(str::to_string))
        .filter(|v| config::SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.1.0".into());
    match run(&env, &stdin) {
        Ok(Some(v)) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            println!("{}", e.to_json(&version));
            ExitCode::FAILURE
        }
    }
}

fn run(env: &HashMap<String, String>, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    let p = config::params(env)?;
    if p.command == Command::Version {
        return Ok(Some(plugin::version("1.1.0")));
    }
    let conf = config::netconf(stdin)?;
    match p.command {
        Command::Add => plugin::add(&p, &conf).map(Some),
        Command::Del => plugin::del(&p, &conf).map(|_| None),
        Command::Check => plugin::check(&p, &conf).map(|_| None),
        Command::Status => plugin::status(&conf).map(|_| None),
        Command::Gc => plugin::gc(&conf, stdin).map(|_| None),
        Command::Version => unreachable!("answered above"),
    }
}

/// The network configuration for the direct mode.
fn load_network(d: &Direct) -> Result<Value, CniError> {
    let text = match &d.config {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| invalid(format!("--config {}: {e}", f.display())))?,
        None => {
            let found = ["conf", "conflist", "json"]
                .iter()
                .map(|x| PathBuf::from(format!("/etc/cni/net.d/{}.{x}", d.network)))
                .find(|p| p.exists());
            match found {
                Some(f) => std::fs::read_to_string(&f)
                    .map_err(|e| invalid(format!("{}: {e}", f.display())))?,
                None if d.network == "husk" => DEFAULT_NETWORK.to_string(),
                None => {
                    return Err(invalid(format!(
                        "--network {}: no /etc/cni/net.d/{}.conf or .conflist",
                        d.network, d.network
                    )));
                }
            }
        }
    };
    let mut v: Value =
        serde_json::from_str(&text).map_err(|e| invalid(format!("network config: {e}")))?;
    // A conflist: this plugin's entry, with the list's name and version.
    if let Some(list) = v.get("plugins").and_then(Value::as_array) {
        let mut p = list
            .iter()
            .find(|p| p["type"] == "husk-net")
            .cloned()
            .ok_or_else(|| invalid("conflist has no husk-net plugin".into()))?;
        p["name"] = v["name"].clone();
        p["cniVersion"] = v["cniVersion"].clone();
        v = p;
    }
    Ok(v)
}

/// `[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]` as a portMappings entry.
fn publish(s: &str) -> Result<Value, CniError> {
    let bad = || {
        invalid(format!(
            "--publish {s:?}: want [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]"
        ))
    };
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, p)) if p == "tcp" || p == "udp" => (a, p),
        Some(_) => return Err(bad()),
        None => (s, "tcp"),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (ip, h, c) = match parts[..] {
        [h, c] => ("", h, c),
        [ip, h, c] => (ip, h, c),
        _ => return Err(bad()),
    };
    let h: u16 = h.parse().map_err(|_| bad())?;
    let c: u16 = c.parse().map_err(|_| bad())?;
    Ok(json!({"hostPort": h, "containerPort": c, "protocol": proto, "hostIP": ip}))
}

fn direct(d: &Direct, cmd: Command) -> Result<Value, CniError> {
    let mut v = load_network(d)?;
    if !d.publish.is_empty() {
        let ports = d
            .publish
            .iter()
            .map(|s| publish(s))
            .collect::<Result<Vec<_>, _>>()?;
        v["runtimeConfig"]["portMappings"] = Value::Array(ports);
    }
    if let Some(dir) = &d.data_dir {
        v["ipam"]["dataDir"] = json!(dir);
    }
    let id = match &d.id {
        Some(i) => i.clone(),
        None => d
            .netns
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if cmd == Command::Add && !d.netns.exists() {
        create_ns(&d.netns)?;
    }
    let env: HashMap<String, String> = [
        (
            "CNI_COMMAND",
            if cmd == Command::Add { "ADD" } else { "DEL" },
        ),
        ("CNI_CONTAINERID", id.as_str()),
        ("CNI_NETNS", &d.netns.to_string_lossy()),
        ("CNI_IFNAME", d.ifname.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let stdin = serde_json::to_vec(&v).unwrap_or_default();
    run(&env, &stdin).map(|r| r.unwrap_or(Value::Null))
}

/// A new network namespace kept alive by a bind mount on `path`. Made by a
/// short-lived thread so this process's own namespace never changes.
fn create_ns(path: &Path) -> Result<(), CniError> {
    let io = |what: &str, e: std::io::Error| {
        CniError::new(5, "I/O failure", format!("{what} {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("create parent of", e))?;
    }
    std::fs::File::create(path).map_err(|e| io("create", e))?;
    let target = path.to_path_buf();
    let made = std::thread::spawn(move || -> nix::Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
    })
    .join()
    .unwrap_or(Err(nix::errno::Errno::EIO));
    made.map_err(|e| {
        let _ = std::fs::remove_file(path);
        io("bind a new network namespace on", e.into())
    })
}

fn remove_ns(path: &Path) -> Result<(), CniError> {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CniError::new(
            5,
            "I/O failure",
            format!("remove {}: {e}", path.display()),
        )),
        _ => Ok(()),
    }
}
