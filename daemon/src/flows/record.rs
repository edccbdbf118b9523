//! One flow record as analysts read it: a JSON object on one line, its
//! fields in the order below (`schema.rs` is its typed definition). The exporter writes hundreds of thousands a
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
    ConnKey, DIRECTION_INGRESS, DenyCountKey, FlowEvent, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP,
    PROTO_TCP, PROTO_UDP, VERDICT_ALLOW, reason, rule,
};

use super::{
    context::{FlowContext, JsonText, PartyNames, VerdictNames},
    schema::{RecordKind, SCHEMA_VERSION},
};

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

pub(super) fn address(bytes: [u8; 16]) -> IpAddr {
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

    /// A string that needs no escaping, or null.
    fn plain_or_null(&mut self, key: &str, value: Option<&[u8]>) {
        match value {
            Some(value) => self.plain(key, value),
            None => self.text(key, None),
        }
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

    /// One end of the flow: `src_pod`, `src_workload`, ... for `side` `src`.
    fn party(&mut self, side: Side, party: Option<&PartyNames>) {
        let [pod, workload, labels, segments] = side.keys();
        self.text(pod, party.and_then(|p| p.pod.as_ref()));
        self.text(workload, party.and_then(|p| p.workload.as_ref()));
        self.text(labels, party.and_then(|p| p.labels.as_ref()));
        self.text(segments, party.and_then(|p| p.segments.as_ref()));
    }

    fn end(self) {
        self.out.extend_from_slice(b"}\n");
    }
}

#[derive(Clone, Copy)]
enum Side {
    Src,
    Dst,
}

impl Side {
    fn keys(self) -> [&'static str; 4] {
        match self {
            Side::Src => ["src_pod", "src_workload", "src_labels", "src_segments"],
            Side::Dst => ["dst_pod", "dst_workload", "dst_labels", "dst_segments"],
        }
    }
}

/// What every record starts with.
struct Heading<'a> {
    kind: RecordKind,
    /// `time`, as the clock renders it.
    time: &'a [u8],
    /// `node`, rendered as JSON (a string or null).
    node: &'a [u8],
    allowed: bool,
    reason: &'a str,
    direction: u8,
}

impl Heading<'_> {
    fn write(&self, object: &mut Object<'_>) {
        object.number("schema", Some(SCHEMA_VERSION));
        object.plain("kind", self.kind.name());
        object.plain("time", self.time);
        object.key("node");
        object.out.extend_from_slice(self.node);
        object.plain("verdict", if self.allowed { "allow" } else { "deny" });
        object.plain("reason", self.reason);
        let direction = if self.direction == DIRECTION_INGRESS {
            "ingress"
        } else {
            "egress"
        };
        object.plain("direction", direction);
    }
}

/// The five-tuple of a flow; ports only for the protocols that have them.
struct FlowTuple {
    protocol: u8,
    src: [u8; 16],
    src_port: u16,
    dst: [u8; 16],
    dst_port: u16,
}

impl FlowTuple {
    /// Writes the tuple and the parties of its two addresses.
    fn write(&self, object: &mut Object<'_>) -> io::Result<(IpAddr, IpAddr)> {
        let has_ports = matches!(self.protocol, PROTO_TCP | PROTO_UDP | PROTO_SCTP);
        let port = |port: u16| has_ports.then(|| u16::from_be(port));
        let (src_ip, dst_ip) = (address(self.src), address(self.dst));
        object.plain("protocol", protocol_name(self.protocol).as_bytes());
        object.address("src_ip", src_ip)?;
        object.number("src_port", port(self.src_port));
        object.address("dst_ip", dst_ip)?;
        object.number("dst_port", port(self.dst_port));
        Ok((src_ip, dst_ip))
    }
}

