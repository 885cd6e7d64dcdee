//! The plugin's commands (CNI spec, Section 4): ADD, DEL, CHECK, STATUS, GC
//! and VERSION, over [`link`](super::link) for the kernel's links and
//! [`nft`](super::nft) for NAT and isolation.
//!
//! State, under the network's `ipam.dataDir` (default /var/lib/husk-net):
//!
//! ```text
//! lock                       one ADD/DEL/GC at a time on this host
//! ports/tcp-8080             host port → the attachment publishing it
//! NETWORK/10.88.0.5 …        IPAM (ipam.rs)
//! NETWORK/attachments/TAG    what ADD made, so DEL undoes exactly that
//! ```
//!
//! TAG is a digest of (container id, interface); the host end of the veth is
//! named from it, so a DEL finds it even without the record.

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::config::{CniError, NetConf, Params, PortMapping, SUPPORTED_VERSIONS};
use super::ipam::Store;
use super::link::{LinkError, Netlink};
use super::nft;

impl From<LinkError> for CniError {
    fn from(e: LinkError) -> CniError {
        CniError::new(101, "netlink request failed", e.to_string())
    }
}

impl From<nft::NftError> for CniError {
    fn from(e: nft::NftError) -> CniError {
        CniError::new(102, "nftables update failed", e.0)
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> CniError {
    CniError::new(5, "I/O failure", format!("{what} {}: {e}", path.display()))
}

/// What one ADD made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub bridge: String,
    pub host_veth: String,
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub masq: bool,
    pub ports: Vec<PortMapping>,
    pub tag: String,
}

impl Attachment {
    fn nft(&self) -> nft::Container<'_> {
        nft::Container {
            tag: &self.tag,
            bridge: &self.bridge,
            addr: self.addr,
            masq: self.masq,
            ports: &self.ports,
        }
    }
}

