//! The node namespace as rtnetlink reports it: its interfaces, its routes
//! (a local pod's interface is the one its IP is routed to, as CNI plugins
//! set up) and its own addresses (the source of kubelet probes).

use std::net::IpAddr;

use futures::{Stream, StreamExt, TryStreamExt};
use ipnetwork::IpNetwork;
use netlink_packet_route::{
    address::AddressAttribute,
    link::{LinkAttribute, LinkMessage},
    route::{RouteAddress, RouteAttribute, RouteHeader},
};
use netlink_sys::{AsyncSocket, SocketAddr};
use rtnetlink::{
    Handle, RouteMessageBuilder,
    constants::{
        RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("opening an rtnetlink socket")]
    Socket(#[source] std::io::Error),
    #[error("reading {what} over rtnetlink")]
    Dump {
        what: &'static str,
        #[source]
        source: rtnetlink::Error,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLink {
    pub ifindex: u32,
    pub name: String,
    /// Its peer is in another namespace (a pod's veth, unlike a bridge).
    pub peer_elsewhere: bool,
}

#[derive(Clone, Debug, Default)]
pub struct NodeView {
    pub links: Vec<NodeLink>,
    /// Main-table routes: destination and output interface.
    pub routes: Vec<(IpNetwork, u32)>,
    /// The node's own addresses, loopback excluded.
    pub addresses: Vec<IpAddr>,
}

/// A handle for dumps, and a stream that yields whenever a link, route or
/// address of the namespace changes. (Pod-named links are attached as they
/// appear by a thread of their own: [`crate::datapath::Datapath::attach_as_announced`].)
pub fn watch() -> Result<(Handle, impl Stream<Item = ()>), NodeError> {
    let (mut connection, handle, messages) =
        rtnetlink::new_connection().map_err(NodeError::Socket)?;
    let groups = RTMGRP_LINK
        | RTMGRP_IPV4_ROUTE
        | RTMGRP_IPV6_ROUTE
        | RTMGRP_IPV4_IFADDR
        | RTMGRP_IPV6_IFADDR;
    connection
        .socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, groups))
        .map_err(NodeError::Socket)?;
    tokio::spawn(connection);
    Ok((handle, messages.map(|_| ())))
}

/// The ifindex of the link named `name` now, rather than at the last dump.
pub fn current_ifindex(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// Whether `name` is named with one of the pod interface `prefixes`.
pub fn pod_named(prefixes: &[String], name: &str) -> bool {
    prefixes
        .iter()
        .any(|prefix| name.starts_with(prefix.as_str()))
}

/// A link as a dump or an event describes it.
pub fn node_link(message: &LinkMessage) -> Option<NodeLink> {
    let attributes = &message.attributes;
    let name = attributes.iter().find_map(|attribute| match attribute {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })?;
    let peer_elsewhere = attributes
        .iter()
        .any(|attribute| matches!(attribute, LinkAttribute::LinkNetNsId(_)));
    Some(NodeLink {
        ifindex: message.header.index,
        name,
        peer_elsewhere,
    })
}

impl NodeView {
    pub async fn read(handle: &Handle) -> Result<Self, NodeError> {
        let dump = |what| move |source| NodeError::Dump { what, source };
        let links = handle
            .link()
            .get()
            .execute()
            .map_ok(|message| node_link(&message))
            .try_collect::<Vec<_>>()
            .await
            .map_err(dump("links"))?
            .into_iter()
            .flatten()
            .collect();
        let mut routes = Vec::new();
        for request in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            let mut stream = handle.route().get(request).execute();
            while let Some(route) = stream.try_next().await.map_err(dump("routes"))? {
                routes.extend(main_table_route(&route.header, &route.attributes));
            }
        }
        let addresses = handle
            .address()
            .get()
            .execute()
            .map_ok(|message| {
                message
                    .attributes
                    .into_iter()
                    .find_map(|attribute| match attribute {
                        AddressAttribute::Address(ip) => Some(ip),
                        _ => None,
                    })
            })
            .try_collect::<Vec<_>>()
            .await
            .map_err(dump("addresses"))?
            .into_iter()
            .flatten()
            .filter(|ip| !ip.is_loopback())
            .collect();
        Ok(Self {
            links,
            routes,
            addresses,
        })
    }

    /// The interface the namespace routes `ip` to (longest prefix wins).
    pub fn interface_for(&self, ip: IpAddr) -> Option<u32> {
        self.route_for(ip).map(|(_, oif)| oif)
    }

    /// The interface a route for `ip` alone leads to: how CNI plugins that
    /// route rather than bridge (Calico, Cilium, ptp) reach each pod, so
    /// that interface is the pod's whatever its name. A wider route leads
    /// to an interface other hosts share (a bridge), never attached for one pod.
    pub fn host_route_interface(&self, ip: IpAddr) -> Option<u32> {
        let full = if ip.is_ipv4() { 32 } else { 128 };
        self.route_for(ip)
            .filter(|(destination, _)| destination.prefix() == full)
            .map(|(_, oif)| oif)
    }

    fn route_for(&self, ip: IpAddr) -> Option<(IpNetwork, u32)> {
        self.routes
            .iter()
            .filter(|(destination, _)| destination.contains(ip))
            .max_by_key(|(destination, _)| destination.prefix())
            .copied()
    }

    pub fn link(&self, name: &str) -> Option<&NodeLink> {
        self.links.iter().find(|link| link.name == name)
    }

    pub fn link_at(&self, ifindex: u32) -> Option<&NodeLink> {
        self.links.iter().find(|link| link.ifindex == ifindex)
    }
}

fn main_table_route(
    header: &RouteHeader,
    attributes: &[RouteAttribute],
) -> Option<(IpNetwork, u32)> {
    let table = attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(header.table));
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let mut destination = None;
    let mut oif = None;
    for attribute in attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                destination = Some(IpAddr::V4(*ip))
            }
            RouteAttribute::Destination(RouteAddress::Inet6(ip)) => {
                destination = Some(IpAddr::V6(*ip))
            }
            RouteAttribute::Oif(index) => oif = Some(*index),
            _ => {}
        }
    }
    let network = IpNetwork::new(destination?, header.destination_prefix_length).ok()?;
    Some((network, oif?))
}
