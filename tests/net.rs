//! husk-net with real husk containers. Every test makes its own "host": a
//! network namespace of its own where husk-net builds bridges and its
//! nftables table, with its own state directory, so nothing touches the
//! machine's network and tests run side by side. Container namespaces are
//! files bind-mounted by `unshare --net=FILE`, as engines make them; the
//! containers join them through `linux.namespaces[].path`.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{Bundle, stdout};
use serde_json::{Value, json};

const HUSK_NET: &str = env!("CARGO_BIN_EXE_husk-net");
static SEQ: AtomicU32 = AtomicU32::new(0);

/// A test's host namespace, its state directory and the namespaces it made;
/// all unmounted and removed on drop (taking bridges, veths and rules along).
struct Host {
    dir: PathBuf,
    ns: PathBuf,
    data: PathBuf,
    made: Vec<PathBuf>,
}

fn new_ns(path: &Path) {
    fs::File::create(path).unwrap();
    let st = Command::new("unshare")
        .arg(format!("--net={}", path.display()))
        .arg("true")
        .status()
        .unwrap();
    assert!(st.success(), "unshare --net={}", path.display());
}

impl Host {
    fn new() -> Host {
        common::rootfs();
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("net-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let ns = dir.join("host.ns");
        new_ns(&ns);
        let h = Host {
            data: dir.join("state"),
            ns: ns.clone(),
            dir,
            made: vec![ns],
        };
        let o = h.sh("ip link set lo up");
        assert!(o.status.success(), "lo up: {}", common::stderr(&o));
        h
    }

    /// A new container network namespace.
    fn netns(&mut self, name: &str) -> PathBuf {
        let p = self.dir.join(format!("{name}.ns"));
        new_ns(&p);
        self.made.push(p.clone());
        p
    }

    /// A namespace on the host's "LAN": joined to the host by a veth pair
    /// (`dev` on the host with HOST_IP/24, the other end inside with IP/24),
    /// with `script` run inside after. The process holding it by pid while
    /// the pair is made is returned, for the caller to end with the link.
    fn neighbour(
        &mut self,
        name: &str,
        dev: &str,
        host_ip: &str,
        ip: &str,
        script: &str,
    ) -> (PathBuf, std::process::Child) {
        let ns = self.netns(name);
        let holder = Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(["sleep", "60"])
            .spawn()
            .unwrap();
        // `ip link … netns PID` moves the peer to where PID is now: wait
        // until nsenter has entered the namespace.
        use std::os::unix::fs::MetadataExt;
        let want = fs::metadata(&ns).unwrap().ino();
        let entered = eventually(10, || {
            let m = fs::metadata(format!("/proc/{}/ns/net", holder.id())).ok()?;
            (m.ino() == want).then_some(())
        });
        assert!(
            entered.is_some(),
            "the holder never entered {}",
            ns.display()
        );
        let link = self.sh(&format!(
            "ip link add {dev} type veth peer name {dev}p netns {} && \
             ip addr add {host_ip}/24 dev {dev} && ip link set {dev} up",
            holder.id()
        ));
        assert!(link.status.success(), "{}", common::stderr(&link));
        let up = in_ns(
            &ns,
            &[
                "sh",
                "-c",
                &format!("ip addr add {ip}/24 dev {dev}p && ip link set {dev}p up {script}"),
            ],
        );
        assert!(up.status.success(), "{}", common::stderr(&up));
        (ns, holder)
    }

    /// A command run in the host namespace.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.ns.display())).args(args);
        c
    }

    fn sh(&self, script: &str) -> Output {
        self.cmd(&["sh", "-c", script])
            .output()
            .unwrap_or_else(|e| panic!("nsenter sh -c {script:?}: {e}"))
    }

    /// A network configuration on a bridge of its own.
    fn net(&self, name: &str, bridge: &str, subnet: &str, ports: Value) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": name, "type": "husk-net",
            "bridge": bridge, "isGateway": true, "ipMasq": true, "mtu": 1500,
            "ipam": {"type": "husk-net", "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}],
                     "dataDir": self.data},
            "runtimeConfig": {"portMappings": ports},
        })
    }

    /// One CNI call in the host namespace: exit success and stdout JSON
    /// (Null when empty).
    fn cni(&self, command: &str, id: &str, netns: &Path, conf: &Value) -> (bool, Value) {
        self.cni_raw(command, id, netns, conf.to_string().as_bytes())
    }

    fn cni_raw(&self, command: &str, id: &str, netns: &Path, stdin: &[u8]) -> (bool, Value) {
        let mut child = self
            .cmd(&[HUSK_NET])
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/opt/cni/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let o = child.wait_with_output().unwrap();
        let v = if o.stdout.trim_ascii().is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
                panic!(
                    "husk-net {command}: stdout is not JSON ({e}): {}",
                    stdout(&o)
                )
            })
        };
        (o.status.success(), v)
    }

    fn add(&self, id: &str, netns: &Path, conf: &Value) -> String {
        let (ok, v) = self.cni("ADD", id, netns, conf);
        assert!(ok, "ADD {id}: {v}");
        let a = v["ips"][0]["address"].as_str().unwrap();
        a.split('/').next().unwrap().to_string()
    }

    fn del(&self, id: &str, netns: &Path, conf: &Value) {
        let (ok, v) = self.cni("DEL", id, netns, conf);
        assert!(ok, "DEL {id}: {v}");
    }

    /// What husk-net left behind in the host namespace: links but lo, the
    /// nftables table, and allocation files.
    fn residue(&self) -> Vec<String> {
        let mut r = Vec::new();
        let links = stdout(&self.sh("ip -o link show | cut -d: -f2"));
        r.extend(
            links
                .split_whitespace()
                .filter(|l| *l != "lo")
                .map(|l| format!("link {l}")),
        );
        let tables = stdout(&self.sh("nft list tables"));
        r.extend(tables.lines().map(|t| format!("nft {t}")));
        if let Ok(d) = fs::read_dir(&self.data) {
            for e in d.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name != "lock" && name != "ports" {
                    r.push(format!("state {name}"));
                }
            }
        }
        if let Ok(d) = fs::read_dir(self.data.join("ports")) {
            r.extend(d.flatten().map(|e| format!("port {:?}", e.file_name())));
        }
        r
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for p in self.made.iter().rev() {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A command run in the network namespace at `ns`.
fn in_ns(ns: &Path, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("nsenter {args:?}: {e}"))
}

