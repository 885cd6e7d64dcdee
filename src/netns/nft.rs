//! NAT, published ports and isolation in one nftables table of husk's own,
//! `ip husk`, written in the nftables JSON API (libnftables-json(5)) and
//! applied as one transaction by `nft -j -f -`.
//!
//! No rule is ever found again by its handle: what changes per network and
//! per container hangs off verdict maps, so attaching is adding elements and
//! a chain, and detaching is deleting exactly those.
//!
//! ```text
//! set bridges  { ifname }                         husk's bridges
//! map fwd      { ifname : verdict }               bridge → jump iso-BR
//! map masq     { ipv4_addr : verdict }            container → jump masq-BR
//! map ports    { inet_proto . inet_service : verdict }  host port → jump dnat-C
//! guard        prerouting raw:   from a bridge to 127/8 → drop
//! forward      filter forward:   ct status dnat accept; iifname vmap @fwd;
//!                                oifname @bridges ct state established,related accept;
//!                                oifname @bridges iifname != @bridges drop
//! prerouting   nat dstnat:       fib daddr type local; l4proto . dport vmap @ports
//! output       nat dstnat:       the same, for the host's own connections
//! postrouting  nat srcnat:       ct dnat from 127/8 masquerade; saddr vmap @masq
//! iso-BR       oifname != BR, oifname @bridges → drop     (networks isolated)
//! masq-BR      ct status dnat masquerade (hairpin); daddr ∉ subnet masquerade
//! dnat-C       [ip daddr HOSTIP] l4proto P th dport HP dnat to IP:CP
//! ```

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::config::PortMapping;

pub const TABLE: &str = "husk";

#[derive(Debug, thiserror::Error)]
#[error("nftables: {0}")]
pub struct NftError(pub String);

fn obj(kind: &str, mut body: Value) -> Value {
    body["family"] = json!("ip");
    body["table"] = json!(TABLE);
    json!({ kind: body })
}

fn chain(name: &str) -> Value {
    obj("chain", json!({"name": name}))
}

fn base_chain(name: &str, typ: &str, hook: &str, prio: i32) -> Value {
    obj(
        "chain",
        json!({"name": name, "type": typ, "hook": hook, "prio": prio, "policy": "accept"}),
    )
}

fn rule(chain: &str, expr: Value) -> Value {
    json!({"add": obj("rule", json!({"chain": chain, "expr": expr}))})
}

fn element(set: &str, elem: Value) -> Value {
    obj("element", json!({"name": set, "elem": [elem]}))
}

fn jump(target: &str) -> Value {
    json!({"jump": {"target": target}})
}

