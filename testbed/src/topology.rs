//! An isolated node namespace with pod namespaces behind veth pairs,
//! routed the way CNI plugins such as Calico route pods:
//!
//! - the node has `10.<k>.0.1/32` and `fd00:<k>::1/128` on `node0` (a bridge
//!   without ports, as the kernel here has no dummy driver),
//!   forwards IPv4 and IPv6, and has no uplink and no default route;
//! - pod `n` has `10.<k>.1.<n>/32` and `fd00:<k>:1::<n>/128` on `eth0`,
//!   a link route to the node address and default routes via the node
//!   address (IPv4, onlink) and `fe80::1` (IPv6);
//! - the host side `veth<nn>-<name>` carries `fe80::1/64` and the node has a
//!   `/32` and a `/128` route to the pod through it.
//!
//! `<k>` differs between the nodes of one process. Nodes of different
//! processes may share it; that is harmless, as no two nodes are connected.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use crate::netns::{Netns, NetnsGuard, delete_netns, ip_batch, run, sanitize, write_sysctls};

/// The most pods one node can address (`10.<k>.1.1` to `10.<k>.1.254`).
const MAX_PODS: u16 = 254;

/// Allows ICMP echo through unprivileged-style datagram sockets for every
/// group inside the namespace, which is what [`crate::ping`] uses.
const PING_GROUPS: (&str, &str) = ("net/ipv4/ping_group_range", "0 2147483647");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

#[derive(Debug)]
struct NodeShared {
    name: String,
    netns: String,
    k: u8,
    next_pod: Mutex<u16>,
    /// Pod namespaces still alive, deleted by the node before its own.
    live_pods: Mutex<Vec<String>>,
}

/// An isolated node: a network namespace that forwards between its pods.
#[derive(Debug)]
pub struct Node {
    shared: Arc<NodeShared>,
    netns: NetnsGuard,
}

impl Node {
    /// Creates the node namespace. `tag` names it and is also the
    /// Kubernetes node name (sanitised: lower-case letters, digits, `-`).
    pub fn new(tag: &str) -> Result<Self> {
        let netns = NetnsGuard::create(tag)?;
        let k = allocate_k();
        let shared = Arc::new(NodeShared {
            name: sanitize(tag, 40),
            netns: netns.name().to_owned(),
            k,
            next_pod: Mutex::new(1),
            live_pods: Mutex::new(Vec::new()),
        });
        let node = Self { shared, netns };
        node.configure()
            .with_context(|| format!("setting up node {tag}"))?;
        Ok(node)
    }

    fn configure(&self) -> Result<()> {
        write_sysctls(
            self.netns_name(),
            &[
                ("net/ipv4/ip_forward", "1"),
                ("net/ipv6/conf/all/forwarding", "1"),
                ("net/ipv6/conf/all/accept_dad", "0"),
                ("net/ipv6/conf/default/accept_dad", "0"),
                // IPv4 settings are inherited from the machine's; the node
                // must answer ARP for node0's address on every veth.
                ("net/ipv4/conf/all/arp_ignore", "0"),
                ("net/ipv4/conf/default/arp_ignore", "0"),
                ("net/ipv4/conf/all/arp_filter", "0"),
                ("net/ipv4/conf/default/arp_filter", "0"),
                PING_GROUPS,
            ],
        )?;
        ip_batch(
            self.netns_name(),
            &[
                "link set lo up".to_owned(),
                // This kernel has no dummy driver; a bridge without ports serves.
                "link add node0 type bridge".to_owned(),
                "link set node0 up".to_owned(),
                format!("addr add {}/32 dev node0", self.ipv4()),
                format!("addr add {}/128 dev node0 nodad", self.ipv6()),
            ],
        )
    }

