//! Links, addresses and routes over rtnetlink (netlink-packet-route on a
//! netlink-sys socket): the bridge, the veth pair, the container's loopback,
//! its address and its routes. One request at a time, each acknowledged.
//! A socket works in the network namespace it was opened in, so
//! [`Netlink::open_in`] opens one inside the container's namespace and the
//! rest of the calls need not move the thread.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// A failed netlink request: what was asked, of which link, and the kernel's
/// answer.
#[derive(Debug, thiserror::Error)]
#[error("{op} {name}: {err}")]
pub struct LinkError {
    pub op: &'static str,
    pub name: String,
    #[source]
    pub err: io::Error,
}

impl LinkError {
    fn new(op: &'static str, name: &str, err: io::Error) -> LinkError {
        LinkError {
            op,
            name: name.to_string(),
            err,
        }
    }

    pub fn errno(&self) -> Option<i32> {
        self.err.raw_os_error()
    }
}

/// What husk-net needs to know of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: String,
    pub mtu: u32,
    pub controller: Option<u32>,
    pub up: bool,
}

pub struct Netlink {
    sock: Socket,
    seq: u32,
}

fn mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Netlink {
    /// A socket in the caller's network namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Errors carry the kernel's extended message where it has one.
        let _ = sock.set_ext_ack(true);
        Ok(Netlink { sock, seq: 0 })
    }

    /// A socket in the network namespace `ns` (an open nsfs file): the thread
    /// enters it, opens the socket and comes back.
    pub fn open_in(ns: &OwnedFd) -> io::Result<Netlink> {
        let home = std::fs::File::open("/proc/thread-self/ns/net")?;
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(io::Error::from)?;
        let opened = Netlink::open();
        nix::sched::setns(home.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(io::Error::from)?;
        opened
    }

    /// Sends one request and collects the answers up to its ACK or DONE.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut off = 0;
            while off < data.len() {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = m.header.length as usize;
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(_) => Err(e.to_io()),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(inner) => {
                        out.push(inner);
                        if flags & NLM_F_DUMP == 0 && flags & NLM_F_ACK == 0 {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn parse_link(m: LinkMessage) -> Link {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            mac: String::new(),
            mtu: 0,
            controller: None,
            up: m.header.flags.contains(LinkFlags::Up),
        };
        for a in m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n,
                LinkAttribute::Address(b) => l.mac = mac(&b),
                LinkAttribute::Mtu(v) => l.mtu = v,
                LinkAttribute::Controller(c) => l.controller = Some(c),
                _ => {}
            }
        }
        l
    }

    /// The link called `name`, or None.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, LinkError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), 0) {
            Ok(v) => Ok(v.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(Netlink::parse_link(l)),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(LinkError::new("look up link", name, e)),
        }
    }

    fn must_link(&mut self, name: &str) -> Result<Link, LinkError> {
        self.link(name)?.ok_or_else(|| {
            LinkError::new(
                "find link",
                name,
                io::Error::from_raw_os_error(libc::ENODEV),
            )
        })
    }

    /// Creates the bridge unless it exists (another ADD may be making it at
    /// the same moment: EEXIST is success), then returns it.
    pub fn ensure_bridge(&mut self, name: &str, mtu: u32) -> Result<Link, LinkError> {
        if let Some(l) = self.link(name)? {
            return Ok(l);
        }
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(LinkAttribute::Mtu(mtu));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        match self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(LinkError::new("create bridge", name, e)),
        }
        self.must_link(name)
    }

    /// A veth pair: `host` here, `peer` created directly in the namespace `ns`.
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        ns: &OwnedFd,
        mtu: u32,
    ) -> Result<(), LinkError> {
        let mut p = LinkMessage::default();
        p.attributes.push(LinkAttribute::IfName(peer.to_string()));
        p.attributes.push(LinkAttribute::Mtu(mtu));
        p.attributes
            .push(LinkAttribute::NetNsFd(ns.as_fd().as_raw_fd()));
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(host.to_string()));
        m.attributes.push(LinkAttribute::Mtu(mtu));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(|_| ())
        .map_err(|e| LinkError::new("create veth pair", host, e))
    }

    /// Sets a link up, optionally under a bridge.
    pub fn set_up(&mut self, name: &str, controller: Option<u32>) -> Result<(), LinkError> {
        let l = self.must_link(name)?;
        let mut m = LinkMessage::default();
        m.header.index = l.index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        if let Some(c) = controller {
            m.attributes.push(LinkAttribute::Controller(c));
        }
        self.request(RouteNetlinkMessage::SetLink(m), NLM_F_ACK)
            .map(|_| ())
            .map_err(|e| LinkError::new("set link up", name, e))
    }

    /// Hairpin mode on a bridge port: frames may leave by the port they came
    /// in on. With bridge netfilter on (br_netfilter), a container reaching
    /// its own published port is DNATed back out of its own port, which the
    /// bridge drops otherwise.
    pub fn set_hairpin(&mut self, name: &str) -> Result<(), LinkError> {
        let l = self.must_link(name)?;
        let mut m = LinkMessage::default();
        m.header.index = l.index;
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                true,
            )])),
        ]));
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_ACK)
            .map(|_| ())
            .map_err(|e| LinkError::new("set hairpin mode on", name, e))
    }

    /// Deletes a link; one already gone is not an error.
    pub fn del_link(&mut self, name: &str) -> Result<(), LinkError> {
        let Some(l) = self.link(name)? else {
            return Ok(());
        };
        let mut m = LinkMessage::default();
        m.header.index = l.index;
        match self.request(RouteNetlinkMessage::DelLink(m), NLM_F_ACK) {
            Err(e) if e.raw_os_error() != Some(libc::ENODEV) => {
                Err(LinkError::new("delete link", name, e))
            }
            _ => Ok(()),
        }
    }

    /// Adds `addr/prefix` to the link; already there is success.
    pub fn add_addr(&mut self, name: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), LinkError> {
        let l = self.must_link(name)?;
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = prefix;
        m.header.index = l.index;
        m.attributes.push(AddressAttribute::Local(IpAddr::V4(addr)));
        m.attributes
            .push(AddressAttribute::Address(IpAddr::V4(addr)));
        if prefix < 31 {
            let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            m.attributes
                .push(AddressAttribute::Broadcast(Ipv4Addr::from(
                    u32::from(addr) | host,
                )));
        }
        match self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
                Err(LinkError::new("add address", name, e))
            }
            _ => Ok(()),
        }
    }

    /// The IPv4 addresses on a link.
    pub fn addrs(&mut self, name: &str) -> Result<Vec<(Ipv4Addr, u8)>, LinkError> {
        let l = self.must_link(name)?;
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        let all = self
            .request(RouteNetlinkMessage::GetAddress(m), NLM_F_DUMP)
            .map_err(|e| LinkError::new("list addresses", name, e))?;
        Ok(all
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == l.index => a
                    .attributes
                    .iter()
                    .find_map(|x| match x {
                        AddressAttribute::Local(IpAddr::V4(v)) => Some(*v),
                        _ => None,
                    })
                    .map(|v| (v, a.header.prefix_len)),
                _ => None,
            })
            .collect())
    }

    /// A route to `dst/prefix` via `gw` out of `name`; already there is success.
    pub fn add_route(
        &mut self,
        name: &str,
        dst: Ipv4Addr,
        prefix: u8,
        gw: Ipv4Addr,
    ) -> Result<(), LinkError> {
        let l = self.must_link(name)?;
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = prefix;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        if prefix > 0 {
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
        }
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
        m.attributes.push(RouteAttribute::Oif(l.index));
        // A route to the same destination already there belongs to another
        // interface (this one is new): not ours to replace, and reporting
        // ours as added would be false. The reference plugin fails too.
        self.request(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(|_| ())
        .map_err(|e| {
            let what = if e.raw_os_error() == Some(libc::EEXIST) {
                "add route (a route to that destination already exists in the namespace)"
            } else {
                "add route"
            };
            LinkError::new(what, &format!("{dst}/{prefix} via {gw}"), e)
        })
    }

    /// Links whose controller is the link `index` (a bridge's ports).
    pub fn ports_of(&mut self, index: u32) -> Result<usize, LinkError> {
        let all = self
            .request(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                NLM_F_DUMP,
            )
            .map_err(|e| LinkError::new("list links", "", e))?;
        Ok(all
            .into_iter()
            .filter(|r| {
                matches!(r, RouteNetlinkMessage::NewLink(l)
                    if Netlink::parse_link(l.clone()).controller == Some(index))
            })
            .count())
    }
}