fn is(left: Value, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn ip(field: &str) -> Value {
    json!({"payload": {"protocol": "ip", "field": field}})
}

fn prefix(addr: Ipv4Addr, len: u8) -> Value {
    json!({"prefix": {"addr": addr.to_string(), "len": len}})
}

fn dnat_status() -> Value {
    is(json!({"ct": {"key": "status"}}), "in", json!("dnat"))
}

/// A chain's contents replaced in the same transaction (so applying twice
/// leaves one copy).
fn fresh_chain(name: &str, rules: Vec<Value>) -> Vec<Value> {
    let mut v = vec![json!({"add": chain(name)}), json!({"flush": chain(name)})];
    v.extend(rules.into_iter().map(|r| rule(name, r)));
    v
}

fn port_key(p: &PortMapping) -> Value {
    json!({"concat": [if p.udp { "udp" } else { "tcp" }, p.host_port]})
}

pub fn iso_chain(bridge: &str) -> String {
    format!("iso-{bridge}")
}

pub fn masq_chain(bridge: &str) -> String {
    format!("masq-{bridge}")
}

pub fn dnat_chain(tag: &str) -> String {
    format!("dnat-{tag}")
}

/// The table, its sets and base chains; idempotent.
pub fn base() -> Vec<Value> {
    let mut v = vec![
        json!({"add": obj("table", json!({"name": TABLE}))}),
        json!({"add": obj("set", json!({"name": "bridges", "type": "ifname"}))}),
        json!({"add": obj("map", json!({"name": "fwd", "type": "ifname", "map": "verdict"}))}),
        json!({"add": obj("map", json!({"name": "masq", "type": "ipv4_addr", "map": "verdict"}))}),
        json!({"add": obj("map", json!({"name": "ports", "type": ["inet_proto", "inet_service"], "map": "verdict"}))}),
        json!({"add": base_chain("guard", "filter", "prerouting", -300)}),
        json!({"add": base_chain("forward", "filter", "forward", 0)}),
        json!({"add": base_chain("prerouting", "nat", "prerouting", -100)}),
        json!({"add": base_chain("output", "nat", "output", -100)}),
        json!({"add": base_chain("postrouting", "nat", "postrouting", 100)}),
    ];
    let ports = json!([
        is(json!({"fib": {"result": "type", "flags": ["daddr"]}}), "==", json!("local")),
        {"vmap": {"key": {"concat": [meta("l4proto"), {"payload": {"protocol": "th", "field": "dport"}}]}, "data": "@ports"}}
    ]);
    let chains = [
        (
            "guard",
            // route_localnet is on for bridges with published ports (so the
            // host's 127.0.0.1 can be DNATed out of them); a container must not
            // use it to reach the host's loopback services.
            vec![json!([
                is(meta("iifname"), "==", json!("@bridges")),
                is(ip("daddr"), "==", prefix(Ipv4Addr::new(127, 0, 0, 0), 8)),
                {"drop": null}
            ])],
        ),
        (
            "forward",
            vec![
                json!([dnat_status(), {"accept": null}]),
                json!([{"vmap": {"key": meta("iifname"), "data": "@fwd"}}]),
                // Into a bridge from anywhere else (the LAN, another
                // namespace routed through the host): replies to the
                // containers' own connections only; published ports were
                // accepted above. Docker had this hole until version 28.
                json!([
                    is(meta("oifname"), "==", json!("@bridges")),
                    is(json!({"ct": {"key": "state"}}), "in", json!(["established", "related"])),
                    {"accept": null}
                ]),
                json!([
                    is(meta("oifname"), "==", json!("@bridges")),
                    is(meta("iifname"), "!=", json!("@bridges")),
                    {"drop": null}
                ]),
            ],
        ),
        ("prerouting", vec![ports.clone()]),
        ("output", vec![ports]),
        (
            "postrouting",
            vec![
                json!([
                    dnat_status(),
                    is(ip("saddr"), "==", prefix(Ipv4Addr::new(127, 0, 0, 0), 8)),
                    {"masquerade": null}
                ]),
                json!([{"vmap": {"key": ip("saddr"), "data": "@masq"}}]),
            ],
        ),
    ];
    for (name, rules) in chains {
        v.push(json!({"flush": chain(name)}));
        v.extend(rules.into_iter().map(|r| rule(name, r)));
    }
    v
}

/// One network: its bridge in `bridges`, isolation from the other bridges,
/// its masquerade chain.
pub fn network(bridge: &str, subnet: Ipv4Addr, len: u8) -> Vec<Value> {
    let iso = iso_chain(bridge);
    let masq = masq_chain(bridge);
    let mut v = fresh_chain(
        &iso,
        vec![json!([
            is(meta("oifname"), "!=", json!(bridge)),
            is(meta("oifname"), "==", json!("@bridges")),
            {"drop": null}
        ])],
    );
    v.extend(fresh_chain(
        &masq,
        vec![
            json!([dnat_status(), {"masquerade": null}]),
            json!([is(ip("daddr"), "!=", prefix(subnet, len)), {"masquerade": null}]),
        ],
    ));
    v.push(json!({"add": element("bridges", json!(bridge))}));
    v.push(json!({"add": element("fwd", json!([bridge, jump(&iso)]))}));
    v
}

/// Undoes [`network`].
pub fn network_gone(bridge: &str) -> Vec<Value> {
    vec![
        json!({"delete": element("fwd", json!([bridge, jump(&iso_chain(bridge))]))}),
        json!({"delete": element("bridges", json!(bridge))}),
        json!({"delete": chain(&iso_chain(bridge))}),
        json!({"delete": chain(&masq_chain(bridge))}),
    ]
}

/// What one container hangs in the maps: its address in `masq` (when the
/// network masquerades) and its host ports in `ports`; `op` adds or deletes.
fn elements(op: &str, c: &Container) -> Vec<Value> {
    let mut v = Vec::new();
    if c.masq {
        let e = json!([c.addr.to_string(), jump(&masq_chain(c.bridge))]);
        v.push(json!({op: element("masq", e)}));
    }
    for p in c.ports {
        v.push(json!({op: element("ports", json!([port_key(p), jump(&dnat_chain(c.tag))]))}));
    }
    v
}

/// One container's part of the rules.
pub struct Container<'a> {
    pub tag: &'a str,
    pub bridge: &'a str,
    pub addr: Ipv4Addr,
    pub masq: bool,
    pub ports: &'a [PortMapping],
}