/// The tag of (network, container id, interface).
pub fn tag(network: &str, container_id: &str, ifname: &str) -> String {
    let d = Sha256::digest(format!("{network}\0{container_id}\0{ifname}").as_bytes());
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The host end of the veth: `veth` and eight hex digits of the tag, like
/// the reference bridge plugin's names.
pub fn host_veth(tag: &str) -> String {
    format!("veth{}", &tag[..8])
}

struct Paths {
    root: PathBuf,
}

impl Paths {
    fn network(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
    fn attachments(&self, name: &str) -> PathBuf {
        self.network(name).join("attachments")
    }
    fn attachment(&self, name: &str, tag: &str) -> PathBuf {
        self.attachments(name).join(tag)
    }
    fn port(&self, p: &PortMapping) -> PathBuf {
        self.root.join("ports").join(format!(
            "{}-{}",
            if p.udp { "udp" } else { "tcp" },
            p.host_port
        ))
    }
}

/// The host-wide lock, held for the whole command.
struct Lock(#[allow(dead_code)] nix::fcntl::Flock<fs::File>);

fn lock(root: &Path) -> Result<Lock, CniError> {
    fs::create_dir_all(root).map_err(|e| io_err("create", root, e))?;
    let path = root.join("lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_err("open", &path, e))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map(Lock)
        .map_err(|(_, e)| io_err("lock", &path, e.into()))
}

fn write_sysctl(key: &str, value: &str) -> Result<(), CniError> {
    let path = PathBuf::from("/proc/sys/net").join(key);
    match fs::read_to_string(&path) {
        Ok(v) if v.trim() == value => Ok(()),
        _ => fs::write(&path, value).map_err(|e| io_err("write", &path, e)),
    }
}

fn open_netns(path: &str) -> Result<OwnedFd, CniError> {
    let f = fs::File::open(path)
        .map_err(|e| CniError::new(3, "container unknown", format!("CNI_NETNS {path}: {e}")))?;
    // An nsfs file, not any file someone passed.
    let st =
        nix::sys::statfs::fstatfs(&f).map_err(|e| io_err("statfs", Path::new(path), e.into()))?;
    if st.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        return Err(CniError::new(
            3,
            "container unknown",
            format!("CNI_NETNS {path} is not a network namespace"),
        ));
    }
    Ok(OwnedFd::from(f))
}

fn claim_ports(paths: &Paths, a: &Attachment) -> Result<(), CniError> {
    for p in &a.ports {
        let path = paths.port(p);
        if let Some(d) = path.parent() {
            fs::create_dir_all(d).map_err(|e| io_err("create", d, e))?;
        }
        let owner = format!("{}\n{}\n", a.container_id, a.tag);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => std::io::Write::write_all(&mut f, owner.as_bytes())
                .map_err(|e| io_err("write", &path, e))?,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let held = fs::read_to_string(&path).unwrap_or_default();
                if held != owner {
                    return Err(CniError::new(
                        103,
                        "host port already published",
                        format!(
                            "runtimeConfig.portMappings: {}/{} is published by container {}",
                            p.host_port,
                            if p.udp { "udp" } else { "tcp" },
                            held.lines().next().unwrap_or("?")
                        ),
                    ));
                }
            }
            Err(e) => return Err(io_err("create", &path, e)),
        }
    }
    Ok(())
}

fn release_ports(paths: &Paths, a: &Attachment) {
    for p in &a.ports {
        let path = paths.port(p);
        if fs::read_to_string(&path).is_ok_and(|h| h.lines().nth(1) == Some(&a.tag)) {
            let _ = fs::remove_file(&path);
        }
    }
}

/// ADD: the bridge, the veth pair, the address, the routes, the rules.
pub fn add(p: &Params, conf: &NetConf) -> Result<Value, CniError> {
    let paths = Paths {
        root: conf.data_dir.clone(),
    };
    let _lock = lock(&paths.root)?;
    let t = tag(&conf.name, &p.container_id, &p.ifname);
    let ns = open_netns(&p.netns)?;
    // The spec: an interface of that name already in the container is an
    // error (whoever made it).
    let mut inside =
        Netlink::open_in(&ns).map_err(|e| io_err("open netlink in", Path::new(&p.netns), e))?;
    if inside.link(&p.ifname)?.is_some() {
        return Err(CniError::new(
            105,
            "interface already exists",
            format!("CNI_IFNAME {} already exists in {}", p.ifname, p.netns),
        ));
    }
    // A bridge belongs to one network: two would share it with separate
    // address pools, and one's last DEL would take down the other's
    // isolation.
    if let Some(other) = bridge_user(&paths, &conf.bridge, &conf.name) {
        return Err(CniError::new(
            7,
            "bridge in use by another network",
            format!(
                "bridge {} is used by network {other:?}; network {:?} must name a bridge of its own",
                conf.bridge, conf.name
            ),
        ));
    }
    // A record without its interface is a stale attachment (a runtime that
    // never called DEL, its namespace gone): undo it first.
    if let Ok(old) = read_attachment(&paths.attachment(&conf.name, &t)) {
        teardown(&paths, conf, &p.container_id, &p.ifname, Some(old))?;
    }
    let store = Store {
        dir: paths.network(&conf.name),
    };
    let addr = store.allocate(&conf.pool, &p.container_id, &p.ifname)?;
    let a = Attachment {
        container_id: p.container_id.clone(),
        ifname: p.ifname.clone(),
        netns: p.netns.clone(),
        bridge: conf.bridge.clone(),
        host_veth: host_veth(&t),
        addr,
        prefix: conf.pool.prefix,
        masq: conf.ip_masq,
        ports: conf.ports.clone(),
        tag: t,
    };
    match build(&paths, conf, &a, &ns, &mut inside) {
        Ok(result) => Ok(result),
        Err(e) => {
            let _ = teardown(&paths, conf, &p.container_id, &p.ifname, Some(a));
            Err(e)
        }
    }
}

fn build(
    paths: &Paths,
    conf: &NetConf,
    a: &Attachment,
    ns: &OwnedFd,
    inside: &mut Netlink,
) -> Result<Value, CniError> {
    // Recorded first, so a failure part way is undone like a DEL.
    save_attachment(&paths.attachment(&conf.name, &a.tag), a)?;
    claim_ports(paths, a)?;
    let mut host =
        Netlink::open().map_err(|e| io_err("open netlink", Path::new("rtnetlink"), e))?;
    let br = host.ensure_bridge(&conf.bridge, conf.mtu)?;
    if conf.is_gateway {
        host.add_addr(&conf.bridge, conf.pool.gateway, conf.pool.prefix)?;
    }
    host.set_up(&conf.bridge, None)?;
    if conf.is_gateway || conf.ip_masq || !conf.ports.is_empty() {
        write_sysctl("ipv4/ip_forward", "1")?;
    }
    if !conf.ports.is_empty() {
        // The host's own 127.0.0.1:PORT is DNATed out of the bridge.
        write_sysctl(&format!("ipv4/conf/{}/route_localnet", conf.bridge), "1")?;
    }
    host.add_veth(&a.host_veth, &a.ifname, ns, conf.mtu)?;
    host.set_up(&a.host_veth, Some(br.index))?;
    host.set_hairpin(&a.host_veth)?;
    inside.set_up("lo", None)?;
    inside.add_addr(&a.ifname, a.addr, a.prefix)?;
    inside.set_up(&a.ifname, None)?;
    for r in &conf.routes {
        inside.add_route(&a.ifname, r.dst, r.prefix, r.gw)?;
    }
    // The table and the network's chains are written when they are new:
    // rewriting a chain that has rules deletes them, and every deletion costs
    // the kernel a grace period. Should they have gone behind husk-net's
    // back (a firewall reload), everything is written again.
    let (first_network, first_in_network) = firsts(paths, &conf.name, &a.tag);
    let network = || nft::network(&conf.bridge, conf.pool.network, conf.pool.prefix);
    let everything = || {
        let mut v = nft::base();
        v.extend(network());
        v.extend(nft::attach(&a.nft()));
        v
    };
    if first_network {
        nft::apply(&everything())?;
    } else {
        let mut cmds = if first_in_network {
            network()
        } else {
            Vec::new()
        };
        cmds.extend(nft::attach(&a.nft()));
        if nft::apply(&cmds).is_err() {
            nft::apply(&everything())?;
        }
    }

    let br = host.link(&conf.bridge)?.map(|l| l.mac).unwrap_or_default();
    let hv = host.link(&a.host_veth)?.map(|l| l.mac).unwrap_or_default();
    let cv = inside.link(&a.ifname)?.map(|l| l.mac).unwrap_or_default();
    Ok(result(conf, a, [br, hv, cv]))
}

/// The ADD result in the configuration's version.
fn result(conf: &NetConf, a: &Attachment, macs: [String; 3]) -> Value {
    let old = conf.cni_version.starts_with("0.");
    let mut ip = json!({"address": format!("{}/{}", a.addr, a.prefix), "interface": 2});
    if conf.is_gateway {
        ip["gateway"] = json!(conf.pool.gateway.to_string());
    }
    if old {
        ip["version"] = json!("4");
    }
    let [br, hv, cv] = macs;
    json!({
        "cniVersion": conf.cni_version,
        "interfaces": [
            {"name": conf.bridge, "mac": br},
            {"name": a.host_veth, "mac": hv},
            {"name": a.ifname, "mac": cv, "sandbox": a.netns},
        ],
        "ips": [ip],
        "routes": conf.routes.iter().map(|r| json!({"dst": format!("{}/{}", r.dst, r.prefix), "gw": r.gw.to_string()})).collect::<Vec<_>>(),
        "dns": {},
    })
}

fn read_attachment(path: &Path) -> Result<Attachment, CniError> {
    let data = fs::read(path).map_err(|e| io_err("read", path, e))?;
    serde_json::from_slice(&data).map_err(|e| io_err("parse", path, e.into()))
}

fn save_attachment(path: &Path, a: &Attachment) -> Result<(), CniError> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).map_err(|e| io_err("create", d, e))?;
    }
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, serde_json::to_vec(a).unwrap_or_default())
        .map_err(|e| io_err("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_err("rename", path, e))
}

/// DEL: idempotent; whatever is already gone is not an error.
pub fn del(p: &Params, conf: &NetConf) -> Result<(), CniError> {
    let paths = Paths {
        root: conf.data_dir.clone(),
    };
    let _lock = lock(&paths.root)?;
    let t = tag(&conf.name, &p.container_id, &p.ifname);
    let a = read_attachment(&paths.attachment(&conf.name, &t)).ok();
    teardown(&paths, conf, &p.container_id, &p.ifname, a)
}

/// The network other than `network` with an attachment on `bridge`.
fn bridge_user(paths: &Paths, bridge: &str, network: &str) -> Option<String> {
    let dirs = fs::read_dir(&paths.root).ok()?;
    for e in dirs.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == network || name == "ports" || !e.path().is_dir() {
            continue;
        }
        let Ok(atts) = fs::read_dir(paths.attachments(&name)) else {
            continue;
        };
        // Every attachment of a network records the network's one bridge.
        let first = atts.flatten().find_map(|a| read_attachment(&a.path()).ok());
        if first.is_some_and(|a| a.bridge == bridge) {
            return Some(name);
        }
    }
    None
}

