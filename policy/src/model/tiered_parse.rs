//! Parsing and validating ClusterNetworkPolicy, SegmentPolicy and Segment
//! into their [`tiered`](super::tiered) models. The checks are those of the
//! CRD schemas and CEL rules (a manifests directory has no API server to
//! run them), plus what only the whole object can tell.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use netseg_contract::{PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use netseg_crd::{
    ClusterNetworkPolicy, ClusterNetworkPolicyEgressPeer, ClusterNetworkPolicyIngressPeer,
    ClusterNetworkPolicyProtocol, NamespacedPod, Port, PostureAction, ProtocolPort, RuleAction,
    Segment, SegmentMember, SegmentPolicy, SegmentPolicyPeer, SegmentPolicyProtocol,
};

use super::errors::Errors;
use super::names::dns_subdomain_problem;
use super::policy::{IpBlockModel, PeerModel, PortModel, check_object_name, parse_cidr};
use super::selector::{Selector, parse_selector};
use super::tiered::{
    FailClosed, PodSelection, Posture, SegmentModel, Subject, Tier, TieredPeer, TieredPolicy,
    TieredRule,
};
use crate::types::{Action, PolicyKind};

/// The most rules per direction, peers per rule, protocols per rule,
/// CIDRs per `networks` and Segment members (CNP's limits, shared by ours).
const MAX_ITEMS: usize = 25;
const MAX_RULE_NAME: usize = 100;
const MAX_PRIORITY: i32 = 1000;

/// Parses and validates a ClusterNetworkPolicy; `None` when any field is invalid.
pub(crate) fn parse_cluster_network_policy(
    policy: &ClusterNetworkPolicy,
    errs: &mut Errors,
) -> Option<TieredPolicy> {
    let spec = &policy.spec;
    let ingress = spec.ingress.iter().map(|r| {
        let peers = r.from.iter().map(ingress_peer).collect();
        raw_rule(
            r.name.as_deref(),
            r.action,
            peers,
            r.protocols.as_deref(),
            cnp_protocol,
        )
    });
    let egress = spec.egress.iter().map(|r| {
        let peers = r.to.iter().map(egress_peer).collect();
        raw_rule(
            r.name.as_deref(),
            r.action,
            peers,
            r.protocols.as_deref(),
            cnp_protocol,
        )
    });
    let raw = RawPolicy {
        kind: PolicyKind::ClusterNetworkPolicy,
        tier: spec.tier,
        priority: spec.priority,
        audit: false,
        unique_names: false,
        ingress: ingress.collect(),
        egress: egress.collect(),
    };
    tiered_policy(&policy.metadata, raw, errs, |errs| cnp_subject(spec, errs))
}

/// Parses and validates a SegmentPolicy; `None` when any field is invalid.
pub(crate) fn parse_segment_policy(
    policy: &SegmentPolicy,
    errs: &mut Errors,
) -> Option<TieredPolicy> {
    let spec = &policy.spec;
    let ingress = spec.ingress.iter().map(|r| {
        let peers = r.from.iter().map(segment_policy_peer).collect();
        raw_rule(
            r.name.as_deref(),
            r.action,
            peers,
            r.protocols.as_deref(),
            sp_protocol,
        )
    });
    let egress = spec.egress.iter().map(|r| {
        let peers = r.to.iter().map(segment_policy_peer).collect();
        raw_rule(
            r.name.as_deref(),
            r.action,
            peers,
            r.protocols.as_deref(),
            sp_protocol,
        )
    });
    let raw = RawPolicy {
        kind: PolicyKind::SegmentPolicy,
        tier: spec.tier,
        priority: spec.priority,
        audit: spec.mode == netseg_crd::PolicyMode::Audit,
        unique_names: true,
        ingress: ingress.collect(),
        egress: egress.collect(),
    };
    tiered_policy(&policy.metadata, raw, errs, |errs| {
        let names = &spec.subject.segments;
        segment_names(names, "spec.subject.segments", errs).map(Subject::Segments)
    })
}

