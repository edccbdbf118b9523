//! Clients that run inside a pod (or the node) and tell whether traffic got
//! through. `Ok(false)` means the network did not deliver (dropped, refused,
//! unreachable), and the `*_delivery` variants tell a silent drop from a
//! refusal; `Err` means the harness itself failed (no such namespace, no
//! socket), so a broken harness never passes for a denying policy.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrStorage, connect, recv,
    send, sendto, socket,
};

use crate::netns::{Netns, in_netns};
use crate::sctp;
use crate::servers::{SctpReceiver, wait_readable};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Icmp,
}

impl Protocol {
    /// The spelling of Kubernetes manifests (`TCP`, `UDP`, `SCTP`).
    pub fn k8s_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Icmp => "ICMP",
        }
    }
}

/// What became of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The server answered.
    Delivered,
    /// Nothing came back before the timeout: a silent drop.
    Dropped,
    /// Something said no: a TCP RST, an ICMP error, or the local stack
    /// refusing to send.
    Refused,
}

impl Delivery {
    pub fn delivered(self) -> bool {
        self == Delivery::Delivered
    }
}

/// How a TCP connection attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectOutcome {
    Connected,
    /// A RST answered the SYN.
    Refused,
    /// Nothing answered within the timeout (a drop).
    TimedOut,
    /// An ICMP error or a local routing/permission error.
    Unreachable,
}

/// Opens a TCP connection from `from`'s namespace and closes it again.
pub fn tcp_connect(
    from: &impl Netns,
    addr: IpAddr,
    port: u16,
    timeout: Duration,
) -> Result<ConnectOutcome> {
    let target = SocketAddr::new(addr, port);
    let result = in_netns(from.netns_name(), || {
        TcpStream::connect_timeout(&target, timeout)
    })?;
    connect_outcome(result).map(|(outcome, _)| outcome)
}

/// Connects and checks that the server echoes a message back: the
/// reachability test of a TCP cell.
pub fn tcp_probe(from: &impl Netns, addr: IpAddr, port: u16, timeout: Duration) -> Result<bool> {
    Ok(tcp_delivery(from, addr, port, timeout)?.delivered())
}

/// [`tcp_probe`], telling a connection that times out (dropped) from one
/// that is reset or answered with an ICMP error (refused).
pub fn tcp_delivery(
    from: &impl Netns,
    addr: IpAddr,
    port: u16,
    timeout: Duration,
) -> Result<Delivery> {
    let deadline = Instant::now() + timeout;
    let target = SocketAddr::new(addr, port);
    let result = in_netns(from.netns_name(), || {
        TcpStream::connect_timeout(&target, timeout)
    })?;
    Ok(match connect_outcome(result)? {
        (ConnectOutcome::Connected, Some(stream)) => {
            let mut session = TcpSession { stream };
            if session.exchange(deadline.saturating_duration_since(Instant::now())) {
                Delivery::Delivered
            } else {
                Delivery::Dropped
            }
        }
        (ConnectOutcome::TimedOut, _) => Delivery::Dropped,
        _ => Delivery::Refused,
    })
}

fn connect_outcome(result: io::Result<TcpStream>) -> Result<(ConnectOutcome, Option<TcpStream>)> {
    let error = match result {
        Ok(stream) => return Ok((ConnectOutcome::Connected, Some(stream))),
        Err(e) => e,
    };
    let outcome = match error.kind() {
        ErrorKind::ConnectionRefused => ConnectOutcome::Refused,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => ConnectOutcome::TimedOut,
        _ if is_delivery_failure(&error) => ConnectOutcome::Unreachable,
        _ => return Err(error).context("TCP connect"),
    };
    Ok((outcome, None))
}

/// A TCP connection kept open, to check later that it still carries data
/// (e.g. that revoking a policy cuts an established connection).
#[derive(Debug)]
pub struct TcpSession {
    stream: TcpStream,
}

impl TcpSession {
    /// Connects to an echo server and exchanges a first message.
    pub fn open(from: &impl Netns, addr: IpAddr, port: u16, timeout: Duration) -> Result<Self> {
        let target = SocketAddr::new(addr, port);
        let result = in_netns(from.netns_name(), || {
            TcpStream::connect_timeout(&target, timeout)
        })?;
        let (outcome, stream) = connect_outcome(result)?;
        let Some(stream) = stream else {
            bail!("connecting to {target}: {outcome:?}");
        };
        let mut session = Self { stream };
        if !session.exchange(timeout) {
            bail!("{target} accepted the connection but echoed nothing");
        }
        Ok(session)
    }