/// Whether (no other network has state here, no other attachment of
/// `network` has): for ADD, whether this one is the first; for DEL, the last.
fn firsts(paths: &Paths, network: &str, tag: &str) -> (bool, bool) {
    let alone = fs::read_dir(paths.attachments(network))
        .map(|d| d.flatten().all(|e| e.file_name() == tag))
        .unwrap_or(true);
    let no_other_network = fs::read_dir(&paths.root)
        .map(|d| {
            d.flatten()
                .all(|e| !e.path().is_dir() || e.file_name() == "ports" || e.file_name() == network)
        })
        .unwrap_or(true);
    (alone && no_other_network, alone)
}

fn teardown(
    paths: &Paths,
    conf: &NetConf,
    id: &str,
    ifname: &str,
    a: Option<Attachment>,
) -> Result<(), CniError> {
    let t = tag(&conf.name, id, ifname);
    let mut host =
        Netlink::open().map_err(|e| io_err("open netlink", Path::new("rtnetlink"), e))?;
    let bridge = a.as_ref().map_or(conf.bridge.clone(), |a| a.bridge.clone());
    // Is this the network's last attachment, and the host's last network?
    // Then the rules go with the network or with the table, all in the one
    // nft transaction (each transaction that deletes costs the kernel a
    // grace period: ~15-20 ms here).
    let (last_network, last_in_network) = firsts(paths, &conf.name, &t);
    let cmds = if last_network {
        nft::table_gone()
    } else {
        let mut v = a
            .as_ref()
            .map(|a| nft::detach(&a.nft()))
            .unwrap_or_default();
        if last_in_network {
            v.extend(nft::network_gone(&bridge));
        }
        v
    };
    nft::apply_deletions(&cmds)?;
    if let Some(a) = &a {
        release_ports(paths, a);
    }
    // Deleting the host end takes the container's end with it.
    host.del_link(&host_veth(&t))?;
    Store {
        dir: paths.network(&conf.name),
    }
    .release(id, ifname)?;
    let rec = paths.attachment(&conf.name, &t);
    match fs::remove_file(&rec) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(io_err("remove", &rec, e)),
        _ => {}
    }
    if last_in_network {
        // The bridge goes too, unless something else was put on it.
        if let Some(br) = host.link(&bridge)?
            && host.ports_of(br.index)? == 0
        {
            host.del_link(&bridge)?;
        }
        let net = paths.network(&conf.name);
        match fs::remove_dir_all(&net) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(io_err("remove", &net, e)),
            _ => {}
        }
        if last_network {
            let _ = fs::remove_dir(paths.root.join("ports"));
        }
    }
    Ok(())
}