/// What the two kinds of cluster policy share, as read from the object.
struct RawPolicy<'a> {
    kind: PolicyKind,
    tier: netseg_crd::Tier,
    priority: i32,
    audit: bool,
    /// Whether rule names must be unique per direction (SegmentPolicy's CEL rule).
    unique_names: bool,
    ingress: Vec<RawRule<'a>>,
    egress: Vec<RawRule<'a>>,
}

/// Validates what both kinds share; `subject` reads the kind's subject.
fn tiered_policy(
    meta: &ObjectMeta,
    raw: RawPolicy<'_>,
    errs: &mut Errors,
    subject: impl FnOnce(&mut Errors) -> Option<Subject>,
) -> Option<TieredPolicy> {
    let name = object_name(meta, errs);
    let priority = priority(raw.priority, errs);
    let subject = subject(errs);
    let ingress = rules(raw.ingress, "spec.ingress", "from", raw.unique_names, errs);
    let egress = rules(raw.egress, "spec.egress", "to", raw.unique_names, errs);
    if !errs.is_empty() {
        return None;
    }
    Some(TieredPolicy {
        kind: raw.kind,
        name,
        tier: match raw.tier {
            netseg_crd::Tier::Admin => Tier::Admin,
            netseg_crd::Tier::Baseline => Tier::Baseline,
        },
        priority: priority?,
        audit: raw.audit,
        subject: subject?,
        ingress: ingress?,
        egress: egress?,
    })
}

fn raw_rule<'a, P>(
    name: Option<&'a str>,
    action: RuleAction,
    peers: Vec<RawPeer<'a>>,
    protocols: Option<&'a [P]>,
    protocol: fn(&'a P) -> RawProtocol<'a>,
) -> RawRule<'a> {
    RawRule {
        name,
        action,
        peers,
        protocols: protocols.map(|list| list.iter().map(protocol).collect()),
    }
}

/// Parses and validates a Segment; `None` when any field is invalid.
pub(crate) fn parse_segment(segment: &Segment, errs: &mut Errors) -> Option<SegmentModel> {
    let name = object_name(&segment.metadata, errs);
    let spec = &segment.spec;
    if spec.description.as_ref().is_some_and(|d| d.len() > 1024) {
        errs.invalid(
            "spec.description",
            "(text)",
            "must be at most 1024 characters",
        );
    }
    count("spec.members", spec.members.len(), 1, errs);
    let mut pods = Vec::new();
    let mut networks = Vec::new();
    for (i, member) in spec.members.iter().enumerate() {
        let path = format!("spec.members[{i}]");
        match member_kind(member, &path, errs) {
            Some(Member::Pods(selection)) => pods.push(selection),
            Some(Member::Networks(nets)) => networks.extend(nets),
            None => {}
        }
    }
    let posture = |action: Option<PostureAction>| match action {
        Some(PostureAction::Accept) => Posture::Accept,
        Some(PostureAction::Deny) | None => Posture::Deny,
    };
    let (ingress, egress) = spec
        .posture
        .as_ref()
        .map_or((None, None), |p| (p.ingress, p.egress));
    if !errs.is_empty() {
        return None;
    }
    networks.sort();
    networks.dedup();
    Some(SegmentModel {
        name,
        pods,
        networks,
        posture: [posture(ingress), posture(egress)],
    })
}

enum Member {
    Pods(PodSelection),
    Networks(Vec<ipnetwork::IpNetwork>),
}

fn member_kind(member: &SegmentMember, path: &str, errs: &mut Errors) -> Option<Member> {
    let set = usize::from(member.namespaces.is_some())
        + usize::from(member.pods.is_some())
        + usize::from(member.networks.is_some());
    if set != 1 {
        errs.invalid(
            path,
            set,
            "must set exactly one of namespaces, pods, networks",
        );
        return None;
    }
    if let Some(selector) = &member.namespaces {
        return namespaces_selection(selector, &format!("{path}.namespaces"), errs)
            .map(Member::Pods);
    }
    if let Some(pods) = &member.pods {
        return namespaced_pod(pods, &format!("{path}.pods"), errs).map(Member::Pods);
    }
    networks(
        member.networks.as_deref().unwrap_or_default(),
        &format!("{path}.networks"),
        errs,
    )
    .map(Member::Networks)
}

