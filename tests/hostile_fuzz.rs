//! Property tests over the readers that take hostile input: a layer's tar
//! stream (paths, links, whiteouts, sparse and mangled headers), an image
//! archive's members (docker-archive), and the CNI network config. Whatever
//! they are fed, they return a result or an error, never panic, and never
//! touch anything outside what they were given to write into.
//!
//! Deterministic in CI (a fixed seed, see `fuzz/mutate.rs`); run longer with
//! `HUSK_FUZZ_RANDOM=1 HUSK_FUZZ_CASES=20000 cargo test --release --test hostile_fuzz`.

#[path = "fuzz/mutate.rs"]
mod mutate;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use husk::image::unpack::{Whiteouts, apply_layer};
use husk::image::{Descriptor, Source, UnpackArgs, Verified};
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::Digest;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A fresh directory for one case, with an `outside` directory beside the
/// place being written, holding what no input may change.
struct Case {
    dir: PathBuf,
}

impl Case {
    fn new(what: &str) -> Case {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fuzz-{what}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("outside/sub")).unwrap();
        fs::write(dir.join("outside/secret"), SECRET).unwrap();
        fs::write(dir.join("outside/sub/file"), "kept\n").unwrap();
        Case { dir }
    }

    fn outside(&self) -> PathBuf {
        self.dir.join("outside")
    }

    /// Every path under `outside`, with its type and content.
    fn snapshot(&self) -> Vec<(PathBuf, String)> {
        fn walk(p: &Path, out: &mut Vec<(PathBuf, String)>) {
            let mut names: Vec<_> = fs::read_dir(p).unwrap().flatten().collect();
            names.sort_by_key(|e| e.file_name());
            for e in names {
                let path = e.path();
                let m = fs::symlink_metadata(&path).unwrap();
                let what = if m.is_dir() {
                    walk(&path, out);
                    "dir".to_string()
                } else if m.file_type().is_symlink() {
                    format!("link {:?}", fs::read_link(&path).unwrap())
                } else {
                    format!("file {:?}", fs::read(&path).unwrap_or_default())
                };
                out.push((path, what));
            }
        }
        let mut v = Vec::new();
        walk(&self.outside(), &mut v);
        v
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

const SECRET: &str = "HOST-SECRET\n";

// ---------------------------------------------------------------- layers

/// Names an entry's path is made of: traversal, absolute roots, whiteouts,
/// names earlier entries may have made links.
const COMPONENTS: &[&str] = &[
    "a",
    "b",
    "etc",
    "..",
    ".",
    "",
    "link",
    "dir",
    ".wh.a",
    ".wh..wh..opq",
    ".wh.",
    ".wh..",
    ".wh.link",
    "passwd",
];

#[derive(Debug, Clone)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
    Fifo,
    Char,
    /// A header whose type byte is anything at all.
    Raw(u8),
}

fn component_path() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        proptest::collection::vec(proptest::sample::select(COMPONENTS), 1..5),
    )
        .prop_map(|(abs, parts)| {
            let p = parts.join("/");
            if abs { format!("/{p}") } else { p }
        })
}

/// Link targets: inside, climbing out, absolute host paths (filled in with
/// the case's own `outside` at build time through the `@OUT` marker).
fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        component_path(),
        Just("@OUT".to_string()),
        Just("@OUT/secret".to_string()),
        Just("@OUT/sub".to_string()),
        Just("../../../../../../@OUT/sub".to_string()),
        Just("/dev/zero".to_string()),
        Just("/proc/self/root".to_string()),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Kind::File),
        2 => Just(Kind::Dir),
        3 => target().prop_map(Kind::Symlink),
        2 => target().prop_map(Kind::Hardlink),
        1 => Just(Kind::Fifo),
        1 => Just(Kind::Char),
        1 => any::<u8>().prop_map(Kind::Raw),
    ]
}

/// Header damage: (offset in the stream, new byte), and a length to cut to.
#[derive(Debug, Clone)]
struct Damage {
    flips: Vec<(usize, u8)>,
    cut: Option<usize>,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        3 => Just(Damage { flips: vec![], cut: None }),
        1 => (proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), proptest::option::of(any::<usize>()))
            .prop_map(|(flips, cut)| Damage { flips, cut }),
    ]
}