    /// Sends a fresh message and waits for its echo; false when it does not
    /// come back within `timeout` or the connection was reset.
    pub fn exchange(&mut self, timeout: Duration) -> bool {
        let message = format!("netseg-probe-{:08x}\n", nonce());
        let deadline = Instant::now() + timeout;
        if self.stream.write_all(message.as_bytes()).is_err() {
            return false;
        }
        // Echoes of earlier exchanges that timed out may arrive first.
        let mut received = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                return false;
            }
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
            if received
                .windows(message.len())
                .any(|w| w == message.as_bytes())
            {
                return true;
            }
        }
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.stream.local_addr()?)
    }

    pub fn peer_addr(&self) -> Result<SocketAddr> {
        Ok(self.stream.peer_addr()?)
    }
}

/// Sends a datagram to a UDP echo server and waits for the echo.
pub fn udp_request(from: &impl Netns, addr: IpAddr, port: u16, timeout: Duration) -> Result<bool> {
    Ok(udp_delivery(from, addr, port, timeout)?.delivered())
}

/// [`udp_request`], telling no answer at all (dropped) from an ICMP error
/// such as port unreachable (refused).
pub fn udp_delivery(
    from: &impl Netns,
    addr: IpAddr,
    port: u16,
    timeout: Duration,
) -> Result<Delivery> {
    let message = format!("netseg-probe-{:08x}", nonce());
    in_netns(from.netns_name(), || -> Result<Delivery> {
        let local: SocketAddr = match addr {
            IpAddr::V4(_) => "0.0.0.0:0".parse()?,
            IpAddr::V6(_) => "[::]:0".parse()?,
        };
        let socket = std::net::UdpSocket::bind(local)?;
        socket.connect(SocketAddr::new(addr, port))?;
        let deadline = Instant::now() + timeout;
        match socket.send(message.as_bytes()) {
            Err(e) if is_delivery_failure(&e) => return Ok(Delivery::Refused),
            other => other.context("UDP send")?,
        };
        let mut buf = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Delivery::Dropped);
            }
            socket.set_read_timeout(Some(left))?;
            match socket.recv(&mut buf) {
                Ok(n) if buf[..n] == *message.as_bytes() => return Ok(Delivery::Delivered),
                // A read timeout is EAGAIN; the loop checks the deadline.
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if is_delivery_failure(&e) => return Ok(Delivery::Refused),
                Err(e) => return Err(e).context("UDP receive"),
            }
        }
    })?
}

/// ICMP or ICMPv6 echo through a ping socket (`SOCK_DGRAM`); the topology
/// allows them through `net.ipv4.ping_group_range` in its namespaces.
pub fn ping(from: &impl Netns, addr: IpAddr, timeout: Duration) -> Result<bool> {
    Ok(ping_delivery(from, addr, timeout)?.delivered())
}

/// [`ping`], telling no answer at all (dropped) from an ICMP error
/// (refused).
pub fn ping_delivery(from: &impl Netns, addr: IpAddr, timeout: Duration) -> Result<Delivery> {
    let (family, protocol, request, reply) = match addr {
        IpAddr::V4(_) => (AddressFamily::Inet, SockProtocol::Icmp, 8, 0),
        IpAddr::V6(_) => (AddressFamily::Inet6, SockProtocol::IcmpV6, 128, 129),
    };
    let payload = nonce().to_be_bytes();
    // Identifier and checksum are filled in by the kernel for ping sockets.
    let mut message = vec![request, 0, 0, 0, 0, 0, 0, 1];
    message.extend_from_slice(&payload);
    in_netns(from.netns_name(), || -> Result<Delivery> {
        let fd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, protocol)
            .context("opening an ICMP ping socket")?;
        let target = SockaddrStorage::from(SocketAddr::new(addr, 0));
        if let Err(e) = connect(fd.as_raw_fd(), &target).map_err(io::Error::from) {
            return if is_delivery_failure(&e) {
                Ok(Delivery::Refused)
            } else {
                Err(e.into())
            };
        }
        match send(fd.as_raw_fd(), &message, MsgFlags::empty()).map_err(io::Error::from) {
            Err(e) if is_delivery_failure(&e) => return Ok(Delivery::Refused),
            other => other.context("ICMP send")?,
        };
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        loop {
            match recv_until(&fd, &mut buf, deadline)? {
                Received::Datagram(n)
                    if n >= 8 + payload.len()
                        && buf[0] == reply
                        && buf[8..8 + payload.len()] == payload =>
                {
                    return Ok(Delivery::Delivered);
                }
                Received::Datagram(_) => {}
                Received::Nothing => return Ok(Delivery::Dropped),
                Received::Error => return Ok(Delivery::Refused),
            }
        }
    })?
}

