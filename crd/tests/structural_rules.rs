//! The OpenAPI (non-CEL) rules of the generated CRDs: one-of fields, enums, bounds and
//! list and string limits, checked with a JSON Schema validator on objects that must pass
//! and objects that must fail at one given place.

mod support;

use serde_json::{Value, json};
use support::{example_manifests, kind_schemas};

const CNP: &str = "ClusterNetworkPolicy";
const SEGMENT: &str = "Segment";
const SEGMENT_POLICY: &str = "SegmentPolicy";

/// An object the schema must accept (`rejected_at: None`) or reject only at `rejected_at`
/// (a JSON pointer).
struct Case {
    kind: &'static str,
    about: &'static str,
    spec: Value,
    rejected_at: Option<&'static str>,
}

fn accepted(kind: &'static str, about: &'static str, spec: Value) -> Case {
    Case {
        kind,
        about,
        spec,
        rejected_at: None,
    }
}

fn rejected(kind: &'static str, about: &'static str, spec: Value, at: &'static str) -> Case {
    Case {
        kind,
        about,
        spec,
        rejected_at: Some(at),
    }
}

fn cnp_egress(peer: Value, protocols: Value) -> Value {
    json!({"tier": "Admin", "priority": 5, "subject": {"namespaces": {}},
           "egress": [{"action": "Accept", "to": [peer], "protocols": protocols}]})
}

fn segpol_ingress(rule: Value) -> Value {
    json!({"tier": "Baseline", "priority": 5, "subject": {"segments": ["a"]}, "ingress": [rule]})
}

fn segpol_protocols(protocols: Value) -> Value {
    segpol_ingress(
        json!({"action": "Accept", "from": [{"segments": ["b"]}], "protocols": protocols}),
    )
}

fn one_protocol(protocol: Value) -> Value {
    cnp_egress(json!({"namespaces": {}}), json!([protocol]))
}

fn cnp_cases() -> Vec<Case> {
    let to_pods = json!({"pods": {"podSelector": {}}});
    let some_rules = |n: usize| json!(vec![json!({"action": "Deny", "to": [to_pods]}); n]);
    let long_cidr = format!("{}/128", "0000:".repeat(8).trim_end_matches(':'));
    vec![
        accepted(
            CNP,
            "25 egress rules",
            json!({"tier": "Admin", "priority": 0, "subject": {"namespaces": {}}, "egress": some_rules(25)}),
        ),
        rejected(
            CNP,
            "26 egress rules",
            json!({"tier": "Admin", "priority": 0, "subject": {"namespaces": {}}, "egress": some_rules(26)}),
            "/spec/egress",
        ),
        rejected(
            CNP,
            "subject with two fields",
            json!({"tier": "Admin", "priority": 0, "subject": {"namespaces": {}, "pods": {"podSelector": {}}}}),
            "/spec/subject",
        ),
        rejected(
            CNP,
            "empty subject",
            json!({"tier": "Admin", "priority": 0, "subject": {}}),
            "/spec/subject",
        ),
        rejected(
            CNP,
            "priority 1001",
            json!({"tier": "Admin", "priority": 1001, "subject": {"namespaces": {}}}),
            "/spec/priority",
        ),
        rejected(
            CNP,
            "priority -1",
            json!({"tier": "Baseline", "priority": -1, "subject": {"namespaces": {}}}),
            "/spec/priority",
        ),
        rejected(
            CNP,
            "tier spelled admin",
            json!({"tier": "admin", "priority": 0, "subject": {"namespaces": {}}}),
            "/spec/tier",
        ),
        rejected(
            CNP,
            "action Allow",
            cnp_egress(
                to_pods.clone(),
                json!([{"tcp": {"destinationPort": {"number": 80}}}]),
            )
            .with("/egress/0/action", json!("Allow")),
            "/spec/egress/0/action",
        ),
        rejected(
            CNP,
            "peer with two fields",
            cnp_egress(
                json!({"namespaces": {}, "networks": ["10.0.0.0/8"]}),
                json!(null),
            ),
            "/spec/egress/0/to/0",
        ),
        rejected(
            CNP,
            "empty peer",
            cnp_egress(json!({}), json!(null)),
            "/spec/egress/0/to/0",
        ),
        accepted(
            CNP,
            "nodes and domainNames peers",
            cnp_egress(
                json!({"domainNames": ["*.example.com", "example.com."]}),
                json!(null),
            ),
        ),
        rejected(
            CNP,
            "domain name with [",
            cnp_egress(json!({"domainNames": ["[x.example.com"]}), json!(null)),
            "/spec/egress/0/to/0/domainNames/0",
        ),
        rejected(
            CNP,
            "no networks",
            cnp_egress(json!({"networks": []}), json!(null)),
            "/spec/egress/0/to/0/networks",
        ),
        accepted(
            CNP,
            "43-character CIDR",
            cnp_egress(json!({"networks": [long_cidr]}), json!(null)),
        ),
        rejected(
            CNP,
            "44-character CIDR",
            cnp_egress(json!({"networks": [format!("{long_cidr}0")]}), json!(null)),
            "/spec/egress/0/to/0/networks/0",
        ),
        rejected(
            CNP,
            "tcp without a port",
            one_protocol(json!({"tcp": {}})),
            "/spec/egress/0/protocols/0/tcp",
        ),
        rejected(
            CNP,
            "sctp without a port",
            one_protocol(json!({"sctp": {}})),
            "/spec/egress/0/protocols/0/sctp",
        ),
        rejected(
            CNP,
            "two protocols in one entry",
            one_protocol(
                json!({"tcp": {"destinationPort": {"number": 1}}, "destinationNamedPort": "x"}),
            ),
            "/spec/egress/0/protocols/0",
        ),
        rejected(
            CNP,
            "port with number and range",
            one_protocol(
                json!({"udp": {"destinationPort": {"number": 1, "range": {"start": 1, "end": 2}}}}),
            ),
            "/spec/egress/0/protocols/0/udp/destinationPort",
        ),
        rejected(
            CNP,
            "port 0",
            one_protocol(json!({"udp": {"destinationPort": {"number": 0}}})),
            "/spec/egress/0/protocols/0/udp/destinationPort/number",
        ),
        rejected(
            CNP,
            "port 65536",
            one_protocol(
                json!({"udp": {"destinationPort": {"range": {"start": 1, "end": 65536}}}}),
            ),
            "/spec/egress/0/protocols/0/udp/destinationPort/range/end",
        ),
        rejected(
            CNP,
            "no protocols",
            cnp_egress(to_pods.clone(), json!([])),
            "/spec/egress/0/protocols",
        ),
        rejected(
            CNP,
            "rule name of 101 characters",
            cnp_egress(to_pods, json!(null)).with("/egress/0/name", json!("n".repeat(101))),
            "/spec/egress/0/name",
        ),
    ]
}

