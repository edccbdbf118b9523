//! Cluster policy rules with their Segment peers expanded and their
//! fail-closed form applied, ready to be matched like NetworkPolicy rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{PeerModel, PortModel, SegmentModel, TieredPeer, TieredPolicy, TieredRule};
use crate::types::{Action, Band, Direction, RuleRef};

use crate::model::Tier;

/// A rule as the compiler applies it.
#[derive(Clone, Debug)]
pub(crate) struct ResolvedRule {
    /// Names the rule; its `action` is the action applied (a Deny or Pass
    /// rule that fails closed is a Deny).
    pub rule_ref: RuleRef,
    /// `None`: every address.
    pub peers: Option<Vec<PeerModel>>,
    /// `None`: every protocol and port.
    pub ports: Option<Vec<PortModel>>,
    /// Why the rule fails closed, if it does (`explain` shows it).
    pub fails_closed: Option<String>,
}

/// A cluster policy whose rules are resolved against this snapshot's Segments.
pub(crate) struct ResolvedPolicy {
    pub model: Arc<TieredPolicy>,
    /// Ingress, egress. An Accept rule that fails closed matches no peer.
    pub rules: [Vec<ResolvedRule>; 2],
}

pub(super) fn band(tier: Tier) -> Band {
    match tier {
        Tier::Admin => Band::Admin,
        Tier::Baseline => Band::Baseline,
    }
}

/// Resolves `policy`'s rules; `segments` by name.
pub(crate) fn resolve(
    policy: &Arc<TieredPolicy>,
    segments: &BTreeMap<&str, &SegmentModel>,
) -> ResolvedPolicy {
    let rules = Direction::BOTH.map(|direction| {
        policy
            .rules(direction)
            .iter()
            .map(|rule| resolve_rule(policy, direction, rule, segments))
            .collect()
    });
    ResolvedPolicy {
        model: Arc::clone(policy),
        rules,
    }
}

fn resolve_rule(
    policy: &TieredPolicy,
    direction: Direction,
    rule: &TieredRule,
    segments: &BTreeMap<&str, &SegmentModel>,
) -> ResolvedRule {
    let mut rule_ref = RuleRef {
        kind: policy.kind,
        band: band(policy.tier),
        namespace: String::new(),
        name: policy.name.clone(),
        direction,
        index: rule.index,
        rule_name: rule.name.clone(),
        action: rule.action,
    };
    let reasons = rule.fail_closed_reasons(|name| segments.contains_key(name));
    if !reasons.is_empty() {
        let why: Vec<String> = reasons.iter().map(ToString::to_string).collect();
        let fails_closed = Some(why.join("; "));
        return match rule.action {
            Action::Accept => ResolvedRule {
                rule_ref,
                peers: Some(Vec::new()),
                ports: None,
                fails_closed,
            },
            Action::Deny | Action::Pass => {
                rule_ref.action = Action::Deny;
                ResolvedRule {
                    rule_ref,
                    peers: None,
                    ports: None,
                    fails_closed,
                }
            }
        };
    }
    let mut peers: Vec<PeerModel> = Vec::new();
    for peer in &rule.peers {
        match peer {
            TieredPeer::Peer(peer) => peers.push(peer.clone()),
            TieredPeer::Segment { name, .. } => {
                peers.extend(
                    segments
                        .get(name.as_str())
                        .into_iter()
                        .flat_map(|s| s.as_peers()),
                );
            }
        }
    }
    peers.sort();
    peers.dedup();
    ResolvedRule {
        rule_ref,
        peers: Some(peers),
        ports: rule.ports.clone(),
        fails_closed: None,
    }
}
