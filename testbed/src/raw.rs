//! Raw Ethernet frames for hostile-packet tests. A pod owns its network
//! stack, so it can put any frame on its `eth0`: [`send_frame`] and
//! [`send_ip`] do that from inside the pod's namespace, and a [`Capture`]
//! in another namespace tells what the node let through.

use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::net::if_::if_nametoindex;
use nix::sys::socket::{
    AddressFamily, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType, recvfrom, send, socket,
};

use crate::netns::{Netns, in_netns, run};
use crate::servers::wait_readable;
use crate::topology::Pod;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// `sll_pkttype` of a frame the interface sent rather than received.
const PACKET_OUTGOING: u8 = 4;

/// The MAC address of interface `ifname` in namespace `netns`.
pub fn mac_address(netns: &str, ifname: &str) -> Result<[u8; 6]> {
    let out = run("ip", &["-n", netns, "-j", "link", "show", "dev", ifname])?;
    let links: serde_json::Value = serde_json::from_str(&out).context("ip -j link show")?;
    let text = links[0]["address"]
        .as_str()
        .with_context(|| format!("no MAC address for {ifname} in {netns}"))?;
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next().with_context(|| format!("MAC {text}"))?;
        *byte = u8::from_str_radix(part, 16).with_context(|| format!("MAC {text}"))?;
    }
    Ok(mac)
}

/// Puts `frame` (from its Ethernet header on) on `ifname` of `from`'s
/// namespace, unchanged: no checksum, route or neighbour entry is added.
pub fn send_frame(from: &impl Netns, ifname: &str, frame: &[u8]) -> Result<()> {
    in_netns(from.netns_name(), || -> Result<()> {
        let fd = packet_socket(ifname)?;
        let sent = send(fd.as_raw_fd(), frame, MsgFlags::empty()).context("send on AF_PACKET")?;
        if sent != frame.len() {
            bail!("sent {sent} of {} bytes", frame.len());
        }
        Ok(())
    })?
}

/// Sends an IP packet (IPv4 or IPv6, by its version) out of the pod's
/// `eth0`, addressed to the MAC of the host side of its veth: the way a
/// packet routed through the node leaves the pod, whatever its addresses.
pub fn send_ip(pod: &Pod, packet: &[u8]) -> Result<()> {
    let ethertype = match packet.first().map(|b| b >> 4) {
        Some(4) => ETH_P_IP,
        Some(6) => ETH_P_IPV6,
        _ => bail!("not an IP packet"),
    };
    let host = mac_address(pod.node_netns_name(), pod.host_ifname())?;
    let own = mac_address(pod.netns_name(), "eth0")?;
    send_frame(pod, "eth0", &ethernet(host, own, ethertype, packet))
}

/// An Ethernet frame: destination and source MAC, ethertype, payload.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Frames arriving on one interface of a namespace, from the moment of
/// [`Capture::start`]. Frames the interface itself sends are ignored.
pub struct Capture {
    fd: OwnedFd,
    what: String,
}

impl Capture {
    pub fn start(netns: &impl Netns, ifname: &str) -> Result<Self> {
        let fd = in_netns(netns.netns_name(), || packet_socket(ifname))??;
        Ok(Self {
            fd,
            what: format!("{ifname} in {}", netns.netns_name()),
        })
    }

    /// The first arriving frame (from its Ethernet header on) that `wanted`
    /// accepts, or `None` when none arrived within `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        wanted: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65_536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            if !wait_readable(&[self.fd.as_fd()], left)?[0] {
                continue;
            }
            let (len, from) = recvfrom::<LinkAddr>(self.fd.as_raw_fd(), &mut buf)
                .with_context(|| format!("capturing on {}", self.what))?;
            let incoming = from.is_some_and(|addr| addr.pkttype() != PACKET_OUTGOING);
            if incoming && wanted(&buf[..len]) {
                return Ok(Some(buf[..len].to_vec()));
            }
        }
    }

    /// Whether a frame that `wanted` accepts arrives within `timeout`.
    pub fn arrives(&self, timeout: Duration, wanted: impl Fn(&[u8]) -> bool) -> Result<bool> {
        self.wait_for(timeout, wanted).map(|frame| frame.is_some())
    }
}

/// An AF_PACKET socket of every ethertype, bound to `ifname` of the
/// calling thread's namespace.
fn packet_socket(ifname: &str) -> Result<OwnedFd> {
    let all = SockProtocol::EthAll;
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        all,
    )
    .context("socket(AF_PACKET)")?;
    let ifindex = if_nametoindex(ifname).with_context(|| format!("no interface {ifname}"))?;
    // SAFETY: sockaddr_ll is plain data, valid when zeroed.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: `addr` is a valid sockaddr_ll and its exact size is passed.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if bound != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("binding to {ifname}"));
    }
    Ok(fd)
}

/// Whether `frame` carries an IP packet (either family) whose payload
/// contains `marker`: how tests recognise their own hostile packets.
pub fn carries(frame: &[u8], marker: &[u8]) -> bool {
    let ip = matches!(frame.get(12..14), Some([0x08, 0x00]) | Some([0x86, 0xdd]));
    ip && frame.windows(marker.len()).any(|window| window == marker)
}
