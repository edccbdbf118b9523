//! One flow record as analysts read it. The exporter writes hundreds of
//! thousands a second, so a record borrows its names from the flow context
//! and formats them straight into the JSON line: building one allocates
//! nothing.

use std::{
    borrow::Cow,
    fmt,
    net::{IpAddr, Ipv6Addr},
    time::{Duration, SystemTime},
};

use humantime::Rfc3339Timestamp;
use netseg_contract::{
    DIRECTION_INGRESS, FlowEvent, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP,
    VERDICT_ALLOW, reason, rule,
};
use netseg_policy::{PodRef, RuleRef};
use serde::{Serialize, Serializer};

use super::FlowContext;

#[derive(Serialize)]
pub(super) struct FlowRecord<'a> {
    time: Text<Rfc3339Timestamp>,
    verdict: &'static str,
    reason: &'static str,
    direction: &'static str,
    protocol: Cow<'static, str>,
    src_ip: IpAddr,
    src_port: Option<u16>,
    dst_ip: IpAddr,
    dst_port: Option<u16>,
    src_pod: Option<Text<Party<'a>>>,
    dst_pod: Option<Text<Party<'a>>>,
    /// The local pod whose interface saw the packet.
    endpoint: Option<Text<&'a PodRef>>,
    decided_by: Text<DecidedBy<'a>>,
    policy_kind: Option<&'a str>,
    policy_namespace: Option<&'a str>,
    policy_name: Option<&'a str>,
    /// `ingress[0]`, `egress[2]`: the rule within the policy.
    policy_rule: Option<Text<RuleWithinPolicy<'a>>>,
    revision: u32,
    /// Denied packets of this flow that were not reported separately.
    suppressed: u32,
}

/// Serializes as its `Display` text, without an intermediate `String`.
struct Text<T>(T);

impl<T: fmt::Display> Serialize for Text<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// A known party of a flow.
enum Party<'a> {
    Pod(&'a PodRef),
    Node,
}

impl fmt::Display for Party<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Party::Pod(pod) => pod.fmt(f),
            Party::Node => f.write_str("node"),
        }
    }
}

/// What decided: a policy rule, `default-allow`, `node-traffic`, or
/// `default-deny` when nothing allowed the traffic.
enum DecidedBy<'a> {
    Rule(&'a RuleRef),
    Default(&'static str),
}

impl fmt::Display for DecidedBy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecidedBy::Rule(rule) => rule.fmt(f),
            DecidedBy::Default(name) => f.write_str(name),
        }
    }
}

struct RuleWithinPolicy<'a>(&'a RuleRef);

impl fmt::Display for RuleWithinPolicy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.0.direction, self.0.index)
    }
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

pub fn protocol_name(protocol: u8) -> Cow<'static, str> {
    match protocol {
        PROTO_TCP => "tcp".into(),
        PROTO_UDP => "udp".into(),
        PROTO_SCTP => "sctp".into(),
        PROTO_ICMP => "icmp".into(),
        PROTO_ICMPV6 => "icmpv6".into(),
        other => other.to_string().into(),
    }
}

fn address(bytes: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

impl FlowContext {
    fn party(&self, ip: IpAddr) -> Option<Text<Party<'_>>> {
        if let Some(pod) = self.pods.get(&ip) {
            return Some(Text(Party::Pod(pod)));
        }
        self.node_addresses
            .contains(&ip)
            .then_some(Text(Party::Node))
    }

    pub(super) fn record(&self, event: &FlowEvent, boot: SystemTime) -> FlowRecord<'_> {
        let has_ports = matches!(event.protocol, PROTO_TCP | PROTO_UDP | PROTO_SCTP);
        let port = |port: u16| has_ports.then(|| u16::from_be(port));
        let (src_ip, dst_ip) = (address(event.src), address(event.dst));
        let policy = self.rules.get(&event.rule);
        let allowed = event.verdict == VERDICT_ALLOW;
        let decided_by = match (policy, event.rule) {
            (Some(rule), _) => DecidedBy::Rule(rule),
            (None, rule::DEFAULT_ALLOW) => DecidedBy::Default("default-allow"),
            (None, rule::NODE_TRAFFIC) => DecidedBy::Default("node-traffic"),
            // No rule allows it (any more): the default action decided.
            (None, _) if matches!(event.reason, reason::POLICY_DENIED | reason::REVOKED) => {
                DecidedBy::Default("default-deny")
            }
            (None, _) if allowed => DecidedBy::Default("conntrack"),
            (None, _) => DecidedBy::Default("datapath"),
        };
        let at = boot + Duration::from_nanos(event.timestamp_ns);
        FlowRecord {
            time: Text(humantime::format_rfc3339_millis(at)),
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
            src_pod: self.party(src_ip),
            dst_pod: self.party(dst_ip),
            endpoint: self.endpoints.get(&event.ifindex).map(Text),
            decided_by: Text(decided_by),
            policy_kind: policy.map(|p| p.kind.as_str()),
            policy_namespace: policy.map(|p| p.namespace.as_str()),
            policy_name: policy.map(|p| p.name.as_str()),
            policy_rule: policy.map(|p| Text(RuleWithinPolicy(p))),
            revision: event.revision,
            suppressed: event.suppressed,
        }
    }
}
