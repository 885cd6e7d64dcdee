//! IPv4 address management, host-local style: one file per allocated address
//! under a network's state directory, named by the address and holding the
//! container id and interface; an exclusive flock on the directory's `lock`
//! serialises allocators across processes, so concurrent ADDs get distinct
//! addresses. The network and broadcast addresses and the gateway are never
//! handed out; allocation continues after the last one handed out, as the
//! CNI host-local plugin does, so a released address is not reused at once.

use std::fs;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// An error, naming the config field or the state path involved.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("ipam.{field}: {msg}")]
    Config { field: &'static str, msg: String },
    #[error("ipam: no free address in {subnet} (range {start}-{end})")]
    Exhausted {
        subnet: String,
        start: Ipv4Addr,
        end: Ipv4Addr,
    },
    #[error("ipam state {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn state(path: &Path) -> impl FnOnce(std::io::Error) -> IpamError + '_ {
    move |source| IpamError::State {
        path: path.to_path_buf(),
        source,
    }
}

/// The addresses one network hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub network: Ipv4Addr,
    pub prefix: u8,
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

fn parse_addr(field: &'static str, s: &str) -> Result<Ipv4Addr, IpamError> {
    s.parse().map_err(|_| IpamError::Config {
        field,
        msg: format!("{s:?} is not an IPv4 address"),
    })
}

impl Pool {
    /// From the IPAM config: `subnet` (CIDR), optional `rangeStart`,
    /// `rangeEnd` and `gateway` (default: the subnet's first address).
    pub fn new(
        subnet: &str,
        range_start: Option<&str>,
        range_end: Option<&str>,
        gateway: Option<&str>,
    ) -> Result<Pool, IpamError> {
        let bad = |msg: String| IpamError::Config {
            field: "subnet",
            msg,
        };
        let (addr, prefix) = subnet
            .split_once('/')
            .ok_or_else(|| bad(format!("{subnet:?} is not ADDRESS/PREFIX")))?;
        let addr = parse_addr("subnet", addr)?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 30)
            .ok_or_else(|| bad(format!("{subnet:?}: the prefix must be 0-30")))?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        let net = u32::from(addr) & mask;
        let bcast = net | !mask;
        let inside = |field: &'static str, a: Ipv4Addr| {
            let v = u32::from(a);
            if v <= net || v >= bcast {
                Err(IpamError::Config {
                    field,
                    msg: format!("{a} is not a host address of {subnet}"),
                })
            } else {
                Ok(a)
            }
        };
        let start = match range_start {
            Some(s) => inside("rangeStart", parse_addr("rangeStart", s)?)?,
            None => Ipv4Addr::from(net + 1),
        };
        let end = match range_end {
            Some(s) => inside("rangeEnd", parse_addr("rangeEnd", s)?)?,
            None => Ipv4Addr::from(bcast - 1),
        };
        if u32::from(start) > u32::from(end) {
            return Err(IpamError::Config {
                field: "rangeEnd",
                msg: format!("{end} comes before rangeStart {start}"),
            });
        }
        let gateway = match gateway {
            Some(g) => inside("gateway", parse_addr("gateway", g)?)?,
            None => Ipv4Addr::from(net + 1),
        };
        Ok(Pool {
            network: Ipv4Addr::from(net),
            prefix,
            start,
            end,
            gateway,
        })
    }

    fn subnet(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }
}

/// A network's allocations on disk.
pub struct Store {
    pub dir: PathBuf,
}

