//! net-bench: husk-net's data path and its ADD/DEL latency.
//!
//!   net-bench --husk-net PATH [--cni-bin DIR] [--rounds N] [--seconds S]
//!
//! Everything happens in a network namespace the benchmark makes for itself
//! (its "host"), so the machine's network is not touched.
//!
//! - Throughput: iperf3 (Debian's) over TCP between two container network
//!   namespaces attached by husk-net to one bridge, against iperf3 over the
//!   host's loopback; interleaved rounds of S seconds, medians, the ratio.
//!   iperf3 runs in the namespaces with nsenter: the namespace is all of the
//!   container that a packet sees.
//! - Latency: ADD then DEL of one attachment, per round in rotating order,
//!   for husk-net (no NAT, no port: the same work as the reference), husk-net
//!   with masquerade and a published port, and the reference CNI `bridge`
//!   plugin with `host-local` (Debian's containernetworking-plugins) when
//!   installed. Each command is timed from spawn to exit, as a runtime pays it.
//!   Every network keeps one other attachment meanwhile, so the DEL timed is
//!   not the network's last (that one also deletes the bridge).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("spawn");
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn new_ns(path: &Path) {
    fs::File::create(path).unwrap();
    run(Command::new("unshare")
        .arg(format!("--net={}", path.display()))
        .arg("true"));
}

