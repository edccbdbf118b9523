//! The compiled maps themselves: ipBlock splitting, entry shapes, id
//! stability and sharing, diffs, and the contract encoding.

mod common;

use std::collections::BTreeSet;

use common::{Cluster, NODE, TCP, UDP, ip, pod};
use ipnetwork::IpNetwork;
use netseg_contract::{POLICY_PREFIX_ANY_PORT, POLICY_PREFIX_ANY_PROTOCOL, identity, rule};
use netseg_policy::{
    Compiled, Compiler, Decider, DefaultAction, Direction, IdentityKind, PodRef, PolicyEntryKey,
    PortPrefix, diff_maps, lookup_identity,
};
use serde_json::json;

const IN: Direction = Direction::Ingress;

fn net(s: &str) -> IpNetwork {
    s.parse().expect("test prefix")
}

/// A server `x/s` and pods at 10.0.1.1 (in the except) and 10.0.2.1.
fn block_cluster() -> Cluster {
    let mut c = Cluster::new(DefaultAction::Deny);
    c.options.deny_node_traffic = true;
    c.snapshot
        .pods
        .push(pod("x", "s", json!({}), NODE, &["10.9.0.1", "fd00:9::1"]).into());
    c.snapshot
        .pods
        .push(pod("x", "in-except", json!({}), "node-2", &["10.0.1.1"]).into());
    c.snapshot
        .pods
        .push(pod("x", "in-cidr", json!({}), "node-2", &["10.0.2.1"]).into());
    c.add(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"from": [
            {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}},
            {"ipBlock": {"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48"]}},
        ]}]}),
    );
    c
}

#[test]
fn ip_block_except_applies_to_pods_and_external_addresses() {
    let c = block_cluster();
    let m = c.compile();
    for (peer, expected) in [
        ("10.0.2.1", true),    // a pod inside the cidr
        ("10.0.1.1", false),   // a pod inside the except
        ("10.0.200.7", true),  // external, inside the cidr
        ("10.0.1.200", false), // external, inside the except
        ("10.1.0.1", false),   // outside
        ("2001:db8:2::1", true),
        ("2001:db8:1::1", false),
        ("::ffff:10.0.2.1", false), // IPv4-mapped IPv6 is IPv6: no IPv4 block matches it
    ] {
        assert_eq!(
            c.allowed(&m, "x/s", IN, ip(peer), TCP, 443),
            expected,
            "{peer}"
        );
    }
    // The except prefix is matched by no peer: it is WORLD, not an identity.
    assert_eq!(m.ipcache[&net("10.0.1.0/24")], identity::WORLD);
    assert_eq!(
        *m.identities[&identity::WORLD].prefixes,
        [net("10.0.1.0/24"), net("2001:db8:1::/48")]
    );
    let cidr_id = m.ipcache[&net("10.0.0.0/16")];
    assert_eq!(m.identities[&cidr_id].kind, IdentityKind::External);
    assert_eq!(m.identities[&cidr_id].to_string(), "cidr 10.0.0.0/16");
    // No catch-all entries unless a block needs them; misses are WORLD.
    assert!(!m.ipcache.contains_key(&net("0.0.0.0/0")));
    assert!(!m.ipcache.contains_key(&net("::/0")));
    assert_eq!(lookup_identity(&m, ip("8.8.8.8")), identity::WORLD);
}

#[test]
fn nested_blocks_of_several_peers() {
    let mut c = block_cluster();
    // A second policy whose block covers the first block's except.
    c.add(
        "x",
        "q",
        json!({"podSelector": {}, "ingress": [{"from": [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}},
            {"ipBlock": {"cidr": "10.0.1.128/25"}},
        ]}]}),
    );
    let m = c.compile();
    assert!(m.ipcache.contains_key(&net("0.0.0.0/0")));
    assert!(!m.ipcache.contains_key(&net("::/0")));
    for (peer, expected) in [
        ("8.8.8.8", true),
        ("10.0.1.1", false),
        ("10.0.1.129", true),
        ("10.0.2.1", true),
        ("10.200.0.1", false),
        ("2001:db8:1::1", false),
    ] {
        assert_eq!(
            c.allowed(&m, "x/s", IN, ip(peer), TCP, 1),
            expected,
            "{peer}"
        );
    }
}

/// The compilation of a pod `x/s` whose ingress NetworkPolicy has `rules`
/// (node traffic denied), and its ingress policy id.
fn ingress_of_one_pod(rules: serde_json::Value) -> (Compiled, u32) {
    let mut c = Cluster::new(DefaultAction::Deny);
    c.options.deny_node_traffic = true;
    c.snapshot
        .pods
        .push(pod("x", "s", json!({}), NODE, &["10.0.0.1"]).into());
    c.add("x", "p", json!({"podSelector": {}, "ingress": rules}));
    let m = c.compile();
    let policy = m.endpoints[&PodRef::new("x", "s")].ingress_policy;
    (m, policy)
}