/// Appends the record of `event` (a connection opened, or a packet
/// denied), which happened at `time`, and a newline to `out`.
pub(super) fn write_record(
    out: &mut Vec<u8>,
    context: &FlowContext,
    node: &[u8],
    event: &FlowEvent,
    time: &[u8],
) -> io::Result<()> {
    let allowed = event.verdict == VERDICT_ALLOW;
    let kind = if allowed {
        RecordKind::Open
    } else {
        RecordKind::Deny
    };
    let mut object = Object::new(out);
    Heading {
        kind,
        time,
        node,
        allowed,
        reason: reason_name(event.reason),
        direction: event.direction,
    }
    .write(&mut object);
    let tuple = FlowTuple {
        protocol: event.protocol,
        src: event.src,
        src_port: event.src_port,
        dst: event.dst,
        dst_port: event.dst_port,
    };
    let (src_ip, dst_ip) = tuple.write(&mut object)?;
    object.party(Side::Src, Some(context.party(src_ip)));
    object.party(Side::Dst, Some(context.party(dst_ip)));
    // The local pod whose interface saw the packet.
    object.text(
        "endpoint",
        context.endpoint_names.get(&event.ifindex).map(|n| &**n),
    );
    // An open connection starts now and has carried nothing yet.
    let opened = kind == RecordKind::Open;
    object.plain_or_null("start", opened.then_some(time));
    object.number("duration_ms", opened.then_some(0u64));
    write_counts(&mut object, None);
    let names = context.verdict_names.get(&event.rule).map(|n| &**n);
    write_decision(&mut object, names, event.rule, event.reason, allowed);
    object.number("revision", Some(event.revision));
    object.number("count", (!opened).then_some(1u64));
    object.end();
    Ok(())
}

/// Appends the record of `count` denials at one endpoint for one reason
/// that got no record of their own, reported at `time`. The fields of a
/// single packet are null; the set and order of fields are a flow record's.
pub(super) fn write_aggregate(
    out: &mut Vec<u8>,
    context: &FlowContext,
    node: &[u8],
    key: &DenyCountKey,
    count: u64,
    time: &[u8],
) {
    let mut object = Object::new(out);
    Heading {
        kind: RecordKind::DenyCount,
        time,
        node,
        allowed: false,
        reason: reason_name(key.reason),
        direction: key.direction,
    }
    .write(&mut object);
    for field in ["protocol", "src_ip", "src_port", "dst_ip", "dst_port"] {
        object.text(field, None);
    }
    object.party(Side::Src, None);
    object.party(Side::Dst, None);
    object.text(
        "endpoint",
        context.endpoint_names.get(&key.ifindex).map(|n| &**n),
    );
    object.text("start", None);
    object.text("duration_ms", None);
    write_counts(&mut object, None);
    // Which rules denied is not counted: the `deny` records of the same
    // endpoint and reason name them.
    write_undecided(&mut object, "unattributed");
    // The denials may span policy revisions.
    object.number("revision", None::<u32>);
    object.number("count", Some(count));
    object.end();
}

/// Packets and bytes each side sent since the connection's previous record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Traffic {
    pub(super) src_packets: u64,
    pub(super) src_bytes: u64,
    pub(super) dst_packets: u64,
    pub(super) dst_bytes: u64,
}

fn write_counts(object: &mut Object<'_>, traffic: Option<Traffic>) {
    object.number("src_packets", traffic.map(|t| t.src_packets));
    object.number("src_bytes", traffic.map(|t| t.src_bytes));
    object.number("dst_packets", traffic.map(|t| t.dst_packets));
    object.number("dst_bytes", traffic.map(|t| t.dst_bytes));
}

/// A tracked connection's `update` or `end` record.
pub(super) struct ConnectionRecord<'a> {
    pub(super) kind: RecordKind,
    pub(super) reason: &'a str,
    pub(super) key: &'a ConnKey,
    /// The direction of the connection's first packet (`ConnValue::origin`).
    pub(super) origin: u8,
    /// Its parties and endpoint, named when it opened.
    pub(super) src: &'a PartyNames,
    pub(super) dst: &'a PartyNames,
    pub(super) endpoint: Option<&'a JsonText>,
    /// What allows it, and the revision that last allowed it.
    pub(super) decision: Option<&'a VerdictNames>,
    pub(super) rule: u32,
    pub(super) revision: u32,
    /// `start` and `duration_ms`.
    pub(super) duration_ms: u64,
    pub(super) traffic: Traffic,
}

