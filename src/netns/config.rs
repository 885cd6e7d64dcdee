//! The CNI protocol's inputs (CNI spec, Section 2 and 3): the `CNI_*`
//! environment and the network configuration on stdin, validated into what
//! the plugin needs; and its error result, with the spec's codes.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde::Deserialize;
use serde_json::{Value, json};

use super::ipam::{IpamError, Pool};

/// Versions of the CNI spec this plugin speaks.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The spec's error result: `code` (0–99 well known), `msg`, `details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: &str, details: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.to_string(),
            details: details.into(),
        }
    }

    /// The JSON the plugin prints (on stdout, with a non-zero exit).
    pub fn to_json(&self, cni_version: &str) -> Value {
        json!({"cniVersion": cni_version, "code": self.code, "msg": self.msg, "details": self.details})
    }
}

impl From<IpamError> for CniError {
    fn from(e: IpamError) -> CniError {
        match e {
            IpamError::Config { .. } => CniError::new(7, "invalid network config", e.to_string()),
            IpamError::Exhausted { .. } => CniError::new(100, "no free address", e.to_string()),
            IpamError::State { .. } => CniError::new(5, "I/O failure", e.to_string()),
        }
    }
}

/// `CNI_COMMAND`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

/// The `CNI_*` parameters of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub command: Command,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: Vec<(String, String)>,
}

/// The spec's rule for container ids and network names:
/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
fn valid_container_id(id: &str) -> bool {
    let mut b = id.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// An interface name the kernel takes: 1–15 bytes, no `/`, no whitespace.
pub fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && !n
            .bytes()
            .any(|c| c == b'/' || c == b':' || c.is_ascii_whitespace())
}

