//! One flow record as analysts read it: a JSON object on one line, its
//! fields in the order below. The exporter writes hundreds of thousands a
//! second, so the line is written by hand from names the context rendered
//! once (serde_json escaped them); everything else written here is our own
//! words, numbers, addresses and times, which JSON needs no escaping for.
//! The tests pin the exact bytes.

use std::{
    borrow::Cow,
    io::{self, Write},
    net::{IpAddr, Ipv6Addr},
};

use netseg_contract::{
    DIRECTION_INGRESS, DenyCountKey, FlowEvent, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP,
    PROTO_UDP, VERDICT_ALLOW, reason, rule,
};

use super::context::{FlowContext, JsonText};

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
        reason::CONNTRACK_FULL => "conntrack-full",
        reason::FRAGMENTS_FULL => "fragments-full",
        reason::OFF_LINK => "off-link",
        reason::ICMP_ERROR_MISDIRECTED => "icmp-error-misdirected",
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

/// A JSON object being appended to a line.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    opening: u8,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, opening: b'{' }
    }

    fn key(&mut self, key: &str) {
        self.out.push(self.opening);
        self.opening = b',';
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string that needs no escaping.
    fn plain(&mut self, key: &str, value: impl AsRef<[u8]>) {
        self.key(key);
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_ref());
        self.out.push(b'"');
    }

    /// An address, as `Display` writes it; IPv4 (most flows) is spared the
    /// formatting machinery.
    fn address(&mut self, key: &str, ip: IpAddr) -> io::Result<()> {
        self.key(key);
        let IpAddr::V4(v4) = ip else {
            return write!(self.out, "\"{ip}\"");
        };
        let mut digits = itoa::Buffer::new();
        for (i, octet) in v4.octets().into_iter().enumerate() {
            self.out.push(if i == 0 { b'"' } else { b'.' });
            self.out.extend_from_slice(digits.format(octet).as_bytes());
        }
        self.out.push(b'"');
        Ok(())
    }

    fn boolean(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn text(&mut self, key: &str, value: Option<&JsonText>) {
        self.key(key);
        self.out
            .extend_from_slice(value.map_or(b"null", JsonText::as_bytes));
    }

    fn number(&mut self, key: &str, value: Option<impl itoa::Integer>) {
        self.key(key);
        match value {
            Some(value) => self
                .out
                .extend_from_slice(itoa::Buffer::new().format(value).as_bytes()),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    /// A party of the flow: a pod, the node or nobody we know.
    fn party(&mut self, key: &str, context: &FlowContext, ip: IpAddr) {
        match context.pods.get(&ip) {
            Some(pod) => self.text(key, Some(pod)),
            None if context.node_addresses.contains(&ip) => self.plain(key, "node"),
            None => self.text(key, None),
        }
    }

    fn end(self) {
        self.out.extend_from_slice(b"}\n");
    }
}

/// Appends the record of `event`, which happened at `time`, and a newline to `out`.
pub(super) fn write_record(
    out: &mut Vec<u8>,
    context: &FlowContext,
    event: &FlowEvent,
    time: &[u8],
) -> io::Result<()> {
    let has_ports = matches!(event.protocol, PROTO_TCP | PROTO_UDP | PROTO_SCTP);
    let port = |port: u16| has_ports.then(|| u16::from_be(port));
    let (src_ip, dst_ip) = (address(event.src), address(event.dst));
    let allowed = event.verdict == VERDICT_ALLOW;
    let mut object = Object::new(out);
    write_kind(&mut object, time, allowed, event.reason, event.direction);
    object.plain("protocol", protocol_name(event.protocol).as_bytes());
    object.address("src_ip", src_ip)?;
    object.number("src_port", port(event.src_port));
    object.address("dst_ip", dst_ip)?;
    object.number("dst_port", port(event.dst_port));
    object.party("src_pod", context, src_ip);
    object.party("dst_pod", context, dst_ip);
    // The local pod whose interface saw the packet.
    object.text("endpoint", context.endpoint_names.get(&event.ifindex));
    write_decision(&mut object, context, event.rule, event.reason, allowed);
    object.number("revision", Some(event.revision));
    object.boolean("aggregated", false);
    object.number("count", Some(1));
    object.end();
    Ok(())
}

/// Appends the aggregated record of `count` denials at one endpoint for one
/// reason that got no record of their own, reported at `time`. The fields
/// of a single packet are null; the set and order of fields are a flow
/// record's.
pub(super) fn write_aggregate(
    out: &mut Vec<u8>,
    context: &FlowContext,
    key: &DenyCountKey,
    count: u64,
    time: &[u8],
) {
    let mut object = Object::new(out);
    write_kind(&mut object, time, false, key.reason, key.direction);
    for field in ["protocol", "src_ip", "src_port", "dst_ip", "dst_port"] {
        object.text(field, None);
    }
    object.text("src_pod", None);
    object.text("dst_pod", None);
    object.text("endpoint", context.endpoint_names.get(&key.ifindex));
    write_decision(&mut object, context, rule::NONE, key.reason, false);
    // The denials may span policy revisions.
    object.number("revision", None::<u32>);
    object.boolean("aggregated", true);
    object.number("count", Some(count));
    object.end();
}

fn write_kind(object: &mut Object<'_>, time: &[u8], allowed: bool, why: u8, direction: u8) {
    object.plain("time", time);
    object.plain("verdict", if allowed { "allow" } else { "deny" });
    object.plain("reason", reason_name(why));
    let direction = if direction == DIRECTION_INGRESS {
        "ingress"
    } else {
        "egress"
    };
    object.plain("direction", direction);
}

/// What decided: a policy rule (or posture, or NetworkPolicy isolation),
/// `default-allow`, `default-deny`, `node-traffic`; the rule's band, policy
/// and action; the Pass rules on the way; and, for a new connection, what
/// the Audit-mode policies would decide when it differs.
fn write_decision(
    object: &mut Object<'_>,
    context: &FlowContext,
    rule_id: u32,
    why: u8,
    allowed: bool,
) {
    let names = match rule_id {
        rule::DEFAULT_ALLOW | rule::DEFAULT_DENY | rule::NODE_TRAFFIC => None,
        _ => context.verdict_names.get(&rule_id),
    };
    match (names, rule_id) {
        (Some(names), _) => object.text("decided_by", Some(&names.decided_by)),
        (None, rule::DEFAULT_ALLOW) => object.plain("decided_by", "default-allow"),
        (None, rule::NODE_TRAFFIC) => object.plain("decided_by", "node-traffic"),
        // Nothing else decided (any more): the default action did.
        (None, _) if matches!(why, reason::POLICY_DENIED | reason::REVOKED) => {
            object.plain("decided_by", "default-deny")
        }
        (None, _) if allowed => object.plain("decided_by", "conntrack"),
        (None, _) => object.plain("decided_by", "datapath"),
    }
    object.text("policy_band", names.and_then(|n| n.band.as_ref()));
    object.text("policy_kind", names.and_then(|n| n.kind.as_ref()));
    object.text("policy_namespace", names.and_then(|n| n.namespace.as_ref()));
    object.text("policy_name", names.and_then(|n| n.name.as_ref()));
    object.text("policy_rule", names.and_then(|n| n.within_policy.as_ref()));
    object.text("policy_action", names.and_then(|n| n.action.as_ref()));
    object.text("passed_by", names.and_then(|n| n.passed_by.as_ref()));
    // The audit difference is about opening the connection.
    let audit = names.filter(|_| matches!(why, reason::NEW_ALLOWED | reason::POLICY_DENIED));
    match audit.and_then(|n| n.audit) {
        Some(audit) => object.plain("audit", audit),
        None => object.text("audit", None),
    }
    object.text("audit_by", audit.and_then(|n| n.audit_by.as_ref()));
}
