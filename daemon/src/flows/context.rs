//! The names of a flow's parties, rendered as JSON once per policy
//! publication that changes them: writing a record then copies bytes
//! instead of formatting and escaping names hundreds of thousands of times
//! a second. A pod's names are rendered when it appears or changes, not on
//! every publication: the compiler keeps a pod's [`PodParty`] while nothing
//! it names changed, and the context keeps its rendering with it.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Display,
    net::IpAddr,
    str::FromStr,
    sync::Arc,
};

use netseg_policy::{
    Action, Band, Compiled, Decider, PodParty, PodRef, PolicyKind, SegmentNetworks, Verdict,
    label_key_problem,
};

/// A JSON value (mostly a string), rendered and escaped by serde_json.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct JsonText(Box<str>);

impl JsonText {
    fn of(text: impl Display) -> Self {
        Self::value(&text.to_string())
    }

    fn value(value: &(impl serde::Serialize + ?Sized)) -> Self {
        Self(
            serde_json::to_string(value)
                .expect("strings, maps of strings and lists of strings serialize")
                .into(),
        )
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// What a compiled verdict id stands for, field by field.
#[derive(Debug)]
pub(super) struct VerdictNames {
    /// `NetworkPolicy app/db-from-web ingress[1] (Accept)`.
    pub(super) decided_by: JsonText,
    pub(super) band: Option<JsonText>,
    pub(super) kind: Option<JsonText>,
    /// `None` for cluster-scoped kinds.
    pub(super) namespace: Option<JsonText>,
    pub(super) name: Option<JsonText>,
    /// `ingress[1] "name"`: the rule within the policy.
    pub(super) within_policy: Option<JsonText>,
    pub(super) action: Option<JsonText>,
    /// The Pass rules that sent the connection on, `; `-separated.
    pub(super) passed_by: Option<JsonText>,
    /// `audit-would-allow` or `audit-would-deny`, when the Audit-mode
    /// policies would decide otherwise.
    pub(super) audit: Option<&'static str>,
    /// What decides with the Audit-mode policies enforced.
    pub(super) audit_by: Option<JsonText>,
}

impl VerdictNames {
    fn of(verdict: &Verdict) -> Self {
        let rule = verdict.rule();
        let (band, kind, namespace) = match &verdict.decided_by {
            Decider::Rule(rule) => (
                Some(JsonText::of(rule.band)),
                Some(JsonText::of(rule.kind)),
                (!rule.namespace.is_empty()).then(|| JsonText::of(&rule.namespace)),
            ),
            Decider::Isolation { namespace, .. } => (
                Some(JsonText::of(Band::NetworkPolicy)),
                Some(JsonText::of(PolicyKind::NetworkPolicy)),
                Some(JsonText::of(namespace)),
            ),
            Decider::NodeTraffic | Decider::Default => (None, None, None),
        };
        let action = match (&verdict.decided_by, rule) {
            (_, Some(rule)) => Some(JsonText::of(rule.action)),
            (Decider::Isolation { .. }, None) => Some(JsonText::of(Action::Deny)),
            _ => None,
        };
        let passed_by = (!verdict.passed_by.is_empty()).then(|| {
            let passes: Vec<String> = verdict.passed_by.iter().map(ToString::to_string).collect();
            JsonText::of(passes.join("; "))
        });
        let audit = verdict.audit.as_deref();
        // The default action as records without a Pass trail or audit
        // difference name it.
        let decider = |decider: &Decider, allow: bool| match decider {
            Decider::Default if allow => JsonText::of("default-allow"),
            Decider::Default => JsonText::of("default-deny"),
            decider => JsonText::of(decider),
        };
        let decided_by = decider(&verdict.decided_by, verdict.allow);
        Self {
            decided_by,
            band,
            kind,
            namespace,
            name: rule.map(|r| JsonText::of(&r.name)),
            within_policy: rule.map(|r| JsonText::of(r.within_policy())),
            action,
            passed_by,
            audit: audit.map(|a| {
                if a.allow {
                    "audit-would-allow"
                } else {
                    "audit-would-deny"
                }
            }),
            audit_by: audit.map(|a| decider(&a.decided_by, a.allow)),
        }
    }
}

/// One end of a flow as records name it (see `schema::Party`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct PartyNames {
    /// `"namespace/name"` or `"node"`; `None` for an address that is no pod.
    pub(super) pod: Option<JsonText>,
    /// `"Kind/name"` of a pod's controller.
    pub(super) workload: Option<JsonText>,
    /// A pod's labels of the keys the operator chose: `{"app":"web"}`.
    pub(super) labels: Option<JsonText>,
    /// The Segments of the party: `["front","web"]`.
    pub(super) segments: Option<JsonText>,
}

impl PartyNames {
    fn pod(party: &PodParty, labels: &FlowLabels) -> Self {
        Self {
            pod: Some(JsonText::of(&party.pod)),
            workload: party.workload.as_ref().map(JsonText::of),
            labels: Some(JsonText::value(&labels.of(party))),
            segments: Some(JsonText::value(&party.segments)),
        }
    }