/// CHECK: the interface is in the namespace with its address, its host end
/// on the bridge, the allocation held.
pub fn check(p: &Params, conf: &NetConf) -> Result<(), CniError> {
    let paths = Paths {
        root: conf.data_dir.clone(),
    };
    let t = tag(&conf.name, &p.container_id, &p.ifname);
    let bad = |what: String| CniError::new(104, "check failed", what);
    let a = read_attachment(&paths.attachment(&conf.name, &t)).map_err(|_| {
        bad(format!(
            "container {} has no attachment to {}",
            p.container_id, conf.name
        ))
    })?;
    let ns = open_netns(&p.netns)?;
    let mut host =
        Netlink::open().map_err(|e| io_err("open netlink", Path::new("rtnetlink"), e))?;
    let br = host
        .link(&a.bridge)?
        .ok_or_else(|| bad(format!("bridge {} is missing", a.bridge)))?;
    let hv = host
        .link(&a.host_veth)?
        .ok_or_else(|| bad(format!("veth {} is missing", a.host_veth)))?;
    if hv.controller != Some(br.index) {
        return Err(bad(format!(
            "veth {} is not on bridge {}",
            a.host_veth, a.bridge
        )));
    }
    let mut inside =
        Netlink::open_in(&ns).map_err(|e| io_err("open netlink in", Path::new(&p.netns), e))?;
    let Some(l) = inside.link(&a.ifname)? else {
        return Err(bad(format!("{} is missing in {}", a.ifname, p.netns)));
    };
    if !l.up || l.mtu != conf.mtu {
        return Err(bad(format!(
            "{} is {} with MTU {}; want up with MTU {}",
            a.ifname,
            if l.up { "up" } else { "down" },
            l.mtu,
            conf.mtu
        )));
    }
    if !inside.addrs(&a.ifname)?.contains(&(a.addr, a.prefix)) {
        return Err(bad(format!("{} lacks {}/{}", a.ifname, a.addr, a.prefix)));
    }
    let held =
        fs::read_to_string(paths.network(&conf.name).join(a.addr.to_string())).unwrap_or_default();
    if held.lines().next() != Some(p.container_id.as_str()) {
        return Err(bad(format!(
            "{} is not allocated to {}",
            a.addr, p.container_id
        )));
    }
    // The firewall's part: the network's chains and set entries, the
    // container's map entries and port chain.
    let mut expected = nft::network(&a.bridge, conf.pool.network, conf.pool.prefix);
    expected.extend(nft::attach(&a.nft()));
    let missing = nft::missing(&expected).map_err(CniError::from)?;
    if !missing.is_empty() {
        return Err(bad(format!("nftables: missing {}", missing.join(", "))));
    }
    Ok(())
}

