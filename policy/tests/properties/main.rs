//! Properties over random clusters: the compiled maps decide exactly as the
//! reference evaluator, compilation is stable, diffs apply, and adding an
//! allow rule never takes an allow away.

mod arb;
mod cluster_arb;
#[path = "../common/mod.rs"]
mod common;

use std::net::IpAddr;
use std::sync::Arc;

use netseg_policy::{
    CompileOptions, Compiled, Compiler, Direction, Evaluator, PodRef, Snapshot, diff_maps, lookup,
    validate_network_policy,
};
use proptest::prelude::*;
use serde_json::Value;

const PROTOCOL_PORTS: &[(u8, u16)] = &[
    (common::TCP, 53),
    (common::TCP, 80),
    (common::TCP, 81),
    (common::TCP, 999),
    (common::TCP, 1000),
    (common::TCP, 2999),
    (common::TCP, 8080),
    (common::UDP, 53),
    (common::UDP, 80),
    (common::UDP, 1500),
    (common::UDP, 3000),
    (common::UDP, 3001),
    (common::UDP, 8080),
    (common::SCTP, 53),
    (common::SCTP, 80),
    (common::SCTP, 8080),
    (common::ICMP, 0),
    (58, 0),
];

fn pod_refs(snapshot: &Snapshot) -> Vec<PodRef> {
    let name = |p: &Arc<k8s_openapi::api::core::v1::Pod>| {
        PodRef::new(
            p.metadata.namespace.clone().unwrap_or_default(),
            p.metadata.name.clone().unwrap_or_default(),
        )
    };
    snapshot.pods.iter().map(name).collect()
}

/// Every pod address, the node's, and some external ones.
fn peers(snapshot: &Snapshot) -> Vec<IpAddr> {
    let pod_ips = snapshot
        .pods
        .iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.pod_ips.iter().flatten());
    let mut peers: Vec<IpAddr> = pod_ips.filter_map(|ip| ip.ip.parse().ok()).collect();
    peers.extend(
        [arb::NODE_V4, arb::NODE_V6]
            .iter()
            .chain(arb::EXTERNAL)
            .map(|a| common::ip(a)),
    );
    peers.sort();
    peers.dedup();
    peers
}

/// Calls `check` for every (endpoint, direction, peer, protocol, port).
fn for_each_packet(
    snapshot: &Snapshot,
    mut check: impl FnMut(&PodRef, Direction, IpAddr, u8, u16) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let peers = peers(snapshot);
    for endpoint in pod_refs(snapshot) {
        for direction in Direction::BOTH {
            for &peer in &peers {
                for &(protocol, port) in PROTOCOL_PORTS {
                    check(&endpoint, direction, peer, protocol, port)?;
                }
            }
        }
    }
    Ok(())
}

/// The compiled maps and the evaluator agree on every packet: the verdict
/// id that `lookup` finds stands for exactly the evaluator's verdict (what
/// decided, the Pass trail, the audit difference); no entry, no endpoint.
fn agree(
    snapshot: &Snapshot,
    options: &CompileOptions,
    compiled: &Compiled,
) -> Result<(), TestCaseError> {
    let evaluator = Evaluator::new(snapshot, options);
    for_each_packet(snapshot, |endpoint, direction, peer, protocol, port| {
        let value = lookup(compiled, endpoint, direction, peer, protocol, port);
        let by_maps =
            common::tiered::compiled_verdict(compiled, value).map_err(TestCaseError::fail)?;
        let reference = evaluator.evaluate(endpoint, direction, peer, protocol, port);
        prop_assert_eq!(
            &by_maps,
            &reference,
            "{} {} peer {} proto {} port {}: maps say {:?}",
            endpoint,
            direction,
            peer,
            protocol,
            port,
            value
        );
        Ok(())
    })
}

/// `a`, with the object at position `i` taken from `b` where bit `i` of
/// `take` is set, and `b`'s objects beyond `a`'s length appended where the
/// top bit is.
fn mix<T>(a: &[Arc<T>], b: &[Arc<T>], take: u32) -> Vec<Arc<T>> {
    let mut mixed: Vec<Arc<T>> = a
        .iter()
        .enumerate()
        .map(|(i, object)| match b.get(i) {
            Some(other) if take & (1 << (i % 31)) != 0 => Arc::clone(other),
            _ => Arc::clone(object),
        })
        .collect();
    if take & (1 << 31) != 0 {
        mixed.extend(b.iter().skip(a.len()).cloned());
    }
    mixed
}

/// `a` with objects taken from `b` (see [`mix`]), one word of `edits` a
/// kind.
fn mixed(a: &Snapshot, b: &Snapshot, edits: &[u32; 6]) -> Snapshot {
    Snapshot {
        namespaces: mix(&a.namespaces, &b.namespaces, edits[0]),
        pods: mix(&a.pods, &b.pods, edits[1]),
        network_policies: mix(&a.network_policies, &b.network_policies, edits[2]),
        cluster_network_policies: mix(
            &a.cluster_network_policies,
            &b.cluster_network_policies,
            edits[3],
        ),
        segments: mix(&a.segments, &b.segments, edits[4]),
        segment_policies: mix(&a.segment_policies, &b.segment_policies, edits[5]),
        nodes: mix(&a.nodes, &b.nodes, edits[0]),
    }
}

/// `objects` without those at the positions whose bit of `remove` is set.
fn without<T>(objects: &[Arc<T>], remove: u32) -> Vec<Arc<T>> {
    (objects.iter().enumerate())
        .filter(|(i, _)| remove & (1 << (i % 32)) == 0)
        .map(|(_, object)| Arc::clone(object))
        .collect()
}

