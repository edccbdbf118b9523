//! Servers on every pod and the parallel probing of whole reachability
//! matrices, so that a conformance case takes seconds.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::netns::Netns;
use crate::probes::{Delivery, Protocol, ping_delivery, sctp_delivery, tcp_delivery, udp_delivery};
use crate::reachability::Reachability;
use crate::servers::{SctpReceiver, TcpEchoServer, UdpEchoServer};
use crate::topology::{Family, Pod};

/// At most this many probes run at once (two threads each).
const MAX_PARALLEL_PROBES: usize = 256;

/// One kind of probe of a reachability matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub protocol: Protocol,
    /// Destination port; ignored for ICMP.
    pub port: u16,
    pub family: Family,
    pub timeout: Duration,
    /// Cells that differ from the expectation are probed again, up to this
    /// many probes in all, as the upstream e2e tests do against lost SYNs.
    pub attempts: u32,
}

impl Probe {
    pub fn new(protocol: Protocol, port: u16) -> Self {
        Self {
            protocol,
            port,
            family: Family::V4,
            timeout: crate::PROBE_TIMEOUT,
            attempts: 2,
        }
    }

    pub fn tcp(port: u16) -> Self {
        Self::new(Protocol::Tcp, port)
    }

    pub fn udp(port: u16) -> Self {
        Self::new(Protocol::Udp, port)
    }

    pub fn sctp(port: u16) -> Self {
        Self::new(Protocol::Sctp, port)
    }

    pub fn icmp() -> Self {
        Self::new(Protocol::Icmp, 0)
    }

    pub fn family(self, family: Family) -> Self {
        Self { family, ..self }
    }

    pub fn v6(self) -> Self {
        self.family(Family::V6)
    }

    pub fn timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    pub fn attempts(self, attempts: u32) -> Self {
        Self { attempts, ..self }
    }

    /// Sends this probe once from `from` (a pod or the node) to `to`.
    pub fn deliver(&self, from: &impl Netns, to: &Pod, servers: &ServerSet) -> Result<Delivery> {
        self.deliver_at(from, to.ip(self.family), &to.full_name(), servers)
    }

    /// Sends this probe once from `from` to `addr`, where the servers of
    /// `served_by` (their key in `servers`) listen.
    pub fn deliver_at(
        &self,
        from: &impl Netns,
        addr: IpAddr,
        served_by: &str,
        servers: &ServerSet,
    ) -> Result<Delivery> {
        match self.protocol {
            Protocol::Tcp => tcp_delivery(from, addr, self.port, self.timeout),
            Protocol::Udp => udp_delivery(from, addr, self.port, self.timeout),
            Protocol::Icmp => ping_delivery(from, addr, self.timeout),
            Protocol::Sctp => {
                let receiver = servers
                    .sctp_receiver(served_by)
                    .with_context(|| format!("no SCTP receiver runs in {served_by}"))?;
                sctp_delivery(from, receiver, addr, self.port, self.timeout)
            }
        }
    }
}

#[derive(Debug, Default)]
struct PodServers {
    tcp: Vec<TcpEchoServer>,
    udp: Vec<UdpEchoServer>,
    sctp: Option<SctpReceiver>,
}

/// Echo servers (and an SCTP receiver) on a set of pods, keyed by the
/// pod's `namespace/name`. Drop it, or [`ServerSet::stop_pod`], before the
/// pods are removed.
#[derive(Debug, Default)]
pub struct ServerSet {
    pods: BTreeMap<String, PodServers>,
}

impl ServerSet {
    /// Starts TCP and UDP echo servers on the given ports of every pod and,
    /// if `sctp`, an SCTP receiver.
    pub fn start(pods: &[&Pod], tcp_ports: &[u16], udp_ports: &[u16], sctp: bool) -> Result<Self> {
        let mut set = Self::default();
        for pod in pods {
            set.start_on(pod, tcp_ports, udp_ports, sctp)?;
        }
        Ok(set)
    }

