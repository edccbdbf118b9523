//! A host off the node: a namespace behind a veth from the node namespace
//! that stands in for "anywhere beyond the node" when a test must show that
//! a packet does not leave. The node routes the documentation prefixes
//! 198.51.100.0/24 and 2001:db8::/32 (RFC 5737, RFC 3849) through it, and
//! nothing else: the node still has no default route and no uplink.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result};

use crate::netns::{Netns, NetnsGuard, ip_batch};
use crate::topology::{Family, Node};

/// The node's end of the link to the outside host.
pub const NODE_IFNAME: &str = "outside0";
/// The outside host's end of the link.
pub const IFNAME: &str = "eth0";

/// A host beyond the node; its namespace is deleted on drop.
#[derive(Debug)]
pub struct Outside {
    netns: NetnsGuard,
}

impl Outside {
    /// Links a new outside host to `node` and routes the documentation
    /// prefixes to it.
    pub fn attach(node: &Node) -> Result<Self> {
        let outside = Self {
            netns: NetnsGuard::create("outside")?,
        };
        outside
            .configure(node)
            .context("setting up the outside host")?;
        Ok(outside)
    }

    fn configure(&self, node: &Node) -> Result<()> {
        let own = self.netns_name();
        ip_batch(
            node.netns_name(),
            &[
                format!("link add {NODE_IFNAME} type veth peer name {IFNAME} netns {own}"),
                format!("link set {NODE_IFNAME} up"),
                format!("addr add 192.0.2.1/24 dev {NODE_IFNAME}"),
                format!("addr add fe80::a/64 dev {NODE_IFNAME} nodad"),
            ],
        )?;
        ip_batch(
            own,
            &[
                "link set lo up".to_owned(),
                format!("link set {IFNAME} up"),
                format!("addr add 192.0.2.2/24 dev {IFNAME}"),
                format!("addr add fe80::b/64 dev {IFNAME} nodad"),
                format!("addr add {}/32 dev {IFNAME}", Self::ipv4()),
                format!("addr add {}/128 dev {IFNAME} nodad", Self::ipv6()),
                format!("route add default via 192.0.2.1 dev {IFNAME}"),
                format!("route add ::/0 via fe80::a dev {IFNAME}"),
            ],
        )?;
        ip_batch(
            node.netns_name(),
            &[
                format!("route add 198.51.100.0/24 via 192.0.2.2 dev {NODE_IFNAME}"),
                format!("route add 2001:db8::/32 via fe80::b dev {NODE_IFNAME}"),
                // What a node's default route would do with IPv4-mapped
                // destinations: send them on as IPv6.
                format!("route add ::ffff:198.51.100.0/120 via fe80::b dev {NODE_IFNAME}"),
            ],
        )
    }

    pub fn ipv4() -> Ipv4Addr {
        Ipv4Addr::new(198, 51, 100, 1)
    }

    pub fn ipv6() -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)
    }

    pub fn ip(family: Family) -> IpAddr {
        match family {
            Family::V4 => Self::ipv4().into(),
            Family::V6 => Self::ipv6().into(),
        }
    }
}

impl Netns for Outside {
    fn netns_name(&self) -> &str {
        self.netns.name()
    }
}