    /// The Kubernetes node name (`spec.nodeName` of its pods).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn netns_name(&self) -> &str {
        self.netns.name()
    }

    pub fn ipv4(&self) -> Ipv4Addr {
        self.shared.node_ipv4()
    }

    pub fn ipv6(&self) -> Ipv6Addr {
        self.shared.node_ipv6()
    }

    pub fn ip(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => self.ipv4().into(),
            Family::V6 => self.ipv6().into(),
        }
    }

    /// The range all pod IPv4 addresses of this node are taken from.
    pub fn pod_cidr_v4(&self) -> String {
        format!("10.{}.1.0/24", self.shared.k)
    }

    /// The range all pod IPv6 addresses of this node are taken from.
    pub fn pod_cidr_v6(&self) -> String {
        format!("fd00:{:x}:1::/64", self.shared.k)
    }

    /// Adds a pod. `name` is `namespace/pod` (`x/a`) or just `pod`, which
    /// lands in the Kubernetes namespace `default`. Works before and after
    /// a daemon started on this node.
    pub fn add_pod(&self, name: &str) -> Result<Pod> {
        self.add_pod_as(name, None, |_| Ok(()))
    }

    /// [`Node::add_pod`] with the host side named `host_ifname` (as CNI
    /// plugins that do not use `veth` name it), and `starting` run on the
    /// pod's namespace once it exists, before any link: a process there
    /// sees its interface from the first moment.
    pub fn add_pod_as(
        &self,
        name: &str,
        host_ifname: Option<&str>,
        starting: impl FnOnce(&str) -> Result<()>,
    ) -> Result<Pod> {
        let index = self.shared.allocate_pod_index()?;
        self.add_pod_at(name, index, host_ifname, starting)
    }

    /// Replaces `old` by a new pod `name` with the same addresses, as an
    /// IPAM hands a freed address to the next pod: `old`'s veth goes first
    /// (its routes with it), even if sockets of `old` keep its namespace
    /// alive, then the new pod comes up on a new veth.
    pub fn reuse_addresses(&self, old: Pod, name: &str) -> Result<Pod> {
        let index = u16::from(old.ipv4.octets()[3]);
        ip_batch(
            self.netns_name(),
            &[format!("link del {}", old.host_ifname)],
        )?;
        old.remove()?;
        self.add_pod_at(name, index, None, |_| Ok(()))
    }

    fn add_pod_at(
        &self,
        name: &str,
        index: u16,
        host_ifname: Option<&str>,
        starting: impl FnOnce(&str) -> Result<()>,
    ) -> Result<Pod> {
        let (namespace, pod_name) = name.split_once('/').unwrap_or(("default", name));
        let netns = NetnsGuard::create(&format!("{namespace}-{pod_name}"))?;
        starting(netns.name())?;
        let host_ifname = match host_ifname {
            Some(host_ifname) => host_ifname.to_owned(),
            None => sanitize(&format!("veth{index:02}-{namespace}-{pod_name}"), 15),
        };
        let pod = Pod {
            shared: Arc::clone(&self.shared),
            netns,
            namespace: namespace.to_owned(),
            name: pod_name.to_owned(),
            host_ifname,
            ipv4: Ipv4Addr::new(10, self.shared.k, 1, index as u8),
            ipv6: Ipv6Addr::new(0xfd00, self.shared.k.into(), 1, 0, 0, 0, 0, index),
        };
        pod.configure()
            .with_context(|| format!("setting up pod {name}"))?;
        lock(&self.shared.live_pods).push(pod.netns_name().to_owned());
        Ok(pod)
    }

    /// The node's interface names, e.g. to check a pod's veth is gone.
    pub fn interfaces(&self) -> Result<Vec<String>> {
        let out = run("ip", &["-n", self.netns_name(), "-o", "link", "show"])?;
        Ok(out
            .lines()
            .filter_map(|line| line.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_owned())
            .collect())
    }
}

impl Netns for Node {
    fn netns_name(&self) -> &str {
        self.netns.name()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for pod in lock(&self.shared.live_pods).drain(..) {
            if let Err(e) = delete_netns(&pod) {
                eprintln!("netseg-tests: {e:#}");
            }
        }
        // self.netns deletes the node namespace right after this.
    }
}

