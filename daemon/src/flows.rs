//! The flow pipeline: ring-buffer events from the programs become JSON flow
//! records (one object per line), named with the pods and the policy rule
//! that decided them.

use std::{
    collections::BTreeMap,
    io::{self, Write},
    net::{IpAddr, Ipv6Addr},
    sync::Arc,
    time::{Duration, SystemTime},
};

use aya::maps::{MapData, RingBuf};
use netseg_contract::{
    DIRECTION_INGRESS, FlowEvent, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP,
    VERDICT_ALLOW, reason, rule,
};
use netseg_policy::{PodRef, RuleRef};
use serde::Serialize;
use tokio::{io::unix::AsyncFd, sync::watch};

use crate::metrics::{Metrics, RecordLabels};

/// What the exporter needs to name the parties of a flow; replaced after
/// every policy publication.
#[derive(Debug, Default)]
pub struct FlowContext {
    /// Local endpoints by the ifindex of their host-side interface.
    pub endpoints: BTreeMap<u32, PodRef>,
    /// Every known pod address.
    pub pods: BTreeMap<IpAddr, PodRef>,
    pub rules: BTreeMap<u32, RuleRef>,
    pub node_addresses: Vec<IpAddr>,
}

/// One flow record, as analysts read it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FlowRecord {
    pub time: String,
    pub verdict: &'static str,
    pub reason: &'static str,
    pub direction: &'static str,
    pub protocol: String,
    pub src_ip: IpAddr,
    pub src_port: Option<u16>,
    pub dst_ip: IpAddr,
    pub dst_port: Option<u16>,
    pub src_pod: Option<String>,
    pub dst_pod: Option<String>,
    /// The local pod whose interface saw the packet.
    pub endpoint: Option<String>,
    /// What decided: a policy rule, `default-allow`, `node-traffic`, or
    /// `default-deny` when nothing allowed the traffic.
    pub decided_by: String,
    pub policy_kind: Option<String>,
    pub policy_namespace: Option<String>,
    pub policy_name: Option<String>,
    /// `ingress[0]`, `egress[2]`: the rule within the policy.
    pub policy_rule: Option<String>,
    pub revision: u32,
    /// Denied packets of this flow that were not reported separately.
    pub suppressed: u32,
}

pub fn reason_name(code: u8) -> &'static str {
    match code {
        reason::NEW_ALLOWED => "new-connection",
        reason::ESTABLISHED => "established",
        reason::RELATED => "related",
        reason::LINK_CONTROL => "link-control",
        reason::FRAGMENT => "fragment",
        reason::NO_ENDPOINT => "no-endpoint",
        reason::POLICY_DENIED => "policy-denied",
        reason::NO_CONNECTION => "no-connection",
        reason::REVOKED => "revoked",
        reason::SPOOFED => "spoofed",
        reason::MALFORMED => "malformed",
        reason::FRAGMENT_UNKNOWN => "fragment-unknown",
        reason::UNSUPPORTED_L3 => "unsupported-l3",
        reason::EXTENSION_HEADERS => "extension-headers",
        reason::COUNTER_EVENTS_LOST => "events-lost",
        reason::COUNTER_EVENTS_SAMPLED => "events-sampled",
        _ => "unknown",
    }
}

pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        PROTO_TCP => "tcp".into(),
        PROTO_UDP => "udp".into(),
        PROTO_SCTP => "sctp".into(),
        PROTO_ICMP => "icmp".into(),
        PROTO_ICMPV6 => "icmpv6".into(),
        other => other.to_string(),
    }
}