/// Reads the parameters; ADD, DEL and CHECK need the container id, the
/// netns (ADD and CHECK) and the interface name.
pub fn params(env: &HashMap<String, String>) -> Result<Params, CniError> {
    let get = |k: &str| env.get(k).cloned().unwrap_or_default();
    let command = match get("CNI_COMMAND").as_str() {
        "ADD" => Command::Add,
        "DEL" => Command::Del,
        "CHECK" => Command::Check,
        "STATUS" => Command::Status,
        "GC" => Command::Gc,
        "VERSION" => Command::Version,
        other => {
            return Err(CniError::new(
                4,
                "invalid environment variables",
                format!("CNI_COMMAND: {other:?} is not ADD, DEL, CHECK, STATUS, GC or VERSION"),
            ));
        }
    };
    let p = Params {
        command,
        container_id: get("CNI_CONTAINERID"),
        netns: get("CNI_NETNS"),
        ifname: get("CNI_IFNAME"),
        args: get("CNI_ARGS")
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    if matches!(command, Command::Add | Command::Del | Command::Check) {
        let mut bad = Vec::new();
        if !valid_container_id(&p.container_id) {
            bad.push("CNI_CONTAINERID");
        }
        if command != Command::Del && p.netns.is_empty() {
            bad.push("CNI_NETNS");
        }
        if !valid_ifname(&p.ifname) {
            bad.push("CNI_IFNAME");
        }
        if !bad.is_empty() {
            return Err(CniError::new(
                4,
                "invalid environment variables",
                format!("missing or invalid: {}", bad.join(", ")),
            ));
        }
    }
    Ok(p)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    cni_version: String,
    name: String,
    #[serde(rename = "type")]
    typ: String,
    bridge: Option<String>,
    is_gateway: Option<bool>,
    ip_masq: Option<bool>,
    mtu: Option<u32>,
    ipam: Option<RawIpam>,
    runtime_config: Option<RawRuntime>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpam {
    subnet: Option<String>,
    range_start: Option<String>,
    range_end: Option<String>,
    gateway: Option<String>,
    routes: Option<Vec<RawRoute>>,
    data_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawRoute {
    dst: String,
    gw: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRuntime {
    port_mappings: Option<Vec<RawPort>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPort {
    host_port: u32,
    container_port: u32,
    protocol: Option<String>,
    #[serde(rename = "hostIP")]
    host_ip: Option<String>,
}

/// A route the container gets: destination network and prefix, via.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gw: Ipv4Addr,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub udp: bool,
    pub host_ip: Option<Ipv4Addr>,
}

/// The validated network configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    pub bridge: String,
    pub is_gateway: bool,
    pub ip_masq: bool,
    pub mtu: u32,
    pub pool: Pool,
    pub routes: Vec<Route>,
    pub ports: Vec<PortMapping>,
    /// Where allocations and attachments are kept (`ipam.dataDir`).
    pub data_dir: std::path::PathBuf,
}

/// The state directory when `ipam.dataDir` does not name one.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/husk-net";

/// Code 7, "invalid network config", with what is wrong.
pub fn invalid(details: String) -> CniError {
    CniError::new(7, "invalid network config", details)
}

fn cidr(field: &str, s: &str) -> Result<(Ipv4Addr, u8), CniError> {
    let bad = || invalid(format!("{field}: {s:?} is not ADDRESS/PREFIX"));
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    let a: Ipv4Addr = a.parse().map_err(|_| bad())?;
    let p: u8 = p.parse().ok().filter(|p| *p <= 32).ok_or_else(bad)?;
    Ok((a, p))
}

/// The keys of each object of the configuration this plugin reads, by
/// where they are: `""` the top, then dotted paths (`[]` an array's items).
const KEYS: [(&str, &[&str]); 5] = [
    (
        "",
        &[
            "cniVersion",
            "name",
            "type",
            "bridge",
            "isGateway",
            "ipMasq",
            "mtu",
            "ipam",
            "runtimeConfig",
        ],
    ),
    (
        "ipam",
        &[
            "subnet",
            "rangeStart",
            "rangeEnd",
            "gateway",
            "routes",
            "dataDir",
        ],
    ),
    ("ipam.routes[]", &["dst", "gw"]),
    ("runtimeConfig", &["portMappings"]),
    (
        "runtimeConfig.portMappings[]",
        &["hostPort", "containerPort", "protocol", "hostIP"],
    ),
];

/// Gives keys that match one of ours but for case our spelling, as Go's
/// encoding/json matches them, so the reference plugins accept them: go-cni
/// (containerd's CRI) sends port mappings as `{"HostPort": …,
/// "ContainerPort": …, "Protocol": …, "HostIP": …}`. An exact key wins over
/// one that differs in case.
fn fold_keys(v: &mut Value, path: &str) {
    let keys = KEYS.iter().find(|(p, _)| *p == path).map(|(_, k)| *k);
    match v {
        Value::Object(map) => {
            if let Some(keys) = keys {
                let folded: Vec<(String, &str)> = map
                    .keys()
                    .filter(|k| !keys.contains(&k.as_str()))
                    .filter_map(|k| {
                        let ours = keys.iter().find(|o| o.eq_ignore_ascii_case(k))?;
                        Some((k.clone(), *ours))
                    })
                    .collect();
                for (theirs, ours) in folded {
                    if let Some(val) = map.remove(&theirs) {
                        map.entry(ours).or_insert(val);
                    }
                }
            }
            for (k, child) in map.iter_mut() {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if KEYS.iter().any(|(p, _)| p.starts_with(sub.as_str())) {
                    fold_keys(child, &sub);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                fold_keys(item, &format!("{path}[]"));
            }
        }
        _ => {}
    }
}

/// Parses and checks the configuration from stdin.
pub fn netconf(stdin: &[u8]) -> Result<NetConf, CniError> {
    let decode = |e: serde_json::Error| {
        CniError::new(6, "failed to decode the network config", e.to_string())
    };
    let mut v: Value = serde_json::from_slice(stdin).map_err(decode)?;
    fold_keys(&mut v, "");
    let raw: RawConf = serde_json::from_value(v).map_err(decode)?;
    if !SUPPORTED_VERSIONS.contains(&raw.cni_version.as_str()) {
        return Err(CniError::new(
            1,
            "incompatible CNI version",
            format!(
                "cniVersion {:?}; this plugin speaks {}",
                raw.cni_version,
                SUPPORTED_VERSIONS.join(", ")
            ),
        ));
    }
    if raw.typ.is_empty() {
        return Err(invalid("type is required".into()));
    }
    // The spec's rule for network names (and a directory under dataDir, so
    // it must not climb out of it).
    if !valid_container_id(&raw.name) {
        return Err(invalid(format!(
            "name: {:?} must be letters, digits, '_', '.' or '-', starting with a letter or digit",
            raw.name
        )));
    }
    let bridge = raw.bridge.unwrap_or_else(|| "husk0".into());
    if !valid_ifname(&bridge) {
        return Err(invalid(format!(
            "bridge: {bridge:?} is not an interface name"
        )));
    }
    let mtu = raw.mtu.unwrap_or(1500);
    if !(68..=65535).contains(&mtu) {
        return Err(invalid(format!("mtu: {mtu} is outside 68-65535")));
    }
    let ipam = raw.ipam.ok_or_else(|| invalid("ipam: required".into()))?;
    let subnet = ipam
        .subnet
        .ok_or_else(|| invalid("ipam.subnet: required".into()))?;
    let pool = Pool::new(
        &subnet,
        ipam.range_start.as_deref(),
        ipam.range_end.as_deref(),
        ipam.gateway.as_deref(),
    )?;
    let mut routes = Vec::new();
    for (i, r) in ipam.routes.iter().flatten().enumerate() {
        let (dst, prefix) = cidr(&format!("ipam.routes[{i}].dst"), &r.dst)?;
        let gw = match &r.gw {
            Some(g) => g
                .parse()
                .map_err(|_| invalid(format!("ipam.routes[{i}].gw: {g:?} is not an address")))?,
            None => pool.gateway,
        };
        routes.push(Route { dst, prefix, gw });
    }
    let mut ports = Vec::new();
    for (i, p) in raw
        .runtime_config
        .and_then(|r| r.port_mappings)
        .iter()
        .flatten()
        .enumerate()
    {
        let field = format!("runtimeConfig.portMappings[{i}]");
        let port = |v: u32, what: &str| {
            u16::try_from(v)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid(format!("{field}.{what}: {v} is not a port")))
        };
        // Any case, as the reference portmap plugin reads it.
        let udp = match p
            .protocol
            .as_deref()
            .unwrap_or("tcp")
            .to_ascii_lowercase()
            .as_str()
        {
            "tcp" => false,
            "udp" => true,
            other => {
                return Err(invalid(format!(
                    "{field}.protocol: {other:?} is not tcp or udp"
                )));
            }
        };
        let host_ip =
            match p.host_ip.as_deref() {
                None | Some("") => None,
                Some(a) => Some(a.parse().map_err(|_| {
                    invalid(format!("{field}.hostIP: {a:?} is not an IPv4 address"))
                })?),
            };
        ports.push(PortMapping {
            host_port: port(p.host_port, "hostPort")?,
            container_port: port(p.container_port, "containerPort")?,
            udp,
            host_ip,
        });
    }
    Ok(NetConf {
        cni_version: raw.cni_version,
        name: raw.name,
        bridge,
        is_gateway: raw.is_gateway.unwrap_or(false),
        ip_masq: raw.ip_masq.unwrap_or(false),
        mtu,
        pool,
        routes,
        ports,
        data_dir: match ipam.data_dir.as_deref() {
            None | Some("") => DEFAULT_DATA_DIR.into(),
            Some(d) if d.starts_with('/') => d.into(),
            Some(d) => {
                return Err(invalid(format!(
                    "ipam.dataDir: {d:?} is not an absolute path"
                )));
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_are_matched_as_go_matches_them() {
        // What containerd's CRI (go-cni) sends: Go field names, no JSON tags.
        let go = netconf(
            br#"{"cniVersion": "1.0.0", "name": "k8s", "type": "husk-net",
                 "IPAM": {"Subnet": "10.88.0.0/16", "routes": [{"DST": "0.0.0.0/0"}]},
                 "runtimeConfig": {"portMappings": [
                     {"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""},
                     {"HostPort": 5353, "ContainerPort": 53, "Protocol": "UDP", "HostIP": "127.0.0.1"}]}}"#,
        )
        .unwrap();
        let tagged = netconf(
            br#"{"cniVersion": "1.0.0", "name": "k8s", "type": "husk-net",
                 "ipam": {"subnet": "10.88.0.0/16", "routes": [{"dst": "0.0.0.0/0"}]},
                 "runtimeConfig": {"portMappings": [
                     {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                     {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]}}"#,
        )
        .unwrap();
        assert_eq!(go, tagged);
        assert_eq!(go.ports.len(), 2);
        assert!(go.ports[1].udp);
        // An exact key wins over one that differs in case; unknown keys and
        // free-form values are left as they are.
        let both = netconf(
            br#"{"cniVersion": "1.0.0", "name": "k8s", "type": "husk-net", "MTU": 9000, "mtu": 1400,
                 "args": {"Mtu": 1}, "ipam": {"subnet": "10.88.0.0/16"}}"#,
        )
        .unwrap();
        assert_eq!(both.mtu, 1400);
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let p = params(&env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "A=1;B=2"),
        ]))
        .unwrap();
        assert_eq!(p.command, Command::Add);
        assert_eq!(p.args, [("A".into(), "1".into()), ("B".into(), "2".into())]);
        let e = params(&env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "-bad"),
            ("CNI_IFNAME", "eth0"),
        ]))
        .unwrap_err();
        assert_eq!(e.code, 4);
        assert!(
            e.details.contains("CNI_CONTAINERID") && e.details.contains("CNI_NETNS"),
            "{e:?}"
        );
        // DEL needs no netns (it may be gone already).
        assert!(
            params(&env(&[
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", "eth0")
            ]))
            .is_ok()
        );
        assert_eq!(
            params(&env(&[("CNI_COMMAND", "BOOM")])).unwrap_err().code,
            4
        );
        assert!(params(&env(&[("CNI_COMMAND", "VERSION")])).is_ok());
    }

    #[test]
    fn a_full_config_parses() {
        let c = netconf(br#"{"cniVersion": "1.0.0", "name": "web", "type": "husk-net",
            "bridge": "huskweb0", "isGateway": true, "ipMasq": true, "mtu": 1400,
            "ipam": {"type": "host-local", "subnet": "10.77.0.0/24", "rangeStart": "10.77.0.10",
                     "rangeEnd": "10.77.0.99", "routes": [{"dst": "0.0.0.0/0"}]},
            "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                                               {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]}}"#)
        .unwrap();
        assert_eq!(c.bridge, "huskweb0");
        assert!(c.is_gateway && c.ip_masq);
        assert_eq!(
            c.routes,
            [Route {
                dst: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                gw: "10.77.0.1".parse().unwrap()
            }]
        );
        assert_eq!(c.ports.len(), 2);
        assert!(c.ports[1].udp);
    }

    #[test]
    fn bad_configs_get_the_spec_codes() {
        for (conf, code, needle) in [
            (&b"{nope"[..], 6, ""),
            (br#"{"cniVersion": "9.9.9", "name": "n", "type": "t"}"#, 1, "9.9.9"),
            (br#"{"cniVersion": "1.0.0", "name": "n", "type": "t"}"#, 7, "ipam"),
            (br#"{"cniVersion": "1.0.0", "name": "n", "type": "t", "ipam": {"subnet": "10.0.0.0/33"}}"#, 7, "subnet"),
            (br#"{"cniVersion": "1.0.0", "name": "n", "type": "t", "bridge": "a/b", "ipam": {"subnet": "10.0.0.0/24"}}"#, 7, "bridge"),
            (br#"{"cniVersion": "1.0.0", "name": "../../etc", "type": "t", "ipam": {"subnet": "10.0.0.0/24"}}"#, 7, "name"),
            (br#"{"cniVersion": "1.0.0", "name": "n", "type": "t", "ipam": {"subnet": "10.0.0.0/24", "dataDir": "rel"}}"#, 7, "dataDir"),
            (br#"{"cniVersion": "1.0.0", "name": "n", "type": "t", "ipam": {"subnet": "10.0.0.0/24"},
                 "runtimeConfig": {"portMappings": [{"hostPort": 70000, "containerPort": 80}]}}"#, 7, "hostPort"),
            (br#"{"cniVersion": "1.0.0", "name": "n", "type": "t", "ipam": {"subnet": "10.0.0.0/24"},
                 "runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "sctp"}]}}"#, 7, "protocol"),
        ] {
            let e = netconf(conf).unwrap_err();
            assert_eq!(e.code, code, "{e:?}");
            assert!(e.details.contains(needle), "{e:?}");
            let j = e.to_json("1.0.0");
            assert_eq!(j["code"], code);
            assert!(j["msg"].is_string());
        }
    }
}