impl NodeShared {
    fn node_ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.k, 0, 1)
    }

    fn node_ipv6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, self.k.into(), 0, 0, 0, 0, 0, 1)
    }

    fn allocate_pod_index(&self) -> Result<u16> {
        let mut next = lock(&self.next_pod);
        if *next > MAX_PODS {
            bail!("node {} already has {MAX_PODS} pods", self.name);
        }
        *next += 1;
        Ok(*next - 1)
    }
}

/// A pod: its own network namespace with `eth0`, the peer of a veth in the
/// node namespace. Dropping it (or [`Pod::remove`]) deletes the namespace
/// and with it both ends of the veth. Servers running in the pod must be
/// dropped first: their sockets would keep the namespace alive.
#[derive(Debug)]
pub struct Pod {
    shared: Arc<NodeShared>,
    netns: NetnsGuard,
    namespace: String,
    name: String,
    host_ifname: String,
    ipv4: Ipv4Addr,
    ipv6: Ipv6Addr,
}

impl Pod {
    fn configure(&self) -> Result<()> {
        let node_ns = &self.shared.netns;
        let pod_ns = self.netns_name();
        let host = &self.host_ifname;
        write_sysctls(
            pod_ns,
            &[
                ("net/ipv6/conf/all/accept_dad", "0"),
                ("net/ipv6/conf/default/accept_dad", "0"),
                PING_GROUPS,
            ],
        )?;
        ip_batch(
            node_ns,
            &[
                format!("link add {host} type veth peer name eth0 netns {pod_ns}"),
                format!("link set {host} up"),
            ],
        )?;
        ip_batch(
            pod_ns,
            &[
                "link set lo up".to_owned(),
                "link set eth0 up".to_owned(),
                format!("addr add {}/32 dev eth0", self.ipv4),
                format!("addr add {}/128 dev eth0 nodad", self.ipv6),
                format!(
                    "route add {}/32 dev eth0 scope link",
                    self.shared.node_ipv4()
                ),
                format!(
                    "route add default via {} dev eth0 onlink",
                    self.shared.node_ipv4()
                ),
                "route add ::/0 via fe80::1 dev eth0".to_owned(),
            ],
        )?;
        ip_batch(
            node_ns,
            &[
                format!("addr add fe80::1/64 dev {host} nodad"),
                format!("route add {}/32 dev {host}", self.ipv4),
                format!("route add {}/128 dev {host}", self.ipv6),
            ],
        )
    }

    pub fn ipv4(&self) -> Ipv4Addr {
        self.ipv4
    }

    pub fn ipv6(&self) -> Ipv6Addr {
        self.ipv6
    }

    pub fn ip(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => self.ipv4.into(),
            Family::V6 => self.ipv6.into(),
        }
    }

    pub fn netns_name(&self) -> &str {
        self.netns.name()
    }

    /// The namespace of the node the pod runs on.
    pub fn node_netns_name(&self) -> &str {
        &self.shared.netns
    }

    /// The host side of the veth pair, in the node namespace.
    pub fn host_ifname(&self) -> &str {
        &self.host_ifname
    }

    /// The Kubernetes namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Kubernetes pod name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `namespace/name`, the label of the pod in a [`crate::Reachability`].
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The Kubernetes node name the pod runs on.
    pub fn node_name(&self) -> &str {
        &self.shared.name
    }

    /// Deletes the pod now and reports a failure instead of printing it.
    pub fn remove(self) -> Result<()> {
        let name = self.netns_name().to_owned();
        lock(&self.shared.live_pods).retain(|pod| *pod != name);
        delete_netns(&name)
    }
}

impl Netns for Pod {
    fn netns_name(&self) -> &str {
        self.netns.name()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let name = self.netns.name().to_owned();
        lock(&self.shared.live_pods).retain(|pod| *pod != name);
        // self.netns deletes the namespace right after this.
    }
}

fn allocate_k() -> u8 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // Offset by the pid so that two test processes seldom pick the same range.
    (1 + (std::process::id().wrapping_mul(13).wrapping_add(n)) % 250) as u8
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
