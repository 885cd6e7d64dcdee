//! husk-net, the CNI bridge plugin (CNI spec 1.x): `config` reads the
//! protocol's inputs, `ipam` hands out addresses, `link` makes bridges, veth
//! pairs, addresses and routes over rtnetlink, `nft` writes NAT, published
//! ports and isolation, `plugin` runs the commands.

pub mod config;
pub mod ipam;
pub mod link;
pub mod nft;
pub mod plugin;
