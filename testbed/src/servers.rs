//! Servers that run inside a pod: sockets created in the pod's namespace,
//! served from background threads, stopped and joined on drop.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddrV6, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockProtocol, SockType, SockaddrIn6, SockaddrLike,
    SockaddrStorage, bind, listen, recvfrom, setsockopt, socket, sockopt,
};

use crate::netns::{Netns, in_netns};
use crate::sctp;

/// How often blocked server threads look at their stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Stop flag and threads of one server; dropping it stops and joins them.
#[derive(Debug, Default)]
struct Workers {
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Workers {
    fn spawn(&self, name: String, body: impl FnOnce() + Send + 'static) -> Result<()> {
        let handle = std::thread::Builder::new().name(name).spawn(body)?;
        lock(&self.threads).push(handle);
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Connection threads may still be added while the acceptor exits.
        loop {
            let Some(handle) = lock(&self.threads).pop() else {
                break;
            };
            let _ = handle.join();
        }
    }
}

/// A TCP server on `[::]:port` (IPv4 and IPv6) that echoes what it reads.
#[derive(Debug)]
pub struct TcpEchoServer {
    port: u16,
    peers: Arc<Mutex<Vec<IpAddr>>>,
    workers: Workers,
}

impl TcpEchoServer {
    pub fn start(pod: &impl Netns, port: u16) -> Result<Self> {
        let listener = in_netns(pod.netns_name(), || -> Result<TcpListener> {
            let fd = dual_stack_socket(SockType::Stream, port)?;
            listen(&fd, Backlog::new(128)?)?;
            Ok(TcpListener::from(fd))
        })?
        .with_context(|| format!("listening on TCP port {port} in {}", pod.netns_name()))?;
        listener.set_nonblocking(true)?;
        let server = Self {
            port,
            peers: Arc::default(),
            workers: Workers::default(),
        };
        let (stop, peers, threads) = (
            Arc::clone(&server.workers.stop),
            Arc::clone(&server.peers),
            Arc::clone(&server.workers.threads),
        );
        server.workers.spawn(format!("tcp:{port}"), move || {
            accept_loop(&listener, &stop, &peers, &threads)
        })?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Source addresses of the accepted connections, oldest first.
    pub fn accepted_peers(&self) -> Vec<IpAddr> {
        lock(&self.peers).clone()
    }
}

fn accept_loop(
    listener: &TcpListener,
    stop: &Arc<AtomicBool>,
    peers: &Mutex<Vec<IpAddr>>,
    threads: &Mutex<Vec<JoinHandle<()>>>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                lock(peers).push(peer.ip().to_canonical());
                let stop = Arc::clone(stop);
                if let Ok(handle) = std::thread::Builder::new()
                    .name("tcp echo".into())
                    .spawn(move || echo_stream(stream, &stop))
                {
                    lock(threads).push(handle);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let _ = wait_readable(&[listener.as_fd()], STOP_POLL);
            }
            Err(_) => std::thread::sleep(STOP_POLL),
        }
    }
}

fn echo_stream(mut stream: TcpStream, stop: &AtomicBool) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(STOP_POLL)).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// A UDP server on `[::]:port` (IPv4 and IPv6) that echoes each datagram.
#[derive(Debug)]
pub struct UdpEchoServer {
    port: u16,
    peers: Arc<Mutex<Vec<IpAddr>>>,
    workers: Workers,
}

impl UdpEchoServer {
    pub fn start(pod: &impl Netns, port: u16) -> Result<Self> {
        let socket = in_netns(pod.netns_name(), || {
            dual_stack_socket(SockType::Datagram, port).map(UdpSocket::from)
        })?
        .with_context(|| format!("binding UDP port {port} in {}", pod.netns_name()))?;
        socket.set_read_timeout(Some(STOP_POLL))?;
        let server = Self {
            port,
            peers: Arc::default(),
            workers: Workers::default(),
        };
        let (stop, peers) = (Arc::clone(&server.workers.stop), Arc::clone(&server.peers));
        server.workers.spawn(format!("udp:{port}"), move || {
            let mut buf = [0u8; 65_536];
            while !stop.load(Ordering::SeqCst) {
                if let Ok((n, peer)) = socket.recv_from(&mut buf) {
                    lock(&peers).push(peer.ip().to_canonical());
                    let _ = socket.send_to(&buf[..n], peer);
                }
            }
        })?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Source addresses of the datagrams received, oldest first.
    pub fn peers(&self) -> Vec<IpAddr> {
        lock(&self.peers).clone()
    }
}

/// An SCTP packet that arrived at a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpPacket {
    pub from: IpAddr,
    pub header: sctp::SctpHeader,
}