/// A tar of the entries, names written into the header bytes as given (the
/// tar crate's own setters refuse `..`, which is what is being tested).
fn build_tar(entries: &[(String, Kind)], out: &Path) -> Vec<u8> {
    let out = out.to_string_lossy();
    let fill = |s: &str| s.replace("@OUT", &out);
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind) in entries {
        let mut h = tar::Header::new_gnu();
        let name = fill(path);
        let bytes = name.as_bytes();
        let n = bytes.len().min(99);
        h.as_old_mut().name[..n].copy_from_slice(&bytes[..n]);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        let mut data: &[u8] = &[];
        let link = |h: &mut tar::Header, t: &str| {
            let t = fill(t);
            let tb = t.as_bytes();
            let n = tb.len().min(99);
            h.as_old_mut().linkname[..n].copy_from_slice(&tb[..n]);
        };
        match kind {
            Kind::File(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                data = d;
            }
            Kind::Dir => h.set_entry_type(tar::EntryType::Directory),
            Kind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                link(&mut h, t);
            }
            Kind::Hardlink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                link(&mut h, t);
            }
            Kind::Fifo => h.set_entry_type(tar::EntryType::Fifo),
            Kind::Char => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
            }
            Kind::Raw(t) => h.set_entry_type(tar::EntryType::new(*t)),
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn sha256(data: &[u8]) -> String {
    let h = sha2::Sha256::digest(data);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Applies `tar` as a layer into a fresh rootfs of the case.
fn apply(case: &Case, tar: &[u8], how: Whiteouts) -> Result<(), String> {
    let rootfs = case.dir.join("rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    let desc = Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        digest: sha256(tar),
        size: tar.len() as u64,
        annotations: Default::default(),
        platform: None,
    };
    fs::write(case.dir.join("blob"), tar).unwrap();
    let blob = Verified::open(&case.dir, Path::new("blob"), &desc).map_err(|e| e.to_string())?;
    let (blob, _) = apply_layer(&rootfs, &desc, blob, how, 64 << 20).map_err(|e| e.to_string())?;
    blob.finish().map_err(|e| e.to_string())
}

/// The case's directory holds only what the layer run made: rootfs, blob,
/// and the untouched outside.
fn only_expected_entries(case: &Case) -> Result<(), TestCaseError> {
    let mut names: Vec<String> = fs::read_dir(&case.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    prop_assert_eq!(names, vec!["blob", "outside", "rootfs"]);
    Ok(())
}

proptest! {
    #![proptest_config(mutate::config(400))]

    #[test]
    fn any_layer_applies_or_is_refused_and_stays_inside(
        entries in proptest::collection::vec((component_path(), kind()), 1..12),
        dmg in damage(),
        overlay in any::<bool>(),
    ) {
        let case = Case::new("layer");
        let before = case.snapshot();
        let mut tar = build_tar(&entries, &case.outside());
        for (at, byte) in &dmg.flips {
            let len = tar.len();
            tar[at % len] = *byte;
        }
        if let Some(cut) = dmg.cut {
            let len = tar.len();
            tar.truncate(cut % (len + 1));
        }
        let how = if overlay { Whiteouts::Overlay } else { Whiteouts::Apply };
        if let Err(msg) = apply(&case, &tar, how) {
            prop_assert!(msg.contains("sha256:"), "an error names the layer: {}", msg);
        }
        prop_assert_eq!(case.snapshot(), before);
        only_expected_entries(&case)?;
    }
}

// -------------------------------------------------------------- archives

#[derive(Debug, Clone)]
enum Member {
    /// The layer the config's diff id names, as it should be.
    Honest,
    /// A symlink to the host file with the same content.
    LinkOut(String),
    /// A hard link (a tar `Link` entry) to a host path.
    HardOut(String),
    /// A symlink to another member that is itself a link out.
    Chain,
    Fifo,
    Dir,
}

fn member() -> impl Strategy<Value = Member> {
    prop_oneof![
        Just(Member::Honest),
        prop_oneof![
            Just("@OUT/secret.tar".to_string()),
            Just("../../../../../../../@OUT/secret.tar".to_string()),
            Just("/dev/zero".to_string()),
            Just("/proc/self/fd/0".to_string()),
        ]
        .prop_map(Member::LinkOut),
        Just(Member::HardOut("@OUT/secret.tar".to_string())),
        Just(Member::Chain),
        Just(Member::Fifo),
        Just(Member::Dir),
    ]
}

/// A docker-archive whose one layer member is `layer`, and some extra
/// members that are links of every kind, as a tar.
fn docker_archive(case: &Case, layer: &Member, extras: &[(String, Kind)]) -> Vec<u8> {
    let out = case.outside().to_string_lossy().into_owned();
    // The host holds a layer tar with the secret, whose digest is known.
    let mut inner = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("secret").unwrap();
    h.set_size(SECRET.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    inner.append(&h, SECRET.as_bytes()).unwrap();
    let secret_layer = inner.into_inner().unwrap();
    fs::write(case.outside().join("secret.tar"), &secret_layer).unwrap();
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["cat", "/secret"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&secret_layer)]}}))
    .unwrap();
    let manifest = serde_json::to_vec(&json!([{"Config": "config.json",
        "RepoTags": ["fuzz:latest"], "Layers": ["l0/layer.tar"]}]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..path.len().min(99)]
            .copy_from_slice(&path.as_bytes()[..path.len().min(99)]);
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            let l = l.replace("@OUT", &out);
            let n = l.len().min(99);
            h.as_old_mut().linkname[..n].copy_from_slice(&l.as_bytes()[..n]);
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("manifest.json", tar::EntryType::Regular, &manifest, None);
    add("config.json", tar::EntryType::Regular, &config, None);
    add("l0", tar::EntryType::Directory, &[], None);
    let other_layer = build_tar(
        &[("other".into(), Kind::File(b"x".to_vec()))],
        Path::new("/"),
    );
    match layer {
        Member::Honest => add("l0/layer.tar", tar::EntryType::Regular, &other_layer, None),
        Member::LinkOut(t) => add("l0/layer.tar", tar::EntryType::Symlink, &[], Some(t)),
        Member::HardOut(t) => add("l0/layer.tar", tar::EntryType::Link, &[], Some(t)),
        Member::Chain => {
            add("hop", tar::EntryType::Symlink, &[], Some("@OUT/secret.tar"));
            add("l0/layer.tar", tar::EntryType::Symlink, &[], Some("../hop"));
        }
        Member::Fifo => add("l0/layer.tar", tar::EntryType::Fifo, &[], None),
        Member::Dir => add("l0/layer.tar", tar::EntryType::Directory, &[], None),
    }
    for (path, kind) in extras {
        let t = build_tar(&[(path.clone(), kind.clone())], case.outside().as_path());
        // One entry's header and data, without the end blocks.
        let body = &t[..t.len() - 1024];
        b.get_mut().extend_from_slice(body);
    }
    b.into_inner().unwrap()
}

