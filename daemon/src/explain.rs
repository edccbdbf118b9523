//! `netseg explain`: what the policies of a manifests directory make of one
//! connection at each end, step by step through the bands, and which step
//! decides. The steps are the compiler's own (see
//! [`netseg_policy::Compiler::trace`]), so the verdict shown is the one the
//! datapath would apply. Nothing is loaded or attached.

use std::io::Write;
use std::{collections::BTreeMap, net::IpAddr, path::Path, sync::Arc};

use anyhow::{Context as _, Result, bail};
use netseg_contract::{PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use netseg_policy::{
    Action, CompileOptions, Compiler, Connection, Decider, DefaultAction, Direction, IdentityKind,
    PodParty, PodRef, Snapshot, StepOutcome, Trace, TraceStep, Verdict,
};

use crate::{flows::protocol_name, sources::manifests::ManifestStore};

mod flow;
pub use flow::{FlowQuestion, RecordQuestionError};

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

/// Writes the explanation to `out`; `Ok(true)` when the connection is allowed.
pub fn explain(dir: &Path, question: &Question<'_>, out: &mut impl Write) -> Result<bool> {
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
    writeln!(
        out,
        "{} -> {} {}{port} ({} -> {})",
        question.from,
        question.to,
        protocol_name(question.protocol),
        from.address,
        to.address
    )?;
    let hooks = [
        (&from, Direction::Egress, &to),
        (&to, Direction::Ingress, &from),
    ];
    let mut allowed = true;
    for (end, direction, peer) in hooks {
        let Some((pod, node)) = &end.pod else {
            writeln!(
                out,
                "  {direction} at {}: not a pod, nothing enforced there",
                end.address
            )?;
            continue;
        };
        let options = CompileOptions {
            node_name: node.clone(),
            default_action: question.default_action,
            ..CompileOptions::default()
        };
        let connection = Connection {
            endpoint: pod.clone(),
            direction,
            peer: peer.address,
            protocol: question.protocol,
            port: question.port,
        };
        let Some(trace) = Compiler::new().trace(&snapshot, &options, &connection) else {
            bail!("pod {pod} is not an endpoint netseg enforces on node {node}");
        };
        allowed &= trace.verdict.allow;
        let peer_pod = peer.pod.as_ref().map(|(pod, _)| pod);
        write_trace(out, &trace, peer_pod, question.default_action)?;
    }
    let verdict = if allowed { "allowed" } else { "denied" };
    writeln!(out, "verdict: {verdict}")?;
    Ok(allowed)
}

/// The verdict at one end, then every step met on the way to it.
fn write_trace(
    out: &mut impl Write,
    trace: &Trace,
    peer_pod: Option<&PodRef>,
    default: DefaultAction,
) -> Result<()> {
    let connection = &trace.connection;
    writeln!(
        out,
        "  {} at {}: {}",
        connection.direction,
        connection.endpoint,
        verdict_text(&trace.verdict, default)
    )?;
    let peer = match (peer_pod, trace.peer_identity.kind) {
        (Some(pod), _) => format!("pod {pod}"),
        (None, IdentityKind::Node) => "the node".to_string(),
        (None, IdentityKind::World) => "not a pod, in no network a rule names".to_string(),
        (None, _) => format!("not a pod, {}", trace.peer_identity),
    };
    writeln!(out, "    peer {}: {peer}", connection.peer)?;
    for (number, step) in trace.steps.iter().enumerate() {
        writeln!(
            out,
            "    {:>2}. {:<13} {}: {}",
            number + 1,
            band_label(step),
            step_name(step, default),
            outcome_text(step)
        )?;
    }
    Ok(())
}

fn verdict_text(verdict: &Verdict, default: DefaultAction) -> String {
    let mut text = format!(
        "{} by {}",
        if verdict.allow { "allowed" } else { "denied" },
        decider_name(&verdict.decided_by, default)
    );
    for pass in &verdict.passed_by {
        text.push_str(&format!(", after Pass by {pass}"));
    }
    if let Some(audit) = &verdict.audit {
        let would = if audit.allow { "allow" } else { "deny" };
        text.push_str(&format!(
            "; audit: would {would} by {}",
            decider_name(&audit.decided_by, default)
        ));
    }
    text
}

fn decider_name(decider: &Decider, default: DefaultAction) -> String {
    match decider {
        Decider::Default => format!("the default action ({})", default_name(default)),
        Decider::NodeTraffic => "node traffic (the node's own addresses)".to_string(),
        other => other.to_string(),
    }
}

fn default_name(default: DefaultAction) -> &'static str {
    match default {
        DefaultAction::Allow => "allow",
        DefaultAction::Deny => "deny",
    }
}

fn band_label(step: &TraceStep) -> String {
    match (&step.band, &step.decider) {
        (Some(band), _) => band.to_string(),
        (None, Decider::NodeTraffic) => "node".to_string(),
        (None, _) => "default".to_string(),
    }
}

fn step_name(step: &TraceStep, default: DefaultAction) -> String {
    let name = decider_name(&step.decider, default);
    match &step.fails_closed {
        Some(why) => format!("{name} [fails closed: {why}]"),
        None => name,
    }
}

fn outcome_text(step: &TraceStep) -> String {
    let band = step.band.map(|b| b.to_string()).unwrap_or_default();
    match step.outcome {
        StepOutcome::AuditOnly => "audit only, not enforced".to_string(),
        StepOutcome::SkippedByPass => "skipped (an earlier Pass left the band)".to_string(),
        StepOutcome::PeerNotMatched => "no match (peer)".to_string(),
        StepOutcome::ProtocolNotMatched => "no match (protocol or port)".to_string(),
        StepOutcome::Passed => format!("matches: Pass, the rest of {band} is skipped"),
        StepOutcome::Decided if step.action == Action::Accept => "matches: allow".to_string(),
        StepOutcome::Decided => "matches: deny".to_string(),
    }
}

fn resolve(
    snapshot: &Snapshot,
    addresses: &BTreeMap<IpAddr, Arc<PodParty>>,
    end: &str,
    ipv6: bool,
) -> Result<End> {
    if let Ok(address) = end.parse::<IpAddr>() {
        let pod = addresses.get(&address).map(|party| party.pod.clone());
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
        .filter(|(ip, owner)| owner.pod == pod && ip.is_ipv6() == ipv6)
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

#[cfg(test)]
mod tests;
