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
    DIRECTION_INGRESS, FlowEvent, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP,
    VERDICT_ALLOW, reason, rule,
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
        reason::OFF_LINK => "off-link",
        reason::ICMP_ERROR_MISDIRECTED => "icmp-error-misdirected",
        reason::CONNTRACK_FULL => "conntrack-full",
        reason::FRAGMENTS_FULL => "fragments-full",
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
    object.plain("time", time);
    object.plain("verdict", if allowed { "allow" } else { "deny" });
    object.plain("reason", reason_name(event.reason));
    let direction = if event.direction == DIRECTION_INGRESS {
        "ingress"
    } else {
        "egress"
    };
    object.plain("direction", direction);
    object.plain("protocol", protocol_name(event.protocol).as_bytes());
    object.address("src_ip", src_ip)?;
    object.number("src_port", port(event.src_port));
    object.address("dst_ip", dst_ip)?;
    object.number("dst_port", port(event.dst_port));
    object.party("src_pod", context, src_ip);
    object.party("dst_pod", context, dst_ip);
    // The local pod whose interface saw the packet.
    object.text("endpoint", context.endpoint_names.get(&event.ifindex));
    write_decision(&mut object, context, event, allowed);
    object.number("revision", Some(event.revision));
    // Denied packets of this flow that were not reported separately.
    object.number("suppressed", Some(event.suppressed));
    object.end();
    Ok(())
}

/// What decided: a policy rule, `default-allow`, `node-traffic`, or
/// `default-deny` when nothing allowed the traffic; and the rule's policy.
fn write_decision(
    object: &mut Object<'_>,
    context: &FlowContext,
    event: &FlowEvent,
    allowed: bool,
) {
    let rule = context.rules.get(&event.rule);
    match (rule, event.rule) {
        (Some(rule), _) => object.text("decided_by", Some(&rule.decided_by)),
        (None, rule::DEFAULT_ALLOW) => object.plain("decided_by", "default-allow"),
        (None, rule::NODE_TRAFFIC) => object.plain("decided_by", "node-traffic"),
        // No rule allows it (any more): the default action decided.
        (None, _) if matches!(event.reason, reason::POLICY_DENIED | reason::REVOKED) => {
            object.plain("decided_by", "default-deny")
        }
        (None, _) if allowed => object.plain("decided_by", "conntrack"),
        (None, _) => object.plain("decided_by", "datapath"),
    }
    object.text("policy_kind", rule.map(|r| &r.kind));
    object.text("policy_namespace", rule.map(|r| &r.namespace));
    object.text("policy_name", rule.map(|r| &r.name));
    object.text("policy_rule", rule.map(|r| &r.within_policy));
}