proptest! {
    #![proptest_config(mutate::config(150))]

    #[test]
    fn any_archive_unpacks_or_is_refused_and_reads_nothing_outside(
        layer in member(),
        extras in proptest::collection::vec((component_path(), kind()), 0..5),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
    ) {
        let case = Case::new("archive");
        let before = case.snapshot();
        let mut archive = docker_archive(&case, &layer, &extras);
        for (at, byte) in &flips {
            let len = archive.len();
            archive[at % len] = *byte;
        }
        let file = case.dir.join("image.tar");
        fs::write(&file, &archive).unwrap();
        let source = Source::Docker { file, reference: None };
        let bundle = case.dir.join("bundle");
        let a = UnpackArgs {
            source: &source,
            bundle: &bundle,
            platform: ("linux", "amd64"),
            entrypoint: None,
            args: vec![],
            quiet: true,
            netns: None,
            max_layer_size: 64 << 20,
        };
        let r = husk::image::unpack_flat(&a);
        // The host's layer is never imported, whatever the members are.
        prop_assert!(!bundle.join("rootfs/secret").exists(), "{:?} imported the host's layer", layer);
        match r {
            Ok(()) => prop_assert!(bundle.join("config.json").exists()),
            Err(e) => {
                prop_assert!(!e.to_string().trim().is_empty());
                prop_assert!(!bundle.exists(), "a failed unpack left {}", bundle.display());
            }
        }
        // secret.tar is the case's own host file, written before `before`'s
        // walk would have seen it: compare without it.
        let after: Vec<_> = case.snapshot().into_iter().filter(|(p, _)| !p.ends_with("secret.tar")).collect();
        prop_assert_eq!(after, before);
    }
}

// ----------------------------------------------------------- CNI configs

const CNI_KEYS: &[&str] = &[
    "cniVersion",
    "name",
    "type",
    "bridge",
    "isGateway",
    "ipMasq",
    "mtu",
    "ipam",
    "subnet",
    "rangeStart",
    "rangeEnd",
    "gateway",
    "routes",
    "dst",
    "gw",
    "dataDir",
    "runtimeConfig",
    "portMappings",
    "hostPort",
    "containerPort",
    "protocol",
    "hostIP",
    "prevResult",
    "capabilities",
    "args",
];

