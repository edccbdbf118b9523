//! The names of a flow's parties, rendered as JSON strings once per policy
//! publication: writing a record then copies bytes instead of formatting
//! and escaping names hundreds of thousands of times a second.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Display,
    net::IpAddr,
    sync::Arc,
};

use netseg_policy::{Action, Band, Decider, PodRef, PolicyKind, Verdict};

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
    /// `"namespace/name"` or `"node"`; `None` for an address we know nothing of.
    pub(super) pod: Option<JsonText>,
    pub(super) workload: Option<JsonText>,
    pub(super) labels: Option<JsonText>,
    pub(super) segments: Option<JsonText>,
}

impl PartyNames {
    fn pod(pod: &PodRef) -> Self {
        Self {
            pod: Some(JsonText::of(pod)),
            ..Self::default()
        }
    }

    fn node() -> Self {
        Self {
            pod: Some(JsonText::of("node")),
            ..Self::default()
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
    verdicts: BTreeMap<u32, Verdict>,
    pub(super) endpoint_names: HashMap<u32, Arc<JsonText>>,
    pods: HashMap<IpAddr, Arc<PartyNames>>,
    pub(super) verdict_names: HashMap<u32, Arc<VerdictNames>>,
    node_addresses: Vec<IpAddr>,
    node: Arc<PartyNames>,
    stranger: Arc<PartyNames>,
}

impl FlowContext {
    /// `endpoints`: the local pods by the ifindex of their host-side
    /// interface; `pods`: every known pod address; `verdicts`: the
    /// compiled verdict ids.
    pub fn new(
        endpoints: BTreeMap<u32, PodRef>,
        pods: &BTreeMap<IpAddr, PodRef>,
        verdicts: &BTreeMap<u32, Verdict>,
        node_addresses: Vec<IpAddr>,
    ) -> Self {
        Self {
            endpoint_names: endpoints
                .iter()
                .map(|(&ifindex, pod)| (ifindex, Arc::new(JsonText::of(pod))))
                .collect(),
            endpoints,
            pods: pods
                .iter()
                .map(|(&ip, pod)| (ip, Arc::new(PartyNames::pod(pod))))
                .collect(),
            verdict_names: verdicts
                .iter()
                .map(|(&id, verdict)| (id, Arc::new(VerdictNames::of(verdict))))
                .collect(),
            node_addresses,
            node: Arc::new(PartyNames::node()),
            stranger: Arc::default(),
            pod_refs: pods.clone(),
            verdicts: verdicts.clone(),
        }
    }

    /// The party at `ip`: a pod, the node, or an address we know nothing of.
    pub(super) fn party(&self, ip: IpAddr) -> &Arc<PartyNames> {
        match self.pods.get(&ip) {
            Some(pod) => pod,
            None if self.node_addresses.contains(&ip) => &self.node,
            None => &self.stranger,
        }
    }

    /// Whether this context already names exactly these parties (the
    /// arguments of [`FlowContext::new`]).
    pub fn names_the_same(
        &self,
        endpoints: &BTreeMap<u32, PodRef>,
        pods: &BTreeMap<IpAddr, PodRef>,
        verdicts: &BTreeMap<u32, Verdict>,
        node_addresses: &[IpAddr],
    ) -> bool {
        self.endpoints == *endpoints
            && self.pod_refs == *pods
            && self.verdicts == *verdicts
            && self.node_addresses == node_addresses
    }
}