/// The POLICY key of `policy` for any peer.
fn any_peer(policy: u32, protocol: Option<u8>, port: Option<PortPrefix>) -> PolicyEntryKey {
    PolicyEntryKey {
        policy,
        identity: identity::ANY,
        protocol,
        port,
    }
}

/// The verdict id that rule `index` of the policy decides.
fn rule_id(m: &Compiled, index: u32) -> u32 {
    *m.verdicts
        .iter()
        .find(|(_, v)| v.rule().is_some_and(|r| r.index == index))
        .expect("rule")
        .0
}

#[test]
fn entry_shapes() {
    let (m, policy) = ingress_of_one_pod(json!([
        {},
        {"ports": [{"protocol": "UDP"}]},
        {"ports": [{"port": 80}]},
        {"ports": [{"port": 1, "endPort": 65535}]},
    ]));
    let key = |protocol, port| any_peer(policy, protocol, port);
    let rule_of = |index| rule_id(&m, index);
    let entries: Vec<_> = m
        .policy
        .iter()
        .filter(|(k, _)| k.policy == policy)
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, &key(None, None));
    assert_eq!(
        entries[0].1.rule,
        rule_of(0),
        "the first rule allows everything"
    );
}

#[test]
fn later_rules_get_entries_only_where_earlier_ones_do_not_decide() {
    let (m, policy) = ingress_of_one_pod(json!([
        {"ports": [{"protocol": "UDP"}]},
        {"ports": [{"port": 80}]},
        {"ports": [{"port": 1, "endPort": 65535}]},
    ]));
    let key = |protocol, port| any_peer(policy, protocol, port);
    let rule_of = |index| rule_id(&m, index);
    let value = |k| m.policy.get(&k).map(|v| v.rule);
    let whole = value(key(None, None)).expect("whole-key entry");
    assert_eq!(
        m.verdicts[&whole].decided_by,
        Decider::Isolation {
            namespace: "x".into(),
            policies: vec!["p".into()]
        }
    );
    assert_eq!(value(key(Some(UDP), None)), Some(rule_of(0)));
    assert_eq!(
        value(key(Some(TCP), Some(PortPrefix { port: 80, len: 16 }))),
        Some(rule_of(1))
    );
    // TCP 1-79 and 81-65535 are the third rule's: 7 + 14 prefixes; port 0
    // is left to the whole-key entry (the isolation).
    let range = m.policy.values().filter(|v| v.rule == rule_of(2)).count();
    assert_eq!(range, 7 + 14);
}

#[test]
fn endpoints_with_the_same_policies_share_a_policy_id() {
    let mut c = Cluster::new(DefaultAction::Deny);
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        c.snapshot.pods.push(
            pod(
                "x",
                name,
                json!({"app": app}),
                NODE,
                &[&format!("10.0.0.{}", name.as_bytes()[0] - b'a' + 1)],
            )
            .into(),
        );
    }
    c.add("x", "web", json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": 80}]}]}));
    let m = c.compile();
    let e = |n: &str| m.endpoints[&PodRef::new("x", n)].clone();
    assert_eq!(e("a").ingress_policy, e("b").ingress_policy);
    assert_eq!(e("a").egress_policy, e("b").egress_policy);
    assert_ne!(e("a").ingress_policy, e("c").ingress_policy);
    // Egress is decided by the default deny alone: one whole-key entry.
    let egress: Vec<_> = m
        .policy
        .iter()
        .filter(|(k, _)| k.policy == e("c").egress_policy)
        .collect();
    assert_eq!(egress.len(), 1);
    assert_eq!(egress[0].1.rule, rule::DEFAULT_DENY);
    // No policy id is used by two different entry sets.
    let ids: BTreeSet<u32> = m
        .endpoints
        .values()
        .flat_map(|e| [e.ingress_policy, e.egress_policy])
        .collect();
    assert_eq!(ids.len(), 3);
}

/// A cluster where pods select each other across policies.
fn stable_cluster() -> Cluster {
    let mut c = common::Cluster::model_3x3();
    c.add("x", "from-b", json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}));
    c.add(
        "y",
        "web",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}),
    );
    c
}

