//! `netseg explain`: what the policies of a manifests directory make of one
//! connection, at each end, and which rule decides, straight from the
//! reference evaluator. Nothing is loaded or attached.

use std::{collections::BTreeMap, net::IpAddr, path::Path};

use anyhow::{Context as _, Result, bail};
use netseg_policy::{
    CompileOptions, Compiler, DefaultAction, Direction, PodRef, Snapshot, Verdict, evaluate,
};

use netseg_contract::{PROTO_SCTP, PROTO_TCP, PROTO_UDP};

use crate::{flows::protocol_name, manifests::ManifestStore};

/// One end of the connection: a pod (`namespace/name`) or an address.
pub struct Question<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub protocol: u8,
    pub port: u16,
    pub ipv6: bool,
    pub default_action: DefaultAction,
}

struct End {
    address: IpAddr,
    pod: Option<(PodRef, String)>,
}

/// Prints the explanation; `Ok(true)` when the connection is allowed.
pub fn explain(dir: &Path, question: &Question<'_>) -> Result<bool> {
    let mut store = ManifestStore::default();
    let reload = store.reload(dir);
    for problem in &reload.problems {
        eprintln!("warning: {problem}");
    }
    let snapshot = store.snapshot();
    let addresses = Compiler::new()
        .compile(&snapshot, &CompileOptions::default())
        .pod_addresses;
    let from = resolve(&snapshot, &addresses, question.from, question.ipv6)?;
    let to = resolve(&snapshot, &addresses, question.to, question.ipv6)?;
    let port = match question.protocol {
        PROTO_TCP | PROTO_UDP | PROTO_SCTP => format!("/{}", question.port),
        _ => String::new(),
    };
    println!(
        "{} -> {} {}{port} ({} -> {})",
        question.from,
        question.to,
        protocol_name(question.protocol),
        from.address,
        to.address
    );
    let hooks = [
        (&from, Direction::Egress, to.address),
        (&to, Direction::Ingress, from.address),
    ];
    let mut allowed = true;
    for (end, direction, peer) in hooks {
        let Some((pod, node)) = &end.pod else {
            println!(
                "  {direction} at {}: not a pod, nothing enforced there",
                end.address
            );
            continue;
        };
        let options = CompileOptions {
            node_name: node.clone(),
            default_action: question.default_action,
            ..CompileOptions::default()
        };
        let decision = evaluate(
            &snapshot,
            &options,
            pod,
            direction,
            peer,
            question.protocol,
            question.port,
        );
        allowed &= decision.as_ref().is_some_and(|v| v.allow);
        println!("  {direction} at {pod}: {}", describe(&decision));
    }
    println!("verdict: {}", if allowed { "allowed" } else { "denied" });
    Ok(allowed)
}

fn resolve(
    snapshot: &Snapshot,
    addresses: &BTreeMap<IpAddr, PodRef>,
    end: &str,
    ipv6: bool,
) -> Result<End> {
    if let Ok(address) = end.parse::<IpAddr>() {
        let pod = addresses.get(&address).cloned();
        let pod = pod
            .map(|pod| node_of(snapshot, &pod).map(|node| (pod, node)))
            .transpose()?;
        return Ok(End { address, pod });
    }
    let (namespace, name) = end
        .split_once('/')
        .with_context(|| format!("{end}: expected namespace/pod or an IP address"))?;
    let pod = PodRef::new(namespace, name);
    let address = addresses
        .iter()
        .filter(|(ip, owner)| **owner == pod && ip.is_ipv6() == ipv6)
        .map(|(ip, _)| *ip)
        .next()
        .with_context(|| {
            format!(
                "pod {pod} has no {} address in the manifests",
                if ipv6 { "IPv6" } else { "IPv4" }
            )
        })?;
    let node = node_of(snapshot, &pod)?;
    Ok(End {
        address,
        pod: Some((pod, node)),
    })
}

fn node_of(snapshot: &Snapshot, pod: &PodRef) -> Result<String> {
    let found = snapshot.pods.iter().find(|p| {
        p.metadata.namespace.as_deref() == Some(&*pod.namespace)
            && p.metadata.name.as_deref() == Some(&*pod.name)
    });
    match found.and_then(|p| p.spec.as_ref()?.node_name.clone()) {
        Some(node) => Ok(node),
        None => bail!("pod {pod} has no spec.nodeName: no node enforces it"),
    }
}

fn describe(verdict: &Option<Verdict>) -> String {
    let Some(verdict) = verdict else {
        return "denied: not an endpoint (no IP, host network or finished)".into();
    };
    let outcome = if verdict.allow { "allowed" } else { "denied" };
    let mut text = format!("{outcome} by {}", verdict.decided_by);
    for pass in &verdict.passed_by {
        text.push_str(&format!(", after Pass by {pass}"));
    }
    if let Some(audit) = &verdict.audit {
        text.push_str(&format!("; audit would {audit}"));
    }
    text
}