fn object_name(meta: &ObjectMeta, errs: &mut Errors) -> String {
    let name = meta.name.clone().unwrap_or_default();
    check_object_name(&name, "metadata.name", dns_subdomain_problem, errs);
    name
}

fn priority(priority: i32, errs: &mut Errors) -> Option<u32> {
    match u32::try_from(priority) {
        Ok(p) if priority <= MAX_PRIORITY => Some(p),
        _ => {
            errs.invalid(
                "spec.priority",
                priority,
                "must be between 0 and 1000, inclusive",
            );
            None
        }
    }
}

fn count(path: &str, len: usize, min: usize, errs: &mut Errors) {
    if len < min {
        errs.invalid(path, len, format!("must have at least {min} item(s)"));
    } else if len > MAX_ITEMS {
        errs.invalid(path, len, format!("must have at most {MAX_ITEMS} items"));
    }
}

fn cnp_subject(spec: &netseg_crd::ClusterNetworkPolicySpec, errs: &mut Errors) -> Option<Subject> {
    let subject = &spec.subject;
    match (&subject.namespaces, &subject.pods) {
        (Some(selector), None) => {
            namespaces_selection(selector, "spec.subject.namespaces", errs).map(Subject::Pods)
        }
        (None, Some(pods)) => namespaced_pod(pods, "spec.subject.pods", errs).map(Subject::Pods),
        _ => {
            errs.invalid(
                "spec.subject",
                "(subject)",
                "must set exactly one of namespaces, pods",
            );
            None
        }
    }
}

fn selector(selector: &LabelSelector, path: &str, errs: &mut Errors) -> Option<Selector> {
    parse_selector(selector, path, errs)
}

fn namespaces_selection(
    sel: &LabelSelector,
    path: &str,
    errs: &mut Errors,
) -> Option<PodSelection> {
    Some(PodSelection {
        namespaces: selector(sel, path, errs)?,
        pods: Selector::everything(),
    })
}

fn namespaced_pod(pods: &NamespacedPod, path: &str, errs: &mut Errors) -> Option<PodSelection> {
    let namespaces = match &pods.namespace_selector {
        Some(sel) => selector(sel, &format!("{path}.namespaceSelector"), errs),
        None => Some(Selector::everything()),
    };
    let pods = selector(&pods.pod_selector, &format!("{path}.podSelector"), errs);
    Some(PodSelection {
        namespaces: namespaces?,
        pods: pods?,
    })
}

fn networks(cidrs: &[String], path: &str, errs: &mut Errors) -> Option<Vec<ipnetwork::IpNetwork>> {
    count(path, cidrs.len(), 1, errs);
    let mut parsed = Vec::new();
    for (i, text) in cidrs.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if text.len() > 43 {
            errs.invalid(&at, text, "must be at most 43 characters");
        }
        parsed.push(parse_cidr(text, &at, errs));
    }
    parsed.into_iter().collect()
}

fn segment_names(names: &[String], path: &str, errs: &mut Errors) -> Option<Vec<String>> {
    count(path, names.len(), 1, errs);
    for (i, name) in names.iter().enumerate() {
        check_object_name(name, &format!("{path}[{i}]"), dns_subdomain_problem, errs);
    }
    Some(names.to_vec())
}

