//! NetworkPolicy in a normalized, validated form. Parsing and validation are
//! one pass: every problem is reported as a [`FieldError`](super::FieldError)
//! and an object with any problem yields no model.

use ipnetwork::IpNetwork;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::errors::Errors;
use super::names::{dns_label_problem, dns_subdomain_problem, port_name_problem};
use super::selector::{Selector, parse_selector};
use crate::ports::protocol_number;
use crate::types::Direction;

/// A valid NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PolicyModel {
    pub namespace: String,
    pub name: String,
    /// Selects the pods of `namespace` the policy applies to.
    pub selector: Selector,
    /// `None` when `Ingress` is not among the effective policy types (the
    /// rules, if any, are then ignored, as in Kubernetes).
    pub ingress: Option<Vec<RuleModel>>,
    /// `None` when `Egress` is not among the effective policy types.
    pub egress: Option<Vec<RuleModel>>,
}

impl PolicyModel {
    /// The rules of `direction`, if the policy isolates that direction.
    pub fn rules(&self, direction: Direction) -> Option<&[RuleModel]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// One ingress or egress rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RuleModel {
    /// Position in `spec.ingress` / `spec.egress`.
    pub index: u32,
    /// `None`: every peer (the field was absent or empty).
    pub peers: Option<Vec<PeerModel>>,
    /// `None`: every protocol and port (the field was absent or empty).
    pub ports: Option<Vec<PortModel>>,
}

/// Which namespaces a pod peer looks in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum NamespaceScope {
    /// Only the policy's own namespace (the peer has no namespaceSelector).
    Own(String),
    Selected(Selector),
}

/// A rule peer, in a form where equal peers compare equal.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PeerModel {
    /// Pods matching `pods` in the namespaces of `namespaces`.
    Pods {
        namespaces: NamespaceScope,
        pods: Selector,
    },
    /// Addresses in `cidr` and in none of `except`.
    Block(IpBlockModel),
    /// The addresses of the Node objects these labels select.
    Nodes(Selector),
}

/// An ipBlock with normalized prefixes (host bits cleared).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct IpBlockModel {
    pub cidr: IpNetwork,
    /// Sorted, deduplicated, each a strict subset of `cidr`.
    pub except: Vec<IpNetwork>,
    /// A Segment's `networks` members: pod addresses in the block are not
    /// in it (pods are members by selector only).
    pub pods_excluded: bool,
}

impl IpBlockModel {
    /// Whether `addr` is in the block, `held_by_pod` saying whether a pod holds it.
    pub fn contains(&self, addr: std::net::IpAddr, held_by_pod: bool) -> bool {
        self.admits_holder(held_by_pod)
            && self.cidr.contains(addr)
            && !self.except.iter().any(|e| e.contains(addr))
    }

    /// Whether an address in the block is in it, `held_by_pod` saying
    /// whether a pod holds it.
    pub fn admits_holder(&self, held_by_pod: bool) -> bool {
        !(self.pods_excluded && held_by_pod)
    }
}

/// One entry of a rule's `ports`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PortModel {
    /// Every port of the protocol.
    AllPorts(u8),
    /// `first..=last` of the protocol.
    Range { protocol: u8, first: u16, last: u16 },
    /// A container port name, resolved per pod.
    Named { protocol: u8, name: String },
}

/// The network address of `net` with the host bits cleared.
pub(crate) fn normalize(net: IpNetwork) -> IpNetwork {
    IpNetwork::new(net.network(), net.prefix()).unwrap_or(net)
}

/// Parses a CIDR; unlike `IpNetwork::from_str`, a bare address is rejected.
pub(crate) fn parse_cidr(text: &str, path: &str, errs: &mut Errors) -> Option<IpNetwork> {
    if !text.contains('/') {
        errs.invalid(path, text, "must be a CIDR (address/prefix length)");
        return None;
    }
    match text.parse::<IpNetwork>() {
        Ok(net) => Some(normalize(net)),
        Err(_) => {
            errs.invalid(path, text, "must be a valid CIDR");
            None
        }
    }
}