const CNI_STRINGS: &[&str] = &[
    "1.0.0",
    "1.1.0",
    "0.4.0",
    "0.3.1",
    "husk-net",
    "husk0",
    "../../etc",
    "/var/lib/husk-net",
    "10.88.0.0/16",
    "10.88.0.1",
    "10.88.255.255",
    "0.0.0.0/0",
    "0.0.0.0/32",
    "255.255.255.255/32",
    "10.88.0.0/33",
    "10.88.0.0/31",
    "10.88.0.0/-1",
    "1.2.3.4/08",
    "::1",
    "fe80::/64",
    "tcp",
    "udp",
    "sctp",
    "a-very-long-bridge-name",
    "eth0",
    "lo",
    "",
    " ",
    "-",
    ".",
    "..",
];

fn cni_base() -> Value {
    json!({
        "cniVersion": "1.0.0", "name": "web", "type": "husk-net",
        "bridge": "husk0", "isGateway": true, "ipMasq": true, "mtu": 1500,
        "ipam": {"type": "husk-net", "subnet": "10.88.0.0/16",
                 "rangeStart": "10.88.0.10", "rangeEnd": "10.88.0.200",
                 "gateway": "10.88.0.1",
                 "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.88.0.1"}],
                 "dataDir": "/var/lib/husk-net"},
        "runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]},
    })
}

fn in_subnet(a: std::net::Ipv4Addr, net: std::net::Ipv4Addr, prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    u32::from(a) & mask == u32::from(net) & mask
}

/// What a config that parsed must hold, whatever it was made from.
fn check_conf(c: &husk::netns::config::NetConf) -> Result<(), TestCaseError> {
    use husk::netns::config::valid_ifname;
    prop_assert!(valid_ifname(&c.bridge), "bridge {:?}", c.bridge);
    prop_assert!(!c.name.is_empty() && !c.name.contains('/') && c.name != "..");
    prop_assert!((68..=65535).contains(&c.mtu));
    let p = &c.pool;
    prop_assert!(p.prefix <= 32);
    for a in [p.start, p.end, p.gateway] {
        prop_assert!(
            in_subnet(a, p.network, p.prefix),
            "{} outside {}/{}",
            a,
            p.network,
            p.prefix
        );
    }
    prop_assert!(u32::from(p.start) <= u32::from(p.end));
    for r in &c.routes {
        prop_assert!(r.prefix <= 32);
    }
    for port in &c.ports {
        prop_assert!(port.host_port != 0 && port.container_port != 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(mutate::config(3000))]

    #[test]
    fn any_cni_config_parses_or_is_refused_without_panic(
        edits in proptest::collection::vec(mutate::edit(CNI_KEYS, CNI_STRINGS), 1..6),
    ) {
        let mut c = cni_base();
        for e in &edits {
            mutate::apply(&mut c, e);
        }
        match husk::netns::config::netconf(c.to_string().as_bytes()) {
            Ok(conf) => check_conf(&conf)?,
            Err(e) => {
                let j = e.to_json("1.0.0");
                prop_assert!(j["code"].as_u64().is_some_and(|c| c > 0), "{}", j);
                prop_assert!(!j["msg"].as_str().unwrap_or_default().is_empty(), "{}", j);
            }
        }
    }

    #[test]
    fn any_bytes_as_a_cni_config_are_refused_without_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut bytes = cni_base().to_string().into_bytes();
        for (at, b) in &flips {
            let len = bytes.len();
            bytes[at % len] = *b;
        }
        let len = bytes.len();
        bytes.truncate(cut % (len + 1));
        if let Ok(conf) = husk::netns::config::netconf(&bytes) {
            check_conf(&conf)?;
        }
    }
}

#[test]
fn the_bases_are_valid() {
    // Starting points that work, so the edits are what the properties test.
    husk::netns::config::netconf(cni_base().to_string().as_bytes()).unwrap();
    let case = Case::new("base");
    let tar = build_tar(
        &[
            ("dir".into(), Kind::Dir),
            ("dir/file".into(), Kind::File(b"x".to_vec())),
            ("link".into(), Kind::Symlink("dir/file".into())),
        ],
        &case.outside(),
    );
    apply(&case, &tar, Whiteouts::Apply).unwrap();
    assert_eq!(fs::read(case.dir.join("rootfs/link")).unwrap(), b"x");
}
