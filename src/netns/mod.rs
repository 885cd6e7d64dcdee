//! husk-net, the CNI bridge plugin (CNI spec 1.x), built in steps. So far:
//! the IPv4 address manager (`ipam`), host-local style, and the protocol's
//! inputs and error result (`config`).

pub mod config;
pub mod ipam;