#[derive(Debug, Default)]
struct SctpLog {
    packets: Mutex<Vec<SctpPacket>>,
    arrived: Condvar,
}

/// Records every SCTP packet that reaches a pod (any port, IPv4 and IPv6)
/// through raw sockets. Nothing answers: an INIT that arrives is the proof
/// that a policy let SCTP through.
#[derive(Debug)]
pub struct SctpReceiver {
    netns: String,
    log: Arc<SctpLog>,
    workers: Workers,
}

impl SctpReceiver {
    pub fn start(pod: &impl Netns) -> Result<Self> {
        let sockets = in_netns(pod.netns_name(), || -> Result<[OwnedFd; 2]> {
            Ok([
                raw_sctp_socket(AddressFamily::Inet)?,
                raw_sctp_socket(AddressFamily::Inet6)?,
            ])
        })?
        .with_context(|| format!("opening raw SCTP sockets in {}", pod.netns_name()))?;
        let receiver = Self {
            netns: pod.netns_name().to_owned(),
            log: Arc::default(),
            workers: Workers::default(),
        };
        let (stop, log) = (
            Arc::clone(&receiver.workers.stop),
            Arc::clone(&receiver.log),
        );
        receiver.workers.spawn("sctp recv".into(), move || {
            receive_sctp(&sockets, &stop, &log)
        })?;
        Ok(receiver)
    }

    /// The namespace of the pod the receiver listens in.
    pub fn netns_name(&self) -> &str {
        &self.netns
    }

    pub fn packets(&self) -> Vec<SctpPacket> {
        lock(&self.log.packets).clone()
    }

    /// Waits until an INIT with this initiate tag arrived at `port`.
    pub fn wait_for_init(&self, initiate_tag: u32, port: u16, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut packets = lock(&self.log.packets);
        loop {
            let seen = packets
                .iter()
                .any(|p| p.header.initiate_tag == Some(initiate_tag) && p.header.dst_port == port);
            let left = deadline.saturating_duration_since(Instant::now());
            if seen || left.is_zero() {
                return seen;
            }
            packets = self
                .log
                .arrived
                .wait_timeout(packets, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn raw_sctp_socket(family: AddressFamily) -> Result<OwnedFd> {
    socket(
        family,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Sctp,
    )
    .context("socket(SOCK_RAW, IPPROTO_SCTP)")
}

fn receive_sctp(sockets: &[OwnedFd; 2], stop: &AtomicBool, log: &SctpLog) {
    let mut buf = [0u8; 65_536];
    while !stop.load(Ordering::SeqCst) {
        let Ok(ready) = wait_readable(&[sockets[0].as_fd(), sockets[1].as_fd()], STOP_POLL) else {
            continue;
        };
        for (i, fd) in sockets.iter().enumerate().filter(|(i, _)| ready[*i]) {
            let Ok((n, Some(from))) = recvfrom::<SockaddrStorage>(fd.as_raw_fd(), &mut buf) else {
                continue;
            };
            let datagram = &buf[..n];
            let payload = if i == 0 {
                sctp::strip_ipv4_header(datagram)
            } else {
                Some(datagram)
            };
            if let (Some(header), Some(from)) = (payload.and_then(sctp::parse), ip_of(&from)) {
                lock(&log.packets).push(SctpPacket { from, header });
                log.arrived.notify_all();
            }
        }
    }
}

fn ip_of(addr: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// A socket bound to `[::]:port` that also accepts IPv4 (v4-mapped).
fn dual_stack_socket(ty: SockType, port: u16) -> Result<OwnedFd> {
    let fd = socket(AddressFamily::Inet6, ty, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::Ipv6V6Only, &false)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    let addr = SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
    bind(fd.as_raw_fd(), &addr as &dyn SockaddrLike)?;
    Ok(fd)
}

/// Waits until one of `fds` is readable; returns which ones are.
pub(crate) fn wait_readable(
    fds: &[std::os::fd::BorrowedFd<'_>],
    timeout: Duration,
) -> nix::Result<Vec<bool>> {
    let mut pollfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    poll(&mut pollfds, millis)?;
    Ok(pollfds
        .iter()
        .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
        .collect())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