fn address(bytes: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

impl FlowContext {
    fn name(&self, ip: IpAddr) -> Option<String> {
        if let Some(pod) = self.pods.get(&ip) {
            return Some(pod.to_string());
        }
        self.node_addresses.contains(&ip).then(|| "node".to_owned())
    }

    pub fn record(&self, event: &FlowEvent, boot: SystemTime) -> FlowRecord {
        let has_ports = matches!(event.protocol, PROTO_TCP | PROTO_UDP | PROTO_SCTP);
        let port = |port: u16| has_ports.then(|| u16::from_be(port));
        let (src_ip, dst_ip) = (address(event.src), address(event.dst));
        let policy = self.rules.get(&event.rule);
        let allowed = event.verdict == VERDICT_ALLOW;
        let decided_by = match (policy, event.rule) {
            (Some(rule), _) => rule.to_string(),
            (None, rule::DEFAULT_ALLOW) => "default-allow".to_owned(),
            (None, rule::NODE_TRAFFIC) => "node-traffic".to_owned(),
            // No rule allows it (any more): the default action decided.
            (None, _) if matches!(event.reason, reason::POLICY_DENIED | reason::REVOKED) => {
                "default-deny".to_owned()
            }
            (None, _) if allowed => "conntrack".to_owned(),
            (None, _) => "datapath".to_owned(),
        };
        FlowRecord {
            time: humantime::format_rfc3339_millis(boot + Duration::from_nanos(event.timestamp_ns))
                .to_string(),
            verdict: if allowed { "allow" } else { "deny" },
            reason: reason_name(event.reason),
            direction: if event.direction == DIRECTION_INGRESS {
                "ingress"
            } else {
                "egress"
            },
            protocol: protocol_name(event.protocol),
            src_ip,
            src_port: port(event.src_port),
            dst_ip,
            dst_port: port(event.dst_port),
            src_pod: self.name(src_ip),
            dst_pod: self.name(dst_ip),
            endpoint: self.endpoints.get(&event.ifindex).map(ToString::to_string),
            decided_by,
            policy_kind: policy.map(|p| p.kind.clone()),
            policy_namespace: policy.map(|p| p.namespace.clone()),
            policy_name: policy.map(|p| p.name.clone()),
            policy_rule: policy.map(|p| format!("{}[{}]", p.direction, p.index)),
            revision: event.revision,
            suppressed: event.suppressed,
        }
    }
}

/// The wall-clock time of CLOCK_MONOTONIC's zero, which `bpf_ktime_get_ns` counts from.
pub fn monotonic_epoch() -> SystemTime {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let since_boot = Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
    SystemTime::now() - since_boot
}

/// The exporter's work for one event: name its parties, write its JSON line,
/// count it. The daemon and the flow pipeline benchmark share it.
pub struct FlowWriter<W> {
    out: W,
    boot: SystemTime,
    metrics: Arc<Metrics>,
}

impl<W: Write> FlowWriter<W> {
    /// `boot` is the wall-clock time of the events' clock zero ([`monotonic_epoch`]).
    pub fn new(out: W, boot: SystemTime, metrics: Arc<Metrics>) -> Self {
        Self { out, boot, metrics }
    }

    /// Writes one record, buffered: [`FlowWriter::flush`] makes it visible.
    pub fn write_event(&mut self, context: &FlowContext, event: &FlowEvent) -> io::Result<()> {
        let record = context.record(event, self.boot);
        serde_json::to_writer(&mut self.out, &record)?;
        self.out.write_all(b"\n")?;
        self.metrics
            .flow_records
            .get_or_create(&RecordLabels {
                verdict: record.verdict,
            })
            .inc();
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads flow events until the ring buffer's fd fails, writing one JSON
/// record per line to `out`.
pub async fn export(
    events: RingBuf<MapData>,
    context: watch::Receiver<Arc<FlowContext>>,
    out: Box<dyn Write + Send>,
    metrics: Arc<Metrics>,
) -> io::Result<()> {
    let mut writer = FlowWriter::new(out, monotonic_epoch(), metrics);
    // SAFETY: the ring buffer owns its fd and AsyncFd owns the ring buffer,
    // so the fd stays open for as long as it is registered.
    let mut ready = unsafe { AsyncFd::register(events) }.map_err(io::Error::from)?;
    loop {
        let mut guard = ready.readable_mut().await?;
        let context = context.borrow().clone();
        let ring = guard.get_inner_mut();
        while let Some(item) = ring.next() {
            if item.len() < size_of::<FlowEvent>() {
                continue;
            }
            // SAFETY: the programs submit FlowEvent records; the length was checked.
            let event: FlowEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            writer.write_event(&context, &event)?;
        }
        writer.flush()?;
        guard.clear_ready();
    }
}

#[cfg(test)]
mod tests;