/// A bundle whose container joins the network namespace at `ns`.
fn in_netns(mut b: Bundle, ns: &Path) -> Bundle {
    let nss = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    nss.retain(|n| n["type"] != "network");
    nss.push(json!({"type": "network", "path": ns}));
    b
}

/// Retries `f` for up to `secs` seconds until it returns Some.
fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const HTTP_GET: &str = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc";

/// An HTTP server container: busybox httpd on port 80 serving `page`.
fn web_bundle(ns: &Path, page: &str) -> Bundle {
    in_netns(
        Bundle::sh(&format!(
            "mkdir -p /tmp/www && echo {page} > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"
        )),
        ns,
    )
}

#[test]
fn two_containers_on_one_network_reach_each_other_by_tcp_and_udp_broadcast() {
    let mut h = Host::new();
    let conf = h.net("n1", "hbr1", "10.77.1.0/24", json!([]));
    let (ns1, ns2) = (h.netns("c1"), h.netns("c2"));
    let ip1 = h.add("c1", &ns1, &conf);
    let ip2 = h.add("c2", &ns2, &conf);
    assert_ne!(ip1, ip2);

    // TCP: an echo server in c1, a client in c2.
    let server = in_netns(
        Bundle::sh("exec nc -l -p 7000 -e sh -c 'read l; echo echo:$l'"),
        &ns1,
    );
    let s = server.create("tcp-server");
    s.ok(&["start"]);
    let client = in_netns(
        Bundle::sh(&format!(
            "for i in $(seq 50); do echo hello | nc {ip1} 7000 && exit 0; sleep 0.1; done; exit 1"
        )),
        &ns2,
    );
    let o = client
        .run_timeout("tcp-client", 30)
        .expect("tcp client hung");
    assert_eq!(stdout(&o).trim(), "echo:hello", "{}", common::stderr(&o));
    drop(s);

    // UDP: c2 broadcasts to the subnet's broadcast address, c1 hears it.
    let recv = in_netns(Bundle::new(&["/bin/probe", "udp-recv", "7001"]), &ns1);
    let r = recv.create("udp-recv");
    r.ok(&["start"]);
    let send = in_netns(
        Bundle::new(&["/bin/probe", "udp-send", "10.77.1.255", "7001", "ping"]),
        &ns2,
    );
    let so = send.run_timeout("udp-send", 30).expect("sender hung");
    assert!(so.status.success(), "{}", stdout(&so));
    r.wait_stopped();
    assert_eq!(
        r.output().trim(),
        format!("listening\ngot ping from {ip2}"),
        "the broadcast did not arrive"
    );
    drop(r);

    h.del("c1", &ns1, &conf);
    h.del("c2", &ns2, &conf);
    assert_eq!(h.residue(), Vec::<String>::new());
}