    /// Adds servers on one more pod (e.g. one created after the daemon).
    pub fn start_on(
        &mut self,
        pod: &Pod,
        tcp_ports: &[u16],
        udp_ports: &[u16],
        sctp: bool,
    ) -> Result<()> {
        self.start_in(&pod.full_name(), pod, tcp_ports, udp_ports, sctp)
    }

    /// Adds servers, known as `key`'s, in the namespace of `netns`: a
    /// host-network pod's run in the node's.
    pub fn start_in(
        &mut self,
        key: &str,
        netns: &impl Netns,
        tcp_ports: &[u16],
        udp_ports: &[u16],
        sctp: bool,
    ) -> Result<()> {
        let servers = self.pods.entry(key.to_owned()).or_default();
        for &port in tcp_ports {
            servers.tcp.push(TcpEchoServer::start(netns, port)?);
        }
        for &port in udp_ports {
            servers.udp.push(UdpEchoServer::start(netns, port)?);
        }
        if sctp && servers.sctp.is_none() {
            servers.sctp = Some(SctpReceiver::start(netns)?);
        }
        Ok(())
    }

    /// Stops the servers of one pod.
    pub fn stop_pod(&mut self, full_name: &str) {
        self.pods.remove(full_name);
    }

    pub fn sctp_receiver(&self, full_name: &str) -> Option<&SctpReceiver> {
        self.pods.get(full_name)?.sctp.as_ref()
    }

    pub fn tcp_server(&self, full_name: &str, port: u16) -> Option<&TcpEchoServer> {
        self.pods
            .get(full_name)?
            .tcp
            .iter()
            .find(|s| s.port() == port)
    }

    pub fn udp_server(&self, full_name: &str, port: u16) -> Option<&UdpEchoServer> {
        self.pods
            .get(full_name)?
            .udp
            .iter()
            .find(|s| s.port() == port)
    }
}

/// Probes every pair of `reach` (except a pod with itself) and records what
/// it observed. See [`probe_matrices`].
pub fn probe_matrix(
    pods: &[&Pod],
    servers: &ServerSet,
    probe: &Probe,
    reach: &mut Reachability,
) -> Result<()> {
    probe_matrices(pods, servers, &mut [(*probe, reach)])
}

/// Probes several matrices (e.g. one per port and family) at once: every
/// cell of every matrix in parallel, then the cells that differ from their
/// expectation again, up to each probe's `attempts`.
pub fn probe_matrices(
    pods: &[&Pod],
    servers: &ServerSet,
    cases: &mut [(Probe, &mut Reachability)],
) -> Result<()> {
    let by_name: BTreeMap<String, &Pod> = pods.iter().map(|pod| (pod.full_name(), *pod)).collect();
    let rounds = cases
        .iter()
        .map(|(probe, _)| probe.attempts)
        .max()
        .unwrap_or(0);
    for round in 0..rounds {
        let mut jobs = Vec::new();
        for (case, (probe, reach)) in cases.iter().enumerate() {
            if round >= probe.attempts {
                continue;
            }
            for (from, to) in reach.pairs() {
                if round == 0 || !reach.is_correct_at(&from, &to) {
                    let (Some(from_pod), Some(to_pod)) = (by_name.get(&from), by_name.get(&to))
                    else {
                        bail!("{from} or {to} is in the reachability table but not among the pods");
                    };
                    jobs.push((case, from, to, *probe, *from_pod, *to_pod));
                }
            }
        }
        if jobs.is_empty() {
            break;
        }
        let results = run_parallel(&jobs, |(_, _, _, probe, from, to)| {
            probe.deliver(*from, to, servers)
        });
        for ((case, from, to, ..), result) in jobs.iter().zip(results) {
            let delivery = result.with_context(|| format!("probing {from} -> {to}"))?;
            cases[*case].1.observe(from, to, delivery);
        }
    }
    Ok(())
}

fn run_parallel<J: Sync, T: Send>(jobs: &[J], run: impl Fn(&J) -> T + Sync) -> Vec<T> {
    let mut results = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(MAX_PARALLEL_PROBES) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk.iter().map(|job| scope.spawn(|| run(job))).collect();
            for handle in handles {
                match handle.join() {
                    Ok(result) => results.push(result),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        });
    }
    results
}