/// GC (spec 1.1): every attachment of this network not in
/// `cni.dev/valid-attachments` is torn down.
pub fn gc(conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let raw: Value = serde_json::from_slice(stdin)
        .map_err(|e| CniError::new(6, "failed to decode the network config", e.to_string()))?;
    let valid: HashSet<String> = raw["cni.dev/valid-attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            Some(tag(
                &conf.name,
                v["containerID"].as_str()?,
                v["ifname"].as_str()?,
            ))
        })
        .collect();
    let paths = Paths {
        root: conf.data_dir.clone(),
    };
    let _lock = lock(&paths.root)?;
    let dir = paths.attachments(&conf.name);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let Ok(a) = read_attachment(&e.path()) else {
            continue;
        };
        if !valid.contains(&a.tag) {
            let (id, ifname) = (a.container_id.clone(), a.ifname.clone());
            teardown(&paths, conf, &id, &ifname, Some(a))?;
        }
    }
    Ok(())
}

/// STATUS (spec 1.1): ready when the state directory is usable and `nft` runs.
pub fn status(conf: &NetConf) -> Result<(), CniError> {
    fs::create_dir_all(&conf.data_dir).map_err(|e| io_err("create", &conf.data_dir, e))?;
    match std::process::Command::new("nft")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        _ => Err(CniError::new(
            50,
            "plugin not available",
            "the nft program (package nftables) is not installed",
        )),
    }
}

/// VERSION's answer.
pub fn version(cni_version: &str) -> Value {
    json!({"cniVersion": cni_version, "supportedVersions": SUPPORTED_VERSIONS})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_veth_names_are_stable_and_short() {
        let t = tag("n", "c1", "eth0");
        assert_eq!(t, tag("n", "c1", "eth0"));
        assert_ne!(t, tag("n", "c1", "eth1"));
        assert_ne!(t, tag("n", "c2", "eth0"));
        assert_ne!(t, tag("m", "c1", "eth0"));
        assert_eq!(t.len(), 12);
        assert!(host_veth(&t).len() <= 15);
    }
}