fn parse_ip_block(block: &IPBlock, path: &str, errs: &mut Errors) -> Option<IpBlockModel> {
    let cidr = parse_cidr(&block.cidr, &format!("{path}.cidr"), errs);
    let mut except = Vec::new();
    for (i, text) in block.except.iter().flatten().enumerate() {
        let at = format!("{path}.except[{i}]");
        let Some(net) = parse_cidr(text, &at, errs) else {
            continue;
        };
        let strict_subset = cidr.is_some_and(|c| {
            c.is_ipv4() == net.is_ipv4() && c.prefix() < net.prefix() && c.contains(net.network())
        });
        if cidr.is_some() && !strict_subset {
            errs.invalid(&at, text, "must be a strict subset of cidr");
        }
        except.push(net);
    }
    except.sort();
    except.dedup();
    Some(IpBlockModel {
        cidr: cidr?,
        except,
        pods_excluded: false,
    })
}

fn parse_peer(
    peer: &NetworkPolicyPeer,
    namespace: &str,
    path: &str,
    errs: &mut Errors,
) -> Option<PeerModel> {
    let has_selector = peer.pod_selector.is_some() || peer.namespace_selector.is_some();
    match (&peer.ip_block, has_selector) {
        (Some(_), true) => {
            errs.forbidden(
                path,
                "ipBlock may not be combined with podSelector or namespaceSelector",
            );
            None
        }
        (Some(block), false) => {
            parse_ip_block(block, &format!("{path}.ipBlock"), errs).map(PeerModel::Block)
        }
        (None, false) => {
            errs.invalid(
                path,
                "{}",
                "must specify one of podSelector, namespaceSelector, ipBlock",
            );
            None
        }
        (None, true) => {
            let pods = match &peer.pod_selector {
                Some(sel) => parse_selector(sel, &format!("{path}.podSelector"), errs),
                None => Some(Selector::everything()),
            };
            let namespaces = match &peer.namespace_selector {
                Some(sel) => parse_selector(sel, &format!("{path}.namespaceSelector"), errs)
                    .map(NamespaceScope::Selected),
                None => Some(NamespaceScope::Own(namespace.to_string())),
            };
            Some(PeerModel::Pods {
                namespaces: namespaces?,
                pods: pods?,
            })
        }
    }
}

pub(crate) fn parse_port_number(value: i32, path: &str, errs: &mut Errors) -> Option<u16> {
    match u16::try_from(value) {
        Ok(port) if port != 0 => Some(port),
        _ => {
            errs.invalid(path, value, "must be between 1 and 65535, inclusive");
            None
        }
    }
}

/// A port's protocol; TCP when absent.
fn parse_protocol(protocol: Option<&str>, path: &str, errs: &mut Errors) -> Option<u8> {
    let name = protocol.unwrap_or("TCP");
    let number = protocol_number(name);
    if number.is_none() {
        errs.unsupported(format_args!("{path}.protocol"), name, "TCP, UDP, SCTP");
    }
    number
}

fn parse_port(port: &NetworkPolicyPort, path: &str, errs: &mut Errors) -> Option<PortModel> {
    let protocol = parse_protocol(port.protocol.as_deref(), path, errs);
    let end_path = format!("{path}.endPort");
    let model = match (&port.port, port.end_port) {
        (None, None) => PortModel::AllPorts(protocol?),
        (None, Some(_)) => {
            errs.forbidden(end_path, "may not be specified when port is not specified");
            return None;
        }
        (Some(IntOrString::String(_)), Some(_)) => {
            errs.forbidden(end_path, "may not be specified when port is a named port");
            return None;
        }
        (Some(IntOrString::String(name)), None) => {
            if let Some(reason) = port_name_problem(name) {
                errs.invalid(format_args!("{path}.port"), name, reason);
            }
            PortModel::Named {
                protocol: protocol?,
                name: name.clone(),
            }
        }
        (Some(IntOrString::Int(first)), end) => {
            let first = parse_port_number(*first, &format!("{path}.port"), errs)?;
            let last = match end {
                None => first,
                Some(end) => parse_port_number(end, &end_path, errs)?,
            };
            if last < first {
                errs.invalid(
                    end_path,
                    last,
                    format!("must be greater than or equal to port ({first})"),
                );
                return None;
            }
            PortModel::Range {
                protocol: protocol?,
                first,
                last,
            }
        }
    };
    Some(model)
}

/// Peers or ports of a rule: an absent or empty list means "all" (`None`).
fn parse_list<T, M>(
    items: Option<&[T]>,
    path: &str,
    errs: &mut Errors,
    mut parse: impl FnMut(&T, &str, &mut Errors) -> Option<M>,
) -> Option<Option<Vec<M>>> {
    let items = items.unwrap_or_default();
    if items.is_empty() {
        return Some(None);
    }
    let parsed: Vec<Option<M>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| parse(item, &format!("{path}[{i}]"), errs))
        .collect();
    parsed.into_iter().collect::<Option<Vec<M>>>().map(Some)
}

