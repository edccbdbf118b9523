//! Attaching a link named as a pod's the moment rtnetlink announces it, from
//! a thread of its own. The daemon's loop may be compiling, dumping the
//! namespace or answering the CNI plugin for tens of milliseconds, and a main
//! plugin can bring a pod's side up and let it send within that time; this
//! thread waits for nothing but the announcement and the shared lock, which
//! the loop holds only for single attaches and detaches.

use std::{
    io,
    sync::{Mutex, Weak},
    time::Instant,
};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::{
    constants::RTMGRP_LINK,
    packet_core::{NetlinkMessage, NetlinkPayload},
};
use tracing::{error, info, warn};

use super::{
    Datapath,
    attach::{Attachments, locked},
};
use crate::node::{NodeLink, node_link, pod_named};

/// Room for the announcements of a burst of new interfaces.
const RECEIVE_BUFFER: usize = 1 << 20;

impl Datapath {
    /// Starts the thread that attaches every link named with one of
    /// `prefixes` as rtnetlink announces it. It ends with the datapath.
    pub fn attach_as_announced(&self, prefixes: Vec<String>) -> io::Result<()> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, RTMGRP_LINK))?;
        socket.set_rx_buf_sz(RECEIVE_BUFFER)?;
        let attachments = std::sync::Arc::downgrade(&self.attachments);
        std::thread::Builder::new()
            .name("netseg-attach".to_owned())
            .spawn(move || attach_announced(&socket, &attachments, &prefixes))?;
        Ok(())
    }
}

fn attach_announced(socket: &Socket, attachments: &Weak<Mutex<Attachments>>, prefixes: &[String]) {
    let mut buffer = vec![0; RECEIVE_BUFFER];
    loop {
        let size = match socket.recv(&mut &mut buffer[..], 0) {
            Ok(size) => size,
            Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                warn!(
                    "announcements of new links were lost: the next reconcile attaches their links"
                );
                continue;
            }
            Err(error) => {
                error!(%error, "reading link announcements: links are attached only by reconciles from now on");
                return;
            }
        };
        let received = Instant::now();
        for link in announced_links(&buffer[..size]) {
            if !pod_named(prefixes, &link.name) {
                continue;
            }
            let Some(attachments) = attachments.upgrade() else {
                return;
            };
            let mut attachments = locked(&attachments);
            if attachments
                .attached()
                .any(|attached| attached == (link.name.as_str(), link.ifindex))
            {
                continue;
            }
            let locked_us = received.elapsed().as_micros();
            match attachments.attach(&link.name, link.ifindex) {
                Ok(()) => info!(
                    interface = link.name,
                    ifindex = link.ifindex,
                    locked_us,
                    since_announced_us = received.elapsed().as_micros(),
                    "attached as it appeared"
                ),
                Err(error) => error!(
                    interface = link.name,
                    error = format!("{:#}", anyhow::Error::from(error)),
                    "attach"
                ),
            }
        }
    }
}

/// The links a datagram of rtnetlink messages announces (new ones, or
/// changes of one).
fn announced_links(mut datagram: &[u8]) -> Vec<NodeLink> {
    let mut links = Vec::new();
    while !datagram.is_empty() {
        let Ok(message) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(datagram) else {
            break;
        };
        if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) = &message.payload {
            links.extend(node_link(link));
        }
        // Messages are aligned to 4 bytes.
        let length = (message.header.length as usize).next_multiple_of(4);
        if length == 0 || length > datagram.len() {
            break;
        }
        datagram = &datagram[length..];
    }
    links
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::link::{LinkAttribute, LinkMessage};
    use rtnetlink::packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};

    use super::*;

    fn new_link(ifindex: u32, name: &str) -> Vec<u8> {
        let mut link = LinkMessage::default();
        link.header.index = ifindex;
        link.attributes.push(LinkAttribute::IfName(name.to_owned()));
        let mut message = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)),
        );
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    #[test]
    fn every_link_of_a_datagram_is_announced_and_a_torn_tail_is_not() {
        let mut datagram = new_link(7, "veth1");
        datagram.extend(new_link(8, "eth0"));
        let names = |links: Vec<NodeLink>| -> Vec<(u32, String)> {
            links.into_iter().map(|l| (l.ifindex, l.name)).collect()
        };
        assert_eq!(
            names(announced_links(&datagram)),
            [(7, "veth1".to_owned()), (8, "eth0".to_owned())]
        );
        let torn = &datagram[..datagram.len() - 3];
        assert_eq!(names(announced_links(torn)), [(7, "veth1".to_owned())]);
    }
}
