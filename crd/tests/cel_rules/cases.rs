//! Objects each CEL rule must accept and reject, per kind.

use serde_json::{Value, json};

const CNP: &str = "ClusterNetworkPolicy";
const SEGMENT: &str = "Segment";
const SEGMENT_POLICY: &str = "SegmentPolicy";

const RANGE_ORDER: &str = "Start port must be less than End port";
const INVALID_CIDR: &str = "Invalid CIDR format provided";
const CNP_NAMED_PORT: &str = "networks/nodes/domainNames peer cannot be set with namedPorts since there are no namedPorts for networks/nodes/domainNames";
const SEGPOL_NAMED_PORT: &str = "a networks peer cannot be combined with destinationNamedPort since networks have no named ports";

#[derive(Debug)]
pub enum Expect {
    Valid,
    /// Exactly one rule fails, with this message, at this field path.
    Invalid {
        message: &'static str,
        path: String,
    },
}

pub struct Case {
    pub kind: String,
    pub about: String,
    pub spec: Value,
    pub expect: Expect,
}

fn valid(kind: &'static str, about: &str, spec: Value) -> Case {
    Case {
        kind: kind.to_string(),
        about: about.to_string(),
        spec,
        expect: Expect::Valid,
    }
}

fn invalid(
    kind: &'static str,
    about: &str,
    spec: Value,
    message: &'static str,
    path: &str,
) -> Case {
    let expect = Expect::Invalid {
        message,
        path: path.to_string(),
    };
    Case {
        kind: kind.to_string(),
        about: about.to_string(),
        spec,
        expect,
    }
}

/// A policy of `kind` with the given rules in `direction`.
fn policy(kind: &str, direction: &str, rules: Value) -> Value {
    let subject = if kind == CNP {
        json!({"namespaces": {}})
    } else {
        json!({"segments": ["a"]})
    };
    json!({"tier": "Admin", "priority": 1, "subject": subject, direction: rules})
}

fn peers_field(direction: &str) -> &'static str {
    if direction == "ingress" { "from" } else { "to" }
}

fn rule(direction: &str, peer: Value, protocols: Value) -> Value {
    json!({"action": "Accept", peers_field(direction): [peer], "protocols": protocols})
}

pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    for kind in [CNP, SEGMENT_POLICY] {
        cases.extend(port_ranges(kind));
    }
    cases.extend(cidrs());
    cases.extend(unique_rule_names());
    cases.extend(named_ports());
    cases.extend(example_manifests());
    cases
}

/// The manifests of the serde round-trip tests are valid objects too.
fn example_manifests() -> Vec<Case> {
    let manifests = crate::support::example_manifests().into_iter();
    manifests
        .map(|(about, manifest)| {
            let kind = manifest["kind"].as_str().unwrap().to_string();
            Case {
                kind,
                about,
                spec: manifest["spec"].clone(),
                expect: Expect::Valid,
            }
        })
        .collect()
}

fn port_ranges(kind: &'static str) -> Vec<Case> {
    let mut cases = Vec::new();
    for direction in ["ingress", "egress"] {
        for protocol in ["tcp", "udp", "sctp"] {
            let with_range = |start: u16, end: u16| {
                let port = json!({"destinationPort": {"range": {"start": start, "end": end}}});
                policy(
                    kind,
                    direction,
                    json!([rule(
                        direction,
                        json!({"namespaces": {}}),
                        json!([{protocol: port}])
                    )]),
                )
            };
            let about = format!("{direction} {protocol} range");
            cases.push(valid(kind, &about, with_range(1000, 1001)));
            let path = format!("spec.{direction}[0].protocols[0].{protocol}.destinationPort.range");
            cases.push(invalid(
                kind,
                &format!("{about}, start = end"),
                with_range(80, 80),
                RANGE_ORDER,
                &path,
            ));
            cases.push(invalid(
                kind,
                &format!("{about}, start > end"),
                with_range(90, 80),
                RANGE_ORDER,
                &path,
            ));
        }
    }
    cases
}

/// Kubernetes' isCIDR: netip.ParsePrefix, minus IPv4-mapped IPv6.
const GOOD_CIDRS: [&str; 4] = ["10.0.0.0/8", "10.1.2.3/8", "2001:db8::/64", "::/0"];
const BAD_CIDRS: [&str; 7] = [
    "10.0.0.0",
    "10.0.0.0/33",
    "010.0.0.0/8",
    "10.0.0.256/32",
    "fe80::1%eth0/64",
    "::ffff:10.0.0.0/104",
    "pods",
];