/// Appends `record`, taken at `time`, of the connection that started at `start`.
pub(super) fn write_connection(
    out: &mut Vec<u8>,
    node: &[u8],
    record: &ConnectionRecord<'_>,
    time: &[u8],
    start: &[u8],
) -> io::Result<()> {
    let key = record.key;
    let ends = key.ends(record.origin);
    let mut object = Object::new(out);
    Heading {
        kind: record.kind,
        time,
        node,
        allowed: true,
        reason: record.reason,
        direction: record.origin,
    }
    .write(&mut object);
    FlowTuple {
        protocol: key.protocol,
        src: ends.src,
        src_port: ends.src_port,
        dst: ends.dst,
        dst_port: ends.dst_port,
    }
    .write(&mut object)?;
    object.party(Side::Src, Some(record.src));
    object.party(Side::Dst, Some(record.dst));
    object.text("endpoint", record.endpoint);
    object.plain("start", start);
    object.number("duration_ms", Some(record.duration_ms));
    write_counts(&mut object, Some(record.traffic));
    write_decision(
        &mut object,
        record.decision,
        record.rule,
        reason::ESTABLISHED,
        true,
    );
    object.number("revision", Some(record.revision));
    object.number("count", None::<u64>);
    object.end();
    Ok(())
}

/// The decision fields of a record that names no rule, `decided_by` aside.
fn write_undecided(object: &mut Object<'_>, decided_by: &str) {
    object.plain("decided_by", decided_by);
    for field in [
        "policy_band",
        "policy_kind",
        "policy_namespace",
        "policy_name",
        "policy_rule",
        "policy_action",
        "passed_by",
        "audit",
        "audit_by",
    ] {
        object.text(field, None);
    }
}

/// What decided: a policy rule (or posture, or NetworkPolicy isolation),
/// `default-allow`, `default-deny`, `node-traffic`; the rule's band, policy
/// and action; the Pass rules on the way; and, for a new connection, what
/// the Audit-mode policies would decide when it differs. `names` are those
/// of verdict `rule_id`, when it is a compiled one.
fn write_decision(
    object: &mut Object<'_>,
    names: Option<&VerdictNames>,
    rule_id: u32,
    why: u8,
    allowed: bool,
) {
    let names = match rule_id {
        rule::DEFAULT_ALLOW | rule::DEFAULT_DENY | rule::NODE_TRAFFIC => None,
        _ => names,
    };
    let Some(names) = names else {
        let decided_by = match rule_id {
            rule::DEFAULT_ALLOW => "default-allow",
            rule::NODE_TRAFFIC => "node-traffic",
            // Nothing else decided (any more): the default action did.
            _ if matches!(why, reason::POLICY_DENIED | reason::REVOKED) => "default-deny",
            _ if allowed => "conntrack",
            _ => "datapath",
        };
        return write_undecided(object, decided_by);
    };
    object.text("decided_by", Some(&names.decided_by));
    object.text("policy_band", names.band.as_ref());
    object.text("policy_kind", names.kind.as_ref());
    object.text("policy_namespace", names.namespace.as_ref());
    object.text("policy_name", names.name.as_ref());
    object.text("policy_rule", names.within_policy.as_ref());
    object.text("policy_action", names.action.as_ref());
    object.text("passed_by", names.passed_by.as_ref());
    // The audit difference is about opening the connection.
    let audit = Some(names).filter(|_| matches!(why, reason::NEW_ALLOWED | reason::POLICY_DENIED));
    match audit.and_then(|n| n.audit) {
        Some(audit) => object.plain("audit", audit),
        None => object.text("audit", None),
    }
    object.text("audit_by", audit.and_then(|n| n.audit_by.as_ref()));
}