#[test]
fn a_published_port_is_reached_from_the_host_another_namespace_and_hairpin() {
    let mut h = Host::new();
    let conf = h.net(
        "web",
        "hbrweb",
        "10.77.2.0/24",
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
    );
    let ns = h.netns("web");
    let web_ip = h.add("web", &ns, &conf);
    let server = web_bundle(&ns, "husk-page");
    let s = server.create("web");
    s.ok(&["start"]);

    // The host itself, on localhost and on its own address (the gateway).
    for target in ["127.0.0.1 8080", "10.77.2.1 8080"] {
        let page = eventually(10, || {
            let o = h.sh(&format!("{HTTP_GET} {target}"));
            stdout(&o).contains("husk-page").then_some(stdout(&o))
        });
        assert!(page.is_some(), "host → {target} got no page");
    }
    // Straight to the container, the port as published is not open there.
    let direct = h.sh(&format!("{HTTP_GET} {web_ip} 8080"));
    assert!(!stdout(&direct).contains("husk-page"));

    // Another namespace, attached to the host through a second husk network
    // (its own bridge, like a host on the LAN), reaching the host's address.
    let lan = h.net("lan", "hbrlan", "10.77.3.0/24", json!([]));
    let other = h.netns("other");
    h.add("other", &other, &lan);
    let o = in_ns(&other, &["sh", "-c", &format!("{HTTP_GET} 10.77.3.1 8080")]);
    assert!(
        stdout(&o).contains("husk-page"),
        "other namespace: {}",
        stdout(&o)
    );

    // Hairpin: a second container on the web network, and the server itself,
    // through the host's published port.
    let peer_ns = h.netns("peer");
    let mut no_ports = conf.clone();
    no_ports["runtimeConfig"]["portMappings"] = json!([]);
    h.add("peer", &peer_ns, &no_ports);
    let peer = in_netns(Bundle::sh(&format!("{HTTP_GET} 10.77.2.1 8080")), &peer_ns);
    let po = peer.run_timeout("peer", 20).expect("peer hung");
    assert!(
        stdout(&po).contains("husk-page"),
        "hairpin from a peer: {}",
        stdout(&po)
    );
    let own = server
        .husk()
        .args([
            "exec",
            "web",
            "sh",
            "-c",
            &format!("timeout 10 {HTTP_GET} 10.77.2.1 8080"),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        stdout(&own).contains("husk-page"),
        "hairpin to itself: {}",
        stdout(&own)
    );

    drop(s);
    for (id, n, c) in [
        ("web", &ns, &conf),
        ("peer", &peer_ns, &no_ports),
        ("other", &other, &lan),
    ] {
        h.del(id, n, c);
    }
    assert_eq!(h.residue(), Vec::<String>::new());
}

#[test]
fn containers_on_two_networks_cannot_reach_each_other() {
    let mut h = Host::new();
    let a = h.net("a", "hbra", "10.77.4.0/24", json!([]));
    let b = h.net("b", "hbrb", "10.77.5.0/24", json!([]));
    let (nsa, nsb, nsa2) = (h.netns("a1"), h.netns("b1"), h.netns("a2"));
    let ipa = h.add("a1", &nsa, &a);
    h.add("b1", &nsb, &b);
    h.add("a2", &nsa2, &a);
    let server = web_bundle(&nsa, "net-a");
    let s = server.create("srv-a");
    s.ok(&["start"]);
    // Same network: reachable (so the server is up before the real check).
    let same = in_netns(
        Bundle::sh(&format!(
            "for i in $(seq 50); do {HTTP_GET} {ipa} 80 && exit 0; sleep 0.1; done"
        )),
        &nsa2,
    );
    let o = same
        .run_timeout("same", 30)
        .expect("same-network client hung");
    assert!(stdout(&o).contains("net-a"), "same network: {}", stdout(&o));
    // The other network: the host routes between its bridges, and husk-net
    // drops what crosses from one to another.
    let cross = in_netns(
        Bundle::sh(&format!("{HTTP_GET} -w 2 {ipa} 80; echo rc=$?")),
        &nsb,
    );
    let o = cross.run_timeout("cross", 30).expect("cross client hung");
    assert!(
        !stdout(&o).contains("net-a"),
        "crossed networks: {}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("rc=1"), "{}", stdout(&o));
    drop(s);
    h.del("a1", &nsa, &a);
    h.del("b1", &nsb, &b);
    h.del("a2", &nsa2, &a);
    assert_eq!(h.residue(), Vec::<String>::new());
}

#[test]
fn del_is_idempotent_and_add_del_cycles_leave_no_residue() {
    let mut h = Host::new();
    let conf = h.net(
        "cyc",
        "hbrcyc",
        "10.77.6.0/29",
        json!([{"hostPort": 9090, "containerPort": 90, "protocol": "udp"}]),
    );
    let mut conf = conf;
    conf["mtu"] = json!(1400);
    let ns = h.netns("cyc");
    // DEL of something never added succeeds.
    h.del("never", &ns, &conf);
    for i in 0..20 {
        h.add("cyc", &ns, &conf);
        if i == 0 {
            // The MTU is honoured on both ends.
            let inside = stdout(&in_ns(&ns, &["ip", "-o", "link", "show", "eth0"]));
            let host = stdout(&h.sh("ip -o link show master hbrcyc"));
            assert!(inside.contains("mtu 1400"), "{inside}");
            assert!(host.contains("mtu 1400"), "{host}");
        }
        let tables = stdout(&h.sh("nft list table ip husk"));
        assert!(tables.contains("udp . 9090"), "{tables}");
        h.del("cyc", &ns, &conf);
        h.del("cyc", &ns, &conf);
        assert_eq!(h.residue(), Vec::<String>::new());
    }
    // The container's side went with the host's.
    let o = in_ns(&ns, &["ip", "-o", "link", "show"]);
    assert!(!stdout(&o).contains("eth0"), "{}", stdout(&o));
}

#[test]
fn fifty_concurrent_adds_get_fifty_addresses_and_dels_free_them() {
    let mut h = Host::new();
    let conf = h.net("many", "hbrmany", "10.77.64.0/24", json!([]));
    let nss: Vec<PathBuf> = (0..50).map(|i| h.netns(&format!("m{i}"))).collect();
    let addrs: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = nss
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (h, conf) = (&h, &conf);
                sc.spawn(move || h.add(&format!("m{i}"), ns, conf))
            })
            .collect();
        hs.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let distinct: std::collections::HashSet<_> = addrs.iter().collect();
    assert_eq!(distinct.len(), 50, "{addrs:?}");
    assert!(
        !addrs
            .iter()
            .any(|a| a == "10.77.64.1" || a == "10.77.64.0" || a == "10.77.64.255")
    );
    std::thread::scope(|sc| {
        for (i, ns) in nss.iter().enumerate() {
            let (h, conf) = (&h, &conf);
            sc.spawn(move || h.del(&format!("m{i}"), ns, conf));
        }
    });
    assert_eq!(h.residue(), Vec::<String>::new());
}