    /// The node (`pod` `Some`) or an address we know nothing of but the
    /// Segments whose networks hold it.
    fn address(pod: Option<&str>, segments: &[Arc<str>]) -> Self {
        Self {
            pod: pod.map(JsonText::of),
            segments: Some(JsonText::value(segments)),
            ..Self::default()
        }
    }
}

/// The label keys whose values flow records carry (`--flow-labels`):
/// a few chosen keys keep records small and free of labels nobody asked
/// to ship.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowLabels(Vec<String>);

impl FlowLabels {
    /// The keys carried unless the operator says otherwise.
    pub const DEFAULT: &str = "app,app.kubernetes.io/name";

    /// `pod`'s labels of these keys.
    fn of<'a>(&'a self, pod: &'a PodParty) -> BTreeMap<&'a str, &'a str> {
        self.0
            .iter()
            .filter_map(|key| Some((key.as_str(), pod.labels.get(key)?.as_str())))
            .collect()
    }
}

impl Default for FlowLabels {
    fn default() -> Self {
        Self::from_str(Self::DEFAULT).expect("the default keys are label keys")
    }
}

/// A `--flow-labels` entry that is no label key.
#[derive(Debug, thiserror::Error)]
#[error("{key:?} is not a label key: it {reason}")]
pub struct NotALabelKey {
    key: String,
    reason: &'static str,
}

impl FromStr for FlowLabels {
    type Err = NotALabelKey;

    /// A comma-separated list of label keys; the empty string is none.
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut keys = Vec::new();
        for key in list.split(',').map(str::trim).filter(|key| !key.is_empty()) {
            if let Some(reason) = label_key_problem(key) {
                let key = key.to_owned();
                return Err(NotALabelKey { key, reason });
            }
            keys.push(key.to_owned());
        }
        keys.sort();
        keys.dedup();
        Ok(Self(keys))
    }
}

/// What a [`FlowContext`] names the parties of flows from.
pub struct Naming<'a> {
    /// The local pods by the ifindex of their host-side interface.
    pub endpoints: &'a BTreeMap<u32, PodRef>,
    /// Every pod address, the Segments' networks and the verdict ids.
    pub compiled: &'a Compiled,
    pub node_addresses: &'a [IpAddr],
    pub labels: &'a FlowLabels,
}

/// What the exporter needs to name the parties of a flow; replaced after
/// every policy publication and every change of the local endpoints.
#[derive(Debug, Default)]
pub struct FlowContext {
    /// What the names were rendered from, to tell whether a new publication
    /// changes any (rendering them all takes milliseconds at cluster scale).
    endpoints: BTreeMap<u32, PodRef>,
    labels: FlowLabels,
    verdicts: BTreeMap<u32, Verdict>,
    segment_networks: SegmentNetworks,
    /// Every pod address with its pod and that pod's names.
    pod_parties: BTreeMap<IpAddr, (Arc<PodParty>, Arc<PartyNames>)>,
    pub(super) endpoint_names: HashMap<u32, Arc<JsonText>>,
    pods: HashMap<IpAddr, Arc<PartyNames>>,
    pub(super) verdict_names: HashMap<u32, Arc<VerdictNames>>,
    node: Vec<(IpAddr, Arc<PartyNames>)>,
    /// An address no pod holds, in each of `segment_networks` (the same order).
    in_network: Vec<Arc<PartyNames>>,
    stranger: Arc<PartyNames>,
}