/// A peer as read from the object, before its fields are checked.
enum RawPeer<'a> {
    Namespaces(&'a LabelSelector),
    Pods(&'a NamespacedPod),
    Networks(&'a [String]),
    Nodes(&'a LabelSelector),
    Segments(&'a [String]),
    /// Set, but netseg does not implement it: the rule fails closed.
    Unimplemented(&'static str),
    /// No field netseg knows is set (a newer CRD's field).
    Unknown,
    /// More than one field set.
    Several(usize),
}

/// A protocol entry as read from the object.
enum RawProtocol<'a> {
    Port {
        protocol: u8,
        port: &'a ProtocolPort,
        all_ports_allowed: bool,
    },
    Named(&'a str),
    Icmp(u8),
    Unknown,
    Several(usize),
}

struct RawRule<'a> {
    name: Option<&'a str>,
    action: RuleAction,
    peers: Vec<RawPeer<'a>>,
    protocols: Option<Vec<RawProtocol<'a>>>,
}

fn one_of<T>(set: Vec<Option<T>>, unknown: T, several: impl Fn(usize) -> T) -> T {
    let count = set.iter().filter(|s| s.is_some()).count();
    match count {
        0 => unknown,
        1 => set.into_iter().flatten().next().unwrap_or(unknown),
        n => several(n),
    }
}

fn ingress_peer(peer: &ClusterNetworkPolicyIngressPeer) -> RawPeer<'_> {
    one_of(
        vec![
            peer.namespaces.as_ref().map(RawPeer::Namespaces),
            peer.pods.as_ref().map(RawPeer::Pods),
        ],
        RawPeer::Unknown,
        RawPeer::Several,
    )
}

fn egress_peer(peer: &ClusterNetworkPolicyEgressPeer) -> RawPeer<'_> {
    one_of(
        vec![
            peer.namespaces.as_ref().map(RawPeer::Namespaces),
            peer.pods.as_ref().map(RawPeer::Pods),
            peer.networks.as_deref().map(RawPeer::Networks),
            peer.nodes.as_ref().map(RawPeer::Nodes),
            peer.domain_names
                .as_ref()
                .map(|_| RawPeer::Unimplemented("domainNames peers are not implemented")),
        ],
        RawPeer::Unknown,
        RawPeer::Several,
    )
}

fn segment_policy_peer(peer: &SegmentPolicyPeer) -> RawPeer<'_> {
    one_of(
        vec![
            peer.segments.as_deref().map(RawPeer::Segments),
            peer.namespaces.as_ref().map(RawPeer::Namespaces),
            peer.pods.as_ref().map(RawPeer::Pods),
            peer.networks.as_deref().map(RawPeer::Networks),
        ],
        RawPeer::Unknown,
        RawPeer::Several,
    )
}

/// The transport fields both kinds of protocol entry share, as read:
/// `tcp`, `udp`, `sctp` (`{}` is every port only where `all_ports_allowed`)
/// and `destinationNamedPort`.
fn transport_fields<'a>(
    [tcp, udp, sctp]: [Option<&'a ProtocolPort>; 3],
    named: Option<&'a str>,
    all_ports_allowed: bool,
) -> Vec<Option<RawProtocol<'a>>> {
    let port = |protocol, port| RawProtocol::Port {
        protocol,
        port,
        all_ports_allowed,
    };
    vec![
        tcp.map(|p| port(PROTO_TCP, p)),
        udp.map(|p| port(PROTO_UDP, p)),
        sctp.map(|p| port(PROTO_SCTP, p)),
        named.map(RawProtocol::Named),
    ]
}

fn cnp_protocol(protocol: &ClusterNetworkPolicyProtocol) -> RawProtocol<'_> {
    let transports = [&protocol.tcp, &protocol.udp, &protocol.sctp].map(Option::as_ref);
    let named = protocol.destination_named_port.as_deref();
    one_of(
        transport_fields(transports, named, false),
        RawProtocol::Unknown,
        RawProtocol::Several,
    )
}

fn sp_protocol(protocol: &SegmentPolicyProtocol) -> RawProtocol<'_> {
    let transports = [&protocol.tcp, &protocol.udp, &protocol.sctp].map(Option::as_ref);
    let named = protocol.destination_named_port.as_deref();
    let mut fields = transport_fields(transports, named, true);
    fields.push(
        protocol
            .icmp
            .as_ref()
            .map(|_| RawProtocol::Icmp(PROTO_ICMP)),
    );
    fields.push(
        protocol
            .icmpv6
            .as_ref()
            .map(|_| RawProtocol::Icmp(PROTO_ICMPV6)),
    );
    one_of(fields, RawProtocol::Unknown, RawProtocol::Several)
}