#[test]
fn bad_input_gets_the_cni_error_json() {
    let mut h = Host::new();
    let ns = h.netns("bad");
    let good = h.net("bad", "hbrbad", "10.77.7.0/24", json!([]));
    let code = |cmd: &str, stdin: &[u8]| {
        let (ok, v) = h.cni_raw(cmd, "bad", &ns, stdin);
        assert!(!ok, "{cmd} succeeded: {v}");
        assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v["code"].as_u64().unwrap()
    };
    assert_eq!(code("ADD", b"{not json"), 6);
    let mut v = good.clone();
    v["cniVersion"] = json!("9.9.9");
    assert_eq!(code("ADD", v.to_string().as_bytes()), 1);
    let mut v = good.clone();
    v["ipam"]["subnet"] = json!("10.77.7.0/33");
    assert_eq!(code("ADD", v.to_string().as_bytes()), 7);
    let mut v = good.clone();
    v["runtimeConfig"]["portMappings"] = json!([{"hostPort": 0, "containerPort": 80}]);
    assert_eq!(code("ADD", v.to_string().as_bytes()), 7);
    assert_eq!(code("BOGUS", good.to_string().as_bytes()), 4);
    // The network's name names its state directory: it may not climb out.
    let mut v = good.clone();
    v["name"] = json!("../../escaped");
    assert_eq!(code("ADD", v.to_string().as_bytes()), 7);
    assert!(!h.data.parent().unwrap().join("escaped").exists());
    // A netns path that is not a network namespace.
    let (ok, v) = h.cni("ADD", "bad", Path::new("/etc/hostname"), &good);
    assert!(!ok && v["code"] == 3, "{v}");
    // Exhaustion names the range: a /30 has two usable addresses, one is the
    // gateway.
    let tiny = h.net("tiny", "hbrtiny", "10.77.8.0/30", json!([]));
    let ns2 = h.netns("bad2");
    h.add("t1", &ns, &tiny);
    let (ok, v) = h.cni("ADD", "t2", &ns2, &tiny);
    assert!(!ok && v["msg"] == "no free address", "{v}");
    // A host port published twice.
    let p = json!([{"hostPort": 8081, "containerPort": 80}]);
    let w1 = h.net("w1", "hbrw1", "10.77.9.0/24", p.clone());
    let w2 = h.net("w2", "hbrw2", "10.77.10.0/24", p);
    h.add("w1", &ns2, &w1);
    let ns3 = h.netns("bad3");
    let (ok, v) = h.cni("ADD", "w2", &ns3, &w2);
    assert!(
        !ok && v["details"]
            .as_str()
            .unwrap()
            .contains("8081/tcp is published by container w1"),
        "{v}"
    );
    // The failed ADD left nothing of its own.
    h.del("t1", &ns, &tiny);
    h.del("w1", &ns2, &w1);
    assert_eq!(h.residue(), Vec::<String>::new());
}

#[test]
fn version_check_status_and_gc() {
    let mut h = Host::new();
    let conf = h.net("v", "hbrv", "10.77.11.0/24", json!([]));
    let (ok, v) = h.cni_raw("VERSION", "", Path::new(""), br#"{"cniVersion":"1.0.0"}"#);
    assert!(ok, "{v}");
    assert!(
        v["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("1.1.0")),
        "{v}"
    );
    let (ok, v) = h.cni("STATUS", "", Path::new(""), &conf);
    assert!(ok, "{v}");

    let (ns1, ns2) = (h.netns("v1"), h.netns("v2"));
    h.add("v1", &ns1, &conf);
    h.add("v2", &ns2, &conf);
    let (ok, v) = h.cni("CHECK", "v1", &ns1, &conf);
    assert!(ok, "CHECK after ADD: {v}");
    // A second ADD for an interface that exists is an error (spec: MUST).
    let (ok, v) = h.cni("ADD", "v1", &ns1, &conf);
    assert!(!ok && v["code"] == 105, "{v}");
    // The container's address removed behind the plugin's back.
    let o = in_ns(&ns1, &["ip", "addr", "flush", "dev", "eth0"]);
    assert!(o.status.success());
    let (ok, v) = h.cni("CHECK", "v1", &ns1, &conf);
    assert!(
        !ok && v["details"].as_str().unwrap().contains("lacks"),
        "{v}"
    );

    // GC keeps v2 only.
    let mut gc = conf.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "v2", "ifname": "eth0"}]);
    let (ok, v) = h.cni("GC", "", Path::new(""), &gc);
    assert!(ok, "GC: {v}");
    let (ok, v) = h.cni("CHECK", "v2", &ns2, &conf);
    assert!(ok, "GC removed a valid attachment: {v}");
    let (ok, _) = h.cni("CHECK", "v1", &ns1, &conf);
    assert!(!ok, "GC kept a stale attachment");
    // The interface taken down behind the plugin's back.
    assert!(
        in_ns(&ns2, &["ip", "link", "set", "eth0", "down"])
            .status
            .success()
    );
    let (ok, v) = h.cni("CHECK", "v2", &ns2, &conf);
    assert!(
        !ok && v["details"].as_str().unwrap().contains("is down"),
        "{v}"
    );
    assert!(
        in_ns(&ns2, &["ip", "link", "set", "eth0", "up"])
            .status
            .success()
    );
    // Rules removed behind the plugin's back.
    assert!(h.sh("nft flush map ip husk masq").status.success());
    let (ok, v) = h.cni("CHECK", "v2", &ns2, &conf);
    assert!(
        !ok && v["details"].as_str().unwrap().contains("in masq"),
        "{v}"
    );
    h.del("v2", &ns2, &conf);
    assert_eq!(h.residue(), Vec::<String>::new());
}