/// What [`recv_until`] got.
enum Received {
    Datagram(usize),
    /// The deadline passed.
    Nothing,
    /// An ICMP error was queued on the socket.
    Error,
}

/// Receives one datagram, waiting until the deadline.
fn recv_until(fd: &OwnedFd, buf: &mut [u8], deadline: Instant) -> Result<Received> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Received::Nothing);
        }
        if !wait_readable(&[fd.as_fd()], left)?[0] {
            continue;
        }
        match recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT).map_err(io::Error::from) {
            Ok(n) => return Ok(Received::Datagram(n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) if is_delivery_failure(&e) => return Ok(Received::Error),
            Err(e) => return Err(e).context("receive"),
        }
    }
}

/// Sends one crafted SCTP INIT from `from` through a raw socket.
pub fn sctp_send_init(
    from: &impl Netns,
    addr: IpAddr,
    src_port: u16,
    dst_port: u16,
    initiate_tag: u32,
) -> Result<bool> {
    let packet = sctp::init_packet(src_port, dst_port, initiate_tag);
    let family = match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    in_netns(from.netns_name(), || -> Result<bool> {
        let fd = socket(
            family,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::Sctp,
        )
        .context("socket(SOCK_RAW, IPPROTO_SCTP)")?;
        // The port of a raw socket address must be 0 (or the protocol).
        let target = SockaddrStorage::from(SocketAddr::new(addr, 0));
        match sendto(fd.as_raw_fd(), &packet, &target, MsgFlags::empty()).map_err(io::Error::from) {
            Ok(_) => Ok(true),
            Err(e) if is_delivery_failure(&e) => Ok(false),
            Err(e) => Err(e).context("sending an SCTP INIT"),
        }
    })?
}

/// Whether an SCTP INIT sent from `from` to `addr:port` reaches the pod that
/// `to` listens in.
pub fn sctp_probe(
    from: &impl Netns,
    to: &SctpReceiver,
    addr: IpAddr,
    port: u16,
    timeout: Duration,
) -> Result<bool> {
    Ok(sctp_delivery(from, to, addr, port, timeout)?.delivered())
}

/// [`sctp_probe`]: delivered when the INIT reached the pod, dropped when it
/// did not, refused only when the local stack would not send it. Nothing
/// answers the INIT, so an ABORT or ICMP error on its way would go unseen;
/// what this does prove is that the pod never received it.
pub fn sctp_delivery(
    from: &impl Netns,
    to: &SctpReceiver,
    addr: IpAddr,
    port: u16,
    timeout: Duration,
) -> Result<Delivery> {
    let tag = nonce();
    let src_port = 32_768 + (tag % 28_000) as u16;
    if !sctp_send_init(from, addr, src_port, port, tag)? {
        return Ok(Delivery::Refused);
    }
    Ok(if to.wait_for_init(tag, port, timeout) {
        Delivery::Delivered
    } else {
        Delivery::Dropped
    })
}

/// Errors that mean "the network did not deliver", as opposed to a broken
/// harness.
fn is_delivery_failure(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::TimedOut
            | ErrorKind::PermissionDenied
            | ErrorKind::BrokenPipe
    ) || e.raw_os_error() == Some(libc::ENOBUFS)
}

/// A non-zero value not handed out before by this process, to tell probes
/// apart.
pub(crate) fn nonce() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    loop {
        // An odd multiplier is a bijection on u32: distinct counters give
        // distinct nonces, spread out so they look unlike small numbers.
        let n = NEXT
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B1)
            ^ std::process::id().rotate_left(16);
        if n != 0 {
            return n;
        }
    }
}