/// One container: its masquerade and its published ports.
pub fn attach(c: &Container) -> Vec<Value> {
    let mut v = Vec::new();
    if !c.ports.is_empty() {
        let rules = c
            .ports
            .iter()
            .map(|p| {
                let mut r = Vec::new();
                if let Some(h) = p.host_ip {
                    r.push(is(ip("daddr"), "==", json!(h.to_string())));
                }
                let proto = if p.udp { "udp" } else { "tcp" };
                r.push(is(meta("l4proto"), "==", json!(proto)));
                let dport = json!({"payload": {"protocol": "th", "field": "dport"}});
                r.push(is(dport, "==", json!(p.host_port)));
                r.push(json!({"dnat": {"addr": c.addr.to_string(), "port": p.container_port}}));
                Value::Array(r)
            })
            .collect();
        v.extend(fresh_chain(&dnat_chain(c.tag), rules));
    }
    v.extend(elements("add", c));
    v
}

/// Undoes [`attach`].
pub fn detach(c: &Container) -> Vec<Value> {
    let mut v = elements("delete", c);
    if !c.ports.is_empty() {
        v.push(json!({"delete": chain(&dnat_chain(c.tag))}));
    }
    v
}

/// The whole table, when the last network is gone.
pub fn table_gone() -> Vec<Value> {
    vec![json!({"delete": obj("table", json!({"name": TABLE}))})]
}