#[test]
fn relabeling_one_pod_touches_only_its_addresses_and_their_entries() {
    let mut c = stable_cluster();
    let mut compiler = Compiler::new();
    let before = compiler.compile(&c.snapshot, &c.options);
    let again = compiler.compile(&c.snapshot, &c.options);
    assert_eq!(
        before, again,
        "recompiling the same snapshot changes nothing"
    );
    // x/c gets the label that `from-b` allows.
    let labels = std::sync::Arc::make_mut(&mut c.snapshot.pods[2])
        .metadata
        .labels
        .get_or_insert_default();
    labels.insert("pod".into(), "b".into());
    let after = compiler.compile(&c.snapshot, &c.options);
    let ipcache = diff_maps(&before.ipcache, &after.ipcache);
    let touched: BTreeSet<IpNetwork> = ipcache
        .upserts
        .iter()
        .map(|(k, _)| *k)
        .chain(ipcache.removals.iter().copied())
        .collect();
    assert_eq!(
        touched,
        BTreeSet::from([net("10.0.1.3/32"), net("fd00::1:3/128")])
    );
    assert_eq!(before.endpoints, after.endpoints, "policy ids do not move");
    assert_eq!(before.verdicts, after.verdicts);
    let policy = diff_maps(&before.policy, &after.policy);
    assert!(
        policy.removals.is_empty(),
        "x/c joins x/b's identity: nothing is lost"
    );
    assert!(
        policy.upserts.is_empty(),
        "x/b's identity already has the entries: {policy:?}"
    );
    assert!(c.reach(&after, "x/c", "x/a", TCP, 80));
}

#[test]
fn editing_one_policy_keeps_ids_and_touches_only_its_entries() {
    let mut c = stable_cluster();
    let mut compiler = Compiler::new();
    let before = compiler.compile(&c.snapshot, &c.options);
    c.snapshot.network_policies[1] = common::policy(
        "y",
        "web",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 8080}]}]}),
    )
    .into();
    let after = compiler.compile(&c.snapshot, &c.options);
    assert_eq!(before.endpoints, after.endpoints);
    assert_eq!(before.ipcache, after.ipcache);
    assert_eq!(before.verdicts, after.verdicts);
    let diff = diff_maps(&before.policy, &after.policy);
    let web = before.endpoints[&PodRef::new("y", "a")].ingress_policy;
    assert_eq!(
        diff.removals,
        vec![PolicyEntryKey {
            policy: web,
            identity: identity::ANY,
            protocol: Some(TCP),
            port: Some(PortPrefix { port: 80, len: 16 })
        }]
    );
    assert_eq!(diff.upserts.len(), 1);
    let mut applied = before.policy.clone();
    diff.apply(&mut applied);
    assert_eq!(applied, after.policy);
}

#[test]
fn fresh_and_warm_compilers_agree_on_verdicts() {
    let mut c = stable_cluster();
    let mut warm = Compiler::new();
    warm.compile(&c.snapshot, &c.options);
    c.add(
        "z",
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    );
    let warm_maps = warm.compile(&c.snapshot, &c.options);
    let fresh_maps = Compiler::new().compile(&c.snapshot, &c.options);
    for from in c.pod_names() {
        for to in c.pod_names() {
            assert_eq!(
                c.reach(&warm_maps, &from, &to, TCP, 80),
                c.reach(&fresh_maps, &from, &to, TCP, 80)
            );
        }
    }
}

#[test]
fn contract_encoding() {
    let key = PolicyEntryKey {
        policy: 7,
        identity: 20,
        protocol: Some(TCP),
        port: Some(PortPrefix {
            port: 0x1f40,
            len: 13,
        }),
    };
    assert_eq!(key.prefix_len(), POLICY_PREFIX_ANY_PORT + 13);
    let raw = key.to_contract(1);
    assert_eq!(
        (raw.slot, raw.policy, raw.identity, raw.protocol, raw.port),
        (1, 7, 20, TCP, [0x1f, 0x40])
    );
    let any = PolicyEntryKey {
        policy: 7,
        identity: 0,
        protocol: None,
        port: None,
    };
    assert_eq!(any.prefix_len(), POLICY_PREFIX_ANY_PROTOCOL);
    assert_eq!(any.to_contract(0).port, [0, 0]);
    let endpoint = netseg_policy::LocalEndpoint {
        ipv4: Some("10.0.0.1".parse().unwrap()),
        ipv6: None,
        ingress_policy: 3,
        egress_policy: 0,
    };
    let raw = endpoint.to_contract();
    assert_eq!(
        (raw.flags, raw.ipv4),
        (netseg_contract::ENDPOINT_HAS_IPV4, [10, 0, 0, 1])
    );
    assert_eq!(rule::NONE, 0);
}