#[test]
fn direct_mode_publishes_a_port_for_a_husk_container() {
    let h = Host::new();
    let ns = h.dir.join("direct.ns");
    let net = |args: &[&str]| {
        let data = format!("--data-dir={}", h.data.display());
        let netns = format!("--netns={}", ns.display());
        let mut full = vec![HUSK_NET];
        full.extend_from_slice(args);
        full.push(&data);
        full.push(&netns);
        h.cmd(&full).output().unwrap()
    };
    let o = net(&["add", "--publish", "8088:80"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let result: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        result["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.88."),
        "{result}"
    );
    let server = web_bundle(&ns, "direct-page");
    let s = server.create("direct");
    s.ok(&["start"]);
    let page = eventually(10, || {
        let o = h.sh(&format!("{HTTP_GET} 127.0.0.1 8088"));
        stdout(&o).contains("direct-page").then_some(())
    });
    assert!(
        page.is_some(),
        "no page through the direct mode's published port"
    );
    drop(s);
    let o = net(&["del", "--remove-netns"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(!ns.exists());
    assert_eq!(h.residue(), Vec::<String>::new());
    let o = net(&["add", "--publish", "80"]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("--publish \"80\""),
        "{}",
        common::stderr(&o)
    );
}

/// CVE-2020-8558's shape: publishing ports turns on route_localnet on the
/// bridge (so the host's own 127.0.0.1:PORT can be DNATed to a container),
/// which would also let a container address the host's loopback services
/// directly. A root process in the container's namespace (as one with
/// CAP_NET_ADMIN or raw sockets could) routes 127.0.0.1 out of eth0 via the
/// gateway; husk-net's guard drops it.
#[test]
fn a_container_cannot_reach_the_hosts_loopback_services() {
    let mut h = Host::new();
    let conf = h.net(
        "lo",
        "hbrlo",
        "10.77.12.0/24",
        json!([{"hostPort": 8089, "containerPort": 80}]),
    );
    let ns = h.netns("attacker");
    h.add("attacker", &ns, &conf);
    let bridge_localnet = stdout(&h.sh("cat /proc/sys/net/ipv4/conf/hbrlo/route_localnet"));
    assert_eq!(
        bridge_localnet.trim(),
        "1",
        "the setting the attack needs is on"
    );
    // A service on the host's loopback only: one datagram, reported.
    let probe = common::probe().to_str().unwrap();
    let secret = h
        .cmd(&[probe, "udp-recv", "7777"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let attack = format!(
        "ip route del local 127.0.0.1 dev lo table local; \
        ip route del local 127.0.0.0/8 dev lo table local; \
        echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet; \
        ip route add 127.0.0.1/32 via 10.77.12.1 dev eth0 && \
        {probe} udp-send 127.0.0.1 7777 attack 5"
    );
    let o = in_ns(&ns, &["sh", "-c", &attack]);
    assert!(
        o.status.success(),
        "the attack's set-up: {}",
        common::stderr(&o)
    );
    // Then the host's own datagram, which the listener must get instead.
    let _ = h
        .cmd(&[probe, "udp-send", "127.0.0.1", "7777", "local", "1"])
        .output();
    let got = secret.wait_with_output().unwrap();
    assert_eq!(
        stdout(&got).lines().last(),
        Some("got local from 127.0.0.1"),
        "the container's datagram reached the host's loopback service"
    );
    h.del("attacker", &ns, &conf);
}

/// A firewall reload (`nft flush ruleset`) takes husk-net's table away; the
/// next ADD, which would otherwise only add its own elements, writes the
/// whole table again.
#[test]
fn add_rewrites_the_rules_after_a_firewall_reload() {
    let mut h = Host::new();
    let plain = h.net("fw", "hbrfw", "10.77.13.0/24", json!([]));
    let mut published = plain.clone();
    published["runtimeConfig"]["portMappings"] = json!([{"hostPort": 9191, "containerPort": 80}]);
    let (ns1, ns2) = (h.netns("fw1"), h.netns("fw2"));
    h.add("fw1", &ns1, &plain);
    assert!(h.sh("nft flush ruleset").status.success());
    h.add("fw2", &ns2, &published);
    let table = stdout(&h.sh("nft list table ip husk"));
    for needle in [
        "tcp . 9191",
        "iifname @bridges ip daddr 127.0.0.0/8 drop",
        "iso-hbrfw",
    ] {
        assert!(table.contains(needle), "{needle} missing from:\n{table}");
    }
    h.del("fw2", &ns2, &published);
    h.del("fw1", &ns1, &plain);
    assert_eq!(h.residue(), Vec::<String>::new());
}

/// podman, as an engine: husk as its OCI runtime (through conmon) and
/// husk-net as its CNI plugin, in this test's host namespace, with storage,
/// run and tmp directories of the test's own.
struct Podman<'a> {
    host: &'a Host,
    dir: PathBuf,
    /// runroot and tmpdir: podman wants the runroot under 50 characters.
    run: PathBuf,
}

impl Podman<'_> {
    fn new(host: &Host) -> Podman<'_> {
        let dir = host.dir.join("podman");
        let bin = dir.join("cni-bin");
        let netd = dir.join("net.d");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&netd).unwrap();
        std::os::unix::fs::symlink(HUSK_NET, bin.join("husk-net")).unwrap();
        // This sandbox withholds CAP_SYS_RESOURCE even from root, so
        // podman's default rlimits (nofile and nproc at 1048576, above the
        // current hard limits) cannot be granted; ask for ones that can.
        fs::write(
            dir.join("containers.conf"),
            format!(
                "[engine]\nruntime = \"husk\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 [engine.runtimes]\nhusk = [\"{husk}\"]\nrunc = [\"/usr/sbin/runc\"]\n\
                 [network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{netd}\"\n\
                 cni_plugin_dirs = [\"{bin}\"]\ndefault_network = \"husknet\"\n\
                 [containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n",
                husk = common::husk_bin(),
                netd = netd.display(),
                bin = bin.display(),
            ),
        )
        .unwrap();
        let conf = json!({"cniVersion": "1.0.0", "name": "husknet", "plugins": [{
            "type": "husk-net", "bridge": "hbrpod", "isGateway": true, "ipMasq": true,
            "ipam": {"subnet": "10.77.20.0/24", "routes": [{"dst": "0.0.0.0/0"}], "dataDir": host.data},
            "capabilities": {"portMappings": true}}]});
        fs::write(netd.join("husknet.conflist"), conf.to_string()).unwrap();
        let run = PathBuf::from(format!("/run/husk-podman-{}", std::process::id()));
        Podman { host, dir, run }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.host.cmd(&["podman"]);
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg(format!("--root={}", self.dir.join("root").display()))
            .arg(format!("--runroot={}", self.run.join("run").display()))
            .arg(format!("--tmpdir={}", self.run.join("tmp").display()))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args).output().unwrap();
        assert!(
            o.status.success(),
            "podman {args:?}: {}",
            common::stderr(&o)
        );
        stdout(&o)
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        let _ = self
            .cmd(&["rm", "--all", "--force", "--time", "0"])
            .output();
        // conmon's cgroups (v1 here), made by this test's podman; removed
        // when empty, never touched otherwise.
        for c in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let parent = c.path().join("libpod_parent");
            let _ = fs::remove_dir(parent.join("conmon"));
            let _ = fs::remove_dir(parent);
        }
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_dir_all(&self.run);
    }
}