struct RawRule<'a> {
    peers: Option<&'a [NetworkPolicyPeer]>,
    ports: Option<&'a [NetworkPolicyPort]>,
}

fn parse_rules(
    rules: &[RawRule<'_>],
    namespace: &str,
    path: &str,
    peer_field: &str,
    errs: &mut Errors,
) -> Option<Vec<RuleModel>> {
    let mut parsed = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let peers = parse_list(
            rule.peers,
            &format!("{at}.{peer_field}"),
            errs,
            |p, path, errs| parse_peer(p, namespace, path, errs),
        );
        let ports = parse_list(rule.ports, &format!("{at}.ports"), errs, parse_port);
        // Indices fit: a rule list longer than u32::MAX cannot be in memory twice.
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        if let (Some(peers), Some(ports)) = (peers, ports) {
            parsed.push(RuleModel {
                index,
                peers,
                ports,
            });
        }
    }
    (parsed.len() == rules.len()).then_some(parsed)
}

/// Which directions the policy isolates: `(ingress, egress)`.
fn effective_types(
    policy_types: Option<&[String]>,
    has_egress_rules: bool,
    errs: &mut Errors,
) -> (bool, bool) {
    let types = policy_types.unwrap_or_default();
    if types.len() > 2 {
        errs.invalid(
            "spec.policyTypes",
            types.join(","),
            "may not specify more than two policyTypes",
        );
    }
    for (i, t) in types.iter().enumerate() {
        if t != "Ingress" && t != "Egress" {
            errs.unsupported(format_args!("spec.policyTypes[{i}]"), t, "Ingress, Egress");
        }
    }
    if types.is_empty() {
        // Defaulting as in the API server: an absent or empty list means
        // Ingress, plus Egress when there are egress rules. `egress: []` is
        // dropped on the wire (omitempty), so it does not count as present.
        (true, has_egress_rules)
    } else {
        (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        )
    }
}

/// Parses and validates a NetworkPolicy; `None` when any field is invalid.
pub(crate) fn parse_policy(policy: &NetworkPolicy, errs: &mut Errors) -> Option<PolicyModel> {
    let meta = &policy.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_default();
    check_object_name(&name, "metadata.name", dns_subdomain_problem, errs);
    check_object_name(&namespace, "metadata.namespace", dns_label_problem, errs);
    let default_spec = Default::default();
    let spec = policy.spec.as_ref().unwrap_or(&default_spec);
    let selector = match &spec.pod_selector {
        Some(sel) => parse_selector(sel, "spec.podSelector", errs),
        None => Some(Selector::everything()),
    };
    let egress_rules = spec.egress.as_deref().unwrap_or_default();
    let (isolates_ingress, isolates_egress) =
        effective_types(spec.policy_types.as_deref(), !egress_rules.is_empty(), errs);
    let ingress: Vec<RawRule<'_>> = spec
        .ingress
        .iter()
        .flatten()
        .map(|r| RawRule {
            peers: r.from.as_deref(),
            ports: r.ports.as_deref(),
        })
        .collect();
    let egress: Vec<RawRule<'_>> = egress_rules
        .iter()
        .map(|r| RawRule {
            peers: r.to.as_deref(),
            ports: r.ports.as_deref(),
        })
        .collect();
    // Rules of a direction the policy does not isolate are still validated.
    let ingress = parse_rules(&ingress, &namespace, "spec.ingress", "from", errs);
    let egress = parse_rules(&egress, &namespace, "spec.egress", "to", errs);
    if !errs.is_empty() {
        return None;
    }
    Some(PolicyModel {
        namespace,
        name,
        selector: selector?,
        ingress: ingress.filter(|_| isolates_ingress),
        egress: egress.filter(|_| isolates_egress),
    })
}

/// Checks a required object name or namespace.
pub(crate) fn check_object_name(
    value: &str,
    path: &str,
    syntax: fn(&str) -> Option<&'static str>,
    errs: &mut Errors,
) {
    if value.is_empty() {
        errs.required(path);
    } else if let Some(reason) = syntax(value) {
        errs.invalid(path, value, reason);
    }
}