fn cidrs() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |kind: &'static str, place: &str, spec: &dyn Fn(Value) -> Value| {
        cases.push(valid(
            kind,
            &format!("{place} CIDRs"),
            spec(json!(GOOD_CIDRS)),
        ));
        for bad in BAD_CIDRS {
            let spec = spec(json!(["192.0.2.0/24", bad]));
            let path = format!("spec.{place}[1]");
            let path = path.replace("[]", "[0]");
            cases.push(invalid(
                kind,
                &format!("{place} {bad}"),
                spec,
                INVALID_CIDR,
                &path,
            ));
        }
    };
    add(CNP, "egress[].to[].networks", &|networks| {
        policy(
            CNP,
            "egress",
            json!([{"action": "Deny", "to": [{"networks": networks}]}]),
        )
    });
    add(
        SEGMENT,
        "members[].networks",
        &|networks| json!({"members": [{"networks": networks}]}),
    );
    for direction in ["ingress", "egress"] {
        let place = format!("{direction}[].{}[].networks", peers_field(direction));
        add(SEGMENT_POLICY, &place, &|networks| {
            let peer = json!({"networks": networks});
            policy(
                SEGMENT_POLICY,
                direction,
                json!([{"action": "Deny", peers_field(direction): [peer]}]),
            )
        });
    }
    cases
}

fn unique_rule_names() -> Vec<Case> {
    let mut cases = Vec::new();
    for direction in ["ingress", "egress"] {
        let named = |names: &[Option<&str>]| {
            let rules: Vec<Value> = names
                .iter()
                .map(|name| {
                    let mut rule =
                        rule(direction, json!({"segments": ["b"]}), json!([{"icmp": {}}]));
                    if let Some(name) = name {
                        rule["name"] = json!(name);
                    }
                    rule
                })
                .collect();
            policy(SEGMENT_POLICY, direction, json!(rules))
        };
        let message = if direction == "ingress" {
            "ingress rule names must be unique"
        } else {
            "egress rule names must be unique"
        };
        let about = format!("{direction} rule names");
        cases.push(valid(
            SEGMENT_POLICY,
            &about,
            named(&[Some("a"), None, Some("b"), None]),
        ));
        let duplicate = named(&[Some("a"), Some("b"), Some("a")]);
        cases.push(invalid(
            SEGMENT_POLICY,
            &format!("{about}, a twice"),
            duplicate,
            message,
            &format!("spec.{direction}"),
        ));
    }
    cases
}

fn named_ports() -> Vec<Case> {
    let named_port = json!([{"destinationNamedPort": "https"}]);
    let egress = |kind: &str, peer: Value, protocols: &Value| {
        policy(
            kind,
            "egress",
            json!([rule("egress", peer, protocols.clone())]),
        )
    };
    let mut cases = Vec::new();
    let pods = json!({"pods": {"podSelector": {}}});
    cases.push(valid(
        CNP,
        "named port to pods",
        egress(CNP, pods.clone(), &named_port),
    ));
    cases.push(valid(
        CNP,
        "networks on a number",
        egress(
            CNP,
            json!({"networks": ["10.0.0.0/8"]}),
            &json!([{"tcp": {"destinationPort": {"number": 80}}}]),
        ),
    ));
    for peer in [
        json!({"networks": ["10.0.0.0/8"]}),
        json!({"nodes": {}}),
        json!({"domainNames": ["example.com"]}),
    ] {
        let about = format!("named port to {peer}");
        cases.push(invalid(
            CNP,
            &about,
            egress(CNP, peer, &named_port),
            CNP_NAMED_PORT,
            "spec.egress[0]",
        ));
    }
    cases.push(valid(
        SEGMENT_POLICY,
        "named port to segments",
        egress(SEGMENT_POLICY, json!({"segments": ["b"]}), &named_port),
    ));
    cases.push(valid(
        SEGMENT_POLICY,
        "named port to pods",
        egress(SEGMENT_POLICY, pods, &named_port),
    ));
    let networks = json!({"networks": ["10.0.0.0/8"]});
    cases.push(invalid(
        SEGMENT_POLICY,
        "named port to networks",
        egress(SEGMENT_POLICY, networks, &named_port),
        SEGPOL_NAMED_PORT,
        "spec.egress[0]",
    ));
    let ingress_from_networks = policy(
        SEGMENT_POLICY,
        "ingress",
        json!([rule(
            "ingress",
            json!({"networks": ["10.0.0.0/8"]}),
            named_port.clone()
        )]),
    );
    cases.push(valid(
        SEGMENT_POLICY,
        "named port from networks (resolved on the subject pod)",
        ingress_from_networks,
    ));
    cases
}