/// Holds the directory's lock until dropped.
struct Locked(#[allow(dead_code)] fs::File);

impl Store {
    fn lock(&self) -> Result<Locked, IpamError> {
        fs::create_dir_all(&self.dir).map_err(state(&self.dir))?;
        let path = self.dir.join("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(state(&path))?;
        loop {
            // SAFETY: flock on a descriptor this function owns.
            let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(Locked(f));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                return Err(state(&path)(e));
            }
        }
    }

    fn owner(id: &str, ifname: &str) -> String {
        format!("{id}\n{ifname}\n")
    }

    /// The address already held by (id, ifname), if any.
    fn find(&self, owner: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        for e in fs::read_dir(&self.dir).map_err(state(&self.dir))?.flatten() {
            let Ok(addr) = e.file_name().to_string_lossy().parse::<Ipv4Addr>() else {
                continue;
            };
            if fs::read_to_string(e.path()).is_ok_and(|c| c == owner) {
                return Ok(Some(addr));
            }
        }
        Ok(None)
    }

    /// An address for (id, ifname): the one it already has, or the next free
    /// one after the last handed out.
    pub fn allocate(&self, pool: &Pool, id: &str, ifname: &str) -> Result<Ipv4Addr, IpamError> {
        let _lock = self.lock()?;
        let owner = Store::owner(id, ifname);
        if let Some(a) = self.find(&owner)? {
            return Ok(a);
        }
        let (start, end) = (u32::from(pool.start), u32::from(pool.end));
        let last_path = self.dir.join("last_reserved_ip");
        let last = fs::read_to_string(&last_path)
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .map(u32::from)
            .filter(|l| (start..=end).contains(l));
        let span = end - start + 1;
        let first = match last {
            Some(l) if l < end => l + 1,
            _ => start,
        };
        for i in 0..span {
            let v = start + (first - start + i) % span;
            let a = Ipv4Addr::from(v);
            if a == pool.gateway {
                continue;
            }
            let path = self.dir.join(a.to_string());
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    std::io::Write::write_all(&mut f, owner.as_bytes()).map_err(state(&path))?;
                    fs::write(&last_path, a.to_string()).map_err(state(&last_path))?;
                    return Ok(a);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(state(&path)(e)),
            }
        }
        Err(IpamError::Exhausted {
            subnet: pool.subnet(),
            start: pool.start,
            end: pool.end,
        })
    }

    /// Releases what (id, ifname) holds; nothing held is not an error (DEL is
    /// idempotent).
    pub fn release(&self, id: &str, ifname: &str) -> Result<(), IpamError> {
        if !self.dir.exists() {
            return Ok(());
        }
        let _lock = self.lock()?;
        let owner = Store::owner(id, ifname);
        while let Some(a) = self.find(&owner)? {
            let path = self.dir.join(a.to_string());
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(state(&path)(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str) -> Store {
        let dir = std::env::temp_dir().join(format!("husk-ipam-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Store { dir }
    }

    #[test]
    fn pools_validate_their_config() {
        let p = Pool::new("10.88.0.0/16", None, None, None).unwrap();
        assert_eq!(
            (p.start, p.end, p.gateway),
            (
                "10.88.0.1".parse().unwrap(),
                "10.88.255.254".parse().unwrap(),
                "10.88.0.1".parse().unwrap()
            )
        );
        for (cfg, field) in [
            (("10.0.0.0", None, None, None), "subnet"),
            (("10.0.0.0/31", None, None, None), "subnet"),
            (("10.0.0.0/24", Some("10.0.1.5"), None, None), "rangeStart"),
            (
                ("10.0.0.0/24", Some("10.0.0.9"), Some("10.0.0.5"), None),
                "rangeEnd",
            ),
            (("10.0.0.0/24", None, None, Some("10.0.0.255")), "gateway"),
            (("10.0.0.0/24", None, None, Some("nope")), "gateway"),
        ] {
            match Pool::new(cfg.0, cfg.1, cfg.2, cfg.3) {
                Err(IpamError::Config { field: f, .. }) => assert_eq!(f, field, "{cfg:?}"),
                r => panic!("{cfg:?}: {r:?}"),
            }
        }
    }

    #[test]
    fn allocation_skips_the_gateway_is_idempotent_and_moves_on() {
        let s = store("seq");
        let p = Pool::new("10.9.0.0/29", None, None, None).unwrap(); // hosts .1-.6, gateway .1
        let a = s.allocate(&p, "c1", "eth0").unwrap();
        assert_eq!(a, "10.9.0.2".parse::<Ipv4Addr>().unwrap());
        assert_eq!(
            s.allocate(&p, "c1", "eth0").unwrap(),
            a,
            "ADD again keeps the address"
        );
        let b = s.allocate(&p, "c2", "eth0").unwrap();
        assert_eq!(b, "10.9.0.3".parse::<Ipv4Addr>().unwrap());
        s.release("c1", "eth0").unwrap();
        s.release("c1", "eth0").unwrap(); // idempotent
        // The released .2 is not reused at once: allocation moves on.
        assert_eq!(
            s.allocate(&p, "c3", "eth0").unwrap(),
            "10.9.0.4".parse::<Ipv4Addr>().unwrap()
        );
        for id in ["c4", "c5", "c6"] {
            s.allocate(&p, id, "eth0").unwrap();
        }
        // .2 came back round; now all five host addresses are taken.
        match s.allocate(&p, "c7", "eth0") {
            Err(IpamError::Exhausted { .. }) => {}
            r => panic!("{r:?}"),
        }
        let _ = fs::remove_dir_all(&s.dir);
    }

    #[test]
    fn fifty_concurrent_allocations_are_distinct() {
        let s = store("conc");
        let p = Pool::new("10.10.0.0/24", None, None, None).unwrap();
        let dir = s.dir.clone();
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (dir, p) = (dir.clone(), p.clone());
                std::thread::spawn(move || {
                    Store { dir }
                        .allocate(&p, &format!("c{i}"), "eth0")
                        .unwrap()
                })
            })
            .collect();
        let mut got: Vec<Ipv4Addr> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 50);
        assert!(!got.contains(&p.gateway));
        let _ = fs::remove_dir_all(&s.dir);
    }
}
