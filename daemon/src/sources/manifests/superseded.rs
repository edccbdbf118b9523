//! The v1alpha1 kinds of the network policy API, AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy, which v1alpha2's ClusterNetworkPolicy
//! replaced without a conversion. netseg does not enforce them; it says how
//! to rewrite them.

use serde_json::{Map, Value};

const V1ALPHA1: &str = "policy.networking.k8s.io/v1alpha1";

/// The same for both kinds: the rule fields that changed.
const RULES: &str = "action Allow -> Accept; ports -> protocols: \
    portNumber {protocol: P, port: n} -> {p: {destinationPort: {number: n}}} (p is P in lower case, tcp if P is omitted), \
    portRange {protocol: P, start: s, end: e} -> {p: {destinationPort: {range: {start: s, end: e}}}} (number: s when s = e), \
    namedPort: x -> destinationNamedPort: x; \
    at most 25 rules per direction, peers per rule and protocols per rule (split larger objects over consecutive priorities)";

/// How to rewrite a v1alpha1 object as a ClusterNetworkPolicy, or `None`
/// for any other type.
pub(super) fn migration(api_version: &str, kind: &str, map: &Map<String, Value>) -> Option<String> {
    if api_version != V1ALPHA1 {
        return None;
    }
    let priority = map
        .get("spec")
        .and_then(|spec| spec.get("priority"))
        .and_then(Value::as_i64);
    let tier = match (kind, priority) {
        ("AdminNetworkPolicy", Some(p)) => format!("tier: Admin, priority: {p}"),
        ("AdminNetworkPolicy", None) => "tier: Admin, the same priority".to_owned(),
        ("BaselineAdminNetworkPolicy", _) => {
            "tier: Baseline, a priority of your choice (Baseline policies are ordered by it; \
             the name no longer has to be 'default')"
                .to_owned()
        }
        _ => return None,
    };
    Some(format!(
        "rewrite it as policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy: {tier}; {RULES}"
    ))
}
