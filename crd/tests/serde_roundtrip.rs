//! The types read the manifests people write, and write them back unchanged.

use netseg_crd::{
    ClusterNetworkPolicy, ClusterNetworkPolicyEgressPeer, ClusterNetworkPolicyProtocol, IcmpMatch,
    PolicyMode, PortRange, PostureAction, RuleAction, Segment, SegmentPolicy, SegmentPolicyPeer,
    Tier,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

fn manifest(file: &str) -> Value {
    let path = format!("{}/tests/manifests/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parses `file` as `T` and checks that writing it back yields the same document.
fn round_trip<T: DeserializeOwned + Serialize>(file: &str) -> T {
    let original = manifest(file);
    let typed: T =
        serde_json::from_value(original.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let written = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        written, original,
        "{file} changed on the way through the types"
    );
    typed
}

#[test]
fn segment_round_trips() {
    let segment: Segment = round_trip("segment.yaml");
    assert_eq!(segment.metadata.name.as_deref(), Some("payments"));
    assert_eq!(segment.spec.members.len(), 3);
    let networks = segment.spec.members[2].networks.as_deref().unwrap();
    assert_eq!(networks, ["203.0.113.0/24", "2001:db8::/64"]);
    let posture = segment.spec.posture.unwrap();
    assert_eq!(posture.ingress, Some(PostureAction::Deny));
    assert_eq!(posture.egress, Some(PostureAction::Accept));
}

#[test]
fn segment_policy_round_trips() {
    let policy: SegmentPolicy = round_trip("segment-policy.yaml");
    let spec = &policy.spec;
    assert_eq!(
        (spec.tier, spec.priority, spec.mode),
        (Tier::Admin, 10, PolicyMode::Enforce)
    );
    assert_eq!(spec.subject.segments, ["payments"]);
    let rule = &spec.ingress[0];
    assert_eq!(
        rule.from[0].segments.as_deref(),
        Some(&["web".to_string()][..])
    );
    let protocols = rule.protocols.as_deref().unwrap();
    let udp_port = protocols[1]
        .udp
        .as_ref()
        .unwrap()
        .destination_port
        .as_ref()
        .unwrap();
    assert_eq!(
        udp_port.range,
        Some(PortRange {
            start: 1000,
            end: 2000
        })
    );
    assert_eq!(protocols[2].sctp.as_ref().unwrap().destination_port, None);
    assert_eq!(protocols[3].icmp, Some(IcmpMatch {}));
    assert_eq!(protocols[4].icmpv6, Some(IcmpMatch {}));
    assert_eq!(
        protocols[5].destination_named_port.as_deref(),
        Some("https")
    );
    assert_eq!(spec.egress[0].action, RuleAction::Pass);
    assert_eq!(spec.egress[1].protocols, None);
}

#[test]
fn cluster_network_policy_round_trips() {
    let policy: ClusterNetworkPolicy = round_trip("cluster-network-policy.yaml");
    let spec = &policy.spec;
    assert_eq!((spec.tier, spec.priority), (Tier::Admin, 20));
    assert!(spec.subject.namespaces.is_some() && spec.subject.pods.is_none());
    let from = &spec.ingress[0].from[0];
    assert!(from.pods.as_ref().unwrap().namespace_selector.is_some());
    let dns = &spec.egress[0];
    assert!(
        dns.to[0]
            .pods
            .as_ref()
            .unwrap()
            .namespace_selector
            .is_none()
    );
    assert!(spec.egress[1].to[0].nodes.is_some());
    let domains = spec.egress[2].to[0].domain_names.as_deref().unwrap();
    assert_eq!(domains, ["api.example.com", "*.cdn.example.com"]);
    let conditions = &policy.status.as_ref().unwrap().conditions;
    assert_eq!(
        (
            conditions[0].type_.as_str(),
            conditions[0].observed_generation
        ),
        ("Accepted", Some(3))
    );
}

#[test]
fn mode_defaults_to_enforce() {
    let policy: SegmentPolicy = serde_json::from_value(json!({
        "apiVersion": "netseg.dev/v1alpha1", "kind": "SegmentPolicy", "metadata": {"name": "p"},
        "spec": {"tier": "Baseline", "priority": 0, "subject": {"segments": ["a"]}}
    }))
    .unwrap();
    assert_eq!(policy.spec.mode, PolicyMode::Enforce);
    assert!(policy.spec.ingress.is_empty() && policy.spec.egress.is_empty());
}

/// A peer or protocol entry from a newer CRD (a field this build does not know) must still
/// parse, with every known field unset, so the compiler can fail closed on that one rule.
#[test]
fn unknown_peer_and_protocol_kinds_parse_as_empty() {
    let peer: ClusterNetworkPolicyEgressPeer =
        serde_json::from_value(json!({"services": {"name": "x"}})).unwrap();
    assert_eq!(peer, ClusterNetworkPolicyEgressPeer::default());
    let protocol: ClusterNetworkPolicyProtocol =
        serde_json::from_value(json!({"icmp": {}})).unwrap();
    assert_eq!(protocol, ClusterNetworkPolicyProtocol::default());
    let peer: SegmentPolicyPeer =
        serde_json::from_value(json!({"serviceAccounts": ["a"]})).unwrap();
    assert_eq!(peer, SegmentPolicyPeer::default());
}

#[test]
fn misspelled_enum_values_are_rejected() {
    let rule = json!({"action": "Allow", "to": [{"networks": ["10.0.0.0/8"]}]});
    let error = serde_json::from_value::<netseg_crd::ClusterNetworkPolicyEgressRule>(rule)
        .unwrap_err()
        .to_string();
    assert!(error.contains("Allow"), "{error}");
    let posture = serde_json::from_value::<netseg_crd::SegmentPosture>(json!({"ingress": "Pass"}));
    assert!(posture.is_err(), "Pass is not a posture");
}
