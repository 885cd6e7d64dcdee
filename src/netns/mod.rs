//! husk-net, the CNI bridge plugin (CNI spec 1.x), built in steps. So far:
//! the IPv4 address manager (`ipam`), host-local style.

pub mod ipam;