fn segment_cases() -> Vec<Case> {
    let members = json!([{"namespaces": {}}]);
    vec![
        accepted(
            SEGMENT,
            "description of 1024 characters",
            json!({"description": "d".repeat(1024), "members": members}),
        ),
        rejected(
            SEGMENT,
            "description of 1025 characters",
            json!({"description": "d".repeat(1025), "members": members}),
            "/spec/description",
        ),
        rejected(
            SEGMENT,
            "no members",
            json!({"members": []}),
            "/spec/members",
        ),
        rejected(
            SEGMENT,
            "member with two fields",
            json!({"members": [{"namespaces": {}, "networks": ["10.0.0.0/8"]}]}),
            "/spec/members/0",
        ),
        rejected(
            SEGMENT,
            "posture Pass",
            json!({"members": members, "posture": {"ingress": "Pass"}}),
            "/spec/posture/ingress",
        ),
    ]
}

fn segment_policy_cases() -> Vec<Case> {
    vec![
        accepted(
            SEGMENT_POLICY,
            "tcp, udp, sctp, icmp and icmpv6 without ports",
            segpol_protocols(
                json!([{"tcp": {}}, {"udp": {}}, {"sctp": {}}, {"icmp": {}}, {"icmpv6": {}}]),
            ),
        ),
        rejected(
            SEGMENT_POLICY,
            "mode Dry",
            segpol_protocols(json!(null)).with("/mode", json!("Dry")),
            "/spec/mode",
        ),
        rejected(
            SEGMENT_POLICY,
            "no subject segments",
            json!({"tier": "Admin", "priority": 0, "subject": {"segments": []}}),
            "/spec/subject/segments",
        ),
        rejected(
            SEGMENT_POLICY,
            "empty segment name",
            segpol_ingress(json!({"action": "Deny", "from": [{"segments": [""]}]})),
            "/spec/ingress/0/from/0/segments/0",
        ),
        rejected(
            SEGMENT_POLICY,
            "peer with two fields",
            segpol_ingress(
                json!({"action": "Deny", "from": [{"segments": ["b"], "namespaces": {}}]}),
            ),
            "/spec/ingress/0/from/0",
        ),
        rejected(
            SEGMENT_POLICY,
            "icmp and tcp in one entry",
            segpol_protocols(json!([{"icmp": {}, "tcp": {}}])),
            "/spec/ingress/0/protocols/0",
        ),
        rejected(
            SEGMENT_POLICY,
            "no peers",
            segpol_ingress(json!({"action": "Deny", "from": []})),
            "/spec/ingress/0/from",
        ),
    ]
}

/// `json!` objects with one field replaced, to state a case as "valid, but X".
trait Replace {
    fn with(self, pointer: &str, value: Value) -> Value;
}

impl Replace for Value {
    fn with(mut self, pointer: &str, value: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        let parent = self.pointer_mut(parent).and_then(Value::as_object_mut);
        parent
            .expect("the parent is an object")
            .insert(key.to_string(), value);
        self
    }
}

#[test]
fn schemas_accept_valid_objects_and_reject_invalid_ones_where_they_are_wrong() {
    let kinds = kind_schemas();
    let examples = example_manifests().into_iter().map(|(_, manifest)| {
        let kind = match manifest["kind"].as_str() {
            Some("ClusterNetworkPolicy") => CNP,
            Some("Segment") => SEGMENT,
            _ => SEGMENT_POLICY,
        };
        accepted(kind, "example manifest", manifest["spec"].clone())
    });
    let cases = cnp_cases()
        .into_iter()
        .chain(segment_cases())
        .chain(segment_policy_cases())
        .chain(examples);
    let mut wrong = Vec::new();
    for case in cases {
        let kind = &kinds[case.kind];
        let validator = jsonschema::validator_for(&kind.schema).expect("the schema compiles");
        let object = kind.object(case.kind, &without_nulls(case.spec));
        let errors: Vec<String> = validator
            .iter_errors(&object)
            .map(|e| e.instance_path().to_string())
            .collect();
        let as_expected = match case.rejected_at {
            None => errors.is_empty(),
            Some(at) => !errors.is_empty() && errors.iter().all(|path| path == at),
        };
        if !as_expected {
            wrong.push(format!(
                "{} {:?}: expected rejection at {:?}, got {errors:?}",
                case.kind, case.about, case.rejected_at
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Drops `null` fields: the cases write `protocols: null` for "no protocols".
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}
