//! The names of a flow's parties, rendered as JSON strings once per policy
//! publication: writing a record then copies bytes instead of formatting
//! and escaping names hundreds of thousands of times a second.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Display,
    net::IpAddr,
};

use netseg_policy::{PodRef, RuleRef};

/// A JSON string, quoted and escaped by serde_json.
#[derive(Debug)]
pub(super) struct JsonText(Box<str>);

impl JsonText {
    fn of(text: impl Display) -> Self {
        Self(
            serde_json::Value::String(text.to_string())
                .to_string()
                .into(),
        )
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The policy rule a compiled rule id stands for, field by field.
#[derive(Debug)]
pub(super) struct RuleNames {
    /// `NetworkPolicy app/db-from-web ingress[1]`.
    pub(super) decided_by: JsonText,
    pub(super) kind: JsonText,
    pub(super) namespace: JsonText,
    pub(super) name: JsonText,
    /// `ingress[1]`: the rule within the policy.
    pub(super) within_policy: JsonText,
}

impl RuleNames {
    fn of(rule: &RuleRef) -> Self {
        Self {
            decided_by: JsonText::of(rule),
            kind: JsonText::of(&rule.kind),
            namespace: JsonText::of(&rule.namespace),
            name: JsonText::of(&rule.name),
            within_policy: JsonText::of(format_args!("{}[{}]", rule.direction, rule.index)),
        }
    }
}

/// What the exporter needs to name the parties of a flow; replaced after
/// every policy publication and every change of the local endpoints.
#[derive(Debug, Default)]
pub struct FlowContext {
    /// What the names were rendered from, to tell whether a new publication
    /// changes any (rendering them all takes milliseconds at cluster scale).
    endpoints: BTreeMap<u32, PodRef>,
    pod_refs: BTreeMap<IpAddr, PodRef>,
    rule_refs: BTreeMap<u32, RuleRef>,
    pub(super) endpoint_names: HashMap<u32, JsonText>,
    pub(super) pods: HashMap<IpAddr, JsonText>,
    pub(super) rules: HashMap<u32, RuleNames>,
    pub(super) node_addresses: Vec<IpAddr>,
}

impl FlowContext {
    /// `endpoints`: the local pods by the ifindex of their host-side
    /// interface; `pods`: every known pod address; `rules`: the compiled
    /// rule ids.
    pub fn new(
        endpoints: BTreeMap<u32, PodRef>,
        pods: &BTreeMap<IpAddr, PodRef>,
        rules: &BTreeMap<u32, RuleRef>,
        node_addresses: Vec<IpAddr>,
    ) -> Self {
        Self {
            endpoint_names: endpoints
                .iter()
                .map(|(&ifindex, pod)| (ifindex, JsonText::of(pod)))
                .collect(),
            endpoints,
            pods: pods
                .iter()
                .map(|(&ip, pod)| (ip, JsonText::of(pod)))
                .collect(),
            rules: rules
                .iter()
                .map(|(&id, rule)| (id, RuleNames::of(rule)))
                .collect(),
            node_addresses,
            pod_refs: pods.clone(),
            rule_refs: rules.clone(),
        }
    }

    /// Whether this context already names exactly these parties (the
    /// arguments of [`FlowContext::new`]).
    pub fn names_the_same(
        &self,
        endpoints: &BTreeMap<u32, PodRef>,
        pods: &BTreeMap<IpAddr, PodRef>,
        rules: &BTreeMap<u32, RuleRef>,
        node_addresses: &[IpAddr],
    ) -> bool {
        self.endpoints == *endpoints
            && self.pod_refs == *pods
            && self.rule_refs == *rules
            && self.node_addresses == node_addresses
    }
}