fn rules(
    raw: Vec<RawRule<'_>>,
    path: &str,
    peer_field: &str,
    unique_names: bool,
    errs: &mut Errors,
) -> Option<Vec<TieredRule>> {
    if raw.len() > MAX_ITEMS {
        errs.invalid(
            path,
            raw.len(),
            format!("must have at most {MAX_ITEMS} rules"),
        );
    }
    let mut parsed = Vec::new();
    for (i, rule) in raw.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if unique_names
            && let Some(name) = rule.name
            && raw[..i].iter().any(|r| r.name == Some(name))
        {
            errs.invalid(
                format!("{at}.name"),
                name,
                "must be unique among the rules of the direction",
            );
        }
        parsed.push(rule_model(
            rule,
            u32::try_from(i).unwrap_or(u32::MAX),
            &at,
            peer_field,
            errs,
        ));
    }
    parsed.into_iter().collect()
}

fn rule_model(
    rule: &RawRule<'_>,
    index: u32,
    path: &str,
    peer_field: &str,
    errs: &mut Errors,
) -> Option<TieredRule> {
    if rule.name.is_some_and(|n| n.len() > MAX_RULE_NAME) {
        errs.invalid(
            format!("{path}.name"),
            "(name)",
            "must be at most 100 characters",
        );
    }
    let peers_path = format!("{path}.{peer_field}");
    count(&peers_path, rule.peers.len(), 1, errs);
    let mut fails_closed = Vec::new();
    let mut peers = Vec::new();
    let mut has_networks = false;
    for (i, peer) in rule.peers.iter().enumerate() {
        let at = format!("{peers_path}[{i}]");
        match peer {
            RawPeer::Namespaces(sel) => {
                peers.extend(
                    namespaces_selection(sel, &format!("{at}.namespaces"), errs)
                        .map(|s| TieredPeer::Peer(s.as_peer())),
                );
            }
            RawPeer::Pods(pods) => {
                peers.extend(
                    namespaced_pod(pods, &format!("{at}.pods"), errs)
                        .map(|s| TieredPeer::Peer(s.as_peer())),
                );
            }
            RawPeer::Networks(cidrs) => {
                has_networks = true;
                let nets = networks(cidrs, &format!("{at}.networks"), errs).unwrap_or_default();
                peers.extend(nets.into_iter().map(|cidr| {
                    TieredPeer::Peer(PeerModel::Block(IpBlockModel {
                        cidr,
                        except: Vec::new(),
                        pods_excluded: false,
                    }))
                }));
            }
            RawPeer::Nodes(sel) => {
                has_networks = true;
                let at = format!("{at}.nodes");
                peers.extend(
                    selector(sel, &at, errs).map(|s| TieredPeer::Peer(PeerModel::Nodes(s))),
                );
            }
            RawPeer::Segments(names) => {
                let field = format!("{at}.segments");
                if let Some(names) = segment_names(names, &field, errs) {
                    peers.extend(names.into_iter().enumerate().map(|(k, name)| {
                        TieredPeer::Segment {
                            name,
                            field: format!("{field}[{k}]"),
                        }
                    }));
                }
            }
            RawPeer::Unimplemented(reason) => fails_closed.push(FailClosed {
                field: at,
                reason: reason.to_string(),
            }),
            RawPeer::Unknown => fails_closed.push(FailClosed {
                field: at,
                reason: "sets no peer field netseg knows".to_string(),
            }),
            RawPeer::Several(n) => errs.invalid(&at, n, "must set exactly one peer field"),
        }
    }
    let ports = match &rule.protocols {
        None => None,
        Some(protocols) => {
            let at = format!("{path}.protocols");
            count(&at, protocols.len(), 1, errs);
            let mut ports = Vec::new();
            for (i, protocol) in protocols.iter().enumerate() {
                let at = format!("{at}[{i}]");
                match protocol_ports(protocol, &at, errs) {
                    Ok(models) => {
                        if has_networks && matches!(protocol, RawProtocol::Named(_)) {
                            errs.forbidden(&at, "networks and nodes peers cannot be set with destinationNamedPort since there are no named ports for networks or nodes");
                        }
                        ports.extend(models);
                    }
                    Err(Some(reason)) => fails_closed.push(FailClosed {
                        field: at,
                        reason: reason.to_string(),
                    }),
                    Err(None) => {}
                }
            }
            Some(ports)
        }
    };
    Some(TieredRule {
        index,
        name: rule.name.map(str::to_string),
        action: match rule.action {
            RuleAction::Accept => Action::Accept,
            RuleAction::Deny => Action::Deny,
            RuleAction::Pass => Action::Pass,
        },
        fails_closed,
        peers,
        ports,
    })
}