/// One CNI call; the time it took in ms and its stdout.
fn cni(
    plugin: &Path,
    cni_path: &Path,
    command: &str,
    id: &str,
    ns: &Path,
    conf: &Value,
) -> (f64, Value) {
    let t = Instant::now();
    let mut c = Command::new(plugin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", ns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plugin");
    c.stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert!(
        o.status.success(),
        "{} {command} {id} in {}: {}{}",
        plugin.display(),
        ns.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (ms, v)
}

/// iperf3 from `client_ns` to `addr` (server in `server_ns`); Gbit/s.
fn iperf(server_ns: Option<&Path>, client_ns: Option<&Path>, addr: &str, secs: u32) -> f64 {
    let nsenter = |ns: Option<&Path>| {
        let mut c = Command::new("nsenter");
        if let Some(ns) = ns {
            c.arg(format!("--net={}", ns.display()));
        }
        c
    };
    let mut server = nsenter(server_ns)
        .args(["iperf3", "-s", "-1", "-B", addr])
        .stdout(Stdio::null())
        .spawn()
        .expect("iperf3 (Debian package iperf3)");
    let mut out = String::new();
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let o = nsenter(client_ns)
            .args(["iperf3", "-J", "-c", addr, "-t", &secs.to_string()])
            .output()
            .unwrap();
        if o.status.success() {
            out = String::from_utf8_lossy(&o.stdout).into_owned();
            break;
        }
    }
    let _ = server.wait();
    let v: Value = serde_json::from_str(&out).expect("iperf3 -J output");
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap()
        / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let husk_net = PathBuf::from(arg(&args, "--husk-net").expect("--husk-net PATH"));
    let cni_bin = PathBuf::from(arg(&args, "--cni-bin").unwrap_or("/usr/lib/cni".into()));
    let rounds: usize = arg(&args, "--rounds").map_or(20, |r| r.parse().unwrap());
    let secs: u32 = arg(&args, "--seconds").map_or(5, |r| r.parse().unwrap());

    // The benchmark's own host network namespace and its own mount
    // namespace, for this process and its children. The namespace files
    // and state live on a tmpfs mounted over /tmp only in that mount
    // namespace: they vanish with the process, even when it aborts (the
    // release profile aborts on panic, so no destructor would run).
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS).expect("unshare(NEWNET|NEWNS)");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make / private");
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .expect("tmpfs on /tmp");
    run(Command::new("ip").args(["link", "set", "lo", "up"]));
    let dir = PathBuf::from("/tmp/net-bench");
    fs::create_dir_all(&dir).unwrap();
    let ns = |name: &str| {
        let p = dir.join(name);
        new_ns(&p);
        p
    };

    let conf = |name: &str, bridge: &str, subnet: &str, typ: &str, masq: bool, ports: Value| {
        json!({
            "cniVersion": "1.0.0", "name": name, "type": typ, "bridge": bridge,
            "isGateway": true, "ipMasq": masq,
            "ipam": {"type": "host-local", "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}],
                     "dataDir": dir.join(format!("state-{name}"))},
            "runtimeConfig": {"portMappings": ports},
        })
    };

    // Throughput.
    let (a, b) = (ns("tp-a"), ns("tp-b"));
    let tp = conf("tp", "nbtp", "10.99.0.0/24", "husk-net", true, json!([]));
    let (_, ra) = cni(&husk_net, &cni_bin, "ADD", "tp-a", &a, &tp);
    cni(&husk_net, &cni_bin, "ADD", "tp-b", &b, &tp);
    let addr_a = ra["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let tp_rounds = rounds.clamp(1, 7);
    let (mut lo, mut br) = (Vec::new(), Vec::new());
    for r in 0..tp_rounds {
        let mut once = |which: usize| match which {
            0 => lo.push(iperf(None, None, "127.0.0.1", secs)),
            _ => br.push(iperf(Some(&a), Some(&b), &addr_a, secs)),
        };
        once(r % 2);
        once((r + 1) % 2);
    }
    cni(&husk_net, &cni_bin, "DEL", "tp-a", &a, &tp);
    cni(&husk_net, &cni_bin, "DEL", "tp-b", &b, &tp);
    let (lo_m, br_m) = (median(&mut lo), median(&mut br));

    // ADD/DEL latency.
    let reference = cni_bin.join("bridge");
    let mut plugins: Vec<(&str, PathBuf, Value)> = vec![
        (
            "husk-net",
            husk_net.clone(),
            conf("l1", "nbl1", "10.99.1.0/24", "husk-net", false, json!([])),
        ),
        (
            "husk-net, NAT + 1 published port",
            husk_net.clone(),
            conf(
                "l2",
                "nbl2",
                "10.99.2.0/24",
                "husk-net",
                true,
                json!([{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]),
            ),
        ),
    ];
    if reference.exists() && cni_bin.join("host-local").exists() {
        plugins.push((
            "reference bridge + host-local",
            reference,
            conf("l3", "nbl3", "10.99.3.0/24", "bridge", false, json!([])),
        ));
    }
    let lat_ns = ns("lat");
    // Each network keeps one other attachment throughout, so the DEL timed is
    // the usual one, not the one that also takes the network's bridge down.
    let keep: Vec<PathBuf> = (0..plugins.len())
        .map(|i| ns(&format!("keep{i}")))
        .collect();
    let unpublished = |c: &Value| {
        let mut c = c.clone();
        c["runtimeConfig"]["portMappings"] = json!([]);
        c
    };
    for ((_, bin, c), k) in plugins.iter().zip(&keep) {
        cni(bin, &cni_bin, "ADD", "keep", k, &unpublished(c));
    }
    let mut times: Vec<(Vec<f64>, Vec<f64>)> = plugins.iter().map(|_| (vec![], vec![])).collect();
    for r in 0..rounds {
        for k in 0..plugins.len() {
            let i = (r + k) % plugins.len();
            let (_, bin, c) = &plugins[i];
            let (add, _) = cni(bin, &cni_bin, "ADD", "lat", &lat_ns, c);
            let (del, _) = cni(bin, &cni_bin, "DEL", "lat", &lat_ns, c);
            times[i].0.push(add);
            times[i].1.push(del);
        }
    }

    for ((_, bin, c), k) in plugins.iter().zip(&keep) {
        cni(bin, &cni_bin, "DEL", "keep", k, &unpublished(c));
    }

    println!("| metric | value |");
    println!("|---|---|");
    println!("| TCP, host loopback (Gbit/s) | {lo_m:.1} |");
    println!("| TCP, container to container over the husk-net bridge (Gbit/s) | {br_m:.1} |");
    println!("| bridge / loopback | {:.0}% |", 100.0 * br_m / lo_m);
    for (i, (name, _, _)) in plugins.iter().enumerate() {
        let (add, del) = &mut times[i];
        println!("| ADD, {name} (ms, median) | {:.2} |", median(add));
        println!("| DEL, {name} (ms, median) | {:.2} |", median(del));
    }
    println!(
        "\n{tp_rounds} throughput rounds of {secs} s each way, {rounds} ADD/DEL rounds; \
         loopback samples {lo:.1?}, bridge samples {br:.1?}"
    );
}