#[test]
fn podman_runs_husk_containers_on_a_husk_net_network() {
    let h = Host::new();
    let p = Podman::new(&h);
    let mut tar = Command::new("tar")
        .args(["--exclude=./.complete", "-C"])
        .arg(common::rootfs())
        .args(["-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let o = p
        .cmd(&[
            "import",
            "--change",
            "ENV PATH=/bin",
            "-",
            "localhost/husk-bb",
        ])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(tar.wait().unwrap().success());
    assert!(o.status.success(), "podman import: {}", common::stderr(&o));

    // The exit status comes back through conmon and podman.
    let o = p
        .cmd(&[
            "run",
            "--rm",
            "localhost/husk-bb",
            "sh",
            "-c",
            "echo hello from husk; exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&o).trim(),
        "hello from husk",
        "{}",
        common::stderr(&o)
    );
    assert_eq!(o.status.code(), Some(3));

    // The configs podman writes run under husk as under runc: the same ids,
    // capabilities, devices and mounts with their options (bar the v1
    // cgroup layout runc makes on this hybrid host, the root's storage path,
    // and husk's masks being nosuid,nodev,noexec as well as ro).
    let probe = "id; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status; ls /dev | sort | tr '\\n' ' '; \
        awk '{print $2, $3, $4}' /proc/self/mounts | grep -v '^/sys/fs/cgroup\\|^/ ' | \
        sed 's/,size=[0-9k]*//; s/,nr_inodes=[0-9]*//; s/^\\(.* tmpfs ro\\),nosuid,nodev,noexec/\\1/' | \
        sort";
    let variants: [&[&str]; 4] = [
        &[],
        &["--network", "none", "--cap-add", "NET_ADMIN", "--read-only"],
        &[
            "--network",
            "none",
            "--user",
            "1000:1000",
            "--tmpfs",
            "/scratch",
        ],
        &[
            "--network",
            "none",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
        ],
    ];
    for flags in variants {
        let run = |runtime: &str| {
            let mut args = vec!["run", "--rm", "--runtime", runtime];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["localhost/husk-bb", "sh", "-c", probe]);
            p.cmd(&args).output().unwrap()
        };
        let (r, k) = (run("runc"), run("husk"));
        assert_eq!(
            (k.status.code(), stdout(&k)),
            (r.status.code(), stdout(&r)),
            "podman run {flags:?}: husk (left) and runc (right) differ: {}{}",
            common::stderr(&k),
            common::stderr(&r)
        );
    }

    // A web server published on host port 8090.
    let id = p.ok(&[
        "run", "-d", "--name", "web", "-p", "8090:80", "localhost/husk-bb", "sh", "-c",
        "mkdir -p /tmp/www && echo podman-page > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www",
    ]);
    assert!(!id.trim().is_empty());
    let page = eventually(10, || {
        let o = h.sh(&format!("{HTTP_GET} 127.0.0.1 8090"));
        stdout(&o).contains("podman-page").then_some(())
    });
    assert!(page.is_some(), "no page through podman's published port");
    let ip = p.ok(&[
        "inspect",
        "web",
        "--format",
        "{{.NetworkSettings.Networks.husknet.IPAddress}}",
    ]);
    let ip = ip.trim();
    assert!(ip.starts_with("10.77.20."), "{ip}");
    // exec sees the address husk-net gave; another container reaches the
    // server over the bridge.
    let addr = p.ok(&["exec", "web", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("{ip}/24")), "{addr}");
    let o = p
        .cmd(&[
            "run",
            "--rm",
            "localhost/husk-bb",
            "sh",
            "-c",
            &format!("{HTTP_GET} {ip} 80"),
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("podman-page"),
        "container to container: {}",
        stdout(&o)
    );

    // rm: podman's CNI DEL leaves nothing of husk-net behind.
    p.ok(&["rm", "--force", "--time", "0", "web"]);
    assert_eq!(h.residue(), Vec::<String>::new());
}

/// A published UDP port: datagrams to the host's port 5353, from localhost
/// and from the host's own address, arrive at the container's port 53.
#[test]
fn a_published_udp_port_reaches_the_container() {
    let mut h = Host::new();
    let conf = h.net(
        "udp",
        "hbrudp",
        "10.77.14.0/24",
        json!([{"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]),
    );
    let ns = h.netns("dns");
    h.add("dns", &ns, &conf);
    let probe = common::probe().to_str().unwrap();
    for (i, target) in ["127.0.0.1", "10.77.14.1"].into_iter().enumerate() {
        let b = in_netns(Bundle::new(&["/bin/probe", "udp-recv", "53"]), &ns);
        let id = format!("udp-{i}");
        let r = b.create(&id);
        r.ok(&["start"]);
        let sent = h
            .cmd(&[probe, "udp-send", target, "5353", "over-udp", "10"])
            .output()
            .unwrap();
        assert!(sent.status.success(), "{}", stdout(&sent));
        r.wait_stopped();
        assert!(
            r.output().contains("got over-udp from 10.77.14.1"),
            "{target}: {}",
            r.output()
        );
    }
    h.del("dns", &ns, &conf);
    assert_eq!(h.residue(), Vec::<String>::new());
}

/// ipMasq: what a container sends out of the subnet leaves with the host's
/// address. An outside host (a namespace on a plain veth from the host, not a
/// husk bridge) reports the source it sees; without ipMasq it sees the
/// container's own address.
#[test]
fn ip_masq_rewrites_the_source_of_traffic_leaving_the_subnet() {
    let mut h = Host::new();
    let (ext, mut holder) = h.neighbour("outside", "hx0", "192.168.77.1", "192.168.77.2", "");
    let probe = common::probe().to_str().unwrap();
    let ns = h.netns("mq");
    for masq in [true, false] {
        let mut conf = h.net("mq", "hbrmq", "10.77.15.0/24", json!([]));
        conf["ipMasq"] = json!(masq);
        let ip = h.add("mq", &ns, &conf);
        let recv = Command::new("nsenter")
            .arg(format!("--net={}", ext.display()))
            .args([probe, "udp-recv", "7002"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let b = in_netns(
            Bundle::new(&[
                "/bin/probe",
                "udp-send",
                "192.168.77.2",
                "7002",
                "out",
                "20",
            ]),
            &ns,
        );
        let o = b.run_timeout("mq", 30).expect("sender hung");
        assert!(o.status.success(), "{}", stdout(&o));
        let got = stdout(&recv.wait_with_output().unwrap());
        let want = if masq { "192.168.77.1" } else { ip.as_str() };
        assert!(
            got.contains(&format!("got out from {want}")),
            "ipMasq {masq}: {got}"
        );
        h.del("mq", &ns, &conf);
    }
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(h.sh("ip link del hx0").status.success());
    assert_eq!(h.residue(), Vec::<String>::new());
}

#[test]
fn a_lan_neighbour_reaches_published_ports_only() {
    // A neighbour on the host's LAN that routes the container subnet through
    // the host (as any machine on the same link can) must reach a container
    // only through its published ports, and the container's own connections
    // out must still get their replies.
    let mut h = Host::new();
    let (lan, mut holder) = h.neighbour(
        "lan",
        "hl0",
        "192.168.78.1",
        "192.168.78.2",
        "&& ip route add 10.77.16.0/24 via 192.168.78.1",
    );
    let conf = h.net(
        "pub",
        "hbrpub",
        "10.77.16.0/24",
        json!([{"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}]),
    );
    let ns = h.netns("pub");
    let web_ip = h.add("pub", &ns, &conf);
    let server = web_bundle(&ns, "lan-page");
    let s = server.create("lanweb");
    s.ok(&["start"]);
    let get = |target: &str| {
        let o = in_ns(&lan, &["sh", "-c", &format!("{HTTP_GET} -w 2 {target}")]);
        stdout(&o)
    };
    // The published port, through the host's address.
    let page = eventually(10, || {
        get("192.168.78.1 8081").contains("lan-page").then_some(())
    });
    assert!(
        page.is_some(),
        "the published port was not reached from the LAN"
    );
    // The container's own address, port not published as such: dropped.
    assert!(
        !get(&format!("{web_ip} 80")).contains("lan-page"),
        "an unpublished container port was reached from the LAN"
    );
    // Replies to the container's own connection come back in: a page the
    // neighbour serves, fetched from the container.
    let www =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("lanwww-{}", std::process::id()));
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "lan-served\n").unwrap();
    let mut lan_web = Command::new("nsenter")
        .arg(format!("--net={}", lan.display()))
        .args(["busybox", "httpd", "-f", "-p", "8082", "-h"])
        .arg(&www)
        .spawn()
        .unwrap();
    let fetch = server
        .husk()
        .args([
            "exec",
            "lanweb",
            "sh",
            "-c",
            &format!("timeout 10 {HTTP_GET} 192.168.78.2 8082"),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = lan_web.kill();
    let _ = lan_web.wait();
    let _ = std::fs::remove_dir_all(&www);
    assert!(
        stdout(&fetch).contains("lan-served"),
        "the container's own connection got no reply: {}",
        stdout(&fetch)
    );
    drop(s);
    h.del("pub", &ns, &conf);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(h.sh("ip link del hl0").status.success());
    assert_eq!(h.residue(), Vec::<String>::new());
}

#[test]
fn a_bridge_belongs_to_one_network() {
    // Two network configs naming one bridge would share it with separate
    // address pools (both hand out the same address), and a DEL on one would
    // tear down the other's isolation: the second is refused, naming both,
    // until the first has no attachment left.
    let mut h = Host::new();
    let ns_a = h.netns("sa");
    let ns_b = h.netns("sb");
    let a = h.net("netA", "hbrshared", "10.77.17.0/24", json!([]));
    let b = h.net("netB", "hbrshared", "10.77.18.0/24", json!([]));
    h.add("sa", &ns_a, &a);
    let (ok, out) = h.cni("ADD", "sb", &ns_b, &b);
    assert!(!ok, "a second network was put on the bridge: {out}");
    assert_eq!(out["code"], 7, "{out}");
    let msg = out.to_string();
    assert!(
        msg.contains("hbrshared") && msg.contains("netA") && msg.contains("netB"),
        "{msg}"
    );
    // The refusal left netA's attachment and isolation as they were.
    let (ok, out) = h.cni("CHECK", "sa", &ns_a, &a);
    assert!(ok, "{out}");
    h.del("sa", &ns_a, &a);
    // Once netA has no attachment left, netB may have the bridge.
    h.add("sb", &ns_b, &b);
    h.del("sb", &ns_b, &b);
    assert_eq!(h.residue(), Vec::<String>::new());
}

#[test]
fn add_into_a_namespace_with_a_default_route_fails_clearly() {
    // The namespace already routes 0.0.0.0/0 elsewhere (another network's
    // interface): ADD must not report a gateway whose route it did not add.
    // It fails, naming the route, as the reference bridge plugin fails, and
    // leaves nothing behind.
    let mut h = Host::new();
    let ns = h.netns("dflt");
    let setup = in_ns(
        &ns,
        &[
            "sh",
            "-c",
            "ip link add other0 type veth peer name other1 && ip link set other1 up && \
             ip addr add 192.168.79.2/24 dev other0 && \
             ip link set other0 up && ip route add default via 192.168.79.1",
        ],
    );
    assert!(setup.status.success(), "{}", common::stderr(&setup));
    let conf = h.net("dflt", "hbrdflt", "10.77.19.0/24", json!([]));
    let (ok, out) = h.cni("ADD", "dflt", &ns, &conf);
    assert!(
        !ok,
        "ADD reported success with another default route in place: {out}"
    );
    let msg = out.to_string();
    assert!(msg.contains("0.0.0.0/0") && msg.contains("exists"), "{msg}");
    let routes = in_ns(&ns, &["ip", "route"]);
    assert!(
        stdout(&routes).contains("default via 192.168.79.1"),
        "{}",
        stdout(&routes)
    );
    assert_eq!(h.residue(), Vec::<String>::new());
}

#[test]
fn a_failing_del_changes_nothing() {
    // A DEL that cannot be completed (here: a rule someone added in husk's
    // table still jumps to the network's isolation chain, so the chain cannot
    // go) must fail as a whole. Applied command by command, it took the
    // bridge out of @bridges and @fwd first: the other network's isolation
    // from this one was gone while this network was still attached.
    let mut h = Host::new();
    let ns_a = h.netns("fa");
    let ns_b = h.netns("fb");
    let a = h.net("failA", "hbrfaila", "10.77.21.0/24", json!([]));
    let b = h.net("failB", "hbrfailb", "10.77.22.0/24", json!([]));
    h.add("fa", &ns_a, &a);
    h.add("fb", &ns_b, &b);
    let pin = h.sh("nft add chain ip husk pin && nft add rule ip husk pin jump iso-hbrfaila");
    assert!(pin.status.success(), "{}", common::stderr(&pin));
    let table = || stdout(&h.sh("nft -j list table ip husk"));
    let before = table();
    let (ok, out) = h.cni("DEL", "fa", &ns_a, &a);
    assert!(!ok, "DEL succeeded although its chain is in use: {out}");
    assert_eq!(out["code"], 102, "{out}");
    let after = table();
    let set = |t: &str, name: &str| -> Value {
        let v: Value = serde_json::from_str(t).unwrap();
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("set").or(o.get("map")))
            .find(|s| s["name"] == name)
            .map(|s| s["elem"].clone())
            .unwrap_or(Value::Null)
    };
    for name in ["bridges", "fwd", "masq"] {
        assert_eq!(set(&before, name), set(&after, name), "@{name} changed");
    }
    // The attachment is still whole, and a DEL once the pin is gone works.
    let (ok, out) = h.cni("CHECK", "fa", &ns_a, &a);
    assert!(ok, "{out}");
    let unpin = h.sh("nft delete chain ip husk pin");
    assert!(unpin.status.success(), "{}", common::stderr(&unpin));
    h.del("fa", &ns_a, &a);
    h.del("fb", &ns_b, &b);
    assert_eq!(h.residue(), Vec::<String>::new());
}