impl FlowContext {
    /// The names of `naming`'s parties. The pods `previous` named are
    /// named as it did while the compiler hands out the same party.
    pub fn new(naming: &Naming<'_>, previous: &FlowContext) -> Self {
        let compiled = naming.compiled;
        let pod_parties = pod_names(naming, previous);
        let pods = (pod_parties.iter())
            .map(|(&ip, (_, names))| (ip, Arc::clone(names)))
            .collect();
        let networks = compiled.segment_networks.entries();
        let node = (naming.node_addresses.iter())
            .map(|&ip| {
                let segments = compiled.segment_networks.segments_of(ip);
                (ip, Arc::new(PartyNames::address(Some("node"), segments)))
            })
            .collect();
        Self {
            endpoint_names: (naming.endpoints.iter())
                .map(|(&ifindex, pod)| (ifindex, Arc::new(JsonText::of(pod))))
                .collect(),
            endpoints: naming.endpoints.clone(),
            labels: naming.labels.clone(),
            verdict_names: (compiled.verdicts.iter())
                .map(|(&id, verdict)| (id, Arc::new(VerdictNames::of(verdict))))
                .collect(),
            verdicts: compiled.verdicts.clone(),
            segment_networks: compiled.segment_networks.clone(),
            pod_parties,
            pods,
            node,
            in_network: (networks.iter())
                .map(|(_, segments)| Arc::new(PartyNames::address(None, segments)))
                .collect(),
            stranger: Arc::new(PartyNames::address(None, &[])),
        }
    }

    /// The party at `ip`: a pod, the node, or an address no pod holds.
    pub(super) fn party(&self, ip: IpAddr) -> &Arc<PartyNames> {
        if let Some(pod) = self.pods.get(&ip) {
            return pod;
        }
        if let Some((_, node)) = self.node.iter().find(|(address, _)| *address == ip) {
            return node;
        }
        match self.segment_networks.position(ip) {
            Some(network) => &self.in_network[network],
            None => &self.stranger,
        }
    }

    /// Whether this context already names exactly `naming`'s parties.
    pub fn names_the_same(&self, naming: &Naming<'_>) -> bool {
        let compiled = naming.compiled;
        self.endpoints == *naming.endpoints
            && self.labels == *naming.labels
            && self.node.iter().map(|(ip, _)| ip).eq(naming.node_addresses)
            && self.segment_networks == compiled.segment_networks
            && self.verdicts == compiled.verdicts
            && (self.pod_parties.iter().map(|(ip, (party, _))| (ip, party)))
                .eq(&compiled.pod_addresses)
    }
}

/// Every pod address with its pod and that pod's names: those `previous`
/// rendered of the same party, the others rendered now (once per pod, for
/// all of its addresses).
fn pod_names(
    naming: &Naming<'_>,
    previous: &FlowContext,
) -> BTreeMap<IpAddr, (Arc<PodParty>, Arc<PartyNames>)> {
    let same_labels = previous.labels == *naming.labels;
    let mut rendered: HashMap<*const PodParty, Arc<PartyNames>> = HashMap::new();
    let mut before = previous.pod_parties.iter().peekable();
    let mut names = |ip: &IpAddr, party: &Arc<PodParty>| {
        while before.next_if(|(old, _)| *old < ip).is_some() {}
        if let Some((_, (old, names))) = before.next_if(|(old, _)| *old == ip)
            && same_labels
            && Arc::ptr_eq(old, party)
        {
            return Arc::clone(names);
        }
        let names = rendered
            .entry(Arc::as_ptr(party))
            .or_insert_with(|| Arc::new(PartyNames::pod(party, naming.labels)));
        Arc::clone(names)
    };
    (naming.compiled.pod_addresses.iter())
        .map(|(ip, party)| (*ip, (Arc::clone(party), names(ip, party))))
        .collect()
}

#[cfg(test)]
mod tests;
