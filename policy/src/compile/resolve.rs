//! Cluster policy rules with their Segment peers expanded and their
//! fail-closed form applied, ready to be matched like NetworkPolicy rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{PeerModel, PortModel, SegmentModel, TieredPeer, TieredPolicy, TieredRule};
use crate::types::{Action, Band, Direction, RuleRef};

use crate::model::Tier;

/// A rule as the compiler applies it.
#[derive(Clone, Debug)]
pub(super) struct ResolvedRule {
    /// Names the rule; its `action` is the action applied (a Deny or Pass
    /// rule that fails closed is a Deny).
    pub rule_ref: RuleRef,
    /// `None`: every address.
    pub peers: Option<Vec<PeerModel>>,
    /// `None`: every protocol and port.
    pub ports: Option<Vec<PortModel>>,
}

/// A cluster policy whose rules are resolved against this snapshot's Segments.
pub(super) struct ResolvedPolicy {
    pub model: Arc<TieredPolicy>,
    /// Ingress, egress. An Accept rule that fails closed is left out.
    pub rules: [Vec<ResolvedRule>; 2],
}

pub(super) fn band(tier: Tier) -> Band {
    match tier {
        Tier::Admin => Band::Admin,
        Tier::Baseline => Band::Baseline,
    }
}

/// Resolves `policy`'s rules; `segments` by name.
pub(super) fn resolve(
    policy: &Arc<TieredPolicy>,
    segments: &BTreeMap<&str, &SegmentModel>,
) -> ResolvedPolicy {
    let rules = Direction::BOTH.map(|direction| {
        policy
            .rules(direction)
            .iter()
            .filter_map(|rule| resolve_rule(policy, direction, rule, segments))
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
) -> Option<ResolvedRule> {
    let mut peers = Vec::new();
    let mut fails_closed = rule.unsupported.is_some();
    for peer in &rule.peers {
        match peer {
            TieredPeer::Peer(peer) => peers.push(peer.clone()),
            TieredPeer::Segment(name) => match segments.get(name.as_str()) {
                Some(segment) => peers.extend(segment.as_peers()),
                None => fails_closed = true,
            },
        }
    }
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
    if !fails_closed {
        peers.sort();
        peers.dedup();
        return Some(ResolvedRule {
            rule_ref,
            peers: Some(peers),
            ports: rule.ports.clone(),
        });
    }
    match rule.action {
        Action::Accept => None,
        Action::Deny | Action::Pass => {
            rule_ref.action = Action::Deny;
            Some(ResolvedRule {
                rule_ref,
                peers: None,
                ports: None,
            })
        }
    }
}