/// The port models of a protocol entry; `Err(Some(why))` when netseg does
/// not know it (the rule fails closed), `Err(None)` when it is invalid.
fn protocol_ports(
    protocol: &RawProtocol<'_>,
    path: &str,
    errs: &mut Errors,
) -> Result<Vec<PortModel>, Option<&'static str>> {
    match protocol {
        RawProtocol::Port {
            protocol,
            port,
            all_ports_allowed,
        } => {
            let name = match *protocol {
                PROTO_TCP => "tcp",
                PROTO_UDP => "udp",
                _ => "sctp",
            };
            let at = format!("{path}.{name}");
            match &port.destination_port {
                None if *all_ports_allowed => Ok(vec![PortModel::AllPorts(*protocol)]),
                None => {
                    errs.required(format!("{at}.destinationPort"));
                    Err(None)
                }
                Some(port) => port_range(port, &format!("{at}.destinationPort"), errs)
                    .map(|(first, last)| {
                        vec![PortModel::Range {
                            protocol: *protocol,
                            first,
                            last,
                        }]
                    })
                    .ok_or(None),
            }
        }
        RawProtocol::Named(name) => {
            if name.is_empty() {
                errs.required(format!("{path}.destinationNamedPort"));
                return Err(None);
            }
            // The container port that has the name also fixes the protocol.
            Ok([PROTO_TCP, PROTO_UDP, PROTO_SCTP]
                .map(|protocol| PortModel::Named {
                    protocol,
                    name: name.to_string(),
                })
                .to_vec())
        }
        RawProtocol::Icmp(protocol) => Ok(vec![PortModel::AllPorts(*protocol)]),
        RawProtocol::Unknown => Err(Some("sets no protocol field netseg knows")),
        RawProtocol::Several(n) => {
            errs.invalid(path, n, "must set exactly one protocol field");
            Err(None)
        }
    }
}

fn port_range(port: &Port, path: &str, errs: &mut Errors) -> Option<(u16, u16)> {
    let number = |value: i32, at: &str, errs: &mut Errors| match u16::try_from(value) {
        Ok(p) if p != 0 => Some(p),
        _ => {
            errs.invalid(at, value, "must be between 1 and 65535, inclusive");
            None
        }
    };
    match (port.number, &port.range) {
        (Some(n), None) => number(n, &format!("{path}.number"), errs).map(|p| (p, p)),
        (None, Some(range)) => {
            let start = number(range.start, &format!("{path}.range.start"), errs);
            let end = number(range.end, &format!("{path}.range.end"), errs);
            let (start, end) = (start?, end?);
            if start >= end {
                errs.invalid(
                    format!("{path}.range"),
                    format!("{start}-{end}"),
                    "Start port must be less than End port",
                );
                return None;
            }
            Some((start, end))
        }
        _ => {
            errs.invalid(path, "(port)", "must set exactly one of number, range");
            None
        }
    }
}