/// Whether the raw policy isolates `direction` (defaulting as the API server).
fn isolates(spec: &Value, direction: Direction) -> bool {
    let types: Vec<&str> = spec["policyTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let name = if direction == Direction::Ingress {
        "Ingress"
    } else {
        "Egress"
    };
    if !types.is_empty() {
        return types.contains(&name);
    }
    direction == Direction::Ingress || spec["egress"].as_array().is_some_and(|e| !e.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 80, ..ProptestConfig::default() })]

    #[test]
    fn compiled_maps_decide_as_the_evaluator((snapshot, options) in arb::cluster()) {
        let compiled = Compiler::new().compile(&snapshot, &options);
        agree(&snapshot, &options, &compiled)?;
    }

    #[test]
    fn compilation_is_stable_and_diffs_apply((a, options) in arb::cluster(), (b, _) in arb::cluster()) {
        let mut compiler = Compiler::new();
        let first = compiler.compile(&a, &options);
        prop_assert_eq!(&compiler.compile(&a, &options), &first, "recompiling changed the output");
        prop_assert_eq!(&Compiler::new().compile(&a, &options), &first, "a fresh compiler differs");
        let second = compiler.compile(&b, &options);
        let mut policy = first.policy.clone();
        diff_maps(&first.policy, &second.policy).apply(&mut policy);
        prop_assert_eq!(&policy, &second.policy);
        let mut ipcache = first.ipcache.clone();
        diff_maps(&first.ipcache, &second.ipcache).apply(&mut ipcache);
        prop_assert_eq!(&ipcache, &second.ipcache);
        let mut endpoints = first.endpoints.clone();
        diff_maps(&first.endpoints, &second.endpoints).apply(&mut endpoints);
        prop_assert_eq!(&endpoints, &second.endpoints);
        // A warm compiler's ids differ from a fresh one's, its verdicts do not.
        agree(&b, &options, &second)?;
    }

    #[test]
    fn warm_recompiles_after_edits_decide_as_the_evaluator(
        (a, options) in arb::cluster(),
        (b, _) in arb::cluster(),
        edits in any::<[u32; 6]>(),
    ) {
        // `edited` shares `a`'s objects except where a bit of `edits` takes
        // `b`'s object at that position (same names, other content), so the
        // warm compiler reuses what it derived from the shared ones.
        let edited = mixed(&a, &b, &edits);
        let mut compiler = Compiler::new();
        compiler.compile(&a, &options);
        let warm = compiler.compile(&edited, &options);
        agree(&edited, &options, &warm)?;
        let back = compiler.compile(&a, &options);
        agree(&a, &options, &back)?;
    }

    #[test]
    fn incremental_recompiles_equal_full_compiles(
        (a, options) in arb::cluster(),
        (b, _) in arb::cluster(),
        edits in any::<[([u32; 6], u32, u32); 4]>(),
    ) {
        // Each round changes the previous round's snapshot: objects
        // replaced by `b`'s at the same position (a relabel or an edit
        // when the name is the same, else a rename), added (`b`'s beyond
        // `a`'s length) and removed (pods and policies).
        let mut compiler = Compiler::new();
        let mut snapshot = a.clone();
        compiler.compile(&snapshot, &options);
        for (mix_words, remove_pods, remove_policies) in edits {
            snapshot = mixed(&snapshot, &b, &mix_words);
            snapshot.pods = without(&snapshot.pods, remove_pods);
            snapshot.network_policies = without(&snapshot.network_policies, remove_policies);
            let full = compiler.without_memo().compile(&snapshot, &options);
            let incremental = compiler.compile(&snapshot, &options);
            prop_assert_eq!(&incremental, &full, "an incremental recompile differs from a full one");
        }
        let full = compiler.without_memo().compile(&a, &options);
        prop_assert_eq!(&compiler.compile(&a, &options), &full, "recompiling the first snapshot differs");
    }

    #[test]
    fn adding_an_allow_rule_never_removes_an_allow(
        (snapshot, options) in arb::cluster(),
        which in any::<prop::sample::Index>(),
        egress in any::<bool>(),
        ingress_rule in arb::rule("from"),
        egress_rule in arb::rule("to"),
    ) {
        if snapshot.network_policies.is_empty() {
            return Ok(());
        }
        let index = which.index(snapshot.network_policies.len());
        let (direction, field, rule) = if egress {
            (Direction::Egress, "egress", egress_rule)
        } else {
            (Direction::Ingress, "ingress", ingress_rule)
        };
        let mut policy = serde_json::to_value(snapshot.network_policies[index].as_ref()).expect("serializes");
        if !isolates(&policy["spec"], direction) || !validate_network_policy(&snapshot.network_policies[index]).is_empty() {
            return Ok(());
        }
        let rules = &mut policy["spec"][field];
        if rules.is_null() {
            *rules = Value::Array(Vec::new());
        }
        if let Some(list) = rules.as_array_mut() {
            list.push(rule);
        }
        let mut after = snapshot.clone();
        after.network_policies[index] = Arc::new(arb::from_json(policy));
        if !validate_network_policy(&after.network_policies[index]).is_empty() {
            return Ok(());
        }
        let mut compiler = Compiler::new();
        let before_maps = compiler.compile(&snapshot, &options);
        let after_maps = compiler.compile(&after, &options);
        for_each_packet(&snapshot, |endpoint, direction, peer, protocol, port| {
            if lookup(&before_maps, endpoint, direction, peer, protocol, port).is_some_and(|v| v.verdict == netseg_contract::VERDICT_ALLOW) {
                prop_assert!(
                    lookup(&after_maps, endpoint, direction, peer, protocol, port).is_some_and(|v| v.verdict == netseg_contract::VERDICT_ALLOW),
                    "{} {} peer {} proto {} port {} lost its allow", endpoint, direction, peer, protocol, port
                );
            }
            Ok(())
        })?;
    }
}