/// Applies the commands as one transaction: `nft -j -f -`, the JSON on
/// stdin; nft's own message comes back in the error.
pub fn apply(cmds: &[Value]) -> Result<(), NftError> {
    if cmds.is_empty() {
        return Ok(());
    }
    let payload = json!({"nftables": cmds}).to_string();
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NftError(format!("cannot run nft (package nftables): {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(payload.as_bytes())
            .map_err(|e| NftError(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NftError(format!("waiting for nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = String::from_utf8_lossy(&out.stderr);
        let first = msg
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("nft failed");
        Err(NftError(first.trim().to_string()))
    }
}

/// What husk's table holds now: its chains, and the elements of each set
/// and map (keys only).
struct Listing {
    chains: Vec<String>,
    keys: Vec<(String, Value)>,
}

impl Listing {
    /// The kernel's table; None when there is none.
    fn read() -> Result<Option<Listing>, NftError> {
        let out = Command::new("nft")
            .args(["-j", "list", "table", "ip", TABLE])
            .stderr(Stdio::null())
            .output()
            .map_err(|e| NftError(format!("cannot run nft (package nftables): {e}")))?;
        if !out.status.success() {
            return Ok(None);
        }
        let listing: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| NftError(format!("nft -j list: {e}")))?;
        Ok(Some(Listing::parse(&listing)))
    }

    fn parse(listing: &Value) -> Listing {
        let objects = listing["nftables"].as_array().cloned().unwrap_or_default();
        let chains = objects
            .iter()
            .filter_map(|o| o["chain"]["name"].as_str().map(str::to_string))
            .collect();
        let mut keys = Vec::new();
        for m in objects.iter().filter_map(|o| o.get("set").or(o.get("map"))) {
            let name = m["name"].as_str().unwrap_or_default().to_string();
            for e in m["elem"].as_array().into_iter().flatten() {
                keys.push((name.clone(), key(e)));
            }
        }
        Listing { chains, keys }
    }

    fn has_chain(&self, name: &str) -> bool {
        self.chains.iter().any(|c| c == name)
    }

    fn has_element(&self, set: &str, key: &Value) -> bool {
        self.keys.iter().any(|(s, k)| s == set && k == key)
    }

    /// Whether the object a command names (a chain, an element, the table)
    /// is in the table.
    fn holds(&self, body: &Value) -> bool {
        if let Some(c) = body.get("chain") {
            return self.has_chain(c["name"].as_str().unwrap_or_default());
        }
        if let Some(e) = body.get("element") {
            let set = e["name"].as_str().unwrap_or_default();
            let Some(elem) = e["elem"].get(0) else {
                return false;
            };
            return self.has_element(set, &key(elem));
        }
        body.get("table").is_some()
    }
}

/// An element's key: a map element is `[key, verdict]` (no key of ours is
/// a two-item array: they are names, addresses and `concat`s), a set's is
/// the key itself; nft may list one wrapped as `{"elem": {"val": …}}`.
fn key(e: &Value) -> Value {
    let e = e.get("elem").and_then(|x| x.get("val")).unwrap_or(e);
    match e {
        Value::Array(kv) if kv.len() == 2 => kv[0].clone(),
        other => other.clone(),
    }
}

/// What of `expected` (commands that add chains and elements, as
/// [`network`] and [`attach`] make) is not in the kernel's table now.
pub fn missing(expected: &[Value]) -> Result<Vec<String>, NftError> {
    let Some(l) = Listing::read()? else {
        return Ok(vec![format!("table ip {TABLE}")]);
    };
    let mut gone = Vec::new();
    for add in expected.iter().filter_map(|c| c.get("add")) {
        if add.get("chain").is_none() && add.get("element").is_none() {
            continue;
        }
        if !l.holds(add) {
            gone.push(match add.get("chain") {
                Some(c) => format!("chain {}", c["name"].as_str().unwrap_or_default()),
                None => format!(
                    "{} in {}",
                    add["element"]["elem"][0],
                    add["element"]["name"].as_str().unwrap_or_default()
                ),
            });
        }
    }
    Ok(gone)
}

/// Deletions that must not fail because something is already gone (DEL is
/// idempotent), always as one transaction, all or none: the whole batch;
/// when that fails, the ones whose objects are still there. A DEL that
/// cannot complete changes nothing.
pub fn apply_deletions(cmds: &[Value]) -> Result<(), NftError> {
    if apply(cmds).is_ok() {
        return Ok(());
    }
    let Some(l) = Listing::read()? else {
        return Ok(()); // no table: nothing of ours is left
    };
    let present: Vec<Value> = cmds
        .iter()
        .filter(|c| c.get("delete").is_some_and(|d| l.holds(d)))
        .cloned()
        .collect();
    apply(&present)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(h: u16, c: u16, udp: bool) -> PortMapping {
        PortMapping {
            host_port: h,
            container_port: c,
            udp,
            host_ip: None,
        }
    }

    fn container(masq: bool, ports: &[PortMapping]) -> Container<'_> {
        Container {
            tag: "t",
            bridge: "b",
            addr: Ipv4Addr::new(10, 0, 0, 2),
            masq,
            ports,
        }
    }

    /// Container t1 on br1 at 10.1.0.5, masqueraded.
    fn masq_container_t1(ports: &[PortMapping]) -> Container<'_> {
        Container {
            tag: "t1",
            bridge: "br1",
            addr: Ipv4Addr::new(10, 1, 0, 5),
            masq: true,
            ports,
        }
    }

    #[test]
    fn attach_and_detach_name_the_same_objects() {
        let ports = [port(8080, 80, false), port(5353, 53, true)];
        let c = masq_container_t1(&ports);
        let (a, d) = (attach(&c), detach(&c));
        // Every element added is deleted with the same key and verdict.
        let added: Vec<_> = a
            .iter()
            .filter_map(|c| c.get("add")?.get("element"))
            .collect();
        let deleted: Vec<_> = d
            .iter()
            .filter_map(|c| c.get("delete")?.get("element"))
            .collect();
        assert_eq!(added, deleted);
        assert!(d.contains(&json!({"delete": chain("dnat-t1")})));
        let text = serde_json::to_string(&a).unwrap();
        assert!(
            text.contains(r#"{"dnat":{"addr":"10.1.0.5","port":80}}"#),
            "{text}"
        );
        assert!(text.contains(r#"{"concat":["udp",5353]}"#), "{text}");
    }

    #[test]
    fn without_masquerade_or_ports_a_container_adds_nothing() {
        assert!(attach(&container(false, &[])).is_empty());
    }

    #[test]
    fn a_host_ip_narrows_the_mapping() {
        let mut p = port(80, 80, false);
        p.host_ip = Some(Ipv4Addr::new(192, 0, 2, 1));
        let text = serde_json::to_string(&attach(&container(false, &[p]))).unwrap();
        assert!(text.contains(r#""right":"192.0.2.1""#), "{text}");
    }

    #[test]
    fn a_listing_holds_what_attach_added_and_not_what_is_gone() {
        // As `nft -j list table ip husk` shows a network and a container.
        let listing = json!({"nftables": [
            {"metainfo": {"json_schema_version": 1}},
            {"table": {"family": "ip", "name": "husk"}},
            {"chain": {"family": "ip", "table": "husk", "name": "iso-br1"}},
            {"chain": {"family": "ip", "table": "husk", "name": "dnat-t1"}},
            {"set": {"family": "ip", "name": "bridges", "table": "husk", "type": "ifname",
                     "elem": ["br1"]}},
            {"map": {"family": "ip", "name": "fwd", "table": "husk", "type": "ifname",
                     "map": "verdict", "elem": [["br1", {"jump": {"target": "iso-br1"}}]]}},
            {"map": {"family": "ip", "name": "ports", "table": "husk",
                     "type": ["inet_proto", "inet_service"], "map": "verdict",
                     "elem": [[{"concat": ["tcp", 8080]}, {"jump": {"target": "dnat-t1"}}]]}}
        ]});
        let l = Listing::parse(&listing);
        let ports = [port(8080, 80, false)];
        let c = masq_container_t1(&ports);
        let held: Vec<bool> = detach(&c).iter().map(|d| l.holds(&d["delete"])).collect();
        // masq element: not listed; ports element and dnat chain: listed.
        assert_eq!(held, vec![false, true, true]);
        let gone: Vec<bool> = network_gone("br1")
            .iter()
            .map(|d| l.holds(&d["delete"]))
            .collect();
        assert_eq!(gone, vec![true, true, true, false]);
        assert!(l.holds(&table_gone()[0]["delete"]));
    }

    #[test]
    fn chains_are_flushed_before_they_are_filled() {
        for cmds in [base(), network("br9", Ipv4Addr::new(10, 9, 0, 0), 16)] {
            let mut flushed = std::collections::HashSet::new();
            for c in &cmds {
                if let Some(ch) = c.get("flush").and_then(|f| f["chain"]["name"].as_str()) {
                    flushed.insert(ch.to_string());
                }
                if let Some(r) = c.get("add").and_then(|a| a.get("rule")) {
                    assert!(flushed.contains(r["chain"].as_str().unwrap()), "{r}");
                }
            }
        }
    }
}
